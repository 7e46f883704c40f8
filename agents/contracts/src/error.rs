//! The phase engines' error type: every failure a task can meet, with whose
//! fault it is and whether the scheduler should retry it. The actor layer
//! (`sensei-agents`) wraps it with the scheduler's and the review file's.

use sensei_runtime::ErrorClass;

/// Errors from the phase engines.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Source or target connector.
    #[error(transparent)]
    Connector(#[from] sensei_connectors::ConnectorError),
    /// Moving or storing partitions.
    #[error(transparent)]
    Flight(#[from] sensei_flight::FlightError),
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
    /// Something the user wrote (a configuration key, a schema, a queries
    /// or expectations file, a mapping spec entry) cannot be used: names it,
    /// the place, and the fix.
    #[error("{what}: {message}")]
    Invalid {
        /// The key or file, and the place in it.
        what: String,
        /// What is wrong, with the fix.
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
    Review(#[from] ReviewError),
    /// Arrow failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// JSON (de)serialisation failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

impl EngineError {
    /// Whose fault the error is.
    pub fn class(&self) -> ErrorClass {
        match self {
            EngineError::Connector(e) => e.class(),
            EngineError::Flight(e) => e.class(),
            EngineError::Runtime(e) => e.class(),
            EngineError::Sql { .. }
            | EngineError::Invalid { .. }
            | EngineError::Certificate { .. }
            | EngineError::Review(_) => ErrorClass::User,
            EngineError::LeaseLost(_) | EngineError::Corrupt { .. } => ErrorClass::External,
            EngineError::Malformed { .. } | EngineError::Arrow(_) | EngineError::Json(_) => {
                ErrorClass::Bug
            }
        }
    }

    /// Whether the scheduler should retry the task.
    pub fn retryable(&self) -> bool {
        match self {
            EngineError::Connector(e) => e.retryable(),
            EngineError::Flight(e) => e.retryable(),
            EngineError::Runtime(e) => e.retryable(),
            other => other.class() == ErrorClass::External,
        }
    }
}

/// A review that cannot be applied: always the reviewer's to fix.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The file could not be read or parsed.
    #[error("review file {file}: {message}")]
    File {
        /// The review file.
        file: String,
        /// What is wrong, with the fix.
        message: String,
    },
    /// The mapping spec could not be read or written.
    #[error("mapping spec {path}: {message}")]
    Spec {
        /// The spec file.
        path: String,
        /// What is wrong, with the fix.
        message: String,
    },
    /// A decision names an entry the mapping spec does not hold.
    #[error("{origin}: {entry} is not an entry of the mapping spec (name it as TARGET_TABLE.COLUMN; `sensei plan` lists them)")]
    UnknownEntry {
        /// Where the decision came from (a file, or the command line).
        origin: String,
        /// The entry as written.
        entry: String,
    },
}

/// Result alias of the engines.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Runs blocking engine work (a database session, files) on the runtime's
/// blocking threads; a panic there comes back as an error naming `what`.
pub async fn blocking<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| EngineError::Malformed {
            what: what.into(),
            message: e.to_string(),
        })?
}
