//! # sensei-connectors
//!
//! Sources and targets. A source discovers tables and streams their rows as
//! Arrow record batches over a read-only connection; a target creates tables
//! and writes batches, each in one transaction with its row in the
//! `sensei_delivery_ledger` table so that a batch is never written twice.
//!
//! [`url::parse`] turns a URL into a [`url::Location`]; [`source::Source`]
//! opens any supported source behind one handle. This build carries SQLite
//! ([`sqlite`], source and target) and PostgreSQL ([`postgres`], source:
//! binary COPY inside an exported snapshot) and MySQL/MariaDB ([`mysql`],
//! source: streaming binary protocol in a consistent-snapshot transaction), CSV
//! ([`csv`]: encoding detected with a confidence by [`encoding`], types inferred,
//! malformed records rejected or quarantined) and Parquet ([`parquet_source`])
//! files as sources, a file or a folder of them ([`files`]).
//!
//! ```no_run
//! use sensei_connectors::sqlite::SqliteSource;
//! let src = SqliteSource::open(std::path::Path::new("retail.db")).unwrap();
//! for table in src.tables().unwrap() {
//!     src.read(&table, None, 10_000, |batch| { println!("{} rows", batch.num_rows()); Ok(()) }).unwrap();
//! }
//! ```

pub mod batch;
pub mod catalog;
pub mod convert;
pub mod csv;
pub mod encoding;
mod error;
pub mod files;
pub mod ident;
pub mod mysql;
pub mod mysql_target;
pub mod parquet_source;
pub mod parquet_target;
pub mod pg_target;
pub mod postgres;
pub mod readback;
pub mod source;
pub mod sqlite;
pub mod sqlite_stage;
pub mod table;
pub mod target;
pub mod url;
mod value;

pub use error::{ConnectorError, Result};
pub use value::to_sqlite;
