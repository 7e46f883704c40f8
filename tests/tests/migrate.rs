//! `sensei migrate` end to end in one process.

use sensei_tests::*;

#[test]
fn retail_migrates_and_certificate_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let target = dir.path().join("target.db");
    let cfg = write_config(
        dir.path(),
        &src,
        &target,
        "[ingestion]\npartition_rows = 400\n[delivery]\nbatch_rows = 250\n",
    );
    let out = run(sensei().arg("migrate").arg(&cfg));
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for word in ["manifest", "certificate", "receipt", "completed"] {
        assert!(stdout.contains(word), "summary lacks {word}: {stdout}");
    }
    assert_same_rows(&src, &target);

    let work = dir.path().join("work");
    let mig = std::fs::read_dir(&work)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with("retail-"))
        .expect("migration folder")
        .path();
    for f in [
        "manifest.json",
        "mapping.json",
        "lineage.json",
        "certificate.json",
        "receipt.json",
    ] {
        assert!(mig.join(f).exists(), "{f} missing");
    }
    let cert = mig.join("certificate.json");
    let pubkey = work.join("keys/signing.key.pub");
    assert_eq!(
        run(sensei()
            .args(["certificate", "verify"])
            .arg(&cert)
            .arg("--public-key")
            .arg(&pubkey))
        .status
        .code(),
        Some(0)
    );

    // The receipt's checksums equal the certificate's digests.
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(&cert).unwrap()).unwrap();
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mig.join("receipt.json")).unwrap()).unwrap();
    assert_eq!(c["payload"]["status"], "PASS");
    for (t, v) in c["payload"]["tables"].as_object().unwrap() {
        assert_eq!(r["tables"][t]["checksum"], v["digest"], "table {t}");
        assert_eq!(
            r["tables"][t]["merkle_root"], v["merkle_root"],
            "table {t}: the target read back has the certified Merkle root"
        );
        assert_eq!(v["merkle_root"].as_str().map(str::len), Some(64));
        assert_eq!(r["tables"][t]["matches_certificate"], true);
    }

    // The manifest carries each table's profile and PII flags.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mig.join("manifest.json")).unwrap()).unwrap();
    let customers = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "customers")
        .unwrap();
    assert_eq!(
        customers["profile"]["pii"]["cust_email"][0]["kind"],
        "email"
    );
    assert_eq!(
        customers["profile"]["pii"]["cust_dob"][0]["kind"],
        "date_of_birth"
    );
    assert!(customers["profile"]["pii"].get("cust_city").is_none());
    let products = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "products")
        .unwrap();
    assert!(
        products["profile"]["pii"].as_object().unwrap().is_empty(),
        "{}",
        products["profile"]["pii"]
    );
    assert_eq!(
        products["profile"]["columns"][1]["patterns"][0][0],
        "AAA99999"
    );

    // Each phase published its checkpoint on its topic; events flowed too.
    {
        use sensei_runtime::topic::{EmbeddedLog, EventLog, Topic};
        let log = EmbeddedLog::open(work.join("events")).unwrap();
        for topic in [
            Topic::IngestionComplete,
            Topic::TransformationComplete,
            Topic::VerificationComplete,
            Topic::DeliveryComplete,
        ] {
            let recs = log.read(topic, 0, 10).unwrap();
            assert_eq!(recs.len(), 1, "{} should carry one record", topic.name());
        }
        let manifest: serde_json::Value =
            serde_json::from_slice(&log.read(Topic::IngestionComplete, 0, 1).unwrap()[0].value)
                .unwrap();
        assert_eq!(manifest["tables"].as_array().unwrap().len(), 4);
        assert!(log.read(Topic::MigrationEvents, 0, 1000).unwrap().len() >= 8);
        // Every partition of every phase announced its completion.
        let done: Vec<serde_json::Value> = log
            .read(Topic::AgentCoordination, 0, 10_000)
            .unwrap()
            .iter()
            .map(|r| serde_json::from_slice(&r.value).unwrap())
            .collect();
        let transformed = done
            .iter()
            .filter(|d| d["event"] == "partition.complete" && d["phase"] == "transformation")
            .count();
        assert!(
            transformed >= 4,
            "one per transformed partition: {transformed}"
        );
        // `sensei events` prints this migration's events, one line each,
        // from the configuration file or the id and the working folder.
        let events = log.read(Topic::MigrationEvents, 0, 10_000).unwrap().len();
        let id = mig.file_name().unwrap().to_string_lossy().into_owned();
        for how in [
            vec![cfg.display().to_string()],
            vec![id.clone(), "--workdir".into(), work.display().to_string()],
        ] {
            let out = run(sensei().arg("events").args(&how));
            assert_exit(&out, 0);
            let printed = String::from_utf8_lossy(&out.stdout);
            assert_eq!(printed.lines().count(), events, "{printed}");
            assert!(printed.contains("migration"), "{printed}");
        }
        let out = run(sensei().args(["events", &id, "--workdir"]).arg(dir.path()));
        assert_ne!(out.status.code(), Some(0), "no event log there");
        // --follow prints what is there, then waits for more (until stopped).
        let mut child = sensei()
            .args(["events", &id, "--follow", "--workdir"])
            .arg(&work)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        assert!(child.try_wait().unwrap().is_none(), "--follow returned");
        kill(child.id(), "TERM");
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).lines().count(),
            events,
            "still following after 1.5 s, everything printed once"
        );
    }

    // An independent implementation (Python's `cryptography`, RFC 8785 by
    // hand) accepts the certificate too, and refuses it once a byte changes.
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/verify_certificate.py");
    let py = |file: &std::path::Path| {
        std::process::Command::new(sensei_tests::python())
            .arg(&script)
            .arg(file)
            .arg("--public-key")
            .arg(&pubkey)
            .output()
            .expect("the tests' python")
    };
    let ok = py(&cert);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    let text = std::fs::read_to_string(&cert).unwrap();
    let flipped = dir.path().join("flipped.json");
    let digest_at = text.find("\"digest\": \"").unwrap() + 11;
    let mut bytes = text.into_bytes();
    bytes[digest_at] = if bytes[digest_at] == b'0' { b'1' } else { b'0' };
    std::fs::write(&flipped, bytes).unwrap();
    assert_eq!(
        py(&flipped).status.code(),
        Some(1),
        "one changed byte is refused"
    );

    // The delivered data itself has the certified roots; a changed row does not.
    let data = |db: &std::path::Path| {
        run(sensei()
            .args(["certificate", "verify"])
            .arg(&cert)
            .arg("--data")
            .arg(format!("sqlite://{}", db.display())))
    };
    let ok = data(&target);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let t = rusqlite::Connection::open(&target).unwrap();
    let city: Option<String> = t
        .query_row(
            "SELECT cust_city FROM customers WHERE cust_id = 7",
            [],
            |r| r.get(0),
        )
        .unwrap();
    t.execute(
        "UPDATE customers SET cust_city = 'Nowhere' WHERE cust_id = 7",
        [],
    )
    .unwrap();
    let bad = data(&target);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stdout).contains("DIFFERS table customers"),
        "{}",
        String::from_utf8_lossy(&bad.stdout)
    );
    t.execute(
        "UPDATE customers SET cust_city = ?1 WHERE cust_id = 7",
        [city],
    )
    .unwrap();
    assert_eq!(
        data(&target).status.code(),
        Some(0),
        "restored, it matches again"
    );

    // One byte of the payload changed: verification fails.
    let text = std::fs::read_to_string(&cert).unwrap();
    let tampered = text.replacen("\"PASS\"", "\"PAST\"", 1);
    assert_ne!(text, tampered);
    let bad = dir.path().join("tampered.json");
    std::fs::write(&bad, tampered).unwrap();
    assert_eq!(
        run(sensei().args(["certificate", "verify"]).arg(&bad))
            .status
            .code(),
        Some(1)
    );

    // Running it again: already completed, nothing delivered twice.
    assert_eq!(
        run(sensei().arg("migrate").arg(&cfg)).status.code(),
        Some(0)
    );
    assert_same_rows(&src, &target);
}

#[test]
fn one_line_form_mirrors_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let target = dir.path().join("t.db");
    let out = run(sensei()
        .arg("migrate")
        .arg("--source")
        .arg(format!("sqlite://{}", src.display()))
        .arg("--target")
        .arg(format!("sqlite://{}", target.display()))
        .arg("--workdir")
        .arg(dir.path().join("w"))
        .arg("--workers")
        .arg("1"));
    assert_eq!(out.status.code(), Some(0));
    assert_same_rows(&src, &target);
}

#[test]
fn bad_input_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    // Not a SQLite database.
    let fake = dir.path().join("fake.db");
    std::fs::write(&fake, "id,name\n1,ada\n".repeat(50)).unwrap();
    let target = dir.path().join("t.db");
    let cfg = write_config(dir.path(), &fake, &target, "");
    let out = run(sensei().arg("migrate").arg(&cfg));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a SQLite database"));
    assert!(!target.exists(), "no partial target");

    // Missing source file.
    let cfg = write_config(dir.path(), &dir.path().join("nope.db"), &target, "");
    let out = run(sensei().arg("migrate").arg(&cfg));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.db"));

    // Target folder that does not exist.
    let src = retail_source(dir.path(), 1);
    let cfg = write_config(
        dir.path(),
        &src,
        std::path::Path::new("/nonexistent-folder/t.db"),
        "",
    );
    let out = run(sensei().arg("migrate").arg(&cfg));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent-folder"));

    // Malformed configuration: file, line and key.
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[source]\nurl = \"sqlite://x.db\"\n[delivery]\nbatch_size = 10\n",
    )
    .unwrap();
    let out = run(sensei().arg("migrate").arg(&cfg));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("line 4") && err.contains("batch_size"),
        "{err}"
    );

    // Missing configuration file.
    let out = run(sensei().arg("migrate").arg(dir.path().join("missing.toml")));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[test]
fn killed_migrate_resumes_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let target = dir.path().join("t.db");
    let cfg = write_config(
        dir.path(),
        &src,
        &target,
        "[ingestion]\npartition_rows = 300\n[delivery]\nbatch_rows = 50\n",
    );
    let work = dir.path().join("work");
    let mut child = sensei()
        .arg("migrate")
        .arg(&cfg)
        .args(["--set", "ingestion.batch_pause_ms=40"])
        .args(["--set", "delivery.batch_pause_ms=40"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it in the middle of delivery: some batches (of 50 rows) in the
    // ledger, not all (staged beside the target while verification runs).
    wait_until(120, "delivery to start", || {
        sqlite_ledger_rows(&target) >= 250
    });
    kill(child.id(), "KILL");
    let _ = child.wait();
    let done = state_query(
        &work,
        "SELECT count(*) FROM tasks WHERE phase = 'delivery' AND state = 'done'",
    )
    .unwrap_or(0);
    let total =
        state_query(&work, "SELECT count(*) FROM tasks WHERE phase = 'delivery'").unwrap_or(0);
    assert!(
        done < total,
        "the kill landed before delivery finished ({done}/{total})"
    );
    let out = run(sensei().arg("migrate").arg(&cfg));
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming"));
    assert_same_rows(&src, &target);
}

#[test]
fn a_target_that_already_held_rows_fails_the_post_delivery_check() {
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let target = dir.path().join("t.db");
    {
        let c = rusqlite::Connection::open(&target).unwrap();
        c.execute_batch(
            "CREATE TABLE products (prod_id INTEGER, prod_sku TEXT, prod_name TEXT, unit_price REAL, qty_on_hand INTEGER, discontinued BOOLEAN);
             INSERT INTO products VALUES (999999, 'SKU-OLD', 'left over', 1.0, 0, 0);",
        )
        .unwrap();
    }
    let cfg = write_config(dir.path(), &src, &target, "");
    let out = run(sensei().arg("migrate").arg(&cfg));
    assert_eq!(
        out.status.code(),
        Some(2),
        "the receipt must not match the certificate"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("post-delivery check"), "{stdout}");
    // Starting over explicitly after removing the stray row succeeds; nothing is delivered twice.
    {
        let c = rusqlite::Connection::open(&target).unwrap();
        c.execute("DELETE FROM products WHERE prod_id = 999999", [])
            .unwrap();
    }
    let out = run(sensei().arg("migrate").arg(&cfg).arg("--restart"));
    assert_eq!(out.status.code(), Some(0));
    assert_same_rows(&src, &target);
}

/// A source that changed after a completed migration could not be brought
/// back to equality: the ledger skipped every batch by key, even with
/// --restart, and the message blamed rows held before the migration with no
/// fix. `--resync` empties the target tables and delivers the current source,
/// exactly once.
#[test]
fn a_source_changed_after_delivery_is_resynced_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let target = dir.path().join("t.db");
    let cfg = write_config(dir.path(), &src, &target, "");
    assert_exit(&run(sensei().arg("migrate").arg(&cfg)), 0);
    {
        let c = rusqlite::Connection::open(&src).unwrap();
        c.execute_batch(
            "UPDATE products SET prod_name = 'renamed' WHERE prod_id = (SELECT min(prod_id) FROM products);
             INSERT INTO products (prod_id, prod_sku, prod_name, unit_price, qty_on_hand, discontinued)
               VALUES (777777, 'SKU-NEW', 'new since', 2.5, 3, 0);",
        )
        .unwrap();
    }
    // Starting over alone cannot fix it, and says what would.
    let out = run(sensei().arg("migrate").arg(&cfg).arg("--restart"));
    assert_exit(&out, 2);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("sensei migrate --resync"), "{said}");
    let out = run(sensei().arg("migrate").arg(&cfg).arg("--resync"));
    assert_exit(&out, 0);
    assert_same_rows(&src, &target);
    let c = rusqlite::Connection::open(&target).unwrap();
    let duplicated: i64 = c
        .query_row(
            "SELECT count(*) FROM (SELECT migration_id, partition_id, batch_seq FROM sensei_delivery_ledger
              GROUP BY 1, 2, 3 HAVING count(*) > 1)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(duplicated, 0, "one ledger row per batch");
    // Run again: nothing changes, nothing is written twice.
    assert_exit(&run(sensei().arg("migrate").arg(&cfg).arg("--resync")), 0);
    assert_same_rows(&src, &target);
}

#[test]
fn a_target_schema_file_shapes_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let target = dir.path().join("t.db");
    let ddl = dir.path().join("target.sql");
    std::fs::write(
        &ddl,
        "CREATE TABLE customers (cust_id INTEGER PRIMARY KEY, cust_fname TEXT NOT NULL, cust_lname TEXT NOT NULL,
            cust_email TEXT, cust_dob TEXT, cust_phone TEXT, cust_city TEXT, created_ts TEXT NOT NULL,
            migrated_by TEXT NOT NULL DEFAULT 'sensei');",
    )
    .unwrap();
    let out = run(sensei()
        .arg("migrate")
        .arg("--source")
        .arg(format!("sqlite://{}", src.display()))
        .arg("--target")
        .arg(format!("sqlite://{}", target.display()))
        .arg("--target-schema")
        .arg(&ddl)
        .arg("--workdir")
        .arg(dir.path().join("w"))
        // migrated_by has no source: its default waits for review.
        .arg("--approve-all"));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        tables(&target),
        ["customers"],
        "only what the target schema declares"
    );
    let c = rusqlite::Connection::open(&target).unwrap();
    let n: i64 = c
        .query_row(
            "SELECT count(*) FROM customers WHERE migrated_by = 'sensei'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        n, 500,
        "rows landed in the table the DDL created, defaults applied"
    );

    // A schema file that is missing is refused before any work.
    let out = run(sensei()
        .arg("migrate")
        .arg("--source")
        .arg(format!("sqlite://{}", src.display()))
        .arg("--target")
        .arg(format!("sqlite://{}", dir.path().join("t2.db").display()))
        .arg("--target-schema")
        .arg(dir.path().join("missing.sql"))
        .arg("--workdir")
        .arg(dir.path().join("w2")));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.sql"));
    assert!(!dir.path().join("t2.db").exists());
}

#[test]
fn ingest_runs_phase_one_alone_and_migrate_continues_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let target = dir.path().join("t.db");
    let cfg = write_config(
        dir.path(),
        &src,
        &target,
        "[ingestion]\npartition_rows = 400\n",
    );
    let out = run(sensei().arg("ingest").arg(&cfg));
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ingestion complete"));
    let work = dir.path().join("work");
    assert_eq!(
        state_query(&work, "SELECT count(*) FROM checkpoints").unwrap(),
        1
    );
    assert_eq!(
        state_query(
            &work,
            "SELECT count(*) FROM tasks WHERE phase != 'ingestion'"
        )
        .unwrap(),
        0
    );
    assert!(
        !target.exists(),
        "ingestion alone writes nothing to the target"
    );
    let out = run(sensei().arg("migrate").arg(&cfg));
    assert_eq!(out.status.code(), Some(0));
    assert_same_rows(&src, &target);
    let ingest_tasks = state_query(
        &work,
        "SELECT count(*) FROM tasks WHERE phase = 'ingestion' AND attempt = 1",
    )
    .unwrap();
    let all_ingest = state_query(
        &work,
        "SELECT count(*) FROM tasks WHERE phase = 'ingestion'",
    )
    .unwrap();
    assert_eq!(ingest_tasks, all_ingest, "ingestion was not redone");
}

#[test]
fn wide_rows_are_split_by_the_byte_limit() {
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let target = dir.path().join("t.db");
    let cfg = write_config(
        dir.path(),
        &src,
        &target,
        "[ingestion]\npartition_rows = 100000\npartition_bytes = 40000\n",
    );
    assert_eq!(run(sensei().arg("ingest").arg(&cfg)).status.code(), Some(0));
    let work = dir.path().join("work");
    let parts = state_query(
        &work,
        "SELECT count(*) FROM tasks WHERE phase = 'ingestion' AND table_name = 'customers'",
    )
    .unwrap();
    assert!(
        parts >= 2,
        "500 customers over a 40 kB limit need several partitions, got {parts}"
    );
    let rows = state_query(
        &work,
        "SELECT sum(json_extract(result_json, '$.rows')) FROM tasks WHERE phase = 'ingestion' AND table_name = 'customers'",
    )
    .unwrap();
    assert_eq!(rows, 500);
    assert_eq!(
        run(sensei().arg("migrate").arg(&cfg)).status.code(),
        Some(0)
    );
    assert_same_rows(&src, &target);
}

#[test]
fn a_parquet_folder_target_holds_every_batch_once_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let out_dir = dir.path().join("out");
    let target = format!("parquet://{}", out_dir.display());
    let migrate = || {
        run(sensei()
            .arg("migrate")
            .arg("--source")
            .arg(format!("sqlite://{}", src.display()))
            .arg("--target")
            .arg(&target)
            .arg("--workdir")
            .arg(dir.path().join("w"))
            .args(["--set", "delivery.batch_rows=100"]))
    };
    let out = migrate();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mig = migration_with(&dir.path().join("w"), "receipt.json");
    let receipt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mig.join("receipt.json")).unwrap()).unwrap();
    for (t, r) in receipt["tables"].as_object().unwrap() {
        assert_eq!(r["matches_certificate"], true, "{t}: {r}");
    }
    let files = |t: &str| std::fs::read_dir(out_dir.join(t)).unwrap().count();
    let orders = files("orders");
    assert!(orders > 1, "one file per batch");
    let cert = mig.join("certificate.json");
    let verify = || {
        run(sensei()
            .args(["certificate", "verify"])
            .arg(&cert)
            .arg("--data")
            .arg(&target))
    };
    assert_eq!(verify().status.code(), Some(0));
    // One batch's file lost: the certificate no longer matches.
    let victim = std::fs::read_dir(out_dir.join("orders"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    std::fs::remove_file(&victim).unwrap();
    let bad = verify();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("DIFFERS table orders"));
}

/// Thousands of partitions: the scheduler leased each task with a sort of
/// every pending task and the head read every task's result ten times a
/// second, so a 4,716-row table in 2,358 partitions was not ingested after
/// ten minutes. It now migrates whole (about 20 s in a debug build here).
#[test]
fn a_table_in_thousands_of_partitions_migrates() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    {
        let c = rusqlite::Connection::open(&src).unwrap();
        c.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, v REAL);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4716)
             INSERT INTO t SELECT i, 'n' || i, i * 0.5 FROM n;",
        )
        .unwrap();
    }
    let target = dir.path().join("t.db");
    let out = run(sensei()
        .args(["migrate", "--source"])
        .arg(format!("sqlite://{}", src.display()))
        .arg("--target")
        .arg(format!("sqlite://{}", target.display()))
        .arg("--workdir")
        .arg(dir.path().join("w"))
        .args(["--set", "ingestion.partition_rows=2"]));
    assert_exit(&out, 0);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ingestion 2359/2359"),
        "2,358 partitions and the row-size sample"
    );
    assert_same_rows(&src, &target);
}

/// Phases hand off through the topics: before a phase is planned, the
/// migration's consumer group (`sensei-<id>`) reads its predecessor's
/// completion record and commits past it; a record lost between the
/// checkpoint and its publication (here: the topic file emptied after
/// ingestion) is published again, with a warning, and the migration goes on.
#[test]
fn phases_hand_off_through_the_topics_and_a_lost_record_is_published_again() {
    use sensei_runtime::topic::{EmbeddedLog, EventLog, Topic};
    let setup = RetailSetup::new("");
    let (src, target, cfg, work) = (&setup.src, &setup.target, &setup.cfg, setup.work());
    assert_exit(&run(sensei().arg("ingest").arg(cfg)), 0);
    let lost = work.join("events/ingestion.complete.log");
    assert!(std::fs::metadata(&lost).unwrap().len() > 0);
    std::fs::write(&lost, b"").unwrap();
    let out = run(sensei().arg("migrate").arg(cfg));
    assert_exit(&out, 0);
    assert_same_rows(src, target);
    let log = EmbeddedLog::open(work.join("events")).unwrap();
    let id = migration_with(&work, "receipt.json")
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let group = format!("sensei-{id}");
    let again = log.read(Topic::IngestionComplete, 0, 10).unwrap();
    assert_eq!(again.len(), 1, "the manifest published again, once");
    for (topic, records) in [
        (Topic::IngestionComplete, 1),
        (Topic::TransformationComplete, 1),
        (Topic::VerificationComplete, 1),
    ] {
        assert_eq!(
            log.committed(&group, topic).unwrap(),
            records,
            "{}: the hand-off committed past its record",
            topic.name()
        );
    }
    let warned = log
        .read(Topic::MigrationEvents, 0, 10_000)
        .unwrap()
        .iter()
        .any(|r| String::from_utf8_lossy(&r.value).contains("published it again"));
    assert!(warned);
}

/// `sensei` starts itself again with glibc's malloc arenas capped at two
/// (peak memory: freed memory stays in per-thread arenas), and leaves a
/// value the user set alone.
#[test]
fn sensei_runs_with_two_malloc_arenas_unless_told_otherwise() {
    let environ_of = |extra: Option<&str>| -> String {
        let setup = RetailSetup::new("[ingestion]\npartition_rows = 300\nbatch_pause_ms = 200\n");
        let mut cmd = sensei();
        cmd.arg("migrate")
            .arg(&setup.cfg)
            .env_remove("MALLOC_ARENA_MAX")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(v) = extra {
            cmd.env("MALLOC_ARENA_MAX", v);
        }
        let mut child = cmd.spawn().unwrap();
        let path = format!("/proc/{}/environ", child.id());
        let mut seen = String::new();
        wait_until(20, "the migration running with its environment", || {
            seen = std::fs::read(&path)
                .map(|b| String::from_utf8_lossy(&b).replace('\0', "\n"))
                .unwrap_or_default();
            seen.lines().any(|l| l.starts_with("MALLOC_ARENA_MAX="))
        });
        let _ = child.kill();
        let _ = child.wait();
        seen
    };
    assert!(environ_of(None).lines().any(|l| l == "MALLOC_ARENA_MAX=2"));
    assert!(environ_of(Some("4"))
        .lines()
        .any(|l| l == "MALLOC_ARENA_MAX=4"));
}
