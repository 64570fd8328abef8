//! The volatile state, read first: processes, sockets, memory regions and the
//! executables absent from the container's filesystem; then written as the bundle's
//! first members.

use super::{first_of, Run};
use crate::host::{self, procs, sockets};
use crate::runtime::Runtime;
use anyhow::Result;
use exhibit_common::custody::Outcome;
use exhibit_common::manifest::ReasonCode;
use exhibit_common::members;
use exhibit_common::records::{ProcessRecord, SocketRecord};
use exhibit_common::writer::BundleWriter;
use std::collections::BTreeMap;
use std::io::Write;

/// What the volatile phase read.
#[derive(Default)]
pub(super) struct Volatile {
    pub processes: Vec<ProcessRecord>,
    pub kept: BTreeMap<String, procs::KeptExe>,
    pub sockets: Vec<SocketRecord>,
    pub regions: Vec<procs::KeptRegion>,
    /// What is left of the capture's spool budget.
    spool: SpoolBudget,
    /// Executables read but not kept because the budget was spent.
    spool_misses: Vec<String>,
}

/// The capture's budget for what it holds in TMPDIR before the bundle is written:
/// memory regions and kept executables (`--max-spool` bytes, at most
/// `MAX_KEPT_EXECUTABLES` executables). Beyond it nothing more is spooled and what was
/// not taken is recorded (the bundle is incomplete), so a container cannot fill the
/// host's temporary disk.
#[derive(Default)]
struct SpoolBudget {
    bytes_left: u64,
    exes_left: u64,
}

impl SpoolBudget {
    fn new(bytes: u64) -> Self {
        SpoolBudget {
            bytes_left: bytes,
            exes_left: exhibit_common::limits::MAX_KEPT_EXECUTABLES,
        }
    }

    /// Takes `size` bytes and one executable from the budget, or says why not.
    fn take_exe(&mut self, size: u64) -> Result<(), &'static str> {
        if self.exes_left == 0 || size > self.bytes_left {
            return Err(procs::SPOOL_BUDGET_EXCEEDED);
        }
        self.exes_left -= 1;
        self.bytes_left -= size;
        Ok(())
    }
}

impl Run<'_> {
    /// Reads processes, sockets, memory and executables (nothing is written yet).
    pub(super) async fn read_volatile<R: Runtime>(
        &mut self,
        rt: &R,
        progress: &crate::progress::Progress,
    ) -> Volatile {
        progress.step("processes");
        let mut v = Volatile {
            spool: SpoolBudget::new(self.opts.max_spool),
            ..Volatile::default()
        };
        let facts = self.facts;
        match facts.init_pid.filter(|_| facts.running) {
            Some(init) => {
                self.read_processes(init, &mut v);
                progress.step("sockets");
                self.read_sockets(&mut v);
                // Then memory: the regions --memory asks for, through /proc/PID/mem.
                progress.step("memory");
                self.read_memory(&mut v);
                // Executables absent from the container's filesystem are kept too.
                self.keep_executables(&mut v);
            }
            None if facts.running && rt.remote().is_some() => {
                self.remote_processes(rt, &mut v.processes).await;
            }
            None => {
                for step in ["processes", "sockets"] {
                    self.log.record(
                        step,
                        Outcome::Skipped,
                        Some("container is not running".into()),
                        None,
                    );
                }
            }
        }
        v
    }

    fn read_processes(&mut self, init: i32, v: &mut Volatile) {
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
                self.opts.max_file_size,
                boot,
                &mut digests,
            );
            if let Some(k) = exe {
                if !v.kept.contains_key(&k.sha256) {
                    if let Err(why) = v.spool.take_exe(k.size) {
                        v.spool_misses
                            .push(format!("pid {pid}: executable not kept: {why}"));
                    } else {
                        v.kept.insert(k.sha256.clone(), k);
                    }
                }
            }
            v.processes.push(rec);
        }
        v.processes
            .retain(|p| !(exited_before_read(p) && p.exe.is_none()));
        if v.processes.is_empty() {
            self.lost(
                ReasonCode::ProcessesExited,
                "container processes exited before they were read",
            );
        }
        self.log.record(
            "processes",
            Outcome::Ok,
            Some(format!(
                "{} processes ({} executables kept)",
                v.processes.len(),
                v.kept.len()
            )),
            None,
        );
        for n in &membership.notes {
            self.log
                .record("processes.membership", Outcome::Info, Some(n.clone()), None);
        }
    }

    fn read_sockets(&mut self, v: &mut Volatile) {
        let mut errs = Vec::new();
        v.sockets = sockets::collect(&v.processes, &mut errs);
        self.log.record(
            "sockets",
            Outcome::ok_unless(!errs.is_empty()),
            Some(format!("{} sockets", v.sockets.len())),
            (!errs.is_empty()).then(|| errs.join("; ")),
        );
        if !errs.is_empty() && v.sockets.is_empty() {
            self.lost(
                ReasonCode::SocketsUnreadable,
                format!("sockets unreadable: {}", errs.join("; ")),
            );
        }
    }

    fn read_memory(&mut self, v: &mut Volatile) {
        let mut caps = procs::MemoryCaps {
            per_region: 64 << 20,
            per_process: 256 << 20,
            regions_left: exhibit_common::limits::MAX_MEMORY_REGIONS,
            spool_left: v.spool.bytes_left,
        };
        for p in v.processes.iter_mut() {
            v.regions
                .extend(procs::read_memory(p, self.opts.memory, &mut caps));
        }
        v.spool.bytes_left = caps.spool_left;
        // Regions not taken (unreadable, vanished, the process gone, over a cap) are
        // on their process records and listed here; the capture goes on.
        let (missed, no_read) = memory_misses(&v.processes);
        self.log.record(
            "memory",
            Outcome::ok_unless(!missed.is_empty()),
            Some(format!(
                "{} regions taken ({:?}), {} not taken, {} without read permission (guard pages; on their process records)",
                v.regions.len(),
                self.opts.memory,
                missed.len(),
                no_read
            )),
            (!missed.is_empty()).then(|| first_of(&missed, 50)),
        );
        if !missed.is_empty() {
            self.lost(
                ReasonCode::MemoryNotTaken,
                format!(
                    "{} memory regions wanted by --memory not taken (listed in the memory event)",
                    missed.len()
                ),
            );
        }
    }

    fn keep_executables(&mut self, v: &mut Volatile) {
        // Executables read with their process (deleted, memfd) that the budget refused.
        let mut exe_misses: Vec<String> = v
            .processes
            .iter()
            .flat_map(|p| exe_read_errors(p).map(move |e| format!("pid {}: {e}", p.pid)))
            .collect();
        exe_misses.append(&mut v.spool_misses);
        for p in v.processes.iter() {
            if p.exe_deleted
                || p.memfd
                || p.exe_sha256.as_ref().is_none_or(|d| v.kept.contains_key(d))
            {
                continue;
            }
            let Some(exe) = p.exe.as_ref().and_then(|e| e.as_str()) else {
                continue;
            };
            if !host::exists_in_container(p.pid, exe) {
                // Read no more than the budget allows; an executable the budget would
                // cut (not --max-file-size) is not read at all.
                let cap = self.opts.max_file_size.min(v.spool.bytes_left);
                let over_budget = v.spool.exes_left == 0
                    || v.spool.bytes_left == 0
                    || (cap < self.opts.max_file_size && p.exe_size.is_some_and(|size| size > cap));
                if over_budget {
                    exe_misses.push(format!(
                        "pid {}: {} not kept: {}",
                        p.pid,
                        exe,
                        procs::SPOOL_BUDGET_EXCEEDED
                    ));
                    continue;
                }
                match procs::keep_exe(p, cap) {
                    Some(k) => match v.spool.take_exe(k.size) {
                        Ok(()) => {
                            v.kept.entry(k.sha256.clone()).or_insert(k);
                        }
                        Err(why) => {
                            exe_misses.push(format!("pid {}: {} not kept: {why}", p.pid, exe))
                        }
                    },
                    None => exe_misses.push(format!(
                        "pid {}: {} could not be read through /proc/PID/exe (process exited?)",
                        p.pid, exe
                    )),
                }
            }
        }
        // A process names a kept executable exactly when its content is in the bundle
        // (one the spool budget refused is not).
        for p in v.processes.iter_mut() {
            p.exe_member = p
                .exe_sha256
                .as_ref()
                .filter(|d| v.kept.contains_key(*d))
                .map(|d| format!("exhibit/exe/{d}"));
        }
        self.log.record(
            "executables",
            Outcome::ok_unless(!exe_misses.is_empty()),
            Some(format!(
                "{} executables kept (deleted, memfd or absent from the container's filesystem)",
                v.kept.len()
            )),
            (!exe_misses.is_empty()).then(|| first_of(&exe_misses, 50)),
        );
        if !exe_misses.is_empty() {
            self.lost(
                ReasonCode::ExecutablesNotKept,
                format!(
                    "{} executables not kept (listed in the executables event)",
                    exe_misses.len()
                ),
            );
        }
    }

    // Processes of a running container of a remote daemon: the daemon's own `ps` listing
    // through `top`; sockets and memory need the daemon host's /proc and are recorded as
    // unavailable.
    async fn remote_processes<R: Runtime>(&mut self, rt: &R, processes: &mut Vec<ProcessRecord>) {
        let url = rt.remote().unwrap_or_default();
        match rt.top(&self.facts.id).await {
            Ok(Some(p)) => {
                *processes = p;
                self.log.record(
                    "processes",
                    Outcome::Ok,
                    Some(format!(
                        "{} processes from the Engine API top of {url} (ps on the daemon's host, not /proc; records marked found_by engine-api-top)",
                        processes.len()
                    )),
                    None,
                );
            }
            Ok(None) => self.log.record(
                "processes",
                Outcome::Skipped,
                Some(format!("{url}: no process listing in this runtime's API")),
                None,
            ),
            Err(e) => self.log.record(
                "processes",
                Outcome::Error,
                Some(format!("Engine API top of {url}")),
                Some(format!("{e:#}")),
            ),
        }
        let why = format!("remote Docker daemon {url}: needs the daemon host's /proc");
        self.log
            .record("sockets", Outcome::Skipped, Some(why.clone()), None);
        self.log
            .record("memory", Outcome::Skipped, Some(why.clone()), None);
        self.log.record(
            "files.mounts",
            Outcome::Skipped,
            Some(format!(
                "{why}: tmpfs mounts, volumes and runtime files (hosts, hostname, resolv.conf) recorded as metadata only, whatever --volumes says"
            )),
            None,
        );
        self.lost(ReasonCode::RemoteDaemon, format!(
            "remote Docker daemon {url}: processes only as the daemon's ps listing (no argv bytes, environment, executables or fds); sockets, memory and tmpfs content not captured (they need the daemon host's /proc)"
        ));
    }

    /// Writes host.json, container.json, the kept executables and memory regions,
    /// processes.jsonl, sockets.jsonl and image.json.
    pub(super) fn write_volatile<R: Runtime, W: Write>(
        &mut self,
        rt: &R,
        writer: &mut BundleWriter<W>,
        v: &mut Volatile,
    ) -> Result<()> {
        let facts = self.facts;
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
        for (digest, k) in v.kept.iter_mut() {
            let size = k.size;
            writer.add_member_from(&format!("exhibit/exe/{digest}"), &mut k.spool, size)?;
        }
        for r in v.regions.iter_mut() {
            let size = r.size;
            writer.add_member_from(&r.member, &mut r.spool, size)?;
        }
        let mut lines = Vec::new();
        let mut cut = Vec::new();
        for p in v.processes.iter_mut() {
            // argv, environment, fds and maps are the process's own: cut the record to
            // the reader's line limit rather than write a line it refuses.
            if p.fit_line(exhibit_common::limits::MAX_JSON_LINE) {
                cut.push(p.pid);
            }
            serde_json::to_writer(&mut lines, p)?;
            lines.push(b'\n');
        }
        if !cut.is_empty() {
            self.lost(
                ReasonCode::RecordTruncated,
                format!(
                    "{} process records cut to the bundle's line limit (pids {:?})",
                    cut.len(),
                    &cut[..cut.len().min(20)]
                ),
            );
        }
        writer.add_member(members::PROCESSES, &lines)?;
        let mut lines = Vec::new();
        for s in &v.sockets {
            serde_json::to_writer(&mut lines, s)?;
            lines.push(b'\n');
        }
        writer.add_member(members::SOCKETS, &lines)?;
        writer.add_member(members::IMAGE, &serde_json::to_vec_pretty(&facts.image)?)?;
        Ok(())
    }
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
                .filter(|e| is_memory_error(e))
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
// What procs::read_process and procs::read_memory recorded on a process, typed.
fn exited_before_read(p: &ProcessRecord) -> bool {
    p.errors
        .iter()
        .any(|e| procs::ProcessError::of(e) == procs::ProcessError::ExitedBeforeRead)
}

fn exe_read_errors(p: &ProcessRecord) -> impl Iterator<Item = &String> {
    p.errors
        .iter()
        .filter(|e| matches!(procs::ProcessError::of(e), procs::ProcessError::ExeRead(_)))
}

fn is_memory_error(e: &str) -> bool {
    matches!(procs::ProcessError::of(e), procs::ProcessError::Memory(_))
}

#[cfg(test)]
mod tests {
    use super::SpoolBudget;

    #[test]
    fn the_spool_budget_counts_bytes_and_executables() {
        let mut b = SpoolBudget::new(10);
        assert!(b.take_exe(6).is_ok());
        assert!(b.take_exe(5).is_err(), "over the bytes left");
        assert!(b.take_exe(4).is_ok());
        assert_eq!(b.bytes_left, 0);
        let mut n = SpoolBudget::new(u64::MAX);
        n.exes_left = 1;
        assert!(n.take_exe(0).is_ok());
        assert!(n.take_exe(0).is_err(), "over the executable count");
    }
}
