//! The container's own mounts: the runtime-provided files (hosts, hostname,
//! resolv.conf), its private tmpfs mounts and, with `--volumes content`, its named
//! volumes and emptyDirs (never host bind mounts).

use super::{Run, VolumesMode};
use crate::host::{self, open, walk};
use anyhow::{Context, Result};
use exhibit_common::custody::Outcome;
use exhibit_common::records::{ChangeKind, MountRecord, Source};
use std::io::{Read, Write};
use std::path::Path;

impl Run<'_> {
    /// Walks the runtime files and mounts into mounts/ and volumes/; returns the mounts
    /// that were lost, one line each (also in the acquisition log).
    pub(super) fn write_mounts<W: Write>(
        &mut self,
        walker: &mut walk::Walker<'_, W>,
        mounts: &mut Vec<MountRecord>,
    ) -> Result<Vec<String>> {
        let facts = self.facts;
        // Runtime files (hosts, hostname, resolv.conf) and private tmpfs mounts.
        let mut mount_errors = Vec::new();
        for (dest_path, host_path) in &facts.runtime_files {
            let index = mounts.len() as u32;
            mounts.push(MountRecord {
                index,
                source: host_path.display().to_string(),
                destination: dest_path.clone(),
                mount_type: "runtime-file".into(),
                options: vec![],
                read_only: false,
                captured: "content".into(),
            });
            let through = facts.init_pid.filter(|_| facts.running);
            if let Err(e) = runtime_file(walker, index, dest_path, host_path, through) {
                mount_errors.push(format!("{dest_path}: {e}"));
            }
        }
        if let Some(init) = facts.init_pid.filter(|_| facts.running) {
            let mut tmpfs: Vec<String> = mounts
                .iter()
                .filter(|m| m.mount_type == "tmpfs")
                .map(|m| m.destination.clone())
                .collect();
            if !tmpfs.iter().any(|d| d == "/dev/shm") {
                mounts.push(MountRecord {
                    index: mounts.len() as u32,
                    source: "shm".into(),
                    destination: "/dev/shm".into(),
                    mount_type: "tmpfs".into(),
                    options: vec![],
                    read_only: false,
                    captured: "metadata".into(),
                });
                tmpfs.push("/dev/shm".into());
            }
            for m in mounts.iter_mut() {
                if m.mount_type != "tmpfs" || m.destination == "/dev" {
                    continue;
                }
                let prefix = format!("mounts/{}", m.index);
                match mount_tree(walker, init, &m.destination, &prefix, Source::Tmpfs) {
                    Ok(()) => m.captured = "content".into(),
                    Err(e) => mount_errors.push(format!("{}: {e}", m.destination)),
                }
            }
        }
        // Named volumes and emptyDirs with --volumes content; never host bind mounts.
        if self.opts.volumes == VolumesMode::Content {
            if let Some(init) = facts.init_pid.filter(|_| facts.running) {
                for m in mounts.iter_mut().filter(|m| is_volume(m)) {
                    let prefix = format!("volumes/{}", m.index);
                    match mount_tree(walker, init, &m.destination, &prefix, Source::Volume) {
                        Ok(()) => m.captured = "content".into(),
                        Err(e) => mount_errors.push(format!("{}: {e}", m.destination)),
                    }
                }
            }
        }
        for e in &mount_errors {
            self.log
                .record("files.mounts", Outcome::Error, None, Some(e.clone()));
        }
        Ok(mount_errors)
    }
}

// A runtime-provided file (hosts, hostname, resolv.conf) from its host path, opened
// without following a symlink, stored as mounts/<index>.
fn runtime_file<W: Write>(
    walker: &mut walk::Walker<'_, W>,
    index: u32,
    dest: &str,
    host_path: &Path,
    through: Option<i32>,
) -> Result<()> {
    // Read through the container's pinned root when it runs (no host path needed, which
    // matters in a Kubernetes pod), else from the runtime's own file on the host.
    let (dir, name): (std::os::fd::OwnedFd, std::ffi::OsString) = match through {
        Some(pid) => {
            let root = host::open_container_root(pid)?;
            let (parent, name) = dest
                .rsplit_once('/')
                .context("runtime file has no parent")?;
            (
                open::open_dir_beneath(&root, parent.trim_start_matches('/').as_bytes())?,
                name.into(),
            )
        }
        None => {
            let parent = host_path.parent().context("runtime file has no parent")?;
            let name = host_path.file_name().context("runtime file has no name")?;
            (open::open_host_dir(parent)?, name.to_os_string())
        }
    };
    // Pinned without following a symlink, opened only if it is a regular file: a FIFO
    // or a device swapped in for hosts/hostname/resolv.conf is never opened.
    let pinned = open::Pinned::at(&dir, name.as_os_str())?;
    let st = *pinned.stat();
    let fd = pinned.open_regular()?;
    let size = st.stx_size.min(walker.opts.max_file_size);
    let mut rec = walk::base_record(
        format!("mounts/{index}").into_bytes(),
        dest.as_bytes().to_vec(),
        Source::RuntimeFile,
        ChangeKind::Added,
        exhibit_common::records::FileType::File,
        &st,
    );
    rec.stored_size = size;
    if size != st.stx_size {
        rec.captured = false;
        rec.reason = Some("over --max-file-size".to_string());
    }
    let mut f = fd;
    walker.writer.add_content(
        rec,
        Some(&mut (&mut f).take(size) as &mut dyn Read),
        |_, _| {},
    )?;
    Ok(())
}

/// A named volume or emptyDir (never a host bind mount of anything else).
fn is_volume(m: &MountRecord) -> bool {
    m.mount_type == "volume" || m.source.contains("/kubernetes.io~empty-dir/")
}

// A mount of the container (tmpfs such as /dev/shm, or a volume), reached through
// /proc/PID/root one component at a time without following symlinks, and only if it is
// really a different mount. The walk does not cross into nested mounts.
fn mount_tree<W: Write>(
    walker: &mut walk::Walker<'_, W>,
    init: i32,
    dest: &str,
    prefix: &str,
    source: Source,
) -> Result<()> {
    let root = host::open_container_root(init)?;
    let root_mnt = mount_id(&root)?;
    let dir = open::open_mount(&root, init, dest)
        .with_context(|| format!("reaching {dest} in the container"))?;
    if mount_id(&dir)? == root_mnt {
        anyhow::bail!("{dest} is not a separate mount");
    }
    let spec = walk::TreeSpec {
        member_prefix: prefix,
        container_root: dest,
        source,
        overlay: false,
        include_root: true,
    };
    tokio::task::block_in_place(|| walker.walk(&dir, &spec, &walk::Lowers::none()))?;
    Ok(())
}

fn mount_id(fd: &std::os::fd::OwnedFd) -> Result<u64> {
    Ok(open::mount_id(fd)?)
}
