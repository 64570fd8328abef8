//! Reading a container's overlay upper dir (or a mount's root) into a content tree.
//!
//! The walk never follows a symlink the container controls: it moves by directory fd,
//! takes metadata with `statx(AT_SYMLINK_NOFOLLOW)` *before* opening, opens with
//! `O_NOFOLLOW|O_NOATIME`, and requires the opened fd's device, inode and type to equal
//! what statx saw; otherwise the entry is recorded as changed during the read and its
//! content is not taken. Symlinks are read with readlinkat only; FIFOs, sockets and
//! devices are recorded and never opened. Nested mounts are recorded, not entered.

use super::open::{self, makedev, OpenError, Pinned};
use exhibit_common::records::{xattr, ChangeKind, ChangeRecord, FileType, Source, Xattr};
use exhibit_common::text::ByteText;
use exhibit_common::writer::{BundleWriter, CopyOutcome, WriteError};
use rustix::fs::{AtFlags, StatxFlags};
use rustix::io::Errno;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

/// Limits and switches of one walk.
#[derive(Debug, Clone)]
pub struct WalkOptions {
    pub max_file_size: u64,
    pub max_total: u64,
}

// Bytes copied out of one file between two progress reports.
const PROGRESS_STEP: u64 = 8 << 20;

// Passes reads through and reports the bytes read every PROGRESS_STEP.
struct Counting<'a> {
    inner: &'a mut dyn Read,
    done: u64,
    next: u64,
    report: &'a dyn Fn(u64),
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if self.done >= self.next {
            (self.report)(self.done);
            self.next = self.done + PROGRESS_STEP;
        }
        Ok(n)
    }
}

/// Totals of a walk, for the manifest and progress.
#[derive(Debug, Default, Clone)]
pub struct WalkStats {
    pub entries: u64,
    pub bytes: u64,
    pub not_captured: u64,
    /// Files that changed (or grew, or were unlinked) while they were read: flagged
    /// `changed-during-read` on their records; the bundle is incomplete.
    pub changed: u64,
    /// Errors that lost part of the source (make the bundle incomplete).
    pub errors: Vec<String>,
    /// Extended attributes left out of a record (flag `xattrs-dropped` on the record):
    /// `PATH: NAME (why)`, for the acquisition log.
    pub dropped_xattrs: Vec<String>,
}

/// The lower layers an upper dir is compared against, topmost first.
pub struct Lowers {
    fds: Vec<OwnedFd>,
}

impl Lowers {
    /// Opens the lower dirs; a missing one is an error for the caller to record.
    pub fn open(paths: &[std::path::PathBuf]) -> (Self, Vec<String>) {
        let mut fds = Vec::new();
        let mut errors = Vec::new();
        for p in paths {
            match open::open_host_dir(p) {
                Ok(fd) => fds.push(fd),
                Err(e) => errors.push(format!("lower dir {}: {e}", p.display())),
            }
        }
        (Lowers { fds }, errors)
    }

    /// No lower dirs: everything is "added".
    pub fn none() -> Self {
        Lowers { fds: Vec::new() }
    }

    /// Whether `rel` exists in any lower layer, resolved beneath it without symlinks.
    fn contains(&self, rel: &[u8]) -> bool {
        self.find(rel).is_some()
    }

    fn find(&self, rel: &[u8]) -> Option<Pinned> {
        self.fds.iter().find_map(|fd| Pinned::beneath(fd, rel).ok())
    }

    /// Opens a regular file of a lower layer for reading (metacopy content).
    fn open_file(&self, rel: &[u8]) -> Option<File> {
        self.fds.iter().find_map(|fd| {
            Pinned::beneath(fd, rel)
                .ok()
                .and_then(|p| p.open_regular().ok())
        })
    }
}

/// A directory being walked.
struct Frame {
    dir: OwnedFd,
    /// Its path relative to the tree's root.
    rel: Vec<u8>,
    /// Names not visited yet (sorted, popped from the end).
    names: Vec<Vec<u8>>,
    /// Whether it exists in a lower layer: when it does not, nothing under it can, and
    /// the lookups in every lower layer are skipped.
    in_lower: bool,
}

/// Where one tree goes in the bundle.
pub struct TreeSpec<'a> {
    /// Member prefix, e.g. `rootfs` or `mounts/0`.
    pub member_prefix: &'a str,
    /// Container path of the tree root, e.g. `/` or `/dev/shm`.
    pub container_root: &'a str,
    pub source: Source,
    /// Interpret overlay whiteouts and opaque markers (upper dirs only).
    pub overlay: bool,
    /// Record the tree root itself (mount roots) or not (the upper dir).
    pub include_root: bool,
}

/// Mutable state shared by the walks of one capture.
pub struct Walker<'w, W: Write> {
    pub writer: &'w mut BundleWriter<W>,
    pub opts: WalkOptions,
    pub stats: WalkStats,
    pub progress: &'w dyn Fn(u64, u64),
    hardlinks: HashMap<(u64, u64), ByteText>,
    total: u64,
}

impl<'w, W: Write> Walker<'w, W> {
    /// A walker writing into `writer`.
    pub fn new(
        writer: &'w mut BundleWriter<W>,
        opts: WalkOptions,
        progress: &'w dyn Fn(u64, u64),
    ) -> Self {
        Walker {
            writer,
            opts,
            stats: WalkStats::default(),
            progress,
            hardlinks: HashMap::new(),
            total: 0,
        }
    }

    /// Walks the tree rooted at the directory `root` into the bundle. Regular files
    /// whose name starts with `.wh.` are returned (relative paths) for the literal/ tree.
    pub fn walk(
        &mut self,
        root: &OwnedFd,
        spec: &TreeSpec<'_>,
        lowers: &Lowers,
    ) -> Result<Vec<Vec<u8>>, WriteError> {
        let mut literal = Vec::new();
        let root_stat = match rustix::fs::fstat(root) {
            Ok(s) => s,
            Err(e) => {
                self.stats
                    .errors
                    .push(format!("{}: {e}", spec.container_root));
                return Ok(literal);
            }
        };
        if spec.include_root {
            let st = open::stat_handle(root);
            if let Ok(st) = st {
                let rec = base_record(
                    spec.member_prefix.as_bytes().to_vec(),
                    spec.container_root.as_bytes().to_vec(),
                    spec.source,
                    ChangeKind::Added,
                    FileType::Dir,
                    &st,
                );
                let mut rec = rec;
                self.xattrs(root, &mut rec);
                self.emit(rec, None)?;
            }
        }
        // Depth-first, pre-order, names sorted.
        let mut stack: Vec<Frame> = Vec::new();
        let names = match list_dir(root) {
            Ok(n) => n,
            Err(e) => {
                self.stats
                    .errors
                    .push(format!("{}: reading directory: {e}", spec.container_root));
                return Ok(literal);
            }
        };
        let root_dup = rustix::io::fcntl_dupfd_cloexec(root, 0).map_err(std::io::Error::from)?;
        stack.push(Frame {
            dir: root_dup,
            rel: Vec::new(),
            names,
            in_lower: true,
        });
        while let Some(top) = stack.last_mut() {
            let Some(name) = top.names.pop() else {
                stack.pop();
                continue;
            };
            let rel = join(&top.rel, &name);
            let child = self.entry(
                &top.dir,
                &top.rel,
                &name,
                &rel,
                spec,
                lowers,
                top.in_lower,
                root_stat.st_dev,
                &mut literal,
            )?;
            if let Some((child, in_lower)) = child {
                match list_dir(&child) {
                    Ok(names) => stack.push(Frame {
                        dir: child,
                        rel,
                        names,
                        in_lower,
                    }),
                    Err(e) => self.stats.errors.push(format!(
                        "{}: reading directory: {e}",
                        container_path(spec, &rel).lossy()
                    )),
                }
            }
        }
        Ok(literal)
    }

    /// Records one entry; returns the opened directory, and whether it exists in a
    /// lower layer, when the walk should descend.
    #[allow(clippy::too_many_arguments)]
    fn entry(
        &mut self,
        dir: &OwnedFd,
        rel_dir: &[u8],
        name: &[u8],
        rel: &[u8],
        spec: &TreeSpec<'_>,
        lowers: &Lowers,
        parent_in_lower: bool,
        root_dev: u64,
        literal: &mut Vec<Vec<u8>>,
    ) -> Result<Option<(OwnedFd, bool)>, WriteError> {
        let path = container_path(spec, rel);
        // A bundle refuses longer names; record the loss instead of writing one.
        if rel.len() + spec.member_prefix.len() + 8 > exhibit_common::limits::MAX_PATH {
            let shown = String::from_utf8_lossy(&path.0[..path.0.len().min(256)]).into_owned();
            self.stats.errors.push(format!(
                "{shown}...: path longer than the bundle limit, not captured"
            ));
            return Ok(None);
        }
        let pinned = match Pinned::at(dir, name) {
            Ok(p) => p,
            Err(Errno::NOENT) => {
                self.stats
                    .errors
                    .push(format!("{}: vanished before it was read", path.lossy()));
                return Ok(None);
            }
            Err(e) => {
                self.stats.errors.push(format!("{}: {e}", path.lossy()));
                return Ok(None);
            }
        };
        let st = *pinned.stat();
        let member = join(spec.member_prefix.as_bytes(), rel);
        let ft = pinned.file_type();
        let in_lower = parent_in_lower && lowers.contains(rel);
        let kind = if in_lower {
            ChangeKind::Modified
        } else {
            ChangeKind::Added
        };

        // Overlay whiteout: a 0/0 character device.
        if spec.overlay && ft == FileType::Char && st.stx_rdev_major == 0 && st.stx_rdev_minor == 0
        {
            let wh = join(
                spec.member_prefix.as_bytes(),
                &join(rel_dir, &[b".wh.", name].concat()),
            );
            let mut rec = base_record(
                wh,
                path.0,
                spec.source,
                ChangeKind::Deleted,
                FileType::Whiteout,
                &st,
            );
            rec.captured = false;
            rec.reason = Some("whiteout".into());
            self.emit(rec, None)?;
            return Ok(None);
        }
        if spec.overlay && ft == FileType::File && name.starts_with(b".wh.") {
            literal.push(rel.to_vec());
            return Ok(None);
        }
        let mut rec = base_record(member, path.0.clone(), spec.source, kind, ft, &st);
        match ft {
            FileType::Dir => {
                let fd = match pinned.open_dir() {
                    Ok(fd) => fd,
                    Err(OpenError::Changed) => {
                        rec.captured = false;
                        rec.reason = Some("changed during read".into());
                        rec.flags.push("changed-during-read".into());
                        self.emit(rec, None)?;
                        return Ok(None);
                    }
                    Err(e) => {
                        rec.captured = false;
                        rec.reason = Some(format!("cannot open directory: {e}"));
                        self.emit(rec, None)?;
                        return Ok(None);
                    }
                };
                let overlay_marks = self.xattrs(&fd, &mut rec);
                let opaque = spec.overlay
                    && overlay_marks
                        .iter()
                        .any(|(k, v)| k == b"trusted.overlay.opaque" && v == b"y");
                if overlay_marks
                    .iter()
                    .any(|(k, _)| k == b"trusted.overlay.redirect")
                {
                    rec.flags.push("redirect".into());
                }
                let nested_mount = makedev(st.stx_dev_major, st.stx_dev_minor) != root_dev;
                if nested_mount {
                    rec.flags.push("mount-point".into());
                    rec.reason = Some("nested mount, not entered".into());
                }
                self.emit(rec, None)?;
                if opaque {
                    let marker = join(spec.member_prefix.as_bytes(), &join(rel, b".wh..wh..opq"));
                    let mut m = base_record(
                        marker,
                        path.0,
                        spec.source,
                        ChangeKind::OpaqueDir,
                        FileType::Whiteout,
                        &st,
                    );
                    m.mode = 0;
                    m.captured = false;
                    m.reason = Some("opaque directory marker".into());
                    self.emit(m, None)?;
                }
                Ok(if nested_mount {
                    None
                } else {
                    Some((fd, in_lower))
                })
            }
            FileType::Symlink => {
                match pinned.read_link() {
                    Ok(target) => rec.link_target = Some(ByteText(target)),
                    Err(e) => {
                        rec.link_target = Some(ByteText::default());
                        rec.captured = false;
                        rec.reason = Some(format!("readlink failed: {e}"));
                    }
                }
                self.emit(rec, None)?;
                Ok(None)
            }
            FileType::Fifo | FileType::Socket | FileType::Char | FileType::Block => {
                rec.captured = false;
                rec.reason = Some(
                    match ft {
                        FileType::Fifo => "fifo",
                        FileType::Socket => "socket",
                        _ => "device",
                    }
                    .into(),
                );
                self.emit(rec, None)?;
                Ok(None)
            }
            FileType::File | FileType::Whiteout => {
                self.file(&pinned, rec, lowers, rel)?;
                Ok(None)
            }
        }
    }

    fn file(
        &mut self,
        pinned: &Pinned,
        mut rec: ChangeRecord,
        lowers: &Lowers,
        rel: &[u8],
    ) -> Result<(), WriteError> {
        let st = pinned.stat();
        let key = (makedev(st.stx_dev_major, st.stx_dev_minor), st.stx_ino);
        if st.stx_nlink > 1 {
            rec.hardlink_group = Some(st.stx_ino);
            if let Some(first) = self.hardlinks.get(&key) {
                rec.hardlink_to = Some(first.clone());
                rec.stored_size = 0;
                return self.emit(rec, None);
            }
        }
        let file = match pinned.open_regular() {
            Ok(f) => f,
            Err(OpenError::Changed) => {
                rec.captured = false;
                rec.reason = Some("changed during read".into());
                rec.flags.push("changed-during-read".into());
                rec.stored_size = 0;
                self.stats.changed += 1;
                return self.emit(rec, None);
            }
            Err(e) => {
                let vanished = e == OpenError::Sys(Errno::NOENT);
                rec.captured = false;
                rec.reason = Some(if vanished {
                    "vanished during read".into()
                } else {
                    format!("cannot open: {e}")
                });
                if vanished {
                    self.stats
                        .errors
                        .push(format!("{}: vanished during read", rec.path.lossy()));
                }
                rec.stored_size = 0;
                return self.emit(rec, None);
            }
        };
        let fd = OwnedFd::from(file);
        let overlay_marks = self.xattrs(&fd, &mut rec);
        let metacopy = overlay_marks
            .iter()
            .any(|(k, _)| k == b"trusted.overlay.metacopy");
        let file = File::from(fd);
        let mut file_reader = &file;
        let mut lower_file = None;
        if metacopy {
            rec.flags.push("metacopy".into());
            lower_file = lowers.open_file(rel);
            if lower_file.is_none() {
                rec.captured = false;
                rec.reason = Some("metacopy data not found in lower dirs".into());
                rec.stored_size = 0;
                return self.emit(rec, None);
            }
        }
        if rec.size > self.opts.max_file_size {
            rec.captured = false;
            rec.reason = Some("over --max-file-size".into());
            rec.stored_size = 0;
            return self.emit(rec, None);
        }
        if self.total + rec.size > self.opts.max_total {
            rec.captured = false;
            rec.reason = Some("over --max-total".into());
            rec.stored_size = 0;
            return self.emit(rec, None);
        }
        if st.stx_nlink > 1 {
            self.hardlinks.insert(key, rec.member.clone());
        }
        rec.stored_size = rec.size;
        let before = (
            st.stx_size,
            st.stx_mtime.tv_sec,
            st.stx_mtime.tv_nsec,
            st.stx_ctime.tv_sec,
            st.stx_ctime.tv_nsec,
        );
        let reader: &mut dyn Read = match &mut lower_file {
            Some(l) => l,
            None => &mut file_reader,
        };
        let check = &file;
        let changed = std::cell::Cell::new(false);
        let result = self.emit_with(rec, Some(reader), |rec, outcome: CopyOutcome| {
            let after = rustix::fs::statx(
                check.as_fd(),
                "",
                AtFlags::EMPTY_PATH,
                StatxFlags::BASIC_STATS,
            )
            .map(|s| {
                (
                    s.stx_size,
                    s.stx_mtime.tv_sec,
                    s.stx_mtime.tv_nsec,
                    s.stx_ctime.tv_sec,
                    s.stx_ctime.tv_nsec,
                )
            })
            .ok();
            // Unlinked while open: the bytes read are what the kernel still had.
            let vanished = rustix::fs::fstat(check.as_fd())
                .map(|s| s.st_nlink == 0)
                .unwrap_or(false);
            if outcome.short || outcome.grew || vanished || (!metacopy && after != Some(before)) {
                changed.set(true);
                rec.captured = false;
                rec.flags.push("changed-during-read".into());
                if vanished {
                    rec.reason = Some("vanished during read".into());
                    rec.flags.push("vanished-during-read".into());
                } else {
                    rec.reason = Some("changed during read".into());
                }
            }
        });
        if changed.get() {
            self.stats.changed += 1;
        }
        result
    }

    /// Sets the record's extended attributes; one that cannot be stored is flagged on
    /// the record and named in the stats. Returns the overlay's own markers.
    fn xattrs(&mut self, fd: &OwnedFd, rec: &mut ChangeRecord) -> RawXattrs {
        let (stored, overlay, dropped) = read_xattrs(fd);
        rec.xattrs = stored;
        if !dropped.is_empty() {
            rec.flags.push("xattrs-dropped".into());
            let path = rec.path.lossy();
            self.stats
                .dropped_xattrs
                .extend(dropped.into_iter().map(|d| format!("{path}: {d}")));
        }
        overlay
    }

    fn emit(
        &mut self,
        rec: ChangeRecord,
        content: Option<&mut dyn Read>,
    ) -> Result<(), WriteError> {
        self.emit_with(rec, content, |_, _| {})
    }

    fn emit_with(
        &mut self,
        rec: ChangeRecord,
        content: Option<&mut dyn Read>,
        finish: impl FnOnce(&mut ChangeRecord, CopyOutcome),
    ) -> Result<(), WriteError> {
        let captured = rec.captured;
        let stored = rec.stored_size;
        // Progress inside a large file too, every PROGRESS_STEP bytes copied.
        let (progress, entries, bytes) = (self.progress, self.stats.entries, self.stats.bytes);
        let report = |done: u64| progress(entries, bytes + done);
        let mut counting;
        let content: Option<&mut dyn Read> = match content {
            Some(inner) => {
                counting = Counting {
                    inner,
                    done: 0,
                    next: PROGRESS_STEP,
                    report: &report,
                };
                Some(&mut counting)
            }
            None => None,
        };
        self.writer.add_content(rec, content, finish)?;
        self.stats.entries += 1;
        self.stats.bytes += stored;
        self.total += stored;
        if !captured {
            self.stats.not_captured += 1;
        }
        (self.progress)(self.stats.entries, self.stats.bytes);
        Ok(())
    }

    /// Captures the regular files whose own name starts with `.wh.` into literal/,
    /// re-opening their parent one component at a time without following symlinks.
    pub fn literal(
        &mut self,
        root: &OwnedFd,
        spec: &TreeSpec<'_>,
        rels: &[Vec<u8>],
        lowers: &Lowers,
    ) -> Result<(), WriteError> {
        for rel in rels {
            let (parent, name) = match rel.iter().rposition(|&b| b == b'/') {
                Some(i) => (&rel[..i], &rel[i + 1..]),
                None => (&rel[..0], &rel[..]),
            };
            let dir = match open::open_dir_beneath(root, parent) {
                Ok(d) => d,
                Err(e) => {
                    self.stats
                        .errors
                        .push(format!("{}: {e}", container_path(spec, rel).lossy()));
                    continue;
                }
            };
            let path = container_path(spec, rel);
            let pinned = match Pinned::at(&dir, name) {
                Ok(p) if p.file_type() == FileType::File => p,
                _ => {
                    self.stats
                        .errors
                        .push(format!("{}: vanished during read", path.lossy()));
                    continue;
                }
            };
            let member = join(b"literal", rel);
            let kind = if lowers.contains(rel) {
                ChangeKind::Modified
            } else {
                ChangeKind::Added
            };
            let rec = base_record(
                member,
                path.0,
                spec.source,
                kind,
                FileType::File,
                pinned.stat(),
            );
            self.file(&pinned, rec, lowers, rel)?;
        }
        Ok(())
    }
}

fn list_dir(fd: &OwnedFd) -> rustix::io::Result<Vec<Vec<u8>>> {
    let dup = rustix::io::fcntl_dupfd_cloexec(fd, 0)?;
    let mut dir = rustix::fs::Dir::new(dup)?;
    let mut names = Vec::new();
    while let Some(ent) = dir.read() {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    // Popped from the end: reverse order gives ascending tar order.
    names.sort_unstable_by(|a, b| b.cmp(a));
    Ok(names)
}

fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    if a.is_empty() {
        return b.to_vec();
    }
    let mut v = Vec::with_capacity(a.len() + 1 + b.len());
    v.extend_from_slice(a);
    v.push(b'/');
    v.extend_from_slice(b);
    v
}

fn container_path(spec: &TreeSpec<'_>, rel: &[u8]) -> ByteText {
    let root = spec.container_root.trim_end_matches('/').as_bytes();
    let mut v = root.to_vec();
    v.push(b'/');
    v.extend_from_slice(rel);
    ByteText(v)
}

fn ts(t: &rustix::fs::StatxTimestamp) -> i64 {
    t.tv_sec
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as i64)
}

pub(crate) fn base_record(
    member: Vec<u8>,
    path: Vec<u8>,
    source: Source,
    kind: ChangeKind,
    ft: FileType,
    st: &rustix::fs::Statx,
) -> ChangeRecord {
    ChangeRecord {
        mode: st.stx_mode as u32 & 0o7777,
        uid: st.stx_uid as u64,
        gid: st.stx_gid as u64,
        size: if ft == FileType::File { st.stx_size } else { 0 },
        atime_ns: ts(&st.stx_atime),
        mtime_ns: ts(&st.stx_mtime),
        ctime_ns: ts(&st.stx_ctime),
        btime_ns: (st.stx_mask & StatxFlags::BTIME.bits() != 0).then(|| ts(&st.stx_btime)),
        nlink: st.stx_nlink as u64,
        rdev_major: st.stx_rdev_major,
        rdev_minor: st.stx_rdev_minor,
        ..ChangeRecord::new(member, path, source, kind, ft)
    }
}

type RawXattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// The most extended-attribute bytes stored per entry, so that its PAX header stays
/// under the reader's 1 MiB limit.
pub const MAX_XATTR_BYTES: usize = 512 << 10;

/// Extended attributes of an open file: the ones stored (everything but the overlay's
/// own `trusted.overlay.*`), the overlay markers separately, and the ones left out
/// (`NAME (why)`): a name with `=` (a PAX key ends there), over [`MAX_XATTR_BYTES`] in
/// total, or unreadable.
fn read_xattrs(fd: &OwnedFd) -> (Vec<Xattr>, RawXattrs, Vec<String>) {
    let mut dropped = Vec::new();
    let mut names = vec![0u8; 4096];
    let n = match rustix::fs::flistxattr(fd, &mut names) {
        Ok(n) => n,
        Err(Errno::RANGE) => {
            names = vec![0u8; 65536];
            rustix::fs::flistxattr(fd, &mut names).unwrap_or_else(|e| {
                dropped.push(format!("* (listing failed: {e})"));
                0
            })
        }
        // Filesystems without xattrs say so; that is not a loss.
        Err(Errno::NOTSUP) => 0,
        Err(e) => {
            dropped.push(format!("* (listing failed: {e})"));
            0
        }
    };
    let mut stored = Vec::new();
    let mut overlay = Vec::new();
    let mut total = 0usize;
    for name in names[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let shown = String::from_utf8_lossy(name);
        if name.contains(&b'=') {
            dropped.push(format!("{shown} (name contains '=', which ends a PAX key)"));
            continue;
        }
        let mut value = vec![0u8; 65536];
        let Ok(cname) = std::ffi::CString::new(name) else {
            continue;
        };
        let len = match rustix::fs::fgetxattr(fd, cname.as_c_str(), &mut value) {
            Ok(len) => len,
            // Removed between the listing and the read.
            Err(Errno::NODATA) => continue,
            Err(e) => {
                dropped.push(format!("{shown} (read failed: {e})"));
                continue;
            }
        };
        value.truncate(len);
        if name.starts_with(b"trusted.overlay.") {
            overlay.push((name.to_vec(), value));
        } else if total + name.len() + value.len() < MAX_XATTR_BYTES {
            total += name.len() + value.len() + 32;
            stored.push(xattr(name, &value));
        } else {
            dropped.push(format!(
                "{shown} ({} bytes over the {} KiB extended-attribute budget of an entry)",
                value.len(),
                MAX_XATTR_BYTES >> 10
            ));
        }
    }
    stored.sort_by(|a, b| a.name.cmp(&b.name));
    (stored, overlay, dropped)
}
