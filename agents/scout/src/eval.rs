//! Evaluation of the PII detector against labelled columns.
//!
//! The set is JSON lines, one column each:
//! `{"table", "column", "neighbours": [..], "samples": [..], "label", "part"}`
//! where `label` is a [`crate::pii::PiiKind`] name, `none`, or the snake-case name of a
//! kind of personal data the detector does not know (counted as missed, so
//! the figures show it), and the optional `part` is `fit` or `blind` (the
//! public sets are split by table; the blind part is never used to tune the
//! detector). A column's prediction is its strongest flag (or none); per
//! kind, precision is the share of columns predicted as that kind that are,
//! recall the share of that kind's columns predicted as it. The binary
//! figures ask only "personal or not": a column labelled with any kind and
//! flagged with any kind is a true positive.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::pii::{detect, ColumnEvidence};

/// Errors reading an evaluation set.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A line is not a labelled column.
    #[error("line {line}: {message}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
struct Labelled {
    table: String,
    column: String,
    neighbours: Vec<String>,
    samples: Vec<Option<String>>,
    label: String,
    #[serde(default)]
    part: Option<String>,
}

/// Figures for one kind.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct KindScore {
    /// Columns labelled with the kind.
    pub support: usize,
    /// Predicted as the kind and labelled so.
    pub true_positives: usize,
    /// Predicted as the kind, labelled otherwise.
    pub false_positives: usize,
    /// Labelled with the kind, predicted otherwise.
    pub false_negatives: usize,
}

impl KindScore {
    /// tp / (tp + fp), 1 when nothing was predicted.
    pub fn precision(&self) -> f64 {
        let d = self.true_positives + self.false_positives;
        if d == 0 {
            1.0
        } else {
            self.true_positives as f64 / d as f64
        }
    }
    /// tp / (tp + fn), 1 when there is nothing to find.
    pub fn recall(&self) -> f64 {
        let d = self.true_positives + self.false_negatives;
        if d == 0 {
            1.0
        } else {
            self.true_positives as f64 / d as f64
        }
    }
}

/// The result of an evaluation.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    /// Per kind.
    pub kinds: BTreeMap<String, KindScore>,
    /// Columns evaluated.
    pub columns: usize,
    /// Columns labelled none that were flagged (any kind).
    pub false_alarms_on_none: usize,
    /// Personal or not, whatever the kind.
    pub binary: KindScore,
    /// Personal or not, a flag counting only when its kind is one the set's
    /// labels use somewhere (its vocabulary): a set whose annotators had no
    /// such kind labels those columns `none` whatever they hold.
    pub vocabulary_binary: KindScore,
    /// Columns labelled none that were flagged although no value was
    /// sampled (the column's name alone spoke).
    pub flagged_without_values: usize,
    /// Misclassified columns: (table.column, label, predicted).
    pub mistakes: Vec<(String, String, String)>,
}

impl Report {
    /// Mean precision and recall over the kinds the set labels (a kind only
    /// ever predicted, never labelled, counts in the binary figures).
    pub fn macro_average(&self) -> (f64, f64) {
        let labelled: Vec<&KindScore> = self.kinds.values().filter(|s| s.support > 0).collect();
        let n = labelled.len().max(1) as f64;
        let p = labelled.iter().map(|s| s.precision()).sum::<f64>() / n;
        let r = labelled.iter().map(|s| s.recall()).sum::<f64>() / n;
        (p, r)
    }

    /// The table printed by `sensei pii-eval`.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<16} {:>7} {:>4} {:>4} {:>4} {:>9} {:>7}\n",
            "kind", "columns", "tp", "fp", "fn", "precision", "recall"
        );
        for (k, s) in &self.kinds {
            out.push_str(&format!(
                "{:<16} {:>7} {:>4} {:>4} {:>4} {:>9.3} {:>7.3}\n",
                k,
                s.support,
                s.true_positives,
                s.false_positives,
                s.false_negatives,
                s.precision(),
                s.recall()
            ));
        }
        let (p, r) = self.macro_average();
        out.push_str(&format!(
            "{:<16} {:>7} {:>24.3} {:>7.3}\n",
            "macro average", self.columns, p, r
        ));
        out.push_str(&format!(
            "{:<16} {:>7} {:>4} {:>4} {:>4} {:>9.3} {:>7.3}\n",
            "binary (any kind)",
            self.binary.support,
            self.binary.true_positives,
            self.binary.false_positives,
            self.binary.false_negatives,
            self.binary.precision(),
            self.binary.recall()
        ));
        let v = &self.vocabulary_binary;
        out.push_str(&format!(
            "{:<16} {:>7} {:>4} {:>4} {:>4} {:>9.3} {:>7.3}\n",
            "binary, kinds the set labels",
            v.support,
            v.true_positives,
            v.false_positives,
            v.false_negatives,
            v.precision(),
            v.recall()
        ));
        out.push_str(&format!(
            "columns labelled none that were flagged: {} ({} of them with no value sampled)\n",
            self.false_alarms_on_none, self.flagged_without_values
        ));
        out
    }

    fn add(&mut self, c: &Labelled, label: Option<&str>, predicted: Option<&str>, known: bool) {
        self.columns += 1;
        if let Some(l) = label {
            self.kinds.entry(l.into()).or_default().support += 1;
        }
        binary(&mut self.binary, label.is_some(), predicted.is_some());
        binary(
            &mut self.vocabulary_binary,
            label.is_some(),
            predicted.is_some() && known,
        );
        let no_values = c.samples.iter().flatten().all(|v| v.trim().is_empty());
        if label.is_none() && predicted.is_some() && no_values {
            self.flagged_without_values += 1;
        }
        let (table, column) = (&c.table, &c.column);
        if label == predicted {
            if let Some(l) = label {
                self.kinds.entry(l.into()).or_default().true_positives += 1;
            }
            return;
        }
        if let Some(l) = label {
            self.kinds.entry(l.into()).or_default().false_negatives += 1;
        }
        if let Some(p) = predicted {
            self.kinds.entry(p.into()).or_default().false_positives += 1;
            if label.is_none() {
                self.false_alarms_on_none += 1;
            }
        }
        self.mistakes.push((
            format!("{table}.{column}"),
            label.unwrap_or("none").to_string(),
            predicted.unwrap_or("none").to_string(),
        ));
    }
}

/// Counts one column in a binary score.
fn binary(score: &mut KindScore, personal: bool, flagged: bool) {
    score.support += usize::from(personal);
    match (personal, flagged) {
        (true, true) => score.true_positives += 1,
        (true, false) => score.false_negatives += 1,
        (false, true) => score.false_positives += 1,
        (false, false) => {}
    }
}

/// Evaluates the detector on a JSON-lines set, all columns together.
pub fn evaluate(jsonl: &str) -> Result<Report, EvalError> {
    Ok(evaluate_parts(jsonl)?
        .into_values()
        .reduce(|mut a, b| {
            a.merge(b);
            a
        })
        .unwrap_or_default())
}

impl Report {
    fn merge(&mut self, other: Report) {
        for (k, s) in other.kinds {
            let e = self.kinds.entry(k).or_default();
            e.support += s.support;
            e.true_positives += s.true_positives;
            e.false_positives += s.false_positives;
            e.false_negatives += s.false_negatives;
        }
        self.columns += other.columns;
        self.false_alarms_on_none += other.false_alarms_on_none;
        self.flagged_without_values += other.flagged_without_values;
        for (mine, theirs) in [
            (&mut self.binary, other.binary),
            (&mut self.vocabulary_binary, other.vocabulary_binary),
        ] {
            mine.support += theirs.support;
            mine.true_positives += theirs.true_positives;
            mine.false_positives += theirs.false_positives;
            mine.false_negatives += theirs.false_negatives;
        }
        self.mistakes.extend(other.mistakes);
    }
}

/// Evaluates the detector on a JSON-lines set, one report per part (`fit`,
/// `blind`; `all` for columns without a part).
pub fn evaluate_parts(jsonl: &str) -> Result<BTreeMap<String, Report>, EvalError> {
    let columns = read_set(jsonl)?;
    let vocabulary: std::collections::BTreeSet<&str> =
        columns.iter().map(|(_, c)| c.label.as_str()).collect();
    let mut parts: BTreeMap<String, Report> = BTreeMap::new();
    for (part, c) in &columns {
        let flags = detect(&ColumnEvidence {
            table: &c.table,
            column: &c.column,
            neighbours: &c.neighbours,
            samples: &c.samples,
        });
        let label = (c.label != "none").then_some(c.label.as_str());
        let predicted = flags.first().map(|f| f.kind.as_str());
        let known = predicted.is_some_and(|p| vocabulary.contains(p));
        parts
            .entry(part.clone())
            .or_default()
            .add(c, label, predicted, known);
    }
    Ok(parts)
}

/// Reads and checks a labelled set: (part, column) per line.
fn read_set(jsonl: &str) -> Result<Vec<(String, Labelled)>, EvalError> {
    let mut columns = Vec::new();
    for (i, line) in jsonl.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| EvalError::Line {
            line: i + 1,
            message,
        };
        let c: Labelled = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let well_formed = c.label.starts_with(|ch: char| ch.is_ascii_lowercase())
            && c.label
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_');
        if !well_formed {
            return Err(bad(format!(
                "label `{}` is not a kind name (snake case, or none)",
                c.label
            )));
        }
        let part = c.part.clone().unwrap_or_else(|| "all".into());
        if !["fit", "blind", "all"].contains(&part.as_str()) {
            return Err(bad(format!("part `{part}` is neither fit nor blind")));
        }
        columns.push((part, c));
    }
    Ok(columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_set_is_large_and_well_detected() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/pii/columns.jsonl"
        ))
        .unwrap();
        let r = evaluate(&text).unwrap();
        println!("{}", r.table());
        for m in &r.mistakes {
            println!("mistake: {} labelled {} predicted {}", m.0, m.1, m.2);
        }
        assert!(r.columns >= 150, "at least 150 labelled columns");
        for (k, s) in r.kinds.iter().filter(|(_, s)| s.support > 0) {
            assert!(s.support >= 10, "{k}: at least 10 columns");
        }
        let (p, rec) = r.macro_average();
        assert!(
            p >= 0.9 && rec >= 0.85,
            "macro precision {p:.3}, recall {rec:.3}"
        );
        assert_eq!(
            r.kinds["credit_card"].false_positives, 0,
            "no order number taken for a card"
        );
    }

    /// `holdout.jsonl` was written independently of the detector and never used
    /// to tune it (other domains, other languages): it measures generalisation.
    /// Improve the detector on `columns.jsonl` or new sets, not on this one.
    #[test]
    fn the_holdout_set_stays_above_its_floor() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/pii/holdout.jsonl"
        ))
        .unwrap();
        let r = evaluate(&text).unwrap();
        println!("{}", r.table());
        assert!(r.columns >= 100);
        let (p, rec) = r.macro_average();
        assert!(
            p >= 0.9 && rec >= 0.8,
            "held-out macro precision {p:.3}, recall {rec:.3}"
        );
    }

    #[test]
    fn kinds_outside_the_sets_labels_and_unsampled_columns_are_counted_apart() {
        let line = |column: &str, samples: &str, label: &str| {
            format!(
                r#"{{"table":"customers","column":"{column}","neighbours":[],"samples":{samples},"label":"{label}"}}"#
            )
        };
        let set = [
            line("email", r#"["ann@example.com","bo@example.org"]"#, "email"),
            // Phones are personal, but this set's labels never use the kind.
            line(
                "mobile",
                r#"["+44 20 7946 0896","+44 20 7946 0810","+44 20 7946 0123"]"#,
                "none",
            ),
            // Nothing sampled: the name alone flags it.
            line("e_mail", "[null,null]", "none"),
            line("sku", r#"["A-1","B-2"]"#, "none"),
        ]
        .join("\n");
        let r = evaluate(&set).unwrap();
        assert_eq!(
            (
                r.binary.true_positives,
                r.binary.false_positives,
                r.binary.false_negatives
            ),
            (1, 2, 0)
        );
        // The phone flag does not count within the set's vocabulary; the
        // unsampled e-mail column still does (its kind is the set's).
        let v = &r.vocabulary_binary;
        assert_eq!(
            (v.true_positives, v.false_positives, v.false_negatives),
            (1, 1, 0)
        );
        assert_eq!((r.false_alarms_on_none, r.flagged_without_values), (2, 1));
        assert!(
            r.table().contains("1 of them with no value sampled"),
            "{}",
            r.table()
        );
    }

    /// Three public sets labelled by others (agents/testdata/pii/public),
    /// each split by table into a fit and a blind part. Floors a little
    /// under the figures measured when the split was fixed: a change that
    /// loses ground on data nobody here wrote fails.
    #[test]
    fn the_public_sets_hold_their_floors() {
        // (set, part, binary precision floor, binary recall floor)
        let floors = [
            ("datahub_classify", "fit", 0.65, 0.95),
            ("datahub_classify", "blind", 0.6, 0.95),
            ("fta_semantic_types", "fit", 0.95, 0.93),
            ("fta_semantic_types", "blind", 0.93, 0.92),
            ("trl_gittables", "fit", 0.74, 0.84),
            ("trl_gittables", "blind", 0.72, 0.78),
        ];
        for (set, part, p, r) in floors {
            let text = std::fs::read_to_string(format!(
                "{}/../testdata/pii/public/{set}.jsonl",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            let parts = evaluate_parts(&text).unwrap();
            assert!(
                parts.contains_key("fit") && parts.contains_key("blind"),
                "{set}: both parts"
            );
            let b = &parts[part].binary;
            println!(
                "{set} [{part}] binary precision {:.3} recall {:.3}",
                b.precision(),
                b.recall()
            );
            assert!(
                b.support >= 15,
                "{set} [{part}]: at least 15 personal columns"
            );
            assert!(
                b.precision() >= p && b.recall() >= r,
                "{set} [{part}]: binary precision {:.3} (floor {p}), recall {:.3} (floor {r})",
                b.precision(),
                b.recall()
            );
        }
    }

    #[test]
    fn labels_outside_the_detector_count_as_misses() {
        let line = r#"{"table": "t", "column": "religion", "neighbours": [], "samples": ["x"], "label": "religion", "part": "fit"}"#;
        let parts = evaluate_parts(line).unwrap();
        let r = &parts["fit"];
        assert_eq!(r.kinds["religion"].false_negatives, 1);
        assert_eq!(r.binary.false_negatives, 1);
        let err = evaluate_parts(&line.replace("\"fit\"", "\"train\"")).unwrap_err();
        assert!(err.to_string().contains("neither fit nor blind"), "{err}");
    }

    #[test]
    fn a_bad_line_is_named() {
        let err = evaluate("{\"table\": 1}\n").unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}
