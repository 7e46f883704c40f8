//! Column profiles computed on a sample: cardinality, null ratio, value
//! distribution (a histogram for numbers, a calendar histogram for dates, top
//! values for the rest), min/max, lengths, value shapes (`AAA-9999`) and the
//! date format text values follow.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::*;
use arrow::record_batch::RecordBatch;

pub use sensei_contracts::profile::{Bucket, ColumnProfile, DateBucket, Lengths};

fn date_histogram(dates: &[(i32, u32, u32)]) -> Vec<DateBucket> {
    let (Some(lo), Some(hi)) = (dates.iter().min(), dates.iter().max()) else {
        return Vec::new();
    };
    let months = (hi.0 - lo.0) * 12 + hi.1 as i32 - lo.1 as i32;
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    for &(y, m, d) in dates {
        let period = if months == 0 {
            format!("{y:04}-{m:02}-{d:02}")
        } else if months <= 60 {
            format!("{y:04}-{m:02}")
        } else {
            format!("{y:04}")
        };
        *counts.entry(period).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(period, count)| DateBucket { period, count })
        .collect()
}

/// A cell seen as a number or as text.
enum Cell {
    Null,
    Num(f64),
    Text(String),
}

fn cell(array: &ArrayRef, row: usize) -> Cell {
    if array.is_null(row) {
        return Cell::Null;
    }
    let num = match array.data_type() {
        DataType::Int8 => Some(array.as_primitive::<Int8Type>().value(row) as f64),
        DataType::Int16 => Some(array.as_primitive::<Int16Type>().value(row) as f64),
        DataType::Int32 => Some(array.as_primitive::<Int32Type>().value(row) as f64),
        DataType::Int64 => Some(array.as_primitive::<Int64Type>().value(row) as f64),
        DataType::UInt8 => Some(array.as_primitive::<UInt8Type>().value(row) as f64),
        DataType::UInt16 => Some(array.as_primitive::<UInt16Type>().value(row) as f64),
        DataType::UInt32 => Some(array.as_primitive::<UInt32Type>().value(row) as f64),
        DataType::UInt64 => Some(array.as_primitive::<UInt64Type>().value(row) as f64),
        DataType::Float32 => Some(array.as_primitive::<Float32Type>().value(row) as f64),
        DataType::Float64 => Some(array.as_primitive::<Float64Type>().value(row)),
        _ => None,
    };
    if let Some(n) = num {
        return Cell::Num(n);
    }
    let text = match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().value(row).to_string(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(row).to_string(),
        DataType::Utf8View => array.as_string_view().value(row).to_string(),
        _ => {
            let opts = arrow::util::display::FormatOptions::default();
            arrow::util::display::ArrayFormatter::try_new(array.as_ref(), &opts)
                .map(|f| f.value(row).to_string())
                .unwrap_or_default()
        }
    };
    Cell::Text(text)
}

/// The shape of a value: ASCII letters as `A`/`a`, digits as `9`, the rest kept;
/// at most 32 characters (longer values end in `…`).
pub fn shape(value: &str) -> String {
    let mut out = String::new();
    for (i, c) in value.chars().enumerate() {
        if i == 32 {
            out.push('…');
            break;
        }
        out.push(match c {
            'A'..='Z' => 'A',
            'a'..='z' => 'a',
            '0'..='9' => '9',
            c if c.is_alphabetic() => {
                if c.is_uppercase() {
                    'A'
                } else {
                    'a'
                }
            }
            c => c,
        });
    }
    out
}

/// Date formats recognised, as (shape, name).
const DATE_FORMATS: &[(&str, &str)] = &[
    ("9999-99-99", "%Y-%m-%d"),
    ("9999-99-99 99:99:99", "%Y-%m-%d %H:%M:%S"),
    ("9999-99-99A99:99:99", "%Y-%m-%dT%H:%M:%S"),
    ("9999-99-99A99:99:99A", "%Y-%m-%dT%H:%M:%SZ"),
    ("9999/99/99", "%Y/%m/%d"),
    ("99999999", "%Y%m%d"),
];

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Parses a date into (year, month, day). Accepted: `YYYY-MM-DD` (also with
/// `/` or `.`, and with a time after it), `YYYYMMDD`, `D/M/YYYY` and
/// `M/D/YYYY` (day-first when the first part exceeds 12; also with `-` or
/// `.`), and `DD-MON-YYYY` with an English month abbreviation.
pub fn parse_date(value: &str) -> Option<(i32, u32, u32)> {
    let v = value.trim();
    if !v.is_ascii() || v.is_empty() {
        return None;
    }
    let ok = |y: i32, m: u32, d: u32| {
        ((1..=12).contains(&m) && (1..=31).contains(&d) && (1000..=9999).contains(&y))
            .then_some((y, m, d))
    };
    if v.len() == 8 && v.chars().all(|c| c.is_ascii_digit()) {
        return ok(
            v[..4].parse().ok()?,
            v[4..6].parse().ok()?,
            v[6..8].parse().ok()?,
        );
    }
    // Drop a time part: "1984-03-12 00:00:00", "1984-03-12T00:00:00Z".
    let date = v.split([' ', 'T']).next()?;
    let parts: Vec<&str> = date.split(['-', '/', '.']).collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let num = |s: &str| -> Option<u32> {
        s.chars()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()
    };
    let month = |s: &str| -> Option<u32> {
        num(s).or_else(|| {
            MONTHS
                .iter()
                .position(|m| s.eq_ignore_ascii_case(m))
                .map(|i| i as u32 + 1)
        })
    };
    if parts[0].len() == 4 {
        return ok(num(parts[0])? as i32, month(parts[1])?, num(parts[2])?);
    }
    if parts[2].len() == 4 && parts[0].len() <= 2 {
        let y = num(parts[2])? as i32;
        if parts[1].len() == 3 {
            return ok(y, month(parts[1])?, num(parts[0])?);
        }
        let (a, b) = (num(parts[0])?, num(parts[1])?);
        return if a > 12 { ok(y, b, a) } else { ok(y, a, b) };
    }
    None
}

fn date_format(texts: &[&str]) -> Option<String> {
    if texts.is_empty() {
        return None;
    }
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut day_first = false;
    for t in texts {
        let t = t.trim();
        let s = shape(t);
        let name = DATE_FORMATS
            .iter()
            .find(|(sh, _)| *sh == s)
            .map(|(_, n)| *n)
            .or_else(|| {
                let parts: Vec<&str> = t.split(['/', '.', '-']).collect();
                if parts.len() == 3 && parts[2].len() == 4 && parts[1].len() == 3 {
                    Some("%d-%b-%Y")
                } else if parts.len() == 3 && parts[2].len() == 4 && parts[0].len() <= 2 {
                    if parts[0].parse::<u32>().unwrap_or(0) > 12 {
                        day_first = true;
                    }
                    Some("%m/%d/%Y")
                } else {
                    None
                }
            });
        if let Some(n) = name {
            if parse_date(t).is_some() {
                *counts.entry(n).or_default() += 1;
            }
        }
    }
    if day_first {
        if let Some(n) = counts.remove("%m/%d/%Y") {
            counts.insert("%d/%m/%Y", n);
        }
    }
    let (best, n) = counts.into_iter().max_by_key(|(_, n)| *n)?;
    (n * 10 >= texts.len() * 9).then(|| best.to_string())
}

fn top<K: Clone + Ord>(counts: HashMap<K, u64>, n: usize) -> Vec<(K, u64)> {
    let mut v: Vec<(K, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// Profiles every column of a sample.
pub fn profile(batches: &[RecordBatch]) -> Vec<ColumnProfile> {
    let Some(first) = batches.first() else {
        return Vec::new();
    };
    let schema = first.schema();
    (0..schema.fields().len())
        .map(|i| {
            let mut nums = Vec::new();
            let mut texts: Vec<String> = Vec::new();
            let mut nulls = 0u64;
            let mut sampled = 0u64;
            for b in batches {
                let col = b.column(i);
                for row in 0..b.num_rows() {
                    sampled += 1;
                    match cell(col, row) {
                        Cell::Null => nulls += 1,
                        Cell::Num(x) => nums.push(x),
                        Cell::Text(t) => texts.push(t),
                    }
                }
            }
            profile_column(schema.field(i).name(), sampled, nulls, nums, texts)
        })
        .collect()
}

fn profile_column(
    name: &str,
    sampled: u64,
    nulls: u64,
    mut nums: Vec<f64>,
    texts: Vec<String>,
) -> ColumnProfile {
    let non_null = sampled - nulls;
    let mut p = ColumnProfile {
        column: name.to_string(),
        sampled,
        nulls,
        null_ratio: if sampled == 0 {
            0.0
        } else {
            nulls as f64 / sampled as f64
        },
        distinct: 0,
        distinct_ratio: 0.0,
        min: None,
        max: None,
        lengths: None,
        histogram: None,
        top_values: Vec::new(),
        patterns: Vec::new(),
        date_format: None,
        date_histogram: None,
    };
    if !nums.is_empty() {
        nums.retain(|x| x.is_finite());
        nums.sort_by(|a, b| a.total_cmp(b));
        let mut distinct = nums.clone();
        distinct.dedup();
        p.distinct = distinct.len() as u64;
        if let (Some(lo), Some(hi)) = (nums.first().copied(), nums.last().copied()) {
            p.min = Some(fmt_num(lo));
            p.max = Some(fmt_num(hi));
            let width = (hi - lo) / 10.0;
            let mut buckets: Vec<Bucket> = (0..10)
                .map(|k| Bucket {
                    lo: lo + width * k as f64,
                    hi: if k == 9 {
                        hi
                    } else {
                        lo + width * (k + 1) as f64
                    },
                    count: 0,
                })
                .collect();
            for x in &nums {
                let k = if width == 0.0 {
                    0
                } else {
                    (((x - lo) / width) as usize).min(9)
                };
                buckets[k].count += 1;
            }
            if width == 0.0 {
                buckets.truncate(1);
            }
            p.histogram = Some(buckets);
        }
        let mut shapes = HashMap::new();
        for x in &nums {
            *shapes.entry(shape(&fmt_num(*x))).or_insert(0u64) += 1;
        }
        p.patterns = top(shapes, 5);
    } else if !texts.is_empty() {
        let mut values: HashMap<&str, u64> = HashMap::new();
        let mut shapes: HashMap<String, u64> = HashMap::new();
        let (mut lmin, mut lmax, mut lsum) = (u64::MAX, 0u64, 0u64);
        for t in &texts {
            *values.entry(t.as_str()).or_default() += 1;
            *shapes.entry(shape(t)).or_default() += 1;
            let l = t.chars().count() as u64;
            lmin = lmin.min(l);
            lmax = lmax.max(l);
            lsum += l;
        }
        p.distinct = values.len() as u64;
        p.min = texts.iter().min().cloned();
        p.max = texts.iter().max().cloned();
        p.lengths = Some(Lengths {
            min: lmin,
            max: lmax,
            mean: lsum as f64 / texts.len() as f64,
        });
        p.top_values = top(values, 10)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        p.patterns = top(shapes, 5);
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        p.date_format = date_format(&refs);
        let dates: Vec<(i32, u32, u32)> = texts.iter().filter_map(|t| parse_date(t)).collect();
        if !dates.is_empty() && dates.len() * 10 >= texts.len() * 9 {
            p.date_histogram = Some(date_histogram(&dates));
        }
    }
    p.distinct_ratio = if non_null == 0 {
        0.0
    } else {
        p.distinct as f64 / non_null as f64
    };
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn profiles_numbers_and_text() {
        let b = RecordBatch::try_from_iter(vec![
            (
                "n",
                Arc::new(Int64Array::from(vec![
                    Some(1),
                    Some(2),
                    None,
                    Some(10),
                    Some(2),
                ])) as ArrayRef,
            ),
            (
                "sku",
                Arc::new(StringArray::from(vec![
                    Some("ABC-1234"),
                    Some("XYZ-0001"),
                    Some("ABC-1234"),
                    None,
                    Some("Q-1"),
                ])) as ArrayRef,
            ),
            (
                "f",
                Arc::new(Float64Array::from(vec![0.5, 1.5, 2.5, 3.5, f64::NAN])) as ArrayRef,
            ),
        ])
        .unwrap();
        let p = profile(&[b]);
        assert_eq!(p[0].nulls, 1);
        assert_eq!(p[0].null_ratio, 0.2);
        assert_eq!(p[0].distinct, 3);
        assert_eq!(
            (p[0].min.as_deref(), p[0].max.as_deref()),
            (Some("1"), Some("10"))
        );
        let h = p[0].histogram.as_ref().unwrap();
        assert_eq!(h.iter().map(|b| b.count).sum::<u64>(), 4);
        assert_eq!(h[9].count, 1);
        assert_eq!(p[1].patterns[0], ("AAA-9999".to_string(), 3));
        assert_eq!(p[1].top_values[0], ("ABC-1234".to_string(), 2));
        assert_eq!(p[1].lengths.as_ref().unwrap().max, 8);
        assert_eq!(
            p[2].max.as_deref(),
            Some("3.5"),
            "NaN is left out of min/max"
        );
    }

    #[test]
    fn dates_get_a_calendar_histogram() {
        let days: Vec<i32> = (0..400).map(|i| 19_723 + i).collect(); // from 2024-01-01
        let b = RecordBatch::try_from_iter([(
            "d",
            Arc::new(arrow::array::Date32Array::from(days)) as ArrayRef,
        )])
        .unwrap();
        let h = profile(&[b])[0].date_histogram.clone().unwrap();
        assert_eq!(h.len(), 14, "by month over 13 months and a bit: {h:?}");
        assert_eq!(h[0].period, "2024-01");
        assert_eq!(h[0].count, 31);
        assert_eq!(h[1].count, 29, "leap February");
        assert_eq!(h.iter().map(|b| b.count).sum::<u64>(), 400);
    }

    #[test]
    fn detects_date_formats() {
        let iso = ["1984-03-12", "2001-12-31", "1999-01-01"];
        assert_eq!(date_format(&iso).as_deref(), Some("%Y-%m-%d"));
        let eu = ["12/03/1984", "31/12/2001", "01/01/1999"];
        assert_eq!(date_format(&eu).as_deref(), Some("%d/%m/%Y"));
        let mixed = ["1984-03-12", "hello", "world"];
        assert_eq!(date_format(&mixed), None);
        assert_eq!(parse_date("19840312"), Some((1984, 3, 12)));
        assert_eq!(parse_date("2020-13-01"), None);
        assert_eq!(parse_date("11-NOV-1973"), Some((1973, 11, 11)));
        assert_eq!(parse_date("1/28/1991"), Some((1991, 1, 28)));
        assert_eq!(parse_date("28.01.1991"), Some((1991, 1, 28)));
        assert_eq!(parse_date("1984-03-12 00:00:00"), Some((1984, 3, 12)));
        assert_eq!(
            date_format(&["11-NOV-1973", "02-JAN-1989"]).as_deref(),
            Some("%d-%b-%Y")
        );
    }
}
