//! Phase 3 engine (Validator): compare one table's source and transformed
//! partitions by row count and order-independent content digest.

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
    /// Staged source partitions.
    pub source: Vec<PartitionRef>,
    /// Transformed partitions.
    pub target: Vec<PartitionRef>,
}

/// One side's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideDigest {
    /// Rows.
    pub rows: u64,
    /// Content digest, hex.
    pub digest: String,
}

/// Output of a verification task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyResult {
    /// Rows compared (target side).
    pub rows: u64,
    /// Source side.
    pub source: SideDigest,
    /// Target side.
    pub target: SideDigest,
}

async fn digest_of(
    ctx: &NodeContext,
    parts: &[PartitionRef],
    columns: Option<&[String]>,
) -> Result<TableDigest> {
    let mut total = TableDigest::default();
    for p in parts {
        let batches = ctx.fetch(p).await?;
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

/// Runs a verification task.
pub async fn run(ctx: &NodeContext, task: &VerifyTask) -> Result<VerifyResult> {
    let source = digest_of(ctx, &task.source, Some(&task.source_columns)).await?;
    let target = digest_of(ctx, &task.target, None).await?;
    Ok(VerifyResult {
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
