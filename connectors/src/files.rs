//! What file sources (CSV, Parquet) share: finding the files of a location,
//! the file facts recorded at discovery, and the options a user sets.
//!
//! A location is one file or a folder; in a folder every file with the
//! format's extension is a table named after the file's stem. Discovery
//! records each file's size and modification time, and every reader checks
//! them again before reading: a file changed after discovery is an error,
//! never a silent mix of two versions.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::error::{ConnectorError, Result};

/// What to do with a CSV record that cannot be read as a row of its table
/// (wrong number of fields, a NUL byte).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BadRows {
    /// Stop before any work, naming file, line and reason.
    #[default]
    Reject,
    /// Set the record aside in a quarantine file (original bytes kept) and go on.
    Quarantine,
}

/// Options of sources: how files are read, how database sessions connect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SourceOptions {
    /// `auto` to detect, or an encoding label (`utf-8`, `latin1`, `windows-1250`, ...).
    pub encoding: String,
    /// Detected encodings below this confidence are refused.
    pub min_confidence: f64,
    /// `auto` (sniffed from the first line among `,` `;` tab `|`) or one character.
    pub delimiter: String,
    /// Whether the first record names the columns.
    pub header: bool,
    /// Malformed records.
    pub bad_rows: BadRows,
    /// Database sources: a file holding the password (owner-readable only),
    /// used when the URL carries none; empty for none.
    pub password_file: String,
    /// Database sources: `disable`, `prefer`, `require` (encrypted, server
    /// certificate not checked) or `verify-full` (certificate and host name checked).
    pub ssl_mode: String,
    /// Database sources: seconds to wait for a connection.
    pub connect_timeout_s: u64,
    /// Database sources: the integer column to split each named table on,
    /// instead of its single-column integer primary key (SQLite: its rowid).
    pub partition_keys: std::collections::BTreeMap<String, String>,
    /// MySQL/MariaDB targets: load batches with `LOAD DATA LOCAL INFILE`
    /// (multi-row INSERTs when false or when the server refuses it).
    pub local_infile: bool,
}

impl SourceOptions {
    /// The options of sessions to a target: its connection keys, the rest default.
    pub fn for_target(t: &sensei_runtime::config::TargetSection) -> Self {
        SourceOptions {
            password_file: t.password_file.clone(),
            ssl_mode: t.ssl_mode.clone(),
            connect_timeout_s: t.connect_timeout_s,
            local_infile: t.mysql_local_infile,
            ..SourceOptions::default()
        }
    }

    /// Parses `table.column, other_table.column` (a schema-qualified table
    /// keeps its schema: `sales.orders.id`).
    pub fn parse_partition_keys(spec: &str) -> Result<std::collections::BTreeMap<String, String>> {
        let mut out = std::collections::BTreeMap::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (table, column) = item
                .rsplit_once('.')
                .filter(|(t, c)| !t.is_empty() && !c.is_empty())
                .ok_or_else(|| ConnectorError::Setting {
                    key: "ingestion.partition_key",
                    message: format!(
                        "{item:?} is not table.column; write table.column, another_table.column"
                    ),
                })?;
            out.insert(table.to_string(), column.to_string());
        }
        Ok(out)
    }

    /// The password for a URL that carries none: from `password_file`, else
    /// from the environment variable `env` (`PGPASSWORD`, `MYSQL_PWD`).
    pub fn password(&self, env: &str) -> Result<Option<String>> {
        if !self.password_file.is_empty() {
            let secret = sensei_runtime::secret::read_secret_file(Path::new(&self.password_file))
                .map_err(|e| ConnectorError::Unreadable {
                path: self.password_file.clone(),
                message: e.to_string(),
            })?;
            return Ok(Some(secret.expose().clone()));
        }
        Ok(std::env::var(env).ok())
    }

    /// The TLS connector for `ssl_mode` (None: no TLS).
    pub fn tls(&self) -> Result<Option<native_tls::TlsConnector>> {
        let mut b = native_tls::TlsConnector::builder();
        match self.ssl_mode.as_str() {
            "disable" => return Ok(None),
            "prefer" | "require" => {
                b.danger_accept_invalid_certs(true)
                    .danger_accept_invalid_hostnames(true);
            }
            "verify-full" => {}
            other => {
                return Err(ConnectorError::Unreadable {
                    path: "source.ssl_mode".into(),
                    message: format!(
                        "{other:?} is not one of disable, prefer, require, verify-full"
                    ),
                })
            }
        }
        b.build().map(Some).map_err(|e| ConnectorError::Unreadable {
            path: "source.ssl_mode".into(),
            message: format!("cannot set up TLS: {e}"),
        })
    }
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            encoding: "auto".into(),
            min_confidence: 0.9,
            delimiter: "auto".into(),
            header: true,
            bad_rows: BadRows::Reject,
            password_file: String::new(),
            ssl_mode: "prefer".into(),
            connect_timeout_s: 30,
            partition_keys: Default::default(),
            local_infile: true,
        }
    }
}

/// Where a partition may start: a record's byte offset (CSV) or a row group
/// (Parquet), with the rows and the line before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// Byte offset (CSV) or row group index (Parquet).
    pub key: i64,
    /// Rows of the table before this point.
    pub rows_before: u64,
    /// Line of the file at this point (1-based; CSV only, else 0).
    pub line: u64,
}

/// A file source table's facts, fixed at discovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileInfo {
    /// `csv` or `parquet`.
    pub format: String,
    /// The file.
    pub path: PathBuf,
    /// Size at discovery.
    pub bytes: u64,
    /// Modification time at discovery, nanoseconds since the epoch.
    pub modified_ns: u64,
    /// Encoding the text was read in (CSV).
    #[serde(default)]
    pub encoding: String,
    /// How sure the detection was (1 when given or UTF-8).
    #[serde(default)]
    pub encoding_confidence: f64,
    /// Field delimiter (CSV).
    #[serde(default)]
    pub delimiter: u8,
    /// Whether the first record is a header (CSV).
    #[serde(default)]
    pub header: bool,
    /// Malformed records found at discovery (quarantined on read).
    #[serde(default)]
    pub bad_records: u64,
    /// Malformed-record policy.
    #[serde(default)]
    pub bad_rows: BadRows,
}

/// Size and modification time of a file.
pub fn stamp(path: &Path) -> Result<(u64, u64)> {
    let meta = std::fs::metadata(path).map_err(|e| ConnectorError::Unreadable {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    Ok((meta.len(), modified))
}

/// The file a table was discovered in, refused when it is not a `format`
/// file or has changed since.
pub fn unchanged_file<'t>(
    table: &'t crate::table::TableInfo,
    format: &str,
) -> Result<&'t FileInfo> {
    let info = table
        .file
        .as_ref()
        .filter(|f| f.format == format)
        .ok_or_else(|| ConnectorError::Unreadable {
            path: table.name.clone(),
            message: format!("the table was not discovered as a {format} file"),
        })?;
    check_unchanged(info)?;
    Ok(info)
}

/// Refuses to read a file that changed since discovery.
pub fn check_unchanged(info: &FileInfo) -> Result<()> {
    let (bytes, modified) = stamp(&info.path)?;
    if bytes != info.bytes || modified != info.modified_ns {
        return Err(ConnectorError::Unreadable {
            path: info.path.display().to_string(),
            message: format!(
                "the file changed after discovery (size {} -> {bytes} bytes); run the same command again to extract it anew (--restart once the migration was delivered)",
                info.bytes
            ),
        });
    }
    Ok(())
}

/// Extensions of files that hold tables: in a folder source of another
/// format they are refused by name, not skipped.
const TABULAR: &[&str] = &[
    "csv", "tsv", "parquet", "xlsx", "xlsm", "xlsb", "xls", "ods", "numbers",
];

/// The files of a location: the file itself, or the folder's files whose
/// extension is one of `extensions`, sorted by name, with their table names.
pub fn list(location: &Path, extensions: &[&str]) -> Result<Vec<(String, PathBuf)>> {
    let shown = location.display().to_string();
    let meta = std::fs::metadata(location).map_err(|e| ConnectorError::Unreadable {
        path: shown.clone(),
        message: e.to_string(),
    })?;
    let mut files = Vec::new();
    if meta.is_dir() {
        let entries = std::fs::read_dir(location).map_err(|e| ConnectorError::Unreadable {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let mut refused = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            let Some(ext) = ext.filter(|_| path.is_file()) else {
                continue;
            };
            if extensions.contains(&ext.as_str()) {
                files.push(path);
            } else if TABULAR.contains(&ext.as_str()) {
                refused.push(path);
            }
        }
        files.sort();
        if !refused.is_empty() {
            // A table beside the others in a format this reader does not
            // take would be left out of the migration without a word.
            refused.sort();
            let names: Vec<String> = refused
                .iter()
                .filter_map(|p| p.file_name().and_then(|n| n.to_str()))
                .map(str::to_string)
                .collect();
            return Err(ConnectorError::Unreadable {
                path: shown,
                message: format!(
                    "the folder holds tables this source does not read: {}; save each as .{} (a spreadsheet: one file per sheet) or move it out of the folder",
                    names.join(", "),
                    extensions[0]
                ),
            });
        }
        if files.is_empty() {
            return Err(ConnectorError::Unreadable {
                path: shown,
                message: format!("the folder holds no .{} file", extensions.join(" or .")),
            });
        }
    } else {
        files.push(location.to_path_buf());
    }
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for path in files {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("table")
            .to_string();
        if let Some((_, other)) = out.iter().find(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            return Err(ConnectorError::Unreadable {
                path: shown,
                message: format!(
                    "{} and {} would both be table {name}; rename one",
                    other.display(),
                    path.display()
                ),
            });
        }
        out.push((name, path));
    }
    Ok(out)
}

/// Chooses the column a database table is split on: the configured one,
/// else a single-column integer primary key. A configured column that is
/// missing or not an integer is an error naming table and column.
pub(crate) fn partition_column(
    t: &crate::table::TableInfo,
    configured: &std::collections::BTreeMap<String, String>,
) -> Result<Option<String>> {
    let is_int = |name: &str| {
        t.columns
            .iter()
            .any(|c| c.name == name && matches!(c.arrow_type.as_str(), "Int16" | "Int32" | "Int64"))
    };
    if let Some(col) = configured.get(&t.name) {
        if !t.columns.iter().any(|c| c.name == *col) {
            return Err(ConnectorError::Unreadable {
                path: format!("{}.{col}", t.name),
                message: format!(
                    "ingestion.partition_key names column {col}, which table {} does not have",
                    t.name
                ),
            });
        }
        if !is_int(col) {
            return Err(ConnectorError::Unreadable {
                path: format!("{}.{col}", t.name),
                message: "a partition key must be an integer column (ranges of it become partitions); choose another column or leave the table to its primary key".into(),
            });
        }
        return Ok(Some(col.clone()));
    }
    Ok(match t.primary_key().as_slice() {
        [key] if is_int(key) => Some(key.clone()),
        _ => None,
    })
}

/// The query reading a database table's columns `cols` (already rendered),
/// the rows of one key range when given, in key order when there is a key;
/// `quote` quotes identifiers in the engine's way.
pub(crate) fn range_select(
    t: &crate::table::TableInfo,
    cols: &str,
    range: Option<(i64, i64)>,
    quote: fn(&str) -> String,
) -> String {
    let sql_name = t.qualified.clone().unwrap_or_else(|| quote(&t.name));
    match (&t.range_column, range) {
        (Some(k), Some((lo, hi))) => format!(
            "SELECT {cols} FROM {sql_name} WHERE {} ORDER BY {k}",
            range_condition(t, &quote(k), lo, hi),
            k = quote(k)
        ),
        (Some(k), None) => format!("SELECT {cols} FROM {sql_name} ORDER BY {}", quote(k)),
        _ => format!("SELECT {cols} FROM {sql_name}"),
    }
}

/// `SELECT` of about `n` rows spread over the table, in key order where
/// there is a key range.
///
/// On a primary-key range the sample is [`SAMPLE_WINDOWS`] windows of
/// consecutive keys spread evenly over the range, each read through the
/// key's index (`k >= a AND k < b ORDER BY k LIMIT x`): about `n` rows
/// read, whatever the table's size. A filter on every `step`-th key
/// (`every(key, lo, step)`, the dialect's condition) would read every row
/// of the table before the first partition starts; it stays for a
/// configured key that is not the primary key (it may have no index, and
/// one scan beats a scan per window). Without a key range: the first `n`
/// rows.
pub(crate) fn sample_select(
    t: &crate::table::TableInfo,
    cols: &str,
    n: u64,
    quote: fn(&str) -> String,
    every: impl Fn(&str, i64, u64) -> String,
) -> String {
    let sql_name = t.qualified.clone().unwrap_or_else(|| quote(&t.name));
    let n = n.max(1);
    match (&t.range_column, t.rowid_range) {
        (Some(k), Some((lo, hi))) if t.primary_key() == [k.as_str()] => sample_union(
            &quote(k),
            lo,
            hi,
            n,
            &format!("SELECT {cols} FROM {sql_name}"),
        ),
        (Some(k), Some((lo, _))) => format!(
            "SELECT {cols} FROM {sql_name} WHERE {} ORDER BY {k} LIMIT {n}",
            every(&quote(k), lo, (t.rows / n).max(1)),
            k = quote(k)
        ),
        _ => format!("SELECT {cols} FROM {sql_name} LIMIT {n}"),
    }
}

/// Contiguous ranges covering keys `lo..=hi`, of about `per` rows each at
/// the key's density (`rows` in all): `per` keys each where the key is
/// dense, wider where it is sparse (gaps, 64-bit generated ids), so the
/// number of ranges follows the rows, not the span of the key.
pub fn key_ranges(lo: i64, hi: i64, rows: u64, per: u64) -> Vec<(i64, i64)> {
    let span = (i128::from(hi) - i128::from(lo) + 1).max(1) as u128;
    let rows = u128::from(rows.max(1));
    let per = u128::from(per.max(1));
    let keys = if span > rows {
        per.saturating_mul(span).div_ceil(rows)
    } else {
        per
    };
    let keys = keys.min(i64::MAX as u128) as i64;
    let mut out = Vec::new();
    let mut start = lo;
    while start <= hi {
        let end = start.saturating_add(keys - 1).min(hi);
        out.push((start, end));
        if end == i64::MAX {
            break;
        }
        start = end + 1;
    }
    out
}

/// `select` (a `SELECT .. FROM table` of the dialect, key `k` quoted) over
/// each window of a spread sample of `n` rows of keys `lo..=hi`
/// ([`sample_windows`]), the windows' rows one after another.
pub(crate) fn sample_union(k: &str, lo: i64, hi: i64, n: u64, select: &str) -> String {
    sample_windows(lo, hi, n)
        .iter()
        .enumerate()
        .map(|(i, (a, b, take))| {
            format!(
                "SELECT * FROM ({select} WHERE {k} >= {a} AND {k} < {b} ORDER BY {k} LIMIT {take}) s{i}"
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// Windows of a spread sample over a key range.
pub const SAMPLE_WINDOWS: u64 = 50;

/// The windows of a spread sample of `n` rows over keys `lo..=hi`: (first
/// key, key past the last, rows to take), at most [`SAMPLE_WINDOWS`] of
/// them, disjoint, covering the range in order.
fn sample_windows(lo: i64, hi: i64, n: u64) -> Vec<(i128, i128, u64)> {
    let (lo, end) = (lo as i128, hi as i128 + 1);
    let span = (end - lo).max(1);
    let w = SAMPLE_WINDOWS
        .min(n)
        .min(span.min(u64::MAX as i128) as u64)
        .max(1);
    let take = n.div_ceil(w);
    (0..w as i128)
        .map(|i| {
            let a = lo + span * i / w as i128;
            let b = lo + span * (i + 1) / w as i128;
            (a, b, take)
        })
        .collect()
}

/// The condition of one key-range partition: `k BETWEEN lo AND hi`; the
/// first partition of a nullable key also takes the rows whose key is NULL,
/// so that no row falls between partitions.
pub(crate) fn range_condition(
    t: &crate::table::TableInfo,
    quoted_key: &str,
    lo: i64,
    hi: i64,
) -> String {
    let nullable = t
        .columns
        .iter()
        .any(|c| Some(&c.name) == t.range_column.as_ref() && c.nullable);
    if nullable && t.rowid_range.is_some_and(|r| r.0 == lo) {
        format!("({quoted_key} BETWEEN {lo} AND {hi} OR {quoted_key} IS NULL)")
    } else {
        format!("{quoted_key} BETWEEN {lo} AND {hi}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{ColumnInfo, TableInfo};

    fn table(pk: bool) -> TableInfo {
        TableInfo {
            name: "orders".into(),
            columns: vec![ColumnInfo {
                name: "id".into(),
                source_type: "bigint".into(),
                arrow_type: "Int64".into(),
                nullable: false,
                primary_key: u32::from(pk),
            }],
            rows: 5_000_000,
            rowid_range: Some((1, 5_000_000)),
            qualified: None,
            range_column: Some("id".into()),
            splits: None,
            file: None,
        }
    }

    #[test]
    fn sample_windows_cover_the_key_range_once_in_order() {
        for (lo, hi, n) in [
            (1, 5_000_000, 1000),
            (-7, 3, 1000),
            (5, 5, 1000),
            (0, 1_000_000, 7),
            (i64::MIN, i64::MAX, 1000),
        ] {
            let w = sample_windows(lo, hi, n);
            assert!(!w.is_empty() && w.len() as u64 <= SAMPLE_WINDOWS, "{w:?}");
            assert_eq!(w[0].0, lo as i128);
            assert_eq!(w.last().unwrap().1, hi as i128 + 1);
            for pair in w.windows(2) {
                assert_eq!(pair[0].1, pair[1].0, "disjoint and contiguous: {w:?}");
            }
            assert!(w.iter().all(|(a, b, _)| a < b), "{w:?}");
            assert!(
                w.iter().map(|x| x.2).sum::<u64>() >= n.min((hi as i128 - lo as i128 + 1) as u64)
            );
        }
    }

    #[test]
    fn a_primary_key_is_sampled_through_windows_and_another_key_by_one_filter() {
        let q = |k: &str| format!("\"{k}\"");
        let every = |k: &str, lo: i64, step: u64| format!("({k} - {lo}) % {step} = 0");
        let windows = sample_select(&table(true), "\"id\"", 1000, q, every);
        assert_eq!(
            windows.matches("UNION ALL").count() as u64,
            SAMPLE_WINDOWS - 1
        );
        assert!(windows.starts_with(
            "SELECT * FROM (SELECT \"id\" FROM \"orders\" WHERE \"id\" >= 1 AND \"id\" < 100001 ORDER BY \"id\" LIMIT 20) s0 UNION ALL"
        ), "{windows}");
        assert!(!windows.contains('%'));
        let filtered = sample_select(&table(false), "\"id\"", 1000, q, every);
        assert_eq!(
            filtered,
            "SELECT \"id\" FROM \"orders\" WHERE (\"id\" - 1) % 5000 = 0 ORDER BY \"id\" LIMIT 1000"
        );
    }
}
