//! Faults a faulty worker or disk could cause, injected into the Worker's
//! transformed output by the tests' own `sensei-faults` binary (the `sensei`
//! command with [`executors`] in place of the node's dispatch): the
//! certificate is judged on what it catches.
//!
//! `SENSEI_FAULT=<kind>@<target table>` damages partition 0 of that table
//! after the Worker's SQL ran: `delete`, `duplicate`, `swap` (two text
//! columns), `truncate` (a string), `recase` (a string upper-cased with
//! leading blanks), `timestamp:<ms>` (shifted), `number:<delta>` (changed),
//! `null` (a value lost) change the first row of its first batch, key columns
//! left alone so the row stays identifiable; `unreadable` flips bytes of the
//! written file after its checksum was recorded, as a failing disk would.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, Decimal128Array, Float64Array, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Decimal128Type, Float64Type, TimeUnit, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use sensei_agents::artifacts::PartitionRef;
use sensei_agents::exec::{Dispatch, Execute};
use sensei_agents::node::NodeContext;
use sensei_agents::transform;
use sensei_cli::Executors;
use sensei_contracts::io::PartitionIo;
use sensei_flight::parquet_io::{read_partition, write_partition, FileStats};
use sensei_scheduler::{Lease, Phase};

/// One fault: what is done, to which target table's partition 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// `delete`, `number`, `unreadable`...
    pub kind: String,
    /// The kind's argument (`number:<delta>`, `timestamp:<ms>`).
    pub arg: String,
    /// The target table.
    pub table: String,
}

impl Fault {
    /// Reads `kind[:arg]@table`.
    pub fn parse(spec: &str) -> Option<Fault> {
        let (what, table) = spec.rsplit_once('@')?;
        let (kind, arg) = what.split_once(':').unwrap_or((what, ""));
        Some(Fault {
            kind: kind.into(),
            arg: arg.into(),
            table: table.into(),
        })
    }

    /// The node's dispatch, with this fault injected into the
    /// transformation of its table.
    pub fn executors(self) -> Executors {
        let fault = Arc::new(self);
        Executors::new(move |node| {
            Arc::new(Faulty {
                fault: fault.clone(),
                dispatch: Dispatch(node.clone()),
                node,
            })
        })
    }
}

/// [`Dispatch`], but the transformation of the fault's table writes through
/// [`FaultyIo`].
struct Faulty {
    fault: Arc<Fault>,
    dispatch: Dispatch,
    node: Arc<NodeContext>,
}

#[async_trait::async_trait]
impl Execute for Faulty {
    async fn execute(
        &self,
        lease: Lease,
        lost: Arc<AtomicBool>,
    ) -> sensei_agents::Result<serde_json::Value> {
        if lease.phase != Phase::Transformation || lease.table != self.fault.table {
            return self.dispatch.execute(lease, lost).await;
        }
        let task: transform::TransformTask =
            serde_json::from_value(lease.payload.clone()).expect("a transformation task");
        let io = FaultyIo {
            fault: &self.fault,
            key: &task.primary_key,
            node: self.node.as_ref(),
        };
        let result = transform::run(&io, &task, lease.attempt).await?;
        Ok(serde_json::to_value(result)?)
    }
}

/// The node's partition access, damaging partition 0 as it is registered.
struct FaultyIo<'a> {
    fault: &'a Fault,
    key: &'a [String],
    node: &'a NodeContext,
}

#[async_trait::async_trait]
impl PartitionIo for FaultyIo<'_> {
    async fn fetch(&self, p: &PartitionRef) -> sensei_contracts::error::Result<Vec<RecordBatch>> {
        self.node.fetch(p).await
    }

    fn local_file(&self, p: &PartitionRef) -> Option<PathBuf> {
        self.node.local_file(p)
    }

    fn staging_path(&self, id: &str) -> PathBuf {
        self.node.staging_path(id)
    }

    fn hold(&self, id: &str, path: &Path, stats: &FileStats) {
        self.node.hold(id, path, stats)
    }

    fn location(&self) -> (String, String) {
        self.node.location()
    }

    fn scratch_path(&self, name: &str) -> PathBuf {
        self.node.scratch_path(name)
    }

    fn register(
        &self,
        id: &str,
        table: &str,
        partition: u32,
        path: PathBuf,
        stats: FileStats,
    ) -> PartitionRef {
        if partition != 0 {
            return self.node.register(id, table, partition, path, stats);
        }
        if self.fault.kind == "unreadable" {
            let registered = self
                .node
                .register(id, table, partition, path.clone(), stats);
            let mut bytes = std::fs::read(&path).expect("the staged partition");
            let mid = bytes.len() / 2;
            for b in bytes.iter_mut().skip(mid).take(16) {
                *b = !*b;
            }
            std::fs::write(&path, bytes).expect("the staged partition rewritten");
            return registered;
        }
        let (schema, mut batches) = read_partition(&path).expect("the staged partition");
        if let Some(first) = batches.iter_mut().find(|b| b.num_rows() > 0) {
            *first = damage(first, self.fault, self.key);
        }
        let stats = write_partition(&path, schema, &batches).expect("the partition rewritten");
        self.node.register(id, table, partition, path, stats)
    }
}

/// `batch` with the fault applied to its first row.
pub fn damage(batch: &RecordBatch, fault: &Fault, key: &[String]) -> RecordBatch {
    let schema = batch.schema();
    let n = batch.num_rows();
    let free: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| !key.contains(schema.field(i).name()) && !batch.column(i).is_null(0))
        .collect();
    let first = |pred: &dyn Fn(&DataType) -> bool| {
        free.iter()
            .copied()
            .find(|&i| pred(schema.field(i).data_type()))
    };
    let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
    // Column `i` with its first value replaced by the one-row `value`.
    let row0 = |i: usize, value: ArrayRef| -> ArrayRef {
        arrow::compute::concat(&[value.as_ref(), batch.column(i).slice(1, n - 1).as_ref()])
            .expect("same types")
    };
    let text = |i: usize| batch.column(i).as_string::<i32>().value(0).to_string();
    let utf8 = |t: &DataType| t == &DataType::Utf8;
    match fault.kind.as_str() {
        "delete" => return batch.slice(1, n - 1),
        "duplicate" => {
            return arrow::compute::concat_batches(&schema, [batch, &batch.slice(0, 1)])
                .expect("same schema")
        }
        "swap" => {
            let texts: Vec<usize> = free
                .iter()
                .copied()
                .filter(|&i| utf8(schema.field(i).data_type()))
                .collect();
            if let [a, b, ..] = texts[..] {
                cols[a] = row0(a, Arc::new(StringArray::from(vec![text(b)])));
                cols[b] = row0(b, Arc::new(StringArray::from(vec![text(a)])));
            }
        }
        "recase" | "truncate" => {
            if let Some(i) = first(&utf8) {
                let v = text(i);
                let changed = if fault.kind == "recase" {
                    format!("  {}", v.to_uppercase())
                } else {
                    v.chars()
                        .take(v.chars().count().saturating_sub(1))
                        .collect()
                };
                cols[i] = row0(i, Arc::new(StringArray::from(vec![changed])));
            }
        }
        "timestamp" => {
            let us = |t: &DataType| matches!(t, DataType::Timestamp(TimeUnit::Microsecond, _));
            if let Some(i) = first(&us) {
                let ms: i64 = fault.arg.parse().unwrap_or(2_000);
                let a = batch.column(i).as_primitive::<TimestampMicrosecondType>();
                let shifted = TimestampMicrosecondArray::from(vec![a.value(0) + ms * 1_000])
                    .with_timezone_opt(a.timezone());
                cols[i] = row0(i, Arc::new(shifted));
            }
        }
        "number" => {
            let delta: f64 = fault.arg.parse().unwrap_or(1.0);
            let numeric = |t: &DataType| matches!(t, DataType::Float64 | DataType::Decimal128(..));
            if let Some(i) = first(&numeric) {
                let changed: ArrayRef = match schema.field(i).data_type() {
                    DataType::Decimal128(p, s) => {
                        let x = batch.column(i).as_primitive::<Decimal128Type>().value(0);
                        let step = (delta * 10f64.powi(i32::from(*s))).round() as i128;
                        Arc::new(
                            Decimal128Array::from(vec![x + step])
                                .with_precision_and_scale(*p, *s)
                                .expect("the column's precision"),
                        )
                    }
                    _ => {
                        let x = batch.column(i).as_primitive::<Float64Type>().value(0);
                        Arc::new(Float64Array::from(vec![x + delta]))
                    }
                };
                cols[i] = row0(i, changed);
            }
        }
        "null" => {
            if let Some(&i) = free.iter().find(|&&i| schema.field(i).is_nullable()) {
                cols[i] = row0(i, new_null_array(schema.field(i).data_type(), 1));
            }
        }
        other => panic!("unknown fault {other:?}"),
    }
    RecordBatch::try_new(schema.clone(), cols).expect("the batch's schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_read_with_their_argument_and_table() {
        assert_eq!(
            Fault::parse("number:100000@orders"),
            Some(Fault {
                kind: "number".into(),
                arg: "100000".into(),
                table: "orders".into()
            })
        );
        assert_eq!(Fault::parse("delete"), None, "a table is required");
    }

    #[test]
    fn each_fault_changes_the_first_row_and_leaves_the_key() {
        let batch = RecordBatch::try_from_iter_with_nullable(vec![
            (
                "id",
                Arc::new(arrow::array::Int64Array::from(vec![1, 2])) as ArrayRef,
                false,
            ),
            (
                "a",
                Arc::new(StringArray::from(vec!["x", "y"])) as ArrayRef,
                true,
            ),
            (
                "b",
                Arc::new(StringArray::from(vec!["p", "q"])) as ArrayRef,
                true,
            ),
            (
                "n",
                Arc::new(Float64Array::from(vec![1.5, 2.5])) as ArrayRef,
                true,
            ),
        ])
        .unwrap();
        let key = vec!["id".to_string()];
        let fault = |spec: &str| damage(&batch, &Fault::parse(spec).unwrap(), &key);
        assert_eq!(fault("delete@t").num_rows(), 1);
        assert_eq!(fault("duplicate@t").num_rows(), 3);
        let swapped = fault("swap@t");
        assert_eq!(swapped.column(1).as_string::<i32>().value(0), "p");
        assert_eq!(swapped.column(2).as_string::<i32>().value(0), "x");
        assert_eq!(
            fault("truncate@t").column(1).as_string::<i32>().value(0),
            ""
        );
        assert_eq!(
            fault("number:2@t")
                .column(3)
                .as_primitive::<Float64Type>()
                .value(0),
            3.5
        );
        let nulled = fault("null@t");
        assert!(nulled.column(1).is_null(0) && !nulled.column(0).is_null(0));
        for spec in ["swap@t", "null@t", "number:2@t"] {
            let d = fault(spec);
            assert_eq!(
                d.column(0),
                batch.column(0),
                "{spec}: the key is left alone"
            );
            assert_eq!(
                d.slice(1, 1),
                batch.slice(1, 1),
                "{spec}: only the first row"
            );
        }
    }
}
