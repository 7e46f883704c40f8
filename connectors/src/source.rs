//! One handle over every source engine, so the phases need not know which
//! one they read.

use arrow::record_batch::RecordBatch;

use crate::csv::CsvSource;
use crate::error::Result;
use crate::files::SourceOptions;
use crate::mysql::MySqlSource;
use crate::parquet_source::ParquetSource;
use crate::postgres::PgSource;
use crate::sqlite::SqliteSource;
use crate::table::TableInfo;
use crate::url::{parse, Location};

/// Values changed on the way in: per column, per kind of change, how many.
pub type Changes = std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>;

/// Adds per-column counts of one kind of change (a reader counts by column
/// position in its loop, with no allocation, and folds them in once).
pub(crate) fn add_changes(changes: &mut Changes, table: &TableInfo, counts: &[u64], what: &str) {
    for (c, n) in table.columns.iter().zip(counts).filter(|(_, n)| **n > 0) {
        *changes
            .entry(c.name.clone())
            .or_default()
            .entry(what.to_string())
            .or_default() += n;
    }
}

/// An open, read-only source session.
pub enum Source {
    /// A SQLite file.
    Sqlite(SqliteSource),
    /// A PostgreSQL database, inside a read-only snapshot transaction.
    Postgres(Box<PgSource>),
    /// A MySQL or MariaDB database, inside a read-only consistent-snapshot transaction.
    MySql(Box<MySqlSource>),
    /// CSV files.
    Csv(Box<CsvSource>),
    /// Parquet files.
    Parquet(ParquetSource),
}

impl Source {
    /// Opens the source at `url`. For engines with snapshots, the session
    /// imports `snapshot` when given, or starts its own read-only transaction.
    pub fn open(url: &str, snapshot: Option<&str>) -> Result<Source> {
        Self::open_with(url, snapshot, &SourceOptions::default())
    }

    /// [`Source::open`] with the options of file sources.
    pub fn open_with(url: &str, snapshot: Option<&str>, options: &SourceOptions) -> Result<Source> {
        Ok(match parse(url, "source")? {
            Location::Csv(path) => Source::Csv(Box::new(CsvSource::open(&path, options.clone())?)),
            Location::Parquet(path) => Source::Parquet(ParquetSource::open(&path)?),
            Location::Sqlite(path) => {
                let mut s = SqliteSource::open(&path)?;
                s.partition_keys = options.partition_keys.clone();
                Source::Sqlite(s)
            }
            Location::Postgres(url) => {
                let mut pg = PgSource::connect_with(&url, options)?;
                pg.begin(snapshot)?;
                Source::Postgres(Box::new(pg))
            }
            Location::MySql(url) => {
                let mut my = MySqlSource::connect_with(&url, options)?;
                my.begin()?;
                Source::MySql(Box::new(my))
            }
        })
    }

    /// Exports the session's snapshot for other sessions (None for engines
    /// whose files do not change under a read-only reader).
    pub fn export_snapshot(&mut self) -> Result<Option<String>> {
        match self {
            Source::Sqlite(_) | Source::MySql(_) | Source::Csv(_) | Source::Parquet(_) => Ok(None),
            Source::Postgres(pg) => pg.export_snapshot().map(Some),
        }
    }

    /// Makes the extraction consistent across sessions for engines that
    /// cannot share a snapshot (MySQL: a global read lock held by this
    /// session; SQLite outside WAL mode: a shared lock). Returns whether
    /// writers are now kept out.
    pub fn hold_read_lock(&mut self) -> Result<bool> {
        match self {
            Source::MySql(m) => m.hold_read_lock().map(|_| true),
            Source::Sqlite(s) => s.hold_read_lock(),
            _ => Ok(false),
        }
    }

    /// The user tables.
    pub fn tables(&mut self) -> Result<Vec<TableInfo>> {
        match self {
            Source::Sqlite(s) => s.tables(),
            Source::Postgres(p) => p.tables(),
            Source::MySql(m) => m.tables(),
            Source::Csv(c) => c.tables(),
            Source::Parquet(p) => p.tables(),
        }
    }

    /// Values the last [`Source::read`] changed on the way in (MySQL zero
    /// dates, empty CSV fields read as NULL, SQLite integers beyond 2^53 in
    /// float columns and reals past a decimal's scale), per column and kind
    /// of change, taken.
    pub fn take_changes(&mut self) -> Changes {
        match self {
            Source::Sqlite(s) => s.take_changes(),
            Source::MySql(m) => m.take_changes(),
            Source::Csv(c) => c.take_changes(),
            _ => Changes::new(),
        }
    }

    /// Tables with no column at all (PostgreSQL allows them): nothing of
    /// them can be migrated, and discovery leaves them out; named so that
    /// leaving them out is said, not silent.
    pub fn columnless_tables(&mut self) -> Result<Vec<String>> {
        match self {
            Source::Postgres(p) => p.columnless_tables(),
            _ => Ok(Vec::new()),
        }
    }

    /// Defaults, constraints, indexes, views, routines and triggers of the
    /// discovered tables (empty for files).
    pub fn catalog(&mut self, tables: &[TableInfo]) -> Result<crate::catalog::Catalog> {
        match self {
            Source::Sqlite(s) => s.catalog(tables),
            Source::Postgres(p) => p.catalog(tables),
            Source::MySql(m) => m.catalog(tables),
            Source::Csv(_) | Source::Parquet(_) => Ok(Default::default()),
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
            Source::Csv(c) => c.read(table, range, None, batch_rows, sink),
            Source::Parquet(p) => p.read(table, range, None, batch_rows, sink),
        }
    }

    /// A deterministic sample of about `n` rows.
    pub fn sample(&mut self, table: &TableInfo, n: u64) -> Result<Vec<RecordBatch>> {
        match self {
            Source::Sqlite(s) => s.sample(table, n),
            Source::Postgres(p) => p.sample(table, n),
            Source::MySql(m) => m.sample(table, n),
            Source::Csv(c) => c.sample(table, n),
            Source::Parquet(p) => p.sample(table, n),
        }
    }

    /// Sets where malformed records are set aside while reading (CSV under
    /// `bad_rows = "quarantine"`; other sources have no such records).
    pub fn quarantine_to(&mut self, path: std::path::PathBuf) {
        if let Source::Csv(c) = self {
            c.quarantine_to(path);
        }
    }

    /// Records set aside since [`Source::quarantine_to`].
    pub fn quarantined(&self) -> u64 {
        match self {
            Source::Csv(c) => c.quarantined(),
            _ => 0,
        }
    }
}
