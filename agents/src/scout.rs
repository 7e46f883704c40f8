//! Phase 1 engine (Scout): extract one partition of one source table into a
//! staged Parquet partition.

use std::path::PathBuf;

use sensei_connectors::sqlite::{SqliteSource, TableInfo};
use sensei_flight::parquet_io::PartitionWriter;
use serde::{Deserialize, Serialize};

use crate::artifacts::PartitionRef;
use crate::error::Result;
use crate::node::NodeContext;

/// Input of an ingestion task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestTask {
    /// SQLite source file.
    pub source_path: PathBuf,
    /// The table as discovered when the phase was planned.
    pub table: TableInfo,
    /// Inclusive rowid range, or the whole table.
    pub range: Option<(i64, i64)>,
    /// Partition id to stage under (without the attempt suffix).
    pub partition_id: String,
    /// Partition number.
    pub partition: u32,
}

/// Output of an ingestion task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestResult {
    /// Rows extracted.
    pub rows: u64,
    /// The staged partition.
    pub partition: PartitionRef,
}

/// Runs an ingestion task (blocking I/O: call from a blocking context).
pub fn run(ctx: &NodeContext, task: &IngestTask, attempt: u32) -> Result<IngestResult> {
    let source = SqliteSource::open(&task.source_path)?;
    let id = format!("{}-a{attempt}", task.partition_id);
    let path = ctx.staging_path(&id);
    let mut writer = PartitionWriter::create(&path, task.table.schema())?;
    let mut write_err = None;
    let rows = source.read(&task.table, task.range, 8192, |batch| {
        if let Err(e) = writer.write(&batch) {
            write_err = Some(e);
        }
        Ok(())
    })?;
    if let Some(e) = write_err {
        return Err(e.into());
    }
    let stats = writer.finish()?;
    metrics::counter!(sensei_runtime::metrics::ROWS, "phase" => "ingestion").increment(rows);
    let partition = ctx.register(&id, &task.table.name, task.partition, path, stats);
    Ok(IngestResult { rows, partition })
}
