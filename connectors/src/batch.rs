//! Batches on their way through the connectors: [`Batcher`] collects
//! rows into Arrow builders for every source reader (bounded by one batch),
//! and a delivered batch's identity ([`BatchKey`], the idempotency key and
//! fencing attempt), its acknowledgement ([`BatchAck`]) and the ledger table
//! ([`LEDGER_TABLE`]) every target keeps them in.

use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::error::Result;

/// Collects rows into Arrow builders and hands a batch to the sink every
/// `batch_rows` rows: memory stays bounded by one batch whatever the table's
/// size. Shared by every source reader.
pub(crate) struct Batcher<F: FnMut(RecordBatch) -> Result<()>> {
    schema: SchemaRef,
    /// One builder per field, filled by the reader.
    pub builders: Vec<Box<dyn ArrayBuilder>>,
    batch_rows: usize,
    in_batch: usize,
    /// Rows completed so far.
    pub total: u64,
    sink: F,
}

impl<F: FnMut(RecordBatch) -> Result<()>> Batcher<F> {
    pub(crate) fn new(schema: SchemaRef, batch_rows: usize, sink: F) -> Self {
        let builders = new_builders(&schema, batch_rows);
        Batcher {
            schema,
            builders,
            batch_rows: batch_rows.max(1),
            in_batch: 0,
            total: 0,
            sink,
        }
    }

    /// The Arrow type of each field, in order.
    pub(crate) fn types(&self) -> Vec<DataType> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect()
    }

    /// Marks the current row complete; emits a batch when it is full.
    pub(crate) fn row_done(&mut self) -> Result<()> {
        self.in_batch += 1;
        self.total += 1;
        if self.in_batch == self.batch_rows {
            (self.sink)(finish(&self.schema, &mut self.builders)?)?;
            self.in_batch = 0;
        }
        Ok(())
    }

    /// Emits the last, partial batch; returns the rows read.
    pub(crate) fn close(mut self) -> Result<u64> {
        if self.in_batch > 0 {
            (self.sink)(finish(&self.schema, &mut self.builders)?)?;
        }
        Ok(self.total)
    }
}

/// One Arrow builder per field.
fn new_builders(schema: &Schema, capacity: usize) -> Vec<Box<dyn ArrayBuilder>> {
    schema
        .fields()
        .iter()
        .map(|f| -> Box<dyn ArrayBuilder> {
            match f.data_type() {
                DataType::Int16 => Box::new(Int16Builder::with_capacity(capacity)),
                DataType::Int32 => Box::new(Int32Builder::with_capacity(capacity)),
                DataType::Int64 => Box::new(Int64Builder::with_capacity(capacity)),
                DataType::Float32 => Box::new(Float32Builder::with_capacity(capacity)),
                DataType::Float64 => Box::new(Float64Builder::with_capacity(capacity)),
                DataType::Boolean => Box::new(BooleanBuilder::with_capacity(capacity)),
                DataType::Binary => Box::new(BinaryBuilder::with_capacity(capacity, capacity * 16)),
                DataType::Date32 => Box::new(Date32Builder::with_capacity(capacity)),
                DataType::Timestamp(_, tz) => Box::new(
                    TimestampMicrosecondBuilder::with_capacity(capacity)
                        .with_timezone_opt(tz.clone()),
                ),
                DataType::Decimal128(p, s) => Box::new(
                    Decimal128Builder::with_capacity(capacity)
                        .with_precision_and_scale(*p, *s)
                        .unwrap_or_else(|_| Decimal128Builder::with_capacity(capacity)),
                ),
                _ => Box::new(StringBuilder::with_capacity(capacity, capacity * 16)),
            }
        })
        .collect()
}

fn finish(schema: &SchemaRef, builders: &mut [Box<dyn ArrayBuilder>]) -> Result<RecordBatch> {
    let arrays: Vec<ArrayRef> = builders.iter_mut().map(|b| b.finish()).collect();
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

/// What a delivered batch did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BatchAck {
    /// Rows written (0 when skipped).
    pub rows: u64,
    /// False when the ledger already held the batch's key.
    pub written: bool,
    /// Time spent in the transaction.
    pub elapsed_ms: u64,
    /// Notices and warnings the target sent while writing it.
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl BatchAck {
    /// A batch written now, `rows` of it, timed from `started`.
    pub fn written(rows: u64, started: std::time::Instant, warnings: Vec<String>) -> Self {
        BatchAck {
            rows,
            written: true,
            elapsed_ms: started.elapsed().as_millis() as u64,
            warnings,
        }
    }

    /// A batch the ledger already held: nothing written.
    pub fn skipped(started: std::time::Instant, warnings: Vec<String>) -> Self {
        BatchAck {
            written: false,
            ..Self::written(0, started, warnings)
        }
    }
}

/// The idempotency key of a delivered batch, and the attempt that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchKey<'a> {
    /// The target table it is written into.
    pub table: &'a str,
    /// Migration id.
    pub migration: &'a str,
    /// Partition id.
    pub partition: &'a str,
    /// Batch sequence number within the partition.
    pub seq: u64,
    /// Attempt number of the lease that writes it (fencing token).
    pub attempt: u32,
}

impl BatchKey<'_> {
    /// How errors name the batch: `delivering batch S of partition P into table T`.
    pub fn context(&self) -> String {
        format!(
            "delivering batch {} of partition {} into table {}",
            self.seq, self.partition, self.table
        )
    }

    /// How errors name a row of the batch: `R of batch S of partition P`.
    pub fn row(&self, row: usize) -> String {
        format!(
            "{} of batch {} of partition {}",
            row + 1,
            self.seq,
            self.partition
        )
    }

    /// Refuses to write when the ledger's `latest` attempt for the
    /// partition is newer than this batch's: a lease taken over since.
    pub fn check_fence(&self, latest: Option<i64>) -> Result<()> {
        match latest.filter(|l| *l > i64::from(self.attempt)) {
            Some(l) => Err(crate::error::ConnectorError::Database {
                context: self.context(),
                message: format!(
                    "attempt {} is stale: attempt {l} delivers this partition now",
                    self.attempt
                ),
                transient: false,
            }),
            None => Ok(()),
        }
    }
}

/// Name of the ledger table in every target.
pub const LEDGER_TABLE: &str = "sensei_delivery_ledger";
