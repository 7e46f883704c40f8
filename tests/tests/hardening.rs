//! Bad inputs and misuse, each named after what once went wrong: a valid
//! value that panicked the Scout, two runs on one working folder, a
//! password that reached the disk, a usage error with the exit code of a
//! FAIL certificate.

use std::path::Path;

use sensei_tests::*;

/// A `timestamptz` near PostgreSQL's maximum lies past what Arrow holds in
/// microseconds since 1970: the shift between the two epochs overflowed
/// (a panic in debug builds, a silent wrap in release ones).
#[test]
fn a_timestamp_past_arrows_range_is_refused_naming_table_column_row_and_value() {
    let db = PgDatabase::create("far_ts");
    db.client()
        .batch_execute(
            "CREATE TABLE event (id int PRIMARY KEY, at timestamptz);
             INSERT INTO event VALUES (1, '2020-01-01 00:00:00+00'), (2, '294276-12-31 23:59:59+00');",
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t.db");
    let out = run(&mut migrate_cmd(
        &db.url,
        &format!("sqlite://{}", target.display()),
        &dir.path().join("w"),
    ));
    assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    for needle in [
        "table event",
        "column at",
        "row #2",
        "294276-12-31",
        "294247",
        "update such rows",
    ] {
        assert!(err.contains(needle), "lacks {needle:?}: {err}");
    }
}

/// Two heads on one state database each declared the other's agents gone;
/// the first then panicked. The working folder is locked by the head that
/// uses it, and a second is refused naming the holder.
#[test]
fn a_second_head_on_a_working_folder_in_use_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let cdir = dir.path().join("cluster");
    let work = dir.path().join("shared-work");
    assert_exit(
        &run(cluster(&cdir)
            .args(["up", "--workers", "1", "--workdir"])
            .arg(&work)),
        0,
    );
    let out = run(&mut migrate_cmd(
        &format!("sqlite://{}", src.display()),
        &format!("sqlite://{}", dir.path().join("t.db").display()),
        &work,
    ));
    let _ = run(cluster(&cdir).arg("down"));
    assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is in use by process"), "{err}");
    assert!(err.contains("sensei-cluster"), "names the holder: {err}");
    assert!(!dir.path().join("t.db").exists(), "nothing was written");

    // Once the holder is gone, the folder is free.
    let out = run(&mut migrate_cmd(
        &format!("sqlite://{}", src.display()),
        &format!("sqlite://{}", dir.path().join("t.db").display()),
        &work,
    ));
    assert_exit(&out, 0);
}

/// clap exits 2 on a usage error: the code of a FAIL certificate. A script
/// telling them apart needs its own code for a wrong command line.
#[test]
fn a_usage_error_exits_64_not_the_code_of_a_failed_certificate() {
    let out = run(sensei().args(["migrate", "--no-such-flag"]));
    assert_exit(&out, 64);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
    let out = run(cluster(Path::new("/nonexistent")).args(["submit", "--approve-everything"]));
    assert_exit(&out, 64);
    assert_exit(&run(sensei().arg("--help")), 0);
    assert_exit(&run(sensei().arg("--version")), 0);
    // A schema file that is not there is named as the flag that gave it
    // (it read "cannot read source").
    let out = run(sensei().args([
        "plan",
        "--source",
        "sqlite:///nonexistent/legacy.db",
        "--target",
        "sqlite:///nonexistent/new.db",
        "--target-schema",
        "/nonexistent/schema.sql",
    ]));
    assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--target-schema /nonexistent/schema.sql: no such file"),
        "{err}"
    );
}

/// Every file under the working folder (manifest, lineage, OpenLineage,
/// Cypher, state database, event log, staged partitions), and what the
/// process printed, is searched for a password given in each form a user
/// may give it: in the URL's user part, as libpq's `?password=`, in a URL
/// that fails to parse, and in `PGPASSWORD`.
#[test]
fn a_password_in_any_form_reaches_no_file_and_no_output() {
    let db = PgDatabase::create("secrets");
    db.client()
        .batch_execute(
            "CREATE TABLE account (id int PRIMARY KEY, owner text);
             INSERT INTO account SELECT g, 'owner ' || g FROM generate_series(1, 50) g;",
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rest = db.url.trim_start_matches("postgresql://postgres@");
    let name = &db.name;
    // (form, URL, PGPASSWORD, the password to look for)
    let forms = [
        (
            "userinfo",
            format!("postgresql://postgres:Pw-userinfo-7391@{rest}"),
            None,
            "Pw-userinfo-7391",
        ),
        (
            "query",
            format!("postgresql://postgres@{rest}?password=Pw-query-5513"),
            None,
            "Pw-query-5513",
        ),
        ("env", db.url.clone(), Some("Pw-env-2208"), "Pw-env-2208"),
        (
            "unparsable",
            format!("postgresql://postgres:Pw-badport-4420@127.0.0.1:99999/{name}"),
            None,
            "Pw-badport-4420",
        ),
    ];
    for (form, url, env, secret) in forms {
        let work = dir.path().join(format!("w-{form}"));
        let target = dir.path().join(format!("t-{form}.db"));
        let mut cmd = migrate_cmd(&url, &format!("sqlite://{}", target.display()), &work);
        if let Some(p) = env {
            cmd.env("PGPASSWORD", p);
        }
        let out = run(&mut cmd);
        if form == "unparsable" {
            assert_exit(&out, 1);
        } else {
            assert_exit(&out, 0);
        }
        let mut found = Vec::new();
        for (what, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            if contains(bytes, secret.as_bytes()) {
                found.push(what.to_string());
            }
        }
        for file in files_under(&work) {
            if contains(&std::fs::read(&file).unwrap(), secret.as_bytes()) {
                found.push(file.display().to_string());
            }
        }
        assert!(found.is_empty(), "{form}: the password is in {found:?}");
        if work.exists() {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&work).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{form}: the working folder is {mode:o}");
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A PostgreSQL server that refuses the connection was reported as only
/// "error connecting to server": the cause and where to look are named now.
#[test]
fn a_refused_connection_names_the_cause_and_where_to_look() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut migrate_cmd(
        &format!("postgresql://postgres@127.0.0.1:{port}/nothing"),
        &format!("sqlite://{}", dir.path().join("t.db").display()),
        &dir.path().join("w"),
    ));
    assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("Connection refused"),
        "{err}"
    );
    assert!(err.contains("listening on that host and port"), "{err}");
}

/// A rerun took only the [transformation] keys of its command: a changed
/// source or verification setting, as an error message had advised, failed
/// the same way again. Now the first phase a changed key affects starts
/// over, and says so; the work before it is kept.
#[test]
fn a_rerun_with_other_settings_redoes_the_phases_they_affect() {
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/retail/schema.sql");
    let target = dir.path().join("t.db");
    let work = dir.path().join("w");
    let cmd = |sub: &str, extra: &[&str]| {
        let mut c = sensei();
        c.arg(sub)
            .args(["--source", &format!("sqlite://{}", src.display())])
            .args(["--target", &format!("sqlite://{}", target.display())])
            .arg("--target-schema")
            .arg(&schema)
            .arg("--workdir")
            .arg(&work)
            .args(extra);
        run(&mut c)
    };
    let manifest = || -> serde_json::Value {
        serde_json::from_slice(
            &std::fs::read(migration_with(&work, "manifest.json").join("manifest.json")).unwrap(),
        )
        .unwrap()
    };
    // Planned with 500-row partitions; rerun with 700: ingestion again.
    assert_exit(&cmd("plan", &["--set", "ingestion.partition_rows=500"]), 3);
    let most = |m: &serde_json::Value| {
        m["tables"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| t["partitions"].as_array().unwrap())
            .map(|p| p["rows"].as_u64().unwrap())
            .max()
            .unwrap()
    };
    assert_eq!(most(&manifest()), 500);
    let out = cmd("plan", &["--set", "ingestion.partition_rows=700"]);
    assert_exit(&out, 3);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ingestion.partition_rows changed since this migration was ingested"),
        "{err}"
    );
    assert_eq!(most(&manifest()), 700);

    // A wrong approved mapping fails the semantic check; rerun with the
    // checks as warnings: verified again, delivered, the first certificate kept.
    let settings = ["--set", "ingestion.partition_rows=700"];
    let wrong = [
        "--expression",
        "customer.email=arrow_cast(\"cust_dob\", 'Utf8')",
        "--all",
    ];
    assert_exit(&cmd("review", &[&settings[..], &wrong[..]].concat()), 0);
    assert_exit(&cmd("migrate", &settings), 2);
    let out = cmd(
        "migrate",
        &[
            &settings[..],
            &["--set", "verification.semantic_checks=warn"],
        ]
        .concat(),
    );
    assert_exit(&out, 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("verification.semantic_checks changed: verification starts again"),
        "{err}"
    );
    let mig = migration_with(&work, "receipt.json");
    let superseded: Vec<_> = std::fs::read_dir(mig.join("superseded"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        superseded.iter().any(|f| f.ends_with("certificate.json")),
        "{superseded:?}"
    );

    // Delivered: a changed setting redoes nothing and says how to.
    let out = cmd(
        "migrate",
        &[
            &settings[..],
            &["--set", "verification.numeric_tolerance=0.5"],
        ]
        .concat(),
    );
    assert_exit(&out, 0);
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("changed after this migration was delivered: nothing is redone"));
}

/// A PostgreSQL table without any column was left out without a word.
#[test]
fn a_table_without_columns_is_named_when_it_is_left_out() {
    let db = PgDatabase::create("columnless");
    db.client()
        .batch_execute(
            "CREATE TABLE placeholder (); CREATE TABLE kept (id int PRIMARY KEY);
             INSERT INTO kept VALUES (1), (2);",
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut migrate_cmd(
        &db.url,
        &format!("sqlite://{}", dir.path().join("t.db").display()),
        &dir.path().join("w"),
    ));
    assert_exit(&out, 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tables without any column, left out (nothing to migrate): placeholder"),
        "{err}"
    );
    assert_eq!(tables(&dir.path().join("t.db")), ["kept"]);
}

/// A fixed input file was not read again once ingestion had finished: the
/// rerun the error message advised failed the same way. An input file
/// changed since it was extracted now starts the migration over, and says so.
#[test]
fn a_fixed_input_file_is_read_again_on_the_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let csv = data.join("people.csv");
    std::fs::write(&csv, "id,full_name\n1,Ada Lovelace\n2,Alan Turing\n").unwrap();
    // A target column no source column feeds: the plan waits for review.
    let ddl = dir.path().join("schema.sql");
    std::fs::write(
        &ddl,
        "CREATE TABLE people (id BIGINT PRIMARY KEY, full_name TEXT, nickname TEXT);",
    )
    .unwrap();
    let plan = || {
        run(sensei()
            .arg("plan")
            .args(["--source", &format!("csv://{}", data.display())])
            .args([
                "--target",
                &format!("sqlite://{}", dir.path().join("t.db").display()),
            ])
            .arg("--target-schema")
            .arg(&ddl)
            .arg("--workdir")
            .arg(dir.path().join("w")))
    };
    assert_exit(&plan(), 3);
    let rows = || -> u64 {
        let m: serde_json::Value = serde_json::from_slice(
            &std::fs::read(
                migration_with(&dir.path().join("w"), "manifest.json").join("manifest.json"),
            )
            .unwrap(),
        )
        .unwrap();
        m["tables"][0]["rows"].as_u64().unwrap()
    };
    assert_eq!(rows(), 2);
    // The file is fixed (a row was missing); the same command again.
    std::fs::write(
        &csv,
        "id,full_name\n1,Ada Lovelace\n2,Alan Turing\n3,Grace Hopper\n",
    )
    .unwrap();
    let out = plan();
    assert_exit(&out, 3);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("source file ")
            && err.contains("people.csv changed since this migration was ingested"),
        "{err}"
    );
    assert_eq!(rows(), 3, "the fixed file was extracted again");
}
