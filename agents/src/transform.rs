//! Phase 2 engine (Worker): run a table's generated SQL over one partition
//! with DataFusion and stage the result.

use std::sync::Arc;

use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use sensei_flight::parquet_io::PartitionWriter;
use serde::{Deserialize, Serialize};

use crate::artifacts::PartitionRef;
use crate::error::{AgentError, Result};
use crate::node::NodeContext;

/// Input of a transformation task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransformTask {
    /// Target table.
    pub target_table: String,
    /// The source partition.
    pub input: PartitionRef,
    /// Generated SQL; reads the table `source`.
    pub sql: String,
    /// Partition id of the output (without the attempt suffix).
    pub output_id: String,
}

/// Output of a transformation task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransformResult {
    /// Rows produced.
    pub rows: u64,
    /// Rows read.
    pub rows_in: u64,
    /// The staged output partition.
    pub partition: PartitionRef,
}

/// Runs a transformation task.
pub async fn run(ctx: &NodeContext, task: &TransformTask, attempt: u32) -> Result<TransformResult> {
    let batches = ctx.fetch(&task.input).await?;
    let rows_in: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    let sql_err = |e: datafusion::error::DataFusionError| AgentError::Sql {
        table: task.target_table.clone(),
        message: e.to_string(),
    };
    // One input partition per task, and one DataFusion partition inside it: the
    // output keeps the input's row order, so delivery batches are the same on
    // every attempt (their ledger keys depend on it). Parallelism comes from
    // running many partition tasks at once.
    let config = SessionConfig::new()
        .with_target_partitions(1)
        .with_batch_size(8192);
    let session = SessionContext::new_with_config(config);
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => {
            let (schema, _) =
                sensei_flight::parquet_io::read_partition(&ctx.staging_path(&task.input.id))
                    .map_err(AgentError::from)?;
            schema
        }
    };
    let table = MemTable::try_new(schema, vec![batches]).map_err(sql_err)?;
    session
        .register_table("source", Arc::new(table))
        .map_err(sql_err)?;
    let df = session.sql(&task.sql).await.map_err(sql_err)?;
    let out_schema = Arc::new(df.schema().as_arrow().clone());
    let mut stream = df.execute_stream().await.map_err(sql_err)?;
    let id = format!("{}-a{attempt}", task.output_id);
    let path = ctx.staging_path(&id);
    let mut writer = PartitionWriter::create(&path, out_schema)?;
    while let Some(batch) = stream.next().await {
        writer.write(&batch.map_err(sql_err)?)?;
    }
    let stats = writer.finish()?;
    metrics::counter!(sensei_runtime::metrics::ROWS, "phase" => "transformation")
        .increment(stats.rows);
    let partition = ctx.register(&id, &task.target_table, task.input.partition, path, stats);
    Ok(TransformResult {
        rows: partition.rows,
        rows_in,
        partition,
    })
}
