//! Data-quality rules in the Great Expectations suite format, evaluated by
//! the Validator over a target table's transformed rows, with results in the
//! GX validation-result layout.
//!
//! A suite is GX 1.x JSON (`{"name", "expectations": [{"type", "kwargs",
//! "meta"}]}`) or the legacy form (`expectation_suite_name`,
//! `expectation_type`). Supported: `expect_column_values_to_not_be_null`,
//! `_to_be_unique`, `_to_be_between`, `_to_be_in_set`, `_to_match_regex`,
//! `expect_column_value_lengths_to_be_between`,
//! `expect_column_values_to_be_of_type`,
//! `expect_compound_columns_to_be_unique`, `expect_table_row_count_to_equal`,
//! `expect_table_row_count_to_equal_other_table` (settled by the
//! orchestrator, which knows every table's count),
//! `expect_table_columns_to_match_set`, and
//! `expect_column_mean/min/max/sum_to_be_between`; `mostly` is honoured by
//! the column-map expectations. An unknown type is a failed result saying so,
//! never silently skipped.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, ArrayRef};
use arrow::record_batch::RecordBatch;
use serde_json::{json, Value};

/// The expectation type and kwargs of one entry, in either layout.
fn entry(e: &Value) -> (String, Value) {
    let ty = e["type"]
        .as_str()
        .or_else(|| e["expectation_type"].as_str())
        .unwrap_or_default()
        .to_string();
    (ty, e["kwargs"].clone())
}

/// The expectations of a suite, in either layout.
pub fn expectations(suite: &Value) -> Vec<Value> {
    suite["expectations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn cell(a: &ArrayRef, r: usize) -> Option<String> {
    if a.is_null(r) {
        return None;
    }
    let opts = arrow::util::display::FormatOptions::default();
    arrow::util::display::ArrayFormatter::try_new(a.as_ref(), &opts)
        .ok()
        .map(|f| f.value(r).to_string())
}

fn number(a: &ArrayRef, r: usize) -> Option<f64> {
    if a.is_null(r) {
        return None;
    }
    let v = arrow::compute::cast(&a.slice(r, 1), &arrow::datatypes::DataType::Float64).ok()?;
    let v = v.as_any().downcast_ref::<arrow::array::Float64Array>()?;
    (!v.is_null(0)).then(|| v.value(0))
}

fn json_number(v: &Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// Every value of a column across the batches (None: NULL).
fn column(batches: &[RecordBatch], name: &str) -> Option<Vec<(ArrayRef, usize)>> {
    let mut out = Vec::new();
    for b in batches {
        let i = b.schema().index_of(name).ok()?;
        for r in 0..b.num_rows() {
            out.push((b.column(i).clone(), r));
        }
    }
    Some(out)
}

fn map_result(
    total: usize,
    unexpected: Vec<String>,
    nulls: usize,
    kwargs: &Value,
) -> (bool, Value) {
    let considered = total - nulls;
    let mostly = kwargs["mostly"].as_f64().unwrap_or(1.0);
    let bad = unexpected.len();
    let success = considered == 0 || (considered - bad) as f64 / considered as f64 >= mostly;
    (
        success,
        json!({
            "element_count": total,
            "missing_count": nulls,
            "unexpected_count": bad,
            "unexpected_percent": if considered == 0 { 0.0 } else { 100.0 * bad as f64 / considered as f64 },
            "partial_unexpected_list": unexpected.iter().take(20).collect::<Vec<_>>(),
        }),
    )
}

/// A column-map expectation over text forms: the values `expected` refuses
/// are unexpected, NULLs are left out of the count.
fn text_map(
    v: &[(ArrayRef, usize)],
    kwargs: &Value,
    expected: impl Fn(&str) -> bool,
) -> (bool, Value) {
    let mut nulls = 0;
    let mut unexpected = Vec::new();
    for (a, r) in v {
        match cell(a, *r) {
            None => nulls += 1,
            Some(x) if !expected(&x) => unexpected.push(x),
            _ => {}
        }
    }
    map_result(v.len(), unexpected, nulls, kwargs)
}

fn type_names(dt: &arrow::datatypes::DataType) -> Vec<String> {
    use arrow::datatypes::DataType::*;
    let mut names = vec![dt.to_string().to_ascii_lowercase()];
    names.extend(
        match dt {
            Int8 | Int16 | Int32 | Int64 => &["int", "integer", "bigint", "int64", "smallint"][..],
            Float32 | Float64 => &["float", "double", "real", "float64"][..],
            Utf8 | LargeUtf8 | Utf8View => &["str", "string", "text", "varchar"][..],
            Boolean => &["bool", "boolean"][..],
            Date32 | Date64 => &["date"][..],
            Timestamp(..) => &["timestamp", "datetime", "datetime64"][..],
            Decimal128(..) => &["decimal", "numeric"][..],
            Binary | LargeBinary => &["bytes", "binary", "blob"][..],
            _ => &[][..],
        }
        .iter()
        .map(|s| s.to_string()),
    );
    names
}

/// Evaluates one expectation over a table's rows.
pub fn evaluate(batches: &[RecordBatch], e: &Value) -> Value {
    let (ty, kwargs) = entry(e);
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let col = kwargs["column"].as_str().unwrap_or_default();
    let values = || column(batches, col);
    let outcome: Result<(bool, Value), String> = (|| {
        let missing_column = || format!("column {col:?} is not in the table");
        Ok(match ty.as_str() {
            "expect_column_values_to_not_be_null" => {
                let v = values().ok_or_else(missing_column)?;
                let unexpected: Vec<String> = v
                    .iter()
                    .filter(|(a, r)| a.is_null(*r))
                    .map(|_| "null".into())
                    .collect();
                map_result(v.len(), unexpected, 0, &kwargs)
            }
            "expect_column_values_to_be_unique" => {
                let v = values().ok_or_else(missing_column)?;
                let mut count: HashMap<String, usize> = HashMap::new();
                let mut nulls = 0;
                for (a, r) in &v {
                    match cell(a, *r) {
                        Some(x) => *count.entry(x).or_default() += 1,
                        None => nulls += 1,
                    }
                }
                let unexpected: Vec<String> = v
                    .iter()
                    .filter_map(|(a, r)| cell(a, *r))
                    .filter(|x| count.get(x).copied().unwrap_or(0) > 1)
                    .collect();
                map_result(v.len(), unexpected, nulls, &kwargs)
            }
            "expect_column_values_to_be_between" => {
                let v = values().ok_or_else(missing_column)?;
                let (lo, hi) = (
                    json_number(&kwargs["min_value"]),
                    json_number(&kwargs["max_value"]),
                );
                let (strict_lo, strict_hi) = (
                    kwargs["strict_min"].as_bool().unwrap_or(false),
                    kwargs["strict_max"].as_bool().unwrap_or(false),
                );
                let mut nulls = 0;
                let mut unexpected = Vec::new();
                for (a, r) in &v {
                    match number(a, *r) {
                        None => nulls += 1,
                        Some(x) => {
                            let below = lo.is_some_and(|l| if strict_lo { x <= l } else { x < l });
                            let above = hi.is_some_and(|h| if strict_hi { x >= h } else { x > h });
                            if below || above {
                                unexpected.push(cell(a, *r).unwrap_or_default());
                            }
                        }
                    }
                }
                map_result(v.len(), unexpected, nulls, &kwargs)
            }
            "expect_column_values_to_be_in_set" => {
                let v = values().ok_or_else(missing_column)?;
                let set: HashSet<String> = kwargs["value_set"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| x.to_string())
                    })
                    .collect();
                text_map(&v, &kwargs, |x| set.contains(x))
            }
            "expect_column_values_to_match_regex" => {
                let v = values().ok_or_else(missing_column)?;
                let re = regex::Regex::new(kwargs["regex"].as_str().unwrap_or_default())
                    .map_err(|e| format!("regex: {e}"))?;
                text_map(&v, &kwargs, |x| re.is_match(x))
            }
            "expect_column_value_lengths_to_be_between" => {
                let v = values().ok_or_else(missing_column)?;
                let (lo, hi) = (
                    json_number(&kwargs["min_value"]),
                    json_number(&kwargs["max_value"]),
                );
                text_map(&v, &kwargs, |x| {
                    let n = x.chars().count() as f64;
                    !(lo.is_some_and(|l| n < l) || hi.is_some_and(|h| n > h))
                })
            }
            "expect_column_values_to_be_of_type" => {
                let b = batches.first().ok_or("the table is empty")?;
                let f = b
                    .schema()
                    .field_with_name(col)
                    .map_err(|_| missing_column())?
                    .clone();
                let want = kwargs["type_"]
                    .as_str()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                let names = type_names(f.data_type());
                (
                    names.contains(&want),
                    json!({"observed_value": f.data_type().to_string()}),
                )
            }
            "expect_compound_columns_to_be_unique" => {
                let cols: Vec<String> = kwargs["column_list"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect();
                let mut seen: HashMap<String, usize> = HashMap::new();
                let mut keys = Vec::new();
                for b in batches {
                    let idx: Vec<usize> = cols
                        .iter()
                        .map(|c| {
                            b.schema()
                                .index_of(c)
                                .map_err(|_| format!("column {c:?} is not in the table"))
                        })
                        .collect::<Result<_, _>>()?;
                    for r in 0..b.num_rows() {
                        let k = idx
                            .iter()
                            .map(|&i| cell(b.column(i), r).unwrap_or_else(|| "NULL".into()))
                            .collect::<Vec<_>>()
                            .join("|");
                        *seen.entry(k.clone()).or_default() += 1;
                        keys.push(k);
                    }
                }
                let unexpected: Vec<String> = keys.into_iter().filter(|k| seen[k] > 1).collect();
                map_result(rows, unexpected, 0, &kwargs)
            }
            "expect_table_row_count_to_equal" => {
                let want = kwargs["value"].as_u64().unwrap_or(u64::MAX);
                (rows as u64 == want, json!({"observed_value": rows}))
            }
            "expect_table_row_count_to_equal_other_table" => {
                // Settled by the orchestrator, which knows the other table's count.
                (
                    true,
                    json!({"observed_value": rows, "pending": "other_table"}),
                )
            }
            "expect_table_columns_to_match_set" => {
                let b = batches.first().ok_or("the table is empty")?;
                let have: HashSet<String> = b
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                let want: HashSet<String> = kwargs["column_set"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect();
                let exact = kwargs["exact_match"].as_bool().unwrap_or(true);
                let ok = if exact {
                    have == want
                } else {
                    want.is_subset(&have)
                };
                let mut observed: Vec<&String> = have.iter().collect();
                observed.sort();
                (ok, json!({"observed_value": observed}))
            }
            t if t.starts_with("expect_column_") && t.ends_with("_to_be_between") => {
                let stat = &t["expect_column_".len()..t.len() - "_to_be_between".len()];
                let v = values().ok_or_else(missing_column)?;
                let xs: Vec<f64> = v.iter().filter_map(|(a, r)| number(a, *r)).collect();
                let observed = match stat {
                    "mean" if !xs.is_empty() => xs.iter().sum::<f64>() / xs.len() as f64,
                    "min" => xs.iter().copied().fold(f64::INFINITY, f64::min),
                    "max" => xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    "sum" => xs.iter().sum(),
                    "mean" => f64::NAN,
                    other => {
                        return Err(format!(
                            "expectation {t}: statistic {other} is not supported"
                        ))
                    }
                };
                let (lo, hi) = (
                    json_number(&kwargs["min_value"]),
                    json_number(&kwargs["max_value"]),
                );
                let ok = observed.is_finite()
                    && lo.is_none_or(|l| observed >= l)
                    && hi.is_none_or(|h| observed <= h);
                (ok, json!({"observed_value": observed}))
            }
            other => return Err(format!("expectation type {other:?} is not supported")),
        })
    })();
    let (success, result, exception) = match outcome {
        Ok((s, r)) => (s, r, None),
        Err(m) => (false, json!({}), Some(m)),
    };
    json!({
        "success": success,
        "expectation_config": {"type": ty, "kwargs": kwargs, "meta": e["meta"].clone()},
        "result": result,
        "exception_info": {"raised_exception": exception.is_some(), "exception_message": exception},
    })
}

/// A whole suite over a table: the GX validation-result layout.
pub fn validate(batches: &[RecordBatch], suite: &Value) -> Value {
    let results: Vec<Value> = expectations(suite)
        .iter()
        .map(|e| evaluate(batches, e))
        .collect();
    summarize(suite, results)
}

/// The validation-result document of a list of results.
pub fn summarize(suite: &Value, results: Vec<Value>) -> Value {
    let ok = results.iter().filter(|r| r["success"] == true).count();
    let n = results.len();
    json!({
        "success": ok == n,
        "suite_name": suite["name"].as_str().or_else(|| suite["expectation_suite_name"].as_str()),
        "results": results,
        "statistics": {
            "evaluated_expectations": n,
            "successful_expectations": ok,
            "unsuccessful_expectations": n - ok,
            "success_percent": if n == 0 { 100.0 } else { 100.0 * ok as f64 / n as f64 },
        },
    })
}
