//! MySQL/MariaDB target: tables created from the certified Arrow schema when
//! absent (InnoDB), each batch streamed with `LOAD DATA LOCAL INFILE`
//! (tab-separated text encoded row by row as the server reads it; no file is
//! written, and the handler answers only with the batch, whatever file name
//! the server asks for), or as multi-row `INSERT`s where the server refuses
//! local infile (`target.mysql_local_infile = false` chooses them), inside one
//! transaction together with its row in the ledger table, so a batch is in
//! the target exactly when its key is in the ledger; a batch the ledger holds
//! is skipped, a stale attempt refused. Plain secondary indexes are set
//! aside for the load and built after it.
//!
//! A server loading a local file turns what strict mode would refuse
//! (a duplicate key, a value out of range, a truncation) into warnings and
//! goes on; here such a warning, or fewer rows loaded than sent, rolls the
//! batch back and stops with the first of them, as the `INSERT` path would
//! in strict mode (a server without it lets INSERTs through with warnings,
//! which the receipt lists). Foreign-key checks are off in the
//! loading sessions (tables load in parallel, in no order; verification has
//! checked referential integrity). Warnings the server raises for a batch
//! (`SHOW WARNINGS`: truncations, conversions) come back with its
//! acknowledgement. Deadlocks, lock waits, lost connections, shutdowns and
//! too many connections are transient; permission and constraint errors are not.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    Schema, TimestampMicrosecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow::record_batch::RecordBatch;
use mysql::prelude::Queryable;
use mysql::{Conn, LocalInfileHandler, Value};

use crate::batch::{BatchAck, BatchKey, LEDGER_TABLE};
use crate::error::{ConnectorError, Result};
use crate::files::SourceOptions;
use crate::mysql::{my_err, quote, MySqlSource};
use crate::target::Deferred;

mod stage;

/// Rows per INSERT statement (placeholders stay under the protocol's limit).
const ROWS_PER_INSERT: usize = 500;

/// The MySQL type a target column gets for an Arrow type.
pub fn mysql_type(dt: &DataType) -> String {
    match dt {
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 | DataType::UInt8 => "SMALLINT".into(),
        DataType::Int32 | DataType::UInt16 => "INT".into(),
        DataType::Int64 | DataType::UInt32 => "BIGINT".into(),
        DataType::UInt64 => "BIGINT UNSIGNED".into(),
        DataType::Float16 | DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "LONGBLOB".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Timestamp(..) => "DATETIME(6)".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({},{s})", (*p).min(65)),
        _ => "LONGTEXT".into(),
    }
}

/// A MySQL/MariaDB target session.
pub struct MySqlTarget {
    conn: Conn,
    /// The batch the local-infile handler streams next (None: LOAD DATA is off).
    infile: Option<Arc<Mutex<Option<RecordBatch>>>>,
    /// Whether the ledger table is known to exist.
    ledger_ready: bool,
}

/// Server errors that mean local infile is refused: 1148 (command not
/// allowed), 3948 (MySQL: loading local data disabled), 4166 (MariaDB:
/// local infile off for this connection).
const INFILE_REFUSED: [u16; 3] = [1148, 3948, 4166];

/// Appends bytes escaped for a LOAD DATA field (`ESCAPED BY '\\'`).
fn escape(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0 => out.extend_from_slice(b"\\0"),
            _ => out.push(b),
        }
    }
}

/// Appends one cell as a LOAD DATA field (`\N` for NULL); `text` formats the
/// types written in their text form (decimals and the rest).
fn put_field(
    a: &ArrayRef,
    row: usize,
    text: Option<&arrow::util::display::ArrayFormatter<'_>>,
    out: &mut Vec<u8>,
) {
    if a.is_null(row) {
        out.extend_from_slice(b"\\N");
        return;
    }
    match a.data_type() {
        DataType::Utf8 => escape(a.as_string::<i32>().value(row).as_bytes(), out),
        DataType::LargeUtf8 => escape(a.as_string::<i64>().value(row).as_bytes(), out),
        DataType::Binary => escape(a.as_binary::<i32>().value(row), out),
        // Decimals and times: digits, signs and separators only.
        DataType::Decimal128(..)
        | DataType::Decimal256(..)
        | DataType::Time32(_)
        | DataType::Time64(_)
        | DataType::Interval(_)
        | DataType::Duration(_)
            if text.is_some() =>
        {
            if let Some(f) = text {
                let _ = write!(out, "{}", f.value(row));
            }
        }
        _ => match (value(a, row), text) {
            (Value::Int(v), _) => put_int(v, 0, out),
            (Value::UInt(v), _) => {
                let _ = write!(out, "{v}");
            }
            // As a double: the server parses the text as one and rounds to
            // FLOAT, so the shortest f32 text could land past FLT_MAX.
            (Value::Float(v), _) => {
                let _ = write!(out, "{}", f64::from(v));
            }
            (Value::Double(v), _) => {
                let _ = write!(out, "{v}");
            }
            (Value::Date(y, m, d, h, mi, sec, us), _) => {
                put_int(i64::from(y), 4, out);
                out.push(b'-');
                put_int(i64::from(m), 2, out);
                out.push(b'-');
                put_int(i64::from(d), 2, out);
                if !matches!(a.data_type(), DataType::Date32) {
                    out.push(b' ');
                    put_int(i64::from(h), 2, out);
                    out.push(b':');
                    put_int(i64::from(mi), 2, out);
                    out.push(b':');
                    put_int(i64::from(sec), 2, out);
                    out.push(b'.');
                    put_int(i64::from(us), 6, out);
                }
            }
            (_, Some(f)) => escape(f.value(row).to_string().as_bytes(), out),
            (Value::Bytes(b), None) => escape(&b, out),
            _ => out.extend_from_slice(b"\\N"),
        },
    }
}

/// The batch's rows inside `tx`: streamed with LOAD DATA while `infile`
/// holds the handler's slot (cleared when the server refuses local infile),
/// else as multi-row INSERTs. Returns the server's notes and warnings.
fn write_rows(
    tx: &mut mysql::Transaction<'_>,
    infile: &mut Option<Arc<Mutex<Option<RecordBatch>>>>,
    table: &str,
    batch: &RecordBatch,
    ctx: &str,
) -> Result<Vec<String>> {
    let schema = batch.schema();
    let names = column_list(&schema);
    let mut warnings = Vec::new();
    let mut loaded = false;
    if let Some(slot) = infile.clone() {
        *slot.lock().map_err(|_| ConnectorError::Database {
            context: ctx.to_string(),
            message: "infile slot poisoned".into(),
            transient: false,
        })? = Some(batch.clone());
        let sql = format!(
            "LOAD DATA LOCAL INFILE 'sensei-batch' INTO TABLE {} CHARACTER SET utf8mb4 \
                 FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({names})",
            quote(table)
        );
        let outcome = tx.query_drop(sql);
        let _ = slot.lock().map(|mut s| s.take());
        match outcome {
            Ok(()) => {
                let sent = batch.num_rows() as u64;
                let (affected, count) = (tx.affected_rows(), tx.warnings());
                let shown: Vec<(String, u32, String)> = if count > 0 {
                    tx.query("SHOW WARNINGS").map_err(my_err(ctx))?
                } else {
                    Vec::new()
                };
                // Strict mode would have refused these: the batch rolls back.
                let refused = shown.iter().find(|(level, _, _)| level != "Note");
                if affected != sent || refused.is_some() {
                    let why = refused
                        .map(|(level, code, msg)| format!("{level} {code}: {msg}"))
                        .unwrap_or_else(|| "no warning given".into());
                    return Err(ConnectorError::Database {
                            context: ctx.to_string(),
                            message: format!(
                                "the server loaded {affected} of {sent} rows with LOAD DATA: {why}; nothing of this batch was kept"
                            ),
                            transient: false,
                        });
                }
                warnings.extend(
                    shown
                        .into_iter()
                        .map(|(level, code, msg)| format!("{level} {code}: {msg}")),
                );
                loaded = true;
            }
            Err(mysql::Error::MySqlError(e)) if INFILE_REFUSED.contains(&e.code) => {
                warnings.push(format!(
                        "LOAD DATA LOCAL INFILE refused by the server ({} {}): multi-row INSERTs from here on",
                        e.code, e.message
                    ));
                *infile = None;
            }
            Err(e) => return Err(my_err(ctx)(e)),
        }
    }
    let one = format!("({})", placeholders(&schema));
    let mut start = 0;
    while !loaded && start < batch.num_rows() {
        let n = ROWS_PER_INSERT.min(batch.num_rows() - start);
        let sql = format!(
            "INSERT INTO {} ({names}) VALUES {}",
            quote(table),
            vec![one.as_str(); n].join(", ")
        );
        let mut params = Vec::with_capacity(n * schema.fields().len());
        for r in start..start + n {
            for c in batch.columns() {
                params.push(value(c, r));
            }
        }
        tx.exec_drop(sql, params).map_err(|e| {
            my_err(format!(
                "{ctx}, rows {}..{} of the batch",
                start + 1,
                start + n
            ))(e)
        })?;
        if tx.warnings() > 0 {
            let w: Vec<(String, u32, String)> = tx.query("SHOW WARNINGS").map_err(my_err(ctx))?;
            warnings.extend(
                w.into_iter()
                    .map(|(level, code, msg)| format!("{level} {code}: {msg}")),
            );
        }
        start += n;
    }
    Ok(warnings)
}

/// The quoted column names of `schema`, comma-separated.
fn column_list(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| quote(f.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One `?` per column of `schema`, comma-separated.
fn placeholders(schema: &Schema) -> String {
    vec!["?"; schema.fields().len()].join(", ")
}

/// Appends `v` in decimal, zero-padded to `width` digits.
fn put_int(v: i64, width: usize, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = v.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    for _ in (digits.len() - i)..width {
        out.push(b'0');
    }
    out.extend_from_slice(&digits[i..]);
}

/// Streams `batch` as LOAD DATA text into `w`, in pieces of about 64 KiB.
fn stream_batch(batch: &RecordBatch, w: &mut impl Write) -> std::io::Result<()> {
    let opts = arrow::util::display::FormatOptions::default();
    let text: Vec<Option<arrow::util::display::ArrayFormatter<'_>>> = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Decimal128(..)
            | DataType::Decimal256(..)
            | DataType::Utf8View
            | DataType::Time32(_)
            | DataType::Time64(_)
            | DataType::Interval(_)
            | DataType::Duration(_) => {
                arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &opts).ok()
            }
            _ => None,
        })
        .collect();
    let mut buf = Vec::with_capacity(80 * 1024);
    for r in 0..batch.num_rows() {
        for (i, c) in batch.columns().iter().enumerate() {
            if i > 0 {
                buf.push(b'\t');
            }
            put_field(c, r, text[i].as_ref(), &mut buf);
        }
        buf.push(b'\n');
        if buf.len() >= 64 * 1024 {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    w.write_all(&buf)
}

fn civil(days: i64) -> (u16, u8, u8) {
    // MySQL's dates lie within years 1000-9999; the server refuses others.
    let (y, m, d) = crate::convert::civil_from_days(days);
    (y as u16, m as u8, d as u8)
}

fn value(a: &ArrayRef, row: usize) -> Value {
    if a.is_null(row) {
        return Value::NULL;
    }
    match a.data_type() {
        DataType::Int8 => Value::Int(a.as_primitive::<Int8Type>().value(row) as i64),
        DataType::Int16 => Value::Int(a.as_primitive::<Int16Type>().value(row) as i64),
        DataType::Int32 => Value::Int(a.as_primitive::<Int32Type>().value(row) as i64),
        DataType::Int64 => Value::Int(a.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Value::UInt(a.as_primitive::<UInt8Type>().value(row) as u64),
        DataType::UInt16 => Value::UInt(a.as_primitive::<UInt16Type>().value(row) as u64),
        DataType::UInt32 => Value::UInt(a.as_primitive::<UInt32Type>().value(row) as u64),
        DataType::UInt64 => Value::UInt(a.as_primitive::<UInt64Type>().value(row)),
        DataType::Float32 => Value::Float(a.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => Value::Double(a.as_primitive::<Float64Type>().value(row)),
        DataType::Boolean => Value::Int(a.as_boolean().value(row) as i64),
        DataType::Date32 => {
            let (y, m, d) = civil(a.as_primitive::<Date32Type>().value(row) as i64);
            Value::Date(y, m, d, 0, 0, 0, 0)
        }
        DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, _) => {
            let us = a.as_primitive::<TimestampMicrosecondType>().value(row);
            let (days, rem) = (us.div_euclid(86_400_000_000), us.rem_euclid(86_400_000_000));
            let (y, m, d) = civil(days);
            let secs = rem / 1_000_000;
            Value::Date(
                y,
                m,
                d,
                (secs / 3600) as u8,
                (secs / 60 % 60) as u8,
                (secs % 60) as u8,
                (rem % 1_000_000) as u32,
            )
        }
        DataType::Binary => Value::Bytes(a.as_binary::<i32>().value(row).to_vec()),
        _ => {
            // Decimals, text and the rest in their text form (exact).
            let opts = arrow::util::display::FormatOptions::default();
            let s = arrow::util::display::ArrayFormatter::try_new(a.as_ref(), &opts)
                .map(|f| f.value(row).to_string())
                .unwrap_or_default();
            Value::Bytes(s.into_bytes())
        }
    }
}

impl MySqlTarget {
    /// Checks that the server takes this user's connection, writing nothing.
    pub fn check(url: &str, options: &SourceOptions) -> Result<()> {
        MySqlSource::connect_with(url, options).map(|_| ())
    }

    /// Connects (password, TLS and timeout as for a MySQL source) and turns
    /// foreign-key checks off for this session; the ledger table comes with
    /// the first batch. With `options.local_infile`, batches load through
    /// LOAD DATA LOCAL INFILE.
    pub fn connect(url: &str, options: &SourceOptions) -> Result<Self> {
        let mut conn = MySqlSource::connect_with(url, options)?.into_conn();
        // The LOAD DATA statement spells its separators with backslash escapes.
        conn.query_drop("SET SESSION sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')")
            .map_err(my_err("preparing the target session"))?;
        let infile = options.local_infile.then(|| {
            let slot: Arc<Mutex<Option<RecordBatch>>> = Arc::default();
            let next = slot.clone();
            conn.set_local_infile_handler(Some(LocalInfileHandler::new(move |_, w| {
                // Only the batch being loaded is ever sent, whatever the name asked.
                let batch = next
                    .lock()
                    .map_err(|_| std::io::Error::other("infile slot poisoned"))?
                    .take()
                    .ok_or_else(|| std::io::Error::other("no batch is being loaded"))?;
                stream_batch(&batch, w)
            })));
            slot
        });
        conn.query_drop("SET SESSION foreign_key_checks = 0")
            .map_err(my_err("preparing the target session"))?;
        Ok(MySqlTarget {
            conn,
            infile,
            ledger_ready: false,
        })
    }

    /// Creates the ledger before the first batch (MySQL commits DDL at once,
    /// so not inside the batch's transaction; still nothing is created
    /// before there is a batch to write).
    fn ensure_ledger(&mut self) -> Result<()> {
        if self.ledger_ready {
            return Ok(());
        }
        self.conn
            .query_drop(format!(
                "CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
                    migration_id VARCHAR(255) NOT NULL,
                    partition_id VARCHAR(255) NOT NULL,
                    batch_seq BIGINT NOT NULL,
                    attempt INT NOT NULL,
                    `rows` BIGINT NOT NULL,
                    delivered_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
                    PRIMARY KEY (migration_id, partition_id, batch_seq)
                ) ENGINE=InnoDB"
            ))
            .map_err(my_err(format!("creating {LEDGER_TABLE}")))?;
        self.ledger_ready = true;
        Ok(())
    }

    /// Re-sync: deletes the table's rows and this migration's ledger rows
    /// for it, in one transaction; returns the rows deleted.
    pub fn clear_for_resync(&mut self, table: &str, migration_id: &str) -> Result<u64> {
        let ctx = format!("clearing {table} for --resync");
        let ledger = self.has_table(LEDGER_TABLE)?;
        let mut tx = self
            .conn
            .start_transaction(mysql::TxOpts::default())
            .map_err(my_err(ctx.clone()))?;
        tx.query_drop(format!("DELETE FROM {}", quote(table)))
            .map_err(my_err(ctx.clone()))?;
        let n = tx.affected_rows();
        if ledger {
            let prefix = format!("{table}/");
            tx.exec_drop(
                format!("DELETE FROM {LEDGER_TABLE} WHERE migration_id = ? AND SUBSTRING(partition_id, 1, ?) = ?"),
                (migration_id, prefix.chars().count() as u64, &prefix),
            )
            .map_err(my_err(ctx.clone()))?;
        }
        tx.commit().map_err(my_err(ctx))?;
        Ok(n)
    }

    /// How many batches of `migration_id` the ledger holds (0 without a ledger).
    pub fn batches_delivered(&mut self, migration_id: &str) -> Result<u64> {
        if !self.has_table(LEDGER_TABLE)? {
            return Ok(0);
        }
        let n: Option<u64> = self
            .conn
            .exec_first(
                format!("SELECT count(*) FROM {LEDGER_TABLE} WHERE migration_id = ?"),
                (migration_id,),
            )
            .map_err(my_err("reading the delivery ledger".to_string()))?;
        Ok(n.unwrap_or(0))
    }

    /// Whether `table` exists in the session's database.
    pub fn has_table(&mut self, table: &str) -> Result<bool> {
        let n: Option<i64> = self
            .conn
            .exec_first(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?",
                (table,),
            )
            .map_err(my_err(format!("looking up table {table}")))?;
        Ok(n.unwrap_or(0) > 0)
    }

    /// Sets aside the plain (non-unique B-tree) secondary indexes of
    /// `tables` for the load: InnoDB builds an index from sorted rows once,
    /// faster than keeping it up to date row by row. Returns `(table, index,
    /// CREATE INDEX statement)` for [`MySqlTarget::attach_indexes`]. Unique
    /// indexes stay (they guard the load), as do those a foreign key needs.
    pub fn detach_indexes(&mut self, tables: &[String]) -> Result<Vec<(String, String, String)>> {
        let mut out = Vec::new();
        for table in tables {
            let rows: Vec<(String, String, Option<String>, Option<u64>)> = self
                .conn
                .exec(
                    "SELECT index_name, index_type, column_name, sub_part FROM information_schema.statistics
                     WHERE table_schema = DATABASE() AND table_name = ? AND non_unique = 1
                     ORDER BY index_name, seq_in_index",
                    (table,),
                )
                .map_err(my_err(format!("reading the indexes of {table}")))?;
            let mut indexes: Vec<(String, Vec<String>, bool)> = Vec::new();
            for (name, kind, column, sub_part) in rows {
                if indexes.last().map(|i| &i.0) != Some(&name) {
                    indexes.push((name.clone(), Vec::new(), kind == "BTREE"));
                }
                let Some(last) = indexes.last_mut() else {
                    continue;
                };
                match column {
                    Some(c) => last.1.push(match sub_part {
                        Some(n) => format!("{}({n})", quote(&c)),
                        None => quote(&c),
                    }),
                    // An expression index: left in place.
                    None => last.2 = false,
                }
            }
            for (name, columns, _) in indexes.into_iter().filter(|i| i.2) {
                match self.conn.query_drop(format!(
                    "ALTER TABLE {} DROP INDEX {}",
                    quote(table),
                    quote(&name)
                )) {
                    Ok(()) => out.push((
                        table.clone(),
                        name.clone(),
                        format!(
                            "CREATE INDEX {} ON {} ({})",
                            quote(&name),
                            quote(table),
                            columns.join(", ")
                        ),
                    )),
                    // Needed by a foreign key: it stays.
                    Err(mysql::Error::MySqlError(e)) if e.code == 1553 => {}
                    Err(e) => {
                        return Err(my_err(format!("setting aside index {name} of {table}"))(e))
                    }
                }
            }
        }
        Ok(out)
    }

    /// Builds the indexes [`MySqlTarget::detach_indexes`] set aside; the
    /// ones that fail, with the server's reason.
    pub fn attach_indexes(&mut self, indexes: &[(String, String, String)]) -> Vec<String> {
        let mut failed = Vec::new();
        for (table, index, def) in indexes {
            if let Err(e) = self.conn.query_drop(def) {
                // Already there (a rerun after it was built): nothing to do.
                if matches!(&e, mysql::Error::MySqlError(m) if m.code == 1061) {
                    continue;
                }
                failed.push(format!("table {table}: index {index} ({def}): {e}"));
            }
        }
        failed
    }

    /// Runs DDL as it is (the target schema file).
    pub fn apply_ddl(&mut self, ddl: &str) -> Result<()> {
        self.conn
            .query_drop(ddl)
            .map_err(my_err("applying the target schema"))
    }

    /// Creates a table mirroring `schema` (with `primary_key`) when absent.
    pub fn ensure_table(&mut self, t: &crate::target::NewTable<'_>) -> Result<()> {
        let (table, schema, primary_key, declared) = (t.name, t.schema, t.primary_key, t.declared);
        use crate::target::Declared;
        // A row holds at most 65,535 bytes of VARCHARs (4 a character in
        // utf8mb4): past that the columns stay LONGTEXT.
        let bytes: u64 = declared
            .values()
            .map(|d| match d {
                Declared::Width(n) => 4 * u64::from(*n) + 2,
                Declared::Exact(_) => 0,
            })
            .sum();
        let kept: std::collections::BTreeMap<String, Declared> = declared
            .iter()
            .filter(|(_, d)| bytes < 65_000 || matches!(d, Declared::Exact(_)))
            .map(|(k, d)| (k.clone(), *d))
            .collect();
        // DECIMAL(p,s) up to MySQL's 65 digits and 30 decimals; text beyond.
        let exact = |ps: Option<(u32, u32)>| match ps {
            Some((p, s)) if p <= 65 && s <= 30 => Some(format!("DECIMAL({p},{s})")),
            _ => None,
        };
        let columns =
            crate::sqlite::table_columns(schema, primary_key, &kept, quote, mysql_type, exact);
        self.conn
            .query_drop(format!(
                "CREATE TABLE IF NOT EXISTS {} ({}) ENGINE=InnoDB",
                quote(table),
                columns
            ))
            .map_err(my_err(format!("creating target table {table}")))
    }

    /// A permanent refusal of a batch's rows (rolled back by now), with the
    /// first row that fails alone.
    fn with_first_failing_row(
        &mut self,
        e: ConnectorError,
        table: &str,
        batch: &RecordBatch,
    ) -> ConnectorError {
        match e {
            ConnectorError::Database {
                context,
                message,
                transient: false,
            } => ConnectorError::Database {
                message: match self.first_failing_row(table, batch) {
                    Some((r, why)) => {
                        format!("{message}; first failing row: row {r} of the batch ({why})")
                    }
                    None => message,
                },
                context,
                transient: false,
            },
            other => other,
        }
    }

    /// Inserts the batch's rows one at a time inside a transaction that is
    /// rolled back, until one fails: its 1-based number and the server's
    /// reason. None when every row goes in alone (the failure was the batch's).
    fn first_failing_row(&mut self, table: &str, batch: &RecordBatch) -> Option<(usize, String)> {
        let schema = batch.schema();
        let names = column_list(&schema);
        let sql = format!(
            "INSERT INTO {} ({names}) VALUES ({})",
            quote(table),
            placeholders(&schema)
        );
        let mut tx = self.conn.start_transaction(mysql::TxOpts::default()).ok()?;
        let stmt = tx.prep(&sql).ok()?;
        for r in 0..batch.num_rows() {
            let params: Vec<Value> = batch.columns().iter().map(|c| value(c, r)).collect();
            if let Err(e) = tx.exec_drop(&stmt, params) {
                return Some((r + 1, e.to_string()));
            }
        }
        None
    }

    /// Writes one batch and its ledger row in one transaction.
    pub fn write_batch(&mut self, batch: &RecordBatch, key: &BatchKey<'_>) -> Result<BatchAck> {
        let (started, table) = (Instant::now(), key.table);
        let ctx = key.context();
        self.ensure_ledger()?;
        let mut tx = self
            .conn
            .start_transaction(mysql::TxOpts::default())
            .map_err(my_err(&ctx))?;
        let seen: Option<i64> = tx
            .exec_first(
                format!("SELECT attempt FROM {LEDGER_TABLE} WHERE migration_id = ? AND partition_id = ? AND batch_seq = ? FOR UPDATE"),
                (key.migration, key.partition, key.seq as i64),
            )
            .map_err(my_err(&ctx))?;
        if seen.is_some() {
            tx.commit().map_err(my_err(&ctx))?;
            return Ok(BatchAck::skipped(started, Vec::new()));
        }
        let latest: Option<Option<i64>> = tx
            .exec_first(
                format!("SELECT max(attempt) FROM {LEDGER_TABLE} WHERE migration_id = ? AND partition_id = ?"),
                (key.migration, key.partition),
            )
            .map_err(my_err(&ctx))?;
        key.check_fence(latest.flatten())?;
        let warnings = match write_rows(&mut tx, &mut self.infile, table, batch, &ctx) {
            Ok(w) => w,
            Err(e) => {
                drop(tx);
                return Err(self.with_first_failing_row(e, table, batch));
            }
        };
        match tx.exec_drop(
            format!("INSERT INTO {LEDGER_TABLE} (migration_id, partition_id, batch_seq, attempt, `rows`) VALUES (?, ?, ?, ?, ?)"),
            (key.migration, key.partition, key.seq as i64, key.attempt, batch.num_rows() as i64),
        ) {
            Ok(()) => {}
            // Another attempt committed this batch meanwhile: ours rolls back whole.
            Err(mysql::Error::MySqlError(e)) if e.code == 1062 => {
                drop(tx);
                return Ok(BatchAck::skipped(started, warnings));
            }
            Err(e) => return Err(my_err(&ctx)(e)),
        }
        tx.commit().map_err(my_err(&ctx))?;
        Ok(BatchAck::written(
            batch.num_rows() as u64,
            started,
            warnings,
        ))
    }
}

impl crate::target::TargetEngine for MySqlTarget {
    fn apply_ddl(&mut self, ddl: &str) -> Result<()> {
        MySqlTarget::apply_ddl(self, ddl)
    }
    fn has_table(&mut self, table: &str) -> Result<bool> {
        MySqlTarget::has_table(self, table)
    }
    fn ensure_table(&mut self, table: &crate::target::NewTable<'_>) -> Result<()> {
        MySqlTarget::ensure_table(self, table)
    }
    fn write_batch(&mut self, batch: &RecordBatch, key: &BatchKey<'_>) -> Result<BatchAck> {
        MySqlTarget::write_batch(self, batch, key)
    }
    fn clear_for_resync(&mut self, table: &str, migration_id: &str) -> Result<u64> {
        MySqlTarget::clear_for_resync(self, table, migration_id)
    }
    fn batches_delivered(&mut self, migration_id: &str) -> Result<u64> {
        MySqlTarget::batches_delivered(self, migration_id)
    }
    fn drop_table(&mut self, table: &str) -> Result<()> {
        self.apply_ddl(&format!("DROP TABLE IF EXISTS {}", quote(table)))
    }
    fn staging_refused(&mut self, _namespace: &str, tables: &[String]) -> Result<Option<String>> {
        MySqlTarget::staging_refused(self, tables)
    }
    fn begin_staging(&mut self, area: &crate::target::StagingArea, fresh: bool) -> Result<()> {
        MySqlTarget::begin_staging(self, &area.name, &area.stale_prefix, fresh)
    }
    fn publish(&mut self, area: &crate::target::StagingArea) -> Result<crate::target::Published> {
        MySqlTarget::publish(self, &area.name)
    }
    fn quote(&self) -> Option<fn(&str) -> String> {
        Some(quote)
    }
    /// Sessions load with foreign-key checks off; secondary indexes are
    /// built once after the load, not maintained per row.
    fn detach_for_load(
        &mut self,
        tables: &[String],
        _fresh: &[String],
    ) -> Result<(Deferred, Deferred)> {
        Ok((Vec::new(), self.detach_indexes(tables)?))
    }
    fn reattach(&mut self, _foreign_keys: &Deferred, indexes: &Deferred) -> Vec<String> {
        self.attach_indexes(indexes)
    }
    fn as_any(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_data_fields_are_escaped() {
        use arrow::array::{BinaryArray, Date32Array, Int64Array, StringArray};
        let batch = RecordBatch::try_from_iter(vec![
            (
                "id",
                Arc::new(Int64Array::from(vec![Some(-7), None])) as ArrayRef,
            ),
            (
                "s",
                Arc::new(StringArray::from(vec![Some("a\tb\\c\nd"), Some("\\N")])) as ArrayRef,
            ),
            (
                "b",
                Arc::new(BinaryArray::from(vec![Some(&[0u8, 0xff][..]), None])) as ArrayRef,
            ),
            (
                "d",
                Arc::new(Date32Array::from(vec![Some(19_723), None])) as ArrayRef,
            ),
        ])
        .unwrap();
        let mut out = Vec::new();
        super::stream_batch(&batch, &mut out).unwrap();
        assert_eq!(
            out,
            b"-7\ta\\tb\\\\c\\nd\t\\0\xff\t2024-01-01\n\\N\t\\\\N\t\\N\t\\N\n".to_vec()
        );
    }

    #[test]
    fn civil_dates() {
        assert_eq!(super::civil(0), (1970, 1, 1));
        assert_eq!(super::civil(19_723), (2024, 1, 1));
        assert_eq!(super::civil(-1), (1969, 12, 31));
        assert_eq!(super::civil(11_016), (2000, 2, 29));
    }
}
