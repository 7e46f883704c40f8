//! A PostgreSQL delivery staged beside its target: every batch is loaded
//! into a staging schema (with its ledger rows), checked there, and
//! published in one transaction only after the certificate says PASS:
//! each staged table, view, sequence, type and routine (what the schema
//! file created) moved into the target's schema (`ALTER .. SET SCHEMA`, a
//! catalog change: no row is copied), the staged ledger rows added to the
//! target's ledger, the emptied staging schema dropped (without CASCADE: an
//! object left behind refuses the publication rather than vanish).
//! Until that transaction commits the target is as it was; a session
//! killed inside it leaves the target as it was and the staging schema
//! whole, and publishing again finishes the work.
//!
//! A delivery is staged only into a target that holds none of its tables
//! (tables the target has keep their grants, triggers and dependants, and
//! are written directly, after the certificate).

use super::{db_err, ledger_ddl, quote, PgTarget};
use crate::batch::LEDGER_TABLE;
use crate::error::{ConnectorError, Result};
use crate::target::Published;

/// Advisory lock key of publication (one publisher at a time per database).
const PUBLISH_LOCK: i64 = 0x5e45_e1b0_b115;

impl PgTarget {
    /// The schema this session writes (its `search_path` head).
    fn own_schema(&mut self) -> Result<String> {
        let row = self
            .client
            .query_one("SELECT current_schema()::text", &[])
            .map_err(db_err("reading the target schema"))?;
        row.get::<_, Option<String>>(0)
            .ok_or_else(|| ConnectorError::Database {
                context: "reading the target schema".into(),
                message: "the session has no current schema (an empty search_path)".into(),
                transient: false,
            })
    }

    /// Why a delivery of `tables` into schema `namespace` (empty: the
    /// session's default) cannot be staged, if it cannot: the user may not
    /// create a schema, or the target already holds one of the tables.
    pub fn staging_refused(
        &mut self,
        namespace: &str,
        tables: &[String],
    ) -> Result<Option<String>> {
        let ctx = "checking whether the target can take a staged delivery";
        let schema = if namespace.is_empty() {
            self.own_schema()?
        } else {
            namespace.to_string()
        };
        let may_create: bool = self
            .client
            .query_one(
                "SELECT has_database_privilege(current_database(), 'CREATE')",
                &[],
            )
            .map_err(db_err(ctx))?
            .get(0);
        if !may_create {
            return Ok(Some(
                "the target user may not create a schema in the database (GRANT CREATE ON DATABASE lets it stage)".into(),
            ));
        }
        let held: Vec<String> = self
            .client
            .query(
                "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = ANY($2) ORDER BY 1",
                &[&schema, &tables],
            )
            .map_err(db_err(ctx))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok((!held.is_empty()).then(|| {
            format!(
                "the target already holds {} (written in place, after the certificate)",
                held.join(", ")
            )
        }))
    }

    /// Makes the staging schema `area` ready: staging schemas of the same
    /// migration from earlier runs (their names start with `stale_prefix`)
    /// dropped, `area` emptied first when `fresh`, then created.
    pub fn begin_staging(&mut self, area: &str, stale_prefix: &str, fresh: bool) -> Result<()> {
        let ctx = format!("preparing staging schema {area}");
        let stale: Vec<String> = self
            .client
            .query(
                "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1) AND nspname <> $2",
                &[&stale_prefix, &area],
            )
            .map_err(db_err(ctx.clone()))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut tx = self.client.transaction().map_err(db_err(ctx.clone()))?;
        for s in &stale {
            tx.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", quote(s)))
                .map_err(db_err(format!("dropping the earlier staging schema {s}")))?;
        }
        if fresh {
            tx.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", quote(area)))
                .map_err(db_err(ctx.clone()))?;
        }
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote(area)))
            .map_err(db_err(ctx.clone()))?;
        tx.commit().map_err(db_err(ctx))
    }

    /// Publishes the staging schema `area` into this session's schema in
    /// one transaction (see the module doc). A relation of the same name
    /// already in the target refuses it (nothing is published). An `area`
    /// that is gone was published already (a publisher whose answer was
    /// lost).
    pub fn publish(&mut self, area: &str) -> Result<Published> {
        let own = self.own_schema()?;
        let ctx = format!("publishing staging schema {area} into {own}");
        let mut tx = self.client.transaction().map_err(db_err(ctx.clone()))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PUBLISH_LOCK])
            .map_err(db_err(ctx.clone()))?;
        let exists: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                &[&area],
            )
            .map_err(db_err(ctx.clone()))?
            .get(0);
        if !exists {
            return Ok(Published {
                already: true,
                ..Default::default()
            });
        }
        // The staged tables, views and sequences, not the sequences a
        // table owns (they move with it); each with whether the target
        // has a relation of that name.
        let relations: Vec<(String, String, bool)> = tx
            .query(
                "SELECT c.relname::text, c.relkind::text,
                        EXISTS (SELECT 1 FROM pg_class o WHERE o.relnamespace = $2::text::regnamespace AND o.relname = c.relname)
                 FROM pg_class c
                 WHERE c.relnamespace = $1::text::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
                   AND NOT c.relispartition
                   AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')))
                 ORDER BY c.relname",
                &[&quote(area), &quote(&own)],
            )
            .map_err(db_err(format!("listing staging schema {area}")))?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let mut published = Published::default();
        for (name, kind, there) in &relations {
            if name == LEDGER_TABLE {
                continue;
            }
            if *there {
                return Err(ConnectorError::Database {
                    context: format!("table {name}: publishing it into {own}"),
                    message: format!(
                        "the target gained a relation named {name} while the delivery was staged; nothing was published (the staged rows stay in schema {area}): drop or rename it, then rerun the same command"
                    ),
                    transient: false,
                });
            }
            let what = match kind.as_str() {
                "v" => "VIEW",
                "m" => "MATERIALIZED VIEW",
                "S" => "SEQUENCE",
                _ => "TABLE",
            };
            tx.batch_execute(&format!(
                "ALTER {what} {}.{} SET SCHEMA {}",
                quote(area),
                quote(name),
                quote(&own)
            ))
            .map_err(db_err(format!("table {name}: moving it into {own}")))?;
            if what == "TABLE" {
                published.moved.push(name.clone());
            }
        }
        tx.batch_execute(&format!("SET LOCAL search_path TO {}", quote(&own)))
            .map_err(db_err(ctx.clone()))?;
        move_types_and_routines(&mut tx, area, &own)?;
        if relations.iter().any(|(n, _, _)| n == LEDGER_TABLE) {
            tx.batch_execute(&ledger_ddl())
                .map_err(db_err(ctx.clone()))?;
            tx.batch_execute(&format!(
                "INSERT INTO {own}.{LEDGER_TABLE} SELECT * FROM {area}.{LEDGER_TABLE} ON CONFLICT DO NOTHING; DROP TABLE {area}.{LEDGER_TABLE}",
                own = quote(&own),
                area = quote(area)
            ))
            .map_err(db_err(ctx.clone()))?;
        }
        tx.batch_execute(&format!("DROP SCHEMA {}", quote(area)))
            .map_err(db_err(format!("{ctx}: the staging schema still holds objects publication does not move (only tables, views, sequences, types and routines are); nothing was published")))?;
        tx.commit().map_err(db_err(ctx))?;
        Ok(published)
    }
}

/// Moves the staging schema's standalone types (enums, domains, ranges,
/// composite types; not the row and array types that move with their
/// table or element) and routines into the target's schema. The search
/// path is the target schema, so staged names print qualified.
fn move_types_and_routines(
    c: &mut impl postgres::GenericClient,
    area: &str,
    own: &str,
) -> Result<()> {
    let ctx = format!("moving the types and routines of {area} into {own}");
    let types: Vec<(String, String)> = c
        .query(
            "SELECT t.oid::regtype::text, t.typtype::text FROM pg_type t
             WHERE t.typnamespace = $1::text::regnamespace
               AND (t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
             ORDER BY t.typtype = 'd', t.oid",
            &[&quote(area)],
        )
        .map_err(db_err(ctx.clone()))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (t, kind) in types {
        let what = if kind == "d" { "DOMAIN" } else { "TYPE" };
        c.batch_execute(&format!("ALTER {what} {t} SET SCHEMA {}", quote(own)))
            .map_err(db_err(format!("type {t}: moving it into {own}")))?;
    }
    let routines: Vec<String> = c
        .query(
            "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = $1::text::regnamespace ORDER BY p.oid",
            &[&quote(area)],
        )
        .map_err(db_err(ctx.clone()))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for r in routines {
        c.batch_execute(&format!("ALTER ROUTINE {r} SET SCHEMA {}", quote(own)))
            .map_err(db_err(format!("routine {r}: moving it into {own}")))?;
    }
    Ok(())
}
