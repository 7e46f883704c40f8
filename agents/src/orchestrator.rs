//! The head's state machine. For each phase in order it asks the phase's
//! planner (each engine crate's `planner.rs`) for tasks, submits them, waits
//! for the agents to finish them, has the planner finalise the phase's
//! checkpoint artifact, records the artifact's hash with the scheduler
//! (which only then accepts the next phase's tasks), publishes it on the
//! phase's topic, and sets the migration's state when a planner says it
//! must stop. This file alone performs those transitions; the planners only
//! read and write artifacts.
//!
//! A phase is planned once its barrier's checkpoint is recorded: the phase
//! before it, except delivery into a target that stages it (a staging
//! schema, published only after the certificate), which starts after
//! transformation and loads while verification runs; its planner's
//! [`Planner::gate`] holds everything after the load until the certificate.
//!
//! Every step is idempotent and reads its inputs from durable state, so a head
//! restarted at any point resumes by calling [`Orchestrator::step`] again.

use std::path::PathBuf;
use std::sync::Arc;

use sensei_contracts::planner::{
    Finalized, Gate, PhaseContext, Plan, PlannedTask, Planner, Stop, TaskOutcome,
};
use sensei_runtime::config::MigrationConfig;
use sensei_runtime::signing::SigningKey;
use sensei_runtime::store::{sha256_hex, ArtifactStore};
use sensei_runtime::topic::{publish_json, EventLog};
use sensei_scheduler::{MigrationState, Phase, Policy, Scheduler, TaskRecord, TaskSpec, TaskState};

use crate::artifacts::*;
use crate::error::{AgentError, Result};
use crate::handoff::{completion_document, completion_topic, last_record_of};
use sensei_architect::planner::TransformationPlanner;
use sensei_delivery::planner::{is_partition, DeliveryPlanner};
use sensei_delivery::post::PUBLISH;
use sensei_scout::planner::IngestionPlanner;
use sensei_validator::planner::VerificationPlanner;

/// The head's migration driver.
pub struct Orchestrator {
    scheduler: Arc<Scheduler>,
    artifacts: ArtifactStore,
    events: Arc<dyn EventLog>,
    ingestion: IngestionPlanner,
    transformation: TransformationPlanner,
    verification: VerificationPlanner,
    delivery: DeliveryPlanner,
}

/// How a submitted migration starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// A new migration.
    New,
    /// An unfinished one, resumed.
    Resumed,
    /// One that had already ended in this state.
    Ended(MigrationState),
}

impl Orchestrator {
    /// A driver over the head's scheduler, artifact store, event log and key.
    pub fn new(
        scheduler: Arc<Scheduler>,
        artifacts: ArtifactStore,
        events: Arc<dyn EventLog>,
        key: Arc<SigningKey>,
    ) -> Self {
        Orchestrator {
            scheduler,
            artifacts,
            events,
            ingestion: IngestionPlanner::default(),
            transformation: TransformationPlanner,
            verification: VerificationPlanner::new(key),
            delivery: DeliveryPlanner,
        }
    }

    /// The scheduler.
    pub fn scheduler(&self) -> &Arc<Scheduler> {
        &self.scheduler
    }

    /// The artifact store.
    pub fn artifacts(&self) -> &ArtifactStore {
        &self.artifacts
    }

    /// Registers a migration (or finds it), after the preflight checks.
    /// `restart` forgets earlier progress and artifacts of the same migration.
    pub async fn submit(&self, config: &MigrationConfig, restart: bool) -> Result<(String, Start)> {
        let c = config.clone();
        tokio::task::spawn_blocking(move || crate::preflight::check(&c))
            .await
            .map_err(|e| AgentError::malformed("preflight", e))??;
        let id = config.migration_id();
        // A rerun with other settings: the first phase they affect starts
        // again (and says so); the work before it is kept.
        let mut starts_over = None;
        if !restart {
            if let Ok(stored) = self.config(&id) {
                starts_over = self.apply_changed_settings(&id, &stored, config).await?;
            }
        }
        if restart || starts_over.is_some() {
            self.scheduler.reset_migration(&id)?;
            self.artifacts.delete_prefix(&id).await?;
        }
        // Never persisted: passwords. The stored configuration (and every task
        // payload built from it) carries `***`; sessions take the password from
        // the environment (PGPASSWORD), which `sensei migrate` fills from the URL.
        let config_json = config.redacted().to_string();
        let start = match self.scheduler.create_migration(
            &id,
            &config_json,
            Policy {
                max_ingestion_tasks: config.source.max_sessions,
                ..Policy::from_config(&config.scheduler)
            },
        )? {
            None => Start::New,
            Some(state @ (MigrationState::Running | MigrationState::AwaitingReview)) => {
                if state == MigrationState::AwaitingReview {
                    self.scheduler
                        .set_migration_state(&id, MigrationState::Running, None)?;
                }
                Start::Resumed
            }
            Some(MigrationState::Halted) => {
                // A person reran a halted migration: give its failed tasks another go.
                self.scheduler.resume_migration(&id)?;
                Start::Resumed
            }
            Some(other) => Start::Ended(other),
        };
        if let Some(why) = starts_over {
            self.scheduler.event(&id, "warn", &why)?;
        }
        Ok((id, start))
    }

    /// Takes a rerun's settings into a migration that exists (see
    /// [`crate::rerun`]); returns why it must start over, if it must.
    async fn apply_changed_settings(
        &self,
        id: &str,
        stored: &MigrationConfig,
        config: &MigrationConfig,
    ) -> Result<Option<String>> {
        // An input file fixed since it was extracted counts as a changed
        // source: the same check as before every read (size and time).
        let mut files = Vec::new();
        let manifest = format!("{id}/manifest.json");
        if self.artifacts.exists(&manifest).await? {
            let m: Manifest = serde_json::from_slice(&self.artifacts.get(&manifest).await?)?;
            for info in m.tables.iter().filter_map(|t| t.file.as_ref()) {
                if sensei_connectors::files::check_unchanged(info).is_err() {
                    files.push(info.path.display().to_string());
                }
            }
        }
        let delivery = self.scheduler.phase_tasks(id, Phase::Delivery)?;
        // A staged delivery reaches the target only when it is published.
        let area = format!("{id}/{STAGING_AREA}");
        let staged = self.artifacts.exists(&area).await?
            && !serde_json::from_slice::<serde_json::Value>(&self.artifacts.get(&area).await?)?
                .is_null();
        let standing = crate::rerun::Standing {
            completed: self.scheduler.migration_state(id)?.0 == MigrationState::Completed,
            delivery_planned: !delivery.is_empty(),
            delivered: delivery.iter().any(|t| {
                t.state == TaskState::Done
                    && if staged {
                        t.table == PUBLISH
                    } else {
                        is_partition(&t.table)
                    }
            }),
            verifying: self.scheduler.progress(id, Phase::Verification)?.total > 0,
        };
        let rerun = crate::rerun::decide(stored, config, &files, standing);
        for w in &rerun.warnings {
            self.scheduler.event(id, "warn", w)?;
        }
        if let Some(next) = &rerun.config {
            self.scheduler
                .set_migration_config(id, &next.redacted().to_string())?;
        }
        if let Some(why) = &rerun.verify_again {
            crate::rerun::set_certificate_aside(
                &self.artifacts.local_path(id),
                self.scheduler.now_ms(),
            )?;
            self.scheduler.reset_from(id, Phase::Verification, why)?;
        }
        Ok(rerun.start_over)
    }

    pub(crate) fn config(&self, id: &str) -> Result<MigrationConfig> {
        Ok(serde_json::from_str(&self.scheduler.migration_config(id)?)?)
    }

    pub(crate) fn context<'a>(
        &'a self,
        id: &'a str,
        config: &'a MigrationConfig,
    ) -> PhaseContext<'a> {
        PhaseContext::new(id, config, &self.artifacts)
    }

    /// The phase whose checkpoint `phase` waits for before it is planned.
    fn barrier(&self, phase: Phase, config: &MigrationConfig) -> Result<Option<Phase>> {
        let staged = phase == Phase::Delivery
            && config.delivery.staging
            && sensei_connectors::target::StagingArea::engine_stages(&config.target.url)
                .map_err(sensei_contracts::error::EngineError::from)?;
        Ok(if staged {
            Some(Phase::Transformation)
        } else {
            phase.previous()
        })
    }

    fn planner(&self, phase: Phase) -> &dyn Planner {
        match phase {
            Phase::Ingestion => &self.ingestion,
            Phase::Transformation => &self.transformation,
            Phase::Verification => &self.verification,
            Phase::Delivery => &self.delivery,
        }
    }

    /// Logs the events a planner reported.
    pub(crate) fn log(&self, cx: PhaseContext<'_>) -> Result<()> {
        for n in cx.notes {
            // Logged once, by the scheduler that records it.
            self.scheduler.event(cx.id, n.level, &n.message)?;
        }
        Ok(())
    }

    /// Stops the migration where it is.
    fn stop(&self, id: &str, stop: &Stop) -> Result<()> {
        let (state, why) = match stop {
            Stop::AwaitReview(why) => (MigrationState::AwaitingReview, why),
            Stop::Halt(why) => (MigrationState::Halted, why),
            Stop::Fail(why) => (MigrationState::Failed, why),
        };
        self.scheduler.set_migration_state(id, state, Some(why))?;
        Ok(())
    }

    /// Advances a migration as far as it can go now; returns its state.
    pub async fn step(&self, id: &str) -> Result<MigrationState> {
        self.step_until(id, None).await
    }

    /// Like [`Orchestrator::step`], but plans no phase after `until`.
    pub async fn step_until(&self, id: &str, until: Option<Phase>) -> Result<MigrationState> {
        let (state, _) = self.scheduler.migration_state(id)?;
        if state != MigrationState::Running {
            return Ok(state);
        }
        self.scheduler.expire_leases()?;
        let config = self.config(id)?;
        // Whether a phase is still under way: a later one runs beside it
        // only when its barrier is an earlier checkpoint.
        let mut under_way = false;
        for phase in Phase::ALL {
            if self.scheduler.checkpoint(id, phase)?.is_some() {
                continue;
            }
            if until.is_some_and(|u| phase > u) {
                return Ok(MigrationState::Running);
            }
            let barrier = self.barrier(phase, &config)?;
            if let Some(b) = barrier {
                if self.scheduler.checkpoint(id, b)?.is_none() {
                    return Ok(MigrationState::Running);
                }
            }
            // Counted first: the tasks themselves (with their results) are
            // read only when the phase is complete.
            let mut progress = self.scheduler.progress(id, phase)?;
            if phase == Phase::Ingestion
                && progress.total > 0
                && self
                    .ingestion
                    .snapshot_lost(&self.context(id, &config))
                    .await?
            {
                // The session holding the exported snapshot died with an earlier
                // head: partitions read at it and partitions read now would not
                // be one instant. Extract everything again at a new snapshot.
                self.scheduler.reset_phase(
                    id,
                    phase,
                    "the source snapshot was lost with the previous head; extracting again at a new snapshot",
                )?;
                progress = Default::default();
            }
            if progress.total == 0 {
                if let Some(b) = barrier {
                    self.hand_off(id, b)?;
                }
                self.plan(id, &config, phase, barrier).await?;
            } else if progress.done == progress.total {
                let tasks = self.scheduler.phase_tasks(id, phase)?;
                self.complete(id, &config, phase, tasks).await?;
            }
            let (state, _) = self.scheduler.migration_state(id)?;
            if state != MigrationState::Running {
                return Ok(state);
            }
            if self.scheduler.checkpoint(id, phase)?.is_none() {
                under_way = true;
            }
        }
        if under_way {
            return Ok(MigrationState::Running);
        }
        self.scheduler
            .set_migration_state(id, MigrationState::Completed, None)?;
        Ok(MigrationState::Completed)
    }

    async fn plan(
        &self,
        id: &str,
        config: &MigrationConfig,
        phase: Phase,
        barrier: Option<Phase>,
    ) -> Result<()> {
        let mut cx = self.context(id, config);
        if let Some(previous) = phase.previous() {
            cx.previous_checkpointed = self.scheduler.checkpoint(id, previous)?.is_some();
        }
        let plan = self.planner(phase).plan(&mut cx).await;
        self.log(cx)?;
        let tasks = match plan? {
            Plan::Stop(stop) => return self.stop(id, &stop),
            Plan::Wait => return Ok(()),
            Plan::Tasks(tasks) => tasks,
        };
        let empty = tasks.is_empty();
        self.scheduler
            .submit_tasks_after(id, phase, barrier, &specs_of(tasks))?;
        if empty {
            // Nothing to do in this phase (an empty source): close it at once.
            self.complete(id, config, phase, Vec::new()).await?;
        }
        Ok(())
    }

    /// Every task of the phase is done: its planner's next round submitted
    /// (false), or the phase's checkpoint (true): its artifact finalised,
    /// the migration stopped if the artifact says so, the artifact's hash
    /// recorded (the scheduler then accepts the next phase's tasks) and
    /// published on its topic.
    async fn complete(
        &self,
        id: &str,
        config: &MigrationConfig,
        phase: Phase,
        tasks: Vec<TaskRecord>,
    ) -> Result<bool> {
        let outcomes: Vec<TaskOutcome> = tasks
            .into_iter()
            .map(|t| TaskOutcome {
                id: t.id,
                table: t.table,
                partition: t.partition,
                result: t.result,
            })
            .collect();
        let mut cx = self.context(id, config);
        if let Some(previous) = phase.previous() {
            cx.previous_checkpointed = self.scheduler.checkpoint(id, previous)?.is_some();
            if cx.previous_checkpointed && phase == Phase::Delivery {
                // A delivery planned early takes the certificate's record
                // off its topic once it is there.
                self.hand_off(id, previous)?;
            }
        }
        let gate = self.planner(phase).gate(&mut cx, &outcomes).await;
        match gate {
            Ok(Gate::Open) => {}
            Ok(Gate::Wait) => return Ok(false),
            Ok(Gate::Stop(stop)) => {
                self.log(cx)?;
                self.stop(id, &stop)?;
                return Ok(false);
            }
            Err(e) => {
                self.log(cx)?;
                return Err(e.into());
            }
        }
        let more = self.planner(phase).follow_up(&mut cx, &outcomes).await;
        if !more.as_ref().is_ok_and(Vec::is_empty) {
            self.log(cx)?;
            self.scheduler.submit_more(id, phase, &specs_of(more?))?;
            return Ok(false);
        }
        let finalized = self.planner(phase).finalize(&mut cx, &outcomes).await;
        self.log(cx)?;
        let Finalized { artifact, stop } = finalized?;
        if let Some(stop) = &stop {
            // Stopped first: a head that dies before the checkpoint is
            // recorded must not take the next phase for granted.
            self.stop(id, stop)?;
        }
        let topic = completion_topic(phase);
        let bytes = self.artifacts.get(&artifact).await?;
        let sha = sha256_hex(&bytes);
        let uri = self.artifacts.uri(&artifact);
        self.scheduler.record_checkpoint(id, phase, &uri, &sha)?;
        publish_json(
            self.events.as_ref(),
            topic,
            id,
            &completion_document(id, phase, &bytes, &uri, &sha)?,
        )?;
        Ok(true)
    }

    /// The hand-off from `previous` to the phase after it goes through the
    /// topics: this migration's consumer group (`sensei-<id>`) reads the
    /// completion records of `previous` from its committed offset, takes
    /// the one that names the recorded checkpoint (its SHA-256; the
    /// manifest itself for ingestion) and commits past it. A record lost
    /// between the checkpoint and its publication (a crash there) is
    /// published again first, so every phase a consumer sees started after
    /// its predecessor's document was on the topic.
    fn hand_off(&self, id: &str, previous: Phase) -> Result<()> {
        let Some(checkpoint) = self.scheduler.checkpoint(id, previous)? else {
            return Ok(());
        };
        let topic = completion_topic(previous);
        let group = format!("sensei-{id}");
        let log = self.events.as_ref();
        let find = |from, to| last_record_of(log, (id, previous, &checkpoint.sha256), from, to);
        let committed = log.committed(&group, topic)?;
        if let Some(offset) = find(committed, u64::MAX)? {
            log.commit(&group, topic, offset + 1)?;
            return Ok(());
        }
        // Handed off already (a rerun planning the same phase again).
        if committed > 0 && find(0, committed)?.is_some() {
            return Ok(());
        }
        let path = checkpoint
            .uri
            .strip_prefix("file://")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(&checkpoint.uri));
        let bytes = std::fs::read(&path)
            .map_err(|e| AgentError::malformed(format!("checkpoint {}", path.display()), e))?;
        let doc = completion_document(id, previous, &bytes, &checkpoint.uri, &checkpoint.sha256)?;
        let why = format!("{} had no record of this migration's {previous} checkpoint (lost in a crash?): published it again", topic.name());
        self.scheduler.event(id, "warn", &why)?;
        let next = publish_json(log, topic, id, &doc)? + 1;
        log.commit(&group, topic, next)?;
        Ok(())
    }

    /// A delivery that halted before any batch landed takes back the tables
    /// it created and forgets its tasks: the rerun the halt message advises
    /// plans delivery again, with the target schema as it is then.
    async fn take_back_empty_delivery(&self, id: &str) -> Result<()> {
        if self.scheduler.checkpoint(id, Phase::Delivery)?.is_some() {
            return Ok(());
        }
        let config = self.config(id)?;
        let mut cx = self.context(id, &config);
        let dropped = self.delivery.take_back_empty(&mut cx).await;
        self.log(cx)?;
        let dropped = dropped?;
        if dropped.is_empty() {
            return Ok(());
        }
        let (_, why) = self.scheduler.migration_state(id)?;
        let why = format!(
            "{}; no batch was delivered: the tables this delivery created ({}) were dropped again, the target is as it was; fix the cause, then rerun the same command",
            why.unwrap_or_else(|| "delivery halted".into()),
            dropped.join(", ")
        );
        self.scheduler.reset_from(
            id,
            Phase::Delivery,
            "delivery halted before its first batch",
        )?;
        self.scheduler
            .set_migration_state(id, MigrationState::Halted, Some(&why))?;
        Ok(())
    }

    /// Drives a migration until it stops needing the head (a terminal state).
    pub async fn drive(&self, id: &str) -> Result<MigrationState> {
        self.drive_until(id, None).await
    }

    /// Drives a migration until a terminal state or, with `until`, until that
    /// phase's checkpoint is recorded (the migration stays resumable from there).
    pub async fn drive_until(&self, id: &str, until: Option<Phase>) -> Result<MigrationState> {
        // The head's own work (discovery, planning, finalising) meets the
        // agents' transient failures too: retried with backoff, not fatal.
        // It wakes when the scheduler has something for it (a phase's last
        // task done, a failure, a round submitted, a checkpoint recorded).
        let mut failures = 0u32;
        let mut changes = self.scheduler.watch_settled();
        loop {
            changes.borrow_and_update();
            let state = match self.step_until(id, until).await {
                Ok(s) => {
                    failures = 0;
                    s
                }
                Err(e) if e.retryable() && failures < 5 => {
                    failures += 1;
                    // Logged once, by the scheduler recording the event.
                    let _ = self.scheduler.event(
                        id,
                        "warn",
                        &format!("transient failure, retrying ({failures}/5): {e}"),
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(250 << failures)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if state == MigrationState::Halted {
                if let Err(e) = self.take_back_empty_delivery(id).await {
                    let why = format!(
                        "the tables this delivery created could not be checked or dropped: {e}"
                    );
                    let _ = self.scheduler.event(id, "warn", &why);
                }
            }
            if state.is_terminal() {
                return Ok(state);
            }
            if let Some(u) = until {
                if self.scheduler.checkpoint(id, u)?.is_some() {
                    return Ok(state);
                }
            }
            let _ = tokio::time::timeout(std::time::Duration::from_millis(100), changes.changed())
                .await;
        }
    }
}

fn specs_of(tasks: Vec<PlannedTask>) -> Vec<TaskSpec> {
    tasks
        .into_iter()
        .map(|t| TaskSpec {
            table: t.table,
            partition: t.partition,
            payload: t.payload,
            preferred_node: t.preferred_node,
        })
        .collect()
}
