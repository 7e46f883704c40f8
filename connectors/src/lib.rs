//! # sensei-connectors
//!
//! Sources and targets. A source discovers tables and streams their rows as
//! Arrow record batches over a read-only connection; a target creates tables
//! and writes batches, each in one transaction with its row in the
//! `sensei_delivery_ledger` table so that a batch is never written twice.
//!
//! [`url::parse`] turns a URL into a [`url::Location`]. This build carries the
//! SQLite connector ([`sqlite`]); PostgreSQL, MySQL/MariaDB, CSV and Parquet
//! arrive as folders beside it and are refused with a clear message until then.
//!
//! ```no_run
//! use sensei_connectors::sqlite::SqliteSource;
//! let src = SqliteSource::open(std::path::Path::new("retail.db")).unwrap();
//! for table in src.tables().unwrap() {
//!     src.read(&table, None, 10_000, |batch| { println!("{} rows", batch.num_rows()); Ok(()) }).unwrap();
//! }
//! ```

pub mod convert;
mod error;
pub mod sqlite;
pub mod url;
mod value;

pub use error::{ConnectorError, Result};
pub use value::to_sqlite;
