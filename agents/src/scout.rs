//! Phase 1 engine (Scout): extract one partition of one source table into a
//! staged Parquet partition.

use sensei_connectors::source::Source;
use sensei_connectors::table::TableInfo;
use sensei_flight::parquet_io::PartitionWriter;
use serde::{Deserialize, Serialize};

use crate::artifacts::PartitionRef;
use crate::error::Result;
use crate::node::NodeContext;

/// Input of an ingestion task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestTask {
    /// SQLite source file.
    pub source_url: String,
    /// Exported snapshot of the source to read at (engines that have them).
    #[serde(default)]
    pub snapshot: Option<String>,
    /// The table as discovered when the phase was planned.
    pub table: TableInfo,
    /// Inclusive rowid range, or the whole table.
    pub range: Option<(i64, i64)>,
    /// Partition id to stage under (without the attempt suffix).
    pub partition_id: String,
    /// Partition number.
    pub partition: u32,
    /// Rows sampled for the table's profile (by the task of partition 0).
    #[serde(default)]
    pub sample_rows: u64,
    /// Options of file sources (encoding, delimiter, malformed records).
    #[serde(default)]
    pub options: sensei_connectors::files::SourceOptions,
}

/// Profile and PII flags of a table, computed on a sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableProfile {
    /// Rows in the sample.
    pub sampled_rows: u64,
    /// One profile per column.
    pub columns: Vec<sensei_scout::profile::ColumnProfile>,
    /// PII flags per column (columns without flags are left out).
    pub pii: std::collections::BTreeMap<String, Vec<sensei_scout::pii::PiiFlag>>,
}

/// Samples, profiles and scans a table for PII.
pub fn profile_table(
    source: &mut Source,
    table: &TableInfo,
    sample_rows: u64,
) -> Result<TableProfile> {
    let batches = source.sample(table, sample_rows)?;
    let columns = sensei_scout::profile::profile(&batches);
    let names: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    let mut pii = std::collections::BTreeMap::new();
    let table_names = sensei_scout::pii::TableNames::of(&names);
    for (i, name) in names.iter().enumerate() {
        let samples: Vec<Option<String>> = batches
            .iter()
            .flat_map(|b| {
                let col = b.column(i).clone();
                (0..b.num_rows()).map(move |r| text_of(&col, r))
            })
            .collect();
        let flags = sensei_scout::pii::detect_in(
            &sensei_scout::pii::ColumnEvidence {
                table: &table.name,
                column: name,
                neighbours: &[],
                samples: &samples,
            },
            &table_names,
            i,
        );
        if !flags.is_empty() {
            pii.insert(name.clone(), flags);
        }
    }
    Ok(TableProfile {
        sampled_rows: batches.iter().map(|b| b.num_rows() as u64).sum(),
        columns,
        pii,
    })
}

fn text_of(col: &arrow::array::ArrayRef, row: usize) -> Option<String> {
    use arrow::array::Array;
    if col.is_null(row) {
        return None;
    }
    let opts = arrow::util::display::FormatOptions::default();
    arrow::util::display::ArrayFormatter::try_new(col.as_ref(), &opts)
        .ok()
        .map(|f| f.value(row).to_string())
}

/// Output of an ingestion task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestResult {
    /// Rows extracted.
    pub rows: u64,
    /// Bytes of the staged partition written (counted per phase on `/metrics`).
    #[serde(default)]
    pub bytes: u64,
    /// The staged partition.
    pub partition: PartitionRef,
    /// The table's profile (partition 0's task computes it).
    #[serde(default)]
    pub profile: Option<TableProfile>,
    /// Malformed records set aside.
    #[serde(default)]
    pub rejected: u64,
    /// The file they were set aside in.
    #[serde(default)]
    pub quarantine: Option<String>,
    /// Values changed on the way in (per column, per kind of change).
    #[serde(default)]
    pub changes: sensei_connectors::source::Changes,
}

/// Runs an ingestion task (blocking I/O: call from a blocking context).
pub fn run(ctx: &NodeContext, task: &IngestTask, attempt: u32) -> Result<IngestResult> {
    let mut source = Source::open_with(&task.source_url, task.snapshot.as_deref(), &task.options)?;
    let id = format!("{}-a{attempt}", task.partition_id);
    let path = ctx.staging_path(&id);
    let quarantine_path = path.with_extension("rejected.csv");
    source.quarantine_to(quarantine_path.clone());
    let mut writer = PartitionWriter::create(&path, task.table.schema())?;
    let mut write_err = None;
    let rows = source.read(&task.table, task.range, 8192, |batch| {
        if let Err(e) = writer.write(&batch) {
            write_err = Some(e);
        }
        if ctx.batch_delay_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(ctx.batch_delay_ms));
        }
        Ok(())
    })?;
    if let Some(e) = write_err {
        return Err(e.into());
    }
    let changes = source.take_changes();
    let stats = writer.finish()?;
    let partition = ctx.register(&id, &task.table.name, task.partition, path, stats);
    let profile = if task.partition == 0 && task.sample_rows > 0 {
        Some(profile_table(&mut source, &task.table, task.sample_rows)?)
    } else {
        None
    };
    let rejected = source.quarantined();
    Ok(IngestResult {
        rows,
        bytes: partition.bytes,
        partition,
        profile,
        rejected,
        quarantine: (rejected > 0).then(|| quarantine_path.display().to_string()),
        changes,
    })
}
