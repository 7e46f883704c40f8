//! Phase 1 engine (Scout): extract one partition of one source table into a
//! staged Parquet partition.

use sensei_connectors::source::Source;
use sensei_connectors::table::TableInfo;
use sensei_flight::parquet_io::PartitionWriter;
use serde::{Deserialize, Serialize};

use sensei_contracts::artifacts::PartitionRef;
use sensei_contracts::error::Result;
use sensei_contracts::io::PartitionIo;
pub use sensei_contracts::profile::TableProfile;

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
    /// Milliseconds to pause after every batch read (`ingestion.batch_pause_ms`).
    #[serde(default)]
    pub batch_pause_ms: u64,
}

/// Samples, profiles and scans a table for PII.
pub fn profile_table(
    source: &mut Source,
    table: &TableInfo,
    sample_rows: u64,
) -> Result<TableProfile> {
    let batches = source.sample(table, sample_rows)?;
    let columns = crate::profile::profile(&batches);
    let names: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    let mut pii = std::collections::BTreeMap::new();
    let table_names = crate::pii::TableNames::of(&names);
    for (i, name) in names.iter().enumerate() {
        let samples: Vec<Option<String>> = batches
            .iter()
            .flat_map(|b| {
                let col = b.column(i).clone();
                (0..b.num_rows()).map(move |r| text_of(&col, r))
            })
            .collect();
        let flags = crate::pii::detect_in(
            &crate::pii::ColumnEvidence {
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
pub fn run(ctx: &dyn PartitionIo, task: &IngestTask, attempt: u32) -> Result<IngestResult> {
    let mut source = Source::open_with(&task.source_url, task.snapshot.as_deref(), &task.options)?;
    let id = format!("{}-a{attempt}", task.partition_id);
    let path = ctx.staging_path(&id);
    let quarantine_path = path.with_extension("rejected.csv");
    source.quarantine_to(quarantine_path.clone());
    let mut writer = PartitionWriter::create(&path, task.table.schema())?;
    let mut write_err = None;
    let pause = std::time::Duration::from_millis(task.batch_pause_ms);
    let rows = source.read(&task.table, task.range, 8192, |batch| {
        if let Err(e) = writer.write(&batch) {
            write_err = Some(e);
        }
        if !pause.is_zero() {
            std::thread::sleep(pause);
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

#[cfg(test)]
mod tests {
    use super::*;
    use sensei_contracts::io::{read_verified_file, FolderIo};

    /// A SQLite source of `n` people, one e-mail each.
    fn people(dir: &std::path::Path, n: u32) -> String {
        let path = dir.join("source.db");
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch(
            "CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT NOT NULL, city TEXT);",
        )
        .unwrap();
        for i in 1..=n {
            db.execute(
                "INSERT INTO people VALUES (?1, ?2, ?3)",
                rusqlite::params![
                    i,
                    format!("person{i}@example.org"),
                    ["Lyon", "Oslo"][i as usize % 2]
                ],
            )
            .unwrap();
        }
        format!("sqlite://{}", path.display())
    }

    fn task(url: &str, range: Option<(i64, i64)>, partition: u32) -> IngestTask {
        let mut source = Source::open(url, None).unwrap();
        let table = source.tables().unwrap().remove(0);
        IngestTask {
            source_url: url.to_string(),
            snapshot: None,
            table,
            range,
            partition_id: format!("m/ingestion/people/{partition}"),
            partition,
            sample_rows: 50,
            options: Default::default(),
            batch_pause_ms: 0,
        }
    }

    #[test]
    fn a_range_is_staged_as_a_partition_with_the_tables_profile() {
        let dir = tempfile::tempdir().unwrap();
        let url = people(dir.path(), 300);
        let io = FolderIo::new(&dir.path().join("parts")).unwrap();

        let first = run(&io, &task(&url, Some((1, 200)), 0), 1).unwrap();
        assert_eq!(first.rows, 200);
        assert_eq!(first.partition.id, "m/ingestion/people/0-a1");
        let batches =
            read_verified_file(&first.partition, &io.staging_path(&first.partition.id)).unwrap();
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 200);
        let profile = first.profile.expect("partition 0 profiles the table");
        assert_eq!(profile.sampled_rows, 50);
        let email = &profile.pii["email"];
        assert_eq!(email[0].kind, crate::pii::PiiKind::Email);
        assert!(!profile.pii.contains_key("city"));

        // Another range: no profile, the rest of the rows.
        let second = run(&io, &task(&url, Some((201, 300)), 1), 1).unwrap();
        assert_eq!(second.rows, 100);
        assert!(second.profile.is_none());
        assert_ne!(first.partition.sha256, second.partition.sha256);
    }

    #[test]
    fn a_partition_changed_after_staging_is_refused_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let url = people(dir.path(), 20);
        let io = FolderIo::new(&dir.path().join("parts")).unwrap();
        let r = run(&io, &task(&url, None, 0), 1).unwrap();
        let path = io.staging_path(&r.partition.id);
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let err = read_verified_file(&r.partition, &path).unwrap_err();
        assert!(
            matches!(err, sensei_contracts::EngineError::Corrupt { .. }),
            "{err}"
        );
    }
}
