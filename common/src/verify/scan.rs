//! Phase 1 of [`verify`](super::verify): the one streaming pass over the file. Only the
//! capped zstd and tar readers touch bundle bytes here: every member is hashed, small
//! exhibit/ members are kept in memory, the content entries' header and content
//! digests and the bytes of changes.jsonl are spooled to private temporary files, and
//! the file itself is hashed. Nothing read here is interpreted yet.

use super::{invalid, VerifyError};
use crate::limits::{self, MAX_CONTENT_ENTRIES, MAX_DECOMPRESSED, MAX_EXHIBIT_MEMBERS, MAX_JSON};
use crate::members::{classify, MemberClass, ENVELOPE, MANIFEST};
use crate::tarcodec::{render, EntryType, TarError, TarReader};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::{File, Metadata};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

/// Counts decompressed bytes and refuses more than the limit.
pub(super) struct Capped<R> {
    pub(super) inner: R,
    pub(super) left: u64,
}

// The zstd decoder reports a file that ends inside a frame as "incomplete frame"; say
// what that means for a bundle.
fn truncation(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("truncated: the file ends inside a zstd frame ({e})"),
        )
    } else {
        e
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe).map_err(truncation)? {
                0 => Ok(0),
                _ => Err(io::Error::other("decompressed size over the bundle limit")),
            };
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want]).map_err(truncation)?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Hashes every byte read from the bundle file, so that the verifying pass also gives
/// the sha256 of the file itself (no second read).
struct FileHasher<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Read for FileHasher<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

pub(super) type BundleTar<R> =
    TarReader<Capped<zstd::stream::read::Decoder<'static, BufReader<R>>>>;

pub(super) fn open_tar<R: Read>(raw: R, cap: u64) -> io::Result<BundleTar<R>> {
    let mut dec =
        zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(256 << 10, raw))?;
    dec.window_log_max(limits::ZSTD_WINDOW_LOG_MAX)?;
    Ok(TarReader::new(Capped {
        inner: dec,
        left: cap,
    }))
}

pub(super) fn tar_err(member: Option<&str>, e: TarError) -> VerifyError {
    invalid(member, e.to_string())
}

/// Reads the current entry's body through `sink`, hashing it; returns the hex digest.
fn hash_body<R: Read>(
    tar: &mut TarReader<R>,
    member: &str,
    mut sink: impl FnMut(&[u8]) -> io::Result<()>,
) -> Result<String, VerifyError> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 128 << 10];
    loop {
        let n = tar
            .read_body(&mut buf)
            .map_err(|e| tar_err(Some(member), e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        sink(&buf[..n]).map_err(|e| invalid(Some(member), format!("spooling: {e}")))?;
    }
    Ok(hex::encode(h.finalize()))
}

// Budget for exhibit/ members kept in memory after the verifying pass.
const MEMORY_BUDGET: u64 = 96 << 20;

/// What the scanning pass saw, none of it interpreted yet.
pub(super) struct Scan {
    /// exhibit/ members but the envelope, in tar order, with their sha256 (hex).
    pub observed: Vec<(String, String)>,
    /// The exhibit/ members small enough to keep, by name.
    pub members: BTreeMap<String, Vec<u8>>,
    /// Per content entry: name length, name, header sha256, content sha256.
    pub entries: BufWriter<File>,
    /// The bytes of changes.jsonl.
    pub changes: tempfile::NamedTempFile,
    /// The envelope's bytes.
    pub envelope: Vec<u8>,
    pub file_sha256: String,
    pub decompressed_size: u64,
}

/// Reads the whole file once: hashes, keeps and spools; refuses what is malformed
/// before any signature could vouch for it (names, order, sizes, canonical headers).
pub(super) fn scan(
    path: &Path,
    file: &File,
    meta: &Metadata,
    max_decompressed: Option<u64>,
) -> Result<Scan, VerifyError> {
    let io_err = |source| VerifyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let cap = max_decompressed.unwrap_or(MAX_DECOMPRESSED);
    let raw = FileHasher {
        inner: file,
        hasher: Sha256::new(),
        bytes: 0,
    };
    let mut tar = open_tar(raw, cap).map_err(io_err)?;

    let mut observed: Vec<(String, String)> = Vec::new();
    let mut members: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut budget = MEMORY_BUDGET;
    let mut entries = BufWriter::new(tempfile::tempfile().map_err(io_err)?);
    let mut changes = tempfile::NamedTempFile::new().map_err(io_err)?;
    let mut changes_size = 0u64;
    let mut envelope: Option<Vec<u8>> = None;
    let mut rank = 0u8;
    let mut content_count = 0u64;
    let mut exhibit_count = 0u64;
    let mut current: Option<String> = None;
    loop {
        let entry = match tar.next_entry() {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(e) => {
                let after = current
                    .as_deref()
                    .map(|m| format!(" (after member {m})"))
                    .unwrap_or_default();
                return Err(invalid(None, format!("{e}{after}")));
            }
        };
        let name_bytes = entry.header.path.clone();
        let name = String::from_utf8_lossy(&name_bytes).into_owned();
        if envelope.is_some() {
            return Err(invalid(Some(&name), "member after the envelope"));
        }
        let class = classify(&name_bytes)
            .ok_or_else(|| invalid(Some(&name), "not a valid bundle member name"))?;
        if class.rank() < rank {
            return Err(invalid(Some(&name), "member out of order"));
        }
        rank = class.rank();
        current = Some(name.clone());
        match class {
            MemberClass::Content { .. } => {
                content_count += 1;
                if content_count > MAX_CONTENT_ENTRIES {
                    return Err(invalid(Some(&name), "more content entries than the limit"));
                }
                if entry.header.kind != EntryType::File && entry.header.size != 0 {
                    return Err(invalid(Some(&name), "non-file entry with content"));
                }
                let digest = hash_body(&mut tar, &name, |_| Ok(()))?;
                let header_digest = Sha256::digest(&entry.raw);
                let w = &mut entries;
                let spool = (|| -> io::Result<()> {
                    w.write_all(&(name_bytes.len() as u32).to_le_bytes())?;
                    w.write_all(&name_bytes)?;
                    w.write_all(&header_digest)?;
                    w.write_all(&hex::decode(&digest).unwrap_or_default())?;
                    Ok(())
                })();
                spool.map_err(io_err)?;
            }
            MemberClass::Changes | MemberClass::Metadata { .. } | MemberClass::Envelope => {
                exhibit_count += 1;
                if exhibit_count > MAX_EXHIBIT_MEMBERS {
                    return Err(invalid(Some(&name), "more exhibit/ members than the limit"));
                }
                if observed.iter().any(|(n, _)| *n == name) {
                    return Err(invalid(Some(&name), "duplicate member"));
                }
                if entry.raw
                    != render(&crate::tarcodec::EntryHeader::metadata(
                        &name,
                        entry.header.size,
                    ))
                {
                    return Err(invalid(
                        Some(&name),
                        "header is not the canonical metadata header",
                    ));
                }
                let size = entry.header.size;
                if class == MemberClass::Envelope {
                    if size > limits::MAX_ENVELOPE {
                        return Err(invalid(Some(&name), "envelope over the size limit"));
                    }
                    let mut bytes = Vec::with_capacity(size as usize);
                    hash_body(&mut tar, &name, |b| {
                        bytes.extend_from_slice(b);
                        Ok(())
                    })?;
                    envelope = Some(bytes);
                    continue;
                }
                let digest = if class == MemberClass::Changes {
                    changes_size = size;
                    let file = changes.as_file_mut();
                    let mut w = BufWriter::new(file);
                    let d = hash_body(&mut tar, &name, |b| w.write_all(b))?;
                    w.flush().map_err(io_err)?;
                    d
                } else if size <= MAX_JSON
                    && (name == MANIFEST
                        || name == crate::members::ACQUISITION
                        || (size <= budget
                            && !name.starts_with("exhibit/exe/")
                            && !name.starts_with("exhibit/memory/")))
                {
                    // The manifest is always kept (it is needed to finish verifying);
                    // executables and memory regions are read again on demand.
                    budget = budget.saturating_sub(size);
                    let mut bytes = Vec::with_capacity(size as usize);
                    let d = hash_body(&mut tar, &name, |b| {
                        bytes.extend_from_slice(b);
                        Ok(())
                    })?;
                    members.insert(name.clone(), bytes);
                    d
                } else {
                    hash_body(&mut tar, &name, |_| Ok(()))?
                };
                observed.push((name, digest));
            }
        }
    }
    let decompressed_size = cap - tar.get_mut().left;
    // The rest of the file (what zstd had not asked for yet) goes through the same
    // hasher: the digest covers exactly the bytes of the file this pass read.
    let raw = tar.get_mut().inner.get_mut().get_mut();
    io::copy(raw, &mut io::sink()).map_err(io_err)?;
    if raw.bytes != meta.len() {
        return Err(invalid(
            None,
            format!(
                "the file changed while it was verified ({} bytes read, {} expected)",
                raw.bytes,
                meta.len()
            ),
        ));
    }
    let file_sha256 = hex::encode(std::mem::take(&mut raw.hasher).finalize());
    drop(tar);
    let envelope =
        envelope.ok_or_else(|| invalid(Some(ENVELOPE), "missing: the bundle has no envelope"))?;
    let _ = changes_size;
    Ok(Scan {
        observed,
        members,
        entries,
        changes,
        envelope,
        file_sha256,
        decompressed_size,
    })
}
