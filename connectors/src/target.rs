//! One handle over every target engine, so delivery need not know which one
//! it writes: SQLite files, PostgreSQL and MySQL/MariaDB databases, Parquet folders.

use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;

use crate::error::{ConnectorError, Result};
use crate::files::SourceOptions;
use crate::mysql_target::MySqlTarget;
use crate::parquet_target::ParquetTarget;
use crate::pg_target::PgTarget;
use crate::sqlite::{BatchAck, BatchKey, SqliteTarget};
use crate::url::{parse, Location};

/// An open target session.
pub enum Target {
    /// A SQLite file.
    Sqlite(SqliteTarget),
    /// A PostgreSQL database.
    Postgres(Box<PgTarget>),
    /// A folder of Parquet files.
    Parquet(ParquetTarget),
    /// A MySQL or MariaDB database.
    MySql(Box<MySqlTarget>),
}

impl Target {
    /// Opens the target at `url` (creating a SQLite file and the ledger table as needed).
    pub fn open(url: &str, options: &SourceOptions) -> Result<Target> {
        Self::open_in(url, options, "")
    }

    /// [`Target::open`]; a PostgreSQL target writes only inside the schema
    /// `namespace` (empty: its default).
    pub fn open_in(url: &str, options: &SourceOptions, namespace: &str) -> Result<Target> {
        Ok(match parse(url, "target")? {
            Location::Sqlite(p) => Target::Sqlite(SqliteTarget::open(&p)?),
            Location::Postgres(u) => {
                Target::Postgres(Box::new(PgTarget::connect_in(&u, options, namespace)?))
            }
            Location::Parquet(dir) => Target::Parquet(ParquetTarget::open(&dir)?),
            Location::MySql(u) => Target::MySql(Box::new(MySqlTarget::connect(&u, options)?)),
            _ => {
                return Err(ConnectorError::Unsupported {
                    role: "target",
                    url: sensei_runtime::secret::redact_url(url),
                    hint:
                        "targets supported now: sqlite://PATH, postgresql://..., parquet://FOLDER"
                            .into(),
                })
            }
        })
    }

    /// Checks, without writing data, that the target can be written: a
    /// SQLite folder writable, a PostgreSQL server reachable (the ledger table
    /// is created there).
    pub fn check(url: &str, options: &SourceOptions, namespace: &str) -> Result<()> {
        match parse(url, "target")? {
            Location::Sqlite(p) => SqliteTarget::check_writable(&p),
            _ => Self::open_in(url, options, namespace).map(|_| ()),
        }
    }

    /// Runs the target schema's DDL.
    pub fn apply_ddl(&mut self, ddl: &str) -> Result<()> {
        match self {
            Target::Sqlite(t) => t.apply_ddl(ddl),
            Target::Postgres(t) => t.apply_ddl(ddl),
            // Files have no DDL: the schema is the certified one.
            Target::Parquet(_) => Ok(()),
            Target::MySql(t) => t.apply_ddl(ddl),
        }
    }

    /// Creates a table mirroring `schema` when absent.
    pub fn ensure_table(
        &mut self,
        table: &str,
        schema: &Schema,
        primary_key: &[String],
    ) -> Result<()> {
        match self {
            Target::Sqlite(t) => t.ensure_table(table, schema, primary_key),
            Target::Postgres(t) => t.ensure_table(table, schema, primary_key),
            Target::Parquet(t) => t.ensure_table(table),
            Target::MySql(t) => t.ensure_table(table, schema, primary_key),
        }
    }

    /// Writes one batch with its ledger row, or skips it when the ledger holds its key.
    pub fn write_batch(
        &mut self,
        table: &str,
        batch: &RecordBatch,
        key: &BatchKey<'_>,
    ) -> Result<BatchAck> {
        match self {
            Target::Sqlite(t) => t.write_batch(table, batch, key),
            Target::Postgres(t) => t.write_batch(table, batch, key),
            Target::Parquet(t) => t.write_batch(table, batch, key),
            Target::MySql(t) => t.write_batch(table, batch, key),
        }
    }
}
