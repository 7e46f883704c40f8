//! Schema objects beyond columns: defaults, foreign keys, unique and check
//! constraints, indexes, views, stored procedures and functions, triggers.
//!
//! Discovery reads them from each engine's catalog (PostgreSQL's `pg_catalog`,
//! MySQL's `information_schema`, SQLite's pragmas and `sqlite_schema`) inside
//! the same read-only snapshot as the data, and the manifest carries them:
//! the mapping uses foreign keys to join tables, delivery recreates
//! constraints and indexes, and a reviewer sees what logic (triggers,
//! procedures) lived in the source and will not move by itself.
//!
//! Names follow the tables' naming: `table` in the default schema,
//! `schema.table` elsewhere. CSV and Parquet files have no catalog.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything discovered beyond columns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// Per table: defaults, constraints, indexes.
    pub tables: BTreeMap<String, TableCatalog>,
    /// Views with their defining query.
    pub views: Vec<View>,
    /// Stored procedures and functions.
    pub routines: Vec<Routine>,
    /// Triggers.
    pub triggers: Vec<Trigger>,
}

impl Catalog {
    /// An empty catalog of `tables`, to be filled in.
    pub fn of_tables(tables: &[crate::table::TableInfo]) -> Self {
        Catalog {
            tables: tables
                .iter()
                .map(|t| (t.name.clone(), TableCatalog::default()))
                .collect(),
            ..Default::default()
        }
    }
}

/// One table's defaults, constraints and indexes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableCatalog {
    /// Column default expressions, as the engine prints them.
    pub defaults: BTreeMap<String, String>,
    /// Foreign keys.
    pub foreign_keys: Vec<ForeignKey>,
    /// Unique constraints.
    pub unique: Vec<Unique>,
    /// Check constraints.
    pub checks: Vec<Check>,
    /// Indexes (those backing the primary key included, marked).
    pub indexes: Vec<Index>,
}

/// A foreign key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForeignKey {
    /// Constraint name (SQLite: `fk_<n>`).
    pub name: String,
    /// Referencing columns, in order.
    pub columns: Vec<String>,
    /// Referenced table.
    pub references: String,
    /// Referenced columns, in order.
    pub referenced_columns: Vec<String>,
    /// ON DELETE action.
    pub on_delete: String,
    /// ON UPDATE action.
    pub on_update: String,
}

/// A unique constraint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unique {
    /// Constraint name.
    pub name: String,
    /// Columns, in order.
    pub columns: Vec<String>,
}

/// A check constraint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// Constraint name (SQLite: `check_<n>`).
    pub name: String,
    /// The condition, as the engine prints it.
    pub expression: String,
}

/// An index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    /// Index name.
    pub name: String,
    /// Key columns or expressions, in order.
    pub columns: Vec<String>,
    /// Whether it enforces uniqueness.
    pub unique: bool,
    /// Whether it backs the primary key.
    pub primary: bool,
    /// Access method (`btree`, `hash`, `gin`, ...), when the engine says.
    pub method: String,
    /// The full definition, when the engine prints one.
    pub definition: String,
}

/// A view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct View {
    /// Name.
    pub name: String,
    /// Defining query.
    pub definition: String,
}

/// A stored procedure or function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Routine {
    /// Name.
    pub name: String,
    /// `procedure` or `function`.
    pub kind: String,
    /// Language (`plpgsql`, `sql`, ...).
    pub language: String,
    /// Arguments as declared.
    pub arguments: String,
    /// Result type (functions).
    pub returns: String,
    /// Body or full definition.
    pub definition: String,
}

/// A trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// Name.
    pub name: String,
    /// Table it fires on.
    pub table: String,
    /// `BEFORE`, `AFTER` or `INSTEAD OF`.
    pub timing: String,
    /// Events, e.g. `INSERT OR UPDATE`.
    pub events: String,
    /// What it runs.
    pub definition: String,
}

/// The `CHECK (...)` conditions of a `CREATE TABLE` statement, in order.
pub fn checks_in_ddl(sql: &str) -> Vec<String> {
    let bytes = sql.as_bytes();
    let upper = sql.to_ascii_uppercase();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = upper[from..].find("CHECK") {
        let at = from + i;
        from = at + 5;
        let before_ok =
            at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
        let rest = sql[from..].trim_start();
        if !before_ok || !rest.starts_with('(') {
            continue;
        }
        let start = sql.len() - rest.len();
        let mut depth = 0i32;
        let mut quote: Option<u8> = None;
        for (j, &b) in bytes[start..].iter().enumerate() {
            match (quote, b) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, b'\'' | b'"' | b'`') => quote = Some(b),
                (None, b'(') => depth += 1,
                (None, b')') => {
                    depth -= 1;
                    if depth == 0 {
                        out.push(sql[start + 1..start + j].trim().to_string());
                        from = start + j;
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_are_found_in_ddl() {
        let ddl = "CREATE TABLE t (a INT CHECK (a > 0), b TEXT, checked INT, CONSTRAINT c CHECK(length(b) < 10 AND b <> ')'))";
        assert_eq!(checks_in_ddl(ddl), ["a > 0", "length(b) < 10 AND b <> ')'"]);
    }
}
