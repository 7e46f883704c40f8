//! Phase 4 engine (Worker, delivery): write one verified partition to the
//! target in batches, each in one transaction with its ledger row.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use sensei_connectors::batch::BatchKey;
use sensei_connectors::files::SourceOptions;
use sensei_connectors::target::Target;
use serde::{Deserialize, Serialize};

use sensei_contracts::artifacts::{BatchRecord, PartitionRef};
use sensei_contracts::error::{EngineError, Result};
use sensei_contracts::io::PartitionIo;

/// Input of a delivery task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliverTask {
    /// Target table.
    pub table: String,
    /// Verified partition.
    pub input: PartitionRef,
    /// Target URL (`sqlite://PATH`, `postgresql://...`; a password comes
    /// from the environment, never the payload).
    pub target: String,
    /// PostgreSQL schema the writes stay inside (empty: the default).
    #[serde(default)]
    pub namespace: String,
    /// Rows per batch.
    pub batch_rows: u64,
    /// Stable ledger key of the partition (`table/partition`): the same on every
    /// attempt, so a redone partition skips the batches already delivered.
    pub ledger_partition: String,
    /// How to connect to the target.
    #[serde(default)]
    pub connection: TargetConnection,
    /// Milliseconds to pause after every batch committed (`delivery.batch_pause_ms`).
    #[serde(default)]
    pub batch_pause_ms: u64,
}

/// How a target database session is opened: the password file's path
/// travels, never the password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetConnection {
    /// `target.password_file` (empty: `PGPASSWORD` / `MYSQL_PWD`).
    pub password_file: String,
    /// `target.ssl_mode`.
    pub ssl_mode: String,
    /// `target.connect_timeout_s`.
    pub connect_timeout_s: u64,
    /// `target.mysql_local_infile`.
    pub mysql_local_infile: bool,
}

impl Default for TargetConnection {
    fn default() -> Self {
        Self::from_section(&sensei_runtime::config::TargetSection::default())
    }
}

impl TargetConnection {
    /// The `[target]` section's connection keys.
    pub fn from_section(t: &sensei_runtime::config::TargetSection) -> Self {
        TargetConnection {
            password_file: t.password_file.clone(),
            ssl_mode: t.ssl_mode.clone(),
            connect_timeout_s: t.connect_timeout_s,
            mysql_local_infile: t.mysql_local_infile,
        }
    }

    /// As connector options.
    pub fn options(&self) -> SourceOptions {
        SourceOptions::for_target(&sensei_runtime::config::TargetSection {
            password_file: self.password_file.clone(),
            ssl_mode: self.ssl_mode.clone(),
            connect_timeout_s: self.connect_timeout_s,
            mysql_local_infile: self.mysql_local_infile,
            ..Default::default()
        })
    }
}

/// The options of a configuration's target sessions.
pub fn target_options(config: &sensei_runtime::config::MigrationConfig) -> SourceOptions {
    SourceOptions::for_target(&config.target)
}

/// Output of a delivery task.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeliverResult {
    /// Rows written by this attempt.
    pub rows: u64,
    /// Bytes of the staged partition read by this attempt.
    #[serde(default)]
    pub bytes: u64,
    /// Rows of the partition (written now or before).
    pub rows_in_partition: u64,
    /// Batches written by this attempt.
    pub batches_written: u64,
    /// Batches skipped: already in the ledger.
    pub batches_skipped: u64,
    /// Time in target transactions.
    pub elapsed_ms: u64,
    /// Notices and warnings the target sent, each with its batch.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Every batch's acknowledgement.
    #[serde(default)]
    pub batches: Vec<BatchRecord>,
    /// Batch latencies and skipped batches, recorded by the scheduler when
    /// the completion is accepted.
    #[serde(
        default,
        skip_serializing_if = "sensei_runtime::metrics::TaskMetrics::is_empty"
    )]
    pub metrics: sensei_runtime::metrics::TaskMetrics,
}

/// Cuts batches into pieces of exactly `rows` (the last may be shorter), so
/// batch boundaries depend only on the partition's row order.
fn rechunk(batches: &[RecordBatch], rows: usize) -> Result<Vec<RecordBatch>> {
    let Some(first) = batches.first() else {
        return Ok(vec![]);
    };
    let all = arrow::compute::concat_batches(&first.schema(), batches)?;
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < all.num_rows() {
        let len = rows.min(all.num_rows() - offset);
        out.push(all.slice(offset, len));
        offset += len;
    }
    Ok(out)
}

/// Runs a delivery task. `lost` turns true when the lease is lost; the task
/// then stops before its next batch (a stale attempt writes nothing more).
pub async fn run(
    ctx: &dyn PartitionIo,
    task: &DeliverTask,
    migration: &str,
    attempt: u32,
    lost: Arc<AtomicBool>,
) -> Result<DeliverResult> {
    let batches = ctx.fetch(&task.input).await?;
    let chunks = rechunk(&batches, task.batch_rows.max(1) as usize)?;
    let task = task.clone();
    let migration = migration.to_string();
    let pause = std::time::Duration::from_millis(task.batch_pause_ms);
    let task_id_hint = task.ledger_partition.clone();
    tokio::task::spawn_blocking(move || -> Result<DeliverResult> {
        let mut target =
            Target::open_in(&task.target, &task.connection.options(), &task.namespace)?;
        let mut r = DeliverResult {
            bytes: task.input.bytes,
            ..DeliverResult::default()
        };
        for (seq, chunk) in chunks.iter().enumerate() {
            if lost.load(Ordering::SeqCst) {
                return Err(EngineError::LeaseLost(0));
            }
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
            let key = BatchKey {
                table: &task.table,
                migration: &migration,
                partition: &task.ledger_partition,
                seq: seq as u64,
                attempt,
            };
            let started = std::time::Instant::now();
            let ack = target.write_batch(chunk, &key)?;
            r.metrics.observe(
                sensei_runtime::metrics::DELIVERY_BATCH_SECONDS,
                started.elapsed().as_secs_f64(),
            );
            r.rows_in_partition += chunk.num_rows() as u64;
            r.elapsed_ms += ack.elapsed_ms;
            r.batches.push(BatchRecord {
                partition: task.ledger_partition.clone(),
                seq: seq as u64,
                attempt: if ack.written { attempt } else { 0 },
                rows: ack.rows,
                elapsed_ms: ack.elapsed_ms,
                warnings: ack.warnings.clone(),
            });
            for w in ack.warnings {
                if r.warnings.len() < 20 {
                    r.warnings
                        .push(format!("batch {seq} of {}: {w}", task.ledger_partition));
                }
            }
            if ack.written {
                r.rows += ack.rows;
                r.batches_written += 1;
            } else {
                r.batches_skipped += 1;
                r.metrics
                    .count(sensei_runtime::metrics::DELIVERY_BATCHES_SKIPPED, 1);
            }
        }
        Ok(r)
    })
    .await
    .map_err(|e| EngineError::Malformed {
        what: format!("delivery of {task_id_hint}"),
        message: e.to_string(),
    })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use sensei_contracts::io::FolderIo;

    /// A staged partition of `n` customers and a SQLite target with their table.
    fn setup(dir: &std::path::Path, n: i64) -> (FolderIo, DeliverTask) {
        let io = FolderIo::new(&dir.join("parts")).unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("customer_id", DataType::Int64, false),
            Field::new("full_name", DataType::Utf8, true),
        ]));
        let names: Vec<String> = (1..=n).map(|i| format!("customer {i}")).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(1..=n)),
                Arc::new(StringArray::from_iter_values(names)),
            ],
        )
        .unwrap();
        let input = io
            .stage(
                "m/transformation/customer/0-a1",
                "customer",
                0,
                schema.clone(),
                &[batch],
            )
            .unwrap();
        let url = format!("sqlite://{}", dir.join("target.db").display());
        let mut target = Target::open_in(&url, &SourceOptions::default(), "").unwrap();
        target
            .ensure_table(&sensei_connectors::target::NewTable {
                name: "customer",
                schema: &schema,
                primary_key: &["customer_id".into()],
                declared: &Default::default(),
            })
            .unwrap();
        let task = DeliverTask {
            table: "customer".into(),
            input,
            target: url,
            namespace: String::new(),
            batch_rows: 4,
            ledger_partition: "customer/00000".into(),
            connection: TargetConnection::default(),
            batch_pause_ms: 0,
        };
        (io, task)
    }

    fn rows_in_target(dir: &std::path::Path) -> i64 {
        rusqlite::Connection::open(dir.join("target.db"))
            .unwrap()
            .query_row("SELECT count(*) FROM customer", [], |r| r.get(0))
            .unwrap()
    }

    #[tokio::test]
    async fn a_partition_lands_once_however_often_its_task_runs() {
        let dir = tempfile::tempdir().unwrap();
        let (io, task) = setup(dir.path(), 10);
        let lost = Arc::new(AtomicBool::new(false));
        let first = run(&io, &task, "m", 1, lost.clone()).await.unwrap();
        assert_eq!(
            (first.rows, first.batches_written, first.batches_skipped),
            (10, 3, 0)
        );
        assert_eq!(first.batches.len(), 3);
        assert!(first.batches.iter().all(|b| b.attempt == 1));
        // A retry (the lease was reassigned after the writes) skips every batch.
        let again = run(&io, &task, "m", 2, lost).await.unwrap();
        assert_eq!(
            (again.rows, again.batches_written, again.batches_skipped),
            (0, 0, 3)
        );
        assert_eq!(again.rows_in_partition, 10);
        assert_eq!(rows_in_target(dir.path()), 10);
    }

    #[tokio::test]
    async fn a_task_whose_lease_is_lost_writes_nothing_more() {
        let dir = tempfile::tempdir().unwrap();
        let (io, task) = setup(dir.path(), 10);
        let lost = Arc::new(AtomicBool::new(true));
        let err = run(&io, &task, "m", 1, lost).await.unwrap_err();
        assert!(matches!(err, EngineError::LeaseLost(_)), "{err}");
        assert_eq!(rows_in_target(dir.path()), 0);
    }
}
