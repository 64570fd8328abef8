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
        if let Err(e) = rustix::fs::renameat_with(
            &self.dir,
            self.partial.as_bytes(),
            &self.dir,
            self.name.as_bytes(),
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            // The final name was taken meanwhile: the partial file goes, the other stays.
            let _ = rustix::fs::unlinkat(
                &self.dir,
                self.partial.as_bytes(),
                rustix::fs::AtFlags::empty(),
            );
            let e = io::Error::from(e);
            return Err(io::Error::new(
                e.kind(),
                format!("{}: {e}", self.path.display()),
            ));
        }
        rustix::fs::fsync(&self.dir)?;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = rustix::fs::unlinkat(
                &self.dir,
                self.partial.as_bytes(),
                rustix::fs::AtFlags::empty(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
