//! The certificate is judged on what it catches: a transformed partition
//! corrupted in each of the ways a faulty worker or disk could (injected
//! after the Worker's SQL ran) makes verification FAIL, naming the table and
//! the key of the row; a change within tolerance passes.

use sensei_tests::*;

fn run_with(mutation: &str, table: &str) -> (Option<i32>, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let target = dir.path().join("t.db");
    let cfg = write_config(dir.path(), &src, &target, "");
    let out = run(sensei()
        .arg("migrate")
        .arg(&cfg)
        .env("SENSEI_TEST_MUTATE", mutation)
        .env("SENSEI_TEST_MUTATE_TABLE", table));
    let mig = std::fs::read_dir(dir.path().join("work"))
        .unwrap()
        .flatten()
        .find(|e| e.path().join("certificate.json").exists())
        .unwrap_or_else(|| {
            panic!(
                "{mutation} on {table}: no certificate: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .path();
    let cert: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mig.join("certificate.json")).unwrap()).unwrap();
    if out.status.code() == Some(2) {
        assert!(
            !target.exists() || tables(&target).is_empty(),
            "FAIL delivers nothing"
        );
    }
    (out.status.code(), cert)
}

fn row_check<'a>(cert: &'a serde_json::Value, table: &str) -> &'a serde_json::Value {
    cert["payload"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "row_equivalence" && c["table"] == table)
        .expect("a row_equivalence check")
}

#[test]
fn every_corruption_fails_naming_table_and_key() {
    for (mutation, table, field, key) in [
        ("delete", "customers", "missing", "cust_id="),
        ("duplicate", "customers", "extra", "cust_id="),
        ("swap", "customers", "changed", "cust_id="),
        ("truncate", "products", "changed", "prod_id="),
        ("timestamp:2000", "orders", "changed", "ord_id="),
        ("number:1", "orders", "changed", "ord_id="),
        ("null", "customers", "changed", "cust_id="),
    ] {
        let (code, cert) = run_with(mutation, table);
        assert_eq!(code, Some(2), "{mutation} on {table} must FAIL");
        assert_eq!(cert["payload"]["status"], "FAIL", "{mutation}");
        let check = row_check(&cert, table);
        assert_eq!(check["result"], "fail", "{mutation}: {check}");
        assert!(check[field].as_u64().unwrap() >= 1, "{mutation}: {check}");
        let first = check["differences"][0].as_str().unwrap_or_default();
        assert!(
            first.contains(key),
            "{mutation}: the difference names the key: {first}"
        );
        for other in ["customers", "products", "orders", "order_lines"] {
            if other != table {
                assert_eq!(
                    row_check(&cert, other)["result"],
                    "pass",
                    "{mutation}: {other}"
                );
            }
        }
    }
}

#[test]
fn a_change_within_tolerance_passes() {
    let (code, cert) = run_with("timestamp:200", "orders");
    assert_eq!(code, Some(0), "{}", cert["payload"]);
    assert_eq!(cert["payload"]["status"], "PASS");
    let check = row_check(&cert, "orders");
    assert_eq!(check["within_tolerance"], 1, "{check}");
    assert_eq!(check["changed"], 0);
}
