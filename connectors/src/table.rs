//! What a source table is, as discovery finds it: [`TableInfo`] with its
//! [`ColumnInfo`]s (declared type, Arrow type, nullability, key position),
//! shared by every source and by the manifest.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// A column as discovered.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ColumnInfo {
    /// Name.
    pub name: String,
    /// Declared type, as written in the DDL.
    pub source_type: String,
    /// Arrow type it maps to (Arrow's display form).
    pub arrow_type: String,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// Position in the primary key (1-based), 0 when not part of it.
    pub primary_key: u32,
}

/// A table as discovered.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TableInfo {
    /// Name.
    pub name: String,
    /// Columns in order.
    pub columns: Vec<ColumnInfo>,
    /// Rows at discovery time (a MySQL/MariaDB table the server estimates
    /// at a million rows or more: the estimate). It sizes key ranges; the
    /// manifest counts the rows read.
    pub rows: u64,
    /// Smallest and largest partitioning key (the rowid in SQLite, an integer
    /// primary key elsewhere), when the table has one.
    pub rowid_range: Option<(i64, i64)>,
    /// The table's name in SQL, schema-qualified and quoted (None: the quoted name).
    #[serde(default)]
    pub qualified: Option<String>,
    /// The partitioning key column (None: SQLite's rowid).
    #[serde(default)]
    pub range_column: Option<String>,
    /// Where partitions may start, for sources that choose them (CSV record
    /// offsets, Parquet row groups); None: split `rowid_range` evenly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub splits: Option<Vec<crate::files::Split>>,
    /// File facts for CSV and Parquet tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<crate::files::FileInfo>,
}

fn parse_arrow_type(s: &str) -> DataType {
    s.parse().unwrap_or(DataType::Utf8)
}

impl TableInfo {
    /// The Arrow schema of the table.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| Field::new(&c.name, parse_arrow_type(&c.arrow_type), c.nullable))
                .collect::<Vec<_>>(),
        ))
    }

    /// Primary key columns in key order.
    pub fn primary_key(&self) -> Vec<String> {
        let mut pk: Vec<_> = self.columns.iter().filter(|c| c.primary_key > 0).collect();
        pk.sort_by_key(|c| c.primary_key);
        pk.into_iter().map(|c| c.name.clone()).collect()
    }
}
