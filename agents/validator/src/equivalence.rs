//! Row-level equivalence: every transformed row against the row the mapping
//! should have produced from its source row, paired by the target's primary
//! key (the whole row where there is none). Counts missing, extra and
//! changed rows and keeps the first differences with their keys. Cells of a
//! changed row are compared type-aware: numbers within a relative tolerance,
//! timestamps within a time tolerance, everything else exactly (by the
//! canonical encoding of [`sensei_contracts::digest`]); a row whose only differences are
//! within tolerance counts as equal, and is counted as such. A difference
//! that lies within the configured band around its tolerance (just inside or
//! just beyond it) cannot be decided: the row counts as doubtful, and the
//! check is INCONCLUSIVE rather than PASS or FAIL.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float32Type, Float64Type, SchemaRef, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use sensei_contracts::digest::encode_cell;

/// Tolerances of the comparison.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Tolerance {
    /// Relative tolerance of floating-point and decimal values (|a-b| ≤ t·max(1,|a|)).
    pub numeric: f64,
    /// Tolerance of timestamps, microseconds.
    pub timestamp_us: i64,
    /// How strings compare: `exact`, `normalized` (Unicode NFC, trimmed,
    /// case-folded, whitespace collapsed) or `semantic` (normalized, then the
    /// declared equivalences: `Y` = `yes` = `true`).
    #[serde(default)]
    pub string_mode: String,
    /// Per-column modes overriding `string_mode` (column name → mode).
    #[serde(default)]
    pub string_modes: std::collections::BTreeMap<String, String>,
    /// Classes of equivalent values for the semantic mode (compared normalized).
    #[serde(default)]
    pub equivalences: Vec<Vec<String>>,
    /// The undecidable band, as a fraction of a tolerance: a difference `d`
    /// with `|d - tolerance| <= band * tolerance` is doubtful (0: none).
    #[serde(default)]
    pub band: f64,
}

pub use sensei_connectors::readback::conform;

/// How two cells compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellMatch {
    /// Equal in the canonical encoding.
    Exact,
    /// Different, but within tolerance.
    Within,
    /// Within the band around the tolerance: neither clearly within nor beyond.
    Doubtful,
    /// Different beyond tolerance.
    Differs,
}

impl Tolerance {
    /// The tolerances `[verification]` configures (per-column string modes,
    /// which are per table, left to the caller).
    pub fn from_config(v: &sensei_runtime::config::VerificationSection) -> Tolerance {
        Tolerance {
            numeric: v.numeric_tolerance,
            timestamp_us: (v.timestamp_tolerance_ms as i64).saturating_mul(1000),
            string_mode: v.string_mode.clone(),
            string_modes: Default::default(),
            equivalences: v
                .equivalences
                .split(',')
                .map(|class| {
                    class
                        .split('|')
                        .map(|x| x.trim().to_string())
                        .filter(|x| !x.is_empty())
                        .collect::<Vec<_>>()
                })
                .filter(|c| c.len() > 1)
                .collect(),
            band: v.inconclusive_band,
        }
    }

    /// Classifies a difference `d >= 0` against the limit `limit`.
    fn judge(&self, d: f64, limit: f64) -> CellMatch {
        if self.band > 0.0 && limit > 0.0 && (d - limit).abs() <= self.band * limit {
            CellMatch::Doubtful
        } else if d <= limit {
            CellMatch::Within
        } else {
            CellMatch::Differs
        }
    }
}

/// The normalized form of a string: NFC, trimmed, lower-cased, runs of
/// whitespace as one space.
pub fn normalize(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let nfc: String = s.nfc().collect();
    nfc.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

impl Tolerance {
    fn strings_match(&self, column: &str, a: &str, b: &str) -> bool {
        let mode = self
            .string_modes
            .get(column)
            .map(String::as_str)
            .unwrap_or(self.string_mode.as_str());
        match mode {
            "normalized" => normalize(a) == normalize(b),
            "semantic" => {
                let (x, y) = (normalize(a), normalize(b));
                let class = |v: &str| {
                    self.equivalences
                        .iter()
                        .position(|c| c.iter().any(|e| normalize(e) == v))
                };
                x == y || class(&x).is_some_and(|c| class(&y) == Some(c))
            }
            _ => false,
        }
    }
}

/// The outcome of one comparison.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RowDiff {
    /// Rows compared (expected side).
    pub expected: u64,
    /// Expected rows with no transformed row.
    pub missing: u64,
    /// Transformed rows with no expected row (duplicates included).
    pub extra: u64,
    /// Rows whose values differ beyond tolerance.
    pub changed: u64,
    /// Rows that differ only within tolerance.
    pub within_tolerance: u64,
    /// Rows whose differences lie in the band around a tolerance: undecided.
    #[serde(default)]
    pub doubtful: u64,
    /// The first differences, each naming the key.
    pub examples: Vec<String>,
}

impl RowDiff {
    /// Whether the two sides hold the same rows (within tolerance).
    pub fn equal(&self) -> bool {
        self.missing == 0 && self.extra == 0 && self.changed == 0
    }

    /// `pass`, `fail`, or `inconclusive` (no difference beyond tolerance, but
    /// some that cannot be decided).
    pub fn verdict(&self) -> &'static str {
        if !self.equal() {
            "fail"
        } else if self.doubtful > 0 {
            "inconclusive"
        } else {
            "pass"
        }
    }

    /// Adds another partition's outcome.
    pub fn merge(&mut self, o: &RowDiff) {
        self.expected += o.expected;
        self.missing += o.missing;
        self.extra += o.extra;
        self.changed += o.changed;
        self.within_tolerance += o.within_tolerance;
        self.doubtful += o.doubtful;
        for e in &o.examples {
            if self.examples.len() < MAX_EXAMPLES {
                self.examples.push(e.clone());
            }
        }
    }
}

const MAX_EXAMPLES: usize = 5;

fn cell_text(a: &ArrayRef, row: usize) -> String {
    if a.is_null(row) {
        return "NULL".into();
    }
    let opts = arrow::util::display::FormatOptions::default();
    arrow::util::display::ArrayFormatter::try_new(a.as_ref(), &opts)
        .map(|f| f.value(row).to_string())
        .unwrap_or_default()
}

fn encode(batch: &RecordBatch, cols: &[usize], row: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for &c in cols {
        encode_cell(batch.column(c), row, &mut out);
    }
    out
}

fn as_f64(a: &ArrayRef, row: usize) -> Option<f64> {
    match a.data_type() {
        DataType::Float64 => Some(a.as_primitive::<Float64Type>().value(row)),
        DataType::Float32 => Some(a.as_primitive::<Float32Type>().value(row) as f64),
        DataType::Decimal128(_, s) => Some(
            a.as_primitive::<arrow::datatypes::Decimal128Type>()
                .value(row) as f64
                / 10f64.powi(*s as i32),
        ),
        _ => None,
    }
}

/// How two cells compare, type-aware.
pub fn cells_match(
    column: &str,
    a: &ArrayRef,
    ar: usize,
    b: &ArrayRef,
    br: usize,
    t: &Tolerance,
) -> CellMatch {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    encode_cell(a, ar, &mut x);
    encode_cell(b, br, &mut y);
    if x == y {
        return CellMatch::Exact;
    }
    if a.is_null(ar) || b.is_null(br) || a.data_type() != b.data_type() {
        return CellMatch::Differs;
    }
    if let (Some(p), Some(q)) = (as_f64(a, ar), as_f64(b, br)) {
        return t.judge((p - q).abs(), t.numeric * p.abs().max(1.0));
    }
    if let (Some(x), Some(y)) = (a.as_string_opt::<i32>(), b.as_string_opt::<i32>()) {
        return if t.strings_match(column, x.value(ar), y.value(br)) {
            CellMatch::Within
        } else {
            CellMatch::Differs
        };
    }
    if let (DataType::Timestamp(..), DataType::Timestamp(..)) = (a.data_type(), b.data_type()) {
        let p = a.as_primitive::<TimestampMicrosecondType>().value(ar);
        let q = b.as_primitive::<TimestampMicrosecondType>().value(br);
        return t.judge((p - q).unsigned_abs() as f64, t.timestamp_us as f64);
    }
    CellMatch::Differs
}

/// How differences name the two sides.
#[derive(Debug, Clone, Copy)]
pub struct Sides {
    /// A row only on the expected side.
    pub missing: &'static str,
    /// A row only on the actual side.
    pub extra: &'static str,
    /// A changed cell: `column {name} is {actual} {changed} {expected}`.
    pub changed: &'static str,
}

/// The Validator's words: expected rows against transformed ones.
pub const VALIDATOR: Sides = Sides {
    missing: "missing from the transformed rows",
    extra: "a row the mapping does not produce (extra or duplicated)",
    changed: "where the mapping gives",
};

/// Compares expected and actual rows of one partition.
pub fn compare(
    expected: &[RecordBatch],
    actual: &[RecordBatch],
    key: &[String],
    tolerance: &Tolerance,
) -> RowDiff {
    compare_sides(expected, actual, key, tolerance, &VALIDATOR)
}

/// The expected rows of one key, taken as actual rows pair with them.
enum Slot {
    One(usize, usize),
    Many(Vec<(usize, usize)>),
}

impl Slot {
    fn push(&mut self, row: (usize, usize)) {
        match self {
            Slot::One(b, r) => *self = Slot::Many(vec![(*b, *r), row]),
            Slot::Many(v) => v.push(row),
        }
    }

    /// The last row not yet paired.
    fn pop(&mut self) -> Option<(usize, usize)> {
        match self {
            Slot::One(b, r) => {
                let row = (*b, *r);
                *self = Slot::Many(Vec::new());
                Some(row)
            }
            Slot::Many(v) => v.pop(),
        }
    }

    /// The rows never paired.
    fn rest(self) -> Vec<(usize, usize)> {
        match self {
            Slot::One(b, r) => vec![(b, r)],
            Slot::Many(v) => v,
        }
    }
}

/// How an actual row compares with the expected row paired with it.
enum RowMatch {
    /// Every cell equal.
    Exact,
    /// Every cell equal or within tolerance.
    Within,
    /// A cell lies in the undecidable band around its tolerance (why).
    Doubtful(String),
    /// A cell differs, or a column is missing (why).
    Changed(String),
}

/// Compares expected row `er` of `e` (in `schema`'s columns) with actual
/// row `r` of `b` (`at`: each expected column's index in `b`), cell by
/// cell, type-aware.
fn compare_row(
    (schema, e, er): (&SchemaRef, &RecordBatch, usize),
    (b, r, at): (&RecordBatch, usize, &[Option<usize>]),
    tolerance: &Tolerance,
    sides: &Sides,
) -> RowMatch {
    let mut exact = true;
    let mut doubt: Option<String> = None;
    for (c, a) in at.iter().enumerate() {
        let name = schema.field(c).name();
        let Some(ac) = *a else {
            return RowMatch::Changed(format!("column {name} is missing"));
        };
        let shown = || {
            format!(
                "column {name} is {} {} {}",
                cell_text(b.column(ac), r),
                sides.changed,
                cell_text(e.column(c), er)
            )
        };
        match cells_match(name, e.column(c), er, b.column(ac), r, tolerance) {
            CellMatch::Exact => {}
            CellMatch::Within => exact = false,
            CellMatch::Doubtful => {
                exact = false;
                doubt.get_or_insert_with(|| {
                    format!(
                        "{}: the difference lies within the undecidable band around its tolerance",
                        shown()
                    )
                });
            }
            CellMatch::Differs => return RowMatch::Changed(shown()),
        }
    }
    match doubt {
        Some(why) => RowMatch::Doubtful(why),
        None if !exact => RowMatch::Within,
        None => RowMatch::Exact,
    }
}

/// The difference noted for `rows` actual rows that lack key columns.
fn keyless(
    schema: &SchemaRef,
    key_cols: &[usize],
    at: &[Option<usize>],
    rows: usize,
    sides: &Sides,
) -> String {
    let lacking: Vec<&str> = key_cols
        .iter()
        .filter(|&&c| at[c].is_none())
        .map(|&c| schema.field(c).name().as_str())
        .collect();
    format!(
        "{rows} rows lack the key column(s) {}: {}",
        lacking.join(", "),
        sides.extra
    )
}

/// The number of rows when both sides hold the same rows in the same order
/// (the usual case: a partition and its transformation, both in key
/// order), found column by column with Arrow's vectorised comparison over
/// aligned slices of the two sides' batches (no copy) instead of pairing
/// rows by key; None when they may differ in any way (other row counts,
/// types or order, a value unequal bit for bit): the caller then pairs by
/// key and compares within tolerances.
fn identical_in_order(
    expected: &[RecordBatch],
    actual: &[RecordBatch],
    schema: &SchemaRef,
) -> Option<u64> {
    let rows = |side: &[RecordBatch]| side.iter().map(|b| b.num_rows()).sum::<usize>();
    let n = rows(expected);
    if n == 0 || n != rows(actual) {
        return None;
    }
    // The expected columns' positions on the transformed side, by name.
    let theirs = actual.first()?.schema();
    let columns: Vec<usize> = schema
        .fields()
        .iter()
        .map(|f| theirs.index_of(f.name()).ok())
        .collect::<Option<_>>()?;
    let (mut i, mut at_i, mut j, mut at_j) = (0, 0, 0, 0);
    while i < expected.len() && j < actual.len() {
        let (e, a) = (&expected[i], &actual[j]);
        if e.num_columns() != columns.len() || a.schema() != theirs {
            return None;
        }
        let len = (e.num_rows() - at_i).min(a.num_rows() - at_j);
        for (x, &c) in e.columns().iter().zip(&columns) {
            let y = a.column(c);
            if x.data_type() != y.data_type() {
                return None;
            }
            let same = arrow::compute::kernels::cmp::not_distinct(
                &x.slice(at_i, len),
                &y.slice(at_j, len),
            )
            .ok()?;
            if same.true_count() != len {
                return None;
            }
        }
        (at_i, at_j) = (at_i + len, at_j + len);
        if at_i == e.num_rows() {
            (i, at_i) = (i + 1, 0);
        }
        if at_j == a.num_rows() {
            (j, at_j) = (j + 1, 0);
        }
    }
    Some(n as u64)
}

/// The expected rows by the encoding of their `key_cols`: most keys hold
/// one row, a repeated key a list.
fn by_key(expected: &[RecordBatch], key_cols: &[usize]) -> HashMap<Vec<u8>, Slot> {
    let mut want: HashMap<Vec<u8>, Slot> =
        HashMap::with_capacity(expected.iter().map(|b| b.num_rows()).sum());
    for (bi, b) in expected.iter().enumerate() {
        for r in 0..b.num_rows() {
            want.entry(encode(b, key_cols, r))
                .and_modify(|s| s.push((bi, r)))
                .or_insert(Slot::One(bi, r));
        }
    }
    want
}

/// [`compare`], differences worded with `sides`.
pub fn compare_sides(
    expected: &[RecordBatch],
    actual: &[RecordBatch],
    key: &[String],
    tolerance: &Tolerance,
    sides: &Sides,
) -> RowDiff {
    let mut diff = RowDiff::default();
    let Some(schema) = expected.first().or(actual.first()).map(|b| b.schema()) else {
        return diff;
    };
    if let Some(rows) = identical_in_order(expected, actual, &schema) {
        diff.expected += rows;
        return diff;
    }
    let all: Vec<usize> = (0..schema.fields().len()).collect();
    let mut key_cols: Vec<usize> = key.iter().filter_map(|k| schema.index_of(k).ok()).collect();
    if key_cols.len() != key.len() || key_cols.is_empty() {
        key_cols = all.clone();
    }
    // The key of an expected row (`at`: the key's columns in an actual batch).
    let show_key_at = |b: &RecordBatch, row: usize, at: &[usize]| -> String {
        key_cols
            .iter()
            .zip(at)
            .map(|(&c, &i)| format!("{}={}", schema.field(c).name(), cell_text(b.column(i), row)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let show_key = |b: &RecordBatch, row: usize| show_key_at(b, row, &key_cols);
    let mut want = by_key(expected, &key_cols);
    diff.expected += expected.iter().map(|b| b.num_rows() as u64).sum::<u64>();
    let note = |diff: &mut RowDiff, s: String| {
        if diff.examples.len() < MAX_EXAMPLES {
            diff.examples.push(s);
        }
    };
    let (mut kb, mut eb, mut ab) = (Vec::new(), Vec::new(), Vec::new());
    for b in actual {
        // The expected columns in this batch, by name (None: missing here).
        let bs = b.schema();
        let at: Vec<Option<usize>> = all
            .iter()
            .map(|&c| bs.index_of(schema.field(c).name()).ok())
            .collect();
        let Some(key_at) = key_cols
            .iter()
            .map(|&c| at[c])
            .collect::<Option<Vec<usize>>>()
        else {
            // Rows without their key cannot be paired with any expected row.
            diff.extra += b.num_rows() as u64;
            note(
                &mut diff,
                keyless(&schema, &key_cols, &at, b.num_rows(), sides),
            );
            continue;
        };
        let complete = at.iter().all(Option::is_some);
        for r in 0..b.num_rows() {
            kb.clear();
            for &c in &key_at {
                encode_cell(b.column(c), r, &mut kb);
            }
            let Some((bi, er)) = want.get_mut(kb.as_slice()).and_then(Slot::pop) else {
                diff.extra += 1;
                note(
                    &mut diff,
                    format!("key {}: {}", show_key_at(b, r, &key_at), sides.extra),
                );
                continue;
            };
            let e = &expected[bi];
            // Most rows are equal byte for byte: one comparison of the whole row.
            if complete {
                eb.clear();
                ab.clear();
                for (&c, a) in all.iter().zip(&at) {
                    encode_cell(e.column(c), er, &mut eb);
                    encode_cell(b.column(a.unwrap_or(c)), r, &mut ab);
                }
                if eb == ab {
                    continue;
                }
            }
            match compare_row((&schema, e, er), (b, r, &at), tolerance, sides) {
                RowMatch::Exact => {}
                RowMatch::Within => diff.within_tolerance += 1,
                RowMatch::Doubtful(why) => {
                    diff.doubtful += 1;
                    note(
                        &mut diff,
                        format!("key {}: {why}", show_key_at(b, r, &key_at)),
                    );
                }
                RowMatch::Changed(why) => {
                    diff.changed += 1;
                    note(
                        &mut diff,
                        format!("key {}: {why}", show_key_at(b, r, &key_at)),
                    );
                }
            }
        }
    }
    let mut left: Vec<(usize, usize)> = want.into_values().flat_map(Slot::rest).collect();
    left.sort();
    for (bi, r) in left {
        diff.missing += 1;
        note(
            &mut diff,
            format!("key {}: {}", show_key(&expected[bi], r), sides.missing),
        );
    }
    diff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_modes() {
        let t = Tolerance {
            string_mode: "semantic".into(),
            equivalences: vec![vec!["Y".into(), "yes".into(), "true".into()]],
            ..Tolerance::default()
        };
        assert!(t.strings_match("c", "  Caf\u{65}\u{301}   au lait ", "café AU  lait"));
        assert!(t.strings_match("c", "Y", "TRUE"));
        assert!(!t.strings_match("c", "Y", "no"));
        let exact = Tolerance::default();
        assert!(!exact.strings_match("c", "a", "A"));
        let per_column = Tolerance {
            string_modes: [("name".to_string(), "normalized".to_string())].into(),
            ..Tolerance::default()
        };
        assert!(per_column.strings_match("name", "Ann ", "ann"));
        assert!(!per_column.strings_match("other", "Ann ", "ann"));
    }

    fn people(ids: &[i64], names: &[Option<&str>], rows_per_batch: usize) -> Vec<RecordBatch> {
        let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("id", DataType::Int64, false),
            arrow::datatypes::Field::new("name", DataType::Utf8, true),
        ]));
        ids.chunks(rows_per_batch)
            .zip(names.chunks(rows_per_batch))
            .map(|(i, n)| {
                RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        std::sync::Arc::new(arrow::array::Int64Array::from(i.to_vec())),
                        std::sync::Arc::new(arrow::array::StringArray::from(n.to_vec())),
                    ],
                )
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn the_same_rows_in_the_same_order_are_equal_whatever_the_batches() {
        let ids = [1, 2, 3, 4, 5];
        let names = [Some("a"), None, Some("c"), Some("d"), Some("e")];
        let (ours, theirs) = (people(&ids, &names, 2), people(&ids, &names, 3));
        let schema = ours[0].schema();
        assert_eq!(identical_in_order(&ours, &theirs, &schema), Some(5));
        let key = ["id".to_string()];
        let d = compare(&ours, &theirs, &key, &Tolerance::default());
        assert!(d.equal() && d.expected == 5, "{d:?}");
        // Another order: not identical in order, still equal by key.
        let reordered = people(
            &[5, 4, 3, 2, 1],
            &[Some("e"), Some("d"), Some("c"), None, Some("a")],
            5,
        );
        assert_eq!(identical_in_order(&ours, &reordered, &schema), None);
        let d = compare(&ours, &reordered, &key, &Tolerance::default());
        assert!(d.equal() && d.expected == 5, "{d:?}");
        // A NULL where a value was: found, by key.
        let changed = people(&ids, &[Some("a"), None, None, Some("d"), Some("e")], 5);
        assert_eq!(identical_in_order(&ours, &changed, &schema), None);
        let d = compare(&ours, &changed, &key, &Tolerance::default());
        assert_eq!(d.changed, 1, "{d:?}");
        assert!(d.examples[0].contains("id=3"), "{d:?}");
    }
}
