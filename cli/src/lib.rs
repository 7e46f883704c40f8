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
use sensei_agents::exec::Execute;
use sensei_agents::node::NodeContext;
use sensei_flight::NodeStore;
use sensei_runtime::config::{ConfigLoader, MigrationConfig};
use sensei_runtime::store::ArtifactStore;
use sensei_runtime::supervise::WorkPool;
use sensei_scheduler::{MigrationState, SchedulerApi};

pub mod app;
pub mod checkpoint;
pub mod dashboard;
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
        // Paths given as flags are relative to where the command runs; made
        // absolute here so a cluster's head, started elsewhere, finds them.
        let absolute = |p: &PathBuf| {
            std::path::absolute(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string()
        };
        if let Some(s) = self
            .target_schema
            .as_ref()
            .filter(|s| s.to_string_lossy().starts_with('@'))
        {
            loader = loader.flag("target.schema", s.display().to_string());
        } else if let Some(s) = &self.target_schema {
            if !s.is_file() {
                anyhow::bail!(
                    "--target-schema {}: no such file; give the target's DDL (CREATE TABLE statements)",
                    s.display()
                );
            }
            loader = loader.flag("target.schema", absolute(s));
        }
        if let Some(w) = &self.workdir {
            loader = loader.flag("runtime.workdir", absolute(w));
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

/// Exit code of a command line the program cannot use (BSD's `EX_USAGE`):
/// distinct from 2, which says a certificate FAILed.
pub const EXIT_USAGE: i32 = 64;

/// Parses the command line; help and version print and exit 0, a usage
/// error prints clap's message and exits [`EXIT_USAGE`].
pub fn parse_args<P: clap::Parser>() -> P {
    P::try_parse().unwrap_or_else(|e| {
        let _ = e.print();
        std::process::exit(if e.use_stderr() { EXIT_USAGE } else { 0 })
    })
}

/// Logs to standard error at `SENSEI_LOG`'s levels (`default` when unset),
/// in colour on a terminal.
pub fn init_logging(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SENSEI_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Creates a working folder readable by its owner alone (0700): it holds
/// staged copies of the data, the state database and the signing key. A
/// folder that exists already keeps its mode, with a warning when others
/// can read it (it may be a folder the user shares on purpose).
pub fn private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                "working folder {} is readable by others (mode {:o}) and will hold copies of the data; chmod 700 it",
                dir.display(),
                mode & 0o777
            );
        }
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| anyhow::anyhow!("cannot create working folder {}: {e}", dir.display()))
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

/// Serves `/metrics` (Prometheus text format, the process's
/// [`sensei_runtime::metrics::exporter`]) on `addr` from `handle`'s runtime;
/// nothing when `addr` is empty. A bound port that is taken is an error now,
/// not a silent absence later.
/// Sets the [`sensei_runtime::metrics::TASKS`] gauge from the scheduler:
/// tasks of every migration by phase and state (zero where there are none,
/// so a state a task left does not keep its old count).
pub fn task_gauges(
    scheduler: Arc<sensei_scheduler::Scheduler>,
) -> impl Fn() + Send + Sync + 'static {
    move || {
        let Ok(status) = scheduler.cluster_status() else {
            return;
        };
        for phase in sensei_scheduler::Phase::ALL {
            for state in ["pending", "running", "done", "failed"] {
                let n: i64 = status["tasks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|t| t["phase"] == phase.as_str() && t["state"] == state)
                    .filter_map(|t| t["count"].as_i64())
                    .sum();
                metrics::gauge!(sensei_runtime::metrics::TASKS, "phase" => phase.as_str(), "state" => state)
                    .set(n as f64);
            }
        }
    }
}

/// Serves `/metrics` on `addr` (nothing when empty); `refresh` runs (on a
/// blocking thread) before each rendering, to set gauges read from state.
pub fn serve_metrics(
    addr: &str,
    handle: &tokio::runtime::Handle,
    refresh: impl Fn() + Send + Sync + 'static,
) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if addr.is_empty() {
        return Ok(());
    }
    let exporter = sensei_runtime::metrics::exporter();
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| anyhow::anyhow!("runtime.metrics_addr {addr}: cannot listen: {e}"))?;
    if !listener.local_addr()?.ip().is_loopback() {
        anyhow::bail!(
            "runtime.metrics_addr {addr}: /metrics has neither TLS nor tokens, so it listens on the loopback only; bind 127.0.0.1:PORT and let a local agent or an SSH tunnel carry it"
        );
    }
    listener.set_nonblocking(true)?;
    let refresh = Arc::new(refresh);
    handle.spawn(async move {
        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
            return;
        };
        while let Ok((mut conn, _)) = listener.accept().await {
            let (exporter, refresh) = (exporter.clone(), refresh.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let (status, body) = if request.starts_with("GET /metrics ") {
                    let _ = tokio::task::spawn_blocking(move || refresh()).await;
                    ("200 OK", exporter.render())
                } else {
                    ("404 Not Found", "only /metrics is served here\n".to_string())
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    Ok(())
}

/// The name other processes reach a listener bound to `bind` by: the
/// address itself, or, for the unspecified address (every interface), this
/// machine's host name.
pub fn advertised_host(bind: std::net::IpAddr) -> String {
    if !bind.is_unspecified() {
        return match bind {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        };
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Caps glibc's malloc arenas at two. By default glibc keeps up to eight
/// arenas per core, and memory freed in one stays with it: a migration's
/// batches, built and dropped on many threads, leave peak memory growing
/// with the thread count (1M rows, SQLite to SQLite, debug build, five runs
/// each alternated: peak RSS median 363 MB with glibc's default, 264 MB
/// with two; wall time median 43 s against 50 s, runs spread over 40-54 s
/// either way). The cap must be in place
/// before the first allocation, so the process starts itself again with
/// `MALLOC_ARENA_MAX=2` (same process id, arguments and environment) unless
/// the variable is already set, which leaves the user's choice alone. If
/// that fails, it carries on with the default arenas.
pub fn cap_malloc_arenas() {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let mut cmd = std::process::Command::new(exe);
        if let Some(name) = args.next() {
            cmd.arg0(name);
        }
        // Returns only if the process could not start itself again.
        let _ = cmd.args(args).env("MALLOC_ARENA_MAX", "2").exec();
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

/// How a node's agents run their leased tasks: a function of the node to
/// the executor its agents share. The default is
/// [`Dispatch`](sensei_agents::exec::Dispatch): each task on its phase
/// engine; a test passes one that wraps it.
#[derive(Clone)]
pub struct Executors(Arc<dyn Fn(Arc<NodeContext>) -> Arc<dyn Execute> + Send + Sync>);

impl Executors {
    /// Executors made by `make` for each node.
    pub fn new(
        make: impl Fn(Arc<NodeContext>) -> Arc<dyn Execute> + Send + Sync + 'static,
    ) -> Self {
        Executors(Arc::new(make))
    }

    fn for_node(&self, node: Arc<NodeContext>) -> Arc<dyn Execute> {
        (self.0)(node)
    }
}

impl Default for Executors {
    fn default() -> Self {
        Executors::new(|node| Arc::new(sensei_agents::exec::Dispatch(node)))
    }
}

impl std::fmt::Debug for Executors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Executors")
    }
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
    /// Address the Flight service listens on (127.0.0.1 unless the cluster
    /// listens beyond the loopback, which needs TLS).
    pub bind: std::net::IpAddr,
    /// Flight port; 0 picks a free one.
    pub flight_port: u16,
    /// The secret of the node's cluster: its Flight service admits only
    /// calls that carry it, and it presents it to the other nodes.
    pub secret: sensei_runtime::tokens::ClusterSecret,
    /// How the node's agents run their tasks.
    pub executors: Executors,
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
        bind,
        flight_port,
        secret,
        executors,
    } = opts;
    let (node_id, role) = (node_id.as_str(), role.as_str());
    let artifacts = ArtifactStore::local(&workdir)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let staging = artifacts.root().to_path_buf();
    let id = node_id.to_string();
    let server_secret = secret.clone();
    let (store, addr) = pool
        .handle()
        .spawn(async move {
            let listener = tokio::net::TcpListener::bind((bind, flight_port)).await?;
            let endpoint = format!(
                "{}://{}:{}",
                sensei_flight::scheme(server_secret.tls()),
                advertised_host(bind),
                listener.local_addr()?.port()
            );
            let store = Arc::new(NodeStore::new(&id, &endpoint, &staging));
            let addr = sensei_flight::serve(store.clone(), server_secret, listener, async move {
                let _ = rx.await;
            })
            .await?;
            Ok::<_, anyhow::Error>((store, addr))
        })
        .await??;
    tracing::info!(node = node_id, flight = %addr, "node started");
    let ctx = Arc::new(NodeContext::new(
        node_id,
        store.clone(),
        artifacts,
        pool,
        secret,
    ));
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
    let executor = executors.for_node(ctx.clone());
    let mut agents = Vec::new();
    for kind in AgentKind::ALL {
        for i in 0..agents_per_kind {
            let (addr, _) = TaskAgent::start_with(
                format!("{node_id}/{}-{i}", kind.as_str()),
                kind,
                ctx.clone(),
                executor.clone(),
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
                "{prefix:>15} [{bar:30}] {pos}/{len} tasks {msg}",
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
                line.push(format!("{phase} {done}/{total} tasks, {msg}"));
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
///
/// What a person needs to judge the run: the verdict and the checks behind
/// it by kind, rows per table from source to target, the differences found,
/// how the mapping was approved, time per phase, and where the certificate
/// is with the one command that checks it. Read from the status document
/// and the artifacts beside it (skipped when they are not on this machine).
pub fn summarize(status: &serde_json::Value) -> i32 {
    let state = status["state"].as_str().unwrap_or("unknown");
    let id = status["migration_id"].as_str().unwrap_or("");
    let a = &status["artifacts"];
    let read = |key: &str| -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(a[key].as_str()?).ok()?;
        serde_json::from_str(&text).ok()
    };
    let (cert, receipt, mapping) = (read("certificate"), read("receipt"), read("mapping"));
    println!("migration {id}: {state}");
    if let Some(e) = status["error"].as_str() {
        println!("  reason: {e}");
    }
    let payload = cert.as_ref().map(|c| &c["payload"]);
    if let Some(p) = payload {
        println!(
            "  verdict: {} (certificate signed by key {})",
            p["status"].as_str().unwrap_or("?"),
            p["key_id"].as_str().unwrap_or("?")
        );
        for line in check_lines(&p["checks"]) {
            println!("  {line}");
        }
    }
    if let Some(m) = &mapping {
        if let Some(line) = mapping_line(m) {
            println!("  {line}");
        }
        for line in reviewed_lines(m) {
            println!("    {line}");
        }
    }
    let rows = |p: &str| status["phases"][p]["rows"].as_u64().unwrap_or(0);
    match table_rows(payload, receipt.as_ref(), mapping.as_ref()) {
        lines if !lines.is_empty() => {
            println!("  rows (source -> verified -> delivered):");
            for l in lines {
                println!("    {l}");
            }
        }
        _ => println!(
            "  rows: ingested {}, transformed {}, delivered {}",
            rows("ingestion"),
            rows("transformation"),
            rows("delivery")
        ),
    }
    if let Some(p) = payload {
        let diffs = differences(&p["checks"]);
        if diffs.is_empty() {
            println!("  differences: none");
        } else {
            println!("  differences:");
            for d in diffs {
                println!("    {d}");
            }
        }
    }
    if let Some(r) = &receipt {
        let lines = changed_lines(&r["changed_values"]);
        if !lines.is_empty() {
            println!("  values changed on the way in:");
            for l in lines {
                println!("    {l}");
            }
        }
    }
    if let Some(line) = phase_times(status) {
        println!("  {line}");
    }
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
    if let (Some(c), Some(_)) = (a["certificate"].as_str(), &cert) {
        let data = receipt
            .as_ref()
            .and_then(|r| r["target"].as_str())
            .filter(|t| !t.contains("***"))
            .map(|t| format!(" --data {t}"))
            .unwrap_or_default();
        println!(
            "  check it: {} certificate verify {c}{data}",
            sensei_command()
        );
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

/// The certificate's checks counted by kind and result, with what each
/// kind covered (queries, expectations, rows).
fn check_lines(checks: &serde_json::Value) -> Vec<String> {
    use std::collections::BTreeMap;
    let list = checks.as_array().cloned().unwrap_or_default();
    let mut by_result: BTreeMap<String, usize> = BTreeMap::new();
    // kind -> (checks, covered units, unit name)
    let mut kinds: BTreeMap<String, (usize, u64, &str)> = BTreeMap::new();
    for c in &list {
        let result = c["result"].as_str().unwrap_or("?").to_string();
        *by_result.entry(result).or_default() += 1;
        let kind = c["check"].as_str().unwrap_or("?").to_string();
        let (units, unit) = match kind.as_str() {
            "query_replay" => (c["queries"].as_u64().unwrap_or(0), "queries"),
            "expectations" => (c["evaluated"].as_u64().unwrap_or(0), "expectations"),
            "semantic" => (c["rules"].as_u64().unwrap_or(0), "rules"),
            "row_equivalence" => (c["expected"].as_u64().unwrap_or(0), "rows"),
            "distributions" => (
                c["columns"].as_array().map_or(0, |a| a.len() as u64),
                "columns",
            ),
            _ => (0, ""),
        };
        let e = kinds.entry(kind).or_insert((0, 0, unit));
        e.0 += 1;
        e.1 += units;
    }
    let results: Vec<String> = by_result.iter().map(|(r, n)| format!("{n} {r}")).collect();
    let kinds: Vec<String> = kinds
        .iter()
        .map(|(k, (n, units, unit))| {
            if unit.is_empty() {
                format!("{k} {n}")
            } else {
                format!("{k} {n} ({units} {unit})")
            }
        })
        .collect();
    vec![
        format!("checks: {} ({})", list.len(), results.join(", ")),
        format!("  by kind: {}", kinds.join(", ")),
    ]
}

/// How the mapping's entries were approved.
fn mapping_line(mapping: &serde_json::Value) -> Option<String> {
    use std::collections::BTreeMap;
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    let mut reviewers: std::collections::BTreeSet<&str> = Default::default();
    for t in mapping["tables"].as_array()? {
        for c in t["columns"].as_array().into_iter().flatten() {
            *by_status
                .entry(c["status"].as_str().unwrap_or("?"))
                .or_default() += 1;
            if let Some(r) = c["reviewed_by"].as_str() {
                reviewers.insert(r);
            }
        }
    }
    let total: usize = by_status.values().sum();
    let parts: Vec<String> = by_status
        .iter()
        .map(|(s, n)| {
            let s = match *s {
                "auto" => "approved automatically",
                "approved" => "approved by review",
                "rejected" => "rejected by review",
                "review" => "waiting for review",
                other => other,
            };
            format!("{n} {s}")
        })
        .collect();
    let by = if reviewers.is_empty() {
        String::new()
    } else {
        format!(
            " (reviewed by {})",
            reviewers.into_iter().collect::<Vec<_>>().join(", ")
        )
    };
    Some(format!(
        "mapping: {total} target columns: {}{by}",
        parts.join(", ")
    ))
}

/// The entries a person decided, with the Architect's confidence and the
/// reviewer's reason (at most 10; the spec has them all).
fn reviewed_lines(mapping: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for t in mapping["tables"].as_array().into_iter().flatten() {
        for c in t["columns"].as_array().into_iter().flatten() {
            let Some(who) = c["reviewed_by"].as_str() else {
                continue;
            };
            if who == "--approve-all" {
                continue;
            }
            let why = c["reasons"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str())
                .find_map(|r| r.strip_prefix(&format!("{who}: ")))
                .map(|w| format!(": {w}"))
                .unwrap_or_default();
            out.push(format!(
                "{}.{} <- {} (confidence {:.2}) {} by {who}{why}",
                t["target"].as_str().unwrap_or("?"),
                c["target"].as_str().unwrap_or("?"),
                c["sources"]
                    .as_array()
                    .map(|s| s
                        .iter()
                        .filter_map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(", "))
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "-".into()),
                c["confidence"].as_f64().unwrap_or(0.0),
                c["status"].as_str().unwrap_or("?"),
            ));
        }
    }
    if out.len() > 10 {
        let more = out.len() - 10;
        out.truncate(10);
        out.push(format!("... and {more} more (mapping.json)"));
    }
    out
}

/// Per target table: source rows, rows the certificate verified, rows delivered.
fn table_rows(
    payload: Option<&serde_json::Value>,
    receipt: Option<&serde_json::Value>,
    mapping: Option<&serde_json::Value>,
) -> Vec<String> {
    let Some(tables) = payload.and_then(|p| p["tables"].as_object()) else {
        return Vec::new();
    };
    // Source rows of the source table a target table reads, by row_count check.
    let source_rows = |table: &str| -> Option<u64> {
        payload?["checks"]
            .as_array()?
            .iter()
            .find(|c| c["check"] == "row_count" && c["table"] == table)?["source"]
            .as_u64()
    };
    // "customer (from customers)" where the target renames its source.
    let label = |table: &str| -> String {
        let sources: Vec<&str> = mapping
            .and_then(|m| m["tables"].as_array())
            .and_then(|ts| ts.iter().find(|t| t["target"] == table))
            .and_then(|t| t["sources"].as_array())
            .map(|s| s.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        if sources.is_empty() || sources == [table] {
            table.to_string()
        } else {
            format!("{table} (from {})", sources.join(", "))
        }
    };
    let width = tables.keys().map(|k| label(k).len()).max().unwrap_or(0);
    tables
        .iter()
        .map(|(name, t)| {
            let shown = label(name);
            let verified = t["rows"].as_u64();
            let delivered = receipt.and_then(|r| r["tables"][name]["rows_in_target"].as_u64());
            let show = |v: Option<u64>| v.map_or("-".to_string(), |n| n.to_string());
            format!(
                "{shown:<width$}  {} -> {} -> {}",
                show(source_rows(name)),
                show(verified),
                show(delivered)
            )
        })
        .collect()
}

/// The differences the certificate names: failing or undecided checks.
fn differences(checks: &serde_json::Value) -> Vec<String> {
    checks
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| matches!(c["result"].as_str(), Some("fail" | "inconclusive")))
        .map(|c| {
            let mut line = format!(
                "{} {}: {}",
                c["check"].as_str().unwrap_or("?"),
                c["table"].as_str().unwrap_or(""),
                c["result"].as_str().unwrap_or("?")
            );
            for key in ["missing", "extra", "changed", "orphans", "failures"] {
                if let Some(n) = c[key].as_u64().filter(|n| *n > 0) {
                    line.push_str(&format!(", {n} {key}"));
                }
            }
            if let Some(d) = c["detail"].as_str().filter(|d| !d.is_empty()) {
                line.push_str(&format!(" ({d})"));
            }
            line
        })
        .collect()
}

/// How a person runs `sensei` here: the name when it is on `PATH`, else
/// this binary's own path (as after `examples/retail/run`).
fn sensei_command() -> String {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("sensei").is_file()));
    if on_path {
        return "sensei".into();
    }
    std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.join("sensei")))
        .filter(|p| p.is_file())
        .map_or_else(|| "sensei".into(), |p| p.display().to_string())
}

/// `table.column: N kind` for every value changed on the way in.
fn changed_lines(changed: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for (table, columns) in changed.as_object().into_iter().flatten() {
        for (column, kinds) in columns.as_object().into_iter().flatten() {
            for (what, n) in kinds.as_object().into_iter().flatten() {
                out.push(format!(
                    "{table}.{column}: {} {what}",
                    n.as_u64().unwrap_or(0)
                ));
            }
        }
    }
    out
}

/// Time from one phase's checkpoint to the next (the first from submission).
fn phase_times(status: &serde_json::Value) -> Option<String> {
    let mut last = status["created_ms"].as_i64()?;
    let mut parts = Vec::new();
    for phase in PHASES {
        let Some(at) = status["phases"][phase]["checkpoint"]["recorded_ms"].as_i64() else {
            break;
        };
        parts.push(format!(
            "{phase} {:.1} s",
            (at - last).max(0) as f64 / 1000.0
        ));
        last = at;
    }
    (!parts.is_empty()).then(|| format!("time: {}", parts.join(", ")))
}
