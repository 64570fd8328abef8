//! Line records of the bundle's JSON Lines members: file changes, processes, sockets,
//! log lines and mounts. One schema each; the collector writes them and the analyzer
//! reads them, so they live here.

use crate::tarcodec::{EntryHeader, EntryType};
use crate::text::{b64, b64_decode, ByteText};
use serde::{Deserialize, Serialize};

/// Where a captured file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Upper,
    Tmpfs,
    RuntimeFile,
    Volume,
}

/// How an entry differs from the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
    OpaqueDir,
}

/// File type as found on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileType {
    File,
    Dir,
    Symlink,
    Fifo,
    Char,
    Block,
    Socket,
    /// A deletion marker: an overlay 0/0 character device, stored as an OCI `.wh.` file.
    Whiteout,
}

/// One extended attribute; the value is base64 since it is binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    pub name: ByteText,
    pub value_b64: String,
}

/// One line of exhibit/fs/changes.jsonl: one entry of a content tree, authoritative for
/// its tar header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRecord {
    /// The tar member, e.g. `rootfs/etc/passwd`.
    pub member: ByteText,
    /// The absolute path in the container, e.g. `/etc/passwd`.
    pub path: ByteText,
    pub source: Source,
    pub kind: ChangeKind,
    #[serde(rename = "type")]
    pub file_type: FileType,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// The file's size on disk.
    pub size: u64,
    /// Bytes of content in the bundle.
    pub stored_size: u64,
    pub atime_ns: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub btime_ns: Option<i64>,
    /// sha256 of the stored bytes (regular files only).
    pub sha256: Option<String>,
    /// Symlink target as read with readlinkat.
    pub link_target: Option<ByteText>,
    /// For the second and later names of a hard-linked file: the member holding the content.
    pub hardlink_to: Option<ByteText>,
    /// Host inode of a file with several links, shared by every name of the group.
    pub hardlink_group: Option<u64>,
    pub nlink: u64,
    pub rdev_major: u32,
    pub rdev_minor: u32,
    pub xattrs: Vec<Xattr>,
    /// False where content was not taken; `reason` says why.
    pub captured: bool,
    pub reason: Option<String>,
    /// Notes such as `metacopy`, `redirect`, `changed-during-read`.
    pub flags: Vec<String>,
}

impl ChangeRecord {
    /// A record with this identity and every other field empty: no content, no times,
    /// no owner, `captured: true`. Callers fill in what they know.
    pub fn new(
        member: Vec<u8>,
        path: Vec<u8>,
        source: Source,
        kind: ChangeKind,
        file_type: FileType,
    ) -> Self {
        ChangeRecord {
            member: ByteText(member),
            path: ByteText(path),
            source,
            kind,
            file_type,
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            stored_size: 0,
            atime_ns: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            btime_ns: None,
            sha256: None,
            link_target: None,
            hardlink_to: None,
            hardlink_group: None,
            nlink: 1,
            rdev_major: 0,
            rdev_minor: 0,
            xattrs: Vec::new(),
            captured: true,
            reason: None,
            flags: Vec::new(),
        }
    }

    /// The canonical tar header of this record's member.
    pub fn tar_header(&self) -> EntryHeader {
        let (kind, link) = if let Some(target) = &self.hardlink_to {
            (EntryType::Hardlink, Some(target.0.clone()))
        } else {
            match self.file_type {
                FileType::Dir => (EntryType::Dir, None),
                FileType::Symlink => (
                    EntryType::Symlink,
                    Some(
                        self.link_target
                            .as_ref()
                            .map(|t| t.0.clone())
                            .unwrap_or_default(),
                    ),
                ),
                FileType::Fifo => (EntryType::Fifo, None),
                FileType::Char => (EntryType::Char, None),
                FileType::Block => (EntryType::Block, None),
                FileType::File | FileType::Socket | FileType::Whiteout => (EntryType::File, None),
            }
        };
        let mut xattrs: Vec<(Vec<u8>, Vec<u8>)> = self
            .xattrs
            .iter()
            .map(|x| {
                (
                    x.name.0.clone(),
                    b64_decode(&x.value_b64).unwrap_or_default(),
                )
            })
            .collect();
        xattrs.sort();
        EntryHeader {
            path: self.member.0.clone(),
            kind,
            mode: self.mode & 0o7777,
            uid: self.uid,
            gid: self.gid,
            // Only regular files carry bytes; whiteouts, sockets and hard links are
            // header-only, so no unhashed bytes can ride along.
            size: if kind == EntryType::File && self.file_type == FileType::File {
                self.stored_size
            } else {
                0
            },
            mtime_ns: self.mtime_ns as i128,
            link,
            dev_major: if matches!(kind, EntryType::Char | EntryType::Block) {
                self.rdev_major
            } else {
                0
            },
            dev_minor: if matches!(kind, EntryType::Char | EntryType::Block) {
                self.rdev_minor
            } else {
                0
            },
            xattrs,
        }
    }

    /// Value of an extended attribute, if present.
    pub fn xattr(&self, name: &[u8]) -> Option<Vec<u8>> {
        self.xattrs
            .iter()
            .find(|x| x.name.0 == name)
            .and_then(|x| b64_decode(&x.value_b64))
    }
}

/// Builds an [`Xattr`] from raw bytes.
pub fn xattr(name: &[u8], value: &[u8]) -> Xattr {
    Xattr {
        name: ByteText(name.to_vec()),
        value_b64: b64(value),
    }
}

/// A list capped by the limits of DESIGN.md section 3.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CappedList {
    pub items: Vec<ByteText>,
    pub truncated: bool,
    /// Size of the original, in bytes.
    pub original_bytes: u64,
    /// Entries of the original.
    pub original_entries: u64,
}

/// An open file descriptor of a process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdInfo {
    pub fd: i32,
    /// The link text of /proc/PID/fd/N (e.g. `socket:[1234]`, a path, `anon_inode:...`).
    pub target: ByteText,
}

/// A memory region taken with `--memory`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryRegion {
    pub start: u64,
    pub end: u64,
    pub perms: String,
    pub pathname: ByteText,
    pub member: Option<String>,
    pub sha256: Option<String>,
    pub size: u64,
    pub error: Option<String>,
}

/// One line of exhibit/processes.jsonl.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub pid: i32,
    /// The pid inside the container's pid namespace, when known.
    pub ns_pid: Option<i32>,
    pub ppid: i32,
    pub uid: u32,
    pub gid: u32,
    /// User name resolved from the container's /etc/passwd at capture.
    pub user: Option<String>,
    pub start_time: Option<String>,
    pub comm: ByteText,
    pub argv: CappedList,
    pub env: CappedList,
    pub cwd: Option<ByteText>,
    /// The exe link text (in the container's mount namespace).
    pub exe: Option<ByteText>,
    pub exe_sha256: Option<String>,
    pub exe_size: Option<u64>,
    /// The exe's link count is 0 (from fstat, never from the link text).
    pub exe_deleted: bool,
    /// The exe lives on a memfd (from its filesystem, never from the link text).
    pub memfd: bool,
    /// exhibit/exe/<sha256> member holding the executable's content, when kept.
    pub exe_member: Option<String>,
    pub fds: Vec<FdInfo>,
    pub fds_truncated: bool,
    pub maps: CappedList,
    /// Executable mappings that are anonymous or memfd-backed (fileless code).
    pub anon_exec_maps: u32,
    pub memory: Vec<MemoryRegion>,
    pub cgroup: Option<String>,
    /// Namespace inodes by name (pid, net, mnt, ...).
    pub namespaces: std::collections::BTreeMap<String, u64>,
    /// How the process was found: `cgroup`, `pidns` or both.
    pub found_by: Vec<String>,
    pub errors: Vec<String>,
}

impl ProcessRecord {
    /// Cuts the record's lists (fds, maps, environment, argv, memory regions, errors),
    /// longest first, until its JSON line is at most `max` bytes, marking each cut list
    /// truncated; returns whether anything was cut. A hostile process can make its own
    /// record shorter, never unreadable.
    pub fn fit_line(&mut self, max: u64) -> bool {
        let mut cut = false;
        loop {
            let len = serde_json::to_vec(self)
                .map(|v| v.len() as u64)
                .unwrap_or(u64::MAX);
            if len <= max {
                return cut;
            }
            cut = true;
            let sizes = [
                json_len(&self.fds),
                json_len(&self.maps.items),
                json_len(&self.env.items),
                json_len(&self.argv.items),
                json_len(&self.memory),
                json_len(&self.errors),
            ];
            let (largest, size) = sizes
                .iter()
                .enumerate()
                .max_by_key(|(_, s)| **s)
                .map(|(i, s)| (i, *s))
                .unwrap_or((0, 0));
            if size <= 2 {
                // Nothing left to cut: only fixed fields remain (never over the cap).
                self.comm = ByteText::default();
                self.cwd = None;
                self.exe = None;
                self.cgroup = None;
                return true;
            }
            match largest {
                0 => {
                    halve(&mut self.fds);
                    self.fds_truncated = true;
                }
                1 => halve_list(&mut self.maps),
                2 => halve_list(&mut self.env),
                3 => halve_list(&mut self.argv),
                4 => halve(&mut self.memory),
                _ => halve(&mut self.errors),
            }
            if !self.errors.iter().any(|e| e == RECORD_CUT) {
                self.errors.push(RECORD_CUT.to_string());
            }
        }
    }
}

/// The error a process record carries when [`ProcessRecord::fit_line`] cut it.
pub const RECORD_CUT: &str = "record cut to the bundle's line limit";

fn json_len<T: Serialize>(v: &T) -> u64 {
    serde_json::to_vec(v)
        .map(|v| v.len() as u64)
        .unwrap_or(u64::MAX)
}

fn halve<T>(v: &mut Vec<T>) {
    v.truncate(v.len() / 2);
}

fn halve_list(l: &mut CappedList) {
    halve(&mut l.items);
    l.truncated = true;
}

/// One line of exhibit/sockets.jsonl.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketRecord {
    pub netns: u64,
    /// tcp, tcp6, udp, udp6, unix, raw, raw6, packet.
    pub proto: String,
    pub state: String,
    pub local: String,
    pub remote: String,
    pub inode: u64,
    pub pids: Vec<i32>,
}

/// One line of exhibit/logs/container.jsonl.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub t: Option<String>,
    pub stream: String,
    pub line: ByteText,
    /// The line was longer than the log line limit and cut there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Length of the line before the cut, in bytes (only on a cut line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_len: Option<u64>,
}

impl LogLine {
    /// A log line of `text`, cut at [`crate::limits::MAX_LOG_LINE`] and marked when
    /// longer or when `skipped` bytes of it were already dropped by the reader.
    pub fn capped(t: Option<String>, stream: &str, mut text: Vec<u8>, skipped: u64) -> Self {
        let max = crate::limits::MAX_LOG_LINE;
        let original = text.len() as u64 + skipped;
        let truncated = skipped > 0 || text.len() > max;
        text.truncate(max);
        LogLine {
            t,
            stream: stream.to_string(),
            line: ByteText(text),
            truncated,
            original_len: truncated.then_some(original),
        }
    }
}

/// One mount of the container, as in exhibit/volumes.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRecord {
    pub index: u32,
    pub source: String,
    pub destination: String,
    /// bind, volume, tmpfs, ...
    #[serde(rename = "type")]
    pub mount_type: String,
    pub options: Vec<String>,
    pub read_only: bool,
    /// What the capture did with its content: `content`, `metadata`, `skipped`.
    pub captured: String,
}
