//! Parquet files as a source: one table per file, partitions by row group,
//! each column normalised to the Arrow types the rest of the pipeline carries.
//!
//! | Parquet / Arrow type | read as |
//! | --- | --- |
//! | Boolean, Int16/32/64, Float32/64, Utf8, Binary, Date32, Decimal128 | itself |
//! | Int8, UInt8 | Int16 |
//! | UInt16 | Int32 |
//! | UInt32 | Int64 |
//! | UInt64 | Decimal128(20, 0) |
//! | Float16 | Float32 |
//! | LargeUtf8, Utf8View | Utf8 |
//! | LargeBinary, BinaryView, FixedSizeBinary | Binary |
//! | Date64 | Timestamp(µs) (milliseconds kept) |
//! | Timestamp(s/ms/µs/ns, tz) | Timestamp(µs, UTC when zoned); nanoseconds that are not whole microseconds are an error naming the column |
//! | Decimal256(p, s), p ≤ 38 | Decimal128(p, s) |
//! | dictionaries | their value type, as above |
//! | Time, Duration, Interval, lists, structs, maps, larger decimals | Utf8 (Arrow's display form) |

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::compute::{can_cast_types, cast};
use arrow::datatypes::{
    DataType, Date64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{ConnectorError, Result};
use crate::files::{list, stamp, FileInfo, Split};
use crate::source::{KeyRange, Sink};
use crate::table::{ColumnInfo, TableInfo};

/// A folder of Parquet files (or one file), each a table.
pub struct ParquetSource {
    files: Vec<(String, PathBuf)>,
}

/// The type a column of `t` is read as (see the module table).
pub fn normalized(t: &DataType) -> DataType {
    use DataType::*;
    match t {
        Boolean | Int16 | Int32 | Int64 | Float32 | Float64 | Utf8 | Binary | Date32 => t.clone(),
        Decimal128(..) => t.clone(),
        Int8 | UInt8 => Int16,
        UInt16 => Int32,
        UInt32 => Int64,
        UInt64 => Decimal128(20, 0),
        Float16 => Float32,
        LargeUtf8 | Utf8View => Utf8,
        LargeBinary | BinaryView | FixedSizeBinary(_) => Binary,
        Date64 => Timestamp(TimeUnit::Microsecond, None),
        Timestamp(_, tz) => Timestamp(TimeUnit::Microsecond, tz.as_ref().map(|_| "UTC".into())),
        Decimal256(p, s) if *p <= 38 => Decimal128(*p, *s),
        Dictionary(_, v) => normalized(v),
        _ => Utf8,
    }
}

fn open_builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<std::fs::File>> {
    let file = std::fs::File::open(path).map_err(|e| ConnectorError::Unreadable {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| ConnectorError::Unreadable {
        path: path.display().to_string(),
        message: format!("not a readable Parquet file: {e}"),
    })
}

impl ParquetSource {
    /// Lists the Parquet files of `location`.
    pub fn open(location: &Path) -> Result<Self> {
        Ok(ParquetSource {
            files: list(location, &["parquet", "parq", "pq"])?,
        })
    }

    /// Reads each file's schema and row groups.
    pub fn tables(&self) -> Result<Vec<TableInfo>> {
        let mut out = Vec::new();
        for (name, path) in &self.files {
            let (bytes, modified_ns) = stamp(path)?;
            let builder = open_builder(path)?;
            let columns = builder
                .schema()
                .fields()
                .iter()
                .map(|f| ColumnInfo {
                    name: f.name().clone(),
                    source_type: format!("parquet {}", f.data_type()),
                    arrow_type: normalized(f.data_type()).to_string(),
                    nullable: f.is_nullable(),
                    primary_key: 0,
                })
                .collect();
            let mut splits = Vec::new();
            let mut rows = 0u64;
            for (i, rg) in builder.metadata().row_groups().iter().enumerate() {
                splits.push(Split {
                    key: i as i64,
                    rows_before: rows,
                    line: 0,
                });
                rows += rg.num_rows().max(0) as u64;
            }
            splits.push(Split {
                key: splits.len() as i64,
                rows_before: rows,
                line: 0,
            });
            out.push(TableInfo {
                name: name.clone(),
                columns,
                rows,
                rowid_range: None,
                qualified: None,
                range_column: None,
                splits: Some(splits),
                file: Some(FileInfo {
                    format: "parquet".into(),
                    path: path.clone(),
                    bytes,
                    modified_ns,
                    encoding: "utf-8".into(),
                    encoding_confidence: 1.0,
                    delimiter: 0,
                    header: false,
                    bad_records: 0,
                    bad_rows: Default::default(),
                }),
            });
        }
        Ok(out)
    }

    /// Streams the `row_groups` (a range of their numbers, inclusive), or
    /// the whole file.
    pub fn read(
        &mut self,
        table: &TableInfo,
        row_groups: Option<(i64, i64)>,
        limit: Option<u64>,
        batch_rows: usize,
        mut sink: impl FnMut(RecordBatch) -> Result<()>,
    ) -> Result<u64> {
        let info = crate::files::unchanged_file(table, "parquet")?;
        let mut builder = open_builder(&info.path)?.with_batch_size(batch_rows.max(1));
        if let Some((lo, hi)) = row_groups {
            builder = builder.with_row_groups((lo.max(0) as usize..=hi.max(0) as usize).collect());
        }
        if let Some(n) = limit {
            builder = builder.with_limit(n as usize);
        }
        let reader = builder.build().map_err(|e| ConnectorError::Unreadable {
            path: info.path.display().to_string(),
            message: e.to_string(),
        })?;
        let schema = table.schema();
        let mut rows = 0u64;
        for batch in reader {
            let batch = batch?;
            let mut columns = Vec::with_capacity(batch.num_columns());
            for (i, field) in schema.fields().iter().enumerate() {
                columns.push(
                    convert(batch.column(i), field.data_type()).map_err(|detail| {
                        ConnectorError::Value {
                            table: table.name.clone(),
                            column: field.name().clone(),
                            row: format!("row group {:?}", row_groups.map(|r| r.0)),
                            value: detail,
                            expected: field.data_type().to_string(),
                        }
                    })?,
                );
            }
            let out = RecordBatch::try_new(schema.clone(), columns)?;
            rows += out.num_rows() as u64;
            sink(out)?;
        }
        Ok(rows)
    }

    /// The first `n` rows.
    pub fn sample(&mut self, table: &TableInfo, n: u64) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        self.read(table, None, Some(n), 8192, |b| {
            out.push(b);
            Ok(())
        })?;
        Ok(out)
    }
}

/// Converts one column to its normalised type; the error describes the value.
fn convert(array: &ArrayRef, to: &DataType) -> std::result::Result<ArrayRef, String> {
    let from = array.data_type();
    if from == to {
        return Ok(array.clone());
    }
    if let DataType::Dictionary(_, value) = from {
        let plain = cast(array, value).map_err(|e| e.to_string())?;
        return convert(&plain, to);
    }
    if let DataType::Timestamp(TimeUnit::Microsecond, tz) = to {
        let tz = tz.clone();
        let micros = match from {
            DataType::Timestamp(TimeUnit::Second, _) => array
                .as_primitive::<TimestampSecondType>()
                .unary::<_, TimestampMicrosecondType>(|v| v.saturating_mul(1_000_000)),
            DataType::Timestamp(TimeUnit::Millisecond, _) => array
                .as_primitive::<TimestampMillisecondType>()
                .unary::<_, TimestampMicrosecondType>(|v| v.saturating_mul(1_000)),
            DataType::Timestamp(TimeUnit::Microsecond, _) => array
                .as_primitive::<TimestampMicrosecondType>()
                .unary::<_, TimestampMicrosecondType>(|v| v),
            DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                let ns = array.as_primitive::<TimestampNanosecondType>();
                if let Some(v) = ns.iter().flatten().find(|v| v % 1_000 != 0) {
                    return Err(format!(
                        "{v} ns since the epoch has sub-microsecond digits, which would be lost; round the column to microseconds first"
                    ));
                }
                ns.unary::<_, TimestampMicrosecondType>(|v| v / 1_000)
            }
            DataType::Date64 => array
                .as_primitive::<Date64Type>()
                .unary::<_, TimestampMicrosecondType>(|v| v.saturating_mul(1_000)),
            other => return Err(format!("cannot read {other} as a timestamp")),
        };
        return Ok(Arc::new(micros.with_timezone_opt(tz)));
    }
    if *to != DataType::Utf8 || can_cast_types(from, to) {
        if let Ok(a) = cast(array, to) {
            return Ok(a);
        }
    }
    // Arrow's display form for what has no cast to text.
    let options = arrow::util::display::FormatOptions::default();
    let formatter = arrow::util::display::ArrayFormatter::try_new(array.as_ref(), &options)
        .map_err(|e| e.to_string())?;
    let mut b = StringBuilder::with_capacity(array.len(), array.len() * 16);
    for i in 0..array.len() {
        if array.is_null(i) {
            b.append_null();
        } else {
            b.append_value(formatter.value(i).to_string());
        }
    }
    Ok(Arc::new(b.finish()))
}

impl crate::source::SourceEngine for ParquetSource {
    fn tables(&mut self) -> Result<Vec<TableInfo>> {
        ParquetSource::tables(self)
    }
    fn read(&mut self, t: &TableInfo, range: KeyRange, rows: usize, sink: Sink) -> Result<u64> {
        ParquetSource::read(self, t, range, None, rows, sink)
    }
    fn sample(&mut self, table: &TableInfo, n: u64) -> Result<Vec<RecordBatch>> {
        ParquetSource::sample(self, table, n)
    }
    fn as_any(&mut self) -> &mut dyn std::any::Any {
        self
    }
}
