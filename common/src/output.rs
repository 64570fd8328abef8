//! Output files written atomically: `FILE.partial` is created with
//! O_EXCL|O_NOFOLLOW (a planted symlink is never followed), fsynced, then renamed with
//! `renameat2(RENAME_NOREPLACE)` so an existing file is never replaced. Dropping an
//! uncommitted file removes the partial one.

use rustix::fs::{Mode, OFlags};
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Creates a new file with `mode`, never following a symlink and never replacing.
pub fn create_exclusive(path: &Path, mode: u32) -> io::Result<File> {
    let fd = rustix::fs::open(
        path,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )?;
    // The umask may have cleared bits; set exactly what was asked for.
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
    Ok(File::from(fd))
}

/// An output file that appears at its final name only when committed.
#[derive(Debug)]
pub struct AtomicFile {
    file: Option<File>,
    dir: OwnedFd,
    partial: OsString,
    name: OsString,
    path: PathBuf,
}

impl AtomicFile {
    /// Creates `PATH.partial` next to `path` (mode 0600); fails if `path` exists.
    pub fn create(path: &Path) -> io::Result<Self> {
        let name = path
            .file_name()
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "output path has no file name")
            })?
            .to_os_string();
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let dir = rustix::fs::open(
            parent,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        if rustix::fs::statat(&dir, name.as_bytes(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_ok()
        {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already exists", path.display()),
            ));
        }
        let mut partial = name.clone();
        partial.push(".partial");
        let fd = rustix::fs::openat(
            &dir,
            partial.as_bytes(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| {
            let e = io::Error::from(e);
            io::Error::new(
                e.kind(),
                format!("cannot create {}.partial: {e}", path.display()),
            )
        })?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600))?;
        Ok(AtomicFile {
            file: Some(File::from(fd)),
            dir,
            partial,
            name,
            path: path.to_path_buf(),
        })
    }

    /// The file being written.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("file present until commit")
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes to disk and moves the file to its final name without replacing anything.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self.file.take().expect("file present until commit");
        file.sync_all()?;
        drop(file);
        if let Err(e) = self.rename() {
            // The final name was taken meanwhile: the partial file goes, the other stays.
            self.unlink(&self.partial);
            return Err(e);
        }
        rustix::fs::fsync(&self.dir)?;
        Ok(())
    }

    // PATH.partial → PATH, never replacing; the error names PATH.
    fn rename(&self) -> io::Result<()> {
        rustix::fs::renameat_with(
            &self.dir,
            self.partial.as_bytes(),
            &self.dir,
            self.name.as_bytes(),
            rustix::fs::RenameFlags::NOREPLACE,
        )
        .map_err(|e| {
            let e = io::Error::from(e);
            io::Error::new(e.kind(), format!("{}: {e}", self.path.display()))
        })
    }

    // Removes `name` (the partial or the final name) from the file's directory.
    fn unlink(&self, name: &OsString) {
        let _ = rustix::fs::unlinkat(&self.dir, name.as_bytes(), rustix::fs::AtFlags::empty());
    }
}

/// Commits two output files (a bundle and its `.sha256`) as close together as two
/// renames allow: both are flushed to disk first, then renamed back to back (`first`,
/// then `second`, never replacing anything), then their directories are synced. A
/// SIGKILL can only fall between the two renames, which leaves `first` (the evidence)
/// without `second`, never the other way round. If `second` cannot take its name,
/// `first` is removed again, so an error leaves nothing at either final name.
pub fn commit_pair(mut first: AtomicFile, mut second: AtomicFile) -> io::Result<()> {
    for f in [&mut first, &mut second] {
        let file = f.file.take().expect("file present until commit");
        if let Err(e) = file.sync_all() {
            f.file = Some(file);
            return Err(e);
        }
    }
    if let Err(e) = first.rename() {
        first.unlink(&first.partial);
        second.unlink(&second.partial);
        return Err(e);
    }
    if let Err(e) = second.rename() {
        first.unlink(&first.name);
        second.unlink(&second.partial);
        return Err(e);
    }
    rustix::fs::fsync(&first.dir)?;
    rustix::fs::fsync(&second.dir)?;
    Ok(())
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            self.unlink(&self.partial);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_pair_publishes_both_or_neither() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let b = dir.path().join("x.exhibit.tar.zst");
        let side = dir.path().join("x.exhibit.tar.zst.sha256");
        let mut first = AtomicFile::create(&b).unwrap();
        first.file().write_all(b"bundle").unwrap();
        let mut second = AtomicFile::create(&side).unwrap();
        second.file().write_all(b"sum").unwrap();
        commit_pair(first, second).unwrap();
        assert_eq!(std::fs::read(&b).unwrap(), b"bundle");
        assert_eq!(std::fs::read(&side).unwrap(), b"sum");

        // The sidecar's name is taken meanwhile: the bundle is removed again.
        let b2 = dir.path().join("y.exhibit.tar.zst");
        let side2 = dir.path().join("y.exhibit.tar.zst.sha256");
        let mut first = AtomicFile::create(&b2).unwrap();
        first.file().write_all(b"bundle").unwrap();
        let second = AtomicFile::create(&side2).unwrap();
        std::fs::write(&side2, b"someone else's").unwrap();
        assert!(commit_pair(first, second).is_err());
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "x.exhibit.tar.zst",
                "x.exhibit.tar.zst.sha256",
                "y.exhibit.tar.zst.sha256"
            ]
        );
        assert_eq!(std::fs::read(&side2).unwrap(), b"someone else's");
    }
    use std::io::Write;

    #[test]
    fn planted_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let out = dir.path().join("b.tar.zst");
        std::os::unix::fs::symlink(&victim, dir.path().join("b.tar.zst.partial")).unwrap();
        assert!(AtomicFile::create(&out).is_err());
        std::os::unix::fs::symlink(&victim, &out).unwrap();
        assert!(AtomicFile::create(&out).is_err());
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    }

    #[test]
    fn uncommitted_file_leaves_nothing_and_commit_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("b");
        {
            let mut f = AtomicFile::create(&out).unwrap();
            f.file().write_all(b"half").unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let mut f = AtomicFile::create(&out).unwrap();
        f.file().write_all(b"whole").unwrap();
        // Someone else creates the final name meanwhile: commit must not replace it.
        std::fs::write(&out, b"other").unwrap();
        assert!(f.commit().is_err());
        assert_eq!(std::fs::read(&out).unwrap(), b"other");
        // ... and removes its partial file.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
