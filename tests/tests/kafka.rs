//! The six topics on a real Kafka-protocol broker (tansu, started per test
//! on a free port): the retail migration and a 2-worker cluster migration
//! publish there, an independent client (Python confluent-kafka) reads and
//! decodes every topic, a broker restarted mid-migration loses and
//! duplicates nothing, a broker that is down is named at once.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sensei_tests::*;

/// Runs tools/read_topics.py against `broker`; returns its JSON summary.
fn read_topics(broker: &KafkaBroker, extra: &[&str]) -> serde_json::Value {
    let out = run(Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/read_topics.py"))
        .arg(&broker.address)
        .args(extra));
    assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout).expect("read_topics.py prints JSON")
}

/// The events the scheduler recorded in its state database, in order.
fn recorded_events(work: &Path, id: &str) -> Vec<String> {
    let c = rusqlite::Connection::open(work.join("state.db")).unwrap();
    let mut stmt = c
        .prepare("SELECT message FROM events WHERE migration_id = ?1 ORDER BY id")
        .unwrap();
    stmt.query_map([id], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn migration_id(work: &Path) -> String {
    migration_with(work, "receipt.json")
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn the_retail_migration_publishes_six_topics_a_python_client_decodes() {
    let broker = KafkaBroker::start();
    // The key in the file (the environment and --set are used below).
    let RetailSetup {
        dir,
        src,
        target,
        cfg,
    } = RetailSetup::new("[ingestion]\npartition_rows = 400\n[topics]\nretention_grace = \"2d\"\n");
    let text = std::fs::read_to_string(&cfg).unwrap().replacen(
        "[runtime]\n",
        &format!("[runtime]\ntopics = \"{}\"\n", broker.topics()),
        1,
    );
    std::fs::write(&cfg, text).unwrap();
    let out = run(sensei().arg("migrate").arg(&cfg));
    assert_exit(&out, 0);
    assert_same_rows(&src, &target);
    // A one-broker cluster cannot hold 3 replicas: the topics get what it
    // allows, and the shortfall is named.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("the cluster at {} has 1 broker(s): new topics get replication 1 (asked 3) and min.insync.replicas 1 (asked 2)", broker.address)),
        "{err}"
    );
    let work = dir.path().join("work");
    let id = migration_id(&work);
    assert!(
        !work.join("events").exists(),
        "the embedded log was written although runtime.topics names Kafka"
    );

    let got = read_topics(&broker, &["--key", &id]);
    assert!(got["undecodable"].as_array().unwrap().is_empty(), "{got}");
    for topic in sensei_runtime::topic::Topic::ALL.map(|t| t.name()) {
        let t = &got["topics"][topic];
        assert!(t["records"].as_u64().unwrap() >= 1, "{topic}: {t}");
        assert!(
            t["keys"].as_array().unwrap().iter().all(|k| k == &id),
            "{topic}: every record keyed by the migration id"
        );
    }
    // The same documents as the embedded log: the phase documents name
    // their artifact, the events are the scheduler's, in order, once each.
    let certificate = &got["topics"]["verification.complete"]["documents"][0];
    assert_eq!(certificate["migration_id"], id.as_str(), "{certificate}");
    let events: Vec<String> = got["topics"]["migration.events"]["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events, recorded_events(&work, &id));
    let coordination = got["topics"]["agent.coordination"]["documents"]
        .as_array()
        .unwrap();
    assert!(coordination
        .iter()
        .all(|d| d["event"] == "partition.complete"));

    // `sensei events` reads them back from the broker.
    let out = run(sensei()
        .args(["events", &id, "--set"])
        .arg(format!("runtime.topics={}", broker.topics())));
    assert_exit(&out, 0);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(printed.lines().count(), events.len(), "{printed}");
    assert!(printed.contains(&events[0]), "{printed}");
}

#[test]
fn a_cluster_of_two_workers_publishes_on_kafka() {
    let broker = KafkaBroker::start();
    let RetailSetup {
        dir,
        src,
        target,
        cfg,
    } = RetailSetup::new("[ingestion]\npartition_rows = 300\n[delivery]\nbatch_rows = 100\n");
    let cdir = dir.path().join("cluster");
    let up = run(cluster(&cdir)
        .args(["up", "--workers", "2"])
        .env("SENSEI_RUNTIME__TOPICS", broker.topics()));
    assert_exit(&up, 0);
    let submitted = run(cluster(&cdir).arg("submit").arg(&cfg));
    let down = run(cluster(&cdir).arg("down"));
    assert_exit(&submitted, 0);
    assert_exit(&down, 0);
    assert_same_rows(&src, &target);
    let work = cdir.join("work");
    let id = migration_id(&work);
    let got = read_topics(&broker, &["--key", &id]);
    for topic in [
        "delivery.complete",
        "migration.events",
        "agent.coordination",
    ] {
        assert!(
            got["topics"][topic]["records"].as_u64().unwrap() >= 1,
            "{topic}: {got}"
        );
    }
    let events = got["topics"]["migration.events"]["records"]
        .as_u64()
        .unwrap();
    assert_eq!(events as usize, recorded_events(&work, &id).len());
}

/// The broker is killed and started again while a migration runs: the
/// producer's retries carry every event across, none twice; a consumer
/// group's committed offset survives and the group resumes after it.
#[test]
fn a_broker_restarted_mid_migration_loses_and_duplicates_no_event() {
    let mut broker = KafkaBroker::start();
    let setup =
        RetailSetup::new("[ingestion]\npartition_rows = 200\n[delivery]\nbatch_rows = 100\n");
    let (src, target, cfg, work) = (&setup.src, &setup.target, &setup.cfg, setup.work());
    let child = sensei()
        .arg("migrate")
        .arg(cfg)
        .args(["--set", &format!("runtime.topics={}", broker.topics())])
        .args(["--set", "ingestion.batch_pause_ms=150"])
        .args(["--set", "delivery.batch_pause_ms=150"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Some events out, then the broker goes away for a moment.
    wait_until(60, "the first completed partitions", || {
        state_query(&work, "SELECT count(*) FROM tasks WHERE state = 'done'").unwrap_or(0) >= 3
    });
    broker.stop();
    std::thread::sleep(Duration::from_millis(1500));
    broker.restart();
    let out = child.wait_with_output().unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0));
    assert_same_rows(src, target);
    let id = migration_id(&work);
    let got = read_topics(&broker, &["--key", &id]);
    let events: Vec<String> = got["topics"]["migration.events"]["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events, recorded_events(&work, &id), "lost or duplicated");
    let done = state_query(&work, "SELECT count(*) FROM tasks WHERE state = 'done'").unwrap();
    assert_eq!(
        got["topics"]["agent.coordination"]["records"]
            .as_i64()
            .unwrap(),
        done,
        "one partition.complete per finished task"
    );

    // A consumer group reads what is there and commits; the broker
    // restarts; the group resumes after its committed offset (nothing new
    // to read), and a new record is all it reads next.
    let first = read_topics(&broker, &["--group", "dashboards", "--key", &id]);
    assert_eq!(
        first["topics"]["migration.events"]["records"]
            .as_u64()
            .unwrap() as usize,
        events.len()
    );
    broker.restart();
    let again = read_topics(&broker, &["--group", "dashboards", "--key", &id]);
    assert_eq!(again["topics"]["migration.events"]["records"], 0, "{again}");
}

/// A broker that is down at start: a clear error naming the address,
/// within the connect timeout, before anything is written.
#[test]
fn a_broker_that_is_down_is_named_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let target = dir.path().join("target.db");
    let started = Instant::now();
    let out = run(migrate_cmd(
        &format!("sqlite://{}", src.display()),
        &format!("sqlite://{}", target.display()),
        &dir.path().join("w"),
    )
    .env("SENSEI_RUNTIME__TOPICS", "kafka://127.0.0.1:1")
    .args(["--set", "topics.timeout_ms=2000"]));
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Kafka at 127.0.0.1:1") && err.contains("no broker answered within 2 s"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(!target.exists(), "nothing written to the target");
}

/// The backend itself, as the trait hands it out: offsets in order from
/// 0, records read back by offset, a consumer group's committed offset kept
/// by the broker across a restart; the topics created with what a
/// one-broker cluster allows.
#[test]
fn the_kafka_backend_appends_reads_and_commits_through_a_restart() {
    use sensei_runtime::topic::Topic;
    let mut broker = KafkaBroker::start();
    let settings = sensei_runtime::config::TopicsSection {
        timeout_ms: 5_000,
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let log = sensei_runtime::topic::open(&broker.topics(), &settings, dir.path()).unwrap();
    for i in 0..5u64 {
        let offset = log
            .append(
                Topic::DeliveryComplete,
                "m1",
                format!("{{\"n\":{i}}}").as_bytes(),
            )
            .unwrap();
        assert_eq!(offset, i);
    }
    let got = log.read(Topic::DeliveryComplete, 2, 10).unwrap();
    assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), [2, 3, 4]);
    assert_eq!(got[0].value, b"{\"n\":2}");
    assert_eq!(got[0].key, "m1");
    assert!(log.read(Topic::DeliveryComplete, 5, 10).unwrap().is_empty());
    assert_eq!(
        log.committed("phase-4", Topic::DeliveryComplete).unwrap(),
        0
    );
    log.commit("phase-4", Topic::DeliveryComplete, 3).unwrap();
    assert_eq!(
        log.committed("phase-4", Topic::DeliveryComplete).unwrap(),
        3
    );
    drop(log);
    broker.restart();
    let log = sensei_runtime::topic::open(&broker.topics(), &settings, dir.path()).unwrap();
    assert_eq!(
        log.committed("phase-4", Topic::DeliveryComplete).unwrap(),
        3
    );
    assert_eq!(
        log.append(Topic::DeliveryComplete, "m1", b"{\"n\":5}")
            .unwrap(),
        5,
        "the log kept its records through the restart"
    );
    assert_eq!(log.read(Topic::DeliveryComplete, 0, 100).unwrap().len(), 6);
}
