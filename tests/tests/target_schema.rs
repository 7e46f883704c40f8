//! The target schema read where users keep it: in the deployed database
//! (`target.schema = @target` on PostgreSQL and MariaDB, with enum, domain
//! and SET types, views, functions and triggers beside the tables) and in
//! the dumps of that database (`pg_dump --schema-only`, `mysqldump
//! --no-data`), which give the same plan.

use std::path::Path;
use std::process::Command;

use sensei_tests::*;

/// The retail example's modern schema as a new application would deploy it
/// in PostgreSQL: enum and domain types, a view, a trigger function.
const MODERN_PG: &str = "
CREATE TYPE order_status AS ENUM ('new', 'paid', 'shipped', 'cancelled');
CREATE DOMAIN amount AS numeric(12,2) CHECK (VALUE >= 0);
CREATE DOMAIN short_text AS varchar(40);
CREATE TABLE customer (id bigint PRIMARY KEY, first_name short_text NOT NULL, last_name short_text NOT NULL,
  email varchar(120), date_of_birth date, phone_number varchar(20), city short_text, created_at timestamp NOT NULL);
CREATE TABLE product (id bigint PRIMARY KEY, sku char(8) NOT NULL, name varchar(80) NOT NULL,
  unit_price amount NOT NULL, quantity_on_hand integer NOT NULL, discontinued boolean NOT NULL DEFAULT false);
CREATE TABLE purchase_order (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customer (id),
  ordered_at timestamp NOT NULL, status order_status NOT NULL, total_amount amount NOT NULL, note text);
CREATE TABLE order_line (order_id bigint NOT NULL REFERENCES purchase_order (id), line_number integer NOT NULL,
  product_id bigint NOT NULL REFERENCES product (id), quantity integer NOT NULL, unit_price amount NOT NULL,
  PRIMARY KEY (order_id, line_number));
CREATE VIEW big_order AS SELECT id, total_amount FROM purchase_order WHERE total_amount > 1000;
CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- a body with ; and quotes ' inside
  NEW.note := coalesce(NEW.note, '');
  RETURN NEW;
END $$;
CREATE TRIGGER purchase_order_stamp BEFORE INSERT ON purchase_order FOR EACH ROW EXECUTE FUNCTION stamp();
CREATE INDEX purchase_order_by_customer ON purchase_order (customer_id);
";

/// The same in MariaDB: ENUM and SET types, a view and a trigger.
const MODERN_MY: &str = "
CREATE TABLE customer (id bigint PRIMARY KEY, first_name varchar(40) NOT NULL, last_name varchar(40) NOT NULL,
  email varchar(120), date_of_birth date, phone_number varchar(20), city varchar(40), created_at datetime NOT NULL,
  tags SET('vip', 'press') NULL);
CREATE TABLE product (id bigint PRIMARY KEY, sku char(8) NOT NULL, name varchar(80) NOT NULL,
  unit_price decimal(10,2) NOT NULL, quantity_on_hand int NOT NULL, discontinued boolean NOT NULL DEFAULT false);
CREATE TABLE purchase_order (id bigint PRIMARY KEY, customer_id bigint NOT NULL, ordered_at datetime NOT NULL,
  status ENUM('new', 'paid', 'shipped', 'cancelled') NOT NULL, total_amount decimal(12,2) NOT NULL, note text,
  CONSTRAINT fk_customer FOREIGN KEY (customer_id) REFERENCES customer (id));
CREATE TABLE order_line (order_id bigint NOT NULL, line_number int NOT NULL, product_id bigint NOT NULL,
  quantity int NOT NULL, unit_price decimal(10,2) NOT NULL, PRIMARY KEY (order_id, line_number),
  CONSTRAINT fk_order FOREIGN KEY (order_id) REFERENCES purchase_order (id),
  CONSTRAINT fk_product FOREIGN KEY (product_id) REFERENCES product (id));
CREATE VIEW big_order AS SELECT id, total_amount FROM purchase_order WHERE total_amount > 1000;
CREATE TRIGGER purchase_order_note BEFORE INSERT ON purchase_order FOR EACH ROW SET NEW.note = coalesce(NEW.note, '');
";

/// `sensei plan` of the retail source onto `target` with `schema`
/// (`@target` or a file); returns the plan's table, lines naming paths left out.
fn plan(dir: &Path, tag: &str, src: &Path, target: &str, schema: &str) -> String {
    let out = run(sensei()
        .arg("plan")
        .arg("--source")
        .arg(format!("sqlite://{}", src.display()))
        .arg("--target")
        .arg(target)
        .arg("--set")
        .arg(format!("target.schema={schema}"))
        .arg("--workdir")
        .arg(dir.join(format!("w-{tag}"))));
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "{tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains('/') && !l.starts_with("progress") && !l.starts_with("migration "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The plan onto a schema file, into a SQLite target of its own.
fn plan_from_file(dir: &Path, src: &Path, schema: &Path) -> String {
    let target = format!("sqlite://{}", dir.join("t.db").display());
    plan(dir, "dump", src, &target, &schema.display().to_string())
}

fn assert_retail_plan(tag: &str, plan: &str) {
    for (target, source) in [
        ("customer.first_name", "customers.cust_fname"),
        ("product.unit_price", "products.unit_price"),
        ("purchase_order.status", "orders.ord_status"),
        ("purchase_order.total_amount", "orders.ord_total"),
        ("order_line.line_number", "order_lines.line_no"),
    ] {
        let line = plan
            .lines()
            .find(|l| l.starts_with(&format!("{target} ")))
            .unwrap_or_else(|| panic!("{tag}: no entry {target}:\n{plan}"));
        assert!(line.contains(source), "{tag}: {line}");
    }
    assert!(
        !plan.contains("big_order"),
        "{tag}: a view is no target table:\n{plan}"
    );
}

#[test]
fn a_deployed_postgres_schema_and_its_pg_dump_give_the_same_plan() {
    let db = PgDatabase::create("modern_pg");
    db.client().batch_execute(MODERN_PG).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let live = plan(dir.path(), "live", &src, &db.url, "@target");
    assert_retail_plan("@target", &live);
    // Planning writes nothing into the target (no ledger before a batch).
    assert_eq!(pg_ledger_rows(&mut db.client()), 0);
    let ledger: bool = db
        .client()
        .query_one("SELECT to_regclass('sensei_delivery_ledger') IS NULL", &[])
        .unwrap()
        .get(0);
    assert!(ledger, "sensei plan created the ledger in the target");

    let dump = dir.path().join("schema.sql");
    let out = run(Command::new("pg_dump")
        .args(["--schema-only", "--no-owner", "-f"])
        .arg(&dump)
        .arg(&db.url));
    assert_exit(&out, 0);
    let text = std::fs::read_to_string(&dump).unwrap();
    assert!(text.contains("CREATE FUNCTION") && text.contains("ALTER TABLE ONLY"));
    let from_dump = plan_from_file(dir.path(), &src, &dump);
    assert_eq!(live, from_dump, "@target and pg_dump plan differently");
}

#[test]
fn a_deployed_mariadb_schema_and_its_mysqldump_give_the_same_plan() {
    use mysql::prelude::Queryable;
    let db = MyDatabase::create("modern_my");
    let mut conn = db.conn();
    for st in MODERN_MY.split(";\n").filter(|s| !s.trim().is_empty()) {
        conn.query_drop(st).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let src = retail_source(dir.path(), 1);
    let live = plan(dir.path(), "live", &src, &db.url, "@target");
    assert_retail_plan("@target", &live);
    let ledger: Vec<String> = conn
        .query("SHOW TABLES LIKE 'sensei_delivery_ledger'")
        .unwrap();
    assert!(
        ledger.is_empty(),
        "sensei plan created the ledger in the target"
    );

    let out = run(Command::new("mysqldump")
        .args([
            "--no-data",
            "--routines",
            "--triggers",
            "-h",
            "127.0.0.1",
            "-P",
            "3306",
            "-u",
            "root",
        ])
        .arg(&db.name));
    assert_exit(&out, 0);
    let dump = dir.path().join("schema.sql");
    std::fs::write(&dump, &out.stdout).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("DELIMITER ;;") && text.contains("/*!"),
        "{text}"
    );
    let from_dump = plan_from_file(dir.path(), &src, &dump);
    assert_eq!(live, from_dump, "@target and mysqldump plan differently");
}
