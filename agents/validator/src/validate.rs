//! Phase 3 engine (Validator): compare one table's source and transformed
//! partitions by row count, order-independent content digest and, row by
//! row, by primary key within tolerances (the mapping's SQL replayed here
//! gives the expected rows), with the table's expectations, distribution
//! tests on a key sample and the generated query replay.
//!
//! One pass over the partitions: each partition number's source rows are
//! replayed through the mapping and its transformed rows fetched (two
//! partitions load ahead while the previous one is compared), every check
//! takes what it needs and the rows move on. The query replay reads both
//! sides back from scratch Parquet files through DataFusion, so memory
//! holds a few partitions and the sample, not the table.
//!
//! A partition that cannot be read as recorded (its checksum or row count
//! disagrees with the manifest) leaves the table undecided: the result says
//! so instead of failing the task, and the certificate is INCONCLUSIVE.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use parquet::arrow::ArrowWriter;
use serde::{Deserialize, Serialize};

use crate::equivalence::RowDiff;
use crate::expectations::Validation;
use crate::stats::KeySample;
use sensei_contracts::artifacts::PartitionRef;
use sensei_contracts::digest::{MerkleDigest, TableDigest};
use sensei_contracts::error::{EngineError, Result};
use sensei_contracts::io::PartitionIo;

/// Input of a verification task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyTask {
    /// Target table.
    pub table: String,
    /// Source columns in target order (the identity mapping's projection).
    pub source_columns: Vec<String>,
    /// The mapping's SQL: replayed here over the source partitions, on a
    /// different node's engine run, to give the expected target rows.
    #[serde(default)]
    pub sql: Option<String>,
    /// The key file of `sensei_hash`, for the replay.
    #[serde(default)]
    pub hash_key_file: Option<String>,
    /// Tables the SQL joins.
    #[serde(default)]
    pub lookups: Vec<sensei_architect::transform::LookupRef>,
    /// The target's primary key: rows are paired by it (by the whole row without one).
    #[serde(default)]
    pub key: Vec<String>,
    /// Tolerances of the row-level comparison (None: no row-level comparison).
    #[serde(default)]
    pub tolerance: Option<crate::equivalence::Tolerance>,
    /// A Great Expectations suite for the table's transformed rows.
    #[serde(default)]
    pub expectations: Option<serde_json::Value>,
    /// Queries of the generated replay suite at most (0: no replay).
    #[serde(default)]
    pub max_queries: u64,
    /// Thresholds of the distribution tests (KS statistic, total variation
    /// distance); None: no distribution tests.
    #[serde(default)]
    pub stat_thresholds: Option<(f64, f64)>,
    /// Rows of each side the distribution tests compare at most (a key
    /// sample; 0: every row).
    #[serde(default)]
    pub stats_sample_rows: u64,
    /// Staged source partitions.
    pub source: Vec<PartitionRef>,
    /// Transformed partitions.
    pub target: Vec<PartitionRef>,
}

/// One side's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SideDigest {
    /// Rows.
    pub rows: u64,
    /// Content digest, hex.
    pub digest: String,
}

/// Output of a verification task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VerifyResult {
    /// Rows compared (target side).
    pub rows: u64,
    /// Bytes of the staged partitions read (both sides).
    #[serde(default)]
    pub bytes: u64,
    /// Source side.
    pub source: SideDigest,
    /// Target side.
    pub target: SideDigest,
    /// Row-level equivalence, when the task asked for it.
    #[serde(default)]
    pub row_check: Option<crate::equivalence::RowDiff>,
    /// Merkle root of the transformed rows (the rows to be delivered).
    #[serde(default)]
    pub merkle_root: Option<String>,
    /// The suite's validation result (GX layout), when there is a suite.
    #[serde(default)]
    pub expectations: Option<serde_json::Value>,
    /// The query replay, when the task asked for it.
    #[serde(default)]
    pub replay: Option<crate::replay::ReplayOutcome>,
    /// Distribution tests per column.
    #[serde(default)]
    pub stats: Vec<crate::stats::ColumnStat>,
    /// Why the table's data could not be read (no other figure is then meaningful).
    #[serde(default)]
    pub unreadable: Option<String>,
}

/// What the checks keep between partitions: digests, counters and a
/// sample, while the rows themselves pass through (the query replay reads
/// them back from scratch Parquet files).
struct Running {
    source: TableDigest,
    target: TableDigest,
    merkle: MerkleDigest,
    row_check: Option<RowDiff>,
    validation: Option<Validation>,
    sample: Option<(KeySample, Vec<RecordBatch>, Vec<RecordBatch>)>,
    spill: Option<Spill>,
}

/// One partition number's rows: the expected ones (the source replayed
/// through the mapping, or its projected columns) and the transformed ones.
struct Part {
    expected: Vec<RecordBatch>,
    has_source: bool,
    actual: Vec<RecordBatch>,
}

impl Running {
    /// Takes one partition number's rows. The transformed side (its Merkle
    /// leaves and digest, one SHA-256 a row for both; the expectations; its
    /// sample) is worked on a thread of its own while this one takes the
    /// expected side (its digest, the row comparison, its sample, the
    /// replay's scratch file), so the transformed side's hashing costs no
    /// time of its own.
    fn add(&mut self, task: &VerifyTask, part: Part) -> Result<()> {
        let Running {
            source,
            target,
            merkle,
            row_check,
            validation,
            sample,
            spill,
        } = self;
        let (sample, sampled_expected, sampled_actual) = match sample {
            Some((s, e, a)) => (Some(&*s), Some(e), Some(a)),
            None => (None, None, None),
        };
        let part = &part;
        std::thread::scope(|scope| {
            let actual_side = scope.spawn(move || {
                for b in &part.actual {
                    merkle.add_batch_also(b, &task.key, Some(target));
                    if let Some(v) = validation.as_mut() {
                        v.add(b);
                    }
                }
                if let (Some(s), Some(out)) = (sample, sampled_actual) {
                    out.extend(part.actual.iter().map(|b| s.take(b)));
                }
            });
            for b in &part.expected {
                source.add_batch(b);
            }
            if let (Some(total), Some(tolerance)) = (row_check.as_mut(), &task.tolerance) {
                if part.has_source {
                    total.merge(&crate::equivalence::compare(
                        &part.expected,
                        &part.actual,
                        &task.key,
                        tolerance,
                    ));
                } else {
                    // Transformed rows with no source partition are all extra.
                    total.extra += part.actual.iter().map(|b| b.num_rows() as u64).sum::<u64>();
                }
            }
            if let (Some(s), Some(out)) = (sample, sampled_expected) {
                out.extend(part.expected.iter().map(|b| s.take(b)));
            }
            let spilled = match spill.as_mut() {
                Some(spill) => spill.write(&part.expected, &part.actual),
                None => Ok(()),
            };
            actual_side.join().map_err(|_| EngineError::Malformed {
                what: format!("verification of table {}", task.table),
                message: "the transformed side's thread panicked".into(),
            })?;
            spilled
        })
    }
}

/// Scratch Parquet files of both sides for the query replay, removed when
/// dropped. The transformed side is read from its staged partition files
/// instead when this node holds them all.
struct Spill {
    dir: PathBuf,
    expected: Option<(ArrowWriter<std::fs::File>, SchemaRef)>,
    actual: Option<(ArrowWriter<std::fs::File>, SchemaRef)>,
    /// The transformed partitions' own files (empty: spilled as well).
    staged: Vec<PathBuf>,
    staged_schema: Option<SchemaRef>,
}

impl Spill {
    fn new(ctx: &dyn PartitionIo, table: &str, staged: Vec<PathBuf>) -> Result<Self> {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Per host: a working folder shared by several machines sweeps only its own.
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        let host: String = host
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let dir = ctx.scratch_path(&format!(
            "{host}/verify-{}-{}-{n}",
            table
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>(),
            std::process::id()
        ));
        if let Some(parent) = dir.parent() {
            sweep_scratch(parent);
        }
        std::fs::create_dir_all(&dir).map_err(|e| EngineError::Malformed {
            what: format!("scratch folder {}", dir.display()),
            message: e.to_string(),
        })?;
        Ok(Spill {
            dir,
            expected: None,
            actual: None,
            staged,
            staged_schema: None,
        })
    }

    fn writer(
        dir: &Path,
        name: &str,
        schema: SchemaRef,
    ) -> Result<(ArrowWriter<std::fs::File>, SchemaRef)> {
        let path = dir.join(name);
        let file = std::fs::File::create(&path).map_err(|e| EngineError::Malformed {
            what: format!("scratch file {}", path.display()),
            message: e.to_string(),
        })?;
        // Plain encoding: a scratch file read once, whose columns are mostly
        // of many values, gains nothing from building dictionaries.
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(64 * 1024))
            .set_dictionary_enabled(false)
            .build();
        let w = ArrowWriter::try_new(file, schema.clone(), Some(props))
            .map_err(|e| scratch_err(&path, e))?;
        Ok((w, schema))
    }

    fn write(&mut self, expected: &[RecordBatch], actual: &[RecordBatch]) -> Result<()> {
        let actual = if self.staged.is_empty() {
            actual
        } else {
            if self.staged_schema.is_none() {
                self.staged_schema = actual.first().map(|b| b.schema());
            }
            &[]
        };
        for (slot, name, batches) in [
            (&mut self.expected, "expected.parquet", expected),
            (&mut self.actual, "actual.parquet", actual),
        ] {
            for b in batches {
                if slot.is_none() {
                    // Every column nullable: a later partition may hold NULLs
                    // where the first declared none.
                    let fields: Vec<arrow::datatypes::Field> = b
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| f.as_ref().clone().with_nullable(true))
                        .collect();
                    let schema = Arc::new(arrow::datatypes::Schema::new(fields));
                    *slot = Some(Self::writer(&self.dir, name, schema)?);
                }
                let Some((w, schema)) = slot.as_mut() else {
                    continue;
                };
                // Same columns under the file's schema.
                let b = RecordBatch::try_new(schema.clone(), b.columns().to_vec())?;
                w.write(&b)
                    .map_err(|e| scratch_err(&self.dir.join(name), e))?;
            }
        }
        Ok(())
    }

    /// Closes both files and registers them as table `t` of two sessions
    /// (expected, actual), with the expected side's schema; None when there
    /// are no expected rows at all.
    fn finish(mut self) -> Result<Option<(SchemaRef, SessionContext, SessionContext, Spill)>> {
        let Some(schema) = self.expected.as_ref().map(|(_, s)| s.clone()) else {
            return Ok(None);
        };
        let staged = match self.staged_schema.take() {
            Some(s) => Some((std::mem::take(&mut self.staged), s)),
            None => {
                if self.actual.is_none() {
                    self.actual = Some(Self::writer(&self.dir, "actual.parquet", schema.clone())?);
                }
                None
            }
        };
        let mut sides = Vec::new();
        for (slot, name) in [
            (self.expected.take(), "expected.parquet"),
            (self.actual.take(), "actual.parquet"),
        ] {
            let path = self.dir.join(name);
            if let Some((w, side_schema)) = slot {
                w.close().map_err(|e| scratch_err(&path, e))?;
                sides.push((vec![path], side_schema));
            }
        }
        sides.extend(staged);
        let mut sessions = Vec::new();
        for (paths, side_schema) in sides {
            let s = crate::replay::single_partition_session();
            crate::queries::register_parquet(&s, "t", &paths, side_schema).map_err(|e| {
                EngineError::Malformed {
                    what: format!("replay files {}", paths[0].display()),
                    message: e.to_string(),
                }
            })?;
            sessions.push(s);
        }
        let (Some(actual), Some(expected)) = (sessions.pop(), sessions.pop()) else {
            return Ok(None);
        };
        Ok(Some((schema, expected, actual, self)))
    }
}

/// Removes the scratch folders of Validators on this host whose process is
/// gone (one killed mid-task leaves its folder behind):
/// `<host>/verify-<table>-<pid>-<n>` with no `/proc/<pid>`.
fn sweep_scratch(scratch: &Path) {
    let Ok(entries) = std::fs::read_dir(scratch) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let pid = name
            .strip_prefix("verify-")
            .and_then(|rest| rest.rsplit('-').nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn scratch_err(path: &Path, e: parquet::errors::ParquetError) -> EngineError {
    EngineError::Malformed {
        what: format!("scratch file {}", path.display()),
        message: e.to_string(),
    }
}

fn join_err(what: &str) -> impl Fn(tokio::task::JoinError) -> EngineError + '_ {
    move |e| EngineError::Malformed {
        what: what.into(),
        message: e.to_string(),
    }
}

/// Fetches partition number `n` of both sides and computes its expected rows.
async fn load(
    ctx: &dyn PartitionIo,
    task: &VerifyTask,
    n: u32,
    lookups: &[sensei_architect::transform::Lookup],
    hash_key: Option<Arc<Vec<u8>>>,
) -> Result<Part> {
    use futures::StreamExt;
    let mut source = Vec::new();
    let mut has_source = false;
    for p in task.source.iter().filter(|p| p.partition == n) {
        has_source = true;
        source.extend(ctx.fetch(p).await?);
    }
    let expected = match (&task.sql, source.first()) {
        (Some(sql), Some(first)) => {
            let sql_err = |e: datafusion::error::DataFusionError| EngineError::Sql {
                table: task.table.clone(),
                message: e.to_string(),
            };
            let schema = first.schema();
            let mut stream =
                sensei_architect::transform::apply_sql(schema, source, sql, hash_key, lookups)
                    .await
                    .map_err(sql_err)?;
            // Run as a task of its own, so partitions loading ahead use another thread.
            tokio::spawn(async move {
                let mut out = Vec::new();
                while let Some(b) = stream.next().await {
                    out.push(b?);
                }
                Ok::<_, datafusion::error::DataFusionError>(out)
            })
            .await
            .map_err(join_err("the mapping's replay"))?
            .map_err(sql_err)?
        }
        (None, _) => source
            .iter()
            .map(|b| {
                let idx = task
                    .source_columns
                    .iter()
                    .map(|c| b.schema().index_of(c))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                Ok(b.project(&idx)?)
            })
            .collect::<Result<Vec<_>>>()?,
        (Some(_), None) => Vec::new(),
    };
    let mut actual = Vec::new();
    for p in task.target.iter().filter(|p| p.partition == n) {
        actual.extend(ctx.fetch(p).await?);
    }
    Ok(Part {
        expected,
        has_source,
        actual,
    })
}

/// Runs a verification task. Data that cannot be read as recorded gives a
/// result that says so; other errors (a node unreachable) fail the task, to
/// be retried.
pub async fn run(ctx: &dyn PartitionIo, task: &VerifyTask) -> Result<VerifyResult> {
    match checks(ctx, task).await {
        Err(e @ EngineError::Corrupt { .. }) => {
            tracing::warn!(table = %task.table, error = %e, "data not readable: verification undecided");
            Ok(VerifyResult {
                unreadable: Some(e.to_string()),
                ..VerifyResult::default()
            })
        }
        other => other,
    }
}

/// Every check in one pass over the partitions, the next loading while
/// the previous one is compared: memory holds a few partitions, not the table.
async fn checks(ctx: &dyn PartitionIo, task: &VerifyTask) -> Result<VerifyResult> {
    use futures::StreamExt;
    let lookups = match &task.sql {
        Some(_) => sensei_architect::transform::load_lookups(ctx, &task.lookups).await?,
        None => Vec::new(),
    };
    let hash_key = sensei_architect::transform::load_hash_key(task.hash_key_file.as_deref())?;
    let replayed = task.sql.is_some();
    let rows: u64 = task.target.iter().map(|p| p.rows).sum();
    let mut running = Running {
        source: TableDigest::default(),
        target: TableDigest::default(),
        merkle: MerkleDigest::default(),
        row_check: (replayed && task.tolerance.is_some()).then(RowDiff::default),
        validation: task.expectations.as_ref().map(Validation::new),
        sample: task.stat_thresholds.filter(|_| replayed).map(|_| {
            (
                KeySample::new(&task.key, rows, task.stats_sample_rows),
                Vec::new(),
                Vec::new(),
            )
        }),
        spill: if replayed && task.tolerance.is_some() && task.max_queries > 0 {
            // The transformed side replays from its staged files when they are all here.
            let staged: Option<Vec<PathBuf>> = task
                .target
                .iter()
                .map(|p| ctx.local_file(p).filter(|f| f.is_file()))
                .collect();
            Some(Spill::new(ctx, &task.table, staged.unwrap_or_default())?)
        } else {
            None
        },
    };
    let numbers: BTreeSet<u32> = task
        .source
        .iter()
        .chain(&task.target)
        .map(|p| p.partition)
        .collect();
    let lookups = &lookups;
    let mut parts = futures::stream::iter(numbers)
        .map(|n| load(ctx, task, n, lookups, hash_key.clone()))
        .buffered(2);
    let shared = Arc::new(task.clone());
    // The next partitions load while one is checked: the stream is polled
    // beside the blocking check, not after it (a stream is only worked on
    // while someone polls it).
    let mut pending = parts.next().await;
    while let Some(part) = pending {
        let part = part?;
        let t = shared.clone();
        let checking = tokio::task::spawn_blocking(move || {
            let outcome = running.add(&t, part);
            (running, outcome)
        });
        let (checked, next) = tokio::join!(checking, parts.next());
        let (back, outcome) = checked.map_err(join_err("verification"))?;
        running = back;
        outcome?;
        pending = next;
    }
    drop(parts);
    let Running {
        source,
        target,
        merkle,
        row_check,
        validation,
        sample,
        spill,
    } = running;
    let stats = match (task.stat_thresholds, sample) {
        (Some((ks, tvd)), Some((_, expected, actual))) if !expected.is_empty() => {
            tokio::task::spawn_blocking(move || crate::stats::compare(&expected, &actual, ks, tvd))
                .await
                .map_err(join_err("statistics"))?
        }
        _ => Vec::new(),
    };
    let replay = match (spill, &task.tolerance) {
        (Some(spill), Some(tolerance)) => match spill.finish()? {
            Some((schema, expected, actual, _files)) => Some(
                crate::replay::replay(
                    &schema,
                    &expected,
                    &actual,
                    tolerance,
                    task.max_queries as usize,
                )
                .await,
            ),
            None => None,
        },
        _ => None,
    };
    Ok(VerifyResult {
        unreadable: None,
        stats,
        replay,
        expectations: validation.map(Validation::finish),
        merkle_root: Some(merkle.root()),
        row_check,
        rows: target.rows,
        bytes: task
            .source
            .iter()
            .chain(&task.target)
            .map(|p| p.bytes)
            .sum(),
        source: SideDigest {
            rows: source.rows,
            digest: source.hex(),
        },
        target: SideDigest {
            rows: target.rows,
            digest: target.hex(),
        },
    })
}

#[cfg(test)]
mod engine_tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use sensei_architect::transform::{self, TransformTask};
    use sensei_contracts::io::FolderIo;

    const SQL: &str = "SELECT id AS customer_id, upper(name) AS full_name FROM source";

    fn rows(ids: &[i64], names: &[&str]) -> (SchemaRef, RecordBatch) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names.to_vec())),
            ],
        )
        .unwrap();
        (schema, batch)
    }

    /// One source partition, transformed by the Worker's engine.
    async fn migrated(io: &FolderIo) -> (PartitionRef, PartitionRef) {
        let (schema, batch) = rows(&[1, 2, 3, 4], &["ada", "linus", "grace", "alan"]);
        let source = io
            .stage("m/ingestion/people/0-a1", "people", 0, schema, &[batch])
            .unwrap();
        let task = TransformTask {
            target_table: "customer".into(),
            input: source.clone(),
            sql: SQL.into(),
            output_id: "m/transformation/customer/0".into(),
            hash_key_file: None,
            columns: Vec::new(),
            lookups: Vec::new(),
            primary_key: vec!["customer_id".into()],
        };
        let out = transform::run(io, &task, 1).await.unwrap();
        (source, out.partition)
    }

    fn verify(source: PartitionRef, target: PartitionRef) -> VerifyTask {
        VerifyTask {
            table: "customer".into(),
            source_columns: vec!["id".into(), "name".into()],
            sql: Some(SQL.into()),
            hash_key_file: None,
            lookups: Vec::new(),
            key: vec!["customer_id".into()],
            tolerance: Some(crate::equivalence::Tolerance::default()),
            expectations: None,
            max_queries: 20,
            stat_thresholds: Some((0.1, 0.1)),
            stats_sample_rows: 0,
            source: vec![source],
            target: vec![target],
        }
    }

    #[tokio::test]
    async fn a_faithful_transformation_passes_every_check() {
        let dir = tempfile::tempdir().unwrap();
        let io = FolderIo::new(dir.path()).unwrap();
        let (source, target) = migrated(&io).await;
        let r = run(&io, &verify(source, target)).await.unwrap();
        assert_eq!(r.rows, 4);
        assert_eq!(r.source.digest, r.target.digest);
        let diff = r.row_check.unwrap();
        assert!(diff.equal(), "{diff:?}");
        let replay = r.replay.expect("the query replay ran");
        assert!(
            replay.failures.is_empty() && replay.passed > 0,
            "{replay:?}"
        );
        assert!(r.unreadable.is_none());
    }

    #[tokio::test]
    async fn a_lost_row_and_a_changed_cell_are_found_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let io = FolderIo::new(dir.path()).unwrap();
        let (source, _) = migrated(&io).await;
        // What a faulty Worker staged: customer 3 lost, customer 2 renamed.
        let schema = Arc::new(Schema::new(vec![
            Field::new("customer_id", DataType::Int64, false),
            Field::new("full_name", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 4])),
                Arc::new(StringArray::from(vec!["ADA", "LINUX", "ALAN"])),
            ],
        )
        .unwrap();
        let wrong = io
            .stage(
                "m/transformation/customer/0-a9",
                "customer",
                0,
                schema,
                &[batch],
            )
            .unwrap();
        let r = run(&io, &verify(source, wrong)).await.unwrap();
        assert_ne!(r.source.digest, r.target.digest);
        let diff = r.row_check.unwrap();
        assert_eq!(
            (diff.missing, diff.extra, diff.changed),
            (1, 0, 1),
            "{diff:?}"
        );
        assert!(
            diff.examples.iter().any(|e| e.contains('3')),
            "{:?}",
            diff.examples
        );
    }

    #[tokio::test]
    async fn an_unreadable_partition_makes_the_table_undecided_not_failed() {
        let dir = tempfile::tempdir().unwrap();
        let io = FolderIo::new(dir.path()).unwrap();
        let (source, target) = migrated(&io).await;
        let path = io.staging_path(&target.id);
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x0f;
        std::fs::write(&path, bytes).unwrap();
        let r = run(&io, &verify(source, target)).await.unwrap();
        assert!(r.unreadable.unwrap().contains("corrupt"));
        assert!(r.row_check.is_none());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn scratch_of_gone_processes_is_swept() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("verify-orders-4000000000-0");
        let ours = dir
            .path()
            .join(format!("verify-orders-{}-3", std::process::id()));
        let other = dir.path().join("keep-me");
        for d in [&gone, &ours, &other] {
            std::fs::create_dir_all(d).unwrap();
        }
        super::sweep_scratch(dir.path());
        assert!(!gone.exists());
        assert!(ours.exists() && other.exists());
    }
}
