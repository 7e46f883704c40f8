//! PostgreSQL as a source, against the real server on 127.0.0.1:5432: every
//! mapped type, read-only sessions, and one snapshot for the whole extraction.

use sensei_connectors::postgres::PgSource;
use sensei_connectors::source::Source;
use sensei_tests::*;

const EVERYTHING: &str = "
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE everything (
  id bigint PRIMARY KEY, s smallint, i integer, r real, d double precision, n numeric(12,3), nn numeric,
  b boolean, t text, v varchar(20), c char(5), by bytea, dt date, ts timestamp, tz timestamptz,
  u uuid, j json, jb jsonb, arr int[], m mood, iv interval
);
INSERT INTO everything SELECT g, g % 100, g * 7, g / 4.0, g / 8.0, g * 1.125, 12345678901234567890.123456789 + g, g % 2 = 0,
  'text ' || g, 'v' || g, 'c' || (g % 10), decode('00ff' || lpad(to_hex(g % 256), 2, '0'), 'hex'), date '2020-01-01' + g,
  timestamp '2020-01-01 10:00:00' + g * interval '1 second', timestamptz '2020-01-01 10:00:00+02' + g * interval '1 minute',
  md5(g::text)::uuid, json_build_object('g', g), jsonb_build_object('g', g), ARRAY[g, g+1],
  (ARRAY['sad','ok','happy'])[g % 3 + 1]::mood, g * interval '1 hour'
FROM generate_series(1, 2500) g;
INSERT INTO everything (id) VALUES (0);
CREATE SCHEMA sales;
CREATE TABLE sales.note (k serial PRIMARY KEY, body text NOT NULL);
INSERT INTO sales.note (body) VALUES ('a'), ('ü'), ('😀');
CREATE TABLE nokey (x int, y text);
INSERT INTO nokey VALUES (1, 'one'), (NULL, NULL);
";

#[test]
fn postgres_migrates_every_mapped_type_into_sqlite() {
    let db = PgDatabase::create("types");
    db.client().batch_execute(EVERYTHING).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t.db");
    let out = run(sensei()
        .arg("migrate")
        .args(["--source", &db.url, "--target"])
        .arg(format!("sqlite://{}", target.display()))
        .arg("--workdir")
        .arg(dir.path().join("w"))
        .args(["--set", "ingestion.partition_rows=1000"]));
    assert_eq!(out.status.code(), Some(0));

    let c = rusqlite::Connection::open(&target).unwrap();
    let count = |t: &str| -> i64 {
        c.query_row(&format!("SELECT count(*) FROM \"{t}\""), [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(
        (count("everything"), count("sales.note"), count("nokey")),
        (2501, 3, 2)
    );
    let row: Vec<String> = c
        .query_row(
            "SELECT s, i, r, d, n, nn, b, t, v, c, hex(by), dt, ts, tz, u, j, jb, arr, m, iv FROM everything WHERE id = 2",
            [],
            |r| (0..20).map(|i| r.get::<_, rusqlite::types::Value>(i).map(|v| format!("{v:?}"))).collect(),
        )
        .unwrap();
    let expected = [
        "Integer(2)",
        "Integer(14)",
        "Real(0.5)",
        "Real(0.25)",
        "Text(\"2.250\")",
        "Text(\"12345678901234567892.123456789\")",
        "Integer(1)",
        "Text(\"text 2\")",
        "Text(\"v2\")",
        "Text(\"c2   \")",
        "Text(\"00FF02\")",
        "Text(\"2020-01-03\")",
        "Text(\"2020-01-01 10:00:02\")",
        "Text(\"2020-01-01 08:02:00\")",
        "Text(\"c81e728d-9d4c-2f63-6f06-7f89cc14862c\")",
        "Text(\"{\\\"g\\\" : 2}\")",
        "Text(\"{\\\"g\\\": 2}\")",
        "Text(\"{2,3}\")",
        "Text(\"happy\")",
        "Text(\"02:00:00\")",
    ];
    assert_eq!(row, expected);
    let nulls: i64 = c
        .query_row("SELECT count(*) FROM everything WHERE id = 0 AND s IS NULL AND n IS NULL AND tz IS NULL AND u IS NULL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(nulls, 1);
    assert_eq!(
        c.query_row("SELECT body FROM \"sales.note\" WHERE k = 3", [], |r| {
            r.get::<_, String>(0)
        })
        .unwrap(),
        "😀"
    );

    let mig = std::fs::read_dir(dir.path().join("w"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.join("manifest.json").exists())
        .unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mig.join("manifest.json")).unwrap()).unwrap();
    assert!(
        manifest["snapshot_id"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "extraction ran at an exported snapshot"
    );
    let cols = &manifest["tables"][0]["columns"];
    let ty = |name: &str| {
        cols.as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()["arrow_type"]
            .clone()
    };
    assert_eq!(ty("n"), "Decimal128(12, 3)");
    assert_eq!(ty("tz"), "Timestamp(µs, \"UTC\")");
    assert_eq!(ty("s"), "Int16");
    assert_eq!(ty("u"), "Utf8");
    assert_eq!(
        manifest["tables"][0]["partitions"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "split on the integer primary key"
    );
    let cert: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mig.join("certificate.json")).unwrap()).unwrap();
    assert_eq!(cert["payload"]["status"], "PASS");
}

#[test]
fn a_postgres_source_session_refuses_writes() {
    let db = PgDatabase::create("ro");
    db.client()
        .batch_execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2);")
        .unwrap();
    let mut source = Source::open(&db.url, None).unwrap();
    let pg = source.engine::<PgSource>().expect("a postgres source");
    let refused = pg.query_text("DELETE FROM t").unwrap_err().to_string();
    assert!(refused.contains("refused"), "{refused}");
    // Past Sensei's own check, the server refuses too: the transaction is read-only.
    let err = pg
        .raw_execute("INSERT INTO t VALUES (3)")
        .unwrap_err()
        .to_string();
    assert!(err.contains("read-only"), "{err}");
    drop(source);
    let n: i64 = db
        .client()
        .query_one("SELECT count(*) FROM t", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 2, "the source is unchanged");
}

#[test]
fn every_reader_sees_the_exported_snapshot_while_the_source_changes() {
    let db = PgDatabase::create("snap");
    db.client()
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'before' FROM generate_series(1, 1000) g;")
        .unwrap();
    let mut holder = Source::open(&db.url, None).unwrap();
    let snapshot = holder
        .export_snapshot()
        .unwrap()
        .expect("postgres exports snapshots");
    let tables = holder.tables().unwrap();
    // The source keeps changing during extraction.
    db.client()
        .batch_execute("INSERT INTO t SELECT g, 'after' FROM generate_series(1001, 1500) g; UPDATE t SET v = 'changed' WHERE id <= 10; DELETE FROM t WHERE id > 990 AND id <= 1000;")
        .unwrap();
    let read_all = |snapshot: Option<&str>| -> (u64, usize) {
        let mut s = Source::open(&db.url, snapshot).unwrap();
        let mut changed = 0;
        let rows = s
            .read(&tables[0], None, 256, |b| {
                let v = b
                    .column(1)
                    .as_any()
                    .downcast_ref::<arrow::array::StringArray>()
                    .unwrap();
                changed += v.iter().filter(|x| *x == Some("changed")).count();
                Ok(())
            })
            .unwrap();
        (rows, changed)
    };
    assert_eq!(
        read_all(Some(&snapshot)),
        (1000, 0),
        "a reader importing the snapshot sees the source as it was"
    );
    assert_eq!(
        read_all(None),
        (1490, 10),
        "a fresh reader sees the changes"
    );
    drop(holder);
}

#[test]
fn a_source_password_is_never_stored() {
    let db = PgDatabase::create("secret");
    db.client()
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b');",
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Trust authentication ignores the password; Sensei must still never write it down.
    let url = db.url.replace("postgres@", "postgres:Tr0ub4dor%26s3cr3t@");
    let work = dir.path().join("w");
    let out = run(sensei()
        .arg("migrate")
        .args(["--source", &url, "--target"])
        .arg(format!("sqlite://{}", dir.path().join("t.db").display()))
        .arg("--workdir")
        .arg(&work)
        .env_remove("PGPASSWORD"));
    assert_eq!(out.status.code(), Some(0));
    let mut files = vec![work.clone()];
    let mut checked = 0;
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            let bytes = std::fs::read(&p).unwrap();
            let hay = String::from_utf8_lossy(&bytes);
            assert!(
                !hay.contains("Tr0ub4dor"),
                "{} holds the password",
                p.display()
            );
            checked += 1;
        }
    }
    assert!(
        checked > 10,
        "state, events, artifacts and partitions were all checked"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stdout.contains("Tr0ub4dor") && !stderr.contains("Tr0ub4dor"));
}

#[test]
fn a_migration_killed_during_postgres_ingestion_extracts_again_at_a_new_snapshot() {
    let db = PgDatabase::create("resume");
    db.client()
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 2000) g;")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t.db");
    let work = dir.path().join("w");
    let args = |c: &mut std::process::Command| {
        c.arg("migrate")
            .args(["--source", &db.url, "--target"])
            .arg(format!("sqlite://{}", target.display()))
            .arg("--workdir")
            .arg(&work)
            .args(["--set", "ingestion.partition_rows=100", "--workers", "1"]);
    };
    let mut first = sensei();
    args(&mut first);
    let mut child = first
        .args(["--set", "ingestion.batch_pause_ms=150"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(60, "some partitions extracted", || {
        state_query(
            &work,
            "SELECT count(*) FROM tasks WHERE phase = 'ingestion' AND state = 'done' AND table_name != 'ingestion:sample'",
        )
        .unwrap_or(0)
            >= 2
    });
    kill(child.id(), "KILL");
    let _ = child.wait();
    let total = state_query(
        &work,
        "SELECT count(*) FROM tasks WHERE phase = 'ingestion'",
    )
    .unwrap();
    let done = state_query(
        &work,
        "SELECT count(*) FROM tasks WHERE phase = 'ingestion' AND state = 'done'",
    )
    .unwrap();
    assert!(
        done < total,
        "killed in the middle of ingestion ({done}/{total})"
    );
    // The source changes while nobody holds the old snapshot.
    db.client()
        .batch_execute("INSERT INTO t SELECT g, 'late' FROM generate_series(2001, 2100) g;")
        .unwrap();
    let mut again = sensei();
    args(&mut again);
    let out = run(&mut again);
    assert_eq!(out.status.code(), Some(0));
    let c = rusqlite::Connection::open(&target).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2100, "one consistent extraction at the new snapshot");
    let restarted = state_query(
        &work,
        "SELECT count(*) FROM events WHERE message LIKE '%starts over%new snapshot%'",
    )
    .unwrap();
    assert_eq!(restarted, 1);
}

const SHOP: &str = "
CREATE TABLE customer (
  id serial PRIMARY KEY, email text NOT NULL UNIQUE, tier text NOT NULL DEFAULT 'basic',
  born date CHECK (born > date '1900-01-01'), CONSTRAINT tier_known CHECK (tier IN ('basic', 'gold'))
);
CREATE TABLE purchase (
  id bigint PRIMARY KEY, customer_id int NOT NULL REFERENCES customer (id) ON DELETE CASCADE,
  amount numeric(10,2) NOT NULL, placed_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (customer_id, placed_at)
);
CREATE INDEX purchase_by_amount ON purchase (amount DESC);
CREATE INDEX customer_email_lower ON customer (lower(email));
CREATE VIEW gold AS SELECT id, email FROM customer WHERE tier = 'gold';
CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.placed_at := now(); RETURN NEW; END $$;
CREATE TRIGGER purchase_stamp BEFORE INSERT OR UPDATE ON purchase FOR EACH ROW EXECUTE FUNCTION stamp();
CREATE PROCEDURE promote(cid int) LANGUAGE sql AS $$ UPDATE customer SET tier = 'gold' WHERE id = cid $$;
";

#[test]
fn postgres_discovery_reads_constraints_indexes_views_routines_and_triggers() {
    let db = PgDatabase::create("catalog");
    db.client().batch_execute(SHOP).unwrap();
    let mut src = Source::open(&db.url, None).unwrap();
    let tables = src.tables().unwrap();
    let cat = src.catalog(&tables).unwrap();
    let customer = &cat.tables["customer"];
    assert_eq!(customer.defaults["tier"], "'basic'::text");
    assert!(customer.defaults["id"].starts_with("nextval("));
    assert_eq!(customer.unique.len(), 1);
    assert_eq!(customer.unique[0].columns, ["email"]);
    let checks: Vec<&str> = customer
        .checks
        .iter()
        .map(|c| c.expression.as_str())
        .collect();
    assert_eq!(checks.len(), 2, "{checks:?}");
    assert!(checks.iter().any(|c| c.contains("born >")), "{checks:?}");
    let expr = customer
        .indexes
        .iter()
        .find(|i| i.name == "customer_email_lower")
        .unwrap();
    assert_eq!(expr.columns, ["lower(email)"]);
    assert!(customer
        .indexes
        .iter()
        .any(|i| i.primary && i.columns == ["id"]));

    let purchase = &cat.tables["purchase"];
    assert_eq!(purchase.foreign_keys.len(), 1);
    let fk = &purchase.foreign_keys[0];
    assert_eq!(
        (
            fk.columns.as_slice(),
            fk.references.as_str(),
            fk.referenced_columns.as_slice(),
            fk.on_delete.as_str()
        ),
        (
            ["customer_id".to_string()].as_slice(),
            "customer",
            ["id".to_string()].as_slice(),
            "CASCADE"
        )
    );
    assert_eq!(purchase.unique[0].columns, ["customer_id", "placed_at"]);
    let by_amount = purchase
        .indexes
        .iter()
        .find(|i| i.name == "purchase_by_amount")
        .unwrap();
    assert_eq!(
        (by_amount.method.as_str(), by_amount.unique),
        ("btree", false)
    );
    assert_eq!(by_amount.columns, ["amount"]);
    assert!(
        by_amount.definition.contains("(amount DESC)"),
        "{}",
        by_amount.definition
    );

    assert_eq!(cat.views.len(), 1);
    assert!(cat.views[0].definition.contains("'gold'"));
    let kinds: Vec<(&str, &str, &str)> = cat
        .routines
        .iter()
        .map(|r| (r.name.as_str(), r.kind.as_str(), r.language.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("promote", "procedure", "sql"),
            ("stamp", "function", "plpgsql")
        ]
    );
    assert!(cat.routines[1].definition.contains("NEW.placed_at"));
    assert_eq!(cat.triggers.len(), 1);
    let t = &cat.triggers[0];
    assert_eq!(
        (
            t.name.as_str(),
            t.table.as_str(),
            t.timing.as_str(),
            t.events.as_str()
        ),
        ("purchase_stamp", "purchase", "BEFORE", "INSERT OR UPDATE")
    );
}

#[test]
fn postgres_values_without_an_arrow_counterpart_are_refused_by_name() {
    let db = PgDatabase::create("badvalues");
    db.client()
        .batch_execute(
            "CREATE TABLE spans (id int PRIMARY KEY, valid_to date);
             INSERT INTO spans VALUES (1, '2020-01-01'), (2, 'infinity');
             CREATE TABLE amounts (id int PRIMARY KEY, n numeric(10,2));
             INSERT INTO amounts VALUES (1, 1.5), (2, 'NaN');
             CREATE TABLE readings (id int PRIMARY KEY, x float8);
             INSERT INTO readings VALUES (1, 'Infinity'), (2, '-Infinity'), (3, 1.5);",
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Infinite dates and a NaN numeric: refused, naming table, column and value.
    let out = run(sensei()
        .arg("migrate")
        .args(["--source", &db.url, "--target"])
        .arg(format!("sqlite://{}", dir.path().join("a.db").display()))
        .arg("--workdir")
        .arg(dir.path().join("a"))
        .args(["--set", "scheduler.max_attempts=1"]));
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    let named = (err.contains("table spans, column valid_to") && err.contains("infinity"))
        || (err.contains("table amounts, column n") && err.contains("NaN"));
    assert!(named, "{err}");
    assert!(!dir.path().join("a.db").exists(), "nothing delivered");
    db.client()
        .batch_execute("UPDATE spans SET valid_to = '9999-12-31' WHERE id = 2; UPDATE amounts SET n = NULL WHERE id = 2;")
        .unwrap();
    // Infinite floats are IEEE values: they arrive as such.
    let target = dir.path().join("b.db");
    let out = run(sensei()
        .arg("migrate")
        .args(["--source", &db.url, "--target"])
        .arg(format!("sqlite://{}", target.display()))
        .arg("--workdir")
        .arg(dir.path().join("b")));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = rusqlite::Connection::open(&target).unwrap();
    let xs: Vec<f64> = c
        .prepare("SELECT x FROM readings ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(xs, [f64::INFINITY, f64::NEG_INFINITY, 1.5]);
    // NaN cannot be stored in SQLite (it would become NULL): refused by name.
    db.client()
        .batch_execute("INSERT INTO readings VALUES (4, 'NaN')")
        .unwrap();
    let out = run(sensei()
        .arg("migrate")
        .args(["--source", &db.url, "--target"])
        .arg(format!("sqlite://{}", dir.path().join("c.db").display()))
        .arg("--workdir")
        .arg(dir.path().join("c"))
        .args(["--set", "scheduler.max_attempts=1"]));
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("table readings, column x") && err.contains("NaN"),
        "{err}"
    );
    // MariaDB's DOUBLE has no NaN or infinity either: the load's warning
    // refuses the batch (the server would have stored 0 or its largest
    // double), naming table and column; nothing of the batch is kept.
    let my = MyDatabase::create("nan");
    let out = run(sensei()
        .arg("migrate")
        .args(["--source", &db.url, "--target", &my.url])
        .arg("--workdir")
        .arg(dir.path().join("d"))
        .args(["--set", "scheduler.max_attempts=1"]));
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("into table readings") && err.contains("`readings`.`x`"),
        "{err}"
    );
    // The failed staged load kept its staging database for inspection.
    assert_eq!(drop_mysql_staging(&dir.path().join("d")), 1);
    use mysql::prelude::Queryable;
    // Staged: the target database never saw the table; written in place
    // (a target that had it), it would hold none of the batch's rows.
    let mut c = my.conn();
    let there: Option<i64> = c
        .query_first("SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'readings'")
        .unwrap();
    if there == Some(1) {
        let kept: Option<i64> = c.query_first("SELECT count(*) FROM readings").unwrap();
        assert_eq!(kept, Some(0));
    }
}

#[test]
fn postgres_sessions_follow_the_configured_tls_mode() {
    use sensei_connectors::files::SourceOptions;
    let db = PgDatabase::create("tls");
    let ssl_of = |mode: &str| {
        let options = SourceOptions {
            ssl_mode: mode.into(),
            connect_timeout_s: 5,
            ..SourceOptions::default()
        };
        let mut source = Source::open_with(&db.url, None, &options).unwrap();
        let pg = source.engine::<PgSource>().expect("a postgres source");
        pg.query_text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .unwrap()
    };
    // This machine's server offers TLS with a self-signed certificate.
    assert_eq!(ssl_of("require").as_deref(), Some("true"));
    assert_eq!(ssl_of("prefer").as_deref(), Some("true"));
    assert_eq!(ssl_of("disable").as_deref(), Some("false"));
    // verify-full checks the certificate: a self-signed one is refused, clearly.
    let options = SourceOptions {
        ssl_mode: "verify-full".into(),
        ..SourceOptions::default()
    };
    let err = Source::open_with(&db.url, None, &options)
        .err()
        .expect("a self-signed certificate fails verification")
        .to_string();
    assert!(err.contains("connecting to postgresql://"), "{err}");
}

#[test]
fn a_source_connection_lost_mid_extraction_is_retried_and_nothing_is_lost() {
    let db = PgDatabase::create("lost");
    db.client()
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, g || repeat('x', 300) FROM generate_series(1, 40000) g;")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t.db");
    let work = dir.path().join("w");
    let child = sensei()
        .arg("migrate")
        .args(["--source", &db.url, "--target"])
        .arg(format!("sqlite://{}", target.display()))
        .arg("--workdir")
        .arg(&work)
        .args(["--set", "ingestion.partition_rows=20000", "--workers", "1"])
        .args(["--set", "ingestion.batch_pause_ms=400"])
        .args(["--set", "delivery.batch_pause_ms=400"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for a Scout's session to be in the middle of a COPY (a partition
    // is 6 MB, more than the socket buffers hold, and the Scout reads slowly),
    // then cut it; the oldest session is the head's, holding the snapshot.
    let mut admin = postgres::Client::connect(PG_ADMIN_URL, postgres::NoTls).unwrap();
    let mut cut = 0i64;
    wait_until(60, "a Scout session cut mid-COPY", || {
        cut = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE datname = $1 AND application_name = 'sensei' AND query LIKE 'COPY%' AND state = 'active'
                   AND backend_start > (SELECT min(backend_start) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'sensei')",
                &[&db.name],
            )
            .unwrap()
            .get(0);
        cut > 0
    });
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = rusqlite::Connection::open(&target).unwrap();
    let (n, distinct): (i64, i64) = c
        .query_row("SELECT count(*), count(DISTINCT id) FROM t", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((n, distinct), (40000, 40000), "every row exactly once");
    let retried = state_query(
        &work,
        "SELECT max(attempt) FROM tasks WHERE phase = 'ingestion'",
    )
    .unwrap();
    // The cut session is a Scout's (its partition is extracted again) or,
    // when the head is still sampling the table for planning, the head's
    // (its planning is retried).
    let head_retried = state_query(
        &work,
        "SELECT count(*) FROM events WHERE message LIKE 'transient failure, retrying%'",
    )
    .unwrap();
    assert!(
        retried >= 2 || head_retried >= 1,
        "the cut read was done again (task attempts {retried}, head retries {head_retried})"
    );
}

#[test]
fn a_configured_partition_key_splits_a_table_without_an_integer_key() {
    let db = PgDatabase::create("pkey");
    db.client()
        .batch_execute(
            "CREATE TABLE events (code uuid PRIMARY KEY, seq bigint, body text);
             INSERT INTO events SELECT md5(g::text)::uuid, CASE WHEN g % 50 = 0 THEN NULL ELSE g END, 'b' || g
             FROM generate_series(1, 3000) g;",
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t.db");
    let work = dir.path().join("w");
    let out = run(sensei()
        .arg("migrate")
        .args(["--source", &db.url, "--target"])
        .arg(format!("sqlite://{}", target.display()))
        .arg("--workdir")
        .arg(&work)
        .args([
            "--set",
            "ingestion.partition_rows=1000",
            "--set",
            "ingestion.partition_key=events.seq",
        ]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parts = state_query(
        &work,
        "SELECT count(*) FROM tasks WHERE phase = 'ingestion' AND table_name != 'ingestion:sample'",
    )
    .unwrap();
    assert_eq!(parts, 3, "ranges of seq, not one partition for a uuid key");
    let c = rusqlite::Connection::open(&target).unwrap();
    let (n, nulls): (i64, i64) = c
        .query_row(
            "SELECT count(DISTINCT code), sum(seq IS NULL) FROM events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((n, nulls), (3000, 60), "every row once, NULL keys included");
}

#[test]
fn diff_finds_every_changed_missing_and_extra_row_between_two_databases() {
    let a = PgDatabase::create("diff_a");
    let b = PgDatabase::create("diff_b");
    // `t` compares by per-type row hashes on the servers; `notes` holds a
    // json column (no hash function): by the hash of each row's text.
    let setup = "CREATE TABLE t (id bigint PRIMARY KEY, qty integer, price numeric(12,2), name text, at timestamp);
        INSERT INTO t SELECT i, i % 7, i * 1.25, md5(i::text), timestamp '2024-01-01' + i * interval '1 minute'
        FROM generate_series(1, 50000) i;
        CREATE TABLE notes (id bigint PRIMARY KEY, meta json);
        INSERT INTO notes SELECT i, json_build_object('n', i) FROM generate_series(1, 3000) i;";
    a.client().batch_execute(setup).unwrap();
    b.client().batch_execute(setup).unwrap();
    let diff = |extra: &[&str]| {
        let (code, t) = sensei_diff(&a.url, &b.url, 25_000, extra, &["t", "notes"]);
        (code, t[0].clone(), t[1].clone())
    };
    // Two chunks of 25,000 keys, one per worker; a differing one is cut in
    // parts of about 1,600 rows before any row is read.
    let (code, t, notes) = diff(&[]);
    assert_eq!(code, Some(0));
    assert_eq!(
        (t["rows_a"].as_u64(), t["rows_b"].as_u64()),
        (Some(50000), Some(50000))
    );
    assert_eq!(t["method"], "checksum", "{t}");
    assert_eq!(notes["method"], "checksum", "{notes}");
    assert_eq!(t["merkle_a"], "", "no row read, no Merkle root");
    let (code, t, _) = diff(&["--rows"]);
    assert_eq!(code, Some(0));
    assert_eq!(t["method"], "rows");
    assert_eq!(t["merkle_a"], t["merkle_b"]);
    assert_ne!(t["merkle_a"], "");

    b.client()
        .batch_execute(
            "UPDATE t SET name = 'changed' WHERE id = 25007;
             DELETE FROM t WHERE id = 40000;
             INSERT INTO t VALUES (90001, 1, 1.00, 'new', now());
             UPDATE notes SET meta = '{\"n\": -1}' WHERE id = 1234;",
        )
        .unwrap();
    // The same differences whether the servers compare checksums or every row is read.
    for extra in [&[][..], &["--rows"][..]] {
        let (code, t, notes) = diff(extra);
        assert_eq!(code, Some(2));
        let d = &t["diff"];
        assert_eq!(
            (
                d["changed"].as_u64(),
                d["missing"].as_u64(),
                d["extra"].as_u64()
            ),
            (Some(1), Some(1), Some(1)),
            "{extra:?}: {d}"
        );
        assert_eq!(
            (t["rows_a"].as_u64(), t["rows_b"].as_u64()),
            (Some(50000), Some(50000))
        );
        let examples = d["examples"].to_string();
        for key in ["id=25007", "id=40000", "id=90001"] {
            assert!(examples.contains(key), "{extra:?}: {key} named: {examples}");
        }
        assert!(examples.contains("changed"), "{examples}");
        assert_eq!(notes["diff"]["changed"], 1, "{extra:?}: {notes}");
        assert!(
            notes["diff"]["examples"].to_string().contains("id=1234"),
            "{notes}"
        );
    }
    let (_, t, _) = diff(&["--rows"]);
    assert_ne!(t["merkle_a"], t["merkle_b"]);
}
