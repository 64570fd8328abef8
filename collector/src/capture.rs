//! One capture: order of volatility (processes, sockets, memory-map lists, files, logs),
//! every step recorded in the acquisition log, written into one bundle.

use crate::host::{self, procs, sockets, walk};
use crate::interrupt;
use crate::runtime::{ContainerFacts, Runtime};
use anyhow::{Context, Result};
use ed25519_dalek::SigningKey;
use exhibit_common::custody::AcquisitionLog;
use exhibit_common::hashing::HashingWriter;
use exhibit_common::manifest::{
    Completeness, ContainerIdentity, Counts, FreezeWindow, Manifest, Tool, SCHEMA_VERSION,
};
use exhibit_common::members;
use exhibit_common::output::AtomicFile;
use exhibit_common::records::{
    ChangeKind, ChangeRecord, LogLine, MountRecord, ProcessRecord, Source,
};
use exhibit_common::text::{now_rfc3339, ByteText};
use exhibit_common::writer::{BundleWriter, WriterOptions};
use rustix::fs::{AtFlags, Mode, OFlags, StatxFlags};
use std::collections::BTreeMap;
use std::io::{BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

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
    let mut reasons: Vec<String> = Vec::new();
    log.record(
        "capture.start",
        "info",
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
        "ok",
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
            "info",
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
            log.record("freeze", "ok", None, None);
        } else {
            log.record(
                "freeze",
                "skipped",
                Some("container not running or already paused".into()),
                None,
            );
        }
    }
    let result = capture_frozen(
        rt,
        &facts,
        dest,
        opts,
        &mut log,
        &mut reasons,
        &mut freeze,
        started_at,
    )
    .await;
    // An error path: resume before reporting it (the success path already did).
    if let Some((Err(e), hint)) = interrupt::unfreeze().await {
        warn_still_paused(&facts, &e, &hint);
    }
    result
}

// A daemon that is not a local unix socket: forget every host path and the init pid it
// reported (they belong to the daemon's host), so that nothing below reads this host's
// /proc, upper dir, runtime files or log file for the container.
fn remote_only(facts: &mut ContainerFacts, url: &str, log: &mut AcquisitionLog) {
    let why = crate::runtime::remote::reason(url);
    log.record(
        "daemon.remote",
        "info",
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

// Processes of a running container of a remote daemon: the daemon's own `ps` listing
// through `top`; sockets and memory need the daemon host's /proc and are recorded as
// unavailable.
async fn remote_processes<R: Runtime>(
    rt: &R,
    facts: &ContainerFacts,
    log: &mut AcquisitionLog,
    reasons: &mut Vec<String>,
    processes: &mut Vec<ProcessRecord>,
) {
    let url = rt.remote().unwrap_or_default();
    match rt.top(&facts.id).await {
        Ok(Some(p)) => {
            *processes = p;
            log.record(
                "processes",
                "ok",
                Some(format!(
                    "{} processes from the Engine API top of {url} (ps on the daemon's host, not /proc; records marked found_by engine-api-top)",
                    processes.len()
                )),
                None,
            );
        }
        Ok(None) => log.record(
            "processes",
            "skipped",
            Some(format!("{url}: no process listing in this runtime's API")),
            None,
        ),
        Err(e) => log.record(
            "processes",
            "error",
            Some(format!("Engine API top of {url}")),
            Some(format!("{e:#}")),
        ),
    }
    let why = format!("remote Docker daemon {url}: needs the daemon host's /proc");
    log.record("sockets", "skipped", Some(why.clone()), None);
    log.record("memory", "skipped", Some(why.clone()), None);
    log.record(
        "files.mounts",
        "skipped",
        Some(format!(
            "{why}: tmpfs mounts, volumes and runtime files (hosts, hostname, resolv.conf) recorded as metadata only, whatever --volumes says"
        )),
        None,
    );
    reasons.push(format!(
        "remote Docker daemon {url}: processes only as the daemon's ps listing (no argv bytes, environment, executables or fds); sockets, memory and tmpfs content not captured (they need the daemon host's /proc)"
    ));
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

#[allow(clippy::too_many_arguments)]
async fn capture_frozen<R: Runtime>(
    rt: &R,
    facts: &ContainerFacts,
    dest: &Destination,
    opts: &CaptureOptions,
    log: &mut AcquisitionLog,
    reasons: &mut Vec<String>,
    freeze: &mut Option<FreezeWindow>,
    started_at: String,
) -> Result<Captured> {
    // Most volatile first: processes and sockets.
    let progress = crate::progress::Progress::new(opts.progress, &facts.name);
    progress.step("processes");
    let mut processes: Vec<ProcessRecord> = Vec::new();
    let mut kept: BTreeMap<String, procs::KeptExe> = BTreeMap::new();
    let mut socket_records = Vec::new();
    let mut regions: Vec<procs::KeptRegion> = Vec::new();
    match facts.init_pid.filter(|_| facts.running) {
        Some(init) => {
            let users = host::read_in_container(init, "/etc/passwd", 4 << 20)
                .map(|b| procs::parse_passwd(&b))
                .unwrap_or_default();
            let membership = procs::membership(init);
            let memfd_dev = procs::memfd_dev();
            let boot = procfs::boot_time_secs().ok();
            let mut digests = procs::ExeDigests::default();
            for (pid, by) in &membership.pids {
                let (rec, exe) = procs::read_process(
                    *pid,
                    by.clone(),
                    &users,
                    memfd_dev,
                    opts.max_file_size,
                    boot,
                    &mut digests,
                );
                if let Some(k) = exe {
                    kept.entry(k.sha256.clone()).or_insert(k);
                }
                processes.push(rec);
            }
            processes.retain(|p| {
                !(p.errors.iter().any(|e| e.starts_with("stat unreadable")) && p.exe.is_none())
            });
            if processes.is_empty() {
                reasons.push("container processes exited before they were read".into());
            }
            log.record(
                "processes",
                "ok",
                Some(format!(
                    "{} processes ({} executables kept)",
                    processes.len(),
                    kept.len()
                )),
                None,
            );
            for n in &membership.notes {
                log.record("processes.membership", "info", Some(n.clone()), None);
            }
            let mut errs = Vec::new();
            progress.step("sockets");
            socket_records = sockets::collect(&processes, &mut errs);
            log.record(
                "sockets",
                if errs.is_empty() { "ok" } else { "error" },
                Some(format!("{} sockets", socket_records.len())),
                (!errs.is_empty()).then(|| errs.join("; ")),
            );
            if !errs.is_empty() && socket_records.is_empty() {
                reasons.push(format!("sockets unreadable: {}", errs.join("; ")));
            }
            // Then memory: the regions --memory asks for, through /proc/PID/mem.
            progress.step("memory");
            let mut caps = procs::MemoryCaps {
                per_region: 64 << 20,
                per_process: 256 << 20,
                regions_left: exhibit_common::limits::MAX_MEMORY_REGIONS,
            };
            for p in processes.iter_mut() {
                regions.extend(procs::read_memory(p, opts.memory, &mut caps));
            }
            // Regions not taken (unreadable, vanished, the process gone, over a cap) are
            // on their process records and listed here; the capture goes on.
            let (missed, no_read) = memory_misses(&processes);
            log.record(
                "memory",
                if missed.is_empty() { "ok" } else { "error" },
                Some(format!(
                    "{} regions taken ({:?}), {} not taken, {} without read permission (guard pages; on their process records)",
                    regions.len(),
                    opts.memory,
                    missed.len(),
                    no_read
                )),
                (!missed.is_empty()).then(|| first_of(&missed, 50)),
            );
            // Executables absent from the container's filesystem are kept too.
            let mut exe_misses: Vec<String> = processes
                .iter()
                .flat_map(|p| {
                    p.errors
                        .iter()
                        .filter(|e| e.starts_with("exe read"))
                        .map(move |e| format!("pid {}: {e}", p.pid))
                })
                .collect();
            for p in processes.iter() {
                if p.exe_deleted
                    || p.memfd
                    || p.exe_sha256.as_ref().is_none_or(|d| kept.contains_key(d))
                {
                    continue;
                }
                let Some(exe) = p.exe.as_ref().and_then(|e| e.as_str()) else {
                    continue;
                };
                if !host::exists_in_container(p.pid, exe) {
                    match procs::keep_exe(p.pid, opts.max_file_size) {
                        Some(k) => {
                            kept.entry(k.sha256.clone()).or_insert(k);
                        }
                        None => exe_misses.push(format!(
                            "pid {}: {} could not be read through /proc/PID/exe (process exited?)",
                            p.pid, exe
                        )),
                    }
                }
            }
            for p in processes.iter_mut() {
                if let Some(d) = &p.exe_sha256 {
                    if kept.contains_key(d) {
                        p.exe_member = Some(format!("exhibit/exe/{d}"));
                    }
                }
            }
            log.record(
                "executables",
                if exe_misses.is_empty() { "ok" } else { "error" },
                Some(format!(
                    "{} executables kept (deleted, memfd or absent from the container's filesystem)",
                    kept.len()
                )),
                (!exe_misses.is_empty()).then(|| first_of(&exe_misses, 50)),
            );
        }
        None if facts.running && rt.remote().is_some() => {
            remote_processes(rt, facts, log, reasons, &mut processes).await;
        }
        None => {
            log.record(
                "processes",
                "skipped",
                Some("container is not running".into()),
                None,
            );
            log.record(
                "sockets",
                "skipped",
                Some("container is not running".into()),
                None,
            );
        }
    }

    // The bundle. Both names are created and registered for removal on interrupt.
    let (mut atomic, path): (Option<AtomicFile>, Option<PathBuf>) = match dest {
        Destination::Stdout => (None, None),
        Destination::File(p) => (
            Some(interrupt::create_output(p).with_context(|| format!("creating {}", p.display()))?),
            Some(p.clone()),
        ),
        Destination::Dir(d) => {
            let p = d.join(default_name(facts));
            (
                Some(
                    interrupt::create_output(&p)
                        .with_context(|| format!("creating {}", p.display()))?,
                ),
                Some(p),
            )
        }
    };
    // The `.sha256` sidecar is reserved now too: a stale one must stop the capture
    // before anything is written, never end up beside a bundle it does not describe.
    let sidecar_path = path.as_deref().map(sidecar_of);
    let mut sidecar = match &sidecar_path {
        Some(s) => {
            Some(interrupt::create_output(s).with_context(|| format!("creating {}", s.display()))?)
        }
        None => None,
    };
    let sink: Box<dyn Write> = match &mut atomic {
        Some(a) => Box::new(BufWriter::with_capacity(1 << 20, a.file().try_clone()?)),
        None => Box::new(BufWriter::with_capacity(1 << 20, std::io::stdout().lock())),
    };
    let mut writer = BundleWriter::new(HashingWriter::new(sink), opts.writer)?;
    let mut identity = host::identity(facts.runtime, &facts.runtime_version);
    // The daemon's address when it is remote: the container runs on its host, not this one.
    identity["runtime"]["remote"] = rt.remote().into();
    writer.add_member(members::HOST, &serde_json::to_vec_pretty(&identity)?)?;
    let container = serde_json::json!({
        "runtime": facts.runtime,
        "inspect": facts.inspect_json,
        "summary": facts.summary,
    });
    writer.add_member(members::CONTAINER, &serde_json::to_vec_pretty(&container)?)?;
    for (digest, k) in kept.iter_mut() {
        let size = k.size;
        writer.add_member_from(&format!("exhibit/exe/{digest}"), &mut k.spool, size)?;
    }
    for r in regions.iter_mut() {
        let size = r.size;
        writer.add_member_from(&r.member, &mut r.spool, size)?;
    }
    let mut lines = Vec::new();
    for p in &processes {
        serde_json::to_writer(&mut lines, p)?;
        lines.push(b'\n');
    }
    writer.add_member(members::PROCESSES, &lines)?;
    let mut lines = Vec::new();
    for s in &socket_records {
        serde_json::to_writer(&mut lines, s)?;
        lines.push(b'\n');
    }
    writer.add_member(members::SOCKETS, &lines)?;
    writer.add_member(members::IMAGE, &serde_json::to_vec_pretty(&facts.image)?)?;

    // Files.
    let mut mounts = facts.mounts.clone();
    progress.step("files");
    let tick = |entries: u64, bytes: u64| progress.files(entries, bytes);
    let wopts = walk::WalkOptions {
        max_file_size: opts.max_file_size,
        max_total: opts.max_total,
    };
    let fs_method;
    let mut walk_stats;
    {
        let mut walker = walk::Walker::new(&mut writer, wopts, &tick);
        match facts.upper_dir.as_ref().filter(|_| !opts.force_api) {
            Some(upper) => {
                fs_method = if facts.upper_method.is_empty() {
                    "overlay-upperdir"
                } else {
                    facts.upper_method
                };
                log.record(
                    "files.upperdir",
                    "info",
                    Some(format!(
                        "{} from {}",
                        upper.display(),
                        facts.upper_origin.as_deref().unwrap_or("the runtime")
                    )),
                    None,
                );
                let root = rustix::fs::open(
                    upper,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .with_context(|| format!("opening the upper dir {}", upper.display()))?;
                let (lowers, lower_errors) = walk::Lowers::open(&facts.lower_dirs);
                for e in lower_errors {
                    log.record("files.lowers", "error", None, Some(e));
                }
                let spec = walk::TreeSpec {
                    member_prefix: "rootfs",
                    container_root: "/",
                    source: Source::Upper,
                    overlay: true,
                    include_root: false,
                };
                let literal = tokio::task::block_in_place(|| walker.walk(&root, &spec, &lowers))?;
                tokio::task::block_in_place(|| walker.literal(&root, &spec, &literal, &lowers))?;
            }
            None => {
                // Why there is no upper dir (a failed snapshot lookup, a remote daemon),
                // or --fs-method api.
                let why = match (&facts.upper_error, opts.force_api) {
                    (_, true) if facts.upper_dir.is_some() => "--fs-method api".to_string(),
                    (Some(e), _) => e.clone(),
                    (None, _) => "the runtime reported no upper dir".to_string(),
                };
                if facts.upper_error.is_some() {
                    log.record("files.upperdir", "error", None, Some(why.clone()));
                }
                match rt.api_changes(&facts.id, opts.max_file_size).await {
                    Ok(Some((entries, spool))) => {
                        fs_method = "engine-api";
                        log.record("files.method", "info", Some(format!("no readable overlay upper dir ({why}): container changes and archive download through the Engine API")), None);
                        let lost = write_api_entries(&mut walker, entries, spool)?;
                        walker.stats.errors.extend(lost);
                    }
                    Ok(None) => {
                        fs_method = "none";
                        reasons.push(format!("no overlay upper dir on this host ({why}) and no runtime API for the diff: the filesystem was not captured"));
                    }
                    Err(e) => {
                        fs_method = "engine-api";
                        reasons.push(format!(
                            "no overlay upper dir ({why}) and the filesystem diff through the Engine API failed: {e:#}"
                        ));
                    }
                }
            }
        }
        // Runtime files (hosts, hostname, resolv.conf) and private tmpfs mounts.
        let mut mount_errors = Vec::new();
        for (dest_path, host_path) in &facts.runtime_files {
            let index = mounts.len() as u32;
            mounts.push(MountRecord {
                index,
                source: host_path.display().to_string(),
                destination: dest_path.clone(),
                mount_type: "runtime-file".into(),
                options: vec![],
                read_only: false,
                captured: "content".into(),
            });
            let through = facts.init_pid.filter(|_| facts.running);
            if let Err(e) = runtime_file(&mut walker, index, dest_path, host_path, through) {
                mount_errors.push(format!("{dest_path}: {e}"));
            }
        }
        if let Some(init) = facts.init_pid.filter(|_| facts.running) {
            let mut tmpfs: Vec<String> = mounts
                .iter()
                .filter(|m| m.mount_type == "tmpfs")
                .map(|m| m.destination.clone())
                .collect();
            if !tmpfs.iter().any(|d| d == "/dev/shm") {
                mounts.push(MountRecord {
                    index: mounts.len() as u32,
                    source: "shm".into(),
                    destination: "/dev/shm".into(),
                    mount_type: "tmpfs".into(),
                    options: vec![],
                    read_only: false,
                    captured: "metadata".into(),
                });
                tmpfs.push("/dev/shm".into());
            }
            for m in mounts.iter_mut() {
                if m.mount_type != "tmpfs" || m.destination == "/dev" {
                    continue;
                }
                let prefix = format!("mounts/{}", m.index);
                match mount_tree(&mut walker, init, &m.destination, &prefix, Source::Tmpfs) {
                    Ok(()) => m.captured = "content".into(),
                    Err(e) => mount_errors.push(format!("{}: {e}", m.destination)),
                }
            }
        }
        // Named volumes and emptyDirs with --volumes content; never host bind mounts.
        if opts.volumes == VolumesMode::Content {
            if let Some(init) = facts.init_pid.filter(|_| facts.running) {
                for m in mounts.iter_mut().filter(|m| is_volume(m)) {
                    let prefix = format!("volumes/{}", m.index);
                    match mount_tree(&mut walker, init, &m.destination, &prefix, Source::Volume) {
                        Ok(()) => m.captured = "content".into(),
                        Err(e) => mount_errors.push(format!("{}: {e}", m.destination)),
                    }
                }
            }
        }
        for e in &mount_errors {
            log.record("files.mounts", "error", None, Some(e.clone()));
        }
        walk_stats = walker.stats.clone();
        walk_stats.errors.extend(mount_errors);
    }
    log.record(
        "files",
        if walk_stats.errors.is_empty() {
            "ok"
        } else {
            "error"
        },
        Some(format!(
            "{fs_method}: {} entries, {} bytes stored, {} not captured",
            walk_stats.entries, walk_stats.bytes, walk_stats.not_captured
        )),
        (!walk_stats.errors.is_empty()).then(|| first_of(&walk_stats.errors, 50)),
    );
    if !walk_stats.dropped_xattrs.is_empty() {
        let d = &walk_stats.dropped_xattrs;
        log.record(
            "files.xattrs",
            "info",
            Some(format!(
                "{} extended attributes not stored (their records are flagged xattrs-dropped): {}",
                d.len(),
                first_of(d, 50)
            )),
            None,
        );
    }
    if !walk_stats.errors.is_empty() {
        reasons.push(format!(
            "{} filesystem entries lost during the read (first: {})",
            walk_stats.errors.len(),
            walk_stats.errors[0]
        ));
    }

    // Logs.
    progress.step("logs");
    let mut log_spool = tempfile::tempfile()?;
    let mut log_lines = 0u64;
    let mut logs_cut_at = None;
    if opts.no_logs {
        log.record("logs", "skipped", Some("--no-logs".into()), None);
    } else {
        let mut spool = BufWriter::new(&mut log_spool);
        let mut bytes = 0u64;
        let mut io_err = None;
        let mut sink = |l: LogLine| {
            if logs_cut_at.is_some() || io_err.is_some() {
                return;
            }
            let Ok(line) = serde_json::to_vec(&l) else {
                return;
            };
            if bytes + line.len() as u64 + 1 > exhibit_common::limits::MAX_ENTRY_SIZE {
                logs_cut_at = Some(l.t.clone().unwrap_or_default());
                return;
            }
            bytes += line.len() as u64 + 1;
            log_lines += 1;
            if let Err(e) = spool.write_all(&line).and_then(|_| spool.write_all(b"\n")) {
                io_err = Some(e);
            }
        };
        match rt.logs(facts, opts.logs_since, &mut sink).await {
            Ok(()) => log.record("logs", "ok", Some(format!("{log_lines} lines")), None),
            Err(e) => {
                log.record("logs", "error", None, Some(format!("{e:#}")));
                reasons.push(format!("logs: {e:#}"));
            }
        }
        if let Some(e) = io_err {
            return Err(e).context("spooling logs");
        }
        spool.flush()?;
    }
    let log_size = log_spool.stream_position()?;
    log_spool.rewind()?;
    writer.add_member_from(members::LOGS, &mut log_spool, log_size)?;
    if !opts.no_logs {
        if let Some(path) = &facts.log_file {
            match open_log_file(path) {
                Ok((f, size)) => {
                    // Spooled first: the runtime may rotate or truncate it meanwhile.
                    let mut spool = tempfile::tempfile()?;
                    let copied = std::io::copy(&mut f.take(size), &mut spool)?;
                    spool.rewind()?;
                    writer.add_member_from(members::RUNTIME_LOG, &mut spool, copied)?;
                    log.record(
                        "logs.runtime-file",
                        "ok",
                        Some(format!("{} ({copied} bytes)", path.display())),
                        None,
                    );
                }
                Err(e) => log.record(
                    "logs.runtime-file",
                    "error",
                    Some(path.display().to_string()),
                    Some(e.to_string()),
                ),
            }
        }
    }
    if opts.volumes == VolumesMode::None {
        mounts.retain(|m| m.mount_type == "tmpfs" || m.mount_type == "runtime-file");
    }
    writer.add_member(members::VOLUMES, &serde_json::to_vec_pretty(&mounts)?)?;

    if let Some(f) = freeze.as_mut() {
        match interrupt::unfreeze().await {
            Some((Ok(()), _)) => {
                f.resumed_at = Some(now_rfc3339());
                log.record("unfreeze", "ok", None, None);
            }
            // The evidence is all read: seal it, say the container is still paused.
            Some((Err(e), hint)) => {
                log.record(
                    "unfreeze",
                    "error",
                    Some(format!("the container is still paused ({hint})")),
                    Some(format!("{e:#}")),
                );
                warn_still_paused(facts, &e, &hint);
            }
            None => log.record("unfreeze", "skipped", Some("already resumed".into()), None),
        }
    }
    log.record(
        "capture.end",
        if reasons.is_empty() { "ok" } else { "error" },
        Some(format!("{} reasons for incompleteness", reasons.len())),
        None,
    );
    // After the last event, so that every event lies within started_at..ended_at.
    let ended_at = now_rfc3339();
    writer.add_member(members::ACQUISITION, log.bytes())?;
    let manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        tool: Tool {
            name: "exhibit-collect".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        case: opts.case.clone(),
        examiner: opts.examiner.clone(),
        note: opts.note.clone(),
        container: ContainerIdentity {
            runtime: facts.runtime.into(),
            id: facts.id.clone(),
            name: facts.name.clone(),
            namespace: facts.namespace.clone(),
            image: facts.image_ref.clone(),
            image_id: facts.image_id.clone(),
            pod: facts.pod.clone(),
            pod_namespace: facts.pod_namespace.clone(),
        },
        started_at,
        ended_at,
        freeze: freeze.clone(),
        completeness: Completeness::from_reasons(reasons.clone()),
        fs_method: fs_method.into(),
        counts: Counts {
            trees: Default::default(),
            processes: processes.len() as u64,
            sockets: socket_records.len() as u64,
            log_lines,
            executables: kept.len() as u64,
            memory_regions: regions.len() as u64,
        },
        command_line: opts.command_line.clone(),
        operator_uid: rustix::process::getuid().as_raw(),
        logs_cut_at,
    };
    let (hashing, manifest) = writer.finish(manifest, opts.key.as_ref())?;
    let (mut sink, sha256) = hashing.finish();
    sink.flush()?;
    drop(sink);
    if let (Some(a), Some(p), Some(mut side)) = (atomic, &path, sidecar.take()) {
        // Both are synced, then renamed back to back, the bundle first; if the sidecar
        // then cannot take its name, the bundle is removed again, so an error always
        // means nothing at the final names (output::commit_pair).
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        writeln!(side.file(), "{sha256}  {name}")?;
        let side_path = sidecar_of(p);
        interrupt::seal(&[p, &side_path], || {
            exhibit_common::output::commit_pair(a, side)
                .context("sealing the bundle and its .sha256 file")
        })?;
    }
    Ok(Captured {
        path,
        sha256,
        complete: reasons.is_empty(),
        reasons: reasons.clone(),
        manifest,
    })
}

fn sidecar_of(bundle: &Path) -> PathBuf {
    let mut s = bundle.as_os_str().to_os_string();
    s.push(".sha256");
    PathBuf::from(s)
}

// A runtime-provided file (hosts, hostname, resolv.conf) from its host path, opened
// without following a symlink, stored as mounts/<index>.
fn runtime_file<W: Write>(
    walker: &mut walk::Walker<'_, W>,
    index: u32,
    dest: &str,
    host_path: &Path,
    through: Option<i32>,
) -> Result<()> {
    // Read through the container's pinned root when it runs (no host path needed, which
    // matters in a Kubernetes pod), else from the runtime's own file on the host.
    let (dir, name): (std::os::fd::OwnedFd, std::ffi::OsString) = match through {
        Some(pid) => {
            let root = host::open_container_root(pid)?;
            let (parent, name) = dest
                .rsplit_once('/')
                .context("runtime file has no parent")?;
            (
                walk::open_beneath_dir(&root, parent.trim_start_matches('/').as_bytes())?,
                name.into(),
            )
        }
        None => {
            let parent = host_path.parent().context("runtime file has no parent")?;
            let name = host_path.file_name().context("runtime file has no name")?;
            (
                rustix::fs::open(
                    parent,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )?,
                name.to_os_string(),
            )
        }
    };
    let name = name.as_os_str();
    let st = rustix::fs::statx(
        &dir,
        name,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS | StatxFlags::BTIME,
    )?;
    if walk::file_type(st.stx_mode as u32) != exhibit_common::records::FileType::File {
        anyhow::bail!("not a regular file");
    }
    let fd = rustix::fs::openat(
        &dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOATIME | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let size = st.stx_size.min(walker.opts.max_file_size);
    let mut rec = walk::base_record(
        format!("mounts/{index}").into_bytes(),
        dest.as_bytes().to_vec(),
        Source::RuntimeFile,
        ChangeKind::Added,
        exhibit_common::records::FileType::File,
        &st,
    );
    rec.stored_size = size;
    if size != st.stx_size {
        rec.captured = false;
        rec.reason = Some("over --max-file-size".to_string());
    }
    let mut f = std::fs::File::from(fd);
    walker.writer.add_content(
        rec,
        Some(&mut (&mut f).take(size) as &mut dyn Read),
        |_, _| {},
    )?;
    Ok(())
}

/// A named volume or emptyDir (never a host bind mount of anything else).
fn is_volume(m: &MountRecord) -> bool {
    m.mount_type == "volume" || m.source.contains("/kubernetes.io~empty-dir/")
}

// A mount of the container (tmpfs such as /dev/shm, or a volume), reached through
// /proc/PID/root one component at a time without following symlinks, and only if it is
// really a different mount. The walk does not cross into nested mounts.
fn mount_tree<W: Write>(
    walker: &mut walk::Walker<'_, W>,
    init: i32,
    dest: &str,
    prefix: &str,
    source: Source,
) -> Result<()> {
    let root = host::open_container_root(init)?;
    let root_mnt = mount_id(&root)?;
    let rel = dest.trim_start_matches('/');
    let dir = walk::open_beneath_dir(&root, rel.as_bytes())
        .with_context(|| format!("reaching {dest} in the container"))?;
    if mount_id(&dir)? == root_mnt {
        anyhow::bail!("{dest} is not a separate mount");
    }
    let spec = walk::TreeSpec {
        member_prefix: prefix,
        container_root: dest,
        source,
        overlay: false,
        include_root: true,
    };
    tokio::task::block_in_place(|| walker.walk(&dir, &spec, &walk::Lowers::none()))?;
    Ok(())
}

fn mount_id(fd: &std::os::fd::OwnedFd) -> Result<u64> {
    let st = rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)?;
    Ok(st.stx_mnt_id)
}

// Writes a diff read through the runtime API as rootfs/ and literal/ records.
fn write_api_entries<W: Write>(
    walker: &mut walk::Walker<'_, W>,
    entries: Vec<crate::runtime::ApiEntry>,
    mut spool: std::fs::File,
) -> Result<Vec<String>> {
    use exhibit_common::records::FileType;
    let mut lost = Vec::new();
    let mut literal = Vec::new();
    for e in entries {
        let name_start = e
            .path
            .iter()
            .rposition(|&b| b == b'/')
            .map(|i| i + 1)
            .unwrap_or(0);
        let rel = e.path.strip_prefix(b"/").unwrap_or(&e.path).to_vec();
        let member = if e.kind == ChangeKind::Deleted {
            let mut m = b"rootfs/".to_vec();
            m.extend_from_slice(&e.path[1..name_start]);
            m.extend_from_slice(b".wh.");
            m.extend_from_slice(&e.path[name_start..]);
            m
        } else if e.file_type == FileType::File && e.path[name_start..].starts_with(b".wh.") {
            literal.push(e);
            continue;
        } else {
            [b"rootfs/".as_slice(), &rel].concat()
        };
        write_api_entry(walker, e, member, &mut spool, &mut lost)?;
    }
    for e in literal {
        let rel = e.path.strip_prefix(b"/").unwrap_or(&e.path).to_vec();
        write_api_entry(
            walker,
            e,
            [b"literal/".as_slice(), &rel].concat(),
            &mut spool,
            &mut lost,
        )?;
    }
    Ok(lost)
}

fn write_api_entry<W: Write>(
    walker: &mut walk::Walker<'_, W>,
    e: crate::runtime::ApiEntry,
    member: Vec<u8>,
    spool: &mut std::fs::File,
    lost: &mut Vec<String>,
) -> Result<()> {
    use exhibit_common::records::FileType;
    let stored = e.content.map(|c| c.1).unwrap_or(0);
    let captured = e.reason.is_none()
        && !matches!(
            e.file_type,
            FileType::Fifo | FileType::Char | FileType::Block | FileType::Whiteout
        );
    if let Some(r) = &e.reason {
        if r != "over --max-file-size" {
            lost.push(format!("{}: {r}", String::from_utf8_lossy(&e.path)));
        }
    }
    let rec = ChangeRecord {
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        size: e.size,
        stored_size: stored,
        mtime_ns: e.mtime_ns,
        link_target: e.link_target.map(ByteText),
        captured,
        reason: e
            .reason
            .or_else(|| (e.file_type == FileType::Whiteout).then(|| "whiteout".to_string())),
        flags: vec!["engine-api".into()],
        ..ChangeRecord::new(member, e.path.clone(), Source::Upper, e.kind, e.file_type)
    };
    match e.content {
        Some((off, len)) => {
            spool.seek(std::io::SeekFrom::Start(off))?;
            let mut r = (&mut *spool).take(len);
            walker
                .writer
                .add_content(rec, Some(&mut r as &mut dyn Read), |_, _| {})?;
        }
        None => walker.writer.add_content(rec, None, |_, _| {})?,
    }
    Ok(())
}

// The runtime's log file, opened without following a symlink; the size is fixed at open
// (the file keeps growing) and capped at the entry limit.
fn open_log_file(path: &Path) -> std::io::Result<(std::fs::File, u64)> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOATIME | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let st = rustix::fs::fstat(&fd)?;
    if st.st_mode & 0o170000 != 0o100000 {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok((
        std::fs::File::from(fd),
        (st.st_size as u64).min(exhibit_common::limits::MAX_ENTRY_SIZE),
    ))
}

// Memory regions --memory wanted but could not take, one line each, and the number of
// mappings without read permission (guard pages: nothing to read, not a loss).
fn memory_misses(processes: &[ProcessRecord]) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut no_read = 0;
    for p in processes {
        out.extend(
            p.errors
                .iter()
                .filter(|e| e.starts_with("memory:"))
                .map(|e| format!("pid {}: {e}", p.pid)),
        );
        for r in &p.memory {
            if r.member.is_some() {
                continue;
            }
            if !r.perms.starts_with('r') {
                no_read += 1;
            } else if let Some(e) = &r.error {
                out.push(format!("pid {} {:x}-{:x}: {e}", p.pid, r.start, r.end));
            }
        }
    }
    (out, no_read)
}

// The first `n` items joined with "; ", and how many more there were.
fn first_of(items: &[String], n: usize) -> String {
    let mut s = items.iter().take(n).cloned().collect::<Vec<_>>().join("; ");
    if items.len() > n {
        s.push_str(&format!("; ... {} more", items.len() - n));
    }
    s
}
