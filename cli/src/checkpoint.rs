//! Checkpoints and time travel.
//!
//! A checkpoint pair is what verification compares: a source side (an
//! extraction of the source at one snapshot: its manifest and staged
//! partitions) and a target side (the transformed partitions, or the
//! delivered target database copied into Parquet at one time). Source
//! checkpoint 0 is the migration's own ingestion and target checkpoint 0 its
//! transformation; `sensei checkpoint take` records more while the source
//! (or the target) keeps changing, at `verification.checkpoint_interval_s`
//! or `--every`. `sensei checkpoint replay --source N --target M` runs the
//! query suite (the user's source queries, the foreign-key coverage queries
//! and a generated per-table suite, all rewritten through the mapping) on any
//! recorded pair.
//!
//! The registry is `<workdir>/<migration>/checkpoints.json`; a source
//! checkpoint is itself an ingestion-only migration named
//! `<name>-checkpoint-<n>`, whose manifest records its snapshot and time.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sensei_agents::artifacts::{Manifest, MappingSpec, PartitionRef};
use sensei_agents::queries::QueryTask;
use sensei_runtime::config::MigrationConfig;
use serde::{Deserialize, Serialize};

/// A recorded source checkpoint (n ≥ 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceCheckpoint {
    /// Number.
    pub n: u32,
    /// The ingestion-only migration holding it.
    pub migration: String,
    /// Its snapshot time (the manifest's checkpoint time).
    pub checkpoint_time: String,
    /// The exported snapshot, where the engine has one.
    pub snapshot_id: Option<String>,
    /// How the extraction was kept consistent.
    pub consistency: String,
    /// SHA-256 of its manifest.
    pub manifest_sha256: String,
}

/// A recorded target checkpoint (n ≥ 1): the delivered target, copied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetCheckpoint {
    /// Number.
    pub n: u32,
    /// When the target was read.
    pub taken_at: String,
    /// One Parquet file per target table.
    pub partitions: Vec<PartitionRef>,
}

/// `checkpoints.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    /// Source checkpoints after the first.
    pub source: Vec<SourceCheckpoint>,
    /// Target checkpoints after the first.
    pub target: Vec<TargetCheckpoint>,
}

fn dir(config: &MigrationConfig) -> PathBuf {
    PathBuf::from(&config.runtime.workdir).join(config.migration_id())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("{} is missing", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is malformed", path.display()))
}

/// The registry (empty when none was written).
pub fn registry(config: &MigrationConfig) -> anyhow::Result<Registry> {
    let p = dir(config).join("checkpoints.json");
    if !p.exists() {
        return Ok(Registry::default());
    }
    read_json(&p)
}

fn save(config: &MigrationConfig, r: &Registry) -> anyhow::Result<()> {
    let p = dir(config).join("checkpoints.json");
    let tmp = p.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(r)?)?;
    std::fs::rename(&tmp, &p)?;
    Ok(())
}

/// The configuration of the next source checkpoint's ingestion-only migration.
pub fn next_source_name(config: &MigrationConfig) -> anyhow::Result<(u32, String)> {
    let n = registry(config)?.source.len() as u32 + 1;
    Ok((n, format!("{}-checkpoint-{n}", config.migration.name)))
}

/// Records the source checkpoint the ingestion-only migration `child` took.
pub fn record_source(
    config: &MigrationConfig,
    n: u32,
    child: &str,
) -> anyhow::Result<SourceCheckpoint> {
    let path = PathBuf::from(&config.runtime.workdir)
        .join(child)
        .join("manifest.json");
    let bytes = std::fs::read(&path).with_context(|| format!("{} is missing", path.display()))?;
    let manifest: Manifest = serde_json::from_slice(&bytes)?;
    let cp = SourceCheckpoint {
        n,
        migration: child.to_string(),
        checkpoint_time: manifest.checkpoint_time.clone(),
        snapshot_id: manifest.snapshot_id.clone(),
        consistency: manifest.consistency.clone(),
        manifest_sha256: sensei_runtime::store::sha256_hex(&bytes),
    };
    let mut r = registry(config)?;
    r.source.push(cp.clone());
    save(config, &r)?;
    Ok(cp)
}

/// Copies the delivered target's tables (any engine: the streaming
/// read-back of `connectors::readback`) into Parquet files as the next
/// target checkpoint.
pub fn take_target(config: &MigrationConfig) -> anyhow::Result<TargetCheckpoint> {
    let d = dir(config);
    let mapping: MappingSpec = read_json(&d.join("mapping.json"))
        .context("the migration has no mapping yet: run sensei migrate first")?;
    if let sensei_connectors::url::Location::Sqlite(path) =
        sensei_connectors::url::parse(&config.target.url, "target")?
    {
        anyhow::ensure!(
            path.exists(),
            "the target {} does not exist: deliver first",
            path.display()
        );
    }
    let mut r = registry(config)?;
    let n = r.target.len() as u32 + 1;
    let out = d.join("checkpoints").join(format!("target-{n}"));
    std::fs::create_dir_all(&out)?;
    let taken_at = sensei_agents::artifacts::now_rfc3339();
    let mut target = sensei_connectors::readback::ReadBack::open(
        &config.target.url,
        &sensei_agents::deliver::target_options(config),
        &config.target.namespace,
    )?;
    let mut partitions = Vec::new();
    for t in &mapping.tables {
        // Streamed: each batch goes to the file as it is read, so a table
        // is never held in memory whole.
        let file = out.join(format!("{}.parquet", t.target));
        let mut writer: Option<sensei_flight::parquet_io::PartitionWriter> = None;
        let mut failed = None;
        let schema = target
            .read(&t.target, &[], None, 10_000, |b| {
                if writer.is_none() {
                    match sensei_flight::parquet_io::PartitionWriter::create(&file, b.schema()) {
                        Ok(w) => writer = Some(w),
                        Err(e) => failed = Some(e),
                    }
                }
                if let (Some(w), None) = (writer.as_mut(), &failed) {
                    failed = w.write(&b).err();
                }
                Ok(())
            })
            .with_context(|| format!("reading target table {} back", t.target))?;
        if let Some(e) = failed {
            return Err(e.into());
        }
        let writer = match writer {
            Some(w) => w,
            // An empty table: a file of its schema and no rows.
            None => sensei_flight::parquet_io::PartitionWriter::create(&file, schema)?,
        };
        let stats = writer.finish()?;
        partitions.push(PartitionRef {
            id: format!(
                "{}/checkpoints/target-{n}/{}",
                config.migration_id(),
                t.target
            ),
            table: t.target.clone(),
            partition: 0,
            node_id: String::new(),
            endpoint: String::new(),
            uri: format!("file://{}", file.display()),
            rows: stats.rows,
            bytes: stats.bytes,
            sha256: stats.sha256,
        });
    }
    let cp = TargetCheckpoint {
        n,
        taken_at,
        partitions,
    };
    r.target.push(cp.clone());
    save(config, &r)?;
    Ok(cp)
}

/// Every checkpoint, 0 included, as lines for a terminal.
pub fn list(config: &MigrationConfig) -> anyhow::Result<Vec<String>> {
    let d = dir(config);
    let manifest: Manifest = read_json(&d.join("manifest.json"))
        .context("the migration has not ingested yet: run sensei migrate first")?;
    let r = registry(config)?;
    let mut out = vec![format!(
        "source 0  {}  {}  (the migration's ingestion)",
        manifest.checkpoint_time, manifest.consistency
    )];
    for s in &r.source {
        out.push(format!(
            "source {}  {}  {}  ({})",
            s.n, s.checkpoint_time, s.consistency, s.migration
        ));
    }
    if d.join("transformation.json").exists() {
        out.push("target 0  the transformed partitions".into());
    }
    for t in &r.target {
        out.push(format!(
            "target {}  {}  the delivered target, {} tables",
            t.n,
            t.taken_at,
            t.partitions.len()
        ));
    }
    Ok(out)
}

/// Runs the query suite on the recorded pair (source `s`, target `t`):
/// the outcome document, and whether every query passed, one failed, or
/// some could not be decided (exit 0, 2, 3).
pub async fn replay(
    config: &MigrationConfig,
    s: u32,
    t: u32,
) -> anyhow::Result<(i32, serde_json::Value)> {
    let d = dir(config);
    let workdir = PathBuf::from(&config.runtime.workdir);
    let manifest: Manifest = read_json(&d.join("manifest.json"))?;
    let mapping: MappingSpec = read_json(&d.join("mapping.json"))
        .context("the migration has no mapping yet: run sensei migrate first")?;
    let r = registry(config)?;
    let (source_manifest, source_time) = if s == 0 {
        (manifest.clone(), manifest.checkpoint_time.clone())
    } else {
        let cp = r
            .source
            .iter()
            .find(|c| c.n == s)
            .with_context(|| format!("no source checkpoint {s}: see sensei checkpoint list"))?;
        let m: Manifest = read_json(&workdir.join(&cp.migration).join("manifest.json"))?;
        (m, cp.checkpoint_time.clone())
    };
    let (target_parts, target_time): (Vec<PartitionRef>, String) = if t == 0 {
        let doc: serde_json::Value = read_json(&d.join("transformation.json"))
            .context("the migration has not transformed yet")?;
        (
            serde_json::from_value(doc["partitions"].clone())?,
            "transformation".into(),
        )
    } else {
        let cp = r
            .target
            .iter()
            .find(|c| c.n == t)
            .with_context(|| format!("no target checkpoint {t}: see sensei checkpoint list"))?;
        (cp.partitions.clone(), cp.taken_at.clone())
    };
    let queries = sensei_agents::queries::replay_suite(&config.verification, &mapping, &manifest)?;
    let task = QueryTask {
        source_tables: source_manifest
            .tables
            .iter()
            .map(|t| (t.name.clone(), t.partitions.clone()))
            .collect(),
        target_tables: mapping
            .tables
            .iter()
            .map(|m| {
                (
                    m.target.clone(),
                    target_parts
                        .iter()
                        .filter(|p| p.table == m.target)
                        .cloned()
                        .collect(),
                )
            })
            .collect(),
        queries,
        foreign_keys: Vec::new(),
        tolerance: sensei_agents::equivalence::Tolerance::from_config(&config.verification),
    };
    let result =
        sensei_agents::queries::run_with(sensei_agents::queries::Reader::Files, &task).await?;
    let failed = result.queries.iter().filter(|q| q.result == "fail").count();
    let undecided = result
        .queries
        .iter()
        .filter(|q| q.result == "inconclusive")
        .count();
    let status = match (failed, undecided) {
        (0, 0) => "PASS",
        (0, _) => "INCONCLUSIVE",
        _ => "FAIL",
    };
    let doc = serde_json::json!({
        "migration_id": config.migration_id(),
        "source_checkpoint": {"n": s, "time": source_time, "snapshot_id": source_manifest.snapshot_id},
        "target_checkpoint": {"n": t, "time": target_time},
        "replayed_at": sensei_agents::artifacts::now_rfc3339(),
        "status": status,
        "queries": result.queries,
    });
    let out = d.join("checkpoints");
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join(format!("replay-s{s}-t{t}.json")),
        serde_json::to_vec_pretty(&doc)?,
    )?;
    let code = match status {
        "PASS" => 0,
        "FAIL" => 2,
        _ => 3,
    };
    Ok((code, doc))
}
