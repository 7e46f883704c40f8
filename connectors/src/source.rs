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

/// Where a reader hands its batches.
pub type Sink<'a> = &'a mut dyn FnMut(RecordBatch) -> Result<()>;

/// One source engine's read-only session. A new engine implements this in
/// its own module and adds its URL to the registry, [`Source::open_with`]
/// (and [`crate::url::parse`]); nothing else names engines.
pub trait SourceEngine: Send {
    /// The user tables.
    fn tables(&mut self) -> Result<Vec<TableInfo>>;

    /// Streams a table (or the rows whose key lies in `range`) as batches
    /// of at most `rows` rows.
    fn read(&mut self, t: &TableInfo, range: KeyRange, rows: usize, sink: Sink) -> Result<u64>;

    /// A deterministic sample of about `n` rows spread over the table.
    fn sample(&mut self, table: &TableInfo, n: u64) -> Result<Vec<RecordBatch>>;

    /// Defaults, constraints, indexes, views, routines and triggers of
    /// `tables` (none for files).
    fn catalog(&mut self, tables: &[TableInfo]) -> Result<crate::catalog::Catalog> {
        Ok(crate::catalog::Catalog::of_tables(tables))
    }

    /// The session's snapshot, exported for other sessions (None where the
    /// data does not change under a read-only reader, or cannot be shared).
    fn export_snapshot(&mut self) -> Result<Option<String>> {
        Ok(None)
    }

    /// Keeps writers out while parallel sessions read, where the engine
    /// cannot share a snapshot and `wanted` (MySQL: a global read lock;
    /// SQLite outside WAL mode: a shared lock). Whether writers are out now.
    fn hold_read_lock(&mut self, _wanted: bool) -> Result<bool> {
        Ok(false)
    }

    /// Values the last reads changed on the way in, per column and kind of
    /// change, taken.
    fn take_changes(&mut self) -> Changes {
        Changes::new()
    }

    /// Tables with no column at all: nothing of them can be migrated.
    fn columnless_tables(&mut self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// Sets where malformed records are set aside while reading.
    fn quarantine_to(&mut self, _path: std::path::PathBuf) {}

    /// Records set aside since [`SourceEngine::quarantine_to`].
    fn quarantined(&self) -> u64 {
        0
    }

    /// The engine's own session, for what only it offers.
    fn as_any(&mut self) -> &mut dyn std::any::Any;
}

/// The key range a read is limited to (inclusive), or the whole table.
pub type KeyRange = Option<(i64, i64)>;

/// An open, read-only source session, whichever engine it reads.
pub struct Source(Box<dyn SourceEngine>);

impl Source {
    /// Opens the source at `url`. For engines with snapshots, the session
    /// imports `snapshot` when given, or starts its own read-only transaction.
    pub fn open(url: &str, snapshot: Option<&str>) -> Result<Source> {
        Self::open_with(url, snapshot, &SourceOptions::default())
    }

    /// [`Source::open`] with the options of file sources: the registry of
    /// source engines.
    pub fn open_with(url: &str, snapshot: Option<&str>, options: &SourceOptions) -> Result<Source> {
        let engine: Box<dyn SourceEngine> = match parse(url, "source")? {
            Location::Csv(path) => Box::new(CsvSource::open(&path, options.clone())?),
            Location::Parquet(path) => Box::new(ParquetSource::open(&path)?),
            Location::Sqlite(path) => {
                let mut s = SqliteSource::open(&path)?;
                s.partition_keys = options.partition_keys.clone();
                Box::new(s)
            }
            Location::Postgres(url) => {
                let mut pg = PgSource::connect_with(&url, options)?;
                pg.begin(snapshot)?;
                Box::new(pg)
            }
            Location::MySql(url) => {
                let mut my = MySqlSource::connect_with(&url, options)?;
                my.begin()?;
                Box::new(my)
            }
        };
        Ok(Source(engine))
    }

    /// The engine's own session when it is a `T`.
    pub fn engine<T: 'static>(&mut self) -> Option<&mut T> {
        self.0.as_any().downcast_mut::<T>()
    }

    /// Streams a table (or a key range of it) as batches.
    pub fn read(
        &mut self,
        table: &TableInfo,
        range: KeyRange,
        batch_rows: usize,
        mut sink: impl FnMut(RecordBatch) -> Result<()>,
    ) -> Result<u64> {
        self.0.read(table, range, batch_rows, &mut sink)
    }
}

impl std::ops::Deref for Source {
    type Target = dyn SourceEngine;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}

impl std::ops::DerefMut for Source {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.0.as_mut()
    }
}
