//! Sensei's Great Expectations rules against the `great_expectations`
//! package itself: the same suite over the same Parquet file must give the
//! same success flag for every expectation. The reference runs in the venv
//! `.ci/run` prepares (`SENSEI_GX_PYTHON` names another interpreter).

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use serde_json::json;

/// 60 rows: a unique id, names with NULLs and a duplicate, scores, small
/// integer quantities, codes mostly of one shape, timestamps, flags.
fn data() -> RecordBatch {
    let n = 60i64;
    let id: Vec<i64> = (1..=n).collect();
    let name: Vec<Option<String>> = (1..=n)
        .map(|i| match i {
            _ if i % 10 == 0 => None,
            7 | 8 => Some("Ann".to_string()),
            _ => Some(format!("name{i:02}")),
        })
        .collect();
    let score: Vec<f64> = (1..=n).map(|i| (i as f64) * 1.5).collect();
    let qty: Vec<i64> = (1..=n).map(|i| i % 6).collect();
    let code: Vec<Option<String>> = (1..=n)
        .map(|i| match i {
            13 => Some("XY-99".into()),
            21 => Some("ab-123".into()),
            _ if i % 15 == 0 => None,
            _ => Some(format!("AB-{:03}", i * 7)),
        })
        .collect();
    let ts: Vec<i64> = (0..n)
        .map(|i| 1_700_000_000_000_000 + i * 3_600_000_000)
        .collect();
    let flag: Vec<bool> = (1..=n).map(|i| i % 3 == 0).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("score", DataType::Float64, false),
        Field::new("qty", DataType::Int64, false),
        Field::new("code", DataType::Utf8, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        Field::new("flag", DataType::Boolean, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(id)),
        Arc::new(StringArray::from(name)),
        Arc::new(Float64Array::from(score)),
        Arc::new(Int64Array::from(qty)),
        Arc::new(StringArray::from(code)),
        Arc::new(TimestampMicrosecondArray::from(ts)),
        Arc::new(BooleanArray::from(flag)),
    ];
    RecordBatch::try_new(schema, cols).unwrap()
}

fn suite() -> serde_json::Value {
    let e = |t: &str, kwargs: serde_json::Value| json!({"type": t, "kwargs": kwargs, "meta": {}});
    json!({"name": "compat", "expectations": [
        e("expect_column_values_to_not_be_null", json!({"column": "id"})),
        e("expect_column_values_to_not_be_null", json!({"column": "name"})),
        e("expect_column_values_to_not_be_null", json!({"column": "name", "mostly": 0.9})),
        e("expect_column_values_to_not_be_null", json!({"column": "name", "mostly": 0.95})),
        e("expect_column_values_to_be_unique", json!({"column": "id"})),
        e("expect_column_values_to_be_unique", json!({"column": "name"})),
        e("expect_column_values_to_be_unique", json!({"column": "name", "mostly": 0.96})),
        e("expect_column_values_to_be_unique", json!({"column": "name", "mostly": 0.97})),
        e("expect_column_values_to_be_between", json!({"column": "score", "min_value": 0, "max_value": 90})),
        e("expect_column_values_to_be_between", json!({"column": "score", "min_value": 2, "max_value": 90})),
        e("expect_column_values_to_be_between", json!({"column": "score", "min_value": 1.5, "max_value": 90, "strict_min": true})),
        e("expect_column_values_to_be_between", json!({"column": "score", "min_value": 1.5, "max_value": 90, "strict_max": true})),
        e("expect_column_values_to_be_between", json!({"column": "score", "min_value": 0, "max_value": 60, "mostly": 0.6})),
        e("expect_column_values_to_be_between", json!({"column": "score", "min_value": 0, "max_value": 60, "mostly": 0.7})),
        e("expect_column_values_to_be_between", json!({"column": "qty", "min_value": 0})),
        e("expect_column_values_to_be_in_set", json!({"column": "qty", "value_set": [0, 1, 2, 3, 4, 5]})),
        e("expect_column_values_to_be_in_set", json!({"column": "qty", "value_set": [0, 1, 2, 3, 4]})),
        e("expect_column_values_to_be_in_set", json!({"column": "qty", "value_set": [0, 1, 2, 3, 4], "mostly": 0.8})),
        e("expect_column_values_to_be_in_set", json!({"column": "name", "value_set": ["Ann"], "mostly": 0.01})),
        e("expect_column_values_to_match_regex", json!({"column": "code", "regex": "^AB-\\d{3}$"})),
        e("expect_column_values_to_match_regex", json!({"column": "code", "regex": "^AB-\\d{3}$", "mostly": 0.95})),
        e("expect_column_values_to_match_regex", json!({"column": "code", "regex": "\\d{3}$"})),
        e("expect_column_values_to_match_regex", json!({"column": "code", "regex": "(?i)^ab-"})),
        e("expect_column_value_lengths_to_be_between", json!({"column": "code", "min_value": 5, "max_value": 6})),
        e("expect_column_value_lengths_to_be_between", json!({"column": "code", "min_value": 6, "max_value": 6})),
        e("expect_column_value_lengths_to_be_between", json!({"column": "name", "min_value": 3, "max_value": 6})),
        e("expect_column_values_to_be_of_type", json!({"column": "id", "type_": "int64"})),
        e("expect_column_values_to_be_of_type", json!({"column": "id", "type_": "float64"})),
        e("expect_column_values_to_be_of_type", json!({"column": "score", "type_": "float64"})),
        e("expect_column_values_to_be_of_type", json!({"column": "flag", "type_": "bool"})),
        e("expect_column_values_to_be_of_type", json!({"column": "name", "type_": "str"})),
        e("expect_compound_columns_to_be_unique", json!({"column_list": ["id", "qty"]})),
        e("expect_compound_columns_to_be_unique", json!({"column_list": ["qty", "flag"]})),
        e("expect_table_row_count_to_equal", json!({"value": 60})),
        e("expect_table_row_count_to_equal", json!({"value": 59})),
        e("expect_table_columns_to_match_set", json!({"column_set": ["id", "name", "score", "qty", "code", "ts", "flag"]})),
        e("expect_table_columns_to_match_set", json!({"column_set": ["id", "name"], "exact_match": false})),
        e("expect_table_columns_to_match_set", json!({"column_set": ["id", "name"], "exact_match": true})),
        e("expect_table_columns_to_match_set", json!({"column_set": ["id", "nope"], "exact_match": false})),
        e("expect_column_mean_to_be_between", json!({"column": "score", "min_value": 45, "max_value": 46})),
        e("expect_column_mean_to_be_between", json!({"column": "score", "min_value": 46})),
        e("expect_column_min_to_be_between", json!({"column": "qty", "min_value": 0, "max_value": 0})),
        e("expect_column_min_to_be_between", json!({"column": "qty", "min_value": 1})),
        e("expect_column_max_to_be_between", json!({"column": "score", "max_value": 90})),
        e("expect_column_max_to_be_between", json!({"column": "score", "max_value": 89.9})),
        e("expect_column_sum_to_be_between", json!({"column": "qty", "min_value": 150, "max_value": 150})),
        e("expect_column_sum_to_be_between", json!({"column": "qty", "min_value": 151})),
    ]})
}

#[test]
fn sensei_and_great_expectations_agree_on_every_success_flag() {
    let dir = tempfile::tempdir().unwrap();
    let batch = data();
    let file = dir.path().join("data.parquet");
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&file).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let suite = suite();
    let suite_file = dir.path().join("suite.json");
    std::fs::write(&suite_file, suite.to_string()).unwrap();

    let ours = sensei_agents::expectations::validate(std::slice::from_ref(&batch), &suite);
    // Rules are evaluated as batches arrive: the table in uneven slices
    // (one empty) gives the same document, partial lists included.
    let sliced = sensei_agents::expectations::validate(
        &[
            batch.slice(0, 7),
            batch.slice(7, 0),
            batch.slice(7, 30),
            batch.slice(37, 23),
        ],
        &suite,
    );
    assert_eq!(sliced, ours, "the same suite over slices of the table");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/gx_validate.py");
    let out = std::process::Command::new(sensei_tests::python())
        .arg(&script)
        .arg(&file)
        .arg(&suite_file)
        .output()
        .expect("run the great_expectations reference");
    assert!(
        out.status.success(),
        "gx_validate.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ours = ours["results"].as_array().unwrap();
    let theirs = theirs.as_array().unwrap();
    assert_eq!(ours.len(), theirs.len());
    let mut disagree = Vec::new();
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert!(b.get("exception").is_none(), "GX raised on #{i}: {b}");
        if a["success"] != b["success"] {
            disagree.push(format!(
                "#{i} {}: sensei {} gx {}",
                b["type"], a["success"], b["success"]
            ));
        }
    }
    assert!(disagree.is_empty(), "{disagree:#?}");
    // Both outcomes are exercised.
    let passed = ours.iter().filter(|r| r["success"] == true).count();
    assert!(
        passed > 10 && passed < ours.len() - 10,
        "{passed} of {}",
        ours.len()
    );
}
