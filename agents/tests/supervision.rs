//! Supervision, in process: an agent whose task panics is restarted by its
//! supervisor, hands the task back, and the task is redone to a real result.
//! The panic is injected by wrapping the node's executor, not by anything
//! the library reads.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sensei_agents::agent::{AgentKind, AgentSettings, TaskAgent};
use sensei_agents::exec::{Dispatch, Execute};
use sensei_agents::node::NodeContext;
use sensei_agents::scout::{IngestResult, IngestTask};
use sensei_connectors::source::Source;
use sensei_runtime::store::ArtifactStore;
use sensei_runtime::supervise::WorkPool;
use sensei_runtime::tokens::ClusterSecret;
use sensei_scheduler::{Lease, Phase, Policy, Scheduler, SchedulerApi, TaskSpec};

/// Panics in the first task it is given, then runs tasks as the node does.
struct PanicOnce {
    inner: Dispatch,
    calls: AtomicU32,
}

#[async_trait::async_trait]
impl Execute for PanicOnce {
    async fn execute(
        &self,
        lease: Lease,
        lost: Arc<AtomicBool>,
    ) -> sensei_agents::Result<serde_json::Value> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!(
                "injected panic in {} task for table {}",
                lease.phase, lease.table
            );
        }
        self.inner.execute(lease, lost).await
    }
}

#[test]
fn a_panicking_agent_is_restarted_and_its_task_redone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("source.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL);
         WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 250)
         INSERT INTO orders SELECT i, i * 1.5 FROM s;",
    )
    .unwrap();
    drop(conn);
    let url = format!("sqlite://{}", db.display());

    let work = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let scheduler = Arc::new(
        Scheduler::open(
            &dir.path().join("state.db"),
            Arc::new(sensei_scheduler::TokioClock::new()),
            None,
        )
        .unwrap(),
    );
    let policy = Policy {
        backoff_base_ms: 50,
        backoff_max_ms: 100,
        ..Policy::default()
    };
    scheduler.create_migration("m", "{}", policy).unwrap();
    let table = Source::open(&url, None)
        .unwrap()
        .tables()
        .unwrap()
        .remove(0);
    let task = IngestTask {
        source_url: url,
        snapshot: None,
        table,
        range: None,
        partition_id: "m/staging/ingestion/orders/00000".into(),
        partition: 0,
        sample_rows: 0,
        options: Default::default(),
        batch_pause_ms: 0,
    };
    scheduler
        .submit_tasks(
            "m",
            Phase::Ingestion,
            &[TaskSpec {
                table: "orders".into(),
                partition: 0,
                payload: serde_json::to_value(task).unwrap(),
                preferred_node: None,
            }],
        )
        .unwrap();

    let store = Arc::new(sensei_flight::NodeStore::new(
        "n1",
        "grpc://127.0.0.1:1",
        dir.path(),
    ));
    let node = Arc::new(NodeContext::new(
        "n1",
        store,
        ArtifactStore::local(dir.path()).unwrap(),
        WorkPool::new(work.handle().clone()),
        ClusterSecret::generate().unwrap(),
    ));
    let executor = Arc::new(PanicOnce {
        inner: Dispatch(node.clone()),
        calls: AtomicU32::new(0),
    });
    let api: Arc<dyn SchedulerApi> = Arc::new(scheduler.clone());
    let system = actix::System::new();
    let restarts = system.block_on(async {
        api.register_node("n1", "grpc://127.0.0.1:1", "worker")
            .await
            .unwrap();
        let settings = AgentSettings {
            heartbeat: Duration::from_millis(200),
            ..AgentSettings::default()
        };
        let (_agent, restarts) = TaskAgent::start_with(
            "n1/scout-0".into(),
            AgentKind::Scout,
            node.clone(),
            executor.clone(),
            api.clone(),
            settings,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while scheduler.progress("m", Phase::Ingestion).unwrap().done < 1 {
            assert!(Instant::now() < deadline, "the task was never redone");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        restarts
    });
    assert_eq!(
        restarts.load(Ordering::SeqCst),
        1,
        "the supervisor restarted the agent once"
    );
    assert_eq!(executor.calls.load(Ordering::SeqCst), 2);
    let tasks = scheduler.phase_tasks("m", Phase::Ingestion).unwrap();
    assert_eq!(
        tasks[0].attempt, 2,
        "the crashed attempt was handed back and redone"
    );
    let result: IngestResult = serde_json::from_value(tasks[0].result.clone().unwrap()).unwrap();
    assert_eq!(result.rows, 250);
    let events = scheduler.events_since("m", 0).unwrap();
    assert!(
        events.iter().any(|e| e.message.contains("crashed")),
        "the crash was recorded: {events:?}"
    );
    drop(system);
    work.shutdown_background();
}
