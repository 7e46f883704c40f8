//! Delivery into PostgreSQL: binary COPY with the ledger in one transaction,
//! foreign keys added back after the load, the receipt and
//! `certificate verify --data` reading the target back with the
//! certificate's algorithm; a permission error halts the migration with a
//! clear message, leaves nothing the ledger does not know, and a rerun after
//! the grant completes exactly once.

use std::path::Path;

use sensei_tests::*;

fn count(c: &mut postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).unwrap().get(0)
}

#[test]
fn retail_into_postgres_with_its_schema_foreign_keys_and_receipt() {
    let db = PgDatabase::create("target");
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    // The example schema plus a secondary index: built after the load.
    let schema = retail_schema(
        dir.path(),
        "CREATE INDEX purchase_order_by_customer ON purchase_order (customer_id, ordered_at);\n",
    );
    let out = run(sensei()
        .arg("migrate")
        .arg("--source")
        .arg(format!("sqlite://{}", src.display()))
        .arg("--target")
        .arg(&db.url)
        .arg("--target-schema")
        .arg(&schema)
        .arg("--workdir")
        .arg(dir.path().join("w"))
        .arg("--approve-all"));
    assert_exit(&out, 0);
    let s = rusqlite::Connection::open(&src).unwrap();
    let mut c = db.client();
    for (source, target) in [
        ("customers", "customer"),
        ("products", "product"),
        ("orders", "purchase_order"),
        ("order_lines", "order_line"),
    ] {
        let want: i64 = s
            .query_row(&format!("SELECT count(*) FROM {source}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            count(&mut c, &format!("SELECT count(*) FROM {target}")),
            want,
            "{target}"
        );
    }
    // The schema's three foreign keys are back, validated.
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated"
        ),
        3
    );
    // Every delivered row is in the ledger's count.
    assert_eq!(
        count(&mut c, "SELECT sum(rows)::bigint FROM sensei_delivery_ledger"),
        count(&mut c, "SELECT (SELECT count(*) FROM customer) + (SELECT count(*) FROM product) + (SELECT count(*) FROM purchase_order) + (SELECT count(*) FROM order_line)")
    );
    let mig = migration_with(&dir.path().join("w"), "certificate.json");
    // The index was set aside for the load and is back.
    let deferred = std::fs::read_to_string(mig.join("deferred-indexes.json")).unwrap();
    assert!(
        deferred.contains("purchase_order_by_customer"),
        "{deferred}"
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'purchase_order_by_customer'"
        ),
        1
    );
    // The delivery was staged: the four tables' primary keys, too, were set
    // aside for the load and built after it, and are back (with the
    // ledger's own).
    assert_eq!(deferred.matches("PRIMARY KEY").count(), 4, "{deferred}");
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE c.contype = 'p' AND n.nspname = 'public'"
        ),
        5
    );
    let receipt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mig.join("receipt.json")).unwrap()).unwrap();
    for (t, r) in receipt["tables"].as_object().unwrap() {
        assert_eq!(r["matches_certificate"], true, "{t}: {r}");
        // Every batch acknowledged: rows and time, adding up to the table.
        let batches = r["batches"].as_array().unwrap();
        assert!(!batches.is_empty(), "{t}");
        let rows: u64 = batches.iter().map(|b| b["rows"].as_u64().unwrap()).sum();
        assert_eq!(rows, r["rows_written"].as_u64().unwrap(), "{t}");
        assert!(batches
            .iter()
            .all(|b| b["elapsed_ms"].is_u64() && b["attempt"].as_u64() >= Some(1)));
    }
    // Post-delivery validation: every table read back is the certified
    // rows, so the query suite is not replayed on them (by default), and
    // the receipt says why; no table was read a second time.
    let post = &receipt["post_delivery"];
    assert_eq!(post["replayed"], false, "{post}");
    assert!(
        post["reason"].as_str().unwrap().contains("digest"),
        "{post}"
    );
    let w = dir.path().join("w");
    assert_eq!(
        state_query(
            &w,
            "SELECT count(*) FROM tasks WHERE table_name LIKE 'post-delivery:%' AND partition > 0"
        ),
        Some(0)
    );
    assert_eq!(
        state_query(
            &w,
            "SELECT count(*) FROM tasks WHERE table_name = 'post-delivery:replay'"
        ),
        Some(0)
    );
    // The certificate's roots recomputed from PostgreSQL; one changed cell breaks them.
    let cert = mig.join("certificate.json");
    let ok = run(sensei()
        .args(["certificate", "verify"])
        .arg(&cert)
        .arg("--data")
        .arg(&db.url));
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    c.batch_execute("UPDATE customer SET city = 'Elsewhere' WHERE id = 7")
        .unwrap();
    let bad = run(sensei()
        .args(["certificate", "verify"])
        .arg(&cert)
        .arg("--data")
        .arg(&db.url));
    assert_eq!(bad.status.code(), Some(1));
    let text = String::from_utf8_lossy(&bad.stdout);
    assert!(text.contains("DIFFERS table customer"), "{text}");
    assert!(text.contains("matches table product"), "{text}");
}

#[test]
fn a_table_the_target_user_may_not_write_halts_cleanly_and_a_rerun_after_the_grant_completes() {
    let db = PgDatabase::create("perm");
    let role = format!("sensei_limited_{}", std::process::id());
    let mut admin = db.client();
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role};
             CREATE ROLE {role} LOGIN;
             GRANT CREATE, USAGE ON SCHEMA public TO {role};
             CREATE TABLE customers (cust_id bigint PRIMARY KEY, cust_fname text NOT NULL, cust_lname text NOT NULL,
                 cust_email text, cust_dob date, cust_phone text, cust_city text, created_ts timestamp NOT NULL);"
        ))
        .unwrap();
    let url = db.url.replace("postgres@", &format!("{role}@"));
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let migrate = || {
        run(&mut migrate_cmd(
            &format!("sqlite://{}", src.display()),
            &url,
            &dir.path().join("w"),
        ))
    };
    let out = migrate();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("permission denied for table customers") && err.contains("customers/"),
        "a clear permanent error naming the table and batch: {err}"
    );
    // Nothing half-written: what the target holds is exactly what the ledger
    // records (the tables this delivery created are gone again when the
    // halt came before any batch of theirs landed, kept otherwise).
    let held = |c: &mut postgres::Client| -> i64 {
        let mut rows = 0;
        for t in ["customers", "products", "orders", "order_lines"] {
            if count(
                c,
                &format!("SELECT (to_regclass('{t}') IS NOT NULL)::int::bigint"),
            ) == 1
            {
                rows += count(c, &format!("SELECT count(*) FROM {t}"));
            }
        }
        rows
    };
    let ledger = |c: &mut postgres::Client| pg_ledger_rows(c);
    assert_eq!(held(&mut admin), ledger(&mut admin));
    assert_eq!(count(&mut admin, "SELECT count(*) FROM customers"), 0);

    admin
        .batch_execute(&format!("GRANT SELECT, INSERT ON customers TO {role}"))
        .unwrap();
    let out = migrate();
    assert_exit(&out, 0);
    let s = rusqlite::Connection::open(&src).unwrap();
    let want: i64 = s
        .query_row(
            "SELECT (SELECT count(*) FROM customers) + (SELECT count(*) FROM products) + (SELECT count(*) FROM orders) + (SELECT count(*) FROM order_lines)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(held(&mut admin), want, "every row exactly once");
    assert_eq!(ledger(&mut admin), want);
    assert_eq!(
        count(
            &mut admin,
            "SELECT count(*) FROM (SELECT cust_id FROM customers GROUP BY 1 HAVING count(*) > 1) d"
        ),
        0
    );
    drop(admin);
    drop(db);
    if let Ok(mut c) = postgres::Client::connect(PG_ADMIN_URL, postgres::NoTls) {
        let _ = c.batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE IF EXISTS {role}"));
    }
}

#[test]
fn a_target_trigger_that_changes_rows_is_caught_after_delivery() {
    let db = PgDatabase::create("trigger");
    db.client()
        .batch_execute(
            "CREATE TABLE customers (cust_id bigint PRIMARY KEY, cust_fname text NOT NULL, cust_lname text NOT NULL,
                 cust_email text, cust_dob date, cust_phone text, cust_city text, created_ts timestamp NOT NULL);
             CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN NEW.cust_city := upper(NEW.cust_city); RETURN NEW; END $$;
             CREATE TRIGGER shout BEFORE INSERT ON customers FOR EACH ROW EXECUTE FUNCTION shout();",
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let out = run(&mut migrate_cmd(
        &format!("sqlite://{}", src.display()),
        &db.url,
        &dir.path().join("w"),
    ));
    assert_exit(&out, 2);
    let mig = migration_with(&dir.path().join("w"), "receipt.json");
    let receipt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mig.join("receipt.json")).unwrap()).unwrap();
    assert_eq!(receipt["tables"]["customers"]["matches_certificate"], false);
    assert_eq!(receipt["tables"]["orders"]["matches_certificate"], true);
    // The table that differs is read again, its rows staged, and the query
    // suite replayed: it names the column the trigger changed.
    let post = &receipt["post_delivery"];
    let differences = post["differences"].to_string();
    assert_eq!(post["replayed"], true, "{post}");
    assert!(post["failed"].as_u64().unwrap() >= 1, "{post}");
    assert!(differences.contains("customers.cust_city"), "{differences}");
    assert!(!differences.contains("orders"), "{differences}");
    let w = dir.path().join("w");
    let read_again = |table: &str| {
        state_query(
            &w,
            &format!("SELECT count(*) FROM tasks WHERE table_name = 'post-delivery:{table}' AND partition = 1 AND state = 'done'"),
        )
    };
    assert_eq!(read_again("customers"), Some(1));
    assert_eq!(read_again("orders"), Some(0));
    let events = state_query(
        &dir.path().join("w"),
        "SELECT count(*) FROM events WHERE message LIKE 'post-delivery query column customers.cust_city%'",
    )
    .unwrap();
    assert!(events >= 1);
}

#[test]
fn every_write_stays_inside_the_configured_target_schema() {
    let db = PgDatabase::create("ns");
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let out = run(migrate_cmd(
        &format!("sqlite://{}", src.display()),
        &db.url,
        &dir.path().join("w"),
    )
    .args(["--set", "target.namespace=legacy_copy"]));
    assert_exit(&out, 0);
    let mut c = db.client();
    let in_ns = count(
        &mut c,
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'legacy_copy'",
    );
    assert_eq!(in_ns, 5, "four tables and the ledger");
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        0,
        "nothing written outside it"
    );
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM legacy_copy.order_lines"),
        {
            let s = rusqlite::Connection::open(&src).unwrap();
            s.query_row("SELECT count(*) FROM order_lines", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap()
        }
    );
}

#[test]
fn a_mariadb_database_mirrored_into_postgres_keeps_widths_constraints_and_indexes() {
    let my = MyDatabase::create("mirror");
    bookshop(&my);
    let pg = PgDatabase::create("mirror");
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut migrate_cmd(&my.url, &pg.url, &dir.path().join("w")));
    assert_exit(&out, 0);
    let mut c = pg.client();
    assert_eq!(count(&mut c, "SELECT count(*) FROM books"), 50);
    let widths: Vec<(String, Option<i32>)> = c
        .query(
            "SELECT column_name::text, character_maximum_length FROM information_schema.columns
             WHERE table_name = 'authors' ORDER BY ordinal_position",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        widths,
        vec![
            ("id".into(), None),
            ("name".into(), Some(40)),
            ("email".into(), Some(120)),
            ("code".into(), Some(3)),
            ("bio".into(), None),
        ]
    );
    let defs: Vec<String> = c
        .query(
            "SELECT conrelid::regclass::text || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
             WHERE contype IN ('u', 'f') AND connamespace = 'public'::regnamespace ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        defs,
        vec![
            "authors UNIQUE (email)".to_string(),
            // MariaDB reports RESTRICT for an unspecified action.
            "books FOREIGN KEY (author_id) REFERENCES authors(id) ON UPDATE RESTRICT ON DELETE CASCADE"
                .to_string(),
        ]
    );
    let indexes: Vec<String> = c
        .query(
            "SELECT indexname::text FROM pg_indexes WHERE tablename IN ('authors', 'books')
               AND indexdef NOT LIKE '%UNIQUE%' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        indexes.contains(&"authors_name".to_string())
            && indexes.contains(&"books_title".to_string()),
        "{indexes:?}"
    );
}

/// The preflight created the ledger table while connecting, so a migration
/// that failed before any row (here: a FAIL certificate) left
/// `sensei_delivery_ledger` behind. Nothing is created before a batch is,
/// and a delivery staged while verification ran is never published.
#[test]
fn a_migration_that_fails_before_any_row_leaves_the_target_untouched() {
    let db = PgDatabase::create("untouched");
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/retail/schema.sql");
    let cmd = |sub: &str, extra: &[&str]| {
        let mut c = sensei();
        c.arg(sub)
            .args(["--source", &format!("sqlite://{}", src.display())])
            .args(["--target", &db.url])
            .arg("--target-schema")
            .arg(&schema)
            .arg("--workdir")
            .arg(dir.path().join("w"))
            .args(extra);
        run(&mut c)
    };
    assert_exit(&cmd("plan", &[]), 3);
    assert_exit(
        &cmd(
            "review",
            &[
                "--expression",
                "customer.email=arrow_cast(\"cust_dob\", 'Utf8')",
                "--all",
            ],
        ),
        0,
    );
    assert_exit(&cmd("migrate", &[]), 2);
    // The delivery was staged while verification ran: whatever it loaded
    // is in its staging schema, nothing in the target's own.
    let mig = migration_with(&dir.path().join("w"), "certificate.json");
    let area: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mig.join("staging-area.json")).unwrap()).unwrap();
    let area = area["name"].as_str().expect("the delivery was staged");
    let tables = count(
        &mut db.client(),
        &format!("SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema', '{area}')"),
    );
    assert_eq!(tables, 0, "the target was written to on a FAIL certificate");
    assert_eq!(
        count(&mut db.client(), "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'sensei_stage_%' AND nspname <> current_schema()"),
        count(&mut db.client(), &format!("SELECT count(*) FROM pg_namespace WHERE nspname = '{area}'")),
        "no staging schema but this delivery's"
    );
}

/// A value the target column cannot hold read "row a row of batch 0 ... is
/// not a valid a value" and advised a wider type whatever the cause: the
/// row, the value and the column's type are named now.
#[test]
fn a_value_the_target_column_cannot_hold_is_named_with_its_row() {
    let db = PgDatabase::create("narrow");
    db.client()
        .batch_execute(
            "CREATE TABLE product (id bigint PRIMARY KEY, sku char(8) NOT NULL, name varchar(80) NOT NULL,
               unit_price numeric(10,2) NOT NULL, quantity_on_hand smallint NOT NULL, discontinued boolean NOT NULL);",
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let cmd = |sub: &str, extra: &[&str]| {
        let mut c = sensei();
        c.arg(sub)
            .args(["--source", &format!("sqlite://{}", src.display())])
            .args(["--target", &db.url])
            .args(["--set", "target.schema=@target", "--workdir"])
            .arg(dir.path().join("w"))
            .args(extra);
        run(&mut c)
    };
    assert_planned(&cmd("plan", &[]));
    // Approved by hand: a quantity past what smallint holds (the Workers
    // produce 64-bit integers; the target's column is 16 bits).
    let review = [
        "--expression",
        "product.quantity_on_hand=\"prod_id\" * 1000",
        "--all",
    ];
    assert_exit(&cmd("review", &review), 0);
    let out = cmd("migrate", &[]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("a row of batch"), "{err}");
    assert!(
        err.contains(
            "table product, column quantity_on_hand, row 33 of batch 0 of partition product/"
        ) && err.contains("value \"33000\" is not a valid smallint"),
        "{err}"
    );
}

/// A delivery that failed on its first batch left the tables it had
/// created, empty, in the target (and a rerun with a fixed schema file met
/// them as they were). They are dropped again; the rerun creates them
/// from the file as it is then and delivers exactly once.
#[test]
fn a_delivery_that_fails_before_its_first_batch_leaves_no_table() {
    let db = PgDatabase::create("untouched");
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("stock.db");
    rusqlite::Connection::open(&src)
        .unwrap()
        .execute_batch(
            "CREATE TABLE item (id INTEGER PRIMARY KEY, sku TEXT NOT NULL, quantity INTEGER NOT NULL);
             WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 500)
             INSERT INTO item SELECT i, 'SKU-' || i, i * 1000 FROM s;",
        )
        .unwrap();
    let schema = dir.path().join("schema.sql");
    // 16 bits: quantities from 33,000 on do not fit.
    let ddl = |quantity: &str| {
        format!(
            "CREATE TABLE item (id BIGINT PRIMARY KEY, sku VARCHAR(20) NOT NULL, quantity {quantity} NOT NULL);\n"
        )
    };
    std::fs::write(&schema, ddl("SMALLINT")).unwrap();
    let migrate = || {
        let mut c = sensei();
        c.arg("migrate")
            .args(["--source", &format!("sqlite://{}", src.display())])
            .args(["--target", &db.url, "--target-schema"])
            .arg(&schema)
            .arg("--workdir")
            .arg(dir.path().join("w"))
            .args(["--approve-all", "--set", "delivery.batch_rows=100"]);
        run(&mut c)
    };
    let tables = |db: &PgDatabase| {
        count(
            &mut db.client(),
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
        )
    };
    let out = migrate();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a valid smallint"), "{err}");
    assert!(
        err.contains("no batch was delivered") && err.contains("(item) were dropped again"),
        "{err}"
    );
    assert_eq!(tables(&db), 0, "tables left after a failed first batch");
    // Fixed: the column wide enough. The same command delivers, once.
    std::fs::write(&schema, ddl("INTEGER")).unwrap();
    assert_exit(&migrate(), 0);
    let mut c = db.client();
    assert_eq!(count(&mut c, "SELECT count(*) FROM item"), 500);
    assert_eq!(
        count(&mut c, "SELECT max(quantity)::bigint FROM item"),
        500_000
    );
}

fn assert_planned(out: &std::process::Output) {
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `DECIMAL(65,30)` and unconstrained `numeric` (wider than Arrow's 38
/// digits) travel as text; mirrored into PostgreSQL they arrived as `text`
/// columns. They keep an exact type and every digit.
#[test]
fn exact_decimals_wider_than_38_digits_keep_an_exact_type_in_postgres() {
    use mysql::prelude::Queryable;
    let my = MyDatabase::create("wide_dec");
    my.conn()
        .query_drop(
            "CREATE TABLE ledger (id INT PRIMARY KEY, amount DECIMAL(65,30) NOT NULL, fee DECIMAL(10,2));
             INSERT INTO ledger VALUES
               (1, '12345678901234567890123456789012345.123456789012345678901234567890', 1.50),
               (2, '-0.000000000000000000000000000001', NULL),
               (3, '0', 0.00)",
        )
        .unwrap();
    let src = PgDatabase::create("wide_num");
    src.client()
        .batch_execute(
            "CREATE TABLE readings (id int PRIMARY KEY, v numeric NOT NULL);
             INSERT INTO readings VALUES
               (1, 3.14159265358979323846264338327950288419716939937510582097494459),
               (2, -98765432109876543210987654321098765432109876543210),
               (3, 0.5000)",
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &str); 2] = [
        (
            &my.url,
            "ledger",
            "SELECT id, amount::text, fee::text FROM ledger ORDER BY id",
        ),
        (
            &src.url,
            "readings",
            "SELECT id, v::text, NULL::text FROM readings ORDER BY id",
        ),
    ];
    for (i, (url, table, query)) in cases.iter().enumerate() {
        let pg = PgDatabase::create("wide_dec_target");
        let out = run(&mut migrate_cmd(
            url,
            &pg.url,
            &dir.path().join(format!("w{i}")),
        ));
        assert_exit(&out, 0);
        let mut c = pg.client();
        let types: Vec<String> = c
            .query(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                 WHERE attrelid = $1::text::regclass AND attnum > 0 ORDER BY attnum",
                &[table],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let rows = |c: &mut postgres::Client| -> Vec<(i32, String, Option<String>)> {
            c.query(*query, &[])
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect()
        };
        let got = rows(&mut c);
        if *table == "ledger" {
            assert_eq!(types, ["integer", "numeric(65,30)", "numeric(10,2)"]);
            assert_eq!(
                got,
                vec![
                    (
                        1,
                        "12345678901234567890123456789012345.123456789012345678901234567890".into(),
                        Some("1.50".into())
                    ),
                    (2, "-0.000000000000000000000000000001".into(), None),
                    (3, format!("0.{}", "0".repeat(30)), Some("0.00".into())),
                ]
            );
        } else {
            assert_eq!(types, ["integer", "numeric"]);
            let want = rows(&mut src.client());
            assert_eq!(got, want, "every digit kept");
        }
    }
}

/// `--resync` on PostgreSQL: tables with a foreign key between them are
/// emptied (after the keys are detached) and delivered again.
#[test]
fn a_changed_source_is_resynced_into_postgres_with_its_foreign_keys() {
    let src = PgDatabase::create("resync_src");
    src.client()
        .batch_execute(
            "CREATE TABLE parent (id int PRIMARY KEY, name text NOT NULL);
             CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent(id), note text);
             INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 20) g;
             INSERT INTO child SELECT g, 1 + g % 20, 'c' || g FROM generate_series(1, 60) g;",
        )
        .unwrap();
    let pg = PgDatabase::create("resync_target");
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("w");
    assert_exit(&run(&mut migrate_cmd(&src.url, &pg.url, &work)), 0);
    src.client()
        .batch_execute(
            "UPDATE parent SET name = 'renamed' WHERE id = 3;
             INSERT INTO parent VALUES (21, 'p21');
             INSERT INTO child VALUES (61, 21, 'c61');
             DELETE FROM child WHERE id = 5;",
        )
        .unwrap();
    let out = run(migrate_cmd(&src.url, &pg.url, &work).arg("--resync"));
    assert_exit(&out, 0);
    let rows = |c: &mut postgres::Client| -> Vec<String> {
        c.query(
            "SELECT 'p' || id || name FROM parent UNION ALL SELECT 'c' || id || ':' || parent_id || note FROM child ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    assert_eq!(rows(&mut pg.client()), rows(&mut src.client()));
    let fks: i64 = pg
        .client()
        .query_one(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(fks, 1, "the foreign key is back after the load");
}

/// The retail schema file with `extra` (a trigger that changes rows as
/// they are written) and a type no table uses: the staged rows differ
/// from the certified ones, so nothing is published; without the trigger
/// the same delivery is published whole, the schema file's other objects
/// with it.
fn retail_schema_with(dir: &Path, extra: &str) -> std::path::PathBuf {
    retail_schema(
        dir,
        &format!("CREATE TYPE ticket_state AS ENUM ('open', 'closed');\n{extra}"),
    )
}

fn staged_cmd(src: &Path, db: &PgDatabase, schema: &Path, work: &Path) -> std::process::Command {
    let mut c = sensei();
    c.arg("migrate")
        .arg("--source")
        .arg(format!("sqlite://{}", src.display()))
        .arg("--target")
        .arg(&db.url)
        .arg("--target-schema")
        .arg(schema)
        .arg("--workdir")
        .arg(work)
        .arg("--approve-all");
    c
}

fn staged_migrate(src: &Path, db: &PgDatabase, schema: &Path, work: &Path) -> std::process::Output {
    run(&mut staged_cmd(src, db, schema, work))
}

#[test]
fn a_staged_delivery_whose_rows_differ_from_the_certificate_is_never_published() {
    let db = PgDatabase::create("staged_bad");
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let schema = retail_schema_with(
        dir.path(),
        "CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.city := upper(NEW.city); RETURN NEW; END $$;\n\
         CREATE TRIGGER shout BEFORE INSERT ON customer FOR EACH ROW EXECUTE FUNCTION shout();\n",
    );
    let work = dir.path().join("w");
    let out = staged_migrate(&src, &db, &schema, &work);
    assert_exit(&out, 2);
    let mig = migration_with(&work, "receipt.json");
    let receipt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mig.join("receipt.json")).unwrap()).unwrap();
    assert_eq!(receipt["tables"]["customer"]["matches_certificate"], false);
    assert_eq!(
        receipt["staging"]["published"], false,
        "{}",
        receipt["staging"]
    );
    let area = receipt["staging"]["area"].as_str().unwrap().to_string();
    let mut c = db.client();
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"),
        0,
        "nothing published into the target"
    );
    // The staged rows are there to inspect, trigger's work included.
    assert_eq!(
        count(
            &mut c,
            &format!("SELECT count(*) FROM {area}.customer WHERE city <> upper(city)")
        ),
        0
    );
    assert!(count(&mut c, &format!("SELECT count(*) FROM {area}.order_line")) > 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&area) && err.contains("nothing was published"),
        "{err}"
    );
}

#[test]
fn a_staged_delivery_is_published_whole_with_the_schema_files_objects() {
    let db = PgDatabase::create("staged_ok");
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let schema = retail_schema_with(dir.path(), "");
    let work = dir.path().join("w");
    assert_exit(&staged_migrate(&src, &db, &schema, &work), 0);
    let mig = migration_with(&work, "receipt.json");
    let receipt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mig.join("receipt.json")).unwrap()).unwrap();
    assert_eq!(
        receipt["staging"]["published"], true,
        "{}",
        receipt["staging"]
    );
    let mut c = db.client();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'sensei_stage_%'"
        ),
        0,
        "the staging schema is gone"
    );
    for (source, target) in [("customers", "customer"), ("order_lines", "order_line")] {
        let want: i64 = rusqlite::Connection::open(&src)
            .unwrap()
            .query_row(&format!("SELECT count(*) FROM {source}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            count(&mut c, &format!("SELECT count(*) FROM public.{target}")),
            want
        );
    }
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM pg_type WHERE typname = 'ticket_state' AND typnamespace = 'public'::regnamespace"),
        1
    );
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated AND connamespace = 'public'::regnamespace"),
        3
    );
    assert_eq!(
        pg_ledger_rows(&mut c),
        count(&mut c, "SELECT (SELECT count(*) FROM customer) + (SELECT count(*) FROM product) + (SELECT count(*) FROM purchase_order) + (SELECT count(*) FROM order_line)")
    );
    // Delivery was planned while verification ran, not after it.
    let planned = state_query(
        &work,
        "SELECT min(id) FROM events WHERE message LIKE 'phase delivery started%'",
    )
    .unwrap();
    let certified = state_query(
        &work,
        "SELECT min(id) FROM events WHERE message LIKE 'checkpoint verification:%'",
    )
    .unwrap();
    assert!(
        planned < certified,
        "delivery planned at {planned}, certificate at {certified}"
    );
}

/// A session killed inside the publishing transaction: the target is as it
/// was (no table, no ledger row), the staged rows whole; the rerun
/// publishes them, every row once.
#[test]
fn a_kill_during_publication_leaves_the_target_old_and_the_rerun_publishes_once() {
    let db = PgDatabase::create("staged_kill");
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let schema = retail_schema_with(dir.path(), "");
    let work = dir.path().join("w");
    // The target's ledger exists (another migration's) and is locked: the
    // publication blocks on it after it has moved the tables.
    let mut locker = db.client();
    locker
        .batch_execute(
            "CREATE TABLE sensei_delivery_ledger (migration_id text NOT NULL, partition_id text NOT NULL, batch_seq bigint NOT NULL,
                 attempt integer NOT NULL, rows bigint NOT NULL, delivered_at timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (migration_id, partition_id, batch_seq))",
        )
        .unwrap();
    locker
        .batch_execute("BEGIN; LOCK TABLE sensei_delivery_ledger IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let mut child = staged_cmd(&src, &db, &schema, &work)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let blocked = |c: &mut postgres::Client| {
        count(c, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%sensei_delivery_ledger%'")
    };
    let mut watcher = db.client();
    wait_until(
        180,
        "the publication to block inside its transaction",
        || blocked(&mut watcher) > 0,
    );
    // Inside the transaction the tables are moved already; nobody else sees it.
    assert_eq!(
        count(
            &mut watcher,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        1,
        "only the ledger, before the publication commits"
    );
    kill(child.id(), "KILL");
    let _ = child.wait();
    locker.batch_execute("ROLLBACK").unwrap();
    wait_until(30, "the killed session's transaction to end", || {
        blocked(&mut watcher) == 0
            && count(&mut watcher, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'") == 0
    });
    assert_eq!(
        count(
            &mut watcher,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        1,
        "the target is as it was"
    );
    assert_eq!(pg_ledger_rows(&mut watcher), 0);
    let staged = count(
        &mut watcher,
        "SELECT count(*) FROM pg_tables WHERE schemaname LIKE 'sensei_stage_%' AND tablename IN ('customer', 'product', 'purchase_order', 'order_line')",
    );
    assert_eq!(staged, 4, "the staged tables are whole");
    drop(locker);
    assert_exit(&staged_migrate(&src, &db, &schema, &work), 0);
    let want: i64 = retail_counts(&src).iter().map(|(_, n)| n).sum();
    assert_eq!(
        count(&mut watcher, "SELECT (SELECT count(*) FROM customer) + (SELECT count(*) FROM product) + (SELECT count(*) FROM purchase_order) + (SELECT count(*) FROM order_line)"),
        want,
        "every row once"
    );
    assert_eq!(pg_ledger_rows(&mut watcher), want);
    assert_eq!(
        count(
            &mut watcher,
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'sensei_stage_%'"
        ),
        0
    );
}
