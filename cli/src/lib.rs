//! # sensei-cli
//!
//! The `sensei` and `sensei-cluster` binaries and what they share: turning
//! arguments into a [`MigrationConfig`], starting a node (Flight service plus
//! supervised agents), showing progress, and mapping a migration's end state
//! to an exit code (0 delivered, 2 FAIL, 3 waiting for review, 1 error).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sensei_agents::agent::{AgentKind, AgentSettings, TaskAgent};
use sensei_agents::node::NodeContext;
use sensei_flight::NodeStore;
use sensei_runtime::config::{ConfigLoader, MigrationConfig};
use sensei_runtime::store::ArtifactStore;
use sensei_runtime::supervise::WorkPool;
use sensei_scheduler::{MigrationState, SchedulerApi};

pub mod checkpoint;
pub mod head;

/// Where the migration comes from: a file, or the one-line form.
#[derive(Debug, Clone, clap::Args)]
pub struct MigrationArgs {
    /// Migration configuration (TOML).
    pub config: Option<PathBuf>,
    /// Source URL (one-line form): sqlite://PATH, postgresql://..., mysql://..., file://...
    #[arg(long)]
    pub source: Option<String>,
    /// Target URL (one-line form).
    #[arg(long)]
    pub target: Option<String>,
    /// DDL file applied to the target before delivery.
    #[arg(long)]
    pub target_schema: Option<PathBuf>,
    /// Folder for state, artifacts and staging.
    #[arg(long)]
    pub workdir: Option<PathBuf>,
    /// Any other key, as section.key=value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl MigrationArgs {
    /// Resolves the layered configuration.
    pub fn load(&self, workers: Option<u32>) -> anyhow::Result<MigrationConfig> {
        let mut loader = ConfigLoader::new();
        match (&self.config, &self.source) {
            (Some(file), None) => loader = loader.file(file),
            (None, Some(_)) => {}
            (Some(_), Some(_)) => {
                anyhow::bail!("give either CONFIG.toml or --source/--target, not both")
            }
            (None, None) => anyhow::bail!("give a CONFIG.toml, or --source URL --target URL"),
        }
        loader = loader.process_env();
        if let Some(s) = &self.source {
            loader = loader.flag("source.url", s.as_str());
            let t = self
                .target
                .as_deref()
                .context("--source needs --target URL too")?;
            loader = loader.flag("target.url", t);
        } else if let Some(t) = &self.target {
            loader = loader.flag("target.url", t.as_str());
        }
        if let Some(s) = &self.target_schema {
            loader = loader.flag("target.schema", s.display().to_string());
        }
        if let Some(w) = &self.workdir {
            loader = loader.flag("runtime.workdir", w.display().to_string());
        }
        if let Some(n) = workers {
            loader = loader.flag("runtime.workers", n.to_string());
        }
        for kv in &self.set {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("--set {kv}: expected section.key=value"))?;
            loader = loader.flag(k, v);
        }
        Ok(loader.load()?)
    }
}

/// Exit code of a migration's end state.
pub fn exit_code(state: MigrationState) -> i32 {
    match state {
        MigrationState::Completed => 0,
        MigrationState::Failed => 2,
        MigrationState::AwaitingReview => 3,
        MigrationState::Halted | MigrationState::Running => 1,
    }
}

/// The multi-thread runtime for heavy work, Flight and gRPC servers.
pub fn work_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .max(2),
        )
        .thread_name("sensei-work")
        .enable_all()
        .build()?)
}

/// A running node: its Flight server and its agents.
pub struct Node {
    /// The node's context (shared with its agents).
    pub ctx: Arc<NodeContext>,
    /// Agent addresses.
    pub agents: Vec<actix::Addr<TaskAgent>>,
    /// Shuts the Flight server down when dropped or sent.
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// What a node is and runs.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Node id (stable across restarts of the same worker).
    pub node_id: String,
    /// `local` (inside `sensei migrate`) or `worker`.
    pub role: String,
    /// Shared working folder (staging, artifacts).
    pub workdir: PathBuf,
    /// Agents of each kind.
    pub agents_per_kind: u32,
    /// Heartbeat interval of the agents.
    pub heartbeat: Duration,
    /// Flight port on 127.0.0.1; 0 picks a free one.
    pub flight_port: u16,
}

/// Starts a node: a Flight server on the work pool, registration with the
/// scheduler, and the agents. Must be called inside an actix system.
pub async fn start_node(
    opts: NodeOptions,
    pool: WorkPool,
    scheduler: Arc<dyn SchedulerApi>,
) -> anyhow::Result<Node> {
    let NodeOptions {
        node_id,
        role,
        workdir,
        agents_per_kind,
        heartbeat,
        flight_port,
    } = opts;
    let (node_id, role) = (node_id.as_str(), role.as_str());
    let artifacts = ArtifactStore::local(&workdir)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let staging = artifacts.root().to_path_buf();
    let id = node_id.to_string();
    let (store, addr) = pool
        .handle()
        .spawn(async move {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", flight_port)).await?;
            let endpoint = format!("grpc://{}", listener.local_addr()?);
            let store = Arc::new(NodeStore::new(&id, &endpoint, &staging));
            let addr = sensei_flight::serve(store.clone(), listener, async move {
                let _ = rx.await;
            })
            .await?;
            Ok::<_, anyhow::Error>((store, addr))
        })
        .await??;
    tracing::info!(node = node_id, flight = %addr, "node started");
    let ctx = Arc::new(NodeContext::new(node_id, store.clone(), artifacts, pool));
    let mut tries = 0;
    loop {
        match scheduler
            .register_node(node_id, store.endpoint(), role)
            .await
        {
            Ok(()) => break,
            Err(e) if tries < 100 => {
                tries += 1;
                tracing::warn!(error = %e, "cannot register with the scheduler yet; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let settings = AgentSettings {
        heartbeat,
        ..AgentSettings::default()
    };
    let mut agents = Vec::new();
    for kind in AgentKind::ALL {
        for i in 0..agents_per_kind {
            let (addr, _) = TaskAgent::start(
                format!("{node_id}/{}-{i}", kind.as_str()),
                kind,
                ctx.clone(),
                scheduler.clone(),
                settings.clone(),
            );
            agents.push(addr);
        }
    }
    Ok(Node {
        ctx,
        agents,
        _shutdown: tx,
    })
}

/// Progress display: one bar per phase on a terminal, log lines otherwise.
pub struct Progress {
    bars: Option<(indicatif::MultiProgress, Vec<indicatif::ProgressBar>)>,
    /// When each phase got its first task, and when its last task finished.
    spans: [(Option<Instant>, Option<Instant>); 4],
    last_line: Instant,
    last_doc: String,
}

const PHASES: [&str; 4] = ["ingestion", "transformation", "verification", "delivery"];

impl Progress {
    /// A display for stderr.
    pub fn new() -> Self {
        let bars = std::io::stderr().is_terminal().then(|| {
            let mp = indicatif::MultiProgress::new();
            let style = indicatif::ProgressStyle::with_template(
                "{prefix:>15} [{bar:30}] {pos}/{len} partitions {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
            let bars = PHASES
                .iter()
                .map(|p| {
                    let b = mp.add(indicatif::ProgressBar::new(0));
                    b.set_style(style.clone());
                    b.set_prefix(p.to_string());
                    b
                })
                .collect();
            (mp, bars)
        });
        Progress {
            bars,
            spans: [(None, None); 4],
            last_line: Instant::now() - Duration::from_secs(60),
            last_doc: String::new(),
        }
    }

    /// Shows a status document.
    pub fn show(&mut self, status: &serde_json::Value) {
        let mut line = Vec::new();
        for (i, phase) in PHASES.iter().enumerate() {
            let p = &status["phases"][phase];
            let (done, total, rows) = (
                p["done"].as_u64().unwrap_or(0),
                p["total"].as_u64().unwrap_or(0),
                p["rows"].as_u64().unwrap_or(0),
            );
            // Rates are per phase: rows over the time the phase has been running.
            let span = &mut self.spans[i];
            if total > 0 && span.0.is_none() {
                span.0 = Some(Instant::now());
            }
            if total > 0 && done == total && span.1.is_none() {
                span.1 = Some(Instant::now());
            }
            let secs = match *span {
                (Some(a), Some(b)) => (b - a).as_secs_f64(),
                (Some(a), None) => a.elapsed().as_secs_f64(),
                _ => 0.0,
            }
            .max(0.001);
            // Below half a second the span is mostly polling granularity: no rate.
            let msg = if secs >= 0.5 {
                format!("{rows} rows, {:.0} rows/s", rows as f64 / secs)
            } else {
                format!("{rows} rows")
            };
            if let Some((_, bars)) = &self.bars {
                bars[i].set_length(total);
                bars[i].set_position(done);
                bars[i].set_message(msg.clone());
            }
            if total > 0 {
                line.push(format!("{phase} {done}/{total} partitions, {msg}"));
            }
        }
        if self.bars.is_none() {
            let doc = line.join("; ");
            if doc != self.last_doc && self.last_line.elapsed() >= Duration::from_secs(2)
                || status["state"] != "running"
            {
                if !doc.is_empty() && doc != self.last_doc {
                    eprintln!("progress: {doc}");
                }
                self.last_doc = doc;
                self.last_line = Instant::now();
            }
        }
    }

    /// Removes the bars.
    pub fn finish(&self) {
        if let Some((_, bars)) = &self.bars {
            for b in bars {
                b.finish();
            }
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

/// Prints the end of a migration and returns its exit code.
pub fn summarize(status: &serde_json::Value) -> i32 {
    let state = status["state"].as_str().unwrap_or("unknown");
    let id = status["migration_id"].as_str().unwrap_or("");
    let a = &status["artifacts"];
    println!("migration {id}: {state}");
    if let Some(e) = status["error"].as_str() {
        println!("  reason: {e}");
    }
    let rows = |p: &str| status["phases"][p]["rows"].as_u64().unwrap_or(0);
    println!(
        "  rows: ingested {}, transformed {}, delivered {}",
        rows("ingestion"),
        rows("transformation"),
        rows("delivery")
    );
    for (label, key) in [
        ("manifest", "manifest"),
        ("certificate", "certificate"),
        ("receipt", "receipt"),
    ] {
        if let Some(p) = a[key].as_str() {
            if std::path::Path::new(p).exists() {
                println!("  {label}: {p}");
            }
        }
    }
    let code = match state {
        "completed" => 0,
        "failed" => 2,
        "awaiting_review" => 3,
        _ => 1,
    };
    if code == 1 {
        for e in status["events"].as_array().into_iter().flatten() {
            if e["level"] == "error" {
                eprintln!("  error: {}", e["message"].as_str().unwrap_or(""));
            }
        }
    }
    code
}
