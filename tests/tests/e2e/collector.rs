//! exhibit-collect against real dockerd and containerd: one scenario table drives both
//! runtimes; safety cases run against real containers an attacker could shape.

use crate::support;

use exhibit_common::records::{ChangeKind, ChangeRecord, ProcessRecord, SocketRecord};
use std::collections::BTreeSet;
use std::process::Command;
use support::{
    assert_not_in_bundle, collect, expect_code, jsonl, names_in, ok, records, run, verified,
    verified_unsigned, Container, Rt,
};

const STAGE: &str = r#"set -e
echo pwn > /www/shell.cgi && chmod 755 /www/shell.cgi
rm /www/style.css
mkdir -p /tmp/.cache && ln -s /etc/shadow /tmp/.cache/l
mkfifo /tmp/f
ln /www/shell.cgi /tmp/hard
echo hi > /dev/shm/payload
printf x > "$(printf '/tmp/\377name')"
"#;

fn expected() -> Vec<(Vec<u8>, ChangeKind)> {
    use ChangeKind::*;
    vec![
        (b"/www".to_vec(), Modified),
        (b"/www/shell.cgi".to_vec(), Added),
        (b"/www/style.css".to_vec(), Deleted),
        (b"/tmp".to_vec(), Modified),
        (b"/tmp/.cache".to_vec(), Added),
        (b"/tmp/.cache/l".to_vec(), Added),
        (b"/tmp/f".to_vec(), Added),
        (b"/tmp/hard".to_vec(), Added),
        (b"/tmp/\xffname".to_vec(), Added),
        (b"/dev/shm/payload".to_vec(), Added),
    ]
}

// Paths the runtimes themselves create in a container (mount points, runtime files).
const RUNTIME_PATHS: [&str; 9] = [
    "/dev",
    "/proc",
    "/sys",
    "/run",
    "/etc",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/dev/shm",
];

fn host_busybox_sha256() -> String {
    exhibit_common::hashing::sha256_reader(
        std::fs::File::open("/bin/busybox").expect("host busybox"),
    )
    .expect("hash")
    .0
}

#[test]
fn same_scenario_same_evidence_on_docker_and_containerd() {
    for rt in Rt::ALL {
        let dir = tempfile::tempdir().unwrap();
        let (key, pubkey) = support::keypair(dir.path());
        let c = Container::start(rt, "web", &[]);
        c.sh(STAGE);
        let out_dir = dir.path().join("out");
        std::fs::create_dir(&out_dir).unwrap();
        let (_, bundle) = c.capture_ok(
            &out_dir,
            &[
                "--key",
                key.to_str().unwrap(),
                "--case",
                "INC-42",
                "--examiner",
                "alice",
            ],
        );
        let v = verified(&bundle, &pubkey);
        let m = v.manifest();
        assert_eq!(m.case.as_deref(), Some("INC-42"));
        assert_eq!(m.container.runtime, rt.flag());
        // Both walk an overlay upper dir; containerd's comes from the snapshots service.
        let method = match rt {
            Rt::Docker => "overlay-upperdir",
            Rt::Containerd => "containerd-snapshot",
        };
        assert_eq!(m.fs_method, method);

        let recs = records(&v);
        let got: BTreeSet<(Vec<u8>, ChangeKind)> =
            recs.iter().map(|r| (r.path.0.clone(), r.kind)).collect();
        for e in expected() {
            assert!(
                got.contains(&e),
                "{rt:?}: missing {:?} {:?} in {got:?}",
                String::from_utf8_lossy(&e.0),
                e.1
            );
        }
        let expected_paths: BTreeSet<Vec<u8>> = expected().into_iter().map(|e| e.0).collect();
        for r in &recs {
            let p = r.path.lossy();
            assert!(
                expected_paths.contains(&r.path.0)
                    || RUNTIME_PATHS
                        .iter()
                        .any(|x| p == *x || p.starts_with(&format!("{x}/"))),
                "{rt:?}: unexpected record {p}"
            );
        }
        let by_path = |p: &[u8]| {
            recs.iter()
                .find(|r| r.path.0 == p)
                .unwrap_or_else(|| panic!("no record {}", String::from_utf8_lossy(p)))
        };
        assert_eq!(
            by_path(b"/tmp/.cache/l")
                .link_target
                .as_ref()
                .unwrap()
                .as_bytes(),
            b"/etc/shadow"
        );
        let fifo = by_path(b"/tmp/f");
        assert!(!fifo.captured && fifo.reason.as_deref() == Some("fifo"));
        let (hard, shell) = (by_path(b"/tmp/hard"), by_path(b"/www/shell.cgi"));
        assert_eq!(hard.hardlink_group, shell.hardlink_group);
        assert_eq!(
            shell.hardlink_to.as_ref().map(|m| m.as_bytes().to_vec()),
            Some(b"rootfs/tmp/hard".to_vec())
        );
        assert_eq!(
            hard.sha256.as_deref(),
            Some(exhibit_common::hashing::sha256_hex(b"pwn\n").as_str())
        );
        assert_eq!(
            by_path(b"/www/style.css").member.as_bytes(),
            b"rootfs/www/.wh.style.css"
        );
        assert_eq!(
            by_path(b"/dev/shm/payload").source,
            exhibit_common::records::Source::Tmpfs
        );
        let mut payload = Vec::new();
        v.walk_content(&mut |r, body| {
            if r.path.as_bytes() == b"/dev/shm/payload" {
                body.read_to_end(&mut payload)?;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(payload, b"hi\n");

        let procs: Vec<ProcessRecord> = jsonl(&v, "exhibit/processes.jsonl");
        let httpd = procs
            .iter()
            .find(|p| p.argv.items.first().map(|a| a.as_bytes()) == Some(b"/bin/httpd"))
            .unwrap_or_else(|| panic!("{rt:?}: no httpd in {procs:?}"));
        assert_eq!(httpd.exe.as_ref().unwrap().as_bytes(), b"/bin/busybox");
        assert_eq!(
            httpd.exe_sha256.as_deref(),
            Some(host_busybox_sha256().as_str())
        );
        assert_eq!(httpd.user.as_deref(), Some("root"));
        assert!(!httpd.exe_deleted && !httpd.memfd);
        assert_eq!(httpd.ns_pid, Some(1));
        let socks: Vec<SocketRecord> = jsonl(&v, "exhibit/sockets.jsonl");
        assert!(
            socks.iter().any(|s| s.proto.starts_with("tcp")
                && s.state == "LISTEN"
                && s.local.ends_with(":8080")
                && s.pids.contains(&httpd.pid)),
            "{rt:?}: no listener on 8080 owned by httpd in {socks:?}"
        );
        // The independent verifier accepts what the collector wrote.
        let py = ok(Command::new("/opt/exhibit-venv/bin/python")
            .arg(support::root().join("tests/interop/verify_bundle.py"))
            .arg(&bundle)
            .arg(&pubkey));
        assert!(py.starts_with("OK"), "{py}");
        // The .sha256 file matches, sha256sum format.
        let side = std::fs::read_to_string(format!("{}.sha256", bundle.display())).unwrap();
        let sum = exhibit_common::hashing::sha256_reader(std::fs::File::open(&bundle).unwrap())
            .unwrap()
            .0;
        assert_eq!(side.split_whitespace().next(), Some(sum.as_str()));
    }
}

#[test]
fn captured_changes_equal_docker_diff_and_capture_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let c = Container::start(Rt::Docker, "web", &[]);
    c.sh(STAGE);
    let atime = |c: &Container| c.sh("stat -c %X /www/shell.cgi");
    let atime_before = atime(&c);
    let (_, bundle) = c.capture_unchanged(dir.path(), &["--unsigned"]);
    assert_eq!(atime(&c), atime_before, "the capture changed an atime");
    let v = verified_unsigned(&bundle);
    let ours: BTreeSet<String> = records(&v)
        .iter()
        .filter(|r| r.source == exhibit_common::records::Source::Upper)
        .map(|r| {
            let k = match r.kind {
                ChangeKind::Added => "A",
                ChangeKind::Modified => "C",
                ChangeKind::Deleted => "D",
                ChangeKind::OpaqueDir => "O",
            };
            format!("{k} {}", r.path.lossy())
        })
        .collect();
    let theirs: BTreeSet<String> = c.docker_diff().into_iter().collect();
    // docker diff prints the non-UTF-8 name lossily (U+FFFD), as `lossy()` does here.
    assert_eq!(ours, theirs);
}

#[test]
fn hostile_container_cannot_pull_host_files_into_the_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let canary = dir.path().join("canary");
    let secret = format!("HOST-SECRET-{}", std::process::id());
    std::fs::write(&canary, &secret).unwrap();
    for rt in Rt::ALL {
        let c = Container::start(rt, "shell", &[]);
        let script = format!(
            "ln -s {} /tmp/to-host && ln -s /proc/1/root{} /tmp/via-proc && ln -s / /tmp/rootlink && ln -s /tmp/loop /tmp/loop && mkdir /tmp/d && ln -s {} /tmp/d/x",
            canary.display(),
            canary.display(),
            dir.path().display()
        );
        c.sh(&script);
        let out_dir = dir.path().join(format!("out-{}", rt.flag()));
        std::fs::create_dir(&out_dir).unwrap();
        let (_, bundle) = c.capture_ok(&out_dir, &["--unsigned"]);
        assert_not_in_bundle(
            &bundle,
            secret.as_bytes(),
            &format!("{rt:?}: host canary content entered the bundle"),
        );
        let v = verified_unsigned(&bundle);
        let recs = records(&v);
        let link = recs
            .iter()
            .find(|r| r.path.as_bytes() == b"/tmp/to-host")
            .unwrap();
        assert_eq!(link.file_type, exhibit_common::records::FileType::Symlink);
        assert_eq!(
            link.link_target.as_ref().unwrap().lossy(),
            canary.display().to_string()
        );
        assert!(recs
            .iter()
            .all(|r| !r.path.lossy().starts_with("/tmp/rootlink/")));
    }
}

#[test]
fn oversized_sparse_files_many_files_and_odd_names_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let c = Container::start(Rt::Docker, "shell", &[]);
    c.sh("truncate -s 100G /tmp/sparse && mkdir /tmp/many && cd /tmp/many && seq 1 10000 | xargs touch && touch \"$(printf '/tmp/new\\nline')\"");
    let (_, bundle) = c.capture_unchanged(dir.path(), &["--unsigned"]);
    let v = verified_unsigned(&bundle);
    let recs = records(&v);
    let sparse = recs
        .iter()
        .find(|r| r.path.as_bytes() == b"/tmp/sparse")
        .unwrap();
    assert_eq!(
        (sparse.size, sparse.stored_size, sparse.captured),
        (100 << 30, 0, false)
    );
    assert_eq!(sparse.reason.as_deref(), Some("over --max-file-size"));
    assert_eq!(
        recs.iter()
            .filter(|r| r.path.lossy().starts_with("/tmp/many/"))
            .count(),
        10_000
    );
    assert!(recs.iter().any(|r| r.path.as_bytes() == b"/tmp/new\nline"));
}

#[test]
fn freeze_pauses_and_always_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let c = Container::start(Rt::Docker, "web", &[]);
    let (_, bundle) = c.capture_ok(dir.path(), &["--unsigned", "--freeze"]);
    let paused = ok(Command::new("docker").args(["inspect", "-f", "{{.State.Paused}}", &c.name]));
    assert_eq!(paused.trim(), "false");
    let v = verified_unsigned(&bundle);
    let f = v.manifest().freeze.clone().expect("freeze window recorded");
    assert!(f.resumed_at.unwrap() >= f.paused_at);
}

#[test]
fn container_exiting_mid_capture_gives_a_sealed_incomplete_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let c = Container::start(Rt::Docker, "shell", &[]);
    // The init process exits after 1.5 s, while the collector still reads 12 GiB.
    c.sh("echo x > /dev/shm/a && truncate -s 4G /tmp/a /tmp/b /tmp/c");
    // Built first: a build inside the 1.5 s would let the container exit before the
    // capture starts (a capture of a stopped container is complete).
    support::bin("exhibit-collect");
    let stopper = {
        let name = c.name.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(1500));
            let _ = Command::new("docker").args(["kill", &name]).output();
        })
    };
    let (out, bundle) = c.capture(dir.path(), &["--unsigned", "--max-file-size", "4GiB"]);
    stopper.join().unwrap();
    expect_code(&out, 1, "incomplete");
    let v = verified_unsigned(&bundle.expect("a sealed bundle"));
    let m = v.manifest();
    assert_eq!(
        m.completeness.status,
        exhibit_common::manifest::CompletenessStatus::Incomplete
    );
    assert!(!m.completeness.reasons.is_empty());
}

#[test]
fn bad_input_gives_one_line_errors_with_hints_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = support::keypair(dir.path());
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "capture".into(),
                "no-such-container-xyz".into(),
                "--unsigned".into(),
            ],
            "exhibit-collect list",
        ),
        (
            vec![
                "capture".into(),
                "x".into(),
                "--unsigned".into(),
                "--runtime".into(),
                "docker".into(),
                "--docker-host".into(),
                "unix:///nonexistent/docker.sock".into(),
            ],
            "dockerd",
        ),
        (
            vec![
                "capture".into(),
                "x".into(),
                "--unsigned".into(),
                "--runtime".into(),
                "containerd".into(),
                "--containerd-address".into(),
                "/nonexistent.sock".into(),
            ],
            "containerd",
        ),
        (
            vec![
                "capture".into(),
                "x".into(),
                "--unsigned".into(),
                "--level".into(),
                "22".into(),
            ],
            "levels",
        ),
        (
            vec![
                "capture".into(),
                "x".into(),
                "--key".into(),
                dir.path().join("missing.key").display().to_string(),
            ],
            "keygen",
        ),
        (
            vec![
                "keygen".into(),
                "--out".into(),
                dir.path().join("ir").display().to_string(),
            ],
            "never overwritten",
        ),
    ];
    for (args, hint) in cases {
        let out = run(collect().args(&args));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(first.starts_with("error: "), "{args:?}: {err}");
        assert!(
            err.lines()
                .skip(1)
                .any(|l| l.starts_with("hint: ") && l.contains(hint)),
            "{args:?}: no hint mentioning {hint:?}: {err}"
        );
        assert!(
            out.stdout.is_empty(),
            "{args:?}: data on stdout for an error"
        );
    }
    // A private key readable by others is refused.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(collect().args(["capture", "x", "--key"]).arg(&key));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hint: chmod 600"));
    // An existing output file is never replaced.
    let c = Container::start(Rt::Docker, "shell", &[]);
    let existing = dir.path().join("exists.tar.zst");
    std::fs::write(&existing, b"keep me").unwrap();
    let out = run(c.capture_command(&["--unsigned", "-o"]).arg(&existing));
    expect_code(&out, 2, "an existing output file");
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
}

#[test]
fn keygen_writes_keys_openssl_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (key, pubkey) = support::keypair(dir.path());
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
    let text = ok(Command::new("openssl")
        .args(["pkey", "-noout", "-text", "-in"])
        .arg(&key));
    assert!(text.contains("ED25519 Private-Key"), "{text}");
    let text = ok(Command::new("openssl")
        .args(["pkey", "-pubin", "-noout", "-text", "-in"])
        .arg(&pubkey));
    assert!(text.contains("ED25519 Public-Key"), "{text}");
}

#[test]
fn stdout_streaming_and_list() {
    let c = Container::start(Rt::Docker, "web", &[]);
    let out = run(&mut c.capture_command(&["--unsigned", "-o", "-"]));
    expect_code(&out, 0, "capture to stdout");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.exhibit.tar.zst");
    std::fs::write(&p, &out.stdout).unwrap();
    let v = verified_unsigned(&p);
    assert_eq!(v.manifest().container.id, c.id);
    // Docker's own json-file log is kept verbatim beside the parsed lines.
    let raw = v
        .member("exhibit/logs/runtime.log")
        .unwrap()
        .expect("runtime log kept");
    let log_path = ok(Command::new("docker").args(["inspect", "-f", "{{.LogPath}}", &c.name]));
    assert_eq!(raw, std::fs::read(log_path.trim()).unwrap());
    let list = ok(collect().args(["list", "--format", "json"]));
    let all: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap();
    assert!(all
        .iter()
        .any(|x| x["id"] == c.id.as_str() && x["runtime"] == "docker"));
    let cc = Container::start(Rt::Containerd, "shell", &[]);
    let list = ok(collect().args(["list", "--format", "json"]));
    let all: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap();
    assert!(all.iter().any(|x| x["id"] == cc.id.as_str()
        && x["runtime"] == "containerd"
        && x["namespace"] == "k8s.io"
        && x["status"] == "running"));
}

#[test]
fn engine_api_fallback_gives_the_same_changes_as_the_upper_dir() {
    let dir = tempfile::tempdir().unwrap();
    let c = Container::start(Rt::Docker, "web", &[]);
    // The Engine API reports paths as JSON strings, so this scenario keeps names UTF-8.
    c.sh("echo pwn > /www/shell.cgi && rm /www/style.css && mkdir -p /tmp/.x && ln -s /etc/shadow /tmp/.x/l && mkfifo /tmp/f && truncate -s 2G /tmp/big");
    let summary = |extra: &[&str]| {
        let target = dir.path().join(format!("{}.tar.zst", extra.len()));
        let out = run(c
            .capture_command(&["--unsigned", "--quiet", "-o"])
            .arg(&target)
            .args(extra));
        expect_code(&out, 0, &format!("capture {extra:?}"));
        let v = verified_unsigned(&target);
        let method = v.manifest().fs_method.clone();
        let recs: Vec<(String, ChangeKind, String, Option<String>, bool)> = records(&v)
            .into_iter()
            .filter(|r| r.source == exhibit_common::records::Source::Upper)
            .map(|r| {
                (
                    r.member.lossy(),
                    r.kind,
                    format!("{:?}", r.file_type),
                    r.sha256,
                    r.captured,
                )
            })
            .collect();
        (method, recs)
    };
    let (m1, upper) = summary(&["--max-file-size", "1GiB"]);
    let (m2, api) = summary(&["--fs-method", "api", "--max-file-size", "1GiB"]);
    assert_eq!(
        (m1.as_str(), m2.as_str()),
        ("overlay-upperdir", "engine-api")
    );
    assert_eq!(upper, api);
    assert!(
        api.iter().any(|r| r.0 == "rootfs/tmp/big" && !r.4),
        "2 GiB file over the limit must be header-only"
    );
}

#[test]
fn the_spool_budget_bounds_memory_and_executables_and_makes_the_bundle_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let c = Container::start(Rt::Docker, "web", &[]);
    c.sh("cp /bin/busybox /tmp/sleep && (/tmp/sleep 3600 >/dev/null 2>&1 &) && sleep 0.3 && rm /tmp/sleep");
    // A budget of one byte: no region and no executable fits, nothing is spooled.
    let (out, bundle) = c.capture(
        dir.path(),
        &["--unsigned", "--memory", "anon", "--max-spool", "1"],
    );
    support::expect_code(&out, 1, "a capture over its spool budget");
    let v = verified_unsigned(&bundle.expect("bundle written"));
    let procs: Vec<ProcessRecord> = jsonl(&v, "exhibit/processes.jsonl");
    let over: Vec<_> = procs
        .iter()
        .flat_map(|p| p.memory.iter())
        .filter(|r| r.error.as_deref() == Some("over the capture's spool budget (--max-spool)"))
        .collect();
    assert!(
        !over.is_empty(),
        "no region refused by the budget: {procs:?}"
    );
    assert!(procs
        .iter()
        .flat_map(|p| p.memory.iter())
        .all(|r| r.member.is_none()));
    let deleted = procs
        .iter()
        .find(|p| p.exe.as_ref().map(|e| e.as_bytes()) == Some(b"/tmp/sleep"))
        .expect("process of the deleted binary");
    assert!(deleted.exe_deleted && deleted.exe_member.is_none());
    let lost = serde_json::to_string(&v.manifest().completeness).unwrap();
    assert!(
        lost.contains("memory-not-taken") && lost.contains("executables-not-kept"),
        "{lost}"
    );
    let events: Vec<serde_json::Value> = jsonl(&v, "exhibit/acquisition.jsonl");
    let exes = events
        .iter()
        .find(|e| e["step"] == "executables")
        .expect("executables event");
    assert!(exes.to_string().contains("--max-spool"), "{exes}");
}

#[test]
fn deleted_binaries_are_kept_and_memory_regions_taken() {
    let dir = tempfile::tempdir().unwrap();
    let c = Container::start(Rt::Docker, "web", &[]);
    c.sh("cp /bin/busybox /tmp/sleep && (/tmp/sleep 3600 >/dev/null 2>&1 &) && sleep 0.3 && rm /tmp/sleep");
    let (_, bundle) = c.capture_ok(dir.path(), &["--unsigned", "--memory", "anon"]);
    let v = verified_unsigned(&bundle);
    let procs: Vec<ProcessRecord> = jsonl(&v, "exhibit/processes.jsonl");
    let deleted = procs
        .iter()
        .find(|p| p.exe.as_ref().map(|e| e.as_bytes()) == Some(b"/tmp/sleep"))
        .expect("process of the deleted binary");
    assert!(deleted.exe_deleted && !deleted.memfd);
    let member = deleted.exe_member.clone().expect("deleted exe kept");
    let content = v.member(&member).unwrap().expect("exe member present");
    assert_eq!(
        exhibit_common::hashing::sha256_hex(&content),
        host_busybox_sha256()
    );
    let regions: Vec<_> = procs
        .iter()
        .flat_map(|p| p.memory.iter())
        .filter(|r| r.member.is_some())
        .collect();
    assert!(!regions.is_empty(), "--memory anon took no region");
    assert_eq!(v.manifest().counts.memory_regions, regions.len() as u64);
    // The acquisition log accounts for both steps.
    let events: Vec<serde_json::Value> = jsonl(&v, "exhibit/acquisition.jsonl");
    let step = |name: &str| {
        events
            .iter()
            .find(|e| e["step"] == name)
            .unwrap_or_else(|| panic!("no {name} event: {events:?}"))
            .clone()
    };
    let memory = step("memory");
    let taken = format!("{} regions taken (Anon)", regions.len());
    assert!(
        memory["detail"].as_str().unwrap().starts_with(&taken),
        "{memory}"
    );
    let exes = step("executables");
    assert_eq!(exes["outcome"], "ok", "{exes}");
    assert!(
        !exes["detail"].as_str().unwrap().starts_with("0 "),
        "{exes}"
    );
    for r in regions.iter().take(5) {
        let bytes = v.member(r.member.as_ref().unwrap()).unwrap().unwrap();
        assert_eq!(Some(exhibit_common::hashing::sha256_hex(&bytes)), r.sha256);
    }
}

#[test]
fn volumes_content_takes_named_volumes_never_host_bind_mounts() {
    let dir = tempfile::tempdir().unwrap();
    let host_dir = dir.path().join("hostdir");
    std::fs::create_dir(&host_dir).unwrap();
    std::fs::write(host_dir.join("host-file"), "HOST-BIND-CONTENT").unwrap();
    let vol = format!("exhibit-test-vol-{}", std::process::id());
    let c = Container::start(
        Rt::Docker,
        "shell",
        &[
            "-v",
            &format!("{vol}:/data"),
            "-v",
            &format!("{}:/hostdir", host_dir.display()),
        ],
    );
    c.sh("echo in-volume > /data/v.txt");
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let (out, bundle) = c.capture(&out_dir, &["--unsigned", "--volumes", "content"]);
    drop(c);
    let _ = Command::new("docker")
        .args(["volume", "rm", "-f", &vol])
        .output();
    expect_code(&out, 0, "capture with --volumes content");
    let bundle = bundle.expect("bundle written");
    let v = verified_unsigned(&bundle);
    let recs = records(&v);
    let r = recs
        .iter()
        .find(|r| r.path.as_bytes() == b"/data/v.txt")
        .expect("volume file captured");
    assert_eq!(r.source, exhibit_common::records::Source::Volume);
    assert!(r.member.lossy().starts_with("volumes/"));
    assert_not_in_bundle(
        &bundle,
        b"HOST-BIND-CONTENT",
        "host bind mount content entered the bundle",
    );
    let mounts: Vec<serde_json::Value> =
        serde_json::from_slice(&v.member("exhibit/volumes.json").unwrap().unwrap()).unwrap();
    let bind = mounts
        .iter()
        .find(|m| m["destination"] == "/hostdir")
        .expect("bind mount recorded");
    assert_eq!(bind["captured"], "metadata");
}

#[test]
fn wide_deep_and_device_trees_complete_cleanly() {
    let c = Container::start(Rt::Docker, "shell", &[]);
    // 200,000 entries in one directory; a 4,096-byte path; device nodes.
    c.sh("mkdir /tmp/wide && cd /tmp/wide && seq 1 200000 | xargs touch");
    let seg = "d".repeat(250);
    let mut deep = String::from("/tmp/deep");
    while deep.len() + 251 < 4096 - 50 {
        deep.push('/');
        deep.push_str(&seg);
    }
    // Built one component at a time: a single syscall path is capped at PATH_MAX.
    let levels = (deep.len() - "/tmp/deep".len()) / 251;
    c.sh(&format!(
        "mkdir -p /tmp/deep && cd /tmp/deep && for i in $(seq 1 {levels}); do mkdir {seg} && cd {seg}; done && touch {}",
        "f".repeat(4096 - deep.len() - 1)
    ));
    c.sh("mknod /tmp/null c 1 3 && mknod /tmp/blk b 7 0");
    // (docker diff itself fails on the 4,096-byte path: ENAMETOOLONG in dockerd.)
    let pids_before = c.pids();
    let out_dir = tempfile::tempdir().unwrap();
    let (_, bundle) = c.capture_ok(out_dir.path(), &["--unsigned", "--quiet"]);
    assert_eq!(c.pids(), pids_before, "the capture changed the processes");
    let v = verified_unsigned(&bundle);
    let recs = records(&v);
    assert_eq!(
        recs.iter()
            .filter(|r| r.path.lossy().starts_with("/tmp/wide/"))
            .count(),
        200_000
    );
    assert!(
        recs.iter().any(|r| r.path.as_bytes().len() == 4096),
        "4,096-byte path missing"
    );
    let null = recs
        .iter()
        .find(|r| r.path.as_bytes() == b"/tmp/null")
        .unwrap();
    assert_eq!(
        (null.rdev_major, null.rdev_minor, null.captured),
        (1, 3, false)
    );
    let blk = recs
        .iter()
        .find(|r| r.path.as_bytes() == b"/tmp/blk")
        .unwrap();
    assert_eq!(blk.file_type, exhibit_common::records::FileType::Block);
}

#[test]
fn directory_swapped_for_a_host_symlink_during_capture_never_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("host");
    std::fs::create_dir(&host).unwrap();
    let secret = format!("SWAP-SECRET-{}", std::process::id());
    std::fs::write(host.join("secret"), &secret).unwrap();
    let c = Container::start(Rt::Docker, "shell", &[]);
    c.sh(&format!(
        "mkdir -p /tmp/swap && seq 1 300 | while read i; do echo x > /tmp/swap/f$i; done; (while true; do mv /tmp/swap /tmp/swap.real; ln -s {} /tmp/swap; rm /tmp/swap; mv /tmp/swap.real /tmp/swap; done >/dev/null 2>&1 &)",
        host.display()
    ));
    for _ in 0..3 {
        let out_dir = tempfile::tempdir().unwrap();
        let (out, bundle) = c.capture(out_dir.path(), &["--unsigned", "--quiet"]);
        let bundle = bundle.unwrap();
        assert_not_in_bundle(
            &bundle,
            secret.as_bytes(),
            "host file entered the bundle through a swapped symlink",
        );
        let v = verified_unsigned(&bundle);
        // Whether the race hit a read is up to the scheduler; the exit code must say
        // exactly what the manifest says: 0 complete, 1 incomplete with its reasons.
        let complete = v.manifest().completeness.status
            == exhibit_common::manifest::CompletenessStatus::Complete;
        assert_eq!(
            out.status.code(),
            Some(if complete { 0 } else { 1 }),
            "{}",
            support::stderr(&out)
        );
        assert!(records(&v)
            .iter()
            .all(|r| !r.path.lossy().contains("/secret")));
    }
}

#[test]
fn full_or_read_only_output_fails_cleanly_and_leaves_nothing() {
    let tmpfs = support::SmallTmpfs::mount("256k");
    let small = tmpfs.path.clone();
    let c = Container::start(Rt::Docker, "shell", &[]);
    c.sh("head -c 3000000 /dev/urandom > /tmp/random");
    for (what, hint) in [("full", "full"), ("read-only", "read-only")] {
        if what == "read-only" {
            ok(Command::new("mount").args(["-o", "remount,ro"]).arg(&small));
        }
        let out = run(c
            .capture_command(&["--unsigned", "--quiet", "-o"])
            .arg(&small));
        expect_code(&out, 2, what);
        support::expect_error_and_hint(&support::stderr(&out), "", hint, what);
        let left = names_in(&small);
        assert!(left.is_empty(), "{what}: files left behind: {left:?}");
    }
}

#[test]
fn container_in_another_containerd_namespace_is_named_in_the_error() {
    let ns = format!("exhibit-other-{}", std::process::id());
    let ctr = |args: &[&str]| run(support::ctr_in(&ns).args(args));
    let image = "docker.io/exhibit-fixture/shell:1";
    let tar = support::fixtures_dir().join("shell.tar");
    assert!(ctr(&["images", "import", tar.to_str().unwrap()])
        .status
        .success());
    let name = format!("elsewhere-{}", std::process::id());
    assert!(ctr(&["containers", "create", image, &name])
        .status
        .success());
    let out = run(collect().args(["capture", "--runtime", "containerd", &name, "--unsigned"]));
    let _ = ctr(&["containers", "rm", &name]);
    let _ = ctr(&["snapshots", "rm", &name]);
    let _ = ctr(&["images", "rm", image]);
    support::remove_namespace(&ns);
    expect_code(&out, 2, "a container in another namespace");
    let err = support::stderr(&out);
    assert!(
        err.lines()
            .any(|l| l.starts_with("hint: ") && l.contains(&ns) && l.contains("--namespace")),
        "{err}"
    );
}

#[test]
fn proc_self_root_links_loops_sockets_hardlinks_and_a_hidden_uid() {
    // The rest of the hostile-tree list not covered above: symlinks through
    // /proc/self/root, a two-link loop, a socket file, a FIFO, 1,000 hard links to one
    // file, and a process whose name is invalid UTF-8 (the kernel prints it raw in
    // /proc/PID/status, which once cost its uid).
    let dir = tempfile::tempdir().unwrap();
    let canary = dir.path().join("canary");
    let secret = format!("SELF-ROOT-SECRET-{}", std::process::id());
    std::fs::write(&canary, &secret).unwrap();
    // Not root: the uid is what a broken status parse used to lose.
    let c = Container::start(Rt::Docker, "shell", &["--user", "1234:1234"]);
    c.sh(&format!(
        "ln -s /proc/self/root{canary} /tmp/self-canary && ln -s /proc/self/root /tmp/self-root \
         && ln -s /proc/self/root/../../.. /tmp/self-up && ln -s /tmp/lb /tmp/la && ln -s /tmp/la /tmp/lb \
         && mkfifo /tmp/fifo && echo linked > /tmp/h0 && for i in $(seq 1 1000); do ln /tmp/h0 /tmp/h$i; done \
         && cp /bin/busybox \"/tmp/$(printf '\\377')x\" \
         && (sh -c \"exec -a sleep /tmp/$(printf '\\377')x 1000\" >/dev/null 2>&1 &)",
        canary = canary.display()
    ));
    // A socket file in the container's filesystem, bound through its root.
    let pid = c.pids()[0];
    drop(std::os::unix::net::UnixListener::bind(format!("/proc/{pid}/root/tmp/sock")).unwrap());
    let (_, bundle) = c.capture_unchanged(dir.path(), &["--unsigned", "--quiet"]);
    assert_not_in_bundle(
        &bundle,
        secret.as_bytes(),
        "host content entered the bundle through /proc/self/root",
    );
    let v = verified_unsigned(&bundle);
    let recs = records(&v);
    let rec = |p: &[u8]| {
        recs.iter()
            .find(|r| r.path.as_bytes() == p)
            .unwrap_or_else(|| panic!("{} not recorded", String::from_utf8_lossy(p)))
    };
    use exhibit_common::records::FileType;
    for (p, target) in [
        (
            &b"/tmp/self-canary"[..],
            format!("/proc/self/root{}", canary.display()),
        ),
        (b"/tmp/self-root", "/proc/self/root".into()),
        (b"/tmp/self-up", "/proc/self/root/../../..".into()),
        (b"/tmp/la", "/tmp/lb".into()),
        (b"/tmp/lb", "/tmp/la".into()),
    ] {
        let r = rec(p);
        assert_eq!(r.file_type, FileType::Symlink);
        assert_eq!(r.link_target.as_ref().unwrap().lossy(), target);
    }
    assert!(recs.iter().all(|r| {
        let p = r.path.lossy();
        !p.starts_with("/tmp/self-root/") && !p.starts_with("/tmp/self-up/")
    }));
    let sock = rec(b"/tmp/sock");
    assert_eq!((sock.file_type, sock.captured), (FileType::Socket, false));
    let fifo = rec(b"/tmp/fifo");
    assert_eq!((fifo.file_type, fifo.captured), (FileType::Fifo, false));
    // One copy of the content; every other name is a hard link to it.
    let links: Vec<&ChangeRecord> = recs
        .iter()
        .filter(|r| {
            let p = r.path.lossy();
            p.strip_prefix("/tmp/h")
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .collect();
    assert_eq!(links.len(), 1001);
    let first: Vec<_> = links.iter().filter(|r| r.hardlink_to.is_none()).collect();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].stored_size, 7);
    assert!(links
        .iter()
        .all(|r| r.hardlink_group == first[0].hardlink_group
            && r.hardlink_to
                .as_ref()
                .is_none_or(|t| t.as_bytes() == first[0].member.as_bytes())));
    let procs: Vec<ProcessRecord> = jsonl(&v, "exhibit/processes.jsonl");
    let odd = procs
        .iter()
        .find(|p| p.comm.as_bytes() == b"\xffx")
        .unwrap_or_else(|| panic!("no process named \\xffx: {procs:?}"));
    assert_eq!((odd.uid, odd.gid), (1234, 1234));
    assert!(odd.ns_pid.is_some());
}
