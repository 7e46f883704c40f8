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

/// A column estimated to hold more distinct values than this has its
/// `count(DISTINCT ..)` query run alone rather than in the one scan: the
/// scan would otherwise hold every column's set of values at once (hundreds
/// of megabytes at millions of rows), where alone only one column's set is
/// held at a time.
pub const DISTINCT_IN_SCAN: i64 = 100_000;

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
    fn record(&mut self, q: &str, outcome: std::result::Result<Agreement, String>) {
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

fn int_at(b: &[RecordBatch], i: usize) -> Option<i64> {
    let a = b.first()?.column(i);
    let a = arrow::compute::cast(a, &DataType::Int64).ok()?;
    let a = a.as_any().downcast_ref::<arrow::array::Int64Array>()?;
    (!a.is_null(0)).then(|| a.value(0))
}

/// The estimated distinct count of each of `columns` (SQL expressions)
/// among the expected rows, in one scan (HyperLogLog); None where the scan
/// fails.
async fn estimate_distinct(expected: &SessionContext, columns: &[String]) -> Vec<Option<i64>> {
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
    (0..columns.len())
        .map(|i| estimates.as_deref().and_then(|b| int_at(b, i)))
        .collect()
}

/// The distinct count of each of `columns` among the expected rows when it
/// is at most [`GROUP_LIMIT`]; None above it. Only columns whose estimate is
/// near the limit are counted exactly.
async fn small_distinct(
    expected: &SessionContext,
    columns: &[(String, Option<i64>)],
) -> Vec<Option<i64>> {
    let mut out = Vec::new();
    for (c, estimate) in columns {
        let near = match estimate {
            Some(n) => *n <= 2 * GROUP_LIMIT as i64,
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

/// One query of the suite. Its SQL text names it in the certificate; the
/// scalar ones are computed together (see [`replay`]).
#[derive(Debug, Clone, PartialEq)]
enum Query {
    /// One row of aggregates over the whole table: their expressions; `alone`
    /// when it is run by itself, outside the one scan.
    Scalar {
        sql: String,
        exprs: Vec<String>,
        alone: bool,
    },
    /// A grouped count: its own scan.
    Grouped(String),
}

impl Query {
    fn scalar(exprs: Vec<String>) -> Query {
        Query::Scalar {
            sql: format!("SELECT {} FROM t", exprs.join(", ")),
            exprs,
            alone: false,
        }
    }

    fn sql(&self) -> &str {
        match self {
            Query::Scalar { sql, .. } | Query::Grouped(sql) => sql,
        }
    }
}

/// Generates the suite for `schema`; estimated distinct counts among the
/// expected rows tell which columns get group counts (few values) and whose
/// distinct count runs alone (more than `distinct_in_scan`).
async fn suite(
    schema: &SchemaRef,
    expected: &SessionContext,
    max: usize,
    tolerance: &Tolerance,
    distinct_in_scan: i64,
) -> Vec<Query> {
    let mut out = vec![Query::scalar(vec!["count(*)".into()])];
    let mut grouped = Vec::new();
    // (query holding the column's count(DISTINCT), the column)
    let mut distinct = Vec::new();
    for f in schema.fields() {
        let mode = tolerance
            .string_modes
            .get(f.name())
            .unwrap_or(&tolerance.string_mode)
            .as_str();
        let text = f.data_type() == &DataType::Utf8;
        if text && mode == "semantic" {
            // Equivalence classes live outside SQL: only the count is comparable.
            out.push(Query::scalar(vec![format!("count({})", quote(f.name()))]));
            continue;
        }
        let c = if text && mode == "normalized" {
            format!("lower(btrim({}))", quote(f.name()))
        } else {
            quote(f.name())
        };
        distinct.push((out.len(), c.clone()));
        out.push(Query::scalar(vec![
            format!("count({c})"),
            format!("count(DISTINCT {c})"),
            format!("min({c})"),
            format!("max({c})"),
        ]));
        if numeric(f.data_type()) {
            out.push(Query::scalar(
                ["sum", "avg", "stddev"]
                    .iter()
                    .map(|agg| format!("{agg}(CAST({c} AS DOUBLE))"))
                    .collect(),
            ));
        }
        if !matches!(f.data_type(), DataType::Float32 | DataType::Float64) {
            grouped.push((out.len(), c));
        }
    }
    let exprs: Vec<String> = distinct.iter().map(|(_, c)| c.clone()).collect();
    let estimates = estimate_distinct(expected, &exprs).await;
    for ((at, _), estimate) in distinct.iter().zip(&estimates) {
        if estimate.is_some_and(|n| n > distinct_in_scan) {
            if let Query::Scalar { alone, .. } = &mut out[*at] {
                *alone = true;
            }
        }
    }
    let estimate_of = |c: &String| exprs.iter().position(|e| e == c).and_then(|i| estimates[i]);
    let columns: Vec<(String, Option<i64>)> = grouped
        .iter()
        .map(|(_, c)| (c.clone(), estimate_of(c)))
        .collect();
    let small = small_distinct(expected, &columns).await;
    // Group counts go after their column's queries (inserted from the back).
    for ((at, c), n) in grouped.into_iter().zip(small).rev() {
        if n.is_some() {
            out.insert(
                at,
                Query::Grouped(format!(
                    "SELECT {c}, count(*) FROM t GROUP BY {c} ORDER BY {c} NULLS FIRST"
                )),
            );
        }
    }
    out.truncate(max.max(1));
    out
}

/// Every aggregate of the scalar queries (but those run alone) in one
/// `SELECT`: one scan of the table instead of one per query. Each aggregate
/// is named by its own expression, so a result sliced out of the row reads
/// as its query's did.
fn one_scan(queries: &[Query]) -> Option<String> {
    let exprs: Vec<String> = queries
        .iter()
        .filter_map(|q| match q {
            Query::Scalar {
                exprs,
                alone: false,
                ..
            } => Some(exprs.iter()),
            _ => None,
        })
        .flatten()
        .map(|e| format!("{e} AS {}", quote(e)))
        .collect();
    (!exprs.is_empty()).then(|| format!("SELECT {} FROM t", exprs.join(", ")))
}

/// Columns `from..from + n` of a one-row result, as that query's result.
fn slice(result: &[RecordBatch], from: usize, n: usize) -> Result<Vec<RecordBatch>, String> {
    let Some(row) = result.iter().find(|b| b.num_rows() > 0) else {
        return Err("the aggregate scan returned no row".into());
    };
    row.project(&(from..from + n).collect::<Vec<_>>())
        .map(|b| vec![b])
        .map_err(|e| e.to_string())
}

/// Runs `sql` on both sides at once, on two threads.
async fn both(
    expected: &SessionContext,
    actual: &SessionContext,
    sql: &str,
) -> (
    Result<Vec<RecordBatch>, String>,
    Result<Vec<RecordBatch>, String>,
) {
    let (other, query) = (actual.clone(), sql.to_string());
    let theirs = tokio::spawn(async move { run(&other, &query).await });
    let ours = run(expected, sql).await;
    let theirs = theirs
        .await
        .unwrap_or_else(|e| Err(format!("the query stopped: {e}")));
    (ours, theirs)
}

fn judge(
    ours: Result<Vec<RecordBatch>, String>,
    theirs: Result<Vec<RecordBatch>, String>,
    tolerance: &Tolerance,
) -> std::result::Result<Agreement, String> {
    match (ours, theirs) {
        (Ok(want), Ok(got)) => Ok(compare_results(&want, &got, tolerance)),
        (Err(err), _) => Err(format!("fails on the expected rows: {err}")),
        (_, Err(err)) => Err(format!("fails on the transformed rows: {err}")),
    }
}

/// Replays the suite on both sides: `expected` and `actual` each hold a
/// table `t`, of `schema` on the expected side.
///
/// The scalar queries (counts, distinct counts, extremes, sums, means,
/// deviations of every column) are computed in one scan per side and judged
/// one query at a time from the slices of that row; when the combined scan
/// fails on a side, each query runs alone so the failure is charged to the
/// query that causes it. Grouped counts, and the distinct counts of columns
/// of many values ([`DISTINCT_IN_SCAN`]), run one by one (the latter one
/// side after the other: each holds a set of every value).
pub async fn replay(
    schema: &SchemaRef,
    expected: &SessionContext,
    actual: &SessionContext,
    tolerance: &Tolerance,
    max_queries: usize,
) -> ReplayOutcome {
    replay_with(
        schema,
        expected,
        actual,
        tolerance,
        max_queries,
        DISTINCT_IN_SCAN,
    )
    .await
}

async fn replay_with(
    schema: &SchemaRef,
    expected: &SessionContext,
    actual: &SessionContext,
    tolerance: &Tolerance,
    max_queries: usize,
    distinct_in_scan: i64,
) -> ReplayOutcome {
    let queries = suite(schema, expected, max_queries, tolerance, distinct_in_scan).await;
    let combined = match one_scan(&queries) {
        Some(sql) => match both(expected, actual, &sql).await {
            (Ok(want), Ok(got)) => Some((want, got)),
            _ => None,
        },
        None => None,
    };
    let mut out = ReplayOutcome::default();
    let mut at = 0;
    for q in &queries {
        let outcome = match (q, &combined) {
            (
                Query::Scalar {
                    exprs,
                    alone: false,
                    ..
                },
                Some((want, got)),
            ) => {
                let n = exprs.len();
                let outcome = judge(slice(want, at, n), slice(got, at, n), tolerance);
                at += n;
                outcome
            }
            // A distinct count of many values holds every value in a hash
            // set: one side after the other, so that only one set is held.
            (Query::Scalar { alone: true, .. }, _) => {
                let ours = run(expected, q.sql()).await;
                let theirs = run(actual, q.sql()).await;
                judge(ours, theirs, tolerance)
            }
            _ => {
                let (ours, theirs) = both(expected, actual, q.sql()).await;
                judge(ours, theirs, tolerance)
            }
        };
        out.record(q.sql(), outcome);
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
        let q = suite(
            &batch.schema(),
            &s,
            100,
            &Tolerance::default(),
            DISTINCT_IN_SCAN,
        )
        .await;
        let q: Vec<&str> = q.iter().map(Query::sql).collect();
        let grouped: Vec<&&str> = q.iter().filter(|q| q.contains("GROUP BY")).collect();
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

    #[tokio::test]
    async fn one_scan_charges_a_difference_to_the_queries_of_its_column() {
        let table = |last: i64| {
            RecordBatch::try_from_iter(vec![
                (
                    "id",
                    Arc::new(Int64Array::from((0..1000).collect::<Vec<_>>())) as ArrayRef,
                ),
                (
                    "amount",
                    Arc::new(Int64Array::from(
                        (0..1000)
                            .map(|i| if i == 999 { last } else { i })
                            .collect::<Vec<_>>(),
                    )) as ArrayRef,
                ),
            ])
            .unwrap()
        };
        let (expected, actual) = (single_partition_session(), single_partition_session());
        expected.register_batch("t", table(999)).unwrap();
        actual.register_batch("t", table(5_000)).unwrap();
        let schema = table(0).schema();
        let out = replay(&schema, &expected, &actual, &Tolerance::default(), 100).await;
        let suite = suite(
            &schema,
            &expected,
            100,
            &Tolerance::default(),
            DISTINCT_IN_SCAN,
        )
        .await;
        assert_eq!(out.queries, suite.len() as u64);
        assert_eq!(out.verdict(), "fail");
        // The extremes and the sums of `amount` differ; nothing of `id` does.
        assert_eq!(out.passed, out.queries - 2, "{out:#?}");
        assert!(
            out.failures[0].starts_with("SELECT count(\"amount\")"),
            "{out:#?}"
        );
        assert!(out.failures[1].starts_with("SELECT sum("), "{out:#?}");
        assert!(
            out.failures[1].contains("5000") || out.failures[1].contains("503"),
            "{out:#?}"
        );
        assert!(
            out.failures.iter().all(|f| !f.contains("\"id\"")),
            "{out:#?}"
        );
    }

    #[tokio::test]
    async fn distinct_counts_of_many_values_run_outside_the_one_scan() {
        let n = 5_000i64;
        let batch = RecordBatch::try_from_iter(vec![
            (
                "id",
                Arc::new(Int64Array::from((0..n).collect::<Vec<_>>())) as ArrayRef,
            ),
            (
                "bucket",
                Arc::new(Int64Array::from((0..n).map(|i| i % 7).collect::<Vec<_>>())) as ArrayRef,
            ),
        ])
        .unwrap();
        let s = single_partition_session();
        s.register_batch("t", batch.clone()).unwrap();
        // With a limit of 1,000 distinct values in the scan: `id` (5,000)
        // runs alone, `bucket` (7) stays in it.
        let q = suite(&batch.schema(), &s, 100, &Tolerance::default(), 1_000).await;
        let alone: Vec<&str> = q
            .iter()
            .filter(|q| matches!(q, Query::Scalar { alone: true, .. }))
            .map(Query::sql)
            .collect();
        assert_eq!(alone.len(), 1, "{q:#?}");
        assert!(alone[0].contains("count(DISTINCT \"id\")"), "{q:#?}");
        let scan = one_scan(&q).unwrap();
        assert!(!scan.contains("DISTINCT \"id\""), "{scan}");
        assert!(scan.contains("count(DISTINCT \"bucket\")"), "{scan}");
        // A difference in `id` is still found, charged to its own query.
        let actual = single_partition_session();
        let changed = RecordBatch::try_from_iter(vec![
            (
                "id",
                Arc::new(Int64Array::from(
                    (0..n)
                        .map(|i| if i == 1 { 0 } else { i })
                        .collect::<Vec<_>>(),
                )) as ArrayRef,
            ),
            ("bucket", batch.column(1).clone()),
        ])
        .unwrap();
        actual.register_batch("t", changed).unwrap();
        let out = replay_with(
            &batch.schema(),
            &s,
            &actual,
            &Tolerance::default(),
            100,
            1_000,
        )
        .await;
        assert_eq!(out.verdict(), "fail", "{out:#?}");
        assert_eq!(out.queries, q.len() as u64, "{out:#?}");
        assert!(
            out.failures
                .iter()
                .any(|f| f.contains("count(DISTINCT \"id\")")),
            "{out:#?}"
        );
    }

    #[tokio::test]
    async fn a_query_that_fails_on_one_side_is_charged_alone() {
        // The transformed side lacks a column: the one scan fails there, and
        // each query runs alone: only that column's queries are undecided.
        let expected = single_partition_session();
        let with = RecordBatch::try_from_iter(vec![
            ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
            (
                "name",
                Arc::new(StringArray::from(vec!["a", "b", "c"])) as ArrayRef,
            ),
        ])
        .unwrap();
        expected.register_batch("t", with.clone()).unwrap();
        let actual = single_partition_session();
        actual
            .register_batch("t", with.project(&[0]).unwrap())
            .unwrap();
        let out = replay(
            &with.schema(),
            &expected,
            &actual,
            &Tolerance::default(),
            100,
        )
        .await;
        assert_eq!(out.verdict(), "inconclusive", "{out:#?}");
        assert!(out.inconclusive >= 1, "{out:#?}");
        assert!(
            out.undecided.iter().all(|u| u.contains("\"name\"")),
            "{out:#?}"
        );
        assert_eq!(out.passed + out.inconclusive, out.queries, "{out:#?}");
    }
}
