//! What a running `sensei migrate` shows: `/metrics`, scraped over a real
//! socket and parsed by Python's `prometheus_client` (an independent parser
//! of the text format), and the dashboard of `--dashboard`.

use std::process::Stdio;
use std::time::Duration;

use sensei_tests::*;

#[test]
fn a_running_migration_serves_prometheus_metrics() {
    let setup = RetailSetup::new("[ingestion]\npartition_rows = 400\n");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = sensei()
        .arg("migrate")
        .arg(&setup.cfg)
        .args(["--set", &format!("runtime.metrics_addr={addr}")])
        .args(["--set", "ingestion.batch_pause_ms=150"])
        .args(["--set", "delivery.batch_pause_ms=150"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Scraped while it runs; the last answer that has delivered batches in it is kept.
    let mut last = None;
    let mut not_found = None;
    while child.try_wait().unwrap().is_none() {
        if let Some(reply) = http_get(&addr, "/metrics") {
            if reply.contains("sensei_delivery_batch_seconds_count") {
                last = Some(reply);
            }
            if not_found.is_none() {
                not_found = http_get(&addr, "/other");
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert_exit(&out, 0);
    assert!(
        not_found.is_some_and(|r| r.starts_with("HTTP/1.1 404")),
        "only /metrics is served"
    );
    let reply = last.expect("a scrape during delivery");
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    let body = reply.split("\r\n\r\n").nth(1).unwrap();
    let file = setup.dir.path().join("metrics.txt");
    std::fs::write(&file, body).unwrap();
    let parsed = run(std::process::Command::new(python())
        .arg("-c")
        .arg(
            "import json, sys\n\
         from prometheus_client.parser import text_string_to_metric_families\n\
         fams = text_string_to_metric_families(open(sys.argv[1]).read())\n\
         fams = list(fams)\n\
         out = {f.name: [f.type, len(f.samples)] for f in fams}\n\
         out['by_phase'] = {s.name + '/' + s.labels['phase']: s.value for f in fams\n\
             for s in f.samples if s.name in ('sensei_rows_total', 'sensei_bytes_total')}\n\
         print(json.dumps(out))",
        )
        .arg(&file));
    assert_exit(&parsed, 0);
    let families: serde_json::Value = serde_json::from_slice(&parsed.stdout).unwrap();
    // prometheus_client names counters without their `_total`.
    for (name, kind) in [
        ("sensei_tasks_leased", "counter"),
        ("sensei_tasks_completed", "counter"),
        ("sensei_rows", "counter"),
        ("sensei_bytes", "counter"),
        ("sensei_verification_checks", "counter"),
        ("sensei_delivery_batch_seconds", "histogram"),
        ("sensei_tasks", "gauge"),
    ] {
        assert_eq!(families[name][0], kind, "{name}: {families}");
        assert!(
            families[name][1].as_u64().unwrap() > 0,
            "{name}: {families}"
        );
    }
    // Rows are counted once per completed task: by the time batches are
    // delivered, ingestion and transformation have seen every row of the
    // retail example (4,716) and written some bytes.
    let by_phase = &families["by_phase"];
    for phase in ["ingestion", "transformation"] {
        assert_eq!(
            by_phase[format!("sensei_rows_total/{phase}")].as_f64(),
            Some(4716.0),
            "{by_phase}"
        );
        assert!(
            by_phase[format!("sensei_bytes_total/{phase}")]
                .as_f64()
                .unwrap()
                > 0.0,
            "{by_phase}"
        );
    }
}

/// `sensei migrate --dashboard`: the command prints a login address with a
/// token of its own; mapping entries that wait for review are decided in
/// the dashboard (as a browser's form posts them) while the command waits;
/// the migration then completes in the same command (exit 0) and its token
/// is revoked when it ends.
#[test]
fn migrate_with_a_dashboard_waits_for_the_review_decided_there() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let target = dir.path().join("modern.db");
    let work = dir.path().join("work");
    let schema =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/retail/schema.sql");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = migrate_cmd(
        &format!("sqlite://{}", src.display()),
        &format!("sqlite://{}", target.display()),
        &work,
    )
    .arg("--target-schema")
    .arg(&schema)
    .args(["--dashboard", &addr])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (mut login, mut review) = (None, None);
    let mut seen = String::new();
    while review.is_none() {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("sensei migrate ended before asking for a review:\n{seen}");
        }
        seen += &line;
        if let Some(rest) = line.strip_prefix("dashboard: ") {
            login = rest.split_whitespace().next().map(str::to_string);
        }
        if line.contains("wait for review: decide them at ") {
            review = line
                .split("decide them at ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .map(str::to_string);
        }
    }
    // Keep reading the progress so the pipe never fills.
    let rest = std::thread::spawn(move || {
        let mut all = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut all);
        all
    });
    let login = login.expect("the login address is printed");
    let token = login.split("token=").nth(1).unwrap().to_string();
    let review_path = review.unwrap().replacen(&format!("http://{addr}"), "", 1);
    // The login address sets the session cookie.
    let reply = http_get(&addr, &login.replacen(&format!("http://{addr}"), "", 1)).unwrap();
    assert!(reply.starts_with("HTTP/1.1 303"), "{reply}");
    assert!(reply.contains(&format!("sensei_token={token}")), "{reply}");
    // Decide every waiting entry as the review page's buttons do.
    let auth = format!("Authorization: Bearer {token}");
    let page = http_request(&addr, "GET", &review_path, &[&auth], "").unwrap();
    // Each entry's buttons (approve, reject, edit) carry its name.
    let mut entries: Vec<String> = page
        .split("data-entry=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next().map(str::to_string))
        .collect();
    entries.sort();
    entries.dedup();
    assert!(!entries.is_empty(), "{page}");
    for entry in &entries {
        let reply = http_request(
            &addr,
            "POST",
            &review_path,
            &[&auth],
            &format!("entry={entry}&action=approve"),
        )
        .unwrap();
        assert!(reply.starts_with("HTTP/1.1 303"), "{entry}: {reply}");
    }
    let out = child.wait_with_output().unwrap();
    let rest = rest.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{seen}{rest}");
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains(": completed"), "{summary}");
    let n: i64 = rusqlite::Connection::open(&target)
        .unwrap()
        .query_row("SELECT count(*) FROM customer", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 500);
    // Recorded with the dashboard token's name as the reviewer.
    let spec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(migration_with(&work, "mapping.json").join("mapping.json")).unwrap(),
    )
    .unwrap();
    let reviewers: Vec<&str> = spec["tables"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["columns"].as_array().unwrap())
        .filter_map(|c| c["reviewed_by"].as_str())
        .collect();
    assert_eq!(reviewers.len(), entries.len(), "{spec}");
    assert!(
        reviewers
            .iter()
            .all(|r| r.starts_with("sensei migrate (pid")),
        "{reviewers:?}"
    );
    // The run's token is revoked with the run.
    let tokens = std::fs::read_to_string(work.join("tokens.json")).unwrap();
    assert!(!tokens.contains("sensei migrate (pid"), "{tokens}");
}
