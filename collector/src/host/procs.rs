//! The container's processes, read from /proc on the host: members of its cgroup plus
//! members of its pid namespace (when not the host's). Raw argv and environment are
//! kept byte-exact; the executable is hashed through /proc/PID/exe, which works when
//! the file was deleted or is a memfd.

use exhibit_common::limits::{MAX_PROC_LIST_BYTES, MAX_PROC_LIST_ENTRIES};
use exhibit_common::records::{CappedList, FdInfo, ProcessRecord};
use exhibit_common::text::ByteText;
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Pids of the container and what found them.
#[derive(Debug, Default)]
pub struct Membership {
    pub pids: BTreeMap<i32, Vec<String>>,
    /// Disagreements between the cgroup and the pid namespace, for the acquisition log.
    pub notes: Vec<String>,
}

/// What went wrong reading a process, kept as text in `ProcessRecord::errors` (the
/// bundle's format) and read back as this type by the capture: the text is written and
/// parsed here only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessError {
    /// /proc/PID/stat could not be read: the process exited before it was read.
    ExitedBeforeRead,
    /// Reading the executable through /proc/PID/exe failed part-way.
    ExeRead(String),
    /// /proc/PID/mem could not be opened for the memory regions.
    Memory(String),
    /// Anything else (a list that could not be read, ...).
    Other(String),
}

impl ProcessError {
    const EXITED: &'static str = "stat unreadable (process exited?)";
    const EXE_READ: &'static str = "exe read: ";
    const MEMORY: &'static str = "memory: ";

    /// The text recorded in the bundle.
    pub fn text(&self) -> String {
        match self {
            ProcessError::ExitedBeforeRead => Self::EXITED.to_string(),
            ProcessError::ExeRead(e) => format!("{}{e}", Self::EXE_READ),
            ProcessError::Memory(e) => format!("{}{e}", Self::MEMORY),
            ProcessError::Other(e) => e.clone(),
        }
    }

    /// The error a recorded text stands for.
    pub fn of(text: &str) -> ProcessError {
        if text == Self::EXITED {
            ProcessError::ExitedBeforeRead
        } else if let Some(e) = text.strip_prefix(Self::EXE_READ) {
            ProcessError::ExeRead(e.to_string())
        } else if let Some(e) = text.strip_prefix(Self::MEMORY) {
            ProcessError::Memory(e.to_string())
        } else {
            ProcessError::Other(text.to_string())
        }
    }
}

/// One process's `/proc/PID` directory, opened while a pidfd of that process showed it
/// alive. Every read goes through this directory handle, which stays bound to that
/// process: once it has exited, reads fail (the process is gone) instead of reaching a
/// host process that was given the same pid number.
pub struct ProcDir {
    pid: i32,
    dir: OwnedFd,
}

impl ProcDir {
    /// Opens the process `pid` as it is now.
    pub fn open(pid: i32) -> std::io::Result<ProcDir> {
        let dir = crate::host::open::opened_while_alive(pid, || {
            rustix::fs::open(
                format!("/proc/{pid}"),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
        })?;
        Ok(ProcDir { pid, dir })
    }

    /// Opens the process a record describes again, for a later phase of the capture
    /// (memory, executables, sockets): only if it is still that process, by pid *and*
    /// start time, else "process exited".
    pub fn reopen(rec: &ProcessRecord) -> std::io::Result<ProcDir> {
        let d = ProcDir::open(rec.pid)?;
        // Boot time is read once per run: every later phase reopens many processes.
        static BOOT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
        let now = d.start_time(*BOOT.get_or_init(|| procfs::boot_time_secs().ok()));
        if now.is_none() || now != rec.start_time {
            return Err(std::io::Error::other(format!(
                "process {} exited (the pid now names another process)",
                rec.pid
            )));
        }
        Ok(d)
    }

    /// The pid this directory was opened for.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Opens `name` (e.g. `exe`, `mem`, `net/tcp`) of this process for reading.
    pub fn open_file(&self, name: &str) -> std::io::Result<File> {
        Ok(File::from(rustix::fs::openat(
            &self.dir,
            name,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?))
    }

    /// Reads `name` as bytes, capped at `cap + 1` bytes (so a caller can tell a cut).
    pub fn read_capped(&self, name: &str, cap: usize) -> std::io::Result<(Vec<u8>, u64)> {
        let f = self.open_file(name)?;
        let mut buf = Vec::new();
        f.take(cap as u64 + 1).read_to_end(&mut buf)?;
        let len = buf.len() as u64;
        Ok((buf, len))
    }

    /// Reads `name` whole.
    pub fn read(&self, name: &str) -> std::io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.open_file(name)?.read_to_end(&mut buf)?;
        Ok(buf)
    }

    /// The text of the link `name` (`exe`, `cwd`, `fd/N`), as bytes.
    pub fn readlink(&self, name: &str) -> Option<ByteText> {
        rustix::fs::readlinkat(&self.dir, name, Vec::new())
            .ok()
            .map(|p| ByteText(p.into_bytes()))
    }

    /// The open file descriptor numbers, ascending.
    pub fn fd_numbers(&self) -> std::io::Result<Vec<i32>> {
        let fd = rustix::fs::openat(
            &self.dir,
            "fd",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut dir = rustix::fs::Dir::new(fd)?;
        let mut out = Vec::new();
        while let Some(ent) = dir.read() {
            if let Some(n) = ent?
                .file_name()
                .to_str()
                .ok()
                .and_then(|s| s.parse::<i32>().ok())
            {
                out.push(n);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// The inode of the namespace `ns` (pid, net, mnt, ...) of this process.
    pub fn ns_inode(&self, ns: &str) -> Option<u64> {
        rustix::fs::statat(&self.dir, format!("ns/{ns}"), AtFlags::empty())
            .ok()
            .map(|st| st.st_ino)
    }

    /// The process's start time (RFC 3339), as recorded in `ProcessRecord::start_time`.
    pub fn start_time(&self, boot_time: Option<u64>) -> Option<String> {
        let (b, _) = self.read_capped("stat", 64 << 10).ok()?;
        start_time_of(&parse_stat(&b)?, boot_time)
    }
}

fn start_time_of(stat: &StatFields, boot_time: Option<u64>) -> Option<String> {
    let boot = boot_time?;
    let ticks = procfs::ticks_per_second().max(1);
    let ns =
        boot as i128 * 1_000_000_000 + (stat.starttime as i128 * 1_000_000_000) / ticks as i128;
    Some(exhibit_common::text::rfc3339_ns(ns))
}

/// The cgroup.procs files of the container's cgroup (v1: one controller; v2: unified).
fn cgroup_procs_files(init_pid: i32) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read(format!("/proc/{init_pid}/cgroup")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for dir in parse_cgroup(&text) {
        collect_procs_files(&dir, &mut out, 0);
    }
    out
}

/// The cgroup directories named by /proc/PID/cgroup content: the unified (v2)
/// hierarchy and the v1 `pids` controller, under /sys/fs/cgroup. A path with `..`
/// components (never written by the kernel) is skipped.
pub fn parse_cgroup(bytes: &[u8]) -> Vec<PathBuf> {
    // Read as text before, so a file that is not UTF-8 names nothing.
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let base = if ctrls.is_empty() {
            PathBuf::from("/sys/fs/cgroup")
        } else if ctrls.split(',').any(|c| c == "pids") {
            PathBuf::from("/sys/fs/cgroup/pids")
        } else {
            continue;
        };
        if path.split('/').any(|c| c == "..") {
            continue;
        }
        out.push(base.join(path.trim_start_matches('/')));
    }
    out
}

fn collect_procs_files(dir: &Path, out: &mut Vec<PathBuf>, depth: u32) {
    let f = dir.join("cgroup.procs");
    if f.exists() {
        out.push(f);
    }
    if depth > 16 {
        return;
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_procs_files(&e.path(), out, depth + 1);
            }
        }
    }
}

/// Namespace inode of a process (`ns` is pid, net, mnt, ...).
pub fn ns_inode(pid: i32, ns: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/{ns}"))
        .ok()
        .map(|m| m.ino())
}

/// Finds the container's processes.
pub fn membership(init_pid: i32) -> Membership {
    let mut m = Membership::default();
    for f in cgroup_procs_files(init_pid) {
        if let Ok(text) = std::fs::read_to_string(&f) {
            for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                m.pids.entry(pid).or_default().push("cgroup".into());
            }
        }
    }
    let host_pidns = ns_inode(1, "pid");
    let own = ns_inode(init_pid, "pid");
    if own.is_some() && own != host_pidns {
        if let Ok(rd) = std::fs::read_dir("/proc") {
            for e in rd.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                    continue;
                };
                if ns_inode(pid, "pid") == own {
                    let by = m.pids.entry(pid).or_default();
                    if !by.iter().any(|b| b == "pidns") {
                        by.push("pidns".into());
                    }
                }
            }
        }
    }
    m.pids
        .entry(init_pid)
        .or_insert_with(|| vec!["init".into()]);
    for (pid, by) in &m.pids {
        if by.len() == 1 && own != host_pidns && *pid != init_pid {
            m.notes.push(format!("pid {pid} found only by {}", by[0]));
        }
    }
    m
}

/// Content of a process executable kept for the bundle (deleted, memfd, or absent from
/// the container's filesystem), spooled to a private temporary file.
pub struct KeptExe {
    pub sha256: String,
    pub size: u64,
    pub spool: File,
}

fn capped_list(raw: &[u8], truncated_bytes: bool) -> CappedList {
    let mut items: Vec<ByteText> = raw
        .split(|&b| b == 0)
        .map(|s| ByteText(s.to_vec()))
        .collect();
    if items.last().is_some_and(|l| l.0.is_empty()) {
        items.pop();
    }
    let original_entries = items.len() as u64;
    let mut truncated = truncated_bytes;
    if items.len() > MAX_PROC_LIST_ENTRIES {
        items.truncate(MAX_PROC_LIST_ENTRIES);
        truncated = true;
    }
    CappedList {
        items,
        truncated,
        original_bytes: raw.len() as u64,
        original_entries,
    }
}

fn lines_list(raw: &[u8], truncated_bytes: bool) -> CappedList {
    let mut l = capped_list(
        &raw.iter()
            .map(|&b| if b == b'\n' { 0 } else { b })
            .collect::<Vec<_>>(),
        truncated_bytes,
    );
    l.original_bytes = raw.len() as u64;
    l
}

/// /proc/PID/maps content (already capped; `truncated` when it was cut) as the list of
/// its lines, and the number of executable mappings with no file behind them
/// (anonymous, memfd, heap or stack).
pub fn parse_maps(raw: &[u8], truncated: bool) -> (CappedList, u32) {
    let maps = lines_list(raw, truncated);
    let anon_exec = maps
        .items
        .iter()
        .filter(|l| {
            let f: Vec<&[u8]> =
                l.0.split(|&b| b == b' ')
                    .filter(|s| !s.is_empty())
                    .collect();
            let exec = f.get(1).is_some_and(|p| p.contains(&b'x'));
            let path = f.get(5).copied().unwrap_or(b"");
            exec && (path.is_empty()
                || path.starts_with(b"/memfd:")
                || path == b"[heap]"
                || path == b"[stack]")
        })
        .count() as u32;
    (maps, anon_exec)
}

/// One line of /proc/PID/maps: address range, permissions and path (the rest of the
/// line; a file name may hold spaces). None for a line that is not a mapping.
pub struct MapsLine<'a> {
    pub start: u64,
    pub end: u64,
    pub perms: &'a str,
    pub path: &'a [u8],
}

/// Parses one /proc/PID/maps line.
pub fn parse_maps_line(line: &[u8]) -> Option<MapsLine<'_>> {
    let f: Vec<&[u8]> = line.splitn(6, |&b| b == b' ').collect();
    let range = f.first()?;
    let perms = f.get(1).and_then(|p| std::str::from_utf8(p).ok())?;
    let path: &[u8] = f.get(5).map(|p| p.trim_ascii_start()).unwrap_or(b"");
    let (start, end) = std::str::from_utf8(range)
        .ok()
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| {
            Some((
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
            ))
        })?;
    Some(MapsLine {
        start,
        end,
        perms,
        path,
    })
}

/// The fields of /proc/PID/stat the collector records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatFields {
    pub comm: Vec<u8>,
    pub ppid: i32,
    /// Clock ticks after boot.
    pub starttime: u64,
}

/// Parses /proc/PID/stat: `pid (comm) state ppid ...`, starttime the 22nd field. comm
/// is whatever the process named itself (any bytes but NUL, up to 15, parentheses and
/// spaces included), so it ends at the last `)`.
pub fn parse_stat(raw: &[u8]) -> Option<StatFields> {
    let open = raw.iter().position(|&b| b == b'(')?;
    let close = raw.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let comm = raw[open + 1..close].to_vec();
    let rest = std::str::from_utf8(&raw[close + 1..]).ok()?;
    // Fields after comm: state is field 3, ppid 4, starttime 22.
    let mut f = rest.split_ascii_whitespace();
    let _state = f.next()?;
    let ppid = f.next()?.parse().ok()?;
    let starttime = f.nth(17)?.parse().ok()?;
    Some(StatFields {
        comm,
        ppid,
        starttime,
    })
}

/// The fields of /proc/PID/status the collector records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusFields {
    /// Real uid and gid.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The pid in the innermost pid namespace (last of NSpid).
    pub ns_pid: Option<i32>,
}

/// Parses /proc/PID/status line by line, as bytes: the `Name:` line carries the
/// process's own name raw (invalid UTF-8 included), which must not cost the other
/// fields (procfs refused such a file, and the uid was lost).
pub fn parse_status(raw: &[u8]) -> StatusFields {
    let mut out = StatusFields::default();
    for line in raw.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (key, value) = (&line[..colon], &line[colon + 1..]);
        let Ok(value) = std::str::from_utf8(value) else {
            continue;
        };
        let mut fields = value.split_ascii_whitespace();
        match key {
            b"Uid" => out.uid = fields.next().and_then(|v| v.parse().ok()),
            b"Gid" => out.gid = fields.next().and_then(|v| v.parse().ok()),
            b"NSpid" => out.ns_pid = fields.last().and_then(|v| v.parse().ok()),
            _ => {}
        }
    }
    out
}

/// Device of the kernel's internal memfd mount, learnt from a memfd of our own.
pub fn memfd_dev() -> Option<u64> {
    let fd = rustix::fs::memfd_create("exhibit-probe", rustix::fs::MemfdFlags::CLOEXEC).ok()?;
    rustix::fs::fstat(&fd).ok().map(|s| s.st_dev)
}

/// Users of the container by uid, from its /etc/passwd.
pub type Users = BTreeMap<u32, String>;

/// Parses /etc/passwd content.
pub fn parse_passwd(text: &[u8]) -> Users {
    let mut users = Users::new();
    for line in text.split(|&b| b == b'\n').take(100_000) {
        let fields: Vec<&[u8]> = line.splitn(4, |&b| b == b':').collect();
        if fields.len() >= 3 {
            if let (Ok(name), Some(uid)) = (
                std::str::from_utf8(fields[0]),
                std::str::from_utf8(fields[2])
                    .ok()
                    .and_then(|u| u.parse().ok()),
            ) {
                users.entry(uid).or_insert_with(|| name.to_string());
            }
        }
    }
    users
}

/// Identity of an executable file on the host: device, inode, size, mtime and ctime.
/// A file being executed cannot be written (ETXTBSY) and any change moves its ctime,
/// so within one capture equal keys mean equal content.
pub type ExeKey = (u64, u64, i64, i64, i64, i64, i64);

/// Digests of executables hashed so far in this capture, by [`ExeKey`]: fifty workers
/// of one binary are hashed once (the hashing dominated the time to record processes).
#[derive(Default)]
pub struct ExeDigests(std::collections::HashMap<ExeKey, String>);

/// Reads one process. `max_exe` caps the bytes hashed (and kept) of its executable.
pub fn read_process(
    pid: i32,
    found_by: Vec<String>,
    users: &Users,
    memfd_dev: Option<u64>,
    max_exe: u64,
    boot_time: Option<u64>,
    digests: &mut ExeDigests,
) -> (ProcessRecord, Option<KeptExe>) {
    let mut errors = Vec::new();
    let proc_dir = match ProcDir::open(pid) {
        Ok(d) => Some(d),
        Err(e) => {
            errors.push(format!("process exited before it was read: {e}"));
            None
        }
    };
    let read_capped = |name: &str, cap: usize| match &proc_dir {
        Some(d) => d.read_capped(name, cap),
        None => Err(std::io::Error::from(Errno::SRCH)),
    };
    let readlink = |name: &str| proc_dir.as_ref().and_then(|d| d.readlink(name));
    let stat = read_capped("stat", 64 << 10)
        .ok()
        .and_then(|(b, _)| parse_stat(&b));
    let status = read_capped("status", 64 << 10)
        .ok()
        .map(|(b, _)| parse_status(&b));
    if stat.is_none() {
        errors.push(ProcessError::ExitedBeforeRead.text());
    }
    let (argv, env) = {
        let a = read_capped("cmdline", MAX_PROC_LIST_BYTES);
        let e = read_capped("environ", MAX_PROC_LIST_BYTES);
        let to_list =
            |r: std::io::Result<(Vec<u8>, u64)>, what: &str, errors: &mut Vec<String>| match r {
                Ok((mut b, _)) => {
                    let trunc = b.len() > MAX_PROC_LIST_BYTES;
                    b.truncate(MAX_PROC_LIST_BYTES);
                    capped_list(&b, trunc)
                }
                Err(e) => {
                    errors.push(format!("{what}: {e}"));
                    CappedList::default()
                }
            };
        (
            to_list(a, "cmdline", &mut errors),
            to_list(e, "environ", &mut errors),
        )
    };
    let (maps, anon_exec_maps) = match read_capped("maps", MAX_PROC_LIST_BYTES) {
        Ok((mut b, _)) => {
            let trunc = b.len() > MAX_PROC_LIST_BYTES;
            b.truncate(MAX_PROC_LIST_BYTES);
            parse_maps(&b, trunc)
        }
        Err(e) => {
            errors.push(format!("maps: {e}"));
            (CappedList::default(), 0)
        }
    };
    let mut fds = Vec::new();
    let mut fds_truncated = false;
    if let Some(numbers) = proc_dir.as_ref().and_then(|d| d.fd_numbers().ok()) {
        for fd in numbers {
            if fds.len() >= MAX_PROC_LIST_ENTRIES {
                fds_truncated = true;
                break;
            }
            if let Some(target) = readlink(&format!("fd/{fd}")) {
                fds.push(FdInfo { fd, target });
            }
        }
    }
    let mut namespaces = BTreeMap::new();
    for ns in ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"] {
        if let Some(ino) = proc_dir.as_ref().and_then(|d| d.ns_inode(ns)) {
            namespaces.insert(ns.to_string(), ino);
        }
    }
    let exe = readlink("exe");
    let mut exe_sha256 = None;
    let mut exe_size = None;
    let mut exe_deleted = false;
    let mut memfd = false;
    let mut kept = None;
    match proc_dir.as_ref().map(|d| d.open_file("exe")) {
        None => {}
        Some(Err(e)) => errors.push(format!("exe: {e}")),
        Some(Ok(mut f)) => 'exe: {
            let mut key = None;
            if let Ok(st) = rustix::fs::fstat(&f) {
                exe_deleted = st.st_nlink == 0;
                memfd = memfd_dev.is_some_and(|d| d == st.st_dev);
                exe_size = Some(st.st_size as u64);
                key = Some((
                    st.st_dev,
                    st.st_ino,
                    st.st_size,
                    st.st_mtime,
                    st.st_mtime_nsec as i64,
                    st.st_ctime,
                    st.st_ctime_nsec as i64,
                ));
            }
            let keep = exe_deleted || memfd;
            // Kept executables are always read: their content goes into the bundle.
            if let Some(k) = key.filter(|_| !keep) {
                if let Some(d) = digests.0.get(&k) {
                    exe_sha256 = Some(d.clone());
                    break 'exe;
                }
            }
            let mut spool = if keep {
                tempfile::tempfile().ok()
            } else {
                None
            };
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 64 << 10];
            let mut left = max_exe;
            let mut n_total = 0u64;
            loop {
                let want = (buf.len() as u64).min(left) as usize;
                if want == 0 {
                    break;
                }
                match f.read(&mut buf[..want]) {
                    Ok(0) => break,
                    Ok(n) => {
                        h.update(&buf[..n]);
                        if let Some(s) = &mut spool {
                            if s.write_all(&buf[..n]).is_err() {
                                spool = None;
                            }
                        }
                        left -= n as u64;
                        n_total += n as u64;
                    }
                    Err(e) => {
                        errors.push(ProcessError::ExeRead(e.to_string()).text());
                        break;
                    }
                }
            }
            let digest = hex::encode(h.finalize());
            if let Some(mut s) = spool {
                if s.rewind().is_ok() {
                    kept = Some(KeptExe {
                        sha256: digest.clone(),
                        size: n_total,
                        spool: s,
                    });
                }
            }
            if let Some(k) = key.filter(|_| !keep && n_total == exe_size.unwrap_or(0)) {
                // Only complete reads are reused (not one cut at the cap or by an error).
                digests.0.insert(k, digest.clone());
            }
            exe_sha256 = Some(digest);
        }
    }
    let cgroup = read_capped("cgroup", 64 << 10)
        .ok()
        .map(|(b, _)| String::from_utf8_lossy(&b).trim_end().to_string());
    let uid = status.as_ref().and_then(|s| s.uid).unwrap_or(u32::MAX);
    let ns_pid = status.as_ref().and_then(|s| s.ns_pid);
    let start_time = stat.as_ref().and_then(|s| start_time_of(s, boot_time));
    let rec = ProcessRecord {
        pid,
        ns_pid,
        ppid: stat.as_ref().map(|s| s.ppid).unwrap_or(0),
        uid,
        gid: status.as_ref().and_then(|s| s.gid).unwrap_or(u32::MAX),
        user: users.get(&uid).cloned(),
        start_time,
        comm: ByteText(stat.as_ref().map(|s| s.comm.clone()).unwrap_or_default()),
        argv,
        env,
        cwd: readlink("cwd"),
        exe: exe.map(|e| strip_deleted_suffix(e, exe_deleted)),
        exe_sha256,
        exe_size,
        exe_deleted,
        memfd,
        exe_member: kept.as_ref().map(|k| format!("exhibit/exe/{}", k.sha256)),
        fds,
        fds_truncated,
        maps,
        anon_exec_maps,
        memory: Vec::new(),
        cgroup,
        namespaces,
        found_by,
        errors,
    };
    (rec, kept)
}

// The kernel appends " (deleted)" to the link text of a deleted exe. Strip it only when
// fstat says the file is deleted, so a file really named "x (deleted)" keeps its name.
/// Spools the content of /proc/PID/exe (capped) for the bundle, only from the process
/// the record describes (a reused pid gives nothing).
pub fn keep_exe(rec: &ProcessRecord, max: u64) -> Option<KeptExe> {
    let f = ProcDir::reopen(rec).ok()?.open_file("exe").ok()?;
    let mut spool = tempfile::tempfile().ok()?;
    let mut h = Sha256::new();
    let mut r = f.take(max);
    let mut buf = vec![0u8; 64 << 10];
    let mut size = 0u64;
    loop {
        let n = r.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        spool.write_all(&buf[..n]).ok()?;
        size += n as u64;
    }
    spool.rewind().ok()?;
    Some(KeptExe {
        sha256: hex::encode(h.finalize()),
        size,
        spool,
    })
}

fn strip_deleted_suffix(e: ByteText, deleted: bool) -> ByteText {
    if deleted {
        if let Some(stripped) = e.0.strip_suffix(b" (deleted)") {
            return ByteText(stripped.to_vec());
        }
    }
    e
}

/// Distinct network namespaces of the processes, with one process in each.
pub fn net_namespaces(procs: &[ProcessRecord]) -> BTreeMap<u64, &ProcessRecord> {
    let mut out = BTreeMap::new();
    for p in procs {
        if let Some(ns) = p.namespaces.get("net") {
            out.entry(*ns).or_insert(p);
        }
    }
    out
}

/// Whether any process outside `members` lives in network namespace `netns`.
pub fn netns_shared(netns: u64, members: &BTreeSet<i32>) -> bool {
    if ns_inode(1, "net") == Some(netns) {
        return true;
    }
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return true;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if !members.contains(&pid) && ns_inode(pid, "net") == Some(netns) {
            return true;
        }
    }
    false
}

/// Which mappings `--memory` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryScope {
    None,
    /// Executable mappings that are anonymous or memfd-backed (code with no file).
    Exec,
    /// Every private anonymous mapping, plus the above.
    Anon,
}

/// Why a memory region or an executable was not taken: the capture's spool budget.
pub const SPOOL_BUDGET_EXCEEDED: &str = "over the capture's spool budget (--max-spool)";

/// Caps on memory capture.
#[derive(Debug, Clone, Copy)]
pub struct MemoryCaps {
    pub per_region: u64,
    pub per_process: u64,
    pub regions_left: u64,
    /// What is left of the capture's spool budget (`--max-spool`), in bytes.
    pub spool_left: u64,
}

/// A memory region spooled for the bundle.
pub struct KeptRegion {
    pub member: String,
    pub size: u64,
    pub spool: File,
}

fn wanted(scope: MemoryScope, perms: &str, path: &[u8]) -> bool {
    if matches!(
        path,
        b"[vdso]" | b"[vsyscall]" | b"[vvar]" | b"[vvar_vclock]"
    ) {
        return false;
    }
    let anon =
        path.is_empty() || path == b"[heap]" || path == b"[stack]" || path.starts_with(b"[anon:");
    let memfd = path.starts_with(b"/memfd:");
    let exec = perms.contains('x');
    match scope {
        MemoryScope::None => false,
        MemoryScope::Exec => exec && (anon || memfd),
        MemoryScope::Anon => (exec && (anon || memfd)) || (anon && perms.ends_with('p')),
    }
}

// Bytes of a memory region read at a time: the region goes to its spool file chunk by
// chunk, so the collector never holds a whole region (up to 64 MiB) in memory.
const REGION_CHUNK: usize = 1 << 20;

// Copies `len` bytes at `start` of /proc/PID/mem to a spool file, hashing them.
fn copy_region(mem: &mut File, start: u64, len: u64) -> Result<(File, String), String> {
    use std::io::SeekFrom;
    let read_err =
        |e: std::io::Error| format!("read failed (region changed or process exited?): {e}");
    mem.seek(SeekFrom::Start(start)).map_err(read_err)?;
    let mut spool = tempfile::tempfile().map_err(|e| format!("spooling: {e}"))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; REGION_CHUNK.min(len as usize)];
    let mut left = len;
    while left > 0 {
        let n = (left as usize).min(buf.len());
        mem.read_exact(&mut buf[..n]).map_err(read_err)?;
        h.update(&buf[..n]);
        spool
            .write_all(&buf[..n])
            .map_err(|e| format!("spooling: {e}"))?;
        left -= n as u64;
    }
    spool.rewind().map_err(|e| format!("spooling: {e}"))?;
    Ok((spool, hex::encode(h.finalize())))
}

/// Reads the wanted regions of `rec` through /proc/PID/mem without stopping the
/// process; unreadable or vanished regions are recorded with an error, never fatal.
pub fn read_memory(
    rec: &mut ProcessRecord,
    scope: MemoryScope,
    caps: &mut MemoryCaps,
) -> Vec<KeptRegion> {
    use exhibit_common::records::MemoryRegion;
    let mut kept = Vec::new();
    if scope == MemoryScope::None {
        return kept;
    }
    let mut mem = match ProcDir::reopen(rec).and_then(|d| d.open_file("mem")) {
        Ok(f) => Some(f),
        Err(e) => {
            rec.errors.push(ProcessError::Memory(e.to_string()).text());
            None
        }
    };
    let mut taken = 0u64;
    for line in &rec.maps.items {
        let Some(MapsLine {
            start,
            end,
            perms,
            path,
        }) = parse_maps_line(&line.0)
        else {
            continue;
        };
        if !wanted(scope, perms, path) {
            continue;
        }
        let mut region = MemoryRegion {
            start,
            end,
            perms: perms.to_string(),
            pathname: ByteText(path.to_vec()),
            member: None,
            sha256: None,
            size: end.saturating_sub(start),
            error: None,
        };
        let len = region.size.min(caps.per_region);
        if caps.regions_left == 0 {
            region.error = Some("over the bundle's memory-region limit".into());
        } else if taken + len > caps.per_process {
            region.error = Some("over the per-process memory cap".into());
        } else if len > caps.spool_left {
            region.error = Some(SPOOL_BUDGET_EXCEEDED.into());
        } else if !perms.starts_with('r') {
            region.error = Some("mapping is not readable".into());
        } else if let Some(m) = mem.as_mut() {
            match copy_region(m, start, len) {
                Ok((spool, digest)) => {
                    let member = format!("exhibit/memory/{}/{start:x}-{end:x}.bin", rec.pid);
                    region.sha256 = Some(digest);
                    region.member = Some(member.clone());
                    if len < region.size {
                        region.error = Some(format!("truncated to {len} bytes"));
                    }
                    taken += len;
                    caps.regions_left -= 1;
                    caps.spool_left -= len;
                    kept.push(KeptRegion {
                        member,
                        size: len,
                        spool,
                    });
                }
                Err(e) => region.error = Some(e),
            }
        } else {
            region.error = Some("/proc/PID/mem unreadable".into());
        }
        rec.memory.push(region);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_suffix_is_stripped_only_when_fstat_says_deleted() {
        let forged = ByteText::from("/tmp/x (deleted)");
        assert_eq!(strip_deleted_suffix(forged.clone(), false), forged);
        assert_eq!(strip_deleted_suffix(forged, true).as_bytes(), b"/tmp/x");
    }

    #[test]
    fn regions_are_copied_in_chunks_and_unreadable_ones_are_recorded_not_fatal() {
        use std::io::Read as _;
        let me = std::process::id() as i32;
        // Allocated before the maps are read: an allocation this large is its own mmap.
        let own = vec![0x5au8; 3 * REGION_CHUNK];
        let at = own.as_ptr() as u64;
        let (mut rec, _) = read_process(
            me,
            vec![],
            &Users::default(),
            None,
            0,
            procfs::boot_time_secs().ok(),
            &mut ExeDigests::default(),
        );
        // A range larger than one chunk inside memory this test owns (the kernel may
        // merge its mapping with neighbours, such as other test threads' stacks, that
        // can be unmapped mid-test: only the allocation's own whole pages are read),
        // and a range that is never mapped (page 1).
        let page = 4096u64;
        let start = at.div_ceil(page) * page;
        let end = (at + own.len() as u64) / page * page;
        assert!(end - start > REGION_CHUNK as u64);
        let big = ByteText::from(format!("{start:x}-{end:x} rw-p 00000000 00:00 0").as_str());
        rec.maps.items = vec![
            big.clone(),
            ByteText::from("1000-2000 rw-p 00000000 00:00 0"),
        ];
        let mut caps = MemoryCaps {
            per_region: 64 << 20,
            per_process: 256 << 20,
            regions_left: 10,
            spool_left: u64::MAX,
        };
        let kept = read_memory(&mut rec, MemoryScope::Anon, &mut caps);
        assert_eq!(own[0], 0x5a, "the mapping stays alive while it is read");
        assert_eq!(kept.len(), 1, "{:?}", rec.memory);
        let mut spooled = Vec::new();
        kept[0]
            .spool
            .try_clone()
            .unwrap()
            .read_to_end(&mut spooled)
            .unwrap();
        let region = &rec.memory[0];
        assert_eq!(spooled.len() as u64, region.size);
        assert!(
            spooled.iter().all(|&b| b == 0x5a),
            "the bytes of the allocation"
        );
        assert_eq!(kept[0].size, region.size);
        assert_eq!(
            region.sha256.as_deref(),
            Some(hex::encode(Sha256::digest(&spooled)).as_str())
        );
        assert_eq!(caps.regions_left, 9);
        let gone = &rec.memory[1];
        assert!(gone.member.is_none() && gone.sha256.is_none(), "{gone:?}");
        assert!(
            gone.error
                .as_deref()
                .is_some_and(|e| e.starts_with("read failed")),
            "{gone:?}"
        );

        // A process that is gone before its memory is read: recorded on the record.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        rec.pid = child.id() as i32;
        rec.memory.clear();
        let kept = read_memory(&mut rec, MemoryScope::Anon, &mut caps);
        assert!(kept.is_empty());
        assert!(
            rec.errors.iter().any(|e| e.starts_with("memory: ")),
            "{:?}",
            rec.errors
        );
        assert!(rec
            .memory
            .iter()
            .all(|r| r.member.is_none() && r.error.is_some()));
    }

    #[test]
    fn memory_scope_selects_code_without_a_file() {
        assert!(wanted(MemoryScope::Exec, "r-xp", b""));
        assert!(wanted(
            MemoryScope::Exec,
            "r-xs",
            b"/memfd:payload (deleted)"
        ));
        assert!(!wanted(MemoryScope::Exec, "r-xp", b"/bin/busybox"));
        assert!(!wanted(MemoryScope::Exec, "r-xp", b"[vdso]"));
        assert!(!wanted(MemoryScope::Exec, "rw-p", b"[heap]"));
        assert!(wanted(MemoryScope::Anon, "rw-p", b"[heap]"));
        assert!(!wanted(MemoryScope::None, "r-xp", b""));
    }

    #[test]
    fn process_errors_read_back_as_what_was_recorded() {
        for e in [
            ProcessError::ExitedBeforeRead,
            ProcessError::ExeRead("Input/output error".into()),
            ProcessError::Memory("Permission denied".into()),
            ProcessError::Other("cmdline: No such process".into()),
        ] {
            assert_eq!(ProcessError::of(&e.text()), e);
        }
    }

    #[test]
    fn a_later_phase_reaches_only_the_process_that_was_recorded() {
        let boot = procfs::boot_time_secs().ok();
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let (rec, _) = read_process(
            pid,
            Vec::new(),
            &Users::default(),
            None,
            0,
            boot,
            &mut ExeDigests::default(),
        );
        assert!(rec.start_time.is_some() && rec.errors.is_empty(), "{rec:?}");
        assert!(ProcDir::reopen(&rec).is_ok());
        // The same pid with another start time is another process (a reused pid): no
        // executable, no memory, no sockets are taken from it.
        let mut reused = rec.clone();
        reused.start_time = Some("2000-01-01T00:00:00.000000000Z".into());
        let err = ProcDir::reopen(&reused)
            .err()
            .expect("a reused pid was accepted");
        assert!(err.to_string().contains("exited"), "{err}");
        assert!(keep_exe(&reused, 1 << 20).is_none());
        let mut caps = MemoryCaps {
            per_region: 1 << 20,
            per_process: 1 << 20,
            regions_left: 10,
            spool_left: u64::MAX,
        };
        let mut anon = reused.clone();
        assert!(read_memory(&mut anon, MemoryScope::Anon, &mut caps).is_empty());
        assert!(
            anon.errors.iter().any(|e| e.contains("exited")),
            "{:?}",
            anon.errors
        );
        // A directory opened before the process exited never shows another process.
        let dir = ProcDir::open(pid).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(dir.read_capped("stat", 1 << 10).is_err());
        assert!(dir.readlink("exe").is_none());
        assert!(ProcDir::reopen(&rec).is_err());
    }

    #[test]
    fn a_process_name_with_invalid_utf8_costs_no_field() {
        // What the kernel printed for a process that ran a file named "\xff)x (":
        // procfs refused the status file, and uid, gid and NSpid were lost.
        let status = b"Name:\t\xff)x (\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t1000\t1000\t1000\t1000\nGid:\t33\t33\t33\t33\nNSpid:\t19587\t7\n";
        assert_eq!(
            parse_status(status),
            StatusFields {
                uid: Some(1000),
                gid: Some(33),
                ns_pid: Some(7)
            }
        );
        let mut stat =
            b"19587 (\xff)x () S 19586 19580 30991 0 -1 4194304 93 0 0 0 0 0 0 0 20 0 1 0 "
                .to_vec();
        stat.extend_from_slice(
            b"1234567 2539520 226 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n",
        );
        assert_eq!(
            parse_stat(&stat),
            Some(StatFields {
                comm: b"\xff)x (".to_vec(),
                ppid: 19586,
                starttime: 1234567
            })
        );
        for bad in [&b"1 (x)"[..], b")(", b"", b"1 (x) S", b"1 (x) S 0 1 2"] {
            assert_eq!(parse_stat(bad), None);
        }
    }

    #[test]
    fn maps_lines_and_anonymous_code() {
        let maps = b"00400000-00452000 r-xp 00000000 08:02 173521      /usr/bin/a b\n7f00-7f10 rwxp 00000000 00:00 0 \n7f20-7f30 r-xs 00000000 00:01 3   /memfd:x (deleted)\nnot a line\n";
        let (list, anon) = parse_maps(maps, false);
        assert_eq!((list.items.len(), anon), (4, 2));
        let l = parse_maps_line(&list.items[0].0).unwrap();
        assert_eq!(
            (l.start, l.end, l.perms, l.path),
            (0x400000, 0x452000, "r-xp", &b"/usr/bin/a b"[..])
        );
        assert!(parse_maps_line(b"not a line").is_none());
    }

    #[test]
    fn cgroup_paths_stay_under_sys_fs_cgroup() {
        let dirs = parse_cgroup(b"0::/system.slice/docker-1.scope\n5:pids:/docker/1\n4:memory:/docker/1\n0::/../../etc\nbad\n");
        assert_eq!(
            dirs,
            vec![
                PathBuf::from("/sys/fs/cgroup/system.slice/docker-1.scope"),
                PathBuf::from("/sys/fs/cgroup/pids/docker/1")
            ]
        );
    }

    #[test]
    fn passwd_maps_uids_to_names() {
        let u = parse_passwd(
            b"root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/www:/bin/false\nbad line\n",
        );
        assert_eq!(u.get(&0).map(String::as_str), Some("root"));
        assert_eq!(u.get(&33).map(String::as_str), Some("www"));
    }
}
