//! `sensei diff`: row-level comparison of the same tables in two databases
//! (any two sources Sensei reads), keyed by primary key, fully, not sampled.
//!
//! The key range of each table is cut into chunks; workers each hold one
//! session per side. Where both sides are PostgreSQL, or both MySQL/MariaDB,
//! and the table has the same integer key and the same columns of the same
//! types on both, the databases compare first: each chunk's row count and
//! sum of row hashes (PostgreSQL: `hash_record_extended`, or the hash of the
//! row's text for types without a hash function; MySQL: the MD5 of the
//! row's length-prefixed bytes, tables with floating-point columns excepted) are computed
//! on both servers, equal chunks are done
//! without a row leaving the server, and a differing chunk is cut into
//! [`BISECT_FACTOR`] parts and checked again until a part holds at most
//! [`BISECT_ROWS`] rows; only those are read ([`TableDiff::method`]
//! `checksum`). Otherwise (other engines, other types, `--rows`) every chunk
//! is read from both sides (`rows`) and both sides are digested with the
//! certificate's Merkle algorithm ([`sensei_contracts::digest`]), so a diff
//! of a delivered target can be set against a certificate's roots. Either
//! way the rows of a part that differs are paired by key with the
//! Validator's comparison ([`crate::equivalence`]), so what is reported is
//! decided on the values, type-aware, never on a hash; memory stays bounded
//! by the chunk. Without an integer key a table is read whole.

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
    /// Read every row of both sides, with Merkle roots, even where the
    /// databases could compare checksums.
    pub rows_only: bool,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            tables: Vec::new(),
            workers: 2,
            chunk_keys: 200_000,
            batch_rows: 10_000,
            tolerance: Tolerance::default(),
            rows_only: false,
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
    /// Merkle root of the first side (the certificate's algorithm); empty
    /// when the rows were not all read (`method` `checksum`).
    pub merkle_a: String,
    /// Merkle root of the second side.
    pub merkle_b: String,
    /// `rows` (every row read from both sides) or `checksum` (chunk
    /// checksums computed by the databases, differing parts read).
    #[serde(default)]
    pub method: String,
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

/// Chunks of the integer key's range, over both sides' extremes, of about
/// `chunk_keys` rows each; the same bounds are read on each side. Where the two sides key on different
/// columns (or have none), the table is read whole.
fn chunks(x: &TableInfo, y: &TableInfo, chunk_keys: i64) -> Vec<Option<(i64, i64)>> {
    let same_key = x.range_column == y.range_column;
    match (x.rowid_range, y.rowid_range) {
        _ if !same_key || x.range_column.is_none() => vec![None],
        (Some((lo1, hi1)), Some((lo2, hi2))) => sensei_connectors::files::key_ranges(
            lo1.min(lo2),
            hi1.max(hi2),
            x.rows.max(y.rows),
            chunk_keys.max(1) as u64,
        )
        .into_iter()
        .map(Some)
        .collect(),
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
    if !options.rows_only {
        if let Some(hash) = checksum_hash(a, b, x, y, &chunks)? {
            return by_checksums(a, b, x, y, &key, &hash, &chunks, options, progress);
        }
    }
    let found = Mutex::new(Found::default());
    let merkle = Mutex::new((MerkleDigest::default(), MerkleDigest::default()));
    let schema = x.schema();
    for_each_chunk(
        a,
        b,
        &x.name,
        &chunks,
        options,
        progress,
        &|sa, sb, range| {
            let left = read(sa, x, range, options.batch_rows)?;
            let right = read(sb, y, range, options.batch_rows)?
                .into_iter()
                .map(|b| Ok(crate::equivalence::conform(b, &schema)?))
                .collect::<Result<Vec<_>>>()?;
            let (mut ma, mut mb) = (MerkleDigest::default(), MerkleDigest::default());
            for b in &left {
                ma.add_batch(b, &key);
            }
            for b in &right {
                mb.add_batch(b, &key);
            }
            let mut m = merkle.lock().unwrap_or_else(|p| p.into_inner());
            m.0.merge(&ma);
            m.1.merge(&mb);
            drop(m);
            let mut f = Found::default();
            f.add(&left, &right, &key, options);
            found.lock().unwrap_or_else(|p| p.into_inner()).merge(f);
            Ok(())
        },
    )?;
    let (ma, mb) = merkle.into_inner().unwrap_or_else(|p| p.into_inner());
    let found = found.into_inner().unwrap_or_else(|p| p.into_inner());
    Ok(found.into_diff(x, &key, (ma.root(), mb.root()), "rows"))
}

/// The work on one chunk, given a session on each side.
type ChunkWork<'a> =
    &'a (dyn Fn(&mut Source, &mut Source, Option<(i64, i64)>) -> Result<()> + Sync);

/// Runs `each` on every chunk of a table: `options.workers` threads, each
/// holding one session per side, take the chunks in turn; progress is
/// reported per chunk, and the first error stops the others and is returned.
fn for_each_chunk(
    a: &str,
    b: &str,
    table: &str,
    chunks: &[Option<(i64, i64)>],
    options: &DiffOptions,
    progress: &(dyn Fn(&str, usize, usize) + Sync),
    each: ChunkWork<'_>,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
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
                        each(&mut sa, &mut sb, *range)?;
                        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                        progress(table, n, chunks.len());
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
    match failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A differing part is cut into this many parts, each checked again.
pub const BISECT_FACTOR: i64 = 16;

/// A differing part of at most this many rows (on either side) is read
/// and compared row by row instead of being cut again.
pub const BISECT_ROWS: u64 = 16_384;

/// Which servers compute the checksums, and the SQL expression hashing one
/// row there.
#[derive(Debug, Clone, PartialEq)]
enum RowHash {
    /// PostgreSQL: a signed 64-bit hash, summed as `numeric`.
    Postgres(String),
    /// MySQL/MariaDB: the first 64 bits of the MD5 of the row's bytes,
    /// summed as `DECIMAL`.
    MySql(String),
}

/// How the servers hash a row of `t`, when both sides are PostgreSQL or
/// both MySQL/MariaDB and the table can be compared by checksums there: the
/// same integer key, the same columns with the same declared types (and, on
/// MySQL, no floating-point column, whose text form drops digits). On
/// PostgreSQL per-type hash functions (`hash_record_extended`) where every
/// column type has one, else the hash of the row's text. None: read the rows.
fn checksum_hash(
    a: &str,
    b: &str,
    x: &TableInfo,
    y: &TableInfo,
    chunks: &[Option<(i64, i64)>],
) -> Result<Option<RowHash>> {
    use sensei_connectors::url::{parse, Location};
    let (engine_a, engine_b) = (parse(a, "source")?, parse(b, "source")?);
    let columns = |t: &TableInfo| -> Vec<(String, String)> {
        let mut c: Vec<_> = t
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.source_type.clone()))
            .collect();
        c.sort();
        c
    };
    if chunks.iter().any(Option::is_none) || columns(x) != columns(y) {
        return Ok(None);
    }
    if matches!(
        (&engine_a, &engine_b),
        (Location::MySql(_), Location::MySql(_))
    ) {
        let float = x.columns.iter().any(|c| {
            let t = c.source_type.to_ascii_lowercase();
            t.starts_with("float") || t.starts_with("double") || t.starts_with("real")
        });
        if float {
            return Ok(None);
        }
        let cells: Vec<String> = x
            .columns
            .iter()
            .map(|c| {
                // Length-prefixed bytes, -1 for NULL: no two rows encode alike.
                let v = format!(
                    "CAST({} AS BINARY)",
                    sensei_connectors::mysql::quote(&c.name)
                );
                format!("IFNULL(LENGTH({v}), -1), ':', IFNULL({v}, '')")
            })
            .collect();
        return Ok(Some(RowHash::MySql(format!(
            "CAST(CONV(SUBSTRING(MD5(CONCAT({})), 1, 16), 16, 10) AS UNSIGNED)",
            cells.join(", ")
        ))));
    }
    if !matches!(
        (&engine_a, &engine_b),
        (Location::Postgres(_), Location::Postgres(_))
    ) {
        return Ok(None);
    }
    let row = format!(
        "ROW({})",
        x.columns
            .iter()
            .map(|c| sensei_connectors::ident::ansi(&c.name))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Tried on a row of each side in a session of its own: a type without
    // a hash function fails the statement (and would end a session's
    // transaction).
    let typed = format!("hash_record_extended({row}, 0)");
    for (url, t) in [(a, x), (b, y)] {
        let mut probe = Source::open(url, None)?;
        let Some(pg) = probe.engine::<sensei_connectors::postgres::PgSource>() else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT {typed} FROM {} LIMIT 1",
            table_sql(t, sensei_connectors::ident::ansi)
        );
        if pg.query_text(&sql).is_err() {
            return Ok(Some(RowHash::Postgres(format!(
                "hashtextextended({row}::text, 0)"
            ))));
        }
    }
    Ok(Some(RowHash::Postgres(typed)))
}

fn table_sql(t: &TableInfo, quote: fn(&str) -> String) -> String {
    t.qualified.clone().unwrap_or_else(|| quote(&t.name))
}

/// Rows and sum of row hashes of keys `lo..=hi` of `t`, computed by the server.
fn checksum(
    src: &mut Source,
    t: &TableInfo,
    hash: &RowHash,
    (lo, hi): (i64, i64),
) -> Result<(u64, String)> {
    let key = t
        .range_column
        .as_deref()
        .ok_or_else(|| err(&t.name, "no key range"))?;
    let text = match hash {
        RowHash::Postgres(h) => {
            let quote = sensei_connectors::ident::ansi;
            let sql = format!(
                "SELECT count(*)::text || ':' || coalesce(sum(({h})::numeric), 0)::text FROM {} WHERE {} BETWEEN {lo} AND {hi}",
                table_sql(t, quote),
                quote(key)
            );
            src.engine::<sensei_connectors::postgres::PgSource>()
                .ok_or_else(|| err(&t.name, "not a PostgreSQL session"))?
                .query_text(&sql)?
        }
        RowHash::MySql(h) => {
            let quote = sensei_connectors::mysql::quote;
            let sql = format!(
                "SELECT CONCAT(COUNT(*), ':', COALESCE(SUM({h}), 0)) FROM {} WHERE {} BETWEEN {lo} AND {hi}",
                table_sql(t, quote),
                quote(key)
            );
            src.engine::<sensei_connectors::mysql::MySqlSource>()
                .ok_or_else(|| err(&t.name, "not a MySQL session"))?
                .query_text(&sql)?
        }
    }
    .unwrap_or_default();
    let (rows, sum) = text
        .split_once(':')
        .ok_or_else(|| err(&t.name, format!("checksum query returned {text:?}")))?;
    let rows = rows
        .parse()
        .map_err(|_| err(&t.name, format!("checksum query returned {text:?}")))?;
    Ok((rows, sum.to_string()))
}

/// What the parts compared so far hold.
#[derive(Default)]
struct Found {
    rows_a: u64,
    rows_b: u64,
    diff: RowDiff,
}

impl Found {
    /// Pairs the rows of one part by key and counts them.
    fn add(
        &mut self,
        left: &[RecordBatch],
        right: &[RecordBatch],
        key: &[String],
        options: &DiffOptions,
    ) {
        self.rows_a += left.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        self.rows_b += right.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        self.diff.merge(&crate::equivalence::compare_sides(
            left,
            right,
            key,
            &options.tolerance,
            &DIFF_SIDES,
        ));
    }

    fn merge(&mut self, other: Found) {
        self.rows_a += other.rows_a;
        self.rows_b += other.rows_b;
        self.diff.merge(&other.diff);
    }

    fn into_diff(
        self,
        x: &TableInfo,
        key: &[String],
        merkle: (String, String),
        method: &str,
    ) -> TableDiff {
        TableDiff {
            table: x.name.clone(),
            key: key.to_vec(),
            rows_a: self.rows_a,
            rows_b: self.rows_b,
            diff: self.diff,
            merkle_a: merkle.0,
            merkle_b: merkle.1,
            method: method.into(),
        }
    }
}

/// Compares keys `lo..=hi` by checksums, cutting a differing part until it
/// is small enough to read.
#[allow(clippy::too_many_arguments)]
fn compare_part(
    sa: &mut Source,
    sb: &mut Source,
    x: &TableInfo,
    y: &TableInfo,
    key: &[String],
    hash: &RowHash,
    range: (i64, i64),
    options: &DiffOptions,
    found: &mut Found,
) -> Result<()> {
    let (ra, ha) = checksum(sa, x, hash, range)?;
    let (rb, hb) = checksum(sb, y, hash, range)?;
    if ra == rb && ha == hb {
        found.rows_a += ra;
        found.rows_b += rb;
        return Ok(());
    }
    let (lo, hi) = range;
    let span = i128::from(hi) - i128::from(lo) + 1;
    if ra.max(rb) <= BISECT_ROWS || span <= i128::from(BISECT_FACTOR) {
        let left = read(sa, x, Some(range), options.batch_rows)?;
        let schema = x.schema();
        let right = read(sb, y, Some(range), options.batch_rows)?
            .into_iter()
            .map(|b| Ok(crate::equivalence::conform(b, &schema)?))
            .collect::<Result<Vec<_>>>()?;
        found.add(&left, &right, key, options);
        return Ok(());
    }
    let parts = i128::from(BISECT_FACTOR);
    for i in 0..parts {
        let a = i128::from(lo) + span * i / parts;
        let b = i128::from(lo) + span * (i + 1) / parts - 1;
        // Within lo..=hi, so within i64.
        let part = (a as i64, b as i64);
        compare_part(sa, sb, x, y, key, hash, part, options, found)?;
    }
    Ok(())
}

/// [`diff_table`] by checksums.
#[allow(clippy::too_many_arguments)]
fn by_checksums(
    a: &str,
    b: &str,
    x: &TableInfo,
    y: &TableInfo,
    key: &[String],
    hash: &RowHash,
    chunks: &[Option<(i64, i64)>],
    options: &DiffOptions,
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> Result<TableDiff> {
    let found = Mutex::new(Found::default());
    for_each_chunk(
        a,
        b,
        &x.name,
        chunks,
        options,
        progress,
        &|sa, sb, range| {
            let range = range.ok_or_else(|| err(&x.name, "no key range"))?;
            let mut f = Found::default();
            compare_part(sa, sb, x, y, key, hash, range, options, &mut f)?;
            found.lock().unwrap_or_else(|p| p.into_inner()).merge(f);
            Ok(())
        },
    )?;
    let found = found.into_inner().unwrap_or_else(|p| p.into_inner());
    Ok(found.into_diff(x, key, (String::new(), String::new()), "checksum"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(rows: u64, lo: i64, hi: i64) -> TableInfo {
        TableInfo {
            name: "t".into(),
            columns: Vec::new(),
            rows,
            rowid_range: Some((lo, hi)),
            qualified: None,
            range_column: Some("id".into()),
            splits: None,
            file: None,
        }
    }

    #[test]
    fn chunks_hold_about_chunk_keys_rows_however_sparse_the_key() {
        let dense = chunks(&keyed(1000, 1, 1000), &keyed(1000, 1, 1000), 300);
        assert_eq!(
            dense,
            [
                Some((1, 300)),
                Some((301, 600)),
                Some((601, 900)),
                Some((901, 1000))
            ]
        );
        // 64-bit generated ids: 10,000 rows, a few chunks, not 10^13.
        let sparse = chunks(
            &keyed(10_000, 1 << 50, i64::MAX - 5),
            &keyed(10_000, 1 << 50, i64::MAX),
            2_500,
        );
        assert!(sparse.len() <= 5, "{}", sparse.len());
        assert_eq!(sparse[0].unwrap().0, 1 << 50);
        assert_eq!(sparse.last().unwrap().unwrap().1, i64::MAX);
        for w in sparse.windows(2) {
            assert_eq!(w[0].unwrap().1 + 1, w[1].unwrap().0);
        }
    }
}
