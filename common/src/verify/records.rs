//! Phase 3 of [`verify`](super::verify): changes.jsonl (signed, so now it may be
//! parsed) against the content entries the scan spooled, one record per entry in tar
//! order: names, duplicates, hard links, extended attributes, the canonical header each
//! record renders to and the content digest.

use super::{invalid, VerifyError};
use crate::json;
use crate::limits::MAX_JSON;
use crate::members::CHANGES;
use crate::records::{ChangeRecord, FileType};
use crate::tarcodec::render;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek};
use std::path::Path;

/// Compares the records with the spooled entries; returns the number of entries.
pub(super) fn check(
    path: &Path,
    entries: BufWriter<File>,
    changes: &tempfile::NamedTempFile,
) -> Result<u64, VerifyError> {
    let io_err = |source| VerifyError::Io {
        path: path.to_path_buf(),
        source,
    };
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
    Ok(n)
}

// Reads one line of at most MAX_JSON bytes; false at the end.
pub(super) fn read_capped_line<R: BufRead>(r: &mut R, out: &mut Vec<u8>) -> Result<bool, String> {
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

/// Iterator over the verified change records.
pub struct Records {
    pub(super) reader: BufReader<File>,
    pub(super) line: Vec<u8>,
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
