//! A verified bundle and its parsed exhibit/ members. [`Evidence::open`] verifies first
//! (nothing is interpreted before that) and then parses members within the limits of
//! exhibit_common::json; a member that verified but does not parse is exit 3.

use crate::container::{ContainerSummary, ImageDoc};
use crate::error::AnalyzeError;
use exhibit_common::custody::{check_chain, AcquisitionEvent};
use exhibit_common::dsse::SignerStatus;
use exhibit_common::json;
use exhibit_common::limits::MAX_JSON;
use exhibit_common::members;
use exhibit_common::records::{LogLine, MountRecord, ProcessRecord, SocketRecord};
use exhibit_common::{verify, VerifiedBundle, VerifyOptions};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// A callback over (line number, line bytes) of a JSON Lines member.
pub type LineFn<'a> = dyn FnMut(usize, &[u8]) -> Result<(), String> + 'a;

/// A verified bundle with its small members parsed.
pub struct Evidence {
    pub path: PathBuf,
    pub bundle: VerifiedBundle,
    /// container.json as a value (absent member: Null).
    pub container_doc: Value,
    pub container: ContainerSummary,
    pub image: ImageDoc,
    pub host: Value,
    pub mounts: Vec<MountRecord>,
    pub acquisition: Vec<AcquisitionEvent>,
}

/// Loads the `--pubkey` files.
pub fn load_keys(paths: &[PathBuf]) -> Result<Vec<ed25519_dalek::VerifyingKey>, AnalyzeError> {
    paths
        .iter()
        .map(|p| exhibit_common::keys::load_public_key(p).map_err(AnalyzeError::Key))
        .collect()
}

/// Prints the signer warning of DESIGN.md section 2 when no key was given.
pub fn warn_signer(status: &SignerStatus) {
    match status {
        SignerStatus::Verified { .. } => {}
        SignerStatus::Unverified { .. } => {
            eprintln!("warning: signer UNVERIFIED (no --pubkey given)")
        }
        SignerStatus::Unsigned => eprintln!("warning: bundle is UNSIGNED"),
    }
}

/// One-word signer status plus key ids, as the outputs show it. Only a verified status
/// names a key as the signer, and its keyid is computed from the key that verified the
/// signature, never read from the envelope; without a key, the envelope's keyids are
/// quoted as its unverified claim, and only when they look like keyids.
pub fn signer_text(status: &SignerStatus) -> String {
    match status {
        SignerStatus::Verified { keyid } => format!("verified (keyid {keyid})"),
        SignerStatus::Unverified { keyids } => {
            // A claim is quoted only when it looks like a keyid (short, no spaces or
            // punctuation beyond base64 and separators), so it cannot spell out a
            // status of its own.
            let claims: Vec<String> = keyids
                .iter()
                .take(4)
                .map(|k| {
                    let plausible = (1..=128).contains(&k.len())
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "+/=:_-.".contains(c));
                    if plausible {
                        k.clone()
                    } else {
                        format!("<not a keyid, {} bytes>", k.len())
                    }
                })
                .collect();
            format!(
                "UNVERIFIED: no --pubkey given; the envelope claims keyid {}",
                claims.join(", ")
            )
        }
        SignerStatus::Unsigned => "UNSIGNED".to_string(),
    }
}

impl Evidence {
    /// Verifies `path` with `keys`, warns about the signer, then parses the members.
    pub fn open(path: &Path, keys: &[ed25519_dalek::VerifyingKey]) -> Result<Self, AnalyzeError> {
        tracing::info!(bundle = %path.display(), keys = keys.len(), "verifying");
        let bundle = verify(
            path,
            &VerifyOptions {
                keys: keys.to_vec(),
                max_decompressed: None,
            },
        )
        .map_err(|source| AnalyzeError::Verify {
            path: path.to_path_buf(),
            source,
        })?;
        warn_signer(bundle.signer());
        let mut ev = Evidence {
            path: path.to_path_buf(),
            bundle,
            container_doc: Value::Null,
            container: ContainerSummary::default(),
            image: ImageDoc::default(),
            host: Value::Null,
            mounts: Vec::new(),
            acquisition: Vec::new(),
        };
        ev.container_doc = ev.json_member(members::CONTAINER)?.unwrap_or(Value::Null);
        ev.container = ContainerSummary::from_json(&ev.container_doc);
        ev.fill_from_manifest();
        if let Some(v) = ev.json_member(members::IMAGE)? {
            ev.image = ImageDoc::from_json(&v);
        }
        ev.host = ev.json_member(members::HOST)?.unwrap_or(Value::Null);
        if let Some(v) = ev.json_member(members::VOLUMES)? {
            ev.mounts =
                serde_json::from_value(v).map_err(|e| ev.member_err(members::VOLUMES, e))?;
        }
        let acq = ev.raw_member(members::ACQUISITION)?.unwrap_or_default();
        ev.acquisition = check_chain(&acq).map_err(|e| ev.member_err(members::ACQUISITION, e))?;
        Ok(ev)
    }

    // The manifest is always there; use it where container.json is silent.
    fn fill_from_manifest(&mut self) {
        let m = &self.bundle.manifest().container;
        let c = &mut self.container;
        let or = |v: &mut Option<String>, s: &str| {
            if v.is_none() && !s.is_empty() {
                *v = Some(s.to_string());
            }
        };
        or(&mut c.runtime, &m.runtime);
        or(&mut c.id, &m.id);
        or(&mut c.name, &m.name);
        or(&mut c.image, &m.image);
        or(&mut c.image_id, &m.image_id);
        if c.pod.is_none() {
            c.pod = m.pod.clone();
        }
        if c.pod_namespace.is_none() {
            c.pod_namespace = m.pod_namespace.clone();
        }
    }

    /// A member-level failure (exit 3) naming the member.
    pub fn member_err(&self, member: &str, reason: impl std::fmt::Display) -> AnalyzeError {
        AnalyzeError::Member {
            path: self.path.clone(),
            member: member.to_string(),
            reason: reason.to_string(),
        }
    }

    fn verify_err(&self, source: exhibit_common::VerifyError) -> AnalyzeError {
        AnalyzeError::Verify {
            path: self.path.clone(),
            source,
        }
    }

    /// The bytes of a JSON document member, refusing one over the JSON limit.
    fn raw_member(&self, name: &str) -> Result<Option<Vec<u8>>, AnalyzeError> {
        let Some(bytes) = self.bundle.member(name).map_err(|e| self.verify_err(e))? else {
            return Ok(None);
        };
        if bytes.len() as u64 >= MAX_JSON {
            return Err(self.member_err(name, format!("over the {MAX_JSON}-byte JSON limit")));
        }
        Ok(Some(bytes))
    }

    /// Parses a JSON document member within the limits.
    pub fn json_member(&self, name: &str) -> Result<Option<Value>, AnalyzeError> {
        match self.raw_member(name)? {
            None => Ok(None),
            Some(b) => json::parse(&b)
                .map(Some)
                .map_err(|e| self.member_err(name, e)),
        }
    }

    /// Hands every line of a JSON Lines member to `f`, each capped at the JSON limit;
    /// a member too large to keep in memory is streamed in a second, re-hashed pass.
    pub fn for_each_line(&self, name: &str, f: &mut LineFn<'_>) -> Result<(), AnalyzeError> {
        let Some(bytes) = self.bundle.member(name).map_err(|e| self.verify_err(e))? else {
            return Ok(());
        };
        if (bytes.len() as u64) < MAX_JSON {
            for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
                if !line.is_empty() {
                    f(i + 1, line)
                        .map_err(|e| self.member_err(name, format!("line {}: {e}", i + 1)))?;
                }
            }
            return Ok(());
        }
        drop(bytes);
        let mut failure: Option<String> = None;
        let r = self.bundle.read_member(name, &mut |r: &mut dyn Read| {
            let mut reader = BufReader::with_capacity(1 << 20, r);
            let mut line = Vec::new();
            let mut n = 0usize;
            loop {
                line.clear();
                n += 1;
                let got = (&mut reader)
                    .take(MAX_JSON + 1)
                    .read_until(b'\n', &mut line)?;
                if got == 0 {
                    return Ok(());
                }
                if got as u64 > MAX_JSON {
                    let msg = format!("line {n} is over the {MAX_JSON}-byte JSON limit");
                    failure = Some(msg.clone());
                    return Err(io::Error::other(msg));
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                if !line.is_empty() {
                    if let Err(e) = f(n, &line) {
                        let msg = format!("line {n}: {e}");
                        failure = Some(msg.clone());
                        return Err(io::Error::other(msg));
                    }
                }
            }
        });
        match (r, failure) {
            (Ok(()), _) => Ok(()),
            (Err(_), Some(msg)) => Err(self.member_err(name, msg)),
            (Err(e), None) => Err(self.verify_err(e)),
        }
    }

    /// Parses every line of a JSON Lines member as `T`.
    pub fn lines<T: DeserializeOwned>(&self, name: &str) -> Result<Vec<T>, AnalyzeError> {
        let mut out = Vec::new();
        self.for_each_line(name, &mut |_, line| {
            out.push(json::parse::<T>(line).map_err(|e| e.to_string())?);
            Ok(())
        })?;
        Ok(out)
    }

    /// exhibit/processes.jsonl.
    pub fn processes(&self) -> Result<Vec<ProcessRecord>, AnalyzeError> {
        self.lines(members::PROCESSES)
    }

    /// exhibit/sockets.jsonl.
    pub fn sockets(&self) -> Result<Vec<SocketRecord>, AnalyzeError> {
        self.lines(members::SOCKETS)
    }

    /// Streams exhibit/logs/container.jsonl.
    pub fn for_each_log(&self, f: &mut dyn FnMut(LogLine)) -> Result<(), AnalyzeError> {
        self.for_each_line(members::LOGS, &mut |_, line| {
            f(json::parse::<LogLine>(line).map_err(|e| e.to_string())?);
            Ok(())
        })
    }

    /// The change records, parsed (exit 3 on a bad record).
    pub fn records(
        &self,
    ) -> Result<
        impl Iterator<Item = Result<exhibit_common::records::ChangeRecord, AnalyzeError>> + '_,
        AnalyzeError,
    > {
        let it = self.bundle.records().map_err(|e| self.verify_err(e))?;
        Ok(it.map(move |r| r.map_err(|e| self.verify_err(e))))
    }

    /// Walks content with each record (second pass, re-hashed).
    pub fn walk_content(
        &self,
        f: &mut dyn FnMut(&exhibit_common::records::ChangeRecord, &mut dyn Read) -> io::Result<()>,
    ) -> Result<(), AnalyzeError> {
        self.bundle.walk_content(f).map_err(|e| self.verify_err(e))
    }

    /// Walks exhibit/ members and content entries in tar order (second pass, re-hashed).
    pub fn walk(
        &self,
        f: &mut dyn FnMut(exhibit_common::WalkEntry<'_>, &mut dyn Read) -> io::Result<()>,
    ) -> Result<(), AnalyzeError> {
        self.bundle.walk(f).map_err(|e| self.verify_err(e))
    }

    /// sha256 of the bundle file.
    pub fn file_sha256(&self) -> Result<String, AnalyzeError> {
        self.bundle.file_sha256().map_err(|e| self.verify_err(e))
    }

    /// Converts a verification error of a second pass.
    pub fn pass_err(&self, e: exhibit_common::VerifyError) -> AnalyzeError {
        self.verify_err(e)
    }
}
