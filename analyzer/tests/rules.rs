//! Data-driven rule tests: each case builds a bundle with BundleWriter and asserts the
//! exact (rule, subject) pairs the report produces.

use exhibit_tests::spec as support;

use exhibit_analyzer::evidence::Evidence;
use exhibit_analyzer::finding::Finding;
use exhibit_analyzer::profile::Profile;
use exhibit_analyzer::rules::{run, RuleInput};
use exhibit_common::records::{ChangeKind as K, FdInfo, MountRecord};
use serde_json::json;
use support::{pairs, process, Spec};

fn findings(spec: &Spec, profile: Option<&str>) -> Vec<Finding> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("b.exhibit.tar.zst");
    spec.write(&p, None);
    let ev = Evidence::open(&p, &[]).unwrap();
    let profile = profile.map(|t| Profile::parse(t).unwrap());
    run(&RuleInput {
        ev: &ev,
        image: None,
        profile: profile.as_ref(),
    })
    .unwrap()
}

fn expect(spec: Spec, profile: Option<&str>, want: &[(&str, &str)]) {
    let got = pairs(&findings(&spec, profile));
    let mut want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn clean_bundle_has_no_findings() {
    expect(
        Spec::default().process(process(100, "/bin/httpd", &["httpd", "-f"])),
        None,
        &[],
    );
}

#[test]
fn fs_rules() {
    let spec = Spec::default()
        .dir("/tmp", K::Modified)
        .file("/usr/local/bin/miner", K::Added, 0o755, b"\x7fELFxxxx")
        .file("/opt/tool", K::Added, 0o644, b"\x7fELF....")
        .file("/srv/notes.txt", K::Added, 0o644, b"hello")
        .file("/tmp/x.sh", K::Added, 0o644, b"#!/bin/sh\n")
        .dir("/dev/shm/.hidden", K::Added)
        .file("/etc/hostname2", K::Modified, 0o644, b"changed")
        .deleted("/etc/motd")
        .file("/usr/bin/su2", K::Added, 0o4755, b"x")
        .file(
            "/root/.ssh/authorized_keys",
            K::Added,
            0o600,
            b"ssh-ed25519 AAAA",
        )
        .file("/etc/ld.so.preload", K::Added, 0o644, b"/lib/evil.so");
    expect(
        spec,
        None,
        &[
            ("fs.added-executable", "/usr/local/bin/miner"),
            ("fs.added-executable", "/opt/tool"),
            ("fs.added-executable", "/tmp/x.sh"),
            ("fs.added-executable", "/usr/bin/su2"),
            ("fs.suspicious-location", "/tmp/x.sh"),
            ("fs.suspicious-location", "/dev/shm/.hidden"),
            ("fs.modified-image-file", "/etc/hostname2"),
            ("fs.deleted-image-file", "/etc/motd"),
            ("fs.setuid", "/usr/bin/su2"),
            ("fs.persistence", "/root/.ssh/authorized_keys"),
            ("fs.persistence", "/etc/ld.so.preload"),
        ],
    );
}

#[test]
fn unexpected_write_honours_globs() {
    let spec = Spec::default()
        .dir("/var", K::Modified)
        .dir("/var/cache", K::Modified)
        .file("/var/cache/app/a", K::Added, 0o644, b"1")
        .file("/var/cache/top", K::Added, 0o644, b"1")
        .dir("/data", K::Added)
        .file("/data/x", K::Added, 0o644, b"1")
        .file("/etc/app.conf", K::Added, 0o644, b"1");
    let profile = "writable_paths: [\"/var/cache/*\", \"/data/**\"]\n";
    expect(
        spec,
        Some(profile),
        &[
            ("fs.unexpected-write", "/var/cache/app/a"),
            ("fs.unexpected-write", "/etc/app.conf"),
        ],
    );
}

#[test]
fn process_rules() {
    let mut deleted = process(101, "/tmp/x (deleted)", &["x"]);
    deleted.exe_deleted = true;
    let mut memfd = process(102, "/memfd:payload (deleted)", &["[kworker]"]);
    memfd.memfd = true;
    memfd.exe_deleted = true;
    let mut anon = process(103, "/usr/bin/python3", &["python3", "-c", "..."]);
    anon.anon_exec_maps = 2;
    let mut tty_shell = process(104, "/bin/busybox", &["sh"]);
    tty_shell.fds = vec![FdInfo {
        fd: 0,
        target: "/dev/pts/0".into(),
    }];
    let script_shell = process(105, "/bin/sh", &["sh", "-c", "sleep 1000"]);
    let mut rev = process(106, "/bin/bash", &["bash", "-c", "exec 3<>/dev/tcp/x"]);
    rev.fds = vec![FdInfo {
        fd: 3,
        target: "socket:[777]".into(),
    }];
    let spec = Spec::default()
        .file("/usr/local/bin/dropper", K::Added, 0o755, b"\x7fELF")
        .file("/usr/bin/python3", K::Modified, 0o755, b"\x7fELFpatched")
        .process(deleted)
        .process(memfd)
        .process(anon)
        .process(tty_shell)
        .process(script_shell)
        .process(rev)
        .process(process(107, "/usr/local/bin/dropper", &["dropper"]))
        .socket(
            "tcp",
            "ESTABLISHED",
            "172.17.0.2:40000",
            "203.0.113.9:4444",
            777,
        );
    expect(
        spec,
        None,
        &[
            ("fs.added-executable", "/usr/local/bin/dropper"),
            ("fs.modified-image-file", "/usr/bin/python3"),
            ("proc.exe-deleted", "/tmp/x"),
            ("proc.fileless", "/memfd:payload"),
            ("proc.fileless", "/usr/bin/python3"),
            ("proc.exe-modified", "/usr/bin/python3"),
            ("proc.shell", "/bin/busybox"),
            ("proc.shell", "/bin/bash"),
            ("proc.exe-not-in-image", "/usr/local/bin/dropper"),
        ],
    );
}

#[test]
fn profile_rules_for_processes_and_network() {
    let spec = Spec::default()
        .process(process(100, "/bin/httpd", &["httpd", "-f", "-p", "8080"]))
        .process(process(101, "/bin/httpd", &["httpd", "-f", "-p", "9999"]))
        .process(process(102, "/usr/bin/nc", &["nc", "-l"]))
        .socket("tcp", "LISTEN", "0.0.0.0:8080", "0.0.0.0:0", 1)
        .socket("tcp6", "LISTEN", "[::]:8080", "[::]:0", 2)
        .socket("tcp6", "LISTEN", "[::]:31337", "[::]:0", 3)
        .socket("udp", "UNCONN", "0.0.0.0:53", "0.0.0.0:0", 4)
        .socket("unix", "LISTEN", "/run/app.sock", "", 5)
        .socket("tcp", "ESTABLISHED", "172.17.0.2:8080", "10.9.9.9:50000", 6)
        .socket(
            "tcp",
            "ESTABLISHED",
            "172.17.0.2:41000",
            "127.0.0.1:5432",
            7,
        )
        .socket(
            "tcp6",
            "ESTABLISHED",
            "[fd00::2]:41001",
            "[2001:db8::1]:443",
            8,
        )
        .socket("raw", "UNCONN", "0.0.0.0:1", "0.0.0.0:0", 9)
        .log("all good")
        .log("worker 3: Segfault at 0x0")
        .log("open /etc/shadow: permission denied");
    let profile = r#"
processes:
  - exe: /bin/httpd
    args: "^-f -p 8080$"
    user: root
listeners: ["tcp/8080", "unix:/run/app.sock"]
egress: ["127.0.0.1/32:5432"]
log_patterns:
  deny: ["(?i)segfault", "permission denied", "never"]
"#;
    expect(
        spec,
        Some(profile),
        &[
            ("proc.unexpected", "/bin/httpd"),
            ("proc.unexpected", "/usr/bin/nc"),
            ("net.unexpected-listener", "tcp6/[::]:31337"),
            ("net.unexpected-listener", "udp/0.0.0.0:53"),
            ("net.unexpected-connection", "tcp6/[2001:db8::1]:443"),
            ("net.raw-socket", "raw/0.0.0.0:1"),
            ("log.pattern", "(?i)segfault"),
            ("log.pattern", "permission denied"),
        ],
    );
}

#[test]
fn config_rules_and_incomplete() {
    let mut spec = Spec::default()
        .summary("privileged", json!(true))
        .summary("host_namespaces", json!(["pid", "net"]))
        .summary("cap_add", json!(["CAP_SYS_ADMIN", "NET_RAW"]))
        .summary("mounts", json!([
            {"source": "/var/run/docker.sock", "destination": "/var/run/docker.sock", "type": "bind", "read_only": false},
            {"source": "/srv/www", "destination": "/www", "type": "bind", "read_only": true},
            {"source": "/var/lib/docker/volumes/v/_data", "destination": "/v", "type": "volume", "read_only": false}
        ]));
    spec.volumes.push(MountRecord {
        index: 0,
        source: "/etc".into(),
        destination: "/host-etc".into(),
        mount_type: "bind".into(),
        options: vec!["rbind".into()],
        read_only: true,
        captured: "metadata".into(),
    });
    spec.incomplete = vec!["container exited during capture".into()];
    let f = findings(&spec, None);
    let mut want: Vec<(String, String)> = [
        ("config.privileged", "privileged"),
        ("config.host-namespace", "net"),
        ("config.host-namespace", "pid"),
        ("config.added-capability", "CAP_SYS_ADMIN"),
        ("config.added-capability", "CAP_NET_RAW"),
        ("config.sensitive-mount", "/var/run/docker.sock"),
        ("config.sensitive-mount", "/etc"),
        ("bundle.incomplete", "bundle"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    want.sort();
    assert_eq!(pairs(&f), want);
    assert_eq!(f[0].severity, exhibit_analyzer::finding::Severity::Critical);
    let inc = f.iter().find(|f| f.rule == "bundle.incomplete").unwrap();
    assert_eq!(
        inc.evidence["reasons"],
        json!(["container exited during capture"])
    );
}

#[test]
fn hostile_member_content_is_exit_3_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("b");
    let mut spec = Spec::default();
    let deep = "[".repeat(200) + &"]".repeat(200);
    spec.raw
        .insert("exhibit/container.json".into(), deep.into_bytes());
    spec.write(&p, None);
    let err = Evidence::open(&p, &[]).err().expect("deep JSON refused");
    assert_eq!(err.exit_code(), 3);
    assert!(err.to_string().contains("exhibit/container.json"), "{err}");

    let mut spec = Spec::default();
    spec.raw
        .insert("exhibit/processes.jsonl".into(), b"{not json}\n".to_vec());
    spec.write(&p.with_extension("2"), None);
    let ev = Evidence::open(&p.with_extension("2"), &[]).unwrap();
    let err = run(&RuleInput {
        ev: &ev,
        image: None,
        profile: None,
    })
    .expect_err("bad line");
    assert_eq!(err.exit_code(), 3);
    assert!(err.to_string().contains("processes.jsonl: line 1"), "{err}");
}
