//! `scheduler-bench`: what the scheduler costs per task, apart from any
//! work. N tasks of one table (one per partition) are submitted to a durable
//! scheduler, opened as `sensei migrate` opens its own; agents lease each
//! one (a long poll, as the real agents do) and complete it at once. In one
//! process the agents call `Arc<Scheduler>`; with `--workers W` the
//! scheduler is served over gRPC on 127.0.0.1 and W worker processes (this
//! binary again) run the agents through `GrpcScheduler`, the cluster's
//! path. Prints one JSON line: wall time from submission to the last
//! completion, per task, and the tasks that were leased more than once
//! (a lease lost without a failure: there should be none).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use sensei_runtime::tokens::ClusterSecret;
use sensei_scheduler::{
    GrpcScheduler, Phase, Policy, Scheduler, SchedulerApi, SchedulerService, TaskSpec, TokioClock,
};

#[derive(Parser)]
#[command(
    name = "scheduler-bench",
    about = "The scheduler's cost per task: lease and complete, in one process or over gRPC"
)]
struct Args {
    /// Tasks (partitions of one table).
    #[arg(long, default_value_t = 500)]
    tasks: u32,
    /// Agents per process.
    #[arg(long, default_value_t = 4)]
    agents: u32,
    /// Worker processes reaching the scheduler over gRPC (0: the agents run
    /// in this process).
    #[arg(long, default_value_t = 0)]
    workers: u32,
    /// Folder of the scheduler's state (a temporary one by default).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Internal: run as a worker against this scheduler endpoint.
    #[arg(long, hide = true)]
    worker: Option<String>,
    /// Internal: the cluster secret file of the worker.
    #[arg(long, hide = true)]
    secret: Option<PathBuf>,
    /// Internal: the worker's node id.
    #[arg(long, hide = true, default_value = "worker")]
    node: String,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match &a.worker {
        Some(endpoint) => rt.block_on(worker(&a, endpoint)),
        None => rt.block_on(head(&a)),
    }
}

/// A worker process: `agents` agents over gRPC until the head goes away.
async fn worker(a: &Args, endpoint: &str) -> anyhow::Result<()> {
    let secret_file = a
        .secret
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("--worker needs --secret"))?;
    let secret = ClusterSecret::load(secret_file)?;
    let api: Arc<dyn SchedulerApi> = Arc::new(GrpcScheduler::new(endpoint, &secret)?);
    api.register_node(&a.node, "", "worker").await?;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let agents = spawn_agents(api, &a.node, a.agents, stop, done);
    for h in agents {
        // An agent ends when the scheduler stops answering.
        let _ = h.await;
    }
    Ok(())
}

/// Starts `n` agents that lease and complete tasks until `stop` (or until
/// the scheduler fails them: over gRPC, the head going away).
fn spawn_agents(
    api: Arc<dyn SchedulerApi>,
    node: &str,
    n: u32,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<anyhow::Result<()>>> {
    (0..n)
        .map(|i| {
            let (api, stop, done) = (api.clone(), stop.clone(), done.clone());
            let (agent, node) = (format!("{node}-agent-{i}"), node.to_string());
            tokio::spawn(async move {
                api.register_agent(&agent, &node, "worker").await?;
                while !stop.load(Ordering::Relaxed) {
                    let wait = Duration::from_millis(500);
                    if let Some(lease) = api.lease(&agent, &node, &[], wait).await? {
                        api.complete(&agent, &lease, &serde_json::json!({"rows": 0}))
                            .await?;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(())
            })
        })
        .collect()
}

/// The head: the scheduler, the tasks, the agents (here or in workers), the
/// measurement.
async fn head(a: &Args) -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let dir = a.dir.clone().unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let _ = std::fs::remove_file(dir.join("state.db"));
    let scheduler = Arc::new(Scheduler::open(
        &dir.join("state.db"),
        Arc::new(TokioClock::new()),
        None,
    )?);
    scheduler.create_migration("bench", "{}", Policy::default())?;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut children = Vec::new();
    let mut agents = Vec::new();
    let mut server = None;
    if a.workers == 0 {
        let api: Arc<dyn SchedulerApi> = Arc::new(scheduler.clone());
        api.register_node("local", "", "worker").await?;
        agents = spawn_agents(api, "local", a.agents, stop.clone(), done.clone());
    } else {
        let secret_file = dir.join("cluster.secret");
        let secret = ClusterSecret::load_or_create(&secret_file)?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let service = SchedulerService::new(scheduler.clone(), None).into_server(secret);
        server = Some(tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        ));
        let exe = std::env::current_exe()?;
        for w in 0..a.workers {
            let node = format!("worker-{w}");
            children.push(
                tokio::process::Command::new(&exe)
                    .args(["--worker", &endpoint, "--node", &node])
                    .arg("--secret")
                    .arg(&secret_file)
                    .args(["--agents", &a.agents.to_string()])
                    .kill_on_drop(true)
                    .spawn()?,
            );
        }
        // The workers are up once every agent has registered.
        let expected = u64::from(a.workers * a.agents);
        let deadline = Instant::now() + Duration::from_secs(30);
        while registered_agents(&scheduler)? < expected {
            anyhow::ensure!(Instant::now() < deadline, "the workers did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let specs: Vec<TaskSpec> = (0..a.tasks)
        .map(|p| TaskSpec {
            table: "orders".into(),
            partition: p,
            payload: serde_json::json!({"partition": p}),
            preferred_node: None,
        })
        .collect();
    let t0 = Instant::now();
    scheduler.submit_tasks("bench", Phase::Ingestion, &specs)?;
    let submitted = t0.elapsed();
    loop {
        let p = scheduler.progress("bench", Phase::Ingestion)?;
        if p.done == u64::from(a.tasks) {
            break;
        }
        anyhow::ensure!(
            p.failed == 0,
            "{} tasks failed: {:?}",
            p.failed,
            scheduler.events_since("bench", 0)?.last()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let wall = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    let tasks = scheduler.phase_tasks("bench", Phase::Ingestion)?;
    let leased_again = tasks.iter().filter(|t| t.attempt > 1).count();
    for h in agents {
        h.await??;
    }
    for mut c in children {
        let _ = c.kill().await;
    }
    if let Some(s) = server {
        s.abort();
    }
    println!(
        "{}",
        serde_json::json!({
            "tasks": a.tasks,
            "workers": a.workers,
            "agents_per_process": a.agents,
            "submit_ms": submitted.as_secs_f64() * 1e3,
            "wall_ms": wall.as_secs_f64() * 1e3,
            "per_task_ms": wall.as_secs_f64() * 1e3 / f64::from(a.tasks.max(1)),
            "leased_again": leased_again,
            "completed_here": done.load(Ordering::Relaxed),
        })
    );
    Ok(())
}

/// Agents registered with the scheduler.
fn registered_agents(scheduler: &Scheduler) -> anyhow::Result<u64> {
    let status = scheduler.cluster_status()?;
    Ok(status["agents"].as_array().map_or(0, |a| a.len() as u64))
}
