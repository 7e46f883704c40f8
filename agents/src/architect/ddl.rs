//! The target schema from a DDL file, parsed with sqlparser (the parser
//! DataFusion uses): tables, columns with their SQL and Arrow types,
//! nullability, defaults, primary and foreign keys.

use datafusion::sql::sqlparser::ast::{ColumnOption, Statement, TableConstraint};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use serde::{Deserialize, Serialize};

use crate::error::{AgentError, Result};

/// A target column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetColumn {
    /// Name.
    pub name: String,
    /// SQL type as written.
    pub sql_type: String,
    /// Arrow type (display form), by the SQLite connector's mapping.
    pub arrow_type: String,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// Default expression, as written.
    pub default: Option<String>,
    /// Value shapes of the target's rows, when it holds any (not from DDL).
    #[serde(skip)]
    pub sample_shapes: Vec<String>,
    /// Frequent values of the target's rows, when it holds any.
    #[serde(skip)]
    pub sample_values: Vec<String>,
}

/// A target table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetTable {
    /// Name.
    pub name: String,
    /// Columns in order.
    pub columns: Vec<TargetColumn>,
    /// Primary key columns.
    pub primary_key: Vec<String>,
    /// Foreign keys: (columns, referenced table, referenced columns).
    pub foreign_keys: Vec<(Vec<String>, String, Vec<String>)>,
}

fn ident_list<T: std::fmt::Display>(items: &[T]) -> Vec<String> {
    items
        .iter()
        .map(|c| {
            c.to_string()
                .trim_matches('"')
                .trim_matches('`')
                .to_string()
        })
        .collect()
}

/// Parses the `CREATE TABLE` statements of `sql`; other statements (indexes,
/// comments) are ignored. A syntax error names the line and column.
pub fn parse(sql: &str, file: &str) -> Result<Vec<TargetTable>> {
    let statements =
        Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| AgentError::Malformed {
            what: format!("target schema {file}"),
            message: format!("{e}; fix the statement at that line"),
        })?;
    let mut out = Vec::new();
    for st in statements {
        let Statement::CreateTable(ct) = st else {
            continue;
        };
        let name = ct
            .name
            .0
            .last()
            .map(|p| {
                p.to_string()
                    .trim_matches('"')
                    .trim_matches('`')
                    .to_string()
            })
            .unwrap_or_default();
        let mut t = TargetTable {
            name,
            columns: Vec::new(),
            primary_key: Vec::new(),
            foreign_keys: Vec::new(),
        };
        for c in &ct.columns {
            let sql_type = c.data_type.to_string();
            let mut col = TargetColumn {
                name: c.name.value.clone(),
                arrow_type: sensei_connectors::sqlite::arrow_type_for(&sql_type).to_string(),
                sql_type,
                nullable: true,
                default: None,
                sample_shapes: Vec::new(),
                sample_values: Vec::new(),
            };
            for o in &c.options {
                match &o.option {
                    ColumnOption::NotNull => col.nullable = false,
                    ColumnOption::Default(e) => col.default = Some(e.to_string()),
                    ColumnOption::PrimaryKey(_) => {
                        col.nullable = false;
                        t.primary_key.push(col.name.clone());
                    }
                    ColumnOption::ForeignKey(fk) => t.foreign_keys.push((
                        vec![col.name.clone()],
                        fk.foreign_table.to_string().trim_matches('"').to_string(),
                        ident_list(&fk.referred_columns),
                    )),
                    _ => {}
                }
            }
            t.columns.push(col);
        }
        for k in &ct.constraints {
            match k {
                TableConstraint::PrimaryKey(pk) => {
                    t.primary_key = pk
                        .columns
                        .iter()
                        .map(|c| c.column.expr.to_string().trim_matches('"').to_string())
                        .collect();
                    for c in &mut t.columns {
                        if t.primary_key.contains(&c.name) {
                            c.nullable = false;
                        }
                    }
                }
                TableConstraint::ForeignKey(fk) => t.foreign_keys.push((
                    ident_list(&fk.columns),
                    fk.foreign_table.to_string().trim_matches('"').to_string(),
                    ident_list(&fk.referred_columns),
                )),
                _ => {}
            }
        }
        out.push(t);
    }
    Ok(out)
}

/// The target schema as an existing target database holds it (its tables,
/// columns, types, keys, defaults and foreign keys), for a migration into
/// tables that are already there.
pub fn from_database(
    tables: &[sensei_connectors::sqlite::TableInfo],
    catalog: &sensei_connectors::catalog::Catalog,
) -> Vec<TargetTable> {
    tables
        .iter()
        .map(|t| {
            let tc = catalog.tables.get(&t.name);
            TargetTable {
                name: t.name.clone(),
                columns: t
                    .columns
                    .iter()
                    .map(|c| TargetColumn {
                        name: c.name.clone(),
                        sql_type: c.source_type.clone(),
                        arrow_type: c.arrow_type.clone(),
                        nullable: c.nullable,
                        default: tc.and_then(|k| k.defaults.get(&c.name).cloned()),
                        sample_shapes: Vec::new(),
                        sample_values: Vec::new(),
                    })
                    .collect(),
                primary_key: t.primary_key(),
                foreign_keys: tc
                    .map(|k| {
                        k.foreign_keys
                            .iter()
                            .map(|f| {
                                (
                                    f.columns.clone(),
                                    f.references.clone(),
                                    f.referenced_columns.clone(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_columns_keys_and_defaults() {
        let t = parse(
            "CREATE TABLE customer (id BIGINT PRIMARY KEY, email VARCHAR(120) NOT NULL,
               tier TEXT DEFAULT 'basic', born DATE);
             CREATE TABLE purchase (id BIGINT, customer_id BIGINT NOT NULL, amount DECIMAL(12,2),
               PRIMARY KEY (id), FOREIGN KEY (customer_id) REFERENCES customer (id));",
            "t.sql",
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].primary_key, ["id"]);
        assert!(!t[0].columns[1].nullable);
        assert_eq!(t[0].columns[2].default.as_deref(), Some("'basic'"));
        assert_eq!(t[0].columns[3].arrow_type, "Date32");
        assert_eq!(t[1].columns[2].arrow_type, "Decimal128(12, 2)");
        assert_eq!(t[1].primary_key, ["id"]);
        assert_eq!(
            t[1].foreign_keys,
            [(
                vec!["customer_id".to_string()],
                "customer".to_string(),
                vec!["id".to_string()]
            )]
        );
    }

    #[test]
    fn a_syntax_error_names_the_line() {
        let err = parse(
            "CREATE TABLE a (x INT);\nCREATE TABLE b (y INT,, z INT);",
            "bad.sql",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("bad.sql") && err.contains("Line: 2"), "{err}");
    }
}
