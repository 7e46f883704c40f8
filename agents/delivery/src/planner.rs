//! The head's half of delivery: prepare the target (tables from the schema
//! file or mirrored, foreign keys and secondary indexes set aside for the
//! load, a re-sync's emptying) and plan one task per verified partition;
//! then, once every partition is written, put the indexes and keys back,
//! read every table back from the target, digest it with the certificate's
//! algorithms, replay the post-delivery queries on what was read, and
//! write the receipt.

use std::collections::BTreeMap;
use std::path::PathBuf;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use sensei_connectors::files::SourceOptions;
use sensei_connectors::sqlite::SqliteTarget;
use sensei_connectors::target::{Declared, MirrorExtras, Target};
use sensei_connectors::url::{parse, Location};
use sensei_contracts::artifacts::*;
use sensei_contracts::digest::{MerkleDigest, TableDigest};
use sensei_contracts::error::{EngineError, Result};
use sensei_contracts::planner::{
    results, Finalized, PhaseContext, Plan, PlannedTask, Planner, Stop, TaskOutcome,
};
use sensei_runtime::secret::redact_url;
use sensei_runtime::store::sha256_hex;

use crate::deliver::{target_options, DeliverResult, DeliverTask, TargetConnection};

/// `target.schema` value that reads the target schema from the target database.
pub use sensei_architect::planner::TARGET_SCHEMA_FROM_TARGET;

/// Constraints or indexes set aside for a load: (table, name, definition).
pub use sensei_connectors::target::Deferred;

/// Per table read back from the target: its digest and Merkle root.
type ReadBackDigests = BTreeMap<String, (TableDigest, String)>;

/// Rows breaking a foreign key, per (table, referenced table).
type FkViolations = Vec<(String, String, u64)>;

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
    certified: Option<&SchemaRef>,
    key: &[String],
    tap: Tap<'_>,
) -> Result<(TableDigest, String)> {
    let mut d = TableDigest::default();
    let mut m = MerkleDigest::default();
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
            path: d.join(format!(
                "{}.parquet",
                sensei_contracts::planner::id_part(table)
            )),
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

/// A mapped table as delivery creates it: its name, certified schema,
/// primary key and the widths its columns declare.
type TableShape = (String, SchemaRef, Vec<String>, BTreeMap<String, Declared>);

/// A certified table as it is read back: its name, columns in target
/// order, key and certified types.
type CertifiedTable = (String, Vec<String>, Vec<String>, Option<SchemaRef>);

/// What target preparation needs, moved onto a blocking thread.
struct Preparation {
    url: String,
    options: SourceOptions,
    namespace: String,
    /// The schema file's text and name.
    ddl: Option<(String, String)>,
    /// Per mapped table: its name, certified schema, key and declared widths.
    schemas: Vec<TableShape>,
    /// Mirror mode: what the source's tables keep besides their columns.
    extras: BTreeMap<String, MirrorExtras>,
    resync: bool,
    migration_id: String,
}

/// What preparing the target did.
struct Prepared {
    foreign_keys: Deferred,
    indexes: Deferred,
    notes: Vec<String>,
    created: Vec<String>,
}

/// Creates the target tables this delivery needs (recording which did not
/// exist), adds a mirror's constraints and indexes, sets foreign keys and
/// secondary indexes aside for the load, and empties the tables for a
/// re-sync. Blocking.
fn prepare_target(p: Preparation) -> Result<Prepared> {
    let Preparation {
        url,
        options,
        namespace,
        ddl,
        schemas,
        mut extras,
        resync,
        migration_id,
    } = p;
    let mut target = sensei_connectors::target::Target::open_in(&url, &options, &namespace)?;
    // The tables this delivery creates (the schema file's and the
    // mapped ones), told apart from those already there: a
    // delivery that halts before its first batch drops them again.
    let mut candidates: Vec<String> = schemas.iter().map(|(n, _, _, _)| n.clone()).collect();
    if let Some((ddl, file)) = &ddl {
        candidates.extend(
            sensei_architect::ddl::parse(ddl, file)
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
        let table = sensei_connectors::target::NewTable {
            name,
            schema,
            primary_key: pk,
            declared: widths,
        };
        if target.ensure_table(&table)? {
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
    let (fks, indexes) = target.detach_for_load(&names)?;
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
    Ok(Prepared {
        foreign_keys: fks,
        indexes,
        notes,
        created: new_tables,
    })
}

/// What the post-delivery read-back needs, moved onto a blocking thread.
struct ReadBackPlan {
    url: String,
    options: SourceOptions,
    namespace: String,
    foreign_keys: Deferred,
    indexes: Deferred,
    /// Tables certified, with their columns in target order, keys and certified types.
    tables: Vec<CertifiedTable>,
    /// Where the rows read are copied for the post-delivery replay.
    copy_dir: Option<PathBuf>,
}

/// What the read-back found.
struct ReadBackFound {
    digests: ReadBackDigests,
    violations: FkViolations,
    broken: Vec<String>,
    copies: Vec<PartitionRef>,
}

/// Reattaches what the load set aside, then reads every certified table
/// back and digests it. Blocking.
fn read_back_target(p: ReadBackPlan) -> Result<ReadBackFound> {
    let mut copies = Vec::new();
    let location = parse(&p.url, "target")?;
    // What the load set aside, put back: the server validates the foreign
    // keys against the rows.
    let broken = if p.foreign_keys.is_empty() && p.indexes.is_empty() {
        Vec::new()
    } else {
        Target::open_in(&p.url, &p.options, &p.namespace)?.reattach(&p.foreign_keys, &p.indexes)
    };
    let mut target = sensei_connectors::readback::ReadBack::open(&p.url, &p.options, &p.namespace)?;
    let mut digests = BTreeMap::new();
    for (name, order, key, schema) in p.tables {
        let copy = Copy::new(p.copy_dir.as_ref(), &name);
        let found = with_copy(copy, &mut copies, |tap| {
            read_back(&mut target, &name, &order, schema.as_ref(), &key, tap)
        })?;
        digests.insert(name, found);
    }
    drop(target);
    let violations = match &location {
        Location::Sqlite(path) => SqliteTarget::open(path)?.foreign_key_violations()?,
        _ => Vec::new(),
    };
    Ok(ReadBackFound {
        digests,
        violations,
        broken,
        copies,
    })
}

fn join_err(what: &str) -> impl FnOnce(tokio::task::JoinError) -> EngineError + '_ {
    move |e| EngineError::Malformed {
        what: what.to_string(),
        message: e.to_string(),
    }
}

/// The delivery phase's planner.
#[derive(Debug, Default)]
pub struct DeliveryPlanner;

impl DeliveryPlanner {
    /// Prepares the target for the verified partitions; returns the tasks.
    async fn prepare(&self, cx: &mut PhaseContext<'_>) -> Result<Vec<PlannedTask>> {
        let config = cx.config;
        let mapping: MappingSpec = cx.get_json("mapping.json").await?;
        let transformed = cx.transformed().await?;
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
        // Mirroring: text widths, constraints and indexes come from the source.
        let mirror = config.target.schema.is_empty();
        let manifest: Manifest = cx.get_json("manifest.json").await?;
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
        let preparation = Preparation {
            url: config.target.url.clone(),
            options: target_options(config),
            namespace: config.target.namespace.clone(),
            ddl,
            schemas,
            extras: if mirror {
                crate::mirror::extras(&manifest, &mapping)
            } else {
                BTreeMap::new()
            },
            resync: config.delivery.resync,
            migration_id: cx.id.to_string(),
        };
        let prepared = tokio::task::spawn_blocking(move || prepare_target(preparation))
            .await
            .map_err(join_err("target preparation"))??;
        cx.put_json(CREATED_TABLES, &prepared.created).await?;
        for n in prepared.notes {
            if n.starts_with("re-sync:") {
                cx.note("info", n);
            } else {
                cx.note("warn", format!("mirror: {n}"));
            }
        }
        for (name, list) in [
            (DEFERRED_FOREIGN_KEYS, prepared.foreign_keys),
            (DEFERRED_INDEXES, prepared.indexes),
        ] {
            if !list.is_empty() && !cx.exists(name).await? {
                cx.put_json(name, &list).await?;
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
                    connection: TargetConnection::from_section(&config.target),
                    batch_pause_ms: config.delivery.batch_pause_ms,
                };
                Ok(PlannedTask {
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
    /// ledger, too, comes only with a first batch). Returns the tables
    /// dropped (none: nothing was created, or a batch of this migration is
    /// in the ledger and nothing may be dropped).
    pub async fn take_back_empty(&self, cx: &mut PhaseContext<'_>) -> Result<Vec<String>> {
        if !cx.exists(CREATED_TABLES).await? {
            return Ok(Vec::new());
        }
        let created: Vec<String> = cx.get_json(CREATED_TABLES).await?;
        if created.is_empty() {
            return Ok(Vec::new());
        }
        let config = cx.config;
        let options = target_options(config);
        let (url, namespace, migration) = (
            config.target.url.clone(),
            config.target.namespace.clone(),
            cx.id.to_string(),
        );
        let tables = created.clone();
        let dropped = tokio::task::spawn_blocking(move || -> Result<bool> {
            let mut target = Target::open_in(&url, &options, &namespace)?;
            if target.batches_delivered(&migration)? > 0 {
                return Ok(false);
            }
            for t in &tables {
                target.drop_table(t)?;
            }
            Ok(true)
        })
        .await
        .map_err(join_err("taking back an empty delivery"))??;
        if !dropped {
            return Ok(Vec::new());
        }
        cx.put_json(CREATED_TABLES, &Vec::<String>::new()).await?;
        Ok(created)
    }

    /// Post-delivery validation: the query suite (the user's source
    /// queries, foreign-key coverage, per-table counts and per-column
    /// aggregates), rewritten through the mapping, on the data just read back
    /// from the target against the source snapshot. A difference is an event
    /// and stays in the receipt.
    async fn post_validation(
        &self,
        cx: &mut PhaseContext<'_>,
        copies: Vec<PartitionRef>,
    ) -> Result<serde_json::Value> {
        let config = cx.config;
        let manifest: Manifest = cx.get_json("manifest.json").await?;
        let mapping: MappingSpec = cx.get_json("mapping.json").await?;
        let queries =
            sensei_validator::queries::replay_suite(&config.verification, &mapping, &manifest)?;
        let task = sensei_validator::queries::QueryTask {
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
            tolerance: sensei_validator::equivalence::Tolerance::from_config(&config.verification),
        };
        let r =
            sensei_validator::queries::run_with(sensei_validator::queries::Reader::Files, &task)
                .await?;
        let failed: Vec<&sensei_validator::queries::QueryOutcome> =
            r.queries.iter().filter(|q| q.result == "fail").collect();
        for q in &failed {
            cx.note(
                "error",
                format!(
                    "post-delivery query {} differs from the verified result: {}",
                    q.name, q.detail
                ),
            );
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
}

#[async_trait::async_trait]
impl Planner for DeliveryPlanner {
    async fn plan(&self, cx: &mut PhaseContext<'_>) -> Result<Plan> {
        let cert: SignedCertificate = cx.get_json("certificate.json").await?;
        if cert.payload["status"] == "INCONCLUSIVE" && !cx.exists(INCONCLUSIVE_REVIEW).await? {
            // Nothing is delivered on an undecided certificate without a person's word.
            return Ok(Plan::Stop(Stop::AwaitReview(
                "certificate INCONCLUSIVE: waiting for sensei review --accept-inconclusive (or sensei migrate --restart)".into(),
            )));
        }
        Ok(Plan::Tasks(self.prepare(cx).await?))
    }

    async fn finalize(&self, cx: &mut PhaseContext<'_>, done: &[TaskOutcome]) -> Result<Finalized> {
        let config = cx.config;
        let cert_bytes = cx.artifacts.get(&cx.path("certificate.json")).await?;
        let cert: SignedCertificate = serde_json::from_slice(&cert_bytes)?;
        let (mut tables, elapsed, notices) = delivered(done)?;
        let mapping: MappingSpec = cx.get_json("mapping.json").await?;
        // The certified Arrow type of every column, from the verified partitions.
        let mut certified: BTreeMap<String, SchemaRef> = BTreeMap::new();
        for p in cx.transformed().await? {
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
        let plan = ReadBackPlan {
            url: config.target.url.clone(),
            options: target_options(config),
            namespace: config.target.namespace.clone(),
            foreign_keys: deferred(cx, DEFERRED_FOREIGN_KEYS).await?,
            indexes: deferred(cx, DEFERRED_INDEXES).await?,
            tables: cert.payload["tables"]
                .as_object()
                .map(|m| m.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .map(|name| {
                    let tm = mapping.tables.iter().find(|t| t.target == name);
                    let order = tm
                        .map(|t| t.columns.iter().map(|c| c.target.clone()).collect())
                        .unwrap_or_default();
                    let key = tm.map(|t| t.primary_key.clone()).unwrap_or_default();
                    let schema = certified.get(&name).cloned();
                    (name, order, key, schema)
                })
                .collect(),
            copy_dir: config.delivery.post_validation.then(|| {
                PathBuf::from(&config.runtime.workdir)
                    .join(cx.id)
                    .join("post-delivery")
            }),
        };
        let found = tokio::task::spawn_blocking(move || read_back_target(plan))
            .await
            .map_err(join_err("post-delivery check"))??;
        let post = if config.delivery.post_validation {
            Some(self.post_validation(cx, found.copies).await?)
        } else {
            None
        };
        let mut warnings = found.broken;
        for (table, parent, n) in found.violations {
            warnings.push(format!(
                "table {table}: {n} rows reference rows of {parent} that the target does not hold (its declared foreign key is broken; the source held the same orphans, or a table is missing from the mapping)"
            ));
        }
        warnings.extend(compare_with_certificate(&cert, &mut tables, found.digests));
        let changed_values: BTreeMap<String, sensei_connectors::source::Changes> = cx
            .get_json::<Manifest>("manifest.json")
            .await?
            .tables
            .into_iter()
            .filter(|t| !t.changed_values.is_empty())
            .map(|t| (t.name, t.changed_values))
            .collect();
        let receipt = Receipt {
            version: ARTIFACT_VERSION,
            migration_id: cx.id.to_string(),
            certificate_sha256: sha256_hex(&cert_bytes),
            target: redact_url(&config.target.url),
            tables,
            elapsed_ms: elapsed,
            warnings: warnings.clone(),
            target_notices: notices,
            post_delivery: post,
            changed_values,
            delivered_at: now_rfc3339(),
            accepted_inconclusive: if cx.exists(INCONCLUSIVE_REVIEW).await? {
                Some(cx.get_json(INCONCLUSIVE_REVIEW).await?)
            } else {
                None
            },
        };
        let path = cx.put_json("receipt.json", &receipt).await?;
        for w in &warnings {
            cx.note("error", w.clone());
        }
        Ok(Finalized {
            artifact: path,
            stop: (!warnings.is_empty()).then(|| {
                Stop::Fail("post-delivery check: the target differs from the certified data".into())
            }),
        })
    }
}

/// Per table, what the delivery tasks wrote; the time in target
/// transactions; the target's notices.
fn delivered(
    tasks: &[TaskOutcome],
) -> Result<(BTreeMap<String, DeliveredTable>, u64, Vec<String>)> {
    let mut tables: BTreeMap<String, DeliveredTable> = BTreeMap::new();
    let mut elapsed = 0;
    let mut notices: Vec<String> = Vec::new();
    for (t, r) in tasks.iter().zip(results::<DeliverResult>(tasks)?) {
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
    Ok((tables, elapsed, notices))
}

/// What the load set aside (`name`: foreign keys or indexes), if anything.
async fn deferred(cx: &PhaseContext<'_>, name: &str) -> Result<Deferred> {
    if cx.exists(name).await? {
        cx.get_json(name).await
    } else {
        Ok(Vec::new())
    }
}

/// Each table read back against the certificate's digest and Merkle root:
/// recorded in the receipt's tables; a warning for each that differs.
fn compare_with_certificate(
    cert: &SignedCertificate,
    tables: &mut BTreeMap<String, DeliveredTable>,
    digests: ReadBackDigests,
) -> Vec<String> {
    let mut warnings = Vec::new();
    for (name, (d, root)) in digests {
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
    warnings
}
