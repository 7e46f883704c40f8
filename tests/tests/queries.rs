//! Cross-table verification end to end: queries written against the legacy
//! retail schema, rewritten through the mapping onto the modern one; the
//! foreign-key coverage of the source; referential integrity between target
//! tables. A row dropped from a parent table is caught by both, naming the
//! orphans; a query that cannot be rewritten makes the certificate
//! INCONCLUSIVE.

use std::path::{Path, PathBuf};

use sensei_tests::*;

fn migrate(
    dir: &Path,
    queries: &str,
    mutate: Option<(&str, &str)>,
) -> (Option<i32>, serde_json::Value) {
    let src = retail_source(dir, 1);
    let file = dir.join("queries.sql");
    std::fs::write(&file, queries).unwrap();
    let cfg = dir.join("m.toml");
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/retail/schema.sql");
    std::fs::write(
        &cfg,
        format!(
            "[source]\nurl = \"sqlite://{}\"\n[target]\nurl = \"sqlite://{}\"\nschema = \"{}\"\n[runtime]\nworkdir = \"{}\"\n[transformation]\napprove_all = true\n[verification]\nqueries_file = \"{}\"\n",
            src.display(),
            dir.join("t.db").display(),
            schema.display(),
            dir.join("w").display(),
            file.display()
        ),
    )
    .unwrap();
    let mut cmd = match mutate {
        Some((kind, table)) => sensei_with_fault(&format!("{kind}@{table}")),
        None => sensei(),
    };
    let out = run(cmd.arg("migrate").arg(&cfg));
    let mig: PathBuf = std::fs::read_dir(dir.join("w"))
        .unwrap()
        .flatten()
        .find(|e| e.path().join("certificate.json").exists())
        .unwrap_or_else(|| panic!("no certificate: {}", String::from_utf8_lossy(&out.stderr)))
        .path();
    let cert: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mig.join("certificate.json")).unwrap()).unwrap();
    (out.status.code(), cert)
}

fn checks<'a>(cert: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    cert["payload"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == kind)
        .collect()
}

const QUERIES: &str = "
SELECT ord_status, count(*), sum(ord_total) FROM orders GROUP BY ord_status;
SELECT c.cust_city, count(o.ord_id) FROM customers c JOIN orders o ON o.cust_id = c.cust_id GROUP BY c.cust_city;
SELECT max(ord_ts), min(created_ts) FROM orders, customers WHERE orders.cust_id = customers.cust_id;
";

#[test]
fn source_queries_are_rewritten_through_the_mapping_and_agree() {
    let dir = tempfile::tempdir().unwrap();
    let (code, cert) = migrate(dir.path(), QUERIES, None);
    assert_eq!(code, Some(0), "{}", cert["payload"]);
    assert_eq!(cert["payload"]["status"], "PASS");
    let user = checks(&cert, "source_query");
    assert_eq!(user.len(), 3);
    for q in &user {
        assert_eq!(q["result"], "pass", "{q}");
    }
    let join = user[1]["target_sql"].as_str().unwrap();
    assert!(
        join.contains("\"customer\" c")
            && join.contains("c.\"city\"")
            && join.contains("o.\"customer_id\""),
        "rewritten onto the target schema: {join}"
    );
    // Three foreign keys in the source; each one's coverage agrees, and the
    // target's three declared keys hold.
    let coverage = checks(&cert, "fk_coverage");
    assert_eq!(coverage.len(), 3, "{coverage:?}");
    assert!(coverage.iter().all(|c| c["result"] == "pass"));
    let ri = checks(&cert, "referential_integrity");
    assert_eq!(ri.len(), 3, "{ri:?}");
    for c in &ri {
        assert_eq!(c["result"], "pass", "{c}");
        assert_eq!(c["orphans"], 0);
        assert!(c["rows"].as_u64().unwrap() > 0, "{c}");
    }
}

#[test]
fn a_dropped_parent_row_is_caught_across_tables() {
    let dir = tempfile::tempdir().unwrap();
    let (code, cert) = migrate(dir.path(), QUERIES, Some(("delete", "customer")));
    assert_eq!(code, Some(2), "{}", cert["payload"]);
    let ri = checks(&cert, "referential_integrity");
    let broken = ri
        .iter()
        .find(|c| c["table"] == "purchase_order")
        .expect("purchase_order -> customer");
    assert_eq!(broken["result"], "fail", "{broken}");
    assert!(broken["orphans"].as_u64().unwrap() >= 1);
    assert!(
        broken["orphan_keys"][0]
            .as_str()
            .unwrap()
            .starts_with("customer_id="),
        "{broken}"
    );
    // The source's coverage (every order has its customer) no longer agrees.
    let cov = checks(&cert, "fk_coverage");
    let orders = cov
        .iter()
        .find(|c| {
            c["table"]
                .as_str()
                .unwrap()
                .starts_with("fk_coverage orders")
        })
        .unwrap();
    assert_eq!(orders["result"], "fail", "{orders}");
}

#[test]
fn a_query_that_cannot_be_rewritten_is_inconclusive() {
    let dir = tempfile::tempdir().unwrap();
    let (code, cert) = migrate(
        dir.path(),
        "SELECT count(*) FROM orders; SELECT * FROM orders WHERE ord_id = 1",
        None,
    );
    assert_eq!(code, Some(3), "{}", cert["payload"]);
    assert_eq!(cert["payload"]["status"], "INCONCLUSIVE");
    let user = checks(&cert, "source_query");
    assert_eq!(user[0]["result"], "pass");
    assert_eq!(user[1]["result"], "inconclusive");
    assert!(
        user[1]["detail"]
            .as_str()
            .unwrap()
            .contains("name the columns"),
        "{}",
        user[1]
    );
}
