//! Shared harness of the end-to-end tests: the built binaries, real dockerd and
//! containerd (started by scripts/setup; a test that cannot reach them fails), and
//! disposable containers that are always removed.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Once;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

static BUILD: Once = Once::new();

/// Path of a workspace binary. The first call in a test process runs
/// `cargo build --workspace --bins`, the same command scripts/test runs before the
/// tests: the same feature set, so it is a no-op there and never rebuilds
/// dependencies with another feature set while a test waits.
pub fn bin(name: &str) -> PathBuf {
    BUILD.call_once(|| build_workspace_bins(&root()));
    target_dir(&root()).join("debug").join(name)
}

/// Runs `cargo build --workspace --bins` in `root` and panics if it fails.
pub fn build_workspace_bins(root: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "--workspace", "--bins"])
        .current_dir(root)
        .status()
        .expect("running cargo build");
    assert!(st.success(), "cargo build --workspace --bins failed");
}

/// The cargo target directory (CARGO_TARGET_DIR or ROOT/target).
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// Runs a command and returns its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// Runs a command that must succeed; returns stdout as text.
pub fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    stdout_of_success(&out, &format!("{cmd:?}"))
}

/// Asserts that `out` is a success (naming `what` and showing stderr otherwise);
/// returns stdout as text.
fn stdout_of_success(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The stderr of a finished program, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code of a finished program, showing its stderr when it differs.
pub fn expect_code(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: expected exit {code}: {}",
        stderr(out)
    );
}

/// Asserts that `err` (a program's stderr) has a line that starts with `prefix`
/// (`error: `, `hint: `, `warning: `) and contains `text`.
pub fn expect_line(err: &str, prefix: &str, text: &str) {
    assert!(
        err.lines()
            .any(|l| l.starts_with(prefix) && l.contains(text)),
        "no {prefix:?} line with {text:?}: {err}"
    );
}

/// Asserts that `err` (a program's stderr) has an `error: ` line containing `error`
/// and a `hint: ` line containing `hint`.
pub fn expect_error_and_hint(err: &str, error: &str, hint: &str, what: &str) {
    assert!(
        err.lines()
            .any(|l| l.starts_with("error: ") && l.contains(error)),
        "{what}: no error line with {error:?}: {err}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("hint: ") && l.contains(hint)),
        "{what}: no hint line with {hint:?}: {err}"
    );
}

/// The names in a directory (for "nothing was left behind").
pub fn names_in(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.file_name())
        .collect();
    v.sort();
    v
}

/// The change records of a verified bundle.
pub fn records(v: &exhibit_common::VerifiedBundle) -> Vec<exhibit_common::records::ChangeRecord> {
    v.records()
        .expect("records")
        .map(|r| r.expect("record"))
        .collect()
}

/// Verifies an unsigned (or any) bundle with the library and no key.
pub fn verified_unsigned(bundle: &Path) -> exhibit_common::VerifiedBundle {
    exhibit_common::verify(bundle, &Default::default())
        .unwrap_or_else(|e| panic!("{} did not verify: {e}", bundle.display()))
}

/// The standalone containerd's socket (scripts/setup exports it).
pub fn containerd_address() -> String {
    std::env::var("CONTAINERD_ADDRESS")
        .unwrap_or_else(|_| "/run/exhibit-containerd/containerd.sock".into())
}

/// Saved fixture images (docker save tars) from scripts/setup.
pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("EXHIBIT_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/exhibit/fixtures"))
}

/// `exhibit-collect` with the runtime environment of the tests.
pub fn collect() -> Command {
    let mut c = Command::new(bin("exhibit-collect"));
    c.env("CONTAINERD_ADDRESS", containerd_address())
        .env_remove("DOCKER_HOST");
    c
}

/// `exhibit-analyze`, without colour and without RUST_LOG (stderr is asserted on).
pub fn analyze() -> Command {
    let mut c = Command::new(bin("exhibit-analyze"));
    c.env("NO_COLOR", "1").env_remove("RUST_LOG");
    c
}

/// A temporary directory with a fresh signing key (ir.key, ir.pub) for bundles written
/// with the library (exhibit_tests::spec) and tampered with.
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub key: ed25519_dalek::SigningKey,
    pub pubkey: PathBuf,
    n: std::cell::Cell<u32>,
}

/// A new [`Lab`].
pub fn lab() -> Lab {
    let dir = tempfile::tempdir().expect("temporary dir");
    let key = exhibit_common::keys::generate().expect("key");
    let (_, pubkey) =
        exhibit_common::keys::write_keypair(&dir.path().join("ir"), &key).expect("key pair");
    Lab {
        dir,
        key,
        pubkey,
        n: std::cell::Cell::new(0),
    }
}

impl Lab {
    /// The path of `name` in the lab.
    pub fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `spec` as `name`, signed with the lab's key when `signed`.
    pub fn bundle(&self, name: &str, spec: &exhibit_tests::spec::Spec, signed: bool) -> PathBuf {
        let p = self.p(name);
        spec.write(&p, signed.then_some(&self.key));
        p
    }

    /// Writes `bytes` to a fresh bundle file in the lab and returns its path.
    pub fn put(&self, bytes: &[u8]) -> PathBuf {
        self.n.set(self.n.get() + 1);
        let p = self.p(&format!("b{}.exhibit.tar.zst", self.n.get()));
        std::fs::write(&p, bytes).expect("writing a bundle");
        p
    }
}

/// Which runtime a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rt {
    Docker,
    Containerd,
}

impl Rt {
    pub const ALL: [Rt; 2] = [Rt::Docker, Rt::Containerd];
    pub fn flag(self) -> &'static str {
        match self {
            Rt::Docker => "docker",
            Rt::Containerd => "containerd",
        }
    }
}

/// A name unique to this test process and call.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn ctr() -> Command {
    ctr_in("k8s.io")
}

/// `ctr` against the standalone containerd, in namespace `ns`.
pub fn ctr_in(ns: &str) -> Command {
    let mut c = Command::new("ctr");
    c.args(["-a", &containerd_address(), "-n", ns]);
    c
}

/// Removes the containerd namespace `ns`, waiting (up to 5 s) until containerd's
/// garbage collector has emptied it.
pub fn remove_namespace(ns: &str) {
    for _ in 0..50 {
        let rm = Command::new("ctr")
            .args(["-a", &containerd_address(), "namespaces", "rm", ns])
            .output();
        if rm.is_ok_and(|o| o.status.success()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A disposable container, removed on drop.
pub struct Container {
    pub rt: Rt,
    pub name: String,
    pub id: String,
}

impl Container {
    /// Starts `image` (fixture name such as `web`) on `rt` with extra docker run flags.
    pub fn start(rt: Rt, image: &str, docker_flags: &[&str]) -> Container {
        let name = unique(&format!("exhibit-test-{image}"));
        let id = match rt {
            Rt::Docker => {
                let mut c = Command::new("docker");
                c.args(["run", "-d", "--name", &name])
                    .args(docker_flags)
                    .arg(format!("exhibit-fixture/{image}:1"));
                ok(&mut c).trim().to_string()
            }
            Rt::Containerd => {
                ok(ctr().args([
                    "run",
                    "-d",
                    &format!("docker.io/exhibit-fixture/{image}:1"),
                    &name,
                ]));
                name.clone()
            }
        };
        let c = Container { rt, name, id };
        // Wait until the init process runs.
        for _ in 0..50 {
            if c.sh_status("true") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        c
    }

    /// Runs a shell script inside the container (test staging only).
    pub fn sh(&self, script: &str) -> String {
        let out = self.sh_output(script);
        stdout_of_success(&out, &format!("staging {script:?} in {}", self.name))
    }

    fn sh_status(&self, script: &str) -> bool {
        self.sh_output(script).status.success()
    }

    fn sh_output(&self, script: &str) -> Output {
        match self.rt {
            Rt::Docker => {
                run(Command::new("docker").args(["exec", &self.name, "sh", "-c", script]))
            }
            Rt::Containerd => run(ctr().args([
                "task",
                "exec",
                "--exec-id",
                &unique("x"),
                &self.name,
                "sh",
                "-c",
                script,
            ])),
        }
    }

    /// `docker diff` lines (Docker only).
    pub fn docker_diff(&self) -> Vec<String> {
        let mut v: Vec<String> = ok(Command::new("docker").args(["diff", &self.name]))
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    }

    /// Host pids of the container's processes.
    pub fn pids(&self) -> Vec<i32> {
        let init = match self.rt {
            Rt::Docker => {
                ok(Command::new("docker").args(["inspect", "-f", "{{.State.Pid}}", &self.name]))
            }
            Rt::Containerd => ok(ctr().args(["task", "ls"]))
                .lines()
                .find(|l| l.starts_with(&self.name))
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or("0")
                .to_string(),
        };
        let init: i32 = init.trim().parse().expect("init pid");
        let ns = std::fs::read_link(format!("/proc/{init}/ns/pid")).expect("pid ns");
        let mut pids: Vec<i32> = std::fs::read_dir("/proc")
            .expect("/proc")
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
            .filter(|p: &i32| {
                std::fs::read_link(format!("/proc/{p}/ns/pid"))
                    .ok()
                    .as_ref()
                    == Some(&ns)
            })
            .collect();
        pids.sort();
        pids
    }

    /// `exhibit-collect capture --runtime RT ID` and `args`, to add more to and run.
    pub fn capture_command(&self, args: &[&str]) -> Command {
        let mut c = collect();
        c.args(["capture", "--runtime", self.rt.flag(), &self.id])
            .args(args);
        c
    }

    /// Captures this container into `dir` with the given extra flags; returns the
    /// process output and the bundle path (when one was written).
    pub fn capture(&self, dir: &Path, extra: &[&str]) -> (Output, Option<PathBuf>) {
        let out = run(self.capture_command(&["-o"]).arg(dir).args(extra));
        let bundle = std::fs::read_dir(dir)
            .expect("output dir")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(".exhibit.tar.zst"));
        (out, bundle)
    }
}

impl Container {
    /// A capture into `dir` that must succeed (exit 0); returns its output and bundle.
    pub fn capture_ok(&self, dir: &Path, extra: &[&str]) -> (Output, PathBuf) {
        let (out, bundle) = self.capture(dir, extra);
        expect_code(&out, 0, &format!("capture of {}", self.name));
        (out, bundle.expect("bundle written"))
    }

    /// [`Container::capture_ok`], asserting that the capture changed nothing in the
    /// container: the same `docker diff` (Docker) and the same processes before and
    /// after (DESIGN.md section 5, invariant 1).
    pub fn capture_unchanged(&self, dir: &Path, extra: &[&str]) -> (Output, PathBuf) {
        let diff_before = (self.rt == Rt::Docker).then(|| self.docker_diff());
        let pids_before = self.pids();
        let captured = self.capture_ok(dir, extra);
        if let Some(before) = diff_before {
            assert_eq!(
                self.docker_diff(),
                before,
                "the capture changed the container"
            );
        }
        assert_eq!(
            self.pids(),
            pids_before,
            "the capture changed the processes"
        );
        captured
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        match self.rt {
            Rt::Docker => {
                let _ = Command::new("docker")
                    .args(["rm", "-f", &self.name])
                    .output();
            }
            Rt::Containerd => {
                let _ = ctr()
                    .args(["task", "kill", "-s", "SIGKILL", &self.name])
                    .output();
                for _ in 0..30 {
                    let out = ctr().args(["task", "rm", "-f", &self.name]).output();
                    if out.map(|o| o.status.success()).unwrap_or(false) {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                let _ = ctr().args(["containers", "rm", &self.name]).output();
                let _ = ctr().args(["snapshots", "rm", &self.name]).output();
            }
        }
    }
}

/// A fresh signing key pair in `dir`; returns (key, pub).
pub fn keypair(dir: &Path) -> (PathBuf, PathBuf) {
    ok(collect().args(["keygen", "--out"]).arg(dir.join("ir")));
    (dir.join("ir.key"), dir.join("ir.pub"))
}

/// Verifies a bundle with the library and the given public key.
pub fn verified(bundle: &Path, pubkey: &Path) -> exhibit_common::VerifiedBundle {
    let key = exhibit_common::keys::load_public_key(pubkey).expect("public key");
    exhibit_common::verify(
        bundle,
        &exhibit_common::VerifyOptions {
            keys: vec![key],
            max_decompressed: None,
        },
    )
    .unwrap_or_else(|e| panic!("{} did not verify: {e}", bundle.display()))
}

/// Parses a JSON Lines member of a verified bundle.
pub fn jsonl<T: serde::de::DeserializeOwned>(
    v: &exhibit_common::VerifiedBundle,
    member: &str,
) -> Vec<T> {
    let bytes = v
        .member(member)
        .expect("member readable")
        .unwrap_or_default();
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("json line"))
        .collect()
}

/// Decompressed bytes of a bundle (for "this must not appear anywhere" checks).
pub fn plain_bytes(bundle: &Path) -> Vec<u8> {
    zstd::decode_all(std::fs::File::open(bundle).expect("bundle")).expect("zstd")
}

/// Asserts that `secret` appears nowhere in the decompressed bundle.
pub fn assert_not_in_bundle(bundle: &Path, secret: &[u8], what: &str) {
    assert!(
        !plain_bytes(bundle)
            .windows(secret.len())
            .any(|w| w == secret),
        "{what}"
    );
}

/// Waits for a child whose stderr is piped; returns its status and stderr.
pub fn wait_with_stderr(mut child: std::process::Child) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    let status = child.wait().expect("waiting for a child");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut err).expect("reading its stderr");
    }
    (status, err)
}

/// A small tmpfs mounted for one test (to fill it, or remount it read-only), unmounted
/// when dropped. Its directory lives in a temporary dir of its own.
pub struct SmallTmpfs {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallTmpfs {
    /// Mounts a tmpfs of `size` (mount's `size=` syntax, e.g. `256k`).
    pub fn mount(size: &str) -> SmallTmpfs {
        let dir = tempfile::tempdir().expect("temporary dir");
        let path = dir.path().join("small");
        std::fs::create_dir(&path).expect("mount point");
        ok(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path));
        SmallTmpfs { path, _dir: dir }
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).output();
    }
}
