//! `sensei diff`: row-level comparison of the same tables in two databases
//! (any two sources Sensei reads), keyed by primary key, fully, not sampled.
//!
//! The key range of each table is cut into chunks; workers each hold one
//! session per side, read a chunk from both, and pair its rows by key with
//! the Validator's comparison ([`crate::equivalence`]); memory stays bounded
//! by the chunk. Both sides are also digested with the certificate's Merkle
//! algorithm ([`sensei_contracts::digest`]), so a diff of a delivered target can be set
//! against a certificate's roots. Without an integer key a table is read
//! whole.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use arrow::record_batch::RecordBatch;
use sensei_connectors::source::Source;
use sensei_connectors::table::TableInfo;
use serde::{Deserialize, Serialize};

use crate::equivalence::{RowDiff, Tolerance};
use sensei_contracts::digest::MerkleDigest;
use sensei_contracts::error::{EngineError, Result};

/// The two databases in the words of a difference.
const DIFF_SIDES: crate::equivalence::Sides = crate::equivalence::Sides {
    missing: "only in the first database",
    extra: "only in the second database (or duplicated there)",
    changed: "in the second database where the first holds",
};

/// How to compare.
#[derive(Debug, Clone)]
pub struct DiffOptions {
    /// Tables to compare (empty: every table of the first database).
    pub tables: Vec<String>,
    /// Concurrent workers (each holds one session per side).
    pub workers: usize,
    /// Keys per chunk.
    pub chunk_keys: i64,
    /// Rows per batch read.
    pub batch_rows: usize,
    /// Tolerances (exact by default).
    pub tolerance: Tolerance,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            tables: Vec::new(),
            workers: 2,
            chunk_keys: 200_000,
            batch_rows: 10_000,
            tolerance: Tolerance::default(),
        }
    }
}

/// One table's outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableDiff {
    /// Table.
    pub table: String,
    /// The key rows were paired by.
    pub key: Vec<String>,
    /// Rows on the first side.
    pub rows_a: u64,
    /// Rows on the second side.
    pub rows_b: u64,
    /// Missing (on the first side only), extra (second only), changed, with the first examples.
    pub diff: RowDiff,
    /// Merkle root of the first side (the certificate's algorithm).
    pub merkle_a: String,
    /// Merkle root of the second side.
    pub merkle_b: String,
}

fn err(table: &str, message: impl std::fmt::Display) -> EngineError {
    EngineError::Malformed {
        what: format!("diff of table {table}"),
        message: message.to_string(),
    }
}

fn read(
    src: &mut Source,
    t: &TableInfo,
    range: Option<(i64, i64)>,
    batch_rows: usize,
) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    src.read(t, range, batch_rows, |b| {
        out.push(b);
        Ok(())
    })?;
    Ok(out)
}

/// Compares the tables of `a` and `b`; `progress` is told each finished
/// chunk (table, chunks done, chunks in all).
pub fn diff(
    a: &str,
    b: &str,
    options: &DiffOptions,
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> Result<Vec<TableDiff>> {
    let mut first = Source::open(a, None)?;
    let mut second = Source::open(b, None)?;
    let ta = first.tables()?;
    let tb = second.tables()?;
    drop((first, second));
    let names: Vec<String> = if options.tables.is_empty() {
        ta.iter().map(|t| t.name.clone()).collect()
    } else {
        options.tables.clone()
    };
    let mut out = Vec::new();
    for name in names {
        let x = ta
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| err(&name, "no such table in the first database"))?;
        let y = tb
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| err(&name, "no such table in the second database"))?;
        out.push(diff_table(a, b, x, y, options, progress)?);
    }
    Ok(out)
}

/// Chunks of the integer key's range, over both sides' extremes; the same
/// bounds are read on each side. Where the two sides key on different
/// columns (or have none), the table is read whole.
fn chunks(x: &TableInfo, y: &TableInfo, chunk_keys: i64) -> Vec<Option<(i64, i64)>> {
    let same_key = x.range_column == y.range_column;
    match (x.rowid_range, y.rowid_range) {
        _ if !same_key || x.range_column.is_none() => vec![None],
        (Some((lo1, hi1)), Some((lo2, hi2))) => {
            let (lo, hi) = (lo1.min(lo2), hi1.max(hi2));
            let step = chunk_keys.max(1);
            let mut v = Vec::new();
            let mut s = lo;
            loop {
                let e = s.saturating_add(step - 1).min(hi);
                v.push(Some((s, e)));
                if e >= hi {
                    break;
                }
                s = e + 1;
            }
            v
        }
        (Some(r), None) | (None, Some(r)) => vec![Some(r)],
        (None, None) => vec![Some((0, 0))],
    }
}

fn diff_table(
    a: &str,
    b: &str,
    x: &TableInfo,
    y: &TableInfo,
    options: &DiffOptions,
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> Result<TableDiff> {
    let key = x.primary_key();
    if key.is_empty() {
        return Err(err(
            &x.name,
            "it has no primary key to pair rows by; declare one (or compare a view that has one)",
        ));
    }
    if y.primary_key() != key {
        return Err(err(
            &x.name,
            format!(
                "the primary keys differ ({} against {})",
                key.join(", "),
                y.primary_key().join(", ")
            ),
        ));
    }
    let chunks = chunks(x, y, options.chunk_keys);
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let total = Mutex::new(TableDiff {
        table: x.name.clone(),
        key: key.clone(),
        ..TableDiff::default()
    });
    let merkle = Mutex::new((MerkleDigest::default(), MerkleDigest::default()));
    let schema = x.schema();
    let failure: Mutex<Option<EngineError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..options.workers.max(1).min(chunks.len()) {
            scope.spawn(|| {
                let work = || -> Result<()> {
                    let mut sa = Source::open(a, None)?;
                    let mut sb = Source::open(b, None)?;
                    loop {
                        if failure.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                            return Ok(());
                        }
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(range) = chunks.get(i) else {
                            return Ok(());
                        };
                        let left = read(&mut sa, x, *range, options.batch_rows)?;
                        let right = read(&mut sb, y, *range, options.batch_rows)?
                            .into_iter()
                            .map(|b| Ok(crate::equivalence::conform(b, &schema)?))
                            .collect::<Result<Vec<_>>>()?;
                        let d = crate::equivalence::compare_sides(
                            &left,
                            &right,
                            &key,
                            &options.tolerance,
                            &DIFF_SIDES,
                        );
                        let (mut ma, mut mb) = (MerkleDigest::default(), MerkleDigest::default());
                        for b in &left {
                            ma.add_batch(b, &key);
                        }
                        for b in &right {
                            mb.add_batch(b, &key);
                        }
                        {
                            let mut m = merkle.lock().unwrap_or_else(|p| p.into_inner());
                            m.0.merge(&ma);
                            m.1.merge(&mb);
                        }
                        {
                            let mut t = total.lock().unwrap_or_else(|p| p.into_inner());
                            t.rows_a += left.iter().map(|b| b.num_rows() as u64).sum::<u64>();
                            t.rows_b += right.iter().map(|b| b.num_rows() as u64).sum::<u64>();
                            t.diff.merge(&d);
                        }
                        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                        progress(&x.name, n, chunks.len());
                    }
                };
                if let Err(e) = work() {
                    failure
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert(e);
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let mut t = total.into_inner().unwrap_or_else(|p| p.into_inner());
    let (ma, mb) = merkle.into_inner().unwrap_or_else(|p| p.into_inner());
    t.merkle_a = ma.root();
    t.merkle_b = mb.root();
    Ok(t)
}
