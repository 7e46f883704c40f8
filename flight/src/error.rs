//! The Flight crate's error type.

use sensei_runtime::ErrorClass;

/// Errors moving or storing partitions.
#[derive(Debug, thiserror::Error)]
pub enum FlightError {
    /// Reading or writing a partition file failed.
    #[error("partition file {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// Arrow failed on a batch.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Parquet failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// A peer's Flight service failed or could not be reached.
    #[error("flight peer {endpoint}: {message}")]
    Peer {
        /// The peer.
        endpoint: String,
        /// What went wrong.
        message: String,
    },
    /// The partition is not held here.
    #[error("partition {0} is not held by this node")]
    NotFound(String),
    /// A listener or a request the configuration does not allow (the
    /// message says what and how to allow it): the user's to change.
    #[error("refused: {0}")]
    Refused(String),
    /// The catalog of verified datasets could not be read (a certificate or
    /// an artifact missing or unreadable).
    #[error("verified datasets: {0}")]
    Catalog(String),
}

impl FlightError {
    /// Whose fault the error is.
    pub fn class(&self) -> ErrorClass {
        match self {
            FlightError::File { .. } | FlightError::Peer { .. } => ErrorClass::External,
            FlightError::NotFound(_) | FlightError::Catalog(_) => ErrorClass::External,
            FlightError::Refused(_) => ErrorClass::User,
            FlightError::Arrow(_) | FlightError::Parquet(_) => ErrorClass::Bug,
        }
    }

    /// Whether a retry can help.
    pub fn retryable(&self) -> bool {
        self.class() == ErrorClass::External
    }
}

/// Result alias for the Flight crate.
pub type Result<T, E = FlightError> = std::result::Result<T, E>;
