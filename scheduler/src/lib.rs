//! # sensei-scheduler
//!
//! A Ray-like scheduler for migration tasks. A task is one
//! (migration, phase, table, partition); agents pull tasks and receive a
//! [`Lease`] with a deadline and an attempt number. Heartbeats renew leases; a
//! lease that lapses sends its task back to the queue for another agent
//! (placement prefers the node holding the task's input). The attempt number is
//! a fencing token: a completion from an older attempt is refused. Failed
//! attempts are retried with exponential backoff and jitter up to a limit, after
//! which the migration halts with an event. Tasks of a phase can only be
//! submitted once the previous phase's checkpoint artifact is recorded (the
//! phase barrier).
//!
//! State is durable in SQLite ([`Scheduler::open`]): a restarted head resumes.
//! Agents reach the scheduler through [`SchedulerApi`], implemented both
//! in-process (`Arc<Scheduler>`) and over gRPC ([`GrpcScheduler`], served by
//! [`SchedulerService`]). Bulk data never flows through here: task payloads
//! and results carry partition references, not rows.
//!
//! ```
//! use std::sync::Arc;
//! use sensei_scheduler::{Scheduler, TokioClock, Phase, Policy, TaskSpec};
//! let s = Scheduler::in_memory(Arc::new(TokioClock::new())).unwrap();
//! s.create_migration("m", "{}", Policy::default()).unwrap();
//! let spec = TaskSpec { table: "t".into(), partition: 0, payload: serde_json::json!({}), preferred_node: None };
//! s.submit_tasks("m", Phase::Ingestion, &[spec]).unwrap();
//! let lease = s.lease("agent-1", "node-1", &[]).unwrap().unwrap();
//! s.complete(lease.task_id, lease.attempt, &serde_json::json!({"rows": 10})).unwrap();
//! ```

mod client;
mod clock;
mod core;
mod error;
mod model;
mod service;

pub use client::{
    lease_from_proto, lease_to_proto, lease_within, GrpcScheduler, Leased, SchedulerApi,
    MAX_CONTROL_MESSAGE,
};
pub use clock::{Clock, TokioClock};
pub use core::{Checkpoint, Event, PhaseProgress, Scheduler};
pub use error::{ControlError, Result, SchedulerError};
pub use model::{Lease, MigrationState, Phase, Policy, TaskRecord, TaskSpec, TaskState};
pub use service::{MigrationControl, SchedulerService};

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn policy() -> Policy {
        Policy {
            lease_ms: 1_000,
            max_attempts: 3,
            backoff_base_ms: 400,
            backoff_max_ms: 5_000,
            max_ingestion_tasks: 0,
        }
    }

    fn spec(table: &str, partition: u32, node: Option<&str>) -> TaskSpec {
        TaskSpec {
            table: table.into(),
            partition,
            payload: serde_json::json!({"p": partition}),
            preferred_node: node.map(str::to_string),
        }
    }

    fn sched(policy: Policy) -> Scheduler {
        let s = Scheduler::in_memory(Arc::new(TokioClock::new())).unwrap();
        s.create_migration("m", "{}", policy).unwrap();
        s
    }

    async fn advance(ms: u64) {
        tokio::time::advance(Duration::from_millis(ms)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn ingestion_runs_at_most_the_source_session_limit_at_once() {
        let s = sched(Policy {
            max_ingestion_tasks: 2,
            ..policy()
        });
        s.submit_tasks(
            "m",
            Phase::Ingestion,
            &[spec("t", 0, None), spec("t", 1, None), spec("t", 2, None)],
        )
        .unwrap();
        let a = s.lease("a", "n1", &[]).unwrap().unwrap();
        let _b = s.lease("b", "n1", &[]).unwrap().unwrap();
        assert!(
            s.lease("c", "n2", &[]).unwrap().is_none(),
            "a third source session would pass the limit"
        );
        s.complete(a.task_id, a.attempt, &serde_json::json!({}))
            .unwrap();
        assert!(s.lease("c", "n2", &[]).unwrap().is_some(), "a slot freed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_lease_is_answered_the_moment_a_task_is_submitted() {
        let s = Arc::new(sched(policy()));
        let start = tokio::time::Instant::now();
        let wait = Duration::from_secs(5);
        assert!(lease_within(&s, "a", "n1", &[], wait)
            .await
            .unwrap()
            .is_none());
        assert_eq!(start.elapsed(), wait, "nothing to do: the whole wait");
        let waiting = tokio::spawn({
            let s = s.clone();
            async move { lease_within(&s, "a", "n1", &[], wait).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let submitted = tokio::time::Instant::now();
        s.submit_tasks("m", Phase::Ingestion, &[spec("t", 0, None)])
            .unwrap();
        let lease = waiting.await.unwrap().unwrap();
        assert_eq!(lease.map(|l| l.partition), Some(0));
        assert_eq!(
            submitted.elapsed(),
            Duration::ZERO,
            "woken by the submission, not by the end of its wait"
        );
        // A requeued task wakes a waiting agent as well.
        let waiting = tokio::spawn({
            let s = s.clone();
            async move { lease_within(&s, "b", "n2", &[], wait).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let failed = tokio::time::Instant::now();
        let held = s.phase_tasks("m", Phase::Ingestion).unwrap();
        Scheduler::fail(&s, held[0].id, 1, "connection reset", true).unwrap();
        let retry = waiting.await.unwrap().unwrap();
        assert!(retry.is_some_and(|l| l.attempt == 2));
        // Taken when its backoff (200-400 ms, jittered) ended.
        assert!(
            failed.elapsed() <= Duration::from_millis(401),
            "taken when its backoff ended, not when the wait ran out: {:?}",
            failed.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_state_file_from_before_result_rows_keeps_its_progress() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let open = || Scheduler::open(&path, Arc::new(TokioClock::new()), None).unwrap();
        {
            let s = open();
            s.create_migration("m", "{}", policy()).unwrap();
            s.submit_tasks("m", Phase::Ingestion, &[spec("t", 0, None)])
                .unwrap();
            let a = s.lease("a", "n1", &[]).unwrap().unwrap();
            s.complete(a.task_id, a.attempt, &serde_json::json!({"rows": 7}))
                .unwrap();
            assert_eq!(s.progress("m", Phase::Ingestion).unwrap().rows, 7);
        }
        // The file as an earlier version wrote it.
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("ALTER TABLE tasks DROP COLUMN result_rows")
            .unwrap();
        let s = open();
        assert_eq!(
            s.progress("m", Phase::Ingestion).unwrap().rows,
            7,
            "the rows of tasks done before are taken from their results"
        );
        assert_eq!(s.completions("m", Phase::Ingestion).unwrap()[0].1, 7);
    }

    #[tokio::test(start_paused = true)]
    async fn a_heartbeat_crossing_its_tasks_completion_is_not_a_lost_lease() {
        let s = sched(policy());
        s.submit_tasks("m", Phase::Ingestion, &[spec("t", 0, None)])
            .unwrap();
        let a = s.lease("a", "n1", &[]).unwrap().unwrap();
        s.complete(a.task_id, a.attempt, &serde_json::json!({"rows": 1}))
            .unwrap();
        assert!(
            s.heartbeat("a", "n1", &[(a.task_id, a.attempt)])
                .unwrap()
                .is_empty(),
            "a task done by this attempt is finished, not lost"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn lapsed_lease_is_reassigned_and_stale_completion_refused() {
        let s = sched(policy());
        s.submit_tasks("m", Phase::Ingestion, &[spec("t", 0, None)])
            .unwrap();
        let a = s.lease("a", "n1", &[]).unwrap().unwrap();
        assert_eq!(a.attempt, 1);
        assert!(
            s.lease("b", "n2", &[]).unwrap().is_none(),
            "a live lease is not handed out twice"
        );
        advance(1_001).await;
        let b = s
            .lease("b", "n2", &[])
            .unwrap()
            .expect("lapsed lease reassigned");
        assert_eq!((b.task_id, b.attempt), (a.task_id, 2));
        let err = s
            .complete(a.task_id, a.attempt, &serde_json::json!({}))
            .unwrap_err();
        assert!(
            matches!(
                err,
                SchedulerError::StaleAttempt {
                    attempt: 1,
                    current: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            s.heartbeat("a", "n1", &[(a.task_id, a.attempt)]).unwrap(),
            vec![a.task_id]
        );
        s.complete(b.task_id, b.attempt, &serde_json::json!({"rows": 5}))
            .unwrap();
        assert_eq!(s.progress("m", Phase::Ingestion).unwrap().rows, 5);
        let events = s.events_since("m", 0).unwrap();
        assert!(
            events.iter().any(|e| e.message.contains("lapsed")),
            "{events:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeats_keep_a_lease() {
        let s = sched(policy());
        s.submit_tasks("m", Phase::Ingestion, &[spec("t", 0, None)])
            .unwrap();
        let a = s.lease("a", "n1", &[]).unwrap().unwrap();
        for _ in 0..5 {
            advance(600).await;
            assert!(s
                .heartbeat("a", "n1", &[(a.task_id, a.attempt)])
                .unwrap()
                .is_empty());
            assert!(s.lease("b", "n2", &[]).unwrap().is_none());
        }
        advance(1_001).await;
        assert_eq!(
            s.heartbeat("a", "n1", &[(a.task_id, a.attempt)]).unwrap(),
            vec![a.task_id],
            "a lapsed lease cannot be renewed"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retryable_failure_waits_for_backoff() {
        let s = sched(policy());
        s.submit_tasks("m", Phase::Ingestion, &[spec("t", 0, None)])
            .unwrap();
        let a = s.lease("a", "n1", &[]).unwrap().unwrap();
        s.fail(a.task_id, a.attempt, "connection reset", true)
            .unwrap();
        // Equal jitter: the first backoff lies in [200, 400] ms.
        advance(199).await;
        assert!(
            s.lease("a", "n1", &[]).unwrap().is_none(),
            "backoff not over"
        );
        advance(201).await;
        let b = s
            .lease("a", "n1", &[])
            .unwrap()
            .expect("retried after backoff");
        assert_eq!(b.attempt, 2);
        s.fail(b.task_id, b.attempt, "connection reset", true)
            .unwrap();
        advance(399).await;
        assert!(
            s.lease("a", "n1", &[]).unwrap().is_none(),
            "second backoff is at least 400 ms"
        );
        advance(401).await;
        assert!(s.lease("a", "n1", &[]).unwrap().is_some());
    }

    #[test]
    fn backoff_is_exponential_capped_and_jittered() {
        let p = policy();
        assert_eq!(p.backoff_ms(1, 0.0), 200);
        assert_eq!(p.backoff_ms(1, 1.0), 400);
        assert_eq!(p.backoff_ms(3, 0.0), 800);
        assert_eq!(p.backoff_ms(3, 1.0), 1_600);
        assert_eq!(p.backoff_ms(20, 1.0), 5_000);
        assert!((2_500..=5_000).contains(&p.backoff_ms(20, 0.5)));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_limit_halts_the_migration() {
        let s = sched(Policy {
            max_attempts: 2,
            ..policy()
        });
        s.submit_tasks(
            "m",
            Phase::Ingestion,
            &[spec("t", 0, None), spec("t", 1, None)],
        )
        .unwrap();
        let a = s.lease("a", "n1", &[]).unwrap().unwrap();
        s.fail(a.task_id, a.attempt, "timeout", true).unwrap();
        advance(5_000).await;
        let b = s.lease("a", "n1", &[]).unwrap().unwrap();
        assert_eq!((b.task_id, b.attempt), (a.task_id, 2));
        s.fail(b.task_id, b.attempt, "timeout", true).unwrap();
        let (state, err) = s.migration_state("m").unwrap();
        assert_eq!(state, MigrationState::Halted);
        assert!(err.unwrap().contains("no attempts are left"));
        assert!(
            s.lease("a", "n1", &[]).unwrap().is_none(),
            "a halted migration hands out no tasks"
        );
        assert!(s
            .events_since("m", 0)
            .unwrap()
            .iter()
            .any(|e| e.level == "error"));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failure_halts_at_once() {
        let s = sched(policy());
        s.submit_tasks("m", Phase::Ingestion, &[spec("t", 0, None)])
            .unwrap();
        let a = s.lease("a", "n1", &[]).unwrap().unwrap();
        s.fail(a.task_id, a.attempt, "authentication failed", false)
            .unwrap();
        assert_eq!(s.migration_state("m").unwrap().0, MigrationState::Halted);
    }

    #[tokio::test(start_paused = true)]
    async fn lapse_on_last_attempt_halts() {
        let s = sched(Policy {
            max_attempts: 1,
            ..policy()
        });
        s.submit_tasks("m", Phase::Ingestion, &[spec("t", 0, None)])
            .unwrap();
        s.lease("a", "n1", &[]).unwrap().unwrap();
        advance(1_001).await;
        assert_eq!(s.expire_leases().unwrap(), 1);
        assert_eq!(s.migration_state("m").unwrap().0, MigrationState::Halted);
    }

    #[tokio::test(start_paused = true)]
    async fn phase_barrier() {
        let s = sched(policy());
        let err = s
            .submit_tasks("m", Phase::Transformation, &[spec("t", 0, None)])
            .unwrap_err();
        assert!(matches!(err, SchedulerError::BarrierNotMet { .. }), "{err}");
        s.submit_tasks("m", Phase::Ingestion, &[spec("t", 0, None)])
            .unwrap();
        assert!(
            !s.submit_tasks("m", Phase::Ingestion, &[spec("t", 0, None)])
                .unwrap(),
            "resubmission is a no-op"
        );
        let err = s
            .record_checkpoint("m", Phase::Ingestion, "file:///m.json", "ab")
            .unwrap_err();
        assert!(
            matches!(err, SchedulerError::PhaseUnfinished { unfinished: 1, .. }),
            "{err}"
        );
        let l = s.lease("a", "n", &[]).unwrap().unwrap();
        s.complete(l.task_id, l.attempt, &serde_json::json!({}))
            .unwrap();
        s.record_checkpoint("m", Phase::Ingestion, "file:///m.json", "ab")
            .unwrap();
        assert!(s
            .submit_tasks("m", Phase::Transformation, &[spec("t", 0, None)])
            .unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn placement_prefers_the_node_holding_the_input() {
        let s = sched(policy());
        s.submit_tasks(
            "m",
            Phase::Ingestion,
            &[spec("t", 0, Some("n1")), spec("t", 1, Some("n2"))],
        )
        .unwrap();
        assert_eq!(s.lease("b", "n2", &[]).unwrap().unwrap().partition, 1);
        assert_eq!(s.lease("a", "n1", &[]).unwrap().unwrap().partition, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn state_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let task_id;
        {
            let s = Scheduler::open(&path, Arc::new(TokioClock::new()), None).unwrap();
            s.create_migration("m", "{\"k\":1}", policy()).unwrap();
            s.submit_tasks(
                "m",
                Phase::Ingestion,
                &[spec("t", 0, None), spec("t", 1, None)],
            )
            .unwrap();
            let a = s.lease("a", "n1", &[]).unwrap().unwrap();
            s.complete(a.task_id, a.attempt, &serde_json::json!({"rows": 3}))
                .unwrap();
            task_id = s.lease("a", "n1", &[]).unwrap().unwrap().task_id;
        }
        let s = Scheduler::open(&path, Arc::new(TokioClock::new()), None).unwrap();
        assert_eq!(
            s.create_migration("m", "{}", policy()).unwrap(),
            Some(MigrationState::Running)
        );
        assert_eq!(s.migration_config("m").unwrap(), "{\"k\":1}");
        let p = s.progress("m", Phase::Ingestion).unwrap();
        assert_eq!((p.total, p.done, p.running, p.rows), (2, 1, 1, 3));
        assert_eq!(s.release_leases_except(&[]).unwrap(), 1);
        let again = s.lease("b", "n2", &[]).unwrap().unwrap();
        assert_eq!((again.task_id, again.attempt), (task_id, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_phase_can_start_over_until_its_checkpoint() {
        let s = sched(policy());
        s.submit_tasks(
            "m",
            Phase::Ingestion,
            &[spec("t", 0, None), spec("t", 1, None)],
        )
        .unwrap();
        let l = s.lease("a", "n", &[]).unwrap().unwrap();
        s.complete(l.task_id, l.attempt, &serde_json::json!({}))
            .unwrap();
        assert_eq!(
            s.reset_phase("m", Phase::Ingestion, "snapshot lost")
                .unwrap(),
            2
        );
        assert!(
            s.submit_tasks("m", Phase::Ingestion, &[spec("t", 0, None)])
                .unwrap(),
            "planned again"
        );
        let l = s.lease("a", "n", &[]).unwrap().unwrap();
        s.complete(l.task_id, l.attempt, &serde_json::json!({}))
            .unwrap();
        s.record_checkpoint("m", Phase::Ingestion, "u", "h")
            .unwrap();
        assert!(
            s.reset_phase("m", Phase::Ingestion, "x").is_err(),
            "a checkpointed phase is final"
        );
    }

    #[test]
    fn migration_lifecycle_transitions() {
        use MigrationState::*;
        assert!(Running.can_become(Completed));
        assert!(Halted.can_become(Running));
        assert!(!Completed.can_become(Running));
        assert!(!Failed.can_become(Completed));
    }
}
