//! PostgreSQL target: tables created from the certified Arrow schema when
//! absent, batches written with binary `COPY ... FROM STDIN` inside one
//! transaction together with their row in the target's ledger table
//! (`sensei_delivery_ledger`), so a batch is in the target exactly when its
//! key is in the ledger.
//!
//! * A batch whose key (migration, partition, batch sequence) the ledger
//!   holds is skipped; two attempts racing on one batch collide on the
//!   ledger's primary key and the loser's transaction (rows included) rolls
//!   back.
//! * A stale attempt (the ledger holds a later attempt of the partition) is
//!   refused before it writes.
//! * Each batch's rows are cast to the types the target table declares
//!   (`INTEGER` for an Arrow Int64 fails on overflow, never wraps), then
//!   encoded in PostgreSQL's binary format: `smallint`, `integer`, `bigint`,
//!   `real`, `double precision`, `numeric`, `boolean`, `text`/`varchar`/
//!   `char`, `bytea`, `date`, `timestamp`, `timestamptz`, `uuid`, `json`,
//!   `jsonb`. Other column types are refused by name.
//! * The notices and warnings the server sends while a batch is written are
//!   returned with its acknowledgement.
//! * Errors keep PostgreSQL's class: connection loss, serialization failure,
//!   shutdown and too many connections are transient (retried); permission,
//!   constraint and schema errors are not.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::CastOptions;
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, TimeUnit, TimestampMicrosecondType,
};
use arrow::record_batch::RecordBatch;
use postgres::Client;

use crate::batch::{BatchAck, BatchKey, LEDGER_TABLE};
use crate::error::{ConnectorError, Result};
use crate::files::SourceOptions;
use crate::target::Deferred;

mod stage;

/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// Quotes an identifier for PostgreSQL.
pub use crate::ident::ansi as quote;

/// The PostgreSQL type a target column gets for an Arrow type.
pub fn pg_type(dt: &DataType) -> String {
    match dt {
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "integer".into(),
        DataType::Int64 | DataType::UInt32 => "bigint".into(),
        DataType::UInt64 => "numeric(20,0)".into(),
        DataType::Float16 | DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "bytea".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, None) => "timestamp".into(),
        DataType::Timestamp(_, Some(_)) => "timestamptz".into(),
        DataType::Decimal128(p, s) => format!("numeric({p},{s})"),
        _ => "text".into(),
    }
}

/// How one target column is encoded.
#[derive(Debug, Clone, PartialEq)]
enum Wire {
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Bool,
    Text,
    Bytea,
    Date,
    Timestamp,
    Numeric(Option<(u8, i8)>),
    Uuid,
    Jsonb,
}

impl Wire {
    fn of(typname: &str, formatted: &str) -> Option<Wire> {
        Some(match typname {
            "int2" => Wire::Int2,
            "int4" => Wire::Int4,
            "int8" => Wire::Int8,
            "float4" => Wire::Float4,
            "float8" => Wire::Float8,
            "bool" => Wire::Bool,
            "text" | "varchar" | "bpchar" | "name" | "citext" | "json" => Wire::Text,
            "bytea" => Wire::Bytea,
            "date" => Wire::Date,
            "timestamp" | "timestamptz" => Wire::Timestamp,
            "uuid" => Wire::Uuid,
            "jsonb" => Wire::Jsonb,
            "numeric" => {
                // numeric(p,s) as format_type prints it; unconstrained otherwise.
                let ps = formatted
                    .strip_prefix("numeric(")
                    .and_then(|r| r.strip_suffix(')'))
                    .and_then(|r| {
                        let (p, s) = r.split_once(',').unwrap_or((r, "0"));
                        Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
                    });
                Wire::Numeric(ps)
            }
            _ => return None,
        })
    }

    /// The Arrow type values are cast to before encoding.
    fn arrow(&self, from: &DataType) -> DataType {
        match self {
            Wire::Int2 => DataType::Int16,
            Wire::Int4 => DataType::Int32,
            Wire::Int8 => DataType::Int64,
            Wire::Float4 => DataType::Float32,
            Wire::Float8 => DataType::Float64,
            Wire::Bool => DataType::Boolean,
            Wire::Text | Wire::Uuid | Wire::Jsonb => DataType::Utf8,
            Wire::Bytea => DataType::Binary,
            Wire::Date => DataType::Date32,
            Wire::Timestamp => match from {
                DataType::Timestamp(_, tz) => {
                    DataType::Timestamp(TimeUnit::Microsecond, tz.clone())
                }
                _ => DataType::Timestamp(TimeUnit::Microsecond, None),
            },
            // Text from an exact source decimal wider than Arrow's 38
            // digits (or without a precision) is encoded digit for digit.
            Wire::Numeric(_) if matches!(from, DataType::Utf8) => DataType::Utf8,
            Wire::Numeric(Some((p, s))) => DataType::Decimal128((*p).clamp(1, 38), *s),
            Wire::Numeric(None) => match from {
                DataType::Decimal128(p, s) => DataType::Decimal128(*p, *s),
                DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                    DataType::Decimal128(38, 0)
                }
                _ => DataType::Decimal128(38, 10),
            },
        }
    }
}

/// A decimal written in text (`-12345678901234567890123456789012345.678`,
/// `NaN`, `Infinity`) as PostgreSQL's binary `numeric`, every digit kept.
fn encode_numeric_text(text: &str, out: &mut Vec<u8>) -> std::result::Result<(), String> {
    let t = text.trim();
    let special = match t {
        "NaN" => Some(0xC000u16),
        "Infinity" | "+Infinity" => Some(0xD000),
        "-Infinity" => Some(0xF000),
        _ => None,
    };
    if let Some(sign) = special {
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&sign.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        return Ok(());
    }
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits_only(int) || !digits_only(frac) {
        return Err(format!("{text:?} is not a decimal number"));
    }
    if frac.len() > 16383 {
        return Err(format!("{text:?} has more decimals than PostgreSQL keeps"));
    }
    // Base-10000 groups of four digits: the integer part aligned on the
    // right (zeros in front), the fraction on the left (zeros behind).
    let int = int.trim_start_matches('0');
    let groups = |digits: &[u8], lead: usize| -> Vec<i16> {
        let mut out = Vec::with_capacity((lead + digits.len()).div_ceil(4));
        let mut acc = 0i16;
        let mut n = lead;
        for d in digits {
            acc = acc * 10 + (d - b'0') as i16;
            n += 1;
            if n.is_multiple_of(4) {
                out.push(acc);
                acc = 0;
            }
        }
        if !n.is_multiple_of(4) {
            out.push(acc * 10i16.pow((4 - n % 4) as u32));
        }
        out
    };
    let int_groups = groups(int.as_bytes(), (4 - int.len() % 4) % 4);
    let frac_groups = groups(frac.as_bytes(), 0);
    write_numeric(int_groups, frac_groups, neg, frac.len() as u16, out);
    Ok(())
}

/// Writes a `numeric` field from its integer and fraction base-10000
/// groups: leading and trailing zero groups dropped, weight from the
/// integer groups left.
fn write_numeric(
    int_groups: Vec<i16>,
    frac_groups: Vec<i16>,
    neg: bool,
    scale: u16,
    out: &mut Vec<u8>,
) {
    let mut weight = int_groups.len() as i16 - 1;
    let mut digits: Vec<i16> = int_groups.into_iter().chain(frac_groups).collect();
    while digits.first() == Some(&0) {
        digits.remove(0);
        weight -= 1;
    }
    while digits.last() == Some(&0) {
        digits.pop();
    }
    if digits.is_empty() {
        weight = 0;
    }
    let body = 8 + 2 * digits.len();
    out.extend_from_slice(&(body as i32).to_be_bytes());
    out.extend_from_slice(&(digits.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    let sign: u16 = if neg && !digits.is_empty() { 0x4000 } else { 0 };
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&scale.to_be_bytes());
    for d in digits {
        out.extend_from_slice(&d.to_be_bytes());
    }
}

/// PostgreSQL's binary `numeric`: base-10000 digits, weight, sign, scale.
pub(crate) fn encode_numeric(v: i128, scale: i8, out: &mut Vec<u8>) {
    let scale = scale.max(0) as u32;
    let neg = v < 0;
    let abs = v.unsigned_abs();
    let pow = 10u128.pow(scale);
    let (int, frac) = (abs / pow, abs % pow);
    let mut int_groups: Vec<i16> = Vec::new();
    let mut n = int;
    while n > 0 {
        int_groups.push((n % 10_000) as i16);
        n /= 10_000;
    }
    int_groups.reverse();
    // The fraction's digits, padded on the right to whole groups of four.
    let mut frac_groups: Vec<i16> = Vec::new();
    if scale > 0 {
        let padded_len = scale.div_ceil(4) * 4;
        let mut f = frac * 10u128.pow(padded_len - scale);
        let mut groups = Vec::new();
        for _ in 0..padded_len / 4 {
            groups.push((f % 10_000) as i16);
            f /= 10_000;
        }
        groups.reverse();
        frac_groups = groups;
    }
    write_numeric(int_groups, frac_groups, neg, scale as u16, out);
}

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Encodes one cell (not NULL) of an array already cast to `wire.arrow()`.
fn encode_cell(
    a: &ArrayRef,
    row: usize,
    wire: &Wire,
    out: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    match wire {
        Wire::Int2 => field(out, &a.as_primitive::<Int16Type>().value(row).to_be_bytes()),
        Wire::Int4 => field(out, &a.as_primitive::<Int32Type>().value(row).to_be_bytes()),
        Wire::Int8 => field(out, &a.as_primitive::<Int64Type>().value(row).to_be_bytes()),
        Wire::Float4 => field(
            out,
            &a.as_primitive::<Float32Type>().value(row).to_be_bytes(),
        ),
        Wire::Float8 => field(
            out,
            &a.as_primitive::<Float64Type>().value(row).to_be_bytes(),
        ),
        Wire::Bool => field(out, &[a.as_boolean().value(row) as u8]),
        Wire::Text => {
            let s = a.as_string::<i32>().value(row);
            if s.contains('\0') {
                return Err("text with a NUL character (PostgreSQL text cannot hold it)".into());
            }
            field(out, s.as_bytes())
        }
        Wire::Jsonb => {
            let s = a.as_string::<i32>().value(row);
            let mut b = Vec::with_capacity(s.len() + 1);
            b.push(1u8);
            b.extend_from_slice(s.as_bytes());
            field(out, &b)
        }
        Wire::Uuid => {
            let s = a.as_string::<i32>().value(row);
            let hex: String = s.chars().filter(|c| *c != '-').collect();
            if hex.len() != 32 {
                return Err(format!("{s:?} is not a UUID"));
            }
            let bytes = (0..16)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
                .collect::<std::result::Result<Vec<u8>, _>>()
                .map_err(|_| format!("{s:?} is not a UUID"))?;
            field(out, &bytes)
        }
        Wire::Bytea => field(out, a.as_binary::<i32>().value(row)),
        Wire::Date => {
            let d = a.as_primitive::<Date32Type>().value(row);
            let d = d.checked_sub(PG_EPOCH_DAYS).ok_or_else(|| {
                format!("the date {d} days from 1970 lies outside PostgreSQL's dates")
            })?;
            field(out, &d.to_be_bytes())
        }
        Wire::Timestamp => {
            let t = a.as_primitive::<TimestampMicrosecondType>().value(row);
            let t = t.checked_sub(PG_EPOCH_US).ok_or_else(|| {
                format!("the timestamp {t} µs from 1970 lies outside PostgreSQL's timestamps")
            })?;
            field(out, &t.to_be_bytes())
        }
        Wire::Numeric(_) if matches!(a.data_type(), DataType::Utf8) => {
            encode_numeric_text(a.as_string::<i32>().value(row), out)?
        }
        Wire::Numeric(_) => {
            let DataType::Decimal128(_, s) = a.data_type() else {
                return Err("numeric without a decimal value".into());
            };
            encode_numeric(a.as_primitive::<Decimal128Type>().value(row), *s, out)
        }
    }
    Ok(())
}

fn db_err(context: impl Into<String>) -> impl FnOnce(postgres::Error) -> ConnectorError {
    crate::postgres::pg_err(context)
}

/// A PostgreSQL target session.
pub struct PgTarget {
    client: Client,
    shown: String,
    notices: Arc<Mutex<Vec<String>>>,
    /// Per target table: its columns' names and how each is encoded.
    wires: HashMap<String, Vec<(String, Wire, String)>>,
    /// Whether the ledger table is known to exist (it is created by the
    /// first batch's transaction, so a delivery that fails before any row
    /// leaves the target without it).
    ledger_ready: bool,
}

/// The ledger's definition (PostgreSQL).
fn ledger_ddl() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
            migration_id text NOT NULL,
            partition_id text NOT NULL,
            batch_seq bigint NOT NULL,
            attempt integer NOT NULL,
            rows bigint NOT NULL,
            delivered_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (migration_id, partition_id, batch_seq)
        )"
    )
}

impl PgTarget {
    /// Connects (password, TLS and timeout as for a PostgreSQL source); the
    /// ledger table is created by the first batch's transaction.
    pub fn connect(url: &str, options: &SourceOptions) -> Result<Self> {
        Self::connect_in(url, options, "")
    }

    /// [`PgTarget::connect`], every write inside the schema `namespace`
    /// (created when absent; empty: the session's default).
    pub fn connect_in(url: &str, options: &SourceOptions, namespace: &str) -> Result<Self> {
        let notices = Arc::new(Mutex::new(Vec::new()));
        let sink = notices.clone();
        let client = crate::postgres::connect_client(url, options, move |n| {
            let mut v = sink.lock().unwrap_or_else(|p| p.into_inner());
            v.push(format!("{}: {}", n.severity(), n.message()));
        })?;
        let mut t = PgTarget {
            client,
            shown: sensei_runtime::secret::redact_url(url),
            notices,
            wires: HashMap::new(),
            ledger_ready: false,
        };
        if !namespace.is_empty() {
            t.client
                .batch_execute(&format!(
                    "CREATE SCHEMA IF NOT EXISTS {ns}; SET search_path TO {ns}",
                    ns = quote(namespace)
                ))
                .map_err(db_err(format!("entering target schema {namespace}")))?;
        }
        t.take_notices();
        Ok(t)
    }

    /// Checks that the server takes this user's connection, writing nothing
    /// (for the preflight and `sensei plan`).
    pub fn check(url: &str, options: &SourceOptions) -> Result<()> {
        crate::postgres::connect_client(url, options, |_| {}).map(|_| ())
    }

    fn take_notices(&self) -> Vec<String> {
        std::mem::take(&mut *self.notices.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Runs DDL as it is (the target schema file).
    pub fn apply_ddl(&mut self, ddl: &str) -> Result<()> {
        self.client.batch_execute(ddl).map_err(db_err(format!(
            "applying the target schema to {}",
            self.shown
        )))
    }

    /// Re-sync: deletes the table's rows and this migration's ledger rows
    /// for it, in one transaction; returns the rows deleted.
    pub fn clear_for_resync(&mut self, table: &str, migration_id: &str) -> Result<u64> {
        let ctx = format!("clearing {table} for --resync");
        let ledger = self.has_table(LEDGER_TABLE)?;
        let mut tx = self.client.transaction().map_err(db_err(ctx.clone()))?;
        let n = tx
            .execute(&format!("DELETE FROM {}", quote(table)), &[])
            .map_err(db_err(ctx.clone()))?;
        if ledger {
            let prefix = format!("{table}/");
            let len = prefix.chars().count() as i32;
            tx.execute(
                &format!("DELETE FROM {LEDGER_TABLE} WHERE migration_id = $1 AND substr(partition_id, 1, $2) = $3"),
                &[&migration_id, &len, &prefix],
            )
            .map_err(db_err(ctx.clone()))?;
        }
        tx.commit().map_err(db_err(ctx))?;
        Ok(n)
    }

    /// How many batches of `migration_id` the ledger holds (0 without a ledger).
    pub fn batches_delivered(&mut self, migration_id: &str) -> Result<u64> {
        if !self.has_table(LEDGER_TABLE)? {
            return Ok(0);
        }
        let row = self
            .client
            .query_one(
                &format!("SELECT count(*) FROM {LEDGER_TABLE} WHERE migration_id = $1"),
                &[&migration_id],
            )
            .map_err(db_err("reading the delivery ledger".to_string()))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// Whether a table exists (in the search path).
    pub fn has_table(&mut self, table: &str) -> Result<bool> {
        let row = self
            .client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&quote(table)])
            .map_err(db_err(format!("looking up table {table}")))?;
        Ok(row.get(0))
    }

    /// Creates a table mirroring `schema` (with `primary_key`) when absent.
    pub fn ensure_table(&mut self, t: &crate::target::NewTable<'_>) -> Result<()> {
        let (table, schema, primary_key, declared) = (t.name, t.schema, t.primary_key, t.declared);
        // Exact decimals keep an exact type: numeric(p,s) up to PostgreSQL's
        // 1000 digits, unconstrained numeric otherwise.
        let exact = |ps: Option<(u32, u32)>| match ps {
            Some((p, s)) if p <= 1000 => Some(format!("numeric({p},{s})")),
            _ => Some("numeric".to_string()),
        };
        let columns =
            crate::sqlite::table_columns(schema, primary_key, declared, quote, pg_type, exact);
        self.client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {} ({})",
                quote(table),
                columns
            ))
            .map_err(db_err(format!("creating target table {table}")))?;
        self.take_notices();
        Ok(())
    }

    fn wires(&mut self, table: &str) -> Result<Vec<(String, Wire, String)>> {
        if let Some(w) = self.wires.get(table) {
            return Ok(w.clone());
        }
        let rows = self
            .client
            .query(
                "SELECT a.attname::text, t.typname::text, format_type(a.atttypid, a.atttypmod)
                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
                 ORDER BY a.attnum",
                &[&quote(table)],
            )
            .map_err(db_err(format!(
                "reading the columns of target table {table}"
            )))?;
        if rows.is_empty() {
            return Err(ConnectorError::Database {
                context: format!("delivering into {table}"),
                message: format!("the target has no table {table}: create it, or let delivery create it (leave target.schema empty)"),
                transient: false,
            });
        }
        let mut out = Vec::new();
        for r in rows {
            let (name, typname, formatted): (String, String, String) =
                (r.get(0), r.get(1), r.get(2));
            let wire = Wire::of(&typname, &formatted).ok_or_else(|| ConnectorError::Database {
                context: format!("delivering into {table}"),
                message: format!(
                    "column {name} is {formatted}, which binary COPY does not write here; declare it as text, a number, a date or a timestamp type"
                ),
                transient: false,
            })?;
            out.push((name, wire, formatted));
        }
        self.wires.insert(table.to_string(), out.clone());
        Ok(out)
    }

    /// The first value of `a` that does not cast to `want`: its row (1-based)
    /// and the value as text, for an error a person can act on.
    fn first_uncastable(a: &ArrayRef, want: &DataType) -> Option<(String, String)> {
        let lenient = arrow::compute::cast(a, want).ok()?;
        let row = (0..a.len()).find(|&r| !a.is_null(r) && lenient.is_null(r))?;
        let shown = arrow::util::display::ArrayFormatter::try_new(a.as_ref(), &Default::default())
            .ok()
            .map(|f| f.value(row).to_string())
            .unwrap_or_default();
        Some(((row + 1).to_string(), format!("{shown:?}")))
    }

    /// Writes one batch and its ledger row in one transaction (see the module doc).
    pub fn write_batch(&mut self, batch: &RecordBatch, key: &BatchKey<'_>) -> Result<BatchAck> {
        let started = Instant::now();
        let ctx = key.context();
        let cols = self.cast_columns(batch, key)?;
        let buf = copy_buffer(batch, &cols, key)?;
        let mut tx = self.client.transaction().map_err(db_err(&ctx))?;
        if !self.ledger_ready {
            ensure_ledger(&mut tx, &ctx)?;
        }
        let seen = tx
            .query_opt(
                &format!("SELECT attempt FROM {LEDGER_TABLE} WHERE migration_id = $1 AND partition_id = $2 AND batch_seq = $3"),
                &[&key.migration, &key.partition, &(key.seq as i64)],
            )
            .map_err(db_err(&ctx))?;
        if seen.is_some() {
            tx.commit().map_err(db_err(&ctx))?;
            self.ledger_ready = true;
            return Ok(BatchAck::skipped(started, self.take_notices()));
        }
        let latest: Option<i32> = tx
            .query_one(
                &format!("SELECT max(attempt) FROM {LEDGER_TABLE} WHERE migration_id = $1 AND partition_id = $2"),
                &[&key.migration, &key.partition],
            )
            .map_err(db_err(&ctx))?
            .get(0);
        key.check_fence(latest.map(i64::from))?;
        let names = cols
            .iter()
            .map(|(n, _, _)| quote(n))
            .collect::<Vec<_>>()
            .join(", ");
        let mut w = tx
            .copy_in(&format!(
                "COPY {} ({names}) FROM STDIN (FORMAT binary)",
                quote(key.table)
            ))
            .map_err(db_err(&ctx))?;
        w.write_all(&buf).map_err(|e| ConnectorError::Database {
            context: ctx.clone(),
            message: e.to_string(),
            transient: true,
        })?;
        let rows = w.finish().map_err(db_err(&ctx))?;
        match tx.execute(
            &format!("INSERT INTO {LEDGER_TABLE} (migration_id, partition_id, batch_seq, attempt, rows) VALUES ($1, $2, $3, $4, $5)"),
            &[&key.migration, &key.partition, &(key.seq as i64), &(key.attempt as i32), &(rows as i64)],
        ) {
            Ok(_) => {}
            // Another attempt committed this batch meanwhile: ours rolls back whole.
            Err(e) if e.code().is_some_and(|c| c.code() == "23505") => {
                drop(tx);
                return Ok(BatchAck::skipped(started, self.take_notices()));
            }
            Err(e) => return Err(db_err(&ctx)(e)),
        }
        tx.commit().map_err(db_err(&ctx))?;
        self.ledger_ready = true;
        Ok(BatchAck::written(rows, started, self.take_notices()))
    }

    /// The batch's columns, by name, cast to what the target declares; a
    /// value that does not cast is refused, naming its column and row.
    fn cast_columns(
        &mut self,
        batch: &RecordBatch,
        key: &BatchKey<'_>,
    ) -> Result<Vec<(String, ArrayRef, Wire)>> {
        let wires = self.wires(key.table)?;
        let schema = batch.schema();
        let mut cols: Vec<(String, ArrayRef, Wire)> = Vec::new();
        for f in schema.fields() {
            let Some((_, wire, formatted)) = wires.iter().find(|(n, _, _)| n == f.name()) else {
                return Err(ConnectorError::Database {
                    context: key.context(),
                    message: format!(
                        "the target table has no column {}: add it, or map the column elsewhere",
                        f.name()
                    ),
                    transient: false,
                });
            };
            let want = wire.arrow(f.data_type());
            let a = batch.column(schema.index_of(f.name())?).clone();
            let a = if a.data_type() == &want {
                a
            } else {
                let strict = CastOptions {
                    safe: false,
                    ..Default::default()
                };
                arrow::compute::cast_with_options(&a, &want, &strict).map_err(|e| {
                    let (row, value) = Self::first_uncastable(&a, &want)
                        .unwrap_or_else(|| ("?".into(), e.to_string()));
                    ConnectorError::Value {
                        table: key.table.to_string(),
                        column: f.name().clone(),
                        row: format!("{row} of batch {} of partition {}", key.seq, key.partition),
                        value,
                        expected: formatted.to_string(),
                    }
                })?
            };
            cols.push((f.name().clone(), a, wire.clone()));
        }
        Ok(cols)
    }

    /// Drops the foreign keys declared on `tables` and returns them (table,
    /// constraint, definition), to be added back once every table is loaded:
    /// tables load in parallel, in no particular order.
    pub fn detach_foreign_keys(
        &mut self,
        tables: &[String],
    ) -> Result<Vec<(String, String, String)>> {
        let quoted: Vec<String> = tables.iter().map(|t| quote(t)).collect();
        let rows = self
            .client
            .query(
                "SELECT c.conrelid::regclass::text, c.conname::text, pg_get_constraintdef(c.oid)
                 FROM pg_constraint c
                 WHERE c.contype = 'f' AND c.conrelid = ANY (SELECT to_regclass(x) FROM unnest($1::text[]) x)
                 ORDER BY 1, 2",
                &[&quoted],
            )
            .map_err(db_err("reading the target's foreign keys"))?;
        let mut out = Vec::new();
        for r in rows {
            let (table, name, def): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            self.client
                .batch_execute(&format!(
                    "ALTER TABLE {table} DROP CONSTRAINT {}",
                    quote(&name)
                ))
                .map_err(db_err(format!("deferring foreign key {name} of {table}")))?;
            out.push((table, name, def));
        }
        Ok(out)
    }

    /// Drops the secondary indexes of `tables` (not those backing a primary
    /// key or a constraint) and returns them (table, index, definition), to be
    /// built once after the load rather than maintained row by row.
    pub fn detach_indexes(&mut self, tables: &[String]) -> Result<Vec<(String, String, String)>> {
        let quoted: Vec<String> = tables.iter().map(|t| quote(t)).collect();
        let rows = self
            .client
            .query(
                "SELECT i.indrelid::regclass::text, i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
                 FROM pg_index i
                 WHERE i.indrelid = ANY (SELECT to_regclass(x) FROM unnest($1::text[]) x)
                   AND NOT i.indisprimary
                   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
                 ORDER BY 1, 2",
                &[&quoted],
            )
            .map_err(db_err("reading the target's indexes"))?;
        let mut out = Vec::new();
        for r in rows {
            let (table, index, def): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            self.client
                .batch_execute(&format!("DROP INDEX {index}"))
                .map_err(db_err(format!("deferring index {index} of {table}")))?;
            out.push((table, index, def));
        }
        Ok(out)
    }

    /// Drops the primary and unique keys of `tables` (empty tables a staged
    /// delivery has just created) that no foreign key references and that
    /// are not deferrable (`USING INDEX` would not say so again), and
    /// returns them (table, constraint, the statements that add it back:
    /// its unique index built, then the key made of it):
    /// a key built once by sorting the loaded rows costs a fraction of one
    /// maintained row by row, which doubles a binary COPY's time.
    pub fn detach_keys(&mut self, tables: &[String]) -> Result<Vec<(String, String, String)>> {
        if tables.is_empty() {
            return Ok(Vec::new());
        }
        let quoted: Vec<String> = tables.iter().map(|t| quote(t)).collect();
        let rows = self
            .client
            .query(
                "SELECT c.conrelid::regclass::text, c.conname::text, pg_get_indexdef(c.conindid),
                        CASE c.contype WHEN 'p' THEN 'PRIMARY KEY' ELSE 'UNIQUE' END
                 FROM pg_constraint c
                 WHERE c.contype IN ('p', 'u') AND NOT c.condeferrable
                   AND c.conrelid = ANY (SELECT to_regclass(x) FROM unnest($1::text[]) x)
                   AND NOT EXISTS (SELECT 1 FROM pg_constraint f
                                   WHERE f.contype = 'f' AND f.conindid = c.conindid)
                 ORDER BY c.contype, 1, 2",
                &[&quoted],
            )
            .map_err(db_err("reading the target's keys"))?;
        let mut out = Vec::new();
        for r in rows {
            let (table, name, index, kind): (String, String, String, String) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            self.client
                .batch_execute(&format!(
                    "ALTER TABLE {table} DROP CONSTRAINT {}",
                    quote(&name)
                ))
                .map_err(db_err(format!("deferring key {name} of {table}")))?;
            // The index built first (under a lock that lets the table be read
            // back meanwhile), then the key made of it.
            let name_q = quote(&name);
            let add = format!(
                "{index}; ALTER TABLE {table} ADD CONSTRAINT {name_q} {kind} USING INDEX {name_q}"
            );
            out.push((table, name, add));
        }
        Ok(out)
    }

    /// Builds deferred indexes and keys; the ones that fail are returned
    /// with the reason.
    pub fn attach_indexes(&mut self, indexes: &[(String, String, String)]) -> Vec<String> {
        let mut failed = Vec::new();
        for (table, index, def) in indexes {
            if let Err(e) = self.client.batch_execute(def) {
                // Already there (a rerun after the indexes were built) is
                // fine; so is a key of `detach_keys`, whose index, named as
                // the key, is created first in the same transaction.
                if e.code().is_some_and(|c| c.code() == "42P07") {
                    continue;
                }
                let why = e
                    .as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| e.to_string());
                failed.push(format!("table {table}: index {index} ({def}): {why}"));
            }
        }
        failed
    }

    /// Adds foreign keys back (validating them against the loaded rows); the
    /// ones the rows break are returned with the server's reason.
    pub fn attach_foreign_keys(&mut self, keys: &[(String, String, String)]) -> Vec<String> {
        let mut broken = Vec::new();
        for (table, name, def) in keys {
            if let Err(e) = self.client.batch_execute(&format!(
                "ALTER TABLE {table} ADD CONSTRAINT {} {def}",
                quote(name)
            )) {
                let why = e
                    .as_db_error()
                    .map(|d| {
                        format!(
                            "{}{}",
                            d.message(),
                            d.detail().map(|x| format!(" ({x})")).unwrap_or_default()
                        )
                    })
                    .unwrap_or_else(|| e.to_string());
                // Already there (a rerun after the keys were restored) is fine.
                if e.code().is_some_and(|c| c.code() == "42710") {
                    continue;
                }
                broken.push(format!("table {table}: foreign key {name} {def}: {why}"));
            }
        }
        broken
    }

    /// Rows in a table.
    pub fn count(&mut self, table: &str) -> Result<u64> {
        let row = self
            .client
            .query_one(&format!("SELECT count(*) FROM {}", quote(table)), &[])
            .map_err(db_err(format!("counting {table}")))?;
        Ok(row.get::<_, i64>(0) as u64)
    }
}

/// The batch in PostgreSQL's binary COPY format.
fn copy_buffer(
    batch: &RecordBatch,
    cols: &[(String, ArrayRef, Wire)],
    key: &BatchKey<'_>,
) -> Result<Vec<u8>> {
    let mut buf: Vec<u8> = Vec::with_capacity(batch.get_array_memory_size() + 64);
    buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    buf.extend_from_slice(&0i32.to_be_bytes());
    buf.extend_from_slice(&0i32.to_be_bytes());
    for row in 0..batch.num_rows() {
        buf.extend_from_slice(&(cols.len() as i16).to_be_bytes());
        for (name, a, wire) in cols {
            if a.is_null(row) {
                buf.extend_from_slice(&(-1i32).to_be_bytes());
                continue;
            }
            encode_cell(a, row, wire, &mut buf).map_err(|why| ConnectorError::Value {
                table: key.table.to_string(),
                column: name.clone(),
                row: key.row(row),
                value: why,
                expected: "a value PostgreSQL can hold".into(),
            })?;
        }
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    Ok(buf)
}

/// Creates the ledger table when absent, in the first batch's transaction:
/// concurrent first batches take turns (an advisory lock for this
/// transaction) instead of racing on the catalog.
fn ensure_ledger(tx: &mut postgres::Transaction<'_>, ctx: &str) -> Result<()> {
    let exists: bool = tx
        .query_one(
            &format!("SELECT to_regclass('{LEDGER_TABLE}') IS NOT NULL"),
            &[],
        )
        .map_err(db_err(ctx))?
        .get(0);
    if !exists {
        tx.batch_execute(&format!(
            "SELECT pg_advisory_xact_lock(hashtext('{LEDGER_TABLE}')); {}",
            ledger_ddl()
        ))
        .map_err(db_err(format!("{ctx}: creating {LEDGER_TABLE}")))?;
    }
    Ok(())
}

impl crate::target::TargetEngine for PgTarget {
    fn apply_ddl(&mut self, ddl: &str) -> Result<()> {
        PgTarget::apply_ddl(self, ddl)
    }
    fn has_table(&mut self, table: &str) -> Result<bool> {
        PgTarget::has_table(self, table)
    }
    fn ensure_table(&mut self, table: &crate::target::NewTable<'_>) -> Result<()> {
        PgTarget::ensure_table(self, table)
    }
    fn write_batch(&mut self, batch: &RecordBatch, key: &BatchKey<'_>) -> Result<BatchAck> {
        PgTarget::write_batch(self, batch, key)
    }
    fn clear_for_resync(&mut self, table: &str, migration_id: &str) -> Result<u64> {
        PgTarget::clear_for_resync(self, table, migration_id)
    }
    fn batches_delivered(&mut self, migration_id: &str) -> Result<u64> {
        PgTarget::batches_delivered(self, migration_id)
    }
    fn staging_refused(&mut self, namespace: &str, tables: &[String]) -> Result<Option<String>> {
        PgTarget::staging_refused(self, namespace, tables)
    }
    fn begin_staging(&mut self, area: &crate::target::StagingArea, fresh: bool) -> Result<()> {
        PgTarget::begin_staging(self, &area.name, &area.stale_prefix, fresh)
    }
    fn publish(&mut self, area: &crate::target::StagingArea) -> Result<crate::target::Published> {
        PgTarget::publish(self, &area.name)
    }
    /// With the foreign keys of other new tables that reference it.
    fn drop_table(&mut self, table: &str) -> Result<()> {
        self.apply_ddl(&format!("DROP TABLE IF EXISTS {} CASCADE", quote(table)))
    }
    /// PostgreSQL enforces foreign keys row by row: tables loading in
    /// parallel would trip them, so they are added back after the load;
    /// secondary indexes, and the keys of fresh staged tables, are built
    /// once then, not maintained per row.
    fn detach_for_load(
        &mut self,
        tables: &[String],
        fresh: &[String],
    ) -> Result<(Deferred, Deferred)> {
        let foreign_keys = self.detach_foreign_keys(tables)?;
        let mut indexes = self.detach_keys(fresh)?;
        indexes.extend(self.detach_indexes(tables)?);
        Ok((foreign_keys, indexes))
    }
    /// Indexes first: validating a foreign key can use them.
    fn reattach(&mut self, foreign_keys: &Deferred, indexes: &Deferred) -> Vec<String> {
        let mut broken = self.attach_indexes(indexes);
        broken.extend(self.attach_foreign_keys(foreign_keys));
        broken
    }
    fn as_any(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_decimals_encode_as_their_exact_numeric() {
        let text = |t: &str| {
            let mut out = Vec::new();
            encode_numeric_text(t, &mut out).unwrap();
            out
        };
        for (t, v, s) in [
            ("1234.50", 123450i128, 2i8),
            ("-0.01", -1, 2),
            ("0.00", 0, 2),
            ("10000", 10000, 0),
            ("123456789012345678.123", 123456789012345678123, 3),
        ] {
            assert_eq!(text(t), numeric(v, s), "{t}");
        }
        // Past 38 digits: 12 base-10000 digits, weight 8, scale 10.
        let wide = text("12345678901234567890123456789012345.1234567890");
        assert_eq!(&wide[4..10], &[0, 12, 0, 8, 0, 0]);
        assert_eq!(&wide[10..12], &[0, 10]);
        assert_eq!(text("NaN")[8..10], [0xC0, 0x00]);
        let mut out = Vec::new();
        assert!(encode_numeric_text("12a", &mut out).is_err());
    }

    fn numeric(v: i128, s: i8) -> Vec<u8> {
        let mut out = Vec::new();
        encode_numeric(v, s, &mut out);
        out
    }

    #[test]
    fn numeric_digits_weight_sign_and_scale() {
        // 1234.5 (scale 2): digits [1234, 5000], weight 0, dscale 2.
        assert_eq!(
            numeric(123450, 2),
            [0, 0, 0, 12, 0, 2, 0, 0, 0, 0, 0, 2, 4, 210, 19, 136]
        );
        // -0.01: one digit 100 at weight -1, negative.
        assert_eq!(
            numeric(-1, 2),
            [0, 0, 0, 10, 0, 1, 255, 255, 0x40, 0, 0, 2, 0, 100]
        );
        // 0 and 10000 (trailing zero group dropped, weight 1).
        assert_eq!(numeric(0, 2), [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 2]);
        assert_eq!(
            numeric(10000, 0),
            [0, 0, 0, 10, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1]
        );
    }
}
