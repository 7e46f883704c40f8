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

//!
//! Rules are evaluated as batches arrive ([`Validation::add`]): memory holds
//! counters, the first unexpected values and, for the uniqueness rules, one
//! 128-bit hash per distinct value, never the table.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float64Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde_json::{json, Value};

/// Unexpected values listed in a result at most (GX's partial list).
const PARTIAL: usize = 20;

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

fn json_number(v: &Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// The text form of a column's values (GX compares values as text).
fn formatter(a: &ArrayRef) -> Result<arrow::util::display::ArrayFormatter<'_>, String> {
    arrow::util::display::ArrayFormatter::try_new(
        a.as_ref(),
        &arrow::util::display::FormatOptions::default(),
    )
    .map_err(|e| e.to_string())
}

/// A column's values as text (NULL: None).
fn texts(a: &ArrayRef) -> Result<Vec<Option<String>>, String> {
    let f = formatter(a)?;
    Ok((0..a.len())
        .map(|r| (!a.is_null(r)).then(|| f.value(r).to_string()))
        .collect())
}

/// A column's values as numbers (NULL or not a number: None).
fn numbers(a: &ArrayRef) -> Vec<Option<f64>> {
    match arrow::compute::cast(a, &DataType::Float64) {
        Ok(x) => {
            let x = x.as_primitive::<Float64Type>();
            (0..x.len())
                .map(|r| (!x.is_null(r)).then(|| x.value(r)))
                .collect()
        }
        Err(_) => vec![None; a.len()],
    }
}

/// The counts of a column-map expectation.
#[derive(Debug, Default)]
struct MapCount {
    total: usize,
    nulls: usize,
    bad: usize,
    partial: Vec<String>,
}

impl MapCount {
    fn unexpected(&mut self, v: String) {
        self.bad += 1;
        if self.partial.len() < PARTIAL {
            self.partial.push(v);
        }
    }

    fn result(&self, kwargs: &Value) -> (bool, Value) {
        let considered = self.total - self.nulls;
        let mostly = kwargs["mostly"].as_f64().unwrap_or(1.0);
        let success =
            considered == 0 || (considered - self.bad) as f64 / considered as f64 >= mostly;
        (
            success,
            json!({
                "element_count": self.total,
                "missing_count": self.nulls,
                "unexpected_count": self.bad,
                "unexpected_percent": if considered == 0 { 0.0 } else { 100.0 * self.bad as f64 / considered as f64 },
                "partial_unexpected_list": self.partial,
            }),
        )
    }
}

/// Values seen so far, by hash; the repeated ones with their text and count.
#[derive(Debug, Default)]
struct Repeats {
    seen: HashSet<u128>,
    repeated: HashMap<u128, (String, usize, usize)>,
}

impl Repeats {
    fn add(&mut self, h: u128, text: impl FnOnce() -> String) {
        if self.seen.insert(h) {
            return;
        }
        let order = self.repeated.len();
        self.repeated
            .entry(h)
            .or_insert_with(|| (text(), 1, order))
            .1 += 1;
    }

    /// Every row holding a repeated value is unexpected; the partial list
    /// gives the values in the order they were first repeated.
    fn into_counts(self, total: usize, nulls: usize) -> MapCount {
        let mut reps: Vec<(String, usize, usize)> = self.repeated.into_values().collect();
        reps.sort_by_key(|r| r.2);
        let mut m = MapCount {
            total,
            nulls,
            ..MapCount::default()
        };
        for (text, count, _) in reps {
            for _ in 0..count {
                m.unexpected(text.clone());
            }
        }
        m
    }
}

/// What a rule keeps between batches.
#[derive(Debug)]
enum Rule {
    NotNull(MapCount),
    Unique(MapCount, Repeats),
    Between {
        lo: Option<f64>,
        hi: Option<f64>,
        strict: (bool, bool),
        count: MapCount,
    },
    InSet(HashSet<String>, MapCount),
    Regex(regex::Regex, MapCount),
    Lengths(Option<f64>, Option<f64>, MapCount),
    Compound(Vec<String>, MapCount, Repeats),
    /// Needs only the schema (type, column set) or the row count.
    Table,
    Stat {
        stat: String,
        sum: f64,
        n: usize,
        min: f64,
        max: f64,
    },
}

/// One expectation being evaluated.
#[derive(Debug)]
struct Check {
    entry: Value,
    ty: String,
    kwargs: Value,
    rule: Result<Rule, String>,
}

impl Check {
    fn new(e: &Value) -> Self {
        let (ty, kwargs) = entry(e);
        let range = || {
            (
                json_number(&kwargs["min_value"]),
                json_number(&kwargs["max_value"]),
            )
        };
        let rule = match ty.as_str() {
            "expect_column_values_to_not_be_null" => Ok(Rule::NotNull(MapCount::default())),
            "expect_column_values_to_be_unique" => {
                Ok(Rule::Unique(MapCount::default(), Repeats::default()))
            }
            "expect_column_values_to_be_between" => {
                let (lo, hi) = range();
                Ok(Rule::Between {
                    lo,
                    hi,
                    strict: (
                        kwargs["strict_min"].as_bool().unwrap_or(false),
                        kwargs["strict_max"].as_bool().unwrap_or(false),
                    ),
                    count: MapCount::default(),
                })
            }
            "expect_column_values_to_be_in_set" => Ok(Rule::InSet(
                kwargs["value_set"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| x.to_string())
                    })
                    .collect(),
                MapCount::default(),
            )),
            "expect_column_values_to_match_regex" => {
                regex::Regex::new(kwargs["regex"].as_str().unwrap_or_default())
                    .map(|re| Rule::Regex(re, MapCount::default()))
                    .map_err(|e| format!("regex: {e}"))
            }
            "expect_column_value_lengths_to_be_between" => {
                let (lo, hi) = range();
                Ok(Rule::Lengths(lo, hi, MapCount::default()))
            }
            "expect_compound_columns_to_be_unique" => Ok(Rule::Compound(
                kwargs["column_list"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect(),
                MapCount::default(),
                Repeats::default(),
            )),
            "expect_column_values_to_be_of_type"
            | "expect_table_row_count_to_equal"
            | "expect_table_row_count_to_equal_other_table"
            | "expect_table_columns_to_match_set" => Ok(Rule::Table),
            t if t.starts_with("expect_column_") && t.ends_with("_to_be_between") => {
                let stat = &t["expect_column_".len()..t.len() - "_to_be_between".len()];
                if matches!(stat, "mean" | "min" | "max" | "sum") {
                    Ok(Rule::Stat {
                        stat: stat.to_string(),
                        sum: 0.0,
                        n: 0,
                        min: f64::INFINITY,
                        max: f64::NEG_INFINITY,
                    })
                } else {
                    Err(format!(
                        "expectation {t}: statistic {stat} is not supported"
                    ))
                }
            }
            other => Err(format!("expectation type {other:?} is not supported")),
        };
        Check {
            entry: e.clone(),
            ty,
            kwargs,
            rule,
        }
    }

    fn add(&mut self, b: &RecordBatch) {
        let Ok(rule) = &mut self.rule else {
            return;
        };
        if let Err(e) = add_batch(rule, &self.kwargs, b) {
            self.rule = Err(e);
        }
    }

    fn finish(self, schema: Option<&SchemaRef>, rows: usize) -> Value {
        let (ty, kwargs) = (&self.ty, &self.kwargs);
        let col = kwargs["column"].as_str().unwrap_or_default();
        let outcome: Result<(bool, Value), String> = self.rule.and_then(|rule| {
            Ok(match rule {
                Rule::NotNull(m) | Rule::Between { count: m, .. } => m.result(kwargs),
                Rule::InSet(_, m) | Rule::Regex(_, m) | Rule::Lengths(_, _, m) => m.result(kwargs),
                Rule::Unique(m, reps) | Rule::Compound(_, m, reps) => {
                    reps.into_counts(m.total, m.nulls).result(kwargs)
                }
                Rule::Stat {
                    stat,
                    sum,
                    n,
                    min,
                    max,
                } => {
                    let observed = match stat.as_str() {
                        "mean" if n > 0 => sum / n as f64,
                        "mean" => f64::NAN,
                        "min" => min,
                        "max" => max,
                        _ => sum,
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
                Rule::Table => match ty.as_str() {
                    "expect_table_row_count_to_equal" => {
                        let want = kwargs["value"].as_u64().unwrap_or(u64::MAX);
                        (rows as u64 == want, json!({"observed_value": rows}))
                    }
                    // Settled by the orchestrator, which knows the other table's count.
                    "expect_table_row_count_to_equal_other_table" => (
                        true,
                        json!({"observed_value": rows, "pending": "other_table"}),
                    ),
                    "expect_column_values_to_be_of_type" => {
                        let f = schema
                            .ok_or("the table is empty")?
                            .field_with_name(col)
                            .map_err(|_| format!("column {col:?} is not in the table"))?
                            .clone();
                        let want = kwargs["type_"]
                            .as_str()
                            .unwrap_or_default()
                            .to_ascii_lowercase();
                        (
                            type_names(f.data_type()).contains(&want),
                            json!({"observed_value": f.data_type().to_string()}),
                        )
                    }
                    _ => {
                        let have: HashSet<String> = schema
                            .ok_or("the table is empty")?
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
                        let ok = if kwargs["exact_match"].as_bool().unwrap_or(true) {
                            have == want
                        } else {
                            want.is_subset(&have)
                        };
                        let mut observed: Vec<&String> = have.iter().collect();
                        observed.sort();
                        (ok, json!({"observed_value": observed}))
                    }
                },
            })
        });
        let (success, result, exception) = match outcome {
            Ok((s, r)) => (s, r, None),
            Err(m) => (false, json!({}), Some(m)),
        };
        json!({
            "success": success,
            "expectation_config": {"type": ty, "kwargs": kwargs, "meta": self.entry["meta"].clone()},
            "result": result,
            "exception_info": {"raised_exception": exception.is_some(), "exception_message": exception},
        })
    }
}

/// Feeds one batch to a compound-uniqueness rule over `cols`.
fn add_compound(
    cols: &[String],
    m: &mut MapCount,
    reps: &mut Repeats,
    b: &RecordBatch,
) -> Result<(), String> {
    let arrays = cols
        .iter()
        .map(|c| {
            b.schema()
                .index_of(c)
                .map(|i| b.column(i).clone())
                .map_err(|_| format!("column {c:?} is not in the table"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let f = arrays
        .iter()
        .map(formatter)
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&ArrayRef> = arrays.iter().collect();
    let mut buf = Vec::new();
    for r in 0..b.num_rows() {
        m.total += 1;
        reps.add(
            sensei_contracts::digest::cells_hash(&refs, r, &mut buf),
            || {
                arrays
                    .iter()
                    .zip(&f)
                    .map(|(a, f)| {
                        if a.is_null(r) {
                            "NULL".to_string()
                        } else {
                            f.value(r).to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            },
        );
    }
    Ok(())
}

/// Feeds one batch to a rule.
fn add_batch(rule: &mut Rule, kwargs: &Value, b: &RecordBatch) -> Result<(), String> {
    let col = kwargs["column"].as_str().unwrap_or_default();
    let column = || {
        b.schema()
            .index_of(col)
            .map(|i| b.column(i).clone())
            .map_err(|_| format!("column {col:?} is not in the table"))
    };
    // A column-map rule over text forms: the values `ok` refuses are unexpected.
    let text_map = |m: &mut MapCount, ok: &dyn Fn(&str) -> bool| -> Result<(), String> {
        for v in texts(&column()?)? {
            m.total += 1;
            match v {
                None => m.nulls += 1,
                Some(x) if !ok(&x) => m.unexpected(x),
                _ => {}
            }
        }
        Ok(())
    };
    match rule {
        Rule::NotNull(m) => {
            let a = column()?;
            m.total += a.len();
            for _ in 0..a.null_count() {
                m.unexpected("null".into());
            }
        }
        Rule::Unique(m, reps) => {
            let a = column()?;
            // Text only for the values that repeat: the rest are hashes.
            let f = formatter(&a)?;
            let mut buf = Vec::new();
            for r in 0..a.len() {
                m.total += 1;
                if a.is_null(r) {
                    m.nulls += 1;
                } else {
                    reps.add(
                        sensei_contracts::digest::cells_hash(&[&a], r, &mut buf),
                        || f.value(r).to_string(),
                    );
                }
            }
        }
        Rule::Between {
            lo,
            hi,
            strict,
            count,
        } => {
            let a = column()?;
            let xs = numbers(&a);
            let mut t = None;
            for (r, x) in xs.into_iter().enumerate() {
                count.total += 1;
                let Some(x) = x else {
                    count.nulls += 1;
                    continue;
                };
                let below = lo.is_some_and(|l| if strict.0 { x <= l } else { x < l });
                let above = hi.is_some_and(|h| if strict.1 { x >= h } else { x > h });
                if below || above {
                    let t = match &mut t {
                        Some(t) => t,
                        None => t.insert(texts(&a)?),
                    };
                    count.unexpected(t[r].clone().unwrap_or_default());
                }
            }
        }
        Rule::InSet(set, m) => text_map(m, &|x| set.contains(x))?,
        Rule::Regex(re, m) => text_map(m, &|x| re.is_match(x))?,
        Rule::Lengths(lo, hi, m) => text_map(m, &|x| {
            let n = x.chars().count() as f64;
            !(lo.is_some_and(|l| n < l) || hi.is_some_and(|h| n > h))
        })?,
        Rule::Compound(cols, m, reps) => add_compound(cols, m, reps, b)?,
        Rule::Table => {}
        Rule::Stat {
            sum, n, min, max, ..
        } => {
            for x in numbers(&column()?).into_iter().flatten() {
                *sum += x;
                *n += 1;
                *min = min.min(x);
                *max = max.max(x);
            }
        }
    }
    Ok(())
}

fn type_names(dt: &DataType) -> Vec<String> {
    use DataType::*;
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

/// A suite being evaluated over a table's batches as they arrive.
#[derive(Debug)]
pub struct Validation {
    suite: Value,
    checks: Vec<Check>,
    schema: Option<SchemaRef>,
    rows: usize,
}

impl Validation {
    /// Starts evaluating `suite`.
    pub fn new(suite: &Value) -> Self {
        Validation {
            checks: expectations(suite).iter().map(Check::new).collect(),
            suite: suite.clone(),
            schema: None,
            rows: 0,
        }
    }

    /// Feeds the next batch of the table.
    pub fn add(&mut self, b: &RecordBatch) {
        if self.schema.is_none() {
            self.schema = Some(b.schema());
        }
        self.rows += b.num_rows();
        for c in &mut self.checks {
            c.add(b);
        }
    }

    /// The GX validation-result document.
    pub fn finish(self) -> Value {
        let (schema, rows) = (self.schema, self.rows);
        let results = self
            .checks
            .into_iter()
            .map(|c| c.finish(schema.as_ref(), rows))
            .collect();
        summarize(&self.suite, results)
    }
}

/// A whole suite over a table: the GX validation-result layout.
pub fn validate(batches: &[RecordBatch], suite: &Value) -> Value {
    let mut v = Validation::new(suite);
    for b in batches {
        v.add(b);
    }
    v.finish()
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
