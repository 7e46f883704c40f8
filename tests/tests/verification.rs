//! The certificate is judged on what it catches: a transformed partition
//! corrupted in each of the ways a faulty worker or disk could (injected
//! after the Worker's SQL ran) makes verification FAIL, naming the table and
//! the key of the row; a change within tolerance passes.

use sensei_tests::*;

fn run_with(mutation: &str, table: &str) -> (Option<i32>, serde_json::Value) {
    run_with_config(mutation, table, "")
}

fn run_with_config(mutation: &str, table: &str, extra: &str) -> (Option<i32>, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let target = dir.path().join("t.db");
    let cfg = write_config(dir.path(), &src, &target, extra);
    // Delivered in place, after the certificate: a staged load beside
    // verification would meet some corruptions first (a duplicated key
    // breaks the staged table's primary key and halts the migration before
    // the certificate is written); these tests are about the certificate.
    let out = run(sensei_with_fault(&format!("{mutation}@{table}"))
        .arg("migrate")
        .arg(&cfg)
        .args(["--set", "delivery.staging=false"]));
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
    // The generated query suite agrees too (max and mean of the shifted column within 1 s).
    let replay = replay_check(&cert, "orders");
    assert_eq!(replay["result"], "pass", "{replay}");
    assert!(replay["queries"].as_u64().unwrap() >= 10, "{replay}");
    let dist = cert["payload"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "distributions" && c["table"] == "orders")
        .expect("a distributions check");
    assert_eq!(dist["result"], "pass", "{dist}");
    let ord_ts = dist["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["column"] == "ord_ts")
        .unwrap();
    assert_eq!(ord_ts["test"], "ks");
    assert_ne!(
        ord_ts["statistic"], "0.000000",
        "one shifted value moves the distribution a little"
    );
}

#[test]
fn a_distribution_that_moves_fails() {
    // One first name re-cased: equal under the normalized string mode, but the
    // text's value frequencies move (1 in 500), past a strict TVD threshold.
    let (code, cert) = run_with_config(
        "recase",
        "customers",
        "[verification]\ntvd_threshold = 0.0001\nstring_mode = \"normalized\"\n",
    );
    assert_eq!(code, Some(2), "{}", cert["payload"]);
    let dist = cert["payload"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "distributions" && c["table"] == "customers")
        .unwrap();
    assert_eq!(dist["result"], "fail", "{dist}");
}

fn replay_check<'a>(cert: &'a serde_json::Value, table: &str) -> &'a serde_json::Value {
    cert["payload"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "query_replay" && c["table"] == table)
        .expect("a query_replay check")
}

#[test]
fn the_query_replay_sees_a_changed_aggregate() {
    // Large enough to move the column's sum beyond the relative tolerance
    // (a change of 1 in a sum of millions is within it, and is left to the
    // row-level check, which catches it).
    let (code, cert) = run_with("number:100000", "orders");
    assert_eq!(code, Some(2));
    let replay = replay_check(&cert, "orders");
    assert_eq!(replay["result"], "fail", "{replay}");
    let first = replay["failures"][0].as_str().unwrap_or_default();
    assert!(
        first.contains("ord_total"),
        "the failing query names the column: {first}"
    );
    assert_eq!(replay_check(&cert, "customers")["result"], "pass");
}

fn run_with_suites(
    suites: &[(&str, serde_json::Value)],
) -> (Option<i32>, serde_json::Value, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let target = dir.path().join("t.db");
    let gx = dir.path().join("gx");
    std::fs::create_dir(&gx).unwrap();
    for (table, suite) in suites {
        std::fs::write(gx.join(format!("{table}.json")), suite.to_string()).unwrap();
    }
    let cfg = write_config(
        dir.path(),
        &src,
        &target,
        &format!("[verification]\nexpectations_dir = \"{}\"\n", gx.display()),
    );
    let out = run(sensei().arg("migrate").arg(&cfg));
    let mig = migration_with(&dir.path().join("work"), "certificate.json");
    let cert: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mig.join("certificate.json")).unwrap()).unwrap();
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mig.join("expectations.json")).unwrap()).unwrap();
    (out.status.code(), cert, results)
}

#[test]
fn great_expectations_suites_are_evaluated_in_both_layouts() {
    use serde_json::json;
    let customers = json!({"name": "customers", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "cust_id"}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "cust_id"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "cust_id", "min_value": 1, "max_value": 500}},
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "cust_email", "regex": "^[^@ ]+@[^@ ]+$"}},
        {"type": "expect_column_value_lengths_to_be_between", "kwargs": {"column": "cust_fname", "min_value": 1, "max_value": 40}},
        {"type": "expect_column_values_to_be_of_type", "kwargs": {"column": "cust_id", "type_": "int64"}},
        {"type": "expect_table_row_count_to_equal", "kwargs": {"value": 500}},
        {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": ["cust_id", "cust_fname", "cust_lname", "cust_email", "cust_dob", "cust_phone", "cust_city", "created_ts"]}},
        {"type": "expect_column_min_to_be_between", "kwargs": {"column": "cust_id", "min_value": 1, "max_value": 1}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "cust_phone", "mostly": 0.5}, "meta": {"notes": "phones are optional"}}
    ]});
    let orders = json!({"expectation_suite_name": "orders", "expectations": [
        {"expectation_type": "expect_column_values_to_be_in_set", "kwargs": {"column": "ord_status", "value_set": ["NEW", "PAID", "SHIPPED", "DELIVERED", "RETURNED", "CANCELLED"]}},
        {"expectation_type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["ord_id", "cust_id"]}},
        {"expectation_type": "expect_column_mean_to_be_between", "kwargs": {"column": "ord_total", "min_value": 0, "max_value": 1000000}},
        {"expectation_type": "expect_column_sum_to_be_between", "kwargs": {"column": "ord_total", "min_value": 0}},
        {"expectation_type": "expect_column_max_to_be_between", "kwargs": {"column": "ord_id", "min_value": 1}},
        {"expectation_type": "expect_table_row_count_to_equal_other_table", "kwargs": {"other_table_name": "orders"}}
    ]});
    let (code, cert, results) =
        run_with_suites(&[("customers", customers.clone()), ("orders", orders)]);
    assert_eq!(code, Some(0), "{results}");
    assert_eq!(cert["payload"]["status"], "PASS");
    assert_eq!(
        results["customers"]["statistics"]["evaluated_expectations"],
        10
    );
    assert_eq!(
        results["orders"]["statistics"]["successful_expectations"],
        6
    );
    assert!(cert["payload"]["evidence_sha256"]["expectations.json"].is_string());
    assert!(cert["payload"]["evidence_sha256"]["sql/orders.sql"].is_string());

    // One expectation broken (phones required everywhere; a row count that is off): FAIL.
    let mut strict = customers;
    strict["expectations"][9]["kwargs"]["mostly"] = json!(1.0);
    let lines = json!({"name": "order_lines", "expectations": [
        {"type": "expect_table_row_count_to_equal_other_table", "kwargs": {"other_table_name": "orders"}}
    ]});
    let (code, cert, results) = run_with_suites(&[("customers", strict), ("order_lines", lines)]);
    assert_eq!(code, Some(2));
    assert_eq!(cert["payload"]["status"], "FAIL");
    let phone = &results["customers"]["results"][9];
    assert_eq!(phone["success"], false);
    assert!(
        phone["result"]["unexpected_count"].as_u64().unwrap() > 0,
        "{phone}"
    );
    assert_eq!(results["order_lines"]["results"][0]["success"], false);
}

#[test]
fn string_modes_decide_whether_case_and_blanks_matter() {
    let (code, _) = run_with("recase", "customers");
    assert_eq!(
        code,
        Some(2),
        "exact by default: a re-cased name is a change"
    );
    let (code, cert) = run_with_config(
        "recase",
        "customers",
        "[verification]\nstring_mode = \"normalized\"\n",
    );
    assert_eq!(code, Some(0), "{}", cert["payload"]);
    let check = row_check(&cert, "customers");
    assert_eq!(check["within_tolerance"], 1, "{check}");
}

#[test]
fn a_difference_at_the_edge_of_tolerance_is_inconclusive_and_waits_for_review() {
    // 1,050 ms against a 1 s tolerance lies in the default band (0.9 s to 1.1 s).
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let target = dir.path().join("t.db");
    let cfg = write_config(dir.path(), &src, &target, "");
    let out = run(sensei_with_fault("timestamp:1050@orders")
        .arg("migrate")
        .arg(&cfg));
    assert_eq!(
        out.status.code(),
        Some(3),
        "INCONCLUSIVE waits for review: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !target.exists() || tables(&target).is_empty(),
        "nothing is delivered before review"
    );
    let mig = migration_with(&dir.path().join("work"), "certificate.json");
    let cert: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mig.join("certificate.json")).unwrap()).unwrap();
    assert_eq!(cert["payload"]["status"], "INCONCLUSIVE");
    let check = row_check(&cert, "orders");
    assert_eq!(check["result"], "inconclusive", "{check}");
    assert_eq!(check["doubtful"], 1, "{check}");
    let why = check["differences"][0].as_str().unwrap_or_default();
    assert!(
        why.contains("ord_id=") && why.contains("band"),
        "names the key and the reason: {why}"
    );
    assert_eq!(row_check(&cert, "customers")["result"], "pass");

    // Rerunning without a person's word delivers nothing.
    let again = run(sensei().arg("migrate").arg(&cfg));
    assert_eq!(again.status.code(), Some(3));
    assert!(!target.exists() || tables(&target).is_empty());

    // Accepted: recorded once, then delivered, the receipt naming who accepted.
    let ok = run(sensei()
        .args(["review", "--accept-inconclusive", "--by", "alice"])
        .arg(&cfg));
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let twice = run(sensei()
        .args(["review", "--accept-inconclusive", "--by", "bob"])
        .arg(&cfg));
    assert_eq!(
        twice.status.code(),
        Some(1),
        "an acceptance is written once"
    );
    let done = run(sensei().arg("migrate").arg(&cfg));
    assert_eq!(
        done.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let receipt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mig.join("receipt.json")).unwrap()).unwrap();
    assert_eq!(receipt["accepted_inconclusive"]["accepted_by"], "alice");
    assert_eq!(
        receipt["accepted_inconclusive"]["undecided_checks"][0]["table"],
        "orders"
    );
    // The certificate was not rewritten.
    let after: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mig.join("certificate.json")).unwrap()).unwrap();
    assert_eq!(after, cert);
}

#[test]
fn the_band_can_be_turned_off() {
    let (code, cert) = run_with_config(
        "timestamp:1050",
        "orders",
        "[verification]\ninconclusive_band = 0.0\n",
    );
    assert_eq!(code, Some(2), "beyond 1 s without a band: FAIL");
    assert_eq!(row_check(&cert, "orders")["result"], "fail");
}

#[test]
fn data_that_cannot_be_read_is_inconclusive_not_pass() {
    let (code, cert) = run_with("unreadable", "products");
    assert_eq!(code, Some(3), "{}", cert["payload"]);
    assert_eq!(cert["payload"]["status"], "INCONCLUSIVE");
    let check = cert["payload"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "readable")
        .expect("a readable check");
    assert_eq!(check["table"], "products");
    assert_eq!(check["result"], "inconclusive");
    assert!(
        check["error"].as_str().unwrap().contains("products"),
        "{check}"
    );
}
