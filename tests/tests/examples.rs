//! The examples as shipped: `examples/retail/migration.toml` (the README's
//! default run) and `examples/retail-mirror/migration.toml`, run with their
//! own files (schema, review file) against a freshly generated source.

use std::path::{Path, PathBuf};

use sensei_tests::*;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
        .join("migration.toml")
}

/// `sensei migrate <example>` with the source, target and working folder
/// moved into `dir`; everything else is the example's own configuration.
fn migrate_example(name: &str, dir: &Path, src: &Path) -> (std::process::Output, PathBuf) {
    let target = dir.join(format!("{name}-target.db"));
    let work = dir.join(format!("{name}-work"));
    let out = run(sensei()
        .arg("migrate")
        .arg(example(name))
        .arg("--set")
        .arg(format!("source.url=sqlite://{}", src.display()))
        .arg("--set")
        .arg(format!("target.url=sqlite://{}", target.display()))
        .arg("--workdir")
        .arg(&work));
    (out, work)
}

#[test]
fn the_default_example_maps_reviews_verifies_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let (out, work) = migrate_example("retail", dir.path(), &src);
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);

    // The summary a person reads: verdict, checks by kind, the mapping's
    // approvals, rows per table (renamed from their legacy sources),
    // differences, time per phase, the certificate and how to check it.
    for needle in [
        "verdict: PASS",
        "by kind: ",
        "row_equivalence 4 (4716 rows)",
        "query_replay 4 (",
        "approved by review",
        "reviewed by retail-example",
        "purchase_order.ordered_at <- orders.ord_ts (confidence ",
        "approved by retail-example: orders.ord_ts is the order's timestamp",
        "purchase_order.note <- orders.ord_note (confidence ",
        "customer (from customers)",
        "purchase_order (from orders)",
        "differences: none",
        "time: ingestion ",
        "certificate: ",
        "certificate verify ",
    ] {
        assert!(
            stdout.contains(needle),
            "summary lacks {needle:?}:\n{stdout}"
        );
    }
    let rows = stdout
        .lines()
        .find(|l| l.contains("order_line (from order_lines)"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(rows.ends_with("3096 -> 3096 -> 3096"), "{rows}");
    // Nothing here is for a person to act on: no warning at all.
    assert!(
        !stderr.contains("WARN") && !stderr.contains("warning"),
        "{stderr}"
    );

    // The review file's decision is in the spec with who and why, the
    // mapping is into the modern schema, and the printed command works.
    let mig = migration_with(&work, "certificate.json");
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mig.join("mapping.json")).unwrap()).unwrap();
    let ordered_at = spec["tables"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["columns"].as_array().unwrap())
        .find(|c| c["target"] == "ordered_at")
        .unwrap();
    assert_eq!(ordered_at["status"], "approved");

    // What the run wrote matches the golden files: the generated SQL of
    // every target table byte for byte, the shapes of the certificate's
    // payload and of the receipt.
    let mut sql: Vec<PathBuf> = std::fs::read_dir(mig.join("sql"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    sql.sort();
    assert_eq!(sql.len(), 4, "{sql:?}");
    for file in &sql {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        assert_golden(
            &format!("retail/sql/{name}"),
            &std::fs::read_to_string(file).unwrap(),
        );
    }
    let read = |name: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(mig.join(name)).unwrap()).unwrap()
    };
    let shape =
        |v: &serde_json::Value| serde_json::to_string_pretty(&json_shape(v)).unwrap() + "\n";
    assert_golden(
        "retail/certificate-payload.shape.json",
        &shape(&read("certificate.json")["payload"]),
    );
    assert_golden("retail/receipt.shape.json", &shape(&read("receipt.json")));
    assert_eq!(ordered_at["reviewed_by"], "retail-example");
    assert!(ordered_at["reasons"].to_string().contains("ord_ts"));
    let target = dir.path().join("retail-target.db");
    assert_eq!(
        tables(&target),
        ["customer", "order_line", "product", "purchase_order"]
    );
    let check = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("check it: "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let words: Vec<&str> = check.split_whitespace().collect();
    let verify = run(std::process::Command::new(words[0]).args(&words[1..]));
    assert_exit(&verify, 0);
    assert!(String::from_utf8_lossy(&verify.stdout).contains("matches table order_line"));

    // Run again: it says the migration ended, shows the same verdict, exits 0.
    let (again, _) = migrate_example("retail", dir.path(), &src);
    assert_exit(&again, 0);
    assert!(String::from_utf8_lossy(&again.stdout).contains("verdict: PASS"));
}

#[test]
fn the_mirror_example_keeps_legacy_names_and_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let (out, _) = migrate_example("retail-mirror", dir.path(), &src);
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("verdict: PASS"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("WARN"), "{stderr}");
    let target = dir.path().join("retail-mirror-target.db");
    assert_same_rows(&src, &target);
    // SQLite takes foreign keys only when a table is created: the mirror
    // creates them there, so the target enforces what the source declared.
    let conn = rusqlite::Connection::open(&target).unwrap();
    let fks: Vec<(String, String)> = ["orders", "order_lines"]
        .iter()
        .flat_map(|t| {
            let mut st = conn
                .prepare(&format!("PRAGMA foreign_key_list({t})"))
                .unwrap();
            st.query_map([], |r| Ok((t.to_string(), r.get::<_, String>(2)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        fks.contains(&("orders".into(), "customers".into())),
        "{fks:?}"
    );
    assert!(
        fks.contains(&("order_lines".into(), "orders".into())),
        "{fks:?}"
    );
    conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    let orphan = conn.execute(
        "INSERT INTO orders (ord_id, cust_id, ord_ts, ord_status, ord_total) VALUES (999999, 123456789, '2020-01-01', 'X', '1.00')",
        [],
    );
    assert!(orphan.is_err(), "an order of no customer was accepted");
    let check: Vec<String> = conn
        .prepare("PRAGMA foreign_key_check")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(check.is_empty(), "{check:?}");
}
