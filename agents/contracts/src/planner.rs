//! The head's half of a phase, as each engine crate provides it: plan the
//! phase's tasks (or say why the migration must wait), and turn the
//! finished tasks' results into the phase's checkpoint artifact. A
//! [`Planner`] reads and writes artifacts through a [`PhaseContext`] and
//! never touches the scheduler: the orchestrator (`sensei-agents`) submits
//! what it plans, records the checkpoint it finalises, and sets the
//! migration's state from what it returns.

use bytes::Bytes;
use sensei_runtime::config::MigrationConfig;
use sensei_runtime::store::ArtifactStore;

use crate::error::{EngineError, Result};

/// One event a planner reports (the orchestrator logs it with the migration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// `info`, `warn` or `error`.
    pub level: &'static str,
    /// What happened.
    pub message: String,
}

/// What a planner works with: the migration, its configuration, its
/// artifacts, and the events it reports.
pub struct PhaseContext<'a> {
    /// The migration's id (the artifacts' prefix).
    pub id: &'a str,
    /// Its configuration as stored.
    pub config: &'a MigrationConfig,
    /// The artifact store.
    pub artifacts: &'a ArtifactStore,
    /// Events reported so far.
    pub notes: Vec<Note>,
    /// Whether the phase before this one has its checkpoint (a phase may
    /// start before it: delivery into a staging area while verification
    /// runs).
    pub previous_checkpointed: bool,
}

impl<'a> PhaseContext<'a> {
    /// A context for migration `id`.
    pub fn new(id: &'a str, config: &'a MigrationConfig, artifacts: &'a ArtifactStore) -> Self {
        PhaseContext {
            id,
            config,
            artifacts,
            notes: Vec::new(),
            previous_checkpointed: true,
        }
    }

    /// The store path of one of this migration's artifacts.
    pub fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.id)
    }

    /// Reports an event.
    pub fn note(&mut self, level: &'static str, message: impl Into<String>) {
        self.notes.push(Note {
            level,
            message: message.into(),
        });
    }

    /// Writes an artifact as pretty JSON; returns its store path.
    pub async fn put_json<T: serde::Serialize>(&self, name: &str, doc: &T) -> Result<String> {
        let mut bytes = serde_json::to_vec_pretty(doc)?;
        bytes.push(b'\n');
        let path = self.path(name);
        self.artifacts.put(&path, Bytes::from(bytes)).await?;
        Ok(path)
    }

    /// Reads an artifact written as JSON.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T> {
        let path = self.path(name);
        let bytes = self.artifacts.get(&path).await?;
        serde_json::from_slice(&bytes).map_err(|e| EngineError::Malformed {
            what: path,
            message: e.to_string(),
        })
    }

    /// The transformed (verified) partitions, from the transformation's
    /// checkpoint (`transformation.json`).
    pub async fn transformed(&self) -> Result<Vec<crate::artifacts::PartitionRef>> {
        let doc: serde_json::Value = self.get_json("transformation.json").await?;
        Ok(serde_json::from_value(doc["partitions"].clone())?)
    }

    /// Whether an artifact exists.
    pub async fn exists(&self, name: &str) -> Result<bool> {
        Ok(self.artifacts.exists(&self.path(name)).await?)
    }
}

/// A task a planner asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedTask {
    /// The table it works on (the scheduler's grouping and the task's name).
    pub table: String,
    /// Partition number within the table.
    pub partition: u32,
    /// The engine's input, as JSON.
    pub payload: serde_json::Value,
    /// The node holding its input, if any.
    pub preferred_node: Option<String>,
}

/// A finished task, as its planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskOutcome {
    /// The scheduler's task id.
    pub id: i64,
    /// Its table.
    pub table: String,
    /// Its partition.
    pub partition: u32,
    /// The engine's result document.
    pub result: Option<serde_json::Value>,
}

impl TaskOutcome {
    /// The result as the engine's result type.
    pub fn result<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        let v = self.result.as_ref().ok_or_else(|| EngineError::Malformed {
            what: format!("result of task {} ({})", self.id, self.table),
            message: "missing".into(),
        })?;
        T::deserialize(v).map_err(|e| EngineError::Malformed {
            what: format!("result of task {} ({})", self.id, self.table),
            message: e.to_string(),
        })
    }
}

/// The results of finished tasks, each as `T`.
pub fn results<T: serde::de::DeserializeOwned>(tasks: &[TaskOutcome]) -> Result<Vec<T>> {
    tasks.iter().map(TaskOutcome::result).collect()
}

/// Why a migration stops where it is, with what to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// It waits for a person's decision (mapping entries, an INCONCLUSIVE
    /// certificate).
    AwaitReview(String),
    /// It halts until the user fixes something and reruns it.
    Halt(String),
    /// It failed (a FAIL certificate, a target that differs from it).
    Fail(String),
}

/// Whether a phase whose tasks so far are done may be followed up now.
#[derive(Debug, Clone, PartialEq)]
pub enum Gate {
    /// Its next round (or its finalisation) may go ahead.
    Open,
    /// It waits for another phase's artifact (delivery, staged while
    /// verification runs, waits for the certificate before anything is
    /// read back or published).
    Wait,
    /// The migration stops here.
    Stop(Stop),
}

/// What a planner decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Run these tasks (none: the phase closes at once).
    Tasks(Vec<PlannedTask>),
    /// Run nothing: the migration stops before this phase.
    Stop(Stop),
    /// Nothing yet: the phase is planned again at the next step (delivery
    /// into the target itself waits for the certificate).
    Wait,
}

/// A phase's checkpoint artifact, finalised.
#[derive(Debug, Clone, PartialEq)]
pub struct Finalized {
    /// Its store path.
    pub artifact: String,
    /// The migration stops after this phase, and why; the artifact is
    /// still the phase's record.
    pub stop: Option<Stop>,
}

impl Finalized {
    /// A phase that ended well.
    pub fn ok(artifact: String) -> Self {
        Finalized {
            artifact,
            stop: None,
        }
    }
}

/// The head's half of one phase.
#[async_trait::async_trait]
pub trait Planner: Send + Sync {
    /// Plans the phase's tasks once the phase before it is checkpointed.
    async fn plan(&self, cx: &mut PhaseContext<'_>) -> Result<Plan>;

    /// More tasks of the phase once every task so far is `done` (a later
    /// round: delivery reads the target back after loading it); none: the
    /// phase is finalised.
    async fn follow_up(
        &self,
        _cx: &mut PhaseContext<'_>,
        _done: &[TaskOutcome],
    ) -> Result<Vec<PlannedTask>> {
        Ok(Vec::new())
    }

    /// Whether the `done` tasks may be followed up (or the phase finalised)
    /// now; asked before [`Planner::follow_up`].
    async fn gate(&self, _cx: &mut PhaseContext<'_>, _done: &[TaskOutcome]) -> Result<Gate> {
        Ok(Gate::Open)
    }

    /// Writes the phase's checkpoint artifact from its `done` tasks.
    async fn finalize(&self, cx: &mut PhaseContext<'_>, done: &[TaskOutcome]) -> Result<Finalized>;
}

/// A table or column name as a file or partition id part: anything but
/// ASCII letters, digits, `_` and `-` becomes `_`.
pub fn id_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
