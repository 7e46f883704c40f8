//! The head: scheduler, orchestrator and (for a cluster) the gRPC control
//! plane that workers and `sensei-cluster submit` talk to.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sensei_agents::orchestrator::{Orchestrator, Start};
use sensei_runtime::config::MigrationConfig;
use sensei_runtime::signing::SigningKey;
use sensei_runtime::store::ArtifactStore;
use sensei_runtime::topic::EmbeddedLog;
use sensei_scheduler::{MigrationControl, Scheduler, TokioClock};

/// The head's shared pieces.
pub struct Head {
    /// The migration driver.
    pub orchestrator: Arc<Orchestrator>,
    /// The scheduler.
    pub scheduler: Arc<Scheduler>,
    /// The working folder.
    pub workdir: PathBuf,
}

/// Opens the head's durable state in `workdir`: `state.db` (scheduler),
/// `events/` (embedded topic log), artifacts, and the signing key.
pub fn open_head(workdir: &Path, key_file: &str) -> anyhow::Result<Head> {
    std::fs::create_dir_all(workdir)
        .map_err(|e| anyhow::anyhow!("cannot create working folder {}: {e}", workdir.display()))?;
    let events = Arc::new(EmbeddedLog::open(workdir.join("events"))?);
    let scheduler = Arc::new(Scheduler::open(
        &workdir.join("state.db"),
        Arc::new(TokioClock::new()),
        Some(events.clone()),
    )?);
    let artifacts = ArtifactStore::local(workdir)?;
    let key_path = if key_file.is_empty() {
        workdir.join("keys").join("signing.key")
    } else {
        PathBuf::from(key_file)
    };
    let key = Arc::new(SigningKey::load_or_generate(&key_path)?);
    let orchestrator = Arc::new(Orchestrator::new(scheduler.clone(), artifacts, events, key));
    Ok(Head {
        orchestrator,
        scheduler,
        workdir: workdir.to_path_buf(),
    })
}

/// The head's answer to submissions over gRPC: each accepted migration is
/// driven by one task on the work pool until it reaches a terminal state.
pub struct HeadControl {
    orchestrator: Arc<Orchestrator>,
    handle: tokio::runtime::Handle,
    /// Migrations being driven, so a resubmission attaches instead of starting a second driver.
    driving: Arc<Mutex<HashSet<String>>>,
}

impl HeadControl {
    /// A control over `orchestrator`, driving migrations on `handle`.
    pub fn new(orchestrator: Arc<Orchestrator>, handle: tokio::runtime::Handle) -> Self {
        HeadControl {
            orchestrator,
            handle,
            driving: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// Starts driving a migration unless it is already driven.
    pub fn drive(&self, id: &str) {
        let mut set = self.driving.lock().unwrap_or_else(|p| p.into_inner());
        if !set.insert(id.to_string()) {
            return;
        }
        let (orch, id, driving) = (
            self.orchestrator.clone(),
            id.to_string(),
            self.driving.clone(),
        );
        self.handle.spawn(async move {
            match orch.drive(&id).await {
                Ok(state) => {
                    tracing::info!(migration = %id, state = state.as_str(), "migration stopped")
                }
                Err(e) => {
                    tracing::error!(migration = %id, error = %e, "migration driver failed");
                    let _ = orch.scheduler().set_migration_state(
                        &id,
                        sensei_scheduler::MigrationState::Halted,
                        Some(&e.to_string()),
                    );
                }
            }
            driving
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        });
    }
}

#[tonic::async_trait]
impl MigrationControl for HeadControl {
    async fn submit(&self, config_json: &str, restart: bool) -> Result<String, String> {
        let config: MigrationConfig =
            serde_json::from_str(config_json).map_err(|e| format!("configuration: {e}"))?;
        config.validate(None).map_err(|e| e.to_string())?;
        let (id, start) = self
            .orchestrator
            .submit(&config, restart)
            .await
            .map_err(|e| e.to_string())?;
        if !matches!(start, Start::Ended(_)) {
            self.drive(&id);
        }
        Ok(id)
    }

    async fn status(&self, migration_id: &str) -> Result<serde_json::Value, String> {
        self.orchestrator
            .status(migration_id)
            .map_err(|e| e.to_string())
    }
}
