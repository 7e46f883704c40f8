//! The actor layer's error type: an engine's failure or the scheduler's,
//! each with whose fault it is and whether the scheduler should retry it.

use sensei_contracts::error::EngineError;
use sensei_runtime::ErrorClass;

/// Errors from agents and the orchestrator.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A phase engine (connectors, Flight, runtime, SQL, artifacts).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The scheduler.
    #[error(transparent)]
    Scheduler(#[from] sensei_scheduler::SchedulerError),
}

/// Errors the engines' own conversions cover reach the orchestrator through
/// [`EngineError`].
macro_rules! through_engine {
    ($($t:ty),*) => {$(
        impl From<$t> for AgentError {
            fn from(e: $t) -> Self {
                AgentError::Engine(EngineError::from(e))
            }
        }
    )*};
}
through_engine!(
    sensei_connectors::ConnectorError,
    sensei_flight::FlightError,
    sensei_runtime::RuntimeError,
    sensei_contracts::error::ReviewError,
    arrow::error::ArrowError,
    serde_json::Error
);

impl AgentError {
    /// A task payload or an artifact that is not what this version expects.
    pub fn malformed(what: impl Into<String>, message: impl ToString) -> Self {
        AgentError::Engine(EngineError::Malformed {
            what: what.into(),
            message: message.to_string(),
        })
    }

    /// Whose fault the error is.
    pub fn class(&self) -> ErrorClass {
        match self {
            AgentError::Engine(e) => e.class(),
            AgentError::Scheduler(e) => e.class(),
        }
    }

    /// Whether the scheduler should retry the task.
    pub fn retryable(&self) -> bool {
        match self {
            AgentError::Engine(e) => e.retryable(),
            AgentError::Scheduler(e) => e.retryable(),
        }
    }
}

/// Result alias for the agents crate.
pub type Result<T, E = AgentError> = std::result::Result<T, E>;
