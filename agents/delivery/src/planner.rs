//! The head's half of delivery: prepare the target (tables from the schema
//! file or mirrored, foreign keys and secondary indexes set aside for the
//! load, a re-sync's emptying) and plan one task per verified partition;
//! then, once every partition is written, the post-delivery tasks
//! ([`crate::post`]: the indexes and keys put back, every table read back
//! and digested with the certificate's algorithms, one task per table; then
//! the post-delivery queries replayed on what was read), and from their
//! results the receipt.
//!
//! A target that stages deliveries (PostgreSQL: [`StagingArea`]) is
//! prepared and loaded as soon as the transformation's output is there,
//! while verification runs, into a staging schema; nothing after the load
//! goes ahead before the certificate (the [`Planner::gate`]); the checks
//! run on the staged rows, and only when they and the certificate agree
//! is the staging area published into the target, in one transaction
//! ([`PUBLISH`]). A FAIL certificate or a failed check leaves the target as
//! it was and the staged rows for inspection.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use sensei_connectors::target::{Published, StagingArea, Target};
use sensei_connectors::url::{parse, Location};
use sensei_contracts::artifacts::*;
use sensei_contracts::error::{EngineError, Result};
use sensei_contracts::planner::{
    Finalized, Gate, PhaseContext, Plan, PlannedTask, Planner, Stop, TaskOutcome,
};
use sensei_runtime::config::PostReplay;
use sensei_runtime::secret::redact_url;
use sensei_runtime::store::sha256_hex;

use crate::deliver::{target_options, DeliverResult, DeliverTask, TargetConnection};
use crate::post::{
    ConstraintsResult, ConstraintsTask, PostTask, PublishTask, ReadBackResult, ReadBackTask,
    TargetRef, CONSTRAINTS, POST_DELIVERY, PUBLISH, REPLAY,
};
use crate::prepare::{PrepareTask, Prepared, TableShape, PREPARE};

/// `target.schema` value that reads the target schema from the target database.
pub use sensei_architect::planner::TARGET_SCHEMA_FROM_TARGET;

/// Constraints or indexes set aside for a load: (table, name, definition).
pub use sensei_connectors::target::Deferred;

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
    /// The target preparation task: the schema file, the mapped tables
    /// (mirrored from the source when there is no schema file), a re-sync.
    async fn prepare_task(
        &self,
        cx: &mut PhaseContext<'_>,
        staging: Option<StagingArea>,
    ) -> Result<PlannedTask> {
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
        let mut tables = Vec::new();
        for t in &mapping.tables {
            if let Some(p) = transformed.iter().find(|p| p.table == t.target) {
                let path = PathBuf::from(p.uri.trim_start_matches("file://"));
                let (schema, _) = sensei_flight::parquet_io::open_partition(&path, 1)?;
                let widths = if mirror {
                    crate::mirror::declared(&manifest, t)
                } else {
                    BTreeMap::new()
                };
                tables.push(TableShape::new(
                    &t.target,
                    &schema,
                    t.primary_key.clone(),
                    widths,
                ));
            }
        }
        let task = PrepareTask {
            target: target_ref(config),
            ddl,
            tables,
            extras: if mirror {
                crate::mirror::extras(&manifest, &mapping)
            } else {
                BTreeMap::new()
            },
            resync: config.delivery.resync,
            migration_id: cx.id.to_string(),
            staging,
        };
        Ok(PlannedTask {
            table: PREPARE.into(),
            partition: 0,
            payload: serde_json::to_value(task)?,
            preferred_node: None,
        })
    }

    /// Records what preparing the target did: the tables it created, its
    /// notes, what it set aside for the load.
    async fn record_prepared(&self, cx: &mut PhaseContext<'_>, prepared: Prepared) -> Result<()> {
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
        Ok(())
    }

    /// One task per verified partition, placed on the node that holds it.
    async fn partition_tasks(&self, cx: &mut PhaseContext<'_>) -> Result<Vec<PlannedTask>> {
        let config = cx.config;
        let loading = loading_ref(cx).await?;
        cx.transformed()
            .await?
            .into_iter()
            .map(|p| {
                let task = DeliverTask {
                    table: p.table.clone(),
                    ledger_partition: format!("{}/{:05}", p.table, p.partition),
                    input: p.clone(),
                    target: loading.url.clone(),
                    namespace: loading.namespace.clone(),
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

    /// The next round after the `done` tasks, up to the checks on the
    /// loaded rows (none of which needs the certificate): the partitions,
    /// the constraints put back, the tables read back, the replay. None:
    /// they are all done.
    async fn next_round(
        &self,
        cx: &mut PhaseContext<'_>,
        done: &[TaskOutcome],
    ) -> Result<Option<Vec<PlannedTask>>> {
        if done.iter().all(|t| t.table == PREPARE) {
            let tasks = self.partition_tasks(cx).await?;
            if !tasks.is_empty() {
                return Ok(Some(tasks));
            }
        }
        if !done
            .iter()
            .any(|t| t.table == CONSTRAINTS || is_read_back(&t.table))
        {
            if let Some(task) = self.constraints_task(cx).await? {
                // PostgreSQL builds indexes and adds foreign keys under locks
                // that let the tables be read meanwhile (a key made of its
                // index waits for the read to end): both at once. MySQL
                // fails a read of a table altered under its snapshot.
                let mut tasks = vec![task];
                if matches!(
                    parse(&cx.config.target.url, "target")?,
                    Location::Postgres(_)
                ) {
                    tasks.extend(self.read_back_tasks(cx, None).await?);
                }
                return Ok(Some(tasks));
            }
        }
        if !done.iter().any(|t| is_read_back(&t.table)) {
            let tasks = self.read_back_tasks(cx, None).await?;
            if !tasks.is_empty() {
                return Ok(Some(tasks));
            }
        }
        if cx.config.delivery.post_validation && !done.iter().any(|t| t.table == REPLAY) {
            return self.replay_round(cx, done).await;
        }
        Ok(None)
    }

    /// The post-delivery replay's round, per `delivery.post_replay`.
    /// `always`: on the rows every read-back staged. `on_difference`: once
    /// the certificate is there, and only when a table read back differs
    /// from it; the differing tables are read again with their rows staged
    /// (the round before the replay), and the replay reads those rows and,
    /// for the tables that match, their certified transformed partitions
    /// (the same rows: same digest and Merkle root). None: no replay.
    async fn replay_round(
        &self,
        cx: &mut PhaseContext<'_>,
        done: &[TaskOutcome],
    ) -> Result<Option<Vec<PlannedTask>>> {
        let read = |staged: bool| {
            done.iter()
                .filter(move |t| is_read_back(&t.table) && is_staged_copy(t) == staged)
        };
        if cx.config.delivery.post_replay == PostReplay::Always {
            let mut tables = BTreeMap::new();
            for t in read(false) {
                if let Some(p) = t.result::<ReadBackResult>()?.copy {
                    tables.insert(p.table.clone(), vec![p]);
                }
            }
            return Ok(Some(vec![self.replay_task(cx, tables).await?]));
        }
        if !cx.previous_checkpointed {
            return Ok(None);
        }
        let cert: SignedCertificate = cx.get_json("certificate.json").await?;
        let mut differing = BTreeSet::new();
        for t in read(false) {
            let r: ReadBackResult = t.result()?;
            if !certified(&cert, &r) {
                differing.insert(r.table);
            }
        }
        if differing.is_empty() {
            return Ok(None);
        }
        if read(true).next().is_none() {
            return Ok(Some(self.read_back_tasks(cx, Some(&differing)).await?));
        }
        let mut tables: BTreeMap<String, Vec<PartitionRef>> = BTreeMap::new();
        for p in cx.transformed().await? {
            if !differing.contains(&p.table) {
                tables.entry(p.table.clone()).or_default().push(p);
            }
        }
        for t in read(true) {
            if let Some(p) = t.result::<ReadBackResult>()?.copy {
                tables.insert(p.table.clone(), vec![p]);
            }
        }
        Ok(Some(vec![self.replay_task(cx, tables).await?]))
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
        let loading = loading_ref(cx).await?;
        let url = match staging_area(cx).await? {
            // The staging area's own URL (any password comes from the
            // environment, as for the tasks).
            Some(_) => loading.url,
            None => config.target.url.clone(),
        };
        let (namespace, migration) = (loading.namespace, cx.id.to_string());
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

    /// The post-delivery read-backs: each mapped table read back with the
    /// columns and key the certificate takes, its rows staged when the
    /// replay reads them (`delivery.post_replay = "always"`). `again`: the
    /// second round of `on_difference`, only those tables, their rows
    /// staged (partition [`STAGED_COPY`]).
    async fn read_back_tasks(
        &self,
        cx: &mut PhaseContext<'_>,
        again: Option<&BTreeSet<String>>,
    ) -> Result<Vec<PlannedTask>> {
        let config = cx.config;
        let staged = config.delivery.post_validation
            && (again.is_some() || config.delivery.post_replay == PostReplay::Always);
        let mapping: MappingSpec = cx.get_json("mapping.json").await?;
        let transformed = cx.transformed().await?;
        let target = loading_ref(cx).await?;
        let mut tasks = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        // The certificate's columns and key, as verification takes them:
        // the transformed output's columns, the mapping's key.
        for t in mapping
            .tables
            .iter()
            .filter(|t| again.is_none_or(|a| a.contains(&t.target)))
            .filter(|t| seen.insert(t.target.clone()))
        {
            let name = &t.target;
            let task = PostTask::ReadBack(ReadBackTask {
                target: target.clone(),
                table: name.clone(),
                columns: sensei_validator::planner::columns_of(&transformed, name)?,
                key: t.primary_key.clone(),
                copy_id: staged.then(|| {
                    format!(
                        "{}/post-delivery/{}",
                        cx.id,
                        sensei_contracts::planner::id_part(name)
                    )
                }),
            });
            let mut planned = post_task(&format!("{POST_DELIVERY}{name}"), &task)?;
            if again.is_some() {
                planned.partition = STAGED_COPY;
            }
            tasks.push(planned);
        }
        Ok(tasks)
    }

    /// The task that puts back what the load set aside, when it set any
    /// aside (or the target is SQLite, whose foreign keys it checks). It
    /// runs before the tables are read back (a table altered under a
    /// reader's snapshot fails the read: MySQL), or beside them
    /// (PostgreSQL).
    async fn constraints_task(&self, cx: &mut PhaseContext<'_>) -> Result<Option<PlannedTask>> {
        let config = cx.config;
        let foreign_keys = deferred(cx, DEFERRED_FOREIGN_KEYS).await?;
        let indexes = deferred(cx, DEFERRED_INDEXES).await?;
        let sqlite = matches!(parse(&config.target.url, "target")?, Location::Sqlite(_));
        if !sqlite && foreign_keys.is_empty() && indexes.is_empty() {
            return Ok(None);
        }
        let task = PostTask::Constraints(ConstraintsTask {
            target: loading_ref(cx).await?,
            foreign_keys,
            indexes,
        });
        Ok(Some(post_task(CONSTRAINTS, &task)?))
    }

    /// Post-delivery validation: the query suite (the user's source
    /// queries, foreign-key coverage, per-table counts and per-column
    /// aggregates), rewritten through the mapping, replayed on the rows
    /// read back from the target against the source snapshot.
    async fn replay_task(
        &self,
        cx: &mut PhaseContext<'_>,
        target_tables: BTreeMap<String, Vec<PartitionRef>>,
    ) -> Result<PlannedTask> {
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
            target_tables,
            queries,
            foreign_keys: Vec::new(),
            tolerance: sensei_validator::equivalence::Tolerance::from_config(&config.verification),
        };
        post_task(REPLAY, &PostTask::Replay(task))
    }
}

/// A post-delivery task named `table` in the delivery phase.
fn post_task(table: &str, task: &PostTask) -> Result<PlannedTask> {
    Ok(PlannedTask {
        table: table.to_string(),
        partition: 0,
        payload: serde_json::to_value(task)?,
        preferred_node: None,
    })
}

/// The replay's outcome as the receipt records it, and each difference
/// as the event it becomes.
fn post_validation(replay: &TaskOutcome) -> Result<(serde_json::Value, Vec<String>)> {
    let r = crate::post::replay_result(replay.result.as_ref().unwrap_or(&serde_json::Value::Null))?;
    let failed: Vec<&sensei_validator::queries::QueryOutcome> =
        r.queries.iter().filter(|q| q.result == "fail").collect();
    let events = failed
        .iter()
        .map(|q| {
            format!(
                "post-delivery query {} differs from the verified result: {}",
                q.name, q.detail
            )
        })
        .collect();
    let passed = r.queries.iter().filter(|q| q.result == "pass").count();
    Ok((
        serde_json::json!({
            "replayed": true,
            "queries": r.queries.len(),
            "passed": passed,
            "failed": failed.len(),
            "differences": failed.iter().map(|q| serde_json::json!({"name": q.name, "target_sql": q.target_sql, "detail": q.detail})).collect::<Vec<_>>(),
            "undecided": r.queries.iter().filter(|q| q.result == "inconclusive").map(|q| serde_json::json!({"name": q.name, "detail": q.detail})).collect::<Vec<_>>(),
        }),
        events,
    ))
}

/// The receipt's `post_delivery` when the query suite was not replayed on
/// the rows read back, and why (None: post-delivery validation is off).
fn not_replayed(
    config: &sensei_runtime::config::MigrationConfig,
    tables: &BTreeMap<String, DeliveredTable>,
) -> Option<serde_json::Value> {
    let differing: Vec<&String> = tables
        .iter()
        .filter(|(_, t)| !t.matches_certificate)
        .map(|(name, _)| name)
        .collect();
    let why = if differing.is_empty() {
        "every table read back has the certificate's digest and Merkle root: the target holds the certified rows, on which verification replayed the query suite (delivery.post_replay = \"always\" replays it on the rows read back)".to_string()
    } else {
        format!("the delivery stopped before the replay; tables that differ from the certificate: {differing:?}")
    };
    config.delivery.post_validation.then(|| {
        serde_json::json!({
            "replayed": false,
            "queries": 0,
            "passed": 0,
            "failed": 0,
            "reason": why,
        })
    })
}

/// What the delivery and post-delivery tasks found, against the certificate.
struct Checked {
    tables: BTreeMap<String, DeliveredTable>,
    elapsed: u64,
    notices: Vec<String>,
    /// What makes the delivery fail: constraints that could not be put
    /// back, broken foreign keys, tables whose digest differs.
    warnings: Vec<String>,
    replay: Option<serde_json::Value>,
    /// The replay's differences.
    replay_failures: Vec<String>,
}

impl Checked {
    fn of(cert: &SignedCertificate, done: &[TaskOutcome]) -> Result<Checked> {
        let (mut tables, elapsed, notices) = delivered(done)?;
        // The post-delivery tasks' results: each table read back with the
        // certificate's columns and algorithms, what putting the
        // constraints back found, the replay.
        let post = |name: &str| done.iter().find(|t| t.table == name);
        let read = done
            .iter()
            .filter(|t| is_read_back(&t.table) && !is_staged_copy(t))
            .map(TaskOutcome::result)
            .collect::<Result<Vec<ReadBackResult>>>()?;
        let constraints: ConstraintsResult = match post(CONSTRAINTS) {
            Some(t) => t.result()?,
            None => ConstraintsResult::default(),
        };
        let (replay, replay_failures) = match post(REPLAY) {
            Some(t) => {
                let (v, f) = post_validation(t)?;
                (Some(v), f)
            }
            None => (None, Vec::new()),
        };
        let mut warnings = constraints.broken;
        for (table, parent, n) in constraints.violations {
            warnings.push(format!(
                "table {table}: {n} rows reference rows of {parent} that the target does not hold (its declared foreign key is broken; the source held the same orphans, or a table is missing from the mapping)"
            ));
        }
        warnings.extend(compare_with_certificate(cert, &mut tables, read));
        Ok(Checked {
            tables,
            elapsed,
            notices,
            warnings,
            replay,
            replay_failures,
        })
    }

    /// Nothing stands in the way of publication: what fails a delivery
    /// (constraints, foreign keys, digests and Merkle roots against the
    /// certificate) found nothing. The replay's differences are events and
    /// the receipt's, judged with the verification's tolerances by a person.
    fn clean(&self) -> bool {
        self.warnings.is_empty()
    }
}

/// The receipt's account of a staged delivery.
fn staged(area: StagingArea, done: &[TaskOutcome]) -> Result<Staging> {
    let published = match done.iter().find(|t| t.table == PUBLISH) {
        Some(t) => Some(t.result::<Published>()?),
        None => None,
    };
    Ok(Staging {
        area: area.name,
        published: published.is_some(),
        moved: published.map(|p| p.moved).unwrap_or_default(),
    })
}

/// Whether this delivery is staged, decided once when it is first planned
/// and kept (`delivery.staging`, a target engine that stages, a user who
/// may create a schema, a target that holds none of the delivery's
/// tables): the area named from the migration and the transformation
/// output it loads.
async fn plan_staging(cx: &mut PhaseContext<'_>) -> Result<Option<StagingArea>> {
    let config = cx.config;
    let output = cx.artifacts.get(&cx.path("transformation.json")).await?;
    let mut area = StagingArea::of(
        &config.target.url,
        cx.id,
        &config.target.namespace,
        &sha256_hex(&output),
    )?;
    if !config.delivery.staging {
        area = None;
    }
    if area.is_some() {
        let mapped = cx
            .get_json::<MappingSpec>("mapping.json")
            .await?
            .tables
            .into_iter()
            .map(|t| t.target);
        let file = &config.target.schema;
        let ddl = (!file.is_empty() && file != TARGET_SCHEMA_FROM_TARGET)
            .then(|| std::fs::read_to_string(file).ok())
            .flatten();
        let tables =
            crate::prepare::tables_written(mapped, ddl.as_deref().map(|t| (t, file.as_str())));
        let (url, namespace, options) = (
            config.target.url.clone(),
            config.target.namespace.clone(),
            target_options(config),
        );
        let refused = tokio::task::spawn_blocking(move || -> Result<Option<String>> {
            Ok(Target::staging_refused(
                &url, &options, &namespace, &tables,
            )?)
        })
        .await
        .map_err(join_err("checking the target for staging"))??;
        if let Some(why) = refused {
            cx.note(
                "info",
                format!("delivery written in place after the certificate, not staged: {why}"),
            );
            area = None;
        }
    }
    if let Some(a) = &area {
        cx.note(
            "info",
            format!(
                "delivery staged in schema {} while verification runs; published into the target in one transaction once the certificate and the checks on the staged rows pass",
                a.name
            ),
        );
    }
    cx.put_json(STAGING_AREA, &area).await?;
    Ok(area)
}

/// The staging area planned for this delivery, if any.
async fn staging_area(cx: &PhaseContext<'_>) -> Result<Option<StagingArea>> {
    if cx.exists(STAGING_AREA).await? {
        cx.get_json(STAGING_AREA).await
    } else {
        Ok(None)
    }
}

/// Where the delivery loads and its checks read: the staging area, or the
/// target itself.
async fn loading_ref(cx: &PhaseContext<'_>) -> Result<TargetRef> {
    let mut target = target_ref(cx.config);
    if let Some(area) = staging_area(cx).await? {
        (target.url, target.namespace) = area.loading(&target.url, &target.namespace)?;
    }
    Ok(target)
}

/// Why delivery must not go past the load on this certificate: an
/// INCONCLUSIVE one without a person's word (a FAIL one stops the
/// migration in verification).
async fn certificate_stop(cx: &PhaseContext<'_>) -> Result<Option<Stop>> {
    let cert: SignedCertificate = cx.get_json("certificate.json").await?;
    if cert.payload["status"] == "INCONCLUSIVE" && !cx.exists(INCONCLUSIVE_REVIEW).await? {
        // Nothing is delivered on an undecided certificate without a person's word.
        return Ok(Some(Stop::AwaitReview(
            "certificate INCONCLUSIVE: waiting for sensei review --accept-inconclusive (or sensei migrate --restart)".into(),
        )));
    }
    Ok(None)
}

#[async_trait::async_trait]
impl Planner for DeliveryPlanner {
    async fn plan(&self, cx: &mut PhaseContext<'_>) -> Result<Plan> {
        let staging = match cx.exists(STAGING_AREA).await? {
            true => staging_area(cx).await?,
            false => plan_staging(cx).await?,
        };
        if staging.is_none() {
            // Written in place: only a certified delivery starts.
            if !cx.previous_checkpointed {
                return Ok(Plan::Wait);
            }
            if let Some(stop) = certificate_stop(cx).await? {
                return Ok(Plan::Stop(stop));
            }
        }
        Ok(Plan::Tasks(vec![self.prepare_task(cx, staging).await?]))
    }

    /// A staged delivery loads, and its rows are checked, before the
    /// certificate; comparing them with it, publishing and the receipt wait
    /// for it (and for a person's word on an INCONCLUSIVE one).
    async fn gate(&self, cx: &mut PhaseContext<'_>, done: &[TaskOutcome]) -> Result<Gate> {
        if self.next_round(cx, done).await?.is_some() {
            return Ok(Gate::Open);
        }
        if !cx.previous_checkpointed {
            return Ok(Gate::Wait);
        }
        Ok(match certificate_stop(cx).await? {
            Some(stop) => Gate::Stop(stop),
            None => Gate::Open,
        })
    }

    /// Once every partition is written, the post-delivery tasks; once each
    /// table is read back, the replay on the rows read (when
    /// `delivery.post_validation`); then, for a staged delivery whose
    /// checks agree with the certificate, its publication.
    async fn follow_up(
        &self,
        cx: &mut PhaseContext<'_>,
        done: &[TaskOutcome],
    ) -> Result<Vec<PlannedTask>> {
        if done.iter().all(|t| t.table == PREPARE) {
            if let Some(t) = done.iter().find(|t| t.table == PREPARE) {
                self.record_prepared(cx, t.result()?).await?;
            }
        }
        if let Some(tasks) = self.next_round(cx, done).await? {
            return Ok(tasks);
        }
        // Published only when every check of the staged rows agrees with
        // the certificate; otherwise the phase ends (FAIL) unpublished.
        if let Some(area) = staging_area(cx).await? {
            if !done.iter().any(|t| t.table == PUBLISH) {
                let cert: SignedCertificate = cx.get_json("certificate.json").await?;
                if Checked::of(&cert, done)?.clean() {
                    let task = PostTask::Publish(PublishTask {
                        target: target_ref(cx.config),
                        area,
                    });
                    return Ok(vec![post_task(PUBLISH, &task)?]);
                }
            }
        }
        Ok(Vec::new())
    }

    async fn finalize(&self, cx: &mut PhaseContext<'_>, done: &[TaskOutcome]) -> Result<Finalized> {
        let config = cx.config;
        let cert_bytes = cx.artifacts.get(&cx.path("certificate.json")).await?;
        let cert: SignedCertificate = serde_json::from_slice(&cert_bytes)?;
        let Checked {
            tables,
            elapsed,
            notices,
            warnings,
            replay,
            replay_failures,
        } = Checked::of(&cert, done)?;
        for f in replay_failures {
            cx.note("error", f);
        }
        let staging = match staging_area(cx).await? {
            Some(area) => Some(staged(area, done)?),
            None => None,
        };
        let changed_values: BTreeMap<String, sensei_connectors::source::Changes> = cx
            .get_json::<Manifest>("manifest.json")
            .await?
            .tables
            .into_iter()
            .filter(|t| !t.changed_values.is_empty())
            .map(|t| (t.name, t.changed_values))
            .collect();
        let post_delivery = replay.or_else(|| not_replayed(config, &tables));
        let receipt = Receipt {
            version: ARTIFACT_VERSION,
            migration_id: cx.id.to_string(),
            certificate_sha256: sha256_hex(&cert_bytes),
            target: redact_url(&config.target.url),
            tables,
            elapsed_ms: elapsed,
            warnings: warnings.clone(),
            target_notices: notices,
            post_delivery,
            changed_values,
            delivered_at: now_rfc3339(),
            accepted_inconclusive: if cx.exists(INCONCLUSIVE_REVIEW).await? {
                Some(cx.get_json(INCONCLUSIVE_REVIEW).await?)
            } else {
                None
            },
            staging: staging.clone(),
        };
        let path = cx.put_json("receipt.json", &receipt).await?;
        for w in &warnings {
            cx.note("error", w.clone());
        }
        let stop = match staging {
            Some(s) if !s.published => Some(Stop::Fail(format!(
                "post-delivery check: the staged rows differ from the certified data; nothing was published, the target is as it was and the staged rows are in schema {} for inspection",
                s.area
            ))),
            _ => (!warnings.is_empty()).then(|| {
                Stop::Fail("post-delivery check: the target differs from the certified data".into())
            }),
        };
        Ok(Finalized {
            artifact: path,
            stop,
        })
    }
}

/// Whether a delivery-phase task writes a partition (not the target's
/// preparation or a post-delivery task).
pub fn is_partition(task_table: &str) -> bool {
    task_table != PREPARE && !task_table.starts_with(POST_DELIVERY)
}

/// Where the target is, as tasks open it.
fn target_ref(config: &sensei_runtime::config::MigrationConfig) -> TargetRef {
    TargetRef {
        url: redact_url(&config.target.url),
        namespace: config.target.namespace.clone(),
        connection: TargetConnection::from_section(&config.target),
    }
}

/// Whether a delivery-phase task is a table's read-back.
fn is_read_back(task_table: &str) -> bool {
    task_table.starts_with(POST_DELIVERY) && ![CONSTRAINTS, REPLAY, PUBLISH].contains(&task_table)
}

/// The partition number of a table's second read-back, the one that stages
/// its rows for the replay (`delivery.post_replay = "on_difference"`, a
/// table that differs from the certificate); the first is partition 0.
const STAGED_COPY: u32 = 1;

/// Whether a read-back task is the second one, staging the rows.
fn is_staged_copy(t: &TaskOutcome) -> bool {
    t.partition == STAGED_COPY
}

/// Whether a table read back holds the certified rows: the certificate's
/// digest and (when it has one) Merkle root.
fn certified(cert: &SignedCertificate, r: &ReadBackResult) -> bool {
    let table = &cert.payload["tables"][&r.table];
    table["digest"].as_str().unwrap_or_default() == r.checksum
        && table["merkle_root"]
            .as_str()
            .is_none_or(|c| c == r.merkle_root)
}

/// Per table, what the delivery tasks wrote; the time in target
/// transactions; the target's notices.
fn delivered(
    tasks: &[TaskOutcome],
) -> Result<(BTreeMap<String, DeliveredTable>, u64, Vec<String>)> {
    let mut tables: BTreeMap<String, DeliveredTable> = BTreeMap::new();
    let mut elapsed = 0;
    let mut notices: Vec<String> = Vec::new();
    for t in tasks.iter().filter(|t| is_partition(&t.table)) {
        let r: DeliverResult = t.result()?;
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
    read: Vec<ReadBackResult>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    for r in read {
        let matches = certified(cert, &r);
        let name = r.table;
        let e = tables.entry(name.clone()).or_default();
        e.rows_in_target = r.rows_in_target;
        e.checksum = r.checksum;
        e.matches_certificate = matches;
        e.merkle_root = r.merkle_root;
        if !e.matches_certificate {
            warnings.push(format!(
                "table {name}: the target holds {} rows whose checksum differs from the certificate's: it held rows before this delivery (a source changed since an earlier delivery of this migration: `sensei migrate --resync` empties the target tables and delivers the current source), or was changed during delivery",
                r.rows_in_target
            ));
        }
    }
    warnings
}
