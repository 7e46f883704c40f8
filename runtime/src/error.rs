//! The runtime's error type. Each variant says whose fault it is and whether a
//! retry can help; the scheduler's retry logic reads [`ErrorClass`], not strings.

use std::path::PathBuf;

/// Who is at fault for an error, and so what a caller should do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The user's input is wrong (configuration, a file, a schema): fix and rerun.
    User,
    /// An external system failed (disk, network, a database): a retry may help.
    External,
    /// An invariant of Sensei broke: a bug to report.
    Bug,
}

/// Errors raised by the runtime crate.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The configuration file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The configuration is malformed; the message names file, line and key.
    #[error("invalid configuration in {origin}: {message}")]
    Config {
        /// Where the bad value came from (a file path, `environment`, `flags`).
        origin: String,
        /// What is wrong, with line and key where known.
        message: String,
    },
    /// An I/O error on a local file owned by the runtime (event log, keys).
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The artifact store failed.
    #[error("artifact store: {0}")]
    Store(#[from] object_store::Error),
    /// An artifact that may be written once already exists.
    #[error("artifact {0} already exists and is immutable")]
    AlreadyExists(String),
    /// A TLS certificate or key is unusable.
    #[error("TLS {path}: {message}")]
    Tls {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A signing key file is unsafe or unreadable.
    #[error("signing key {path}: {message}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The Kafka cluster of `runtime.topics` failed or could not be reached.
    #[error("Kafka at {brokers}: {message}")]
    Kafka {
        /// The bootstrap servers.
        brokers: String,
        /// What failed.
        message: String,
    },
    /// A record or document could not be (de)serialised.
    #[error("serialisation: {0}")]
    Json(#[from] serde_json::Error),
}

impl RuntimeError {
    /// Whose fault this error is.
    pub fn class(&self) -> ErrorClass {
        match self {
            RuntimeError::ConfigRead { .. }
            | RuntimeError::Config { .. }
            | RuntimeError::Key { .. }
            | RuntimeError::Tls { .. }
            | RuntimeError::AlreadyExists(_) => ErrorClass::User,
            RuntimeError::Io { .. } | RuntimeError::Store(_) | RuntimeError::Kafka { .. } => {
                ErrorClass::External
            }
            RuntimeError::Json(_) => ErrorClass::Bug,
        }
    }

    /// Whether retrying the same operation can succeed.
    pub fn retryable(&self) -> bool {
        self.class() == ErrorClass::External
    }
}

/// Result alias for the runtime crate.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
