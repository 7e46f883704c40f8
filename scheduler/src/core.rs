//! The scheduler itself: the task table and its durable state.
//!
//! All state lives in one SQLite database (WAL mode), so a restarted head
//! resumes exactly where it stopped: tasks, attempts, leases with their
//! deadlines, checkpoints, events. One mutex guards the connection: every
//! operation is a short transaction on a local file (well under a millisecond
//! for the task counts of a migration), and serialising them makes each lease,
//! completion and reassignment atomic without further locking.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use sensei_runtime::topic::{EventLog, Topic};

use crate::clock::Clock;
use crate::error::{Result, SchedulerError};
use crate::model::{Lease, MigrationState, Phase, Policy, TaskRecord, TaskSpec, TaskState};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS migrations (
    id TEXT PRIMARY KEY,
    config_json TEXT NOT NULL,
    state TEXT NOT NULL,
    lease_ms INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    backoff_base_ms INTEGER NOT NULL,
    backoff_max_ms INTEGER NOT NULL,
    max_ingestion_tasks INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    error TEXT
);
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    migration_id TEXT NOT NULL REFERENCES migrations(id),
    phase TEXT NOT NULL,
    table_name TEXT NOT NULL,
    partition INTEGER NOT NULL,
    payload_json TEXT NOT NULL,
    preferred_node TEXT,
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    agent_id TEXT,
    node_id TEXT,
    deadline_ms INTEGER,
    not_before_ms INTEGER NOT NULL DEFAULT 0,
    result_json TEXT,
    last_error TEXT,
    done_ms INTEGER,
    -- The result's `rows`, kept apart so that progress is a sum, not a
    -- parse of every result.
    result_rows INTEGER,
    UNIQUE (migration_id, phase, table_name, partition)
);
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (state, not_before_ms);
-- Leasing takes the first pending task of a phase in id order (on a node's
-- preferred tasks first): found through this index without reading the
-- other pending rows, whatever their number.
CREATE INDEX IF NOT EXISTS tasks_to_lease ON tasks (state, phase, preferred_node, id);
CREATE INDEX IF NOT EXISTS tasks_by_phase ON tasks (migration_id, phase, state);
CREATE TABLE IF NOT EXISTS checkpoints (
    migration_id TEXT NOT NULL,
    phase TEXT NOT NULL,
    uri TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    recorded_ms INTEGER NOT NULL,
    PRIMARY KEY (migration_id, phase)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    migration_id TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS nodes (
    id TEXT PRIMARY KEY,
    flight_endpoint TEXT NOT NULL,
    role TEXT NOT NULL,
    pid INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    node_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    registered_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    registrations INTEGER NOT NULL DEFAULT 1
);
";

/// (id, migration, phase, table, partition, attempt, agent) of a lapsed lease.
type LapsedRow = (i64, String, String, String, u32, u32, Option<String>);

/// A recorded checkpoint artifact.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// Phase it closes.
    pub phase: Phase,
    /// Where the artifact is.
    pub uri: String,
    /// Its SHA-256.
    pub sha256: String,
    /// When it was recorded (scheduler clock, ms since the epoch).
    #[serde(default)]
    pub recorded_ms: i64,
}

/// Progress of one phase.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PhaseProgress {
    /// Tasks in the phase.
    pub total: u64,
    /// Tasks done.
    pub done: u64,
    /// Tasks leased right now.
    pub running: u64,
    /// Tasks failed for good.
    pub failed: u64,
    /// Sum of the `rows` field of done tasks' results.
    pub rows: u64,
}

/// An event recorded against a migration.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Event {
    /// Sequence number.
    pub id: i64,
    /// When (ms since the epoch).
    pub time_ms: i64,
    /// `info`, `warn` or `error`.
    pub level: String,
    /// What happened.
    pub message: String,
}

/// The scheduler.
pub struct Scheduler {
    db: Mutex<Connection>,
    clock: Arc<dyn Clock>,
    events: Option<Arc<dyn EventLog>>,
    /// Counts the changes that may give an idle agent a task: tasks
    /// submitted, done (a slot freed), failed, requeued. Agents wait on it
    /// instead of polling blind.
    work: tokio::sync::watch::Sender<u64>,
    /// Counts the changes the head acts on: a phase's last task done, a
    /// task failed, tasks submitted, checkpoints and states recorded (not
    /// every completion: the head's step reads the phase's progress).
    settled: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler").finish_non_exhaustive()
    }
}

fn phase_of(s: String) -> Phase {
    Phase::parse(&s).unwrap_or(Phase::Ingestion)
}

fn task_state_of(s: &str) -> TaskState {
    match s {
        "running" => TaskState::Running,
        "done" => TaskState::Done,
        "failed" => TaskState::Failed,
        _ => TaskState::Pending,
    }
}

impl Scheduler {
    /// Opens (or creates) the durable state at `path`.
    pub fn open(
        path: &Path,
        clock: Arc<dyn Clock>,
        events: Option<Arc<dyn EventLog>>,
    ) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // WAL with synchronous=NORMAL: a commit survives a process crash; a power
        // loss may drop the last few, which a resumed migration redoes.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Task rows carry their payloads and results (about a kilobyte each):
        // thousands of partitions stay in SQLite's own cache instead of being
        // read again from the file on every query.
        conn.pragma_update(None, "cache_size", -65_536)?;
        conn.execute_batch(SCHEMA)?;
        // State files written before a column existed gain it: no limit on
        // ingestion tasks; no completion time for tasks done before; the
        // rows of tasks done before taken from their results.
        for (table, column, decl, fill) in [
            (
                "migrations",
                "max_ingestion_tasks",
                "INTEGER NOT NULL DEFAULT 0",
                None,
            ),
            ("tasks", "done_ms", "INTEGER", None),
            (
                "tasks",
                "result_rows",
                "INTEGER",
                Some("UPDATE tasks SET result_rows = json_extract(result_json, '$.rows') WHERE state = 'done' AND json_type(result_json, '$.rows') = 'integer'"),
            ),
        ] {
            let has: bool = conn
                .prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?
                .exists(params![table, column])?;
            if !has {
                conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))?;
                if let Some(sql) = fill {
                    conn.execute_batch(sql)?;
                }
            }
        }
        Ok(Scheduler {
            db: Mutex::new(conn),
            clock,
            events,
            work: tokio::sync::watch::Sender::new(0),
            settled: tokio::sync::watch::Sender::new(0),
        })
    }

    /// An in-memory scheduler (tests).
    pub fn in_memory(clock: Arc<dyn Clock>) -> Result<Self> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(SCHEMA)?;
        Ok(Scheduler {
            db: Mutex::new(conn),
            clock,
            events: None,
            work: tokio::sync::watch::Sender::new(0),
            settled: tokio::sync::watch::Sender::new(0),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (each
        // operation is a transaction), so a poisoned lock is safe to reuse.
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver that changes whenever a task may have become leasable
    /// (submitted, requeued, failed, or done and freeing a slot): an idle
    /// agent waits on it and wakes the moment there may be work.
    pub fn watch_work(&self) -> tokio::sync::watch::Receiver<u64> {
        self.work.subscribe()
    }

    /// A receiver that changes when the head has something to do: a
    /// phase's last task done, a task failed, tasks submitted, a checkpoint
    /// or a migration state recorded.
    pub fn watch_settled(&self) -> tokio::sync::watch::Receiver<u64> {
        self.settled.subscribe()
    }

    /// Tells every waiter that something changed.
    fn changed(&self) {
        self.work.send_modify(|n| *n = n.wrapping_add(1));
        self.settled.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Current time of the scheduler's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn event_in(
        &self,
        conn: &Connection,
        migration: &str,
        level: &str,
        message: &str,
    ) -> Result<()> {
        conn.execute(
            "INSERT INTO events (migration_id, time_ms, level, message) VALUES (?1, ?2, ?3, ?4)",
            params![migration, self.now_ms(), level, message],
        )?;
        match level {
            "error" => tracing::error!(%migration, "{message}"),
            "warn" => tracing::warn!(%migration, "{message}"),
            _ => tracing::info!(%migration, "{message}"),
        }
        if let Some(log) = &self.events {
            let doc = serde_json::json!({"migration_id": migration, "level": level, "message": message, "time_ms": self.now_ms()});
            if let Err(e) = sensei_runtime::topic::publish_json(
                log.as_ref(),
                Topic::MigrationEvents,
                migration,
                &doc,
            ) {
                tracing::warn!(%migration, error = %e, "could not publish event to migration.events");
            }
        }
        Ok(())
    }

    /// Records an event against a migration (also published on `migration.events`).
    pub fn event(&self, migration: &str, level: &str, message: &str) -> Result<()> {
        let conn = self.conn();
        self.event_in(&conn, migration, level, message)
    }

    /// Registers (or re-registers) a node.
    pub fn register_node(
        &self,
        node_id: &str,
        flight_endpoint: &str,
        role: &str,
        pid: u32,
    ) -> Result<()> {
        self.conn().execute(
            "INSERT INTO nodes (id, flight_endpoint, role, pid, last_seen_ms) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (id) DO UPDATE SET flight_endpoint = ?2, role = ?3, pid = ?4, last_seen_ms = ?5",
            params![node_id, flight_endpoint, role, pid, self.now_ms()],
        )?;
        Ok(())
    }

    /// Registers (or re-registers, after a restart) an agent.
    pub fn register_agent(&self, agent_id: &str, node_id: &str, kind: &str) -> Result<()> {
        let now = self.now_ms();
        self.conn().execute(
            "INSERT INTO agents (id, node_id, kind, registered_ms, last_seen_ms) VALUES (?1, ?2, ?3, ?4, ?4)
             ON CONFLICT (id) DO UPDATE SET node_id = ?2, kind = ?3, registered_ms = ?4, last_seen_ms = ?4,
                 registrations = registrations + 1",
            params![agent_id, node_id, kind, now],
        )?;
        Ok(())
    }

    /// The Flight endpoint of a node.
    pub fn node_endpoint(&self, node_id: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT flight_endpoint FROM nodes WHERE id = ?1",
                params![node_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Creates a migration, or returns the state of the existing one with that id.
    pub fn create_migration(
        &self,
        id: &str,
        config_json: &str,
        policy: Policy,
    ) -> Result<Option<MigrationState>> {
        let conn = self.conn();
        let existing: Option<String> = conn
            .query_row(
                "SELECT state FROM migrations WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(state) = existing {
            return Ok(MigrationState::parse(&state));
        }
        let now = self.now_ms();
        conn.execute(
            "INSERT INTO migrations (id, config_json, state, lease_ms, max_attempts, backoff_base_ms, backoff_max_ms, max_ingestion_tasks, created_ms, updated_ms)
             VALUES (?1, ?2, 'running', ?3, ?4, ?5, ?6, ?8, ?7, ?7)",
            params![id, config_json, policy.lease_ms as i64, policy.max_attempts, policy.backoff_base_ms as i64, policy.backoff_max_ms as i64, now, policy.max_ingestion_tasks],
        )?;
        self.event_in(&conn, id, "info", "migration created")?;
        Ok(None)
    }

    /// Drops every task of a phase whose checkpoint is not recorded, so the
    /// phase can be planned again (used when the ingestion snapshot was lost
    /// with the head that held it). Refused once the checkpoint exists.
    pub fn reset_phase(&self, migration: &str, phase: Phase, why: &str) -> Result<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let recorded: i64 = tx.query_row(
            "SELECT COUNT(*) FROM checkpoints WHERE migration_id = ?1 AND phase = ?2",
            params![migration, phase.as_str()],
            |r| r.get(0),
        )?;
        if recorded > 0 {
            return Err(SchedulerError::InvalidTransition {
                migration: migration.to_string(),
                from: format!("{phase} checkpointed"),
                to: format!("{phase} replanned"),
            });
        }
        let n = tx.execute(
            "DELETE FROM tasks WHERE migration_id = ?1 AND phase = ?2",
            params![migration, phase.as_str()],
        )?;
        self.event_in(
            &tx,
            migration,
            "warn",
            &format!("phase {phase} starts over ({n} tasks dropped): {why}"),
        )?;
        tx.commit()?;
        self.changed();
        Ok(n)
    }

    /// Drops the tasks and checkpoints of `from` and every later phase, so
    /// they are planned again (a setting they depend on changed); the
    /// migration runs again. Earlier phases keep their work.
    pub fn reset_from(&self, migration: &str, from: Phase, why: &str) -> Result<usize> {
        let later: Vec<&str> = Phase::ALL
            .iter()
            .filter(|p| **p >= from)
            .map(|p| p.as_str())
            .collect();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut dropped = 0;
        for phase in &later {
            dropped += tx.execute(
                "DELETE FROM tasks WHERE migration_id = ?1 AND phase = ?2",
                params![migration, phase],
            )?;
            tx.execute(
                "DELETE FROM checkpoints WHERE migration_id = ?1 AND phase = ?2",
                params![migration, phase],
            )?;
        }
        tx.execute(
            "UPDATE migrations SET state = 'running', error = NULL, updated_ms = ?2 WHERE id = ?1",
            params![migration, self.now_ms()],
        )?;
        self.event_in(
            &tx,
            migration,
            "warn",
            &format!("{from} and what follows start over ({dropped} tasks dropped): {why}"),
        )?;
        tx.commit()?;
        self.changed();
        Ok(dropped)
    }

    /// Forgets everything about a migration (for `--restart`).
    pub fn reset_migration(&self, id: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for sql in [
            "DELETE FROM tasks WHERE migration_id = ?1",
            "DELETE FROM checkpoints WHERE migration_id = ?1",
            "DELETE FROM events WHERE migration_id = ?1",
            "DELETE FROM migrations WHERE id = ?1",
        ] {
            tx.execute(sql, params![id])?;
        }
        tx.commit()?;
        self.changed();
        Ok(())
    }

    /// Resumes a halted migration or one awaiting review: failed tasks go back
    /// to the queue (their attempt counts carry on) and the migration runs again.
    pub fn resume_migration(&self, id: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE tasks SET state = 'pending', not_before_ms = 0, agent_id = NULL WHERE migration_id = ?1 AND state = 'failed'",
            params![id],
        )?;
        // Each requeued task gets a fresh allowance of attempts on top of those used.
        tx.execute(
            "UPDATE migrations SET max_attempts = max_attempts + (SELECT COALESCE(MAX(attempt), 0) FROM tasks WHERE migration_id = ?1) WHERE id = ?1",
            params![id],
        )?;
        self.transition_in(&tx, id, MigrationState::Running, None)?;
        self.event_in(
            &tx,
            id,
            "info",
            &format!("migration resumed; {n} failed tasks requeued"),
        )?;
        tx.commit()?;
        self.changed();
        Ok(())
    }

    /// Ids of migrations in a state.
    pub fn migrations_in(&self, state: MigrationState) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT id FROM migrations WHERE state = ?1 ORDER BY created_ms")?;
        let rows = stmt.query_map(params![state.as_str()], |r| r.get(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Replaces a migration's stored configuration (a rerun's decisions that
    /// apply from the next phase on, such as approving waiting mappings).
    pub fn set_migration_config(&self, id: &str, config_json: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE migrations SET config_json = ?2 WHERE id = ?1",
            params![id, config_json],
        )?;
        Ok(())
    }

    /// The stored configuration of a migration.
    pub fn migration_config(&self, id: &str) -> Result<String> {
        self.conn()
            .query_row(
                "SELECT config_json FROM migrations WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| SchedulerError::UnknownMigration(id.to_string()))
    }

    /// State and last error of a migration.
    pub fn migration_state(&self, id: &str) -> Result<(MigrationState, Option<String>)> {
        let row: Option<(String, Option<String>)> = self
            .conn()
            .query_row(
                "SELECT state, error FROM migrations WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (s, e) = row.ok_or_else(|| SchedulerError::UnknownMigration(id.to_string()))?;
        Ok((
            MigrationState::parse(&s).unwrap_or(MigrationState::Halted),
            e,
        ))
    }

    /// When the migration was submitted (or last restarted), ms since the epoch.
    pub fn migration_created_ms(&self, id: &str) -> Result<i64> {
        self.conn()
            .query_row(
                "SELECT created_ms FROM migrations WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| SchedulerError::UnknownMigration(id.to_string()))
    }

    fn transition_in(
        &self,
        conn: &Connection,
        id: &str,
        to: MigrationState,
        error: Option<&str>,
    ) -> Result<()> {
        let from: String = conn
            .query_row(
                "SELECT state FROM migrations WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| SchedulerError::UnknownMigration(id.to_string()))?;
        let from_state = MigrationState::parse(&from).unwrap_or(MigrationState::Halted);
        if from_state == to {
            return Ok(());
        }
        if !from_state.can_become(to) {
            return Err(SchedulerError::InvalidTransition {
                migration: id.to_string(),
                from,
                to: to.as_str().to_string(),
            });
        }
        conn.execute(
            "UPDATE migrations SET state = ?2, error = ?3, updated_ms = ?4 WHERE id = ?1",
            params![id, to.as_str(), error, self.now_ms()],
        )?;
        let msg = match error {
            Some(e) => format!("migration {}: {e}", to.as_str()),
            None => format!("migration {}", to.as_str()),
        };
        let level = if matches!(to, MigrationState::Halted | MigrationState::Failed) {
            "error"
        } else {
            "info"
        };
        self.event_in(conn, id, level, &msg)
    }

    /// Moves a migration to another state, as its lifecycle allows.
    pub fn set_migration_state(
        &self,
        id: &str,
        to: MigrationState,
        error: Option<&str>,
    ) -> Result<()> {
        let conn = self.conn();
        self.transition_in(&conn, id, to, error)?;
        drop(conn);
        self.changed();
        Ok(())
    }

    /// Submits the tasks of a phase. Refused until the previous phase's
    /// checkpoint is recorded (the phase barrier); a no-op when the phase already
    /// has tasks, so a resumed head never duplicates them.
    pub fn submit_tasks(&self, migration: &str, phase: Phase, tasks: &[TaskSpec]) -> Result<bool> {
        self.submit_tasks_after(migration, phase, phase.previous(), tasks)
    }

    /// [`Scheduler::submit_tasks`] with another barrier: the tasks are
    /// refused until `barrier`'s checkpoint is recorded (delivery into a
    /// staging area starts after transformation, while verification runs).
    pub fn submit_tasks_after(
        &self,
        migration: &str,
        phase: Phase,
        barrier: Option<Phase>,
        tasks: &[TaskSpec],
    ) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(prev) = barrier {
            let recorded: Option<String> = tx
                .query_row(
                    "SELECT sha256 FROM checkpoints WHERE migration_id = ?1 AND phase = ?2",
                    params![migration, prev.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            if recorded.is_none() {
                return Err(SchedulerError::BarrierNotMet {
                    migration: migration.to_string(),
                    phase: phase.to_string(),
                    previous: prev.to_string(),
                });
            }
        }
        let existing: i64 = tx.query_row(
            "SELECT COUNT(*) FROM tasks WHERE migration_id = ?1 AND phase = ?2",
            params![migration, phase.as_str()],
            |r| r.get(0),
        )?;
        if existing > 0 {
            return Ok(false);
        }
        insert_tasks(&tx, migration, phase, tasks)?;
        self.event_in(
            &tx,
            migration,
            "info",
            &format!("phase {phase} started with {} tasks", tasks.len()),
        )?;
        tx.commit()?;
        self.changed();
        Ok(true)
    }

    /// Adds a later round of tasks to a phase whose tasks so far are done
    /// (its checkpoint not yet recorded); a task already there (same table
    /// and partition) is kept as it is, so a resumed head never duplicates
    /// one. Returns how many were added.
    pub fn submit_more(&self, migration: &str, phase: Phase, tasks: &[TaskSpec]) -> Result<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let added = insert_tasks(&tx, migration, phase, tasks)?;
        if added > 0 {
            self.event_in(
                &tx,
                migration,
                "info",
                &format!("phase {phase}: {added} more tasks"),
            )?;
        }
        tx.commit()?;
        self.changed();
        Ok(added)
    }

    /// Records a phase's checkpoint artifact; refused while any task of the
    /// phase is unfinished. Idempotent: an existing checkpoint is kept.
    pub fn record_checkpoint(
        &self,
        migration: &str,
        phase: Phase,
        uri: &str,
        sha256: &str,
    ) -> Result<Checkpoint> {
        let conn = self.conn();
        let unfinished: i64 = conn.query_row(
            "SELECT COUNT(*) FROM tasks WHERE migration_id = ?1 AND phase = ?2 AND state != 'done'",
            params![migration, phase.as_str()],
            |r| r.get(0),
        )?;
        if unfinished > 0 {
            return Err(SchedulerError::PhaseUnfinished {
                migration: migration.to_string(),
                phase: phase.to_string(),
                unfinished: unfinished as u64,
            });
        }
        let inserted = conn.execute(
            "INSERT OR IGNORE INTO checkpoints (migration_id, phase, uri, sha256, recorded_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![migration, phase.as_str(), uri, sha256, self.now_ms()],
        )?;
        if inserted > 0 {
            self.event_in(
                &conn,
                migration,
                "info",
                &format!("checkpoint {phase}: {uri} sha256 {sha256}"),
            )?;
        }
        drop(conn);
        self.changed();
        self.checkpoint(migration, phase)?
            .ok_or_else(|| SchedulerError::UnknownMigration(migration.to_string()))
    }

    /// The checkpoint of a phase, when recorded.
    pub fn checkpoint(&self, migration: &str, phase: Phase) -> Result<Option<Checkpoint>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT uri, sha256, recorded_ms FROM checkpoints WHERE migration_id = ?1 AND phase = ?2",
                params![migration, phase.as_str()],
                |r| {
                    Ok(Checkpoint {
                        phase,
                        uri: r.get(0)?,
                        sha256: r.get(1)?,
                        recorded_ms: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    fn policy_in(conn: &Connection, migration: &str) -> Result<Policy> {
        conn.query_row(
            "SELECT lease_ms, max_attempts, backoff_base_ms, backoff_max_ms, max_ingestion_tasks FROM migrations WHERE id = ?1",
            params![migration],
            |r| {
                Ok(Policy {
                    lease_ms: r.get::<_, i64>(0)? as u64,
                    max_attempts: r.get(1)?,
                    backoff_base_ms: r.get::<_, i64>(2)? as u64,
                    backoff_max_ms: r.get::<_, i64>(3)? as u64,
                    max_ingestion_tasks: r.get(4)?,
                })
            },
        )
        .optional()?
        .ok_or_else(|| SchedulerError::UnknownMigration(migration.to_string()))
    }

    /// Gives tasks whose lease lapsed back to the queue (or halts their migration
    /// when that was their last allowed attempt). Returns how many lapsed.
    pub fn expire_leases(&self) -> Result<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = self.expire_in(&tx)?;
        tx.commit()?;
        if n > 0 {
            self.changed();
        }
        Ok(n)
    }

    fn expire_in(&self, conn: &Connection) -> Result<usize> {
        let now = self.now_ms();
        let lapsed: Vec<LapsedRow> = {
            let mut stmt = conn.prepare(
                "SELECT id, migration_id, phase, table_name, partition, attempt, agent_id FROM tasks
                 WHERE state = 'running' AND deadline_ms < ?1",
            )?;
            let rows = stmt.query_map(params![now], seven_columns)?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        for (id, migration, phase, table, partition, attempt, agent) in &lapsed {
            metrics::counter!(sensei_runtime::metrics::LEASES_EXPIRED, "phase" => phase.clone())
                .increment(1);
            let policy = Self::policy_in(conn, migration)?;
            let agent = agent.as_deref().unwrap_or("?");
            if *attempt >= policy.max_attempts {
                conn.execute(
                    "UPDATE tasks SET state = 'failed', deadline_ms = NULL, last_error = 'lease lapsed on the last attempt' WHERE id = ?1",
                    params![id],
                )?;
                let msg = format!(
                    "task {id} ({phase} {table} partition {partition}): lease of agent {agent} lapsed on attempt {attempt} of {}; no attempts left",
                    policy.max_attempts
                );
                self.event_in(conn, migration, "error", &msg)?;
                self.transition_in(conn, migration, MigrationState::Halted, Some(&msg))?;
            } else {
                conn.execute(
                    "UPDATE tasks SET state = 'pending', deadline_ms = NULL, agent_id = NULL,
                        last_error = 'lease lapsed' WHERE id = ?1",
                    params![id],
                )?;
                self.event_in(
                    conn,
                    migration,
                    "warn",
                    &format!("task {id} ({phase} {table} partition {partition}): lease of agent {agent} lapsed on attempt {attempt}; reassigning"),
                )?;
            }
        }
        Ok(lapsed.len())
    }

    /// Gives up every lease held by nodes other than `alive` at once, instead of
    /// waiting for them to lapse. `sensei migrate` calls it on start: agents of
    /// an earlier, interrupted process are certainly gone.
    pub fn release_leases_except(&self, alive: &[String]) -> Result<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ids: Vec<(i64, String, Option<String>)> = {
            let mut stmt =
                tx.prepare("SELECT id, migration_id, node_id FROM tasks WHERE state = 'running'")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        let mut n = 0;
        for (id, migration, node) in ids {
            if node.as_ref().is_some_and(|n| alive.contains(n)) {
                continue;
            }
            tx.execute(
                "UPDATE tasks SET state = 'pending', deadline_ms = NULL, agent_id = NULL, last_error = 'holder gone' WHERE id = ?1",
                params![id],
            )?;
            self.event_in(
                &tx,
                &migration,
                "warn",
                &format!(
                    "task {id}: holder node {} is gone; requeued",
                    node.unwrap_or_default()
                ),
            )?;
            n += 1;
        }
        tx.commit()?;
        self.changed();
        Ok(n)
    }

    /// When the first task waiting out a retry backoff becomes runnable
    /// (scheduler clock, ms), if any does.
    pub fn next_retry_ms(&self) -> Result<Option<i64>> {
        Ok(self.conn().query_row(
            "SELECT MIN(not_before_ms) FROM tasks WHERE state = 'pending' AND not_before_ms > ?1",
            params![self.now_ms()],
            |r| r.get(0),
        )?)
    }

    /// Leases the next runnable task to an agent, preferring tasks whose input
    /// lives on the agent's node. Lapsed leases are reassigned first.
    pub fn lease(&self, agent_id: &str, node_id: &str, phases: &[Phase]) -> Result<Option<Lease>> {
        let phase_list = if phases.is_empty() {
            Phase::ALL.to_vec()
        } else {
            phases.to_vec()
        };
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        self.expire_in(&tx)?;
        let now = self.now_ms();
        tx.execute(
            "UPDATE agents SET last_seen_ms = ?2 WHERE id = ?1",
            params![agent_id, now],
        )?;
        // The first pending task in id order, a node's preferred ones first:
        // one indexed probe per (phase, preference), never a sort of every
        // pending task.
        let mut row: Option<(i64, String, String, String, u32, u32, String)> = None;
        'probe: for preferred in [Some(true), None, Some(false)] {
            for phase in &phase_list {
                let sql = format!(
                    "SELECT t.id, t.migration_id, t.phase, t.table_name, t.partition, t.attempt, t.payload_json
                     FROM tasks t INDEXED BY tasks_to_lease JOIN migrations m ON m.id = t.migration_id
                     WHERE t.state = 'pending' AND t.phase = ?3 AND {} AND t.not_before_ms <= ?1
                       AND m.state = 'running'
                       AND (t.phase != 'ingestion' OR m.max_ingestion_tasks = 0
                            OR (SELECT count(*) FROM tasks r INDEXED BY tasks_by_phase
                                WHERE r.migration_id = t.migration_id
                                AND r.phase = 'ingestion' AND r.state = 'running') < m.max_ingestion_tasks)
                     ORDER BY t.id
                     LIMIT 1",
                    match preferred {
                        Some(true) => "t.preferred_node = ?2",
                        None => "t.preferred_node IS NULL",
                        Some(false) => "t.preferred_node != ?2",
                    }
                );
                row = tx
                    .query_row(&sql, params![now, node_id, phase.as_str()], seven_columns)
                    .optional()?;
                if row.is_some() {
                    break 'probe;
                }
            }
        }
        let Some((task_id, migration_id, phase, table, partition, attempt, payload)) = row else {
            tx.commit()?;
            return Ok(None);
        };
        let policy = Self::policy_in(&tx, &migration_id)?;
        let attempt = attempt + 1;
        let deadline_ms = now + policy.lease_ms as i64;
        tx.execute(
            "UPDATE tasks SET state = 'running', attempt = ?2, agent_id = ?3, node_id = ?4, deadline_ms = ?5 WHERE id = ?1",
            params![task_id, attempt, agent_id, node_id, deadline_ms],
        )?;
        tx.commit()?;
        metrics::counter!(sensei_runtime::metrics::TASKS_LEASED, "phase" => phase.clone())
            .increment(1);
        Ok(Some(Lease {
            task_id,
            migration_id,
            phase: phase_of(phase),
            table,
            partition,
            attempt,
            deadline_ms,
            payload: serde_json::from_str(&payload)?,
        }))
    }

    /// Renews the leases an agent holds; returns the ids of those it no longer holds.
    pub fn heartbeat(
        &self,
        agent_id: &str,
        node_id: &str,
        leases: &[(i64, u32)],
    ) -> Result<Vec<i64>> {
        let conn = self.conn();
        let now = self.now_ms();
        conn.execute(
            "UPDATE agents SET last_seen_ms = ?2 WHERE id = ?1",
            params![agent_id, now],
        )?;
        conn.execute(
            "UPDATE nodes SET last_seen_ms = ?2 WHERE id = ?1",
            params![node_id, now],
        )?;
        let mut lost = Vec::new();
        for (task_id, attempt) in leases {
            let n = conn.execute(
                "UPDATE tasks SET deadline_ms = ?4 + (SELECT lease_ms FROM migrations m WHERE m.id = tasks.migration_id)
                 WHERE id = ?1 AND attempt = ?2 AND agent_id = ?3 AND state = 'running' AND deadline_ms >= ?4",
                params![task_id, attempt, agent_id, now],
            )?;
            if n == 0 {
                // A heartbeat that crosses its own task's completion finds the
                // task done by this very attempt: finished, not lost.
                let done_by_this: bool = conn
                    .query_row(
                        "SELECT state = 'done' AND attempt = ?2 FROM tasks WHERE id = ?1",
                        params![task_id, attempt],
                        |r| r.get(0),
                    )
                    .optional()?
                    .unwrap_or(false);
                if !done_by_this {
                    lost.push(*task_id);
                }
            }
        }
        Ok(lost)
    }

    fn current_attempt(
        conn: &Connection,
        task_id: i64,
    ) -> Result<(u32, String, String, String, u32, String)> {
        conn.query_row(
            "SELECT attempt, state, migration_id, phase, partition, table_name FROM tasks WHERE id = ?1",
            params![task_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .optional()?
        .ok_or(SchedulerError::UnknownTask(task_id))
    }

    /// Records a task's result. Refused when `attempt` is not the task's current
    /// attempt: a reassigned task's earlier holder is fenced off. A repeated
    /// completion of the same attempt (an RPC retried) is accepted once.
    pub fn complete(&self, task_id: i64, attempt: u32, result: &serde_json::Value) -> Result<()> {
        let conn = self.conn();
        let (current, state, migration, phase, partition, table) =
            Self::current_attempt(&conn, task_id)?;
        if attempt != current || state == "failed" {
            metrics::counter!(sensei_runtime::metrics::STALE_COMPLETIONS).increment(1);
            return Err(SchedulerError::StaleAttempt {
                task_id,
                attempt,
                current,
            });
        }
        if state == "done" {
            return Ok(());
        }
        conn.execute(
            "UPDATE tasks SET state = 'done', deadline_ms = NULL, result_json = ?2, done_ms = ?3, result_rows = ?4 WHERE id = ?1",
            params![
                task_id,
                serde_json::to_string(result)?,
                self.now_ms(),
                result.get("rows").and_then(|v| v.as_i64())
            ],
        )?;
        metrics::counter!(sensei_runtime::metrics::TASKS_COMPLETED, "phase" => phase.clone())
            .increment(1);
        // Rows, bytes and what the task measured are counted here, where
        // every completion of the cluster arrives once, not in the agents
        // (whose processes the head's `/metrics` does not see).
        for (name, field) in [
            (sensei_runtime::metrics::ROWS, "rows"),
            (sensei_runtime::metrics::BYTES, "bytes"),
        ] {
            if let Some(n) = result.get(field).and_then(|v| v.as_u64()) {
                metrics::counter!(name, "phase" => phase.clone()).increment(n);
            }
        }
        if let Some(m) = result.get("metrics") {
            match <sensei_runtime::metrics::TaskMetrics as serde::Deserialize>::deserialize(m) {
                Ok(m) => m.record(),
                Err(e) => tracing::warn!(task_id, error = %e, "a task's metrics are malformed"),
            }
        }
        // One completion record per partition on `agent.coordination`, for
        // any consumer following the work (dashboards, Kafka clients).
        if let Some(log) = &self.events {
            let doc = serde_json::json!({"event": "partition.complete", "migration_id": migration,
                "phase": phase, "table": table, "partition": partition, "attempt": attempt,
                "rows": result.get("rows"), "time_ms": self.now_ms()});
            if let Err(e) = sensei_runtime::topic::publish_json(
                log.as_ref(),
                Topic::AgentCoordination,
                &migration,
                &doc,
            ) {
                tracing::warn!(%migration, error = %e, "could not publish to agent.coordination");
            }
        }
        // Every completion may free an agent's slot; only the phase's last
        // one gives the head something to do.
        let unfinished: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM tasks INDEXED BY tasks_by_phase
                 WHERE migration_id = ?1 AND phase = ?2 AND state IN ('pending', 'running'))",
            params![migration, phase],
            |r| r.get(0),
        )?;
        drop(conn);
        self.work.send_modify(|n| *n = n.wrapping_add(1));
        if !unfinished {
            self.settled.send_modify(|n| *n = n.wrapping_add(1));
        }
        Ok(())
    }

    /// Records a failed attempt. A retryable failure with attempts left goes back
    /// to the queue after an exponential backoff with jitter; otherwise the task
    /// fails and its migration halts with an event.
    pub fn fail(&self, task_id: i64, attempt: u32, error: &str, retryable: bool) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (current, state, migration, phase, partition, table) =
            Self::current_attempt(&tx, task_id)?;
        if attempt != current || state == "done" || state == "failed" {
            return Err(SchedulerError::StaleAttempt {
                task_id,
                attempt,
                current,
            });
        }
        metrics::counter!(sensei_runtime::metrics::TASKS_FAILED, "phase" => phase.clone(), "retryable" => retryable.to_string())
            .increment(1);
        let policy = Self::policy_in(&tx, &migration)?;
        let what =
            format!("task {task_id} ({phase} {table} partition {partition}) attempt {attempt}");
        if retryable && attempt < policy.max_attempts {
            let delay = policy.backoff_ms(attempt, fastrand::f64());
            tx.execute(
                "UPDATE tasks SET state = 'pending', deadline_ms = NULL, agent_id = NULL, not_before_ms = ?2, last_error = ?3 WHERE id = ?1",
                params![task_id, self.now_ms() + delay as i64, error],
            )?;
            self.event_in(
                &tx,
                &migration,
                "warn",
                &format!("{what} failed, retrying in {delay} ms: {error}"),
            )?;
        } else {
            tx.execute(
                "UPDATE tasks SET state = 'failed', deadline_ms = NULL, last_error = ?2 WHERE id = ?1",
                params![task_id, error],
            )?;
            let why = if retryable {
                format!(
                    "{what} failed and no attempts are left (max {}): {error}",
                    policy.max_attempts
                )
            } else {
                format!("{what} failed permanently: {error}")
            };
            self.transition_in(&tx, &migration, MigrationState::Halted, Some(&why))?;
        }
        tx.commit()?;
        self.changed();
        Ok(())
    }

    /// Tasks of one phase.
    pub fn phase_tasks(&self, migration: &str, phase: Phase) -> Result<Vec<TaskRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, phase, table_name, partition, state, attempt, node_id, result_json, last_error
             FROM tasks WHERE migration_id = ?1 AND phase = ?2 ORDER BY table_name, partition",
        )?;
        let rows = stmt.query_map(params![migration, phase.as_str()], |r| {
            let state: String = r.get(4)?;
            let result: Option<String> = r.get(7)?;
            Ok(TaskRecord {
                id: r.get(0)?,
                phase: phase_of(r.get(1)?),
                table: r.get(2)?,
                partition: r.get(3)?,
                state: task_state_of(&state),
                attempt: r.get(5)?,
                node_id: r.get(6)?,
                result: result.and_then(|s| serde_json::from_str(&s).ok()),
                last_error: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Progress of one phase: counted by the database, without reading
    /// every task's result (the head asks several times a second).
    pub fn progress(&self, migration: &str, phase: Phase) -> Result<PhaseProgress> {
        let conn = self.conn();
        let (total, done, running, failed, rows): (i64, i64, i64, i64, i64) = conn.query_row(
            "SELECT count(*), COALESCE(sum(state = 'done'), 0), COALESCE(sum(state = 'running'), 0),
                    COALESCE(sum(state = 'failed'), 0),
                    COALESCE(sum(CASE WHEN state = 'done' THEN result_rows END), 0)
             FROM tasks INDEXED BY tasks_by_phase WHERE migration_id = ?1 AND phase = ?2",
            params![migration, phase.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )?;
        Ok(PhaseProgress {
            total: total as u64,
            done: done as u64,
            running: running as u64,
            failed: failed as u64,
            rows: rows.max(0) as u64,
        })
    }

    /// When each done task of a phase finished and its rows, in order of
    /// completion: (ms since the epoch, rows). Tasks done before completion
    /// times were kept are left out.
    pub fn completions(&self, migration: &str, phase: Phase) -> Result<Vec<(i64, u64)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT done_ms, COALESCE(result_rows, 0)
             FROM tasks INDEXED BY tasks_by_phase
             WHERE migration_id = ?1 AND phase = ?2 AND state = 'done' AND done_ms IS NOT NULL
             ORDER BY done_ms",
        )?;
        let rows = stmt.query_map(params![migration, phase.as_str()], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The topic backend the scheduler publishes to, when it has one.
    pub fn event_log(&self) -> Option<Arc<dyn EventLog>> {
        self.events.clone()
    }

    /// Events of a migration after `after_id`.
    pub fn events_since(&self, migration: &str, after_id: i64) -> Result<Vec<Event>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, time_ms, level, message FROM events WHERE migration_id = ?1 AND id > ?2 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![migration, after_id], |r| {
            Ok(Event {
                id: r.get(0)?,
                time_ms: r.get(1)?,
                level: r.get(2)?,
                message: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// A JSON picture of the cluster: nodes, agents, tasks per phase and state, migrations.
    pub fn cluster_status(&self) -> Result<serde_json::Value> {
        let conn = self.conn();
        let now = self.now_ms();
        let nodes: Vec<serde_json::Value> = {
            let mut stmt = conn.prepare(
                "SELECT id, flight_endpoint, role, pid, last_seen_ms FROM nodes ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| {
                let last: i64 = r.get(4)?;
                Ok(serde_json::json!({"id": r.get::<_, String>(0)?, "flight_endpoint": r.get::<_, String>(1)?,
                    "role": r.get::<_, String>(2)?, "pid": r.get::<_, u32>(3)?, "seen_ms_ago": now - last}))
            })?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        let agents: Vec<serde_json::Value> = {
            let mut stmt = conn.prepare(
                "SELECT a.id, a.node_id, a.kind, a.last_seen_ms, a.registrations,
                        (SELECT t.phase || ' ' || t.table_name || ' partition ' || t.partition
                         FROM tasks t INDEXED BY tasks_by_state
                         WHERE t.state = 'running' AND t.agent_id = a.id LIMIT 1)
                 FROM agents a ORDER BY a.id",
            )?;
            let rows = stmt.query_map([], |r| {
                let last: i64 = r.get(3)?;
                Ok(serde_json::json!({"id": r.get::<_, String>(0)?, "node_id": r.get::<_, String>(1)?,
                    "kind": r.get::<_, String>(2)?, "seen_ms_ago": now - last, "registrations": r.get::<_, i64>(4)?,
                    "current_task": r.get::<_, Option<String>>(5)?}))
            })?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        let tasks: Vec<serde_json::Value> = {
            let mut stmt = conn.prepare(
                "SELECT migration_id, phase, state, COUNT(*) FROM tasks GROUP BY migration_id, phase, state ORDER BY 1, 2, 3",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(serde_json::json!({"migration_id": r.get::<_, String>(0)?, "phase": r.get::<_, String>(1)?,
                    "state": r.get::<_, String>(2)?, "count": r.get::<_, i64>(3)?}))
            })?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        let migrations: Vec<serde_json::Value> = {
            let mut stmt =
                conn.prepare("SELECT id, state, error FROM migrations ORDER BY created_ms")?;
            let rows = stmt.query_map([], |r| {
                Ok(serde_json::json!({"id": r.get::<_, String>(0)?, "state": r.get::<_, String>(1)?,
                    "error": r.get::<_, Option<String>>(2)?}))
            })?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        Ok(
            serde_json::json!({"nodes": nodes, "agents": agents, "tasks": tasks, "migrations": migrations}),
        )
    }
}

/// The first seven columns of a row, each as its own type: the task rows
/// that lease and lease expiry read.
#[allow(clippy::type_complexity)]
fn seven_columns<A, B, C, D, E, F, G>(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<(A, B, C, D, E, F, G)>
where
    A: rusqlite::types::FromSql,
    B: rusqlite::types::FromSql,
    C: rusqlite::types::FromSql,
    D: rusqlite::types::FromSql,
    E: rusqlite::types::FromSql,
    F: rusqlite::types::FromSql,
    G: rusqlite::types::FromSql,
{
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

/// Inserts tasks as pending; one already there (same table and partition)
/// is left alone. Returns how many were inserted.
fn insert_tasks(
    tx: &rusqlite::Transaction<'_>,
    migration: &str,
    phase: Phase,
    tasks: &[TaskSpec],
) -> Result<usize> {
    let mut stmt = tx.prepare(
        "INSERT OR IGNORE INTO tasks (migration_id, phase, table_name, partition, payload_json, preferred_node, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending')",
    )?;
    let mut added = 0;
    for t in tasks {
        added += stmt.execute(params![
            migration,
            phase.as_str(),
            t.table,
            t.partition,
            serde_json::to_string(&t.payload)?,
            t.preferred_node
        ])?;
    }
    Ok(added)
}
