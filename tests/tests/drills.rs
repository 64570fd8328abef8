//! Every fire drill, end to end, on Docker and on containerd; and exhibit-drill's
//! handling of bad input. These drills are the project's end-to-end suite.

mod support;

use std::process::Command;
use support::{bin, containerd_address, run};

fn drill() -> Command {
    let mut c = Command::new(bin("exhibit-drill"));
    // The drill runner calls its sibling binaries; build them too.
    let _ = bin("exhibit-collect");
    let _ = bin("exhibit-analyze");
    c.env("CONTAINERD_ADDRESS", containerd_address());
    c
}

#[test]
fn every_drill_passes_on_docker_and_containerd() {
    for rt in ["docker", "containerd"] {
        let out = run(drill().args(["run", "--all", "--runtime", rt, "--format", "json"]));
        let cards: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{rt}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
        assert!(cards.len() >= 10, "{rt}: only {} drills", cards.len());
        let bad: Vec<String> = cards
            .iter()
            .filter(|c| c["result"] != "passed")
            .map(|c| {
                format!(
                    "{} {}: missed {} forbidden {} error {}",
                    c["drill"], c["result"], c["missed"], c["forbidden_raised"], c["error"]
                )
            })
            .collect();
        assert!(bad.is_empty(), "{rt}: {bad:#?}");
        assert_eq!(out.status.code(), Some(0));
        assert!(cards.iter().all(|c| c["bundle_verified"] == true));
    }
    // No drill container is left behind.
    let left = run(Command::new("docker").args([
        "ps",
        "-a",
        "--format",
        "{{.Names}}",
        "--filter",
        "label=exhibit-drill=1",
    ]));
    let left: Vec<String> = String::from_utf8_lossy(&left.stdout)
        .lines()
        .filter(|n| !n.contains("fails-staging"))
        .map(str::to_string)
        .collect();
    assert!(left.is_empty(), "drill containers left: {left:?}");
}

#[test]
fn unknown_drill_lists_the_names_and_exits_2() {
    let out = run(drill().args(["run", "no-such-drill"]));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: no drill named"), "{err}");
    assert!(
        err.contains("hint: drills:") && err.contains("webshell"),
        "{err}"
    );
}

#[test]
fn malformed_playbook_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.yaml"),
        "name: broken\ndescription: x\nattack: [T1]\nimage: web\nstage: [\n",
    )
    .unwrap();
    let out = run(drill().arg("--drills").arg(dir.path()).arg("list"));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.yaml:"), "{err}");
}

#[test]
fn failing_staging_step_errors_the_drill_and_still_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("fails.yaml"),
        "name: fails-staging\ndescription: a staging step that fails\nattack: [T0000]\nimage: shell\nstage:\n  - sh: exit 7\nexpect:\n  - {rule: fs.added-executable, subject: x}\n",
    )
    .unwrap();
    let out = run(drill().arg("--drills").arg(dir.path()).args([
        "run",
        "fails-staging",
        "--format",
        "json",
    ]));
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cards: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cards[0]["result"], "errored");
    assert!(cards[0]["error"]
        .as_str()
        .unwrap()
        .contains("staging step 1 failed"));
    let left = run(Command::new("docker").args([
        "ps",
        "-aq",
        "--filter",
        "name=exhibit-drill-fails-staging",
    ]));
    assert!(
        left.stdout.is_empty(),
        "container left after a failed staging step"
    );
}
