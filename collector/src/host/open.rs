//! The one place the collector opens, stats or reads a path the container controls:
//! the overlay upper dir and its lower layers, mounts reached through /proc/PID/root,
//! runtime files (hosts, hostname, resolv.conf) and files read inside the container
//! (/etc/passwd).

use exhibit_common::records::FileType;
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Statx, StatxFlags};
use rustix::io::Errno;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};

/// statx of `name` in `dir`, not following a symlink.
pub fn stat_at(dir: impl AsFd, name: impl rustix::path::Arg) -> Result<Statx, Errno> {
    rustix::fs::statx(
        dir,
        name,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS | StatxFlags::BTIME,
    )
}

/// statx of an open handle.
pub fn stat_handle(fd: impl AsFd) -> Result<Statx, Errno> {
    rustix::fs::statx(
        fd,
        "",
        AtFlags::EMPTY_PATH,
        StatxFlags::BASIC_STATS | StatxFlags::BTIME,
    )
}

/// Opens the directory `name` in `dir` without following a symlink.
pub fn open_dir_at(dir: impl AsFd, name: impl rustix::path::Arg) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Opens `name` in `dir` for reading, without following a symlink, `O_NOATIME`,
/// `O_NONBLOCK`.
pub fn open_file_at(dir: impl AsFd, name: impl rustix::path::Arg) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOATIME | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Opens `name` in `dir` for reading, without following a symlink, `O_NOATIME`.
pub fn open_runtime_file_at(
    dir: impl AsFd,
    name: impl rustix::path::Arg,
) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOATIME | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Opens a host directory (not container-controlled) by path.
pub fn open_host_dir(path: impl rustix::path::Arg) -> Result<OwnedFd, Errno> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// The runtime's log file on the host, opened without following a symlink; the size is
/// fixed at open (the file keeps growing) and capped at the entry limit.
pub fn open_log_file(path: &std::path::Path) -> std::io::Result<(File, u64)> {
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
        File::from(fd),
        (st.st_size as u64).min(exhibit_common::limits::MAX_ENTRY_SIZE),
    ))
}

/// Looks `rel` up beneath a lower layer's root without symlinks; `O_PATH`.
pub fn find_beneath(root: impl AsFd, rel: &[u8]) -> Result<OwnedFd, Errno> {
    rustix::fs::openat2(
        root,
        rel,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
}

/// Opens `rel` beneath a lower layer's root without symlinks, for reading.
pub fn open_file_beneath(root: impl AsFd, rel: &[u8]) -> Result<File, Errno> {
    rustix::fs::openat2(
        root,
        rel,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOATIME | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .map(File::from)
}

/// Opens the directory `rel` beneath `root`, one component at a time with
/// `O_NOFOLLOW|O_DIRECTORY`; `.` and `..` components are refused.
pub fn open_dir_beneath(root: impl AsFd, rel: &[u8]) -> Result<OwnedFd, Errno> {
    let mut cur = rustix::io::fcntl_dupfd_cloexec(root, 0)?;
    for comp in rel.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        if comp == b".." || comp == b"." {
            return Err(Errno::INVAL);
        }
        cur = open_dir_at(&cur, comp)?;
    }
    Ok(cur)
}

/// Opens a file of the container's filesystem through /proc/PID/root, resolving every
/// symlink inside that root (RESOLVE_IN_ROOT), never out of it. Capped read.
pub fn read_in_container(pid: i32, path: &str, cap: u64) -> Option<Vec<u8>> {
    let root = container_root(pid).ok()?;
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
    File::from(fd).take(cap).read_to_end(&mut out).ok()?;
    Some(out)
}

/// Whether `path` names a regular file in the process's mount namespace (through
/// /proc/PID/root with RESOLVE_IN_ROOT; nothing is read).
pub fn exists_in_container(pid: i32, path: &str) -> bool {
    let Ok(root) = container_root(pid) else {
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
pub fn container_root(pid: i32) -> Result<OwnedFd, Errno> {
    let raw = rustix::process::Pid::from_raw(pid).ok_or(Errno::SRCH)?;
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
        return Err(Errno::SRCH);
    }
    Ok(root)
}

/// The mount id of an open handle (`STATX_MNT_ID`, the first field of mountinfo).
pub fn mount_id(fd: impl AsFd) -> Result<u64, Errno> {
    let st = rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)?;
    Ok(st.stx_mnt_id)
}

/// Whether the open `fd` and the `statx` taken before it name the same inode of the
/// same type.
pub fn same_inode(fd: impl AsFd, st: &Statx) -> bool {
    match rustix::fs::fstat(fd) {
        Ok(s) => {
            s.st_dev == makedev(st.stx_dev_major, st.stx_dev_minor)
                && s.st_ino == st.stx_ino
                && (s.st_mode & 0o170000) == (st.stx_mode as u32 & 0o170000)
        }
        Err(_) => false,
    }
}

/// The device number of a statx's device fields, as `st_dev`.
pub fn makedev(major: u32, minor: u32) -> u64 {
    rustix::fs::makedev(major, minor)
}

/// File type from st_mode.
pub fn file_type(mode: u32) -> FileType {
    match mode & 0o170000 {
        0o040000 => FileType::Dir,
        0o120000 => FileType::Symlink,
        0o010000 => FileType::Fifo,
        0o140000 => FileType::Socket,
        0o020000 => FileType::Char,
        0o060000 => FileType::Block,
        _ => FileType::File,
    }
}
