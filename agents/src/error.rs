//! The agents' error type: every failure a phase can meet, with whose fault
//! it is and whether the scheduler should retry it.

use sensei_runtime::ErrorClass;

/// Errors from phase engines, agents and the orchestrator.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Source or target connector.
    #[error(transparent)]
    Connector(#[from] sensei_connectors::ConnectorError),
    /// Moving or storing partitions.
    #[error(transparent)]
    Flight(#[from] sensei_flight::FlightError),
    /// The scheduler.
    #[error(transparent)]
    Scheduler(#[from] sensei_scheduler::SchedulerError),
    /// The runtime (artifact store, keys, topics).
    #[error(transparent)]
    Runtime(#[from] sensei_runtime::RuntimeError),
    /// DataFusion failed running generated SQL.
    #[error("transformation SQL for table {table}: {message}")]
    Sql {
        /// Target table.
        table: String,
        /// DataFusion's message.
        message: String,
    },
    /// A task's payload or an artifact is not what this version expects.
    #[error("malformed {what}: {message}")]
    Malformed {
        /// What was being read.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// The agent lost its lease (it was reassigned); its work is abandoned.
    #[error("lease of task {0} was lost; the task belongs to another agent now")]
    LeaseLost(i64),
    /// A partition's bytes do not match the hash recorded when it was written.
    #[error("partition {id} is corrupt: sha256 {actual}, expected {expected}")]
    Corrupt {
        /// Partition id.
        id: String,
        /// Recorded hash.
        expected: String,
        /// Hash found.
        actual: String,
    },
    /// A certificate failed verification.
    #[error("certificate {path}: {message}")]
    Certificate {
        /// The file.
        path: String,
        /// Why it is not valid.
        message: String,
    },
    /// A review decision (a review file, `sensei review`) cannot be applied.
    #[error(transparent)]
    Review(#[from] crate::architect::review::ReviewError),
    /// Arrow failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// JSON (de)serialisation failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

impl AgentError {
    /// Whose fault the error is.
    pub fn class(&self) -> ErrorClass {
        match self {
            AgentError::Connector(e) => e.class(),
            AgentError::Flight(e) => e.class(),
            AgentError::Scheduler(e) => e.class(),
            AgentError::Runtime(e) => e.class(),
            AgentError::Sql { .. } | AgentError::Certificate { .. } | AgentError::Review(_) => {
                ErrorClass::User
            }
            AgentError::LeaseLost(_) | AgentError::Corrupt { .. } => ErrorClass::External,
            AgentError::Malformed { .. } | AgentError::Arrow(_) | AgentError::Json(_) => {
                ErrorClass::Bug
            }
        }
    }

    /// Whether the scheduler should retry the task.
    pub fn retryable(&self) -> bool {
        match self {
            AgentError::Connector(e) => e.retryable(),
            AgentError::Flight(e) => e.retryable(),
            AgentError::Scheduler(e) => e.retryable(),
            AgentError::Runtime(e) => e.retryable(),
            other => other.class() == ErrorClass::External,
        }
    }
}

/// Result alias for the agents crate.
pub type Result<T, E = AgentError> = std::result::Result<T, E>;
