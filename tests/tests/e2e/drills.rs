//! Every fire drill, end to end, on Docker and on containerd; and exhibit-drill's
//! handling of bad input, failing and hanging staging steps, interrupts, a missing
//! saved image and a failed drill's kept bundle. These drills are the project's
//! end-to-end suite.

use crate::support;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use support::{analyze, bin, containerd_address, expect_code, run};

const RUNTIMES: [&str; 2] = ["docker", "containerd"];

fn drill() -> Command {
    let mut c = Command::new(bin("exhibit-drill"));
    // The drill runner calls its sibling binaries; build them too.
    let _ = bin("exhibit-collect");
    let _ = bin("exhibit-analyze");
    c.env("CONTAINERD_ADDRESS", containerd_address());
    // This checkout's drills, profiles and YARA rules, also when CARGO_TARGET_DIR
    // lies outside it (exhibit-drill finds its data at run time).
    c.env("EXHIBIT_DATA_DIR", support::root());
    c
}

/// Runs exhibit-drill and returns its pid (drill containers are named
/// `exhibit-drill-NAME-PID`) with its output.
fn run_drill(cmd: &mut Command) -> (u32, Output) {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let pid = child.id();
    (pid, child.wait_with_output().unwrap())
}

/// Drill containers and containerd tasks of the exhibit-drill process `pid` that are
/// still there, on Docker and in the standalone containerd's namespace.
fn leftovers(pid: u32) -> Vec<String> {
    let ours = |n: &str| n.starts_with("exhibit-drill-") && n.ends_with(&format!("-{pid}"));
    let mut left: Vec<String> = Vec::new();
    let docker = run(Command::new("docker").args([
        "ps",
        "-a",
        "--format",
        "{{.Names}}",
        "--filter",
        "label=exhibit-drill=1",
    ]));
    assert!(docker.status.success(), "docker ps failed");
    left.extend(
        String::from_utf8_lossy(&docker.stdout)
            .lines()
            .filter(|n| ours(n))
            .map(|n| format!("docker container {n}")),
    );
    for what in ["containers", "tasks"] {
        let out = run(Command::new("ctr").args([
            "-a",
            &containerd_address(),
            "-n",
            "k8s.io",
            what,
            "ls",
            "-q",
        ]));
        assert!(out.status.success(), "ctr {what} ls failed");
        left.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .filter(|n| ours(n))
                .map(|n| format!("containerd {what}: {n}")),
        );
    }
    left
}

fn cards(rt: &str, out: &Output) -> Vec<serde_json::Value> {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{rt}: scorecard JSON: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn write_drill(dir: &Path, file: &str, yaml: &str) {
    std::fs::write(dir.join(file), yaml).unwrap();
}

/// Runs drill `name` from the playbooks in `dir` on `rt`, which must error (exit 2, one
/// scorecard with result `errored`) and leave no container or task behind; returns
/// the scorecard.
fn run_erroring_drill(dir: &Path, name: &str, rt: &str) -> serde_json::Value {
    let (pid, out) = run_drill(drill().arg("--drills").arg(dir).args([
        "run",
        name,
        "--runtime",
        rt,
        "--format",
        "json",
    ]));
    expect_code(&out, 2, &format!("{rt}: drill {name}"));
    let mut cards = cards(rt, &out);
    assert_eq!(cards[0]["result"], "errored", "{rt}");
    let left = leftovers(pid);
    assert!(left.is_empty(), "{rt}: left after drill {name}: {left:?}");
    cards.swap_remove(0)
}

#[test]
fn every_drill_passes_on_docker_and_containerd() {
    for rt in RUNTIMES {
        let (pid, out) =
            run_drill(drill().args(["run", "--all", "--runtime", rt, "--format", "json"]));
        let cards = cards(rt, &out);
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
        // A passed drill keeps no bundle.
        assert!(cards.iter().all(|c| c["bundle"].is_null()), "{rt}");
        // No drill container or containerd task is left behind.
        let left = leftovers(pid);
        assert!(left.is_empty(), "{rt}: drill containers left: {left:?}");
    }
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
    write_drill(
        dir.path(),
        "fails.yaml",
        "name: fails-staging\ndescription: a staging step that fails\nattack: [T1059.004]\nimage: shell\nstage:\n  - sh: exit 7\nexpect:\n  - {rule: fs.added-executable, subject: x}\n",
    );
    for rt in RUNTIMES {
        let card = run_erroring_drill(dir.path(), "fails-staging", rt);
        let error = card["error"].as_str().unwrap();
        assert!(error.contains("staging step 1 failed"), "{rt}: {error}");
        // Nothing was captured: no bundle path is printed.
        assert!(card["bundle"].is_null(), "{rt}: {card}");
    }
}

#[test]
fn a_staging_step_over_the_budget_is_killed_and_the_drill_errors() {
    let dir = tempfile::tempdir().unwrap();
    write_drill(
        dir.path(),
        "hangs.yaml",
        "name: hangs\ndescription: a staging step that never ends\nattack: [T1059.004]\nimage: shell\nstage:\n  - sh: sleep 600\nexpect:\n  - {rule: fs.added-executable, subject: x}\nbudget_seconds: 10\n",
    );
    for rt in RUNTIMES {
        let card = run_erroring_drill(dir.path(), "hangs", rt);
        assert_eq!(card["over_budget"], true, "{rt}");
        let error = card["error"].as_str().unwrap();
        assert!(
            error.contains("time budget of 10 s ran out"),
            "{rt}: {error}"
        );
    }
}

#[test]
fn sigint_or_sigterm_during_a_drill_removes_its_container() {
    // SIGINT as a terminal's Ctrl-C sends it, to exhibit-drill's whole process group;
    // SIGTERM to exhibit-drill alone, as `kill` does.
    for (rt, sig, target) in [("docker", "INT", "group"), ("containerd", "TERM", "pid")] {
        let dir = tempfile::tempdir().unwrap();
        let mark = tempfile::tempdir().unwrap();
        write_drill(
            dir.path(),
            "slow.yaml",
            &format!(
                "name: slow\ndescription: a staging step that takes long\nattack: [T1059.004]\nimage: shell\nrun:\n  mounts: [\"{}:/mark\"]\nstage:\n  - sh: touch /mark/started && sleep 600\nexpect:\n  - {{rule: fs.added-executable, subject: x}}\nbudget_seconds: 900\n",
                mark.path().display()
            ),
        );
        let mut child = drill()
            .arg("--drills")
            .arg(dir.path())
            .args(["run", "slow", "--runtime", rt, "--format", "json"])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        // Wait until the staging step runs inside the container.
        let started = mark.path().join("started");
        let mut polls = 0;
        while !started.exists() {
            if let Some(st) = child.try_wait().unwrap() {
                let out = child.wait_with_output().unwrap();
                panic!(
                    "{rt}: exhibit-drill ended ({st}) before staging: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            polls += 1;
            assert!(polls < 3000, "{rt}: the staging step never started");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(
            !leftovers(pid).is_empty(),
            "{rt}: the drill container should exist while staging"
        );
        let whom = match target {
            "group" => format!("-{pid}"),
            _ => pid.to_string(),
        };
        let k = run(Command::new("kill").args([&format!("-{sig}"), "--", &whom]));
        assert!(k.status.success());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // DESIGN.md: exit 2 when a drill errored; the interrupted drill is errored.
        assert_eq!(out.status.code(), Some(2), "{rt}: {stderr}");
        let cards = cards(rt, &out);
        assert_eq!(cards.len(), 1, "{rt}");
        assert_eq!(cards[0]["result"], "errored", "{rt}");
        let error = cards[0]["error"].as_str().unwrap();
        assert!(error.contains(&format!("SIG{sig}")), "{rt}: {error}");
        assert!(stderr.contains("interrupted by"), "{rt}: {stderr}");
        let left = leftovers(pid);
        assert!(left.is_empty(), "{rt}: left after SIG{sig}: {left:?}");
    }
}

#[test]
fn a_missing_saved_image_errors_with_a_hint_instead_of_skipping_the_comparison() {
    let empty = tempfile::tempdir().unwrap();
    let (pid, out) = run_drill(
        drill()
            .env("EXHIBIT_FIXTURES", empty.path())
            .args(["run", "webshell", "--format", "json"]),
    );
    assert_eq!(out.status.code(), Some(2));
    let cards = cards("docker", &out);
    assert_eq!(cards[0]["result"], "errored");
    let error = cards[0]["error"].as_str().unwrap();
    assert!(
        error.contains("saved image of fixture \"web\" is missing")
            && error.contains("hint: run scripts/setup"),
        "{error}"
    );
    assert!(leftovers(pid).is_empty());
}

#[test]
fn a_failed_drill_keeps_its_bundle_and_lists_the_other_findings() {
    let dir = tempfile::tempdir().unwrap();
    write_drill(
        dir.path(),
        "misses.yaml",
        "name: misses\ndescription: expects a finding that cannot appear\nattack: [T1059.004]\nimage: shell\nstage:\n  - sh: printf '#!/bin/sh\\n' > /root/evil.sh && chmod 755 /root/evil.sh\nexpect:\n  - {rule: fs.setuid, subject: \"^/root/evil\\\\.sh$\"}\nprofile: shell.yaml\n",
    );
    let (pid, out) = run_drill(
        drill()
            .arg("--drills")
            .arg(dir.path())
            .args(["run", "misses", "--format", "json"]),
    );
    expect_code(&out, 1, "a failed drill");
    let cards = cards("docker", &out);
    let c = &cards[0];
    assert_eq!(c["result"], "failed");
    // The unexpected findings, by rule and subject.
    let other = c["other"].as_array().unwrap();
    assert_eq!(c["other_findings"], other.len());
    assert!(
        other
            .iter()
            .any(|f| f["rule"] == "fs.added-executable" && f["subject"] == "/root/evil.sh"),
        "{other:?}"
    );
    // The bundle is kept, where the scorecard says, and verifies with the key beside it.
    let bundle = Path::new(c["bundle"].as_str().expect("a kept bundle")).to_path_buf();
    let pubkey = Path::new(c["pubkey"].as_str().expect("its public key")).to_path_buf();
    assert!(bundle.is_file() && pubkey.is_file(), "{c}");
    let v = run(analyze()
        .arg("verify")
        .arg(&bundle)
        .arg("--pubkey")
        .arg(&pubkey));
    expect_code(&v, 0, "verify of the kept bundle");
    assert!(leftovers(pid).is_empty());
    // The kept work directory: exhibit-drill-XXXX/misses-docker/bundle/NAME.
    let work = bundle.ancestors().nth(3).unwrap();
    assert!(work
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("exhibit-drill-"));
    std::fs::remove_dir_all(work).unwrap();
}
