//! exhibit-collect on containerd beyond the shared scenario table of collector.rs: Docker
//! on the containerd image store (the container's snapshot in namespace `moby`), the
//! Kubernetes identity in `list`, image identity against ctr, CRI log files, and the
//! hints of --runtime auto. Everything runs against the standalone containerd that
//! scripts/setup starts (and dockerd where Docker is involved).

use crate::support;

use exhibit_common::custody::AcquisitionEvent;
use exhibit_common::records::ChangeRecord;
use std::path::Path;
use support::{collect, jsonl, ok, run, Container, Rt};

const SHELL_IMAGE: &str = "docker.io/exhibit-fixture/shell:1";

use support::{ctr_in as ctr, unique};

/// Imports the shell fixture into `ns` (idempotent).
fn import_shell(ns: &str) {
    let tar = support::fixtures_dir().join("shell.tar");
    ok(ctr(ns).args(["images", "import"]).arg(&tar));
}

/// A container run with `ctr` in any namespace, with labels; removed on drop.
struct CtrContainer {
    ns: String,
    id: String,
}

impl CtrContainer {
    fn run(ns: &str, id: &str, labels: &[(&str, &str)]) -> CtrContainer {
        let mut c = ctr(ns);
        c.args(["run", "-d"]);
        for (k, v) in labels {
            c.args(["--label", &format!("{k}={v}")]);
        }
        ok(c.args([SHELL_IMAGE, id]));
        let c = CtrContainer {
            ns: ns.into(),
            id: id.into(),
        };
        for _ in 0..50 {
            if c.sh_output("true").status.success() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        c
    }

    fn sh_output(&self, script: &str) -> std::process::Output {
        run(ctr(&self.ns).args([
            "task",
            "exec",
            "--exec-id",
            &unique("x"),
            &self.id,
            "sh",
            "-c",
            script,
        ]))
    }

    fn sh(&self, script: &str) {
        let out = self.sh_output(script);
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for CtrContainer {
    fn drop(&mut self) {
        let _ = ctr(&self.ns)
            .args(["task", "kill", "-s", "SIGKILL", &self.id])
            .output();
        for _ in 0..30 {
            let out = ctr(&self.ns).args(["task", "rm", "-f", &self.id]).output();
            if out.map(|o| o.status.success()).unwrap_or(false) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = ctr(&self.ns).args(["containers", "rm", &self.id]).output();
        let _ = ctr(&self.ns).args(["snapshots", "rm", &self.id]).output();
    }
}

/// Runs a capture that must seal a complete bundle; returns the verified bundle.
fn capture_ok(dir: &Path, file: &str, args: &[&str]) -> exhibit_common::VerifiedBundle {
    capture_exit(dir, file, args, 0)
}

/// Runs a capture that must seal a bundle with exit `code`; returns it verified.
fn capture_exit(
    dir: &Path,
    file: &str,
    args: &[&str],
    code: i32,
) -> exhibit_common::VerifiedBundle {
    let out_path = dir.join(file);
    let out = run(collect()
        .arg("capture")
        .args(args)
        .args(["--unsigned", "--quiet", "-o"])
        .arg(&out_path));
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    exhibit_common::verify(&out_path, &Default::default()).expect("bundle verifies")
}

fn paths(v: &exhibit_common::VerifiedBundle) -> Vec<String> {
    v.records()
        .expect("records")
        .map(|r| r.expect("record"))
        .map(|r: ChangeRecord| String::from_utf8_lossy(r.path.as_bytes()).into_owned())
        .collect()
}

fn events(v: &exhibit_common::VerifiedBundle) -> Vec<AcquisitionEvent> {
    jsonl(v, exhibit_common::members::ACQUISITION)
}

#[test]
fn docker_on_the_containerd_image_store_captures_the_moby_snapshot() {
    let addr = support::containerd_address();
    let dir = tempfile::tempdir().unwrap();
    let d = Container::start(Rt::Docker, "shell", &[]);
    d.sh("echo docker > /tmp/from-docker");

    // No snapshot with this id in moby: the lookup fails, the Engine API takes over and
    // the acquisition log says why.
    let v = capture_ok(
        dir.path(),
        "fallback.exhibit.tar.zst",
        &["--runtime", "docker", &d.id, "--fs-method", "snapshot"],
    );
    assert_eq!(v.manifest().fs_method, "engine-api");
    assert!(paths(&v).contains(&"/tmp/from-docker".to_string()));
    let ev = events(&v);
    let failed = ev
        .iter()
        .find(|e| e.step == "files.upperdir" && e.outcome == "error")
        .expect("the failed snapshot lookup is recorded");
    let why = failed.error.clone().unwrap_or_default();
    assert!(
        why.contains("namespace moby") && why.contains(&d.id) && why.contains(&addr),
        "{why}"
    );
    assert!(ev
        .iter()
        .any(|e| e.step == "files.method" && e.detail.as_deref().unwrap_or("").contains(&why)));

    // Docker's containerd-store layout, reproduced on the standalone containerd: a
    // container in namespace moby whose snapshot key is the Docker container's id.
    import_shell("moby");
    let s = CtrContainer::run("moby", &d.id, &[]);
    s.sh("echo snapshot > /tmp/from-snapshot");

    // The shared lookup gives the snapshot's upper dir, holding that change.
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dirs = tokio
        .block_on(async {
            use exhibit_collector::runtime::containerd::{connect_channel, snapshot_dirs};
            let channel = connect_channel(Path::new(&addr)).await?;
            snapshot_dirs(&channel, "moby", "overlayfs", &d.id).await
        })
        .expect("snapshot lookup");
    assert_eq!(
        std::fs::read(dirs.upper.join("tmp/from-snapshot")).unwrap(),
        b"snapshot\n"
    );
    assert!(!dirs.upper.join("tmp/from-docker").exists());
    assert!(
        dirs.lowers.iter().any(|l| l.join("bin/busybox").exists()),
        "{:?}",
        dirs.lowers
    );
    // A missing key is an error naming it, never an empty answer.
    let missing = tokio
        .block_on(async {
            use exhibit_collector::runtime::containerd::{connect_channel, snapshot_dirs};
            let channel = connect_channel(Path::new(&addr)).await?;
            snapshot_dirs(&channel, "moby", "overlayfs", "no-such-snapshot").await
        })
        .unwrap_err();
    assert!(
        format!("{missing:#}").contains("no-such-snapshot"),
        "{missing:#}"
    );

    // The Docker runtime routed to the snapshot reads that upper dir.
    let v = capture_ok(
        dir.path(),
        "docker.exhibit.tar.zst",
        &[
            "--runtime",
            "docker",
            &d.id,
            "--fs-method",
            "snapshot",
            "--containerd-address",
            &addr,
        ],
    );
    assert_eq!(v.manifest().fs_method, "containerd-snapshot");
    let p = paths(&v);
    assert!(p.contains(&"/tmp/from-snapshot".to_string()), "{p:?}");
    assert!(!p.contains(&"/tmp/from-docker".to_string()), "{p:?}");
    assert!(events(&v).iter().any(|e| e.step == "files.upperdir"
        && e.outcome == "info"
        && e.detail
            .as_deref()
            .is_some_and(|t| t.contains("namespace moby") && t.contains(&d.id))));

    // And so does the containerd runtime in namespace moby.
    let v = capture_ok(
        dir.path(),
        "moby.exhibit.tar.zst",
        &["--runtime", "containerd", "--namespace", "moby", &d.id],
    );
    assert_eq!(v.manifest().fs_method, "containerd-snapshot");
    assert_eq!(v.manifest().container.namespace.as_deref(), Some("moby"));
    let recs: Vec<ChangeRecord> = v.records().unwrap().map(|r| r.unwrap()).collect();
    let r = recs
        .iter()
        .find(|r| r.path.as_bytes() == b"/tmp/from-snapshot")
        .expect("the staged file");
    assert_eq!(
        r.sha256.as_deref(),
        Some(exhibit_common::hashing::sha256_hex(b"snapshot\n").as_str())
    );
    assert!(v.manifest().counts.processes >= 1);
}

#[test]
fn a_failed_snapshot_lookup_is_recorded_not_dropped() {
    // A container whose snapshot is gone: the Mounts call fails, and the bundle says so.
    let id = unique("exhibit-nosnap");
    ok(ctr("k8s.io").args(["containers", "create", SHELL_IMAGE, &id]));
    let _c = CtrContainer {
        ns: "k8s.io".into(),
        id: id.clone(),
    };
    ok(ctr("k8s.io").args(["snapshots", "rm", &id]));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.exhibit.tar.zst");
    let out = run(collect()
        .args([
            "capture",
            "--runtime",
            "containerd",
            &id,
            "--unsigned",
            "--quiet",
            "-o",
        ])
        .arg(&path));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let v = exhibit_common::verify(&path, &Default::default()).unwrap();
    assert_eq!(v.manifest().fs_method, "none");
    let reasons = &v.manifest().completeness.reasons;
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("Mounts failed") && r.contains(&id)),
        "{reasons:?}"
    );
    assert!(events(&v).iter().any(|e| e.step == "files.upperdir"
        && e.outcome == "error"
        && e.error
            .as_deref()
            .is_some_and(|x| x.contains("Mounts failed"))));
}

#[test]
fn list_shows_the_kubernetes_identity_of_containerd_containers() {
    let id = unique("exhibit-list");
    let pod = unique("web-7f9c");
    let c = CtrContainer::run(
        "k8s.io",
        &id,
        &[
            ("io.kubernetes.pod.name", &pod),
            ("io.kubernetes.pod.namespace", "shop"),
            ("io.kubernetes.container.name", "web"),
            ("io.cri-containerd.kind", "container"),
        ],
    );
    let pid = ok(ctr("k8s.io").args(["task", "ls"]))
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id.as_str()))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|p| p.parse::<i64>().ok())
        .expect("task pid");
    let json = ok(collect().args(["list", "--runtime", "containerd", "--format", "json"]));
    let all: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let x = all
        .iter()
        .find(|x| x["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} not listed: {json}"));
    assert_eq!(x["runtime"], "containerd");
    assert_eq!(x["namespace"], "k8s.io");
    assert_eq!(x["pod"], pod.as_str());
    assert_eq!(x["pod_namespace"], "shop");
    assert_eq!(x["container_name"], "web");
    assert_eq!(x["name"], "web");
    assert_eq!(x["image"], SHELL_IMAGE);
    assert_eq!(x["status"], "running");
    assert_eq!(x["pid"].as_i64(), Some(pid));
    // The text table carries the same, the pod as NAMESPACE/POD/CONTAINER.
    let text = ok(collect().args(["list", "--runtime", "containerd"]));
    let line = text
        .lines()
        .find(|l| l.contains(&format!("shop/{pod}/web")))
        .unwrap_or_else(|| panic!("{text}"));
    for want in [
        "containerd",
        "k8s.io",
        "running",
        SHELL_IMAGE,
        &pid.to_string(),
    ] {
        assert!(line.contains(want), "{want} missing in {line}");
    }
    // A paused task is listed as paused.
    ok(ctr("k8s.io").args(["task", "pause", &c.id]));
    let json = ok(collect().args(["list", "--runtime", "containerd", "--format", "json"]));
    ok(ctr("k8s.io").args(["task", "resume", &c.id]));
    let all: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert!(all
        .iter()
        .any(|x| x["id"] == id.as_str() && x["status"] == "paused"));
}

#[test]
fn image_identity_on_containerd_matches_ctr() {
    let id = unique("exhibit-image");
    let _c = CtrContainer::run("k8s.io", &id, &[]);
    let dir = tempfile::tempdir().unwrap();
    let v = capture_ok(
        dir.path(),
        "i.exhibit.tar.zst",
        &["--runtime", "containerd", &id],
    );
    let image: serde_json::Value =
        serde_json::from_slice(&v.member(exhibit_common::members::IMAGE).unwrap().unwrap())
            .unwrap();
    // ctr images ls: REF TYPE DIGEST SIZE ...
    let ls = ok(ctr("k8s.io").args(["images", "ls"]));
    let row: Vec<&str> = ls
        .lines()
        .find(|l| l.split_whitespace().next() == Some(SHELL_IMAGE))
        .unwrap_or_else(|| panic!("{ls}"))
        .split_whitespace()
        .collect();
    let (media_type, digest) = (row[1], row[2]);
    assert!(media_type.contains("manifest"), "{media_type}");
    let manifest: serde_json::Value =
        serde_json::from_str(&ok(ctr("k8s.io").args(["content", "get", digest]))).unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&ok(ctr("k8s.io").args(["content", "get", config_digest]))).unwrap();
    assert_eq!(image["reference"], SHELL_IMAGE);
    assert_eq!(image["manifest_digest"], digest);
    assert_eq!(image["image_id"], config_digest);
    assert_eq!(image["diff_ids"], config["rootfs"]["diff_ids"]);
    assert!(!config["rootfs"]["diff_ids"].as_array().unwrap().is_empty());
    assert_eq!(
        image["repo_digests"],
        serde_json::json!([format!("docker.io/exhibit-fixture/shell@{digest}")])
    );
    assert_eq!(image["config"], config["config"]);
    assert_eq!(v.manifest().container.image_id, config_digest);
}

/// A pod log directory under /var/log/pods, removed on drop.
struct PodLogDir(std::path::PathBuf);

impl Drop for PodLogDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn cri_log_files_are_read_from_the_pod_uid_directory() {
    let pod = unique("exhibit-logpod");
    let (ns, uid, other_uid) = ("exhibit-test", unique("uid"), unique("olduid"));
    let root = Path::new("/var/log/pods");
    let dir = PodLogDir(root.join(format!("{ns}_{pod}_{uid}")));
    // An earlier pod of the same name: same prefix, another uid; never read.
    let decoy = PodLogDir(root.join(format!("{ns}_{pod}_{other_uid}")));
    for d in [&dir.0, &decoy.0] {
        std::fs::create_dir_all(d.join("web")).unwrap();
    }
    std::fs::write(
        decoy.0.join("web/0.log"),
        "2026-11-23T09:00:00.000000001Z stdout F decoy line\n",
    )
    .unwrap();
    let logs = dir.0.join("web");
    // A gzip rotation (skipped and recorded), a plain rotation, then the current file
    // with a line split in P/F parts and a line over the 1 MiB cap.
    std::fs::write(
        logs.join("0.log.20261123-100000.gz"),
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03not text",
    )
    .unwrap();
    std::fs::write(
        logs.join("0.log.20261123-110000"),
        "2026-11-23T11:00:00.000000001Z stdout F rotated line\n",
    )
    .unwrap();
    let long = "x".repeat(1_500_000);
    let current = format!(
        "2026-11-23T12:00:00.000000001Z stdout P hello \n\
         2026-11-23T12:00:00.000000002Z stderr F to stderr\n\
         2026-11-23T12:00:00.000000003Z stdout F world\n\
         2026-11-23T12:00:01.000000000Z stdout F {long}\n"
    );
    std::fs::write(logs.join("0.log"), &current).unwrap();

    let id = unique("exhibit-logs");
    let _c = CtrContainer::run(
        "k8s.io",
        &id,
        &[
            ("io.kubernetes.pod.name", &pod),
            ("io.kubernetes.pod.namespace", ns),
            ("io.kubernetes.pod.uid", &uid),
            ("io.kubernetes.container.name", "web"),
        ],
    );
    let out = tempfile::tempdir().unwrap();
    // The 1.5 MB line is cut at the 1 MiB cap: a loss, so the bundle is incomplete.
    let v = capture_exit(
        out.path(),
        "l.exhibit.tar.zst",
        &["--runtime", "containerd", &id],
        1,
    );
    let lines: Vec<exhibit_common::records::LogLine> = jsonl(&v, exhibit_common::members::LOGS);
    assert!(
        lines[3].truncated && !lines[0].truncated,
        "the cut line is marked"
    );
    let manifest = v.manifest();
    let lost = serde_json::to_string(&manifest.completeness).unwrap();
    assert!(lost.contains("log-line-cut"), "{lost}");
    let got: Vec<(String, String, usize)> = lines
        .iter()
        .map(|l| {
            (
                l.stream.clone(),
                String::from_utf8_lossy(l.line.as_bytes())
                    .chars()
                    .take(20)
                    .collect(),
                l.line.as_bytes().len(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("stdout".into(), "rotated line".into(), 12),
            ("stderr".into(), "to stderr".into(), 9),
            ("stdout".into(), "hello world".into(), 11),
            ("stdout".into(), "x".repeat(20), 1 << 20),
        ]
    );
    assert_eq!(
        lines[2].t.as_deref(),
        Some("2026-11-23T12:00:00.000000001Z"),
        "a joined line has the time of its first part"
    );
    // The current file is kept verbatim, as Docker's json-file log is.
    assert_eq!(
        v.member(exhibit_common::members::RUNTIME_LOG)
            .unwrap()
            .expect("raw log kept"),
        current.as_bytes()
    );
    let container: serde_json::Value = serde_json::from_slice(
        &v.member(exhibit_common::members::CONTAINER)
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    let cri = &container["summary"]["cri_logs"];
    assert_eq!(cri["dir"], logs.to_str().unwrap());
    let skipped = cri["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{cri}");
    assert!(skipped[0]["file"].as_str().unwrap().ends_with(".gz"));
    assert!(skipped[0]["why"].as_str().unwrap().contains("gzip"));
    assert!(
        !String::from_utf8_lossy(&support::plain_bytes(&out.path().join("l.exhibit.tar.zst")))
            .contains("decoy line")
    );
}

fn hints(out: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("hint: ").map(str::to_string))
        .collect()
}

#[test]
fn auto_names_a_runtime_that_did_not_answer() {
    // containerd's address is not a socket: auto goes on with Docker alone, and the
    // container not found there may be in containerd, so the hint says containerd failed.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("containerd.sock");
    std::fs::write(&fake, b"").unwrap();
    let q = unique("no-such-container");
    let out = run(collect()
        .args(["capture", "--runtime", "auto", &q, "--unsigned", "-o"])
        .arg(dir.path())
        .arg("--containerd-address")
        .arg(&fake));
    assert_eq!(out.status.code(), Some(2));
    let h = hints(&out);
    assert!(
        h.iter().any(
            |l| l.contains("not searched: containerd at") && l.contains(fake.to_str().unwrap())
        ),
        "{h:?}"
    );
    // Docker unreachable: containerd alone, and the hint names Docker's error.
    let out = run(collect()
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(["capture", "--runtime", "auto", &q, "--unsigned", "-o"])
        .arg(dir.path()));
    assert_eq!(out.status.code(), Some(2));
    let h = hints(&out);
    assert!(
        h.iter().any(|l| l.contains("not searched: docker")),
        "{h:?}"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().count() == 1,
        "nothing written"
    );
}

#[test]
fn every_query_form_of_a_container_in_another_namespace_gets_the_namespace_hint() {
    let ns = unique("exhibit-elsewhere");
    import_shell(&ns);
    let id = unique("exhibit-far");
    let pod = unique("far-pod");
    let mut create = ctr(&ns);
    create.args(["containers", "create"]);
    for l in [
        format!("io.kubernetes.pod.name={pod}"),
        "io.kubernetes.pod.namespace=shop".to_string(),
        "io.kubernetes.container.name=web".to_string(),
    ] {
        create.args(["--label", &l]);
    }
    ok(create.args([SHELL_IMAGE, &id]));
    let c = CtrContainer {
        ns: ns.clone(),
        id: id.clone(),
    };
    let queries = [
        id.clone(),
        format!("containerd://{id}"),
        format!("shop/{pod}/web"),
    ];
    let outs: Vec<_> = queries
        .iter()
        .map(|q| {
            run(collect().args([
                "capture",
                "--runtime",
                "containerd",
                q,
                "--unsigned",
                "-o",
                "/nonexistent-dir/x",
            ]))
        })
        .collect();
    drop(c);
    let _ = ctr(&ns).args(["images", "rm", SHELL_IMAGE]).output();
    support::remove_namespace(&ns);
    for (q, out) in queries.iter().zip(outs) {
        assert_eq!(out.status.code(), Some(2), "{q}");
        let h = hints(&out);
        assert!(
            h.iter()
                .any(|l| l.contains(&ns) && l.contains("--namespace")),
            "{q}: {h:?}"
        );
    }
}
