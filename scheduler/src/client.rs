//! One client trait, two ways to reach the scheduler: in the same process
//! ([`SchedulerApi`] for `Arc<Scheduler>`) or over gRPC ([`GrpcScheduler`]).
//! Agents are written against the trait and do not know which they have.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sensei_proto::v1 as pb;
use sensei_runtime::tokens::ClusterSecret;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::core::Scheduler;
use crate::error::{Result, SchedulerError};
use crate::model::{Lease, Phase};

/// A lease request's answer: a task, or none within the wait.
pub type Leased = Result<Option<Lease>>;

/// What an agent needs from the scheduler. `agent` and `node` are the
/// ids of the agent asking and of the node it runs on; a completion or a
/// failure names the `lease` it ends.
#[async_trait]
pub trait SchedulerApi: Send + Sync + 'static {
    /// Registers a node and its Flight endpoint.
    async fn register_node(&self, node: &str, flight_endpoint: &str, role: &str) -> Result<()>;
    /// Registers an agent (again, after a restart).
    async fn register_agent(&self, agent: &str, node: &str, kind: &str) -> Result<()>;
    /// Asks for a task of one of `phases`, waiting up to `wait` for one
    /// to become runnable when none is (a long poll: the agent is woken the
    /// moment a task is submitted or requeued, not at its next poll).
    async fn lease(&self, agent: &str, node: &str, phases: &[Phase], wait: Duration) -> Leased;
    /// Renews leases (task id, attempt); returns the ids of those lost.
    async fn heartbeat(&self, agent: &str, node: &str, leases: &[(i64, u32)]) -> Result<Vec<i64>>;
    /// Reports a task done.
    async fn complete(&self, agent: &str, lease: &Lease, result: &serde_json::Value) -> Result<()>;
    /// Reports a failed attempt.
    async fn fail(&self, agent: &str, lease: &Lease, error: &str, retryable: bool) -> Result<()>;
}

#[async_trait]
impl SchedulerApi for Arc<Scheduler> {
    async fn register_node(&self, node: &str, flight_endpoint: &str, role: &str) -> Result<()> {
        Scheduler::register_node(self, node, flight_endpoint, role, std::process::id())
    }
    async fn register_agent(&self, agent: &str, node: &str, kind: &str) -> Result<()> {
        Scheduler::register_agent(self, agent, node, kind)
    }
    async fn lease(&self, agent: &str, node: &str, phases: &[Phase], wait: Duration) -> Leased {
        lease_within(self, agent, node, phases, wait).await
    }
    async fn heartbeat(&self, agent: &str, node: &str, leases: &[(i64, u32)]) -> Result<Vec<i64>> {
        Scheduler::heartbeat(self, agent, node, leases)
    }
    async fn complete(&self, _: &str, lease: &Lease, result: &serde_json::Value) -> Result<()> {
        Scheduler::complete(self, lease.task_id, lease.attempt, result)
    }
    async fn fail(&self, _: &str, lease: &Lease, error: &str, retryable: bool) -> Result<()> {
        Scheduler::fail(self, lease.task_id, lease.attempt, error, retryable)
    }
}

/// Leases a task of one of `phases`, waiting up to `wait` for one to
/// become runnable: each change of the task table (a task submitted,
/// requeued, done) is a new try. `None` when `wait` passed without one.
pub async fn lease_within(
    scheduler: &Scheduler,
    agent: &str,
    node: &str,
    phases: &[Phase],
    wait: Duration,
) -> Result<Option<Lease>> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = scheduler.watch_work();
    loop {
        changes.borrow_and_update();
        if let Some(lease) = scheduler.lease(agent, node, phases)? {
            return Ok(Some(lease));
        }
        // A task waiting out its retry backoff is a new try when it ends.
        let mut until = deadline;
        if let Some(at) = scheduler.next_retry_ms()? {
            let after = Duration::from_millis((at - scheduler.now_ms()).max(1) as u64);
            until = until.min(tokio::time::Instant::now() + after);
        }
        match tokio::time::timeout_at(until, changes.changed()).await {
            Ok(Ok(())) => continue,
            // The scheduler is going away.
            Ok(Err(_)) => return Ok(None),
            Err(_) if until < deadline => continue,
            Err(_) => return Ok(None),
        }
    }
}

/// The scheduler reached over gRPC. The channel reconnects by itself, so a
/// restarted head is picked up again without re-creating the client.
#[derive(Clone, Debug)]
pub struct GrpcScheduler {
    client: pb::scheduler_client::SchedulerClient<InterceptedService<Channel, Bearer>>,
}

/// Puts the cluster secret on every call: the head admits no other caller.
#[derive(Clone)]
pub struct Bearer(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(***)")
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut r: tonic::Request<()>,
    ) -> std::result::Result<tonic::Request<()>, tonic::Status> {
        r.metadata_mut().insert("authorization", self.0.clone());
        Ok(r)
    }
}

/// Largest control-plane message accepted either way (status documents).
pub const MAX_CONTROL_MESSAGE: usize = 16 * 1024 * 1024;

impl GrpcScheduler {
    /// A client for `endpoint` (`http://host:port`, or `https://host:port`
    /// trusting the root of the secret's TLS) presenting `secret`.
    /// Connection is lazy.
    pub fn new(endpoint: &str, secret: &ClusterSecret) -> Result<Self> {
        let bearer = Bearer(
            secret
                .header()
                .parse()
                .map_err(|_| SchedulerError::Connect {
                    endpoint: endpoint.to_string(),
                    message: "the cluster secret is not a header value".into(),
                })?,
        );
        let connect = |message: String| SchedulerError::Connect {
            endpoint: endpoint.to_string(),
            message,
        };
        let mut ep = Endpoint::from_shared(endpoint.to_string())
            .map_err(|e| connect(e.to_string()))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(30));
        if endpoint.starts_with("https://") {
            let tls = secret.tls().ok_or_else(|| {
                connect("the head speaks TLS but this process has no certificate to trust (the cluster's TLS files)".into())
            })?;
            ep = ep
                .tls_config(tls.client())
                .map_err(|e| connect(e.to_string()))?;
        }
        let client =
            pb::scheduler_client::SchedulerClient::with_interceptor(ep.connect_lazy(), bearer)
                .max_decoding_message_size(MAX_CONTROL_MESSAGE)
                .max_encoding_message_size(MAX_CONTROL_MESSAGE);
        Ok(GrpcScheduler { client })
    }

    /// Submits a migration (resolved configuration as JSON); returns its id.
    pub async fn submit(&self, config_json: &str, restart: bool) -> Result<String> {
        let r = self
            .client
            .clone()
            .submit_migration(pb::SubmitMigrationRequest {
                config_json: config_json.to_string(),
                restart,
            })
            .await?;
        Ok(r.into_inner().migration_id)
    }

    /// Status document of a migration.
    pub async fn migration_status(&self, migration_id: &str) -> Result<serde_json::Value> {
        let r = self
            .client
            .clone()
            .migration_status(pb::MigrationStatusRequest {
                migration_id: migration_id.to_string(),
            })
            .await?;
        Ok(serde_json::from_str(&r.into_inner().status_json)?)
    }

    /// Status document of the cluster.
    pub async fn cluster_status(&self) -> Result<serde_json::Value> {
        let r = self
            .client
            .clone()
            .cluster_status(pb::ClusterStatusRequest {})
            .await?;
        Ok(serde_json::from_str(&r.into_inner().status_json)?)
    }
}

/// Converts a wire lease.
pub fn lease_from_proto(l: pb::Lease) -> Result<Lease> {
    Ok(Lease {
        task_id: l.task_id,
        migration_id: l.migration_id,
        phase: Phase::parse(&l.phase).ok_or_else(|| {
            SchedulerError::Rpc(Box::new(tonic::Status::internal(format!(
                "unknown phase {}",
                l.phase
            ))))
        })?,
        table: l.table_name,
        partition: l.partition,
        attempt: l.attempt,
        deadline_ms: l.deadline_ms,
        payload: serde_json::from_str(&l.payload_json)?,
    })
}

/// Converts a lease for the wire.
pub fn lease_to_proto(l: &Lease) -> pb::Lease {
    pb::Lease {
        task_id: l.task_id,
        migration_id: l.migration_id.clone(),
        phase: l.phase.as_str().to_string(),
        table_name: l.table.clone(),
        partition: l.partition,
        attempt: l.attempt,
        deadline_ms: l.deadline_ms,
        payload_json: l.payload.to_string(),
    }
}

#[async_trait]
impl SchedulerApi for GrpcScheduler {
    async fn register_node(&self, node: &str, flight_endpoint: &str, role: &str) -> Result<()> {
        let request = pb::RegisterNodeRequest {
            node_id: node.into(),
            flight_endpoint: flight_endpoint.into(),
            role: role.into(),
            pid: std::process::id(),
        };
        self.client.clone().register_node(request).await?;
        Ok(())
    }
    async fn register_agent(&self, agent: &str, node: &str, kind: &str) -> Result<()> {
        let request = pb::RegisterAgentRequest {
            agent_id: agent.into(),
            node_id: node.into(),
            kind: kind.into(),
        };
        self.client.clone().register_agent(request).await?;
        Ok(())
    }
    async fn lease(&self, agent: &str, node: &str, phases: &[Phase], wait: Duration) -> Leased {
        let request = pb::LeaseTaskRequest {
            agent_id: agent.into(),
            node_id: node.into(),
            phases: phases.iter().map(|p| p.as_str().to_string()).collect(),
            wait_ms: u32::try_from(wait.as_millis()).unwrap_or(u32::MAX),
        };
        let r = self.client.clone().lease_task(request).await?;
        r.into_inner().lease.map(lease_from_proto).transpose()
    }
    async fn heartbeat(&self, agent: &str, node: &str, leases: &[(i64, u32)]) -> Result<Vec<i64>> {
        let leases = leases
            .iter()
            .map(|&(task_id, attempt)| pb::LeaseRef { task_id, attempt })
            .collect();
        let request = pb::HeartbeatRequest {
            agent_id: agent.into(),
            node_id: node.into(),
            leases,
        };
        let r = self.client.clone().heartbeat(request).await?;
        Ok(r.into_inner().lost_task_ids)
    }
    async fn complete(&self, agent: &str, lease: &Lease, result: &serde_json::Value) -> Result<()> {
        let request = pb::CompleteTaskRequest {
            task_id: lease.task_id,
            attempt: lease.attempt,
            agent_id: agent.into(),
            result_json: result.to_string(),
        };
        let r = self.client.clone().complete_task(request).await;
        r.map_err(status_to_error)?;
        Ok(())
    }
    async fn fail(&self, agent: &str, lease: &Lease, error: &str, retryable: bool) -> Result<()> {
        let request = pb::FailTaskRequest {
            task_id: lease.task_id,
            attempt: lease.attempt,
            agent_id: agent.into(),
            error: error.into(),
            retryable,
        };
        let r = self.client.clone().fail_task(request).await;
        r.map_err(status_to_error)?;
        Ok(())
    }
}

/// Maps the server's FAILED_PRECONDITION back to a typed stale-attempt error.
fn status_to_error(s: tonic::Status) -> SchedulerError {
    if s.code() == tonic::Code::FailedPrecondition && s.message().contains("stale") {
        let task_id = s
            .metadata()
            .get("x-task-id")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0);
        let attempt = s
            .metadata()
            .get("x-attempt")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0);
        let current = s
            .metadata()
            .get("x-current")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0);
        return SchedulerError::StaleAttempt {
            task_id,
            attempt,
            current,
        };
    }
    SchedulerError::Rpc(Box::new(s))
}
