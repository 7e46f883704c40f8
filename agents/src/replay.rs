//! Query replay: a suite of aggregate queries generated from a target
//! table's schema, run with DataFusion on the expected rows (the source
//! replayed through the mapping) and on the transformed rows, and compared
//! type-aware (numbers and timestamps within the verification tolerances).
//!
//! Per table: the row count. Per column: non-null count, distinct count,
//! minimum, maximum; for numbers also sum, mean and standard deviation; for
//! columns with at most [`GROUP_LIMIT`] distinct values, the count of every
//! value. At most `verification.max_queries` queries per table. Text columns
//! compared `normalized` are aggregated as `lower(btrim(..))`; `semantic` ones
//! only counted (their equivalences are not SQL).
//!
//! A query that fails on either side, or a result whose difference lies in
//! the band around a tolerance, cannot be decided: it is counted
//! inconclusive, with its reason.

use arrow::array::Array;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::equivalence::{cells_match, CellMatch, Tolerance};

/// Columns with at most this many distinct values get group counts.
pub const GROUP_LIMIT: usize = 20;

/// What the replay found.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReplayOutcome {
    /// Queries run on both sides.
    pub queries: u64,
    /// Queries whose results agree.
    pub passed: u64,
    /// The first disagreements: query and both results.
    pub failures: Vec<String>,
    /// Queries that could not be decided (an error on one side, or a
    /// difference in the band around a tolerance).
    #[serde(default)]
    pub inconclusive: u64,
    /// The first undecided queries with their reasons.
    #[serde(default)]
    pub undecided: Vec<String>,
}

impl ReplayOutcome {
    /// `pass`, `fail` or `inconclusive`.
    pub fn verdict(&self) -> &'static str {
        if self.passed + self.inconclusive < self.queries {
            "fail"
        } else if self.inconclusive > 0 {
            "inconclusive"
        } else {
            "pass"
        }
    }

    /// Records one query's outcome.
    pub fn record(&mut self, q: &str, outcome: std::result::Result<Agreement, String>) {
        self.queries += 1;
        match outcome {
            Ok(Agreement::Same) => self.passed += 1,
            Ok(Agreement::Differs(detail)) => {
                if self.failures.len() < MAX_NOTES {
                    self.failures.push(format!("{q}: {detail}"));
                }
            }
            Ok(Agreement::Doubtful(detail)) => {
                self.inconclusive += 1;
                if self.undecided.len() < MAX_NOTES {
                    self.undecided.push(format!(
                        "{q}: {detail} (within the undecidable band around the tolerance)"
                    ));
                }
            }
            Err(why) => {
                self.inconclusive += 1;
                if self.undecided.len() < MAX_NOTES {
                    self.undecided.push(format!("{q}: {why}"));
                }
            }
        }
    }
}

const MAX_NOTES: usize = 5;

/// How two results of one query compare.
#[derive(Debug, Clone, PartialEq)]
pub enum Agreement {
    /// Equal, within tolerance.
    Same,
    /// Different beyond tolerance (the detail shows both results).
    Differs(String),
    /// Different within the band around a tolerance.
    Doubtful(String),
}

use sensei_connectors::ident::ansi as quote;

fn numeric(t: &DataType) -> bool {
    t.is_numeric()
}

/// A session that reads its tables one partition at a time.
pub fn single_partition_session() -> SessionContext {
    SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1))
}

async fn run(s: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, String> {
    let df = s.sql(sql).await.map_err(|e| e.to_string())?;
    df.collect().await.map_err(|e| e.to_string())
}

fn render(batches: &[RecordBatch]) -> String {
    arrow::util::pretty::pretty_format_batches(batches)
        .map(|d| d.to_string().replace('\n', " "))
        .unwrap_or_default()
}

/// Compares two results cell by cell, type-aware.
pub fn compare_results(a: &[RecordBatch], b: &[RecordBatch], t: &Tolerance) -> Agreement {
    let detail = || format!("expected {} got {}", render(a), render(b));
    let (Some(sa), Some(sb)) = (a.first(), b.first()) else {
        let rows = |x: &[RecordBatch]| x.iter().map(|x| x.num_rows()).sum::<usize>();
        return if rows(a) == rows(b) {
            Agreement::Same
        } else {
            Agreement::Differs(detail())
        };
    };
    let (Ok(x), Ok(y)) = (
        arrow::compute::concat_batches(&sa.schema(), a),
        arrow::compute::concat_batches(&sb.schema(), b),
    ) else {
        return Agreement::Differs(detail());
    };
    if x.num_rows() != y.num_rows() || x.num_columns() != y.num_columns() {
        return Agreement::Differs(detail());
    }
    let mut doubtful = false;
    for c in 0..x.num_columns() {
        let name = x.schema().field(c).name().clone();
        for r in 0..x.num_rows() {
            match cells_match(&name, x.column(c), r, y.column(c), r, t) {
                CellMatch::Exact | CellMatch::Within => {}
                CellMatch::Doubtful => doubtful = true,
                CellMatch::Differs => return Agreement::Differs(detail()),
            }
        }
    }
    if doubtful {
        Agreement::Doubtful(detail())
    } else {
        Agreement::Same
    }
}

/// The distinct count of each of `columns` (SQL expressions) among the
/// expected rows when it is at most [`GROUP_LIMIT`]; None above it. One scan
/// estimates every column (HyperLogLog); only columns estimated near the
/// limit are counted exactly.
async fn small_distinct(expected: &SessionContext, columns: &[String]) -> Vec<Option<i64>> {
    let int_at = |b: &[RecordBatch], i: usize| -> Option<i64> {
        let a = b.first()?.column(i);
        let a = arrow::compute::cast(a, &DataType::Int64).ok()?;
        let a = a.as_any().downcast_ref::<arrow::array::Int64Array>()?;
        (!a.is_null(0)).then(|| a.value(0))
    };
    if columns.is_empty() {
        return Vec::new();
    }
    let estimate = format!(
        "SELECT {} FROM t",
        columns
            .iter()
            .map(|c| format!("approx_distinct({c})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let estimates = run(expected, &estimate).await.ok();
    let mut out = Vec::new();
    for (i, c) in columns.iter().enumerate() {
        let near = match estimates.as_deref().and_then(|b| int_at(b, i)) {
            Some(n) => n <= 2 * GROUP_LIMIT as i64,
            None => true,
        };
        let exact = if near {
            run(expected, &format!("SELECT count(DISTINCT {c}) FROM t"))
                .await
                .ok()
                .and_then(|b| int_at(&b, 0))
        } else {
            None
        };
        out.push(exact.filter(|n| *n <= GROUP_LIMIT as i64));
    }
    out
}

/// Generates the suite for `schema`; small distinct counts among the
/// expected rows tell which columns get group counts.
async fn suite(
    schema: &SchemaRef,
    expected: &SessionContext,
    max: usize,
    tolerance: &Tolerance,
) -> Vec<String> {
    let mut out = vec!["SELECT count(*) FROM t".to_string()];
    let mut grouped = Vec::new();
    for f in schema.fields() {
        let mode = tolerance
            .string_modes
            .get(f.name())
            .unwrap_or(&tolerance.string_mode)
            .as_str();
        let text = f.data_type() == &DataType::Utf8;
        if text && mode == "semantic" {
            // Equivalence classes live outside SQL: only the count is comparable.
            out.push(format!("SELECT count({}) FROM t", quote(f.name())));
            continue;
        }
        let c = if text && mode == "normalized" {
            format!("lower(btrim({}))", quote(f.name()))
        } else {
            quote(f.name())
        };
        out.push(format!(
            "SELECT count({c}), count(DISTINCT {c}), min({c}), max({c}) FROM t"
        ));
        if numeric(f.data_type()) {
            out.push(format!(
                "SELECT sum(CAST({c} AS DOUBLE)), avg(CAST({c} AS DOUBLE)), stddev(CAST({c} AS DOUBLE)) FROM t"
            ));
        }
        if !matches!(f.data_type(), DataType::Float32 | DataType::Float64) {
            grouped.push((out.len(), c));
        }
    }
    let exprs: Vec<String> = grouped.iter().map(|(_, c)| c.clone()).collect();
    let small = small_distinct(expected, &exprs).await;
    // Group counts go after their column's queries (inserted from the back).
    for ((at, c), n) in grouped.into_iter().zip(small).rev() {
        if n.is_some() {
            out.insert(
                at,
                format!("SELECT {c}, count(*) FROM t GROUP BY {c} ORDER BY {c} NULLS FIRST"),
            );
        }
    }
    out.truncate(max.max(1));
    out
}

/// Replays the suite on both sides: `expected` and `actual` each hold a
/// table `t`, of `schema` on the expected side.
pub async fn replay(
    schema: &SchemaRef,
    expected: &SessionContext,
    actual: &SessionContext,
    tolerance: &Tolerance,
    max_queries: usize,
) -> ReplayOutcome {
    let mut out = ReplayOutcome::default();
    for q in suite(schema, expected, max_queries, tolerance).await {
        // Both sides at once, on two threads: each query scans one column of each.
        let (other, query) = (actual.clone(), q.clone());
        let theirs = tokio::spawn(async move { run(&other, &query).await });
        let ours = run(expected, &q).await;
        let theirs = theirs
            .await
            .unwrap_or_else(|e| Err(format!("the query stopped: {e}")));
        let outcome = match (ours, theirs) {
            (Ok(want), Ok(got)) => Ok(compare_results(&want, &got, tolerance)),
            (Err(err), _) => Err(format!("fails on the expected rows: {err}")),
            (_, Err(err)) => Err(format!("fails on the transformed rows: {err}")),
        };
        out.record(&q, outcome);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use std::sync::Arc;

    #[tokio::test]
    async fn only_columns_with_few_values_get_group_counts() {
        let n = 5_000i64;
        let batch = RecordBatch::try_from_iter(vec![
            (
                "id",
                Arc::new(Int64Array::from((0..n).collect::<Vec<_>>())) as ArrayRef,
            ),
            (
                "status",
                Arc::new(StringArray::from(
                    (0..n).map(|i| format!("s{}", i % 20)).collect::<Vec<_>>(),
                )) as ArrayRef,
            ),
            (
                "bucket",
                Arc::new(Int64Array::from((0..n).map(|i| i % 21).collect::<Vec<_>>())) as ArrayRef,
            ),
        ])
        .unwrap();
        let s = single_partition_session();
        s.register_batch("t", batch.clone()).unwrap();
        let q = suite(&batch.schema(), &s, 100, &Tolerance::default()).await;
        let grouped: Vec<&String> = q.iter().filter(|q| q.contains("GROUP BY")).collect();
        assert_eq!(grouped.len(), 1, "{q:#?}");
        assert!(grouped[0].contains("\"status\""), "{q:#?}");
        // The group count follows its column's own queries.
        let at = q.iter().position(|x| x.contains("GROUP BY")).unwrap();
        assert!(q[at - 1].contains("count(DISTINCT \"status\")"), "{q:#?}");
        let same = replay(&batch.schema(), &s, &s, &Tolerance::default(), 100).await;
        assert_eq!(
            (same.queries, same.passed),
            (q.len() as u64, q.len() as u64)
        );
    }
}
