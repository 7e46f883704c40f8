//! `/metrics` of a running migration, scraped over a real socket and parsed
//! by Python's `prometheus_client` (an independent parser of the text
//! format): the documented names are there, with their types.

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use sensei_tests::*;

fn get(addr: &str, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn a_running_migration_serves_prometheus_metrics() {
    let setup = RetailSetup::new("[ingestion]\npartition_rows = 400\n");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = sensei()
        .arg("migrate")
        .arg(&setup.cfg)
        .args(["--set", &format!("runtime.metrics_addr={addr}")])
        .env("SENSEI_TEST_TASK_DELAY_MS", "150")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Scraped while it runs; the last answer that has delivered batches in it is kept.
    let mut last = None;
    let mut not_found = None;
    while child.try_wait().unwrap().is_none() {
        if let Some(reply) = get(&addr, "/metrics") {
            if reply.contains("sensei_delivery_batch_seconds_count") {
                last = Some(reply);
            }
            if not_found.is_none() {
                not_found = get(&addr, "/other");
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
         print(json.dumps({f.name: [f.type, len(f.samples)] for f in fams}))",
        )
        .arg(&file));
    assert_exit(&parsed, 0);
    let families: serde_json::Value = serde_json::from_slice(&parsed.stdout).unwrap();
    // prometheus_client names counters without their `_total`.
    for (name, kind) in [
        ("sensei_tasks_leased", "counter"),
        ("sensei_tasks_completed", "counter"),
        ("sensei_rows", "counter"),
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
}
