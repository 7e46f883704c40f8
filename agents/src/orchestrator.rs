//! The head's side of a migration (the Architect's planning and each phase's
//! finalisation). For each phase in order it plans the tasks, waits for the
//! agents to finish them, turns their results into the phase's checkpoint
//! artifact, records the artifact's hash with the scheduler (which only then
//! accepts the next phase's tasks), and publishes it on the phase's topic.
//!
//! Every step is idempotent and reads its inputs from durable state, so a head
//! restarted at any point resumes by calling [`Orchestrator::step`] again.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use sensei_connectors::files::{BadRows, SourceOptions};
use sensei_connectors::source::Source;
use sensei_connectors::sqlite::{quote, SqliteTarget};
use sensei_connectors::table::TableInfo;
use sensei_connectors::url::{parse, Location};
use sensei_runtime::config::MigrationConfig;
use sensei_runtime::secret::redact_url;
use sensei_runtime::signing::SigningKey;
use sensei_runtime::store::{sha256_hex, ArtifactStore};
use sensei_runtime::topic::{publish_json, EventLog, Topic};
use sensei_scheduler::{MigrationState, Phase, Policy, Scheduler, TaskRecord, TaskSpec};

use crate::artifacts::*;
use crate::deliver::{DeliverResult, DeliverTask};
use crate::digest::TableDigest;
use crate::error::{AgentError, Result};
use crate::scout::{IngestResult, IngestTask};
use crate::transform::{TransformResult, TransformTask};
use crate::validate::{VerifyResult, VerifyTask};

/// The head's migration driver.
pub struct Orchestrator {
    scheduler: Arc<Scheduler>,
    /// Source sessions holding an exported snapshot open while a migration's
    /// ingestion runs (dropping one ends its transaction).
    snapshots: std::sync::Mutex<std::collections::HashMap<String, Source>>,
    artifacts: ArtifactStore,
    events: Arc<dyn EventLog>,
    key: Arc<SigningKey>,
}

/// How a submitted migration starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// A new migration.
    New,
    /// An unfinished one, resumed.
    Resumed,
    /// One that had already ended in this state.
    Ended(MigrationState),
}

/// The topic a phase's completion is published on.
fn completion_topic(phase: Phase) -> Topic {
    match phase {
        Phase::Ingestion => Topic::IngestionComplete,
        Phase::Transformation => Topic::TransformationComplete,
        Phase::Verification => Topic::VerificationComplete,
        Phase::Delivery => Topic::DeliveryComplete,
    }
}

/// A phase's completion record: the manifest itself for ingestion, the
/// artifact's address and SHA-256 for the others.
fn completion_document(
    id: &str,
    phase: Phase,
    bytes: &[u8],
    uri: &str,
    sha: &str,
) -> Result<serde_json::Value> {
    Ok(if phase == Phase::Ingestion {
        serde_json::from_slice(bytes)?
    } else {
        serde_json::json!({"migration_id": id, "artifact": uri, "sha256": sha})
    })
}

/// A batch read back, seen by the post-delivery copy.
pub type Tap<'a> = &'a mut dyn FnMut(&RecordBatch) -> sensei_connectors::Result<()>;

/// Reads a delivered table back from `target` as the certified columns and
/// types (`certified`, or the columns of `order` as stored) and computes its
/// digest and Merkle root with the certificate's algorithms; each batch is
/// also shown to `tap`. Streaming: the table is never held whole.
pub fn read_back(
    target: &mut sensei_connectors::readback::ReadBack,
    table: &str,
    order: &[String],
    certified: Option<&arrow::datatypes::SchemaRef>,
    key: &[String],
    tap: Tap<'_>,
) -> Result<(TableDigest, String)> {
    let mut d = TableDigest::default();
    let mut m = crate::digest::MerkleDigest::default();
    target.read(table, order, certified, 8192, |b| {
        d.add_batch(&b);
        m.add_batch(&b, key);
        tap(&b)
    })?;
    Ok((d, m.root()))
}

/// The rows of one table read back, copied into a Parquet file for the
/// post-delivery replay.
struct Copy {
    table: String,
    path: PathBuf,
    writer: Option<sensei_flight::parquet_io::PartitionWriter>,
}

impl Copy {
    fn new(dir: Option<&PathBuf>, table: &str) -> Option<Copy> {
        dir.map(|d| Copy {
            table: table.to_string(),
            path: d.join(format!("{}.parquet", id_part(table))),
            writer: None,
        })
    }

    fn tap(&mut self, b: &RecordBatch) -> sensei_connectors::Result<()> {
        let err =
            |e: sensei_flight::FlightError| sensei_connectors::ConnectorError::TargetNotWritable {
                path: self.path.display().to_string(),
                message: e.to_string(),
            };
        if self.writer.is_none() {
            self.writer = Some(
                sensei_flight::parquet_io::PartitionWriter::create(&self.path, b.schema())
                    .map_err(err)?,
            );
        }
        match self.writer.as_mut() {
            Some(w) => w.write(b).map_err(err),
            None => Ok(()),
        }
    }

    fn finish(self) -> Result<Option<PartitionRef>> {
        let Some(w) = self.writer else {
            return Ok(None);
        };
        let stats = w.finish()?;
        Ok(Some(PartitionRef {
            id: format!("post-delivery/{}", self.table),
            table: self.table,
            partition: 0,
            node_id: String::new(),
            endpoint: String::new(),
            uri: format!("file://{}", self.path.display()),
            rows: stats.rows,
            bytes: stats.bytes,
            sha256: stats.sha256,
        }))
    }
}

/// Runs `read` with a tap that copies into `copy` (when there is one), and
/// collects the copy's partition.
fn with_copy(
    copy: Option<Copy>,
    copies: &mut Vec<PartitionRef>,
    read: impl FnOnce(Tap<'_>) -> Result<(TableDigest, String)>,
) -> Result<(TableDigest, String)> {
    match copy {
        Some(mut c) => {
            let out = read(&mut |b| c.tap(b))?;
            copies.extend(c.finish()?);
            Ok(out)
        }
        None => read(&mut |_| Ok(())),
    }
}

/// `check table` of every check with `result`.
fn checks_with(checks: &[serde_json::Value], result: &str) -> Vec<String> {
    checks
        .iter()
        .filter(|c| c["result"] == result)
        .map(|c| {
            format!(
                "{} {}",
                c["check"].as_str().unwrap_or(""),
                c["table"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// Constraints or indexes set aside for a load: (table, name, definition).
type Deferred = Vec<(String, String, String)>;

/// Per table read back from the target: its digest and Merkle root.
type ReadBack = BTreeMap<String, (TableDigest, String)>;

/// Rows breaking a foreign key, per (table, referenced table).
type FkViolations = Vec<(String, String, u64)>;

/// Checks a mapping spec (perhaps edited by hand) against the manifest:
/// known statuses, source tables and columns that exist, and SQL that
/// DataFusion can plan over the source's types (an unknown column or a cast
/// that cannot be made is refused with the entry and the reason).
async fn check_spec(spec: &MappingSpec, manifest: &Manifest) -> Result<()> {
    let bad = |entry: String, message: String| AgentError::Malformed {
        what: format!("mapping spec entry {entry}"),
        message,
    };
    for t in &spec.tables {
        let source =
            match t.sources.first() {
                Some(s) => Some(manifest.tables.iter().find(|m| m.name == *s).ok_or_else(
                    || {
                        bad(
                            t.target.clone(),
                            format!("source table {s} is not in the manifest"),
                        )
                    },
                )?),
                None => None,
            };
        for c in &t.columns {
            let entry = format!("{}.{}", t.target, c.target);
            if !matches!(
                c.status.as_str(),
                "auto" | "approved" | "review" | "rejected"
            ) {
                return Err(bad(
                    entry,
                    format!(
                        "status {:?} is not auto, approved, review or rejected",
                        c.status
                    ),
                ));
            }
            for sc in &c.sources {
                let (st, col) = sc.rsplit_once('.').unwrap_or(("", sc));
                let readable =
                    |m: &ManifestTable| m.name == st && m.columns.iter().any(|k| k.name == col);
                let known = source.is_some_and(readable)
                    || t.joins.iter().any(|j| {
                        j.table == st
                            && manifest
                                .tables
                                .iter()
                                .any(|m| m.name == j.table && readable(m))
                    });
                if !known {
                    return Err(bad(entry, format!("source column {sc} does not exist")));
                }
            }
        }
        if let Some(m) = source {
            let schema_of = |m: &ManifestTable| {
                std::sync::Arc::new(arrow::datatypes::Schema::new(
                    m.columns
                        .iter()
                        .map(|c| {
                            arrow::datatypes::Field::new(
                                &c.name,
                                c.arrow_type
                                    .parse()
                                    .unwrap_or(arrow::datatypes::DataType::Utf8),
                                true,
                            )
                        })
                        .collect::<Vec<_>>(),
                ))
            };
            let schema = schema_of(m);
            let mut lookups = Vec::new();
            for j in &t.joins {
                let r = manifest
                    .tables
                    .iter()
                    .find(|x| x.name == j.table)
                    .ok_or_else(|| {
                        bad(
                            t.target.clone(),
                            format!("joined table {} is not in the manifest", j.table),
                        )
                    })?;
                lookups.push((j.alias.clone(), schema_of(r)));
            }
            for c in &t.columns {
                let one = TableMapping {
                    columns: vec![c.clone()],
                    ..t.clone()
                };
                crate::transform::plan_sql(
                    schema.clone(),
                    &crate::architect::sql_for(&one),
                    &lookups,
                )
                .await
                .map_err(|e| {
                    bad(
                        format!("{}.{}", t.target, c.target),
                        format!("expression {:?}: {e}", c.expression),
                    )
                })?;
            }
        }
    }
    Ok(())
}

/// `target.schema` value that reads the target schema from the target database.
pub const TARGET_SCHEMA_FROM_TARGET: &str = "@target";

/// The staged partitions of the tables a target table's SQL joins.
fn lookups_of(tm: &TableMapping, manifest: &Manifest) -> Vec<crate::transform::LookupRef> {
    tm.joins
        .iter()
        .filter_map(|j| {
            manifest.tables.iter().find(|t| t.name == j.table).map(|t| {
                crate::transform::LookupRef {
                    alias: j.alias.clone(),
                    partitions: t.partitions.clone(),
                }
            })
        })
        .collect()
}

/// The Great Expectations suite of a target table, if the configured folder has one.
fn suite_for(config: &MigrationConfig, table: &str) -> Result<Option<serde_json::Value>> {
    if config.verification.expectations_dir.is_empty() {
        return Ok(None);
    }
    let path =
        std::path::Path::new(&config.verification.expectations_dir).join(format!("{table}.json"));
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| AgentError::Malformed {
        what: path.display().to_string(),
        message: e.to_string(),
    })?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| AgentError::Malformed {
            what: format!("expectation suite {}", path.display()),
            message: e.to_string(),
        })
}

/// The per-column string modes of one target table from `table.column=mode, ...`.
fn string_modes(spec: &str, table: &str) -> BTreeMap<String, String> {
    spec.split(',')
        .filter_map(|item| {
            let (col, mode) = item.trim().split_once('=')?;
            let (t, c) = col.trim().rsplit_once('.')?;
            (t == table).then(|| (c.to_string(), mode.trim().to_string()))
        })
        .collect()
}

/// The keyed-hash key file of a configuration, if any.
fn hash_key_file(config: &MigrationConfig) -> Option<String> {
    let f = &config.transformation.pii_hash_key_file;
    (!f.is_empty()).then(|| f.clone())
}

/// The source options of a configuration.
pub fn source_options(config: &MigrationConfig) -> Result<SourceOptions> {
    let partition_keys = SourceOptions::parse_partition_keys(&config.ingestion.partition_key)
        .map_err(|message| sensei_connectors::ConnectorError::Unreadable {
            path: "ingestion.partition_key".into(),
            message: format!("{message}; write table.column, another_table.column"),
        })?;
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

/// Whether `sql` names `table` (a cheap over-approximation: the table is
/// loaded when its name appears as a word).
fn mentions(sql: &str, table: &str) -> bool {
    if table.contains(|c: char| !(c.is_alphanumeric() || c == '_')) {
        // `schema.table` and other names that are not one word.
        return sql.contains(table);
    }
    sql.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .any(|w| w == table)
}

fn id_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn results<T: serde::de::DeserializeOwned>(tasks: &[TaskRecord]) -> Result<Vec<(TaskRecord, T)>> {
    tasks
        .iter()
        .map(|t| {
            let v = t.result.clone().ok_or_else(|| AgentError::Malformed {
                what: format!("result of task {}", t.id),
                message: "missing".into(),
            })?;
            let r = serde_json::from_value(v).map_err(|e| AgentError::Malformed {
                what: format!("result of {} task {} ({})", t.phase, t.id, t.table),
                message: e.to_string(),
            })?;
            Ok((t.clone(), r))
        })
        .collect()
}

impl Orchestrator {
    /// A driver over the head's scheduler, artifact store, event log and key.
    pub fn new(
        scheduler: Arc<Scheduler>,
        artifacts: ArtifactStore,
        events: Arc<dyn EventLog>,
        key: Arc<SigningKey>,
    ) -> Self {
        Orchestrator {
            scheduler,
            snapshots: Default::default(),
            artifacts,
            events,
            key,
        }
    }

    /// The scheduler.
    pub fn scheduler(&self) -> &Arc<Scheduler> {
        &self.scheduler
    }

    /// Checks a configuration against the world before any work starts: the
    /// source is a readable SQLite database, the target can be written, the
    /// target schema file (if any) is readable.
    pub fn preflight(config: &MigrationConfig) -> Result<()> {
        parse(&config.target.url, "target")?;
        Source::open_with(&config.source.url, None, &source_options(config)?)?;
        sensei_connectors::target::Target::check(
            &config.target.url,
            &crate::deliver::target_options(config),
            &config.target.namespace,
        )?;
        if !config.target.schema.is_empty() && config.target.schema != TARGET_SCHEMA_FROM_TARGET {
            let ddl = std::fs::read_to_string(&config.target.schema).map_err(|e| {
                sensei_connectors::ConnectorError::Unreadable {
                    path: config.target.schema.clone(),
                    message: format!("target schema file: {e}"),
                }
            })?;
            crate::architect::ddl::parse(&ddl, &config.target.schema)?;
        }
        Ok(())
    }

    /// Registers a migration (or finds it), after the preflight checks.
    /// `restart` forgets earlier progress and artifacts of the same migration.
    pub async fn submit(&self, config: &MigrationConfig, restart: bool) -> Result<(String, Start)> {
        let c = config.clone();
        tokio::task::spawn_blocking(move || Self::preflight(&c))
            .await
            .map_err(|e| AgentError::Malformed {
                what: "preflight".into(),
                message: e.to_string(),
            })??;
        let id = config.migration_id();
        // A rerun with other settings: the first phase they affect starts
        // again (and says so); the work before it is kept.
        let mut starts_over = None;
        if !restart {
            if let Ok(stored) = self.config(&id) {
                starts_over = self.apply_changed_settings(&id, &stored, config).await?;
            }
        }
        if restart || starts_over.is_some() {
            self.scheduler.reset_migration(&id)?;
            self.artifacts.delete_prefix(&id).await?;
        }
        // Never persisted: passwords. The stored configuration (and every task
        // payload built from it) carries `***`; sessions take the password from
        // the environment (PGPASSWORD), which `sensei migrate` fills from the URL.
        let config_json = config.redacted().to_string();
        let start = match self.scheduler.create_migration(
            &id,
            &config_json,
            Policy {
                max_ingestion_tasks: config.source.max_sessions,
                ..Policy::from_config(&config.scheduler)
            },
        )? {
            None => Start::New,
            Some(state @ (MigrationState::Running | MigrationState::AwaitingReview)) => {
                if state == MigrationState::AwaitingReview {
                    self.scheduler
                        .set_migration_state(&id, MigrationState::Running, None)?;
                }
                Start::Resumed
            }
            Some(MigrationState::Halted) => {
                // A person reran a halted migration: give its failed tasks another go.
                self.scheduler.resume_migration(&id)?;
                Start::Resumed
            }
            Some(other) => Start::Ended(other),
        };
        if let Some(why) = starts_over {
            self.scheduler.event(&id, "warn", &why)?;
        }
        Ok((id, start))
    }

    /// Takes a rerun's settings into a migration that exists. Returns why it
    /// must start over when a source or ingestion key changed (everything
    /// depends on what was extracted). Otherwise the stored configuration
    /// takes the new keys: transformation keys as they are (they act when
    /// the mapping is planned; decisions already made stay), verification
    /// keys by verifying again when verification has begun and nothing was
    /// delivered (the earlier certificate set aside under `superseded/`),
    /// delivery and target keys only before delivery began (batch sequence
    /// numbers are idempotency keys: they must not change mid-way).
    async fn apply_changed_settings(
        &self,
        id: &str,
        stored: &MigrationConfig,
        config: &MigrationConfig,
    ) -> Result<Option<String>> {
        let mut changed = stored.changed_keys(config);
        // An input file fixed since it was extracted counts as a changed
        // source: the same check as before every read (size and time).
        let manifest = format!("{id}/manifest.json");
        if self.artifacts.exists(&manifest).await? {
            let m: Manifest = self.get_json(&manifest).await?;
            for t in &m.tables {
                if let Some(info) = &t.file {
                    if sensei_connectors::files::check_unchanged(info).is_err() {
                        changed.push(format!("source file {}", info.path.display()));
                    }
                }
            }
        }
        if changed.is_empty() {
            return Ok(None);
        }
        let section = |k: &String| k.split('.').next().unwrap_or_default().to_string();
        let of = |names: &[&str]| -> Vec<String> {
            changed
                .iter()
                .filter(|k| names.contains(&section(k).as_str()))
                .cloned()
                .collect()
        };
        let (state, _) = self.scheduler.migration_state(id)?;
        if state == MigrationState::Completed {
            // Delivered: nothing is redone behind the user's back.
            self.scheduler.event(
                id,
                "warn",
                &format!(
                    "{} changed after this migration was delivered: nothing is redone; run with --restart to migrate anew with them",
                    changed.join(", ")
                ),
            )?;
            return Ok(None);
        }
        let mut ingestion = of(&["source", "ingestion"]);
        ingestion.extend(
            changed
                .iter()
                .filter(|k| k.starts_with("source file "))
                .cloned(),
        );
        if !ingestion.is_empty() {
            return Ok(Some(format!(
                "{} changed since this migration was ingested: it starts over from ingestion",
                ingestion.join(", ")
            )));
        }
        let mut next = config.clone();
        let delivery = of(&["delivery", "target"]);
        if !delivery.is_empty() && self.scheduler.progress(id, Phase::Delivery)?.total > 0 {
            next.delivery = stored.delivery.clone();
            next.target = stored.target.clone();
            self.scheduler.event(
                id,
                "warn",
                &format!(
                    "{} changed after delivery began: the delivery keeps its settings; run with --restart to deliver with the new ones",
                    delivery.join(", ")
                ),
            )?;
        }
        self.scheduler
            .set_migration_config(id, &next.redacted().to_string())?;
        let verification = of(&["verification"]);
        let verifying = self.scheduler.progress(id, Phase::Verification)?.total > 0;
        let delivered = self.scheduler.progress(id, Phase::Delivery)?.done > 0;
        if !verification.is_empty() && verifying {
            if delivered {
                self.scheduler.event(
                    id,
                    "warn",
                    &format!(
                        "{} changed after delivery: the certificate stands; run with --restart to verify and deliver anew",
                        verification.join(", ")
                    ),
                )?;
            } else {
                let dir = self.artifacts.local_path(id);
                let aside = dir.join("superseded");
                for name in ["certificate.json", "expectations.json"] {
                    let from = dir.join(name);
                    if from.exists() {
                        let io = |path: &std::path::Path| {
                            let path = path.to_path_buf();
                            move |source| sensei_runtime::RuntimeError::Io {
                                what: "setting the earlier certificate aside",
                                path,
                                source,
                            }
                        };
                        std::fs::create_dir_all(&aside).map_err(io(&aside))?;
                        let to = aside.join(format!("{}-{name}", self.scheduler.now_ms()));
                        std::fs::rename(&from, &to).map_err(io(&from))?;
                    }
                }
                self.scheduler.reset_from(
                    id,
                    Phase::Verification,
                    &format!(
                        "{} changed: verification starts again (the earlier certificate is under superseded/)",
                        verification.join(", ")
                    ),
                )?;
            }
        }
        Ok(None)
    }

    fn config(&self, id: &str) -> Result<MigrationConfig> {
        Ok(serde_json::from_str(&self.scheduler.migration_config(id)?)?)
    }

    async fn put_json<T: serde::Serialize>(&self, path: &str, doc: &T) -> Result<String> {
        let mut bytes = serde_json::to_vec_pretty(doc)?;
        bytes.push(b'\n');
        Ok(self.artifacts.put(path, Bytes::from(bytes)).await?)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let bytes = self.artifacts.get(path).await?;
        serde_json::from_slice(&bytes).map_err(|e| AgentError::Malformed {
            what: path.to_string(),
            message: e.to_string(),
        })
    }

    /// Advances a migration as far as it can go now; returns its state.
    pub async fn step(&self, id: &str) -> Result<MigrationState> {
        self.step_until(id, None).await
    }

    /// Like [`Orchestrator::step`], but plans no phase after `until`.
    pub async fn step_until(&self, id: &str, until: Option<Phase>) -> Result<MigrationState> {
        let (state, _) = self.scheduler.migration_state(id)?;
        if state != MigrationState::Running {
            return Ok(state);
        }
        self.scheduler.expire_leases()?;
        for phase in Phase::ALL {
            if self.scheduler.checkpoint(id, phase)?.is_some() {
                continue;
            }
            if until.is_some_and(|u| phase > u) {
                return Ok(MigrationState::Running);
            }
            // Counted first: the tasks themselves (with their results) are
            // read only when the phase is complete.
            let mut progress = self.scheduler.progress(id, phase)?;
            if phase == Phase::Ingestion && progress.total > 0 && self.snapshot_lost(id).await? {
                // The session holding the exported snapshot died with an earlier
                // head: partitions read at it and partitions read now would not
                // be one instant. Extract everything again at a new snapshot.
                self.scheduler.reset_phase(
                    id,
                    phase,
                    "the source snapshot was lost with the previous head; extracting again at a new snapshot",
                )?;
                progress = Default::default();
            }
            if progress.total == 0 {
                if let Some(previous) = phase.previous() {
                    self.hand_off(id, previous)?;
                }
                self.plan(id, phase).await?;
                return Ok(self.scheduler.migration_state(id)?.0);
            }
            if progress.done == progress.total {
                let tasks = self.scheduler.phase_tasks(id, phase)?;
                self.finalize(id, phase, &tasks).await?;
                let (state, _) = self.scheduler.migration_state(id)?;
                if state != MigrationState::Running {
                    return Ok(state);
                }
                continue;
            }
            return Ok(MigrationState::Running);
        }
        self.scheduler
            .set_migration_state(id, MigrationState::Completed, None)?;
        Ok(MigrationState::Completed)
    }

    /// Whether this migration's ingestion was planned at an exported snapshot
    /// that no session of this head holds any more.
    async fn snapshot_lost(&self, id: &str) -> Result<bool> {
        if self
            .snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(id)
        {
            return Ok(false);
        }
        let path = format!("{id}/discovery.json");
        if !self.artifacts.exists(&path).await? {
            return Ok(false);
        }
        let discovery: serde_json::Value = self.get_json(&path).await?;
        Ok(discovery["snapshot_id"].is_string() || discovery["consistency"] == "read-lock")
    }

    async fn plan(&self, id: &str, phase: Phase) -> Result<()> {
        let config = self.config(id)?;
        let specs = match phase {
            Phase::Ingestion => self.plan_ingestion(id, &config).await?,
            Phase::Transformation => self.plan_transformation(id).await?,
            Phase::Verification => self.plan_verification(id).await?,
            Phase::Delivery => self.plan_delivery(id, &config).await?,
        };
        if self.scheduler.migration_state(id)?.0 == MigrationState::AwaitingReview {
            return Ok(());
        }
        if specs.is_empty() {
            // Nothing to do in this phase (an empty source): close it at once.
            self.scheduler.submit_tasks(id, phase, &[])?;
            self.finalize(id, phase, &[]).await?;
            return Ok(());
        }
        self.scheduler.submit_tasks(id, phase, &specs)?;
        Ok(())
    }

    async fn finalize(&self, id: &str, phase: Phase, tasks: &[TaskRecord]) -> Result<()> {
        let path = match phase {
            Phase::Ingestion => self.finalize_ingestion(id, tasks).await?,
            Phase::Transformation => self.finalize_transformation(id, tasks).await?,
            Phase::Verification => self.finalize_verification(id, tasks).await?,
            Phase::Delivery => self.finalize_delivery(id, tasks).await?,
        };
        let topic = completion_topic(phase);
        let bytes = self.artifacts.get(&path).await?;
        let sha = sha256_hex(&bytes);
        let uri = self.artifacts.uri(&path);
        self.scheduler.record_checkpoint(id, phase, &uri, &sha)?;
        publish_json(
            self.events.as_ref(),
            topic,
            id,
            &completion_document(id, phase, &bytes, &uri, &sha)?,
        )?;
        Ok(())
    }

    /// The hand-off from `previous` to the phase after it goes through the
    /// topics: this migration's consumer group (`sensei-<id>`) reads the
    /// completion records of `previous` from its committed offset, takes
    /// the one that names the recorded checkpoint (its SHA-256; the
    /// manifest itself for ingestion) and commits past it. A record lost
    /// between the checkpoint and its publication (a crash there) is
    /// published again first, so every phase a consumer sees started after
    /// its predecessor's document was on the topic.
    fn hand_off(&self, id: &str, previous: Phase) -> Result<()> {
        let Some(checkpoint) = self.scheduler.checkpoint(id, previous)? else {
            return Ok(());
        };
        let topic = completion_topic(previous);
        let group = format!("sensei-{id}");
        let log = self.events.as_ref();
        // The last record of this checkpoint in offsets [from, to).
        let find = |from: u64, to: u64| -> Result<Option<u64>> {
            let mut at = from;
            let mut found = None;
            while at < to {
                let records = log.read(topic, at, 1_000)?;
                let Some(last) = records.last() else { break };
                at = last.offset + 1;
                for r in records.iter().filter(|r| r.key == id && r.offset < to) {
                    let doc: serde_json::Value =
                        serde_json::from_slice(&r.value).unwrap_or_default();
                    let names_it = if previous == Phase::Ingestion {
                        doc["migration_id"] == id && !doc["tables"].is_null()
                    } else {
                        doc["sha256"] == checkpoint.sha256.as_str()
                    };
                    if names_it {
                        found = Some(r.offset);
                    }
                }
            }
            Ok(found)
        };
        let committed = log.committed(&group, topic)?;
        if let Some(offset) = find(committed, u64::MAX)? {
            log.commit(&group, topic, offset + 1)?;
            return Ok(());
        }
        // Handed off already (a rerun planning the same phase again).
        if committed > 0 && find(0, committed)?.is_some() {
            return Ok(());
        }
        let next = {
            {
                let path = checkpoint
                    .uri
                    .strip_prefix("file://")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(&checkpoint.uri));
                let bytes = std::fs::read(&path).map_err(|e| AgentError::Malformed {
                    what: format!("checkpoint {}", path.display()),
                    message: e.to_string(),
                })?;
                let doc =
                    completion_document(id, previous, &bytes, &checkpoint.uri, &checkpoint.sha256)?;
                self.scheduler.event(
                    id,
                    "warn",
                    &format!(
                        "{} had no record of this migration's {previous} checkpoint (lost in a crash?): published it again",
                        topic.name()
                    ),
                )?;
                publish_json(log, topic, id, &doc)? + 1
            }
        };
        log.commit(&group, topic, next)?;
        Ok(())
    }

    // ---- Phase 1 -------------------------------------------------------

    async fn plan_ingestion(&self, id: &str, config: &MigrationConfig) -> Result<Vec<TaskSpec>> {
        let url = config.source.url.clone();
        // Discovery runs inside the snapshot every Scout will import; the
        // session that exported it is held open until ingestion is finalised.
        let bytes_limit = config.ingestion.partition_bytes;
        let options = source_options(config)?;
        let task_options = options.clone();
        let lock = config.source.mysql_consistency == "lock";
        let (tables, catalog, snapshot, locked, holder, row_bytes, columnless) =
            tokio::task::spawn_blocking(move || -> Result<_> {
                let mut source = Source::open_with(&url, None, &options)?;
                let locked = match source {
                    Source::MySql(_) if !lock => false,
                    _ => source.hold_read_lock()?,
                };
                let snapshot = source.export_snapshot()?;
                let tables = source.tables()?;
                let columnless = source.columnless_tables()?;
                let catalog = source.catalog(&tables)?;
                // Average row size per table, from the Arrow size of a small sample.
                let mut row_bytes = BTreeMap::new();
                if bytes_limit > 0 {
                    for t in &tables {
                        let sample = source.sample(t, 1_000)?;
                        let rows: usize = sample.iter().map(|b| b.num_rows()).sum();
                        let bytes: usize = sample.iter().map(|b| b.get_array_memory_size()).sum();
                        if let Some(per_row) = bytes.checked_div(rows) {
                            row_bytes.insert(t.name.clone(), per_row.max(1) as u64);
                        }
                    }
                }
                Ok((
                    tables, catalog, snapshot, locked, source, row_bytes, columnless,
                ))
            })
            .await
            .map_err(|e| AgentError::Malformed {
                what: "schema discovery".into(),
                message: e.to_string(),
            })??;
        if !columnless.is_empty() {
            self.scheduler.event(
                id,
                "warn",
                &format!(
                    "tables without any column, left out (nothing to migrate): {}",
                    columnless.join(", ")
                ),
            )?;
        }
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
        self.put_json(&format!("{id}/discovery.json"), &discovery)
            .await?;
        let mut specs = Vec::new();
        for t in &tables {
            // Keys per partition: the row limit, or fewer when rows are wide.
            let mut per = config.ingestion.partition_rows;
            if let Some(b) = row_bytes.get(&t.name) {
                per = per.min((bytes_limit / b).max(1));
            }
            let per = per as i64;
            let ranges: Vec<Option<(i64, i64)>> = match (&t.splits, t.rowid_range) {
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
                    let mut v = Vec::new();
                    let mut start = lo;
                    while start <= hi {
                        let end = start.saturating_add(per - 1).min(hi);
                        v.push(Some((start, end)));
                        if end == i64::MAX {
                            break;
                        }
                        start = end + 1;
                    }
                    v
                }
                (None, None) => vec![None],
            };
            for (i, range) in ranges.into_iter().enumerate() {
                let task = IngestTask {
                    source_url: config.source.url.clone(),
                    snapshot: snapshot.clone(),
                    table: t.clone(),
                    range,
                    partition_id: format!("{id}/staging/ingestion/{}/{i:05}", id_part(&t.name)),
                    partition: i as u32,
                    sample_rows: config.ingestion.profile_sample_rows,
                    options: task_options.clone(),
                };
                specs.push(TaskSpec {
                    table: t.name.clone(),
                    partition: i as u32,
                    payload: serde_json::to_value(task)?,
                    preferred_node: None,
                });
            }
        }
        Ok(specs)
    }

    async fn finalize_ingestion(&self, id: &str, tasks: &[TaskRecord]) -> Result<String> {
        // Every partition is read: the snapshot may go.
        let holder = self
            .snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        // A blocking client owns a runtime of its own: close it off the async threads.
        let _ = tokio::task::spawn_blocking(move || drop(holder)).await;
        let config = self.config(id)?;
        let discovery: serde_json::Value = self.get_json(&format!("{id}/discovery.json")).await?;
        let tables: Vec<TableInfo> = serde_json::from_value(discovery["tables"].clone())?;
        let mut by_table: BTreeMap<String, Vec<PartitionRef>> = BTreeMap::new();
        let mut profiles: BTreeMap<String, crate::scout::TableProfile> = BTreeMap::new();
        let mut rejected: BTreeMap<String, (u64, Vec<String>)> = BTreeMap::new();
        let mut changed: BTreeMap<String, sensei_connectors::source::Changes> = BTreeMap::new();
        for (_, r) in results::<IngestResult>(tasks)? {
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
            migration_id: id.to_string(),
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
        let path = format!("{id}/manifest.json");
        self.put_json(&path, &manifest).await?;
        Ok(path)
    }

    // ---- Phase 2 -------------------------------------------------------

    /// The identity mapping: every source table to a target table of the same
    /// name and columns, each column at confidence 1.0.
    fn identity_mapping(id: &str, manifest: &Manifest) -> MappingSpec {
        MappingSpec {
            version: ARTIFACT_VERSION,
            migration_id: id.to_string(),
            auto_approval_threshold: 0.92,
            approved_all: false,
            unmapped_sources: Vec::new(),
            tables: manifest
                .tables
                .iter()
                .map(|t| TableMapping {
                    target: t.name.clone(),
                    sources: vec![t.name.clone()],
                    primary_key: t.primary_key.clone(),
                    joins: Vec::new(),
                    columns: t
                        .columns
                        .iter()
                        .map(|c| ColumnMapping {
                            target: c.name.clone(),
                            expression: quote(&c.name),
                            sources: vec![format!("{}.{}", t.name, c.name)],
                            confidence: 1.0,
                            status: "auto".into(),
                            reasons: vec!["identical name and type (mirror of the source)".into()],
                            reviewed_by: None,
                            reviewed_at: None,
                            alternatives: Vec::new(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// The mapping a migration runs with: the spec `sensei plan` wrote and
    /// `sensei review` edited, checked against the manifest; else one planned
    /// now from the target schema (the identity without one).
    pub async fn mapping(&self, id: &str) -> Result<MappingSpec> {
        let config = self.config(id)?;
        let manifest: Manifest = self.get_json(&format!("{id}/manifest.json")).await?;
        let path = format!("{id}/mapping.json");
        if self.artifacts.exists(&path).await? {
            let mut spec: MappingSpec = self.get_json(&path).await?;
            check_spec(&spec, &manifest).await?;
            // A review file named after planning (or edited since) still
            // counts, until the Workers have been given the spec.
            let planned = self.scheduler.progress(id, Phase::Transformation)?.total > 0;
            if !planned && self.apply_review_file(id, &config, &mut spec)? > 0 {
                self.put_json(&path, &spec).await?;
            }
            return Ok(spec);
        }
        let spec = match self.target_schema(&config).await? {
            None => Self::identity_mapping(id, &manifest),
            Some(targets) => {
                let extra = crate::architect::matcher::Dictionary::parse_extra(
                    &config.transformation.abbreviations,
                )
                .map_err(|m| AgentError::Malformed {
                    what: "transformation.abbreviations".into(),
                    message: m,
                })?;
                let policy = crate::architect::PiiPolicy::parse(
                    &config.transformation.pii_policy,
                    &config.transformation.pii_policy_by_kind,
                )
                .map_err(|m| AgentError::Malformed {
                    what: "transformation.pii_policy".into(),
                    message: m,
                })?;
                crate::architect::plan(
                    id,
                    &manifest,
                    &targets,
                    &crate::architect::matcher::Dictionary::with_extra(&extra),
                    config.transformation.auto_approval_threshold,
                    &policy,
                )?
            }
        };
        let mut spec = spec;
        self.apply_review_file(id, &config, &mut spec)?;
        self.put_json(&path, &spec).await?;
        Ok(spec)
    }

    /// Applies `transformation.review_file` to a spec; returns the entries changed.
    fn apply_review_file(
        &self,
        id: &str,
        config: &MigrationConfig,
        spec: &mut MappingSpec,
    ) -> Result<usize> {
        if config.transformation.review_file.is_empty() {
            return Ok(0);
        }
        let file = std::path::Path::new(&config.transformation.review_file);
        let review = crate::architect::review::ReviewFile::read(file)?;
        let n = review.apply_to(spec, &now_rfc3339(), &file.display().to_string())?;
        if n > 0 {
            self.scheduler.event(
                id,
                "info",
                &format!(
                    "review file {}: {n} mapping entries decided by {}",
                    file.display(),
                    review.reviewed_by
                ),
            )?;
        }
        Ok(n)
    }

    /// The target schema: the DDL file, or (`@target`) the tables the target
    /// database already holds; None without either (the target mirrors the source).
    async fn target_schema(
        &self,
        config: &MigrationConfig,
    ) -> Result<Option<Vec<crate::architect::ddl::TargetTable>>> {
        if config.target.schema == TARGET_SCHEMA_FROM_TARGET {
            let (url, options, namespace) = (
                config.target.url.clone(),
                crate::deliver::target_options(config),
                config.target.namespace.clone(),
            );
            return tokio::task::spawn_blocking(move || {
                crate::architect::ddl::from_target(&url, &options, &namespace).map(Some)
            })
            .await
            .map_err(|e| AgentError::Malformed {
                what: "reading the target's schema".into(),
                message: e.to_string(),
            })?;
        }
        if config.target.schema.is_empty() {
            return Ok(None);
        }
        let file = &config.target.schema;
        let ddl = std::fs::read_to_string(file).map_err(|e| {
            sensei_connectors::ConnectorError::Unreadable {
                path: file.clone(),
                message: format!("target schema file: {e}"),
            }
        })?;
        let mut read = crate::architect::ddl::read_schema(&ddl, file)?;
        if !read.skipped.is_empty() {
            tracing::debug!(file = %file, skipped = read.skipped.len(), "schema statements that define no table");
        }
        // A dump of a database Sensei delivered into holds its ledger.
        read.tables
            .retain(|t| t.name != sensei_connectors::batch::LEDGER_TABLE);
        Ok(Some(read.tables))
    }

    /// The foreign keys between migrated target tables: those the target
    /// schema declares, or (a mirror) the source's.
    async fn target_foreign_keys(
        &self,
        config: &MigrationConfig,
        manifest: &Manifest,
        mapping: &MappingSpec,
    ) -> Result<Vec<crate::queries::ForeignKey>> {
        let migrated: std::collections::BTreeSet<&str> =
            mapping.tables.iter().map(|t| t.target.as_str()).collect();
        let all: Vec<crate::queries::ForeignKey> = match self.target_schema(config).await? {
            Some(tables) => tables
                .iter()
                .flat_map(|t| {
                    t.foreign_keys
                        .iter()
                        .map(|(cols, parent, pcols)| crate::queries::ForeignKey {
                            table: t.name.clone(),
                            columns: cols.clone(),
                            parent: parent.clone(),
                            parent_columns: pcols.clone(),
                        })
                })
                .collect(),
            None => manifest
                .catalog
                .tables
                .iter()
                .flat_map(|(t, c)| {
                    c.foreign_keys.iter().map(|fk| crate::queries::ForeignKey {
                        table: t.clone(),
                        columns: fk.columns.clone(),
                        parent: fk.references.clone(),
                        parent_columns: fk.referenced_columns.clone(),
                    })
                })
                .collect(),
        };
        Ok(all
            .into_iter()
            .filter(|k| {
                migrated.contains(k.table.as_str())
                    && migrated.contains(k.parent.as_str())
                    && !k.columns.is_empty()
                    && k.columns.len() == k.parent_columns.len()
            })
            .collect())
    }

    async fn plan_transformation(&self, id: &str) -> Result<Vec<TaskSpec>> {
        let config = self.config(id)?;
        let manifest: Manifest = self.get_json(&format!("{id}/manifest.json")).await?;
        if config.transformation.strict {
            let changed: Vec<String> = manifest
                .tables
                .iter()
                .flat_map(|t| {
                    t.changed_values.iter().flat_map(move |(column, kinds)| {
                        kinds
                            .iter()
                            .map(move |(what, n)| format!("{}.{column}: {n} {what}", t.name))
                    })
                })
                .collect();
            if !changed.is_empty() {
                self.scheduler.set_migration_state(
                    id,
                    MigrationState::Halted,
                    Some(&format!(
                        "strict: values would change on the way in: {}; fix them in the source, or migrate without --strict (transformation.strict) to count them in the manifest and the receipt",
                        changed.join(", ")
                    )),
                )?;
                return Ok(Vec::new());
            }
        }
        let mut mapping = self.mapping(id).await?;
        let waiting = crate::architect::pending(&mapping);
        if !waiting.is_empty() && config.transformation.approve_all {
            crate::architect::review::approve_waiting(
                &mut mapping,
                "--approve-all",
                &now_rfc3339(),
            );
            mapping.approved_all = true;
            self.scheduler.event(
                id,
                "warn",
                &format!(
                    "--approve-all approved {} mapping entries that waited for review",
                    waiting.len()
                ),
            )?;
        } else if !waiting.is_empty() {
            self.scheduler.event(
                id,
                "warn",
                &format!("mapping entries wait for review: {}", waiting.join(", ")),
            )?;
            self.scheduler.set_migration_state(
                id,
                MigrationState::AwaitingReview,
                Some(&format!(
                    "{} mapping entries wait for review; run sensei review, or migrate with --approve-all",
                    waiting.len()
                )),
            )?;
            return Ok(Vec::new());
        }
        if let Some(targets) = self.target_schema(&config).await? {
            let nulls = crate::architect::nulls_into_not_null(&mapping, &targets);
            if !nulls.is_empty() {
                self.put_json(&format!("{id}/mapping.json"), &mapping)
                    .await?;
                self.scheduler.set_migration_state(
                    id,
                    MigrationState::AwaitingReview,
                    Some(&format!(
                        "target columns NOT NULL without a default would receive NULL: {}; map each (sensei review --expression TABLE.COLUMN=SQL), give it a default in the target schema, or drop the constraint, then migrate again",
                        nulls.join(", ")
                    )),
                )?;
                return Ok(Vec::new());
            }
        }
        self.put_json(&format!("{id}/mapping.json"), &mapping)
            .await?;
        if !mapping.unmapped_sources.is_empty() {
            self.scheduler.event(
                id,
                "warn",
                &format!(
                    "source tables not in the target schema, not migrated: {}",
                    mapping.unmapped_sources.join(", ")
                ),
            )?;
        }
        let mut specs = Vec::new();
        for tm in &mapping.tables {
            let sql = crate::architect::sql_for(tm);
            self.artifacts
                .put(
                    &format!("{id}/sql/{}.sql", id_part(&tm.target)),
                    Bytes::from(sql.clone()),
                )
                .await?;
            let Some(mt) = tm
                .sources
                .first()
                .and_then(|s| manifest.tables.iter().find(|t| t.name == *s))
            else {
                continue;
            };
            for p in &mt.partitions {
                let task = TransformTask {
                    target_table: tm.target.clone(),
                    input: p.clone(),
                    sql: sql.clone(),
                    hash_key_file: hash_key_file(&config),
                    lookups: lookups_of(tm, &manifest),
                    primary_key: tm.primary_key.clone(),
                    columns: tm
                        .columns
                        .iter()
                        .filter(|c| c.status != "rejected")
                        .map(|c| (c.target.clone(), c.expression.clone()))
                        .collect(),
                    output_id: format!(
                        "{id}/staging/transformation/{}/{:05}",
                        id_part(&tm.target),
                        p.partition
                    ),
                };
                specs.push(TaskSpec {
                    table: tm.target.clone(),
                    partition: p.partition,
                    payload: serde_json::to_value(task)?,
                    preferred_node: Some(p.node_id.clone()),
                });
            }
        }
        let (source_ns, target_ns) = (
            redact_url(&config.source.url),
            redact_url(&config.target.url),
        );
        self.put_json(
            &format!("{id}/lineage.json"),
            &crate::architect::lineage::edges(&mapping),
        )
        .await?;
        self.put_json(
            &format!("{id}/openlineage.json"),
            &crate::architect::lineage::openlineage(
                &mapping,
                &config.source.url,
                (&config.target.url, &config.target.namespace),
                &now_rfc3339(),
            ),
        )
        .await?;
        self.artifacts
            .put(
                &format!("{id}/lineage.cypher"),
                Bytes::from(crate::architect::lineage::cypher(
                    &mapping, &source_ns, &target_ns,
                )),
            )
            .await?;
        Ok(specs)
    }

    async fn finalize_transformation(&self, id: &str, tasks: &[TaskRecord]) -> Result<String> {
        let mut partitions: Vec<PartitionRef> = results::<TransformResult>(tasks)?
            .into_iter()
            .map(|(_, r)| r.partition)
            .collect();
        partitions.sort_by(|a, b| (&a.table, a.partition).cmp(&(&b.table, b.partition)));
        let mapping: MappingSpec = self.get_json(&format!("{id}/mapping.json")).await?;
        let mut sql = BTreeMap::new();
        for t in &mapping.tables {
            let path = format!("{id}/sql/{}.sql", id_part(&t.target));
            sql.insert(
                t.target.clone(),
                sha256_hex(&self.artifacts.get(&path).await?),
            );
        }
        let doc = serde_json::json!({
            "version": ARTIFACT_VERSION,
            "migration_id": id,
            "mapping_sha256": sha256_hex(&self.artifacts.get(&format!("{id}/mapping.json")).await?),
            "lineage_sha256": sha256_hex(&self.artifacts.get(&format!("{id}/lineage.json")).await?),
            "sql_sha256": sql,
            "partitions": partitions,
        });
        let path = format!("{id}/transformation.json");
        self.put_json(&path, &doc).await?;
        Ok(path)
    }

    // ---- Phase 3 -------------------------------------------------------

    async fn transformed(&self, id: &str) -> Result<Vec<PartitionRef>> {
        let doc: serde_json::Value = self.get_json(&format!("{id}/transformation.json")).await?;
        Ok(serde_json::from_value(doc["partitions"].clone())?)
    }

    async fn plan_verification(&self, id: &str) -> Result<Vec<TaskSpec>> {
        let config = self.config(id)?;
        let manifest: Manifest = self.get_json(&format!("{id}/manifest.json")).await?;
        let mapping: MappingSpec = self.get_json(&format!("{id}/mapping.json")).await?;
        let transformed = self.transformed(id).await?;
        let mut specs = Vec::new();
        // Per-column string modes are added per table below.
        let tolerance = crate::equivalence::Tolerance::from_config(&config.verification);
        // Rules the target schema's names promise, per target table.
        let semantic: BTreeMap<String, Vec<serde_json::Value>> = match (
            config.verification.semantic_checks.as_str(),
            self.target_schema(&config).await?,
        ) {
            ("off", _) | (_, None) => BTreeMap::new(),
            (_, Some(targets)) => mapping
                .tables
                .iter()
                .filter_map(|tm| {
                    let t = targets.iter().find(|t| t.name == tm.target)?;
                    Some((
                        tm.target.clone(),
                        crate::semantic::expectations(t, tm, &manifest),
                    ))
                })
                .collect(),
        };
        for tm in &mapping.tables {
            let source = tm
                .sources
                .first()
                .and_then(|s| manifest.tables.iter().find(|t| t.name == *s))
                .map(|t| t.partitions.clone())
                .unwrap_or_default();
            let task = VerifyTask {
                table: tm.target.clone(),
                source_columns: tm.columns.iter().map(|c| c.target.clone()).collect(),
                sql: Some(crate::architect::sql_for(tm)),
                hash_key_file: hash_key_file(&config),
                lookups: lookups_of(tm, &manifest),
                key: tm.primary_key.clone(),
                expectations: crate::semantic::merge(
                    suite_for(&config, &tm.target)?,
                    semantic.get(&tm.target).cloned().unwrap_or_default(),
                    &tm.target,
                ),
                max_queries: config.verification.max_queries,
                stat_thresholds: Some((
                    config.verification.ks_threshold,
                    config.verification.tvd_threshold,
                )),
                stats_sample_rows: config.verification.stats_sample_rows,
                tolerance: Some(crate::equivalence::Tolerance {
                    string_modes: string_modes(&config.verification.string_modes, &tm.target),
                    ..tolerance.clone()
                }),
                source,
                target: transformed
                    .iter()
                    .filter(|p| p.table == tm.target)
                    .cloned()
                    .collect(),
            };
            specs.push(TaskSpec {
                table: tm.target.clone(),
                partition: 0,
                payload: serde_json::to_value(task)?,
                preferred_node: None,
            });
        }
        if let Some(task) = self
            .cross_table_task(&config, &manifest, &mapping, &transformed, tolerance)
            .await?
        {
            specs.push(TaskSpec {
                table: crate::queries::CROSS_TABLE.into(),
                partition: 0,
                payload: serde_json::to_value(task)?,
                preferred_node: None,
            });
        }
        Ok(specs)
    }

    /// The cross-table task: the user's queries and the foreign-key coverage
    /// queries, rewritten through the mapping, and the target's foreign keys;
    /// None when there is none of them.
    async fn cross_table_task(
        &self,
        config: &MigrationConfig,
        manifest: &Manifest,
        mapping: &MappingSpec,
        transformed: &[PartitionRef],
        tolerance: crate::equivalence::Tolerance,
    ) -> Result<Option<crate::queries::QueryTask>> {
        let written = crate::queries::user_queries(&config.verification)?;
        let mut queries = Vec::new();
        for (name, sql) in written {
            let target_sql = crate::queries::rewrite(&sql, mapping, manifest);
            queries.push(crate::queries::QueryCheck {
                name,
                source_sql: sql,
                target_sql,
            });
        }
        // Generated coverage queries run only where the mapping copies the keys.
        for (name, sql) in crate::queries::coverage_queries(manifest) {
            if let Ok(target_sql) = crate::queries::rewrite(&sql, mapping, manifest) {
                queries.push(crate::queries::QueryCheck {
                    name,
                    source_sql: sql,
                    target_sql: Ok(target_sql),
                });
            }
        }
        let foreign_keys = self.target_foreign_keys(config, manifest, mapping).await?;
        if queries.is_empty() && foreign_keys.is_empty() {
            return Ok(None);
        }
        // Every table a query could read: the source tables and the targets.
        let source_tables = manifest
            .tables
            .iter()
            .filter(|t| queries.iter().any(|q| mentions(&q.source_sql, &t.name)))
            .map(|t| (t.name.clone(), t.partitions.clone()))
            .collect();
        let target_tables = mapping
            .tables
            .iter()
            .filter(|t| {
                foreign_keys
                    .iter()
                    .any(|k| k.table == t.target || k.parent == t.target)
                    || queries
                        .iter()
                        .any(|q| q.target_sql.as_ref().is_ok_and(|s| mentions(s, &t.target)))
            })
            .map(|t| {
                (
                    t.target.clone(),
                    transformed
                        .iter()
                        .filter(|p| p.table == t.target)
                        .cloned()
                        .collect(),
                )
            })
            .collect();
        Ok(Some(crate::queries::QueryTask {
            source_tables,
            target_tables,
            queries,
            foreign_keys,
            tolerance,
        }))
    }

    async fn finalize_verification(&self, id: &str, tasks: &[TaskRecord]) -> Result<String> {
        let path = format!("{id}/certificate.json");
        if self.artifacts.exists(&path).await? {
            // Signed before an interruption: a certificate is never re-issued.
            return Ok(path);
        }
        let mut checks = Vec::new();
        let mut tables = serde_json::Map::new();
        let mut pass = true;
        // Some check could not decide: INCONCLUSIVE unless another one failed.
        let mut undecided = false;
        let mapping: MappingSpec = self.get_json(&format!("{id}/mapping.json")).await?;
        let transformed = self.transformed(id).await?;
        let (cross, per_table): (Vec<TaskRecord>, Vec<TaskRecord>) = tasks
            .iter()
            .cloned()
            .partition(|t| t.table == crate::queries::CROSS_TABLE);
        let verified = results::<VerifyResult>(&per_table)?;
        let counts: BTreeMap<String, u64> = verified
            .iter()
            .map(|(t, r)| (t.table.clone(), r.target.rows))
            .collect();
        let mut validations = serde_json::Map::new();
        for (t, r) in &verified {
            let Some(v) = &r.expectations else {
                continue;
            };
            // Row counts of other tables are known here, not on the Validator.
            let mut results: Vec<serde_json::Value> = v["results"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|mut x| {
                    if x["expectation_config"]["type"] == "expect_table_row_count_to_equal_other_table" {
                        let other = x["expectation_config"]["kwargs"]["other_table_name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string();
                        let theirs = counts.get(&other).copied();
                        x["success"] = serde_json::json!(theirs == Some(r.target.rows));
                        x["result"] = serde_json::json!({"observed_value": r.target.rows, "other_table_row_count": theirs});
                    }
                    x
                })
                .collect();
            let severity = self.config(id)?.verification.semantic_checks;
            if let Some(c) = crate::semantic::check(&t.table, &mut results, &severity) {
                pass &= c["result"] != "fail";
                checks.push(c);
            }
            if results.is_empty() {
                continue;
            }
            let doc = crate::expectations::summarize(
                &serde_json::json!({"name": v["suite_name"]}),
                results,
            );
            let ok = doc["success"] == true;
            pass &= ok;
            // Counts only: the signed payload carries no floating-point numbers.
            let st = &doc["statistics"];
            checks.push(serde_json::json!({"check": "expectations", "table": t.table,
                "evaluated": st["evaluated_expectations"], "successful": st["successful_expectations"],
                "unsuccessful": st["unsuccessful_expectations"], "result": if ok { "pass" } else { "fail" }}));
            validations.insert(t.table.clone(), doc);
        }
        if !validations.is_empty() {
            self.put_json(&format!("{id}/expectations.json"), &validations)
                .await?;
        }
        for (t, r) in verified {
            if let Some(why) = &r.unreadable {
                // Nothing else about this table can be decided.
                undecided = true;
                checks.push(serde_json::json!({"check": "readable", "table": t.table,
                    "error": why, "result": "inconclusive"}));
                tables.insert(t.table.clone(), serde_json::json!({"unreadable": why}));
                continue;
            }
            let count_ok = r.source.rows == r.target.rows;
            let digest_ok = r.source.digest == r.target.digest;
            // Row by row, within tolerance: what decides. The exact digest must
            // agree too unless every difference lies within tolerance.
            let rows_ok = r.row_check.as_ref().is_none_or(|d| d.equal());
            let tolerated = r
                .row_check
                .as_ref()
                .is_some_and(|d| d.within_tolerance + d.doubtful > 0);
            pass &= count_ok && rows_ok && (digest_ok || tolerated);
            if !r.stats.is_empty() {
                let failing: Vec<&crate::stats::ColumnStat> =
                    r.stats.iter().filter(|c| !c.pass).collect();
                pass &= failing.is_empty();
                checks.push(serde_json::json!({"check": "distributions", "table": t.table,
                    "columns": r.stats, "result": if failing.is_empty() { "pass" } else { "fail" }}));
            }
            if let Some(q) = &r.replay {
                let verdict = q.verdict();
                pass &= verdict != "fail";
                undecided |= verdict == "inconclusive";
                checks.push(
                    serde_json::json!({"check": "query_replay", "table": t.table,
                    "queries": q.queries, "passed": q.passed, "failures": q.failures,
                    "inconclusive": q.inconclusive, "undecided": q.undecided,
                    "result": verdict}),
                );
            }
            if let Some(d) = &r.row_check {
                undecided |= d.verdict() == "inconclusive";
                checks.push(serde_json::json!({"check": "row_equivalence", "table": t.table,
                    "key": "primary key of the target", "expected": d.expected, "missing": d.missing,
                    "extra": d.extra, "changed": d.changed, "within_tolerance": d.within_tolerance,
                    "doubtful": d.doubtful, "differences": d.examples, "result": d.verdict()}));
            }
            checks.push(serde_json::json!({"check": "row_count", "table": t.table, "source": r.source.rows, "target": r.target.rows,
                "result": if count_ok { "pass" } else { "fail" }}));
            checks.push(serde_json::json!({"check": "content_digest", "table": t.table, "source": r.source.digest, "target": r.target.digest,
                "result": if digest_ok { "pass" } else if tolerated && rows_ok { "within_tolerance" } else { "fail" }}));
            let key = mapping
                .tables
                .iter()
                .find(|m| m.target == t.table)
                .map(|m| m.primary_key.clone())
                .unwrap_or_default();
            let columns: Vec<(String, String)> =
                match transformed.iter().find(|p| p.table == t.table) {
                    Some(p) => {
                        let path = PathBuf::from(p.uri.trim_start_matches("file://"));
                        let (schema, _) = sensei_flight::parquet_io::open_partition(&path, 1)?;
                        schema
                            .fields()
                            .iter()
                            .map(|f| (f.name().clone(), f.data_type().to_string()))
                            .collect()
                    }
                    None => Vec::new(),
                };
            tables.insert(
                t.table.clone(),
                serde_json::json!({"rows": r.target.rows, "digest": r.target.digest, "merkle_root": r.merkle_root,
                    "merkle_key": key, "columns": columns}),
            );
        }
        for (_, r) in results::<crate::queries::QueryResult>(&cross)? {
            for q in r.queries {
                pass &= q.result != "fail";
                undecided |= q.result == "inconclusive";
                let kind = if q.name.starts_with("fk_coverage") {
                    "fk_coverage"
                } else {
                    "source_query"
                };
                checks.push(serde_json::json!({"check": kind, "table": q.name,
                    "source_sql": q.source_sql, "target_sql": q.target_sql,
                    "detail": q.detail, "result": q.result}));
            }
            for i in r.integrity {
                let result = match (&i.error, i.orphans) {
                    (Some(_), _) => "inconclusive",
                    (None, 0) => "pass",
                    (None, _) => "fail",
                };
                pass &= result != "fail";
                undecided |= result == "inconclusive";
                checks.push(serde_json::json!({"check": "referential_integrity",
                    "table": i.key.table, "columns": i.key.columns, "parent": i.key.parent,
                    "parent_columns": i.key.parent_columns, "rows": i.rows, "orphans": i.orphans,
                    "orphan_keys": i.examples, "error": i.error, "result": result}));
            }
        }
        let mut evidence = BTreeMap::new();
        for name in [
            "manifest.json",
            "mapping.json",
            "lineage.json",
            "transformation.json",
            "expectations.json",
        ] {
            if name == "expectations.json"
                && !self.artifacts.exists(&format!("{id}/{name}")).await?
            {
                continue;
            }
            evidence.insert(
                name.to_string(),
                sha256_hex(&self.artifacts.get(&format!("{id}/{name}")).await?),
            );
        }
        // The generated SQL the Workers ran, table by table.
        for t in &mapping.tables {
            let name = format!("sql/{}.sql", id_part(&t.target));
            evidence.insert(
                name.clone(),
                sha256_hex(&self.artifacts.get(&format!("{id}/{name}")).await?),
            );
        }
        let manifest: Manifest = self.get_json(&format!("{id}/manifest.json")).await?;
        for p in manifest
            .tables
            .iter()
            .flat_map(|t| &t.partitions)
            .chain(&self.transformed(id).await?)
        {
            evidence.insert(p.id.clone(), p.sha256.clone());
        }
        for c in &checks {
            let result = c["result"].as_str().unwrap_or("unknown").to_string();
            metrics::counter!(sensei_runtime::metrics::VERIFICATION_CHECKS, "result" => result)
                .increment(1);
        }
        let status = match (pass, undecided) {
            (false, _) => "FAIL",
            (true, true) => "INCONCLUSIVE",
            (true, false) => "PASS",
        };
        let mapping: MappingSpec = self.get_json(&format!("{id}/mapping.json")).await?;
        let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
        for c in mapping.tables.iter().flat_map(|t| &t.columns) {
            *by_status.entry(c.status.clone()).or_default() += 1;
        }
        let mapping_summary = serde_json::json!({
            "approved_all": mapping.approved_all,
            "entries_by_status": by_status,
            "note": if mapping.approved_all { "the user approved every entry that waited for review with --approve-all" } else { "" },
        });
        let payload = serde_json::json!({
            "version": ARTIFACT_VERSION,
            "migration_id": id,
            "issued_at": now_rfc3339(),
            "status": status,
            "method": "row counts and order-independent content digests (sum of SHA-256 of canonical rows mod 2^256) per table: the mapping's SQL replayed by the Validator over the source partitions, against the transformed partitions",
            "mapping": mapping_summary,
            "checks": checks,
            "tables": tables,
            "evidence_sha256": evidence,
            "public_key": hex::encode(self.key.public_key()),
            "key_id": self.key.key_id(),
        });
        let cert = sign_certificate(payload, &self.key)?;
        let mut bytes = serde_json::to_vec_pretty(&cert)?;
        bytes.push(b'\n');
        self.artifacts.put_once(&path, Bytes::from(bytes)).await?;
        if pass && undecided {
            let open = checks_with(&checks, "inconclusive");
            self.scheduler.set_migration_state(
                id,
                MigrationState::AwaitingReview,
                Some(&format!(
                    "certificate INCONCLUSIVE ({}); nothing was delivered: read the certificate's undecided checks, then sensei review --accept-inconclusive to deliver, or sensei migrate --restart to verify anew",
                    open.join(", ")
                )),
            )?;
        }
        if !pass {
            let failed = checks_with(&checks, "fail");
            self.scheduler.set_migration_state(
                id,
                MigrationState::Failed,
                Some(&format!(
                    "certificate FAIL ({}); nothing was delivered",
                    failed.join(", ")
                )),
            )?;
        }
        Ok(path)
    }

    // ---- Phase 4 -------------------------------------------------------

    async fn plan_delivery(&self, id: &str, config: &MigrationConfig) -> Result<Vec<TaskSpec>> {
        let cert: SignedCertificate = self.get_json(&format!("{id}/certificate.json")).await?;
        if cert.payload["status"] == "INCONCLUSIVE"
            && !self
                .artifacts
                .exists(&format!("{id}/{INCONCLUSIVE_REVIEW}"))
                .await?
        {
            // Nothing is delivered on an undecided certificate without a person's word.
            self.scheduler.set_migration_state(
                id,
                MigrationState::AwaitingReview,
                Some("certificate INCONCLUSIVE: waiting for sensei review --accept-inconclusive (or sensei migrate --restart)"),
            )?;
            return Ok(Vec::new());
        }
        let mapping: MappingSpec = self.get_json(&format!("{id}/mapping.json")).await?;
        let transformed = self.transformed(id).await?;
        let url = config.target.url.clone();
        let namespace = config.target.namespace.clone();
        let options = crate::deliver::target_options(config);
        let ddl = if config.target.schema.is_empty()
            || config.target.schema == TARGET_SCHEMA_FROM_TARGET
        {
            None
        } else {
            Some((
                std::fs::read_to_string(&config.target.schema).map_err(|e| {
                    sensei_connectors::ConnectorError::Unreadable {
                        path: config.target.schema.clone(),
                        message: e.to_string(),
                    }
                })?,
                config.target.schema.clone(),
            ))
        };
        let resync = config.delivery.resync;
        let migration_id = id.to_string();
        // Mirroring: text widths, constraints and indexes come from the source.
        let mirror = config.target.schema.is_empty();
        let manifest: Manifest = self.get_json(&format!("{id}/manifest.json")).await?;
        let mut extras = if mirror {
            crate::mirror::extras(&manifest, &mapping)
        } else {
            BTreeMap::new()
        };
        let mut schemas = Vec::new();
        for t in &mapping.tables {
            if let Some(p) = transformed.iter().find(|p| p.table == t.target) {
                let path = PathBuf::from(p.uri.trim_start_matches("file://"));
                let (schema, _) = sensei_flight::parquet_io::open_partition(&path, 1)?;
                let widths = if mirror {
                    crate::mirror::declared(&manifest, t)
                } else {
                    BTreeMap::new()
                };
                schemas.push((t.target.clone(), schema, t.primary_key.clone(), widths));
            }
        }
        let detached =
            tokio::task::spawn_blocking(move || -> Result<(Deferred, Deferred, Vec<String>, Vec<String>)> {
                let mut target =
                    sensei_connectors::target::Target::open_in(&url, &options, &namespace)?;
                // The tables this delivery creates (the schema file's and the
                // mapped ones), told apart from those already there: a
                // delivery that halts before its first batch drops them again.
                let mut candidates: Vec<String> = schemas.iter().map(|(n, _, _, _)| n.clone()).collect();
                if let Some((ddl, file)) = &ddl {
                    candidates.extend(
                        crate::architect::ddl::parse(ddl, file)
                            .map(|ts| ts.into_iter().map(|t| t.name).collect::<Vec<_>>())
                            .unwrap_or_default(),
                    );
                }
                candidates.sort();
                candidates.dedup();
                let mut before = Vec::new();
                for n in &candidates {
                    if !target.has_table(n)? {
                        before.push(n.clone());
                    }
                }
                if let Some((ddl, _)) = ddl {
                    target.apply_ddl(&ddl)?;
                }
                let mut created = Vec::new();
                for (name, schema, pk, widths) in &schemas {
                    if target.ensure_table(name, schema, pk, widths)? {
                        created.push(name.clone());
                    }
                }
                let mut new_tables = Vec::new();
                for n in before {
                    if target.has_table(&n)? {
                        new_tables.push(n);
                    }
                }
                // A mirrored table gets its source's constraints and indexes once,
                // when it is created (all tables exist by now for the foreign keys);
                // unique keys and indexes of every table first, since a foreign
                // key may reference another table's unique key.
                let mut notes = Vec::new();
                let mut keys = Vec::new();
                for name in &created {
                    if let Some(mut e) = extras.remove(name) {
                        keys.push((name, std::mem::take(&mut e.foreign_keys)));
                        notes.extend(target.add_mirror_extras(name, &e));
                    }
                }
                for (name, foreign_keys) in keys {
                    let e = sensei_connectors::target::MirrorExtras {
                        foreign_keys,
                        ..Default::default()
                    };
                    notes.extend(target.add_mirror_extras(name, &e));
                }
                // PostgreSQL enforces foreign keys row by row: tables loading in
                // parallel would trip them, so they are added back after the load
                // (MySQL sessions load with foreign-key checks off); secondary
                // indexes are built once then, not maintained per row.
                let names: Vec<String> = schemas.iter().map(|(n, _, _, _)| n.clone()).collect();
                let (fks, indexes) = match &mut target {
                    sensei_connectors::target::Target::Postgres(pg) => (
                        pg.detach_foreign_keys(&names)?,
                        pg.detach_indexes(&names)?,
                    ),
                    sensei_connectors::target::Target::MySql(my) => {
                        (Vec::new(), my.detach_indexes(&names)?)
                    }
                    _ => (Vec::new(), Vec::new()),
                };
                // Re-sync: the target tables emptied and their ledger rows
                // forgotten once foreign keys are detached, before any batch.
                if resync {
                    for name in &names {
                        let n = target.clear_for_resync(name, &migration_id)?;
                        notes.push(format!(
                            "re-sync: {name} emptied ({n} removed) and its ledger rows forgotten; delivering the current source"
                        ));
                    }
                }
                Ok((fks, indexes, notes, new_tables))
            })
            .await
            .map_err(|e| AgentError::Malformed {
                what: "target preparation".into(),
                message: e.to_string(),
            })??;
        let (keys, indexes, notes, created) = detached;
        self.put_json(&format!("{id}/{CREATED_TABLES}"), &created)
            .await?;
        for n in &notes {
            // The event is logged once, by the scheduler that records it.
            if n.starts_with("re-sync:") {
                self.scheduler.event(id, "info", n)?;
            } else {
                self.scheduler.event(id, "warn", &format!("mirror: {n}"))?;
            }
        }
        for (name, list) in [(DEFERRED_FOREIGN_KEYS, keys), (DEFERRED_INDEXES, indexes)] {
            let path = format!("{id}/{name}");
            if !list.is_empty() && !self.artifacts.exists(&path).await? {
                self.put_json(&path, &list).await?;
            }
        }
        transformed
            .into_iter()
            .map(|p| {
                let task = DeliverTask {
                    table: p.table.clone(),
                    ledger_partition: format!("{}/{:05}", p.table, p.partition),
                    input: p.clone(),
                    target: redact_url(&config.target.url),
                    namespace: config.target.namespace.clone(),
                    batch_rows: config.delivery.batch_rows,
                    connection: crate::deliver::TargetConnection::from_section(&config.target),
                };
                Ok(TaskSpec {
                    table: p.table.clone(),
                    partition: p.partition,
                    payload: serde_json::to_value(task)?,
                    preferred_node: Some(p.node_id.clone()),
                })
            })
            .collect()
    }

    /// A delivery that halted before any batch landed takes back the tables
    /// it created, so the target is as it was before the migration (the
    /// ledger, too, comes only with a first batch), and forgets its tasks:
    /// the rerun the halt message advises plans delivery again, with the
    /// target schema as it is then. Nothing is dropped once a batch of this
    /// migration is in the ledger.
    async fn take_back_empty_delivery(&self, id: &str) -> Result<()> {
        let path = format!("{id}/{CREATED_TABLES}");
        if self.scheduler.checkpoint(id, Phase::Delivery)?.is_some()
            || !self.artifacts.exists(&path).await?
        {
            return Ok(());
        }
        let created: Vec<String> = self.get_json(&path).await?;
        if created.is_empty() {
            return Ok(());
        }
        let config = self.config(id)?;
        let options = crate::deliver::target_options(&config);
        let (url, namespace, migration) = (
            config.target.url.clone(),
            config.target.namespace.clone(),
            id.to_string(),
        );
        let tables = created.clone();
        let dropped = tokio::task::spawn_blocking(move || -> Result<bool> {
            let mut target =
                sensei_connectors::target::Target::open_in(&url, &options, &namespace)?;
            if target.batches_delivered(&migration)? > 0 {
                return Ok(false);
            }
            for t in &tables {
                target.drop_table(t)?;
            }
            Ok(true)
        })
        .await
        .map_err(|e| AgentError::Malformed {
            what: "taking back an empty delivery".into(),
            message: e.to_string(),
        })??;
        if !dropped {
            return Ok(());
        }
        self.put_json(&path, &Vec::<String>::new()).await?;
        let (_, why) = self.scheduler.migration_state(id)?;
        let why = format!(
            "{}; no batch was delivered: the tables this delivery created ({}) were dropped again, the target is as it was; fix the cause, then rerun the same command",
            why.unwrap_or_else(|| "delivery halted".into()),
            created.join(", ")
        );
        self.scheduler.reset_from(
            id,
            Phase::Delivery,
            "delivery halted before its first batch",
        )?;
        self.scheduler
            .set_migration_state(id, MigrationState::Halted, Some(&why))?;
        Ok(())
    }

    /// Post-delivery validation: the query suite (the user's source
    /// queries, foreign-key coverage, per-table counts and per-column
    /// aggregates), rewritten through the mapping, on the data just read back
    /// from the target against the source snapshot. A difference is an event
    /// and stays in the receipt.
    async fn post_validation(
        &self,
        id: &str,
        config: &MigrationConfig,
        copies: Vec<PartitionRef>,
    ) -> Result<serde_json::Value> {
        let manifest: Manifest = self.get_json(&format!("{id}/manifest.json")).await?;
        let mapping: MappingSpec = self.get_json(&format!("{id}/mapping.json")).await?;
        let queries = crate::queries::replay_suite(&config.verification, &mapping, &manifest)?;
        let task = crate::queries::QueryTask {
            source_tables: manifest
                .tables
                .iter()
                .map(|t| (t.name.clone(), t.partitions.clone()))
                .collect(),
            target_tables: copies
                .iter()
                .map(|p| (p.table.clone(), vec![p.clone()]))
                .collect(),
            queries,
            foreign_keys: Vec::new(),
            tolerance: crate::equivalence::Tolerance::from_config(&config.verification),
        };
        let r = crate::queries::run_with(crate::queries::Reader::Files, &task).await?;
        let failed: Vec<&crate::queries::QueryOutcome> =
            r.queries.iter().filter(|q| q.result == "fail").collect();
        for q in &failed {
            self.scheduler.event(
                id,
                "error",
                &format!(
                    "post-delivery query {} differs from the verified result: {}",
                    q.name, q.detail
                ),
            )?;
        }
        let passed = r.queries.iter().filter(|q| q.result == "pass").count();
        Ok(serde_json::json!({
            "queries": r.queries.len(),
            "passed": passed,
            "failed": failed.len(),
            "differences": failed.iter().map(|q| serde_json::json!({"name": q.name, "target_sql": q.target_sql, "detail": q.detail})).collect::<Vec<_>>(),
            "undecided": r.queries.iter().filter(|q| q.result == "inconclusive").map(|q| serde_json::json!({"name": q.name, "detail": q.detail})).collect::<Vec<_>>(),
        }))
    }

    async fn finalize_delivery(&self, id: &str, tasks: &[TaskRecord]) -> Result<String> {
        let config = self.config(id)?;
        let cert_bytes = self
            .artifacts
            .get(&format!("{id}/certificate.json"))
            .await?;
        let cert: SignedCertificate = serde_json::from_slice(&cert_bytes)?;
        let mut tables: BTreeMap<String, DeliveredTable> = BTreeMap::new();
        let mut elapsed = 0;
        let mut notices: Vec<String> = Vec::new();
        for (t, r) in results::<DeliverResult>(tasks)? {
            let e = tables.entry(t.table.clone()).or_default();
            e.rows_written += r.rows;
            e.batches_written += r.batches_written;
            e.batches_skipped += r.batches_skipped;
            elapsed += r.elapsed_ms;
            notices.extend(r.warnings);
            e.batches.extend(r.batches);
        }
        for t in tables.values_mut() {
            t.batches
                .sort_by(|a, b| (&a.partition, a.seq).cmp(&(&b.partition, b.seq)));
        }
        let url = config.target.url.clone();
        let namespace = config.target.namespace.clone();
        let options = crate::deliver::target_options(&config);
        let names: Vec<String> = cert.payload["tables"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let mapping: MappingSpec = self.get_json(&format!("{id}/mapping.json")).await?;
        let columns: BTreeMap<String, Vec<String>> = mapping
            .tables
            .iter()
            .map(|t| {
                (
                    t.target.clone(),
                    t.columns.iter().map(|c| c.target.clone()).collect(),
                )
            })
            .collect();
        let keys: BTreeMap<String, Vec<String>> = mapping
            .tables
            .iter()
            .map(|t| (t.target.clone(), t.primary_key.clone()))
            .collect();
        // The certified Arrow type of every column, from the verified partitions.
        let mut certified: BTreeMap<String, arrow::datatypes::SchemaRef> = BTreeMap::new();
        for p in self.transformed(id).await? {
            if certified.contains_key(&p.table) {
                continue;
            }
            let path = PathBuf::from(p.uri.trim_start_matches("file://"));
            let (schema, _) = sensei_flight::parquet_io::open_partition(&path, 1)?;
            certified.insert(p.table.clone(), schema);
        }
        // Post-delivery check: read every delivered table back from the target,
        // each column as its certified type (a target declaring REAL for a
        // decimal is read as that decimal), and digest it with the
        // certificate's algorithm.
        let deferred_path = format!("{id}/{DEFERRED_FOREIGN_KEYS}");
        let deferred: Deferred = if self.artifacts.exists(&deferred_path).await? {
            self.get_json(&deferred_path).await?
        } else {
            Vec::new()
        };
        let index_path = format!("{id}/{DEFERRED_INDEXES}");
        let deferred_indexes: Deferred = if self.artifacts.exists(&index_path).await? {
            self.get_json(&index_path).await?
        } else {
            Vec::new()
        };
        let copy_dir = config.delivery.post_validation.then(|| {
            PathBuf::from(&config.runtime.workdir)
                .join(id)
                .join("post-delivery")
        });
        let readback = tokio::task::spawn_blocking(
            move || -> Result<(ReadBack, FkViolations, Vec<String>, Vec<PartitionRef>)> {
                let mut copies = Vec::new();
                let location = parse(&url, "target")?;
                // Foreign keys back first: the server validates them against the rows.
                let broken = match &location {
                    Location::Postgres(_) | Location::MySql(_) => {
                        match sensei_connectors::target::Target::open_in(
                            &url, &options, &namespace,
                        )? {
                            sensei_connectors::target::Target::Postgres(mut pg) => {
                                // Indexes first: validating a foreign key can use them.
                                let mut broken = pg.attach_indexes(&deferred_indexes);
                                broken.extend(pg.attach_foreign_keys(&deferred));
                                broken
                            }
                            sensei_connectors::target::Target::MySql(mut my) => {
                                my.attach_indexes(&deferred_indexes)
                            }
                            _ => Vec::new(),
                        }
                    }
                    _ => Vec::new(),
                };
                let mut target =
                    sensei_connectors::readback::ReadBack::open(&url, &options, &namespace)?;
                let mut out = BTreeMap::new();
                for name in names {
                    let order = columns.get(&name).cloned().unwrap_or_default();
                    let key = keys.get(&name).cloned().unwrap_or_default();
                    let schema = certified.get(&name).cloned();
                    let copy = Copy::new(copy_dir.as_ref(), &name);
                    out.insert(
                        name.clone(),
                        with_copy(copy, &mut copies, |tap| {
                            read_back(&mut target, &name, &order, schema.as_ref(), &key, tap)
                        })?,
                    );
                }
                drop(target);
                let violations = match &location {
                    Location::Sqlite(path) => SqliteTarget::open(path)?.foreign_key_violations()?,
                    _ => Vec::new(),
                };
                Ok((out, violations, broken, copies))
            },
        )
        .await
        .map_err(|e| AgentError::Malformed {
            what: "post-delivery check".into(),
            message: e.to_string(),
        })??;
        let (readback, violations, broken_keys, copies) = readback;
        let post = if config.delivery.post_validation {
            Some(self.post_validation(id, &config, copies).await?)
        } else {
            None
        };
        let mut warnings = broken_keys;
        for (table, parent, n) in violations {
            warnings.push(format!(
                "table {table}: {n} rows reference rows of {parent} that the target does not hold (its declared foreign key is broken; the source held the same orphans, or a table is missing from the mapping)"
            ));
        }
        for (name, (d, root)) in readback {
            let certified = cert.payload["tables"][&name]["digest"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let certified_root = cert.payload["tables"][&name]["merkle_root"]
                .as_str()
                .map(str::to_string);
            let e = tables.entry(name.clone()).or_default();
            e.rows_in_target = d.rows;
            e.checksum = d.hex();
            e.matches_certificate =
                e.checksum == certified && certified_root.as_ref().is_none_or(|r| *r == root);
            e.merkle_root = root;
            if !e.matches_certificate {
                warnings.push(format!(
                    "table {name}: the target holds {} rows whose checksum differs from the certificate's: it held rows before this delivery (a source changed since an earlier delivery of this migration: `sensei migrate --resync` empties the target tables and delivers the current source), or was changed during delivery",
                    d.rows
                ));
            }
        }
        let changed_values: BTreeMap<String, sensei_connectors::source::Changes> = self
            .get_json::<Manifest>(&format!("{id}/manifest.json"))
            .await?
            .tables
            .into_iter()
            .filter(|t| !t.changed_values.is_empty())
            .map(|t| (t.name, t.changed_values))
            .collect();
        let receipt = Receipt {
            version: ARTIFACT_VERSION,
            migration_id: id.to_string(),
            certificate_sha256: sha256_hex(&cert_bytes),
            target: redact_url(&config.target.url),
            tables,
            elapsed_ms: elapsed,
            warnings: warnings.clone(),
            target_notices: notices,
            post_delivery: post.clone(),
            changed_values,
            delivered_at: now_rfc3339(),
            accepted_inconclusive: if self
                .artifacts
                .exists(&format!("{id}/{INCONCLUSIVE_REVIEW}"))
                .await?
            {
                Some(
                    self.get_json(&format!("{id}/{INCONCLUSIVE_REVIEW}"))
                        .await?,
                )
            } else {
                None
            },
        };
        let path = format!("{id}/receipt.json");
        self.put_json(&path, &receipt).await?;
        for w in &warnings {
            self.scheduler.event(id, "error", w)?;
        }
        if !warnings.is_empty() {
            // Record the checkpoint first so the receipt is part of the durable record.
            let bytes = self.artifacts.get(&path).await?;
            self.scheduler.record_checkpoint(
                id,
                Phase::Delivery,
                &self.artifacts.uri(&path),
                &sha256_hex(&bytes),
            )?;
            self.scheduler.set_migration_state(
                id,
                MigrationState::Failed,
                Some("post-delivery check: the target differs from the certified data"),
            )?;
        }
        Ok(path)
    }

    /// A status document for a migration: state, per-phase progress and
    /// checkpoints, artifact paths, recent events.
    pub fn status(&self, id: &str) -> Result<serde_json::Value> {
        let (state, error) = self.scheduler.migration_state(id)?;
        let mut phases = serde_json::Map::new();
        for phase in Phase::ALL {
            let p = self.scheduler.progress(id, phase)?;
            let cp = self.scheduler.checkpoint(id, phase)?;
            phases.insert(
                phase.as_str().into(),
                serde_json::json!({"total": p.total, "done": p.done, "running": p.running, "failed": p.failed, "rows": p.rows,
                    "checkpoint": cp.map(|c| serde_json::json!({"uri": c.uri, "sha256": c.sha256, "recorded_ms": c.recorded_ms}))}),
            );
        }
        let dir = self.artifacts.local_path(id);
        let events = self.scheduler.events_since(id, 0)?;
        let recent: Vec<_> = events.iter().rev().take(20).rev().collect();
        Ok(serde_json::json!({
            "migration_id": id,
            "state": state.as_str(),
            "error": error,
            "created_ms": self.scheduler.migration_created_ms(id)?,
            "phases": phases,
            "artifacts": {
                "dir": dir.display().to_string(),
                "manifest": dir.join("manifest.json").display().to_string(),
                "mapping": dir.join("mapping.json").display().to_string(),
                "lineage": dir.join("lineage.json").display().to_string(),
                "certificate": dir.join("certificate.json").display().to_string(),
                "receipt": dir.join("receipt.json").display().to_string(),
            },
            "events": recent,
        }))
    }

    /// Drives a migration until it stops needing the head (a terminal state).
    pub async fn drive(&self, id: &str) -> Result<MigrationState> {
        self.drive_until(id, None).await
    }

    /// Drives a migration until a terminal state or, with `until`, until that
    /// phase's checkpoint is recorded (the migration stays resumable from there).
    pub async fn drive_until(&self, id: &str, until: Option<Phase>) -> Result<MigrationState> {
        // The head's own reads (discovery, planning samples, the read-back)
        // meet the same transient failures as the agents': a lost connection
        // or a server restarting is retried with backoff, not fatal.
        let mut failures = 0u32;
        loop {
            let state = match self.step_until(id, until).await {
                Ok(s) => {
                    failures = 0;
                    s
                }
                Err(e) if e.retryable() && failures < 5 => {
                    failures += 1;
                    // Logged once, by the scheduler recording the event.
                    let _ = self.scheduler.event(
                        id,
                        "warn",
                        &format!("transient failure, retrying ({failures}/5): {e}"),
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(250 << failures)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if state.is_terminal() {
                if state == MigrationState::Halted {
                    if let Err(e) = self.take_back_empty_delivery(id).await {
                        let _ = self.scheduler.event(
                            id,
                            "warn",
                            &format!("the tables this delivery created could not be checked or dropped: {e}"),
                        );
                    }
                }
                return Ok(state);
            }
            if let Some(u) = until {
                if self.scheduler.checkpoint(id, u)?.is_some() {
                    return Ok(state);
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}
