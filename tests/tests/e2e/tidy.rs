//! Repository rules that no compiler checks (rust-analyzer's "tidy" test): the analyzer
//! links no daemon client (invariant 3 of ARCHITECTURE.md), the code is formatted, no
//! test is switched off, the documents exist, and every to-do marker names its issue.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn cargo(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("running cargo {}: {e}", args.join(" ")))
}

/// Every .rs file of the workspace, outside build output and hidden directories.
fn rust_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // file_type() does not follow symlinks, so the walk stays in the repository.
            let ft = entry.file_type().expect("file type");
            if ft.is_dir() {
                if name == "target" || name.starts_with('.') {
                    continue;
                }
                walk(&entry.path(), out);
            } else if ft.is_file() && name.ends_with(".rs") {
                out.push(entry.path());
            }
        }
    }
    let mut out = Vec::new();
    walk(&root(), &mut out);
    out.sort();
    assert!(
        out.iter().any(|p| p.ends_with("common/src/lib.rs")),
        "the walk found no workspace sources under {}",
        root().display()
    );
    out
}

/// `file:line: text` for every line of a .rs file that `bad` flags.
fn offending_lines(bad: impl Fn(&str) -> bool) -> Vec<String> {
    let root = root();
    let mut hits = Vec::new();
    for path in rust_files() {
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for (i, line) in text.lines().enumerate() {
            if bad(line) {
                let shown = path.strip_prefix(&root).unwrap_or(&path);
                hits.push(format!("{}:{}: {}", shown.display(), i + 1, line.trim()));
            }
        }
    }
    hits
}

#[test]
fn analyzer_links_no_daemon_client() {
    let out = cargo(&[
        "tree",
        "-p",
        "exhibit-analyzer",
        "-e",
        "normal",
        "--prefix",
        "none",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let crates: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        crates.contains(&"exhibit-analyzer"),
        "unexpected cargo tree output:\n{stdout}"
    );
    let forbidden = ["bollard", "tonic", "tokio", "containerd-client"];
    let found: Vec<&str> = crates
        .iter()
        .copied()
        .filter(|c| {
            forbidden
                .iter()
                .any(|f| c == f || c.starts_with(&format!("{f}-")))
        })
        .collect();
    assert!(
        found.is_empty(),
        "exhibit-analyzer must stay offline and link no daemon client, but its dependency \
         tree has {found:?}\n(see `cargo tree -p exhibit-analyzer -e normal -i {}`)",
        found[0]
    );
}

#[test]
fn formatting_is_clean() {
    let out = cargo(&["fmt", "--all", "--", "--check"]);
    assert!(
        out.status.success(),
        "`cargo fmt --all -- --check` failed; run `cargo fmt --all`.\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn no_test_is_switched_off() {
    // Built at run time so that this file does not match itself.
    let pattern = ["#[", "ignore"].concat();
    let hits = offending_lines(|line| line.contains(&pattern));
    assert!(
        hits.is_empty(),
        "tests must run (a test that cannot reach a daemon fails, it never skips); remove \
         {pattern}]:\n{}",
        hits.join("\n")
    );
}

#[test]
fn no_test_asserts_on_wall_clock_time() {
    // Speed targets live in scripts/bench, where exhibit runs beside the plain-tool
    // floor; a time limit in a test fails on a loaded CI machine, not on a regression.
    let pattern = [".elapsed()", " <"].concat();
    let hits = offending_lines(|line| line.contains(&pattern));
    assert!(
        hits.is_empty(),
        "timing assertions belong in scripts/bench:\n{}",
        hits.join("\n")
    );
}

#[test]
fn documents_exist() {
    let missing: Vec<&str> = ["README.md", "ARCHITECTURE.md", "docs/bundle-format.md"]
        .into_iter()
        .filter(|doc| {
            std::fs::metadata(root().join(doc))
                .map(|m| !m.is_file() || m.len() == 0)
                .unwrap_or(true)
        })
        .collect();
    assert!(missing.is_empty(), "missing or empty: {missing:?}");
}

/// True when `line` holds `(#N)` with N decimal digits.
fn has_issue_reference(line: &str) -> bool {
    line.match_indices("(#").any(|(i, _)| {
        let rest = &line[i + 2..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && rest[digits..].starts_with(')')
    })
}

#[test]
fn todo_markers_name_their_issue() {
    // Built at run time so that this file does not match itself.
    let markers = [["TO", "DO"].concat(), ["FIX", "ME"].concat()];
    let hits = offending_lines(|line| {
        markers.iter().any(|m| line.contains(m.as_str())) && !has_issue_reference(line)
    });
    assert!(
        hits.is_empty(),
        "{} and {} need an issue reference on the same line, like `(#12)`:\n{}",
        markers[0],
        markers[1],
        hits.join("\n")
    );
}

#[test]
fn issue_reference_shape() {
    assert!(has_issue_reference("// later (#12)"));
    assert!(!has_issue_reference("// later (#)"));
    assert!(!has_issue_reference("// later (#12"));
    assert!(!has_issue_reference("// later #12"));
}

#[test]
fn scripts_find_the_binaries_through_cargo_target_dir() {
    // A machine that builds into CARGO_TARGET_DIR has no ./target/debug: a script that
    // runs a binary from a fixed target/ path would run a stale one or none.
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(root().join("scripts")).expect("scripts/") {
        let path = entry.expect("scripts/ entry").path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            let fixed = ["target/debug/", "target/release/"]
                .iter()
                .any(|t| line.contains(t));
            if fixed && !line.contains("CARGO_TARGET_DIR") && !line.trim_start().starts_with('#') {
                hits.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "use ${{CARGO_TARGET_DIR:-target}}:\n{}",
        hits.join("\n")
    );
}
