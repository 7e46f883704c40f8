//! What running a migration again with other settings does, decided apart
//! from doing it: the orchestrator gathers where the migration stands,
//! [`decide`] says what follows, and the orchestrator carries it out.
//!
//! A changed source or ingestion key (or an input file changed since it was
//! extracted) starts the migration over: everything depends on what was
//! extracted. Otherwise the stored configuration takes the new keys:
//! transformation keys as they are (they act when the mapping is planned;
//! decisions already made stay), verification keys by verifying again when
//! verification has begun and nothing was delivered, delivery and target
//! keys only before delivery began (batch sequence numbers are idempotency
//! keys: they must not change mid-way). Pacing keys change nothing that was
//! extracted or written and are taken at once. A delivered migration redoes
//! nothing.

use sensei_runtime::config::MigrationConfig;

/// Where a migration stands when it is run again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Standing {
    /// It completed (delivered).
    pub completed: bool,
    /// Delivery tasks were planned.
    pub delivery_planned: bool,
    /// A delivery task finished.
    pub delivered: bool,
    /// Verification tasks were planned.
    pub verifying: bool,
}

/// What a rerun with changed settings does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rerun {
    /// The configuration to store from now on (None: keep the stored one).
    pub config: Option<MigrationConfig>,
    /// Warnings for the migration's events.
    pub warnings: Vec<String>,
    /// Start over from ingestion, and why.
    pub start_over: Option<String>,
    /// Verify again (the earlier certificate set aside), and why.
    pub verify_again: Option<String>,
}

/// Keys that only pace the work.
fn pacing(key: &str) -> bool {
    key.ends_with(".batch_pause_ms")
}

/// What running with `config` does to a migration stored with `stored`
/// that stands as `standing`; `changed_files` names input files changed
/// since they were extracted.
pub fn decide(
    stored: &MigrationConfig,
    config: &MigrationConfig,
    changed_files: &[String],
    standing: Standing,
) -> Rerun {
    let mut changed = stored.changed_keys(config);
    let paced = changed.iter().any(|k| pacing(k));
    changed.retain(|k| !pacing(k));
    changed.extend(changed_files.iter().map(|f| format!("source file {f}")));
    let mut out = Rerun::default();
    if changed.is_empty() {
        if paced {
            let mut next = stored.clone();
            next.ingestion.batch_pause_ms = config.ingestion.batch_pause_ms;
            next.delivery.batch_pause_ms = config.delivery.batch_pause_ms;
            out.config = Some(next);
        }
        return out;
    }
    // An input file changed since it was extracted counts as a changed source.
    let section = |k: &str| -> String {
        if k.starts_with("source file ") {
            "source".into()
        } else {
            k.split('.').next().unwrap_or_default().to_string()
        }
    };
    let of = |sections: &[&str]| -> Vec<String> {
        changed
            .iter()
            .filter(|k| sections.contains(&section(k).as_str()))
            .cloned()
            .collect()
    };
    if standing.completed {
        out.warnings.push(format!(
            "{} changed after this migration was delivered: nothing is redone; run with --restart to migrate anew with them",
            changed.join(", ")
        ));
        return out;
    }
    let ingestion = of(&["source", "ingestion"]);
    if !ingestion.is_empty() {
        out.start_over = Some(format!(
            "{} changed since this migration was ingested: it starts over from ingestion",
            ingestion.join(", ")
        ));
        return out;
    }
    let mut next = config.clone();
    let delivery = of(&["delivery", "target"]);
    if !delivery.is_empty() && standing.delivery_planned {
        next.delivery = stored.delivery.clone();
        next.target = stored.target.clone();
        out.warnings.push(format!(
            "{} changed after delivery began: the delivery keeps its settings; run with --restart to deliver with the new ones",
            delivery.join(", ")
        ));
    }
    out.config = Some(next);
    let verification = of(&["verification"]);
    if !verification.is_empty() && standing.verifying {
        if standing.delivered {
            out.warnings.push(format!(
                "{} changed after delivery: the certificate stands; run with --restart to verify and deliver anew",
                verification.join(", ")
            ));
        } else {
            out.verify_again = Some(format!(
                "{} changed: verification starts again (the earlier certificate is under superseded/)",
                verification.join(", ")
            ));
        }
    }
    out
}

/// Moves an earlier certificate (and its expectations) of the migration
/// whose artifacts are in `dir` under `superseded/` (named with `now_ms`),
/// so verification can sign a new one.
pub fn set_certificate_aside(dir: &std::path::Path, now_ms: i64) -> crate::Result<()> {
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
            let to = aside.join(format!("{now_ms}-{name}"));
            std::fs::rename(&from, &to).map_err(io(&from))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed(f: impl FnOnce(&mut MigrationConfig)) -> (MigrationConfig, MigrationConfig) {
        let stored = MigrationConfig::default();
        let mut config = stored.clone();
        f(&mut config);
        (stored, config)
    }

    #[test]
    fn nothing_changed_does_nothing() {
        let (a, b) = changed(|_| {});
        assert_eq!(decide(&a, &b, &[], Standing::default()), Rerun::default());
    }

    #[test]
    fn pacing_is_taken_at_once_and_starts_nothing_over() {
        let (a, b) = changed(|c| {
            c.ingestion.batch_pause_ms = 50;
            c.delivery.batch_pause_ms = 70;
        });
        let standing = Standing {
            delivery_planned: true,
            verifying: true,
            ..Standing::default()
        };
        let r = decide(&a, &b, &[], standing);
        let next = r.config.expect("the pacing is stored");
        assert_eq!(
            (next.ingestion.batch_pause_ms, next.delivery.batch_pause_ms),
            (50, 70)
        );
        assert!(r.start_over.is_none() && r.verify_again.is_none() && r.warnings.is_empty());
    }

    #[test]
    fn a_changed_source_key_or_file_starts_over() {
        let (a, b) = changed(|c| c.ingestion.partition_rows = 7);
        let r = decide(&a, &b, &[], Standing::default());
        assert!(r
            .start_over
            .unwrap()
            .starts_with("ingestion.partition_rows changed"));
        let (a, b) = changed(|_| {});
        let r = decide(&a, &b, &["/data/orders.csv".into()], Standing::default());
        assert!(r
            .start_over
            .unwrap()
            .contains("source file /data/orders.csv"));
    }

    #[test]
    fn a_delivered_migration_only_warns() {
        let (a, b) = changed(|c| c.ingestion.partition_rows = 7);
        let standing = Standing {
            completed: true,
            ..Standing::default()
        };
        let r = decide(&a, &b, &[], standing);
        assert!(r.start_over.is_none() && r.config.is_none());
        assert!(
            r.warnings[0].contains("nothing is redone"),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn delivery_keys_wait_for_a_delivery_not_yet_begun() {
        let (a, b) = changed(|c| c.delivery.batch_rows = 5);
        let before = decide(&a, &b, &[], Standing::default());
        assert_eq!(before.config.unwrap().delivery.batch_rows, 5);
        let began = Standing {
            delivery_planned: true,
            ..Standing::default()
        };
        let after = decide(&a, &b, &[], began);
        assert_eq!(
            after.config.unwrap().delivery.batch_rows,
            a.delivery.batch_rows
        );
        assert!(after.warnings[0].contains("the delivery keeps its settings"));
    }

    #[test]
    fn verification_keys_verify_again_until_something_was_delivered() {
        let (a, b) = changed(|c| c.verification.max_queries = 3);
        let verifying = Standing {
            verifying: true,
            ..Standing::default()
        };
        let r = decide(&a, &b, &[], verifying);
        assert!(r
            .verify_again
            .unwrap()
            .starts_with("verification.max_queries changed"));
        let delivered = Standing {
            verifying: true,
            delivery_planned: true,
            delivered: true,
            ..Standing::default()
        };
        let r = decide(&a, &b, &[], delivered);
        assert!(r.verify_again.is_none());
        assert!(r.warnings[0].contains("the certificate stands"));
    }
}
