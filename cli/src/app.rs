//! The `sensei` command: run a whole migration on one machine, and check
//! certificates. `src/bin/sensei.rs` calls [`main`]; [`main_with`] runs the
//! same command with the node's tasks going through other executors.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::{
    exit_code, head::open_head, start_node, summarize, Executors, MigrationArgs, NodeOptions,
    Progress,
};
use anyhow::Context;
use clap::{Parser, Subcommand};
use sensei_agents::orchestrator::Start;
use sensei_runtime::supervise::WorkPool;
use sensei_scheduler::{MigrationState, Phase, SchedulerApi};

#[derive(Parser)]
#[command(
    name = "sensei",
    version,
    about = "Move a database into a new schema and prove the result"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// A migration run in this process.
#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    args: MigrationArgs,
    /// Agents of each kind.
    #[arg(long)]
    workers: Option<u32>,
    /// Forget earlier progress of this migration and start over.
    #[arg(long)]
    restart: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run a migration in this process: ingestion, transformation, verification, delivery.
    Migrate {
        #[command(flatten)]
        run: RunArgs,
        /// Approve every mapping entry that waits for review (recorded in the
        /// mapping spec and the certificate).
        #[arg(long)]
        approve_all: bool,
        /// The source changed since an earlier delivery of this migration:
        /// start over, empty the target tables of the mapping (and their
        /// ledger rows) before the first batch, and deliver the current
        /// source, exactly once (`delivery.resync`).
        #[arg(long)]
        resync: bool,
        /// Refuse, instead of counting, values changed on the way in (empty
        /// CSV fields read as NULL, zero dates, ...): halt before any
        /// transformation naming each (`transformation.strict`).
        #[arg(long)]
        strict: bool,
        /// Serve the web dashboard on HOST:PORT while the migration runs
        /// (`runtime.dashboard_addr`); its login address, with a token valid
        /// until this command ends, is printed. Mapping entries that wait for
        /// review are then decided in the browser and the migration goes on.
        #[arg(long, value_name = "HOST:PORT")]
        dashboard: Option<String>,
    },
    /// Plan the mapping: run ingestion (or reuse it), match the source to the
    /// target schema, write the mapping spec and print it as a table, with
    /// the alternatives of every entry that waits (exit 0 every entry
    /// approved, 3 some wait for review).
    Plan {
        #[command(flatten)]
        args: MigrationArgs,
        /// Scout agents.
        #[arg(long)]
        workers: Option<u32>,
    },
    /// List, approve, reject or edit mapping entries (TABLE.COLUMN), recording who and when.
    Review {
        #[command(flatten)]
        args: MigrationArgs,
        /// Approve an entry (repeatable).
        #[arg(long, value_name = "TABLE.COLUMN")]
        approve: Vec<String>,
        /// Reject an entry: its column is left NULL (repeatable).
        #[arg(long, value_name = "TABLE.COLUMN")]
        reject: Vec<String>,
        /// Replace an entry's expression and approve it (repeatable).
        #[arg(long, value_name = "TABLE.COLUMN=EXPRESSION")]
        expression: Vec<String>,
        /// Approve every entry that waits.
        #[arg(long)]
        all: bool,
        /// Who reviews (recorded with each change); defaults to $USER.
        #[arg(long)]
        by: Option<String>,
        /// Accept an INCONCLUSIVE certificate: the next `sensei migrate`
        /// delivers. Recorded (who, when, the certificate's hash) and shown in
        /// the receipt.
        #[arg(long)]
        accept_inconclusive: bool,
    },
    /// Run the ingestion phase alone: discover, profile, scan for PII, stage
    /// partitions, write the manifest. `sensei migrate` later continues from it.
    Ingest(RunArgs),
    /// Print a migration's events (`migration.events`) from the configured
    /// topic backend: the embedded log of its working folder or a Kafka
    /// cluster (`runtime.topics`).
    Events {
        /// The migration: its id (as `sensei migrate` prints it) or its
        /// configuration file.
        migration: String,
        /// Working folder (embedded backend; default: the configuration's).
        #[arg(long)]
        workdir: Option<PathBuf>,
        /// Any other key, as section.key=value (repeatable), e.g.
        /// runtime.topics=kafka://HOST:PORT.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Keep printing new events as they come (until interrupted).
        #[arg(long)]
        follow: bool,
    },
    /// Measure PII detection on a labelled set of columns (JSON lines).
    PiiEval {
        /// Labelled columns (JSON lines); defaults to every set kept in the
        /// repository (agents/testdata/pii and its public/ folder).
        files: Vec<PathBuf>,
        /// Also list every misclassified column (of the fit part only: the
        /// blind part measures, it is not a list of things to fix).
        #[arg(long)]
        mistakes: bool,
    },
    /// Measure schema matching on a labelled corpus (folders of pairs and
    /// splits.csv, as agents/testdata/matching/README.md describes), the
    /// fitting part and the blind part reported apart.
    MatchEval {
        /// Corpus folder; defaults to the corpus kept in the repository.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Also list the wrong entries of the fitting part (never the
        /// blind part's: it stays unseen).
        #[arg(long)]
        mistakes: bool,
        /// Fit the matcher's weights and calibration on the fitting part
        /// and print them (the constants of architect/matcher.rs) instead.
        #[arg(long)]
        fit: bool,
    },
    /// Compare the same tables in two databases row by row, paired by
    /// primary key, fully (exit 0 equal, 2 different, 1 error). Two
    /// PostgreSQL (or two MySQL/MariaDB) databases compare chunk checksums
    /// on the servers first and only the rows of differing parts are read.
    Diff {
        /// First database (sqlite://, postgresql://, mysql://).
        a: String,
        /// Second database.
        b: String,
        /// Tables to compare (repeatable); every table of the first by default.
        #[arg(long)]
        table: Vec<String>,
        /// Concurrent workers, each holding one session per database.
        #[arg(long)]
        workers: Option<usize>,
        /// Keys per chunk read from both sides (bounds memory).
        #[arg(long, default_value_t = 200_000)]
        chunk_keys: i64,
        /// Read every row of both sides (no server-side checksums), and
        /// print both sides' Merkle roots, to set against a certificate.
        #[arg(long)]
        rows: bool,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Checkpoints of a migration, and the query suite replayed on any
    /// recorded pair of them (time travel).
    Checkpoint {
        #[command(subcommand)]
        command: CheckpointCommand,
    },
    /// Certificate tools.
    Certificate {
        #[command(subcommand)]
        command: CertCommand,
    },
}

#[derive(Subcommand)]
enum CheckpointCommand {
    /// Record a source checkpoint: the source extracted again at a new
    /// snapshot (with --delivered: a copy of the delivered target instead).
    Take {
        #[command(flatten)]
        args: MigrationArgs,
        /// Copy the delivered target database as a target checkpoint.
        #[arg(long)]
        delivered: bool,
        /// Seconds between checkpoints (default verification.checkpoint_interval_s).
        #[arg(long)]
        every: Option<u64>,
        /// Checkpoints to take.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Scout agents.
        #[arg(long)]
        workers: Option<u32>,
    },
    /// List the recorded checkpoints (0: the migration's own).
    List {
        #[command(flatten)]
        args: MigrationArgs,
    },
    /// Replay the query suite on a recorded pair (exit 0 PASS, 2 FAIL, 3 INCONCLUSIVE).
    Replay {
        #[command(flatten)]
        args: MigrationArgs,
        /// Source checkpoint.
        #[arg(long, default_value_t = 0)]
        source_checkpoint: u32,
        /// Target checkpoint.
        #[arg(long, default_value_t = 0)]
        target_checkpoint: u32,
    },
}

#[derive(Subcommand)]
enum CertCommand {
    /// Check a certificate's signature (exit 0 valid, 1 otherwise).
    Verify {
        /// certificate.json
        file: PathBuf,
        /// Trusted public key (hex file, e.g. signing.key.pub); without it the
        /// key named inside the certificate is used.
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// The delivered data (sqlite://PATH or postgresql://...): recompute every table's digest
        /// and Merkle root from it and fail on any difference.
        #[arg(long)]
        data: Option<String>,
    },
}

/// Puts the password of a `postgresql://` (`mysql://`) source URL into
/// `PGPASSWORD` (`MYSQL_PWD`) for this
/// process, so that stored (redacted) configuration and task payloads never need
/// it. Runs before any thread starts.
fn export_source_password(args: &MigrationArgs) {
    let url = args.source.clone().or_else(|| {
        let text = std::fs::read_to_string(args.config.as_ref()?).ok()?;
        let doc: toml::Table = toml::from_str(&text).ok()?;
        doc.get("source")?.get("url")?.as_str().map(str::to_string)
    });
    let Some(url) = url else { return };
    let var = if url.starts_with("postgres") {
        "PGPASSWORD"
    } else if url.starts_with("mysql") || url.starts_with("mariadb") {
        "MYSQL_PWD"
    } else {
        return;
    };
    // The user-info password, or libpq's `?password=` query parameter.
    let password = url::Url::parse(&url).ok().and_then(|u| {
        u.password().map(percent_decode).or_else(|| {
            u.query_pairs()
                .find(|(k, _)| k == "password")
                .map(|(_, v)| v.into_owned())
        })
    });
    if let Some(p) = password.filter(|p| p != "***") {
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, p);
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `sensei` command, run with this process's arguments.
pub fn main() {
    main_with(Executors::default())
}

/// [`main`], the node's agents running their tasks through `executors`.
pub fn main_with(executors: Executors) {
    crate::cap_malloc_arenas();
    crate::init_logging("warn");
    let cli: Cli = crate::parse_args();
    if let Command::Migrate {
        run: RunArgs { args, .. },
        ..
    }
    | Command::Ingest(RunArgs { args, .. })
    | Command::Plan { args, .. } = &cli.command
    {
        export_source_password(args);
    }
    if let Command::Checkpoint {
        command: CheckpointCommand::Take { args, .. },
    } = &cli.command
    {
        export_source_password(args);
    }
    let code = run(cli.command, &executors).unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        1
    });
    std::process::exit(code);
}

/// Runs one command: its exit code, or the error to print.
fn run(command: Command, executors: &Executors) -> anyhow::Result<i32> {
    Ok(match command {
        Command::Migrate {
            run:
                RunArgs {
                    mut args,
                    workers,
                    restart,
                },
            approve_all,
            resync,
            strict,
            dashboard,
        } => {
            if let Some(addr) = dashboard {
                args.set.push(format!("runtime.dashboard_addr={addr}"));
            }
            for (on, key) in [
                (strict, "transformation.strict"),
                (approve_all, "transformation.approve_all"),
                (resync, "delivery.resync"),
            ] {
                if on {
                    args.set.push(format!("{key}=true"));
                }
            }
            migrate(args, workers, restart || resync, None, executors)?
        }
        Command::Diff {
            a,
            b,
            table,
            workers,
            chunk_keys,
            rows,
            json,
        } => diff(&a, &b, table, workers, chunk_keys, rows, json),
        Command::Checkpoint { command } => checkpoint(command, executors)?,
        Command::Plan { args, workers } => plan(args, workers, executors)?,
        Command::Review {
            args,
            approve,
            reject,
            expression,
            all,
            by,
            accept_inconclusive,
        } => {
            if accept_inconclusive {
                accept(args, by)?
            } else {
                review(args, approve, reject, expression, all, by)?
            }
        }
        Command::Ingest(RunArgs {
            args,
            workers,
            restart,
        }) => migrate(args, workers, restart, Some(Phase::Ingestion), executors)?,
        Command::Certificate {
            command:
                CertCommand::Verify {
                    file,
                    public_key,
                    data,
                },
        } => match (verify(&file, public_key.as_deref()), data) {
            (0, Some(url)) => verify_data(&file, &url),
            (code, _) => code,
        },
        Command::PiiEval { files, mistakes } => pii_eval(files, mistakes),
        Command::Events {
            migration,
            workdir,
            set,
            follow,
        } => events(&migration, workdir, &set, follow)?,
        Command::MatchEval { dir, mistakes, fit } => {
            let dir = dir.unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../agents/testdata/matching")
            });
            if fit {
                match_fit(&dir)
            } else {
                match_eval(&dir, mistakes)?
            }
        }
    })
}

/// `sensei match-eval`: the corpus's figures per pair and part, and with
/// `--mistakes` the fitting part's wrong entries.
fn match_eval(dir: &std::path::Path, mistakes: bool) -> anyhow::Result<i32> {
    use sensei_agents::architect::eval;
    let scores = eval::evaluate(
        dir,
        &sensei_agents::architect::matcher::Dictionary::default(),
    )?;
    print!("{}", eval::render(&scores));
    if mistakes {
        println!("\nwrong entries of the fitting part");
        for s in scores.iter().filter(|s| s.split == eval::Split::Fit) {
            // Wrong where it matters: a column with a true source, or a
            // proposal of some weight.
            let shown =
                |e: &&eval::Judged| !e.right && (!e.truth.is_empty() || e.confidence >= 0.5);
            for e in s.entries.iter().filter(shown) {
                println!(
                    "{:<36} {:<40} got [{}] {:.2}, truth [{}]",
                    s.pair,
                    e.target,
                    e.proposed.join(", "),
                    e.confidence,
                    e.truth.join(", ")
                );
            }
        }
    }
    Ok(0)
}

/// `sensei match-eval --fit`: the fitted constants, to paste into
/// agents/architect/src/matcher.rs.
fn match_fit(dir: &std::path::Path) -> i32 {
    match sensei_agents::architect::fit::fit(
        dir,
        &sensei_agents::architect::matcher::Dictionary::default(),
    ) {
        Ok(f) => {
            println!(
                "weights fitted on {} target columns ({} candidates), calibration on {} proposals",
                f.columns, f.candidates, f.chosen
            );
            println!(
                "pub const WEIGHTS: Weights = Weights({:?});",
                f.weights.0.map(|w| (w * 1000.0).round() / 1000.0)
            );
            let c = f.calibration;
            println!(
                "pub const CALIBRATION: Calibration = Calibration {{ scale: {:.3}, margin: {:.3}, exact: {:.3}, table: {:.3}, name: {:.3}, bias: {:.3} }};",
                c.scale, c.margin, c.exact, c.table, c.name, c.bias
            );
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// `sensei events`: the migration's records on `migration.events`, one line
/// each (time, level, message), from offset 0; `--follow` keeps reading.
fn events(
    migration: &str,
    workdir: Option<PathBuf>,
    set: &[String],
    follow: bool,
) -> anyhow::Result<i32> {
    use sensei_runtime::topic::{EventLog, Topic};
    let mut loader = sensei_runtime::config::ConfigLoader::new();
    let from_file = Path::new(migration).is_file();
    if from_file {
        loader = loader.file(migration);
    }
    loader = loader.process_env();
    for kv in set {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--set {kv}: expected section.key=value"))?;
        loader = loader.flag(k, v);
    }
    let config = if from_file {
        loader.load()?
    } else {
        loader.merged()?
    };
    let id = if from_file {
        config.migration_id()
    } else {
        migration.to_string()
    };
    let dir = workdir.unwrap_or_else(|| PathBuf::from(&config.runtime.workdir));
    if config.runtime.topics == "embedded" && !dir.join("events").is_dir() {
        anyhow::bail!(
            "no event log in {}: give the migration's --workdir (or its configuration file), or --set runtime.topics=kafka://HOST:PORT",
            dir.display()
        );
    }
    let embedded = config.runtime.topics == "embedded";
    // The embedded log is opened to read only (a running migration may be
    // appending to it), again for every look at what is new.
    let open = || -> anyhow::Result<Arc<dyn EventLog>> {
        Ok(if embedded {
            Arc::new(sensei_runtime::topic::EmbeddedLog::open_read_only(
                dir.join("events"),
            )?)
        } else {
            sensei_runtime::topic::open(
                &config.runtime.topics,
                &config.topics,
                &dir.join("events"),
            )?
        })
    };
    let mut log = open()?;
    let mut next = 0u64;
    let mut seen = 0usize;
    loop {
        let records = log.read(Topic::MigrationEvents, next, 1000)?;
        for r in &records {
            next = r.offset + 1;
            if r.key != id {
                continue;
            }
            seen += 1;
            let doc: serde_json::Value = serde_json::from_slice(&r.value).unwrap_or_default();
            println!(
                "{} {:<5} {}",
                sensei_agents::artifacts::rfc3339_ms(doc["time_ms"].as_i64().unwrap_or_default()),
                doc["level"].as_str().unwrap_or("?"),
                doc["message"].as_str().unwrap_or_default()
            );
        }
        if records.is_empty() {
            if !follow {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
            if embedded {
                log = open()?;
            }
        }
    }
    if seen == 0 {
        eprintln!("no events of migration {id} on {}", config.runtime.topics);
    }
    Ok(0)
}

fn pii_eval(files: Vec<PathBuf>, mistakes: bool) -> i32 {
    let files = if files.is_empty() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../agents/testdata/pii");
        let mut public: Vec<PathBuf> = std::fs::read_dir(dir.join("public"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                    .collect()
            })
            .unwrap_or_default();
        public.sort();
        let mut all = vec![dir.join("columns.jsonl"), dir.join("holdout.jsonl")];
        all.extend(public);
        all
    } else {
        files
    };
    let mut code = 0;
    for f in &files {
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", f.display());
                code = 1;
                continue;
            }
        };
        match sensei_scout::eval::evaluate_parts(&text) {
            Ok(parts) => {
                for (part, r) in &parts {
                    println!("{} [{part}] ({} columns)", f.display(), r.columns);
                    print!("{}", r.table());
                    // The blind part's mistakes stay unseen: it measures, it
                    // is not a list of things to fix.
                    if mistakes && part != "blind" {
                        for (col, label, predicted) in &r.mistakes {
                            println!("  {col}: labelled {label}, predicted {predicted}");
                        }
                    }
                    println!();
                }
            }
            Err(e) => {
                eprintln!("error: {}: {e}", f.display());
                code = 1;
            }
        }
    }
    code
}

fn verify(file: &std::path::Path, public_key: Option<&std::path::Path>) -> i32 {
    let trusted = match public_key {
        Some(p) => match std::fs::read_to_string(p)
            .ok()
            .and_then(|t| sensei_agents::artifacts::parse_public_key(&t))
        {
            Some(k) => Some(k),
            None => {
                eprintln!("error: {} is not a hex Ed25519 public key", p.display());
                return 1;
            }
        },
        None => None,
    };
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return 1;
        }
    };
    match sensei_agents::artifacts::verify_certificate(&bytes, trusted, &file.display().to_string())
    {
        Ok(payload) => {
            println!(
                "valid signature: migration {} status {} key {}{}",
                payload["migration_id"].as_str().unwrap_or("?"),
                payload["status"].as_str().unwrap_or("?"),
                payload["key_id"].as_str().unwrap_or("?"),
                if trusted.is_some() {
                    " (trusted key)"
                } else {
                    " (key named in the certificate)"
                }
            );
            0
        }
        Err(e) => {
            eprintln!("invalid: {e}");
            1
        }
    }
}

/// Runs a migration in this process, to the end or (with `until`) to the
/// checkpoint of one phase.
fn migrate(
    args: MigrationArgs,
    workers: Option<u32>,
    restart: bool,
    until: Option<Phase>,
    executors: &Executors,
) -> anyhow::Result<i32> {
    let config = args.load(workers)?;
    // Check source, target and schema file before anything is created on disk.
    sensei_agents::preflight::check(&config)?;
    let work = crate::work_runtime()?;
    let metrics_handle = work.handle().clone();
    let pool = WorkPool::new(work.handle().clone());
    let system = actix::System::new();
    let code = system.block_on(async move {
        let workdir = PathBuf::from(&config.runtime.workdir);
        let head = open_head(&workdir, &config.signing.key_file, &config.runtime.topics, &config.topics)?;
        crate::serve_metrics(
            &config.runtime.metrics_addr,
            &metrics_handle,
            crate::task_gauges(head.scheduler.clone()),
        )?;
        let dashboard =
            crate::dashboard::serve_local(&config.runtime.dashboard_addr, &head, pool.handle())
                .await?;
        if let Some(d) = &dashboard {
            eprintln!("dashboard: {} (this run's login, valid until it ends)", d.login_url);
        }
        let orch = head.orchestrator.clone();
        let (id, start) = {
            let (o, c) = (orch.clone(), config.clone());
            pool.handle().spawn(async move { o.submit(&c, restart).await }).await??
        };
        if let Start::Ended(state) = start {
            eprintln!("migration {id} already ended ({}); pass --restart to run it again", state.as_str());
            let status = orch.status(&id)?;
            let code = summarize(&status);
            return Ok::<i32, anyhow::Error>(if code == 0 { 0 } else { exit_code(state) });
        }
        if start == Start::Resumed {
            eprintln!("resuming migration {id} from its last completed tasks");
        }
        let node_id = format!("local-{}", std::process::id());
        // Agents of an interrupted earlier run are gone: requeue their tasks now
        // rather than waiting for their leases to lapse.
        head.scheduler.release_leases_except(std::slice::from_ref(&node_id))?;
        let api: Arc<dyn SchedulerApi> = Arc::new(head.scheduler.clone());
        let _node = start_node(
            NodeOptions {
                node_id: node_id.clone(),
                role: "local".into(),
                workdir: workdir.clone(),
                agents_per_kind: config.runtime.workers.max(1),
                heartbeat: Duration::from_millis(config.scheduler.heartbeat_ms),
                bind: std::net::Ipv4Addr::LOCALHOST.into(),
                flight_port: 0,
                // One process: the node's Flight service needs a secret no
                // other process knows.
                secret: sensei_runtime::tokens::ClusterSecret::generate()?,
                executors: executors.clone(),
            },
            pool.clone(),
            api,
        )
        .await?;
        let driver = {
            let (o, id) = (orch.clone(), id.clone());
            pool.handle().spawn(async move { o.drive_until(&id, until).await })
        };
        let mut progress = Progress::new();
        let mut driver = driver;
        let state = loop {
            tokio::select! {
                r = &mut driver => break r??,
                _ = tokio::signal::ctrl_c() => {
                    progress.finish();
                    eprintln!("interrupted: run the same command again to resume from the last completed tasks");
                    return Ok(130);
                }
                _ = tokio::time::sleep(Duration::from_millis(250)) => {
                    if let Ok(s) = orch.status(&id) { progress.show(&s); }
                }
            }
        };
        let state = match &dashboard {
            Some(d) => wait_for_review(d, &head, &id, state, &mut progress).await?,
            None => state,
        };
        let status = orch.status(&id)?;
        progress.show(&status);
        progress.finish();
        if let (Some(phase), MigrationState::Running) = (until, state) {
            println!("migration {id}: {phase} complete");
            println!("  manifest: {}", status["artifacts"]["manifest"].as_str().unwrap_or(""));
            println!("  continue with: sensei migrate (same arguments)");
            return Ok(0);
        }
        let code = summarize(&status);
        Ok(if code == 0 { exit_code(state) } else { code })
    });
    work.shutdown_background();
    code
}

/// With a dashboard: while mapping entries wait for review, waits for them to
/// be decided in the browser and for the migration the last decision
/// resumes (on this process's agents) to stop; returns the state it stopped
/// in. Without waiting entries: `state` as it is.
async fn wait_for_review(
    dashboard: &crate::dashboard::LocalDashboard,
    head: &crate::head::Head,
    id: &str,
    mut state: MigrationState,
    progress: &mut Progress,
) -> anyhow::Result<MigrationState> {
    let waiting = || {
        std::fs::read(head.workdir.join(id).join("mapping.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<sensei_agents::artifacts::MappingSpec>(&b).ok())
            .map(|s| sensei_agents::architect::pending(&s).len())
            .unwrap_or(0)
    };
    let mut announced = false;
    loop {
        match state {
            MigrationState::AwaitingReview if waiting() > 0 => {
                if !announced {
                    progress.finish();
                    eprintln!(
                        "{} mapping entries wait for review: decide them at {}/m/{id}/review (or stop with Ctrl-C and use sensei review)",
                        waiting(),
                        dashboard.url
                    );
                    announced = true;
                }
            }
            MigrationState::Running => {
                announced = false;
                if let Ok(s) = head.orchestrator.status(id) {
                    progress.show(&s);
                }
            }
            _ => return Ok(state),
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                progress.finish();
                eprintln!("interrupted: run the same command again to resume");
                return Ok(state);
            }
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        state = head.scheduler.migration_state(id)?.0;
    }
}

/// `sensei plan`: ingestion (run or reused), then the mapping spec, printed.
fn plan(args: MigrationArgs, workers: Option<u32>, executors: &Executors) -> anyhow::Result<i32> {
    let config = args.load(workers)?;
    let code = migrate(args, workers, false, Some(Phase::Ingestion), executors)?;
    if code != 0 {
        return Ok(code);
    }
    let workdir = PathBuf::from(&config.runtime.workdir);
    let id = config.migration_id();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let spec = rt.block_on(async {
        let head = open_head(
            &workdir,
            &config.signing.key_file,
            &config.runtime.topics,
            &config.topics,
        )?;
        anyhow::Ok(head.orchestrator.mapping(&id).await?)
    })?;
    print!("{}", sensei_agents::architect::render(&spec));
    let waiting = sensei_agents::architect::pending(&spec);
    println!(
        "mapping spec: {}",
        workdir.join(&id).join("mapping.json").display()
    );
    if waiting.is_empty() {
        println!("every entry is approved: run sensei migrate");
    } else {
        println!(
            "{} entries wait for review: sensei review --approve TABLE.COLUMN (or --all), then sensei migrate",
            waiting.len()
        );
        return Ok(3);
    }
    Ok(0)
}

/// `sensei checkpoint`.
fn checkpoint(command: CheckpointCommand, executors: &Executors) -> anyhow::Result<i32> {
    use crate::checkpoint as cp;
    match command {
        CheckpointCommand::Take {
            args,
            delivered,
            every,
            count,
            workers,
        } => {
            let config = args.load(workers)?;
            let every = every.unwrap_or(config.verification.checkpoint_interval_s);
            for i in 0..count.max(1) {
                if i > 0 {
                    std::thread::sleep(Duration::from_secs(every));
                }
                if delivered {
                    let c = cp::take_target(&config)?;
                    println!(
                        "target checkpoint {} at {}: {} tables",
                        c.n,
                        c.taken_at,
                        c.partitions.len()
                    );
                    continue;
                }
                let (n, name) = cp::next_source_name(&config)?;
                let mut child = args.clone();
                child.set.push(format!("migration.name={name}"));
                let child_id = child.load(workers)?.migration_id();
                let code = migrate(child, workers, false, Some(Phase::Ingestion), executors)?;
                if code != 0 {
                    return Ok(code);
                }
                let c = cp::record_source(&config, n, &child_id)?;
                println!(
                    "source checkpoint {} at {} ({}{})",
                    c.n,
                    c.checkpoint_time,
                    c.consistency,
                    c.snapshot_id
                        .as_deref()
                        .map(|s| format!(", snapshot {s}"))
                        .unwrap_or_default()
                );
            }
            Ok(0)
        }
        CheckpointCommand::List { args } => {
            for line in cp::list(&args.load(None)?)? {
                println!("{line}");
            }
            Ok(0)
        }
        CheckpointCommand::Replay {
            args,
            source_checkpoint,
            target_checkpoint,
        } => {
            let config = args.load(None)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let (code, doc) =
                rt.block_on(cp::replay(&config, source_checkpoint, target_checkpoint))?;
            for q in doc["queries"].as_array().into_iter().flatten() {
                println!(
                    "{:<12} {}{}",
                    q["result"].as_str().unwrap_or_default(),
                    q["name"].as_str().unwrap_or_default(),
                    match q["detail"].as_str() {
                        Some(d) if !d.is_empty() => format!(": {d}"),
                        _ => String::new(),
                    }
                );
            }
            println!(
                "{} (source checkpoint {}, target checkpoint {})",
                doc["status"].as_str().unwrap_or_default(),
                source_checkpoint,
                target_checkpoint
            );
            Ok(code)
        }
    }
}

/// `sensei diff`: prints what differs, table by table.
fn diff(
    a: &str,
    b: &str,
    tables: Vec<String>,
    workers: Option<usize>,
    chunk_keys: i64,
    rows_only: bool,
    json: bool,
) -> i32 {
    let options = sensei_agents::diff::DiffOptions {
        tables,
        workers: workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        }),
        chunk_keys,
        rows_only,
        ..Default::default()
    };
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let progress = |table: &str, done: usize, all: usize| {
        if tty || done == all {
            eprint!("\r{table}: {done}/{all} chunks");
            if done == all {
                eprintln!();
            }
        }
    };
    let out = match sensei_agents::diff::diff(a, b, &options, &progress) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let same = out.iter().all(|t| t.diff.equal() && t.rows_a == t.rows_b);
    if json {
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        for t in &out {
            let how = if t.merkle_a.is_empty() {
                format!("compared by {}", t.method)
            } else {
                format!("merkle {} / {}", t.merkle_a, t.merkle_b)
            };
            println!(
                "{}: {} rows / {} rows by ({}): {} only in the first, {} only in the second, {} changed; {how}",
                t.table,
                t.rows_a,
                t.rows_b,
                t.key.join(", "),
                t.diff.missing,
                t.diff.extra,
                t.diff.changed,
            );
            for e in &t.diff.examples {
                println!("  {e}");
            }
        }
    }
    if same {
        0
    } else {
        2
    }
}

/// `sensei review --accept-inconclusive`: a person's word that an
/// INCONCLUSIVE certificate may be delivered, written once next to it.
fn accept(args: MigrationArgs, by: Option<String>) -> anyhow::Result<i32> {
    use std::io::Write as _;
    let config = args.load(None)?;
    let dir = PathBuf::from(&config.runtime.workdir).join(config.migration_id());
    let path = dir.join("certificate.json");
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "no certificate at {}: run sensei migrate until verification",
            path.display()
        )
    })?;
    let cert: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a certificate", path.display()))?;
    let status = cert["payload"]["status"].as_str().unwrap_or_default();
    if status != "INCONCLUSIVE" {
        anyhow::bail!(
            "the certificate says {status}, not INCONCLUSIVE: there is nothing to accept"
        );
    }
    let undecided: Vec<serde_json::Value> = cert["payload"]["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["result"] == "inconclusive")
        .cloned()
        .collect();
    let who = by
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into());
    let doc = serde_json::json!({
        "accepted_by": who,
        "accepted_at": sensei_agents::artifacts::now_rfc3339(),
        "certificate_sha256": sensei_runtime::store::sha256_hex(&bytes),
        "undecided_checks": undecided,
    });
    let out = dir.join(sensei_agents::artifacts::INCONCLUSIVE_REVIEW);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&out)
        .with_context(|| {
            format!(
                "{} exists: the certificate was accepted already",
                out.display()
            )
        })?;
    f.write_all(&serde_json::to_vec_pretty(&doc)?)?;
    f.sync_all()?;
    for c in &undecided {
        println!(
            "undecided: {} {}",
            c["check"].as_str().unwrap_or_default(),
            c["table"].as_str().unwrap_or_default()
        );
    }
    println!(
        "{who} accepted the INCONCLUSIVE certificate ({}); run sensei migrate to deliver",
        out.display()
    );
    Ok(0)
}

/// `sensei review`: changes entries of the mapping spec `sensei plan` wrote.
fn review(
    args: MigrationArgs,
    approve: Vec<String>,
    reject: Vec<String>,
    expression: Vec<String>,
    all: bool,
    by: Option<String>,
) -> anyhow::Result<i32> {
    let config = args.load(None)?;
    let path = PathBuf::from(&config.runtime.workdir)
        .join(config.migration_id())
        .join("mapping.json");
    let who = by
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into());
    use sensei_agents::architect::review::{self, Action, Decision};
    let decision = |entry: String, action: Action| Decision {
        entry,
        action,
        why: None,
    };
    let mut decisions: Vec<Decision> = Vec::new();
    decisions.extend(approve.into_iter().map(|e| decision(e, Action::Approve)));
    decisions.extend(reject.into_iter().map(|e| decision(e, Action::Reject)));
    for e in expression {
        let (entry, expr) = e
            .split_once('=')
            .context("--expression takes TABLE.COLUMN=EXPRESSION")?;
        decisions.push(decision(
            entry.to_string(),
            Action::Expression(expr.to_string()),
        ));
    }
    let spec = review::record(&path, &decisions, all, &who, "sensei review")?;
    print!("{}", sensei_agents::architect::render(&spec));
    let waiting = sensei_agents::architect::pending(&spec);
    println!("{} entries wait for review", waiting.len());
    Ok(0)
}

/// `certificate verify --data`: the delivered data, read back as certified,
/// must have the certificate's digest and Merkle root, table by table.
fn verify_data(file: &std::path::Path, url: &str) -> i32 {
    let run = || -> anyhow::Result<bool> {
        let cert: serde_json::Value = serde_json::from_slice(&std::fs::read(file)?)?;
        // SQLite reads each column as its certified type; databases and
        // files read their own types, cast to the certified ones.
        let mut target = sensei_connectors::readback::ReadBack::open(url, &Default::default(), "")?;
        let mut all = true;
        let tables = cert["payload"]["tables"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (name, t) in tables {
            let columns: Vec<(String, String)> =
                serde_json::from_value(t["columns"].clone()).unwrap_or_default();
            let key: Vec<String> =
                serde_json::from_value(t["merkle_key"].clone()).unwrap_or_default();
            // Every table is read as the certified columns and types.
            let certified = sensei_delivery::post::certified_schema(
                &name,
                columns
                    .iter()
                    .map(|(c, ty)| (c.as_str(), ty.as_str(), true)),
            )?;
            let order: Vec<String> = columns.iter().map(|(c, _)| c.clone()).collect();
            let (digest, root) = sensei_delivery::post::read_back(
                &mut target,
                &name,
                &order,
                Some(&certified),
                &key,
                None,
            )?;
            let ok = t["digest"].as_str() == Some(digest.hex().as_str())
                && t["merkle_root"].as_str() == Some(root.as_str());
            println!(
                "{} table {name}: {} rows, Merkle root {root}{}",
                if ok { "matches" } else { "DIFFERS" },
                digest.rows,
                if ok {
                    String::new()
                } else {
                    format!(
                        " (certified {} rows, root {})",
                        t["rows"],
                        t["merkle_root"].as_str().unwrap_or("-")
                    )
                }
            );
            all &= ok;
        }
        Ok(all)
    };
    match run() {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}
