//! Faults during a capture, against real containers: the runtime daemon going away
//! (through a socket proxy the test kills; the shared daemons keep running), a file
//! that keeps growing while it is read, and SIGINT, SIGTERM and SIGKILL at random
//! points of a capture.

use crate::support;

use exhibit_common::records::ChangeRecord;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{
    expect_code, expect_line, jsonl, ok, plain_bytes, run, stderr, verified_unsigned, Container, Rt,
};

/// A unix-socket proxy in front of a daemon's socket. It "dies" (closes its listener,
/// removes its socket and shuts every connection down) as soon as `trigger` is true:
/// checked every few milliseconds, and before any byte from the client is forwarded,
/// so no request made after the trigger holds ever reaches the daemon.
struct Proxy {
    path: PathBuf,
    st: Arc<ProxyState>,
}

struct ProxyState {
    path: PathBuf,
    dead: AtomicBool,
    conns: Mutex<Vec<UnixStream>>,
    trigger: Box<dyn Fn() -> bool + Send + Sync>,
}

impl ProxyState {
    fn check(&self) -> bool {
        if !self.dead.load(Ordering::SeqCst) && (self.trigger)() {
            self.kill();
        }
        self.dead.load(Ordering::SeqCst)
    }

    fn kill(&self) {
        self.dead.store(true, Ordering::SeqCst);
        let _ = std::fs::remove_file(&self.path);
        for c in self.conns.lock().unwrap().iter() {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Proxy {
    fn start(
        upstream: &Path,
        path: PathBuf,
        trigger: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Proxy {
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let st = Arc::new(ProxyState {
            path: path.clone(),
            dead: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            trigger: Box::new(trigger),
        });
        let upstream = upstream.to_path_buf();
        let s = st.clone();
        // The accept loop owns the listener: it closes when the loop ends.
        std::thread::spawn(move || {
            while !s.check() {
                match listener.accept() {
                    Ok((client, _)) => {
                        let Ok(server) = UnixStream::connect(&upstream) else {
                            continue;
                        };
                        s.conns
                            .lock()
                            .unwrap()
                            .extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                        pump(
                            s.clone(),
                            client.try_clone().unwrap(),
                            server.try_clone().unwrap(),
                            true,
                        );
                        pump(s.clone(), server, client, false);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(3));
                    }
                    Err(_) => break,
                }
            }
            s.kill();
        });
        Proxy { path, st }
    }

    fn url(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// Whether the proxy died (its trigger held at some point).
    fn died(&self) -> bool {
        self.st.dead.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.st.kill();
    }
}

// Copies one direction of a connection; bytes from the client are forwarded only
// while the proxy lives.
fn pump(st: Arc<ProxyState>, mut from: UnixStream, mut to: UnixStream, from_client: bool) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if (from_client && st.check()) || st.dead.load(Ordering::SeqCst) {
                break;
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

fn partial(p: &Path) -> PathBuf {
    PathBuf::from(format!("{}.partial", p.display()))
}

fn sidecar(p: &Path) -> PathBuf {
    PathBuf::from(format!("{}.sha256", p.display()))
}

fn events(v: &exhibit_common::VerifiedBundle) -> Vec<serde_json::Value> {
    jsonl(v, "exhibit/acquisition.jsonl")
}

fn event<'a>(ev: &'a [serde_json::Value], step: &str) -> &'a serde_json::Value {
    ev.iter()
        .find(|e| e["step"] == step)
        .unwrap_or_else(|| panic!("no {step} event in {ev:?}"))
}

fn docker_paused(c: &Container) -> bool {
    ok(Command::new("docker").args(["inspect", "-f", "{{.State.Paused}}", &c.name])).trim()
        == "true"
}

fn containerd_status(c: &Container) -> String {
    ok(support::ctr_in("k8s.io").args(["task", "ls"]))
        .lines()
        .find(|l| l.starts_with(&c.name))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn docker_going_away_mid_capture_gives_a_sealed_incomplete_bundle() {
    let c = Container::start(Rt::Docker, "shell", &[]);
    c.sh("head -c 67108864 /dev/urandom > /tmp/big && echo hello");
    for freeze in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("x.exhibit.tar.zst");
        let watch = partial(&target);
        let proxy = Proxy::start(
            Path::new("/var/run/docker.sock"),
            dir.path().join("docker.sock"),
            move || watch.exists(),
        );
        let url = proxy.url();
        let out = run(c
            .capture_command(&["--unsigned", "--quiet"])
            .args(freeze.then_some("--freeze"))
            .args(["--docker-host", &url, "-o"])
            .arg(&target));
        let err = stderr(&out);
        assert!(proxy.died(), "the proxy never died: {err}");
        // Sealed, signed (here: unsigned but hashed) and marked incomplete: exit 1.
        assert_eq!(out.status.code(), Some(1), "freeze={freeze}: {err}");
        assert!(!partial(&target).exists() && !partial(&sidecar(&target)).exists());
        let v = exhibit_common::verify(&target, &Default::default())
            .unwrap_or_else(|e| panic!("freeze={freeze}: {e}"));
        let m = v.manifest();
        assert_eq!(
            m.completeness.status,
            exhibit_common::manifest::CompletenessStatus::Incomplete
        );
        assert!(
            m.completeness
                .reasons
                .iter()
                .any(|r| r.starts_with("logs:")),
            "{:?}",
            m.completeness.reasons
        );
        let ev = events(&v);
        assert_eq!(event(&ev, "logs")["outcome"], "error");
        // Everything read from the host is there.
        let recs: Vec<ChangeRecord> = support::records(&v);
        let big = recs
            .iter()
            .find(|r| r.path.as_bytes() == b"/tmp/big")
            .expect("/tmp/big recorded");
        assert_eq!((big.stored_size, big.captured), (64 << 20, true));
        if freeze {
            // The pause went through the proxy, the resume could not: the container
            // is still paused and the operator is told how to resume it.
            assert!(docker_paused(&c), "{err}");
            expect_line(&err, "hint: ", &format!("docker unpause {}", c.id));
            expect_line(&err, "warning: ", "could not be resumed");
            assert_eq!(event(&ev, "unfreeze")["outcome"], "error");
            let f = m.freeze.clone().expect("freeze window");
            assert!(f.resumed_at.is_none());
            ok(Command::new("docker").args(["unpause", &c.name]));
        } else {
            assert!(!docker_paused(&c));
        }
    }
}

#[test]
fn containerd_going_away_mid_capture_still_seals_and_says_how_to_resume() {
    let c = Container::start(Rt::Containerd, "shell", &[]);
    c.sh("head -c 33554432 /dev/urandom > /tmp/big");
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("x.exhibit.tar.zst");
    let watch = partial(&target);
    let proxy = Proxy::start(
        Path::new(&support::containerd_address()),
        dir.path().join("containerd.sock"),
        move || watch.exists(),
    );
    let out = run(c
        .capture_command(&["--unsigned", "--quiet", "--freeze", "--containerd-address"])
        .arg(&proxy.path)
        .arg("-o")
        .arg(&target));
    let err = stderr(&out);
    assert!(proxy.died(), "the proxy never died: {err}");
    // The evidence was all read from the host: the bundle is complete (exit 0), the
    // failed resume is a warning with the command, and recorded.
    expect_code(&out, 0, "containerd going away");
    assert_eq!(containerd_status(&c), "PAUSED", "{err}");
    expect_line(
        &err,
        "hint: ",
        &format!("ctr -n k8s.io task resume {}", c.id),
    );
    let v = verified_unsigned(&target);
    assert_eq!(event(&events(&v), "unfreeze")["outcome"], "error");
    assert!(v.manifest().freeze.clone().unwrap().resumed_at.is_none());
    ok(support::ctr_in("k8s.io").args(["task", "resume", &c.name]));
    assert_eq!(containerd_status(&c), "RUNNING");
}

#[test]
fn a_file_growing_during_the_read_is_stored_at_its_first_size_and_flagged() {
    let c = Container::start(Rt::Docker, "shell", &[]);
    // Appends 64 KiB every millisecond or so until the test is done (/tmp/stop) or the
    // file reaches 3 GiB: it must still be growing when the capture reads it, however
    // slow a loaded machine makes the capture (a bounded run of appends could finish
    // first). --max-file-size 4GiB keeps it under the content limit.
    c.sh("(while [ ! -e /tmp/stop ]; do i=0; while [ $i -lt 64 ]; do head -c 65536 /bin/busybox >> /tmp/grow; i=$((i+1)); done; [ $(stat -c %s /tmp/grow) -lt 3221225472 ] || break; done) >/dev/null 2>&1 &");
    for _ in 0..100 {
        let size: u64 = c
            .sh("stat -c %s /tmp/grow 2>/dev/null || echo 0")
            .trim()
            .parse()
            .unwrap();
        if size >= 8 << 20 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let dir = tempfile::tempdir().unwrap();
    let (out, bundle) = c.capture(
        dir.path(),
        &["--unsigned", "--quiet", "--max-file-size", "4GiB"],
    );
    c.sh("touch /tmp/stop");
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a file that changed while read makes the bundle incomplete: {err}"
    );
    let bundle = bundle.expect("a sealed bundle");
    let v = verified_unsigned(&bundle);
    let recs: Vec<ChangeRecord> = support::records(&v);
    let grow = recs
        .iter()
        .find(|r| r.path.as_bytes() == b"/tmp/grow")
        .expect("/tmp/grow recorded");
    // Exactly the size statx saw is stored, hashed as stored, and the change is noted.
    assert!(grow.size >= 8 << 20, "{grow:?}");
    assert_eq!(grow.stored_size, grow.size, "{grow:?}");
    assert!(!grow.captured, "{grow:?}");
    assert_eq!(grow.reason.as_deref(), Some("changed during read"));
    assert!(grow.flags.iter().any(|f| f == "changed-during-read"));
    let lost = serde_json::to_string(&v.manifest().completeness).unwrap();
    assert!(lost.contains("files-changed"), "{lost}");
    let plain = plain_bytes(&bundle);
    let mut ar = tar::Archive::new(&plain[..]);
    let mut stored = None;
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().as_os_str().as_encoded_bytes() == grow.member.as_bytes() {
            let mut b = Vec::new();
            e.read_to_end(&mut b).unwrap();
            stored = Some(b);
        }
    }
    let stored = stored.expect("the member of /tmp/grow");
    assert_eq!(stored.len() as u64, grow.stored_size);
    assert_eq!(
        exhibit_common::hashing::sha256_reader(&stored[..])
            .unwrap()
            .0,
        grow.sha256.clone().unwrap()
    );
}

// A small deterministic generator (xorshift64*), so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn signals_at_random_points_never_leave_a_bundle_at_the_final_name() {
    let seed = std::env::var("EXHIBIT_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("seed = {seed} (EXHIBIT_FAULT_SEED={seed} replays the delays)");
    let mut rng = Rng(seed);
    let c = Container::start(Rt::Docker, "shell", &[]);
    c.sh("head -c 50331648 /dev/urandom > /tmp/a && cp /tmp/a /tmp/b && echo x > /tmp/c");
    let dir = tempfile::tempdir().unwrap();
    let capture = |target: &Path, freeze: bool| {
        let mut cmd = c.capture_command(&["--unsigned", "--quiet"]);
        cmd.args(freeze.then_some("--freeze"))
            .arg("-o")
            .arg(target)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        cmd
    };
    // How long one capture takes here, to spread the signals over it (not asserted;
    // the binary is built first, outside the measure).
    support::bin("exhibit-collect");
    let t = std::time::Instant::now();
    let base = dir.path().join("base.exhibit.tar.zst");
    let out = run(&mut capture(&base, true));
    expect_code(&out, 0, "the timing capture");
    let span = t.elapsed().as_millis() as u64;
    println!("one capture: {span} ms");
    let mut n = 0;
    for signal in ["INT", "TERM", "KILL"] {
        for round in 0..5 {
            n += 1;
            // The first round signals at once (before the handlers exist, too).
            let delay = if round == 0 {
                0
            } else {
                rng.next() % (span + span / 10 + 1)
            };
            let target = dir.path().join(format!("run-{n}.exhibit.tar.zst"));
            let child = capture(&target, true).spawn().unwrap();
            std::thread::sleep(Duration::from_millis(delay));
            ok(Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]));
            let (status, err) = support::wait_with_stderr(child);
            let what = format!("SIG{signal} after {delay} ms (seed {seed}): {status}: {err}");
            println!("{what}");
            if target.exists() {
                // Sealed before the signal took effect: then the bundle must be whole,
                // its .sha256 beside it, and an exit by the handler must say it is kept.
                let v = exhibit_common::verify(&target, &Default::default())
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                drop(v);
                if signal == "KILL" && !sidecar(&target).exists() {
                    // SIGKILL between the two renames (bundle first, then its .sha256):
                    // the whole bundle without its sidecar, the one state it can leave.
                    println!("  killed between the renames: bundle without .sha256");
                } else {
                    let side = std::fs::read_to_string(sidecar(&target))
                        .unwrap_or_else(|e| panic!("{what}: .sha256: {e}"));
                    let digest = exhibit_common::hashing::sha256_reader(
                        std::fs::File::open(&target).unwrap(),
                    )
                    .unwrap()
                    .0;
                    assert!(side.starts_with(&digest), "{what}");
                }
                assert!(
                    matches!(status.code(), Some(0) | Some(1) | Some(130) | None),
                    "{what}"
                );
                if status.code() == Some(130) {
                    assert!(
                        err.contains("the bundle sealed before it is kept"),
                        "{what}"
                    );
                }
            } else {
                assert!(
                    status.code() == Some(130) || status.signal().is_some(),
                    "{what}"
                );
                assert!(
                    !sidecar(&target).exists(),
                    "{what}: a .sha256 at the final name"
                );
            }
            if signal != "KILL" {
                assert!(!partial(&target).exists(), "{what}: .partial left");
                assert!(
                    !partial(&sidecar(&target)).exists(),
                    "{what}: .sha256.partial left"
                );
                assert!(!docker_paused(&c), "{what}: the container stays paused");
            } else if docker_paused(&c) {
                // SIGKILL cannot be handled: the next capture must say how to resume.
                println!("  left paused; the next capture must say so");
                let next = dir.path().join(format!("next-{n}.exhibit.tar.zst"));
                let out = run(&mut capture(&next, false));
                let err = stderr(&out);
                assert_eq!(out.status.code(), Some(0), "{what}: next capture: {err}");
                expect_line(&err, "warning: ", "already paused");
                expect_line(&err, "hint: ", &format!("docker unpause {}", c.id));
                assert!(docker_paused(&c), "the next capture must not resume it");
                let v = verified_unsigned(&next);
                assert_eq!(event(&events(&v), "container.paused")["outcome"], "info");
                ok(Command::new("docker").args(["unpause", &c.name]));
            }
            // Never a stray file but these three names.
            for e in std::fs::read_dir(dir.path()).unwrap().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                assert!(
                    !name.starts_with(&format!("run-{n}.")) || {
                        let p = e.path();
                        p == target
                            || p == sidecar(&target)
                            || p == partial(&target)
                            || p == partial(&sidecar(&target))
                    },
                    "{what}: unexpected {name}"
                );
            }
        }
    }
}
