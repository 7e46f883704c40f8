//! The scheduler's vocabulary: phases, task and migration states, leases.

use serde::{Deserialize, Serialize};

/// The four phases, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Phase 1: Scout agents extract and stage partitions.
    Ingestion,
    /// Phase 2: Worker agents run the generated SQL per partition.
    Transformation,
    /// Phase 3: Validator agents prove equivalence.
    Verification,
    /// Phase 4: Worker agents write verified data to the target.
    Delivery,
}

impl Phase {
    /// All phases in order.
    pub const ALL: [Phase; 4] = [
        Phase::Ingestion,
        Phase::Transformation,
        Phase::Verification,
        Phase::Delivery,
    ];

    /// The name used in state, events and the wire protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Ingestion => "ingestion",
            Phase::Transformation => "transformation",
            Phase::Verification => "verification",
            Phase::Delivery => "delivery",
        }
    }

    /// Parses a phase name.
    pub fn parse(s: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The phase before this one.
    pub fn previous(self) -> Option<Phase> {
        match self {
            Phase::Ingestion => None,
            Phase::Transformation => Some(Phase::Ingestion),
            Phase::Verification => Some(Phase::Transformation),
            Phase::Delivery => Some(Phase::Verification),
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a task is in its lifecycle.
///
/// `Pending -> Running` (leased) `-> Done` (completed by the current attempt);
/// `Running -> Pending` on a lapsed lease or a retryable failure (with backoff);
/// `Running -> Failed` on a permanent failure or the last allowed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting for an agent (possibly not before a backoff deadline).
    Pending,
    /// Leased to an agent.
    Running,
    /// Finished; its result is recorded.
    Done,
    /// Failed for good; the migration is halted.
    Failed,
}

impl TaskState {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Running => "running",
            TaskState::Done => "done",
            TaskState::Failed => "failed",
        }
    }
}

/// Where a migration is in its lifecycle.
///
/// `Running` moves to one of the four others. `Halted` (a permanent task failure)
/// and `AwaitingReview` (an INCONCLUSIVE certificate or mappings waiting) go back
/// to `Running` when a person resumes them; `Completed` and `Failed` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationState {
    /// Phases are being worked on.
    Running,
    /// Verified and delivered.
    Completed,
    /// The certificate says FAIL; nothing was delivered.
    Failed,
    /// A task failed permanently; waiting for a person.
    Halted,
    /// Waiting for review (INCONCLUSIVE, or mappings below the threshold).
    AwaitingReview,
}

impl MigrationState {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationState::Running => "running",
            MigrationState::Completed => "completed",
            MigrationState::Failed => "failed",
            MigrationState::Halted => "halted",
            MigrationState::AwaitingReview => "awaiting_review",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            MigrationState::Running,
            MigrationState::Completed,
            MigrationState::Failed,
            MigrationState::Halted,
            MigrationState::AwaitingReview,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }

    /// Whether the lifecycle allows going from `self` to `to`.
    pub fn can_become(self, to: MigrationState) -> bool {
        use MigrationState::*;
        matches!(
            (self, to),
            (Running, Completed | Failed | Halted | AwaitingReview)
                | (Halted | AwaitingReview, Running)
        )
    }

    /// Whether nothing more will happen without a person.
    pub fn is_terminal(self) -> bool {
        !matches!(self, MigrationState::Running)
    }
}

/// What a new task is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Table the task works on.
    pub table: String,
    /// Partition number within the table.
    pub partition: u32,
    /// Input as JSON (references and settings; never row data).
    pub payload: serde_json::Value,
    /// Node that holds the input, preferred when placing the task.
    pub preferred_node: Option<String>,
}

/// A lease on a task, granted to one agent until `deadline_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// Task id.
    pub task_id: i64,
    /// Migration id.
    pub migration_id: String,
    /// Phase.
    pub phase: Phase,
    /// Table.
    pub table: String,
    /// Partition.
    pub partition: u32,
    /// Attempt number: the fencing token carried by every output of this lease.
    pub attempt: u32,
    /// When the lease lapses unless renewed (ms since the epoch).
    pub deadline_ms: i64,
    /// Task input.
    pub payload: serde_json::Value,
}

/// One task as stored, for status and phase finalisation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Task id.
    pub id: i64,
    /// Phase.
    pub phase: Phase,
    /// Table.
    pub table: String,
    /// Partition.
    pub partition: u32,
    /// State.
    pub state: TaskState,
    /// Attempts so far.
    pub attempt: u32,
    /// Node that ran (or runs) it.
    pub node_id: Option<String>,
    /// Result of the completed attempt.
    pub result: Option<serde_json::Value>,
    /// Last error seen.
    pub last_error: Option<String>,
}

/// Retry and lease policy of one migration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Lease length.
    pub lease_ms: u64,
    /// Attempts before the migration halts.
    pub max_attempts: u32,
    /// First backoff.
    pub backoff_base_ms: u64,
    /// Largest backoff.
    pub backoff_max_ms: u64,
    /// Ingestion tasks running at once (each holds one source session); 0: no limit.
    #[serde(default)]
    pub max_ingestion_tasks: u32,
}

impl Policy {
    /// From the `[scheduler]` configuration section.
    pub fn from_config(s: &sensei_runtime::config::SchedulerSection) -> Self {
        Policy {
            lease_ms: s.lease_ms,
            max_attempts: s.max_attempts,
            backoff_base_ms: s.backoff_base_ms,
            backoff_max_ms: s.backoff_max_ms,
            max_ingestion_tasks: 0,
        }
    }

    /// Backoff before attempt `attempt + 1`, after `attempt` failed: exponential,
    /// capped, with "equal jitter" (half fixed, half random) so retries of many
    /// tasks do not arrive together. `unit` in [0, 1) is the random draw.
    pub fn backoff_ms(&self, attempt: u32, unit: f64) -> u64 {
        let exp = self
            .backoff_base_ms
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(30))
            .min(self.backoff_max_ms);
        let half = exp / 2;
        half + (unit.clamp(0.0, 1.0) * (exp - half) as f64) as u64
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy::from_config(&sensei_runtime::config::SchedulerSection::default())
    }
}
