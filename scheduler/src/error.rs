//! The scheduler's error type.

use sensei_runtime::ErrorClass;

/// Errors raised by the scheduler and its clients.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// A completion, failure or heartbeat carried an attempt number older than the
    /// task's current one: the lease was reassigned and this worker was fenced off.
    #[error("task {task_id}: attempt {attempt} is stale (current attempt is {current}); its result is refused")]
    StaleAttempt {
        /// The task.
        task_id: i64,
        /// The attempt the caller held.
        attempt: u32,
        /// The task's current attempt.
        current: u32,
    },
    /// Tasks of a phase were submitted before the previous phase's checkpoint.
    #[error("migration {migration}: phase {phase} cannot start before the {previous} checkpoint artifact is recorded")]
    BarrierNotMet {
        /// Migration id.
        migration: String,
        /// The phase being started.
        phase: String,
        /// The phase whose checkpoint is missing.
        previous: String,
    },
    /// A checkpoint was recorded while tasks of its phase were unfinished.
    #[error("migration {migration}: phase {phase} has {unfinished} unfinished tasks; its checkpoint cannot be recorded yet")]
    PhaseUnfinished {
        /// Migration id.
        migration: String,
        /// Phase.
        phase: String,
        /// Tasks not done.
        unfinished: u64,
    },
    /// No such task.
    #[error("unknown task {0}")]
    UnknownTask(i64),
    /// No such migration.
    #[error("unknown migration {0}")]
    UnknownMigration(String),
    /// A migration state change that its lifecycle does not allow.
    #[error("migration {migration}: cannot go from {from} to {to}")]
    InvalidTransition {
        /// Migration id.
        migration: String,
        /// Current state.
        from: String,
        /// Requested state.
        to: String,
    },
    /// The durable state database failed.
    #[error("scheduler state database: {0}")]
    Db(#[from] rusqlite::Error),
    /// Stored JSON could not be read.
    #[error("scheduler state: {0}")]
    Json(#[from] serde_json::Error),
    /// The scheduler could not be reached or answered with an error.
    #[error("scheduler RPC: {0}")]
    Rpc(Box<tonic::Status>),
    /// The scheduler could not be reached at all.
    #[error("cannot connect to the scheduler at {endpoint}: {message}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// Why.
        message: String,
    },
}

impl From<tonic::Status> for SchedulerError {
    fn from(s: tonic::Status) -> Self {
        SchedulerError::Rpc(Box::new(s))
    }
}

impl SchedulerError {
    /// Whose fault the error is.
    pub fn class(&self) -> ErrorClass {
        match self {
            SchedulerError::StaleAttempt { .. }
            | SchedulerError::UnknownTask(_)
            | SchedulerError::UnknownMigration(_) => ErrorClass::User,
            SchedulerError::BarrierNotMet { .. }
            | SchedulerError::PhaseUnfinished { .. }
            | SchedulerError::InvalidTransition { .. }
            | SchedulerError::Json(_) => ErrorClass::Bug,
            SchedulerError::Db(_) | SchedulerError::Rpc(_) | SchedulerError::Connect { .. } => {
                ErrorClass::External
            }
        }
    }

    /// Whether retrying the call can help.
    pub fn retryable(&self) -> bool {
        match self {
            SchedulerError::Rpc(s) => matches!(
                s.code(),
                tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Unknown
                    | tonic::Code::Aborted
            ),
            other => other.class() == ErrorClass::External,
        }
    }
}

/// Result alias for the scheduler crate.
pub type Result<T, E = SchedulerError> = std::result::Result<T, E>;

/// Why the head refused, or could not serve, a control request
/// ([`crate::MigrationControl`]).
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The submitted configuration is not a migration this head can run
    /// (malformed, or invalid: the message names the key and the fix).
    #[error("configuration: {0}")]
    Configuration(String),
    /// No migration has this id.
    #[error("{0}")]
    UnknownMigration(String),
    /// The head failed while handling the request (state, artifacts).
    #[error("{0}")]
    Head(String),
}

impl From<ControlError> for tonic::Status {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::Configuration(_) => tonic::Status::invalid_argument(e.to_string()),
            ControlError::UnknownMigration(_) => tonic::Status::not_found(e.to_string()),
            ControlError::Head(_) => tonic::Status::internal(e.to_string()),
        }
    }
}
