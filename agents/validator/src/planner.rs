//! The head's half of verification: one task per target table (the
//! mapping's SQL to replay, tolerances, expectations, statistics, the
//! generated query replay) and one cross-table task (the user's source
//! queries and foreign-key coverage rewritten through the mapping, the
//! target's foreign keys), then the Behavioral Equivalence Certificate:
//! every check's result, per table its row count, digest and Merkle root,
//! the SHA-256 of everything it rests on, signed with the head's Ed25519 key.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use sensei_architect::planner::{hash_key_file, lookups_of, target_schema};
use sensei_contracts::artifacts::*;
use sensei_contracts::error::{EngineError, Result};
use sensei_contracts::planner::{
    id_part, Finalized, PhaseContext, Plan, PlannedTask, Planner, Stop, TaskOutcome,
};
use sensei_runtime::config::MigrationConfig;
use sensei_runtime::signing::SigningKey;
use sensei_runtime::store::sha256_hex;

use crate::validate::{VerifyResult, VerifyTask};

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
    let text = std::fs::read_to_string(&path).map_err(|e| EngineError::Invalid {
        what: format!("expectation suite {}", path.display()),
        message: e.to_string(),
    })?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| EngineError::Invalid {
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

/// The foreign keys between migrated target tables: those the target
/// schema declares, or (a mirror) the source's.
async fn target_foreign_keys(
    config: &MigrationConfig,
    manifest: &Manifest,
    mapping: &MappingSpec,
) -> Result<Vec<crate::queries::ForeignKey>> {
    let migrated: std::collections::BTreeSet<&str> =
        mapping.tables.iter().map(|t| t.target.as_str()).collect();
    let all: Vec<crate::queries::ForeignKey> = match target_schema(config).await? {
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

/// The cross-table task: the user's queries and the foreign-key coverage
/// queries, rewritten through the mapping, and the target's foreign keys;
/// None when there is none of them.
async fn cross_table_task(
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
    let foreign_keys = target_foreign_keys(config, manifest, mapping).await?;
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

/// The verdict being reached: the checks so far, whether all that decided
/// passed, and whether any could not decide.
struct Tally {
    checks: Vec<serde_json::Value>,
    pass: bool,
    undecided: bool,
}

impl Tally {
    fn status(&self) -> &'static str {
        match (self.pass, self.undecided) {
            (false, _) => "FAIL",
            (true, true) => "INCONCLUSIVE",
            (true, false) => "PASS",
        }
    }

    /// `check table` of every check with `result`.
    fn with(&self, result: &str) -> Vec<String> {
        self.checks
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

    /// The tables' expectation results (row counts of other tables are
    /// known here, not on the Validator) and the semantic checks; returns
    /// the GX validation documents per table.
    fn expectations(
        &mut self,
        verified: &[(&TaskOutcome, VerifyResult)],
        severity: &str,
    ) -> serde_json::Map<String, serde_json::Value> {
        let counts: BTreeMap<String, u64> = verified
            .iter()
            .map(|(t, r)| (t.table.clone(), r.target.rows))
            .collect();
        let mut validations = serde_json::Map::new();
        for (t, r) in verified {
            let Some(v) = &r.expectations else {
                continue;
            };
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
            if let Some(c) = sensei_architect::semantic::check(&t.table, &mut results, severity) {
                self.pass &= c["result"] != "fail";
                self.checks.push(c);
            }
            if results.is_empty() {
                continue;
            }
            let doc = crate::expectations::summarize(
                &serde_json::json!({"name": v["suite_name"]}),
                results,
            );
            let ok = doc["success"] == true;
            self.pass &= ok;
            // Counts only: the signed payload carries no floating-point numbers.
            let st = &doc["statistics"];
            self.checks.push(serde_json::json!({"check": "expectations", "table": t.table,
                "evaluated": st["evaluated_expectations"], "successful": st["successful_expectations"],
                "unsuccessful": st["unsuccessful_expectations"], "result": if ok { "pass" } else { "fail" }}));
            validations.insert(t.table.clone(), doc);
        }
        validations
    }

    /// One table's checks; returns its entry in the certificate's tables.
    fn table(
        &mut self,
        table: &str,
        r: &VerifyResult,
        key: Vec<String>,
        columns: Vec<(String, String)>,
    ) -> serde_json::Value {
        if let Some(why) = &r.unreadable {
            // Nothing else about this table can be decided.
            self.undecided = true;
            self.checks
                .push(serde_json::json!({"check": "readable", "table": table,
                "error": why, "result": "inconclusive"}));
            return serde_json::json!({"unreadable": why});
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
        self.pass &= count_ok && rows_ok && (digest_ok || tolerated);
        if !r.stats.is_empty() {
            let failing = r.stats.iter().filter(|c| !c.pass).count();
            self.pass &= failing == 0;
            self.checks
                .push(serde_json::json!({"check": "distributions", "table": table,
                "columns": r.stats, "result": if failing == 0 { "pass" } else { "fail" }}));
        }
        if let Some(q) = &r.replay {
            let verdict = q.verdict();
            self.pass &= verdict != "fail";
            self.undecided |= verdict == "inconclusive";
            self.checks
                .push(serde_json::json!({"check": "query_replay", "table": table,
                "queries": q.queries, "passed": q.passed, "failures": q.failures,
                "inconclusive": q.inconclusive, "undecided": q.undecided,
                "result": verdict}));
        }
        if let Some(d) = &r.row_check {
            self.undecided |= d.verdict() == "inconclusive";
            self.checks.push(
                serde_json::json!({"check": "row_equivalence", "table": table,
                "key": "primary key of the target", "expected": d.expected, "missing": d.missing,
                "extra": d.extra, "changed": d.changed, "within_tolerance": d.within_tolerance,
                "doubtful": d.doubtful, "differences": d.examples, "result": d.verdict()}),
            );
        }
        self.checks.push(serde_json::json!({"check": "row_count", "table": table, "source": r.source.rows, "target": r.target.rows,
            "result": if count_ok { "pass" } else { "fail" }}));
        self.checks.push(serde_json::json!({"check": "content_digest", "table": table, "source": r.source.digest, "target": r.target.digest,
            "result": if digest_ok { "pass" } else if tolerated && rows_ok { "within_tolerance" } else { "fail" }}));
        serde_json::json!({"rows": r.target.rows, "digest": r.target.digest, "merkle_root": r.merkle_root,
            "merkle_key": key, "columns": columns})
    }

    /// The cross-table task's queries and referential integrity checks.
    fn cross_table(&mut self, r: crate::queries::QueryResult) {
        for q in r.queries {
            self.pass &= q.result != "fail";
            self.undecided |= q.result == "inconclusive";
            let kind = if q.name.starts_with("fk_coverage") {
                "fk_coverage"
            } else {
                "source_query"
            };
            self.checks
                .push(serde_json::json!({"check": kind, "table": q.name,
                "source_sql": q.source_sql, "target_sql": q.target_sql,
                "detail": q.detail, "result": q.result}));
        }
        for i in r.integrity {
            let result = match (&i.error, i.orphans) {
                (Some(_), _) => "inconclusive",
                (None, 0) => "pass",
                (None, _) => "fail",
            };
            self.pass &= result != "fail";
            self.undecided |= result == "inconclusive";
            self.checks
                .push(serde_json::json!({"check": "referential_integrity",
                "table": i.key.table, "columns": i.key.columns, "parent": i.key.parent,
                "parent_columns": i.key.parent_columns, "rows": i.rows, "orphans": i.orphans,
                "orphan_keys": i.examples, "error": i.error, "result": result}));
        }
    }
}

/// The column names and Arrow types of a table's transformed partitions.
pub fn columns_of(transformed: &[PartitionRef], table: &str) -> Result<Vec<(String, String)>> {
    Ok(match transformed.iter().find(|p| p.table == table) {
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
    })
}

/// The SHA-256 of every artifact and partition the certificate rests on.
async fn evidence(
    cx: &PhaseContext<'_>,
    mapping: &MappingSpec,
    transformed: &[PartitionRef],
) -> Result<BTreeMap<String, String>> {
    let mut evidence = BTreeMap::new();
    let mut names: Vec<String> = [
        "manifest.json",
        "mapping.json",
        "lineage.json",
        "transformation.json",
        "expectations.json",
    ]
    .map(String::from)
    .to_vec();
    // The generated SQL the Workers ran, table by table.
    names.extend(
        mapping
            .tables
            .iter()
            .map(|t| format!("sql/{}.sql", id_part(&t.target))),
    );
    for name in names {
        if name == "expectations.json" && !cx.exists(&name).await? {
            continue;
        }
        let bytes = cx.artifacts.get(&cx.path(&name)).await?;
        evidence.insert(name, sha256_hex(&bytes));
    }
    let manifest: Manifest = cx.get_json("manifest.json").await?;
    for p in manifest
        .tables
        .iter()
        .flat_map(|t| &t.partitions)
        .chain(transformed)
    {
        evidence.insert(p.id.clone(), p.sha256.clone());
    }
    Ok(evidence)
}

/// How the mapping was decided, for the certificate.
fn mapping_summary(mapping: &MappingSpec) -> serde_json::Value {
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    for c in mapping.tables.iter().flat_map(|t| &t.columns) {
        *by_status.entry(c.status.clone()).or_default() += 1;
    }
    serde_json::json!({
        "approved_all": mapping.approved_all,
        "entries_by_status": by_status,
        "note": if mapping.approved_all { "the user approved every entry that waited for review with --approve-all" } else { "" },
    })
}

/// The verification phase's planner: it signs the certificate with the
/// head's key.
pub struct VerificationPlanner {
    key: Arc<SigningKey>,
}

impl VerificationPlanner {
    /// A planner signing with `key`.
    pub fn new(key: Arc<SigningKey>) -> Self {
        VerificationPlanner { key }
    }
}

#[async_trait::async_trait]
impl Planner for VerificationPlanner {
    async fn plan(&self, cx: &mut PhaseContext<'_>) -> Result<Plan> {
        let config = cx.config;
        let manifest: Manifest = cx.get_json("manifest.json").await?;
        let mapping: MappingSpec = cx.get_json("mapping.json").await?;
        let transformed = cx.transformed().await?;
        let mut specs = Vec::new();
        // Per-column string modes are added per table below.
        let tolerance = crate::equivalence::Tolerance::from_config(&config.verification);
        // Rules the target schema's names promise, per target table.
        let semantic: BTreeMap<String, Vec<serde_json::Value>> = match (
            config.verification.semantic_checks.as_str(),
            target_schema(config).await?,
        ) {
            ("off", _) | (_, None) => BTreeMap::new(),
            (_, Some(targets)) => mapping
                .tables
                .iter()
                .filter_map(|tm| {
                    let t = targets.iter().find(|t| t.name == tm.target)?;
                    Some((
                        tm.target.clone(),
                        sensei_architect::semantic::expectations(t, tm, &manifest),
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
                sql: Some(sensei_architect::sql_for(tm)),
                hash_key_file: hash_key_file(config),
                lookups: lookups_of(tm, &manifest),
                key: tm.primary_key.clone(),
                expectations: sensei_architect::semantic::merge(
                    suite_for(config, &tm.target)?,
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
            specs.push(PlannedTask {
                table: tm.target.clone(),
                partition: 0,
                payload: serde_json::to_value(task)?,
                preferred_node: None,
            });
        }
        if let Some(task) =
            cross_table_task(config, &manifest, &mapping, &transformed, tolerance).await?
        {
            specs.push(PlannedTask {
                table: crate::queries::CROSS_TABLE.into(),
                partition: 0,
                payload: serde_json::to_value(task)?,
                preferred_node: None,
            });
        }
        Ok(Plan::Tasks(specs))
    }

    async fn finalize(&self, cx: &mut PhaseContext<'_>, done: &[TaskOutcome]) -> Result<Finalized> {
        let path = cx.path("certificate.json");
        if cx.artifacts.exists(&path).await? {
            // Signed before an interruption: a certificate is never re-issued,
            // and a FAIL still stops the migration (an INCONCLUSIVE one waits
            // when delivery is planned).
            let cert: SignedCertificate = cx.get_json("certificate.json").await?;
            let stop = (cert.payload["status"] == "FAIL").then(|| {
                Stop::Fail(
                    "certificate FAIL (signed before an interruption); nothing was delivered"
                        .into(),
                )
            });
            return Ok(Finalized {
                artifact: path,
                stop,
            });
        }
        let mapping: MappingSpec = cx.get_json("mapping.json").await?;
        let transformed = cx.transformed().await?;
        let (cross, per_table): (Vec<&TaskOutcome>, Vec<&TaskOutcome>) = done
            .iter()
            .partition(|t| t.table == crate::queries::CROSS_TABLE);
        let verified: Vec<(&TaskOutcome, VerifyResult)> = per_table
            .into_iter()
            .map(|t| Ok((t, t.result()?)))
            .collect::<Result<_>>()?;
        let mut tally = Tally {
            checks: Vec::new(),
            pass: true,
            undecided: false,
        };
        let validations = tally.expectations(&verified, &cx.config.verification.semantic_checks);
        if !validations.is_empty() {
            cx.put_json("expectations.json", &validations).await?;
        }
        let mut tables = serde_json::Map::new();
        for (t, r) in &verified {
            let key = mapping
                .tables
                .iter()
                .find(|m| m.target == t.table)
                .map(|m| m.primary_key.clone())
                .unwrap_or_default();
            let columns = if r.unreadable.is_none() {
                columns_of(&transformed, &t.table)?
            } else {
                Vec::new()
            };
            let entry = tally.table(&t.table, r, key, columns);
            tables.insert(t.table.clone(), entry);
        }
        for t in cross {
            tally.cross_table(t.result()?);
        }
        let evidence = evidence(cx, &mapping, &transformed).await?;
        for c in &tally.checks {
            let result = c["result"].as_str().unwrap_or("unknown").to_string();
            metrics::counter!(sensei_runtime::metrics::VERIFICATION_CHECKS, "result" => result)
                .increment(1);
        }
        let status = tally.status();
        let stop = match status {
            "FAIL" => Some(Stop::Fail(format!(
                "certificate FAIL ({}); nothing was delivered",
                tally.with("fail").join(", ")
            ))),
            "INCONCLUSIVE" => Some(Stop::AwaitReview(format!(
                "certificate INCONCLUSIVE ({}); nothing was delivered: read the certificate's undecided checks, then sensei review --accept-inconclusive to deliver, or sensei migrate --restart to verify anew",
                tally.with("inconclusive").join(", ")
            ))),
            _ => None,
        };
        let payload = serde_json::json!({
            "version": ARTIFACT_VERSION,
            "migration_id": cx.id,
            "issued_at": now_rfc3339(),
            "status": status,
            "method": "row counts and order-independent content digests (sum of SHA-256 of canonical rows mod 2^256) per table: the mapping's SQL replayed by the Validator over the source partitions, against the transformed partitions",
            "mapping": mapping_summary(&mapping),
            "checks": tally.checks,
            "tables": tables,
            "evidence_sha256": evidence,
            "public_key": hex::encode(self.key.public_key()),
            "key_id": self.key.key_id(),
        });
        let cert = sign_certificate(payload, &self.key)?;
        let mut bytes = serde_json::to_vec_pretty(&cert)?;
        bytes.push(b'\n');
        cx.artifacts.put_once(&path, Bytes::from(bytes)).await?;
        Ok(Finalized {
            artifact: path,
            stop,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::equivalence::RowDiff;
    use crate::validate::SideDigest;

    fn tally() -> Tally {
        Tally {
            checks: Vec::new(),
            pass: true,
            undecided: false,
        }
    }

    fn verified(rows_source: u64, rows_target: u64, missing: u64) -> VerifyResult {
        let side = |rows| SideDigest {
            rows,
            digest: format!("{rows:064x}"),
        };
        VerifyResult {
            rows: rows_target,
            source: side(rows_source),
            target: side(rows_target),
            row_check: Some(RowDiff {
                expected: rows_source,
                missing,
                ..RowDiff::default()
            }),
            merkle_root: Some("ab".into()),
            ..VerifyResult::default()
        }
    }

    #[test]
    fn equal_tables_pass_and_their_entry_carries_the_digest() {
        let mut t = tally();
        let entry = t.table(
            "customer",
            &verified(5, 5, 0),
            vec!["id".into()],
            Vec::new(),
        );
        assert_eq!(t.status(), "PASS");
        assert_eq!(entry["rows"], 5);
        assert_eq!(entry["merkle_key"], serde_json::json!(["id"]));
        assert!(t.with("fail").is_empty());
    }

    #[test]
    fn a_lost_row_fails_the_certificate_naming_the_checks() {
        let mut t = tally();
        t.table("customer", &verified(5, 4, 1), Vec::new(), Vec::new());
        assert_eq!(t.status(), "FAIL");
        let failed = t.with("fail");
        for check in [
            "row_equivalence customer",
            "row_count customer",
            "content_digest customer",
        ] {
            assert!(failed.iter().any(|f| f == check), "{failed:?}");
        }
    }

    #[test]
    fn an_unreadable_table_is_undecided_unless_another_fails() {
        let mut t = tally();
        let unreadable = VerifyResult {
            unreadable: Some("partition p is corrupt".into()),
            ..VerifyResult::default()
        };
        let entry = t.table("customer", &unreadable, Vec::new(), Vec::new());
        assert_eq!(entry["unreadable"], "partition p is corrupt");
        assert_eq!(t.status(), "INCONCLUSIVE");
        t.table("product", &verified(3, 2, 1), Vec::new(), Vec::new());
        assert_eq!(t.status(), "FAIL");
    }
}
