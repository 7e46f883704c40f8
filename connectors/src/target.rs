//! One handle over every target engine, so delivery need not know which one
//! it writes: SQLite files, PostgreSQL and MySQL/MariaDB databases, Parquet folders.

use std::collections::BTreeMap;

use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;

use crate::batch::{BatchAck, BatchKey};
use crate::error::{ConnectorError, Result};
use crate::files::SourceOptions;
use crate::mysql_target::MySqlTarget;
use crate::parquet_target::ParquetTarget;
use crate::pg_target::PgTarget;
use crate::sqlite::SqliteTarget;
use crate::url::{parse, Location};

/// What a mirrored table keeps of its source besides columns and primary
/// key: unique constraints `(name, columns)`, secondary indexes `(name,
/// columns, unique)` and foreign keys, in target names.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MirrorExtras {
    /// Unique constraints.
    pub unique: Vec<(String, Vec<String>)>,
    /// Secondary indexes.
    pub indexes: Vec<(String, Vec<String>, bool)>,
    /// Foreign keys.
    pub foreign_keys: Vec<crate::catalog::ForeignKey>,
}

/// What a mirrored column's source declared beyond its Arrow type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Declared {
    /// A text width the source enforced: `VARCHAR(n)`.
    Width(u32),
    /// An exact decimal carried as text (wider than Arrow's 38 digits, or
    /// declared without a precision): (precision, scale) when declared.
    Exact(Option<(u32, u32)>),
}

/// Constraints or indexes set aside for a load, to be put back after it:
/// (table, name, definition).
pub type Deferred = Vec<(String, String, String)>;

/// A table to create when absent: its name, the Arrow schema it mirrors,
/// its primary key, and what the source declared of its text columns.
#[derive(Debug, Clone, Copy)]
pub struct NewTable<'a> {
    /// The table's name.
    pub name: &'a str,
    /// The columns.
    pub schema: &'a Schema,
    /// Primary key columns (empty: none).
    pub primary_key: &'a [String],
    /// Declared widths and exact decimals, by column.
    pub declared: &'a BTreeMap<String, Declared>,
}

/// Where a staged delivery loads its rows before publication: a schema of
/// the target database (PostgreSQL), a database of the target server
/// (MySQL/MariaDB) or a file beside the target file (SQLite), named after the migration and the
/// transformation output it loads, so a rerun of the same output resumes
/// into it and an earlier run's area is recognised as stale. Whether a
/// delivery is staged is decided when it is planned
/// ([`TargetEngine::staging_refused`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StagingArea {
    /// The area's name.
    pub name: String,
    /// What every area of the same migration's name starts with.
    pub stale_prefix: String,
}

impl StagingArea {
    /// The staging area a delivery of `migration_id` into the target
    /// schema `namespace` would use when the target at `url` is an engine
    /// that can stage (None: it is written directly, so delivery waits for
    /// the certificate); `run_key` names the loaded output (the
    /// transformation checkpoint). Named after the migration and the
    /// namespace, two deliveries into one database never take each other's
    /// area for stale.
    pub fn of(
        url: &str,
        migration_id: &str,
        namespace: &str,
        run_key: &str,
    ) -> Result<Option<StagingArea>> {
        Ok(match Self::engine_stages(url)? {
            true => {
                let hex =
                    |s: &str| sensei_runtime::store::sha256_hex(s.as_bytes())[..10].to_string();
                let owner = format!("{migration_id}\0{namespace}");
                let stale_prefix = format!("sensei_stage_{}_", hex(&owner));
                Some(StagingArea {
                    name: format!("{stale_prefix}{}", hex(run_key)),
                    stale_prefix,
                })
            }
            false => None,
        })
    }

    /// Whether the engine of the target at `url` can stage a delivery
    /// (PostgreSQL, MySQL/MariaDB, SQLite; not a Parquet folder).
    pub fn engine_stages(url: &str) -> Result<bool> {
        Ok(matches!(
            parse(url, "target")?,
            Location::Postgres(_) | Location::MySql(_) | Location::Sqlite(_)
        ))
    }
}

impl StagingArea {
    /// Where the sessions that load and check a staged delivery connect,
    /// as (URL, namespace): a PostgreSQL target's own URL with the staging
    /// schema as the namespace, a MySQL target's URL naming the staging
    /// database.
    pub fn loading(&self, url: &str, namespace: &str) -> Result<(String, String)> {
        Ok(match parse(url, "target")? {
            Location::Sqlite(p) => (
                format!(
                    "sqlite://{}",
                    crate::sqlite_stage::staged_path(&p, &self.name).display()
                ),
                String::new(),
            ),
            Location::MySql(_) => {
                let mut u = url::Url::parse(url).map_err(|e| ConnectorError::Unreadable {
                    path: sensei_runtime::secret::redact_url(url),
                    message: format!("not a URL: {e}"),
                })?;
                u.set_path(&format!("/{}", self.name));
                (u.to_string(), String::new())
            }
            _ => {
                let _ = namespace;
                (url.to_string(), self.name.clone())
            }
        })
    }
}

/// What publishing a staging area did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Published {
    /// The area was gone: an earlier publication committed it.
    pub already: bool,
    /// Tables moved into the target.
    pub moved: Vec<String>,
}

fn unstaged(area: &StagingArea) -> ConnectorError {
    ConnectorError::Unsupported {
        role: "target",
        url: area.name.clone(),
        hint: "this target engine does not stage deliveries".into(),
    }
}

/// One target engine's session. A new engine implements this in its own
/// module and adds its URL to the registry, [`Target::open_in`] (and
/// [`crate::url::parse`]); nothing else names engines.
pub trait TargetEngine: Send {
    /// Runs DDL (nothing for files: the schema is the certified one).
    fn apply_ddl(&mut self, ddl: &str) -> Result<()>;

    /// Whether `table` exists.
    fn has_table(&mut self, table: &str) -> Result<bool>;

    /// Creates a table mirroring `table.schema` when absent, text columns
    /// with a declared width as `VARCHAR(n)` and exact source decimals as
    /// the engine's exact decimal where it has one.
    fn ensure_table(&mut self, table: &NewTable<'_>) -> Result<()>;

    /// Writes one batch with its ledger row, or skips it when the ledger
    /// holds its key.
    fn write_batch(&mut self, batch: &RecordBatch, key: &BatchKey<'_>) -> Result<BatchAck>;

    /// Empties `table` and forgets `migration_id`'s ledger rows for it;
    /// returns the rows (files) removed.
    fn clear_for_resync(&mut self, table: &str, migration_id: &str) -> Result<u64>;

    /// How many batches of `migration_id` the ledger holds (0 without one).
    fn batches_delivered(&mut self, migration_id: &str) -> Result<u64>;

    /// Why a delivery of `tables` into `namespace` cannot be staged (None:
    /// it can). Engines that never stage say so.
    fn staging_refused(&mut self, _namespace: &str, _tables: &[String]) -> Result<Option<String>> {
        Ok(Some("this target engine writes its tables directly".into()))
    }

    /// Makes the staging `area` ready: earlier runs' areas dropped, `area`
    /// emptied first when `fresh`. Only engines for which
    /// [`TargetEngine::staging_refused`] can say None implement it.
    fn begin_staging(&mut self, area: &StagingArea, _fresh: bool) -> Result<()> {
        Err(unstaged(area))
    }

    /// Publishes the staging `area` into this session's target atomically.
    fn publish(&mut self, area: &StagingArea) -> Result<Published> {
        Err(unstaged(area))
    }

    /// Drops `table`, a table this migration created and wrote nothing to.
    fn drop_table(&mut self, table: &str) -> Result<()> {
        self.apply_ddl(&format!(
            "DROP TABLE IF EXISTS {}",
            crate::ident::ansi(table)
        ))
    }

    /// The engine's identifier quoting (None: a file target, no SQL).
    fn quote(&self) -> Option<fn(&str) -> String> {
        Some(crate::ident::ansi)
    }

    /// The statement adding a unique constraint on `table` over `columns`
    /// (already quoted and joined).
    fn unique_sql(&self, table: &str, name: &str, columns: &str) -> String {
        let q = self.quote().unwrap_or(crate::ident::ansi);
        format!(
            "ALTER TABLE {} ADD CONSTRAINT {} UNIQUE ({columns})",
            q(table),
            q(name)
        )
    }

    /// Adds foreign keys, `(name, clause)`, to `table`; returns a note for
    /// each the engine refused.
    fn add_foreign_keys(&mut self, table: &str, clauses: &[(String, String)]) -> Vec<String> {
        let q = self.quote().unwrap_or(crate::ident::ansi);
        let mut notes = Vec::new();
        for (name, clause) in clauses {
            if let Err(e) = self.apply_ddl(&format!("ALTER TABLE {} ADD {clause}", q(table))) {
                notes.push(format!("table {table}: foreign key {name} not added: {e}"));
            }
        }
        notes
    }

    /// Whether `columns` are the primary key or unique in `table` (None:
    /// the engine does not need to know).
    fn is_key(&mut self, _table: &str, _columns: &[String]) -> Result<Option<bool>> {
        Ok(None)
    }

    /// Sets aside what would slow or trip a parallel load of `tables`:
    /// (foreign keys, secondary indexes), put back by [`TargetEngine::reattach`].
    /// `fresh`: those of them a staged delivery has just created (empty, and
    /// created afresh by any retry of the preparation), whose primary and
    /// unique keys an engine may set aside as well, to build them once
    /// after the load.
    fn detach_for_load(
        &mut self,
        _tables: &[String],
        _fresh: &[String],
    ) -> Result<(Deferred, Deferred)> {
        Ok(Default::default())
    }

    /// Puts back what [`TargetEngine::detach_for_load`] set aside; returns
    /// what could not be.
    fn reattach(&mut self, _foreign_keys: &Deferred, _indexes: &Deferred) -> Vec<String> {
        Vec::new()
    }

    /// The engine's own session, for what only it offers.
    fn as_any(&mut self) -> &mut dyn std::any::Any;
}

/// An open target session, whichever engine it writes.
pub struct Target(Box<dyn TargetEngine>);

impl Target {
    /// Opens the target at `url` (creating a SQLite file as needed).
    pub fn open(url: &str, options: &SourceOptions) -> Result<Target> {
        Self::open_in(url, options, "")
    }

    /// [`Target::open`]; a PostgreSQL target writes only inside the schema
    /// `namespace` (empty: its default). The registry of target engines.
    pub fn open_in(url: &str, options: &SourceOptions, namespace: &str) -> Result<Target> {
        let engine: Box<dyn TargetEngine> = match parse(url, "target")? {
            Location::Sqlite(p) => Box::new(SqliteTarget::open(&p)?),
            Location::Postgres(u) => Box::new(PgTarget::connect_in(&u, options, namespace)?),
            Location::Parquet(dir) => Box::new(ParquetTarget::open(&dir)?),
            Location::MySql(u) => Box::new(MySqlTarget::connect(&u, options)?),
            _ => {
                return Err(ConnectorError::Unsupported {
                    role: "target",
                    url: sensei_runtime::secret::redact_url(url),
                    hint:
                        "targets supported now: sqlite://PATH, postgresql://..., mysql://..., parquet://FOLDER"
                            .into(),
                })
            }
        };
        Ok(Target(engine))
    }

    /// Checks, without writing anything, that the target can be reached: a
    /// SQLite folder writable, a database server taking this user's
    /// connection. The ledger table comes with the first batch.
    pub fn check(url: &str, options: &SourceOptions, namespace: &str) -> Result<()> {
        match parse(url, "target")? {
            Location::Sqlite(p) => SqliteTarget::check_writable(&p),
            // Connecting is the check; nothing is created before delivery.
            Location::Postgres(u) => PgTarget::check(&u, options),
            Location::MySql(u) => MySqlTarget::check(&u, options),
            _ => Self::open_in(url, options, namespace).map(|_| ()),
        }
    }

    /// Why a delivery of `tables` into the target at `url` (schema
    /// `namespace`) cannot be staged (None: it can). A SQLite file is
    /// looked at, not opened (opening creates it).
    pub fn staging_refused(
        url: &str,
        options: &SourceOptions,
        namespace: &str,
        tables: &[String],
    ) -> Result<Option<String>> {
        match parse(url, "target")? {
            Location::Sqlite(p) => Ok(crate::sqlite_stage::staging_refused(&p)),
            _ => Self::open(url, options)?
                .0
                .staging_refused(namespace, tables),
        }
    }

    /// [`TargetEngine::begin_staging`] for the target at `url`.
    pub fn begin_staging(
        url: &str,
        options: &SourceOptions,
        namespace: &str,
        area: &StagingArea,
        fresh: bool,
    ) -> Result<()> {
        match parse(url, "target")? {
            Location::Sqlite(p) => crate::sqlite_stage::begin_staging(&p, area, fresh),
            _ => Self::open_in(url, options, namespace)?
                .0
                .begin_staging(area, fresh),
        }
    }

    /// [`TargetEngine::publish`] for the target at `url`.
    pub fn publish(
        url: &str,
        options: &SourceOptions,
        namespace: &str,
        area: &StagingArea,
    ) -> Result<Published> {
        match parse(url, "target")? {
            Location::Sqlite(p) => crate::sqlite_stage::publish(&p, area),
            _ => Self::open_in(url, options, namespace)?.0.publish(area),
        }
    }

    /// The engine's own session when it is a `T`.
    pub fn engine<T: 'static>(&mut self) -> Option<&mut T> {
        self.0.as_any().downcast_mut::<T>()
    }

    /// [`TargetEngine::ensure_table`]; true when the table was created now.
    pub fn ensure_table(&mut self, table: &NewTable<'_>) -> Result<bool> {
        let existed = self.0.has_table(table.name)?;
        self.0.ensure_table(table)?;
        Ok(!existed)
    }

    /// Adds a mirrored table's unique constraints, secondary indexes and
    /// foreign keys; anything the engine refused is named among the
    /// returned notes.
    pub fn add_mirror_extras(&mut self, table: &str, extras: &MirrorExtras) -> Vec<String> {
        let Some(q) = self.0.quote() else {
            return Vec::new();
        };
        let list = |cols: &[String]| cols.iter().map(|c| q(c)).collect::<Vec<_>>().join(", ");
        let mut statements = Vec::new();
        for (name, cols) in &extras.unique {
            let sql = self.0.unique_sql(table, name, &list(cols));
            statements.push((format!("unique constraint {name}"), sql));
        }
        for (name, cols, unique) in &extras.indexes {
            statements.push((
                format!("index {name}"),
                format!(
                    "CREATE {}INDEX {} ON {} ({})",
                    if *unique { "UNIQUE " } else { "" },
                    q(name),
                    q(table),
                    list(cols)
                ),
            ));
        }
        let mut notes = Vec::new();
        let mut clauses = Vec::new();
        for fk in &extras.foreign_keys {
            // SQLite refuses every later write and check of a foreign key
            // whose parent columns are not its key ("foreign key
            // mismatch"): a parent table that was there before this
            // migration must have them as its key.
            if let Ok(Some(false)) = self.0.is_key(&fk.references, &fk.referenced_columns) {
                notes.push(format!(
                    "table {table}: foreign key {} not added: {} ({}) is not a primary key or unique in the target; give it one there, then migrate again",
                    fk.name,
                    fk.references,
                    fk.referenced_columns.join(", ")
                ));
                continue;
            }
            clauses.push((fk.name.clone(), foreign_key_clause(fk, q)));
        }
        for (what, sql) in statements {
            if let Err(e) = self.0.apply_ddl(&sql) {
                notes.push(format!("table {table}: {what} not added: {e}"));
            }
        }
        // After the unique constraints a key of the table itself may need.
        if !clauses.is_empty() {
            notes.extend(self.0.add_foreign_keys(table, &clauses));
        }
        notes
    }

    /// Writes one batch with its ledger row, or skips it when the ledger holds its key.
    pub fn write_batch(&mut self, batch: &RecordBatch, key: &BatchKey<'_>) -> Result<BatchAck> {
        self.0.write_batch(batch, key)
    }
}

impl std::ops::Deref for Target {
    type Target = dyn TargetEngine;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}

impl std::ops::DerefMut for Target {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.0.as_mut()
    }
}

/// `CONSTRAINT name FOREIGN KEY (..) REFERENCES parent (..)` with the
/// actions engines share.
fn foreign_key_clause(fk: &crate::catalog::ForeignKey, q: fn(&str) -> String) -> String {
    let list = |cols: &[String]| cols.iter().map(|c| q(c)).collect::<Vec<_>>().join(", ");
    let mut clause = format!(
        "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})",
        q(&fk.name),
        list(&fk.columns),
        q(&fk.references),
        list(&fk.referenced_columns)
    );
    for (on, action) in [("DELETE", &fk.on_delete), ("UPDATE", &fk.on_update)] {
        let a = action.to_ascii_uppercase();
        if matches!(
            a.as_str(),
            "CASCADE" | "SET NULL" | "SET DEFAULT" | "RESTRICT"
        ) {
            clause.push_str(&format!(" ON {on} {a}"));
        }
    }
    clause
}
