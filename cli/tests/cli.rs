//! The binaries' argument handling. (Integration tests in this package also
//! make `cargo test` build the `sensei` and `sensei-cluster` executables that
//! the end-to-end tests in `tests/` run.)

use std::process::Command;

#[test]
fn help_lists_the_commands() {
    let out = Command::new(env!("CARGO_BIN_EXE_sensei"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("migrate") && text.contains("certificate"),
        "{text}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_sensei-cluster"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for c in ["up", "status", "submit", "down"] {
        assert!(text.contains(c), "{text}");
    }
}

#[test]
fn verify_of_a_missing_or_foreign_file_exits_1() {
    let out = Command::new(env!("CARGO_BIN_EXE_sensei"))
        .args(["certificate", "verify", "/nonexistent/certificate.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let dir = std::env::temp_dir().join(format!("sensei-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("c.json");
    std::fs::write(&f, "{\"payload\": {}, \"signature\": \"00\"}").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sensei"))
        .args(["certificate", "verify"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn migrate_without_source_says_what_is_missing() {
    let cwd = std::env::temp_dir().join(format!("sensei-cli-cwd-{}", std::process::id()));
    std::fs::create_dir_all(&cwd).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sensei"))
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--source"));
    // An engine this build lacks, a missing file, and a real server refusing
    // the password: all are clear errors, and none shows the password.
    for (source, expect) in [
        (
            "oracle://scott:secret@127.0.0.1/orcl",
            "expected sqlite://PATH",
        ),
        (
            "csv:///nonexistent-folder/data.csv",
            "cannot read source /nonexistent-folder/data.csv",
        ),
        (
            "mysql://nosuchuser:secret@127.0.0.1:3306/nosuchdb",
            "connecting to mysql://nosuchuser:***@",
        ),
        (
            "postgresql://nosuchuser:secret@127.0.0.1:5432/nosuchdb",
            "connecting to postgresql://nosuchuser:***@",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_sensei"))
            .args([
                "migrate",
                "--source",
                source,
                "--target",
                "sqlite:///tmp/x.db",
            ])
            .current_dir(&cwd)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{err}");
        assert!(
            !err.contains("secret"),
            "credentials must not leak into errors: {err}"
        );
    }
    assert!(
        !cwd.join(".sensei").exists(),
        "a refused migration leaves no working folder behind"
    );
    let _ = std::fs::remove_dir_all(&cwd);
}
