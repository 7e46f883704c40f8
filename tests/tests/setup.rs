//! The README's set-up is what CI does: the package line names exactly the
//! packages `.ci/run` installs, and the README's two commands share one
//! build (the same cargo targets, the same target folder).

use std::collections::BTreeSet;
use std::path::Path;

fn read(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The shell commands of the README's fenced `sh` blocks in its "Set up" section.
fn setup_commands(readme: &str) -> Vec<String> {
    let start = readme
        .find("## Set up")
        .expect("README has a Set up section");
    let section = &readme[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    let mut out = Vec::new();
    let mut inside = false;
    for line in section[..end].lines() {
        match line.trim() {
            "```sh" => inside = true,
            "```" => inside = false,
            l if inside && !l.is_empty() && !l.starts_with('#') => out.push(l.to_string()),
            _ => {}
        }
    }
    out
}

#[test]
fn readme_package_line_and_ci_install_the_same_packages() {
    let readme = read("README.md");
    let commands = setup_commands(&readme);
    let line = commands
        .iter()
        .find(|c| c.contains("apt-get install"))
        .expect("the README's set-up has one apt-get install line");
    let readme_pkgs: BTreeSet<&str> = line
        .split_whitespace()
        .skip_while(|w| *w != "install")
        .skip(1)
        .filter(|w| !w.starts_with('-'))
        .collect();
    let ci = read(".ci/run");
    let ci_line = ci
        .lines()
        .find(|l| l.starts_with("PACKAGES="))
        .expect(".ci/run names its packages in one PACKAGES= line");
    let ci_pkgs: BTreeSet<&str> = ci_line["PACKAGES=".len()..]
        .trim_matches('"')
        .split_whitespace()
        .collect();
    assert!(!ci_pkgs.is_empty());
    assert_eq!(
        readme_pkgs, ci_pkgs,
        "the README's package line and .ci/run's PACKAGES differ"
    );
    assert!(
        ci.contains("for p in $PACKAGES") && ci.contains("apt-get install"),
        ".ci/run installs what PACKAGES names"
    );
}

#[test]
fn readme_commands_share_one_build() {
    let readme = read("README.md");
    let commands = setup_commands(&readme);
    assert!(
        commands.iter().any(|c| c == "examples/retail/run"),
        "{commands:?}"
    );
    let test = commands
        .iter()
        .find(|c| c.starts_with("cargo test"))
        .expect("a test command");
    assert_eq!(test, "cargo test --workspace");
    let ci = read(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == test),
        ".ci/run runs the README's test command as typed"
    );
    // The example builds the same targets as `cargo test --workspace` (so
    // features unify the same way) and never picks a target folder of its
    // own: both land wherever cargo puts them.
    let run = read("examples/retail/run");
    assert!(
        run.contains("cargo build --quiet --workspace --all-targets"),
        "{run}"
    );
    for own in [
        "CARGO_TARGET_DIR=",
        "--target-dir",
        "CARGO_BUILD_TARGET_DIR",
    ] {
        assert!(
            !run.contains(own),
            "examples/retail/run sets its own target folder ({own})"
        );
    }
    assert!(
        run.contains("target_directory"),
        "the example finds its binaries where cargo built them"
    );
    // A workspace config choosing a target folder would apply to both; one
    // choosing it per command would not exist in cargo: nothing else to check.
}
