//! # sensei-tests
//!
//! End-to-end tests of Sensei: they run the real `sensei` and `sensei-cluster`
//! binaries against real SQLite files, real processes and real sockets on
//! 127.0.0.1. This library holds their shared helpers: locating the binaries
//! (built by `cargo test --workspace`, because `sensei-cli` has integration tests
//! ), generating the retail source, comparing source and target.

pub mod faults;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Path of a workspace binary in the same target folder as the running test.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/debug/deps/<test> -> target/debug/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run the suite with `cargo test --workspace`, which builds them",
        path.display()
    );
    path
}

/// The Python of the tests' virtual environment, created on first use from
/// `tests/requirements.txt` (PyPI) in `$HOME/.cache/sensei/py-venv`, so that
/// `cargo test --workspace` needs only `python3` on the machine. Test
/// processes run in parallel: a lock file makes one of them create it while
/// the others wait; a marker holding the requirements says it is complete.
pub fn python() -> PathBuf {
    let requirements = Path::new(env!("CARGO_MANIFEST_DIR")).join("requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).expect("tests/requirements.txt");
    let home = std::env::var("HOME").expect("HOME");
    let cache = Path::new(&home).join(".cache/sensei");
    std::fs::create_dir_all(&cache).expect("create ~/.cache/sensei");
    let venv = cache.join("py-venv");
    let python = venv.join("bin/python");
    let marker = venv.join("sensei-requirements.txt");
    let ready = || std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted);
    if ready() {
        return python;
    }
    let lock = std::fs::File::create(cache.join("py-venv.lock")).expect("lock file");
    lock.lock().expect("lock the venv");
    if !ready() {
        let _ = std::fs::remove_dir_all(&venv);
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 is needed by the tests");
        assert!(made.success(), "python3 -m venv {} failed", venv.display());
        let out = Command::new(&python)
            .args(["-m", "pip", "install", "-q", "-r"])
            .arg(&requirements)
            .output()
            .expect("pip");
        assert!(
            out.status.success(),
            "pip install -r {} failed (PyPI must be reachable):\n{}",
            requirements.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&marker, &wanted).expect("write the venv marker");
    }
    python
}

/// Runs a command to completion, with its output.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    eprintln!(
        "$ {:?}\n--- exit {:?}\n--- stdout\n{}--- stderr\n{}",
        cmd,
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A `sensei` command.
pub fn sensei() -> Command {
    Command::new(bin("sensei"))
}

/// A `sensei` command whose Worker damages partition 0 of a table's
/// transformed output: `fault` is `<kind>[:<arg>]@<table>` (see [`faults`]).
pub fn sensei_with_fault(fault: &str) -> Command {
    let mut c = Command::new(bin("sensei-faults"));
    c.env("SENSEI_FAULT", fault);
    c
}

/// `sensei migrate --source SOURCE --target TARGET --workdir WORK`, to add
/// options to and [`run`].
pub fn migrate_cmd(source: &str, target: &str, work: &Path) -> Command {
    let mut c = sensei();
    c.args(["migrate", "--source", source, "--target", target])
        .arg("--workdir")
        .arg(work);
    c
}

/// Asserts that `out` exited with `code`, showing its standard error otherwise.
pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The tables of the retail example.
pub const RETAIL_TABLES: [&str; 4] = ["customers", "products", "orders", "order_lines"];

/// Per retail table, its rows in the SQLite database `src`.
pub fn retail_counts(src: &Path) -> Vec<(&'static str, i64)> {
    let s = rusqlite::Connection::open(src).expect("open the retail source");
    RETAIL_TABLES
        .iter()
        .map(|t| {
            let n = s
                .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
                .expect("count");
            (*t, n)
        })
        .collect()
}

/// The rows the delivery ledgers of the SQLite target `target` hold: its
/// own and, while a delivery is staged, its staging file's beside it.
pub fn sqlite_ledger_rows(target: &Path) -> i64 {
    let name = target.file_name().unwrap().to_string_lossy().to_string();
    let staged = std::fs::read_dir(target.parent().unwrap())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            n.starts_with(&format!(".{name}.sensei_stage_"))
                && !n.ends_with("-wal")
                && !n.ends_with("-shm")
        });
    std::iter::once(target.to_path_buf())
        .chain(staged)
        .filter_map(|p| {
            rusqlite::Connection::open_with_flags(&p, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .ok()?
                .query_row(
                    "SELECT coalesce(sum(rows), 0) FROM sensei_delivery_ledger",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .ok()
        })
        .sum()
}

/// The retail example's target schema file with `extra` appended, written
/// as `dir/schema.sql`.
pub fn retail_schema(dir: &Path, extra: &str) -> PathBuf {
    let schema = dir.join("schema.sql");
    let base = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/retail/schema.sql"),
    )
    .expect("the retail example's schema");
    std::fs::write(&schema, base + "\n" + extra).expect("write schema.sql");
    schema
}

/// `sensei diff A B --json --chunk-keys CHUNK EXTRA..`: its exit code and,
/// for each of `tables`, that table's entry of the JSON report.
pub fn sensei_diff(
    a: &str,
    b: &str,
    chunk_keys: u64,
    extra: &[&str],
    tables: &[&str],
) -> (Option<i32>, Vec<serde_json::Value>) {
    let out = run(sensei()
        .args([
            "diff",
            a,
            b,
            "--json",
            "--chunk-keys",
            &chunk_keys.to_string(),
        ])
        .args(extra));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    let entry = |name: &&str| {
        doc.as_array()
            .expect("a list of tables")
            .iter()
            .find(|t| t["table"] == *name)
            .unwrap_or_else(|| panic!("no table {name} in {doc}"))
            .clone()
    };
    (out.status.code(), tables.iter().map(entry).collect())
}

/// A `sensei-cluster` command rooted at `dir`.
pub fn cluster(dir: &Path) -> Command {
    let mut c = Command::new(bin("sensei-cluster"));
    c.arg("--dir").arg(dir);
    c
}

/// Writes the retail source database (small size) and returns its path.
pub fn retail_source(dir: &Path, scale: u64) -> PathBuf {
    let p = dir.join("retail.db");
    sensei_bench::retail::generate(&p, sensei_bench::retail::RetailSize::scaled(scale), 42)
        .expect("generate");
    p
}

/// The migration folder under the working folder `work` that holds `artifact`.
pub fn migration_with(work: &Path, artifact: &str) -> PathBuf {
    std::fs::read_dir(work)
        .unwrap_or_else(|e| panic!("{}: {e}", work.display()))
        .flatten()
        .find(|e| e.path().join(artifact).exists())
        .unwrap_or_else(|| panic!("no migration under {} holds {artifact}", work.display()))
        .path()
}

/// Writes a migration config and returns its path.
pub fn write_config(dir: &Path, source: &Path, target: &Path, extra: &str) -> PathBuf {
    let p = dir.join("migration.toml");
    let text = format!(
        "[migration]\nname = \"retail\"\n[source]\nurl = \"sqlite://{}\"\n[target]\nurl = \"sqlite://{}\"\n[runtime]\nworkdir = \"{}\"\n{extra}\n",
        source.display(),
        target.display(),
        dir.join("work").display()
    );
    std::fs::write(&p, text).expect("write config");
    p
}

/// The user tables of a SQLite file (the ledger excluded).
pub fn tables(db: &Path) -> Vec<String> {
    let c = rusqlite::Connection::open(db).expect("open");
    let mut s = c
        .prepare("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' AND name != 'sensei_delivery_ledger' ORDER BY name")
        .expect("prepare");
    let rows = s.query_map([], |r| r.get(0)).expect("query");
    rows.map(|r| r.expect("row")).collect()
}

/// Asserts that every table of `source` is in `target` with exactly the same
/// rows, each exactly once (compared as multisets with SQL).
pub fn assert_same_rows(source: &Path, target: &Path) {
    let c = rusqlite::Connection::open(target).expect("open target");
    c.execute("ATTACH DATABASE ?1 AS src", [source.display().to_string()])
        .expect("attach");
    let names = tables(source);
    assert!(!names.is_empty());
    for t in names {
        // Compare logical values: timestamps are written back in one canonical
        // text form (`YYYY-MM-DD HH:MM:SS[.ffffff]`), so compare them as instants.
        let cols: Vec<String> = {
            let mut st = c
                .prepare(&format!(
                    "SELECT name, type FROM pragma_table_info('{t}', 'src')"
                ))
                .expect("pragma");
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .expect("columns");
            rows.map(|r| {
                let (name, ty) = r.expect("column");
                let ty = ty.to_ascii_uppercase();
                if ty.contains("DECIMAL(") || ty.contains("NUMERIC(") {
                    // Decimals land as exact text; a REAL source value compares by value.
                    format!("CAST(\"{name}\" AS REAL)")
                } else if ty.contains("DATETIME") || ty.contains("TIMESTAMP") {
                    format!("strftime('%Y-%m-%d %H:%M:%f', \"{name}\")")
                } else {
                    format!("\"{name}\"")
                }
            })
            .collect()
        };
        let list = cols.join(", ");
        let q = |sql: String| -> i64 {
            c.query_row(&sql, [], |r| r.get(0))
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        };
        let src_n = q(format!("SELECT count(*) FROM src.\"{t}\""));
        let dst_n = q(format!("SELECT count(*) FROM main.\"{t}\""));
        assert_eq!(
            src_n, dst_n,
            "table {t}: source has {src_n} rows, target {dst_n}"
        );
        let missing = q(format!(
            "SELECT count(*) FROM (SELECT {list} FROM src.\"{t}\" EXCEPT SELECT {list} FROM main.\"{t}\")"
        ));
        let extra = q(format!(
            "SELECT count(*) FROM (SELECT {list} FROM main.\"{t}\" EXCEPT SELECT {list} FROM src.\"{t}\")"
        ));
        assert_eq!(
            (missing, extra),
            (0, 0),
            "table {t}: {missing} rows missing, {extra} rows extra"
        );
        let distinct = q(format!(
            "SELECT count(*) FROM (SELECT DISTINCT * FROM main.\"{t}\")"
        ));
        let src_distinct = q(format!(
            "SELECT count(*) FROM (SELECT DISTINCT * FROM src.\"{t}\")"
        ));
        assert_eq!(
            distinct, src_distinct,
            "table {t}: duplicated rows in the target"
        );
    }
}

/// One value from the scheduler's state database (read while it is in use).
pub fn state_query(workdir: &Path, sql: &str) -> Option<i64> {
    let c = rusqlite::Connection::open_with_flags(
        workdir.join("state.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .ok()?;
    c.busy_timeout(Duration::from_secs(5)).ok()?;
    c.query_row(sql, [], |r| r.get(0)).ok()
}

/// Waits until `cond` holds, or panics after `secs` seconds.
pub fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A plain HTTP/1.1 request over a real socket (`Connection: close`):
/// the whole reply (status line, headers, body), or None when nothing
/// answers. `headers` are whole lines (`Authorization: Bearer ...`).
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        request += &format!("{h}\r\n");
    }
    if !body.is_empty() {
        request += &format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    request += "\r\n";
    request += body;
    s.write_all(request.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// A plain HTTP/1.1 GET over a real socket; see [`http_request`].
pub fn http_get(addr: &str, path: &str) -> Option<String> {
    http_request(addr, "GET", path, &[], "")
}

/// A free port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

/// Sends a signal to a process.
pub fn kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// Validates `doc` against a JSON Schema, for the keywords Sensei's schemas
/// use (`type`, `required`, `properties`, `additionalProperties`, `items`,
/// `prefixItems`, `enum`, `minimum`, `maximum`, `pattern` for hex digests,
/// `$ref` into `$defs`). An unknown keyword is an error, never a silent pass.
/// Returns every violation with its JSON path.
pub fn schema_errors(schema: &serde_json::Value, doc: &serde_json::Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, schema, doc, "$", &mut errors);
    errors
}

fn check(
    root: &serde_json::Value,
    s: &serde_json::Value,
    v: &serde_json::Value,
    path: &str,
    errors: &mut Vec<String>,
) {
    use serde_json::Value;
    let Some(obj) = s.as_object() else {
        errors.push(format!("{path}: schema is not an object"));
        return;
    };
    for (k, rule) in obj {
        match k.as_str() {
            "$schema" | "$id" | "title" | "description" => {}
            "$ref" => {
                let name = rule
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/$defs/"))
                    .unwrap_or("");
                match root["$defs"].get(name) {
                    Some(def) => check(root, def, v, path, errors),
                    None => errors.push(format!("{path}: unresolvable $ref {rule}")),
                }
            }
            "type" => {
                let types: Vec<&str> = match rule {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().filter_map(|t| t.as_str()).collect(),
                    _ => vec![],
                };
                let ok = types.iter().any(|t| match *t {
                    "object" => v.is_object(),
                    "array" => v.is_array(),
                    "string" => v.is_string(),
                    "integer" => v.is_i64() || v.is_u64(),
                    "number" => v.is_number(),
                    "boolean" => v.is_boolean(),
                    "null" => v.is_null(),
                    _ => false,
                });
                if !ok {
                    errors.push(format!("{path}: expected {types:?}, found {v}"));
                }
            }
            "required" => {
                if let Some(o) = v.as_object() {
                    for r in rule
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|r| r.as_str())
                    {
                        if !o.contains_key(r) {
                            errors.push(format!("{path}: missing required key {r}"));
                        }
                    }
                }
            }
            "properties" => {
                if let Some(o) = v.as_object() {
                    for (name, sub) in rule.as_object().into_iter().flatten() {
                        if let Some(x) = o.get(name) {
                            check(root, sub, x, &format!("{path}.{name}"), errors);
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(o) = v.as_object() {
                    let known = obj.get("properties").and_then(|p| p.as_object());
                    for (name, x) in o {
                        if known.is_some_and(|k| k.contains_key(name)) {
                            continue;
                        }
                        match rule {
                            Value::Bool(false) => {
                                errors.push(format!("{path}: unexpected key {name}"))
                            }
                            Value::Object(_) => {
                                check(root, rule, x, &format!("{path}.{name}"), errors)
                            }
                            _ => {}
                        }
                    }
                }
            }
            "items" => {
                for (i, x) in v.as_array().into_iter().flatten().enumerate() {
                    check(root, rule, x, &format!("{path}[{i}]"), errors);
                }
            }
            "prefixItems" => {
                if let Some(a) = v.as_array() {
                    for (i, sub) in rule.as_array().into_iter().flatten().enumerate() {
                        if let Some(x) = a.get(i) {
                            check(root, sub, x, &format!("{path}[{i}]"), errors);
                        }
                    }
                }
            }
            "enum" => {
                if !rule.as_array().is_some_and(|a| a.contains(v)) {
                    errors.push(format!("{path}: {v} is not one of {rule}"));
                }
            }
            "maxItems" => {
                if let (Some(a), Some(m)) = (v.as_array(), rule.as_u64()) {
                    if a.len() as u64 > m {
                        errors.push(format!("{path}: {} items, at most {m} allowed", a.len()));
                    }
                }
            }
            "minimum" => {
                if v.as_f64().zip(rule.as_f64()).is_some_and(|(x, m)| x < m) {
                    errors.push(format!("{path}: {v} is below {rule}"));
                }
            }
            "maximum" => {
                if v.as_f64().zip(rule.as_f64()).is_some_and(|(x, m)| x > m) {
                    errors.push(format!("{path}: {v} is above {rule}"));
                }
            }
            "pattern" => match rule.as_str() {
                Some("^[0-9a-f]{64}$") => {
                    let ok = v.as_str().is_some_and(|s| {
                        s.len() == 64
                            && s.chars()
                                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
                    });
                    if !ok {
                        errors.push(format!("{path}: {v} is not 64 lower-case hex digits"));
                    }
                }
                other => errors.push(format!(
                    "{path}: pattern {other:?} is not supported by this validator"
                )),
            },
            "$defs" => {}
            other => errors.push(format!(
                "{path}: schema keyword {other} is not supported by this validator"
            )),
        }
    }
}

/// The PostgreSQL server the tests use (this machine's, trust auth).
pub const PG_ADMIN_URL: &str = "postgresql://postgres@127.0.0.1:5432/postgres";

/// A PostgreSQL database created for one test and dropped when this guard goes.
pub struct PgDatabase {
    /// Its name.
    pub name: String,
    /// A URL to it.
    pub url: String,
}

/// Rows the PostgreSQL target's ledger records (0 without a ledger: it is
/// created by the first batch written).
pub fn pg_ledger_rows(c: &mut postgres::Client) -> i64 {
    let exists: bool = c
        .query_one(
            "SELECT to_regclass('sensei_delivery_ledger') IS NOT NULL",
            &[],
        )
        .expect("look up the ledger")
        .get(0);
    if !exists {
        return 0;
    }
    c.query_one(
        "SELECT coalesce(sum(rows), 0)::bigint FROM sensei_delivery_ledger",
        &[],
    )
    .expect("sum the ledger")
    .get(0)
}

impl PgDatabase {
    /// Creates a uniquely named database. Panics (loudly) when the server is unreachable.
    pub fn create(tag: &str) -> PgDatabase {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("sensei_t_{tag}_{}_{n}", std::process::id());
        let mut admin = postgres::Client::connect(PG_ADMIN_URL, postgres::NoTls)
            .unwrap_or_else(|e| panic!("PostgreSQL must run on 127.0.0.1:5432 for this test: {e}"));
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .expect("drop a stale database");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        PgDatabase {
            url: format!("postgresql://postgres@127.0.0.1:5432/{name}"),
            name,
        }
    }

    /// A plain read-write client (for the test's own setup and changes).
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connect")
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(PG_ADMIN_URL, postgres::NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// The MariaDB server the tests use (this machine's, root without password).
pub const MYSQL_ADMIN_URL: &str = "mysql://root@127.0.0.1:3306/mysql";

/// A MariaDB database created for one test and dropped when this guard goes.
pub struct MyDatabase {
    /// Its name.
    pub name: String,
    /// A URL to it.
    pub url: String,
}

impl MyDatabase {
    /// Creates a uniquely named database. Panics (loudly) when the server is unreachable.
    pub fn create(tag: &str) -> MyDatabase {
        use mysql::prelude::Queryable;
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("sensei_t_{tag}_{}_{n}", std::process::id());
        let mut admin = mysql::Conn::new(mysql::Opts::from_url(MYSQL_ADMIN_URL).expect("url"))
            .unwrap_or_else(|e| panic!("MariaDB must run on 127.0.0.1:3306 for this test: {e}"));
        admin
            .query_drop(format!("DROP DATABASE IF EXISTS {name}"))
            .expect("drop a stale database");
        admin
            .query_drop(format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"))
            .expect("create database");
        MyDatabase {
            url: format!("mysql://root@127.0.0.1:3306/{name}"),
            name,
        }
    }

    /// A plain read-write connection (for the test's own setup and changes).
    pub fn conn(&self) -> mysql::Conn {
        mysql::Conn::new(mysql::Opts::from_url(&self.url).expect("url")).expect("connect")
    }
}

impl Drop for MyDatabase {
    fn drop(&mut self) {
        use mysql::prelude::Queryable;
        if let Ok(mut admin) =
            mysql::Conn::new(mysql::Opts::from_url(MYSQL_ADMIN_URL).expect("url"))
        {
            let _ = admin.query_drop(format!("DROP DATABASE IF EXISTS {}", self.name));
        }
    }
}

/// Drops the MariaDB staging databases that the migrations of `workdir`
/// left for inspection (a staged delivery that failed keeps its area): a
/// test cleans up what its own runs created (into the default namespace).
/// Returns how many it dropped.
pub fn drop_mysql_staging(workdir: &Path) -> usize {
    use mysql::prelude::Queryable;
    let prefixes: Vec<String> = std::fs::read_dir(workdir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let id = e.file_name().to_string_lossy().to_string();
            sensei_connectors::target::StagingArea::of(MYSQL_ADMIN_URL, &id, "", "")
                .ok()
                .flatten()
                .map(|a| a.stale_prefix)
        })
        .collect();
    let mut admin = mysql::Conn::new(mysql::Opts::from_url(MYSQL_ADMIN_URL).expect("url"))
        .expect("connect to MariaDB");
    let names: Vec<String> = admin.query("SHOW DATABASES").expect("list databases");
    let mut dropped = 0;
    for name in names {
        if prefixes.iter().any(|p| name.starts_with(p.as_str())) {
            admin
                .query_drop(format!("DROP DATABASE `{name}`"))
                .expect("drop a staging database");
            dropped += 1;
        }
    }
    dropped
}

/// Two MariaDB tables with what a mirror must keep: `authors` (VARCHAR and
/// CHAR widths, a unique key, a secondary index) and `books` (a secondary
/// index and a foreign key to `authors` with ON DELETE CASCADE), 50 rows each.
pub fn bookshop(db: &MyDatabase) {
    use mysql::prelude::Queryable;
    let mut m = db.conn();
    m.query_drop(
        "CREATE TABLE authors (
            id INT PRIMARY KEY,
            name VARCHAR(40) NOT NULL,
            email VARCHAR(120),
            code CHAR(3),
            bio TEXT,
            UNIQUE KEY authors_email (email),
            KEY authors_name (name)
        ) ENGINE=InnoDB;
        CREATE TABLE books (
            id INT PRIMARY KEY,
            author_id INT NOT NULL,
            title VARCHAR(200) NOT NULL,
            KEY books_title (title),
            CONSTRAINT books_author FOREIGN KEY (author_id) REFERENCES authors (id) ON DELETE CASCADE
        ) ENGINE=InnoDB;",
    )
    .expect("bookshop tables");
    for i in 1..=50 {
        m.exec_drop(
            "INSERT INTO authors VALUES (?, ?, ?, ?, ?)",
            (
                i,
                format!("Author {i}"),
                format!("a{i}@example.org"),
                "abc",
                "a life",
            ),
        )
        .expect("author");
    }
    for i in 1..=50 {
        m.exec_drop(
            "INSERT INTO books VALUES (?, ?, ?)",
            (i, (i % 7) + 1, format!("Book {i}")),
        )
        .expect("book");
    }
}

/// A Kafka-protocol broker for the tests: `tansu` (installed by `.ci/run`
/// and by `tools/kafka-broker`; `TANSU` names another binary) on a free
/// port of 127.0.0.1, its log in a SQLite file of its own folder, so that
/// a restart keeps every record. Stopped when dropped. Panics (loudly)
/// when the binary is missing: the Kafka tests never skip.
pub struct KafkaBroker {
    /// `HOST:PORT` to bootstrap from.
    pub address: String,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl KafkaBroker {
    /// Starts a broker and waits until it takes connections.
    pub fn start() -> KafkaBroker {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut broker = KafkaBroker {
            address: format!("127.0.0.1:{port}"),
            port,
            dir: tempfile::tempdir().expect("broker folder"),
            child: None,
        };
        broker.spawn();
        broker
    }

    /// The `runtime.topics` setting that names this broker.
    pub fn topics(&self) -> String {
        format!("kafka://{}", self.address)
    }

    fn binary() -> PathBuf {
        if let Ok(t) = std::env::var("TANSU") {
            return PathBuf::from(t);
        }
        let home = std::env::var("CARGO_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|_| Path::new(&std::env::var("HOME").expect("HOME")).join(".cargo"));
        let installed = home.join("bin/tansu");
        assert!(
            installed.exists(),
            "the Kafka tests need the tansu broker at {}: run .ci/run, or tools/kafka-broker once, or `cargo install tansu --version 0.6.0 --locked --features libsql`",
            installed.display()
        );
        installed
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("broker.log")).expect("broker log");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(Self::binary())
            .current_dir(self.dir.path())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {} within 30 s: {}",
                self.address,
                std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the broker (SIGKILL: nothing is flushed on the way out).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the broker and starts it again on the same port and log.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A retail migration set up in a fresh temporary folder: the source
/// database (scale 1), a target path and a configuration with `extra`
/// appended (TOML); the folder goes when this is dropped.
pub struct RetailSetup {
    /// The folder holding everything.
    pub dir: tempfile::TempDir,
    /// The SQLite source.
    pub src: PathBuf,
    /// The SQLite target (not created).
    pub target: PathBuf,
    /// The configuration file (working folder `<dir>/work`).
    pub cfg: PathBuf,
}

impl RetailSetup {
    /// Writes the source and the configuration.
    pub fn new(extra: &str) -> RetailSetup {
        let dir = tempfile::tempdir().expect("temporary folder");
        let src = retail_source(dir.path(), 1);
        let target = dir.path().join("target.db");
        let cfg = write_config(dir.path(), &src, &target, extra);
        RetailSetup {
            dir,
            src,
            target,
            cfg,
        }
    }

    /// The working folder the configuration names.
    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }
}

/// The shape of a JSON document: every leaf replaced by its type name
/// (but the values of `check` and `status`, which say what a record is),
/// arrays by the distinct shapes of their elements (sorted), object keys
/// that hold a `/` (partition ids, artifact paths: they carry attempt
/// numbers and migration ids) by `<path>`. Two runs of one migration have
/// the same shape; a field added, renamed or retyped changes it.
pub fn json_shape(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(_) => "number".into(),
        Value::String(_) => "string".into(),
        Value::Array(items) => {
            let mut shapes: Vec<Value> = items.iter().map(json_shape).collect();
            shapes.sort_by_key(|s| s.to_string());
            shapes.dedup();
            Value::Array(shapes)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let shape = match v {
                        Value::String(_) if k == "check" || k == "status" => v.clone(),
                        _ => json_shape(v),
                    };
                    let k = if k.contains('/') {
                        "<path>".to_string()
                    } else {
                        k.clone()
                    };
                    (k, shape)
                })
                .collect(),
        ),
    }
}

/// Compares `actual` with the golden file `tests/golden/<name>`; with
/// `SENSEI_BLESS=1` in the environment, writes it instead (review the diff
/// before committing it).
pub fn assert_golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("golden")
        .join(name);
    if std::env::var("SENSEI_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {}: {e} (SENSEI_BLESS=1 writes it)",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs from what the run produced (SENSEI_BLESS=1 rewrites it; review the diff):\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}
