//! Runs a drill end to end: fresh container, staging, capture with exhibit-collect,
//! verification and report with exhibit-analyze, scoring. The container is removed on
//! every path unless `--keep`: an error, a staging step over the drill's time budget
//! (killed), or SIGINT/SIGTERM (see `interrupt.rs`).

use crate::drill::{Drill, FindingPattern};
use crate::interrupt;
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The runtime a drill runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DrillRuntime {
    Docker,
    Containerd,
}

/// Settings shared by the drills of one run.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub runtime: DrillRuntime,
    pub key: Option<PathBuf>,
    pub containerd_address: String,
    pub namespace: String,
    pub keep: bool,
    pub fixtures: PathBuf,
    pub profiles: PathBuf,
    /// Directory of the drills' YARA rules (fixtures/yara/).
    pub yara_rules: PathBuf,
}

/// The outcome of one drill.
#[derive(Debug, Clone, Serialize)]
pub struct Scorecard {
    pub drill: String,
    pub runtime: DrillRuntime,
    pub attack: Vec<String>,
    /// passed, failed or errored.
    pub result: String,
    pub error: Option<String>,
    pub found: Vec<Matched>,
    pub missed: Vec<FindingPattern>,
    pub forbidden_raised: Vec<Matched>,
    /// Number of findings that match no expected or forbidden pattern.
    pub other_findings: usize,
    /// Those findings, by rule and subject.
    pub other: Vec<Matched>,
    pub bundle_verified: bool,
    pub capture_seconds: f64,
    pub report_seconds: f64,
    pub total_seconds: f64,
    pub over_budget: bool,
    /// The bundle, when it is kept: with `--keep`, or when the drill failed or
    /// errored after the capture (so it can be examined; it is never deleted then).
    pub bundle: Option<PathBuf>,
    /// The public key that verifies a kept bundle.
    pub pubkey: Option<PathBuf>,
}

/// A finding that matched a pattern.
#[derive(Debug, Clone, Serialize)]
pub struct Matched {
    pub rule: String,
    pub subject: String,
    pub severity: String,
}

/// A sibling binary of the running one (exhibit-collect, exhibit-analyze).
pub fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// A command in its own process group: a Ctrl-C at the terminal reaches exhibit-drill
/// only, which then stops the command in progress itself (see `bounded`), lets a
/// `docker run` finish so the container it makes is known and removed, and keeps the
/// cleanup commands from being interrupted.
fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new(program);
    c.process_group(0);
    c
}

fn output(cmd: &mut Command) -> Result<Output> {
    cmd.output()
        .with_context(|| format!("running {:?}", cmd.get_program()))
}

/// The drill's time budget: when it ends, the command running then is killed.
#[derive(Debug, Clone, Copy)]
struct Budget {
    deadline: Instant,
    seconds: u64,
}

/// Runs `cmd` like `output()`, but stops it (SIGTERM, then SIGKILL after 5 s) when
/// the drill's budget runs out or exhibit-drill gets SIGINT/SIGTERM; either is an
/// error naming `what`.
fn bounded(cmd: &mut Command, budget: Budget, what: &str) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = child.stdout.take().map(|o| reader(Box::new(o)));
    let err = child.stderr.take().map(|e| reader(Box::new(e)));
    loop {
        if let Some(status) = child.try_wait()? {
            let join = |t: Option<std::thread::JoinHandle<Vec<u8>>>| {
                t.and_then(|t| t.join().ok()).unwrap_or_default()
            };
            return Ok(Output {
                status,
                stdout: join(out),
                stderr: join(err),
            });
        }
        let why = if let Some(sig) = interrupt::signal() {
            format!("{what} was stopped: exhibit-drill got {sig}")
        } else if Instant::now() >= budget.deadline {
            format!(
                "{what} was killed: the drill's time budget of {} s ran out (budget_seconds)",
                budget.seconds
            )
        } else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        stop(&mut child);
        bail!("{why}");
    }
}

/// SIGTERM (exhibit-collect removes its partial output on it), SIGKILL after 5 s.
fn stop(child: &mut std::process::Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on our own child, which has not been reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    for _ in 0..250 {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn checked(cmd: &mut Command) -> Result<String> {
    let out = output(cmd)?;
    if !out.status.success() {
        bail!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A disposable drill container; removed on drop unless kept.
struct Target<'a> {
    s: &'a RunSettings,
    name: String,
    id: String,
    keep: bool,
}

impl<'a> Target<'a> {
    fn ctr(&self) -> Command {
        let mut c = command("ctr");
        c.args(["-a", &self.s.containerd_address, "-n", &self.s.namespace]);
        c
    }

    fn start(s: &'a RunSettings, drill: &Drill, budget: Budget) -> Result<Self> {
        let name = format!("exhibit-drill-{}-{}", drill.name, std::process::id());
        let image = format!("exhibit-fixture/{}:1", drill.image);
        let mut t = Target {
            s,
            name: name.clone(),
            id: String::new(),
            keep: s.keep,
        };
        match s.runtime {
            DrillRuntime::Docker => {
                let mut c = command("docker");
                c.args(["run", "-d", "--name", &name, "--label", "exhibit-drill=1"]);
                if drill.run.privileged {
                    c.arg("--privileged");
                }
                for m in &drill.run.mounts {
                    c.args(["-v", m]);
                }
                for cap in &drill.run.cap_add {
                    c.args(["--cap-add", cap]);
                }
                c.arg(&image);
                t.id = checked(&mut c)?.trim().to_string();
            }
            DrillRuntime::Containerd => {
                let mut c = t.ctr();
                c.args(["run", "-d"]);
                if drill.run.privileged {
                    c.arg("--privileged");
                }
                for m in &drill.run.mounts {
                    let parts: Vec<&str> = m.split(':').collect();
                    let opts = if parts.get(2) == Some(&"ro") {
                        "rbind:ro"
                    } else {
                        "rbind:rw"
                    };
                    c.args([
                        "--mount",
                        &format!(
                            "type=bind,src={},dst={},options={opts}",
                            parts[0],
                            parts.get(1).copied().unwrap_or(parts[0])
                        ),
                    ]);
                }
                for cap in &drill.run.cap_add {
                    c.args([
                        "--cap-add",
                        &format!("CAP_{}", cap.trim_start_matches("CAP_")),
                    ]);
                }
                c.args([&format!("docker.io/{image}"), &name]);
                checked(&mut c)?;
                t.id = name;
            }
        }
        // Wait until the container runs processes.
        for _ in 0..50 {
            if t.exec("true", budget, "waiting for the container")?
                .status
                .success()
            {
                return Ok(t);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(anyhow!("container {} did not start", t.name))
    }

    /// Runs a script inside the container, stopped when the budget runs out.
    fn exec(&self, script: &str, budget: Budget, what: &str) -> Result<Output> {
        match self.s.runtime {
            DrillRuntime::Docker => bounded(
                command("docker").args(["exec", &self.name, "sh", "-c", script]),
                budget,
                what,
            ),
            DrillRuntime::Containerd => {
                let exec_id = format!(
                    "stage-{}",
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_nanos())
                        .unwrap_or(0)
                );
                bounded(
                    self.ctr().args([
                        "task",
                        "exec",
                        "--exec-id",
                        &exec_id,
                        &self.name,
                        "sh",
                        "-c",
                        script,
                    ]),
                    budget,
                    what,
                )
            }
        }
    }
}

impl Drop for Target<'_> {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("kept container {} ({:?})", self.name, self.s.runtime);
            return;
        }
        match self.s.runtime {
            DrillRuntime::Docker => {
                let _ = command("docker").args(["rm", "-f", &self.name]).output();
            }
            DrillRuntime::Containerd => {
                let _ = self
                    .ctr()
                    .args(["task", "kill", "-s", "SIGKILL", &self.name])
                    .output();
                for _ in 0..50 {
                    if self
                        .ctr()
                        .args(["task", "rm", "-f", &self.name])
                        .output()
                        .map(|o| o.status.success())
                        .unwrap_or(true)
                    {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                let _ = self.ctr().args(["containers", "rm", &self.name]).output();
            }
        }
    }
}

fn matches(p: &FindingPattern, f: &serde_json::Value) -> bool {
    let rule = f["rule"].as_str().unwrap_or_default();
    let subject = f["subject"].as_str().unwrap_or_default();
    p.rule == rule
        && regex::Regex::new(&p.subject)
            .map(|r| r.is_match(subject))
            .unwrap_or(false)
}

fn matched(f: &serde_json::Value) -> Matched {
    Matched {
        rule: f["rule"].as_str().unwrap_or_default().into(),
        subject: f["subject"].as_str().unwrap_or_default().into(),
        severity: f["severity"].as_str().unwrap_or_default().into(),
    }
}

/// Runs one drill; staging or tool failures give an `errored` scorecard, never a panic.
pub fn run(drill: &Drill, s: &RunSettings, work: &Path) -> Scorecard {
    let started = Instant::now();
    let mut card = Scorecard {
        drill: drill.name.clone(),
        runtime: s.runtime,
        attack: drill.attack.clone(),
        result: "errored".into(),
        error: None,
        found: vec![],
        missed: vec![],
        forbidden_raised: vec![],
        other_findings: 0,
        other: vec![],
        bundle_verified: false,
        capture_seconds: 0.0,
        report_seconds: 0.0,
        total_seconds: 0.0,
        over_budget: false,
        bundle: None,
        pubkey: None,
    };
    let budget = Budget {
        deadline: started + Duration::from_secs(drill.budget_seconds),
        seconds: drill.budget_seconds,
    };
    let dir = work.join(format!("{}-{:?}", drill.name, s.runtime).to_lowercase());
    if let Err(e) = run_inner(drill, s, &dir, budget, &mut card) {
        let e = format!("{e:#}");
        card.error = Some(match interrupt::signal() {
            Some(sig) if !e.contains(sig) => format!("interrupted by {sig}: {e}"),
            _ => e,
        });
        card.result = "errored".into();
    }
    card.total_seconds = started.elapsed().as_secs_f64();
    card.over_budget = card.total_seconds > drill.budget_seconds as f64
        || card.error.as_deref().is_some_and(|e| e.contains("budget"));
    // A bundle is kept with --keep, and when the drill failed or errored after the
    // capture; otherwise the drill's directory (bundle, ephemeral key) goes now.
    if card.result == "passed" && !s.keep {
        card.bundle = None;
    }
    card.bundle = card.bundle.take().filter(|b| b.is_file());
    if card.bundle.is_some() {
        card.pubkey = Some(match &s.key {
            Some(k) => k.with_extension("pub"),
            None => dir.join("drill.pub"),
        });
    } else if !s.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    card
}

fn run_inner(
    drill: &Drill,
    s: &RunSettings,
    dir: &Path,
    budget: Budget,
    card: &mut Scorecard,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    // The image the analysis compares against: without it the image comparison (and
    // every finding that needs it) would silently not happen.
    let image = s.fixtures.join(format!("{}.tar", drill.image));
    if !image.is_file() {
        bail!(
            "the saved image of fixture {:?} is missing: {}\n\
             hint: run scripts/setup (it builds the fixture images and saves them to \
             /var/lib/exhibit/fixtures), or set EXHIBIT_FIXTURES to the directory that \
             holds {}.tar",
            drill.image,
            image.display(),
            drill.image
        );
    }
    let (key, pubkey) = match &s.key {
        Some(k) => (k.clone(), k.with_extension("pub")),
        None => {
            let prefix = dir.join("drill");
            checked(
                command(sibling("exhibit-collect"))
                    .args(["keygen", "--out"])
                    .arg(&prefix),
            )?;
            (prefix.with_extension("key"), prefix.with_extension("pub"))
        }
    };
    let target = Target::start(s, drill, budget)?;
    for (i, step) in drill.stage.iter().enumerate() {
        let script = if step.background {
            format!("({}) >/dev/null 2>&1 </dev/null &", step.sh)
        } else {
            step.sh.clone()
        };
        let out = target.exec(&script, budget, &format!("staging step {}", i + 1))?;
        if !out.status.success() {
            bail!(
                "staging step {} failed ({}): {}",
                i + 1,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    if drill.stage.iter().any(|s| s.background) {
        // Let background processes start and open their sockets.
        for _ in 0..35 {
            if let Some(sig) = interrupt::signal() {
                bail!("stopped after staging: exhibit-drill got {sig}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let bundle_dir = dir.join("bundle");
    std::fs::create_dir_all(&bundle_dir)?;
    let t = Instant::now();
    let rt = match s.runtime {
        DrillRuntime::Docker => "docker",
        DrillRuntime::Containerd => "containerd",
    };
    let cap = bounded(
        command(sibling("exhibit-collect"))
            .args([
                "capture",
                "--quiet",
                "--runtime",
                rt,
                "--namespace",
                &s.namespace,
                "--containerd-address",
                &s.containerd_address,
                &target.id,
                "--case",
                &format!("DRILL-{}", drill.name),
                "--key",
            ])
            .arg(&key)
            .arg("-o")
            .arg(&bundle_dir),
        budget,
        "the capture",
    )?;
    card.capture_seconds = t.elapsed().as_secs_f64();
    if cap.status.code() == Some(2) || cap.status.code().is_none() {
        bail!(
            "capture failed: {}",
            String::from_utf8_lossy(&cap.stderr).trim()
        );
    }
    let bundle = std::fs::read_dir(&bundle_dir)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".exhibit.tar.zst"))
        .ok_or_else(|| anyhow!("capture wrote no bundle"))?;
    card.bundle = Some(bundle.clone());
    let t = Instant::now();
    let mut report = command(sibling("exhibit-analyze"));
    report
        .arg("report")
        .arg(&bundle)
        .arg("--pubkey")
        .arg(&pubkey)
        .args(["--format", "json"]);
    report.arg("--image").arg(&image);
    if let Some(p) = &drill.profile {
        report.arg("--profile").arg(s.profiles.join(p));
    }
    if let Some(y) = &drill.yara {
        report.arg("--yara").arg(s.yara_rules.join(y));
    }
    let rep = bounded(&mut report, budget, "the report")?;
    card.report_seconds = t.elapsed().as_secs_f64();
    match rep.status.code() {
        Some(0) | Some(1) => {}
        Some(3) => bail!(
            "the bundle failed verification: {}",
            String::from_utf8_lossy(&rep.stderr).trim()
        ),
        _ => bail!(
            "report failed: {}",
            String::from_utf8_lossy(&rep.stderr).trim()
        ),
    }
    card.bundle_verified = true;
    let doc: serde_json::Value =
        serde_json::from_slice(&rep.stdout).context("parsing the report JSON")?;
    let findings = doc["findings"].as_array().cloned().unwrap_or_default();
    for p in &drill.expect {
        match findings.iter().find(|f| matches(p, f)) {
            Some(f) => card.found.push(matched(f)),
            None => card.missed.push(p.clone()),
        }
    }
    for p in &drill.forbid {
        card.forbidden_raised
            .extend(findings.iter().filter(|f| matches(p, f)).map(matched));
    }
    card.other = findings
        .iter()
        .filter(|f| {
            !drill
                .expect
                .iter()
                .chain(&drill.forbid)
                .any(|p| matches(p, f))
        })
        .map(matched)
        .collect();
    card.other_findings = card.other.len();
    card.result = if card.missed.is_empty() && card.forbidden_raised.is_empty() {
        "passed"
    } else {
        "failed"
    }
    .into();
    drop(target);
    Ok(())
}
