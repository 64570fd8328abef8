//! exhibit-collect on containerd beyond the shared scenario table of collector.rs: Docker
//! on the containerd image store (the container's snapshot in namespace `moby`), the
//! Kubernetes identity in `list`, image identity against ctr, CRI log files, and the
//! hints of --runtime auto. Everything runs against the standalone containerd that
//! scripts/setup starts (and dockerd where Docker is involved).

mod support;

use exhibit_common::custody::AcquisitionEvent;
use exhibit_common::records::ChangeRecord;
use std::path::Path;
use std::process::Command;
use support::{collect, jsonl, ok, run, Container, Rt};

const SHELL_IMAGE: &str = "docker.io/exhibit-fixture/shell:1";

fn ctr(ns: &str) -> Command {
    let mut c = Command::new("ctr");
    c.args(["-a", &support::containerd_address(), "-n", ns]);
    c
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

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
    let out_path = dir.join(file);
    let out = run(collect()
        .arg("capture")
        .args(args)
        .args(["--unsigned", "--quiet", "-o"])
        .arg(&out_path));
    assert_eq!(
        out.status.code(),
        Some(0),
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
