//! Dispatch of a leased task to its phase engine.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sensei_scheduler::{Lease, Phase};

use crate::error::{AgentError, Result};
use crate::node::NodeContext;
use crate::{deliver, scout, transform, validate};
use sensei_contracts::error::EngineError;

fn payload<T: serde::de::DeserializeOwned>(lease: &Lease) -> Result<T> {
    serde_json::from_value(lease.payload.clone()).map_err(|e| {
        AgentError::malformed(
            format!("{} task payload for table {}", lease.phase, lease.table),
            e,
        )
    })
}

static PANICKED_ONCE: AtomicBool = AtomicBool::new(false);

/// Runs a leased task on its engine and returns the result document.
pub async fn execute(
    node: Arc<NodeContext>,
    lease: Lease,
    lost: Arc<AtomicBool>,
) -> Result<serde_json::Value> {
    // Fault injection for supervision tests: the first task of the named table
    // panics once per process (`SENSEI_TEST_PANIC_ONCE=<table>`).
    if let Ok(t) = std::env::var("SENSEI_TEST_PANIC_ONCE") {
        if t == lease.table && !PANICKED_ONCE.swap(true, Ordering::SeqCst) {
            panic!(
                "injected panic in {} task for table {}",
                lease.phase, lease.table
            );
        }
    }
    let value = match lease.phase {
        Phase::Ingestion => {
            let task: scout::IngestTask = payload(&lease)?;
            let attempt = lease.attempt;
            let n = node.clone();
            let r = tokio::task::spawn_blocking(move || scout::run(n.as_ref(), &task, attempt))
                .await
                .map_err(|e| EngineError::Malformed {
                    what: "ingestion task".into(),
                    message: e.to_string(),
                })??;
            serde_json::to_value(r)?
        }
        Phase::Transformation => {
            let task: transform::TransformTask = payload(&lease)?;
            serde_json::to_value(transform::run(node.as_ref(), &task, lease.attempt).await?)?
        }
        Phase::Verification if lease.table == crate::queries::CROSS_TABLE => {
            let task: crate::queries::QueryTask = payload(&lease)?;
            serde_json::to_value(crate::queries::run(node.as_ref(), &task).await?)?
        }
        Phase::Verification => {
            let task: validate::VerifyTask = payload(&lease)?;
            serde_json::to_value(validate::run(node.as_ref(), &task).await?)?
        }
        Phase::Delivery => {
            let task: deliver::DeliverTask = payload(&lease)?;
            let r = deliver::run(
                node.as_ref(),
                &task,
                &lease.migration_id,
                lease.attempt,
                lost,
            )
            .await
            .map_err(|e| match e {
                EngineError::LeaseLost(_) => EngineError::LeaseLost(lease.task_id),
                other => other,
            })?;
            serde_json::to_value(r)?
        }
    };
    Ok(value)
}
