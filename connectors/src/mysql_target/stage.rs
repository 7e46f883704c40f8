//! A MySQL/MariaDB delivery staged beside its target: every batch is loaded
//! into a staging database of the same server (the target database's
//! character set and collation), with its ledger rows, checked there, and
//! published only after the certificate says PASS by one `RENAME TABLE`
//! statement that moves every staged table into the target database (the
//! server applies it whole or not at all: the target is never half
//! published); the staged ledger rows then join the target's ledger and
//! the staging database is dropped. Publishing again after a crash between
//! those steps finishes them.
//!
//! As with PostgreSQL, a delivery is staged only into a target that holds
//! none of its tables, by a user who may create a database. A staged
//! view, trigger or routine refuses publication (the server does not move
//! them between databases): nothing is published and the reason named.

use mysql::prelude::Queryable;

use super::MySqlTarget;
use crate::batch::LEDGER_TABLE;
use crate::error::{ConnectorError, Result};
use crate::mysql::{my_err, quote};
use crate::target::Published;

impl MySqlTarget {
    fn database(&mut self) -> Result<String> {
        let db: Option<String> = self
            .conn
            .query_first("SELECT DATABASE()")
            .map_err(my_err("reading the target database"))?
            .flatten();
        db.ok_or_else(|| ConnectorError::Database {
            context: "reading the target database".into(),
            message: "the session has no default database".into(),
            transient: false,
        })
    }

    /// Why a delivery of `tables` into this session's database cannot be
    /// staged, if it cannot: the user may not create a database, or the
    /// target already holds one of the tables.
    pub fn staging_refused(&mut self, tables: &[String]) -> Result<Option<String>> {
        let ctx = "checking whether the target can take a staged delivery";
        let may_create: Option<i64> = self
            .conn
            .query_first(
                "SELECT count(*) FROM information_schema.USER_PRIVILEGES
                 WHERE PRIVILEGE_TYPE = 'CREATE'
                   AND GRANTEE = CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')",
            )
            .map_err(my_err(ctx))?;
        if may_create.unwrap_or(0) == 0 {
            return Ok(Some(
                "the target user may not create a database on the server (a global CREATE privilege lets it stage)".into(),
            ));
        }
        let mut held = Vec::new();
        for t in tables {
            if self.has_table(t)? {
                held.push(t.clone());
            }
        }
        Ok((!held.is_empty()).then(|| {
            format!(
                "the target already holds {} (written in place, after the certificate)",
                held.join(", ")
            )
        }))
    }

    /// Makes the staging database `area` ready: staging databases of the
    /// same migration from earlier runs (`stale_prefix`) dropped, `area`
    /// emptied first when `fresh`, then created with the target database's
    /// character set and collation.
    pub fn begin_staging(&mut self, area: &str, stale_prefix: &str, fresh: bool) -> Result<()> {
        let ctx = format!("preparing staging database {area}");
        let stale: Vec<String> = self
            .conn
            .exec(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE LEFT(SCHEMA_NAME, CHAR_LENGTH(?)) = ? AND SCHEMA_NAME <> ?",
                (stale_prefix, stale_prefix, area),
            )
            .map_err(my_err(ctx.clone()))?;
        for s in stale {
            self.conn
                .query_drop(format!("DROP DATABASE IF EXISTS {}", quote(&s)))
                .map_err(my_err(format!("dropping the earlier staging database {s}")))?;
        }
        if fresh {
            self.conn
                .query_drop(format!("DROP DATABASE IF EXISTS {}", quote(area)))
                .map_err(my_err(ctx.clone()))?;
        }
        let (charset, collation): (String, String) = self
            .conn
            .query_first(
                "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = DATABASE()",
            )
            .map_err(my_err(ctx.clone()))?
            .unwrap_or_else(|| ("utf8mb4".into(), "utf8mb4_general_ci".into()));
        self.conn
            .query_drop(format!(
                "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET {charset} COLLATE {collation}",
                quote(area)
            ))
            .map_err(my_err(ctx))
    }

    /// Publishes the staging database `area` into this session's database
    /// (see the module doc). An `area` that is gone was published already.
    pub fn publish(&mut self, area: &str) -> Result<Published> {
        let own = self.database()?;
        let ctx = format!("publishing staging database {area} into {own}");
        let exists: Option<i64> = self
            .conn
            .exec_first(
                "SELECT count(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                (area,),
            )
            .map_err(my_err(ctx.clone()))?;
        if exists.unwrap_or(0) == 0 {
            return Ok(Published {
                already: true,
                ..Default::default()
            });
        }
        let refuse = |message: String| ConnectorError::Database {
            context: ctx.clone(),
            message: format!(
                "{message}; nothing was published (the staged rows stay in database {area})"
            ),
            transient: false,
        };
        let others: Vec<(String, String)> = self
            .conn
            .exec(
                "SELECT 'view', TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ?
                 UNION ALL SELECT 'trigger', TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?
                 UNION ALL SELECT LOWER(ROUTINE_TYPE), ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?",
                (area, area, area),
            )
            .map_err(my_err(ctx.clone()))?;
        if let Some((kind, name)) = others.first() {
            return Err(refuse(format!(
                "the schema file created the {kind} {name}, which the server cannot move between databases; create it after the migration instead"
            )));
        }
        let tables: Vec<(String, i64)> = self
            .conn
            .exec(
                "SELECT s.TABLE_NAME, (SELECT count(*) FROM information_schema.TABLES o WHERE o.TABLE_SCHEMA = ? AND o.TABLE_NAME = s.TABLE_NAME)
                 FROM information_schema.TABLES s WHERE s.TABLE_SCHEMA = ? AND s.TABLE_NAME <> ? ORDER BY s.TABLE_NAME",
                (&own, area, LEDGER_TABLE),
            )
            .map_err(my_err(ctx.clone()))?;
        if let Some((name, _)) = tables.iter().find(|(_, there)| *there > 0) {
            return Err(refuse(format!(
                "the target gained a table named {name} while the delivery was staged: drop or rename it, then rerun the same command"
            )));
        }
        if !tables.is_empty() {
            let moves: Vec<String> = tables
                .iter()
                .map(|(t, _)| {
                    format!(
                        "{}.{} TO {}.{}",
                        quote(area),
                        quote(t),
                        quote(&own),
                        quote(t)
                    )
                })
                .collect();
            self.conn
                .query_drop(format!("RENAME TABLE {}", moves.join(", ")))
                .map_err(my_err(ctx.clone()))?;
        }
        let staged_ledger: Option<i64> = self
            .conn
            .exec_first(
                "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (area, LEDGER_TABLE),
            )
            .map_err(my_err(ctx.clone()))?;
        if staged_ledger.unwrap_or(0) > 0 {
            self.ledger_ready = false;
            self.ensure_ledger()?;
            self.conn
                .query_drop(format!(
                    "INSERT IGNORE INTO {}.{LEDGER_TABLE} SELECT * FROM {}.{LEDGER_TABLE}",
                    quote(&own),
                    quote(area)
                ))
                .map_err(my_err(ctx.clone()))?;
        }
        self.conn
            .query_drop(format!("DROP DATABASE {}", quote(area)))
            .map_err(my_err(ctx))?;
        Ok(Published {
            already: false,
            moved: tables.into_iter().map(|(t, _)| t).collect(),
        })
    }
}
