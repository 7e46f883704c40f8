//! Reading a delivered target back, whatever its engine: the one streaming
//! reader behind the post-delivery check, `sensei certificate verify --data`
//! and `sensei checkpoint take --delivered`.
//!
//! A table is read batch by batch (never whole), optionally as the columns
//! of a certified schema: those columns, in that order, each as its
//! certified Arrow type. SQLite reads each column as that type directly (its
//! storage classes say little: a decimal declared REAL is read as the
//! decimal); databases and Parquet files read their own types and cast each
//! batch ([`conform`]).

use std::path::PathBuf;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::files::SourceOptions;
use crate::source::Source;
use crate::sqlite::SqliteSource;
use crate::table::TableInfo;
use crate::url::{parse, Location};
use crate::{ConnectorError, Result};

/// A delivered target, open to read back.
pub enum ReadBack {
    /// A SQLite file.
    Sqlite(SqliteSource),
    /// A PostgreSQL or MySQL/MariaDB database, with its tables and the
    /// schema the delivery wrote into (`target.namespace`; empty: default).
    Database(Box<Source>, Vec<TableInfo>, String),
    /// A folder of Parquet files, a table per prefix.
    Files(PathBuf),
}

impl ReadBack {
    /// Opens the target at `url` (`sqlite://`, `postgresql://`, `mysql://`,
    /// `parquet://`) with the connection `options`; a database's tables are
    /// looked for in `namespace` (`target.namespace`) when it is set.
    pub fn open(url: &str, options: &SourceOptions, namespace: &str) -> Result<ReadBack> {
        Ok(match parse(url, "target")? {
            Location::Sqlite(path) => ReadBack::Sqlite(SqliteSource::open(&path)?),
            Location::Parquet(dir) => ReadBack::Files(dir),
            Location::Postgres(_) | Location::MySql(_) => {
                let mut source = Source::open_with(url, None, options)?;
                let tables = source.tables()?;
                ReadBack::Database(Box::new(source), tables, namespace.to_string())
            }
            _ => {
                return Err(ConnectorError::Unsupported {
                    role: "target",
                    url: sensei_runtime::secret::redact_url(url),
                    hint: "a delivered target is read back from sqlite://, postgresql://, mysql:// or parquet://".into(),
                })
            }
        })
    }

    /// Streams `table` to `sink`, `batch_rows` rows at a time: with
    /// `certified`, its columns in its order, each as its type (`order`
    /// without `certified`: those columns as stored; neither: every
    /// column). In a database, `table` is looked for in the namespace, then
    /// as named, then as the one `schema.table` of that name. Returns the table's schema
    /// as read, before any cast.
    pub fn read(
        &mut self,
        table: &str,
        order: &[String],
        certified: Option<&SchemaRef>,
        batch_rows: usize,
        mut sink: impl FnMut(RecordBatch) -> Result<()>,
    ) -> Result<SchemaRef> {
        let order: Vec<String> = match certified {
            Some(s) if order.is_empty() => s.fields().iter().map(|f| f.name().clone()).collect(),
            _ => order.to_vec(),
        };
        match self {
            ReadBack::Sqlite(src) => {
                let mut info = keep(src.table(table)?, &order);
                if let Some(schema) = certified {
                    for c in &mut info.columns {
                        if let Ok(f) = schema.field_with_name(&c.name) {
                            c.arrow_type = f.data_type().to_string();
                        }
                    }
                }
                src.read(&info, None, batch_rows, sink)?;
                Ok(info.schema())
            }
            ReadBack::Database(src, tables, namespace) => {
                let qualified = format!("{namespace}.{table}");
                let info = tables
                    .iter()
                    .find(|t| !namespace.is_empty() && t.name == qualified)
                    .or_else(|| tables.iter().find(|t| t.name == table))
                    .or_else(|| {
                        let suffix = format!(".{table}");
                        let mut m = tables.iter().filter(|t| t.name.ends_with(&suffix));
                        match (m.next(), m.next()) {
                            (Some(one), None) => Some(one),
                            _ => None,
                        }
                    })
                    .cloned()
                    .ok_or_else(|| ConnectorError::Database {
                        context: format!("reading {table} back"),
                        message: "the target has no such table".into(),
                        transient: false,
                    })?;
                let info = keep(info, &order);
                src.read(&info, None, batch_rows, |b| sink(cast(b, certified)?))?;
                Ok(info.schema())
            }
            ReadBack::Files(dir) => {
                let schema = crate::parquet_target::ParquetTarget::read(dir, table, |b| {
                    let b = if order.is_empty() {
                        b
                    } else {
                        let idx = order
                            .iter()
                            .map(|c| b.schema().index_of(c))
                            .collect::<std::result::Result<Vec<_>, _>>()?;
                        b.project(&idx)?
                    };
                    sink(cast(b, certified)?)
                })?;
                Ok(std::sync::Arc::new(schema))
            }
        }
    }
}

/// `info` with only the columns of `order`, in that order (all when empty).
fn keep(mut info: TableInfo, order: &[String]) -> TableInfo {
    if !order.is_empty() {
        info.columns.sort_by_key(|c| {
            order
                .iter()
                .position(|o| *o == c.name)
                .unwrap_or(usize::MAX)
        });
        info.columns.retain(|c| order.contains(&c.name));
    }
    info
}

fn cast(b: RecordBatch, certified: Option<&SchemaRef>) -> Result<RecordBatch> {
    Ok(match certified {
        Some(schema) => conform(b, schema)?,
        None => b,
    })
}

/// A batch with each column cast to the type `schema` gives the column of
/// that name (a column `schema` lacks keeps its type): values read back from
/// one engine compare with another's by value.
pub fn conform(
    b: RecordBatch,
    schema: &SchemaRef,
) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    let mut cols = Vec::new();
    let mut fields = Vec::new();
    for (i, f) in b.schema().fields().iter().enumerate() {
        let want = schema
            .field_with_name(f.name())
            .map(|c| c.data_type().clone())
            .unwrap_or_else(|_| f.data_type().clone());
        let c = if b.column(i).data_type() == &want {
            b.column(i).clone()
        } else {
            arrow::compute::cast(b.column(i), &want)?
        };
        fields.push(arrow::datatypes::Field::new(f.name(), want, true));
        cols.push(c);
    }
    RecordBatch::try_new(
        std::sync::Arc::new(arrow::datatypes::Schema::new(fields)),
        cols,
    )
}
