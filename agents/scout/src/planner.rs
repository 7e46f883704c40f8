//! The head's half of ingestion: discovery inside the snapshot every Scout
//! will import (tables and catalog; the session that exported the snapshot
//! held open until the phase ends), then, when partitions are sized in
//! bytes, a leased task measuring each table's row size in that snapshot
//! ([`crate::sample`]), one task per key range, and the Ingestion Manifest
//! from the tasks' partitions, profiles and counts. The head reads no row.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use sensei_connectors::files::{BadRows, SourceOptions};
use sensei_connectors::source::Source;
use sensei_connectors::table::TableInfo;
use sensei_connectors::url::{parse, Location};
use sensei_contracts::artifacts::*;
use sensei_contracts::error::{blocking, Result};
use sensei_contracts::planner::{
    id_part, Finalized, PhaseContext, Plan, PlannedTask, Planner, TaskOutcome,
};
use sensei_contracts::profile::TableProfile;
use sensei_runtime::config::MigrationConfig;
use sensei_runtime::secret::redact_url;

use crate::ingest::{IngestResult, IngestTask};
use crate::sample::{SampleResult, SampleTask, SAMPLE, SAMPLE_ROWS};

/// The source options of a configuration.
pub fn source_options(config: &MigrationConfig) -> Result<SourceOptions> {
    let partition_keys = SourceOptions::parse_partition_keys(&config.ingestion.partition_key)?;
    Ok(SourceOptions {
        encoding: config.source.encoding.clone(),
        min_confidence: config.source.encoding_min_confidence,
        delimiter: config.source.csv_delimiter.clone(),
        header: config.source.csv_header,
        bad_rows: if config.source.bad_rows == "quarantine" {
            BadRows::Quarantine
        } else {
            BadRows::Reject
        },
        password_file: config.source.password_file.clone(),
        ssl_mode: config.source.ssl_mode.clone(),
        connect_timeout_s: config.source.connect_timeout_s,
        partition_keys,
        local_infile: false,
    })
}

/// What discovery found, in the snapshot it exported.
struct Discovered {
    tables: Vec<TableInfo>,
    catalog: sensei_connectors::catalog::Catalog,
    snapshot: Option<String>,
    locked: bool,
    /// The session holding the snapshot (or the read lock).
    holder: Source,
    columnless: Vec<String>,
}

/// Opens the source, exports (or locks) a consistent view, and discovers
/// its tables and catalog in it (metadata only). Blocking.
fn discover(url: &str, options: &SourceOptions, lock: bool) -> Result<Discovered> {
    let mut source = Source::open_with(url, None, options)?;
    let locked = source.hold_read_lock(lock)?;
    let snapshot = source.export_snapshot()?;
    let tables = source.tables()?;
    let columnless = source.columnless_tables()?;
    let catalog = source.catalog(&tables)?;
    Ok(Discovered {
        tables,
        catalog,
        snapshot,
        locked,
        holder: source,
        columnless,
    })
}

/// One ingestion task per key range of every table: at most
/// `ingestion.partition_rows` rows each, fewer where the sample found wide
/// rows (`row_bytes`, against `ingestion.partition_bytes`).
fn partition_tasks(
    cx: &PhaseContext<'_>,
    tables: &[TableInfo],
    snapshot: Option<String>,
    row_bytes: &BTreeMap<String, u64>,
) -> Result<Vec<PlannedTask>> {
    let config = cx.config;
    let options = source_options(config)?;
    let mut specs = Vec::new();
    for t in tables {
        // Keys per partition: the row limit, or fewer when rows are wide.
        let mut per = config.ingestion.partition_rows;
        if let Some(b) = row_bytes.get(&t.name) {
            per = per.min((config.ingestion.partition_bytes / b).max(1));
        }
        for (i, range) in ranges(t, per as i64).into_iter().enumerate() {
            let task = IngestTask {
                source_url: config.source.url.clone(),
                snapshot: snapshot.clone(),
                table: t.clone(),
                range,
                partition_id: format!("{}/staging/ingestion/{}/{i:05}", cx.id, id_part(&t.name)),
                partition: i as u32,
                sample_rows: config.ingestion.profile_sample_rows,
                options: options.clone(),
                batch_pause_ms: config.ingestion.batch_pause_ms,
            };
            specs.push(PlannedTask {
                table: t.name.clone(),
                partition: i as u32,
                payload: serde_json::to_value(task)?,
                preferred_node: None,
            });
        }
    }
    Ok(specs)
}

/// The key ranges of a table's partitions, about `per` rows each.
fn ranges(t: &TableInfo, per: i64) -> Vec<Option<(i64, i64)>> {
    match (&t.splits, t.rowid_range) {
        // The source chose where partitions may start: group its
        // splits into partitions of at most `per` rows (at least one split each).
        (Some(splits), _) if splits.len() >= 2 => {
            let mut v = Vec::new();
            let mut start = 0usize;
            while start + 1 < splits.len() {
                let mut end = start + 1;
                while end + 1 < splits.len()
                    && splits[end + 1].rows_before - splits[start].rows_before <= per as u64
                {
                    end += 1;
                }
                v.push(Some((splits[start].key, splits[end].key - 1)));
                start = end;
            }
            v
        }
        (Some(_), _) => vec![None],
        (None, Some((lo, hi))) => {
            sensei_connectors::files::key_ranges(lo, hi, t.rows, per.max(1) as u64)
                .into_iter()
                .map(Some)
                .collect()
        }
        (None, None) => vec![None],
    }
}

/// The ingestion phase's planner. It holds the source sessions that keep
/// an exported snapshot open while a migration's ingestion runs (dropping
/// one ends its transaction).
#[derive(Default)]
pub struct IngestionPlanner {
    snapshots: Mutex<HashMap<String, Source>>,
}

impl Drop for IngestionPlanner {
    /// Sessions still held (a migration halted during ingestion) close on
    /// a thread of their own: a blocking client owns a runtime, which must
    /// not be dropped on the head's async threads.
    fn drop(&mut self) {
        let held = std::mem::take(self.snapshots.get_mut().unwrap_or_else(|p| p.into_inner()));
        if !held.is_empty() {
            let _ = std::thread::spawn(move || drop(held)).join();
        }
    }
}

impl IngestionPlanner {
    /// Whether this migration's ingestion was planned at an exported
    /// snapshot (or under a read lock) that this planner no longer holds:
    /// it died with an earlier head, and partitions read now would not be
    /// of the same instant.
    pub async fn snapshot_lost(&self, cx: &PhaseContext<'_>) -> Result<bool> {
        if self
            .snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(cx.id)
        {
            return Ok(false);
        }
        if !cx.exists("discovery.json").await? {
            return Ok(false);
        }
        let discovery: serde_json::Value = cx.get_json("discovery.json").await?;
        Ok(discovery["snapshot_id"].is_string() || discovery["consistency"] == "read-lock")
    }
}

#[async_trait::async_trait]
impl Planner for IngestionPlanner {
    async fn plan(&self, cx: &mut PhaseContext<'_>) -> Result<Plan> {
        let config = cx.config;
        let id = cx.id;
        let options = source_options(config)?;
        let (url, task_options) = (config.source.url.clone(), options.clone());
        let lock = config.source.mysql_consistency == "lock";
        let found = blocking("schema discovery", move || discover(&url, &options, lock)).await?;
        if !found.columnless.is_empty() {
            cx.note(
                "warn",
                format!(
                    "tables without any column, left out (nothing to migrate): {}",
                    found.columnless.join(", ")
                ),
            );
        }
        let Discovered {
            tables,
            catalog,
            snapshot,
            locked,
            holder,
            ..
        } = found;
        if snapshot.is_some() || locked {
            self.snapshots
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.to_string(), holder);
        }
        let consistency = match (&snapshot, locked) {
            (Some(_), _) => "snapshot",
            (None, true) => "read-lock",
            _ => match parse(&config.source.url, "source")? {
                Location::Csv(_) | Location::Parquet(_) => "unchanged-files",
                _ => "per-session",
            },
        };
        let discovery = serde_json::json!({"checkpoint_time": now_rfc3339(), "snapshot_id": snapshot, "consistency": consistency, "tables": tables, "catalog": catalog});
        cx.put_json("discovery.json", &discovery).await?;
        if config.ingestion.partition_bytes == 0 || tables.is_empty() {
            let tasks = partition_tasks(cx, &tables, snapshot, &BTreeMap::new())?;
            return Ok(Plan::Tasks(tasks));
        }
        // Partitions sized in bytes: the row sizes are measured first, by a
        // task, in the same snapshot.
        let task = SampleTask {
            source_url: config.source.url.clone(),
            snapshot,
            tables,
            rows: SAMPLE_ROWS,
            options: task_options,
        };
        Ok(Plan::Tasks(vec![PlannedTask {
            table: SAMPLE.into(),
            partition: 0,
            payload: serde_json::to_value(task)?,
            preferred_node: None,
        }]))
    }

    async fn follow_up(
        &self,
        cx: &mut PhaseContext<'_>,
        done: &[TaskOutcome],
    ) -> Result<Vec<PlannedTask>> {
        // Only the sample is done: the partitions, sized by what it measured.
        let [sampled] = done else {
            return Ok(Vec::new());
        };
        if sampled.table != SAMPLE {
            return Ok(Vec::new());
        }
        let measured: SampleResult = sampled.result()?;
        let discovery: serde_json::Value = cx.get_json("discovery.json").await?;
        let tables: Vec<TableInfo> = serde_json::from_value(discovery["tables"].clone())?;
        let snapshot = discovery["snapshot_id"].as_str().map(str::to_string);
        partition_tasks(cx, &tables, snapshot, &measured.row_bytes)
    }

    async fn finalize(&self, cx: &mut PhaseContext<'_>, done: &[TaskOutcome]) -> Result<Finalized> {
        // Every partition is read: the snapshot may go.
        let holder = self
            .snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(cx.id);
        // A blocking client owns a runtime of its own: close it off the async threads.
        let _ = tokio::task::spawn_blocking(move || drop(holder)).await;
        let config = cx.config;
        let discovery: serde_json::Value = cx.get_json("discovery.json").await?;
        let tables: Vec<TableInfo> = serde_json::from_value(discovery["tables"].clone())?;
        let mut by_table: BTreeMap<String, Vec<PartitionRef>> = BTreeMap::new();
        let mut profiles: BTreeMap<String, TableProfile> = BTreeMap::new();
        let mut rejected: BTreeMap<String, (u64, Vec<String>)> = BTreeMap::new();
        let mut changed: BTreeMap<String, sensei_connectors::source::Changes> = BTreeMap::new();
        let partitions = done.iter().filter(|t| t.table != SAMPLE);
        for r in partitions.map(TaskOutcome::result::<IngestResult>) {
            let r = r?;
            for (column, kinds) in &r.changes {
                for (what, n) in kinds {
                    *changed
                        .entry(r.partition.table.clone())
                        .or_default()
                        .entry(column.clone())
                        .or_default()
                        .entry(what.clone())
                        .or_default() += n;
                }
            }
            if r.rejected > 0 {
                let e = rejected.entry(r.partition.table.clone()).or_default();
                e.0 += r.rejected;
                e.1.extend(r.quarantine.clone());
            }
            if let Some(p) = r.profile {
                profiles.insert(r.partition.table.clone(), p);
            }
            by_table
                .entry(r.partition.table.clone())
                .or_default()
                .push(r.partition);
        }
        let manifest = Manifest {
            version: ARTIFACT_VERSION,
            migration_id: cx.id.to_string(),
            source: redact_url(&config.source.url),
            snapshot_id: discovery["snapshot_id"].as_str().map(str::to_string),
            catalog: serde_json::from_value(discovery["catalog"].clone()).unwrap_or_default(),
            consistency: discovery["consistency"]
                .as_str()
                .unwrap_or("snapshot")
                .to_string(),
            checkpoint_time: discovery["checkpoint_time"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            tables: tables
                .iter()
                .map(|t| {
                    let mut partitions = by_table.remove(&t.name).unwrap_or_default();
                    partitions.sort_by_key(|p| p.partition);
                    ManifestTable {
                        name: t.name.clone(),
                        columns: t.columns.clone(),
                        primary_key: t.primary_key(),
                        rows: partitions.iter().map(|p| p.rows).sum(),
                        partitions,
                        profile: profiles.remove(&t.name).unwrap_or_default(),
                        file: t.file.clone(),
                        rejected_rows: rejected.get(&t.name).map(|r| r.0).unwrap_or(0),
                        quarantine: rejected.remove(&t.name).map(|r| r.1).unwrap_or_default(),
                        changed_values: changed.remove(&t.name).unwrap_or_default(),
                    }
                })
                .collect(),
        };
        Ok(Finalized::ok(
            cx.put_json("manifest.json", &manifest).await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: u64, lo: i64, hi: i64) -> TableInfo {
        TableInfo {
            name: "t".into(),
            columns: Vec::new(),
            rows,
            rowid_range: Some((lo, hi)),
            qualified: None,
            range_column: None,
            splits: None,
            file: None,
        }
    }

    #[test]
    fn dense_keys_split_every_per_keys() {
        let r = ranges(&table(1000, 1, 1000), 300);
        assert_eq!(
            r,
            [
                Some((1, 300)),
                Some((301, 600)),
                Some((601, 900)),
                Some((901, 1000))
            ]
        );
    }

    #[test]
    fn sparse_keys_split_by_rows_not_by_span() {
        // Snowflake-like ids: 5,000 rows over most of the i64 range.
        let r = ranges(&table(5_000, 1 << 40, i64::MAX), 1_000);
        assert_eq!(r.len(), 5);
        assert_eq!(r[0].unwrap().0, 1 << 40);
        assert_eq!(r.last().unwrap().unwrap().1, i64::MAX);
        for w in r.windows(2) {
            assert_eq!(w[0].unwrap().1 + 1, w[1].unwrap().0, "contiguous");
        }
        // Ids 1..100 and one at 10^15: a few partitions, not 10^12.
        let r = ranges(&table(101, 1, 1_000_000_000_000_000), 50);
        assert!(r.len() <= 3, "{}", r.len());
        let r = ranges(&table(0, i64::MIN, i64::MAX), 50_000);
        assert!(r.len() <= 3, "{r:?}");
        assert_eq!(
            (r[0].unwrap().0, r.last().unwrap().unwrap().1),
            (i64::MIN, i64::MAX)
        );
    }
}
