//! Everything the collector reads from the host itself, runtime-independent: processes
//! and sockets from /proc, the overlay upper dir and mount contents by directory fd,
//! and the host's identity.

pub mod procs;
pub mod sockets;
pub mod walk;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use serde_json::json;
use std::io::Read;
use std::os::fd::OwnedFd;

/// Opens a file of the container's filesystem through /proc/PID/root, resolving every
/// symlink inside that root (RESOLVE_IN_ROOT), never out of it. Capped read.
pub fn read_in_container(pid: i32, path: &str, cap: u64) -> Option<Vec<u8>> {
    let root = open_container_root(pid).ok()?;
    let fd = rustix::fs::openat2(
        &root,
        path.trim_start_matches('/'),
        OFlags::RDONLY | OFlags::NOATIME | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV,
    )
    .ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    if st.st_mode & 0o170000 != 0o100000 {
        return None;
    }
    let mut out = Vec::new();
    std::fs::File::from(fd)
        .take(cap)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

/// Whether `path` names a regular file in the process's mount namespace (through
/// /proc/PID/root with RESOLVE_IN_ROOT; nothing is read).
pub fn exists_in_container(pid: i32, path: &str) -> bool {
    let Ok(root) = open_container_root(pid) else {
        return true;
    };
    rustix::fs::openat2(
        &root,
        path.trim_start_matches('/'),
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .is_ok()
}

/// The container's root directory as seen through its init process. The process is
/// pinned by a pidfd taken first and checked still alive after its root was opened, so
/// a recycled pid cannot hand us another process's root.
pub fn open_container_root(pid: i32) -> rustix::io::Result<OwnedFd> {
    let raw = rustix::process::Pid::from_raw(pid).ok_or(rustix::io::Errno::SRCH)?;
    let pidfd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty())?;
    let root = rustix::fs::open(
        format!("/proc/{pid}/root"),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    // A pidfd becomes readable when its process exits.
    let mut fds = [rustix::event::PollFd::new(
        &pidfd,
        rustix::event::PollFlags::IN,
    )];
    let zero = rustix::fs::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    if rustix::event::poll(&mut fds, Some(&zero))? > 0 {
        return Err(rustix::io::Errno::SRCH);
    }
    Ok(root)
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// sha256 of the running collector binary (hashed once per run: `--all` captures many).
pub fn own_binary_sha256() -> Option<String> {
    static DIGEST: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    DIGEST
        .get_or_init(|| {
            let f = std::fs::File::open("/proc/self/exe").ok()?;
            exhibit_common::hashing::sha256_reader(f)
                .ok()
                .map(|(d, _)| d)
        })
        .clone()
}

// The host's view, through pid 1, when the collector runs in a container of its own
// (a Kubernetes Job with hostPID): its own /etc and UTS name would be the pod's.
fn host_hostname(own: String) -> String {
    let ours = procs::ns_inode(std::process::id() as i32, "uts");
    if ours.is_some() && ours != procs::ns_inode(1, "uts") {
        if let Some(h) = read_trim("/proc/1/root/etc/hostname").filter(|h| !h.is_empty()) {
            return h;
        }
    }
    own
}

/// Content of exhibit/host.json.
pub fn identity(runtime: &str, runtime_version: &str) -> serde_json::Value {
    let uname = rustix::system::uname();
    json!({
        "hostname": host_hostname(uname.nodename().to_string_lossy().into_owned()),
        "machine_id": read_trim("/proc/1/root/etc/machine-id").or_else(|| read_trim("/etc/machine-id")),
        "boot_id": read_trim("/proc/sys/kernel/random/boot_id"),
        "kernel": format!("{} {} {}", uname.sysname().to_string_lossy(), uname.release().to_string_lossy(), uname.version().to_string_lossy()),
        "arch": uname.machine().to_string_lossy(),
        "runtime": {"name": runtime, "version": runtime_version},
        "tool": {
            "name": "exhibit-collect",
            "version": env!("CARGO_PKG_VERSION"),
            "binary_sha256": own_binary_sha256(),
        },
    })
}
