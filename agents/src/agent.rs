//! The agent actor. Each agent is an actix actor under a `Supervisor`: it
//! registers with the scheduler, pulls tasks of its kind's phases, runs each on
//! the work pool, heartbeats while it runs, and reports the outcome. If the
//! work panics, the agent reports the attempt as failed (so the task goes back
//! to the scheduler at once) and stops; the supervisor restarts it and it
//! registers again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use sensei_scheduler::{Lease, Phase, SchedulerApi, SchedulerError};

use crate::exec::{Dispatch, Execute};
use crate::node::NodeContext;

/// What an agent does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentKind {
    /// Ingestion.
    Scout,
    /// Transformation and delivery.
    Worker,
    /// Verification.
    Validator,
}

impl AgentKind {
    /// All kinds.
    pub const ALL: [AgentKind; 3] = [AgentKind::Scout, AgentKind::Worker, AgentKind::Validator];

    /// Name.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Scout => "scout",
            AgentKind::Worker => "worker",
            AgentKind::Validator => "validator",
        }
    }

    /// Phases this kind leases.
    pub fn phases(self) -> &'static [Phase] {
        match self {
            AgentKind::Scout => &[Phase::Ingestion],
            AgentKind::Worker => &[Phase::Transformation, Phase::Delivery],
            AgentKind::Validator => &[Phase::Verification],
        }
    }
}

/// Settings of an agent.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// How long one lease request may wait for a task when none is
    /// runnable (a long poll: a submitted task is taken at once).
    pub idle_poll: Duration,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            heartbeat: Duration::from_millis(1_000),
            idle_poll: Duration::from_millis(500),
        }
    }
}

struct Running {
    lease: Lease,
    lost: Arc<AtomicBool>,
}

/// A supervised agent.
pub struct TaskAgent {
    id: String,
    kind: AgentKind,
    settings: AgentSettings,
    scheduler: Arc<dyn SchedulerApi>,
    /// Runs the tasks, on this node.
    executor: Arc<dyn Execute>,
    node: Arc<NodeContext>,
    current: Option<Running>,
    draining: bool,
    restarts: Arc<AtomicU64>,
}

impl TaskAgent {
    /// Starts an agent under a supervisor; returns its address and a restart counter.
    pub fn start(
        id: String,
        kind: AgentKind,
        node: Arc<NodeContext>,
        scheduler: Arc<dyn SchedulerApi>,
        settings: AgentSettings,
    ) -> (Addr<TaskAgent>, Arc<AtomicU64>) {
        let executor = Arc::new(Dispatch(node.clone()));
        Self::start_with(id, kind, node, executor, scheduler, settings)
    }

    /// [`TaskAgent::start`], running tasks through `executor`.
    pub fn start_with(
        id: String,
        kind: AgentKind,
        node: Arc<NodeContext>,
        executor: Arc<dyn Execute>,
        scheduler: Arc<dyn SchedulerApi>,
        settings: AgentSettings,
    ) -> (Addr<TaskAgent>, Arc<AtomicU64>) {
        let restarts = Arc::new(AtomicU64::new(0));
        let r = restarts.clone();
        let addr = Supervisor::start(move |_| TaskAgent {
            id,
            kind,
            node,
            executor,
            scheduler,
            settings,
            current: None,
            draining: false,
            restarts: r,
        });
        (addr, restarts)
    }

    fn register(&mut self, ctx: &mut Context<Self>) {
        let sched = self.scheduler.clone();
        let (id, node, kind) = (
            self.id.clone(),
            self.node.node_id.clone(),
            self.kind.as_str(),
        );
        ctx.spawn(
            async move { sched.register_agent(&id, &node, kind).await }
                .into_actor(self)
                .map(|res, act, ctx| match res {
                    Ok(()) => {
                        tracing::debug!(agent = %act.id, "registered");
                        ctx.notify(Poll);
                    }
                    Err(e) => {
                        tracing::warn!(agent = %act.id, error = %e, "registration failed; retrying");
                        ctx.run_later(Duration::from_secs(1), |act, ctx| act.register(ctx));
                    }
                }),
        );
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        let Some(run) = &self.current else { return };
        let sched = self.scheduler.clone();
        let (id, node) = (self.id.clone(), self.node.node_id.clone());
        let leases = vec![(run.lease.task_id, run.lease.attempt)];
        let lost_flag = run.lost.clone();
        ctx.spawn(
            async move {
                match sched.heartbeat(&id, &node, &leases).await {
                    Ok(lost) if !lost.is_empty() => {
                        tracing::warn!(agent = %id, task = lost[0], "lease lost; abandoning the task");
                        lost_flag.store(true, Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(agent = %id, error = %e, "heartbeat failed"),
                }
            }
            .into_actor(self),
        );
    }

    fn run_task(&mut self, lease: Lease, ctx: &mut Context<Self>) {
        let lost = Arc::new(AtomicBool::new(false));
        self.current = Some(Running {
            lease: lease.clone(),
            lost: lost.clone(),
        });
        tracing::info!(agent = %self.id, task = lease.task_id, phase = %lease.phase, table = %lease.table,
            partition = lease.partition, attempt = lease.attempt, "task leased");
        let pool = self.node.pool.clone();
        let (executor, leased) = (self.executor.clone(), lease.clone());
        let work = async move { executor.execute(leased, lost).await };
        let sched = self.scheduler.clone();
        let id = self.id.clone();
        ctx.spawn(
            async move {
                let outcome = pool.run(work).await;
                let crashed = outcome.is_err();
                let report = match outcome {
                    Ok(Ok(result)) => sched.complete(&id, &lease, &result).await,
                    Ok(Err(crate::error::AgentError::Engine(
                        sensei_contracts::error::EngineError::LeaseLost(_),
                    ))) => Ok(()),
                    Ok(Err(e)) => {
                        tracing::warn!(agent = %id, task = lease.task_id, error = %e, retryable = e.retryable(), "task failed");
                        sched.fail(&id, &lease, &e.to_string(), e.retryable()).await
                    }
                    Err(crash) => {
                        tracing::error!(agent = %id, task = lease.task_id, error = %crash, "agent crashed; handing the task back");
                        sched.fail(&id, &lease, &crash.to_string(), true).await
                    }
                };
                match report {
                    Err(SchedulerError::StaleAttempt { .. }) => {
                        tracing::warn!(agent = %id, task = lease.task_id, "result refused: this attempt was fenced off")
                    }
                    Err(e) => tracing::warn!(agent = %id, task = lease.task_id, error = %e, "could not report the task"),
                    Ok(()) => {}
                }
                crashed
            }
            .into_actor(self)
            .map(|crashed, act, ctx| {
                act.current = None;
                if crashed {
                    // Let the supervisor restart this agent from a clean state.
                    ctx.stop();
                } else {
                    ctx.notify(Poll);
                }
            }),
        );
    }
}

impl Actor for TaskAgent {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Bounded mailbox: the agent only ever gets Poll/Drain from itself and its owner.
        ctx.set_mailbox_capacity(16);
        self.register(ctx);
        ctx.run_interval(self.settings.heartbeat, |act, ctx| act.heartbeat(ctx));
    }
}

impl Supervised for TaskAgent {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.restarts.fetch_add(1, Ordering::SeqCst);
        metrics::counter!(sensei_runtime::metrics::AGENT_RESTARTS, "kind" => self.kind.as_str())
            .increment(1);
        tracing::warn!(agent = %self.id, "restarting agent");
        self.current = None;
    }
}

/// Asks the agent for a task.
#[derive(Message)]
#[rtype(result = "()")]
struct Poll;

impl Handler<Poll> for TaskAgent {
    type Result = ();

    fn handle(&mut self, _msg: Poll, ctx: &mut Context<Self>) {
        if self.current.is_some() || self.draining {
            return;
        }
        let sched = self.scheduler.clone();
        let (id, node, phases) = (
            self.id.clone(),
            self.node.node_id.clone(),
            self.kind.phases(),
        );
        let idle = self.settings.idle_poll;
        // A long poll: the scheduler answers the moment a task is runnable,
        // or with nothing after `idle`; then the agent asks again.
        ctx.spawn(
            async move { sched.lease(&id, &node, phases, idle).await }
                .into_actor(self)
                .map(move |res, act, ctx| match res {
                    Ok(Some(lease)) => act.run_task(lease, ctx),
                    Ok(None) => ctx.notify(Poll),
                    Err(e) => {
                        tracing::debug!(agent = %act.id, error = %e, "lease request failed");
                        ctx.run_later(Duration::from_millis(500), |_, ctx| ctx.notify(Poll));
                    }
                }),
        );
    }
}

/// Stops taking new tasks; the current one finishes.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Drain;

impl Handler<Drain> for TaskAgent {
    type Result = bool;

    /// Returns true when the agent is idle.
    fn handle(&mut self, _msg: Drain, _ctx: &mut Context<Self>) -> bool {
        self.draining = true;
        self.current.is_none()
    }
}
