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
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MirrorExtras {
    /// Unique constraints.
    pub unique: Vec<(String, Vec<String>)>,
    /// Secondary indexes.
    pub indexes: Vec<(String, Vec<String>, bool)>,
    /// Foreign keys.
    pub foreign_keys: Vec<crate::catalog::ForeignKey>,
}

/// What a mirrored column's source declared beyond its Arrow type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declared {
    /// A text width the source enforced: `VARCHAR(n)`.
    Width(u32),
    /// An exact decimal carried as text (wider than Arrow's 38 digits, or
    /// declared without a precision): (precision, scale) when declared.
    Exact(Option<(u32, u32)>),
}

/// An open target session.
pub enum Target {
    /// A SQLite file.
    Sqlite(SqliteTarget),
    /// A PostgreSQL database.
    Postgres(Box<PgTarget>),
    /// A folder of Parquet files.
    Parquet(ParquetTarget),
    /// A MySQL or MariaDB database.
    MySql(Box<MySqlTarget>),
}

impl Target {
    /// Opens the target at `url` (creating a SQLite file and the ledger table as needed).
    pub fn open(url: &str, options: &SourceOptions) -> Result<Target> {
        Self::open_in(url, options, "")
    }

    /// [`Target::open`]; a PostgreSQL target writes only inside the schema
    /// `namespace` (empty: its default).
    pub fn open_in(url: &str, options: &SourceOptions, namespace: &str) -> Result<Target> {
        Ok(match parse(url, "target")? {
            Location::Sqlite(p) => Target::Sqlite(SqliteTarget::open(&p)?),
            Location::Postgres(u) => {
                Target::Postgres(Box::new(PgTarget::connect_in(&u, options, namespace)?))
            }
            Location::Parquet(dir) => Target::Parquet(ParquetTarget::open(&dir)?),
            Location::MySql(u) => Target::MySql(Box::new(MySqlTarget::connect(&u, options)?)),
            _ => {
                return Err(ConnectorError::Unsupported {
                    role: "target",
                    url: sensei_runtime::secret::redact_url(url),
                    hint:
                        "targets supported now: sqlite://PATH, postgresql://..., mysql://..., parquet://FOLDER"
                            .into(),
                })
            }
        })
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

    /// Runs the target schema's DDL.
    pub fn apply_ddl(&mut self, ddl: &str) -> Result<()> {
        match self {
            Target::Sqlite(t) => t.apply_ddl(ddl),
            Target::Postgres(t) => t.apply_ddl(ddl),
            // Files have no DDL: the schema is the certified one.
            Target::Parquet(_) => Ok(()),
            Target::MySql(t) => t.apply_ddl(ddl),
        }
    }

    /// Whether `table` exists.
    pub fn has_table(&mut self, table: &str) -> Result<bool> {
        match self {
            Target::Sqlite(t) => t.has_table(table),
            Target::Postgres(t) => t.has_table(table),
            Target::Parquet(t) => Ok(t.has_table(table)),
            Target::MySql(t) => t.has_table(table),
        }
    }

    /// Creates a table mirroring `schema` when absent, text columns with a
    /// declared width as `VARCHAR(n)` and text carrying an exact source
    /// decimal as the engine's exact decimal where it has one; true when it
    /// was created now.
    pub fn ensure_table(
        &mut self,
        table: &str,
        schema: &Schema,
        primary_key: &[String],
        declared: &BTreeMap<String, Declared>,
    ) -> Result<bool> {
        let existed = self.has_table(table)?;
        match self {
            Target::Sqlite(t) => t.ensure_table(table, schema, primary_key, declared)?,
            Target::Postgres(t) => t.ensure_table(table, schema, primary_key, declared)?,
            Target::Parquet(t) => t.ensure_table(table)?,
            Target::MySql(t) => t.ensure_table(table, schema, primary_key, declared)?,
        }
        Ok(!existed)
    }

    /// Adds a mirrored table's unique constraints, secondary indexes and
    /// foreign keys (SQLite, which takes foreign keys only when a table is
    /// created, rebuilds the new table with them); anything the engine
    /// refused is named among the returned notes.
    pub fn add_mirror_extras(&mut self, table: &str, extras: &MirrorExtras) -> Vec<String> {
        let q: fn(&str) -> String = match self {
            Target::MySql(_) => crate::mysql::quote,
            Target::Parquet(_) => return Vec::new(),
            _ => crate::sqlite::quote,
        };
        let list = |cols: &[String]| cols.iter().map(|c| q(c)).collect::<Vec<_>>().join(", ");
        let mut statements = Vec::new();
        let mut notes = Vec::new();
        for (name, cols) in &extras.unique {
            statements.push((
                format!("unique constraint {name}"),
                match self {
                    Target::Sqlite(_) => format!(
                        "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({})",
                        q(name),
                        q(table),
                        list(cols)
                    ),
                    _ => format!(
                        "ALTER TABLE {} ADD CONSTRAINT {} UNIQUE ({})",
                        q(table),
                        q(name),
                        list(cols)
                    ),
                },
            ));
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
        let clauses: Vec<(String, String)> = extras
            .foreign_keys
            .iter()
            .filter(|fk| {
                // SQLite refuses every later write and check of a foreign key
                // whose parent columns are not its key ("foreign key
                // mismatch"): a parent table that was there before this
                // migration must have them as its key.
                let Target::Sqlite(t) = &*self else {
                    return true;
                };
                match t.is_key(&fk.references, &fk.referenced_columns) {
                    Ok(Some(false)) => {
                        notes.push(format!(
                            "table {table}: foreign key {} not added: {} ({}) is not a primary key or unique in the target; give it one there, then migrate again",
                            fk.name,
                            fk.references,
                            fk.referenced_columns.join(", ")
                        ));
                        false
                    }
                    _ => true,
                }
            })
            .map(|fk| {
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
                (fk.name.clone(), clause)
            })
            .collect();
        if let Target::Sqlite(t) = self {
            // SQLite takes foreign keys only in CREATE TABLE: the new, still
            // empty table is rebuilt with them, before its indexes exist.
            if !clauses.is_empty() {
                let only: Vec<String> = clauses.iter().map(|(_, c)| c.clone()).collect();
                if let Err(e) = t.rebuild_with_constraints(table, &only) {
                    let names: Vec<&str> = clauses.iter().map(|(n, _)| n.as_str()).collect();
                    notes.push(format!(
                        "table {table}: foreign keys {} not added: {e}",
                        names.join(", ")
                    ));
                }
            }
        } else {
            for (name, clause) in clauses {
                statements.push((
                    format!("foreign key {name}"),
                    format!("ALTER TABLE {} ADD {clause}", q(table)),
                ));
            }
        }
        for (what, sql) in statements {
            if let Err(e) = self.apply_ddl(&sql) {
                notes.push(format!("table {table}: {what} not added: {e}"));
            }
        }
        notes
    }

    /// Re-sync (`delivery.resync`): empties `table` and forgets this
    /// migration's ledger rows for it, so the delivery that follows writes
    /// the current source again, exactly once; returns the rows (Parquet:
    /// files) removed.
    pub fn clear_for_resync(&mut self, table: &str, migration_id: &str) -> Result<u64> {
        match self {
            Target::Sqlite(t) => t.clear_for_resync(table, migration_id),
            Target::Postgres(t) => t.clear_for_resync(table, migration_id),
            Target::Parquet(t) => t.clear_for_resync(table),
            Target::MySql(t) => t.clear_for_resync(table, migration_id),
        }
    }

    /// How many batches of `migration_id` the target's ledger holds (a
    /// Parquet folder has no ledger table, its files are its record: 0,
    /// and [`Target::drop_table`] takes back only an empty table folder).
    pub fn batches_delivered(&mut self, migration_id: &str) -> Result<u64> {
        match self {
            Target::Sqlite(t) => t.batches_delivered(migration_id),
            Target::Postgres(t) => t.batches_delivered(migration_id),
            Target::Parquet(_) => Ok(0),
            Target::MySql(t) => t.batches_delivered(migration_id),
        }
    }

    /// Drops `table` (a table this migration created and wrote nothing to:
    /// taken back so that a failed delivery leaves the target as it was).
    pub fn drop_table(&mut self, table: &str) -> Result<()> {
        let sql = match self {
            Target::MySql(_) => format!("DROP TABLE IF EXISTS {}", crate::mysql::quote(table)),
            Target::Parquet(t) => return t.remove_if_empty(table),
            // With the foreign keys of other new tables that reference it.
            Target::Postgres(_) => format!(
                "DROP TABLE IF EXISTS {} CASCADE",
                crate::sqlite::quote(table)
            ),
            Target::Sqlite(_) => format!("DROP TABLE IF EXISTS {}", crate::sqlite::quote(table)),
        };
        self.apply_ddl(&sql)
    }

    /// Writes one batch with its ledger row, or skips it when the ledger holds its key.
    pub fn write_batch(
        &mut self,
        table: &str,
        batch: &RecordBatch,
        key: &BatchKey<'_>,
    ) -> Result<BatchAck> {
        match self {
            Target::Sqlite(t) => t.write_batch(table, batch, key),
            Target::Postgres(t) => t.write_batch(table, batch, key),
            Target::Parquet(t) => t.write_batch(table, batch, key),
            Target::MySql(t) => t.write_batch(table, batch, key),
        }
    }
}
