//! exhibit-drill finds its drills, profiles and YARA rules at run time, never in the
//! source tree it was built from: a copy of the binary outside any checkout finds none
//! and names the places it searched; `EXHIBIT_DATA_DIR`, `--data-dir` or an installed
//! `share/exhibit` beside it make it work (docs/playbooks.md, "Where the drills are
//! found").

use crate::support::{bin, root, run};
use std::path::Path;
use std::process::{Command, Output};

/// The copied binary with none of the data variables of the caller's environment.
fn drill(exe: &Path) -> Command {
    let mut c = Command::new(exe);
    for var in [
        "EXHIBIT_DATA_DIR",
        "EXHIBIT_DRILLS",
        "EXHIBIT_PROFILES",
        "EXHIBIT_YARA",
    ] {
        c.env_remove(var);
    }
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The names of the checkout's drills, as `list` prints them first on each line.
fn shipped() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("playbooks/drills"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn listed(out: &Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "list failed: {}\n{}",
        out.status,
        text(&out.stderr)
    );
    text(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_drill_binary_outside_the_checkout_finds_its_data_only_at_run_time() {
    for d in ["/usr/local/share/exhibit", "/usr/share/exhibit"] {
        assert!(
            !Path::new(d).exists(),
            "{d} exists: this test needs a machine without an installed data directory"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    assert!(
        !tmp.path().starts_with(root()),
        "temp dir inside the checkout"
    );
    let exe = tmp.path().join("bin/exhibit-drill");
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    std::fs::copy(bin("exhibit-drill"), &exe).unwrap();

    // Nothing found: exit 2, one error line, the places searched, what to do.
    for args in [&["list"][..], &["run", "webshell"][..]] {
        let out = run(drill(&exe).args(args));
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
        let err = text(&out.stderr);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines.first().copied(),
            Some("error: no exhibit data directory (drills, profiles, YARA rules) found"),
            "{err}"
        );
        let searched = lines.get(1).copied().unwrap_or_default();
        assert!(searched.starts_with("hint: searched "), "{err}");
        for place in [
            "--data-dir (not given)".to_string(),
            "EXHIBIT_DATA_DIR (not set)".to_string(),
            tmp.path().join("share/exhibit").display().to_string(),
            format!(
                "playbooks/drills in {} and each directory above it",
                tmp.path().join("bin").display()
            ),
            "/usr/local/share/exhibit".to_string(),
            "/usr/share/exhibit".to_string(),
        ] {
            assert!(searched.contains(&place), "{place:?} not in {searched}");
        }
        assert!(
            lines
                .get(2)
                .is_some_and(|l| l.starts_with("hint: pass --data-dir")),
            "{err}"
        );
    }

    // EXHIBIT_DATA_DIR or --data-dir naming the checkout.
    let out = run(drill(&exe).arg("list").env("EXHIBIT_DATA_DIR", root()));
    assert_eq!(listed(&out), shipped());
    let out = run(drill(&exe).arg("--data-dir").arg(root()).arg("list"));
    assert_eq!(listed(&out), shipped());

    // A directory that holds no drills is refused, not skipped.
    let out = run(drill(&exe).arg("list").env("EXHIBIT_DATA_DIR", tmp.path()));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with(&format!(
            "error: EXHIBIT_DATA_DIR {}: no drills/",
            tmp.path().display()
        )),
        "{}",
        text(&out.stderr)
    );

    // Installed beside the binary: PREFIX/bin/exhibit-drill, PREFIX/share/exhibit/drills.
    let share = tmp.path().join("share/exhibit/drills");
    std::fs::create_dir_all(&share).unwrap();
    for name in shipped() {
        let file = format!("{name}.yaml");
        std::fs::copy(
            root().join("playbooks/drills").join(&file),
            share.join(&file),
        )
        .unwrap();
    }
    let out = run(drill(&exe).arg("list"));
    assert_eq!(listed(&out), shipped());
}

#[test]
fn the_drill_compiles_in_no_source_path() {
    // env!("CARGO_MANIFEST_DIR") in product code would point an installed binary at the
    // build machine's source tree; tests may use it (everything after #[cfg(test)]).
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(root().join("playbooks/src")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let product = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (i, line) in product.lines().enumerate() {
            if line.contains("CARGO_MANIFEST_DIR") {
                hits.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(hits.is_empty(), "{}", hits.join("\n"));
}
