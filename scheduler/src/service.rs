//! The scheduler as a tonic gRPC service.
//!
//! Worker RPCs (register, lease, heartbeat, complete, fail) go straight to the
//! [`Scheduler`]. Submitting a migration and reading its status need the head's
//! orchestrator, which lives above this crate; it plugs in through
//! [`MigrationControl`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sensei_proto::v1 as pb;
use sensei_runtime::tokens::ClusterSecret;
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::{Request, Response, Status};

use crate::client::{lease_to_proto, MAX_CONTROL_MESSAGE};
use crate::core::Scheduler;
use crate::error::{ControlError, SchedulerError};

/// The longest a lease call is held waiting for a task.
const MAX_LEASE_WAIT_MS: u64 = 5_000;

/// What the head does with submitted migrations.
#[async_trait]
pub trait MigrationControl: Send + Sync + 'static {
    /// Accepts a migration (resolved configuration as JSON); returns its id.
    async fn submit(&self, config_json: &str, restart: bool) -> Result<String, ControlError>;
    /// A status document for a migration.
    async fn status(&self, migration_id: &str) -> Result<serde_json::Value, ControlError>;
}

/// The gRPC service.
pub struct SchedulerService {
    scheduler: Arc<Scheduler>,
    control: Option<Arc<dyn MigrationControl>>,
}

impl SchedulerService {
    /// A service over `scheduler`, with the head's control when there is one.
    pub fn new(scheduler: Arc<Scheduler>, control: Option<Arc<dyn MigrationControl>>) -> Self {
        SchedulerService { scheduler, control }
    }

    /// The tonic server with explicit message limits, admitting only calls
    /// that carry the cluster `secret` (workers, and `sensei-cluster` on
    /// the machine that holds the secret file).
    pub fn into_server(
        self,
        secret: ClusterSecret,
    ) -> InterceptedService<pb::scheduler_server::SchedulerServer<Self>, impl Interceptor + Clone>
    {
        let server = pb::scheduler_server::SchedulerServer::new(self)
            .max_decoding_message_size(MAX_CONTROL_MESSAGE)
            .max_encoding_message_size(MAX_CONTROL_MESSAGE);
        InterceptedService::new(server, secret.interceptor())
    }
}

fn to_status(e: SchedulerError) -> Status {
    match &e {
        SchedulerError::StaleAttempt {
            task_id,
            attempt,
            current,
        } => {
            let mut s = Status::failed_precondition(e.to_string());
            let md = s.metadata_mut();
            for (k, v) in [
                ("x-task-id", task_id.to_string()),
                ("x-attempt", attempt.to_string()),
                ("x-current", current.to_string()),
            ] {
                if let Ok(v) = v.parse() {
                    md.insert(k, v);
                }
            }
            s
        }
        SchedulerError::UnknownTask(_) | SchedulerError::UnknownMigration(_) => {
            Status::not_found(e.to_string())
        }
        _ if e.retryable() => Status::unavailable(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

#[async_trait]
impl pb::scheduler_server::Scheduler for SchedulerService {
    async fn register_node(
        &self,
        r: Request<pb::RegisterNodeRequest>,
    ) -> Result<Response<pb::RegisterNodeResponse>, Status> {
        let r = r.into_inner();
        self.scheduler
            .register_node(&r.node_id, &r.flight_endpoint, &r.role, r.pid)
            .map_err(to_status)?;
        Ok(Response::new(pb::RegisterNodeResponse {}))
    }

    async fn register_agent(
        &self,
        r: Request<pb::RegisterAgentRequest>,
    ) -> Result<Response<pb::RegisterAgentResponse>, Status> {
        let r = r.into_inner();
        self.scheduler
            .register_agent(&r.agent_id, &r.node_id, &r.kind)
            .map_err(to_status)?;
        Ok(Response::new(pb::RegisterAgentResponse {}))
    }

    async fn lease_task(
        &self,
        r: Request<pb::LeaseTaskRequest>,
    ) -> Result<Response<pb::LeaseTaskResponse>, Status> {
        let r = r.into_inner();
        let phases: Vec<crate::model::Phase> = r
            .phases
            .iter()
            .filter_map(|p| crate::model::Phase::parse(p))
            .collect();
        // A long poll, held at most a few seconds (well inside any
        // client's call timeout).
        let wait = Duration::from_millis(u64::from(r.wait_ms).min(MAX_LEASE_WAIT_MS));
        let lease =
            crate::client::lease_within(&self.scheduler, &r.agent_id, &r.node_id, &phases, wait)
                .await
                .map_err(to_status)?;
        Ok(Response::new(pb::LeaseTaskResponse {
            lease: lease.as_ref().map(lease_to_proto),
        }))
    }

    async fn heartbeat(
        &self,
        r: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let r = r.into_inner();
        let leases: Vec<(i64, u32)> = r.leases.iter().map(|l| (l.task_id, l.attempt)).collect();
        let lost = self
            .scheduler
            .heartbeat(&r.agent_id, &r.node_id, &leases)
            .map_err(to_status)?;
        Ok(Response::new(pb::HeartbeatResponse {
            lost_task_ids: lost,
        }))
    }

    async fn complete_task(
        &self,
        r: Request<pb::CompleteTaskRequest>,
    ) -> Result<Response<pb::CompleteTaskResponse>, Status> {
        let r = r.into_inner();
        let result: serde_json::Value = serde_json::from_str(&r.result_json)
            .map_err(|e| Status::invalid_argument(format!("result_json: {e}")))?;
        self.scheduler
            .complete(r.task_id, r.attempt, &result)
            .map_err(to_status)?;
        Ok(Response::new(pb::CompleteTaskResponse {}))
    }

    async fn fail_task(
        &self,
        r: Request<pb::FailTaskRequest>,
    ) -> Result<Response<pb::FailTaskResponse>, Status> {
        let r = r.into_inner();
        self.scheduler
            .fail(r.task_id, r.attempt, &r.error, r.retryable)
            .map_err(to_status)?;
        Ok(Response::new(pb::FailTaskResponse {}))
    }

    async fn submit_migration(
        &self,
        r: Request<pb::SubmitMigrationRequest>,
    ) -> Result<Response<pb::SubmitMigrationResponse>, Status> {
        let control = self
            .control
            .as_ref()
            .ok_or_else(|| Status::unimplemented("this node is not a head"))?;
        let r = r.into_inner();
        let id = control.submit(&r.config_json, r.restart).await?;
        Ok(Response::new(pb::SubmitMigrationResponse {
            migration_id: id,
        }))
    }

    async fn migration_status(
        &self,
        r: Request<pb::MigrationStatusRequest>,
    ) -> Result<Response<pb::MigrationStatusResponse>, Status> {
        let control = self
            .control
            .as_ref()
            .ok_or_else(|| Status::unimplemented("this node is not a head"))?;
        let doc = control.status(&r.into_inner().migration_id).await?;
        Ok(Response::new(pb::MigrationStatusResponse {
            status_json: doc.to_string(),
        }))
    }

    async fn cluster_status(
        &self,
        _r: Request<pb::ClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        let doc = self.scheduler.cluster_status().map_err(to_status)?;
        Ok(Response::new(pb::ClusterStatusResponse {
            status_json: doc.to_string(),
        }))
    }
}
