//! The head: scheduler, orchestrator and (for a cluster) the gRPC control
//! plane that workers and `sensei-cluster submit` talk to.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sensei_agents::orchestrator::{Orchestrator, Start};
use sensei_runtime::config::MigrationConfig;
use sensei_runtime::config::TopicsSection;
use sensei_runtime::signing::SigningKey;
use sensei_runtime::store::ArtifactStore;
use sensei_scheduler::{ControlError, MigrationControl, Scheduler, SchedulerError, TokioClock};

/// The head's shared pieces.
pub struct Head {
    /// The migration driver.
    pub orchestrator: Arc<Orchestrator>,
    /// The scheduler.
    pub scheduler: Arc<Scheduler>,
    /// The working folder.
    pub workdir: PathBuf,
    /// The public half of the key that signs this head's certificates: the
    /// public Flight endpoint serves only what it signed.
    pub public_key: [u8; 32],
    /// The working folder's lock, held while this head lives (released by
    /// the OS when the process ends, however it ends).
    _lock: std::fs::File,
}

/// Takes the working folder's lock (`head.lock`, holding the owner's pid and
/// command), or says which process holds it: two heads driving one state
/// database would each declare the other's agents gone.
fn lock_workdir(workdir: &Path) -> anyhow::Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let path = workdir.join("head.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut owner = String::new();
            let _ = file.read_to_string(&mut owner);
            let owner = owner.trim();
            anyhow::bail!(
                "working folder {} is in use by {}; wait for it to end (or stop it), or give another --workdir",
                workdir.display(),
                if owner.is_empty() { "another process" } else { owner }
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            anyhow::bail!("cannot lock {}: {e}", path.display())
        }
    }
    let me = format!(
        "process {} ({})\n",
        std::process::id(),
        std::env::args().take(2).collect::<Vec<_>>().join(" ")
    );
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(me.as_bytes())?;
    Ok(file)
}

/// Opens the head's durable state in `workdir`: `state.db` (scheduler),
/// the topics (`topics`: `embedded`, a log under `events/`, or
/// `kafka://...` with the `[topics]` settings), artifacts, and the signing key.
pub fn open_head(
    workdir: &Path,
    key_file: &str,
    topics: &str,
    settings: &TopicsSection,
) -> anyhow::Result<Head> {
    crate::private_dir(workdir)?;
    let lock = lock_workdir(workdir)?;
    let events = sensei_runtime::topic::open(topics, settings, &workdir.join("events"))?;
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
    let public_key = key.public_key();
    let orchestrator = Arc::new(Orchestrator::new(scheduler.clone(), artifacts, events, key));
    Ok(Head {
        orchestrator,
        scheduler,
        workdir: workdir.to_path_buf(),
        public_key,
        _lock: lock,
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

    /// The status document of a migration (phases, checkpoints, events).
    pub fn status_doc(&self, id: &str) -> anyhow::Result<serde_json::Value> {
        Ok(self.orchestrator.status(id)?)
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
    async fn submit(&self, config_json: &str, restart: bool) -> Result<String, ControlError> {
        let config: MigrationConfig = serde_json::from_str(config_json)
            .map_err(|e| ControlError::Configuration(e.to_string()))?;
        config
            .validate(None)
            .map_err(|e| ControlError::Configuration(e.to_string()))?;
        let (id, start) = self
            .orchestrator
            .submit(&config, restart)
            .await
            .map_err(|e| ControlError::Head(e.to_string()))?;
        if !matches!(start, Start::Ended(_)) {
            self.drive(&id);
        }
        Ok(id)
    }

    async fn status(&self, migration_id: &str) -> Result<serde_json::Value, ControlError> {
        self.orchestrator.status(migration_id).map_err(|e| match e {
            sensei_agents::AgentError::Scheduler(SchedulerError::UnknownMigration(_)) => {
                ControlError::UnknownMigration(e.to_string())
            }
            e => ControlError::Head(e.to_string()),
        })
    }
}
