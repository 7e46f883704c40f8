//! The head's half of transformation: the mapping (the spec `sensei plan`
//! wrote and `sensei review` edited, checked against the manifest; else one
//! planned now from the target schema, the identity without one), the
//! decisions of a review file, the checks before any Worker runs (values
//! that would change under `--strict`, entries waiting for review, NOT NULL
//! columns that would receive NULL), the generated SQL and lineage, and one
//! task per source partition and target table; then the transformation's
//! checkpoint (`transformation.json`: every staged partition and the hashes
//! of the mapping, lineage and SQL it came from).

use std::collections::BTreeMap;

use bytes::Bytes;
use sensei_contracts::artifacts::*;
use sensei_contracts::error::{EngineError, Result};
use sensei_contracts::planner::{
    id_part, results, Finalized, PhaseContext, Plan, PlannedTask, Planner, Stop, TaskOutcome,
};
use sensei_runtime::config::MigrationConfig;
use sensei_runtime::secret::redact_url;
use sensei_runtime::store::sha256_hex;

use crate::ddl::TargetTable;
use crate::transform::{TransformResult, TransformTask};

/// Checks a mapping spec (perhaps edited by hand) against the manifest:
/// known statuses, source tables and columns that exist, and SQL that
/// DataFusion can plan over the source's types (an unknown column or a cast
/// that cannot be made is refused with the entry and the reason).
pub async fn check_spec(spec: &MappingSpec, manifest: &Manifest) -> Result<()> {
    let bad = |entry: String, message: String| EngineError::Invalid {
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
                crate::transform::plan_sql(schema.clone(), &crate::sql_for(&one), &lookups)
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
pub fn lookups_of(tm: &TableMapping, manifest: &Manifest) -> Vec<crate::transform::LookupRef> {
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

/// The keyed-hash key file of a configuration, if any.
pub fn hash_key_file(config: &MigrationConfig) -> Option<String> {
    let f = &config.transformation.pii_hash_key_file;
    (!f.is_empty()).then(|| f.clone())
}

/// The identity mapping: every source table to a target table of the same
/// name and columns, each column at confidence 1.0.
pub fn identity_mapping(id: &str, manifest: &Manifest) -> MappingSpec {
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
                        expression: crate::quote(&c.name),
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

/// The target schema: the DDL file, or (`@target`) the tables the target
/// database already holds; None without either (the target mirrors the source).
pub async fn target_schema(config: &MigrationConfig) -> Result<Option<Vec<TargetTable>>> {
    if config.target.schema == TARGET_SCHEMA_FROM_TARGET {
        let (url, options, namespace) = (
            config.target.url.clone(),
            sensei_connectors::files::SourceOptions::for_target(&config.target),
            config.target.namespace.clone(),
        );
        return sensei_contracts::error::blocking("reading the target's schema", move || {
            crate::ddl::from_target(&url, &options, &namespace).map(Some)
        })
        .await;
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
    let mut read = crate::ddl::read_schema(&ddl, file)?;
    if !read.skipped.is_empty() {
        tracing::debug!(file = %file, skipped = read.skipped.len(), "schema statements that define no table");
    }
    // A dump of a database Sensei delivered into holds its ledger.
    read.tables
        .retain(|t| t.name != sensei_connectors::batch::LEDGER_TABLE);
    Ok(Some(read.tables))
}

/// Applies `transformation.review_file` to a spec; returns the entries changed.
fn apply_review_file(cx: &mut PhaseContext<'_>, spec: &mut MappingSpec) -> Result<usize> {
    if cx.config.transformation.review_file.is_empty() {
        return Ok(0);
    }
    let file = std::path::Path::new(&cx.config.transformation.review_file);
    let review = crate::review::ReviewFile::read(file)?;
    let n = review.apply_to(spec, &now_rfc3339(), &file.display().to_string())?;
    if n > 0 {
        cx.note(
            "info",
            format!(
                "review file {}: {n} mapping entries decided by {}",
                file.display(),
                review.reviewed_by
            ),
        );
    }
    Ok(n)
}

/// The mapping a migration runs with: the spec `sensei plan` wrote and
/// `sensei review` edited, checked against the manifest; else one planned
/// now from the target schema (the identity without one). A review file
/// applies to a stored spec while `review_open` (until the Workers have
/// been given the spec), and always to a spec planned now.
pub async fn mapping(cx: &mut PhaseContext<'_>, review_open: bool) -> Result<MappingSpec> {
    let config = cx.config;
    let manifest: Manifest = cx.get_json("manifest.json").await?;
    if cx.exists("mapping.json").await? {
        let mut spec: MappingSpec = cx.get_json("mapping.json").await?;
        check_spec(&spec, &manifest).await?;
        if review_open && apply_review_file(cx, &mut spec)? > 0 {
            cx.put_json("mapping.json", &spec).await?;
        }
        return Ok(spec);
    }
    let mut spec = match target_schema(config).await? {
        None => identity_mapping(cx.id, &manifest),
        Some(targets) => {
            let extra =
                crate::matcher::Dictionary::parse_extra(&config.transformation.abbreviations)?;
            let policy = crate::PiiPolicy::parse(
                &config.transformation.pii_policy,
                &config.transformation.pii_policy_by_kind,
            )?;
            crate::plan(
                cx.id,
                &manifest,
                &targets,
                &crate::matcher::Dictionary::with_extra(&extra),
                config.transformation.auto_approval_threshold,
                &policy,
            )?
        }
    };
    apply_review_file(cx, &mut spec)?;
    cx.put_json("mapping.json", &spec).await?;
    Ok(spec)
}

/// Under `transformation.strict`, the values the manifest says would
/// change on the way in, as `table.column: n what`.
fn changed_values(manifest: &Manifest) -> Vec<String> {
    manifest
        .tables
        .iter()
        .flat_map(|t| {
            t.changed_values.iter().flat_map(move |(column, kinds)| {
                kinds
                    .iter()
                    .map(move |(what, n)| format!("{}.{column}: {n} {what}", t.name))
            })
        })
        .collect()
}

/// Why the Workers must not start yet, if they must not: entries waiting
/// for review (approved here under `--approve-all`), or NOT NULL target
/// columns that would receive NULL.
async fn must_wait(cx: &mut PhaseContext<'_>, mapping: &mut MappingSpec) -> Result<Option<String>> {
    let waiting = crate::pending(mapping);
    if !waiting.is_empty() && cx.config.transformation.approve_all {
        crate::review::approve_waiting(mapping, "--approve-all", &now_rfc3339());
        mapping.approved_all = true;
        cx.note(
            "warn",
            format!(
                "--approve-all approved {} mapping entries that waited for review",
                waiting.len()
            ),
        );
    } else if !waiting.is_empty() {
        cx.note(
            "warn",
            format!("mapping entries wait for review: {}", waiting.join(", ")),
        );
        return Ok(Some(format!(
            "{} mapping entries wait for review; run sensei review, or migrate with --approve-all",
            waiting.len()
        )));
    }
    if let Some(targets) = target_schema(cx.config).await? {
        let nulls = crate::nulls_into_not_null(mapping, &targets);
        if !nulls.is_empty() {
            cx.put_json("mapping.json", &*mapping).await?;
            return Ok(Some(format!(
                "target columns NOT NULL without a default would receive NULL: {}; map each (sensei review --expression TABLE.COLUMN=SQL), give it a default in the target schema, or drop the constraint, then migrate again",
                nulls.join(", ")
            )));
        }
    }
    Ok(None)
}

/// Lineage of the mapping: `lineage.json`, `openlineage.json`, `lineage.cypher`.
async fn write_lineage(cx: &PhaseContext<'_>, mapping: &MappingSpec) -> Result<()> {
    let config = cx.config;
    let (source_ns, target_ns) = (
        redact_url(&config.source.url),
        redact_url(&config.target.url),
    );
    cx.put_json("lineage.json", &crate::lineage::edges(mapping))
        .await?;
    cx.put_json(
        "openlineage.json",
        &crate::lineage::openlineage(
            mapping,
            &config.source.url,
            (&config.target.url, &config.target.namespace),
            &now_rfc3339(),
        ),
    )
    .await?;
    cx.artifacts
        .put(
            &cx.path("lineage.cypher"),
            Bytes::from(crate::lineage::cypher(mapping, &source_ns, &target_ns)),
        )
        .await?;
    Ok(())
}

/// The SQL of every target table (written under `sql/`) and one task per
/// source partition and target table, preferring the node holding it.
async fn tasks(
    cx: &PhaseContext<'_>,
    mapping: &MappingSpec,
    manifest: &Manifest,
) -> Result<Vec<PlannedTask>> {
    let id = cx.id;
    let mut specs = Vec::new();
    for tm in &mapping.tables {
        let sql = crate::sql_for(tm);
        cx.artifacts
            .put(
                &cx.path(&format!("sql/{}.sql", id_part(&tm.target))),
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
                hash_key_file: hash_key_file(cx.config),
                lookups: lookups_of(tm, manifest),
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
            specs.push(PlannedTask {
                table: tm.target.clone(),
                partition: p.partition,
                payload: serde_json::to_value(task)?,
                preferred_node: Some(p.node_id.clone()),
            });
        }
    }
    Ok(specs)
}

/// The SHA-256 of one of the migration's artifacts.
async fn digest(cx: &PhaseContext<'_>, name: &str) -> Result<String> {
    Ok(sha256_hex(&cx.artifacts.get(&cx.path(name)).await?))
}

/// The transformation phase's planner.
#[derive(Debug, Default)]
pub struct TransformationPlanner;

#[async_trait::async_trait]
impl Planner for TransformationPlanner {
    async fn plan(&self, cx: &mut PhaseContext<'_>) -> Result<Plan> {
        let manifest: Manifest = cx.get_json("manifest.json").await?;
        if cx.config.transformation.strict {
            let changed = changed_values(&manifest);
            if !changed.is_empty() {
                return Ok(Plan::Stop(Stop::Halt(format!(
                    "strict: values would change on the way in: {}; fix them in the source, or migrate without --strict (transformation.strict) to count them in the manifest and the receipt",
                    changed.join(", ")
                ))));
            }
        }
        let mut mapping = mapping(cx, true).await?;
        if let Some(why) = must_wait(cx, &mut mapping).await? {
            return Ok(Plan::Stop(Stop::AwaitReview(why)));
        }
        cx.put_json("mapping.json", &mapping).await?;
        if !mapping.unmapped_sources.is_empty() {
            cx.note(
                "warn",
                format!(
                    "source tables not in the target schema, not migrated: {}",
                    mapping.unmapped_sources.join(", ")
                ),
            );
        }
        let specs = tasks(cx, &mapping, &manifest).await?;
        write_lineage(cx, &mapping).await?;
        Ok(Plan::Tasks(specs))
    }

    async fn finalize(&self, cx: &mut PhaseContext<'_>, done: &[TaskOutcome]) -> Result<Finalized> {
        let mut partitions: Vec<PartitionRef> = results::<TransformResult>(done)?
            .into_iter()
            .map(|r| r.partition)
            .collect();
        partitions.sort_by(|a, b| (&a.table, a.partition).cmp(&(&b.table, b.partition)));
        let mapping: MappingSpec = cx.get_json("mapping.json").await?;
        let mut sql = BTreeMap::new();
        for t in &mapping.tables {
            let hash = digest(cx, &format!("sql/{}.sql", id_part(&t.target))).await?;
            sql.insert(t.target.clone(), hash);
        }
        let doc = serde_json::json!({
            "version": ARTIFACT_VERSION,
            "migration_id": cx.id,
            "mapping_sha256": digest(cx, "mapping.json").await?,
            "lineage_sha256": digest(cx, "lineage.json").await?,
            "sql_sha256": sql,
            "partitions": partitions,
        });
        Ok(Finalized::ok(
            cx.put_json("transformation.json", &doc).await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sensei_runtime::store::ArtifactStore;

    /// A manifest of one table, `people`, in two partitions, written into a
    /// fresh artifact store.
    async fn setup(changed: serde_json::Value) -> (tempfile::TempDir, ArtifactStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::local(dir.path()).unwrap();
        let part = |n: u32| {
            serde_json::json!({"id": format!("m/staging/ingestion/people/{n:05}-a1"), "table": "people",
                "partition": n, "node_id": "node-1", "endpoint": "", "uri": "file:///nowhere",
                "rows": 10, "bytes": 100, "sha256": "00"})
        };
        let manifest: Manifest = serde_json::from_value(serde_json::json!({
            "version": 1, "migration_id": "m", "source": "sqlite:///legacy.db",
            "checkpoint_time": "2026-01-01T00:00:00Z", "snapshot_id": null,
            "consistency": "per-session",
            "catalog": serde_json::to_value(sensei_connectors::catalog::Catalog::default()).unwrap(),
            "tables": [{"name": "people", "primary_key": ["id"], "rows": 20,
                "columns": [
                    {"name": "id", "source_type": "INTEGER", "arrow_type": "Int64", "nullable": false, "primary_key": 1},
                    {"name": "e mail", "source_type": "TEXT", "arrow_type": "Utf8", "nullable": true, "primary_key": 0}],
                "partitions": [part(1), part(0)], "changed_values": changed}]
        }))
        .unwrap();
        let bytes = serde_json::to_vec(&manifest).unwrap();
        store
            .put("m/manifest.json", Bytes::from(bytes))
            .await
            .unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn without_a_target_schema_every_partition_is_copied_as_it_is() {
        let (_dir, store) = setup(serde_json::json!({})).await;
        let config = MigrationConfig::default();
        let mut cx = PhaseContext::new("m", &config, &store);
        let Plan::Tasks(tasks) = TransformationPlanner.plan(&mut cx).await.unwrap() else {
            panic!("the identity mapping needs no review");
        };
        assert_eq!(tasks.len(), 2);
        assert!(tasks.iter().all(|t| t.table == "people"));
        assert_eq!(tasks[0].preferred_node.as_deref(), Some("node-1"));
        let task: TransformTask = serde_json::from_value(tasks[0].payload.clone()).unwrap();
        // Names that need quoting are quoted in the generated SQL.
        assert!(task.sql.contains("\"e mail\""), "{}", task.sql);
        assert!(task
            .output_id
            .starts_with("m/staging/transformation/people/"));
        for artifact in [
            "mapping.json",
            "sql/people.sql",
            "lineage.json",
            "openlineage.json",
        ] {
            assert!(cx.exists(artifact).await.unwrap(), "{artifact}");
        }
        let spec: MappingSpec = cx.get_json("mapping.json").await.unwrap();
        assert!(spec.tables[0].columns.iter().all(|c| c.status == "auto"));
    }

    #[tokio::test]
    async fn strict_halts_on_values_that_changed_on_the_way_in() {
        let (_dir, store) =
            setup(serde_json::json!({"e mail": {"empty field read as NULL": 3}})).await;
        let mut config = MigrationConfig::default();
        config.transformation.strict = true;
        let mut cx = PhaseContext::new("m", &config, &store);
        match TransformationPlanner.plan(&mut cx).await.unwrap() {
            Plan::Stop(Stop::Halt(why)) => {
                assert!(
                    why.contains("people.e mail: 3 empty field read as NULL"),
                    "{why}"
                );
                assert!(why.contains("--strict"), "{why}");
            }
            other => panic!("expected a halt, got {other:?}"),
        }
        assert!(!cx.exists("mapping.json").await.unwrap());
    }

    #[tokio::test]
    async fn the_checkpoint_lists_the_partitions_in_order_with_the_hashes_they_came_from() {
        let (_dir, store) = setup(serde_json::json!({})).await;
        let config = MigrationConfig::default();
        let mut cx = PhaseContext::new("m", &config, &store);
        let Plan::Tasks(tasks) = TransformationPlanner.plan(&mut cx).await.unwrap() else {
            panic!("no tasks");
        };
        let outcomes: Vec<TaskOutcome> = tasks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let task: TransformTask = serde_json::from_value(t.payload.clone()).unwrap();
                let mut partition = task.input.clone();
                partition.table = "people".into();
                partition.id = format!("{}-a1", task.output_id);
                TaskOutcome {
                    id: i as i64,
                    table: t.table.clone(),
                    partition: t.partition,
                    result: Some(
                        serde_json::json!({"rows": 10, "rows_in": 10, "partition": partition}),
                    ),
                }
            })
            .collect();
        let done = TransformationPlanner
            .finalize(&mut cx, &outcomes)
            .await
            .unwrap();
        assert_eq!(done.artifact, "m/transformation.json");
        assert!(done.stop.is_none());
        let doc: serde_json::Value = cx.get_json("transformation.json").await.unwrap();
        let numbers: Vec<u64> = doc["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["partition"].as_u64().unwrap())
            .collect();
        assert_eq!(numbers, [0, 1]);
        let sql = cx.artifacts.get("m/sql/people.sql").await.unwrap();
        assert_eq!(doc["sql_sha256"]["people"], sha256_hex(&sql));
    }
}
