//! PostgreSQL: a read-only source extracting through binary `COPY`.
//!
//! Every session runs in a `REPEATABLE READ READ ONLY` transaction. The head
//! opens one, exports its snapshot (`pg_export_snapshot()`) and keeps it open
//! while the ingestion phase runs; every Scout imports it (`SET TRANSACTION
//! SNAPSHOT`), so all partitions of all tables are read at one instant.
//! Statements are built by Sensei and are only `SELECT`/`COPY (SELECT …)`;
//! [`PgSource::query_text`] refuses anything else before it reaches the
//! server, and the server refuses writes in a read-only transaction anyway.
//!
//! | PostgreSQL | Arrow | read as |
//! | --- | --- | --- |
//! | `smallint`, `integer`, `bigint` | Int16, Int32, Int64 | binary |
//! | `real`, `double precision` | Float32, Float64 | binary |
//! | `numeric(p,s)`, p ≤ 38 | Decimal128(p, s) | binary (base-10000 digits, exact) |
//! | `numeric` without precision, `money` | Utf8 | text (every digit kept) |
//! | `boolean` | Boolean | binary |
//! | `text`, `varchar(n)`, `char(n)`, `name`, `citext` | Utf8 | binary (UTF-8) |
//! | `bytea` | Binary | binary |
//! | `date` | Date32 | binary |
//! | `timestamp` | Timestamp(µs) | binary |
//! | `timestamptz` | Timestamp(µs, UTC) | binary |
//! | `uuid`, `json`, `jsonb`, `interval`, `time`, `inet`, enums, arrays, anything else | Utf8 | PostgreSQL's text form |
//! | a domain | as its base type | as its base type |
//!
//! Values without an Arrow counterpart are errors naming table, column, row
//! and value, never silent changes: `infinity`/`-infinity` dates and
//! timestamps, `NaN` in `numeric(p,s)`. `NaN` and `±Infinity` in `real` and
//! `double precision` are IEEE values and travel as such (a SQLite target
//! refuses NaN, which it would store as NULL).

use std::io::{BufReader, Read};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::RecordBatch;
use postgres::{Client, Config, NoTls};
use sensei_runtime::secret::redact_url;

use crate::batch::Batcher;
use crate::error::{ConnectorError, Result};
use crate::files::SourceOptions;
use crate::source::{KeyRange, Sink};
use crate::sqlite::quote;
use crate::table::{ColumnInfo, TableInfo};

/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_US: i64 = 946_684_800_000_000;

pub(crate) fn pg_err(context: impl Into<String>) -> impl FnOnce(postgres::Error) -> ConnectorError {
    let context = context.into();
    move |e| ConnectorError::Database {
        context,
        // The server's message, its detail, and where (a COPY names the line
        // and column of the first row it refused).
        message: e
            .as_db_error()
            .map(|d| {
                let mut m = d.message().to_string();
                if let Some(x) = d.detail() {
                    m.push_str(&format!(" ({x})"));
                }
                if let Some(w) = d.where_() {
                    m.push_str(&format!(" [{w}]"));
                }
                m
            })
            .unwrap_or_else(|| {
                // The client's own errors ("error connecting to server") say
                // what failed only in their source: a refused connection, a
                // name that does not resolve, a timeout.
                match std::error::Error::source(&e) {
                    Some(cause) => format!("{e}: {cause}"),
                    None => e.to_string(),
                }
            }),
        transient: e.as_db_error().is_none()
            || e.code().is_some_and(|c| {
                // connection exceptions, serialization failures and deadlocks,
                // the server shutting down or starting, too many connections
                c.code().starts_with("08")
                    || c.code().starts_with("40")
                    || matches!(c.code(), "57P01" | "57P02" | "57P03" | "53300")
            }),
    }
}

/// Opens a session (password from the URL, else the password file, else
/// `PGPASSWORD`; TLS per the options' mode); `on_notice` hears the server's
/// notices and warnings.
pub(crate) fn connect_client(
    url: &str,
    options: &SourceOptions,
    on_notice: impl Fn(postgres::error::DbError) + Send + Sync + 'static,
) -> Result<Client> {
    let shown = redact_url(url);
    let mut config: Config =
        url.parse()
            .map_err(|e: postgres::Error| ConnectorError::Unreadable {
                path: shown.clone(),
                message: format!("not a PostgreSQL URL: {e}"),
            })?;
    // `***` is what a stored (redacted) URL carries: the real password comes
    // from the secrets file or the environment, as with libpq.
    if config.get_password().is_none_or(|p| p == b"***") {
        if let Some(pw) = options.password("PGPASSWORD")? {
            config.password(pw);
        }
    }
    config
        .notice_callback(on_notice)
        .application_name("sensei")
        .connect_timeout(Duration::from_secs(options.connect_timeout_s.max(1)));
    // A server starting up or shutting down, or out of connections, is
    // transient (SQLSTATE classes as for any statement); a refused password is not.
    let failed = |e: postgres::Error| {
        let mut err = pg_err(format!("connecting to {shown}"))(e);
        if let ConnectorError::Database { message, .. } = &mut err {
            if message.contains("Connection refused") {
                message.push_str(
                    "; is the server running and listening on that host and port (listen_addresses, port, firewall)?",
                );
            }
        }
        err
    };
    let client = match options.tls()? {
        None => config
            .ssl_mode(postgres::config::SslMode::Disable)
            .connect(NoTls)
            .map_err(failed)?,
        Some(tls) => {
            config.ssl_mode(if options.ssl_mode == "prefer" {
                postgres::config::SslMode::Prefer
            } else {
                postgres::config::SslMode::Require
            });
            config
                .connect(postgres_native_tls::MakeTlsConnector::new(tls))
                .map_err(failed)?
        }
    };
    Ok(client)
}

/// A PostgreSQL source session.
pub struct PgSource {
    client: Client,
    partition_keys: std::collections::BTreeMap<String, String>,
}

/// Maps a PostgreSQL column (type name, `format_type` text) to Arrow.
pub fn arrow_type_for(typname: &str, formatted: &str) -> DataType {
    match typname {
        "int2" => DataType::Int16,
        "int4" => DataType::Int32,
        "int8" => DataType::Int64,
        "float4" => DataType::Float32,
        "float8" => DataType::Float64,
        "bool" => DataType::Boolean,
        "bytea" => DataType::Binary,
        "date" => DataType::Date32,
        "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "timestamptz" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "numeric" => {
            let params = formatted
                .split_once('(')
                .and_then(|(_, r)| r.split_once(')'))
                .and_then(|(inner, _)| inner.split_once(','))
                .and_then(|(p, s)| {
                    Some((p.trim().parse::<u8>().ok()?, s.trim().parse::<i8>().ok()?))
                });
            match params {
                Some((p, s)) if (1..=38).contains(&p) && (0..=p as i8).contains(&s) => {
                    DataType::Decimal128(p, s)
                }
                _ => DataType::Utf8,
            }
        }
        _ => DataType::Utf8,
    }
}

/// Whether a column's values are copied in binary as they are (else cast to text).
/// Catalog rows of user schemas only.
const USER: &str =
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'";
/// Catalog rows of objects no extension owns.
const NOT_EXTENSION: &str =
    "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = o.oid AND d.deptype = 'e')";

/// A relation's name as the source's tables are named: bare in `public`,
/// `schema.relation` elsewhere.
fn name(schema: &str, rel: &str) -> String {
    if schema == "public" {
        rel.to_string()
    } else {
        format!("{schema}.{rel}")
    }
}

fn raw_binary(c: &ColumnInfo) -> bool {
    let t = c.source_type.as_str();
    match c.arrow_type.as_str() {
        "Utf8" => t == "text" || t == "name" || t == "citext" || t.starts_with("character"),
        _ => true,
    }
}

impl PgSource {
    /// Connects (no TLS in this build). A password missing from the URL (or
    /// redacted to `***`) comes from `PGPASSWORD`, as with libpq.
    pub fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, &SourceOptions::default())
    }

    /// Connects with the options' password file, TLS mode and timeout. The
    /// password comes from the URL, else the password file, else `PGPASSWORD`.
    pub fn connect_with(url: &str, options: &SourceOptions) -> Result<Self> {
        let client = connect_client(url, options, |_| {})?;
        Ok(PgSource {
            client,
            partition_keys: options.partition_keys.clone(),
        })
    }

    /// Opens the read-only snapshot transaction; with `snapshot`, imports that
    /// exported snapshot so this session sees exactly what its exporter sees.
    pub fn begin(&mut self, snapshot: Option<&str>) -> Result<()> {
        self.client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(pg_err("starting a read-only transaction"))?;
        if let Some(s) = snapshot {
            if !s.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                return Err(ConnectorError::WriteRefused(format!(
                    "malformed snapshot id {s:?}"
                )));
            }
            self.client
                .batch_execute(&format!("SET TRANSACTION SNAPSHOT '{s}'"))
                .map_err(|e| ConnectorError::Database {
                    context: format!("importing source snapshot {s}"),
                    message: format!(
                        "{}; the snapshot is gone (the head that held it stopped during ingestion): rerun with --restart",
                        e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string())
                    ),
                    transient: false,
                })?;
        }
        Ok(())
    }

    /// Exports this session's snapshot for other sessions to import.
    pub fn export_snapshot(&mut self) -> Result<String> {
        let row = self
            .client
            .query_one("SELECT pg_export_snapshot()", &[])
            .map_err(pg_err("exporting the source snapshot"))?;
        Ok(row.get(0))
    }

    /// Runs a read-only query and returns its first value as text. Anything
    /// but `SELECT`/`WITH`/`SHOW` is refused before it reaches the server.
    pub fn query_text(&mut self, sql: &str) -> Result<Option<String>> {
        let head = sql.trim_start().to_ascii_uppercase();
        if !(head.starts_with("SELECT") || head.starts_with("WITH") || head.starts_with("SHOW")) {
            return Err(ConnectorError::WriteRefused(sql.chars().take(80).collect()));
        }
        let wrapped = format!("SELECT ({})::text", sql.trim().trim_end_matches(';'));
        let row = self
            .client
            .query_opt(&wrapped, &[])
            .map_err(pg_err("source query"))?;
        Ok(row.and_then(|r| r.get(0)))
    }

    /// Runs a statement as it is (for tests that prove the server refuses writes).
    #[doc(hidden)]
    pub fn raw_execute(&mut self, sql: &str) -> Result<()> {
        self.client.batch_execute(sql).map_err(pg_err("statement"))
    }

    /// Tables without any column (named as [`PgSource::tables`] names them).
    pub fn columnless_tables(&mut self) -> Result<Vec<String>> {
        let rows = self
            .client
            .query(
                "SELECT CASE WHEN n.nspname = 'public' THEN c.relname::text ELSE n.nspname || '.' || c.relname END
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                   AND n.nspname NOT LIKE 'pg_toast%' AND NOT c.relispartition
                   AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
                 ORDER BY 1",
                &[],
            )
            .map_err(pg_err("reading the source catalog"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// The user tables of every non-system schema. Tables of `public` keep
    /// their name; others are named `schema.table`. Tables without any
    /// column are left out (see [`PgSource::columnless_tables`]).
    pub fn tables(&mut self) -> Result<Vec<TableInfo>> {
        let rows = self
            .client
            .query(
                // A domain is read as its base type (binary COPY sends the
                // base type's form): its name alone would say nothing.
                "SELECT n.nspname::text, c.relname::text, a.attname::text,
                        format_type(COALESCE(NULLIF(t.typbasetype, 0), a.atttypid),
                                    CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END),
                        bt.typname::text, a.attnotnull,
                        COALESCE((SELECT k.n FROM pg_index i, unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
                                  WHERE i.indrelid = c.oid AND i.indisprimary AND k.attnum = a.attnum), 0)::int4
                 FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                 JOIN pg_type t ON t.oid = a.atttypid
                 JOIN pg_type bt ON bt.oid = COALESCE(NULLIF(t.typbasetype, 0), t.oid)
                 WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                   AND n.nspname NOT LIKE 'pg_toast%' AND NOT c.relispartition
                 ORDER BY 1, 2, a.attnum",
                &[],
            )
            .map_err(pg_err("reading the source catalog"))?;
        let mut tables: Vec<TableInfo> = Vec::new();
        for r in rows {
            let (schema, rel): (String, String) = (r.get(0), r.get(1));
            let name = name(&schema, &rel);
            let typname: String = r.get(4);
            let formatted: String = r.get(3);
            let pk: i32 = r.get(6);
            let col = ColumnInfo {
                name: r.get(2),
                arrow_type: arrow_type_for(&typname, &formatted).to_string(),
                source_type: formatted,
                nullable: !r.get::<_, bool>(5),
                primary_key: pk as u32,
            };
            match tables.last_mut() {
                Some(t) if t.name == name => t.columns.push(col),
                _ => tables.push(TableInfo {
                    name,
                    columns: vec![col],
                    rows: 0,
                    rowid_range: None,
                    qualified: Some(format!("{}.{}", quote(&schema), quote(&rel))),
                    range_column: None,
                    splits: None,
                    file: None,
                }),
            }
        }
        for t in &mut tables {
            let sql_name = t.qualified.clone().unwrap_or_else(|| quote(&t.name));
            let count: i64 = self
                .client
                .query_one(&format!("SELECT count(*) FROM {sql_name}"), &[])
                .map_err(pg_err(format!("counting rows of table {}", t.name)))?
                .get(0);
            t.rows = count as u64;
            // Partition on the configured column, else an integer single-column primary key.
            if let Some(key) = crate::files::partition_column(t, &self.partition_keys)? {
                let r = self
                    .client
                    .query_one(
                        &format!(
                            "SELECT min({k})::int8, max({k})::int8 FROM {sql_name}",
                            k = quote(&key)
                        ),
                        &[],
                    )
                    .map_err(pg_err(format!("reading the key range of table {}", t.name)))?;
                let (lo, hi): (Option<i64>, Option<i64>) = (r.get(0), r.get(1));
                t.rowid_range = lo.zip(hi);
                t.range_column = Some(key);
            }
        }
        Ok(tables)
    }

    /// Defaults, foreign keys, unique and check constraints, indexes, views,
    /// procedures and functions, and triggers of the non-system schemas
    /// (objects that extensions own are left out).
    pub fn catalog(&mut self, tables: &[TableInfo]) -> Result<crate::catalog::Catalog> {
        let mut catalog = crate::catalog::Catalog::of_tables(tables);
        self.catalog_defaults(&mut catalog)?;
        self.catalog_constraints(&mut catalog)?;
        self.catalog_indexes(&mut catalog)?;
        self.catalog_views(&mut catalog)?;
        self.catalog_routines(&mut catalog)?;
        self.catalog_triggers(&mut catalog)?;
        Ok(catalog)
    }

    /// The rows of one catalog query.
    fn catalog_rows(&mut self, sql: &str) -> Result<Vec<postgres::Row>> {
        self.client
            .query(sql, &[])
            .map_err(pg_err("reading the source catalog"))
    }

    fn catalog_defaults(&mut self, catalog: &mut crate::catalog::Catalog) -> Result<()> {
        for r in self.catalog_rows(&format!(
                    "SELECT n.nspname::text, c.relname::text, a.attname::text, pg_get_expr(d.adbin, d.adrelid)
                     FROM pg_attrdef d JOIN pg_class c ON c.oid = d.adrelid
                     JOIN pg_namespace n ON n.oid = c.relnamespace
                     JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
                     WHERE {USER}"
        ))? {
            if let Some(tc) = catalog.tables.get_mut(&name(r.get(0), r.get(1))) {
                tc.defaults.insert(r.get(2), r.get(3));
            }
        }
        Ok(())
    }

    fn catalog_constraints(&mut self, catalog: &mut crate::catalog::Catalog) -> Result<()> {
        use crate::catalog::*;
        for r in self.catalog_rows(&format!(
                    "SELECT n.nspname::text, c.relname::text, o.conname::text, o.contype::text,
                            pg_get_constraintdef(o.oid),
                            ARRAY(SELECT a.attname::text FROM unnest(o.conkey) WITH ORDINALITY k(num, ord)
                                  JOIN pg_attribute a ON a.attrelid = o.conrelid AND a.attnum = k.num ORDER BY k.ord),
                            fnsp.nspname::text, fc.relname::text,
                            ARRAY(SELECT a.attname::text FROM unnest(o.confkey) WITH ORDINALITY k(num, ord)
                                  JOIN pg_attribute a ON a.attrelid = o.confrelid AND a.attnum = k.num ORDER BY k.ord),
                            o.confdeltype::text, o.confupdtype::text
                     FROM pg_constraint o JOIN pg_class c ON c.oid = o.conrelid
                     JOIN pg_namespace n ON n.oid = c.relnamespace
                     LEFT JOIN pg_class fc ON fc.oid = o.confrelid
                     LEFT JOIN pg_namespace fnsp ON fnsp.oid = fc.relnamespace
                     WHERE {USER} AND o.contype IN ('f', 'u', 'c')
                     ORDER BY 1, 2, 3"
        ))? {
            let Some(tc) = catalog.tables.get_mut(&name(r.get(0), r.get(1))) else {
                continue;
            };
            let kind: String = r.get(3);
            let definition: String = r.get(4);
            let columns: Vec<String> = r.get(5);
            let action = |code: &str| {
                match code {
                    "a" => "NO ACTION",
                    "r" => "RESTRICT",
                    "c" => "CASCADE",
                    "n" => "SET NULL",
                    "d" => "SET DEFAULT",
                    _ => "",
                }
                .to_string()
            };
            match kind.as_str() {
                "f" => tc.foreign_keys.push(ForeignKey {
                    name: r.get(2),
                    columns,
                    references: name(
                        &r.get::<_, Option<String>>(6).unwrap_or_default(),
                        &r.get::<_, Option<String>>(7).unwrap_or_default(),
                    ),
                    referenced_columns: r.get(8),
                    on_delete: action(&r.get::<_, String>(9)),
                    on_update: action(&r.get::<_, String>(10)),
                }),
                "u" => tc.unique.push(Unique {
                    name: r.get(2),
                    columns,
                }),
                _ => tc.checks.push(Check {
                    name: r.get(2),
                    expression: definition
                        .strip_prefix("CHECK ")
                        .unwrap_or(&definition)
                        .to_string(),
                }),
            }
        }
        Ok(())
    }

    fn catalog_indexes(&mut self, catalog: &mut crate::catalog::Catalog) -> Result<()> {
        for r in self.catalog_rows(&format!(
                    "SELECT n.nspname::text, c.relname::text, i.relname::text, x.indisunique, x.indisprimary,
                            am.amname::text, pg_get_indexdef(x.indexrelid),
                            ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, true) FROM generate_series(1, x.indnkeyatts) k ORDER BY k)
                     FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid
                     JOIN pg_class i ON i.oid = x.indexrelid
                     JOIN pg_am am ON am.oid = i.relam
                     JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE {USER} ORDER BY 1, 2, 3"
        ))? {
            if let Some(tc) = catalog.tables.get_mut(&name(r.get(0), r.get(1))) {
                tc.indexes.push(crate::catalog::Index {
                    name: r.get(2),
                    unique: r.get(3),
                    primary: r.get(4),
                    method: r.get(5),
                    definition: r.get(6),
                    columns: r.get(7),
                });
            }
        }
        Ok(())
    }

    fn catalog_views(&mut self, catalog: &mut crate::catalog::Catalog) -> Result<()> {
        for r in self.catalog_rows(&format!(
            "SELECT n.nspname::text, o.relname::text, pg_get_viewdef(o.oid, true)
                     FROM pg_class o JOIN pg_namespace n ON n.oid = o.relnamespace
                     WHERE o.relkind IN ('v', 'm') AND {USER} AND {NOT_EXTENSION} ORDER BY 1, 2"
        ))? {
            catalog.views.push(crate::catalog::View {
                name: name(r.get(0), r.get(1)),
                definition: r.get::<_, Option<String>>(2).unwrap_or_default(),
            });
        }
        Ok(())
    }

    fn catalog_routines(&mut self, catalog: &mut crate::catalog::Catalog) -> Result<()> {
        for r in self.catalog_rows(&format!(
                    "SELECT n.nspname::text, o.proname::text, o.prokind::text, l.lanname::text,
                            pg_get_function_arguments(o.oid), coalesce(pg_get_function_result(o.oid), ''),
                            pg_get_functiondef(o.oid)
                     FROM pg_proc o JOIN pg_namespace n ON n.oid = o.pronamespace
                     JOIN pg_language l ON l.oid = o.prolang
                     WHERE o.prokind IN ('f', 'p') AND {USER} AND {NOT_EXTENSION} ORDER BY 1, 2"
        ))? {
            catalog.routines.push(crate::catalog::Routine {
                name: name(r.get(0), r.get(1)),
                kind: if r.get::<_, String>(2) == "p" {
                    "procedure".into()
                } else {
                    "function".into()
                },
                language: r.get(3),
                arguments: r.get(4),
                returns: r.get(5),
                definition: r.get(6),
            });
        }
        Ok(())
    }

    fn catalog_triggers(&mut self, catalog: &mut crate::catalog::Catalog) -> Result<()> {
        for r in self.catalog_rows(
                "SELECT trigger_name::text, event_object_schema::text, event_object_table::text,
                        action_timing::text, string_agg(event_manipulation::text, ' OR ' ORDER BY event_manipulation),
                        min(action_statement::text)
                 FROM information_schema.triggers
                 GROUP BY 1, 2, 3, 4 ORDER BY 2, 3, 1",
        )? {
            catalog.triggers.push(crate::catalog::Trigger {
                name: r.get(0),
                table: name(r.get(1), r.get(2)),
                timing: r.get(3),
                events: r.get(4),
                definition: r.get(5),
            });
        }
        Ok(())
    }

    fn select(t: &TableInfo) -> String {
        t.columns
            .iter()
            .map(|c| {
                if raw_binary(c) {
                    quote(&c.name)
                } else {
                    format!("{}::text", quote(&c.name))
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// About `n` rows spread over the table ([`crate::files::sample_select`]).
    pub fn sample(&mut self, t: &TableInfo, n: u64) -> Result<Vec<RecordBatch>> {
        let query = crate::files::sample_select(t, &Self::select(t), n, quote, |k, lo, step| {
            format!("({k}::int8 - {lo}) % {step} = 0")
        });
        let mut out = Vec::new();
        self.copy(t, &query, 8192, |b| {
            out.push(b);
            Ok(())
        })?;
        Ok(out)
    }

    fn copy(
        &mut self,
        t: &TableInfo,
        query: &str,
        batch_rows: usize,
        sink: impl FnMut(RecordBatch) -> Result<()>,
    ) -> Result<u64> {
        let ctx = format!("reading table {}", t.name);
        let reader = self
            .client
            .copy_out(&format!("COPY ({query}) TO STDOUT (FORMAT binary)"))
            .map_err(pg_err(&ctx))?;
        let mut r = BufReader::with_capacity(1 << 16, reader);
        let io = |e: std::io::Error| ConnectorError::Database {
            context: format!("reading table {}", t.name),
            message: e.to_string(),
            transient: true,
        };
        let mut header = [0u8; 19];
        r.read_exact(&mut header).map_err(io)?;
        if &header[..11] != b"PGCOPY\n\xff\r\n\0" {
            return Err(ConnectorError::Database {
                context: ctx,
                message: "not a binary COPY stream".into(),
                transient: false,
            });
        }
        let ext = u32::from_be_bytes([header[15], header[16], header[17], header[18]]) as usize;
        let mut skip = vec![0u8; ext];
        r.read_exact(&mut skip).map_err(io)?;
        let schema = Arc::new(t.schema().as_ref().clone());
        let mut batcher = Batcher::new(schema.clone(), batch_rows, sink);
        let types = batcher.types();
        let mut buf = Vec::new();
        loop {
            let mut n = [0u8; 2];
            r.read_exact(&mut n).map_err(io)?;
            let fields = i16::from_be_bytes(n);
            if fields == -1 {
                break;
            }
            for (i, dt) in types.iter().enumerate() {
                let mut len = [0u8; 4];
                r.read_exact(&mut len).map_err(io)?;
                let len = i32::from_be_bytes(len);
                let value = if len < 0 {
                    None
                } else {
                    buf.resize(len as usize, 0);
                    r.read_exact(&mut buf).map_err(io)?;
                    Some(buf.as_slice())
                };
                let total = batcher.total;
                append(&mut batcher.builders[i], dt, value).map_err(|refused| {
                    let (table, column) = (t.name.clone(), t.columns[i].name.clone());
                    match refused {
                        Refused::Mismatch { value, expected } => ConnectorError::Value {
                            table,
                            column,
                            row: format!("#{}", total + 1),
                            value,
                            expected,
                        },
                        Refused::OutOfRange { value, range } => ConnectorError::OutOfRange {
                            table,
                            column,
                            row: total + 1,
                            value,
                            range,
                            fix: "update such rows in the source (or migrate from a view that casts the column to text)",
                        },
                    }
                })?;
            }
            batcher.row_done()?;
        }
        batcher.close()
    }
}

fn be<const N: usize>(v: &[u8]) -> Option<[u8; N]> {
    v.try_into().ok()
}

/// Why a binary COPY field was not appended.
enum Refused {
    /// The bytes are not a value of the expected type.
    Mismatch { value: String, expected: String },
    /// A valid value the Arrow type cannot hold.
    OutOfRange { value: String, range: &'static str },
}

/// A timestamp (µs from PostgreSQL's epoch) past what Arrow's µs since 1970 holds.
fn timestamp_out_of_range(pg_us: i64) -> Refused {
    let days = pg_us.div_euclid(86_400_000_000) + i64::from(PG_EPOCH_DAYS);
    let (y, m, d) = crate::convert::civil_from_days(days);
    Refused::OutOfRange {
        value: format!("{y:04}-{m:02}-{d:02} (UTC)"),
        range:
            "the timestamps Arrow holds in microseconds since 1970 (years 290308 BC to 294247 AD)",
    }
}

/// A `numeric` in PostgreSQL's binary form (digit count, weight, sign,
/// display scale, then base-10000 digits, the first worth 10000^weight) as
/// an integer of `scale` decimal places; None for NaN and infinities, a
/// value with non-zero digits past `scale`, or one beyond i128.
fn numeric_binary(x: &[u8], scale: i8) -> Option<i128> {
    let word = |i: usize| be::<2>(x.get(i..i + 2)?).map(u16::from_be_bytes);
    let (n, weight, sign) = (word(0)? as i16, word(2)? as i16, word(4)?);
    if n < 0 || x.len() != 8 + 2 * n as usize || (sign != 0 && sign != 0x4000) {
        return None;
    }
    let scale = i32::from(scale.max(0));
    let mut v: i128 = 0;
    for i in 0..n as usize {
        let d = i128::from(word(8 + 2 * i)?);
        // This digit's power of ten in the scaled integer.
        let e = 4 * (i32::from(weight) - i as i32) + scale;
        if e >= 0 {
            if d != 0 {
                let p = 10i128.checked_pow(e as u32)?;
                v = v.checked_add(d.checked_mul(p)?)?;
            }
        } else if e > -4 {
            let p = 10i128.pow((-e) as u32);
            if d % p != 0 {
                return None;
            }
            v = v.checked_add(d / p)?;
        } else if d != 0 {
            return None;
        }
    }
    Some(if sign == 0x4000 { -v } else { v })
}

/// A text field as it came (None: not UTF-8).
fn utf8(x: &[u8]) -> Option<&str> {
    std::str::from_utf8(x).ok()
}

/// Appends one binary COPY field.
fn append(
    b: &mut Box<dyn ArrayBuilder>,
    dt: &DataType,
    v: Option<&[u8]>,
) -> std::result::Result<(), Refused> {
    let bad = |v: &[u8]| {
        if let (DataType::Timestamp(..), Some(t)) = (dt, be::<8>(v).map(i64::from_be_bytes)) {
            if t != i64::MAX && t != i64::MIN && t.checked_add(PG_EPOCH_US).is_none() {
                return timestamp_out_of_range(t);
            }
        }
        if let DataType::Decimal128(..) = dt {
            let value = match be::<2>(v.get(4..6).unwrap_or_default()).map(u16::from_be_bytes) {
                Some(0xC000) => "NaN".to_string(),
                Some(0xD000) => "Infinity".to_string(),
                Some(0xF000) => "-Infinity".to_string(),
                _ => "a number outside the column's precision and scale".to_string(),
            };
            return Refused::Mismatch {
                value,
                expected: format!("{dt} (Arrow decimals hold no NaN or infinity; update such rows to NULL in the source, or migrate from a copy that does)"),
            };
        }
        let infinite = match dt {
            DataType::Date32 => be::<4>(v).map(i32::from_be_bytes).and_then(|d| match d {
                i32::MAX => Some("infinity"),
                i32::MIN => Some("-infinity"),
                _ => None,
            }),
            DataType::Timestamp(..) => be::<8>(v).map(i64::from_be_bytes).and_then(|t| match t {
                i64::MAX => Some("infinity"),
                i64::MIN => Some("-infinity"),
                _ => None,
            }),
            _ => None,
        };
        match infinite {
            Some(word) => Refused::Mismatch {
                value: word.to_string(),
                expected: format!("{dt} (Arrow has no infinite dates; update such rows to NULL or a sentinel such as 9999-12-31 in the source, or migrate from a copy that does)"),
            },
            None => Refused::Mismatch {
                value: format!("{:?}", String::from_utf8_lossy(&v[..v.len().min(40)])),
                expected: dt.to_string(),
            },
        }
    };
    macro_rules! put {
        ($builder:ty, $conv:expr) => {{
            let b = b
                .as_any_mut()
                .downcast_mut::<$builder>()
                .ok_or_else(|| Refused::Mismatch {
                    value: String::new(),
                    expected: dt.to_string(),
                })?;
            match v {
                None => b.append_null(),
                Some(x) => b.append_value($conv(x).ok_or_else(|| bad(x))?),
            }
        }};
    }
    match dt {
        DataType::Int16 => put!(Int16Builder, |x: &[u8]| be::<2>(x).map(i16::from_be_bytes)),
        DataType::Int32 => put!(Int32Builder, |x: &[u8]| be::<4>(x).map(i32::from_be_bytes)),
        DataType::Int64 => put!(Int64Builder, |x: &[u8]| be::<8>(x).map(i64::from_be_bytes)),
        DataType::Float32 => put!(Float32Builder, |x: &[u8]| be::<4>(x)
            .map(f32::from_be_bytes)),
        DataType::Float64 => put!(Float64Builder, |x: &[u8]| be::<8>(x)
            .map(f64::from_be_bytes)),
        DataType::Boolean => put!(BooleanBuilder, |x: &[u8]| x.first().map(|b| *b != 0)),
        DataType::Binary => put!(BinaryBuilder, Some::<&[u8]>),
        DataType::Date32 => put!(Date32Builder, |x: &[u8]| be::<4>(x)
            .map(i32::from_be_bytes)
            .filter(|d| *d != i32::MAX && *d != i32::MIN)
            .and_then(|d| d.checked_add(PG_EPOCH_DAYS))),
        DataType::Timestamp(..) => put!(TimestampMicrosecondBuilder, |x: &[u8]| be::<8>(x)
            .map(i64::from_be_bytes)
            .filter(|t| *t != i64::MAX && *t != i64::MIN)
            .and_then(|t| t.checked_add(PG_EPOCH_US))),
        DataType::Decimal128(_, s) => {
            let s = *s;
            put!(Decimal128Builder, |x: &[u8]| numeric_binary(x, s))
        }
        _ => put!(StringBuilder, utf8),
    }
    Ok(())
}

impl crate::source::SourceEngine for PgSource {
    fn tables(&mut self) -> Result<Vec<TableInfo>> {
        PgSource::tables(self)
    }
    /// The rows whose key lies in `range`, when given, in key order.
    fn read(&mut self, t: &TableInfo, range: KeyRange, rows: usize, sink: Sink) -> Result<u64> {
        let query = crate::files::range_select(t, &Self::select(t), range, quote);
        self.copy(t, &query, rows, sink)
    }
    fn sample(&mut self, table: &TableInfo, n: u64) -> Result<Vec<RecordBatch>> {
        PgSource::sample(self, table, n)
    }
    fn catalog(&mut self, tables: &[TableInfo]) -> Result<crate::catalog::Catalog> {
        PgSource::catalog(self, tables)
    }
    fn export_snapshot(&mut self) -> Result<Option<String>> {
        PgSource::export_snapshot(self).map(Some)
    }
    fn columnless_tables(&mut self) -> Result<Vec<String>> {
        PgSource::columnless_tables(self)
    }
    fn as_any(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The binary `numeric` the target writes, without its length word.
    fn wire(v: i128, scale: i8) -> Vec<u8> {
        let mut out = Vec::new();
        crate::pg_target::encode_numeric(v, scale, &mut out);
        out.split_off(4)
    }

    #[test]
    fn binary_numerics_read_back_exactly_at_the_columns_scale() {
        for (v, s) in [
            (0i128, 2i8),
            (123450, 2),
            (-1, 2),
            (10000, 0),
            (-99_999_999_999_999_999_999_999_999_999_999_999, 4),
            (123456789012345678123, 3),
            (5, 7),
            (i128::from(i64::MAX), 0),
        ] {
            assert_eq!(numeric_binary(&wire(v, s), s), Some(v), "{v} scale {s}");
        }
        // Read at a wider scale: the same number, scaled.
        assert_eq!(numeric_binary(&wire(12345, 2), 4), Some(1_234_500));
        // Digits past the column's scale are refused, trailing zeros are not.
        assert_eq!(numeric_binary(&wire(12345, 3), 2), None);
        assert_eq!(numeric_binary(&wire(12340, 3), 2), Some(1234));
        // 1.5 as PostgreSQL sends it: one digit 1, weight 0, then 5000.
        let one_and_a_half = [0, 2, 0, 0, 0, 0, 0, 1, 0, 1, 0x13, 0x88];
        assert_eq!(numeric_binary(&one_and_a_half, 2), Some(150));
        // 10^40: beyond i128 at scale 2.
        let huge = [0, 1, 0, 10, 0, 0, 0, 0, 0, 1];
        assert_eq!(numeric_binary(&huge, 2), None);
        // NaN, infinities and a truncated field.
        for sign in [0xC000u16, 0xD000, 0xF000] {
            let [a, b] = sign.to_be_bytes();
            assert_eq!(numeric_binary(&[0, 0, 0, 0, a, b, 0, 0], 2), None);
        }
        assert_eq!(numeric_binary(&one_and_a_half[..10], 2), None);
    }

    #[test]
    fn the_largest_postgres_timestamp_is_out_of_arrows_range_and_named() {
        // PostgreSQL's largest timestamp, past Arrow's microsecond range.
        let pg_max_us = 9_223_371_331_200_000_000_i64 - 1; // END_TIMESTAMP - 1: 294276-12-31 23:59:59.999999
        let days = pg_max_us.div_euclid(86_400_000_000) + i64::from(PG_EPOCH_DAYS);
        assert_eq!(crate::convert::civil_from_days(days), (294_276, 12, 31));
        assert!(pg_max_us.checked_add(PG_EPOCH_US).is_none());
        match timestamp_out_of_range(pg_max_us) {
            Refused::OutOfRange { value, .. } => assert_eq!(value, "294276-12-31 (UTC)"),
            Refused::Mismatch { .. } => panic!("not out of range"),
        }
    }
}
