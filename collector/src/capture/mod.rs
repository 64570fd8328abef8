//! One capture: order of volatility (processes, sockets, memory-map lists, files, logs),
//! every step recorded in the acquisition log, written into one bundle.
//!
//! The phases, in the order they run: `volatile` (processes, sockets, memory,
//! executables), `files` (the overlay upper dir or the runtime API diff), `mounts`
//! (runtime files, tmpfs mounts, volumes), `logs`, and `seal` (the output files, the
//! manifest with its completeness, and the commit of both names).

mod files;
mod logs;
mod mounts;
mod seal;
mod volatile;

use crate::host::procs;
use crate::interrupt;
use crate::runtime::{ContainerFacts, Runtime};
use anyhow::Result;
use ed25519_dalek::SigningKey;
use exhibit_common::custody::{AcquisitionLog, Outcome};
use exhibit_common::manifest::{FreezeWindow, Manifest, Reason};
use exhibit_common::members;
use exhibit_common::text::now_rfc3339;
use exhibit_common::writer::WriterOptions;
use std::path::PathBuf;

/// What `--volumes` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VolumesMode {
    None,
    Metadata,
    Content,
}

/// Settings of a capture, from the command line.
#[derive(Clone)]
pub struct CaptureOptions {
    pub key: Option<SigningKey>,
    pub case: Option<String>,
    pub examiner: Option<String>,
    pub note: Option<String>,
    pub max_file_size: u64,
    pub max_total: u64,
    /// Budget for spooled memory regions and kept executables (`--max-spool`).
    pub max_spool: u64,
    pub logs_since: Option<i64>,
    pub no_logs: bool,
    pub volumes: VolumesMode,
    pub freeze: bool,
    pub writer: WriterOptions,
    pub command_line: Vec<String>,
    pub progress: bool,
    /// Force the Engine API diff even where the upper dir is readable (testing, remote daemons).
    pub force_api: bool,
    pub memory: procs::MemoryScope,
}

/// Where a bundle goes.
#[derive(Debug, Clone)]
pub enum Destination {
    File(PathBuf),
    Dir(PathBuf),
    Stdout,
}

/// The outcome of one capture.
#[derive(Debug)]
pub struct Captured {
    pub path: Option<PathBuf>,
    pub sha256: String,
    pub complete: bool,
    /// Why it is incomplete, one line each (empty when complete).
    pub reasons: Vec<String>,
    pub manifest: Manifest,
}

/// `<name>-<id12>-<yyyymmddThhmmssZ>.exhibit.tar.zst` with unsafe bytes replaced.
pub fn default_name(facts: &ContainerFacts) -> String {
    let base = match (&facts.pod, facts.name.is_empty()) {
        (Some(pod), _) => format!("{pod}_{}", facts.name),
        (None, false) => facts.name.clone(),
        (None, true) => facts.id.clone(),
    };
    let safe: String = base
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
                b as char
            } else {
                '_'
            }
        })
        .collect();
    let id12: String = facts.id.chars().take(12).collect();
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{safe}-{id12}-{:04}{:02}{:02}T{:02}{:02}{:02}Z.exhibit.tar.zst",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// Captures one container through `rt`.
pub async fn capture<R: Runtime>(
    rt: &R,
    id: &str,
    dest: &Destination,
    opts: &CaptureOptions,
) -> Result<Captured> {
    let started_at = now_rfc3339();
    let mut log = AcquisitionLog::new();
    let reasons: Vec<Reason> = Vec::new();
    log.record(
        "capture.start",
        Outcome::Info,
        Some(format!(
            "exhibit-collect {} by uid {}",
            env!("CARGO_PKG_VERSION"),
            rustix::process::getuid().as_raw()
        )),
        None,
    );
    let mut facts = rt.facts(id).await?;
    log.record(
        "inspect",
        Outcome::Ok,
        Some(format!("{} {} ({})", facts.runtime, facts.id, facts.name)),
        None,
    );
    if let Some(url) = rt.remote() {
        remote_only(&mut facts, url, &mut log);
    }

    if facts.paused {
        // Paused before we came: by the workload's operators, or by an earlier
        // `--freeze` capture that was killed (SIGKILL cannot be handled).
        let hint = resume_hint(&facts);
        eprintln!(
            "warning: container {} was already paused (an `exhibit-collect --freeze` killed with SIGKILL leaves it so); it is captured as it is and left paused",
            shown(&facts)
        );
        eprintln!("hint: if nobody else paused it, resume it with `{hint}`");
        log.record(
            "container.paused",
            Outcome::Info,
            Some(format!(
                "already paused before the capture; left paused ({hint})"
            )),
            None,
        );
    }
    let mut freeze = None;
    if opts.freeze {
        if facts.running && !facts.paused {
            interrupt::freeze(
                rt.pause(&facts.id),
                rt.resumer(&facts.id),
                resume_hint(&facts),
            )
            .await?;
            freeze = Some(FreezeWindow {
                paused_at: now_rfc3339(),
                resumed_at: None,
            });
            log.record("freeze", Outcome::Ok, None, None);
        } else {
            log.record(
                "freeze",
                Outcome::Skipped,
                Some("container not running or already paused".into()),
                None,
            );
        }
    }
    let mut run = Run {
        facts: &facts,
        opts,
        log,
        reasons,
        freeze,
        started_at,
    };
    let result = run.capture_frozen(rt, dest).await;
    // An error path: resume before reporting it (the success path already did).
    if let Some((Err(e), hint)) = interrupt::unfreeze().await {
        warn_still_paused(&facts, &e, &hint);
    }
    result
}

/// One capture in progress: what it reads, what it has recorded so far and why it is
/// incomplete.
struct Run<'a> {
    facts: &'a ContainerFacts,
    opts: &'a CaptureOptions,
    log: AcquisitionLog,
    reasons: Vec<Reason>,
    freeze: Option<FreezeWindow>,
    started_at: String,
}

impl Run<'_> {
    async fn capture_frozen<R: Runtime>(&mut self, rt: &R, dest: &Destination) -> Result<Captured> {
        // Most volatile first: processes, sockets, memory, executables.
        let progress = crate::progress::Progress::new(self.opts.progress, &self.facts.name);
        let mut state = self.read_volatile(rt, &progress).await;
        // The bundle. Both names are created and registered for removal on interrupt.
        let mut out = seal::Output::create(self.facts, dest, self.opts.writer)?;
        self.write_volatile(rt, &mut out.writer, &mut state)?;
        // Files: the upper dir (or the runtime API diff), then the container's mounts.
        let mut mounts = self.facts.mounts.clone();
        progress.step("files");
        let tick = |entries: u64, bytes: u64| progress.files(entries, bytes);
        let fs_method = self
            .write_files(rt, &mut out.writer, &mut mounts, &tick)
            .await?;
        // Logs, then the mount list.
        progress.step("logs");
        let logs = self.write_logs(rt, &mut out.writer).await?;
        if self.opts.volumes == VolumesMode::None {
            mounts.retain(|m| m.mount_type == "tmpfs" || m.mount_type == "runtime-file");
        }
        out.writer
            .add_member(members::VOLUMES, &serde_json::to_vec_pretty(&mounts)?)?;
        self.unfreeze().await;
        self.seal(out, fs_method, &state, logs)
    }

    async fn unfreeze(&mut self) {
        let Some(f) = self.freeze.as_mut() else {
            return;
        };
        match interrupt::unfreeze().await {
            Some((Ok(()), _)) => {
                f.resumed_at = Some(now_rfc3339());
                self.log.record("unfreeze", Outcome::Ok, None, None);
            }
            // The evidence is all read: seal it, say the container is still paused.
            Some((Err(e), hint)) => {
                self.log.record(
                    "unfreeze",
                    Outcome::Error,
                    Some(format!("the container is still paused ({hint})")),
                    Some(format!("{e:#}")),
                );
                warn_still_paused(self.facts, &e, &hint);
            }
            None => self.log.record(
                "unfreeze",
                Outcome::Skipped,
                Some("already resumed".into()),
                None,
            ),
        }
    }

    fn lost(&mut self, code: exhibit_common::manifest::ReasonCode, detail: impl Into<String>) {
        self.reasons.push(Reason::new(code, detail));
    }
}

// A daemon that is not a local unix socket: forget every host path and the init pid it
// reported (they belong to the daemon's host), so that nothing below reads this host's
// /proc, upper dir, runtime files or log file for the container.
fn remote_only(facts: &mut ContainerFacts, url: &str, log: &mut AcquisitionLog) {
    let why = crate::runtime::remote::reason(url);
    log.record(
        "daemon.remote",
        Outcome::Info,
        Some(format!(
            "{why}; reported and not used: init pid {}, upper dir {}, log file {}",
            facts
                .init_pid
                .map(|p| p.to_string())
                .unwrap_or_else(|| "none".into()),
            facts
                .upper_dir
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "none".into()),
            facts
                .log_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "none".into()),
        )),
        None,
    );
    facts.init_pid = None;
    facts.upper_dir = None;
    facts.lower_dirs.clear();
    facts.upper_error = Some(why);
    facts.runtime_files.clear();
    facts.log_file = None;
}

// The command that resumes the container by hand.
fn resume_hint(facts: &ContainerFacts) -> String {
    match facts.runtime {
        "docker" => format!("docker unpause {}", facts.id),
        _ => format!(
            "ctr -n {} task resume {}",
            facts.namespace.as_deref().unwrap_or("k8s.io"),
            facts.id
        ),
    }
}

fn shown(facts: &ContainerFacts) -> String {
    if facts.name.is_empty() || facts.name == facts.id {
        facts.id.clone()
    } else {
        format!("{} ({})", facts.name, facts.id)
    }
}

fn warn_still_paused(facts: &ContainerFacts, e: &anyhow::Error, hint: &str) {
    eprintln!(
        "warning: container {} could not be resumed after --freeze: {}",
        shown(facts),
        format!("{e:#}").replace('\n', " ")
    );
    eprintln!("hint: it is still paused; resume it with `{hint}`");
}

// The first `n` items joined with "; ", each a bounded, escaped quote (an item names a
// container path), and how many more there were.
fn first_of(items: &[String], n: usize) -> String {
    let mut s = items
        .iter()
        .take(n)
        .map(|i| {
            exhibit_common::custody::quote_at_most(
                i.as_bytes(),
                2 * exhibit_common::limits::MAX_QUOTED,
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    if items.len() > n {
        s.push_str(&format!("; ... {} more", items.len() - n));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_of_quotes_a_bounded_escaped_prefix_of_each_item() {
        // 60 drop messages of 64 KB control-character paths with xattr user.a=b.
        let path = "\u{1}".repeat(64 << 10);
        let items: Vec<String> = (0..60)
            .map(|_| format!("{path}: user.a=b (not stored)"))
            .collect();
        let s = first_of(&items, 50);
        assert!(
            s.len() < 50 * (2 * exhibit_common::limits::MAX_QUOTED * 4 + 8) + 32,
            "{}",
            s.len()
        );
        assert!(s.ends_with("; ... 10 more"));
        assert!(!s.contains('\u{1}') && s.contains("\\x01"));
    }
}
