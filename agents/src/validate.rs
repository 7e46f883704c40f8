//! Phase 3 engine (Validator): compare one table's source and transformed
//! partitions by row count, order-independent content digest and, row by
//! row, by primary key within tolerances (the mapping's SQL replayed here
//! gives the expected rows).
//!
//! A partition that cannot be read as recorded (its checksum or row count
//! disagrees with the manifest) leaves the table undecided: the result says
//! so instead of failing the task, and the certificate is INCONCLUSIVE.

use serde::{Deserialize, Serialize};

use crate::artifacts::PartitionRef;
use crate::digest::TableDigest;
use crate::error::Result;
use crate::node::NodeContext;

/// Input of a verification task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyTask {
    /// Target table.
    pub table: String,
    /// Source columns in target order (the identity mapping's projection).
    pub source_columns: Vec<String>,
    /// The mapping's SQL: replayed here over the source partitions, on a
    /// different node's engine run, to give the expected target rows.
    #[serde(default)]
    pub sql: Option<String>,
    /// The key file of `sensei_hash`, for the replay.
    #[serde(default)]
    pub hash_key_file: Option<String>,
    /// Tables the SQL joins.
    #[serde(default)]
    pub lookups: Vec<crate::transform::LookupRef>,
    /// The target's primary key: rows are paired by it (by the whole row without one).
    #[serde(default)]
    pub key: Vec<String>,
    /// Tolerances of the row-level comparison (None: no row-level comparison).
    #[serde(default)]
    pub tolerance: Option<crate::equivalence::Tolerance>,
    /// A Great Expectations suite for the table's transformed rows.
    #[serde(default)]
    pub expectations: Option<serde_json::Value>,
    /// Queries of the generated replay suite at most (0: no replay).
    #[serde(default)]
    pub max_queries: u64,
    /// Thresholds of the distribution tests (KS statistic, total variation
    /// distance); None: no distribution tests.
    #[serde(default)]
    pub stat_thresholds: Option<(f64, f64)>,
    /// Staged source partitions.
    pub source: Vec<PartitionRef>,
    /// Transformed partitions.
    pub target: Vec<PartitionRef>,
}

/// One side's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SideDigest {
    /// Rows.
    pub rows: u64,
    /// Content digest, hex.
    pub digest: String,
}

/// Output of a verification task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VerifyResult {
    /// Rows compared (target side).
    pub rows: u64,
    /// Source side.
    pub source: SideDigest,
    /// Target side.
    pub target: SideDigest,
    /// Row-level equivalence, when the task asked for it.
    #[serde(default)]
    pub row_check: Option<crate::equivalence::RowDiff>,
    /// Merkle root of the transformed rows (the rows to be delivered).
    #[serde(default)]
    pub merkle_root: Option<String>,
    /// The suite's validation result (GX layout), when there is a suite.
    #[serde(default)]
    pub expectations: Option<serde_json::Value>,
    /// The query replay, when the task asked for it.
    #[serde(default)]
    pub replay: Option<crate::replay::ReplayOutcome>,
    /// Distribution tests per column.
    #[serde(default)]
    pub stats: Vec<crate::stats::ColumnStat>,
    /// Why the table's data could not be read (no other figure is then meaningful).
    #[serde(default)]
    pub unreadable: Option<String>,
}

async fn digest_of(
    ctx: &NodeContext,
    parts: &[PartitionRef],
    columns: Option<&[String]>,
    sql: Option<&str>,
    hash_key_file: Option<&str>,
    lookups: &[crate::transform::Lookup],
) -> Result<TableDigest> {
    let key = crate::transform::load_hash_key(hash_key_file)?;
    let mut total = TableDigest::default();
    for p in parts {
        let mut batches = ctx.fetch(p).await?;
        if let (Some(sql), Some(first)) = (sql, batches.first()) {
            use futures::StreamExt;
            let sql_err = |e: datafusion::error::DataFusionError| crate::error::AgentError::Sql {
                table: p.table.clone(),
                message: e.to_string(),
            };
            let mut stream =
                crate::transform::apply_sql(first.schema(), batches, sql, key.clone(), lookups)
                    .await
                    .map_err(sql_err)?;
            let mut out = Vec::new();
            while let Some(b) = stream.next().await {
                out.push(b.map_err(sql_err)?);
            }
            batches = out;
        }
        let columns = columns.map(|c| c.to_vec());
        let d = tokio::task::spawn_blocking(move || -> Result<TableDigest> {
            let mut d = TableDigest::default();
            for b in &batches {
                let b = match &columns {
                    Some(cols) => {
                        let idx = cols
                            .iter()
                            .map(|c| b.schema().index_of(c))
                            .collect::<std::result::Result<Vec<_>, _>>()?;
                        b.project(&idx)?
                    }
                    None => b.clone(),
                };
                d.add_batch(&b);
            }
            Ok(d)
        })
        .await
        .map_err(|e| crate::error::AgentError::Malformed {
            what: "digest".into(),
            message: e.to_string(),
        })??;
        total.merge(&d);
    }
    Ok(total)
}

/// Replays the mapping over each source partition and pairs its rows with
/// the transformed partition of the same number, row by row.
async fn row_equivalence(
    ctx: &NodeContext,
    task: &VerifyTask,
    sql: &str,
    tolerance: &crate::equivalence::Tolerance,
    transformed: &std::collections::BTreeMap<u32, Vec<arrow::record_batch::RecordBatch>>,
) -> Result<(
    crate::equivalence::RowDiff,
    Vec<arrow::record_batch::RecordBatch>,
)> {
    use futures::StreamExt;
    let lookups = crate::transform::load_lookups(ctx, &task.lookups).await?;
    let key = crate::transform::load_hash_key(task.hash_key_file.as_deref())?;
    let mut total = crate::equivalence::RowDiff::default();
    let mut all_expected = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for p in &task.source {
        seen.insert(p.partition);
        let batches = ctx.fetch(p).await?;
        let mut expected = Vec::new();
        if let Some(first) = batches.first() {
            let sql_err = |e: datafusion::error::DataFusionError| crate::error::AgentError::Sql {
                table: task.table.clone(),
                message: e.to_string(),
            };
            let mut stream =
                crate::transform::apply_sql(first.schema(), batches, sql, key.clone(), &lookups)
                    .await
                    .map_err(sql_err)?;
            while let Some(b) = stream.next().await {
                expected.push(b.map_err(sql_err)?);
            }
        }
        let actual = transformed.get(&p.partition).cloned().unwrap_or_default();
        let (k, tol) = (task.key.clone(), tolerance.clone());
        let keep = task.max_queries > 0 || task.stat_thresholds.is_some();
        let (diff, expected) = tokio::task::spawn_blocking(move || {
            let d = crate::equivalence::compare(&expected, &actual, &k, &tol);
            (d, if keep { expected } else { Vec::new() })
        })
        .await
        .map_err(|e| crate::error::AgentError::Malformed {
            what: "row comparison".into(),
            message: e.to_string(),
        })?;
        total.merge(&diff);
        all_expected.extend(expected);
    }
    // Transformed partitions with no source partition are all extra.
    for (_, batches) in transformed.iter().filter(|(p, _)| !seen.contains(*p)) {
        total.extra += batches.iter().map(|b| b.num_rows() as u64).sum::<u64>();
    }
    Ok((total, all_expected))
}

/// Runs a verification task. Data that cannot be read as recorded gives a
/// result that says so; other errors (a node unreachable) fail the task, to
/// be retried.
pub async fn run(ctx: &NodeContext, task: &VerifyTask) -> Result<VerifyResult> {
    match checks(ctx, task).await {
        Err(e @ crate::error::AgentError::Corrupt { .. }) => {
            tracing::warn!(table = %task.table, error = %e, "data not readable: verification undecided");
            Ok(VerifyResult {
                unreadable: Some(e.to_string()),
                ..VerifyResult::default()
            })
        }
        other => other,
    }
}

async fn checks(ctx: &NodeContext, task: &VerifyTask) -> Result<VerifyResult> {
    let source = match &task.sql {
        Some(sql) => {
            let lookups = crate::transform::load_lookups(ctx, &task.lookups).await?;
            digest_of(
                ctx,
                &task.source,
                None,
                Some(sql),
                task.hash_key_file.as_deref(),
                &lookups,
            )
            .await?
        }
        None => {
            digest_of(
                ctx,
                &task.source,
                Some(&task.source_columns),
                None,
                None,
                &[],
            )
            .await?
        }
    };
    // The transformed partitions, fetched once for every check below.
    let mut by_partition: std::collections::BTreeMap<u32, Vec<arrow::record_batch::RecordBatch>> =
        Default::default();
    for p in &task.target {
        let b = ctx.fetch(p).await?;
        by_partition.entry(p.partition).or_default().extend(b);
    }
    let all: Vec<arrow::record_batch::RecordBatch> =
        by_partition.values().flatten().cloned().collect();
    let (target, merkle) = {
        let (rows, key) = (all.clone(), task.key.clone());
        tokio::task::spawn_blocking(move || {
            let mut d = TableDigest::default();
            let mut m = crate::digest::MerkleDigest::default();
            for b in &rows {
                d.add_batch(b);
                m.add_batch(b, &key);
            }
            (d, m)
        })
        .await
        .map_err(|e| crate::error::AgentError::Malformed {
            what: "digest".into(),
            message: e.to_string(),
        })?
    };
    let kept =
        if task.expectations.is_some() || task.max_queries > 0 || task.stat_thresholds.is_some() {
            all
        } else {
            Vec::new()
        };
    let expectations = match &task.expectations {
        Some(suite) => {
            let suite = suite.clone();
            let rows = kept.clone();
            Some(
                tokio::task::spawn_blocking(move || crate::expectations::validate(&rows, &suite))
                    .await
                    .map_err(|e| crate::error::AgentError::Malformed {
                        what: "expectations".into(),
                        message: e.to_string(),
                    })?,
            )
        }
        None => None,
    };
    let (row_check, expected) = match (&task.sql, &task.tolerance) {
        (Some(sql), Some(tolerance)) => {
            let (d, e) = row_equivalence(ctx, task, sql, tolerance, &by_partition).await?;
            (Some(d), e)
        }
        _ => (None, Vec::new()),
    };
    let stats = match task.stat_thresholds {
        Some((ks, tvd)) if !expected.is_empty() => crate::stats::compare(&expected, &kept, ks, tvd),
        _ => Vec::new(),
    };
    let replay = match (&task.tolerance, expected.first()) {
        (Some(tolerance), Some(first)) if task.max_queries > 0 => Some(
            crate::replay::replay(
                first.schema(),
                expected,
                kept,
                tolerance,
                task.max_queries as usize,
            )
            .await
            .map_err(|message| crate::error::AgentError::Sql {
                table: task.table.clone(),
                message: format!("query replay: {message}"),
            })?,
        ),
        _ => None,
    };
    Ok(VerifyResult {
        unreadable: None,
        stats,
        replay,
        expectations,
        merkle_root: Some(merkle.root()),
        row_check,
        rows: target.rows,
        source: SideDigest {
            rows: source.rows,
            digest: source.hex(),
        },
        target: SideDigest {
            rows: target.rows,
            digest: target.hex(),
        },
    })
}
