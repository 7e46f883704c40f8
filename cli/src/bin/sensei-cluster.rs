//! `sensei-cluster`: a head and worker processes on this machine.
//!
//! `up` starts a head process and N worker processes (their pids and ports go
//! to `<dir>/cluster.json`), `status` lists nodes, agents and tasks, `submit`
//! runs a migration on the cluster with the exit codes of `sensei migrate`,
//! `down` stops every process (SIGTERM, then SIGKILL after a grace period).
//! The head also serves the public Flight endpoint (verified datasets, for
//! any Flight client holding a token, from the workers that hold the
//! partitions) and the web dashboard; `token create|list|revoke` manages
//! those tokens in `<dir>/tokens.json`. Every listener binds 127.0.0.1
//! unless `up --bind` says otherwise, which needs TLS (`--tls`: a
//! self-signed certificate in `<dir>/tls/`; or `--tls-cert`/`--tls-key`).

use std::path::{Path, PathBuf};
use std::process::{Command as Proc, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sensei_cli::head::{open_head, HeadControl};
use sensei_cli::{start_node, MigrationArgs, NodeOptions, Progress};
use sensei_runtime::supervise::WorkPool;
use sensei_runtime::tls::{ClusterTls, TlsFiles};
use sensei_runtime::tokens::ClusterSecret;
use sensei_scheduler::{GrpcScheduler, MigrationState, SchedulerApi, SchedulerService};

#[derive(Parser)]
#[command(
    name = "sensei-cluster",
    version,
    about = "Run Sensei as a head and worker processes"
)]
struct Cli {
    /// Cluster folder: state file, logs, and (by default) the working folder.
    #[arg(long, global = true, default_value = ".sensei-cluster")]
    dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a head and N worker processes on this machine.
    Up(UpOptions),
    /// Create, list or revoke the access tokens of the public Flight endpoint.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// List nodes, agents, tasks and migrations.
    Status {
        /// Print the raw JSON document.
        #[arg(long)]
        json: bool,
        /// Print the status again every second (the dashboard's figures)
        /// until interrupted.
        #[arg(long, conflicts_with = "json")]
        watch: bool,
    },
    /// Run a migration on the cluster; exits like `sensei migrate` (0
    /// delivered, 2 FAIL, 3 waiting for review or INCONCLUSIVE, 1 error).
    /// State and artifacts go to the cluster's working folder (`up --workdir`).
    Submit {
        #[command(flatten)]
        args: MigrationArgs,
        /// Forget earlier progress of this migration and start over.
        #[arg(long)]
        restart: bool,
        /// Approve every mapping entry that waits for review (recorded in the
        /// mapping spec and the certificate).
        #[arg(long)]
        approve_all: bool,
    },
    /// Stop the cluster.
    Down,
    /// (internal) Run the head process.
    #[command(hide = true)]
    Head {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        workdir: PathBuf,
        #[command(flatten)]
        head: HeadOptions,
    },
    /// (internal) Run a worker process.
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        head: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        workdir: PathBuf,
        #[arg(long, default_value_t = 1)]
        agents: u32,
        #[arg(long, default_value_t = 0)]
        flight_port: u16,
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token; prints it once on standard output (only its hash is kept).
    Create {
        /// reader (list and stream verified data), reviewer (also decide on
        /// mapping entries) or operator (also submit and stop migrations).
        #[arg(long, value_parser = ["reader", "reviewer", "operator"])]
        role: String,
        /// Who or what holds it, shown in lists and logs.
        #[arg(long, default_value = "unnamed")]
        name: String,
    },
    /// List the tokens (ids, names, roles; never the tokens).
    List,
    /// Revoke a token by its id; it is refused from the next call on.
    Revoke {
        /// The token's id (16 hex digits, as `token list` shows).
        id: String,
    },
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ClusterFile {
    head_pid: u32,
    head_endpoint: String,
    workdir: PathBuf,
    workers: Vec<(String, u32)>,
    /// Flight endpoint of each worker, as registered.
    #[serde(default)]
    flight_endpoints: std::collections::BTreeMap<String, String>,
    /// The public Flight endpoint of verified datasets.
    #[serde(default)]
    public_flight: String,
    /// The web dashboard's URL.
    #[serde(default)]
    dashboard: String,
    /// With TLS: the root certificate clients of the cluster trust.
    #[serde(default)]
    tls_ca: Option<PathBuf>,
}

/// The token file of the cluster in `dir`.
fn token_store(dir: &Path) -> sensei_runtime::tokens::TokenStore {
    sensei_runtime::tokens::TokenStore::new(dir.join("tokens.json"))
}

/// The secret of the cluster in `dir` (`cluster.secret`, mode 0600), which
/// its processes present to each other; `sensei-cluster up` creates it.
/// When the cluster speaks TLS (`<dir>/tls.json` names its files), the
/// secret carries its certificate and root.
fn cluster_secret(dir: &Path) -> anyhow::Result<ClusterSecret> {
    let path = dir.join("cluster.secret");
    let secret = ClusterSecret::load(&path).with_context(|| {
        format!(
            "the cluster's secret {} (written by `sensei-cluster up`; the head and the workers need it)",
            path.display()
        )
    })?;
    let tls_file = dir.join("tls.json");
    if !tls_file.exists() {
        return Ok(secret);
    }
    let files: TlsFiles = serde_json::from_slice(&std::fs::read(&tls_file)?)
        .with_context(|| format!("the cluster's TLS settings {}", tls_file.display()))?;
    Ok(secret.with_tls(ClusterTls::load(&files)?))
}

/// The TLS files `up` was given or made, checked; None without TLS.
fn tls_files(
    dir: &Path,
    bind: std::net::IpAddr,
    opts: &UpOptions,
) -> anyhow::Result<Option<TlsFiles>> {
    let files = match (&opts.tls_cert, &opts.tls_key) {
        (Some(cert), Some(key)) => TlsFiles {
            cert: cert.canonicalize()?,
            key: key.canonicalize()?,
            ca: opts.tls_ca.as_ref().unwrap_or(cert).canonicalize()?,
        },
        _ if opts.tls => {
            let mut hosts = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
            let advertised = sensei_cli::advertised_host(bind);
            let advertised = advertised.trim_start_matches('[').trim_end_matches(']');
            if !hosts.iter().any(|h| h == advertised) {
                hosts.push(advertised.to_string());
            }
            sensei_runtime::tls::self_signed(&dir.join("tls"), &hosts)?
        }
        _ => return Ok(None),
    };
    ClusterTls::load(&files)?;
    Ok(Some(files))
}

fn main() {
    sensei_cli::cap_malloc_arenas();
    sensei_cli::init_logging("info");
    let cli: Cli = sensei_cli::parse_args();
    let result = match cli.command {
        Command::Up(opts) => up(&cli.dir, opts),
        Command::Token { command } => token(&cli.dir, command),
        Command::Status { json, watch } => loop {
            if watch {
                // Clear the screen and go home, as `watch` does.
                print!("\x1b[2J\x1b[H");
            }
            let code = status(&cli.dir, json);
            if !watch || code.is_err() {
                break code;
            }
            std::thread::sleep(Duration::from_secs(1));
        },
        Command::Submit {
            mut args,
            restart,
            approve_all,
        } => {
            if approve_all {
                args.set.push("transformation.approve_all=true".into());
            }
            submit(&cli.dir, args, restart)
        }
        Command::Down => down(&cli.dir),
        Command::Head {
            port,
            workdir,
            head,
        } => run_head(
            &cli.dir,
            (head.bind, port),
            &workdir,
            &head.topics,
            (head.public_port, head.dashboard_port),
        ),
        Command::Worker {
            head,
            name,
            workdir,
            agents,
            flight_port,
            bind,
        } => run_worker(
            &cli.dir,
            &head,
            &name,
            &workdir,
            agents,
            (bind, flight_port),
        ),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

fn read_cluster(dir: &Path) -> anyhow::Result<ClusterFile> {
    let path = dir.join("cluster.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no cluster at {} (run `sensei-cluster up` first)",
            path.display()
        )
    })?;
    Ok(serde_json::from_str(&text)?)
}

fn spawn_self(dir: &Path, log: &str, args: &[String]) -> anyhow::Result<u32> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let out = std::fs::File::create(dir.join(log))?;
    let child = Proc::new(exe)
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        // Own process group: the cluster outlives the shell that started it.
        .process_group(0)
        .spawn()?;
    Ok(child.id())
}

fn alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; its state letter is Z.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit(')')
            .next()
            .map(|r| !r.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// What the head publishes to and where its listeners are.
#[derive(clap::Args, Clone)]
struct HeadOptions {
    /// Topic backend of the cluster: `embedded` or
    /// `kafka://HOST:PORT[,HOST:PORT]` (the `SENSEI_TOPICS__*` variables
    /// set how topics are created).
    #[arg(long, env = "SENSEI_RUNTIME__TOPICS", default_value = "embedded")]
    topics: String,
    /// Port of the public Flight endpoint (on `--bind`), which serves the
    /// tables of verified migrations to token holders (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    public_port: u16,
    /// Port of the web dashboard (on `--bind`; 0 picks a free one).
    #[arg(long, default_value_t = 0)]
    dashboard_port: u16,
    /// Address every listener of the cluster binds (the head's control
    /// plane, public Flight endpoint and dashboard, the workers' Flight
    /// services). Beyond the loopback (`0.0.0.0`, a network address)
    /// TLS is required.
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
}

/// What `sensei-cluster up` was asked for.
#[derive(clap::Args)]
struct UpOptions {
    /// Worker processes.
    #[arg(long, default_value_t = 2)]
    workers: u32,
    /// Head gRPC port (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Agents of each kind per worker.
    #[arg(long, default_value_t = 1)]
    agents: u32,
    /// Flight port of worker 1 (worker i gets this plus i - 1); 0 picks free ports.
    #[arg(long, default_value_t = 0)]
    flight_port: u16,
    /// Working folder shared by the processes (default <dir>/work).
    #[arg(long)]
    workdir: Option<PathBuf>,
    #[command(flatten)]
    head: HeadOptions,
    /// Serve TLS on every listener with a self-signed certificate made
    /// in `<dir>/tls/` (kept for later starts); clients trust
    /// `<dir>/tls/cert.pem`.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    tls: bool,
    /// Serve TLS with this certificate (PEM chain) ...
    #[arg(long, requires = "tls_key", value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// ... and this private key (PEM, mode 0600).
    #[arg(long, requires = "tls_cert", value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// The root clients of the cluster trust (default: the certificate).
    #[arg(long, requires = "tls_cert", value_name = "PEM")]
    tls_ca: Option<PathBuf>,
}

fn token(dir: &Path, command: TokenCommand) -> anyhow::Result<i32> {
    let store = token_store(dir);
    match command {
        TokenCommand::Create { role, name } => {
            let role = sensei_runtime::tokens::Role::parse(&role).ok_or_else(|| {
                anyhow::anyhow!("--role {role}: use reader, reviewer or operator")
            })?;
            let (record, token) = store.create(role, &name)?;
            eprintln!(
                "token {} ({}, role {}) created in {}; it is shown this once:",
                record.id,
                record.name,
                record.role.as_str(),
                store.path().display()
            );
            println!("{token}");
        }
        TokenCommand::List => {
            for t in store.list()? {
                println!("{}  {:<8}  {}", t.id, t.role.as_str(), t.name);
            }
        }
        TokenCommand::Revoke { id } => {
            if !store.revoke(&id)? {
                anyhow::bail!(
                    "no token with id {id} in {}; `sensei-cluster token list` shows the ids",
                    store.path().display()
                );
            }
            eprintln!("token {id} revoked");
        }
    }
    Ok(0)
}

/// Refuses to start a cluster that would listen beyond the loopback
/// without TLS, or in a folder where one is up.
fn check_startable(dir: &Path, opts: &UpOptions) -> anyhow::Result<()> {
    let bind = opts.head.bind;
    if !(bind.is_loopback() || opts.tls || opts.tls_cert.is_some()) {
        anyhow::bail!(
            "--bind {bind}: listeners beyond the loopback carry tokens and the cluster secret, so they need TLS: add --tls (a self-signed certificate) or --tls-cert and --tls-key, or bind 127.0.0.1"
        );
    }
    match read_cluster(dir) {
        Ok(c) if alive(c.head_pid) => anyhow::bail!(
            "a cluster is already up in {} (head pid {}); run `sensei-cluster down` first",
            dir.display(),
            c.head_pid
        ),
        _ => Ok(()),
    }
}

fn up(dir: &Path, opts: UpOptions) -> anyhow::Result<i32> {
    check_startable(dir, &opts)?;
    let bind = opts.head.bind;
    std::fs::create_dir_all(dir)?;
    let dir = dir.canonicalize()?;
    let tls = tls_files(&dir, bind, &opts)?;
    let UpOptions {
        workers,
        port,
        agents,
        flight_port,
        workdir,
        head:
            HeadOptions {
                topics,
                public_port,
                dashboard_port,
                ..
            },
        ..
    } = opts;
    match &tls {
        Some(files) => std::fs::write(dir.join("tls.json"), serde_json::to_vec_pretty(files)?)?,
        None => {
            let _ = std::fs::remove_file(dir.join("tls.json"));
        }
    }
    ClusterSecret::load_or_create(&dir.join("cluster.secret"))?;
    let secret = cluster_secret(&dir)?;
    let workdir = workdir.unwrap_or_else(|| dir.join("work"));
    sensei_cli::private_dir(&workdir)?;
    let workdir = workdir.canonicalize()?;
    let head = start_head(
        &dir,
        &[
            "--port".into(),
            port.to_string(),
            "--workdir".into(),
            workdir.display().to_string(),
            "--topics".into(),
            topics.to_string(),
            "--public-port".into(),
            public_port.to_string(),
            "--dashboard-port".into(),
            dashboard_port.to_string(),
            "--bind".into(),
            bind.to_string(),
        ],
    )?;
    let (head_pid, endpoint, public_flight, dashboard) = head;
    let mut procs = Vec::new();
    for i in 1..=workers {
        let name = format!("worker-{i}");
        let flight_port = match flight_port {
            0 => 0,
            first => first + (i - 1) as u16,
        };
        let pid = spawn_self(
            &dir,
            &format!("{name}.log"),
            &[
                "worker".into(),
                "--head".into(),
                endpoint.clone(),
                "--name".into(),
                name.clone(),
                "--workdir".into(),
                workdir.display().to_string(),
                "--agents".into(),
                agents.to_string(),
                "--flight-port".into(),
                flight_port.to_string(),
                "--bind".into(),
                bind.to_string(),
            ],
        )?;
        procs.push((name, pid));
    }
    let mut file = ClusterFile {
        head_pid,
        head_endpoint: endpoint.clone(),
        workdir,
        workers: procs,
        flight_endpoints: Default::default(),
        public_flight: public_flight.clone(),
        dashboard: dashboard.clone(),
        tls_ca: tls.as_ref().map(|t| t.ca.clone()),
    };
    std::fs::write(dir.join("cluster.json"), serde_json::to_vec_pretty(&file)?)?;
    file.flight_endpoints = wait_for_workers(&dir, &endpoint, &secret, workers)?;
    std::fs::write(dir.join("cluster.json"), serde_json::to_vec_pretty(&file)?)?;
    println!(
        "cluster up: head {endpoint} (pid {head_pid}), {workers} workers; state in {}",
        dir.join("cluster.json").display()
    );
    println!(
        "dashboard: {dashboard}; verified datasets over Flight: {public_flight} (log in with a token: `sensei-cluster token create --role reader|reviewer`; tokens in {})",
        token_store(&dir).path().display()
    );
    if let Some(files) = &tls {
        println!(
            "TLS on every listener; clients trust {} (pyarrow: `flight.connect(..., tls_root_certs=open(PATH, 'rb').read())`)",
            files.ca.display()
        );
    }
    Ok(0)
}

/// Starts the head with `args` and waits (30 s at most) for it to say
/// where it listens: (pid, scheduler endpoint, public Flight, dashboard).
fn start_head(dir: &Path, args: &[String]) -> anyhow::Result<(u32, String, String, String)> {
    let head_file = dir.join("head.json");
    let _ = std::fs::remove_file(&head_file);
    let mut command = vec!["head".to_string()];
    command.extend_from_slice(args);
    let head_pid = spawn_self(dir, "head.log", &command)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(&head_file) {
            let v: serde_json::Value = serde_json::from_str(&text)?;
            let field = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            return Ok((
                head_pid,
                field("endpoint"),
                field("public_flight"),
                field("dashboard"),
            ));
        }
        if !alive(head_pid) || Instant::now() > deadline {
            anyhow::bail!(
                "the head did not start; see {}",
                dir.join("head.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (30 s at most) until `workers` workers have registered with the
/// head: their nodes' Flight endpoints by node id.
fn wait_for_workers(
    dir: &Path,
    endpoint: &str,
    secret: &ClusterSecret,
    workers: u32,
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // tonic's lazy channel spawns its connection task on the current runtime.
    let _rt_guard = rt.enter();
    let client = GrpcScheduler::new(endpoint, secret)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let registered: Vec<serde_json::Value> = rt
            .block_on(client.cluster_status())
            .ok()
            .and_then(|s| s["nodes"].as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n["role"] == "worker")
            .collect();
        let nodes = registered.len();
        if nodes >= workers as usize {
            let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            return Ok(registered
                .iter()
                .map(|n| (text(&n["id"]), text(&n["flight_endpoint"])))
                .collect());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "only {nodes} of {workers} workers registered; see the logs in {}",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn status(dir: &Path, json: bool) -> anyhow::Result<i32> {
    let c = read_cluster(dir)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // tonic's lazy channel spawns its connection task on the current runtime.
    let _rt_guard = rt.enter();
    let secret = cluster_secret(dir)?;
    let head = GrpcScheduler::new(&c.head_endpoint, &secret)?;
    let mut doc = rt.block_on(head.cluster_status())?;
    // Ask each live node's Flight service what it has served.
    let mut flight = Vec::new();
    for n in doc["nodes"].as_array().cloned().unwrap_or_default() {
        let ep = n["flight_endpoint"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let stats = rt.block_on(async {
            let c = sensei_flight::PartitionClient::connect(&ep, &secret)
                .await
                .ok()?;
            c.stats().await.ok()
        });
        if let Some(s) = stats {
            flight.push(s);
        }
    }
    doc["flight"] = serde_json::Value::Array(flight);
    if json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(0);
    }
    println!("head {} (pid {})", c.head_endpoint, c.head_pid);
    println!(
        "dashboard {}; verified datasets over Flight: {}",
        c.dashboard, c.public_flight
    );
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    section("nodes", &doc["nodes"], |n| {
        format!(
            "{:<12} {:<7} {} pid {} seen {} ms ago",
            text(&n["id"]),
            text(&n["role"]),
            text(&n["flight_endpoint"]),
            n["pid"],
            n["seen_ms_ago"]
        )
    });
    section("agents", &doc["agents"], |a| {
        format!(
            "{:<28} seen {} ms ago, registrations {}",
            text(&a["id"]),
            a["seen_ms_ago"],
            a["registrations"]
        )
    });
    section("tasks", &doc["tasks"], |t| {
        format!(
            "{} {:<15} {:<8} {}",
            text(&t["migration_id"]),
            text(&t["phase"]),
            text(&t["state"]),
            t["count"]
        )
    });
    println!("migrations:");
    for m in doc["migrations"].as_array().into_iter().flatten() {
        let id = m["id"].as_str().unwrap_or("");
        println!("  {} {}", id, m["state"].as_str().unwrap_or(""));
        // Each phase's partitions and rows, as the dashboard shows them.
        if let Ok(st) = rt.block_on(head.migration_status(id)) {
            for phase in ["ingestion", "transformation", "verification", "delivery"] {
                let p = &st["phases"][phase];
                println!(
                    "    {phase:<15} {}/{} tasks, {} rows{}",
                    p["done"],
                    p["total"],
                    p["rows"],
                    if p["checkpoint"].is_null() {
                        ""
                    } else {
                        ", checkpoint recorded"
                    }
                );
            }
        }
    }
    section("flight", &doc["flight"], |f| {
        format!(
            "{:<12} served {} partitions ({} batches, {} rows)",
            text(&f["node_id"]),
            f["gets"],
            f["batches"],
            f["rows"]
        )
    });
    Ok(0)
}

/// Prints `title:` and a line of `line` per item of the array `items`.
fn section(title: &str, items: &serde_json::Value, line: impl Fn(&serde_json::Value) -> String) {
    println!("{title}:");
    for item in items.as_array().into_iter().flatten() {
        println!("  {}", line(item));
    }
}

fn submit(dir: &Path, args: MigrationArgs, restart: bool) -> anyhow::Result<i32> {
    let c = read_cluster(dir)?;
    if let Some(w) = &args.workdir {
        let same = std::path::absolute(w)
            .ok()
            .and_then(|w| w.canonicalize().ok())
            == c.workdir.canonicalize().ok();
        if !same {
            anyhow::bail!(
                "--workdir {}: a cluster keeps every migration's state and artifacts in its own working folder, {} (chosen by `sensei-cluster up --workdir`); leave --workdir out, or start a cluster on that folder",
                w.display(),
                c.workdir.display()
            );
        }
    }
    let config = args.load(None)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // tonic's lazy channel spawns its connection task on the current runtime.
    let _rt_guard = rt.enter();
    let client = GrpcScheduler::new(&c.head_endpoint, &cluster_secret(dir)?)?;
    let id = rt.block_on(client.submit(&serde_json::to_string(&config)?, restart))?;
    eprintln!("submitted migration {id}");
    let mut progress = Progress::new();
    let mut unreachable_since: Option<Instant> = None;
    loop {
        match rt.block_on(client.migration_status(&id)) {
            Ok(status) => {
                unreachable_since = None;
                progress.show(&status);
                let state = status["state"]
                    .as_str()
                    .and_then(MigrationState::parse)
                    .unwrap_or(MigrationState::Running);
                if state.is_terminal() {
                    progress.finish();
                    return Ok(sensei_cli::summarize(&status));
                }
            }
            Err(e) => {
                // The head may be restarting: keep asking for a while.
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(120) {
                    anyhow::bail!("the head has been unreachable for 2 minutes: {e}");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn down(dir: &Path) -> anyhow::Result<i32> {
    let c = read_cluster(dir)?;
    let mut pids: Vec<u32> = c.workers.iter().map(|(_, p)| *p).collect();
    pids.push(c.head_pid);
    let signal = |sig: &str, pid: u32| {
        let _ = Proc::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .stderr(Stdio::null())
            .status();
    };
    for &pid in &pids {
        if alive(pid) {
            signal("TERM", pid);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for &pid in &pids {
        if alive(pid) {
            signal("KILL", pid);
        }
    }
    std::fs::remove_file(dir.join("cluster.json"))?;
    println!("cluster down");
    Ok(0)
}

async fn terminated() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn run_head(
    dir: &Path,
    (bind, port): (std::net::IpAddr, u16),
    workdir: &Path,
    topics: &str,
    (public_port, dashboard_port): (u16, u16),
) -> anyhow::Result<i32> {
    let work = sensei_cli::work_runtime()?;
    // `[topics]` and `runtime.metrics_addr` from the environment
    // (SENSEI_TOPICS__*, SENSEI_RUNTIME__METRICS_ADDR), like a migration's.
    let process = sensei_runtime::config::ConfigLoader::new()
        .process_env()
        .merged()?;
    let head = open_head(workdir, "", topics, &process.topics)?;
    sensei_cli::serve_metrics(
        &process.runtime.metrics_addr,
        work.handle(),
        sensei_cli::task_gauges(head.scheduler.clone()),
    )?;
    let control = Arc::new(HeadControl::new(
        head.orchestrator.clone(),
        work.handle().clone(),
    ));
    let secret = cluster_secret(dir)?;
    let svc = SchedulerService::new(
        head.scheduler.clone(),
        Some(control.clone() as Arc<dyn sensei_scheduler::MigrationControl>),
    );
    let catalog = Arc::new(sensei_agents::published::CertifiedCatalog::new(
        &head.workdir,
        head.public_key,
    ));
    let tokens = token_store(dir);
    let dashboard = sensei_cli::dashboard::Dashboard::new(
        head.scheduler.clone(),
        control.clone(),
        head.workdir.clone(),
        tokens.clone(),
    );
    let dir = dir.to_path_buf();
    let host = sensei_cli::advertised_host(bind);
    let tls = secret.tls().cloned();
    let (http, grpc) = match &tls {
        Some(_) => ("https", "grpc+tls"),
        None => ("http", "grpc"),
    };
    work.block_on(async move {
        let listener = tokio::net::TcpListener::bind((bind, port)).await?;
        let addr = listener.local_addr()?;
        let mut control_plane =
            sensei_flight::server("the head's control plane", addr, tls.as_ref())?;
        let endpoint = format!("{http}://{host}:{}", addr.port());
        // The public endpoint stops with the control plane: the signal
        // handler below fires `stopped` once (`notify_one` keeps the permit
        // if the endpoint has not started waiting yet).
        // The dashboard stops with them too, on `dashboard_stopped`.
        let stopped = Arc::new(tokio::sync::Notify::new());
        let dashboard_stopped = Arc::new(tokio::sync::Notify::new());
        let dashboard_listener = tokio::net::TcpListener::bind((bind, dashboard_port)).await?;
        let stop = dashboard_stopped.clone();
        let dashboard_addr =
            sensei_cli::dashboard::serve(dashboard, dashboard_listener, tls.as_ref(), async move {
                stop.notified().await
            })
            .await?;
        let dashboard = format!("{http}://{host}:{}", dashboard_addr.port());
        let public_listener = tokio::net::TcpListener::bind((bind, public_port)).await?;
        let public_flight = format!("{grpc}://{host}:{}", public_listener.local_addr()?.port());
        // Endpoints on the nodes holding the partitions, tickets signed
        // with the cluster secret; this endpoint is every one's second location.
        let public = sensei_flight::public::PublicFlightService::new(catalog, tokens)
            .with_node_tickets(secret.clone(), &public_flight);
        let public_stop = stopped.clone();
        sensei_flight::public::serve_public(public, tls.as_ref(), public_listener, async move {
            public_stop.notified().await
        })
        .await?;
        // Resume every migration that was running when the head stopped.
        for id in head.scheduler.migrations_in(MigrationState::Running)? {
            tracing::info!(migration = %id, "resuming migration from durable state");
            control.drive(&id);
        }
        let tmp = dir.join("head.json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec(&serde_json::json!({
                "endpoint": endpoint,
                "public_flight": public_flight,
                "dashboard": dashboard,
                "pid": std::process::id(),
            }))?,
        )?;
        std::fs::rename(&tmp, dir.join("head.json"))?;
        tracing::info!(%endpoint, %public_flight, %dashboard, "head serving");
        control_plane
            .add_service(svc.into_server(secret))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async move {
                    terminated().await;
                    stopped.notify_one();
                    dashboard_stopped.notify_one();
                },
            )
            .await?;
        tracing::info!("head stopped");
        Ok::<_, anyhow::Error>(())
    })?;
    work.shutdown_background();
    Ok(0)
}

fn run_worker(
    dir: &Path,
    head: &str,
    name: &str,
    workdir: &Path,
    agents: u32,
    (bind, flight_port): (std::net::IpAddr, u16),
) -> anyhow::Result<i32> {
    let work = sensei_cli::work_runtime()?;
    let pool = WorkPool::new(work.handle().clone());
    let secret = cluster_secret(dir)?;
    let api: Arc<dyn SchedulerApi> = {
        // The channel's connection task lives on the work runtime.
        let _guard = work.enter();
        Arc::new(GrpcScheduler::new(head, &secret)?)
    };
    let system = actix::System::new();
    let workdir = workdir.to_path_buf();
    let name = name.to_string();
    let result = system.block_on(async move {
        let node = start_node(
            NodeOptions {
                node_id: name.clone(),
                role: "worker".into(),
                workdir: workdir.clone(),
                agents_per_kind: agents,
                heartbeat: Duration::from_millis(1_000),
                bind,
                flight_port,
                secret,
                executors: Default::default(),
            },
            pool,
            api,
        )
        .await?;
        terminated().await;
        // Drain: no new tasks; give running ones a moment to finish.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut idle = true;
            for a in &node.agents {
                idle &= a.send(sensei_agents::agent::Drain).await.unwrap_or(true);
            }
            if idle || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok::<_, anyhow::Error>(())
    });
    work.shutdown_background();
    result.map(|_| 0)
}
