//! Tests that change a database server for every session: a test binary of
//! its own, since nothing else may run on the server meanwhile (cargo runs
//! test binaries one after another).
//!
//! PostgreSQL restarted in the middle of delivery: the batches in flight
//! fail with connection errors, are retried with backoff, and the migration
//! completes with every row exactly once. MariaDB with local infile turned
//! off server-wide: delivery falls back to multi-row INSERTs and says so.

use std::process::Command;

use sensei_tests::*;

fn pg_ctl(action: &str) {
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("PostgreSQL's cluster configuration under /etc/postgresql")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .next()
        .expect("a PostgreSQL version");
    let st = Command::new("pg_ctlcluster")
        .args([
            "--skip-systemctl-redirect",
            &version,
            "main",
            action,
            "-m",
            "fast",
        ])
        .status()
        .expect("pg_ctlcluster");
    assert!(st.success(), "pg_ctlcluster {action} failed");
}

/// Makes sure the server runs again whatever the test did.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        if postgres::Client::connect(PG_ADMIN_URL, postgres::NoTls).is_err() {
            pg_ctl("start");
        }
    }
}

/// The rows the delivery ledgers hold: the target's and, while a delivery
/// is staged, its staging schema's.
fn ledger_rows(url: &str) -> Option<i64> {
    let mut c = postgres::Client::connect(url, postgres::NoTls).ok()?;
    let schemas: Vec<String> = c
        .query(
            "SELECT schemaname::text FROM pg_tables WHERE tablename = 'sensei_delivery_ledger'",
            &[],
        )
        .ok()?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut rows = 0;
    for s in schemas {
        rows += c
            .query_one(
                &format!(
                    "SELECT coalesce(sum(rows), 0)::bigint FROM \"{s}\".sensei_delivery_ledger"
                ),
                &[],
            )
            .ok()?
            .get::<_, i64>(0);
    }
    Some(rows)
}

#[test]
fn postgres_restarted_mid_delivery_the_migration_completes_exactly_once() {
    let _restore = Restore;
    let db = PgDatabase::create("restart");
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let s = rusqlite::Connection::open(&src).unwrap();
    let total: i64 = s
        .query_row(
            "SELECT (SELECT count(*) FROM customers) + (SELECT count(*) FROM products) + (SELECT count(*) FROM orders) + (SELECT count(*) FROM order_lines)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let child = sensei()
        .arg("migrate")
        .arg("--source")
        .arg(format!("sqlite://{}", src.display()))
        .arg("--target")
        .arg(&db.url)
        .arg("--workdir")
        .arg(dir.path().join("w"))
        .args([
            "--set",
            "ingestion.partition_rows=300",
            "--set",
            "delivery.batch_rows=50",
            "--set",
            "scheduler.max_attempts=10",
            "--set",
            "ingestion.batch_pause_ms=40",
            "--set",
            "delivery.batch_pause_ms=40",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = 0;
    wait_until(120, "delivery under way", || {
        seen = ledger_rows(&db.url).unwrap_or(0);
        seen > 0
    });
    assert!(seen < total, "the restart lands before delivery ends");
    pg_ctl("restart");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{err}");
    let mut c = db.client();
    let mut held = 0i64;
    for (table, key) in [
        ("customers", "cust_id"),
        ("products", "prod_id"),
        ("orders", "ord_id"),
        ("order_lines", "ord_id, line_no"),
    ] {
        let want: i64 = s
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        let row = c
            .query_one(
                &format!("SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT {key} FROM {table}) d) FROM {table}"),
                &[],
            )
            .unwrap();
        assert_eq!(
            (row.get::<_, i64>(0), row.get::<_, i64>(1)),
            (want, want),
            "{table}"
        );
        held += want;
    }
    assert_eq!(ledger_rows(&db.url), Some(held));
    let retried = state_query(
        &dir.path().join("w"),
        "SELECT max(attempt) FROM tasks WHERE phase = 'delivery'",
    )
    .unwrap();
    assert!(retried >= 2, "batches cut by the restart were retried");
}

/// Turns MariaDB's local infile back on whatever the test did.
struct InfileBack;

impl Drop for InfileBack {
    fn drop(&mut self) {
        use mysql::prelude::Queryable;
        if let Ok(mut c) = mysql::Conn::new(mysql::Opts::from_url(MYSQL_ADMIN_URL).unwrap()) {
            let _ = c.query_drop("SET GLOBAL local_infile = 1");
        }
    }
}

#[test]
fn a_mariadb_refusing_local_infile_gets_inserts_and_the_receipt_says_so() {
    use mysql::prelude::Queryable;
    let _back = InfileBack;
    let db = MyDatabase::create("noinfile");
    db.conn().query_drop("SET GLOBAL local_infile = 0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let out = run(&mut migrate_cmd(
        &format!("sqlite://{}", src.display()),
        &db.url,
        &dir.path().join("w"),
    ));
    assert_exit(&out, 0);
    let mut c = db.conn();
    for (table, want) in retail_counts(&src) {
        let n: i64 = c
            .query_first(format!("SELECT count(*) FROM {table}"))
            .unwrap()
            .unwrap();
        assert_eq!(n, want, "{table}");
    }
    let mig = migration_with(&dir.path().join("w"), "receipt.json");
    let receipt = std::fs::read_to_string(mig.join("receipt.json")).unwrap();
    assert!(
        receipt.contains("LOAD DATA LOCAL INFILE refused by the server"),
        "{receipt}"
    );
}
