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

fn quote(c: &str) -> String {
    format!("\"{}\"", c.replace('"', "\"\""))
}

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

/// Generates the suite for `schema`, the distinct counts telling which columns get group counts.
async fn suite(
    schema: &SchemaRef,
    expected: &SessionContext,
    max: usize,
    tolerance: &Tolerance,
) -> Vec<String> {
    let mut out = vec!["SELECT count(*) FROM t".to_string()];
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
        let distinct = run(expected, &format!("SELECT count(DISTINCT {c}) FROM t"))
            .await
            .ok()
            .and_then(|b| {
                b.first().and_then(|b| {
                    b.column(0)
                        .as_any()
                        .downcast_ref::<arrow::array::Int64Array>()
                        .map(|a| a.value(0))
                })
            })
            .unwrap_or(i64::MAX);
        if distinct <= GROUP_LIMIT as i64
            && !matches!(f.data_type(), DataType::Float32 | DataType::Float64)
        {
            out.push(format!(
                "SELECT {c}, count(*) FROM t GROUP BY {c} ORDER BY {c} NULLS FIRST"
            ));
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
        let outcome = match (run(expected, &q).await, run(actual, &q).await) {
            (Ok(want), Ok(got)) => Ok(compare_results(&want, &got, tolerance)),
            (Err(err), _) => Err(format!("fails on the expected rows: {err}")),
            (_, Err(err)) => Err(format!("fails on the transformed rows: {err}")),
        };
        out.record(&q, outcome);
    }
    out
}
