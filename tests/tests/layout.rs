//! The workspace's shape is what `docs/architecture.md` says it is: the
//! crate dependency graph drawn there is the one `cargo metadata` reports,
//! the phase engines stay free of the scheduler and of actix, and no crate
//! outgrows a quarter of the workspace.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `cargo metadata` of the workspace's own packages.
fn metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Each workspace crate and the workspace crates it depends on (normal and
/// build dependencies; dev-dependencies are left out).
fn cargo_graph() -> (
    BTreeMap<String, BTreeSet<String>>,
    BTreeMap<String, PathBuf>,
) {
    let doc = metadata();
    let packages = doc["packages"].as_array().unwrap();
    let names: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    let mut graph = BTreeMap::new();
    let mut dirs = BTreeMap::new();
    for p in packages {
        let name = p["name"].as_str().unwrap().to_string();
        let deps: BTreeSet<String> = p["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"].as_str() != Some("dev"))
            .map(|d| d["name"].as_str().unwrap().to_string())
            .filter(|d| names.contains(d))
            .collect();
        let manifest = PathBuf::from(p["manifest_path"].as_str().unwrap());
        dirs.insert(name.clone(), manifest.parent().unwrap().to_path_buf());
        graph.insert(name, deps);
    }
    (graph, dirs)
}

/// The graph as `docs/architecture.md` draws it: between the
/// `crate-graph` markers, one line per crate, "`a` → `b`, `c`".
fn documented_graph() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let start = text
        .find("<!-- crate-graph -->")
        .expect("docs/architecture.md has a crate-graph section");
    let end = text[start..]
        .find("<!-- /crate-graph -->")
        .map(|i| start + i)
        .expect("the crate-graph section ends");
    let mut graph = BTreeMap::new();
    for line in text[start..end].lines() {
        let Some((from, to)) = line.split_once('→') else {
            continue;
        };
        let name = |s: &str| {
            s.trim()
                .trim_start_matches("- ")
                .trim_matches('`')
                .to_string()
        };
        let deps: BTreeSet<String> = to
            .split(',')
            .map(name)
            .filter(|d| !d.is_empty() && d != "(none)")
            .collect();
        graph.insert(name(from), deps);
    }
    graph
}

#[test]
fn the_documented_crate_graph_is_the_one_cargo_builds() {
    let (actual, _) = cargo_graph();
    let documented = documented_graph();
    assert_eq!(
        documented, actual,
        "docs/architecture.md's crate graph differs from cargo metadata"
    );
}

#[test]
fn phase_engines_depend_neither_on_the_scheduler_nor_on_actors() {
    let (graph, _) = cargo_graph();
    // Everything an engine crate reaches, transitively, inside the workspace.
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(c) = todo.pop() {
            for d in &graph[&c] {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen
    };
    for engine in [
        "sensei-contracts",
        "sensei-scout",
        "sensei-architect",
        "sensei-validator",
        "sensei-delivery",
    ] {
        let r = reach(engine);
        for banned in ["sensei-scheduler", "sensei-agents", "sensei-proto"] {
            assert!(!r.contains(banned), "{engine} depends on {banned}");
        }
    }
    // And no engine names actix among its own dependencies.
    for p in metadata()["packages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        if name == "sensei-agents" || name == "sensei-cli" || name == "sensei-tests" {
            continue;
        }
        for d in p["dependencies"].as_array().unwrap() {
            assert_ne!(d["name"], "actix", "{name} depends on actix");
        }
    }
}

/// Lines of a crate's sources outside `#[cfg(test)]` modules.
fn non_test_lines(dir: &Path) -> usize {
    let mut total = 0;
    let mut stack = vec![dir.join("src")];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                // Test modules close their files in this workspace.
                let code = text.split("\n#[cfg(test)]").next().unwrap_or("");
                total += code.lines().count();
            }
        }
    }
    total
}

#[test]
fn no_crate_holds_more_than_a_quarter_of_the_workspace() {
    let (_, dirs) = cargo_graph();
    let sizes: BTreeMap<&String, usize> = dirs
        .iter()
        .filter(|(name, _)| *name != "sensei-tests")
        .map(|(name, dir)| (name, non_test_lines(dir)))
        .collect();
    let total: usize = sizes.values().sum();
    for (name, n) in &sizes {
        assert!(
            *n * 4 <= total,
            "{name} holds {n} of the workspace's {total} non-test lines (over a quarter): split it"
        );
    }
}
