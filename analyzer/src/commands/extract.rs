//! `extract`: writes a verified bundle into a new directory without ever leaving it.
//!
//! The tree is filled as `DIR.partial` (created fresh) and renamed to DIR at the end;
//! on any failure the partial tree is removed. Every member name is re-checked (relative,
//! no empty, `.` or `..` component). Parents are opened one component at a time with
//! O_NOFOLLOW|O_DIRECTORY from the root's descriptor, so a symlink already in the tree,
//! also one the bundle created, is never followed. Files are created with
//! O_CREAT|O_EXCL|O_NOFOLLOW, modes masked with 0o777 (no setuid, setgid or sticky bit).
//! Symlinks are created only when their target, read from the link's directory, stays
//! inside DIR: `..` is accepted only as a leading prefix (so no symlinked component is
//! ever followed upward) and absolute targets are rewritten to point into DIR/rootfs/,
//! where the container's root is extracted. Hard links point only at regular files
//! already extracted. Devices, FIFOs and sockets become empty 0600 placeholder files.
//! Every deviation is listed in DIR/extract-notes.jsonl.

use crate::cli::ExtractArgs;
use crate::error::AnalyzeError;
use crate::evidence::{load_keys, Evidence};
use exhibit_common::cli::ExitStatus;
use exhibit_common::records::{ChangeRecord, FileType};
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use serde_json::json;
use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Splits a member name into safe components, or says why it is not safe.
pub fn components(name: &[u8]) -> Result<Vec<&[u8]>, String> {
    if name.is_empty() || name.starts_with(b"/") {
        return Err("absolute or empty name".into());
    }
    if name.contains(&0) {
        return Err("NUL byte in name".into());
    }
    let parts: Vec<&[u8]> = name.split(|&b| b == b'/').collect();
    if parts
        .iter()
        .any(|c| c.is_empty() || *c == b"." || *c == b"..")
    {
        return Err("empty, . or .. component".into());
    }
    if parts.iter().any(|c| c.len() > 255) {
        return Err("component longer than 255 bytes".into());
    }
    Ok(parts)
}

/// The target to create for a symlink at `member` (its components), or `None` when it
/// would leave the extraction root. Absolute targets are rewritten into rootfs/.
pub fn contain_symlink(member: &[&[u8]], target: &[u8]) -> Option<Vec<u8>> {
    if target.is_empty() || target.contains(&0) {
        return None;
    }
    let depth = member.len() - 1;
    let mut ups = 0usize;
    let mut names: Vec<&[u8]> = Vec::new();
    for c in target.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." if target.starts_with(b"/") => {
                names.pop();
            }
            b".." => {
                if !names.is_empty() {
                    return None;
                }
                ups += 1;
            }
            c => names.push(c),
        }
    }
    let mut out = Vec::new();
    if target.starts_with(b"/") {
        for _ in 0..depth {
            out.extend_from_slice(b"../");
        }
        out.extend_from_slice(b"rootfs");
        for n in &names {
            out.push(b'/');
            out.extend_from_slice(n);
        }
        return Some(out);
    }
    if ups > depth {
        return None;
    }
    for _ in 0..ups {
        out.extend_from_slice(b"../");
    }
    out.extend_from_slice(&names.join(&b'/'));
    if out.is_empty() {
        out.push(b'.');
    }
    if out.ends_with(b"/") {
        out.pop();
    }
    Some(out)
}

struct Extractor {
    root: OwnedFd,
    files: HashSet<Vec<u8>>,
    refused_links: HashSet<Vec<u8>>,
    dirs: Vec<(Vec<u8>, u32)>,
    notes: Vec<serde_json::Value>,
    entries: u64,
}

impl Extractor {
    // Opens (creating when asked) each parent directory without following symlinks.
    fn parent(&self, parts: &[&[u8]], create: bool) -> Result<OwnedFd, String> {
        let mut fd = rustix::io::dup(&self.root).map_err(|e| e.to_string())?;
        for c in parts {
            if create {
                match rustix::fs::mkdirat(&fd, *c, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(format!("mkdir {}: {e}", String::from_utf8_lossy(c))),
                }
            }
            fd = rustix::fs::openat(
                &fd,
                *c,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| match e {
                Errno::LOOP | Errno::NOTDIR => format!(
                    "parent {} is a symlink or not a directory; refusing to write through it",
                    String::from_utf8_lossy(c)
                ),
                e => format!("open {}: {e}", String::from_utf8_lossy(c)),
            })?;
        }
        Ok(fd)
    }

    fn create_file(&mut self, name: &[u8], mode: u32, body: &mut dyn Read) -> Result<(), String> {
        let parts = components(name)?;
        let (last, dirs) = parts.split_last().ok_or("empty name")?;
        let dir = self.parent(dirs, true)?;
        let fd = rustix::fs::openat(
            &dir,
            *last,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| match e {
            Errno::EXIST => "already exists (duplicate member or clash with a link)".to_string(),
            e => e.to_string(),
        })?;
        let mut f = File::from(fd);
        io::copy(body, &mut f).map_err(|e| e.to_string())?;
        rustix::fs::fchmod(f.as_fd(), Mode::from_raw_mode(mode & 0o777))
            .map_err(|e| e.to_string())?;
        self.files.insert(name.to_vec());
        self.entries += 1;
        Ok(())
    }

    fn note(&mut self, member: &[u8], action: &str, detail: String) {
        self.notes.push(json!({"member": exhibit_common::text::ByteText(member.to_vec()), "action": action, "detail": detail}));
    }

    fn record(&mut self, rec: &ChangeRecord, body: &mut dyn Read) -> Result<(), String> {
        let name = rec.member.as_bytes();
        let parts = components(name)?;
        let (last, dirs) = parts.split_last().ok_or("empty name")?;
        // A path below a symlink cannot come from a real directory tree.
        for i in 1..parts.len() {
            if self.refused_links.contains(&parts[..i].join(&b'/')) {
                return Err(format!(
                    "lies under the refused symlink {}",
                    String::from_utf8_lossy(&parts[..i].join(&b'/'))
                ));
            }
        }
        if let Some(target) = &rec.hardlink_to {
            let t = target.as_bytes();
            components(t).map_err(|e| format!("hard link target: {e}"))?;
            if !self.files.contains(t) {
                return Err(format!(
                    "hard link to {}, which is not a file extracted before it",
                    target.lossy()
                ));
            }
            let tparts = components(t)?;
            let (tlast, tdirs) = tparts.split_last().ok_or("empty target")?;
            let tdir = self.parent(tdirs, false)?;
            let dir = self.parent(dirs, true)?;
            rustix::fs::linkat(&tdir, *tlast, &dir, *last, AtFlags::empty())
                .map_err(|e| format!("link: {e}"))?;
            self.files.insert(name.to_vec());
            self.entries += 1;
            return Ok(());
        }
        match rec.file_type {
            FileType::File | FileType::Whiteout => {
                if rec.mode & 0o7000 != 0 {
                    self.note(
                        name,
                        "mode-masked",
                        format!(
                            "mode {:04o} extracted as {:04o}",
                            rec.mode & 0o7777,
                            rec.mode & 0o777
                        ),
                    );
                }
                self.create_file(name, rec.mode, body)
            }
            FileType::Dir => {
                let dir = self.parent(dirs, true)?;
                match rustix::fs::mkdirat(&dir, *last, Mode::from_raw_mode(0o700)) {
                    Ok(()) => {}
                    Err(Errno::EXIST) => {
                        rustix::fs::openat(
                            &dir,
                            *last,
                            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                            Mode::empty(),
                        )
                        .map_err(|_| "already exists and is not a directory".to_string())?;
                    }
                    Err(e) => return Err(e.to_string()),
                }
                self.dirs.push((name.to_vec(), rec.mode));
                self.entries += 1;
                Ok(())
            }
            FileType::Symlink => {
                let target = rec
                    .link_target
                    .as_ref()
                    .map(|t| t.as_bytes().to_vec())
                    .unwrap_or_default();
                match contain_symlink(&parts, &target) {
                    Some(t) => {
                        if t != target {
                            self.note(
                                name,
                                "symlink-rewritten",
                                format!(
                                    "{} -> {}",
                                    String::from_utf8_lossy(&target),
                                    String::from_utf8_lossy(&t)
                                ),
                            );
                        }
                        let dir = self.parent(dirs, true)?;
                        rustix::fs::symlinkat(t.as_slice(), &dir, *last).map_err(|e| match e {
                            Errno::EXIST => "already exists (duplicate member)".to_string(),
                            e => e.to_string(),
                        })?;
                        self.entries += 1;
                    }
                    None => {
                        self.refused_links.insert(name.to_vec());
                        self.note(
                            name,
                            "symlink-refused",
                            format!(
                                "target {} leaves the extraction directory",
                                String::from_utf8_lossy(&target)
                            ),
                        );
                    }
                }
                Ok(())
            }
            FileType::Fifo | FileType::Char | FileType::Block | FileType::Socket => {
                self.note(
                    name,
                    "placeholder",
                    format!(
                        "{:?} {}:{} written as an empty file",
                        rec.file_type, rec.rdev_major, rec.rdev_minor
                    ),
                );
                self.create_file(name, 0o600, &mut io::empty())
            }
        }
    }

    fn finish_dirs(&mut self) -> Result<(), String> {
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
        for (name, mode) in dirs {
            let parts = components(&name)?;
            let (last, parents) = parts.split_last().ok_or("empty name")?;
            let dir = self.parent(parents, false)?;
            let fd = rustix::fs::openat(
                &dir,
                *last,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| e.to_string())?;
            rustix::fs::fchmod(&fd, Mode::from_raw_mode((mode & 0o777) | 0o700))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// `extract BUNDLE -o DIR`.
pub fn extract_command(a: &ExtractArgs) -> Result<ExitStatus, AnalyzeError> {
    let keys = load_keys(&a.keys.pubkeys)?;
    let out = &a.output;
    let mut partial: OsString = out.as_os_str().to_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let io_in = |what: String, hint: &str| AnalyzeError::input(what, &[hint]);
    if std::fs::symlink_metadata(out).is_ok() {
        return Err(io_in(
            format!("cannot extract to {}: it already exists", out.display()),
            "extract creates a new directory; choose a name that does not exist",
        ));
    }
    let ev = Evidence::open(&a.bundle, &keys)?;
    std::fs::create_dir(&partial).map_err(|e| {
        io_in(
            format!("cannot create {}: {e}", partial.display()),
            "remove a DIR.partial left by an interrupted extract, or choose another DIR",
        )
    })?;
    let result = fill(&ev, &partial);
    match result {
        Ok((entries, notes)) => {
            let parent = match out.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let name = out.file_name().ok_or_else(|| {
                io_in(
                    format!("{} has no file name", out.display()),
                    "give -o a directory name",
                )
            })?;
            let pname = partial
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_default();
            let dirfd = rustix::fs::open(
                &parent,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| {
                io_in(
                    format!("cannot open {}: {e}", parent.display()),
                    "check the -o path",
                )
            })?;
            if let Err(e) = rustix::fs::renameat_with(
                &dirfd,
                pname.as_bytes(),
                &dirfd,
                name.as_bytes(),
                rustix::fs::RenameFlags::NOREPLACE,
            ) {
                let _ = std::fs::remove_dir_all(&partial);
                return Err(io_in(
                    format!(
                        "cannot rename {} to {}: {e}",
                        partial.display(),
                        out.display()
                    ),
                    "the target appeared meanwhile; choose another DIR",
                ));
            }
            crate::render::write_out(&format!(
                "extracted {entries} entries to {}{}\n",
                out.display(),
                if notes > 0 {
                    format!(" ({notes} notes in extract-notes.jsonl)")
                } else {
                    String::new()
                }
            ))?;
            Ok(ExitStatus::Success)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            Err(e)
        }
    }
}

fn fill(ev: &Evidence, partial: &Path) -> Result<(u64, usize), AnalyzeError> {
    let root = rustix::fs::open(
        partial,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| AnalyzeError::input(format!("cannot open {}: {e}", partial.display()), &[]))?;
    let mut x = Extractor {
        root,
        files: HashSet::new(),
        refused_links: HashSet::new(),
        dirs: Vec::new(),
        notes: Vec::new(),
        entries: 0,
    };
    let mut failure: Option<(String, String)> = None;
    let unsafe_err = |member: String, reason: String| AnalyzeError::Unsafe {
        path: ev.path.clone(),
        member,
        reason,
    };
    let r = ev.bundle.walk_members(&mut |name, body| {
        x.create_file(name.as_bytes(), 0o644, body).map_err(|e| {
            failure = Some((name.to_string(), e.clone()));
            io::Error::other(e)
        })
    });
    if let Some((m, e)) = failure.take() {
        return Err(unsafe_err(m, e));
    }
    r.map_err(|e| ev.pass_err(e))?;
    x.create_file(
        exhibit_common::members::ENVELOPE.as_bytes(),
        0o644,
        &mut ev.bundle.envelope_bytes(),
    )
    .map_err(|e| unsafe_err(exhibit_common::members::ENVELOPE.into(), e))?;
    let r = ev.walk_content(&mut |rec, body| {
        x.record(rec, body).map_err(|e| {
            failure = Some((rec.member.lossy(), e.clone()));
            io::Error::other(e)
        })
    });
    if let Some((m, e)) = failure.take() {
        return Err(unsafe_err(m, e));
    }
    r?;
    x.finish_dirs().map_err(|e| unsafe_err(String::new(), e))?;
    let notes = x.notes.len();
    if notes > 0 {
        let mut body = Vec::new();
        for n in &x.notes {
            let _ = serde_json::to_writer(&mut body, n);
            body.push(b'\n');
        }
        x.create_file(b"extract-notes.jsonl", 0o644, &mut body.as_slice())
            .map_err(|e| unsafe_err("extract-notes.jsonl".into(), e))?;
        for n in &x.notes {
            eprintln!("note: {}", crate::render::sanitize_line(&n.to_string()));
        }
    }
    Ok((x.entries, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_targets_stay_inside() {
        let m: Vec<&[u8]> = vec![b"rootfs", b"usr", b"bin", b"sh"];
        let ok = |t: &[u8]| contain_symlink(&m, t).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(
            ok(b"/bin/busybox").as_deref(),
            Some("../../../rootfs/bin/busybox")
        );
        assert_eq!(
            ok(b"/../../etc/passwd").as_deref(),
            Some("../../../rootfs/etc/passwd")
        );
        assert_eq!(ok(b"busybox").as_deref(), Some("busybox"));
        assert_eq!(ok(b"../../../x").as_deref(), Some("../../../x"));
        assert_eq!(ok(b"../../../../x"), None);
        assert_eq!(
            ok(b"a/../../x"),
            None,
            "`..` after a name could climb through a symlink"
        );
        assert_eq!(ok(b""), None);
        assert!(components(b"rootfs/../x").is_err());
        assert!(components(b"/rootfs/x").is_err());
        assert!(components(b"rootfs//x").is_err());
        assert!(components(b"rootfs/\xff").is_ok());
    }
}
