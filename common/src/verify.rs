//! Bundle verification, in one streaming pass, and the [`VerifiedBundle`] it produces.
//!
//! Before the signature verifies only the capped zstd and tar readers touch bundle
//! bytes: members are hashed, small exhibit/ members kept in memory, and the content
//! trees' header digests and content digests plus the bytes of changes.jsonl spooled to
//! private temporary files. Then the envelope is checked, every exhibit/ member against
//! its subject, and only then is changes.jsonl parsed and compared with the entries one
//! to one. Only [`verify`] builds a [`VerifiedBundle`].

use crate::dsse::{self, Envelope, SignerStatus, Statement, PREDICATE_TYPE, STATEMENT_TYPE};
use crate::json;
use crate::limits::{self, MAX_CONTENT_ENTRIES, MAX_DECOMPRESSED, MAX_EXHIBIT_MEMBERS, MAX_JSON};
use crate::manifest::Manifest;
use crate::members::{classify, MemberClass, CHANGES, ENVELOPE, MANIFEST};
use crate::records::{ChangeRecord, FileType};
use crate::tarcodec::{render, EntryType, TarError, TarReader};
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, Write};
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
    })
}

/// Counts decompressed bytes and refuses more than the limit.
struct Capped<R> {
    inner: R,
    left: u64,
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

type BundleTar<R> = TarReader<Capped<zstd::stream::read::Decoder<'static, BufReader<R>>>>;

fn open_tar<R: Read>(raw: R, cap: u64) -> io::Result<BundleTar<R>> {
    let mut dec =
        zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(256 << 10, raw))?;
    dec.window_log_max(limits::ZSTD_WINDOW_LOG_MAX)?;
    Ok(TarReader::new(Capped {
        inner: dec,
        left: cap,
    }))
}

fn tar_err(member: Option<&str>, e: TarError) -> VerifyError {
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

/// Options of a verification.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Keys of which one must have signed; empty checks hashes only (signer unverified).
    pub keys: Vec<VerifyingKey>,
    /// Decompressed-size cap; defaults to the bundle limit.
    pub max_decompressed: Option<u64>,
}

// Budget for exhibit/ members kept in memory after the verifying pass.
const MEMORY_BUDGET: u64 = 96 << 20;

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
    let cap = opts.max_decompressed.unwrap_or(MAX_DECOMPRESSED);
    let raw = FileHasher {
        inner: &file,
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

    // The signature first; nothing else is interpreted before it.
    let env: Envelope = json::parse_capped(&envelope, limits::MAX_ENVELOPE)
        .map_err(|e| invalid(Some(ENVELOPE), e.to_string()))?;
    let (payload, signer) =
        dsse::open(&env, &opts.keys).map_err(|e| invalid(Some(ENVELOPE), e.to_string()))?;
    let statement: Statement = json::parse_capped(&payload, limits::MAX_ENVELOPE)
        .map_err(|e| invalid(Some(ENVELOPE), format!("statement: {e}")))?;
    if statement.statement_type != STATEMENT_TYPE || statement.predicate_type != PREDICATE_TYPE {
        return Err(invalid(Some(ENVELOPE), "not an exhibit manifest statement"));
    }
    let mut digests = BTreeMap::new();
    for (i, (name, digest)) in observed.iter().enumerate() {
        let Some(subject) = statement.subject.get(i) else {
            return Err(invalid(
                Some(name),
                "member is not a subject of the signed statement",
            ));
        };
        if subject.name != *name {
            let missing = statement.subject.iter().any(|s| s.name == *name);
            return Err(if missing {
                invalid(
                    Some(&subject.name),
                    "subject missing from the bundle or out of order",
                )
            } else {
                invalid(
                    Some(name),
                    "member is not a subject of the signed statement",
                )
            });
        }
        if subject.digest.get("sha256") != Some(digest) {
            return Err(invalid(
                Some(name),
                "sha256 does not match the signed statement",
            ));
        }
        digests.insert(name.clone(), digest.clone());
    }
    if let Some(extra) = statement.subject.get(observed.len()) {
        return Err(invalid(
            Some(&extra.name),
            "subject missing from the bundle",
        ));
    }
    for required in [MANIFEST, CHANGES, crate::members::ACQUISITION] {
        if !digests.contains_key(required) {
            return Err(invalid(Some(required), "missing"));
        }
    }
    let manifest_bytes = members
        .get(MANIFEST)
        .ok_or_else(|| invalid(Some(MANIFEST), "too large"))?;
    let manifest_value: serde_json::Value =
        json::parse(manifest_bytes).map_err(|e| invalid(Some(MANIFEST), e.to_string()))?;
    if manifest_value != statement.predicate {
        return Err(invalid(Some(MANIFEST), "differs from the signed predicate"));
    }
    let manifest: Manifest = serde_json::from_value(manifest_value)
        .map_err(|e| invalid(Some(MANIFEST), e.to_string()))?;
    match members.get(crate::members::ACQUISITION) {
        Some(log) => {
            crate::custody::check_chain(log)
                .map_err(|e| invalid(Some(crate::members::ACQUISITION), e))?;
        }
        None => {
            return Err(invalid(
                Some(crate::members::ACQUISITION),
                "too large to check",
            ))
        }
    }

    // Records against entries, one to one, in tar order.
    let mut entries = entries.into_inner().map_err(|e| io_err(e.into_error()))?;
    entries.rewind().map_err(io_err)?;
    let mut entries = BufReader::new(entries);
    let mut records = BufReader::new(changes.reopen().map_err(io_err)?);
    let mut line = Vec::new();
    let mut n = 0u64;
    // Member names seen so far, as 128-bit digests: duplicates and hard links to
    // members not (yet) in the bundle are refused without keeping every name.
    let mut seen: std::collections::HashSet<u128> = std::collections::HashSet::new();
    let name_key = |b: &[u8]| -> u128 {
        let d = Sha256::digest(b);
        u128::from_le_bytes(d[..16].try_into().unwrap_or([0; 16]))
    };
    let mut read_lines = 0u64;
    loop {
        line.clear();
        let got =
            read_capped_line(&mut records, &mut line).map_err(|e| invalid(Some(CHANGES), e))?;
        let entry = read_spooled_entry(&mut entries).map_err(io_err)?;
        match (got, entry) {
            (false, None) => break,
            (true, None) => {
                // Name the member the record describes (changes.jsonl is verified).
                let named = json::parse::<ChangeRecord>(&line)
                    .ok()
                    .map(|r| r.member.lossy());
                return Err(match named {
                    Some(m) => invalid(
                        Some(&m),
                        format!(
                            "missing from the bundle (record {} of {CHANGES} has no entry)",
                            read_lines + 1
                        ),
                    ),
                    None => invalid(
                        Some(CHANGES),
                        format!("record {} has no entry in the bundle", read_lines + 1),
                    ),
                });
            }
            (false, Some((name, _, _))) => {
                return Err(invalid(
                    Some(&String::from_utf8_lossy(&name)),
                    "entry has no record in changes.jsonl",
                ));
            }
            (true, Some((name, header_digest, content_digest))) => {
                read_lines += 1;
                let member = String::from_utf8_lossy(&name).into_owned();
                let rec: ChangeRecord = json::parse(&line)
                    .map_err(|e| invalid(Some(CHANGES), format!("record {read_lines}: {e}")))?;
                if rec.member.as_bytes() != name.as_slice() {
                    return Err(invalid(
                        Some(&member),
                        format!("record {read_lines} names {} instead", rec.member),
                    ));
                }
                if !seen.insert(name_key(&name)) {
                    return Err(invalid(Some(&member), "duplicate member"));
                }
                if let Some(target) = &rec.hardlink_to {
                    if !seen.contains(&name_key(target.as_bytes()))
                        || target.as_bytes() == name.as_slice()
                    {
                        return Err(invalid(
                            Some(&member),
                            "hard link to a member that is not earlier in the bundle",
                        ));
                    }
                }
                if rec.xattrs.iter().any(|x| {
                    crate::text::b64_decode(&x.value_b64).is_none()
                        || x.name.as_bytes().contains(&b'=')
                        || x.name.as_bytes().contains(&0)
                }) {
                    return Err(invalid(
                        Some(&member),
                        "record has a malformed extended attribute",
                    ));
                }
                if Sha256::digest(render(&rec.tar_header())).as_slice() != header_digest {
                    return Err(invalid(
                        Some(&member),
                        "tar header does not match its record",
                    ));
                }
                let want = match (rec.file_type, &rec.sha256, rec.hardlink_to.is_some()) {
                    (FileType::File, Some(d), false) => Some(d.clone()),
                    (FileType::File, None, false) => {
                        return Err(invalid(
                            Some(&member),
                            "record of a regular file without sha256",
                        ))
                    }
                    (_, Some(_), _) => {
                        return Err(invalid(Some(&member), "record has a sha256 but no content"))
                    }
                    _ => None,
                };
                if let Some(want) = want {
                    if hex::encode(content_digest) != want {
                        return Err(invalid(
                            Some(&member),
                            "content sha256 does not match its record",
                        ));
                    }
                }
                n += 1;
            }
        }
    }
    let _ = changes_size;
    let compressed_size = meta.len();
    Ok(VerifiedBundle {
        path: path.to_path_buf(),
        file,
        statement,
        manifest,
        signer,
        members,
        digests,
        changes,
        envelope,
        content_entries: n,
        file_sha256,
        compressed_size,
        decompressed_size,
    })
}

// Reads one line of at most MAX_JSON bytes; false at the end.
fn read_capped_line<R: BufRead>(r: &mut R, out: &mut Vec<u8>) -> Result<bool, String> {
    let n = r
        .take(MAX_JSON + 1)
        .read_until(b'\n', out)
        .map_err(|e| e.to_string())?;
    if n as u64 > MAX_JSON {
        return Err("a record line is over the size limit".into());
    }
    if out.last() == Some(&b'\n') {
        out.pop();
    } else if n > 0 {
        return Err("last record is not terminated by a newline".into());
    }
    Ok(n > 0)
}

type SpooledEntry = (Vec<u8>, [u8; 32], [u8; 32]);

fn read_spooled_entry<R: Read>(r: &mut R) -> io::Result<Option<SpooledEntry>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut name = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut name)?;
    let mut h = [0u8; 32];
    let mut c = [0u8; 32];
    r.read_exact(&mut h)?;
    r.read_exact(&mut c)?;
    Ok(Some((name, h, c)))
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

/// Iterator over the verified change records.
pub struct Records {
    reader: BufReader<File>,
    line: Vec<u8>,
}

impl Iterator for Records {
    type Item = Result<ChangeRecord, VerifyError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.line.clear();
        match read_capped_line(&mut self.reader, &mut self.line) {
            Ok(false) => None,
            Ok(true) => {
                Some(json::parse(&self.line).map_err(|e| invalid(Some(CHANGES), e.to_string())))
            }
            Err(e) => Some(Err(invalid(Some(CHANGES), e))),
        }
    }
}
