//! The connectors' error type.

use sensei_runtime::ErrorClass;

/// Errors talking to sources and targets. Messages name the table and column
/// involved and never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// A URL whose scheme no connector handles (yet).
    #[error("unsupported {role} URL {url}: {hint}")]
    Unsupported {
        /// `source` or `target`.
        role: &'static str,
        /// The URL, password redacted.
        url: String,
        /// What is supported.
        hint: String,
    },
    /// A source file that does not exist or cannot be read.
    #[error("cannot read source {path}: {message}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// A file that is not a SQLite database.
    #[error("{path} is not a SQLite database ({message})")]
    NotSqlite {
        /// The file.
        path: String,
        /// What SQLite said.
        message: String,
    },
    /// A target location that cannot be written.
    #[error("cannot write target {path}: {message}")]
    TargetNotWritable {
        /// The location.
        path: String,
        /// Why.
        message: String,
    },
    /// A value that does not fit its column's type.
    #[error("table {table}, column {column}, row {row}: value {value} is not a valid {expected}; fix the value in the source, or give the column a type (or a mapping expression) that holds it")]
    Value {
        /// Table.
        table: String,
        /// Column.
        column: String,
        /// Row id or key.
        row: String,
        /// The offending value (shortened).
        value: String,
        /// The expected type.
        expected: String,
    },
    /// A valid source value outside what the staged (Arrow) type can hold.
    #[error(
        "table {table}, column {column}, row #{row}: value {value} lies outside {range}; {fix}"
    )]
    OutOfRange {
        /// Table.
        table: String,
        /// Column.
        column: String,
        /// Row number in the table's stream (1-based).
        row: u64,
        /// The offending value, as a person reads it.
        value: String,
        /// The range that can be held.
        range: &'static str,
        /// What to do about it.
        fix: &'static str,
    },
    /// A file or column whose text encoding could not be told with enough confidence.
    #[error("{what}: the text looks like {encoding} but only with confidence {confidence:.2} (minimum {minimum}); sample bytes: {samples}. Set source.encoding to the file's encoding (e.g. \"latin1\") if you know it, or convert the file to UTF-8")]
    Encoding {
        /// The file or table.column.
        what: String,
        /// The best guess.
        encoding: String,
        /// Its confidence.
        confidence: f64,
        /// The configured minimum.
        minimum: f64,
        /// Offending bytes with their line numbers.
        samples: String,
    },
    /// A configuration key's value cannot be used.
    #[error("setting {key}: {message}")]
    Setting {
        /// The key (`ingestion.partition_key`).
        key: &'static str,
        /// What is wrong, and what to write instead.
        message: String,
    },
    /// A statement that would write was sent through a read-only source connection.
    #[error("refused to run a writing statement on the read-only source: {0}")]
    WriteRefused(String),
    /// The database answered with an error.
    #[error("{context}: {source}")]
    Sql {
        /// What was being done (table named).
        context: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A database server answered with an error (message only; never the URL's password).
    #[error("{context}: {message}")]
    Database {
        /// What was being done (table named).
        context: String,
        /// The server's message.
        message: String,
        /// Whether retrying can help (connection lost, serialization failure, shutdown).
        transient: bool,
    },
    /// Arrow failed building a batch.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

impl ConnectorError {
    /// Wraps a SQLite error with what was being done.
    pub fn sql(context: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> ConnectorError {
        let context = context.into();
        move |source| ConnectorError::Sql { context, source }
    }

    /// Whose fault the error is.
    pub fn class(&self) -> ErrorClass {
        match self {
            ConnectorError::Sql { source, .. } if is_transient(source) => ErrorClass::External,
            ConnectorError::Database {
                transient: true, ..
            } => ErrorClass::External,
            ConnectorError::Sql { .. } => ErrorClass::User,
            ConnectorError::Arrow(_) => ErrorClass::Bug,
            _ => ErrorClass::User,
        }
    }

    /// Whether retrying can help: lock contention and I/O hiccups, not schema
    /// or constraint violations.
    pub fn retryable(&self) -> bool {
        self.class() == ErrorClass::External
    }
}

fn is_transient(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(
        e.sqlite_error_code(),
        Some(DatabaseBusy | DatabaseLocked | SystemIoFailure | OutOfMemory | CannotOpen)
    )
}

/// Result alias for connectors.
pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;
