//! SQLite: a read-only, streaming source and a transactional target.
//!
//! Types follow SQLite's affinity rules on the declared type (the rules of
//! section 3.1 of SQLite's datatype documentation):
//!
//! | declared type contains | affinity | Arrow type |
//! | --- | --- | --- |
//! | `INT` | INTEGER | Int64 |
//! | `CHAR`, `CLOB`, `TEXT` | TEXT | Utf8 |
//! | `BLOB` | BLOB | Binary |
//! | `REAL`, `FLOA`, `DOUB` | REAL | Float64 |
//! | `BOOL` | NUMERIC | Boolean |
//! | `TIMESTAMPTZ`, `… WITH TIME ZONE` | NUMERIC | Timestamp(µs, UTC) |
//! | `DATETIME`, `TIMESTAMP` | NUMERIC | Timestamp(µs) |
//! | exactly `DATE` | NUMERIC | Date32 |
//! | other `TIME` types | NUMERIC | Utf8 |
//! | `DECIMAL(p,s)`, `NUMERIC(p,s)`, p ≤ 38 (checked first) | NUMERIC (TEXT for `TEXT DECIMAL(p,s)`, what targets declare) | Decimal128(p, s) |
//! | anything else (`NUMERIC`, `DECIMAL`) | NUMERIC | Float64 |
//! | nothing | BLOB | Utf8 (values rendered as text) |
//!
//! Dates are read from `YYYY-MM-DD` text; timestamps from ISO 8601 text
//! (`YYYY-MM-DD HH:MM:SS[.ffffff]`, `T` or space, optional offset, applied) or
//! an integer of Unix seconds; decimals from integers, reals (their shortest
//! decimal form, rounded half away from zero to the scale) or exact text.
//!
//! A stored value that does not fit its column's Arrow type (SQLite lets
//! `'abc'` sit in an INTEGER column) is an error naming table, column and rowid.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Schema, TimeUnit};

use crate::convert::{float_to_decimal, parse_date_days, parse_decimal, parse_timestamp_micros};
use arrow::record_batch::RecordBatch;
use rusqlite::types::ValueRef;
use rusqlite::{params_from_iter, Connection, OpenFlags};

use crate::batch::{BatchAck, BatchKey, Batcher, LEDGER_TABLE};
use crate::error::{ConnectorError, Result};
use crate::source::{KeyRange, Sink};
use crate::table::{ColumnInfo, TableInfo};

/// Quotes an identifier for SQLite.
pub use crate::ident::ansi as quote;

/// Maps a declared SQLite type to an Arrow type (see the module table).
pub fn arrow_type_for(declared: &str) -> DataType {
    let t = declared.trim().to_ascii_uppercase();
    if t.contains("DECIMAL(") || t.contains("NUMERIC(") {
        if let Some((p, s)) = decimal_params(&t) {
            return DataType::Decimal128(p, s);
        }
    }
    if t.contains("INT") {
        DataType::Int64
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        DataType::Utf8
    } else if t.contains("BLOB") {
        DataType::Binary
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        DataType::Float64
    } else if t.contains("BOOL") {
        DataType::Boolean
    } else if t.contains("TIMESTAMPTZ") || t.contains("WITH TIME ZONE") {
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    } else if t.contains("DATETIME") || t.contains("TIMESTAMP") {
        DataType::Timestamp(TimeUnit::Microsecond, None)
    } else if t == "DATE" {
        DataType::Date32
    } else if t.contains("DATE") || t.contains("TIME") || t.is_empty() {
        DataType::Utf8
    } else {
        DataType::Float64
    }
}

/// `(p, s)` of `DECIMAL(p,s)` / `NUMERIC(p,s)` / `DECIMAL(p)`, when p ≤ 38.
fn decimal_params(t: &str) -> Option<(u8, i8)> {
    let inner = t.split_once('(')?.1.split_once(')')?.0;
    let (p, s) = match inner.split_once(',') {
        Some((p, s)) => (p.trim().parse::<u8>().ok()?, s.trim().parse::<i8>().ok()?),
        None => (inner.trim().parse::<u8>().ok()?, 0),
    };
    ((1..=38).contains(&p) && (0..=p as i8).contains(&s)).then_some((p, s))
}

/// A read-only SQLite source.
pub struct SqliteSource {
    conn: Connection,
    path: PathBuf,
    /// Tables to split on a configured integer column instead of the rowid.
    pub partition_keys: BTreeMap<String, String>,
    /// Values changed on the way in since the last read began (per column,
    /// per kind): see [`INTEGER_AS_FLOAT`] and [`REAL_ROUNDED_TO_SCALE`].
    changes: std::cell::RefCell<crate::source::Changes>,
}

/// An integer beyond 2^53 in a floating-point column: the nearest double
/// is not the integer SQLite held.
pub const INTEGER_AS_FLOAT: &str = "integer beyond 2^53 rounded to the nearest double";
/// A REAL in a `DECIMAL(p,s)` column with more fractional digits than `s`
/// (SQLite does not enforce the scale): rounded half away from zero.
pub const REAL_ROUNDED_TO_SCALE: &str = "real rounded to the column's decimal scale";

impl SqliteSource {
    /// Opens `path` read-only, checking it is a readable SQLite database.
    pub fn open(path: &Path) -> Result<Self> {
        let shown = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| ConnectorError::Unreadable {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        if !meta.is_file() {
            return Err(ConnectorError::Unreadable {
                path: shown,
                message: "not a regular file".into(),
            });
        }
        std::fs::File::open(path).map_err(|e| ConnectorError::Unreadable {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| ConnectorError::NotSqlite {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        // Belt and braces: the connection is read-only, and query_only makes
        // SQLite itself refuse any statement that would write.
        conn.pragma_update(None, "query_only", "ON")
            .map_err(ConnectorError::sql(format!(
                "setting query_only on {shown}"
            )))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(ConnectorError::sql("setting busy timeout"))?;
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(|e| ConnectorError::NotSqlite {
            path: shown,
            message: e.to_string(),
        })?;
        Ok(SqliteSource {
            conn,
            path: path.to_path_buf(),
            partition_keys: BTreeMap::new(),
            changes: Default::default(),
        })
    }

    /// The values changed on the way in by the last reads, taken.
    pub fn take_changes(&mut self) -> crate::source::Changes {
        self.changes.take()
    }

    /// Holds a read transaction until this handle goes. Outside WAL mode
    /// that is a SHARED lock: no writer commits meanwhile, so every reader
    /// sees the same file. In WAL mode writers go on, and this returns false.
    pub fn hold_read_lock(&self) -> Result<bool> {
        let ctx = "holding a read transaction on the source";
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(ConnectorError::sql(ctx))?;
        self.conn
            .execute_batch("BEGIN")
            .map_err(ConnectorError::sql(ctx))?;
        self.conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(ConnectorError::sql(ctx))?;
        Ok(!mode.eq_ignore_ascii_case("wal"))
    }

    /// Runs a read-only query, refusing anything that is not a SELECT or WITH
    /// before it reaches SQLite.
    pub fn query_scalar(&self, sql: &str) -> Result<rusqlite::types::Value> {
        let head = sql.trim_start().to_ascii_uppercase();
        if !(head.starts_with("SELECT") || head.starts_with("WITH")) {
            return Err(ConnectorError::WriteRefused(sql.chars().take(80).collect()));
        }
        self.conn
            .query_row(sql, [], |r| r.get(0))
            .map_err(ConnectorError::sql(format!(
                "query on {}",
                self.path.display()
            )))
    }

    /// The user tables (SQLite's own and Sensei's ledger excluded).
    pub fn tables(&self) -> Result<Vec<TableInfo>> {
        let names: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
                     AND name != 'sensei_delivery_ledger' ORDER BY name",
                )
                .map_err(ConnectorError::sql("listing tables"))?;
            let rows = stmt
                .query_map([], |r| r.get(0))
                .map_err(ConnectorError::sql("listing tables"))?;
            rows.collect::<std::result::Result<_, _>>()
                .map_err(ConnectorError::sql("listing tables"))?
        };
        names.iter().map(|n| self.table(n)).collect()
    }

    /// Discovers one table.
    pub fn table(&self, name: &str) -> Result<TableInfo> {
        let ctx = format!("reading the schema of table {name}");
        let mut stmt = self
            .conn
            .prepare(&format!("PRAGMA table_info({})", quote(name)))
            .map_err(ConnectorError::sql(&ctx))?;
        let columns = stmt
            .query_map([], |r| {
                let declared: String = r.get(2)?;
                let notnull: i64 = r.get(3)?;
                let pk: u32 = r.get(5)?;
                Ok(ColumnInfo {
                    name: r.get(1)?,
                    arrow_type: format!("{}", arrow_type_for(&declared)),
                    source_type: declared,
                    nullable: notnull == 0 && pk == 0,
                    primary_key: pk,
                })
            })
            .map_err(ConnectorError::sql(&ctx))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(ConnectorError::sql(&ctx))?;
        let rows: i64 = self
            .conn
            .query_row(&format!("SELECT count(*) FROM {}", quote(name)), [], |r| {
                r.get(0)
            })
            .map_err(ConnectorError::sql(format!(
                "counting rows of table {name}"
            )))?;
        let rowid_range = self
            .conn
            .query_row(
                &format!("SELECT min(rowid), max(rowid) FROM {}", quote(name)),
                [],
                |r| Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?)),
            )
            .ok()
            .and_then(|(a, b)| Some((a?, b?)));
        let mut info = TableInfo {
            name: name.to_string(),
            columns,
            rows: rows as u64,
            rowid_range,
            qualified: None,
            range_column: None,
            splits: None,
            file: None,
        };
        if let Some(col) = self.partition_keys.get(name) {
            let col = crate::files::partition_column(&info, &self.partition_keys)?
                .unwrap_or_else(|| col.clone());
            info.rowid_range = self
                .conn
                .query_row(
                    &format!(
                        "SELECT min({k}), max({k}) FROM {}",
                        quote(name),
                        k = quote(&col)
                    ),
                    [],
                    |r| Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?)),
                )
                .map_err(ConnectorError::sql(format!(
                    "reading the key range of table {name}"
                )))
                .map(|(a, b)| a.zip(b))?;
            info.range_column = Some(col);
        }
        Ok(info)
    }

    /// Defaults, foreign keys, unique and check constraints, indexes, views
    /// and triggers (SQLite has no stored procedures). Check constraints are
    /// read from the `CREATE TABLE` text, where SQLite keeps them.
    pub fn catalog(&self, tables: &[TableInfo]) -> Result<crate::catalog::Catalog> {
        use crate::catalog::*;
        let mut catalog = Catalog::default();
        for t in tables {
            catalog
                .tables
                .insert(t.name.clone(), self.table_catalog(&t.name)?);
        }
        for r in self.catalog_rows(
            "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE type IN ('view', 'trigger') AND ?1 = ?1 ORDER BY name",
            "",
        )? {
            let sql = text(&r[3]);
            if text(&r[0]) == "view" {
                catalog.views.push(View {
                    name: text(&r[1]),
                    definition: sql,
                });
            } else {
                catalog.triggers.push(trigger(text(&r[1]), text(&r[2]), sql));
            }
        }
        Ok(catalog)
    }

    /// The rows of one catalog query with one parameter, each value as text.
    fn catalog_rows(&self, sql: &str, arg: &str) -> Result<Vec<Vec<Option<String>>>> {
        let ctx = "reading the source catalog";
        let mut st = self.conn.prepare(sql).map_err(ConnectorError::sql(ctx))?;
        let n = st.column_count();
        let rows = st
            .query_map([arg], |r| {
                (0..n)
                    .map(|i| {
                        Ok(match r.get_ref(i)? {
                            ValueRef::Null => None,
                            ValueRef::Integer(v) => Some(v.to_string()),
                            ValueRef::Real(v) => Some(v.to_string()),
                            ValueRef::Text(t) | ValueRef::Blob(t) => {
                                Some(String::from_utf8_lossy(t).into_owned())
                            }
                        })
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(ConnectorError::sql(ctx))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(ConnectorError::sql(ctx))
    }

    /// One table's defaults, foreign keys, indexes and unique and check
    /// constraints.
    fn table_catalog(&self, table: &str) -> Result<crate::catalog::TableCatalog> {
        use crate::catalog::*;
        let mut tc = TableCatalog::default();
        for r in self.catalog_rows("SELECT name, dflt_value FROM pragma_table_info(?1)", table)? {
            if let Some(d) = &r[1] {
                tc.defaults.insert(text(&r[0]), d.clone());
            }
        }
        let mut fks: BTreeMap<String, ForeignKey> = BTreeMap::new();
        for r in self.catalog_rows(
            "SELECT id, \"table\", \"from\", \"to\", on_update, on_delete FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
            table,
        )? {
            let fk = fks.entry(text(&r[0])).or_insert_with(|| ForeignKey {
                name: format!("fk_{}", text(&r[0])),
                columns: Vec::new(),
                references: text(&r[1]),
                referenced_columns: Vec::new(),
                on_delete: text(&r[5]),
                on_update: text(&r[4]),
            });
            fk.columns.push(text(&r[2]));
            // A missing `to` refers to the parent's primary key.
            fk.referenced_columns.push(text(&r[3]));
        }
        tc.foreign_keys = fks.into_values().collect();
        self.table_indexes(table, &mut tc)?;
        if let Some(ddl) = self
            .catalog_rows(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
                table,
            )?
            .first()
        {
            for (i, expression) in checks_in_ddl(&text(&ddl[0])).into_iter().enumerate() {
                tc.checks.push(Check {
                    name: format!("check_{}", i + 1),
                    expression,
                });
            }
        }
        Ok(tc)
    }

    /// A table's indexes, and the unique constraints among them.
    fn table_indexes(&self, table: &str, tc: &mut crate::catalog::TableCatalog) -> Result<()> {
        for r in self.catalog_rows(
            "SELECT name, \"unique\", origin, (SELECT sql FROM sqlite_master m WHERE m.name = l.name) FROM pragma_index_list(?1) l ORDER BY name",
            table,
        )? {
            let name = text(&r[0]);
            let columns: Vec<String> = self
                .catalog_rows(
                    "SELECT coalesce(name, '<expression>') FROM pragma_index_xinfo(?1) WHERE key = 1 ORDER BY seqno",
                    &name,
                )?
                .iter()
                .map(|c| text(&c[0]))
                .collect();
            let origin = text(&r[2]);
            if origin == "u" {
                tc.unique.push(crate::catalog::Unique {
                    name: name.clone(),
                    columns: columns.clone(),
                });
            }
            tc.indexes.push(crate::catalog::Index {
                name,
                columns,
                unique: text(&r[1]) == "1",
                primary: origin == "pk",
                method: "btree".into(),
                definition: text(&r[3]),
            });
        }
        Ok(())
    }

    /// A deterministic sample of about `n` rows spread over the whole table:
    /// windows of consecutive rowids read through the rowid tree
    /// ([`crate::files::sample_select`]); every k-th key, k = rows / n, of a
    /// configured partition key (it may have no index: one scan); the first
    /// `n` rows of a table without rowids.
    pub fn sample(&self, table: &TableInfo, n: u64) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        let n = n.max(1);
        let cols = table
            .columns
            .iter()
            .map(|c| quote(&c.name))
            .collect::<Vec<_>>()
            .join(", ");
        let key = Self::key(table);
        let name = quote(&table.name);
        let sql = match (table.rowid_range, &table.range_column) {
            (Some((lo, hi)), None) => crate::files::sample_union(
                "rowid",
                lo,
                hi,
                n,
                &format!("SELECT rowid, {cols} FROM {name}"),
            ),
            (Some((lo, _)), Some(_)) => {
                let k = (table.rows / n).max(1);
                format!(
                    "SELECT {key}, {cols} FROM {name} WHERE ({key} - {lo}) % {k} = 0 ORDER BY {key} LIMIT {n}"
                )
            }
            (None, _) => format!("SELECT NULL, {cols} FROM {name} LIMIT {n}"),
        };
        // A sample's changes are the read's to count, not the sample's.
        let mut changed = Changed::new(table.columns.len());
        self.query_batches(table, &sql, &[], 8192, &mut changed, |b| {
            out.push(b);
            Ok(())
        })?;
        Ok(out)
    }

    /// Streams a table's rows (those with `lo <= rowid <= hi` when a range is
    /// given) as batches of at most `batch_rows`, in rowid order.
    pub fn read(
        &self,
        table: &TableInfo,
        range: Option<(i64, i64)>,
        batch_rows: usize,
        sink: impl FnMut(RecordBatch) -> Result<()>,
    ) -> Result<u64> {
        let cols = table
            .columns
            .iter()
            .map(|c| quote(&c.name))
            .collect::<Vec<_>>()
            .join(", ");
        let has_rowid = table.rowid_range.is_some();
        let key = Self::key(table);
        let (sql, params): (String, Vec<i64>) = match (range, has_rowid) {
            (Some((lo, hi)), true) => (
                format!(
                    "SELECT {key}, {cols} FROM {} WHERE {} ORDER BY {key}",
                    quote(&table.name),
                    crate::files::range_condition(table, &key, lo, hi)
                ),
                vec![],
            ),
            (_, true) => (
                format!(
                    "SELECT {key}, {cols} FROM {} ORDER BY {key}",
                    quote(&table.name)
                ),
                vec![],
            ),
            (_, false) => (
                format!("SELECT NULL, {cols} FROM {}", quote(&table.name)),
                vec![],
            ),
        };
        let mut changed = Changed::new(table.columns.len());
        let n = self.query_batches(table, &sql, &params, batch_rows, &mut changed, sink)?;
        let mut changes = self.changes.borrow_mut();
        crate::source::add_changes(&mut changes, table, &changed.as_float, INTEGER_AS_FLOAT);
        crate::source::add_changes(&mut changes, table, &changed.rounded, REAL_ROUNDED_TO_SCALE);
        Ok(n)
    }

    /// The column partitions are ranges of: a configured key, or the rowid.
    fn key(table: &TableInfo) -> String {
        table
            .range_column
            .as_deref()
            .map(quote)
            .unwrap_or_else(|| "rowid".into())
    }

    /// Runs `sql` (first column the rowid or NULL, then the table's columns)
    /// and hands its rows to `sink` as batches of at most `batch_rows`.
    fn query_batches(
        &self,
        table: &TableInfo,
        sql: &str,
        params: &[i64],
        batch_rows: usize,
        changed: &mut Changed,
        sink: impl FnMut(RecordBatch) -> Result<()>,
    ) -> Result<u64> {
        let schema = table.schema();
        let ctx = format!("reading table {}", table.name);
        let mut stmt = self.conn.prepare(sql).map_err(ConnectorError::sql(&ctx))?;
        let mut rows = stmt
            .query(params_from_iter(params.iter()))
            .map_err(ConnectorError::sql(&ctx))?;
        let mut batcher = Batcher::new(schema.clone(), batch_rows, sink);
        while let Some(row) = rows.next().map_err(ConnectorError::sql(&ctx))? {
            let rowid: Option<i64> = row.get(0).map_err(ConnectorError::sql(&ctx))?;
            for (i, field) in schema.fields().iter().enumerate() {
                let v = row.get_ref(i + 1).map_err(ConnectorError::sql(&ctx))?;
                let total = batcher.total;
                let change = append(&mut batcher.builders[i], field.data_type(), v).map_err(
                    |(value, expected)| ConnectorError::Value {
                        table: table.name.clone(),
                        column: field.name().clone(),
                        row: rowid
                            .map(|r| format!("rowid {r}"))
                            .unwrap_or_else(|| format!("#{}", total + 1)),
                        value,
                        expected,
                    },
                )?;
                match change {
                    Some(Change::AsFloat) => changed.as_float[i] += 1,
                    Some(Change::Rounded) => changed.rounded[i] += 1,
                    None => {}
                }
            }
            batcher.row_done()?;
        }
        batcher.close()
    }
}

/// A catalog value as text (NULL as empty).
fn text(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

/// A trigger from its `CREATE TRIGGER` statement: the header, up to the
/// table name, says when and on what it fires.
fn trigger(name: String, table: String, sql: String) -> crate::catalog::Trigger {
    let upper = sql.to_ascii_uppercase().replace(['\n', '\t', '\r'], " ");
    let head = &upper[..upper.find(" ON ").unwrap_or(upper.len())];
    let timing = ["INSTEAD OF", "BEFORE", "AFTER"]
        .into_iter()
        .find(|k| head.contains(&format!(" {k} ")))
        .unwrap_or("BEFORE");
    let events = ["INSERT", "UPDATE", "DELETE"]
        .into_iter()
        .filter(|k| head.contains(&format!(" {k}")))
        .collect::<Vec<_>>()
        .join(" OR ");
    crate::catalog::Trigger {
        name,
        table,
        timing: timing.into(),
        events,
        definition: sql,
    }
}

fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    format!("{out:?}")
}

fn render(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) => shorten(&String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => format!("blob of {} bytes", b.len()),
    }
}

/// Whether a REAL's shortest decimal form has at most `scale` fractional
/// digits (so scaling it to a decimal changes nothing).
fn real_fits_scale(f: f64, scale: i8) -> bool {
    let text = format!("{}", f.abs());
    let frac = text.split_once('.').map_or("", |(_, f)| f);
    frac.len() <= scale.max(0) as usize
}

/// Per column position, how many values a read changed, by kind.
struct Changed {
    as_float: Vec<u64>,
    rounded: Vec<u64>,
}

impl Changed {
    fn new(columns: usize) -> Self {
        Changed {
            as_float: vec![0; columns],
            rounded: vec![0; columns],
        }
    }
}

/// How [`append`] changed a value it kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// [`INTEGER_AS_FLOAT`].
    AsFloat,
    /// [`REAL_ROUNDED_TO_SCALE`].
    Rounded,
}

/// A value that does not fit its column: (value shown, expected type).
type Mismatch = (String, String);

/// The builder behind `b` as its concrete type.
fn typed<'b, T: ArrayBuilder>(
    b: &'b mut Box<dyn ArrayBuilder>,
    dt: &DataType,
    v: ValueRef<'_>,
) -> std::result::Result<&'b mut T, Mismatch> {
    b.as_any_mut()
        .downcast_mut::<T>()
        .ok_or_else(|| (render(v), format!("{dt}")))
}

/// Appends one SQLite value, saying when it had to change it; on a
/// mismatch returns (value shown, expected type).
fn append(
    b: &mut Box<dyn ArrayBuilder>,
    dt: &DataType,
    v: ValueRef<'_>,
) -> std::result::Result<Option<Change>, Mismatch> {
    let mismatch = |v: ValueRef<'_>| (render(v), format!("{dt}"));
    match (dt, v) {
        (DataType::Decimal128(p, s), _) => {
            return append_decimal(typed(b, dt, v)?, *p, *s, v);
        }
        (DataType::Float64, ValueRef::Integer(i)) => {
            let f = i as f64;
            typed::<Float64Builder>(b, dt, v)?.append_value(f);
            // Exact up to 2^53; beyond, only when the double converts back.
            if f >= 9_223_372_036_854_775_808.0 || f as i64 != i {
                return Ok(Some(Change::AsFloat));
            }
        }
        (DataType::Int16 | DataType::Int32, _) => append_narrow(b, dt, v)?,
        (DataType::Date32 | DataType::Timestamp(..), _) => append_temporal(b, dt, v)?,
        (DataType::Int64, _) => {
            let b = typed::<Int64Builder>(b, dt, v)?;
            match v {
                ValueRef::Null => b.append_null(),
                ValueRef::Integer(i) => b.append_value(i),
                ValueRef::Real(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                    b.append_value(f as i64)
                }
                other => return Err(mismatch(other)),
            }
        }
        (DataType::Float64, _) => {
            let b = typed::<Float64Builder>(b, dt, v)?;
            match v {
                ValueRef::Null => b.append_null(),
                ValueRef::Real(f) => b.append_value(f),
                other => return Err(mismatch(other)),
            }
        }
        (DataType::Boolean, _) => {
            let b = typed::<BooleanBuilder>(b, dt, v)?;
            match v {
                ValueRef::Null => b.append_null(),
                ValueRef::Integer(0) => b.append_value(false),
                ValueRef::Integer(1) => b.append_value(true),
                other => return Err(mismatch(other)),
            }
        }
        (DataType::Float32, _) => {
            let b = typed::<Float32Builder>(b, dt, v)?;
            match v {
                ValueRef::Null => b.append_null(),
                ValueRef::Integer(i) => b.append_value(i as f32),
                ValueRef::Real(f) => b.append_value(f as f32),
                other => return Err(mismatch(other)),
            }
        }
        (DataType::Binary, _) => {
            let b = typed::<BinaryBuilder>(b, dt, v)?;
            match v {
                ValueRef::Null => b.append_null(),
                ValueRef::Blob(x) | ValueRef::Text(x) => b.append_value(x),
                other => return Err(mismatch(other)),
            }
        }
        _ => {
            let b = typed::<StringBuilder>(b, dt, v)?;
            match v {
                ValueRef::Null => b.append_null(),
                ValueRef::Text(t) => match std::str::from_utf8(t) {
                    Ok(s) => b.append_value(s),
                    Err(_) => return Err((render(v), "UTF-8 text".into())),
                },
                ValueRef::Integer(i) => b.append_value(i.to_string()),
                ValueRef::Real(f) => b.append_value(f.to_string()),
                ValueRef::Blob(_) => return Err(mismatch(v)),
            }
        }
    }
    Ok(None)
}

/// An integer into an `Int16` or `Int32` column: refused when it does not fit.
fn append_narrow(
    b: &mut Box<dyn ArrayBuilder>,
    dt: &DataType,
    v: ValueRef<'_>,
) -> std::result::Result<(), Mismatch> {
    let mismatch = || (render(v), format!("{dt}"));
    let narrow = match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i),
        _ => return Err(mismatch()),
    };
    if let DataType::Int16 = dt {
        let b = typed::<Int16Builder>(b, dt, v)?;
        match narrow.map(i16::try_from) {
            None => b.append_null(),
            Some(Ok(x)) => b.append_value(x),
            Some(Err(_)) => return Err(mismatch()),
        }
    } else {
        let b = typed::<Int32Builder>(b, dt, v)?;
        match narrow.map(i32::try_from) {
            None => b.append_null(),
            Some(Ok(x)) => b.append_value(x),
            Some(Err(_)) => return Err(mismatch()),
        }
    }
    Ok(())
}

/// A date (`YYYY-MM-DD` text) or a timestamp (text, or Unix seconds).
fn append_temporal(
    b: &mut Box<dyn ArrayBuilder>,
    dt: &DataType,
    v: ValueRef<'_>,
) -> std::result::Result<(), Mismatch> {
    let mismatch = || (render(v), format!("{dt}"));
    if let DataType::Date32 = dt {
        let b = typed::<Date32Builder>(b, dt, v)?;
        match v {
            ValueRef::Null => b.append_null(),
            ValueRef::Text(t) => match std::str::from_utf8(t).ok().and_then(parse_date_days) {
                Some(d) => b.append_value(d),
                None => return Err((render(v), "date (YYYY-MM-DD)".into())),
            },
            _ => return Err(mismatch()),
        }
        return Ok(());
    }
    let b = typed::<TimestampMicrosecondBuilder>(b, dt, v)?;
    match v {
        ValueRef::Null => b.append_null(),
        ValueRef::Integer(secs) => b.append_value(secs.saturating_mul(1_000_000)),
        ValueRef::Text(t) => match std::str::from_utf8(t).ok().and_then(parse_timestamp_micros) {
            Some(us) => b.append_value(us),
            None => return Err((render(v), "timestamp (YYYY-MM-DD HH:MM:SS)".into())),
        },
        _ => return Err(mismatch()),
    }
    Ok(())
}

/// A number or decimal text into a `Decimal128(p, s)` column; a REAL with
/// more fractional digits than the scale is rounded and said so.
fn append_decimal(
    b: &mut Decimal128Builder,
    p: u8,
    s: i8,
    v: ValueRef<'_>,
) -> std::result::Result<Option<Change>, Mismatch> {
    let mut change = None;
    let scaled = match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some((i as i128).checked_mul(10i128.pow(s.max(0) as u32))),
        ValueRef::Real(f) => {
            let x = float_to_decimal(f, p, s);
            if x.is_some() && !real_fits_scale(f, s) {
                change = Some(Change::Rounded);
            }
            Some(x)
        }
        ValueRef::Text(t) => Some(
            std::str::from_utf8(t)
                .ok()
                .and_then(|t| parse_decimal(t, s)),
        ),
        ValueRef::Blob(_) => Some(None),
    };
    match scaled {
        None => b.append_null(),
        Some(Some(x)) if x.unsigned_abs() < 10u128.pow(p as u32) => b.append_value(x),
        Some(_) => return Err((render(v), format!("decimal({p},{s})"))),
    }
    Ok(change)
}

/// The column list of a `CREATE TABLE` mirroring `schema`: each column with
/// the engine's type for it (`VARCHAR(n)` for a text column with a declared
/// width, the engine's exact decimal from `exact` for a text column carrying
/// an exact source decimal) and NOT NULL where the schema says so, then the
/// primary key.
pub(crate) fn table_columns(
    schema: &Schema,
    primary_key: &[String],
    declared: &std::collections::BTreeMap<String, crate::target::Declared>,
    quote: fn(&str) -> String,
    ty: impl Fn(&DataType) -> String,
    exact: impl Fn(Option<(u32, u32)>) -> Option<String>,
) -> String {
    use crate::target::Declared;
    let mut cols: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| {
            let text = matches!(
                f.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            );
            let t = match (text, declared.get(f.name())) {
                (true, Some(Declared::Width(n))) => format!("VARCHAR({n})"),
                (true, Some(Declared::Exact(ps))) => {
                    exact(*ps).unwrap_or_else(|| ty(f.data_type()))
                }
                _ => ty(f.data_type()),
            };
            format!(
                "{} {}{}",
                quote(f.name()),
                t,
                if f.is_nullable() { "" } else { " NOT NULL" }
            )
        })
        .collect();
    if !primary_key.is_empty() {
        cols.push(format!(
            "PRIMARY KEY ({})",
            primary_key
                .iter()
                .map(|c| quote(c))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    cols.join(", ")
}

/// The delivery ledger of a SQLite target (named [`LEDGER_TABLE`]).
const SQLITE_LEDGER: &str = "CREATE TABLE IF NOT EXISTS sensei_delivery_ledger (
    migration_id TEXT NOT NULL,
    partition_id TEXT NOT NULL,
    batch_seq INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    delivered_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    PRIMARY KEY (migration_id, partition_id, batch_seq)
)";

/// A SQLite target.
pub struct SqliteTarget {
    conn: Connection,
    path: PathBuf,
    /// This session committed a batch: the ledger table exists.
    ledger_ready: bool,
}

/// The SQLite declared type a target column gets, chosen so that reading the
/// target back maps to the same Arrow type (see [`arrow_type_for`]).
fn sqlite_type(dt: &DataType) -> String {
    match dt {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => "INTEGER".into(),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => "REAL".into(),
        // Declared BOOLEAN (NUMERIC affinity, stored 0/1) so that reading the
        // target back maps it to Boolean again, as the source was.
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BLOB".into(),
        DataType::Date32 => "DATE".into(),
        DataType::Timestamp(_, None) => "TIMESTAMP".into(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMPTZ".into(),
        // TEXT affinity keeps every digit (NUMERIC affinity would turn long
        // decimals into lossy REALs); the DECIMAL(p,s) part gives the type back.
        DataType::Decimal128(p, s) => format!("TEXT DECIMAL({p},{s})"),
        _ => "TEXT".into(),
    }
}

impl SqliteTarget {
    /// Checks that a target database can be created or written at `path`,
    /// without creating anything.
    pub fn check_writable(path: &Path) -> Result<()> {
        let err = |message: String| ConnectorError::TargetNotWritable {
            path: path.display().to_string(),
            message,
        };
        if path.exists() {
            std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .map_err(|e| err(e.to_string()))?;
            return Ok(());
        }
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return Err(err(format!("folder {} does not exist", dir.display())));
        }
        let probe = dir.join(format!(".sensei-write-probe-{}", std::process::id()));
        std::fs::write(&probe, b"")
            .map_err(|e| err(format!("folder {} is not writable: {e}", dir.display())))?;
        let _ = std::fs::remove_file(&probe);
        Ok(())
    }

    /// Opens (creating if needed) the target database and its ledger table.
    pub fn open(path: &Path) -> Result<Self> {
        Self::check_writable(path)?;
        let shown = path.display().to_string();
        let conn = Connection::open(path).map_err(|e| ConnectorError::TargetNotWritable {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        // Several workers (threads or processes) deliver into one file: writers
        // queue on SQLite's lock for up to a minute rather than fail at once.
        conn.busy_timeout(std::time::Duration::from_secs(60))
            .map_err(ConnectorError::sql("setting busy timeout"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(ConnectorError::sql(format!("enabling WAL on {shown}")))?;
        // Tables load in parallel, in no particular order: foreign keys are
        // checked once every table is in (`foreign_key_violations`), not per row.
        conn.pragma_update(None, "foreign_keys", "OFF")
            .map_err(ConnectorError::sql(format!(
                "deferring foreign keys on {shown}"
            )))?;
        // The ledger table comes with the first batch, in its transaction:
        // a delivery that fails before any row leaves no ledger behind.
        Ok(SqliteTarget {
            conn,
            path: path.to_path_buf(),
            ledger_ready: false,
        })
    }

    /// Rows that break a declared foreign key, per (table, referenced
    /// table): what `PRAGMA foreign_key_check` finds after the load.
    pub fn foreign_key_violations(&self) -> Result<Vec<(String, String, u64)>> {
        let ctx = format!("checking foreign keys in {}", self.path.display());
        let mut st = self
            .conn
            .prepare("SELECT \"table\", parent, count(*) FROM pragma_foreign_key_check GROUP BY 1, 2 ORDER BY 1, 2")
            .map_err(ConnectorError::sql(&ctx))?;
        let rows = st
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
            })
            .map_err(ConnectorError::sql(&ctx))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(ConnectorError::sql(&ctx))
    }

    /// Runs a DDL script (the configured target schema).
    pub fn apply_ddl(&self, ddl: &str) -> Result<()> {
        self.conn
            .execute_batch(ddl)
            .map_err(ConnectorError::sql(format!(
                "applying the target schema to {}",
                self.path.display()
            )))
    }

    /// Whether `columns` are the primary key or a unique index of `table`;
    /// `None` when the table does not exist (yet).
    pub fn is_key(&self, table: &str, columns: &[String]) -> Result<Option<bool>> {
        if !self.has_table(table)? {
            return Ok(None);
        }
        let err = || ConnectorError::sql(format!("reading the keys of table {table}"));
        let wanted: std::collections::BTreeSet<&str> = columns.iter().map(String::as_str).collect();
        let mut keys: Vec<std::collections::BTreeSet<String>> = Vec::new();
        {
            let mut st = self
                .conn
                .prepare(&format!("PRAGMA table_info({})", quote(table)))
                .map_err(err())?;
            let pk: std::collections::BTreeSet<String> = st
                .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, i64>(5)?)))
                .map_err(err())?
                .filter_map(|r| r.ok().filter(|(_, pk)| *pk > 0).map(|(c, _)| c))
                .collect();
            keys.push(pk);
        }
        let unique: Vec<String> = {
            let mut st = self
                .conn
                .prepare(&format!("PRAGMA index_list({})", quote(table)))
                .map_err(err())?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))
                .map_err(err())?;
            rows.filter_map(|r| r.ok().filter(|(_, u)| *u == 1).map(|(n, _)| n))
                .collect()
        };
        for index in unique {
            let mut st = self
                .conn
                .prepare(&format!("PRAGMA index_info({})", quote(&index)))
                .map_err(err())?;
            let cols = st
                .query_map([], |r| r.get::<_, String>(2))
                .map_err(err())?
                .filter_map(|r| r.ok())
                .collect();
            keys.push(cols);
        }
        Ok(Some(keys.iter().any(|k| {
            k.len() == wanted.len() && k.iter().all(|c| wanted.contains(c.as_str()))
        })))
    }

    /// Rebuilds `table` with more table constraints (`CONSTRAINT .. FOREIGN
    /// KEY ..` clauses): SQLite adds foreign keys only in `CREATE TABLE`. The
    /// documented procedure, in one transaction: rename the table aside
    /// (legacy rename, so other tables' references keep naming it), create
    /// it again from its stored SQL plus the clauses, copy its rows, drop
    /// the old one, and create its indexes again.
    pub fn rebuild_with_constraints(&mut self, table: &str, clauses: &[String]) -> Result<()> {
        let what = format!("adding foreign keys to table {table}");
        let err = || ConnectorError::sql(what.as_str());
        let create: String = self
            .conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .map_err(err())?;
        let close = create.rfind(')').ok_or_else(|| ConnectorError::Database {
            context: what.clone(),
            message: format!("unexpected table definition: {create}"),
            transient: false,
        })?;
        let rebuilt = format!(
            "{}, {}{}",
            &create[..close],
            clauses.join(", "),
            &create[close..]
        );
        let indexes: Vec<String> = {
            let mut st = self
                .conn
                .prepare("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL")
                .map_err(err())?;
            let rows = st.query_map([table], |r| r.get(0)).map_err(err())?;
            rows.collect::<std::result::Result<_, _>>().map_err(err())?
        };
        let aside = quote(&format!("sensei_rebuild_{table}"));
        self.conn
            .execute_batch("PRAGMA foreign_keys = OFF; PRAGMA legacy_alter_table = ON;")
            .map_err(err())?;
        let rebuilt = (|| -> rusqlite::Result<()> {
            let tx = self.conn.transaction()?;
            tx.execute_batch(&format!(
                "ALTER TABLE {t} RENAME TO {aside}; {rebuilt}; INSERT INTO {t} SELECT * FROM {aside}; DROP TABLE {aside};",
                t = quote(table)
            ))?;
            for ix in &indexes {
                tx.execute_batch(ix)?;
            }
            tx.commit()
        })();
        // Back to the default whatever happened (the transaction rolled back on error).
        let reset = self.conn.execute_batch("PRAGMA legacy_alter_table = OFF;");
        rebuilt.and(reset).map_err(err())
    }

    /// Whether `table` exists.
    pub fn has_table(&self, table: &str) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .map_err(ConnectorError::sql(format!("looking up table {table}")))
    }

    /// Creates a table mirroring `schema` (with `primary_key`) when absent.
    pub fn ensure_table(&self, t: &crate::target::NewTable<'_>) -> Result<()> {
        let (table, schema, primary_key, declared) = (t.name, t.schema, t.primary_key, t.declared);
        // SQLite has no exact decimal type: text keeps every digit.
        let columns = table_columns(schema, primary_key, declared, quote, sqlite_type, |_| None);
        self.conn
            .execute(
                &format!("CREATE TABLE IF NOT EXISTS {} ({})", quote(table), columns),
                [],
            )
            .map_err(ConnectorError::sql(format!(
                "creating target table {table}"
            )))?;
        Ok(())
    }

    /// How many batches of `migration_id` the ledger holds (0 without a ledger).
    pub fn batches_delivered(&mut self, migration_id: &str) -> Result<u64> {
        if !self.has_table(LEDGER_TABLE)? {
            return Ok(0);
        }
        let n: i64 = self
            .conn
            .query_row(
                &format!("SELECT count(*) FROM {LEDGER_TABLE} WHERE migration_id = ?1"),
                [migration_id],
                |r| r.get(0),
            )
            .map_err(ConnectorError::sql("reading the delivery ledger"))?;
        Ok(n as u64)
    }

    /// Re-sync: deletes the table's rows and this migration's ledger rows
    /// for it, in one transaction; returns the rows deleted.
    pub fn clear_for_resync(&mut self, table: &str, migration_id: &str) -> Result<u64> {
        let ctx = format!("clearing {table} for --resync");
        let ledger = self.has_table(LEDGER_TABLE)?;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(ConnectorError::sql(&ctx))?;
        let n = tx
            .execute(&format!("DELETE FROM {}", quote(table)), [])
            .map_err(ConnectorError::sql(&ctx))?;
        if ledger {
            let prefix = format!("{table}/");
            tx.execute(
                &format!("DELETE FROM {LEDGER_TABLE} WHERE migration_id = ?1 AND substr(partition_id, 1, ?2) = ?3"),
                rusqlite::params![migration_id, prefix.chars().count() as i64, prefix],
            )
            .map_err(ConnectorError::sql(&ctx))?;
        }
        tx.commit().map_err(ConnectorError::sql(&ctx))?;
        Ok(n as u64)
    }

    /// Writes one batch and its ledger row in one transaction. A batch whose
    /// key the ledger already holds is skipped: a retried or redone batch is
    /// never written twice.
    pub fn write_batch(&mut self, batch: &RecordBatch, key: &BatchKey<'_>) -> Result<BatchAck> {
        let (started, table) = (Instant::now(), key.table);
        let ctx = key.context();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(ConnectorError::sql(&ctx))?;
        if !self.ledger_ready {
            tx.execute_batch(SQLITE_LEDGER)
                .map_err(ConnectorError::sql(&ctx))?;
        }
        let seen: i64 = tx
            .query_row(
                &format!("SELECT count(*) FROM {LEDGER_TABLE} WHERE migration_id = ?1 AND partition_id = ?2 AND batch_seq = ?3"),
                rusqlite::params![key.migration, key.partition, key.seq as i64],
                |r| r.get(0),
            )
            .map_err(ConnectorError::sql(&ctx))?;
        if seen > 0 {
            return Ok(BatchAck::skipped(started, Vec::new()));
        }
        {
            let schema = batch.schema();
            let names = schema
                .fields()
                .iter()
                .map(|f| quote(f.name()))
                .collect::<Vec<_>>()
                .join(", ");
            let marks = (1..=schema.fields().len())
                .map(|i| format!("?{i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut stmt = tx
                .prepare(&format!(
                    "INSERT INTO {} ({names}) VALUES ({marks})",
                    quote(table)
                ))
                .map_err(ConnectorError::sql(&ctx))?;
            let columns: Vec<&ArrayRef> = batch.columns().iter().collect();
            let mut values: Vec<rusqlite::types::Value> = Vec::with_capacity(columns.len());
            for row in 0..batch.num_rows() {
                values.clear();
                for (i, col) in columns.iter().enumerate() {
                    let v = crate::value::to_sqlite(col, row);
                    if matches!(v, rusqlite::types::Value::Real(f) if f.is_nan()) {
                        // SQLite stores NaN as NULL: refuse rather than change the value.
                        return Err(ConnectorError::Value {
                            table: table.to_string(),
                            column: schema.field(i).name().clone(),
                            row: key.row(row),
                            value: "NaN".into(),
                            expected: "number SQLite can store (SQLite turns NaN into NULL); map NaN to NULL in the mapping or choose another target".into(),
                        });
                    }
                    values.push(v);
                }
                stmt.execute(params_from_iter(values.iter()))
                    .map_err(|source| ConnectorError::Sql {
                        context: format!("{ctx}, row {} of the batch", row + 1),
                        source,
                    })?;
            }
        }
        tx.execute(
            &format!("INSERT INTO {LEDGER_TABLE} (migration_id, partition_id, batch_seq, attempt, rows) VALUES (?1, ?2, ?3, ?4, ?5)"),
            rusqlite::params![key.migration, key.partition, key.seq as i64, key.attempt, batch.num_rows() as i64],
        )
        .map_err(ConnectorError::sql(&ctx))?;
        tx.commit().map_err(ConnectorError::sql(&ctx))?;
        self.ledger_ready = true;
        Ok(BatchAck::written(
            batch.num_rows() as u64,
            started,
            Vec::new(),
        ))
    }

    /// Rows in a table.
    pub fn count(&self, table: &str) -> Result<u64> {
        self.conn
            .query_row(&format!("SELECT count(*) FROM {}", quote(table)), [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(ConnectorError::sql(format!(
                "counting rows of target table {table}"
            )))
    }
}

impl crate::source::SourceEngine for SqliteSource {
    fn tables(&mut self) -> Result<Vec<TableInfo>> {
        SqliteSource::tables(self)
    }
    fn read(&mut self, t: &TableInfo, range: KeyRange, rows: usize, sink: Sink) -> Result<u64> {
        SqliteSource::read(self, t, range, rows, sink)
    }
    fn sample(&mut self, table: &TableInfo, n: u64) -> Result<Vec<RecordBatch>> {
        SqliteSource::sample(self, table, n)
    }
    fn catalog(&mut self, tables: &[TableInfo]) -> Result<crate::catalog::Catalog> {
        SqliteSource::catalog(self, tables)
    }
    /// A shared lock outside WAL mode, whatever is `wanted`: it costs the
    /// source's writers little and keeps parallel readers consistent.
    fn hold_read_lock(&mut self, _wanted: bool) -> Result<bool> {
        SqliteSource::hold_read_lock(self)
    }
    fn take_changes(&mut self) -> crate::source::Changes {
        SqliteSource::take_changes(self)
    }
    fn as_any(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl crate::target::TargetEngine for SqliteTarget {
    fn apply_ddl(&mut self, ddl: &str) -> Result<()> {
        SqliteTarget::apply_ddl(self, ddl)
    }
    fn has_table(&mut self, table: &str) -> Result<bool> {
        SqliteTarget::has_table(self, table)
    }
    fn ensure_table(&mut self, table: &crate::target::NewTable<'_>) -> Result<()> {
        SqliteTarget::ensure_table(self, table)
    }
    fn write_batch(&mut self, batch: &RecordBatch, key: &BatchKey<'_>) -> Result<BatchAck> {
        SqliteTarget::write_batch(self, batch, key)
    }
    fn clear_for_resync(&mut self, table: &str, migration_id: &str) -> Result<u64> {
        SqliteTarget::clear_for_resync(self, table, migration_id)
    }
    fn batches_delivered(&mut self, migration_id: &str) -> Result<u64> {
        SqliteTarget::batches_delivered(self, migration_id)
    }
    /// SQLite has no `ADD CONSTRAINT`: a unique index.
    fn unique_sql(&self, table: &str, name: &str, columns: &str) -> String {
        format!(
            "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({columns})",
            quote(name),
            quote(table)
        )
    }
    /// SQLite takes foreign keys only in `CREATE TABLE`: the new, still
    /// empty table is rebuilt with them.
    fn add_foreign_keys(&mut self, table: &str, clauses: &[(String, String)]) -> Vec<String> {
        let only: Vec<String> = clauses.iter().map(|(_, c)| c.clone()).collect();
        match self.rebuild_with_constraints(table, &only) {
            Ok(()) => Vec::new(),
            Err(e) => {
                let names: Vec<&str> = clauses.iter().map(|(n, _)| n.as_str()).collect();
                vec![format!(
                    "table {table}: foreign keys {} not added: {e}",
                    names.join(", ")
                )]
            }
        }
    }
    fn is_key(&mut self, table: &str, columns: &[String]) -> Result<Option<bool>> {
        SqliteTarget::is_key(self, table, columns)
    }
    fn as_any(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source_db(dir: &Path) -> PathBuf {
        let p = dir.join("s.db");
        let c = Connection::open(&p).unwrap();
        c.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price NUMERIC, note VARCHAR(10), raw BLOB);
             INSERT INTO t VALUES (1, 'a', 1.5, NULL, x'00ff'), (2, 'b', 2, 'x', NULL), (3, 'c', NULL, 'y', NULL);",
        )
        .unwrap();
        p
    }

    #[test]
    fn catalog_reads_constraints_indexes_views_and_triggers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.db");
        Connection::open(&p)
            .unwrap()
            .execute_batch(
                "CREATE TABLE customer (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE,
                     tier TEXT NOT NULL DEFAULT 'basic' CHECK (tier IN ('basic', 'gold')));
                 CREATE TABLE purchase (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL,
                     amount NUMERIC, FOREIGN KEY (customer_id) REFERENCES customer (id) ON DELETE CASCADE);
                 CREATE INDEX purchase_by_amount ON purchase (amount);
                 CREATE VIEW gold AS SELECT id FROM customer WHERE tier = 'gold';
                 CREATE TRIGGER audit AFTER UPDATE OF amount ON purchase BEGIN INSERT INTO purchase VALUES (NULL, 0, 0); END;",
            )
            .unwrap();
        let src = SqliteSource::open(&p).unwrap();
        let tables = src.tables().unwrap();
        let cat = src.catalog(&tables).unwrap();
        let customer = &cat.tables["customer"];
        assert_eq!(customer.defaults["tier"], "'basic'");
        assert_eq!(customer.unique.len(), 1);
        assert_eq!(customer.unique[0].columns, ["email"]);
        assert_eq!(customer.checks[0].expression, "tier IN ('basic', 'gold')");
        let purchase = &cat.tables["purchase"];
        assert_eq!(purchase.foreign_keys[0].references, "customer");
        assert_eq!(purchase.foreign_keys[0].columns, ["customer_id"]);
        assert_eq!(purchase.foreign_keys[0].on_delete, "CASCADE");
        assert!(purchase
            .indexes
            .iter()
            .any(|i| i.name == "purchase_by_amount" && i.columns == ["amount"] && !i.unique));
        assert_eq!(cat.views[0].name, "gold");
        let t = &cat.triggers[0];
        assert_eq!((t.timing.as_str(), t.events.as_str()), ("AFTER", "UPDATE"));
    }

    #[test]
    fn a_configured_partition_key_splits_on_its_ranges_and_keeps_null_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.db");
        Connection::open(&p)
            .unwrap()
            .execute_batch(
                "CREATE TABLE ev (id TEXT PRIMARY KEY, seq INTEGER, note TEXT, kind REAL);
                 WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 100)
                 INSERT INTO ev SELECT 'e' || n, CASE WHEN n % 10 = 0 THEN NULL ELSE n * 3 END, 'x', n FROM g;",
            )
            .unwrap();
        let mut src = SqliteSource::open(&p).unwrap();
        src.partition_keys.insert("ev".into(), "seq".into());
        let t = src.table("ev").unwrap();
        assert_eq!(t.range_column.as_deref(), Some("seq"));
        assert_eq!(t.rowid_range, Some((3, 297)));
        let mut total = 0;
        for (lo, hi) in [(3, 150), (151, 297)] {
            total += src.read(&t, Some((lo, hi)), 1000, |_| Ok(())).unwrap();
        }
        assert_eq!(
            total, 100,
            "the 10 rows with a NULL key ride with the first range"
        );
        src.partition_keys.insert("ev".into(), "note".into());
        let err = src.table("ev").unwrap_err().to_string();
        assert!(err.contains("ev.note") && err.contains("integer"), "{err}");
        src.partition_keys.insert("ev".into(), "nope".into());
        assert!(src
            .table("ev")
            .unwrap_err()
            .to_string()
            .contains("does not have"));
    }

    #[test]
    fn discovers_and_reads_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let src = SqliteSource::open(&source_db(dir.path())).unwrap();
        let tables = src.tables().unwrap();
        assert_eq!(tables.len(), 1);
        let t = &tables[0];
        assert_eq!(t.rows, 3);
        assert_eq!(t.rowid_range, Some((1, 3)));
        assert_eq!(t.primary_key(), vec!["id"]);
        let types: Vec<_> = t.columns.iter().map(|c| c.arrow_type.as_str()).collect();
        assert_eq!(types, ["Int64", "Utf8", "Float64", "Utf8", "Binary"]);
        let mut batches = vec![];
        let n = src
            .read(t, Some((2, 3)), 1, |b| {
                batches.push(b);
                Ok(())
            })
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(batches.len(), 2);
    }

    #[test]
    fn source_refuses_writes_and_stays_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let p = source_db(dir.path());
        let src = SqliteSource::open(&p).unwrap();
        assert!(matches!(
            src.query_scalar("DELETE FROM t"),
            Err(ConnectorError::WriteRefused(_))
        ));
        // Even past Sensei's own check, SQLite refuses: the connection is read-only.
        assert!(src.conn.execute("DELETE FROM t", []).is_err());
        assert_eq!(src.table("t").unwrap().rows, 3);
    }

    #[test]
    fn bad_value_names_table_column_and_row() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.db");
        let c = Connection::open(&p).unwrap();
        c.execute_batch("CREATE TABLE q (n INTEGER); INSERT INTO q VALUES (1), ('abc');")
            .unwrap();
        let src = SqliteSource::open(&p).unwrap();
        let t = src.table("q").unwrap();
        let err = src.read(&t, None, 10, |_| Ok(())).unwrap_err().to_string();
        assert!(
            err.contains("table q")
                && err.contains("column n")
                && err.contains("rowid 2")
                && err.contains("abc"),
            "{err}"
        );
    }

    #[test]
    fn not_a_database_and_missing_file_are_clear() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.db");
        std::fs::write(
            &p,
            b"this is plainly not a sqlite file, just some text padding it out",
        )
        .unwrap();
        let err = SqliteSource::open(&p).err().unwrap().to_string();
        assert!(err.contains("not a SQLite database"), "{err}");
        let err = SqliteSource::open(&dir.path().join("missing.db"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("cannot read source"), "{err}");
        let err = SqliteTarget::check_writable(Path::new("/nonexistent-dir/t.db"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
    }

    #[test]
    fn a_sample_spreads_over_the_rowids_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sample.db");
        let c = Connection::open(&p).unwrap();
        c.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
             INSERT INTO t SELECT i, 'v' || i FROM n;",
        )
        .unwrap();
        let src = SqliteSource::open(&p).unwrap();
        let t = src.table("t").unwrap();
        let batches = src.sample(&t, 1000).unwrap();
        let ids: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                let a = b
                    .column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .unwrap();
                a.values().to_vec()
            })
            .collect();
        assert_eq!(ids.len(), 1000);
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "in key order, no row twice"
        );
        // Spread: rows from the start and from the end of the table.
        assert_eq!(ids[0], 1);
        assert!(*ids.last().unwrap() > 9_800, "{:?}", ids.last());
        let texts = batches[0]
            .column(1)
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        assert_eq!(texts.value(0), "v1");
    }

    #[test]
    fn values_changed_on_the_way_in_are_counted_per_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("changed.db");
        let c = Connection::open(&p).unwrap();
        c.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, score NUMERIC, price DECIMAL(10,2));
             INSERT INTO t VALUES (1, 9007199254740993, 19.99);
             INSERT INTO t VALUES (2, 9007199254740992, 19.999);
             INSERT INTO t VALUES (3, 1.5, 3);
             INSERT INTO t VALUES (4, 9223372036854775807, 2.675);",
        )
        .unwrap();
        let mut src = SqliteSource::open(&p).unwrap();
        let t = src.table("t").unwrap();
        // A sample counts nothing: only the reads that stage the data do.
        src.sample(&t, 10).unwrap();
        assert!(src.take_changes().is_empty());
        src.read(&t, None, 10, |_| Ok(())).unwrap();
        let changes = src.take_changes();
        // NUMERIC keeps integers as integers (a REAL column would have
        // made them doubles on insert): 2^53 + 1 and i64::MAX have no exact
        // double; 2^53 has.
        assert_eq!(changes["score"][INTEGER_AS_FLOAT], 2, "{changes:?}");
        // 19.999 and 2.675 have more than two fractional digits.
        assert_eq!(changes["price"][REAL_ROUNDED_TO_SCALE], 2, "{changes:?}");
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(src.take_changes().is_empty(), "taken once");
    }

    #[test]
    fn dates_timestamps_and_decimals_round_trip_through_a_target() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("typed.db");
        let c = Connection::open(&p).unwrap();
        c.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, d DATE, ts DATETIME, tz TIMESTAMPTZ, price DECIMAL(10,2), big NUMERIC(30,6));
             INSERT INTO t VALUES (1, '1984-03-12', '2019-03-12 10:11:12', '2019-03-12T10:11:12+02:00', 12.5, '-1.5');
             INSERT INTO t VALUES (2, NULL, 1552385472, NULL, 2.675, '-1');",
        )
        .unwrap();
        let src = SqliteSource::open(&p).unwrap();
        let t = src.table("t").unwrap();
        let types: Vec<_> = t.columns.iter().map(|c| c.arrow_type.clone()).collect();
        assert_eq!(
            types,
            [
                "Int64",
                "Date32",
                "Timestamp(µs)",
                "Timestamp(µs, \"UTC\")",
                "Decimal128(10, 2)",
                "Decimal128(30, 6)"
            ]
        );
        let mut batches = vec![];
        src.read(&t, None, 10, |b| {
            batches.push(b);
            Ok(())
        })
        .unwrap();
        let b = &batches[0];
        let ts = b
            .column(2)
            .as_any()
            .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(ts.value(0), 1_552_385_472_000_000);
        assert_eq!(
            ts.value(1),
            1_552_385_472_000_000,
            "integers are Unix seconds"
        );
        let tz = b
            .column(3)
            .as_any()
            .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(
            tz.value(0),
            1_552_385_472_000_000 - 7_200_000_000,
            "offset applied"
        );
        let price = b
            .column(4)
            .as_any()
            .downcast_ref::<arrow::array::Decimal128Array>()
            .unwrap();
        assert_eq!((price.value(0), price.value(1)), (1250, 268));
        let big = b
            .column(5)
            .as_any()
            .downcast_ref::<arrow::array::Decimal128Array>()
            .unwrap();
        assert_eq!(big.value(0), -1_500_000);
        // A target declares decimals TEXT DECIMAL(p,s), so long ones keep every digit.
        let exact = dir.path().join("exact.db");
        Connection::open(&exact)
            .unwrap()
            .execute_batch("CREATE TABLE x (v TEXT DECIMAL(30,6)); INSERT INTO x VALUES ('123456789012345678901234.000001');")
            .unwrap();
        let xs = SqliteSource::open(&exact).unwrap();
        let xt = xs.table("x").unwrap();
        let mut xb = vec![];
        xs.read(&xt, None, 10, |b| {
            xb.push(b);
            Ok(())
        })
        .unwrap();
        let v = xb[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Decimal128Array>()
            .unwrap();
        assert_eq!(v.value(0), 123_456_789_012_345_678_901_234_000_001);
        // Written to a target and read back: the same values and types.
        let mut target = SqliteTarget::open(&dir.path().join("out.db")).unwrap();
        target
            .ensure_table(&crate::target::NewTable {
                name: "t",
                schema: &t.schema(),
                primary_key: &t.primary_key(),
                declared: &Default::default(),
            })
            .unwrap();
        let key = BatchKey {
            table: "t",
            migration: "m",
            partition: "p",
            seq: 0,
            attempt: 1,
        };
        target.write_batch(b, &key).unwrap();
        drop(target);
        let back = SqliteSource::open(&dir.path().join("out.db")).unwrap();
        let t2 = back.table("t").unwrap();
        assert_eq!(
            t2.schema()
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect::<Vec<_>>(),
            t.schema()
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect::<Vec<_>>()
        );
        let mut again = vec![];
        back.read(&t2, None, 10, |x| {
            again.push(x);
            Ok(())
        })
        .unwrap();
        assert_eq!(&again[0], b);
    }

    /// The test source's table `t` and its rows in batches of ten.
    fn source_batches(dir: &Path) -> (TableInfo, Vec<RecordBatch>) {
        let src = SqliteSource::open(&source_db(dir)).unwrap();
        let t = src.table("t").unwrap();
        let mut batches = vec![];
        src.read(&t, None, 10, |b| {
            batches.push(b);
            Ok(())
        })
        .unwrap();
        (t, batches)
    }

    #[test]
    fn ledger_makes_batches_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let (t, batches) = source_batches(dir.path());
        let mut target = SqliteTarget::open(&dir.path().join("out.db")).unwrap();
        target
            .ensure_table(&crate::target::NewTable {
                name: "t",
                schema: &t.schema(),
                primary_key: &t.primary_key(),
                declared: &Default::default(),
            })
            .unwrap();
        let key = BatchKey {
            table: "t",
            migration: "m",
            partition: "p0",
            seq: 0,
            attempt: 1,
        };
        assert!(target.write_batch(&batches[0], &key).unwrap().written);
        let again = target
            .write_batch(
                &batches[0],
                &BatchKey {
                    attempt: 2,
                    ..key.clone()
                },
            )
            .unwrap();
        assert!(!again.written);
        assert_eq!(target.count("t").unwrap(), 3);
    }

    /// The ledger was created when the target was opened: a delivery whose
    /// first batch failed left `sensei_delivery_ledger` behind. It now comes
    /// in the first batch's transaction.
    #[test]
    fn a_first_batch_that_fails_leaves_no_ledger() {
        assert!(SQLITE_LEDGER.contains(&format!("EXISTS {LEDGER_TABLE} (")));
        let dir = tempfile::tempdir().unwrap();
        let (t, batches) = source_batches(dir.path());
        let mut target = SqliteTarget::open(&dir.path().join("out.db")).unwrap();
        assert!(
            !target.has_table(LEDGER_TABLE).unwrap(),
            "nothing before a batch"
        );
        // A target table the batch cannot fit: every row breaks its CHECK.
        let cols: Vec<String> = t
            .columns
            .iter()
            .map(|c| format!("\"{}\"", c.name))
            .collect();
        target
            .apply_ddl(&format!("CREATE TABLE t ({}, CHECK (0))", cols.join(", ")))
            .unwrap();
        let key = BatchKey {
            table: "t",
            migration: "m",
            partition: "p0",
            seq: 0,
            attempt: 1,
        };
        assert!(target.write_batch(&batches[0], &key).is_err());
        assert!(
            !target.has_table(LEDGER_TABLE).unwrap(),
            "rolled back with the batch"
        );
    }
}
