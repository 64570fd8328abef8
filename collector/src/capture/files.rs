//! The container's filesystem diff: the overlay upper dir walked by directory fd, or,
//! where there is none on this host, the diff through the runtime's API.

use super::{first_of, Run};
use crate::host::{open, walk};
use crate::runtime::{ApiEntry, Runtime};
use anyhow::{Context, Result};
use exhibit_common::custody::Outcome;
use exhibit_common::manifest::ReasonCode;
use exhibit_common::records::{ChangeKind, ChangeRecord, FileType, MountRecord, Source};
use exhibit_common::text::ByteText;
use exhibit_common::writer::BundleWriter;
use std::io::{Read, Seek, Write};

impl Run<'_> {
    /// Writes the content trees: the diff, then the container's mounts (`mounts`
    /// gains the runtime files and /dev/shm); returns the manifest's `fs_method`.
    pub(super) async fn write_files<R: Runtime, W: Write>(
        &mut self,
        rt: &R,
        writer: &mut BundleWriter<W>,
        mounts: &mut Vec<MountRecord>,
        tick: &dyn Fn(u64, u64),
    ) -> Result<&'static str> {
        let wopts = walk::WalkOptions {
            max_file_size: self.opts.max_file_size,
            max_total: self.opts.max_total,
        };
        let mut walker = walk::Walker::new(writer, wopts, tick);
        let fs_method = self.write_diff(rt, &mut walker).await?;
        let mount_errors = self.write_mounts(&mut walker, mounts)?;
        let mut stats = walker.stats.clone();
        stats.errors.extend(mount_errors);
        self.log.record(
            "files",
            Outcome::ok_unless(!stats.errors.is_empty()),
            Some(format!(
                "{fs_method}: {} entries, {} bytes stored, {} not captured",
                stats.entries, stats.bytes, stats.not_captured
            )),
            (!stats.errors.is_empty()).then(|| first_of(&stats.errors, 50)),
        );
        if !stats.dropped_xattrs.is_empty() {
            let d = &stats.dropped_xattrs;
            self.log.record(
                "files.xattrs",
                Outcome::Info,
                Some(format!(
                    "{} extended attributes not stored (their records are flagged xattrs-dropped): {}",
                    d.len(),
                    first_of(d, 50)
                )),
                None,
            );
        }
        if stats.changed > 0 {
            self.lost(
                ReasonCode::FilesChanged,
                format!(
                    "{} files changed while they were read (their records are flagged changed-during-read)",
                    stats.changed
                ),
            );
        }
        if !stats.errors.is_empty() {
            self.lost(
                ReasonCode::FilesLost,
                format!(
                    "{} filesystem entries lost during the read (first: {})",
                    stats.errors.len(),
                    exhibit_common::custody::quote_at_most(
                        stats.errors[0].as_bytes(),
                        2 * exhibit_common::limits::MAX_QUOTED
                    )
                ),
            );
        }
        Ok(fs_method)
    }

    // The upper dir when there is one (and no --fs-method api), else the runtime API.
    async fn write_diff<R: Runtime, W: Write>(
        &mut self,
        rt: &R,
        walker: &mut walk::Walker<'_, W>,
    ) -> Result<&'static str> {
        let facts = self.facts;
        let Some(upper) = facts.upper_dir.as_ref().filter(|_| !self.opts.force_api) else {
            return self.write_api_diff(rt, walker).await;
        };
        let fs_method = if facts.upper_method.is_empty() {
            "overlay-upperdir"
        } else {
            facts.upper_method
        };
        self.log.record(
            "files.upperdir",
            Outcome::Info,
            Some(format!(
                "{} from {}",
                upper.display(),
                facts.upper_origin.as_deref().unwrap_or("the runtime")
            )),
            None,
        );
        let root = open::open_host_dir(upper)
            .with_context(|| format!("opening the upper dir {}", upper.display()))?;
        let (lowers, lower_errors) = walk::Lowers::open(&facts.lower_dirs);
        for e in lower_errors {
            self.log
                .record("files.lowers", Outcome::Error, None, Some(e));
        }
        let spec = walk::TreeSpec {
            member_prefix: "rootfs",
            container_root: "/",
            source: Source::Upper,
            overlay: true,
            include_root: false,
        };
        let literal = tokio::task::block_in_place(|| walker.walk(&root, &spec, &lowers))?;
        tokio::task::block_in_place(|| walker.literal(&root, &spec, &literal, &lowers))?;
        Ok(fs_method)
    }

    // No upper dir on this host (a failed snapshot lookup, a remote daemon), or
    // --fs-method api: the diff through the runtime's API, when it has one.
    async fn write_api_diff<R: Runtime, W: Write>(
        &mut self,
        rt: &R,
        walker: &mut walk::Walker<'_, W>,
    ) -> Result<&'static str> {
        let facts = self.facts;
        let why = match (&facts.upper_error, self.opts.force_api) {
            (_, true) if facts.upper_dir.is_some() => "--fs-method api".to_string(),
            (Some(e), _) => e.clone(),
            (None, _) => "the runtime reported no upper dir".to_string(),
        };
        if facts.upper_error.is_some() {
            self.log
                .record("files.upperdir", Outcome::Error, None, Some(why.clone()));
        }
        match rt.api_changes(&facts.id, self.opts.max_file_size).await {
            Ok(Some((entries, spool))) => {
                self.log.record("files.method", Outcome::Info, Some(format!("no readable overlay upper dir ({why}): container changes and archive download through the Engine API")), None);
                let lost = write_api_entries(walker, entries, spool)?;
                walker.stats.errors.extend(lost);
                Ok("engine-api")
            }
            Ok(None) => {
                self.lost(ReasonCode::FsNotCaptured, format!("no overlay upper dir on this host ({why}) and no runtime API for the diff: the filesystem was not captured"));
                Ok("none")
            }
            Err(e) => {
                self.lost(
                    ReasonCode::FsNotCaptured,
                    format!(
                        "no overlay upper dir ({why}) and the filesystem diff through the Engine API failed: {e:#}"
                    ),
                );
                Ok("engine-api")
            }
        }
    }
}

// Writes a diff read through the runtime API as rootfs/ and literal/ records.
fn write_api_entries<W: Write>(
    walker: &mut walk::Walker<'_, W>,
    entries: Vec<ApiEntry>,
    mut spool: std::fs::File,
) -> Result<Vec<String>> {
    let mut lost = Vec::new();
    let mut literal = Vec::new();
    for e in entries {
        let name_start = e
            .path
            .iter()
            .rposition(|&b| b == b'/')
            .map(|i| i + 1)
            .unwrap_or(0);
        let rel = e.path.strip_prefix(b"/").unwrap_or(&e.path).to_vec();
        let member = if e.kind == ChangeKind::Deleted {
            let mut m = b"rootfs/".to_vec();
            m.extend_from_slice(&e.path[1..name_start]);
            m.extend_from_slice(b".wh.");
            m.extend_from_slice(&e.path[name_start..]);
            m
        } else if e.file_type == FileType::File && e.path[name_start..].starts_with(b".wh.") {
            literal.push(e);
            continue;
        } else {
            [b"rootfs/".as_slice(), &rel].concat()
        };
        write_api_entry(walker, e, member, &mut spool, &mut lost)?;
    }
    for e in literal {
        let rel = e.path.strip_prefix(b"/").unwrap_or(&e.path).to_vec();
        write_api_entry(
            walker,
            e,
            [b"literal/".as_slice(), &rel].concat(),
            &mut spool,
            &mut lost,
        )?;
    }
    Ok(lost)
}

fn write_api_entry<W: Write>(
    walker: &mut walk::Walker<'_, W>,
    e: ApiEntry,
    member: Vec<u8>,
    spool: &mut std::fs::File,
    lost: &mut Vec<String>,
) -> Result<()> {
    let stored = e.content.map(|c| c.1).unwrap_or(0);
    let captured = e.reason.is_none()
        && !matches!(
            e.file_type,
            FileType::Fifo | FileType::Char | FileType::Block | FileType::Whiteout
        );
    if let Some(r) = &e.reason {
        if r != "over --max-file-size" {
            lost.push(format!("{}: {r}", String::from_utf8_lossy(&e.path)));
        }
    }
    let rec = ChangeRecord {
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        size: e.size,
        stored_size: stored,
        mtime_ns: e.mtime_ns,
        link_target: e.link_target.map(ByteText),
        captured,
        reason: e
            .reason
            .or_else(|| (e.file_type == FileType::Whiteout).then(|| "whiteout".to_string())),
        flags: vec!["engine-api".into()],
        ..ChangeRecord::new(member, e.path.clone(), Source::Upper, e.kind, e.file_type)
    };
    match e.content {
        Some((off, len)) => {
            spool.seek(std::io::SeekFrom::Start(off))?;
            let mut r = (&mut *spool).take(len);
            walker
                .writer
                .add_content(rec, Some(&mut r as &mut dyn Read), |_, _| {})?;
        }
        None => walker.writer.add_content(rec, None, |_, _| {})?,
    }
    Ok(())
}
