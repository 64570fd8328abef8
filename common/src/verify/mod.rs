//! Bundle verification, in one streaming pass, and the [`VerifiedBundle`] it produces.
//!
//! Three phases, one module each: [`scan`] (the one pass over the file: before the
//! signature verifies only the capped zstd and tar readers touch bundle bytes; members
//! are hashed, small exhibit/ members kept in memory, and the content trees' header
//! digests and content digests plus the bytes of changes.jsonl spooled to private
//! temporary files), [`envelope`] (the signature, then every exhibit/ member against its
//! subject, the manifest and the acquisition chain) and [`records`] (only then is
//! changes.jsonl parsed and compared with the entries one to one). Only [`verify`]
//! builds a [`VerifiedBundle`].

mod envelope;
mod records;
mod scan;

pub use records::Records;

use crate::dsse::{SignerStatus, Statement};
use crate::limits::{MAX_DECOMPRESSED, MAX_JSON};
use crate::manifest::Manifest;
use crate::members::{classify, MemberClass, CHANGES};
use crate::records::ChangeRecord;
use crate::tarcodec::TarReader;
use ed25519_dalek::VerifyingKey;
use scan::{open_tar, tar_err, BundleTar};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::{Path, PathBuf};

/// Why a bundle could not be verified.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The file could not be read at all (exit 2).
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The bundle is not what it claims to be (exit 3).
    #[error("{0}")]
    Invalid(Invalid),
}

/// A verification failure, naming the member where there is one.
#[derive(Debug)]
pub struct Invalid {
    pub member: Option<String>,
    pub reason: String,
    /// Why the envelope did not verify, when that is the failure (unsigned with a key,
    /// no signature by the given key...): callers choose hints from this, not the text.
    pub envelope: Option<crate::dsse::EnvelopeError>,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.member {
            Some(m) => write!(f, "member {m}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

impl VerifyError {
    /// The exit code of DESIGN.md: 2 for I/O, 3 for a bundle that failed verification.
    pub fn exit_code(&self) -> u8 {
        match self {
            VerifyError::Io { .. } => 2,
            VerifyError::Invalid(_) => 3,
        }
    }
}

fn invalid(member: Option<&str>, reason: impl Into<String>) -> VerifyError {
    VerifyError::Invalid(Invalid {
        member: member.map(str::to_string),
        reason: reason.into(),
        envelope: None,
    })
}

/// Options of a verification.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Keys of which one must have signed; empty checks hashes only (signer unverified).
    pub keys: Vec<VerifyingKey>,
    /// Decompressed-size cap; defaults to the bundle limit.
    pub max_decompressed: Option<u64>,
}

/// A bundle whose signature (when keys were given), member digests and records all
/// verified. It owns the open file and the verified statement.
#[derive(Debug)]
pub struct VerifiedBundle {
    path: PathBuf,
    file: File,
    statement: Statement,
    manifest: Manifest,
    signer: SignerStatus,
    members: BTreeMap<String, Vec<u8>>,
    digests: BTreeMap<String, String>,
    changes: tempfile::NamedTempFile,
    envelope: Vec<u8>,
    file_sha256: String,
    content_entries: u64,
    compressed_size: u64,
    decompressed_size: u64,
}

/// Verifies the bundle at `path`.
pub fn verify(path: &Path, opts: &VerifyOptions) -> Result<VerifiedBundle, VerifyError> {
    let io_err = |source| VerifyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(io_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    if meta.len() == 0 {
        return Err(invalid(None, "truncated: the file is empty"));
    }
    let scan = scan::scan(path, &file, &meta, opts.max_decompressed)?;
    let sealed = envelope::check(&scan, opts)?;
    let content_entries = records::check(path, scan.entries, &scan.changes)?;
    Ok(VerifiedBundle {
        path: path.to_path_buf(),
        file,
        statement: sealed.statement,
        manifest: sealed.manifest,
        signer: sealed.signer,
        members: scan.members,
        digests: sealed.digests,
        changes: scan.changes,
        envelope: scan.envelope,
        content_entries,
        file_sha256: scan.file_sha256,
        compressed_size: meta.len(),
        decompressed_size: scan.decompressed_size,
    })
}

impl VerifiedBundle {
    /// Path the bundle was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The verified manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    /// The verified statement.
    pub fn statement(&self) -> &Statement {
        &self.statement
    }
    /// Who signed.
    pub fn signer(&self) -> &SignerStatus {
        &self.signer
    }
    /// Number of content entries.
    pub fn content_entries(&self) -> u64 {
        self.content_entries
    }
    /// Size of the bundle file.
    pub fn compressed_size(&self) -> u64 {
        self.compressed_size
    }
    /// Size of the tar stream.
    pub fn decompressed_size(&self) -> u64 {
        self.decompressed_size
    }
    /// Verified sha256 of each exhibit/ member.
    pub fn member_digests(&self) -> &BTreeMap<String, String> {
        &self.digests
    }

    /// The bytes of an exhibit/ member (kept from the verifying pass, or read again and
    /// re-hashed when it was too large to keep; then capped at the JSON limit).
    pub fn member(&self, name: &str) -> Result<Option<Vec<u8>>, VerifyError> {
        if let Some(b) = self.members.get(name) {
            return Ok(Some(b.clone()));
        }
        if !self.digests.contains_key(name) || name == CHANGES {
            return Ok(None);
        }
        let mut out = Vec::new();
        self.read_member(name, &mut |r| {
            r.take(MAX_JSON).read_to_end(&mut out)?;
            Ok(())
        })?;
        Ok(Some(out))
    }

    /// Streams one exhibit/ member through `f` in a second pass, re-hashing it; a
    /// mismatch with the verified digest is an error.
    pub fn read_member(
        &self,
        name: &str,
        f: &mut dyn FnMut(&mut dyn Read) -> io::Result<()>,
    ) -> Result<(), VerifyError> {
        let want = self
            .digests
            .get(name)
            .ok_or_else(|| invalid(Some(name), "not in the bundle"))?
            .clone();
        let mut tar = self.reopen()?;
        while let Some(e) = tar.next_entry().map_err(|e| tar_err(Some(name), e))? {
            if e.header.path != name.as_bytes() {
                continue;
            }
            let mut reader = HashingBody {
                tar: &mut tar,
                hasher: Sha256::new(),
            };
            f(&mut reader).map_err(|e| invalid(Some(name), e.to_string()))?;
            io::copy(&mut reader, &mut io::sink())
                .map_err(|e| invalid(Some(name), e.to_string()))?;
            if hex::encode(reader.hasher.finalize()) != want {
                return Err(invalid(Some(name), "changed since verification"));
            }
            return Ok(());
        }
        Err(invalid(Some(name), "not found in the second pass"))
    }

    fn reopen(&self) -> Result<BundleTar<&File>, VerifyError> {
        let mut f = &self.file;
        f.rewind().map_err(|source| VerifyError::Io {
            path: self.path.clone(),
            source,
        })?;
        open_tar(&self.file, MAX_DECOMPRESSED).map_err(|source| VerifyError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// The verified envelope's bytes, exactly as stored in the bundle.
    pub fn envelope_bytes(&self) -> &[u8] {
        &self.envelope
    }

    /// sha256 (hex) of the bundle file itself, computed in the verifying pass over the
    /// same bytes that were verified.
    pub fn file_sha256(&self) -> Result<String, VerifyError> {
        Ok(self.file_sha256.clone())
    }

    /// Streams every exhibit/ member but the envelope, in tar order, through `f` in one
    /// second pass; each is re-hashed against its verified digest.
    pub fn walk_members(
        &self,
        f: &mut dyn FnMut(&str, &mut dyn Read) -> io::Result<()>,
    ) -> Result<(), VerifyError> {
        self.walk_pass(true, false, &mut |entry, body| match entry {
            WalkEntry::Member(name) => f(name, body),
            WalkEntry::Content(_) => Ok(()),
        })
    }

    /// Streams every exhibit/ member but the envelope and every content entry (with its
    /// record), in tar order, through `f` in one second pass: each exhibit/ member is
    /// re-hashed against its verified digest, each content body against its record.
    pub fn walk(
        &self,
        f: &mut dyn FnMut(WalkEntry<'_>, &mut dyn Read) -> io::Result<()>,
    ) -> Result<(), VerifyError> {
        self.walk_pass(true, true, f)
    }

    // The second pass behind walk, walk_members and walk_content. Entries of a kind not
    // asked for are skipped unhashed; a pass that ends with verified members or records
    // left over is "changed since verification".
    fn walk_pass(
        &self,
        members: bool,
        content: bool,
        f: &mut dyn FnMut(WalkEntry<'_>, &mut dyn Read) -> io::Result<()>,
    ) -> Result<(), VerifyError> {
        let mut tar = self.reopen()?;
        let mut records = if content { Some(self.records()?) } else { None };
        let mut members_seen = 0usize;
        while let Some(e) = tar.next_entry().map_err(|e| tar_err(None, e))? {
            let class = classify(&e.header.path);
            let is_content = matches!(class, Some(MemberClass::Content { .. }));
            let name = String::from_utf8_lossy(&e.header.path).into_owned();
            let mut reader = HashingBody {
                tar: &mut tar,
                hasher: Sha256::new(),
            };
            let want = if is_content {
                let Some(records) = records.as_mut() else {
                    continue;
                };
                let rec = records
                    .next()
                    .ok_or_else(|| invalid(Some(&name), "changed since verification"))??;
                if rec.member.as_bytes() != e.header.path.as_slice() {
                    return Err(invalid(Some(&name), "changed since verification"));
                }
                f(WalkEntry::Content(&rec), &mut reader)
                    .map_err(|e| invalid(Some(&name), e.to_string()))?;
                rec.sha256
            } else {
                let Some(want) = self.digests.get(&name) else {
                    continue;
                };
                if !members {
                    continue;
                }
                members_seen += 1;
                f(WalkEntry::Member(&name), &mut reader)
                    .map_err(|e| invalid(Some(&name), e.to_string()))?;
                Some(want.clone())
            };
            io::copy(&mut reader, &mut io::sink())
                .map_err(|e| invalid(Some(&name), e.to_string()))?;
            let got = hex::encode(reader.hasher.finalize());
            if want.is_some_and(|w| w != got) {
                return Err(invalid(Some(&name), "changed since verification"));
            }
        }
        if let Some(rec) = records.as_mut().and_then(|r| r.next()) {
            let member = rec.map(|r| r.member.lossy()).unwrap_or_default();
            return Err(invalid(
                Some(&member),
                "changed since verification: missing from the second pass",
            ));
        }
        if members && members_seen != self.digests.len() {
            return Err(invalid(
                None,
                "changed since verification: exhibit/ members missing from the second pass",
            ));
        }
        Ok(())
    }

    /// The content records of changes.jsonl, in tar order.
    pub fn records(&self) -> Result<Records, VerifyError> {
        let f = self.changes.reopen().map_err(|source| VerifyError::Io {
            path: self.path.clone(),
            source,
        })?;
        Ok(Records {
            reader: BufReader::new(f),
            line: Vec::new(),
        })
    }

    /// Walks the content trees in a second pass, handing each record with a reader of
    /// its stored bytes to `f`; every body is re-hashed against its record.
    pub fn walk_content(
        &self,
        f: &mut dyn FnMut(&ChangeRecord, &mut dyn Read) -> io::Result<()>,
    ) -> Result<(), VerifyError> {
        self.walk_pass(false, true, &mut |entry, body| match entry {
            WalkEntry::Content(rec) => f(rec, body),
            WalkEntry::Member(_) => Ok(()),
        })
    }
}

/// One entry of [`VerifiedBundle::walk`].
#[derive(Debug, Clone, Copy)]
pub enum WalkEntry<'a> {
    /// An exhibit/ member (never the envelope), by name.
    Member(&'a str),
    /// A content entry with its verified record.
    Content(&'a ChangeRecord),
}

struct HashingBody<'a, R: Read> {
    tar: &'a mut TarReader<R>,
    hasher: Sha256,
}

impl<R: Read> Read for HashingBody<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.tar.read_body(buf).map_err(io::Error::other)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
