//! `sensei-cluster` end to end: a head and worker processes on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use sensei_tests::*;

struct Cluster {
    dir: PathBuf,
}

impl Cluster {
    fn up(dir: &Path, env: &[(&str, &str)]) -> Cluster {
        Cluster::up_with(dir, env, &[])
    }

    fn up_with(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Cluster {
        let mut cmd = cluster(dir);
        cmd.args(["up", "--workers", "2"]).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        assert_eq!(run(&mut cmd).status.code(), Some(0));
        Cluster {
            dir: dir.to_path_buf(),
        }
    }

    fn file(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.dir.join("cluster.json")).unwrap()).unwrap()
    }

    fn workdir(&self) -> PathBuf {
        PathBuf::from(self.file()["workdir"].as_str().unwrap())
    }

    fn submit(&self, cfg: &Path) -> Child {
        cluster(&self.dir)
            .arg("submit")
            .arg(cfg)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.dir.join("cluster.json").exists() {
            let _ = run(cluster(&self.dir).arg("down"));
        }
    }
}

fn finish(child: Child) -> i32 {
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "submit stdout:\n{}\nsubmit stderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.status.code().unwrap_or(-1)
}

const SMALL_PARTITIONS: &str = "[ingestion]\npartition_rows = 150\n[delivery]\nbatch_rows = 40\n[scheduler]\nlease_ms = 3000\nheartbeat_ms = 500\n";

/// [`SMALL_PARTITIONS`] with every Scout and delivery session pausing `ms`
/// after each batch, so a kill lands mid-phase.
fn paced(ms: u64) -> String {
    format!("[ingestion]\npartition_rows = 150\nbatch_pause_ms = {ms}\n[delivery]\nbatch_rows = 40\nbatch_pause_ms = {ms}\n[scheduler]\nlease_ms = 3000\nheartbeat_ms = 500\n")
}

/// Delivery slow enough to kill a worker in the middle of a partition: 10-row
/// batches with a 30 ms pause after each, so a full 150-row partition takes
/// about half a second.
const KILLABLE: &str = "[ingestion]\npartition_rows = 150\n[delivery]\nbatch_rows = 10\nbatch_pause_ms = 30\n[scheduler]\nlease_ms = 3000\nheartbeat_ms = 500\n";

/// Watches the task table and SIGKILLs the worker that has just leased an
/// `order_lines` delivery partition: a task seen running that was not running
/// one poll (a few ms) earlier has most of its batches still to write, so its
/// lease must lapse and be reassigned. (Killing the holder of any running task
/// can race the task's own completion, already on its way to the head.)
fn kill_a_worker_as_it_takes_a_delivery_partition(c: &Cluster) {
    let work = c.workdir();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    let mut seen = std::collections::HashSet::new();
    let mut first = true;
    let victim: String = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for a delivery partition to be leased"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
        let Ok(db) = rusqlite::Connection::open_with_flags(
            work.join("state.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        ) else {
            continue;
        };
        db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        let Ok(mut stmt) = db.prepare(
            "SELECT id, node_id FROM tasks WHERE phase = 'delivery' AND table_name = 'order_lines' AND state = 'running' AND node_id IS NOT NULL",
        ) else {
            continue;
        };
        let running: Vec<(i64, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        // Tasks already running at the first look may be nearly done.
        let fresh = running.iter().find(|(id, _)| !first && !seen.contains(id));
        if let Some((_, node)) = fresh {
            break node.clone();
        }
        seen.extend(running.iter().map(|(id, _)| *id));
        first = false;
    };
    let pid = c.file()["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w[0] == victim.as_str())
        .map(|w| w[1].as_u64().unwrap() as u32)
        .expect("victim pid");
    kill(pid, "KILL");
}

#[test]
fn a_cluster_of_two_workers_migrates_over_flight() {
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let target = dir.path().join("t.db");
    // The replay runs on every delivery here (by default it runs only on a
    // table that differs from the certificate), so that its placement on
    // the workers is seen.
    let cfg = write_config(
        dir.path(),
        &src,
        &target,
        &SMALL_PARTITIONS.replace("[delivery]\n", "[delivery]\npost_replay = \"always\"\n"),
    );
    let c = Cluster::up(&dir.path().join("cluster"), &[]);
    assert_eq!(finish(c.submit(&cfg)), 0);
    assert_same_rows(&src, &target);

    let out = run(cluster(&c.dir).args(["status", "--json"]));
    assert_eq!(out.status.code(), Some(0));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let workers: Vec<_> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["role"] == "worker")
        .collect();
    assert_eq!(workers.len(), 2);
    let pids: Vec<u64> = workers.iter().map(|n| n["pid"].as_u64().unwrap()).collect();
    assert_ne!(pids[0], pids[1], "two worker processes");
    // The state file records every worker's Flight endpoint, as registered.
    let recorded = c.file()["flight_endpoints"].clone();
    for n in &workers {
        assert_eq!(
            recorded[n["id"].as_str().unwrap()],
            n["flight_endpoint"],
            "{recorded}"
        );
    }
    // Partitions held by one worker process were read by another over Flight.
    let served: u64 = status["flight"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["gets"].as_u64().unwrap())
        .sum();
    assert!(
        served > 0,
        "no batch crossed processes over Flight: {status}"
    );
    let done: Vec<String> = status["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| format!("{} {}", t["phase"], t["state"]))
        .collect();
    assert!(done.iter().all(|d| d.contains("done")), "{done:?}");
    // The post-delivery check ran as leased tasks on the workers, not in
    // the head: one read-back per table, then the replay on what was read.
    let work = c.workdir();
    let on_workers = |like: &str| {
        state_query(
            &work,
            &format!("SELECT count(*) FROM tasks WHERE state = 'done' AND table_name LIKE '{like}' AND node_id LIKE 'worker-%'"),
        )
        .unwrap()
    };
    for table in ["customers", "products", "orders", "order_lines"] {
        assert_eq!(on_workers(&format!("post-delivery:{table}")), 1, "{table}");
    }
    assert_eq!(on_workers("post-delivery:replay"), 1);
    // So did the target's preparation, before any partition was written.
    assert_eq!(on_workers("delivery:prepare"), 1);
    // And the sample that sized the ingestion partitions.
    assert_eq!(on_workers("ingestion:sample"), 1);
    let receipt = migration_with(&work, "receipt.json").join("receipt.json");
    let receipt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(receipt).unwrap()).unwrap();
    for (table, t) in receipt["tables"].as_object().unwrap() {
        assert_eq!(t["matches_certificate"], true, "{table}: {t}");
        assert!(t["rows_in_target"].as_u64().unwrap() > 0, "{table}: {t}");
    }
    assert_eq!(receipt["post_delivery"]["replayed"], true, "{receipt}");
    assert_eq!(receipt["post_delivery"]["failed"], 0, "{receipt}");
    assert!(receipt["post_delivery"]["queries"].as_u64().unwrap() > 0);
    assert_eq!(run(cluster(&c.dir).arg("status")).status.code(), Some(0));
    assert_eq!(run(cluster(&c.dir).arg("down")).status.code(), Some(0));
    assert!(!c.dir.join("cluster.json").exists());
}

#[test]
fn a_worker_killed_mid_delivery_loses_no_row_and_duplicates_none() {
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let target = dir.path().join("t.db");
    let cfg = write_config(dir.path(), &src, &target, KILLABLE);
    let c = Cluster::up(&dir.path().join("cluster"), &[]);
    let work = c.workdir();
    let submit = c.submit(&cfg);
    kill_a_worker_as_it_takes_a_delivery_partition(&c);
    assert_eq!(finish(submit), 0);
    assert_same_rows(&src, &target);
    let lapsed = state_query(
        &work,
        "SELECT count(*) FROM events WHERE message LIKE '%lapsed%reassigning%'",
    )
    .unwrap();
    assert!(
        lapsed >= 1,
        "the killed worker's lease lapsed and its task was reassigned"
    );
}

#[test]
fn the_head_killed_and_restarted_resumes_the_migration() {
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let target = dir.path().join("t.db");
    let cfg = write_config(dir.path(), &src, &target, &paced(20));
    let c = Cluster::up(&dir.path().join("cluster"), &[]);
    let work = c.workdir();
    let file = c.file();
    let submit = c.submit(&cfg);
    wait_until(180, "verification to be recorded", || {
        state_query(
            &work,
            "SELECT count(*) FROM checkpoints WHERE phase = 'verification'",
        )
        .unwrap_or(0)
            > 0
    });
    kill(file["head_pid"].as_u64().unwrap() as u32, "KILL");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let port = file["head_endpoint"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let mut head = Command::new(bin("sensei-cluster"))
        .arg("--dir")
        .arg(&c.dir)
        .args(["head", "--port", &port, "--workdir"])
        .arg(&work)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("head2.log")).unwrap())
        .spawn()
        .unwrap();
    let code = finish(submit);
    kill(head.id(), "TERM");
    let _ = head.wait();
    assert_eq!(code, 0);
    assert_same_rows(&src, &target);
    let resumed = state_query(&work, "SELECT count(*) FROM checkpoints").unwrap();
    assert_eq!(resumed, 4, "all four checkpoints recorded once");
}

#[test]
fn a_worker_killed_mid_delivery_into_postgres_leaves_every_row_exactly_once() {
    let db = PgDatabase::create("kill");
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let cfg = dir.path().join("m.toml");
    std::fs::write(
        &cfg,
        format!(
            "[migration]\nname = \"retail\"\n[source]\nurl = \"sqlite://{}\"\n[target]\nurl = \"{}\"\n{}",
            src.display(),
            db.url,
            KILLABLE
        ),
    )
    .unwrap();
    let c = Cluster::up(&dir.path().join("cluster"), &[]);
    let work = c.workdir();
    let submit = c.submit(&cfg);
    kill_a_worker_as_it_takes_a_delivery_partition(&c);
    assert_eq!(finish(submit), 0);
    let s = rusqlite::Connection::open(&src).unwrap();
    let mut pg = db.client();
    let mut total = 0i64;
    for (table, key) in [
        ("customers", "cust_id"),
        ("products", "prod_id"),
        ("orders", "ord_id"),
        ("order_lines", "ord_id, line_no"),
    ] {
        let want: i64 = s
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        let row = pg
            .query_one(
                &format!("SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT {key} FROM {table}) d) FROM {table}"),
                &[],
            )
            .unwrap();
        let (n, distinct): (i64, i64) = (row.get(0), row.get(1));
        assert_eq!(
            (n, distinct),
            (want, want),
            "{table}: every row exactly once"
        );
        total += want;
    }
    let ledger: i64 = pg
        .query_one("SELECT sum(rows)::bigint FROM sensei_delivery_ledger", &[])
        .unwrap()
        .get(0);
    assert_eq!(ledger, total);
    let lapsed = state_query(
        &work,
        "SELECT count(*) FROM events WHERE message LIKE '%lapsed%reassigning%'",
    )
    .unwrap();
    assert!(lapsed >= 1, "the killed worker's task was reassigned");
}

/// The README's promise: `sensei-cluster submit` runs a migration like
/// `sensei migrate`, with the same options and exit codes. The same one-line
/// migration into the modern schema runs both ways: first without approval
/// (both stop with 3, entries waiting), then with `--approve-all` (both
/// deliver the same rows with a PASS certificate).
#[test]
fn submit_takes_the_options_of_migrate_and_exits_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/retail/schema.sql");
    let c = Cluster::up(&dir.path().join("cluster"), &[]);
    let one_line = |target: &Path, extra: &[&str]| -> Vec<String> {
        let mut a = vec![
            "--source".to_string(),
            format!("sqlite://{}", src.display()),
            "--target".to_string(),
            format!("sqlite://{}", target.display()),
            "--target-schema".to_string(),
            schema.display().to_string(),
            "--set".to_string(),
            "ingestion.partition_rows=300".to_string(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let local_target = dir.path().join("local.db");
    let cluster_target = dir.path().join("cluster.db");
    let local_work = dir.path().join("local-work");

    let local = |extra: &[&str]| {
        let mut cmd = sensei();
        cmd.arg("migrate")
            .args(one_line(&local_target, extra))
            .arg("--workdir")
            .arg(&local_work);
        run(&mut cmd)
    };
    let submit = |extra: &[&str]| {
        run(cluster(&c.dir)
            .arg("submit")
            .args(one_line(&cluster_target, extra)))
    };

    // Entries below the threshold wait: both stop before delivery with 3.
    let (l, s) = (local(&[]), submit(&[]));
    assert_exit(&l, 3);
    assert_exit(&s, 3);
    for out in [&l, &s] {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("awaiting_review"), "{text}");
    }

    // --approve-all, on both: delivered, PASS, the same rows.
    let (l, s) = (local(&["--approve-all"]), submit(&["--approve-all"]));
    assert_exit(&l, 0);
    assert_exit(&s, 0);
    for out in [&l, &s] {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("verdict: PASS"), "{text}");
        assert!(text.contains("certificate verify "), "{text}");
    }
    let dump = |db: &Path| -> Vec<String> {
        let conn = rusqlite::Connection::open(db).unwrap();
        let mut out = Vec::new();
        for t in ["customer", "product", "purchase_order", "order_line"] {
            let mut st = conn
                .prepare(&format!("SELECT * FROM {t} ORDER BY 1, 2"))
                .unwrap();
            let n = st.column_count();
            let rows = st
                .query_map([], |r| {
                    (0..n)
                        .map(|i| {
                            r.get::<_, rusqlite::types::Value>(i)
                                .map(|v| format!("{v:?}"))
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .unwrap();
            for r in rows {
                out.push(format!("{t}: {}", r.unwrap().join("|")));
            }
        }
        out
    };
    let (a, b) = (dump(&local_target), dump(&cluster_target));
    assert!(a.len() > 100, "{} rows", a.len());
    assert_eq!(a, b, "the cluster delivered other rows than sensei migrate");

    // A working folder of its own is not something a cluster can honour:
    // refused, naming the cluster's folder, instead of ignored.
    let other = dir.path().join("elsewhere");
    let out = run(cluster(&c.dir)
        .arg("submit")
        .args(one_line(&cluster_target, &[]))
        .arg("--workdir")
        .arg(&other));
    assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sensei-cluster up --workdir"), "{err}");
}

/// The tables of a migration, streamed by an independent Flight client:
/// `tools/flight_verify.py` (pyarrow.flight) with a reader token lists the
/// verified datasets of a 2-worker cluster, streams every partition of every
/// table, and recomputes each table's digest and Merkle root from what it
/// received with the documented row encoding; they equal the certificate's,
/// and `certificate verify --data` shows the target's equal them too, so the
/// rows streamed are the rows delivered. Without a token, with a changed or
/// a revoked one, the call is refused; a migration whose certificate says
/// FAIL in the same working folder is not listed.
#[test]
fn a_reader_token_streams_verified_tables_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let work = dir.path().join("shared-work");
    // A migration whose certificate says FAIL, run alone in the folder the
    // cluster will use (a changed value in `orders` after transformation).
    let broken_target = dir.path().join("broken.db");
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        format!(
            "[migration]\nname = \"broken\"\n[source]\nurl = \"sqlite://{}\"\n[target]\nurl = \"sqlite://{}\"\n[runtime]\nworkdir = \"{}\"\n",
            src.display(),
            broken_target.display(),
            work.display()
        ),
    )
    .unwrap();
    let out = run(sensei_with_fault("number:100000@orders")
        .arg("migrate")
        .arg(&broken));
    assert_exit(&out, 2);

    let cdir = dir.path().join("cluster");
    let up = run(cluster(&cdir)
        .args(["up", "--workers", "2", "--workdir"])
        .arg(&work));
    assert_exit(&up, 0);
    let c = Cluster { dir: cdir };
    let public = c.file()["public_flight"].as_str().unwrap().to_string();
    assert!(public.starts_with("grpc://127.0.0.1:"), "{public}");
    assert!(
        String::from_utf8_lossy(&up.stdout).contains(&public),
        "`up` prints the endpoint"
    );
    let target = dir.path().join("t.db");
    let mut cfg_text =
        std::fs::read_to_string(write_config(dir.path(), &src, &target, SMALL_PARTITIONS)).unwrap();
    cfg_text = cfg_text.replace(
        &format!("workdir = \"{}\"", dir.path().join("work").display()),
        &format!("workdir = \"{}\"", work.display()),
    );
    let cfg = dir.path().join("migration.toml");
    std::fs::write(&cfg, cfg_text).unwrap();
    assert_eq!(finish(c.submit(&cfg)), 0);
    let cert = work
        .join(
            std::fs::read_dir(&work)
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .find(|n| n.starts_with("retail-"))
                .expect("the retail migration's folder"),
        )
        .join("certificate.json");

    let created =
        run(cluster(&c.dir).args(["token", "create", "--role", "reader", "--name", "notebook"]));
    assert_exit(&created, 0);
    let token = String::from_utf8(created.stdout)
        .unwrap()
        .trim()
        .to_string();
    assert!(token.starts_with("sensei_"), "{token}");
    let saved = dir.path().join("received");
    let verify = |token: &str| {
        run(Command::new(python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/flight_verify.py"))
            .arg(&public)
            .args(["--token", token, "--save"])
            .arg(&saved))
    };
    let out = verify(&token);
    assert_exit(&out, 0);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed: Vec<(String, String)> = doc["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["migration"].as_str().unwrap().to_string(),
                t["table"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        listed.iter().all(|(m, _)| m.starts_with("retail-")),
        "only the PASS migration is listed: {listed:?}"
    );
    let mut names: Vec<&str> = listed.iter().map(|(_, t)| t.as_str()).collect();
    names.sort();
    let mut expected = RETAIL_TABLES.to_vec();
    expected.sort();
    assert_eq!(names, expected);
    let certificate: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cert).unwrap()).unwrap();
    for (t, n) in retail_counts(&src) {
        let got = doc["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["table"] == t)
            .unwrap();
        assert_eq!(got["rows"].as_i64(), Some(n), "{got}");
        assert_eq!(got["matches_certificate"], true, "{got}");
        assert_eq!(
            got["merkle_root"], certificate["payload"]["tables"][t]["merkle_root"],
            "{t}"
        );
    }
    assert!(
        doc["tables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["endpoints"].as_u64() > Some(1)),
        "a table of several partitions is streamed from several endpoints: {doc}"
    );
    // Every partition came from the worker that holds it (the endpoint's
    // first location), redeeming the head's signed ticket there.
    let nodes: Vec<String> = c.file()["flight_endpoints"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let served = doc["served_by"].as_object().unwrap();
    assert!(
        !served.is_empty() && served.keys().all(|k| nodes.contains(k)),
        "served by {served:?}, nodes {nodes:?}"
    );
    // The target holds those very rows: its roots equal the certificate's.
    let out = run(sensei()
        .args(["certificate", "verify"])
        .arg(&cert)
        .arg("--data")
        .arg(format!("sqlite://{}", target.display())));
    assert_exit(&out, 0);
    // And, read directly, the ids and e-mails of one table.
    let file = std::fs::File::open(saved.join("customers.parquet")).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut received: Vec<String> = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let formatter = arrow::util::display::ArrayFormatter::try_new(
            batch
                .column(batch.schema().index_of("cust_id").unwrap())
                .as_ref(),
            &Default::default(),
        )
        .unwrap();
        for r in 0..batch.num_rows() {
            received.push(formatter.value(r).to_string());
        }
    }
    received.sort();
    let mut delivered: Vec<String> = rusqlite::Connection::open(&target)
        .unwrap()
        .prepare("SELECT cust_id FROM customers")
        .unwrap()
        .query_map([], |r| r.get::<_, i64>(0))
        .unwrap()
        .map(|v| v.unwrap().to_string())
        .collect();
    delivered.sort();
    assert_eq!(received, delivered);

    // No token, a changed one, a revoked one: refused.
    for bad in ["", "sensei_0123456789abcdef_00"] {
        let out = verify(bad);
        assert_exit(&out, 2);
    }
    let mut changed = token.clone().into_bytes();
    let last = changed.len() - 1;
    changed[last] = if changed[last] == b'a' { b'b' } else { b'a' };
    assert_exit(&verify(&String::from_utf8(changed).unwrap()), 2);
    let id = token.split('_').nth(1).unwrap();
    assert_exit(&run(cluster(&c.dir).args(["token", "revoke", id])), 0);
    assert_exit(&verify(&token), 2);
}

/// The head's control plane and the workers' Flight services serve the
/// processes of their cluster only: a call without the cluster secret (or
/// with another cluster's) is refused, by the project's own clients and by
/// pyarrow.flight; `sensei-cluster status` (which reads the secret file)
/// gets through.
#[test]
fn calls_without_the_cluster_secret_are_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::up(&dir.path().join("cluster"), &[]);
    let secret_file = c.dir.join("cluster.secret");
    assert_eq!(
        std::fs::metadata(&secret_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let secret = sensei_runtime::tokens::ClusterSecret::load(&secret_file).unwrap();
    let stranger = sensei_runtime::tokens::ClusterSecret::generate().unwrap();
    let file = c.file();
    let head = file["head_endpoint"].as_str().unwrap().to_string();
    let nodes: Vec<String> = file["flight_endpoints"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(nodes.len(), 2);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    rt.block_on(async {
        let refused = sensei_scheduler::GrpcScheduler::new(&head, &stranger)
            .unwrap()
            .cluster_status()
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("cluster secret"), "{refused}");
        let admitted = sensei_scheduler::GrpcScheduler::new(&head, &secret)
            .unwrap()
            .cluster_status()
            .await
            .unwrap();
        assert!(admitted["nodes"].is_array());
        for ep in &nodes {
            let theirs = sensei_flight::PartitionClient::connect(ep, &stranger)
                .await
                .unwrap();
            let refused = theirs.list().await.unwrap_err().to_string();
            assert!(refused.contains("cluster secret"), "{ep}: {refused}");
            let ours = sensei_flight::PartitionClient::connect(ep, &secret)
                .await
                .unwrap();
            assert!(ours.list().await.is_ok(), "{ep}");
        }
    });
    // An independent Flight client without any credential.
    let out = run(Command::new(python()).args([
        "-c",
        "import sys, pyarrow.flight as f\ntry:\n    list(f.FlightClient(sys.argv[1]).list_flights())\nexcept f.FlightUnauthenticatedError as e:\n    print('refused:', e); sys.exit(3)\n",
        &nodes[0],
    ]));
    assert_exit(&out, 3);
    assert_exit(&run(cluster(&c.dir).arg("status")), 0);
}

/// The dashboard of a running 2-worker cluster, in a real headless Chromium
/// driven by Selenium (tests/browser/dashboard.py): after a token login it
/// lists both worker nodes, shows the migration waiting for review, and the
/// reviewer approves every waiting mapping entry in the page; the migration
/// then continues on the head and completes, verified and delivered. The
/// decisions are in the mapping spec under the token's name, as `sensei
/// review` records them; a reader's token may not decide (403). The
/// screenshots of the overview, the review page and the finished migration
/// are kept in `target/dashboard-screenshots/`.
#[test]
fn the_dashboard_shows_the_cluster_and_a_review_in_the_browser_completes_the_migration() {
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let target = dir.path().join("modern.db");
    let metrics = format!("127.0.0.1:{}", free_port());
    let c = Cluster::up(
        &dir.path().join("cluster"),
        &[("SENSEI_RUNTIME__METRICS_ADDR", &metrics)],
    );
    let dashboard = c.file()["dashboard"].as_str().unwrap().to_string();
    assert!(dashboard.starts_with("http://127.0.0.1:"), "{dashboard}");
    let token = |role: &str, name: &str| {
        let out = run(cluster(&c.dir).args(["token", "create", "--role", role, "--name", name]));
        assert_exit(&out, 0);
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let (reviewer, reader) = (token("reviewer", "alice"), token("reader", "bob"));
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/retail/schema.sql");
    let out = run(cluster(&c.dir)
        .args(["submit", "--source"])
        .arg(format!("sqlite://{}", src.display()))
        .arg("--target")
        .arg(format!("sqlite://{}", target.display()))
        .arg("--target-schema")
        .arg(&schema));
    assert_exit(&out, 3);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let id = stderr
        .lines()
        .find_map(|l| l.strip_prefix("submitted migration "))
        .expect("submit names the migration")
        .trim()
        .to_string();

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard-screenshots");
    let out = run(Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/dashboard.py"))
        .args([&dashboard, &reviewer, &reader, &id])
        .arg(&shots));
    assert_exit(&out, 0);
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let nodes: Vec<&str> = seen["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        nodes.contains(&"worker-1") && nodes.contains(&"worker-2"),
        "{seen}"
    );
    assert_eq!(seen["reader_decision"], 403, "{seen}");
    let approved: Vec<String> = seen["approved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    assert!(!approved.is_empty(), "{seen}");
    assert!(
        seen["waiting_after"].as_str().unwrap().starts_with("0 "),
        "{seen}"
    );
    assert_eq!(
        seen["states"].as_array().unwrap().last().unwrap(),
        "completed",
        "{seen}"
    );
    assert_eq!(seen["verdict"], "PASS", "{seen}");
    assert_eq!(seen["receipt_rows"], 4, "{seen}");
    assert!(
        seen["phases"].as_array().unwrap().len() >= 2,
        "the browser saw the phases advance: {seen}"
    );
    for shot in ["overview.png", "review.png", "migration.png"] {
        let bytes = std::fs::read(shots.join(shot)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{shot}");
    }
    // Recorded as `sensei review` records a decision.
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(c.workdir().join(&id).join("mapping.json")).unwrap())
            .unwrap();
    for entry in &approved {
        let (table, column) = entry.split_once('.').unwrap();
        let col = spec["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["target"] == table)
            .and_then(|t| {
                t["columns"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["target"] == column)
            })
            .unwrap();
        assert_eq!(col["status"], "approved", "{col}");
        assert_eq!(col["reviewed_by"], "alice", "{col}");
    }
    let n: i64 = rusqlite::Connection::open(&target)
        .unwrap()
        .query_row("SELECT count(*) FROM customer", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 500);
    // The live events, streamed to the page from `migration.events`.
    let events = seen["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.as_str().unwrap().starts_with("info ")),
        "{seen}"
    );
    // Throughput over time: every phase drew a line of its completed partitions.
    for phase in ["ingestion", "transformation", "verification", "delivery"] {
        assert!(
            seen["throughput"][phase].as_u64().unwrap_or(0) >= 1,
            "{phase}: {seen}"
        );
    }
    // The head's /metrics counts the rows the workers' tasks reported, once
    // each: every phase saw the retail example's 4,716 rows.
    let reply = http_get(&metrics, "/metrics").expect("the head serves /metrics");
    for phase in ["ingestion", "transformation", "verification", "delivery"] {
        let line = format!("sensei_rows_total{{phase=\"{phase}\"}} 4716");
        assert!(reply.lines().any(|l| l == line), "{line} in\n{reply}");
    }
    // And the workers' batch latencies, carried in their task results.
    assert!(
        reply
            .lines()
            .any(|l| l.starts_with("sensei_delivery_batch_seconds_count ") && !l.ends_with(" 0")),
        "{reply}"
    );

    // `status --watch` shows the figures the page showed last: each phase's
    // partitions done of all, and its rows.
    let last = seen["phases"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let watch = Command::new(bin("sensei-cluster"))
        .arg("--dir")
        .arg(&c.dir)
        .args(["status", "--watch"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    kill(watch.id(), "TERM");
    let out = watch.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.matches("\x1b[2J").count() >= 2, "refreshed: {text}");
    let screen = text.rsplit("\x1b[2J").next().unwrap();
    for phase in ["ingestion", "transformation", "verification", "delivery"] {
        let line = screen
            .lines()
            .find(|l| l.trim_start().starts_with(phase) && l.contains("tasks"))
            .unwrap_or_else(|| panic!("{phase} in {screen}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        // "delivery 9/9 tasks, 4716 rows, checkpoint recorded"
        let (done, rows) = (words[1], words[3]);
        let page_row = last
            .lines()
            .skip_while(|l| *l != phase)
            .nth(1)
            .unwrap_or_else(|| panic!("{phase} in {last}"));
        assert!(
            page_row.starts_with(&format!("{done} ")),
            "{line} / {page_row}"
        );
        assert!(
            page_row.contains(&format!(" {rows} ")),
            "{line} / {page_row}"
        );
    }
}

/// `up --tls`: every listener speaks TLS with a self-signed certificate:
/// the workers and `submit` reach the head over TLS, pyarrow streams the
/// verified tables from the workers over TLS trusting the cluster's root,
/// and the dashboard answers HTTPS (plain HTTP gets nothing). Beyond the
/// loopback, a cluster without TLS is refused at start.
#[test]
fn a_cluster_with_tls_serves_every_listener_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let refused =
        run(cluster(&dir.path().join("open")).args(["up", "--workers", "1", "--bind", "0.0.0.0"]));
    assert_exit(&refused, 1);
    let e = String::from_utf8_lossy(&refused.stderr);
    assert!(e.contains("need TLS") && e.contains("--tls"), "{e}");
    assert!(!dir.path().join("open/cluster.json").exists());

    let src = retail_source(dir.path(), 1);
    let target = dir.path().join("t.db");
    let cfg = write_config(dir.path(), &src, &target, SMALL_PARTITIONS);
    let c = Cluster::up_with(&dir.path().join("cluster"), &[], &["--tls"]);
    let file = c.file();
    let ca = file["tls_ca"]
        .as_str()
        .expect("cluster.json names the root")
        .to_string();
    assert!(
        file["head_endpoint"]
            .as_str()
            .unwrap()
            .starts_with("https://"),
        "{file}"
    );
    let public = file["public_flight"].as_str().unwrap().to_string();
    assert!(public.starts_with("grpc+tls://"), "{file}");
    let dashboard = file["dashboard"].as_str().unwrap().to_string();
    assert!(dashboard.starts_with("https://"), "{file}");
    for ep in file["flight_endpoints"].as_object().unwrap().values() {
        assert!(ep.as_str().unwrap().starts_with("grpc+tls://"), "{file}");
    }
    assert_eq!(finish(c.submit(&cfg)), 0);
    assert_same_rows(&src, &target);

    let created = run(cluster(&c.dir).args(["token", "create", "--role", "reader"]));
    assert_exit(&created, 0);
    let token = String::from_utf8(created.stdout)
        .unwrap()
        .trim()
        .to_string();
    let verify = |extra: &[&str]| {
        run(Command::new(python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/flight_verify.py"))
            .arg(&public)
            .args(["--token", &token])
            .args(extra))
    };
    let out = verify(&["--tls-root", &ca]);
    assert_exit(&out, 0);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["tables"].as_array().unwrap().len(),
        RETAIL_TABLES.len(),
        "{doc}"
    );
    assert!(
        doc["served_by"]
            .as_object()
            .unwrap()
            .keys()
            .all(|k| k.starts_with("grpc+tls://")),
        "{doc}"
    );
    // Without the root, the client does not trust the endpoint.
    assert_ne!(verify(&[]).status.code(), Some(0));

    // The dashboard over HTTPS (Python's ssl trusting the root), and
    // nothing for plain HTTP on the same port.
    let probe = run(Command::new(python()).arg("-c").arg(
        "import ssl, sys, urllib.request\n\
         ctx = ssl.create_default_context(cafile=sys.argv[2])\n\
         r = urllib.request.urlopen(sys.argv[1] + '/login', context=ctx)\n\
         print(r.status, 'Log in' in r.read().decode())\n\
         try:\n\
         \x20   urllib.request.urlopen(sys.argv[1].replace('https://', 'http://') + '/login', timeout=5)\n\
         \x20   print('plain answered')\n\
         except Exception as e:\n\
         \x20   print('plain refused')\n",
    )
    .arg(&dashboard)
    .arg(&ca));
    assert_exit(&probe, 0);
    assert_eq!(
        String::from_utf8_lossy(&probe.stdout).trim(),
        "200 True\nplain refused"
    );
    // The login cookie is only sent back over TLS.
    let login = run(Command::new(python()).arg("-c").arg(
        "import ssl, sys, urllib.request, urllib.parse\n\
         ctx = ssl.create_default_context(cafile=sys.argv[2])\n\
         class Keep(urllib.request.HTTPRedirectHandler):\n\
         \x20   def redirect_request(self, *a, **k): return None\n\
         o = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx), Keep)\n\
         try:\n\
         \x20   o.open(sys.argv[1] + '/login', data=urllib.parse.urlencode({'token': sys.argv[3]}).encode())\n\
         except urllib.error.HTTPError as e:\n\
         \x20   print(e.code, e.headers['set-cookie'])\n",
    )
    .arg(&dashboard)
    .arg(&ca)
    .arg(&token));
    assert_exit(&login, 0);
    let answer = String::from_utf8_lossy(&login.stdout);
    assert!(
        answer.starts_with("303 ") && answer.contains("; Secure"),
        "{answer}"
    );
    assert_exit(&run(cluster(&c.dir).arg("status")), 0);
}
