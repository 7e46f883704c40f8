//! The first round of ingestion, when partitions are sized in bytes: a
//! leased task that reads a small sample of every table inside the
//! snapshot the head exported and measures the average Arrow size of a
//! row, so that wide rows make smaller partitions. It runs on a node like
//! any partition, retried on a transient failure; the head reads only its
//! result.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use sensei_connectors::files::SourceOptions;
use sensei_connectors::source::Source;
use sensei_connectors::table::TableInfo;
use sensei_contracts::error::Result;

/// The task table name of the sampling task.
pub const SAMPLE: &str = "ingestion:sample";

/// Rows sampled per table.
pub const SAMPLE_ROWS: u64 = 1_000;

/// Input of the sampling task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SampleTask {
    /// The source (any password removed: it comes from the environment or
    /// the password file).
    pub source_url: String,
    /// The exported snapshot to read at, where the engine has them.
    pub snapshot: Option<String>,
    /// The tables, as discovered.
    pub tables: Vec<TableInfo>,
    /// Rows sampled per table.
    pub rows: u64,
    /// How sessions to the source are opened.
    pub options: SourceOptions,
}

/// What the sample measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SampleResult {
    /// Average Arrow bytes per row, per table (tables without rows left out).
    pub row_bytes: BTreeMap<String, u64>,
}

/// Reads up to `task.rows` rows of each table and averages their Arrow size.
/// Blocking.
pub fn run(task: &SampleTask) -> Result<SampleResult> {
    let mut source = Source::open_with(&task.source_url, task.snapshot.as_deref(), &task.options)?;
    let mut out = SampleResult::default();
    for t in &task.tables {
        let sample = source.sample(t, task.rows)?;
        if let Some(per_row) = average_row_bytes(&sample) {
            out.row_bytes.insert(t.name.clone(), per_row);
        }
    }
    Ok(out)
}

/// The average Arrow size of a row of `batches` (at least one byte), or
/// None when they hold no row.
pub fn average_row_bytes(batches: &[arrow::record_batch::RecordBatch]) -> Option<u64> {
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let bytes: usize = batches.iter().map(|b| b.get_array_memory_size()).sum();
    bytes.checked_div(rows).map(|b| b.max(1) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(dir: &std::path::Path) -> String {
        let path = dir.join("s.db");
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE narrow (id INTEGER PRIMARY KEY, n INTEGER);
             CREATE TABLE wide (id INTEGER PRIMARY KEY, body TEXT);
             CREATE TABLE empty (id INTEGER PRIMARY KEY);
             WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 3000)
             INSERT INTO narrow SELECT i, i FROM k;
             WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 3000)
             INSERT INTO wide SELECT i, printf('%.2000c', 'x') FROM k;",
        )
        .unwrap();
        format!("sqlite://{}", path.display())
    }

    #[test]
    fn wide_rows_measure_wider_and_empty_tables_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let url = database(dir.path());
        let options = SourceOptions::default();
        let tables = Source::open_with(&url, None, &options)
            .unwrap()
            .tables()
            .unwrap();
        let r = run(&SampleTask {
            source_url: url,
            snapshot: None,
            tables,
            rows: SAMPLE_ROWS,
            options,
        })
        .unwrap();
        assert!(!r.row_bytes.contains_key("empty"), "{r:?}");
        let (narrow, wide) = (r.row_bytes["narrow"], r.row_bytes["wide"]);
        // Arrow sizes count the buffers' capacity: an upper estimate.
        assert!(narrow < 1_000, "two integers a row: {narrow} bytes");
        assert!(wide > 2_000, "2,000 characters a row: {wide} bytes");
        assert!(wide > 10 * narrow, "{wide} against {narrow}");
    }

    #[test]
    fn no_rows_no_average() {
        assert_eq!(average_row_bytes(&[]), None);
    }
}
