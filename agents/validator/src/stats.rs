//! Statistical validation: per column, the distribution of the transformed
//! values against the expected ones. Numbers, dates and timestamps: the
//! two-sample Kolmogorov-Smirnov statistic D (the largest gap between the two
//! empirical distribution functions); text and booleans: the total variation
//! distance between the value frequencies. A column passes when the statistic
//! is at most its threshold (`verification.ks_threshold`,
//! `verification.tvd_threshold`).
//!
//! Large tables are compared on a [`KeySample`]: the rows whose key hashes
//! below a threshold, the same rows on both sides, at most
//! `verification.stats_sample_rows` of them.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::datatypes::{DataType, Float64Type};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

/// One column's comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnStat {
    /// Column.
    pub column: String,
    /// `ks` or `tvd`.
    pub test: String,
    /// The statistic, six decimals (text: signed payloads carry no floats).
    pub statistic: String,
    /// Whether it is within the threshold.
    pub pass: bool,
}

fn numbers(batches: &[RecordBatch], col: &str) -> Vec<f64> {
    let mut out = Vec::new();
    for b in batches {
        let Ok(i) = b.schema().index_of(col) else {
            continue;
        };
        let a = b.column(i);
        let a = match a.data_type() {
            DataType::Date32 => arrow::compute::cast(a, &DataType::Int32)
                .and_then(|x| arrow::compute::cast(&x, &DataType::Float64)),
            DataType::Timestamp(..) => arrow::compute::cast(a, &DataType::Int64)
                .and_then(|x| arrow::compute::cast(&x, &DataType::Float64)),
            _ => arrow::compute::cast(a, &DataType::Float64),
        };
        if let Ok(a) = a {
            let a = a.as_primitive::<Float64Type>();
            // NaN has no place in an order: left out (the row check sees it).
            out.extend(
                (0..a.len())
                    .filter(|&r| !a.is_null(r) && !a.value(r).is_nan())
                    .map(|r| a.value(r)),
            );
        }
    }
    out
}

/// The two-sample Kolmogorov-Smirnov statistic.
pub fn ks(mut x: Vec<f64>, mut y: Vec<f64>) -> f64 {
    if x.is_empty() || y.is_empty() {
        return if x.len() == y.len() { 0.0 } else { 1.0 };
    }
    x.sort_by(|a, b| a.total_cmp(b));
    y.sort_by(|a, b| a.total_cmp(b));
    let (n, m) = (x.len() as f64, y.len() as f64);
    let (mut i, mut j, mut d) = (0usize, 0usize, 0f64);
    while i < x.len() && j < y.len() {
        let v = if x[i].total_cmp(&y[j]).is_le() {
            x[i]
        } else {
            y[j]
        };
        while i < x.len() && x[i] <= v {
            i += 1;
        }
        while j < y.len() && y[j] <= v {
            j += 1;
        }
        d = d.max((i as f64 / n - j as f64 / m).abs());
    }
    d
}

fn frequencies(batches: &[RecordBatch], col: &str) -> (HashMap<String, f64>, f64) {
    let mut counts: HashMap<String, f64> = HashMap::new();
    let mut total = 0.0;
    let opts = arrow::util::display::FormatOptions::default().with_null("\u{0}NULL");
    for b in batches {
        let Ok(i) = b.schema().index_of(col) else {
            continue;
        };
        let Ok(f) = arrow::util::display::ArrayFormatter::try_new(b.column(i).as_ref(), &opts)
        else {
            continue;
        };
        for r in 0..b.num_rows() {
            *counts.entry(f.value(r).to_string()).or_default() += 1.0;
            total += 1.0;
        }
    }
    (counts, total)
}

/// The total variation distance between two frequency tables.
pub fn tvd(a: &(HashMap<String, f64>, f64), b: &(HashMap<String, f64>, f64)) -> f64 {
    if a.1 == 0.0 || b.1 == 0.0 {
        return if a.1 == b.1 { 0.0 } else { 1.0 };
    }
    let keys: std::collections::HashSet<&String> = a.0.keys().chain(b.0.keys()).collect();
    0.5 * keys
        .into_iter()
        .map(|k| (a.0.get(k).unwrap_or(&0.0) / a.1 - b.0.get(k).unwrap_or(&0.0) / b.1).abs())
        .sum::<f64>()
}

/// A sample of rows chosen by the hash of their key (the whole row without
/// one), so the expected and the transformed side keep the same rows:
/// identical tables give identical samples, and differences in a share of
/// the rows show in about that share of the sample.
#[derive(Debug, Clone)]
pub struct KeySample {
    key: Vec<String>,
    below: Option<u64>,
}

impl KeySample {
    /// About `max_rows` of a table of `rows` (every row when `max_rows` is 0
    /// or the table is smaller).
    pub fn new(key: &[String], rows: u64, max_rows: u64) -> Self {
        let below = (max_rows > 0 && rows > max_rows)
            .then(|| (max_rows as f64 / rows as f64 * u64::MAX as f64) as u64);
        KeySample {
            key: key.to_vec(),
            below,
        }
    }

    /// The sampled rows of `b`.
    pub fn take(&self, b: &RecordBatch) -> RecordBatch {
        let Some(below) = self.below else {
            return b.clone();
        };
        let schema = b.schema();
        let mut cols: Vec<&ArrayRef> = self
            .key
            .iter()
            .filter_map(|k| schema.index_of(k).ok())
            .map(|i| b.column(i))
            .collect();
        if cols.is_empty() || cols.len() != self.key.len() {
            cols = b.columns().iter().collect();
        }
        let mut buf = Vec::new();
        let keep: BooleanArray = (0..b.num_rows())
            .map(|r| {
                Some((sensei_contracts::digest::cells_hash(&cols, r, &mut buf) as u64) < below)
            })
            .collect();
        arrow::compute::filter_record_batch(b, &keep).unwrap_or_else(|_| b.clone())
    }
}

/// Compares every column of the expected rows with the transformed ones.
pub fn compare(
    expected: &[RecordBatch],
    actual: &[RecordBatch],
    ks_max: f64,
    tvd_max: f64,
) -> Vec<ColumnStat> {
    let Some(schema) = expected.first().map(|b| b.schema()) else {
        return Vec::new();
    };
    schema
        .fields()
        .iter()
        .filter_map(|f| {
            let name = f.name();
            let (test, stat, max) = match f.data_type() {
                t if t.is_numeric() || matches!(t, DataType::Date32 | DataType::Timestamp(..)) => (
                    "ks",
                    ks(numbers(expected, name), numbers(actual, name)),
                    ks_max,
                ),
                DataType::Utf8 | DataType::Boolean => (
                    "tvd",
                    tvd(&frequencies(expected, name), &frequencies(actual, name)),
                    tvd_max,
                ),
                _ => return None,
            };
            Some(ColumnStat {
                column: name.clone(),
                test: test.into(),
                statistic: format!("{stat:.6}"),
                pass: stat <= max,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ks_and_tvd() {
        assert_eq!(ks(vec![1.0, 2.0, 3.0], vec![3.0, 2.0, 1.0]), 0.0);
        assert_eq!(
            ks(
                vec![f64::NEG_INFINITY, 1.0, f64::INFINITY],
                vec![1.0, f64::INFINITY, f64::NEG_INFINITY]
            ),
            0.0
        );
        assert!((ks(vec![1.0, 2.0, 3.0, 4.0], vec![3.0, 4.0, 5.0, 6.0]) - 0.5).abs() < 1e-12);
        let a = (
            HashMap::from([("x".to_string(), 3.0), ("y".to_string(), 1.0)]),
            4.0,
        );
        let b = (
            HashMap::from([("x".to_string(), 1.0), ("y".to_string(), 3.0)]),
            4.0,
        );
        assert!((tvd(&a, &b) - 0.5).abs() < 1e-12);
        assert_eq!(tvd(&a, &a), 0.0);
    }

    #[test]
    fn a_key_sample_keeps_the_same_rows_on_both_sides() {
        use arrow::array::{Int64Array, StringArray};
        use std::sync::Arc;
        let batch = |ids: Vec<i64>, tag: &str| {
            let names: Vec<String> = ids.iter().map(|i| format!("{tag}{i}")).collect();
            RecordBatch::try_from_iter(vec![
                ("id", Arc::new(Int64Array::from(ids)) as ArrayRef),
                ("name", Arc::new(StringArray::from(names)) as ArrayRef),
            ])
            .unwrap()
        };
        let s = KeySample::new(&["id".to_string()], 100_000, 10_000);
        let a = s.take(&batch((0..100_000).collect(), "a"));
        // The other side in another order and with other values: same keys kept.
        let b = s.take(&batch((0..100_000).rev().collect(), "b"));
        assert!((8_000..12_000).contains(&a.num_rows()), "{}", a.num_rows());
        let keys = |x: &RecordBatch| {
            let mut k: Vec<i64> = x
                .column(0)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .values()
                .to_vec();
            k.sort();
            k
        };
        assert_eq!(keys(&a), keys(&b));
        // Small tables are kept whole.
        let all =
            KeySample::new(&["id".to_string()], 50, 10_000).take(&batch((0..50).collect(), "a"));
        assert_eq!(all.num_rows(), 50);
    }
}
