//! What a Docker capture holds, checked against the real container and the real daemon:
//! a daemon that is not local (the local dockerd behind a TCP proxy), DOCKER_HOST,
//! several containers per command, selection, logs options, inspect and image identity,
//! custody fields, the acquisition log, opaque directories, extended attributes and
//! metadata against stat of the upper dir, byte-exact argv and environment, files that
//! shrink or vanish during the read, --freeze on a failing capture, and not root.

use crate::support;

use exhibit_common::records::{ChangeKind, ChangeRecord, ProcessRecord, SocketRecord};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{
    collect, expect_code, jsonl, names_in, ok, records, run, stderr, verified, verified_unsigned,
    Container, Rt,
};

fn record<'a>(recs: &'a [ChangeRecord], path: &[u8]) -> &'a ChangeRecord {
    recs.iter()
        .find(|r| r.path.as_bytes() == path && r.kind != ChangeKind::OpaqueDir)
        .unwrap_or_else(|| {
            panic!(
                "no record of {} in {:?}",
                String::from_utf8_lossy(path),
                recs.iter().map(|r| r.member.lossy()).collect::<Vec<_>>()
            )
        })
}

fn events(v: &exhibit_common::VerifiedBundle) -> Vec<serde_json::Value> {
    jsonl(v, "exhibit/acquisition.jsonl")
}

fn json_member(v: &exhibit_common::VerifiedBundle, name: &str) -> serde_json::Value {
    serde_json::from_slice(&v.member(name).unwrap().expect(name)).expect("json member")
}

fn bundles_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".exhibit.tar.zst"))
        .collect();
    v.sort();
    v
}

fn sha256_file(p: &Path) -> String {
    exhibit_common::hashing::sha256_reader(std::fs::File::open(p).unwrap())
        .unwrap()
        .0
}

fn inspect(name: &str, format: &str) -> String {
    ok(Command::new("docker").args(["inspect", "-f", format, name]))
        .trim()
        .to_string()
}

fn upper_dir(c: &Container) -> PathBuf {
    PathBuf::from(inspect(&c.name, "{{.GraphDriver.Data.UpperDir}}"))
}

/// A byte proxy in front of /var/run/docker.sock, on a TCP port of 127.0.0.1 or on a
/// unix socket; counts the connections it forwarded. Stops with the test process.
struct DockerProxy {
    url: String,
    connections: Arc<AtomicUsize>,
}

fn pump(mut from: impl Read + Send + 'static, mut to: impl Write + Send + 'static) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
    });
}

/// The two directions of an accepted client connection.
type Halves = (Box<dyn Read + Send>, Box<dyn Write + Send>);

impl DockerProxy {
    fn tcp() -> DockerProxy {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("tcp://{}", l.local_addr().unwrap());
        Self::serve(url, move || loop {
            if let Ok((c, _)) = l.accept() {
                return (Box::new(c.try_clone().unwrap()), Box::new(c));
            }
        })
    }

    fn unix(path: &Path) -> DockerProxy {
        let l = std::os::unix::net::UnixListener::bind(path).unwrap();
        let url = format!("unix://{}", path.display());
        Self::serve(url, move || loop {
            if let Ok((c, _)) = l.accept() {
                return (Box::new(c.try_clone().unwrap()), Box::new(c));
            }
        })
    }

    /// Forwards every client that `accept` returns to the Docker socket, in a thread.
    fn serve(url: String, mut accept: impl FnMut() -> Halves + Send + 'static) -> DockerProxy {
        let connections = Arc::new(AtomicUsize::new(0));
        let n = connections.clone();
        std::thread::spawn(move || loop {
            let (from_client, to_client) = accept();
            let Ok(server) = std::os::unix::net::UnixStream::connect("/var/run/docker.sock") else {
                continue;
            };
            n.fetch_add(1, Ordering::SeqCst);
            pump(from_client, server.try_clone().unwrap());
            pump(server, to_client);
        });
        DockerProxy { url, connections }
    }
}

#[test]
fn a_remote_daemon_gives_engine_api_evidence_and_nothing_from_this_hosts_proc() {
    let c = Container::start(Rt::Docker, "shell", &[]);
    c.sh("echo remote-evidence > /tmp/staged && mkdir -p /tmp/d && printf x > /tmp/d/f && rm /etc/group");
    let proxy = DockerProxy::tcp();
    let dir = tempfile::tempdir().unwrap();
    let (key, pubkey) = support::keypair(dir.path());
    let out = run(c
        .capture_command(&["--quiet", "--key"])
        .env("DOCKER_HOST", &proxy.url)
        .arg(&key)
        .arg("-o")
        .arg(dir.path()));
    // Sealed, and incomplete: sockets, memory and /proc data cannot be had remotely.
    expect_code(&out, 1, "remote capture");
    assert!(
        proxy.connections.load(Ordering::SeqCst) > 0,
        "the proxy was not used"
    );
    let bundle = bundles_in(dir.path()).pop().expect("a bundle");
    let v = verified(&bundle, &pubkey);
    let m = v.manifest();
    assert_eq!(m.fs_method, "engine-api");
    assert!(
        m.completeness
            .reasons
            .iter()
            .any(|r| r.contains("remote Docker daemon") && r.contains(&proxy.url)),
        "{:?}",
        m.completeness.reasons
    );
    let ev = events(&v);
    let step = |s: &str| {
        ev.iter()
            .find(|e| e["step"] == s)
            .unwrap_or_else(|| panic!("no {s} event: {ev:#?}"))
            .clone()
    };
    assert!(step("daemon.remote")["detail"]
        .as_str()
        .unwrap()
        .contains("not a local unix socket"));
    let method = step("files.method")["detail"].as_str().unwrap().to_string();
    assert!(
        method.contains("not a local unix socket") && method.contains("Engine API"),
        "{method}"
    );
    assert_eq!(step("sockets")["outcome"], "skipped");
    assert_eq!(step("memory")["outcome"], "skipped");
    // The staged changes, through changes + archive, equal docker diff.
    let recs = records(&v);
    let staged = record(&recs, b"/tmp/staged");
    assert_eq!(staged.kind, ChangeKind::Added);
    assert_eq!(
        staged.sha256.as_deref(),
        Some(
            exhibit_common::hashing::sha256_reader(&b"remote-evidence\n"[..])
                .unwrap()
                .0
                .as_str()
        )
    );
    assert!(staged.flags.iter().any(|f| f == "engine-api"));
    assert_eq!(record(&recs, b"/etc/group").kind, ChangeKind::Deleted);
    assert_eq!(record(&recs, b"/tmp/d/f").stored_size, 1);
    let mut captured: Vec<String> = recs
        .iter()
        .map(|r| {
            let k = match r.kind {
                ChangeKind::Added => "A",
                ChangeKind::Deleted => "D",
                _ => "C",
            };
            format!("{k} {}", r.path.lossy())
        })
        .collect();
    captured.sort();
    assert_eq!(captured, c.docker_diff());
    // Nothing read from this host: no mounts/ or runtime files, no runtime log file,
    // no kept executables, no sockets; processes only from the daemon's ps, marked.
    assert!(recs
        .iter()
        .all(|r| r.member.as_bytes().starts_with(b"rootfs/")));
    assert!(v.member("exhibit/logs/runtime.log").unwrap().is_none());
    assert!(!v
        .member_digests()
        .keys()
        .any(|k| k.starts_with("exhibit/exe/") || k.starts_with("exhibit/memory/")));
    let socks: Vec<SocketRecord> = jsonl(&v, "exhibit/sockets.jsonl");
    assert!(socks.is_empty(), "{socks:?}");
    let procs: Vec<ProcessRecord> = jsonl(&v, "exhibit/processes.jsonl");
    assert!(!procs.is_empty());
    for p in &procs {
        assert_eq!(p.found_by, ["engine-api-top"], "{p:?}");
        assert!(
            p.exe.is_none()
                && p.exe_sha256.is_none()
                && p.env.items.is_empty()
                && p.fds.is_empty()
                && p.maps.items.is_empty()
                && p.namespaces.is_empty()
                && p.cgroup.is_none()
                && p.cwd.is_none(),
            "/proc-derived data in {p:?}"
        );
        assert!(p.errors.iter().any(|e| e.contains("Engine API top")));
    }
    // The daemon's ps listed the container's processes (here the daemon's host is
    // this one, so they are checkable).
    let mut pids: Vec<i32> = procs.iter().map(|p| p.pid).collect();
    pids.sort();
    assert_eq!(pids, c.pids());
    assert!(procs
        .iter()
        .any(|p| p.argv.items.iter().any(|a| a.as_bytes() == b"sleep")));
    let cont = json_member(&v, "exhibit/container.json");
    assert_eq!(cont["summary"]["id"], c.id.as_str());
    let host = json_member(&v, "exhibit/host.json");
    assert_eq!(host["runtime"]["remote"], proxy.url.as_str());
}

#[test]
fn docker_host_with_a_unix_url_is_honoured() {
    let c = Container::start(Rt::Docker, "shell", &[]);
    c.sh("echo via-unix > /tmp/u");
    let dir = tempfile::tempdir().unwrap();
    let proxy = DockerProxy::unix(&dir.path().join("d.sock"));
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = run(c
        .capture_command(&["--unsigned", "--quiet", "-o"])
        .env("DOCKER_HOST", &proxy.url)
        .arg(&out_dir));
    expect_code(&out, 0, "capture through DOCKER_HOST=unix://");
    assert!(
        proxy.connections.load(Ordering::SeqCst) > 0,
        "DOCKER_HOST was not used"
    );
    let bundle = bundles_in(&out_dir).pop().expect("a bundle");
    let v = exhibit_common::verify(&bundle, &Default::default()).unwrap();
    // A unix socket is local: the upper dir is read and /proc too.
    assert_eq!(v.manifest().fs_method, "overlay-upperdir");
    assert!(record(&records(&v), b"/tmp/u").captured);
    let procs: Vec<ProcessRecord> = jsonl(&v, "exhibit/processes.jsonl");
    assert!(procs.iter().all(|p| p.exe_sha256.is_some()), "{procs:?}");
    // A DOCKER_HOST that leads nowhere is what is used too (not the default socket).
    let out = run(c
        .capture_command(&["--unsigned", "-o"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .arg(&out_dir));
    expect_code(&out, 2, "DOCKER_HOST to nowhere");
    assert!(
        stderr(&out).contains("/nonexistent/docker.sock"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn several_containers_get_one_verified_bundle_each_and_an_unknown_name_spoils_none() {
    let cs: Vec<Container> = (0..3)
        .map(|_| Container::start(Rt::Docker, "shell", &[]))
        .collect();
    for (i, c) in cs.iter().enumerate() {
        c.sh(&format!("echo {i} > /tmp/which"));
    }
    let dir = tempfile::tempdir().unwrap();
    let (key, pubkey) = support::keypair(dir.path());
    let out_dir = dir.path().join("many");
    let out = run(collect()
        .args(["capture", "--runtime", "docker", "--quiet", "--key"])
        .arg(&key)
        .args(cs.iter().map(|c| c.name.as_str()))
        .arg("-o")
        .arg(&out_dir));
    expect_code(&out, 0, "three containers");
    let bundles = bundles_in(&out_dir);
    assert_eq!(bundles.len(), 3, "{bundles:?}");
    let mut seen = Vec::new();
    for b in &bundles {
        let v = verified(b, &pubkey);
        let side = std::fs::read_to_string(format!("{}.sha256", b.display())).unwrap();
        assert!(side.starts_with(&sha256_file(b)));
        let id = v.manifest().container.id.clone();
        let i = cs.iter().position(|c| c.id == id).expect("one of ours");
        let recs = records(&v);
        let which = record(&recs, b"/tmp/which");
        assert_eq!(which.stored_size, 2);
        assert_eq!(
            which.sha256.clone().unwrap(),
            exhibit_common::hashing::sha256_reader(format!("{i}\n").as_bytes())
                .unwrap()
                .0
        );
        seen.push(i);
    }
    seen.sort();
    assert_eq!(seen, [0, 1, 2]);
    // stdout: one "sha256  path" line per bundle.
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(lines, 3);

    // One unknown name among known ones: the others are still written, exit 2.
    let out_dir = dir.path().join("with-unknown");
    let unknown = format!("no-such-container-{}", std::process::id());
    let out = run(collect()
        .args(["capture", "--runtime", "docker", "--quiet", "--unsigned"])
        .args([&cs[0].name, &unknown, &cs[2].name])
        .arg("-o")
        .arg(&out_dir));
    expect_code(&out, 2, "one unknown name");
    let err = stderr(&out);
    support::expect_error_and_hint(&err, &unknown, "exhibit-collect list", "one unknown name");
    let ids: Vec<String> = bundles_in(&out_dir)
        .iter()
        .map(|b| verified_unsigned(b).manifest().container.id.clone())
        .collect();
    let mut want = vec![cs[0].id.clone(), cs[2].id.clone()];
    let mut got = ids.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert!(!std::fs::read_dir(&out_dir)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with(".partial")));
}

#[test]
fn all_with_label_filters_selects_exactly_the_labelled_running_containers() {
    let key = format!("exhibit.test.sel-{}", std::process::id());
    let a = format!("{key}=a");
    let b = format!("{key}=b");
    let a1 = Container::start(Rt::Docker, "shell", &["--label", &a]);
    let a2 = Container::start(Rt::Docker, "shell", &["--label", &a]);
    let b1 = Container::start(Rt::Docker, "shell", &["--label", &b]);
    let stopped = Container::start(Rt::Docker, "shell", &["--label", &a]);
    ok(Command::new("docker").args(["stop", "-t", "0", &stopped.name]));
    let dir = tempfile::tempdir().unwrap();
    let captured_ids = |filters: &[String], sub: &str| -> Vec<String> {
        let out_dir = dir.path().join(sub);
        let mut cmd = collect();
        cmd.args([
            "capture",
            "--all",
            "--runtime",
            "docker",
            "--unsigned",
            "--quiet",
        ]);
        for f in filters {
            cmd.args(["--filter", f]);
        }
        let out = run(cmd.arg("-o").arg(&out_dir));
        expect_code(&out, 0, &format!("--all {filters:?}"));
        let mut ids: Vec<String> = bundles_in(&out_dir)
            .iter()
            .map(|p| {
                exhibit_common::verify(p, &Default::default())
                    .unwrap()
                    .manifest()
                    .container
                    .id
                    .clone()
            })
            .collect();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        captured_ids(&[format!("label={a}")], "a"),
        sorted(vec![a1.id.clone(), a2.id.clone()])
    );
    assert_eq!(
        captured_ids(&[format!("label={b}")], "b"),
        vec![b1.id.clone()]
    );
    assert_eq!(
        captured_ids(&[format!("label={key}")], "key"),
        sorted(vec![a1.id.clone(), a2.id.clone(), b1.id.clone()])
    );
    assert_eq!(
        captured_ids(&[format!("label={a}"), format!("name={}", a2.name)], "and"),
        vec![a2.id.clone()]
    );
    // Nothing matches: exit 2 with a hint, nothing written.
    let out = run(collect()
        .args([
            "capture",
            "--all",
            "--runtime",
            "docker",
            "--unsigned",
            "--filter",
        ])
        .arg(format!("label={key}=none"))
        .arg("-o")
        .arg(dir.path().join("none")));
    expect_code(&out, 2, "no match");
    assert!(stderr(&out).contains("hint: "));
}

#[test]
fn no_logs_and_logs_since_choose_the_log_lines() {
    let c = Container::start(Rt::Docker, "shell", &[]);
    // Lines on the container's own stdout (the init process's fd 1).
    c.sh("echo early-line > /proc/1/fd/1");
    // A whole second later than the early line, then a whole second before the late one
    // (--logs-since has one-second resolution).
    let after_early = {
        std::thread::sleep(Duration::from_millis(1100));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 1;
        std::thread::sleep(Duration::from_millis(2100));
        now
    };
    c.sh("echo late-line > /proc/1/fd/1 && echo late-err > /proc/1/fd/2");
    let dir = tempfile::tempdir().unwrap();
    let lines = |extra: &[&str], sub: &str| {
        let d = dir.path().join(sub);
        std::fs::create_dir(&d).unwrap();
        let (_, bundle) = c.capture_ok(&d, &[&["--unsigned", "--quiet"][..], extra].concat());
        let v = verified_unsigned(&bundle);
        let logs: Vec<exhibit_common::records::LogLine> = jsonl(&v, "exhibit/logs/container.jsonl");
        (v, logs)
    };
    let (v, all) = lines(&[], "all");
    let texts: Vec<(String, String)> = all
        .iter()
        .map(|l| (l.stream.clone(), l.line.lossy()))
        .collect();
    assert!(
        texts.contains(&("stdout".into(), "early-line".into())),
        "{texts:?}"
    );
    assert!(texts.contains(&("stdout".into(), "late-line".into())));
    assert!(texts.contains(&("stderr".into(), "late-err".into())));
    assert!(all.iter().all(|l| l.t.is_some()));
    assert_eq!(v.manifest().counts.log_lines, all.len() as u64);
    assert!(v.member("exhibit/logs/runtime.log").unwrap().is_some());

    let since = after_early.to_string();
    let (_, late) = lines(&["--logs-since", &since], "since");
    let texts: Vec<String> = late.iter().map(|l| l.line.lossy()).collect();
    assert!(texts.contains(&"late-line".to_string()), "{texts:?}");
    assert!(!texts.contains(&"early-line".to_string()), "{texts:?}");
    // The same instant in RFC 3339.
    let rfc =
        ok(Command::new("date").args(["-u", "-d", &format!("@{since}"), "+%Y-%m-%dT%H:%M:%SZ"]));
    let (_, late2) = lines(&["--logs-since", rfc.trim()], "since-rfc");
    assert_eq!(late2, late);

    let (v, none) = lines(&["--no-logs"], "none");
    assert!(none.is_empty());
    assert_eq!(v.manifest().counts.log_lines, 0);
    assert!(v.member("exhibit/logs/runtime.log").unwrap().is_none());
    let ev = events(&v);
    let logs = ev.iter().find(|e| e["step"] == "logs").unwrap();
    assert_eq!(
        (logs["outcome"].as_str(), logs["detail"].as_str()),
        (Some("skipped"), Some("--no-logs"))
    );
}

#[test]
fn container_and_image_json_match_docker_inspect() {
    let c = Container::start(Rt::Docker, "web", &["--label", "exhibit.test=inspect"]);
    let dir = tempfile::tempdir().unwrap();
    let (_, bundle) = c.capture_ok(dir.path(), &["--unsigned", "--quiet"]);
    let v = verified_unsigned(&bundle);
    let cj = json_member(&v, "exhibit/container.json");
    assert_eq!(cj["runtime"], "docker");
    let raw: serde_json::Value =
        serde_json::from_str(cj["inspect"].as_str().expect("inspect is a string")).unwrap();
    let docker: Vec<serde_json::Value> =
        serde_json::from_str(&ok(Command::new("docker").args(["inspect", &c.name]))).unwrap();
    for k in ["Id", "Image", "Created", "Name", "Path", "Args", "LogPath"] {
        assert_eq!(raw[k], docker[0][k], "{k}");
    }
    assert_eq!(raw["Config"]["Labels"], docker[0]["Config"]["Labels"]);
    let s = &cj["summary"];
    assert_eq!(s["id"], c.id.as_str());
    assert_eq!(s["name"], c.name.as_str());
    assert_eq!(s["image"], "exhibit-fixture/web:1");
    assert_eq!(s["image_id"], docker[0]["Image"]);
    assert_eq!(s["labels"]["exhibit.test"], "inspect");

    let ij = json_member(&v, "exhibit/image.json");
    let img: Vec<serde_json::Value> = serde_json::from_str(&ok(Command::new("docker").args([
        "image",
        "inspect",
        "exhibit-fixture/web:1",
    ])))
    .unwrap();
    assert_eq!(ij["reference"], "exhibit-fixture/web:1");
    assert_eq!(ij["image_id"], img[0]["Id"]);
    assert_eq!(ij["repo_digests"], img[0]["RepoDigests"]);
    assert_eq!(ij["diff_ids"], img[0]["RootFS"]["Layers"]);
    assert!(!ij["diff_ids"].as_array().unwrap().is_empty());
    assert_eq!(ij["config"]["Cmd"], img[0]["Config"]["Cmd"]);
    let m = v.manifest();
    assert_eq!(m.container.image_id, img[0]["Id"].as_str().unwrap());
    assert_eq!(m.container.image, "exhibit-fixture/web:1");
}

fn is_instant(s: &str) -> bool {
    // YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ
    s.len() == 30 && s.as_bytes()[10] == b'T' && s.as_bytes()[19] == b'.' && s.ends_with('Z')
}

#[test]
fn custody_fields_and_the_acquisition_log() {
    let c = Container::start(Rt::Docker, "web", &[]);
    c.sh("echo x > /tmp/x");
    let dir = tempfile::tempdir().unwrap();
    let (key, pubkey) = support::keypair(dir.path());
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let args: Vec<String> = [
        "capture",
        "--runtime",
        "docker",
        &c.id,
        "--quiet",
        "--case",
        "INC-4242",
        "--examiner",
        "Alice Ö",
        "--note",
        "line one; \"quoted\"",
        "--key",
        key.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    let out = run(collect().args(&args));
    expect_code(&out, 0, "capture");
    let bundle = bundles_in(&out_dir).pop().unwrap();
    let v = verified(&bundle, &pubkey);
    let m = v.manifest();
    assert_eq!(m.case.as_deref(), Some("INC-4242"));
    assert_eq!(m.examiner.as_deref(), Some("Alice Ö"));
    assert_eq!(m.note.as_deref(), Some("line one; \"quoted\""));
    assert_eq!(m.tool.name, "exhibit-collect");
    assert_eq!(m.tool.version, env!("CARGO_PKG_VERSION"));
    let bin = support::bin("exhibit-collect");
    assert_eq!(m.command_line[0], bin.to_str().unwrap());
    assert_eq!(m.command_line[1..], args[..]);
    assert_eq!(m.operator_uid, 0);
    assert!(
        is_instant(&m.started_at) && is_instant(&m.ended_at),
        "{m:?}"
    );
    assert!(m.started_at <= m.ended_at);
    assert_eq!(m.container.id, c.id);
    assert_eq!(m.container.name, c.name);

    let host = json_member(&v, "exhibit/host.json");
    let hostname = ok(Command::new("uname").arg("-n")).trim().to_string();
    assert_eq!(host["hostname"], hostname.as_str());
    let machine_id = std::fs::read_to_string("/etc/machine-id").unwrap();
    assert_eq!(host["machine_id"], machine_id.trim());
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    assert_eq!(host["boot_id"], boot_id.trim());
    let release = ok(Command::new("uname").arg("-r")).trim().to_string();
    assert!(host["kernel"].as_str().unwrap().contains(&release));
    assert_eq!(host["runtime"]["name"], "docker");
    assert!(host["runtime"]["remote"].is_null());
    let server = ok(Command::new("docker").args(["version", "-f", "{{.Server.Version}}"]));
    assert_eq!(host["runtime"]["version"], server.trim());
    assert_eq!(host["tool"]["name"], "exhibit-collect");
    assert_eq!(host["tool"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(host["tool"]["binary_sha256"], sha256_file(&bin).as_str());

    // The log: a valid hash chain, in order of volatility, instants non-decreasing.
    let raw = v.member("exhibit/acquisition.jsonl").unwrap().unwrap();
    let ev = exhibit_common::custody::check_chain(&raw).expect("hash chain");
    assert!(ev.iter().enumerate().all(|(i, e)| e.seq == i as u64));
    assert!(ev
        .windows(2)
        .all(|w| w[0].t <= w[1].t && is_instant(&w[1].t)));
    let at = |s: &str| {
        ev.iter()
            .position(|e| e.step == s)
            .unwrap_or_else(|| panic!("no {s} in {ev:?}"))
    };
    assert_eq!(at("capture.start"), 0);
    assert!(at("inspect") < at("processes"));
    assert!(at("processes") < at("sockets"));
    assert!(at("sockets") < at("memory"));
    assert!(at("memory") < at("files"));
    assert!(at("files") < at("logs"));
    assert_eq!(at("capture.end"), ev.len() - 1);
    assert!(ev[0].detail.as_deref().unwrap().contains("uid 0"));
    assert!(m.started_at <= ev[0].t && ev[ev.len() - 1].t <= m.ended_at);
    // A line changed in the log breaks the chain.
    let mut bad = raw.clone();
    let i = bad.iter().position(|&b| b == b'\n').unwrap() + 10;
    bad[i] ^= 1;
    assert!(exhibit_common::custody::check_chain(&bad).is_err());
}

fn setxattr(path: &Path, name: &str, value_hex: &str) {
    ok(Command::new("python3")
        .args([
            "-c",
            "import os,sys; os.setxattr(sys.argv[1], sys.argv[2].encode(), bytes.fromhex(sys.argv[3]), follow_symlinks=False)",
        ])
        .arg(path)
        .args([name, value_hex]));
}

fn getxattr(path: &Path, name: &str) -> Vec<u8> {
    let hex = ok(Command::new("python3")
        .args([
            "-c",
            "import os,sys; print(os.getxattr(sys.argv[1], sys.argv[2], follow_symlinks=False).hex())",
        ])
        .arg(path)
        .arg(name));
    (0..hex.trim().len() / 2)
        .map(|i| u8::from_str_radix(&hex.trim()[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

#[test]
fn opaque_dirs_xattrs_and_metadata_are_those_of_the_upper_dir() {
    let c = Container::start(Rt::Docker, "web", &["--tmpfs", "/scratch"]);
    c.sh("rm -rf /www && mkdir /www && echo new > /www/index.html \
          && echo cap > /tmp/capfile && chown 1234:5678 /tmp/capfile && chmod 4751 /tmp/capfile \
          && echo eq > /tmp/eqfile && echo big > /scratch/big");
    let upper = upper_dir(&c);
    let capfile = upper.join("tmp/capfile");
    // security.capability from the host (no tool in the fixture sets one), and a user
    // xattr with non-UTF-8 bytes and a NUL.
    ok(Command::new("setcap").arg("cap_net_raw+ep").arg(&capfile));
    setxattr(&capfile, "user.origin", "ff00fe0a41");
    // A name with '=' cannot be a PAX key: left out, and said so.
    setxattr(&upper.join("tmp/eqfile"), "user.a=b", "7878");
    setxattr(&upper.join("tmp/eqfile"), "user.kept", "6f6b");
    // Over the 512 KiB budget of an entry: on the container's tmpfs (ext4 cannot hold
    // that much), through the container's root.
    let pid = inspect(&c.name, "{{.State.Pid}}");
    let big = PathBuf::from(format!("/proc/{pid}/root/scratch/big"));
    for i in 0..10 {
        setxattr(&big, &format!("user.big{i}"), &"61".repeat(60_000));
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, bundle) = c.capture_ok(dir.path(), &["--unsigned", "--quiet"]);
    let v = verified_unsigned(&bundle);
    let recs = records(&v);

    let opq = recs
        .iter()
        .find(|r| r.member.as_bytes() == b"rootfs/www/.wh..wh..opq")
        .expect("opaque marker");
    assert_eq!(opq.kind, ChangeKind::OpaqueDir);
    assert_eq!(opq.path.as_bytes(), b"/www");
    assert!(!opq.captured);
    let www = recs
        .iter()
        .position(|r| r.member.as_bytes() == b"rootfs/www")
        .unwrap();
    let marker = recs
        .iter()
        .position(|r| r.member.as_bytes() == b"rootfs/www/.wh..wh..opq")
        .unwrap();
    assert_eq!(marker, www + 1, "the marker follows its directory");
    // As docker diff says (C /www/index.html): the image has that path.
    assert_eq!(record(&recs, b"/www/index.html").kind, ChangeKind::Modified);
    // No whiteouts for the old contents: the opaque marker hides them all.
    assert!(!recs
        .iter()
        .any(|r| r.kind == ChangeKind::Deleted && r.path.as_bytes().starts_with(b"/www/")));

    let cap = record(&recs, b"/tmp/capfile");
    assert_eq!(
        cap.xattr(b"security.capability")
            .expect("security.capability"),
        getxattr(&capfile, "security.capability")
    );
    assert_eq!(cap.xattr(b"user.origin").unwrap(), b"\xff\x00\xfe\nA");
    let st = std::fs::symlink_metadata(&capfile).unwrap();
    assert_eq!(cap.mode, st.mode() & 0o7777);
    assert_eq!((cap.uid, cap.gid), (1234, 5678));
    assert_eq!((cap.uid, cap.gid), (st.uid() as u64, st.gid() as u64));
    assert_eq!(cap.mtime_ns, st.mtime() * 1_000_000_000 + st.mtime_nsec());
    assert_eq!(cap.ctime_ns, st.ctime() * 1_000_000_000 + st.ctime_nsec());
    assert_eq!(cap.size, st.len());
    assert!(cap.flags.is_empty(), "{cap:?}");
    // The tar header carries the same bytes as a PAX SCHILY.xattr record (searched as
    // bytes: the tar crate's PAX parser refuses values with a newline, which is valid).
    let plain = support::plain_bytes(&bundle);
    let pax = [
        &b"SCHILY.xattr.security.capability="[..],
        &getxattr(&capfile, "security.capability"),
        b"\n",
    ]
    .concat();
    assert!(plain.windows(pax.len()).any(|w| w == pax));
    let pax = b"SCHILY.xattr.user.origin=\xff\x00\xfe\nA\n";
    assert!(plain.windows(pax.len()).any(|w| w == pax));

    let eq = record(&recs, b"/tmp/eqfile");
    assert_eq!(eq.xattr(b"user.kept").unwrap(), b"ok");
    assert!(eq.xattr(b"user.a=b").is_none());
    assert!(eq.flags.iter().any(|f| f == "xattrs-dropped"), "{eq:?}");
    let big = record(&recs, b"/scratch/big");
    assert!(big.flags.iter().any(|f| f == "xattrs-dropped"), "{big:?}");
    assert!(
        big.xattrs.len() >= 8 && big.xattrs.len() < 10,
        "{}",
        big.xattrs.len()
    );
    let ev = events(&v);
    let x = ev
        .iter()
        .find(|e| e["step"] == "files.xattrs")
        .expect("files.xattrs event");
    let detail = x["detail"].as_str().unwrap();
    assert!(detail.contains("/tmp/eqfile: user.a=b"), "{detail}");
    assert!(detail.contains("/scratch/big: user.big"), "{detail}");
    assert!(record(&recs, b"/tmp/capfile").flags.is_empty());
}

#[test]
fn argv_and_environment_keep_non_utf8_bytes_exactly() {
    let c = Container::start(Rt::Docker, "shell", &[]);
    let out = run(Command::new("docker").args([
        "exec",
        "-d",
        &c.name,
        "sh",
        "-c",
        r#"exec env "$(printf 'EXHIBIT_E=\377\376 x\001')" sh -c 'sleep 1001; :' "$(printf '\377zero')" "$(printf 'one\376\ntwo')""#,
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    // Wait until it runs.
    for _ in 0..50 {
        if c.sh("ps -o args | grep -c 'sleep 1001' || true").trim() != "1" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, bundle) = c.capture_ok(dir.path(), &["--unsigned", "--quiet"]);
    let v = verified_unsigned(&bundle);
    let procs: Vec<ProcessRecord> = jsonl(&v, "exhibit/processes.jsonl");
    let p = procs
        .iter()
        .find(|p| {
            p.argv
                .items
                .iter()
                .any(|a| a.as_bytes() == b"sleep 1001; :")
        })
        .unwrap_or_else(|| panic!("no such process in {procs:?}"));
    let argv: Vec<&[u8]> = p.argv.items.iter().map(|a| a.as_bytes()).collect();
    let want: Vec<&[u8]> = vec![b"sh", b"-c", b"sleep 1001; :", b"\xffzero", b"one\xfe\ntwo"];
    assert_eq!(argv, want);
    // Compared with the process's own /proc files, byte for byte.
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", p.pid)).unwrap();
    let joined: Vec<u8> = want.iter().flat_map(|a| [*a, b"\0"].concat()).collect();
    assert_eq!(cmdline, joined);
    let environ = std::fs::read(format!("/proc/{}/environ", p.pid)).unwrap();
    let env: Vec<&[u8]> = p.env.items.iter().map(|a| a.as_bytes()).collect();
    let host_env: Vec<&[u8]> = environ
        .split(|&b| b == 0)
        .filter(|e| !e.is_empty())
        .collect();
    assert_eq!(env, host_env);
    assert!(env.contains(&&b"EXHIBIT_E=\xff\xfe x\x01"[..]), "{env:?}");
    // In JSON the bytes are base64, never replaced.
    let raw = v.member("exhibit/processes.jsonl").unwrap().unwrap();
    assert!(!String::from_utf8_lossy(&raw).contains('\u{fffd}'));
}

/// Starts a capture of `c` in the background and waits until it has `file` (a path in
/// the container's upper dir) open; returns the child.
fn capture_reading(
    c: &Container,
    target: &Path,
    file: &Path,
    extra: &[&str],
) -> std::process::Child {
    let mut child = c
        .capture_command(&["--unsigned", "--quiet", "-o"])
        .arg(target)
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let fds = PathBuf::from(format!("/proc/{}/fd", child.id()));
    loop {
        let open = std::fs::read_dir(&fds)
            .map(|d| {
                d.flatten()
                    .any(|e| std::fs::read_link(e.path()).ok().as_deref() == Some(file))
            })
            .unwrap_or(false);
        if open {
            return child;
        }
        if child.try_wait().unwrap().is_some() {
            let (st, err) = support::wait_with_stderr(child);
            panic!(
                "the capture ended ({st}) before it opened {}: {err}",
                file.display()
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_file_that_shrinks_or_vanishes_during_the_read_is_flagged() {
    let c = Container::start(Rt::Docker, "shell", &[]);
    // Sparse, large enough that the read outlasts a `docker exec`.
    c.sh("truncate -s 3G /tmp/shrinks /tmp/vanishes && echo steady > /tmp/steady");
    let upper = upper_dir(&c);
    let dir = tempfile::tempdir().unwrap();
    for (name, action) in [
        ("shrinks", "truncate -s 1M /tmp/shrinks"),
        ("vanishes", "rm /tmp/vanishes"),
    ] {
        let target = dir.path().join(format!("{name}.exhibit.tar.zst"));
        let child = capture_reading(
            &c,
            &target,
            &upper.join("tmp").join(name),
            &["--max-file-size", "3GiB"],
        );
        c.sh(action);
        let (st, err) = support::wait_with_stderr(child);
        assert!(st.code() == Some(1), "{name}: {st}: {err}");
        let v = verified_unsigned(&target);
        let recs = records(&v);
        let r = record(&recs, format!("/tmp/{name}").as_bytes());
        assert!(!r.captured, "{name}: {r:?}");
        assert!(
            r.flags.iter().any(|f| f == "changed-during-read"),
            "{name}: {r:?}"
        );
        assert_eq!(r.size, 3 << 30, "{name}: the size statx saw");
        let lost = serde_json::to_string(&v.manifest().completeness).unwrap();
        assert!(lost.contains("files-changed"), "{name}: {lost}");
        assert_eq!(r.stored_size, r.size, "{name}: {r:?}");
        if name == "vanishes" {
            assert_eq!(r.reason.as_deref(), Some("vanished during read"));
            assert!(r.flags.iter().any(|f| f == "vanished-during-read"));
        } else {
            assert_eq!(r.reason.as_deref(), Some("changed during read"));
        }
        let steady = record(&recs, b"/tmp/steady");
        assert!(steady.captured && steady.flags.is_empty());
    }
}

#[test]
fn a_freeze_capture_that_fails_with_exit_2_still_unpauses() {
    let tmpfs = support::SmallTmpfs::mount("256k");
    let small = tmpfs.path.clone();
    let c = Container::start(Rt::Docker, "shell", &[]);
    c.sh("head -c 3000000 /dev/urandom > /tmp/random");
    for what in ["full", "read-only"] {
        if what == "read-only" {
            ok(Command::new("mount").args(["-o", "remount,ro"]).arg(&small));
        }
        let since = ok(Command::new("date").args(["-u", "+%s"]))
            .trim()
            .to_string();
        let out = run(c
            .capture_command(&["--unsigned", "--quiet", "--freeze", "-o"])
            .arg(&small));
        let err = stderr(&out);
        expect_code(&out, 2, what);
        assert!(
            err.lines().any(|l| l.starts_with("error: ")),
            "{what}: {err}"
        );
        assert_eq!(
            inspect(&c.name, "{{.State.Paused}}"),
            "false",
            "{what}: left paused"
        );
        // It was paused (the failure came after the pause) and resumed.
        let until = ok(Command::new("date").args(["-u", "+%s"]))
            .trim()
            .parse::<u64>()
            .unwrap()
            + 1;
        let until = until.to_string();
        let evs = ok(Command::new("docker").args([
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            &format!("container={}", c.id),
            "--format",
            "{{.Action}}",
        ]));
        let acts: Vec<&str> = evs.lines().filter(|l| l.contains("pause")).collect();
        assert_eq!(acts, ["pause", "unpause"], "{what}: {evs}");
        let left = names_in(&small);
        assert!(left.is_empty(), "{what}: {left:?}");
    }
}

#[test]
fn not_root_gets_a_hint_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    // Reachable by uid 65534 whatever the target dir (it may sit under /root): a hard
    // link, or a copy across filesystems, in the world-traversable temporary dir.
    let built = support::bin("exhibit-collect");
    let bin = dir.path().join("exhibit-collect");
    if std::fs::hard_link(&built, &bin).is_err() {
        std::fs::copy(&built, &bin).unwrap();
    }
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::set_permissions(&out_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = run(Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["capture", "some-container", "--unsigned", "-o"])
        .arg(&out_dir)
        .env_remove("DOCKER_HOST"));
    expect_code(&out, 2, "as uid 65534");
    let err = stderr(&out);
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: ") && first.contains("root"),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("hint: ") && l.contains("as root")),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 0);
}

#[test]
fn on_a_terminal_the_progress_line_names_the_step_and_counts_bytes_inside_a_large_file() {
    // script(1) gives the collector a pseudo-terminal as stderr; what it draws there is
    // copied to script's stdout. One 256 MiB file: progress must move inside it.
    let c = Container::start(Rt::Docker, "shell", &[]);
    c.sh("head -c 268435456 /dev/urandom > /tmp/big");
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("p.exhibit.tar.zst");
    let cmd = format!(
        "{} capture --runtime docker {} --unsigned -o {}",
        support::bin("exhibit-collect").display(),
        c.id,
        bundle.display()
    );
    let out = run(Command::new("script")
        .args(["-qefc", &cmd, "/dev/null"])
        .env("CONTAINERD_ADDRESS", support::containerd_address())
        .env_remove("DOCKER_HOST")
        .env("TERM", "xterm"));
    let tty = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{tty}");
    assert!(bundle.exists(), "{tty}");
    assert!(
        tty.contains(&format!("capturing {}: files", c.name)),
        "no files step on the terminal: {tty}"
    );
    // Byte counts drawn while /tmp/big was being copied (between 1 and 255 MiB).
    let mid_file = tty.split("entries, ").skip(1).any(|rest| {
        let figure: String = rest.chars().take_while(|ch| *ch != ' ').collect();
        let unit: String = rest
            .chars()
            .skip(figure.len() + 1)
            .take_while(|ch| ch.is_ascii_alphabetic())
            .collect();
        figure
            .parse::<f64>()
            .is_ok_and(|v| unit == "MiB" && (1.0..255.0).contains(&v))
    });
    assert!(mid_file, "no progress inside the large file: {tty}");
    // Not a terminal (the other tests): nothing but the summary on stderr.
    let (plain, _) = c.capture(dir.path(), &["--unsigned"]);
    assert!(!stderr(&plain).contains("capturing "), "{}", stderr(&plain));
}
