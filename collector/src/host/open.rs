//! The one place the collector opens, stats or reads a path the container controls:
//! the overlay upper dir and its lower layers, mounts reached through /proc/PID/root,
//! runtime files (hosts, hostname, resolv.conf) and files read inside the container
//! (/etc/passwd).
//!
//! Every name is first *pinned*: opened with `O_PATH|O_NOFOLLOW` (the kernel calls no
//! driver and follows no symlink for that) and stat'ed through the handle, so the type
//! and identity describe the very inode the handle holds. Only a pinned regular file is
//! then reopened for reading, through the handle (`/proc/self/fd/N`), so a FIFO or a
//! device swapped in after the stat is never opened: the reopen reaches the pinned
//! inode or nothing. Directories are reopened the same way. Paths of several components
//! are resolved with `openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS|
//! RESOLVE_NO_XDEV)` or one component at a time with `O_NOFOLLOW`, never following a
//! symlink the container planted.

use exhibit_common::records::FileType;
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Statx, StatxFlags};
use rustix::io::Errno;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// How a path of several components is resolved beneath a root: never through a
/// symlink, a magic link or onto another mount.
const RESOLVE_STRICT: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

const PIN_FLAGS: OFlags = OFlags::PATH.union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

/// Why a pinned entry was not opened for reading.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    /// The entry is not of the type asked for; it was not opened.
    #[error("not a {wanted}: {found}")]
    WrongType {
        wanted: &'static str,
        found: &'static str,
    },
    /// The reopened inode is not the pinned one (cannot happen through a handle; kept as
    /// the identity check the design promises).
    #[error("changed during read")]
    Changed,
    /// A system call failed.
    #[error("{0}")]
    Sys(#[from] Errno),
}

impl From<OpenError> for std::io::Error {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Sys(errno) => errno.into(),
            other => std::io::Error::other(other.to_string()),
        }
    }
}

/// One inode of the container's filesystem, held by an `O_PATH` handle, with the
/// metadata statx gave for that handle. Nothing was opened for I/O.
#[derive(Debug)]
pub struct Pinned {
    fd: OwnedFd,
    st: Statx,
}

impl Pinned {
    /// Pins `name` in the directory `dir` (one component, symlinks not followed).
    pub fn at(dir: impl AsFd, name: impl rustix::path::Arg) -> Result<Pinned, Errno> {
        let fd = rustix::fs::openat(dir, name, PIN_FLAGS, Mode::empty())?;
        Pinned::from_handle(fd)
    }

    /// Pins `rel` beneath `root`, resolved without symlinks, magic links or mount
    /// crossings (`..` may not leave `root`).
    pub fn beneath(root: impl AsFd, rel: &[u8]) -> Result<Pinned, Errno> {
        let fd = rustix::fs::openat2(root, rel, PIN_FLAGS, Mode::empty(), RESOLVE_STRICT)?;
        Pinned::from_handle(fd)
    }

    fn from_handle(fd: OwnedFd) -> Result<Pinned, Errno> {
        let st = stat_handle(&fd)?;
        Ok(Pinned { fd, st })
    }

    /// The metadata of the pinned inode (taken before anything was opened for reading).
    pub fn stat(&self) -> &Statx {
        &self.st
    }

    /// The pinned inode's type.
    pub fn file_type(&self) -> FileType {
        file_type(self.st.stx_mode as u32)
    }

    /// Opens the pinned inode for reading if, and only if, it is a regular file:
    /// `O_NOATIME` (atimes stay as they were) and `O_NONBLOCK`.
    pub fn open_regular(&self) -> Result<File, OpenError> {
        self.want(FileType::File, "regular file")?;
        let fd = reopen(
            &self.fd,
            OFlags::RDONLY | OFlags::NOATIME | OFlags::NONBLOCK | OFlags::CLOEXEC,
        )?;
        self.check_same(&fd)?;
        Ok(File::from(fd))
    }

    /// Opens the pinned inode as a directory (to list it or to walk on from it).
    pub fn open_dir(&self) -> Result<OwnedFd, OpenError> {
        self.want(FileType::Dir, "directory")?;
        let fd = rustix::fs::openat(
            &self.fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        self.check_same(&fd)?;
        Ok(fd)
    }

    /// The target of a pinned symlink, read through the handle.
    pub fn read_link(&self) -> Result<Vec<u8>, OpenError> {
        self.want(FileType::Symlink, "symlink")?;
        Ok(rustix::fs::readlinkat(&self.fd, "", Vec::new())?.into_bytes())
    }

    fn want(&self, wanted: FileType, name: &'static str) -> Result<(), OpenError> {
        let found = self.file_type();
        if found == wanted {
            Ok(())
        } else {
            Err(OpenError::WrongType {
                wanted: name,
                found: type_name(found),
            })
        }
    }

    fn check_same(&self, fd: &OwnedFd) -> Result<(), OpenError> {
        if same_inode(fd, &self.st) {
            Ok(())
        } else {
            Err(OpenError::Changed)
        }
    }
}

// Reopens an O_PATH handle through procfs: the magic link names exactly the pinned
// inode, whatever has been renamed over its old name since.
fn reopen(handle: &OwnedFd, flags: OFlags) -> Result<OwnedFd, Errno> {
    let path = format!("/proc/self/fd/{}", handle.as_raw_fd());
    rustix::fs::open(path, flags, Mode::empty())
}

/// statx of an open handle (no path, no symlink followed).
pub fn stat_handle(fd: impl AsFd) -> Result<Statx, Errno> {
    rustix::fs::statx(
        fd,
        "",
        AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS | StatxFlags::BTIME,
    )
}

/// Opens the directory `rel` beneath `root`, one component at a time with
/// `O_NOFOLLOW|O_DIRECTORY`; `.` and `..` components are refused.
pub fn open_dir_beneath(root: impl AsFd, rel: &[u8]) -> Result<OwnedFd, Errno> {
    let mut cur = rustix::io::fcntl_dupfd_cloexec(root, 0)?;
    for comp in rel.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        if comp == b".." || comp == b"." {
            return Err(Errno::INVAL);
        }
        cur = rustix::fs::openat(
            &cur,
            comp,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
    }
    Ok(cur)
}

/// Reads at most `cap` bytes of the regular file `rel` beneath `root` (resolved
/// strictly, pinned, reopened only if regular).
pub fn read_regular_beneath(root: impl AsFd, rel: &[u8], cap: u64) -> Result<Vec<u8>, OpenError> {
    let file = Pinned::beneath(root, rel)?.open_regular()?;
    let mut out = Vec::new();
    file.take(cap)
        .read_to_end(&mut out)
        .map_err(|e| OpenError::Sys(Errno::from_io_error(&e).unwrap_or(Errno::IO)))?;
    Ok(out)
}

/// Opens a host directory (the upper dir, a lower layer: paths the runtime gave, not the
/// container) by path.
pub fn open_host_dir(path: impl rustix::path::Arg) -> Result<OwnedFd, Errno> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// The runtime's log file on the host (its content is the container's), pinned without
/// following a symlink and opened only if it is a regular file; the size is fixed at
/// open (the file keeps growing) and capped at the entry limit.
pub fn open_log_file(path: &std::path::Path) -> std::io::Result<(File, u64)> {
    let fd = rustix::fs::open(path, PIN_FLAGS, Mode::empty())?;
    let pinned = Pinned::from_handle(fd)?;
    let file = pinned.open_regular()?;
    Ok((
        file,
        pinned
            .stat()
            .stx_size
            .min(exhibit_common::limits::MAX_ENTRY_SIZE),
    ))
}

/// Reads at most `cap` bytes of the regular file `path` of the container's filesystem,
/// through /proc/PID/root (pinned by a pidfd), resolved strictly beneath it.
pub fn read_in_container(pid: i32, path: &str, cap: u64) -> Option<Vec<u8>> {
    let root = container_root(pid).ok()?;
    read_regular_beneath(&root, path.trim_start_matches('/').as_bytes(), cap).ok()
}

/// Whether `path` names a regular file in the process's mount namespace (through
/// /proc/PID/root, resolved strictly; nothing is opened for reading). A process whose
/// root cannot be opened counts as "exists" (nothing to keep from it).
pub fn exists_in_container(pid: i32, path: &str) -> bool {
    let Ok(root) = container_root(pid) else {
        return true;
    };
    Pinned::beneath(&root, path.trim_start_matches('/').as_bytes())
        .is_ok_and(|p| p.file_type() == FileType::File)
}

/// Opens the mount at `dest` of the container whose init process is `pid` (its root
/// `root`), one component at a time without following symlinks, and checks that the
/// directory reached is the very mount the container's mount table lists at `dest`:
/// a path component renamed by the container cannot redirect the walk to another
/// mount or to a plain directory.
pub fn open_mount(root: impl AsFd, pid: i32, dest: &str) -> std::io::Result<OwnedFd> {
    let dir = open_dir_beneath(root, dest.trim_start_matches('/').as_bytes())?;
    let mountinfo = std::fs::read(format!("/proc/{pid}/mountinfo"))?;
    let Some(expected) = mount_id_at(&mountinfo, dest.as_bytes()) else {
        return Err(std::io::Error::other(format!(
            "no mount at {dest} in the container's mount table"
        )));
    };
    let found = mount_id(&dir)?;
    if found != expected {
        return Err(std::io::Error::other(format!(
            "reached mount {found}, the container's mount table lists mount {expected} at \
             that path (a path component was renamed?)"
        )));
    }
    Ok(dir)
}

/// The id of the mount at `point` in a mountinfo text (the last one listed there: later
/// mounts cover earlier ones). Mount points are octal-escaped (`\040` for a space).
pub fn mount_id_at(mountinfo: &[u8], point: &[u8]) -> Option<u64> {
    let mut found = None;
    for line in mountinfo.split(|&b| b == b'\n') {
        let mut fields = line.split(|&b| b == b' ');
        let id = fields
            .next()
            .and_then(|f| std::str::from_utf8(f).ok()?.parse().ok());
        let mnt = fields.nth(3);
        if let (Some(id), Some(mnt)) = (id, mnt) {
            if unescape_octal(mnt) == point {
                found = Some(id);
            }
        }
    }
    found
}

fn unescape_octal(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\'
            && i + 3 < s.len()
            && s[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (s[i + 1] - b'0') as u32 * 64
                + (s[i + 2] - b'0') as u32 * 8
                + (s[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// The container's root directory as seen through its init process. The process is
/// pinned by a pidfd taken first and checked still alive after its root was opened, so
/// a recycled pid cannot hand us another process's root.
pub fn container_root(pid: i32) -> Result<OwnedFd, Errno> {
    opened_while_alive(pid, || {
        rustix::fs::open(
            format!("/proc/{pid}/root"),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    })
}

/// Runs `open` (something under /proc/PID) between taking a pidfd of `pid` and checking
/// that the process is still alive: what it opened belongs to that process, never to
/// one that was given the same pid number after it exited.
pub fn opened_while_alive<T>(
    pid: i32,
    open: impl FnOnce() -> Result<T, Errno>,
) -> Result<T, Errno> {
    let raw = rustix::process::Pid::from_raw(pid).ok_or(Errno::SRCH)?;
    let pidfd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty())?;
    let opened = open()?;
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
    Ok(opened)
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

fn type_name(t: FileType) -> &'static str {
    match t {
        FileType::File => "regular file",
        FileType::Dir => "directory",
        FileType::Symlink => "symlink",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        FileType::Char => "character device",
        FileType::Block => "block device",
        FileType::Whiteout => "whiteout",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, OwnedFd) {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::fs::write(t.path().join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
        let root = rustix::fs::open(
            t.path(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        (t, root)
    }

    fn mkfifo(p: &std::path::Path) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            p,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
    }

    // A FIFO that nobody has open for reading refuses a non-blocking writer with ENXIO:
    // proof that the collector did not open it.
    fn fifo_has_no_reader(p: &std::path::Path) -> bool {
        matches!(
            rustix::fs::open(p, OFlags::WRONLY | OFlags::NONBLOCK, Mode::empty()),
            Err(Errno::NXIO)
        )
    }

    #[test]
    fn a_regular_file_is_read_and_its_identity_is_the_stat_taken_before() {
        let (_t, root) = tree();
        let p = Pinned::beneath(&root, b"etc/passwd").unwrap();
        assert_eq!(p.file_type(), FileType::File);
        let mut s = String::new();
        p.open_regular().unwrap().read_to_string(&mut s).unwrap();
        assert!(s.starts_with("root:x:0:0"));
        assert_eq!(
            read_regular_beneath(&root, b"etc/passwd", 4).unwrap(),
            b"root"
        );
    }

    #[test]
    fn symlinks_are_pinned_as_symlinks_and_never_followed() {
        let (t, root) = tree();
        let outside = tempfile::NamedTempFile::new().unwrap();
        symlink(outside.path(), t.path().join("etc/shadow")).unwrap();
        symlink("/etc", t.path().join("link")).unwrap();
        // The last component: the link itself is pinned, it is not a file to read.
        let p = Pinned::beneath(&root, b"etc/shadow").unwrap();
        assert_eq!(p.file_type(), FileType::Symlink);
        assert_eq!(
            p.read_link().unwrap(),
            outside.path().as_os_str().as_encoded_bytes()
        );
        assert!(matches!(
            p.open_regular(),
            Err(OpenError::WrongType {
                found: "symlink",
                ..
            })
        ));
        // A symlink in the middle of the path: refused, never resolved.
        assert_eq!(
            Pinned::beneath(&root, b"link/passwd").unwrap_err(),
            Errno::LOOP
        );
        assert_eq!(open_dir_beneath(&root, b"link").unwrap_err(), Errno::NOTDIR);
        // Absolute paths and `..` cannot leave the root.
        assert_eq!(
            Pinned::beneath(&root, b"/etc/passwd").unwrap_err(),
            Errno::XDEV
        );
        assert_eq!(Pinned::beneath(&root, b"../x").unwrap_err(), Errno::XDEV);
        assert_eq!(
            open_dir_beneath(&root, b"etc/..").unwrap_err(),
            Errno::INVAL
        );
    }

    #[test]
    fn a_fifo_is_pinned_but_never_opened() {
        let (t, root) = tree();
        let fifo = t.path().join("etc/hosts");
        mkfifo(&fifo);
        let p = Pinned::beneath(&root, b"etc/hosts").unwrap();
        assert_eq!(p.file_type(), FileType::Fifo);
        assert!(matches!(
            p.open_regular(),
            Err(OpenError::WrongType { found: "fifo", .. })
        ));
        assert!(matches!(
            read_regular_beneath(&root, b"etc/hosts", 100),
            Err(OpenError::WrongType { .. })
        ));
        assert!(fifo_has_no_reader(&fifo), "the collector opened the fifo");
    }

    #[test]
    fn a_device_node_is_pinned_but_never_opened() {
        let (t, root) = tree();
        // `rm /etc/passwd; mknod /etc/passwd c 1 3` inside a container.
        std::fs::remove_file(t.path().join("etc/passwd")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            t.path().join("etc/passwd"),
            rustix::fs::FileType::CharacterDevice,
            Mode::from_raw_mode(0o600),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
        let p = Pinned::at(open_dir_beneath(&root, b"etc").unwrap(), "passwd").unwrap();
        assert_eq!(p.file_type(), FileType::Char);
        assert_eq!(
            p.open_regular().unwrap_err(),
            OpenError::WrongType {
                wanted: "regular file",
                found: "character device"
            }
        );
        assert!(p.open_dir().is_err());
    }

    fn exchange(dir: &OwnedFd, a: &str, b: &str) {
        rustix::fs::renameat_with(dir, a, dir, b, rustix::fs::RenameFlags::EXCHANGE).unwrap();
    }

    #[test]
    fn an_inode_swapped_in_after_the_stat_is_not_what_gets_opened() {
        let (t, root) = tree();
        let etc = open_dir_beneath(&root, b"etc").unwrap();
        let fifo = t.path().join("etc/swap");
        mkfifo(&fifo);
        // Pinned as the regular file...
        let p = Pinned::at(&etc, "passwd").unwrap();
        assert_eq!(p.file_type(), FileType::File);
        // ...then the container exchanges it with a FIFO (renameat2 RENAME_EXCHANGE).
        exchange(&etc, "passwd", "swap");
        // The reopen reaches the pinned regular file, never the FIFO now at its name.
        let mut s = String::new();
        p.open_regular().unwrap().read_to_string(&mut s).unwrap();
        assert!(s.starts_with("root:x"));
        assert!(fifo_has_no_reader(&t.path().join("etc/passwd")));
        // And a FIFO pinned before the swap stays a FIFO: refused, not opened.
        let q = Pinned::at(&etc, "passwd").unwrap();
        exchange(&etc, "passwd", "swap");
        assert!(q.open_regular().is_err());
        assert!(fifo_has_no_reader(&t.path().join("etc/swap")));
    }

    #[test]
    fn directories_are_reopened_through_the_handle() {
        let (_t, root) = tree();
        let p = Pinned::beneath(&root, b"etc").unwrap();
        let dir = p.open_dir().unwrap();
        assert!(Pinned::at(&dir, "passwd").is_ok());
        assert!(matches!(
            Pinned::beneath(&root, b"etc/passwd").unwrap().open_dir(),
            Err(OpenError::WrongType { .. })
        ));
    }

    #[test]
    fn the_mount_id_of_a_handle_is_that_of_its_mount() {
        let (_t, root) = tree();
        let etc = open_dir_beneath(&root, b"etc").unwrap();
        assert_eq!(mount_id(&root).unwrap(), mount_id(&etc).unwrap());
        let proc_ = rustix::fs::open("/proc", OFlags::PATH, Mode::empty()).unwrap();
        assert_ne!(mount_id(&root).unwrap(), mount_id(&proc_).unwrap());
    }

    #[test]
    fn mountinfo_names_the_last_mount_at_a_path() {
        let info = b"22 1 0:21 / / rw - overlay overlay rw\n\
30 22 0:40 / /dev/shm rw - tmpfs shm rw\n\
31 22 0:41 / /data\\040dir rw - tmpfs t rw\n\
32 30 0:42 / /dev/shm rw - tmpfs shm2 rw\n";
        assert_eq!(mount_id_at(info, b"/dev/shm"), Some(32));
        assert_eq!(mount_id_at(info, b"/data dir"), Some(31));
        assert_eq!(mount_id_at(info, b"/"), Some(22));
        assert_eq!(mount_id_at(info, b"/nope"), None);
    }
}
