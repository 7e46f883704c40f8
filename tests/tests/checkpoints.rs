//! Checkpoints and time travel: the query suite replayed on recorded pairs
//! of source and target checkpoints while the source keeps changing.

use sensei_tests::*;

fn code(out: &std::process::Output) -> Option<i32> {
    out.status.code()
}

#[test]
fn the_suite_replays_on_any_recorded_checkpoint_pair() {
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let target = dir.path().join("t.db");
    let queries = dir.path().join("q.sql");
    std::fs::write(
        &queries,
        "SELECT ord_status, count(*) FROM orders GROUP BY ord_status",
    )
    .unwrap();
    let cfg = write_config(
        dir.path(),
        &src,
        &target,
        &format!("[verification]\nqueries_file = \"{}\"\n", queries.display()),
    );
    let out = run(sensei().arg("migrate").arg(&cfg));
    assert_eq!(
        code(&out),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Source 0 (the migration's ingestion) against target 0 (its transformation).
    let out = run(sensei().args(["checkpoint", "replay"]).arg(&cfg));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        code(&out),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("pass         q1"), "{text}");
    assert!(text.contains("pass         rows orders"), "{text}");
    assert!(text.contains("fk_coverage order_lines"), "{text}");

    // The source moves on: one more order, one status changed.
    let c = rusqlite::Connection::open(&src).unwrap();
    c.execute_batch(
        "INSERT INTO orders SELECT max(ord_id) + 1, 1, '2024-05-01 10:00:00', 'NEW', 10.00, NULL FROM orders;
         UPDATE orders SET ord_status = 'CANCELLED' WHERE ord_id = 3;",
    )
    .unwrap();
    drop(c);
    let out = run(sensei().args(["checkpoint", "take"]).arg(&cfg));
    assert_eq!(
        code(&out),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("source checkpoint 1"));

    // The new source against the old target: the drift is named.
    let out = run(sensei()
        .args(["checkpoint", "replay", "--source-checkpoint", "1"])
        .arg(&cfg));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(code(&out), Some(2), "{text}");
    assert!(text.contains("fail         rows orders"), "{text}");
    assert!(text.contains("fail         q1"), "{text}");
    assert!(text.contains("pass         rows customers"), "{text}");
    let doc: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            migration_with(&dir.path().join("work"), "checkpoints/replay-s1-t0.json")
                .join("checkpoints/replay-s1-t0.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(doc["status"], "FAIL");
    assert_eq!(doc["source_checkpoint"]["n"], 1);

    // The delivered target as a checkpoint agrees with the source it came from.
    let out = run(sensei()
        .args(["checkpoint", "take", "--delivered"])
        .arg(&cfg));
    assert_eq!(
        code(&out),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(sensei()
        .args(["checkpoint", "replay", "--target-checkpoint", "1"])
        .arg(&cfg));
    assert_eq!(
        code(&out),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // At intervals: two more source checkpoints, a second apart.
    let out = run(sensei()
        .args(["checkpoint", "take", "--count", "2", "--every", "1"])
        .arg(&cfg));
    assert_eq!(
        code(&out),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(sensei().args(["checkpoint", "list"]).arg(&cfg));
    let list = String::from_utf8_lossy(&out.stdout).to_string();
    for line in [
        "source 0", "source 1", "source 2", "source 3", "target 0", "target 1",
    ] {
        assert!(list.contains(line), "{line}: {list}");
    }
    let times: Vec<&str> = list
        .lines()
        .filter(|l| l.starts_with("source "))
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
}

/// A delivered PostgreSQL target (in a schema of its own) taken as a target
/// checkpoint: its tables streamed back into Parquet files, and the suite
/// replayed on that pair agrees; the same read-back checks the certificate
/// against the database (`certificate verify --data`).
#[test]
fn a_postgres_target_is_taken_as_a_checkpoint() {
    let db = PgDatabase::create("cp");
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let cfg = dir.path().join("m.toml");
    std::fs::write(
        &cfg,
        format!(
            "[migration]\nname = \"retail\"\n[source]\nurl = \"sqlite://{}\"\n[target]\nurl = \"{}\"\nnamespace = \"shop\"\n[runtime]\nworkdir = \"{}\"\n",
            src.display(),
            db.url,
            dir.path().join("work").display()
        ),
    )
    .unwrap();
    let out = run(sensei().arg("migrate").arg(&cfg));
    assert_exit(&out, 0);
    let out = run(sensei()
        .args(["checkpoint", "take", "--delivered"])
        .arg(&cfg));
    assert_exit(&out, 0);
    let taken = migration_with(&dir.path().join("work"), "checkpoints/target-1");
    let rows: u64 = RETAIL_TABLES
        .iter()
        .map(|t| {
            let file = std::fs::File::open(taken.join(format!("checkpoints/target-1/{t}.parquet")))
                .unwrap();
            parquet::file::reader::FileReader::metadata(
                &parquet::file::serialized_reader::SerializedFileReader::new(file).unwrap(),
            )
            .file_metadata()
            .num_rows() as u64
        })
        .sum();
    let expected: i64 = retail_counts(&src).iter().map(|(_, n)| n).sum();
    assert_eq!(rows as i64, expected);
    let out = run(sensei()
        .args(["checkpoint", "replay", "--target-checkpoint", "1"])
        .arg(&cfg));
    assert_eq!(
        code(&out),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let cert =
        migration_with(&dir.path().join("work"), "certificate.json").join("certificate.json");
    let out = run(sensei()
        .args(["certificate", "verify"])
        .arg(&cert)
        .arg("--data")
        .arg(&db.url));
    assert_exit(&out, 0);
}
