//! The streaming bundle writer: PAX tar inside (multithreaded) zstd, every member hashed
//! as it streams, content records spooled to a private temporary file, then the
//! manifest and the DSSE envelope last.

use crate::dsse::{seal, Statement, Subject, PREDICATE_TYPE, STATEMENT_TYPE};
use crate::limits::{self, LEVELS, MAX_CONTENT_ENTRIES, MAX_ENTRY_SIZE, MAX_EXHIBIT_MEMBERS};
use crate::manifest::{Manifest, TreeCount};
use crate::members::{classify, MemberClass, CHANGES, CONTENT_TREES, ENVELOPE, MANIFEST};
use crate::records::{ChangeRecord, FileType};
use crate::tarcodec::{end_marker, padding, render, EntryHeader, EntryType};
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{self, BufWriter, Read, Seek, Write};

/// Compression settings.
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    /// zstd level, 1 to 19.
    pub level: i32,
    /// zstd worker threads; 0 compresses on the calling thread.
    pub threads: u32,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            level: 3,
            threads: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
        }
    }
}

/// Why writing a bundle failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("writing bundle: {0}")]
    Io(#[from] io::Error),
    #[error("compression level {0} is outside 1..=19")]
    Level(i32),
    #[error("member {0} is not a valid bundle member name")]
    Name(String),
    #[error("member {0} is out of order")]
    Order(String),
    #[error("{0} would exceed a bundle limit")]
    Limit(String),
    #[error("content source for {member} failed: {source}")]
    Source { member: String, source: io::Error },
}

/// What happened while copying one entry's content.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyOutcome {
    /// Bytes that came from the source.
    pub from_source: u64,
    /// The source ended before the declared size; the rest was zero-filled.
    pub short: bool,
    /// The source had more bytes than declared (they were not stored).
    pub grew: bool,
}

// Tracks the longest line of a JSON Lines member as it streams.
#[derive(Default)]
struct LineCheck {
    current: u64,
    over: bool,
}

impl LineCheck {
    fn feed(&mut self, bytes: &[u8]) {
        for part in bytes.split_inclusive(|&b| b == b'\n') {
            let newline = part.last() == Some(&b'\n');
            self.current += part.len() as u64 - u64::from(newline);
            if self.current > limits::MAX_JSON_LINE {
                self.over = true;
            }
            if newline {
                self.current = 0;
            }
        }
    }
}

/// Writes one bundle to `W`.
pub struct BundleWriter<W: Write> {
    out: zstd::stream::write::Encoder<'static, W>,
    subjects: Vec<Subject>,
    rank: u8,
    changes: Option<BufWriter<std::fs::File>>,
    changes_written: bool,
    content_entries: u64,
    exhibit_members: u64,
    trees: BTreeMap<String, TreeCount>,
    buf: Vec<u8>,
}

impl<W: Write> BundleWriter<W> {
    /// Starts a bundle; nothing is written until the first member.
    pub fn new(out: W, opts: WriterOptions) -> Result<Self, WriteError> {
        if !LEVELS.contains(&opts.level) {
            return Err(WriteError::Level(opts.level));
        }
        let mut enc = zstd::stream::write::Encoder::new(out, opts.level)?;
        enc.include_checksum(true)?;
        if opts.threads > 0 {
            enc.multithread(opts.threads)?;
        }
        // Levels 1-19 never use a window over 2^23, within what readers accept
        // (ZSTD_WINDOW_LOG_MAX). Jobs of 2 MiB keep each worker's buffers small, so
        // the collector's memory stays flat however large the diff.
        if opts.threads > 0 {
            enc.set_parameter(zstd::zstd_safe::CParameter::JobSize(2 << 20))?;
        }
        Ok(BundleWriter {
            out: enc,
            subjects: Vec::new(),
            rank: 0,
            changes: None,
            changes_written: false,
            content_entries: 0,
            exhibit_members: 0,
            trees: BTreeMap::new(),
            buf: vec![0u8; 256 << 10],
        })
    }

    fn enter(&mut self, name: &str, class: MemberClass) -> Result<(), WriteError> {
        let rank = class.rank();
        if rank < self.rank {
            return Err(WriteError::Order(name.to_string()));
        }
        if rank > 7 && !self.changes_written && class != MemberClass::Changes {
            self.write_changes()?;
        }
        self.rank = rank;
        Ok(())
    }

    /// Adds an exhibit/ metadata member from memory.
    pub fn add_member(&mut self, name: &str, bytes: &[u8]) -> Result<(), WriteError> {
        self.add_member_from(name, &mut &bytes[..], bytes.len() as u64)
    }

    /// Adds an exhibit/ metadata member of exactly `size` bytes from a reader (a spool).
    pub fn add_member_from(
        &mut self,
        name: &str,
        src: &mut dyn Read,
        size: u64,
    ) -> Result<(), WriteError> {
        let class = classify(name.as_bytes()).ok_or_else(|| WriteError::Name(name.to_string()))?;
        if !matches!(class, MemberClass::Metadata { .. }) || name == MANIFEST {
            return Err(WriteError::Name(name.to_string()));
        }
        self.enter(name, class)?;
        self.metadata_member(name, src, size)
    }

    fn metadata_member(
        &mut self,
        name: &str,
        src: &mut dyn Read,
        size: u64,
    ) -> Result<(), WriteError> {
        if size > MAX_ENTRY_SIZE {
            return Err(WriteError::Limit(name.to_string()));
        }
        // The reader's units: a JSON document (the acquisition log is read as one) in
        // bytes, a JSON Lines member per line.
        let lines = name.ends_with(".jsonl") && name != crate::members::ACQUISITION;
        if (name.ends_with(".json") || name == crate::members::ACQUISITION)
            && size > limits::MAX_JSON_DOCUMENT
        {
            return Err(WriteError::Limit(name.to_string()));
        }
        self.exhibit_members += 1;
        if self.exhibit_members > MAX_EXHIBIT_MEMBERS {
            return Err(WriteError::Limit("exhibit/ member count".into()));
        }
        self.out
            .write_all(&render(&EntryHeader::metadata(name, size)))?;
        let mut line = LineCheck::default();
        let (digest, outcome) = self.copy_exact(src, size, lines.then_some(&mut line))?;
        if line.over {
            return Err(WriteError::Limit(format!("a line of {name}")));
        }
        if outcome.short || outcome.grew {
            return Err(WriteError::Source {
                member: name.to_string(),
                source: io::Error::new(io::ErrorKind::UnexpectedEof, "spool size changed"),
            });
        }
        self.subjects.push(Subject::sha256(name, &digest));
        Ok(())
    }

    // Copies exactly `size` bytes (zero-filling a short source), then tar padding.
    fn copy_exact(
        &mut self,
        src: &mut dyn Read,
        size: u64,
        mut lines: Option<&mut LineCheck>,
    ) -> Result<(String, CopyOutcome), WriteError> {
        let mut h = Sha256::new();
        let mut left = size;
        let mut outcome = CopyOutcome::default();
        while left > 0 {
            let want = (self.buf.len() as u64).min(left) as usize;
            let n = if outcome.short {
                self.buf[..want].fill(0);
                want
            } else {
                match src.read(&mut self.buf[..want]) {
                    Ok(0) => {
                        outcome.short = true;
                        continue;
                    }
                    Ok(n) => {
                        outcome.from_source += n as u64;
                        n
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(WriteError::Source {
                            member: String::new(),
                            source: e,
                        })
                    }
                }
            };
            h.update(&self.buf[..n]);
            if let Some(l) = lines.as_deref_mut() {
                l.feed(&self.buf[..n]);
            }
            self.out.write_all(&self.buf[..n])?;
            left -= n as u64;
        }
        if !outcome.short {
            let mut probe = [0u8; 1];
            outcome.grew = matches!(src.read(&mut probe), Ok(n) if n > 0);
        }
        let pad = padding(size);
        self.out.write_all(&[0u8; 512][..pad])?;
        Ok((hex::encode(h.finalize()), outcome))
    }

    /// Adds one content-tree entry described by `record`. The tar header is rendered from
    /// the record; for regular files exactly `record.stored_size` bytes are copied from
    /// `content` and their sha256 set on the record. `finish` may then amend the record
    /// (for example to flag a change during the read) before it is spooled.
    pub fn add_content(
        &mut self,
        mut record: ChangeRecord,
        content: Option<&mut dyn Read>,
        finish: impl FnOnce(&mut ChangeRecord, CopyOutcome),
    ) -> Result<(), WriteError> {
        let member = record.member.lossy();
        let class =
            classify(record.member.as_bytes()).ok_or_else(|| WriteError::Name(member.clone()))?;
        let MemberClass::Content { tree } = class else {
            return Err(WriteError::Name(member));
        };
        if self.changes_written {
            return Err(WriteError::Order(member));
        }
        self.enter(&member, class)?;
        self.content_entries += 1;
        if self.content_entries > MAX_CONTENT_ENTRIES {
            return Err(WriteError::Limit("content entry count".into()));
        }
        if record.stored_size > MAX_ENTRY_SIZE {
            return Err(WriteError::Limit(member));
        }
        if record.member.as_bytes().len() > limits::MAX_PATH
            || record
                .link_target
                .as_ref()
                .is_some_and(|l| l.as_bytes().len() > limits::MAX_PATH)
        {
            return Err(WriteError::Limit(format!("path of {member}")));
        }
        let header = record.tar_header();
        if header.kind != EntryType::File || record.file_type != FileType::File {
            record.stored_size = 0;
        }
        let header = record.tar_header();
        self.out.write_all(&render(&header))?;
        let mut outcome = CopyOutcome::default();
        if header.kind == EntryType::File {
            let mut empty: &[u8] = &[];
            let src: &mut dyn Read = match content {
                Some(r) => r,
                None => &mut empty,
            };
            let (digest, o) = self
                .copy_exact(src, header.size, None)
                .map_err(|e| match e {
                    WriteError::Source { source, .. } => WriteError::Source {
                        member: member.clone(),
                        source,
                    },
                    e => e,
                })?;
            outcome = o;
            record.sha256 = (record.file_type == FileType::File).then_some(digest);
        } else {
            record.sha256 = None;
        }
        finish(&mut record, outcome);
        let count = self
            .trees
            .entry(CONTENT_TREES[tree].to_string())
            .or_default();
        count.entries += 1;
        count.bytes += header.size;
        let spool = match &mut self.changes {
            Some(s) => s,
            None => self.changes.insert(BufWriter::new(tempfile::tempfile()?)),
        };
        let line = serde_json::to_vec(&record).map_err(io::Error::from)?;
        if line.len() as u64 > limits::MAX_JSON_LINE {
            return Err(WriteError::Limit(format!("the record of {member}")));
        }
        spool.write_all(&line)?;
        spool.write_all(b"\n")?;
        Ok(())
    }

    fn write_changes(&mut self) -> Result<(), WriteError> {
        self.changes_written = true;
        let (mut file, size) = match self.changes.take() {
            Some(spool) => {
                let mut f = spool.into_inner().map_err(|e| e.into_error())?;
                let size = f.stream_position()?;
                f.rewind()?;
                (Some(f), size)
            }
            None => (None, 0),
        };
        let mut empty: &[u8] = &[];
        let src: &mut dyn Read = match &mut file {
            Some(f) => f,
            None => &mut empty,
        };
        self.rank = MemberClass::Changes.rank();
        self.metadata_member(CHANGES, src, size)
    }

    /// Entries and stored bytes per content tree so far.
    pub fn tree_counts(&self) -> &BTreeMap<String, TreeCount> {
        &self.trees
    }

    /// Writes the manifest (with the tree counts filled in) and the envelope, signed
    /// when a key is given, ends the archive and returns the underlying writer.
    pub fn finish(
        mut self,
        mut manifest: Manifest,
        key: Option<&SigningKey>,
    ) -> Result<(W, Manifest), WriteError> {
        if !self.changes_written {
            self.write_changes()?;
        }
        manifest.counts.trees = self.trees.clone();
        let manifest_bytes = serde_json::to_vec_pretty(&manifest).map_err(io::Error::from)?;
        self.rank = 12;
        self.metadata_member(
            MANIFEST,
            &mut &manifest_bytes[..],
            manifest_bytes.len() as u64,
        )?;
        let statement = Statement {
            statement_type: STATEMENT_TYPE.to_string(),
            subject: std::mem::take(&mut self.subjects),
            predicate_type: PREDICATE_TYPE.to_string(),
            predicate: serde_json::to_value(&manifest).map_err(io::Error::from)?,
        };
        let payload = serde_json::to_vec(&statement).map_err(io::Error::from)?;
        let envelope = serde_json::to_vec_pretty(&seal(&payload, key)).map_err(io::Error::from)?;
        self.exhibit_members += 1;
        if self.exhibit_members > MAX_EXHIBIT_MEMBERS {
            return Err(WriteError::Limit("exhibit/ member count".into()));
        }
        if envelope.len() as u64 > limits::MAX_ENVELOPE {
            return Err(WriteError::Limit("the envelope".into()));
        }
        self.out.write_all(&render(&EntryHeader::metadata(
            ENVELOPE,
            envelope.len() as u64,
        )))?;
        self.out.write_all(&envelope)?;
        self.out
            .write_all(&[0u8; 512][..padding(envelope.len() as u64)])?;
        self.out.write_all(&end_marker())?;
        let inner = self.out.finish()?;
        Ok((inner, manifest))
    }
}
