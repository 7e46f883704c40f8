//! Dispatch of a leased task to its phase engine. Agents run tasks through
//! [`Execute`]: the node's [`Dispatch`] is the one implementation the
//! binaries use; a test wraps it to inject a fault (a panic, a lost row).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use sensei_scheduler::{Lease, Phase};

use crate::error::{AgentError, Result};
use crate::node::NodeContext;
use crate::{deliver, scout, transform, validate};
use sensei_contracts::error::{blocking, EngineError};

fn payload<T: serde::de::DeserializeOwned>(lease: &Lease) -> Result<T> {
    serde_json::from_value(lease.payload.clone()).map_err(|e| {
        AgentError::malformed(
            format!("{} task payload for table {}", lease.phase, lease.table),
            e,
        )
    })
}

/// Runs leased tasks.
#[async_trait::async_trait]
pub trait Execute: Send + Sync {
    /// Runs one leased task and returns its result document; `lost` turns
    /// true when the lease is lost.
    async fn execute(&self, lease: Lease, lost: Arc<AtomicBool>) -> Result<serde_json::Value>;
}

/// Each leased task dispatched to its phase engine on this node.
pub struct Dispatch(pub Arc<NodeContext>);

#[async_trait::async_trait]
impl Execute for Dispatch {
    async fn execute(&self, lease: Lease, lost: Arc<AtomicBool>) -> Result<serde_json::Value> {
        execute(self.0.clone(), lease, lost).await
    }
}

/// Runs a leased task on its engine and returns the result document.
pub async fn execute(
    node: Arc<NodeContext>,
    lease: Lease,
    lost: Arc<AtomicBool>,
) -> Result<serde_json::Value> {
    let value = match lease.phase {
        Phase::Ingestion if lease.table == sensei_scout::sample::SAMPLE => {
            let task: sensei_scout::sample::SampleTask = payload(&lease)?;
            serde_json::to_value(
                blocking("sampling task", move || sensei_scout::sample::run(&task)).await?,
            )?
        }
        Phase::Ingestion => {
            let task: scout::IngestTask = payload(&lease)?;
            let attempt = lease.attempt;
            let n = node.clone();
            let r = blocking("ingestion task", move || {
                scout::run(n.as_ref(), &task, attempt)
            });
            serde_json::to_value(r.await?)?
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
        Phase::Delivery if lease.table == sensei_delivery::prepare::PREPARE => {
            serde_json::to_value(sensei_delivery::prepare::run(payload(&lease)?).await?)?
        }
        Phase::Delivery
            if lease
                .table
                .starts_with(sensei_delivery::post::POST_DELIVERY) =>
        {
            let task: sensei_delivery::post::PostTask = payload(&lease)?;
            sensei_delivery::post::run(node.as_ref(), task, lease.attempt).await?
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
