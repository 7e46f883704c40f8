//! # sensei-architect
//!
//! Phase 2, transformation. The Architect plans it. It reads the target schema
//! ([`ddl`]), matches source columns to target columns ([`matcher`]), and
//! writes the mapping specification (per target column an expression, its
//! source columns, a confidence, a status and the reasons) from which
//! [`sql_for`] generates one deterministic DataFusion query per target table.
//!
//! Statuses: `auto` (confidence at or above the auto-approval threshold),
//! `review` (below it, or no source found), `approved` / `rejected` (by a
//! person through `sensei review`, who and when recorded). A migration waits
//! while any entry is `review`.

//!
//! The Worker's engine is [`transform`]: a table's generated SQL run with
//! DataFusion over one partition (reached through
//! [`sensei_contracts::io::PartitionIo`]), the PII functions it calls in
//! [`udf`]; [`semantic`] derives checks from the target schema for the
//! Validator; [`lineage`] writes column lineage; [`eval`] and [`fit`]
//! measure and fit the matcher on the labelled corpus.

pub mod ddl;
pub mod eval;
pub mod fit;
pub mod lineage;
pub mod matcher;
pub mod planner;
pub mod review;
pub mod semantic;
pub mod transform;
pub mod udf;

use std::collections::BTreeMap;

use ddl::{TargetColumn, TargetTable};
use matcher::{ColumnFacts, Dictionary, WEIGHTS};
use sensei_contracts::artifacts::{
    ColumnMapping, Join, Manifest, MappingSpec, TableMapping, ARTIFACT_VERSION,
};
use sensei_contracts::error::{EngineError, Result};

/// Below this a source column is not proposed at all.
pub const MIN_PROPOSAL: f64 = 0.30;

/// What becomes of columns flagged as PII.
#[derive(Debug, Clone, Default)]
pub struct PiiPolicy {
    default: String,
    by_kind: BTreeMap<String, String>,
}

impl PiiPolicy {
    /// Parses the default (`transformation.pii_policy`: `keep`, `mask`,
    /// `hash`, `drop`) and per-kind overrides
    /// (`transformation.pii_policy_by_kind`: `email=mask, ssn=drop`).
    pub fn parse(default: &str, by_kind: &str) -> Result<Self> {
        let invalid = |key: &str, message: String| EngineError::Invalid {
            what: format!("transformation.{key}"),
            message,
        };
        let check = |key: &str, p: &str| {
            if matches!(p, "keep" | "mask" | "hash" | "drop") {
                Ok(p.to_string())
            } else {
                Err(invalid(
                    key,
                    format!("{p:?} is not keep, mask, hash or drop"),
                ))
            }
        };
        let mut map = BTreeMap::new();
        for item in by_kind.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (kind, p) = item.split_once('=').ok_or_else(|| {
                invalid("pii_policy_by_kind", format!("{item:?} is not kind=policy"))
            })?;
            let kind = kind.trim();
            if sensei_scout::pii::PiiKind::parse(kind).is_none() {
                let known: Vec<&str> = sensei_scout::pii::PiiKind::ALL
                    .iter()
                    .map(|k| k.as_str())
                    .collect();
                return Err(invalid(
                    "pii_policy_by_kind",
                    format!(
                        "{kind:?} is not a PII kind; the kinds are {}",
                        known.join(", ")
                    ),
                ));
            }
            map.insert(kind.to_string(), check("pii_policy_by_kind", p.trim())?);
        }
        Ok(PiiPolicy {
            default: check(
                "pii_policy",
                if default.is_empty() { "keep" } else { default },
            )?,
            by_kind: map,
        })
    }

    fn for_kinds<'a>(&'a self, kinds: &'a [String]) -> Option<(&'a str, &'a str)> {
        let kind = kinds.first()?;
        Some((
            kind.as_str(),
            self.by_kind
                .get(kind)
                .map(String::as_str)
                .unwrap_or(&self.default),
        ))
    }
}

/// Applies the PII policy to a planned entry (text targets only for mask
/// and hash: others wait for review with the reason).
fn apply_policy(
    policy: &PiiPolicy,
    source: &ColumnFacts,
    target: &TargetColumn,
    c: &mut ColumnMapping,
) {
    let Some((kind, action)) = policy.for_kinds(&source.pii) else {
        return;
    };
    let text_target = target.arrow_type == "Utf8";
    match action {
        "keep" => return,
        "drop" => c.expression = format!("arrow_cast(NULL, '{}')", target.arrow_type),
        "mask" | "hash" if !text_target => {
            c.status = "review".into();
            c.reasons.push(format!(
                "PII kind {kind}: policy {action} needs a text target column, {} is {}",
                target.name, target.arrow_type
            ));
            return;
        }
        "mask" => c.expression = format!("sensei_mask({})", c.expression),
        _ => c.expression = format!("sensei_hash({})", c.expression),
    }
    c.reasons
        .push(format!("PII kind {kind}: {action} by policy"));
}

/// Quotes an identifier for DataFusion SQL.
pub use sensei_connectors::ident::ansi as quote;

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// The expression turning source column `s` into target column `t`: the
/// column itself when the types agree, text parsed with its detected date
/// format for dates, else an exact Arrow cast.
pub fn expression(s: &ColumnFacts, t: &TargetColumn) -> String {
    expression_in(s, t, "")
}

/// [`expression`] with the column qualified (`source.`, `j1.`).
pub fn expression_in(s: &ColumnFacts, t: &TargetColumn, prefix: &str) -> String {
    let col = format!("{prefix}{}", quote(&s.name));
    if s.arrow_type == t.arrow_type {
        return col;
    }
    let text = s.arrow_type == "Utf8";
    if text && t.arrow_type == "Boolean" && matcher::boolean_like(&s.values) {
        // Y/N, T/F, yes/no, 1/0 flags; anything else becomes NULL, which
        // the checks of a NOT NULL target catch.
        return format!(
            "CASE WHEN upper(trim({col})) IN ('Y', 'YES', 'T', 'TRUE', '1') THEN true \
             WHEN upper(trim({col})) IN ('N', 'NO', 'F', 'FALSE', '0') THEN false END"
        );
    }
    match (&s.date_format, t.arrow_type.as_str()) {
        (Some(fmt), "Date32") if text => format!("to_date({col}, '{fmt}')"),
        _ => format!("arrow_cast({col}, '{}')", t.arrow_type),
    }
}

/// The value shapes and frequent values of a column's profile (empty without one).
pub fn value_evidence(
    profile: Option<&sensei_scout::profile::ColumnProfile>,
) -> (Vec<String>, Vec<String>) {
    profile
        .map(|p| {
            (
                p.patterns.iter().map(|(s, _)| s.clone()).collect(),
                p.top_values.iter().map(|(v, _)| v.clone()).collect(),
            )
        })
        .unwrap_or_default()
}

/// The facts of a manifest table's columns (PII kinds and date formats from its profile).
pub fn source_facts(t: &sensei_contracts::artifacts::ManifestTable) -> Vec<ColumnFacts> {
    t.columns
        .iter()
        .map(|c| {
            let profile = t.profile.columns.iter().find(|p| p.column == c.name);
            ColumnFacts {
                name: c.name.clone(),
                arrow_type: c.arrow_type.clone(),
                key: c.primary_key > 0,
                pii: t
                    .profile
                    .pii
                    .get(&c.name)
                    .map(|flags| {
                        flags
                            .iter()
                            .filter_map(|f| serde_json::to_value(f.kind).ok())
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                date_format: profile.and_then(|p| p.date_format.clone()),
                shapes: value_evidence(profile).0,
                values: value_evidence(profile).1,
            }
        })
        .collect()
}

/// Column tokens with the table's own name tokens dropped (when anything is left).
fn column_tokens(d: &Dictionary, table: &str, column: &str) -> Vec<String> {
    let own = d.tokens(table);
    let all = d.tokens(column);
    let rest: Vec<String> = all.iter().filter(|t| !own.contains(t)).cloned().collect();
    if rest.is_empty() {
        all
    } else {
        rest
    }
}

struct PairPlan {
    source: usize,
    score: f64,
    columns: Vec<Option<(usize, matcher::Score)>>,
    scores: Vec<Vec<matcher::Score>>,
}

/// Every (target column, source column) score of a table pair.
pub fn score_matrix(
    d: &Dictionary,
    s_name: &str,
    s_cols: &[ColumnFacts],
    t: &TargetTable,
) -> Vec<Vec<matcher::Score>> {
    let t_facts: Vec<ColumnFacts> = t
        .columns
        .iter()
        .map(|c| ColumnFacts {
            name: c.name.clone(),
            arrow_type: c.arrow_type.clone(),
            key: t.primary_key.contains(&c.name),
            shapes: c.sample_shapes.clone(),
            values: c.sample_values.clone(),
            ..Default::default()
        })
        .collect();
    let s_tokens: Vec<(Vec<String>, Vec<String>)> = s_cols
        .iter()
        .map(|sc| (column_tokens(d, s_name, &sc.name), d.tokens(&sc.name)))
        .collect();
    let mut scores: Vec<Vec<matcher::Score>> = Vec::new();
    for tc in &t_facts {
        let (t_own, t_all) = (column_tokens(d, &t.name, &tc.name), d.tokens(&tc.name));
        let tn = matcher::Names {
            own: &t_own,
            all: &t_all,
        };
        scores.push(
            s_cols
                .iter()
                .zip(&s_tokens)
                .map(|(sc, (own, all))| {
                    let sn = matcher::Names { own, all };
                    matcher::score_names(sn, tn, sc, tc, &WEIGHTS)
                })
                .collect(),
        );
    }
    let table = matcher::name_similarity(&d.tokens(s_name), &d.tokens(&t.name));
    for row in &mut scores {
        for sc in row.iter_mut() {
            sc.table = table;
        }
        matcher::calibrate(row, &matcher::CALIBRATION);
    }
    scores
}

/// The best one-to-one choice for a table pair: its score (table name and
/// coverage) and, per target column, the chosen source column and its score.
pub fn match_pair(
    d: &Dictionary,
    s_name: &str,
    s_cols: &[ColumnFacts],
    t: &TargetTable,
) -> (f64, Vec<Option<(usize, matcher::Score)>>) {
    choose(d, s_name, t, &score_matrix(d, s_name, s_cols, t))
}

/// [`match_pair`] over an already computed [`score_matrix`].
pub fn choose(
    d: &Dictionary,
    s_name: &str,
    t: &TargetTable,
    scores: &[Vec<matcher::Score>],
) -> (f64, Vec<Option<(usize, matcher::Score)>>) {
    let matrix: Vec<Vec<f64>> = scores
        .iter()
        .map(|row| row.iter().map(|s| s.confidence).collect())
        .collect();
    let chosen = matcher::assign(&matrix);
    let mut total = 0.0;
    let columns = chosen
        .iter()
        .enumerate()
        .map(|(ti, sj)| {
            // A column of the same name is always proposed (it may wait
            // for review); others need the threshold and evidence of their own.
            sj.filter(|&j| {
                let s = &scores[ti][j];
                matcher::exact(s) == 1.0
                    || (matrix[ti][j] >= MIN_PROPOSAL && matcher::has_evidence(s))
            })
            .map(|j| {
                total += matrix[ti][j];
                (j, scores[ti][j].clone())
            })
        })
        .collect();
    let table_name = matcher::name_similarity(&d.tokens(s_name), &d.tokens(&t.name));
    let coverage = total / t.columns.len().max(1) as f64;
    (0.3 * table_name + 0.7 * coverage, columns)
}

/// Confidence of a derived column (a rule, not a match: it waits for review
/// at the default threshold).
pub const DERIVED_CONFIDENCE: f64 = 0.85;

/// A derivation: the expression, the source columns read and the reason.
type Derivation = (String, Vec<String>, String);

/// Per target column of `t`, the derivation from several source columns
/// when no single one serves it: a full name joined from first and last
/// names, or a first or last name split from a full name. The source
/// columns are tokenised once for the whole table.
fn derivations(
    d: &Dictionary,
    s_name: &str,
    s_cols: &[ColumnFacts],
    t: &TargetTable,
    prefix: &str,
) -> Vec<Option<Derivation>> {
    let s_tokens: Vec<Vec<String>> = s_cols
        .iter()
        .map(|c| column_tokens(d, s_name, &c.name))
        .collect();
    let text = |j: &usize| s_cols[*j].arrow_type == "Utf8";
    let has = |j: usize, w: &str| s_tokens[j].iter().any(|x| x == w);
    let first = (0..s_cols.len())
        .filter(text)
        .find(|&j| has(j, "first") && has(j, "name"));
    let last = (0..s_cols.len())
        .filter(text)
        .find(|&j| has(j, "last") && has(j, "name"));
    let full = (0..s_cols.len()).filter(text).find(|&j| {
        has(j, "name")
            && !has(j, "first")
            && !has(j, "last")
            && (has(j, "full") || s_cols[j].pii.iter().any(|k| k == "person_name"))
    });
    t.columns
        .iter()
        .map(|tc| {
            if tc.arrow_type != "Utf8" {
                return None;
            }
            let toks = column_tokens(d, &t.name, &tc.name);
            let is = |w: &str| toks.iter().any(|x| x == w);
            if !is("name") {
                return None;
            }
            if is("full") {
                if let (Some(f), Some(l)) = (first, last) {
                    let (f, l) = (&s_cols[f], &s_cols[l]);
                    return Some((
                        format!(
                            "concat_ws(' ', {prefix}{}, {prefix}{})",
                            quote(&f.name),
                            quote(&l.name)
                        ),
                        vec![f.name.clone(), l.name.clone()],
                        format!("derived: {} and {} joined with a space", f.name, l.name),
                    ));
                }
            }
            let full = &s_cols[full?];
            let col = format!("{prefix}{}", quote(&full.name));
            if is("first") && first.is_none() {
                return Some((
                    format!("split_part({col}, ' ', 1)"),
                    vec![full.name.clone()],
                    format!("derived: the first word of {}", full.name),
                ));
            }
            if is("last") && last.is_none() {
                return Some((
                    // Trimming the first word's characters from the left stops at the
                    // first space (the word holds none); then the space; "" is NULL.
                    format!("NULLIF(ltrim(ltrim({col}, split_part({col}, ' ', 1))), '')"),
                    vec![full.name.clone()],
                    format!("derived: {} after its first space", full.name),
                ));
            }
            None
        })
        .collect()
}

/// Entries (`table.column`) that would write NULL into a target column
/// that is NOT NULL without a default: rejected, or with no source at all.
/// The migration must not start its Workers while any remains.
pub fn nulls_into_not_null(spec: &MappingSpec, targets: &[TargetTable]) -> Vec<String> {
    let mut out = Vec::new();
    for tm in &spec.tables {
        let Some(t) = targets.iter().find(|t| t.name == tm.target) else {
            continue;
        };
        for c in &tm.columns {
            let Some(tc) = t.columns.iter().find(|tc| tc.name == c.target) else {
                continue;
            };
            // A rejected entry writes an explicit NULL, which no column
            // default replaces; an entry without source writes NULL when the
            // target has no default it can copy.
            let null = c.status == "rejected"
                || (c.sources.is_empty() && c.expression.starts_with("arrow_cast(NULL,"));
            if null && !tc.nullable {
                out.push(format!("{}.{}", tm.target, c.target));
            }
        }
    }
    out
}

/// A column default's constant (a number, a quoted string, TRUE, FALSE or
/// NULL, without PostgreSQL's `::type` cast) that the generated SQL can write
/// in every row; None for anything computed (`nextval(..)`, `now()`).
fn literal_default(d: &str) -> Option<&str> {
    let d = d.trim();
    // PostgreSQL writes constants with a cast: 'new'::order_status, (0)::numeric.
    let d = d.rsplit_once("::").map_or(d, |(v, _)| v.trim());
    let d = d.trim_start_matches('(').trim_end_matches(')').trim();
    let quoted = d.len() >= 2
        && d.starts_with('\'')
        && d.ends_with('\'')
        && !d[1..d.len() - 1].contains('\'');
    let constant = quoted
        || d.parse::<f64>().is_ok()
        || ["true", "false", "null"]
            .iter()
            .any(|k| d.eq_ignore_ascii_case(k));
    constant.then_some(d)
}

/// Candidates below this confidence are not worth a reviewer's time.
const MIN_ALTERNATIVE: f64 = 0.1;

/// The next best source columns for a target column (up to 3, best first,
/// ties by source order), the chosen one left out.
fn alternatives(
    scores: &[matcher::Score],
    s_cols: &[ColumnFacts],
    s_name: &str,
    tc: &TargetColumn,
    prefix: &str,
    chosen: &[String],
) -> Vec<sensei_contracts::artifacts::Candidate> {
    let mut ranked: Vec<(usize, f64)> = scores
        .iter()
        .enumerate()
        .map(|(j, sc)| (j, round4(sc.confidence)))
        .filter(|(j, c)| {
            *c >= MIN_ALTERNATIVE
                && matcher::has_evidence(&scores[*j])
                && !chosen.contains(&format!("{s_name}.{}", s_cols[*j].name))
        })
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
        .into_iter()
        .take(3)
        .map(|(j, confidence)| sensei_contracts::artifacts::Candidate {
            expression: expression_in(&s_cols[j], tc, prefix),
            sources: vec![format!("{s_name}.{}", s_cols[j].name)],
            confidence,
        })
        .collect()
}

/// The status of a proposed entry: `auto` at or above the threshold.
fn status_for(confidence: f64, threshold: f64) -> &'static str {
    if confidence >= threshold {
        "auto"
    } else {
        "review"
    }
}

/// The source table that serves target table `t` best, if any serves it:
/// by names and columns (score), or because its columns explain at least
/// one of the target's however the tables are called (an item master for
/// `product`): the sum of the chosen columns' probabilities.
fn best_source(
    dictionary: &Dictionary,
    manifest: &Manifest,
    facts: &[Vec<ColumnFacts>],
    t: &TargetTable,
) -> Option<PairPlan> {
    let mut best: Option<PairPlan> = None;
    for (si, s) in manifest.tables.iter().enumerate() {
        let scores = score_matrix(dictionary, &s.name, &facts[si], t);
        let (mut score, columns) = choose(dictionary, &s.name, t, &scores);
        // Columns this source can derive count towards its coverage too.
        let derivable = derivations(dictionary, &s.name, &facts[si], t, "");
        for ti in 0..t.columns.len() {
            let weak = columns[ti].as_ref().is_none_or(|(_, sc)| sc.name < 0.99);
            if weak && derivable[ti].is_some() {
                let had = columns[ti].as_ref().map_or(0.0, |(_, sc)| sc.confidence);
                score += 0.7 * (DERIVED_CONFIDENCE - had).max(0.0) / t.columns.len() as f64;
            }
        }
        if best.as_ref().is_none_or(|b| score > b.score) {
            best = Some(PairPlan {
                source: si,
                score,
                columns,
                scores,
            });
        }
    }
    best.filter(|b| {
        let explained: f64 = b.columns.iter().flatten().map(|(_, s)| s.confidence).sum();
        b.score >= 0.15 || explained >= 1.0
    })
}

/// A target column matched in a joined table: (join, table, column, score).
type JoinedColumn = Option<(usize, usize, usize, matcher::Score)>;

/// Columns source table `si` lacks (`open`: neither chosen nor derivable),
/// taken from tables its foreign keys reference, joined on their whole
/// primary key so no row is repeated.
fn foreign_key_joins(
    dictionary: &Dictionary,
    manifest: &Manifest,
    facts: &[Vec<ColumnFacts>],
    t: &TargetTable,
    si: usize,
    open: impl Fn(usize) -> bool,
) -> (Vec<Join>, Vec<JoinedColumn>) {
    let mut joins: Vec<Join> = Vec::new();
    let mut joined: Vec<JoinedColumn> = vec![None; t.columns.len()];
    let fks = manifest
        .catalog
        .tables
        .get(&manifest.tables[si].name)
        .map(|c| c.foreign_keys.clone())
        .unwrap_or_default();
    for fk in fks {
        let Some(ri) = manifest.tables.iter().position(|m| m.name == fk.references) else {
            continue;
        };
        let r = &manifest.tables[ri];
        if ri == si || r.primary_key.is_empty() || r.primary_key != fk.referenced_columns {
            continue;
        }
        let open: Vec<usize> = (0..t.columns.len())
            .filter(|&ti| open(ti) && joined[ti].is_none())
            .collect();
        if open.is_empty() {
            continue;
        }
        // The open columns as if they belonged to the referenced
        // table: the foreign key says that is where they live, so
        // its name is the table evidence (`customer_email` along
        // a key to `customers` is that customer's `email`).
        let sub = TargetTable {
            name: r.name.clone(),
            columns: open.iter().map(|&ti| t.columns[ti].clone()).collect(),
            ..t.clone()
        };
        let (_, picks) = match_pair(dictionary, &r.name, &facts[ri], &sub);
        let mut any = false;
        for (k, pick) in picks.into_iter().enumerate() {
            if let Some((rj, score)) = pick.filter(|(_, sc)| sc.confidence >= 0.5) {
                joined[open[k]] = Some((joins.len(), ri, rj, score));
                any = true;
            }
        }
        if any {
            joins.push(Join {
                alias: format!("j{}", joins.len() + 1),
                table: r.name.clone(),
                on: fk
                    .columns
                    .iter()
                    .cloned()
                    .zip(fk.referenced_columns.iter().cloned())
                    .collect(),
            });
        }
    }
    (joins, joined)
}

/// The entry of a target column no source column serves: the target's
/// constant default, or NULL; it waits for review.
fn unmatched(t: &TargetTable, tc: &TargetColumn) -> ColumnMapping {
    // Only a constant default can be copied into every row;
    // `nextval(..)`, `now()` belong to the target.
    let default = tc.default.as_deref().and_then(literal_default);
    let mut reasons = vec![format!(
        "no candidate: no source column scored {MIN_PROPOSAL:.2} or more: {}",
        if default.is_some() {
            "the target default"
        } else {
            "NULL"
        }
    )];
    if !tc.nullable && default.is_none() {
        // The plan goes on; the migration stops before the
        // Workers run unless a person maps it.
        reasons.push(format!(
            "the target column is NOT NULL without a default: give it an expression (sensei review --expression {}.{}=SQL), a default in the target schema, or drop the constraint",
            t.name, tc.name
        ));
    }
    let expression = match default {
        Some(d) => format!("arrow_cast({d}, '{}')", tc.arrow_type),
        None => format!("arrow_cast(NULL, '{}')", tc.arrow_type),
    };
    ColumnMapping::proposed(&tc.name, expression, Vec::new(), 0.0, "review", reasons)
}

/// Plans one target table: its best source, columns chosen, derived or
/// joined, each with its alternatives.
fn plan_table(
    manifest: &Manifest,
    facts: &[Vec<ColumnFacts>],
    t: &TargetTable,
    dictionary: &Dictionary,
    threshold: f64,
    policy: &PiiPolicy,
) -> TableMapping {
    let best = best_source(dictionary, manifest, facts, t);
    let source = best.as_ref().map(|b| &manifest.tables[b.source]);
    let si = best.as_ref().map(|b| b.source).unwrap_or(0);
    let derivable = match source {
        Some(s) => derivations(dictionary, &s.name, &facts[si], t, ""),
        None => vec![None; t.columns.len()],
    };
    let mut chosen_all: Vec<Option<(usize, matcher::Score)>> = Vec::new();
    for (ti, derivation) in derivable.iter().enumerate() {
        let mut chosen = best.as_ref().and_then(|b| b.columns[ti].clone());
        // A derivation (a full name from first and last) beats a partial name match.
        if let Some((_, score)) = &chosen {
            if score.name < 0.99 && derivation.is_some() {
                chosen = None;
            }
        }
        chosen_all.push(chosen);
    }
    let (joins, joined) = match source {
        Some(_) => foreign_key_joins(dictionary, manifest, facts, t, si, |ti| {
            chosen_all[ti].is_none() && derivable[ti].is_none()
        }),
        None => (Vec::new(), vec![None; t.columns.len()]),
    };
    let prefix = if joins.is_empty() { "" } else { "source." };
    let derived_here = match source {
        Some(s) if !joins.is_empty() => derivations(dictionary, &s.name, &facts[si], t, prefix),
        _ => derivable.clone(),
    };
    let mut columns = Vec::new();
    for (ti, tc) in t.columns.iter().enumerate() {
        if let Some((ji, ri, rj, score)) = joined[ti].clone() {
            let rf = &facts[ri][rj];
            let confidence = round4(score.confidence);
            let mut reasons = score.reasons;
            reasons.push(format!(
                "joined from {} along {}",
                joins[ji].table,
                joins[ji]
                    .on
                    .iter()
                    .map(|(a, b)| format!("{a} = {b}"))
                    .collect::<Vec<_>>()
                    .join(" AND ")
            ));
            let mut c = ColumnMapping::proposed(
                &tc.name,
                expression_in(rf, tc, &format!("{}.", joins[ji].alias)),
                vec![format!("{}.{}", joins[ji].table, rf.name)],
                confidence,
                status_for(confidence, threshold),
                reasons,
            );
            apply_policy(policy, rf, tc, &mut c);
            columns.push(c);
            continue;
        }
        columns.push(match (chosen_all[ti].clone(), source) {
            (Some((sj, score)), Some(s)) => {
                let sf = &facts[si][sj];
                let confidence = round4(score.confidence);
                let mut c = ColumnMapping::proposed(
                    &tc.name,
                    expression_in(sf, tc, prefix),
                    vec![format!("{}.{}", s.name, s.columns[sj].name)],
                    confidence,
                    status_for(confidence, threshold),
                    score.reasons,
                );
                apply_policy(policy, sf, tc, &mut c);
                c
            }
            (None, Some(s)) if derived_here[ti].is_some() => {
                let (expression, used, reason) = derived_here[ti].clone().unwrap_or_default();
                ColumnMapping::proposed(
                    &tc.name,
                    expression,
                    used.iter().map(|c| format!("{}.{c}", s.name)).collect(),
                    DERIVED_CONFIDENCE,
                    status_for(DERIVED_CONFIDENCE, threshold),
                    vec![reason],
                )
            }
            _ => unmatched(t, tc),
        });
    }
    if let (Some(s), Some(b)) = (source, &best) {
        for ((c, tc), row) in columns.iter_mut().zip(&t.columns).zip(&b.scores) {
            c.alternatives = alternatives(row, &facts[si], &s.name, tc, prefix, &c.sources);
        }
    }
    TableMapping {
        target: t.name.clone(),
        sources: source.map(|s| vec![s.name.clone()]).unwrap_or_default(),
        columns,
        primary_key: t.primary_key.clone(),
        joins,
    }
}

/// Plans the mapping of `manifest`'s tables onto `targets`.
pub fn plan(
    migration_id: &str,
    manifest: &Manifest,
    targets: &[TargetTable],
    dictionary: &Dictionary,
    threshold: f64,
    policy: &PiiPolicy,
) -> Result<MappingSpec> {
    let facts: Vec<Vec<ColumnFacts>> = manifest.tables.iter().map(source_facts).collect();
    // By name: the same schema read from a live database or from any dump
    // of it gives the same spec.
    let mut targets: Vec<&TargetTable> = targets.iter().collect();
    targets.sort_by(|a, b| a.name.cmp(&b.name));
    let tables: Vec<TableMapping> = targets
        .into_iter()
        .map(|t| plan_table(manifest, &facts, t, dictionary, threshold, policy))
        .collect();
    let used: Vec<&String> = tables.iter().flat_map(|t| &t.sources).collect();
    let unmapped_sources = manifest
        .tables
        .iter()
        .map(|t| t.name.clone())
        .filter(|n| !used.contains(&n))
        .collect();
    Ok(MappingSpec {
        version: ARTIFACT_VERSION,
        migration_id: migration_id.to_string(),
        auto_approval_threshold: threshold,
        approved_all: false,
        unmapped_sources,
        tables,
    })
}

/// The DataFusion query of one target table: every column's expression over
/// the table `source`, in target order, rejected entries as NULL. The same
/// mapping gives the same bytes.
pub fn sql_for(t: &TableMapping) -> String {
    let cols: Vec<String> = t
        .columns
        .iter()
        .map(|c| {
            let expr = if c.status == "rejected" {
                "NULL".to_string()
            } else {
                c.expression.clone()
            };
            format!("  {expr} AS {}", quote(&c.target))
        })
        .collect();
    let mut from = String::from("FROM source");
    for j in &t.joins {
        let on: Vec<String> =
            j.on.iter()
                .map(|(a, b)| format!("source.{} = {}.{}", quote(a), j.alias, quote(b)))
                .collect();
        from.push_str(&format!("\nLEFT JOIN {} ON {}", j.alias, on.join(" AND ")));
    }
    format!("SELECT\n{}\n{from}\n", cols.join(",\n"))
}

/// Entries waiting for a person, as `table.column`.
pub fn pending(spec: &MappingSpec) -> Vec<String> {
    spec.tables
        .iter()
        .flat_map(|t| {
            t.columns
                .iter()
                .filter(|c| c.status == "review")
                .map(move |c| format!("{}.{}", t.target, c.target))
        })
        .collect()
}

/// The mapping as a plain table for a terminal.
pub fn render(spec: &MappingSpec) -> String {
    let mut rows = vec![[
        "target".to_string(),
        "source".to_string(),
        "expression".to_string(),
        "confidence".to_string(),
        "status".to_string(),
    ]];
    for t in &spec.tables {
        for c in &t.columns {
            let src = if c.sources.is_empty() {
                "-".to_string()
            } else {
                c.sources.join(", ")
            };
            rows.push([
                format!("{}.{}", t.target, c.target),
                src,
                c.expression.clone(),
                format!("{:.2}", c.confidence),
                c.status.clone(),
            ]);
        }
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    if !spec.unmapped_sources.is_empty() {
        out.push_str(&format!(
            "source tables no target table takes rows from (not migrated): {}\n",
            spec.unmapped_sources.join(", ")
        ));
    }
    let mut waiting = Vec::new();
    for t in &spec.tables {
        for c in t.columns.iter().filter(|c| c.status == "review") {
            let mut lines = vec![format!(
                "{}.{}: {}",
                t.target,
                c.target,
                c.reasons.join("; ")
            )];
            for a in &c.alternatives {
                lines.push(format!(
                    "    or {} ({:.2}): {}",
                    a.sources.join(", "),
                    a.confidence,
                    a.expression
                ));
            }
            if c.alternatives.is_empty() {
                lines.push("    no other candidate".into());
            }
            waiting.push(lines.join("\n"));
        }
    }
    for (n, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if n == 0 {
            out.push_str(
                &widths
                    .iter()
                    .map(|w| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .join("  "),
            );
            out.push('\n');
        }
    }
    if !waiting.is_empty() {
        out.push_str("\nwaiting for review, with the alternatives weighed:\n");
        for w in waiting {
            out.push_str(&w);
            out.push('\n');
        }
    }
    out
}

/// Source columns by table, for validating a hand-edited spec.
pub fn source_columns(manifest: &Manifest) -> BTreeMap<String, Vec<String>> {
    manifest
        .tables
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.columns.iter().map(|c| c.name.clone()).collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::PiiPolicy;

    /// Between tables whose names share nothing (a study's table and the
    /// dictionary it is harmonised into), a column of the same name fell
    /// below the proposal threshold and the entry got no candidate at all.
    /// It is proposed now, with its (low) confidence: it waits for review.
    #[test]
    fn a_column_of_the_same_name_is_proposed_between_unlike_tables() {
        use super::matcher::{ColumnFacts, Dictionary};
        let targets = super::ddl::parse(
            "CREATE TABLE gdc (bmi REAL, vital_status TEXT, days_to_birth INTEGER, primary_diagnosis TEXT);",
            "t.sql",
        )
        .unwrap();
        let fact = |name: &str, arrow_type: &str| ColumnFacts {
            name: name.into(),
            arrow_type: arrow_type.into(),
            ..Default::default()
        };
        let source = [
            fact("bmi", "Float64"),
            fact("bmi_at_baseline", "Float64"),
            fact("tumor_site", "Utf8"),
        ];
        let d = Dictionary::default();
        let scores = super::score_matrix(&d, "cao", &source, &targets[0]);
        assert!(
            scores[0][0].confidence < super::MIN_PROPOSAL,
            "the case this test is about: {}",
            scores[0][0].confidence
        );
        let (_, chosen) = super::choose(&d, "cao", &targets[0], &scores);
        let (j, score) = chosen[0].as_ref().expect("bmi is proposed for bmi");
        assert_eq!(*j, 0);
        assert!(score.confidence < 0.92, "and waits for review");
    }

    #[test]
    fn a_policy_for_an_unknown_kind_is_refused_with_the_kinds() {
        assert!(PiiPolicy::parse("keep", "email=mask, vin=drop, national_id=hash").is_ok());
        let err = PiiPolicy::parse("keep", "emial=mask")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("transformation.pii_policy_by_kind: "),
            "{err}"
        );
        assert!(err.contains("\"emial\" is not a PII kind"), "{err}");
        assert!(
            err.contains("email") && err.contains("driving_licence"),
            "{err}"
        );
        assert!(PiiPolicy::parse("keep", "email=shred").is_err());
    }
}
