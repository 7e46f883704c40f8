//! Review decisions on a mapping spec.
//!
//! A person reviews the entries the Architect could not approve on its own
//! (confidence below `transformation.auto_approval_threshold`): approve the
//! proposal, reject it (the target column stays NULL), or replace its
//! expression. Decisions come from `sensei review` flags or from a review
//! file kept beside the migration (`transformation.review_file`), so that a
//! reviewed migration can be rerun without interaction and its review read
//! in version control. Both paths go through [`apply`], which records who
//! decided and when in the spec, exactly as the certificate later shows it.
//!
//! The review file is TOML:
//!
//! ```toml
//! reviewed_by = "alice"
//!
//! [[entry]]
//! column = "customer.phone_number"
//! decision = "approve"
//! why = "cust_phone holds the customer's phone numbers"
//!
//! [[entry]]
//! column = "product.discontinued"
//! decision = "expression"
//! expression = "prod_status = 'D'"
//! ```

use std::path::Path;

use sensei_contracts::artifacts::MappingSpec;

/// What a reviewer decided about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Keep the proposed expression.
    Approve,
    /// Leave the target column NULL.
    Reject,
    /// Replace the expression (SQL over the source table) and approve it.
    Expression(String),
}

/// One decision: an entry named `TABLE.COLUMN` of the target schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// `table.column` of the target.
    pub entry: String,
    /// The decision.
    pub action: Action,
    /// The reviewer's reason, recorded among the entry's reasons.
    pub why: Option<String>,
}

pub use sensei_contracts::error::ReviewError;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    reviewed_by: String,
    #[serde(default)]
    entry: Vec<FileEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    column: String,
    decision: String,
    #[serde(default)]
    expression: Option<String>,
    #[serde(default)]
    why: Option<String>,
}

/// A review file: who reviewed, and the decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewFile {
    /// The reviewer recorded with every decision.
    pub reviewed_by: String,
    /// The decisions, in file order.
    pub decisions: Vec<Decision>,
}

impl ReviewFile {
    /// Reads and checks a review file.
    pub fn read(path: &Path) -> Result<ReviewFile, ReviewError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ReviewError::File {
            file: file.clone(),
            message: format!("cannot read it: {e}"),
        })?;
        Self::parse(&text, &file)
    }

    /// Applies the file's decisions as [`apply`] does, except on entries
    /// another reviewer decided (with `sensei review`): a person's decision
    /// is theirs, a file applied on every run does not overwrite it.
    pub fn apply_to(
        &self,
        spec: &mut MappingSpec,
        at: &str,
        origin: &str,
    ) -> Result<usize, ReviewError> {
        let decided_by_others = |entry: &str| {
            entry.rsplit_once('.').is_some_and(|(table, column)| {
                spec.tables
                    .iter()
                    .filter(|t| t.target == table)
                    .flat_map(|t| &t.columns)
                    .any(|c| {
                        c.target == column
                            && c.reviewed_by
                                .as_deref()
                                .is_some_and(|w| w != self.reviewed_by)
                    })
            })
        };
        let decisions: Vec<Decision> = self
            .decisions
            .iter()
            .filter(|d| !decided_by_others(&d.entry))
            .cloned()
            .collect();
        apply(spec, &decisions, &self.reviewed_by, at, origin)
    }

    /// Parses the text of a review file named `file` (for messages).
    pub fn parse(text: &str, file: &str) -> Result<ReviewFile, ReviewError> {
        let bad = |message: String| ReviewError::File {
            file: file.to_string(),
            message,
        };
        let doc: FileDoc = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        if doc.reviewed_by.trim().is_empty() {
            return Err(bad("reviewed_by is empty: name who reviewed".into()));
        }
        let mut decisions = Vec::with_capacity(doc.entry.len());
        for (i, e) in doc.entry.into_iter().enumerate() {
            let n = i + 1;
            if !e.column.contains('.') {
                return Err(bad(format!(
                    "entry {n}: column = {:?} must name TARGET_TABLE.COLUMN",
                    e.column
                )));
            }
            let action = match (e.decision.as_str(), e.expression) {
                ("approve", None) => Action::Approve,
                ("reject", None) => Action::Reject,
                ("expression", Some(x)) if !x.trim().is_empty() => Action::Expression(x),
                ("expression", _) => {
                    return Err(bad(format!(
                        "entry {n} ({}): decision = \"expression\" needs expression = \"SQL over the source table\"",
                        e.column
                    )))
                }
                ("approve" | "reject", Some(_)) => {
                    return Err(bad(format!(
                        "entry {n} ({}): an expression goes with decision = \"expression\", not {:?}",
                        e.column, e.decision
                    )))
                }
                (other, _) => {
                    return Err(bad(format!(
                        "entry {n} ({}): decision = {other:?} must be approve, reject or expression",
                        e.column
                    )))
                }
            };
            decisions.push(Decision {
                entry: e.column,
                action,
                why: e.why.filter(|w| !w.trim().is_empty()),
            });
        }
        Ok(ReviewFile {
            reviewed_by: doc.reviewed_by,
            decisions,
        })
    }
}

/// Applies decisions to a spec, recording `who` and `at` on every entry
/// they touch. Every decision is checked before any is applied, so a file
/// with one wrong entry changes nothing. Returns the number of entries
/// changed (a decision already recorded by the same reviewer is skipped).
pub fn apply(
    spec: &mut MappingSpec,
    decisions: &[Decision],
    who: &str,
    at: &str,
    origin: &str,
) -> Result<usize, ReviewError> {
    let locate = |spec: &MappingSpec, entry: &str| -> Option<(usize, usize)> {
        let (table, column) = entry.rsplit_once('.')?;
        spec.tables.iter().enumerate().find_map(|(ti, t)| {
            (t.target == table)
                .then(|| t.columns.iter().position(|c| c.target == column))
                .flatten()
                .map(|ci| (ti, ci))
        })
    };
    let mut places = Vec::with_capacity(decisions.len());
    for d in decisions {
        let place = locate(spec, &d.entry).ok_or_else(|| ReviewError::UnknownEntry {
            origin: origin.to_string(),
            entry: d.entry.clone(),
        })?;
        places.push(place);
    }
    let mut changed = 0;
    for (d, (ti, ci)) in decisions.iter().zip(places) {
        let c = &mut spec.tables[ti].columns[ci];
        // A decision this reviewer already recorded is not recorded again,
        // so a review file applied on every run leaves the spec as it is.
        let (status, expression) = match &d.action {
            Action::Approve => ("approved", &c.expression),
            Action::Reject => ("rejected", &c.expression),
            Action::Expression(x) => ("approved", x),
        };
        if c.status == status
            && c.expression == *expression
            && c.reviewed_by.as_deref() == Some(who)
        {
            continue;
        }
        changed += 1;
        match &d.action {
            Action::Approve => c.status = "approved".into(),
            Action::Reject => c.status = "rejected".into(),
            Action::Expression(x) => {
                c.status = "approved".into();
                c.expression = x.clone();
                c.reasons.push(format!("expression set by {who}"));
            }
        }
        if let Some(why) = &d.why {
            c.reasons.push(format!("{who}: {why}"));
        }
        c.reviewed_by = Some(who.to_string());
        c.reviewed_at = Some(at.to_string());
    }
    Ok(changed)
}

/// Records a review in a migration's `mapping.json`: the decisions (and,
/// with `approve_rest`, every entry still waiting) applied with `who` and
/// the time, the file replaced whole (written under a temporary name, then
/// renamed: a reader sees the old spec or the new one). The one way both
/// `sensei review` and the dashboard decide, so their records are the same.
/// Returns the spec as written.
pub fn record(
    path: &Path,
    decisions: &[Decision],
    approve_rest: bool,
    who: &str,
    origin: &str,
) -> Result<MappingSpec, ReviewError> {
    let fail = |message: String| ReviewError::Spec {
        path: path.display().to_string(),
        message,
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| fail(format!("{e}; run `sensei plan` first")))?;
    let mut spec: MappingSpec =
        serde_json::from_str(&text).map_err(|e| fail(format!("not a mapping spec: {e}")))?;
    let at = sensei_contracts::artifacts::now_rfc3339();
    apply(&mut spec, decisions, who, &at, origin)?;
    if approve_rest {
        approve_waiting(&mut spec, who, &at);
    }
    if !decisions.is_empty() || approve_rest {
        let mut bytes = serde_json::to_vec_pretty(&spec)
            .map_err(|e| fail(format!("cannot be written: {e}")))?;
        bytes.push(b'\n');
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, bytes)
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| fail(format!("cannot be written: {e}")))?;
    }
    Ok(spec)
}

/// Approves every entry that waits for review, recording `who` and `at`;
/// returns the entries approved (`table.column`).
pub fn approve_waiting(spec: &mut MappingSpec, who: &str, at: &str) -> Vec<String> {
    let mut approved = Vec::new();
    for t in &mut spec.tables {
        for c in &mut t.columns {
            if c.status == "review" {
                c.status = "approved".into();
                c.reviewed_by = Some(who.to_string());
                c.reviewed_at = Some(at.to_string());
                approved.push(format!("{}.{}", t.target, c.target));
            }
        }
    }
    approved
}

#[cfg(test)]
mod tests {
    use super::*;
    use sensei_contracts::artifacts::{ColumnMapping, TableMapping};

    fn spec() -> MappingSpec {
        let col = |target: &str, status: &str| ColumnMapping {
            target: target.into(),
            expression: format!("src_{target}"),
            sources: vec![format!("src_{target}")],
            confidence: 0.5,
            status: status.into(),
            reasons: vec![],
            reviewed_by: None,
            reviewed_at: None,
            alternatives: Vec::new(),
        };
        let mut s: MappingSpec = serde_json::from_value(serde_json::json!({
            "version": 1, "migration_id": "m", "auto_approval_threshold": 0.92, "tables": []
        }))
        .expect("minimal spec");
        s.tables.push(TableMapping {
            target: "customer".into(),
            sources: vec!["cust".into()],
            columns: vec![
                col("id", "auto"),
                col("phone", "review"),
                col("city", "review"),
            ],
            primary_key: vec!["id".into()],
            joins: vec![],
        });
        s
    }

    #[test]
    fn file_decisions_are_recorded_with_the_reviewer() {
        let file = ReviewFile::parse(
            r#"
reviewed_by = "alice"
[[entry]]
column = "customer.phone"
decision = "approve"
why = "holds phone numbers"
[[entry]]
column = "customer.city"
decision = "expression"
expression = "upper(src_city)"
"#,
            "review.toml",
        )
        .expect("valid file");
        let mut s = spec();
        let n = apply(
            &mut s,
            &file.decisions,
            &file.reviewed_by,
            "T",
            "review.toml",
        )
        .unwrap();
        assert_eq!(n, 2);
        let c = &s.tables[0].columns;
        assert_eq!(c[1].status, "approved");
        assert_eq!(c[1].reviewed_by.as_deref(), Some("alice"));
        assert!(c[1]
            .reasons
            .iter()
            .any(|r| r == "alice: holds phone numbers"));
        assert_eq!(c[2].expression, "upper(src_city)");
        assert_eq!(c[2].reviewed_at.as_deref(), Some("T"));
        assert_eq!(c[0].status, "auto", "untouched entries keep their status");
        let again = s.clone();
        let n = apply(
            &mut s,
            &file.decisions,
            &file.reviewed_by,
            "T2",
            "review.toml",
        )
        .unwrap();
        assert_eq!(n, 0, "applied again, nothing changes");
        assert_eq!(s, again);
    }

    #[test]
    fn a_file_never_overwrites_another_reviewers_decision() {
        let file = ReviewFile::parse(
            "reviewed_by = \"file\"\n[[entry]]\ncolumn = \"customer.phone\"\ndecision = \"approve\"",
            "r.toml",
        )
        .unwrap();
        let mut s = spec();
        let reject = [Decision {
            entry: "customer.phone".into(),
            action: Action::Reject,
            why: None,
        }];
        apply(&mut s, &reject, "carol", "T", "sensei review").unwrap();
        assert_eq!(file.apply_to(&mut s, "T2", "r.toml").unwrap(), 0);
        assert_eq!(s.tables[0].columns[1].status, "rejected");
        assert_eq!(s.tables[0].columns[1].reviewed_by.as_deref(), Some("carol"));
    }

    #[test]
    fn an_unknown_entry_changes_nothing_and_is_named() {
        let decisions = vec![
            Decision {
                entry: "customer.phone".into(),
                action: Action::Reject,
                why: None,
            },
            Decision {
                entry: "customer.fax".into(),
                action: Action::Approve,
                why: None,
            },
        ];
        let mut s = spec();
        let before = s.clone();
        let err = apply(&mut s, &decisions, "bob", "T", "review.toml").unwrap_err();
        assert!(err.to_string().contains("customer.fax"), "{err}");
        assert!(err.to_string().contains("review.toml"), "{err}");
        assert_eq!(s, before);
    }

    #[test]
    fn malformed_files_name_the_entry_and_the_fix() {
        for (text, needle) in [
            ("reviewed_by = \"\"", "reviewed_by is empty"),
            (
                "reviewed_by = \"a\"\n[[entry]]\ncolumn = \"phone\"\ndecision = \"approve\"",
                "TARGET_TABLE.COLUMN",
            ),
            (
                "reviewed_by = \"a\"\n[[entry]]\ncolumn = \"t.c\"\ndecision = \"expression\"",
                "needs expression",
            ),
            (
                "reviewed_by = \"a\"\n[[entry]]\ncolumn = \"t.c\"\ndecision = \"maybe\"",
                "approve, reject or expression",
            ),
            ("reviewed_by = \"a\"\nreviewer = \"b\"", "unknown field"),
        ] {
            let err = ReviewFile::parse(text, "r.toml").unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(err.contains("r.toml"), "{err}");
        }
    }

    #[test]
    fn approve_waiting_touches_only_waiting_entries() {
        let mut s = spec();
        let approved = approve_waiting(&mut s, "--approve-all", "T");
        assert_eq!(approved, vec!["customer.phone", "customer.city"]);
        assert_eq!(s.tables[0].columns[0].reviewed_by, None);
        assert!(crate::pending(&s).is_empty());
    }

    proptest::proptest! {
        /// Any review file text is read or refused naming the file, never a panic.
        #[test]
        fn any_review_file_is_read_or_refused_by_name(text in ".{0,200}") {
            if let Err(e) = ReviewFile::parse(&text, "r.toml") {
                proptest::prop_assert!(e.to_string().contains("r.toml"));
            }
        }
    }
}
