//! MySQL and MariaDB: a read-only source streaming rows over the binary
//! protocol (prepared statements): integers, floats and dates arrive as
//! numbers and go straight into Arrow builders; text, decimals and bytes
//! are taken from the row's bytes without a copy per value. `time`
//! columns are read as the server's text (`CAST(.. AS CHAR)`), so that
//! their fractional digits are the declared ones.
//!
//! Each session sets `time_zone = '+00:00'` and `NAMES utf8mb4` (the server
//! converts columns declared in legacy character sets such as latin1 to
//! UTF-8), then runs `START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY`.
//! MySQL cannot share one snapshot between sessions. By default
//! (`source.mysql_consistency = "lock"`) the head holds a global read lock
//! ([`MySqlSource::hold_read_lock`]) from discovery until every partition is
//! read, so all readers see the same data while writers wait, as mydumper
//! does; with `"session"` every partition is consistent in itself only. The
//! manifest's `consistency` says which.
//! [`MySqlSource::query_text`] refuses anything but `SELECT`/`SHOW` before it
//! reaches the server, and the server refuses writes in a read-only transaction.
//!
//! | MySQL / MariaDB | Arrow |
//! | --- | --- |
//! | `tinyint(1)`, `bool` | Boolean |
//! | `tinyint`, `smallint`, `year` | Int16 (unsigned `smallint`: Int32) |
//! | `mediumint`, `int` | Int32 (unsigned: Int64) |
//! | `bigint` | Int64 (unsigned: Decimal128(20, 0)) |
//! | `float`, `double` | Float32, Float64 |
//! | `decimal(p,s)`, p ≤ 38 | Decimal128(p, s) |
//! | `date` | Date32 |
//! | `datetime`, `timestamp` | Timestamp(µs), Timestamp(µs, UTC) |
//! | `bit(n)`, n ≤ 63 | Int64 |
//! | `binary`, `varbinary`, `*blob` | Binary |
//! | `char`, `varchar`, `*text`, `enum`, `set`, `json`, `time`, anything else | Utf8 |
//!
//! Text columns in a legacy character set (`latin1`, `cp1251`, ...) have their
//! bytes checked at discovery on up to 10,000 non-ASCII values: bytes that are
//! valid UTF-8 (an application wrote UTF-8 through a latin1 connection) are
//! read as UTF-8 and the column is marked `(holds UTF-8)`; bytes that decode
//! plausibly in the declared set are converted by the server; a column whose
//! bytes fit neither (confidence below `source.encoding_min_confidence`) is
//! refused with sample bytes.
//!
//! Zero dates (`0000-00-00`, `0000-00-00 00:00:00`) become NULL in nullable
//! columns and are an error naming table, column and row in NOT NULL ones.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::RecordBatch;
use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder};
use sensei_runtime::secret::redact_url;

use crate::batch::Batcher;
use crate::convert::{parse_date_days, parse_decimal, parse_timestamp_micros};
use crate::error::{ConnectorError, Result};
use crate::files::SourceOptions;
use crate::source::{KeyRange, Sink};
use crate::table::{ColumnInfo, TableInfo};

pub(crate) fn my_err(context: impl Into<String>) -> impl FnOnce(mysql::Error) -> ConnectorError {
    let context = context.into();
    move |e| {
        // Lock wait timeout, deadlock, too many connections, server gone or
        // lost, shutdown in progress, and a table altered under a
        // consistent snapshot ("please retry transaction"): a retry may pass.
        let transient = matches!(e, mysql::Error::IoError(_) | mysql::Error::DriverError(_))
            || matches!(&e, mysql::Error::MySqlError(m) if matches!(m.code, 1205 | 1213 | 1040 | 2006 | 2013 | 1053 | 1412));
        ConnectorError::Database {
            context,
            message: e.to_string(),
            transient,
        }
    }
}

/// Quotes a MySQL identifier.
pub use crate::ident::mysql as quote;

/// Maps a MySQL `COLUMN_TYPE` (e.g. `int(10) unsigned`, `decimal(12,2)`) to Arrow.
pub fn arrow_type_for(column_type: &str) -> DataType {
    let t = column_type.to_ascii_lowercase();
    let base = t.split(['(', ' ']).next().unwrap_or("");
    let unsigned = t.contains("unsigned");
    match base {
        "tinyint" if t.starts_with("tinyint(1)") => DataType::Boolean,
        "bool" | "boolean" => DataType::Boolean,
        "tinyint" | "year" => DataType::Int16,
        "smallint" if unsigned => DataType::Int32,
        "smallint" => DataType::Int16,
        "mediumint" | "int" | "integer" if unsigned => DataType::Int64,
        "mediumint" | "int" | "integer" => DataType::Int32,
        "bigint" if unsigned => DataType::Decimal128(20, 0),
        "bigint" => DataType::Int64,
        "float" => DataType::Float32,
        "double" | "real" => DataType::Float64,
        "decimal" | "numeric" => {
            let params = t
                .split_once('(')
                .and_then(|(_, r)| r.split_once(')'))
                .and_then(|(inner, _)| {
                    let (p, s) = inner.split_once(',').unwrap_or((inner, "0"));
                    Some((p.trim().parse::<u8>().ok()?, s.trim().parse::<i8>().ok()?))
                });
            match params {
                Some((p, s)) if (1..=38).contains(&p) => DataType::Decimal128(p, s),
                _ => DataType::Utf8,
            }
        }
        "date" => DataType::Date32,
        "datetime" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "bit" => DataType::Int64,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            DataType::Binary
        }
        _ => DataType::Utf8,
    }
}

/// Tables the server estimates at this many rows or more are not counted
/// at discovery (see [`MySqlSource::tables`]).
pub const ESTIMATED_ABOVE: u64 = 1_000_000;

/// A MySQL or MariaDB source session.
pub struct MySqlSource {
    conn: Conn,
    database: String,
    partition_keys: std::collections::BTreeMap<String, String>,
    min_confidence: f64,
    /// Values changed on the way in since the last read began (per column,
    /// per kind of change), for the manifest and the receipt.
    changes: crate::source::Changes,
}

/// The encoding of a MySQL character set other than UTF-8 (MySQL's `latin1`
/// is windows-1252); None for UTF-8, binary and ASCII.
fn legacy_charset(charset: &str) -> Option<&'static encoding_rs::Encoding> {
    let label = match charset {
        "latin1" => "windows-1252",
        "latin2" => "iso-8859-2",
        "latin5" => "iso-8859-9",
        "latin7" => "iso-8859-13",
        "cp1250" => "windows-1250",
        "cp1251" => "windows-1251",
        "cp1256" => "windows-1256",
        "cp1257" => "windows-1257",
        "cp866" => "ibm866",
        "greek" => "iso-8859-7",
        "hebrew" => "iso-8859-8",
        "koi8r" => "koi8-r",
        "koi8u" => "koi8-u",
        "sjis" | "cp932" => "shift_jis",
        "ujis" | "eucjpms" => "euc-jp",
        "gbk" | "gb2312" | "gb18030" => "gbk",
        "big5" => "big5",
        "euckr" => "euc-kr",
        "tis620" => "windows-874",
        _ => return None,
    };
    encoding_rs::Encoding::for_label(label.as_bytes())
}

impl MySqlSource {
    /// Connects with default options (password from the URL or `MYSQL_PWD`).
    pub fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, &SourceOptions::default())
    }

    /// The session itself (for the target, which writes).
    pub(crate) fn into_conn(self) -> Conn {
        self.conn
    }

    /// Connects with the options' password file, TLS mode and timeout. The
    /// password comes from the URL, else the password file, else `MYSQL_PWD`
    /// (as with the mysql client). `prefer` falls back to a plain connection
    /// when the server offers no TLS; `require` and `verify-full` do not.
    pub fn connect_with(url: &str, options: &SourceOptions) -> Result<Self> {
        let shown = redact_url(url);
        let url = url.replacen("mariadb://", "mysql://", 1);
        let opts = Opts::from_url(&url).map_err(|e| ConnectorError::Unreadable {
            path: shown.clone(),
            message: format!("not a MySQL URL: {e}"),
        })?;
        let database =
            opts.get_db_name()
                .map(str::to_string)
                .ok_or_else(|| ConnectorError::Unreadable {
                    path: shown.clone(),
                    message: "the URL names no database (mysql://user@host/DATABASE)".into(),
                })?;
        let mut builder = OptsBuilder::from_opts(opts.clone()).tcp_connect_timeout(Some(
            std::time::Duration::from_secs(options.connect_timeout_s.max(1)),
        ));
        if opts.get_pass().is_none_or(|p| p == "***") {
            if let Some(pw) = options.password("MYSQL_PWD")? {
                builder = builder.pass(Some(pw));
            }
        }
        options.tls()?; // validates ssl_mode
        let connect = |b: OptsBuilder| {
            Conn::new(b).map_err(|e| ConnectorError::Database {
                context: format!("connecting to {shown}"),
                message: match &e {
                    mysql::Error::DriverError(mysql::DriverError::TlsNotSupported) => format!(
                        "{e}: the server offers no TLS and source.ssl_mode = {:?} requires it",
                        options.ssl_mode
                    ),
                    _ => e.to_string(),
                },
                transient: matches!(e, mysql::Error::IoError(_)),
            })
        };
        let ssl = mysql::SslOpts::default()
            .with_danger_accept_invalid_certs(options.ssl_mode != "verify-full")
            .with_danger_skip_domain_validation(options.ssl_mode != "verify-full");
        let conn = match options.ssl_mode.as_str() {
            "disable" => connect(builder)?,
            // Any failure with TLS (none offered, a handshake problem) retries in plain.
            "prefer" => match Conn::new(builder.clone().ssl_opts(Some(ssl))) {
                Ok(c) => c,
                Err(_) => connect(builder)?,
            },
            _ => connect(builder.ssl_opts(Some(ssl)))?,
        };
        Ok(MySqlSource {
            conn,
            database,
            partition_keys: options.partition_keys.clone(),
            min_confidence: options.min_confidence,
            changes: Default::default(),
        })
    }

    /// Starts the session's read-only consistent-snapshot transaction.
    pub fn begin(&mut self) -> Result<()> {
        for stmt in [
            "SET NAMES utf8mb4",
            "SET time_zone = '+00:00'",
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
        ] {
            self.conn
                .query_drop(stmt)
                .map_err(my_err("starting a read-only transaction"))?;
        }
        Ok(())
    }

    /// Holds a global read lock (`FLUSH TABLES WITH READ LOCK`) until this
    /// session ends, so that every other session's consistent snapshot,
    /// started meanwhile, sees the same data: MySQL cannot share one snapshot
    /// between sessions, and this is how parallel readers agree. Writers on
    /// the source wait until the lock goes. Needs the RELOAD privilege.
    pub fn hold_read_lock(&mut self) -> Result<()> {
        // FLUSH commits the open transaction implicitly: lock, then begin again.
        self.conn
            .query_drop("FLUSH TABLES WITH READ LOCK")
            .map_err(|e| ConnectorError::Database {
                context: "taking the global read lock that keeps parallel readers consistent".into(),
                message: format!(
                    "{e}; grant the RELOAD privilege to the source user, or set source.mysql_consistency = \"session\" (each partition then reads its own snapshot)"
                ),
                transient: false,
            })?;
        self.begin()
    }

    /// Runs a read-only query and returns its first value as text; anything
    /// but `SELECT`/`SHOW` is refused before it reaches the server.
    pub fn query_text(&mut self, sql: &str) -> Result<Option<String>> {
        let head = sql.trim_start().to_ascii_uppercase();
        if !(head.starts_with("SELECT") || head.starts_with("SHOW")) {
            return Err(ConnectorError::WriteRefused(sql.chars().take(80).collect()));
        }
        self.conn
            .query_first::<Option<String>, _>(sql)
            .map(Option::flatten)
            .map_err(my_err("source query"))
    }

    /// Runs a statement as it is (for tests that prove the server refuses writes).
    #[doc(hidden)]
    pub fn raw_execute(&mut self, sql: &str) -> Result<()> {
        self.conn.query_drop(sql).map_err(my_err("statement"))
    }

    /// The base tables of the URL's database, with their rows: counted, or
    /// the server's estimate for a table of [`ESTIMATED_ABOVE`] rows or more.
    pub fn tables(&mut self) -> Result<Vec<TableInfo>> {
        let rows: Vec<(String, String, String, String, u32, String)> = self
            .conn
            .exec(
                "SELECT c.TABLE_NAME, c.COLUMN_NAME, c.COLUMN_TYPE, c.IS_NULLABLE,
                        COALESCE(k.ORDINAL_POSITION, 0), COALESCE(c.CHARACTER_SET_NAME, '')
                 FROM information_schema.COLUMNS c
                 JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
                 LEFT JOIN information_schema.KEY_COLUMN_USAGE k ON k.TABLE_SCHEMA = c.TABLE_SCHEMA
                      AND k.TABLE_NAME = c.TABLE_NAME AND k.COLUMN_NAME = c.COLUMN_NAME AND k.CONSTRAINT_NAME = 'PRIMARY'
                 WHERE c.TABLE_SCHEMA = ? AND t.TABLE_TYPE = 'BASE TABLE'
                 ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION",
                (self.database.clone(),),
            )
            .map_err(my_err("reading the source catalog"))?;
        let mut tables: Vec<TableInfo> = Vec::new();
        for (table, column, column_type, nullable, pk, charset) in rows {
            let arrow_type = arrow_type_for(&column_type).to_string();
            // Text in a legacy character set says so: its bytes are checked below.
            let source_type = if legacy_charset(&charset).is_some() && arrow_type == "Utf8" {
                format!("{column_type} CHARACTER SET {charset}")
            } else {
                column_type
            };
            let col = ColumnInfo {
                name: column,
                arrow_type,
                source_type,
                nullable: nullable == "YES",
                primary_key: pk,
            };
            match tables.last_mut() {
                Some(t) if t.name == table => t.columns.push(col),
                _ => tables.push(TableInfo {
                    qualified: Some(format!("{}.{}", quote(&self.database), quote(&table))),
                    name: table,
                    columns: vec![col],
                    rows: 0,
                    rowid_range: None,
                    range_column: None,
                    splits: None,
                    file: None,
                }),
            }
        }
        // InnoDB counts rows by reading an index whole: about a second per
        // five million rows, on the head, before any partition starts. A
        // table the server estimates at ESTIMATED_ABOVE rows or more takes
        // the estimate: the count only sizes key ranges (the manifest's
        // counts are the rows read).
        let estimates: std::collections::HashMap<String, u64> = self
            .conn
            .exec_map(
                "SELECT TABLE_NAME, COALESCE(TABLE_ROWS, 0) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
                (self.database.clone(),),
                |(name, rows): (String, u64)| (name, rows),
            )
            .map_err(my_err("reading the tables' row estimates"))?
            .into_iter()
            .collect();
        for t in &mut tables {
            let sql_name = t.qualified.clone().unwrap_or_else(|| quote(&t.name));
            t.rows = match estimates.get(&t.name) {
                Some(&n) if n >= ESTIMATED_ABOVE => n,
                _ => {
                    let count: Option<u64> = self
                        .conn
                        .query_first(format!("SELECT COUNT(*) FROM {sql_name}"))
                        .map_err(my_err(format!("counting rows of table {}", t.name)))?;
                    count.unwrap_or(0)
                }
            };
            self.check_encodings(t)?;
            if let Some(key) = crate::files::partition_column(t, &self.partition_keys)? {
                let r: Option<(Option<i64>, Option<i64>)> = self
                    .conn
                    .query_first(format!(
                        "SELECT MIN({k}), MAX({k}) FROM {sql_name}",
                        k = quote(&key)
                    ))
                    .map_err(my_err(format!("reading the key range of table {}", t.name)))?;
                t.rowid_range = r.and_then(|(a, b)| a.zip(b));
                t.range_column = Some(key);
            }
        }
        Ok(tables)
    }

    /// Defaults, foreign keys, unique and check constraints, indexes, views,
    /// procedures and functions, and triggers of the URL's database.
    pub fn catalog(&mut self, tables: &[TableInfo]) -> Result<crate::catalog::Catalog> {
        let mut catalog = crate::catalog::Catalog::of_tables(tables);
        self.catalog_keys(&mut catalog)?;
        self.catalog_checks(&mut catalog)?;
        self.catalog_objects(&mut catalog)?;
        Ok(catalog)
    }

    /// The rows of one catalog query on the URL's database (its one
    /// parameter), each value as text (NULL as empty).
    fn catalog_rows(&mut self, sql: &str) -> Result<Vec<Vec<String>>> {
        let out: Vec<mysql::Row> = self
            .conn
            .exec(sql, (self.database.clone(),))
            .map_err(my_err("reading the source catalog"))?;
        Ok(out
            .into_iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| match r.as_ref(i) {
                        Some(mysql::Value::NULL) | None => String::new(),
                        Some(mysql::Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
                        Some(v) => v.as_sql(true).trim_matches('\'').to_string(),
                    })
                    .collect()
            })
            .collect())
    }

    /// Foreign keys, unique constraints and indexes, one row per column.
    fn catalog_keys(&mut self, catalog: &mut crate::catalog::Catalog) -> Result<()> {
        use crate::catalog::*;
        let fks = self.catalog_rows(
            "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME,
                    r.DELETE_RULE, r.UPDATE_RULE
             FROM information_schema.KEY_COLUMN_USAGE k
             JOIN information_schema.REFERENTIAL_CONSTRAINTS r
               ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME AND r.TABLE_NAME = k.TABLE_NAME
             WHERE k.TABLE_SCHEMA = ? AND k.REFERENCED_TABLE_NAME IS NOT NULL
             ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
        )?;
        let uniques = self.catalog_rows(
            "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME
             FROM information_schema.TABLE_CONSTRAINTS c
             JOIN information_schema.KEY_COLUMN_USAGE k
               ON k.CONSTRAINT_SCHEMA = c.CONSTRAINT_SCHEMA AND k.CONSTRAINT_NAME = c.CONSTRAINT_NAME AND k.TABLE_NAME = c.TABLE_NAME
             WHERE c.TABLE_SCHEMA = ? AND c.CONSTRAINT_TYPE = 'UNIQUE'
             ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
        )?;
        let indexes = self.catalog_rows(
            "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COALESCE(COLUMN_NAME, '<expression>'), INDEX_TYPE
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ?
             ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
        )?;
        for r in fks {
            let Some(tc) = catalog.tables.get_mut(&r[0]) else {
                continue;
            };
            match tc.foreign_keys.last_mut() {
                Some(fk) if fk.name == r[1] => {
                    fk.columns.push(r[2].clone());
                    fk.referenced_columns.push(r[4].clone());
                }
                _ => tc.foreign_keys.push(ForeignKey {
                    name: r[1].clone(),
                    columns: vec![r[2].clone()],
                    references: r[3].clone(),
                    referenced_columns: vec![r[4].clone()],
                    on_delete: r[5].clone(),
                    on_update: r[6].clone(),
                }),
            }
        }
        for r in uniques {
            let Some(tc) = catalog.tables.get_mut(&r[0]) else {
                continue;
            };
            match tc.unique.last_mut() {
                Some(u) if u.name == r[1] => u.columns.push(r[2].clone()),
                _ => tc.unique.push(Unique {
                    name: r[1].clone(),
                    columns: vec![r[2].clone()],
                }),
            }
        }
        for r in indexes {
            let Some(tc) = catalog.tables.get_mut(&r[0]) else {
                continue;
            };
            match tc.indexes.last_mut() {
                Some(ix) if ix.name == r[1] => ix.columns.push(r[3].clone()),
                _ => tc.indexes.push(Index {
                    name: r[1].clone(),
                    columns: vec![r[3].clone()],
                    unique: r[2] == "0",
                    primary: r[1] == "PRIMARY",
                    method: r[4].to_ascii_lowercase(),
                    definition: String::new(),
                }),
            }
        }
        Ok(())
    }

    /// Column defaults and check constraints.
    fn catalog_checks(&mut self, catalog: &mut crate::catalog::Catalog) -> Result<()> {
        let defaults = self.catalog_rows(
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_DEFAULT FROM information_schema.COLUMNS
             WHERE TABLE_SCHEMA = ? AND COLUMN_DEFAULT IS NOT NULL",
        )?;
        let checks = self.catalog_rows(
            "SELECT TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
             WHERE CONSTRAINT_SCHEMA = ? ORDER BY TABLE_NAME, CONSTRAINT_NAME",
        )?;
        for r in defaults {
            if let Some(tc) = catalog.tables.get_mut(&r[0]) {
                tc.defaults.insert(r[1].clone(), r[2].clone());
            }
        }
        for r in checks {
            if let Some(tc) = catalog.tables.get_mut(&r[0]) {
                tc.checks.push(crate::catalog::Check {
                    name: r[1].clone(),
                    expression: r[2].clone(),
                });
            }
        }
        Ok(())
    }

    /// Views, routines and triggers.
    fn catalog_objects(&mut self, catalog: &mut crate::catalog::Catalog) -> Result<()> {
        use crate::catalog::*;
        let views = self.catalog_rows(
            "SELECT TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
        )?;
        let routines = self.catalog_rows(
            "SELECT r.ROUTINE_NAME, r.ROUTINE_TYPE, r.DTD_IDENTIFIER, r.ROUTINE_DEFINITION,
                    (SELECT GROUP_CONCAT(CONCAT_WS(' ', p.PARAMETER_MODE, p.PARAMETER_NAME, p.DTD_IDENTIFIER) ORDER BY p.ORDINAL_POSITION SEPARATOR ', ')
                     FROM information_schema.PARAMETERS p
                     WHERE p.SPECIFIC_SCHEMA = r.ROUTINE_SCHEMA AND p.SPECIFIC_NAME = r.SPECIFIC_NAME AND p.ORDINAL_POSITION > 0)
             FROM information_schema.ROUTINES r WHERE r.ROUTINE_SCHEMA = ? ORDER BY r.ROUTINE_NAME",
        )?;
        let triggers = self.catalog_rows(
            "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_STATEMENT
             FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY TRIGGER_NAME",
        )?;
        catalog.views = views
            .into_iter()
            .map(|mut r| View {
                definition: r.swap_remove(1),
                name: r.swap_remove(0),
            })
            .collect();
        catalog.routines = routines
            .into_iter()
            .map(|r| Routine {
                name: r[0].clone(),
                kind: r[1].to_ascii_lowercase(),
                language: "sql".into(),
                arguments: r[4].clone(),
                returns: r[2].clone(),
                definition: r[3].clone(),
            })
            .collect();
        catalog.triggers = triggers
            .into_iter()
            .map(|r| Trigger {
                name: r[0].clone(),
                table: r[1].clone(),
                timing: r[2].clone(),
                events: r[3].clone(),
                definition: r[4].clone(),
            })
            .collect();
        Ok(())
    }

    /// Checks the bytes of each legacy-charset text column against its
    /// declaration (see [`crate::encoding::Detector::finish_declared`]) on up
    /// to 10,000 non-ASCII values: a column holding UTF-8 is marked
    /// `(holds UTF-8)` and read as such; one whose bytes fit neither is refused.
    fn check_encodings(&mut self, t: &mut TableInfo) -> Result<()> {
        let sql_name = t.qualified.clone().unwrap_or_else(|| quote(&t.name));
        for c in &mut t.columns {
            let Some(charset) = c
                .source_type
                .rsplit_once(" CHARACTER SET ")
                .map(|(_, cs)| cs.to_string())
            else {
                continue;
            };
            let Some(declared) = legacy_charset(&charset) else {
                continue;
            };
            let values: Vec<Option<Vec<u8>>> = self
                .conn
                .query(format!(
                    "SELECT CAST({k} AS BINARY) FROM {sql_name} WHERE HEX(CAST({k} AS BINARY)) REGEXP '^(..)*[89A-F]' LIMIT 10000",
                    k = quote(&c.name)
                ))
                .map_err(my_err(format!("sampling the bytes of {}.{}", t.name, c.name)))?;
            let mut detector = crate::encoding::Detector::new();
            for v in values.iter().flatten() {
                detector.feed(v);
                detector.feed(b"\n");
            }
            let d = detector.finish_declared(declared);
            if d.confidence < self.min_confidence {
                return Err(ConnectorError::Encoding {
                    what: format!("table {}, column {} (declared {charset})", t.name, c.name),
                    encoding: d.encoding.name().to_string(),
                    confidence: d.confidence,
                    minimum: self.min_confidence,
                    samples: d.describe_samples().replace("line ", "value "),
                });
            }
            if d.encoding == encoding_rs::UTF_8 && d.evidence_words > 0 {
                c.source_type.push_str(" (holds UTF-8)");
            }
        }
        Ok(())
    }

    fn select(t: &TableInfo) -> String {
        t.columns
            .iter()
            .map(|c| {
                if c.source_type.ends_with("(holds UTF-8)") {
                    // The bytes are UTF-8 whatever the column declares: no conversion.
                    format!(
                        "CONVERT(CAST({k} AS BINARY) USING utf8mb4) AS {k}",
                        k = quote(&c.name)
                    )
                } else if c.source_type.to_ascii_lowercase().starts_with("bit") {
                    format!("CAST({k} AS UNSIGNED) AS {k}", k = quote(&c.name))
                } else if is_time(&c.source_type) {
                    // Binary `time` values carry no declared precision.
                    format!("CAST({k} AS CHAR) AS {k}", k = quote(&c.name))
                } else {
                    quote(&c.name)
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The values changed on the way in by the last read, taken.
    pub fn take_changes(&mut self) -> crate::source::Changes {
        std::mem::take(&mut self.changes)
    }

    /// About `n` rows spread over the table ([`crate::files::sample_select`]).
    pub fn sample(&mut self, t: &TableInfo, n: u64) -> Result<Vec<RecordBatch>> {
        let query = crate::files::sample_select(t, &Self::select(t), n, quote, |k, lo, step| {
            format!("MOD({k} - {lo}, {step}) = 0")
        });
        let mut out = Vec::new();
        self.stream(t, &query, 8192, |b| {
            out.push(b);
            Ok(())
        })?;
        Ok(out)
    }

    fn stream(
        &mut self,
        t: &TableInfo,
        query: &str,
        rows: usize,
        sink: impl FnMut(RecordBatch) -> Result<()>,
    ) -> Result<u64> {
        let ctx = format!("reading table {}", t.name);
        let schema = Arc::new(t.schema().as_ref().clone());
        let mut batcher = Batcher::new(schema.clone(), rows, sink);
        let types = batcher.types();
        // The binary protocol (a prepared statement) streams rows as the
        // server sends them: memory stays bounded by one batch whatever the
        // table's size, and numbers and dates arrive as numbers, not text.
        // Values changed on the way in, per column position.
        let mut changed = vec![0u64; types.len()];
        let result = self.conn.exec_iter(query, ()).map_err(my_err(&ctx))?;
        for row in result {
            let row = row.map_err(my_err(&ctx))?;
            let total = batcher.total;
            for (i, dt) in types.iter().enumerate() {
                let v = row.as_ref(i).unwrap_or(&mysql::Value::NULL);
                let nullable = t.columns[i].nullable;
                let zero = append_value(&mut batcher.builders[i], dt, v, nullable).map_err(
                    |(value, expected)| ConnectorError::Value {
                        table: t.name.clone(),
                        column: t.columns[i].name.clone(),
                        row: format!("#{}", total + 1),
                        value,
                        expected,
                    },
                )?;
                if zero {
                    changed[i] += 1;
                }
            }
            batcher.row_done()?;
        }
        crate::source::add_changes(&mut self.changes, t, &changed, ZERO_DATE_AS_NULL);
        batcher.close()
    }
}

/// Whether a `COLUMN_TYPE` is `time` (with or without precision).
fn is_time(column_type: &str) -> bool {
    let t = column_type.to_ascii_lowercase();
    t == "time" || t.starts_with("time(")
}

fn is_zero_date(s: &str) -> bool {
    s.starts_with("0000-00-00")
}

/// Appends one text-protocol value.
/// A MySQL zero date read as NULL: the one value this reader changes.
pub const ZERO_DATE_AS_NULL: &str = "zero date 0000-00-00 read as NULL";

/// A zero date: NULL in a nullable column (true: changed on the way in), an
/// error in a NOT NULL one.
fn zero_date(
    b: &mut Box<dyn ArrayBuilder>,
    dt: &DataType,
    nullable: bool,
) -> std::result::Result<bool, (String, String)> {
    if !nullable {
        return Err((
            "0000-00-00 (a MySQL zero date) in a NOT NULL column".into(),
            format!("{dt}; make the column nullable or fix the rows"),
        ));
    }
    let done = match dt {
        DataType::Date32 => b
            .as_any_mut()
            .downcast_mut::<Date32Builder>()
            .map(|x| x.append_null()),
        _ => b
            .as_any_mut()
            .downcast_mut::<TimestampMicrosecondBuilder>()
            .map(|x| x.append_null()),
    };
    done.ok_or_else(|| (String::new(), dt.to_string()))?;
    Ok(true)
}

/// Days since the epoch of a binary-protocol date, if it is a real one.
fn binary_days(y: u16, m: u8, d: u8) -> Option<i32> {
    if !(1..=12).contains(&m) || d == 0 {
        return None;
    }
    let days = crate::convert::days_from_civil(i32::from(y), u32::from(m), u32::from(d));
    // A day past the month's end comes back as another date.
    (crate::convert::civil_from_days(i64::from(days)) == (i64::from(y), u32::from(m), u32::from(d)))
        .then_some(days)
}

/// The text form of a binary-protocol value for a text column (the forms
/// the text protocol would have sent).
fn value_text(v: &mysql::Value) -> String {
    use mysql::Value;
    let frac = |us: u32| {
        if us == 0 {
            String::new()
        } else {
            format!(".{us:06}")
        }
    };
    match v {
        Value::NULL => String::new(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Double(d) => d.to_string(),
        Value::Date(y, mo, d, h, mi, s, us) => {
            format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}{}", frac(*us))
        }
        Value::Time(neg, days, h, mi, s, us) => format!(
            "{}{:02}:{mi:02}:{s:02}{}",
            if *neg { "-" } else { "" },
            days * 24 + u32::from(*h),
            frac(*us)
        ),
    }
}

/// Appends one binary-protocol value; true when it changed on the way in (a
/// zero date read as NULL). Numbers and dates are taken as they come;
/// text, decimals and anything sent as bytes go through [`append_text`].
fn append_value(
    b: &mut Box<dyn ArrayBuilder>,
    dt: &DataType,
    v: &mysql::Value,
    nullable: bool,
) -> std::result::Result<bool, (String, String)> {
    use mysql::Value;
    let wrong = || (value_text(v), dt.to_string());
    macro_rules! put {
        ($builder:ty, $val:expr) => {{
            let val = $val.ok_or_else(wrong)?;
            b.as_any_mut()
                .downcast_mut::<$builder>()
                .ok_or_else(|| (String::new(), dt.to_string()))?
                .append_value(val);
            Ok(false)
        }};
    }
    let int = match v {
        Value::Int(i) => Some(i128::from(*i)),
        Value::UInt(u) => Some(i128::from(*u)),
        _ => None,
    };
    match (dt, v) {
        (_, Value::NULL) => append_text(b, dt, None, nullable),
        (_, Value::Bytes(x)) => append_text(b, dt, Some(x), nullable),
        (DataType::Boolean, _) if int.is_some() => put!(BooleanBuilder, int.map(|n| n != 0)),
        (DataType::Int16, _) if int.is_some() => {
            put!(Int16Builder, int.and_then(|n| i16::try_from(n).ok()))
        }
        (DataType::Int32, _) if int.is_some() => {
            put!(Int32Builder, int.and_then(|n| i32::try_from(n).ok()))
        }
        (DataType::Int64, _) if int.is_some() => {
            put!(Int64Builder, int.and_then(|n| i64::try_from(n).ok()))
        }
        (DataType::Decimal128(p, s), _) if int.is_some() && *s >= 0 => put!(
            Decimal128Builder,
            int.and_then(|n| n.checked_mul(10i128.checked_pow(*s as u32)?))
                .filter(|n| n.unsigned_abs() < 10u128.pow(u32::from(*p)))
        ),
        (DataType::Float32, Value::Float(f)) => put!(Float32Builder, Some(*f)),
        (DataType::Float64, Value::Double(d)) => put!(Float64Builder, Some(*d)),
        (DataType::Float64, Value::Float(f)) => put!(Float64Builder, Some(f64::from(*f))),
        (DataType::Date32 | DataType::Timestamp(..), Value::Date(0, 0, 0, ..)) => {
            zero_date(b, dt, nullable)
        }
        (DataType::Date32, Value::Date(y, m, d, ..)) => {
            put!(Date32Builder, binary_days(*y, *m, *d))
        }
        (DataType::Timestamp(..), Value::Date(y, m, d, h, mi, s, us)) => put!(
            TimestampMicrosecondBuilder,
            binary_days(*y, *m, *d)
                .filter(|_| *h < 24 && *mi < 60 && *s < 61 && *us < 1_000_000)
                .map(|days| {
                    i64::from(days) * 86_400_000_000
                        + ((i64::from(*h) * 60 + i64::from(*mi)) * 60 + i64::from(*s)) * 1_000_000
                        + i64::from(*us)
                })
        ),
        (DataType::Utf8, _) => put!(StringBuilder, Some(value_text(v))),
        _ => Err(wrong()),
    }
}

/// Appends one text-protocol value; true when it changed on the way in (a
/// zero date read as NULL).
fn append_text(
    b: &mut Box<dyn ArrayBuilder>,
    dt: &DataType,
    v: Option<&[u8]>,
    nullable: bool,
) -> std::result::Result<bool, (String, String)> {
    fn shown(v: &[u8]) -> String {
        format!("{:?}", String::from_utf8_lossy(&v[..v.len().min(40)]))
    }
    fn text(v: &[u8]) -> std::result::Result<&str, (String, String)> {
        std::str::from_utf8(v).map_err(|_| (shown(v), "UTF-8 text".to_string()))
    }
    macro_rules! put {
        ($builder:ty, $conv:expr) => {{
            let bb = b
                .as_any_mut()
                .downcast_mut::<$builder>()
                .ok_or_else(|| (String::new(), dt.to_string()))?;
            match v {
                None => bb.append_null(),
                Some(x) => {
                    let s = text(x)?;
                    match $conv(s) {
                        Some(val) => bb.append_value(val),
                        None => return Err((shown(x), dt.to_string())),
                    }
                }
            }
        }};
    }
    match dt {
        DataType::Boolean => put!(BooleanBuilder, |s: &str| s
            .parse::<i64>()
            .ok()
            .map(|n| n != 0)),
        DataType::Int16 => put!(Int16Builder, |s: &str| s.parse::<i16>().ok()),
        DataType::Int32 => put!(Int32Builder, |s: &str| s.parse::<i32>().ok()),
        DataType::Int64 => put!(Int64Builder, |s: &str| s.parse::<i64>().ok()),
        DataType::Float32 => put!(Float32Builder, |s: &str| s.parse::<f32>().ok()),
        DataType::Float64 => put!(Float64Builder, |s: &str| s.parse::<f64>().ok()),
        DataType::Decimal128(_, scale) => {
            let scale = *scale;
            put!(Decimal128Builder, |s: &str| parse_decimal(s, scale))
        }
        DataType::Date32 | DataType::Timestamp(..) => {
            let zero = v
                .and_then(|x| std::str::from_utf8(x).ok())
                .is_some_and(is_zero_date);
            if zero {
                return zero_date(b, dt, nullable);
            }
            if let DataType::Date32 = dt {
                put!(Date32Builder, parse_date_days)
            } else {
                put!(TimestampMicrosecondBuilder, parse_timestamp_micros)
            }
        }
        DataType::Binary => {
            let bb = b
                .as_any_mut()
                .downcast_mut::<BinaryBuilder>()
                .ok_or_else(|| (String::new(), dt.to_string()))?;
            match v {
                None => bb.append_null(),
                Some(x) => bb.append_value(x),
            }
        }
        _ => {
            let bb = b
                .as_any_mut()
                .downcast_mut::<StringBuilder>()
                .ok_or_else(|| (String::new(), dt.to_string()))?;
            match v {
                None => bb.append_null(),
                Some(x) => bb.append_value(text(x)?),
            }
        }
    }
    Ok(false)
}

impl crate::source::SourceEngine for MySqlSource {
    fn tables(&mut self) -> Result<Vec<TableInfo>> {
        MySqlSource::tables(self)
    }
    /// The rows whose key lies in `range`, when given, in key order.
    fn read(&mut self, t: &TableInfo, range: KeyRange, rows: usize, sink: Sink) -> Result<u64> {
        let query = crate::files::range_select(t, &Self::select(t), range, quote);
        self.changes.clear();
        self.stream(t, &query, rows, sink)
    }
    fn sample(&mut self, table: &TableInfo, n: u64) -> Result<Vec<RecordBatch>> {
        MySqlSource::sample(self, table, n)
    }
    fn catalog(&mut self, tables: &[TableInfo]) -> Result<crate::catalog::Catalog> {
        MySqlSource::catalog(self, tables)
    }
    /// The global read lock when `wanted` (`source.mysql_consistency =
    /// "lock"`); without it each session reads its own snapshot.
    fn hold_read_lock(&mut self, wanted: bool) -> Result<bool> {
        if wanted {
            MySqlSource::hold_read_lock(self)?;
        }
        Ok(wanted)
    }
    fn take_changes(&mut self) -> crate::source::Changes {
        MySqlSource::take_changes(self)
    }
    fn as_any(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, ArrayRef};
    use mysql::Value;

    /// Appends `values` to a builder of `dt`; the array, or the first error.
    fn column(
        dt: &DataType,
        nullable: bool,
        values: &[Value],
    ) -> std::result::Result<(ArrayRef, usize), (String, String)> {
        let mut b = arrow::array::make_builder(dt, values.len());
        let mut changed = 0;
        for v in values {
            if append_value(&mut b, dt, v, nullable)? {
                changed += 1;
            }
        }
        Ok((b.finish(), changed))
    }

    #[test]
    fn binary_numbers_and_dates_land_as_they_are() {
        let (a, _) = column(&DataType::Int16, true, &[Value::Int(-5), Value::NULL]).unwrap();
        let a = a
            .as_any()
            .downcast_ref::<arrow::array::Int16Array>()
            .unwrap();
        assert_eq!((a.value(0), a.is_null(1)), (-5, true));
        // An unsigned bigint's full range as Decimal128(20, 0).
        let (a, _) = column(&DataType::Decimal128(20, 0), true, &[Value::UInt(u64::MAX)]).unwrap();
        let a = a
            .as_any()
            .downcast_ref::<arrow::array::Decimal128Array>()
            .unwrap();
        assert_eq!(a.value(0), i128::from(u64::MAX));
        let (a, _) = column(
            &DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
            &[Value::Date(2019, 3, 12, 10, 11, 12, 123_456)],
        )
        .unwrap();
        let a = a
            .as_any()
            .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(
            Some(a.value(0)),
            parse_timestamp_micros("2019-03-12 10:11:12.123456")
        );
        let (a, _) = column(
            &DataType::Date32,
            true,
            &[Value::Date(1984, 3, 12, 0, 0, 0, 0)],
        )
        .unwrap();
        let a = a
            .as_any()
            .downcast_ref::<arrow::array::Date32Array>()
            .unwrap();
        assert_eq!(Some(a.value(0)), parse_date_days("1984-03-12"));
        // Text and decimals come as bytes, parsed as the text protocol's were.
        let (a, _) = column(
            &DataType::Decimal128(12, 3),
            true,
            &[Value::Bytes(b"1234.500".to_vec())],
        )
        .unwrap();
        let a = a
            .as_any()
            .downcast_ref::<arrow::array::Decimal128Array>()
            .unwrap();
        assert_eq!(a.value(0), 1_234_500);
        let (a, _) = column(
            &DataType::Utf8,
            true,
            &[Value::Bytes("vé".as_bytes().to_vec()), Value::Int(7)],
        )
        .unwrap();
        let a = a
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        assert_eq!((a.value(0), a.value(1)), ("vé", "7"));
    }

    #[test]
    fn binary_values_that_do_not_fit_are_refused_and_zero_dates_counted() {
        let err = column(&DataType::Int16, true, &[Value::Int(70_000)]).unwrap_err();
        assert_eq!(err, ("70000".to_string(), "Int16".to_string()));
        // 30 February is no date.
        assert!(column(
            &DataType::Date32,
            true,
            &[Value::Date(2020, 2, 30, 0, 0, 0, 0)]
        )
        .is_err());
        let (a, changed) =
            column(&DataType::Date32, true, &[Value::Date(0, 0, 0, 0, 0, 0, 0)]).unwrap();
        assert_eq!((a.null_count(), changed), (1, 1));
        let err = column(
            &DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
            &[Value::Date(0, 0, 0, 0, 0, 0, 0)],
        )
        .unwrap_err();
        assert!(err.0.contains("zero date"), "{err:?}");
        assert_eq!(
            value_text(&Value::Time(true, 34, 22, 59, 58, 500_000)),
            "-838:59:58.500000"
        );
    }
}
