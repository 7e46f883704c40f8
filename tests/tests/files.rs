//! CSV and Parquet sources end to end: `sensei migrate` from files into SQLite.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, DictionaryArray, Int64Array, StringArray,
    TimestampNanosecondArray, UInt8Array,
};
use arrow::datatypes::Int32Type;
use arrow::record_batch::RecordBatch;
use sensei_tests::*;

fn config(dir: &Path, source_url: &str, extra: &str) -> std::path::PathBuf {
    let p = dir.join("migration.toml");
    std::fs::write(
        &p,
        format!(
            "[migration]\nname = \"files\"\n[source]\nurl = \"{source_url}\"\n{extra}\n[target]\nurl = \"sqlite://{}\"\n[runtime]\nworkdir = \"{}\"\n[ingestion]\npartition_rows = 1000\n",
            dir.join("target.db").display(),
            dir.join("work").display()
        ),
    )
    .unwrap();
    p
}

fn migration_dir(dir: &Path) -> std::path::PathBuf {
    std::fs::read_dir(dir.join("work"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("files-"))
        .expect("migration folder")
        .path()
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(migration_dir(dir).join("manifest.json")).unwrap())
        .unwrap()
}

fn query<T: rusqlite::types::FromSql>(db: &Path, sql: &str) -> T {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

const NAMES: [&str; 6] = [
    "Zoë Müller",
    "José Muñoz",
    "Françoise Lefèvre",
    "Jürgen Weiß",
    "Åsa Öberg",
    "Inês Conceição",
];

#[test]
fn a_folder_of_csv_files_latin1_included_migrates_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    // A latin1 export with ';' separators, as legacy tools write them.
    let mut clients = String::from("client_id;name;city_code\n");
    for i in 0..2_500 {
        clients.push_str(&format!("{i};{};{:05}\n", NAMES[i % NAMES.len()], i * 7));
    }
    std::fs::write(
        data.join("clients.csv"),
        encoding_rs::WINDOWS_1252.encode(&clients).0,
    )
    .unwrap();
    // UTF-8 with a byte-order mark, quoted fields spanning lines, decimals and dates.
    let mut orders = String::from("\u{feff}order_id,client_id,amount,ordered_on,note\n");
    for i in 0..3_100 {
        orders.push_str(&format!(
            "{i},{},{}.{:02},2024-{:02}-{:02},\"{}\"\n",
            i % 2_500,
            i * 3 % 1_000,
            i % 100,
            i % 12 + 1,
            i % 28 + 1,
            if i % 10 == 0 { "gift,\nwrap" } else { "" }
        ));
    }
    std::fs::write(data.join("orders.csv"), orders).unwrap();

    let cfg = config(dir.path(), &format!("csv://{}", data.display()), "");
    let out = run(sensei().arg("migrate").arg(&cfg));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target = dir.path().join("target.db");
    assert_eq!(query::<i64>(&target, "SELECT count(*) FROM clients"), 2_500);
    assert_eq!(query::<i64>(&target, "SELECT count(*) FROM orders"), 3_100);
    assert_eq!(
        query::<String>(&target, "SELECT name FROM clients WHERE client_id = 1"),
        "José Muñoz"
    );
    assert_eq!(
        query::<String>(&target, "SELECT city_code FROM clients WHERE client_id = 1"),
        "00007",
        "leading zeros kept"
    );
    assert_eq!(
        query::<String>(
            &target,
            "SELECT CAST(amount AS TEXT) FROM orders WHERE order_id = 1"
        ),
        "3.01"
    );
    assert_eq!(
        query::<String>(&target, "SELECT note FROM orders WHERE order_id = 10"),
        "gift,\nwrap"
    );
    assert_eq!(
        query::<i64>(&target, "SELECT count(*) FROM orders WHERE note IS NULL"),
        3_100 - 310
    );
    // Empty fields became NULL: said in the summary (and manifest, below).
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("orders.note: 2790 empty field read as NULL"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let m = manifest(dir.path());
    let orders = m["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "orders")
        .unwrap();
    assert_eq!(
        orders["changed_values"]["note"]["empty field read as NULL"],
        2790
    );
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/schemas/manifest.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(schema_errors(&schema, &m), Vec::<String>::new());
    let tables = m["tables"].as_array().unwrap();
    let clients = tables.iter().find(|t| t["name"] == "clients").unwrap();
    assert_eq!(clients["file"]["encoding"], "windows-1252");
    assert!(clients["file"]["encoding_confidence"].as_f64().unwrap() >= 0.9);
    let orders = tables.iter().find(|t| t["name"] == "orders").unwrap();
    assert_eq!(orders["file"]["encoding"], "UTF-8");
    assert!(
        orders["partitions"].as_array().unwrap().len() >= 3,
        "3,100 rows at 1,000 per partition: {}",
        orders["partitions"]
    );
    let cert: serde_json::Value = serde_json::from_slice(
        &std::fs::read(migration_dir(dir.path()).join("certificate.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cert["payload"]["status"], "PASS");
}

#[test]
fn an_ambiguous_csv_is_refused_with_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("people.csv");
    std::fs::write(&file, b"id,name\n1,Ren\xe9e\n2,Bob\n").unwrap();
    let cfg = config(dir.path(), &format!("csv://{}", file.display()), "");
    let out = run(sensei().arg("migrate").arg(&cfg));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        err.contains("people.csv") && err.contains("confidence") && err.contains("52 65 6e e9 65"),
        "{err}"
    );
    assert!(!dir.path().join("target.db").exists(), "nothing written");

    // Told the encoding, the same file migrates.
    let cfg = config(
        dir.path(),
        &format!("csv://{}", file.display()),
        "encoding = \"latin1\"",
    );
    let out = run(sensei().arg("migrate").arg(&cfg).arg("--restart"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        query::<String>(
            &dir.path().join("target.db"),
            "SELECT name FROM people WHERE id = 1"
        ),
        "Renée"
    );
}

#[test]
fn malformed_csv_records_are_refused_or_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.csv");
    std::fs::write(&file, b"id,kind\n1,open\n2,close,extra\n3,open\n").unwrap();
    let cfg = config(dir.path(), &format!("csv://{}", file.display()), "");
    let out = run(sensei().arg("migrate").arg(&cfg));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        err.contains("events.csv") && err.contains("line 3") && err.contains("quarantine"),
        "{err}"
    );
    assert!(!dir.path().join("target.db").exists(), "nothing written");

    let cfg = config(
        dir.path(),
        &format!("csv://{}", file.display()),
        "bad_rows = \"quarantine\"",
    );
    let out = run(sensei().arg("migrate").arg(&cfg).arg("--restart"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        query::<i64>(&dir.path().join("target.db"), "SELECT count(*) FROM events"),
        2
    );
    let m = manifest(dir.path());
    let t = &m["tables"][0];
    assert_eq!(t["rejected_rows"], 1);
    let q = t["quarantine"][0].as_str().unwrap();
    let kept = std::fs::read_to_string(q).unwrap();
    assert!(
        kept.contains("3,3 fields where the header has 2,2,close,extra"),
        "{kept}"
    );
}

fn write_parquet(path: &Path, batch: &RecordBatch, row_group: usize) {
    let file = std::fs::File::create(path).unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group))
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

#[test]
fn parquet_files_migrate_by_row_group_with_types_normalised() {
    let dir = tempfile::tempdir().unwrap();
    let n = 3_500usize;
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..n as i64));
    let small: ArrayRef = Arc::new(UInt8Array::from_iter_values(
        (0..n).map(|i| (i % 256) as u8),
    ));
    let names: ArrayRef = Arc::new(StringArray::from_iter_values((0..n).map(|i| NAMES[i % 6])));
    let kinds: ArrayRef = Arc::new(
        (0..n)
            .map(|i| ["new", "paid", "shipped"][i % 3])
            .collect::<DictionaryArray<Int32Type>>(),
    );
    let at: ArrayRef = Arc::new(
        TimestampNanosecondArray::from_iter_values(
            (0..n as i64).map(|i| 1_700_000_000_000_000_000 + i * 1_000_000_123_000),
        )
        .with_timezone("UTC"),
    );
    let day: ArrayRef = Arc::new(Date32Array::from_iter_values(
        (0..n as i32).map(|i| 19_000 + i),
    ));
    let price: ArrayRef = Arc::new(
        Decimal128Array::from_iter_values((0..n as i128).map(|i| i * 101))
            .with_precision_and_scale(12, 2)
            .unwrap(),
    );
    let batch = RecordBatch::try_from_iter([
        ("id", ids),
        ("small", small),
        ("name", names),
        ("kind", kinds),
        ("at", at),
        ("day", day),
        ("price", price),
    ])
    .unwrap();
    let file = dir.path().join("sales.parquet");
    write_parquet(&file, &batch, 500);

    let cfg = config(dir.path(), &format!("parquet://{}", file.display()), "");
    let out = run(sensei().arg("migrate").arg(&cfg));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target = dir.path().join("target.db");
    assert_eq!(
        query::<i64>(&target, "SELECT count(*) FROM sales"),
        n as i64
    );
    assert_eq!(
        query::<i64>(&target, "SELECT count(DISTINCT id) FROM sales"),
        n as i64
    );
    assert_eq!(
        query::<i64>(&target, "SELECT small FROM sales WHERE id = 300"),
        44
    );
    assert_eq!(
        query::<String>(&target, "SELECT kind FROM sales WHERE id = 4"),
        "paid"
    );
    assert_eq!(
        query::<String>(&target, "SELECT name FROM sales WHERE id = 3"),
        "Jürgen Weiß"
    );
    assert_eq!(
        query::<String>(
            &target,
            "SELECT CAST(price AS TEXT) FROM sales WHERE id = 7"
        ),
        "7.07"
    );
    assert_eq!(
        query::<String>(&target, "SELECT at FROM sales WHERE id = 1"),
        "2023-11-14 22:30:00.000123"
    );
    let m = manifest(dir.path());
    assert!(
        m["tables"][0]["partitions"].as_array().unwrap().len() >= 4,
        "7 row groups of 500 at 1,000 rows per partition"
    );

    // Nanoseconds that are not whole microseconds would be lost: refused, naming the column.
    let lossy: ArrayRef = Arc::new(TimestampNanosecondArray::from_iter_values([
        1_001i64, 2_000,
    ]));
    let batch = RecordBatch::try_from_iter([("ticked_at", lossy)]).unwrap();
    let file = dir.path().join("ticks.parquet");
    write_parquet(&file, &batch, 10);
    let cfg = config(dir.path(), &format!("parquet://{}", file.display()), "");
    let out = run(sensei().arg("migrate").arg(&cfg).arg("--restart"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        err.contains("ticked_at") && err.contains("sub-microsecond"),
        "{err}"
    );
}

#[test]
fn a_spreadsheet_in_a_folder_of_csv_files_is_named_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("people.csv"), "id,name\n1,Ada\n").unwrap();
    // An xlsx file is a zip archive; its bytes do not matter here.
    std::fs::write(data.join("orders.xlsx"), b"PK\x03\x04 not read").unwrap();
    std::fs::write(data.join("README.md"), "notes, not a table").unwrap();
    let cfg = config(dir.path(), &format!("csv://{}", data.display()), "");
    let out = run(sensei().arg("migrate").arg(&cfg));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("orders.xlsx") && err.contains("save each as .csv") && !err.contains("README"),
        "{err}"
    );
    assert!(!dir.path().join("target.db").exists(), "nothing written");

    // Saved as CSV, both tables migrate.
    std::fs::remove_file(data.join("orders.xlsx")).unwrap();
    std::fs::write(data.join("orders.csv"), "id,total\n7,12.50\n").unwrap();
    let out = run(sensei().arg("migrate").arg(&cfg).arg("--restart"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        query::<i64>(&dir.path().join("target.db"), "SELECT id FROM orders"),
        7
    );
}

/// Values changed on the way in were only counted; `--strict` refuses them,
/// naming table, column, change and count, before any transformation; the
/// same command without it resumes and counts them.
#[test]
fn strict_refuses_values_changed_on_the_way_in_and_names_each() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(
        data.join("people.csv"),
        "id,name,note\n1,Ada,\n2,,x\n3,Cy,\n",
    )
    .unwrap();
    let cfg = config(dir.path(), &format!("csv://{}", data.display()), "");
    let out = run(sensei().arg("migrate").arg(&cfg).arg("--strict"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("people.note: 2 empty field read as NULL")
            && err.contains("people.name: 1 empty field read as NULL")
            && err.contains("without --strict"),
        "{err}"
    );
    assert!(!dir.path().join("target.db").exists(), "nothing written");
    assert_exit(&run(sensei().arg("migrate").arg(&cfg)), 0);
    assert_eq!(
        query::<i64>(
            &dir.path().join("target.db"),
            "SELECT count(*) FROM people WHERE note IS NULL"
        ),
        2
    );
}
