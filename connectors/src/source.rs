//! One handle over every source engine, so the phases need not know which
//! one they read.

use arrow::record_batch::RecordBatch;

use crate::error::Result;
use crate::mysql::MySqlSource;
use crate::postgres::PgSource;
use crate::sqlite::{SqliteSource, TableInfo};
use crate::url::{parse, Location};

/// An open, read-only source session.
pub enum Source {
    /// A SQLite file.
    Sqlite(SqliteSource),
    /// A PostgreSQL database, inside a read-only snapshot transaction.
    Postgres(Box<PgSource>),
    /// A MySQL or MariaDB database, inside a read-only consistent-snapshot transaction.
    MySql(Box<MySqlSource>),
}

impl Source {
    /// Opens the source at `url`. For engines with snapshots, the session
    /// imports `snapshot` when given, or starts its own read-only transaction.
    pub fn open(url: &str, snapshot: Option<&str>) -> Result<Source> {
        Ok(match parse(url, "source")? {
            Location::Sqlite(path) => Source::Sqlite(SqliteSource::open(&path)?),
            Location::Postgres(url) => {
                let mut pg = PgSource::connect(&url)?;
                pg.begin(snapshot)?;
                Source::Postgres(Box::new(pg))
            }
            Location::MySql(url) => {
                let mut my = MySqlSource::connect(&url)?;
                my.begin()?;
                Source::MySql(Box::new(my))
            }
        })
    }

    /// Exports the session's snapshot for other sessions (None for engines
    /// whose files do not change under a read-only reader).
    pub fn export_snapshot(&mut self) -> Result<Option<String>> {
        match self {
            Source::Sqlite(_) | Source::MySql(_) => Ok(None),
            Source::Postgres(pg) => pg.export_snapshot().map(Some),
        }
    }

    /// The user tables.
    pub fn tables(&mut self) -> Result<Vec<TableInfo>> {
        match self {
            Source::Sqlite(s) => s.tables(),
            Source::Postgres(p) => p.tables(),
            Source::MySql(m) => m.tables(),
        }
    }

    /// Streams a table (or a key range of it) as batches.
    pub fn read(
        &mut self,
        table: &TableInfo,
        range: Option<(i64, i64)>,
        batch_rows: usize,
        sink: impl FnMut(RecordBatch) -> Result<()>,
    ) -> Result<u64> {
        match self {
            Source::Sqlite(s) => s.read(table, range, batch_rows, sink),
            Source::Postgres(p) => p.read(table, range, batch_rows, sink),
            Source::MySql(m) => m.read(table, range, batch_rows, sink),
        }
    }

    /// A deterministic sample of about `n` rows.
    pub fn sample(&mut self, table: &TableInfo, n: u64) -> Result<Vec<RecordBatch>> {
        match self {
            Source::Sqlite(s) => s.sample(table, n),
            Source::Postgres(p) => p.sample(table, n),
            Source::MySql(m) => m.sample(table, n),
        }
    }
}
