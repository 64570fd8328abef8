//! The acquisition log (exhibit/acquisition.jsonl): custody and acquisition events in
//! order, each line carrying the sha256 of the previous line so that a removed or
//! reordered event is visible even without the signature.

use crate::text::now_rfc3339;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One acquisition event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcquisitionEvent {
    pub seq: u64,
    pub t: String,
    pub step: String,
    /// `ok`, `error`, `skipped` or `info`.
    pub outcome: String,
    pub detail: Option<String>,
    pub error: Option<String>,
    /// sha256 (hex) of the previous line's bytes, without its newline.
    pub prev: String,
}

/// How one acquisition step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Error,
    Skipped,
    Info,
}

impl Outcome {
    /// The `outcome` text of the event.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Skipped => "skipped",
            Outcome::Info => "info",
        }
    }

    /// `Ok` when nothing was lost, else `Error`.
    pub fn ok_unless(lost: bool) -> Self {
        if lost {
            Outcome::Error
        } else {
            Outcome::Ok
        }
    }
}

/// Builds the hash-chained log in memory (it is small: a few events per step).
#[derive(Debug, Default)]
pub struct AcquisitionLog {
    lines: Vec<u8>,
    prev: String,
    seq: u64,
}

impl AcquisitionLog {
    /// An empty log.
    pub fn new() -> Self {
        AcquisitionLog {
            lines: Vec::new(),
            prev: GENESIS.to_string(),
            seq: 0,
        }
    }

    /// Appends an event stamped now.
    pub fn record(
        &mut self,
        step: &str,
        outcome: Outcome,
        detail: Option<String>,
        error: Option<String>,
    ) {
        let ev = AcquisitionEvent {
            seq: self.seq,
            t: now_rfc3339(),
            step: step.to_string(),
            outcome: outcome.as_str().to_string(),
            detail,
            error,
            prev: self.prev.clone(),
        };
        let line = serde_json::to_vec(&ev).unwrap_or_default();
        self.prev = hex::encode(Sha256::digest(&line));
        self.lines.extend_from_slice(&line);
        self.lines.push(b'\n');
        self.seq += 1;
    }

    /// The JSON Lines bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.lines
    }
}

/// Checks the chain of an acquisition log; returns the events or the first broken line.
pub fn check_chain(bytes: &[u8]) -> Result<Vec<AcquisitionEvent>, String> {
    let mut prev = GENESIS.to_string();
    let mut out = Vec::new();
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if body.is_empty() {
        return Ok(out);
    }
    if !bytes.ends_with(b"\n") {
        return Err("acquisition log does not end with a newline".into());
    }
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        let ev: AcquisitionEvent =
            crate::json::parse(line).map_err(|e| format!("acquisition line {}: {e}", i + 1))?;
        if ev.prev != prev || ev.seq != out.len() as u64 {
            return Err(format!("acquisition line {}: hash chain broken", i + 1));
        }
        prev = hex::encode(Sha256::digest(line));
        out.push(ev);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_detects_removed_event() {
        let mut log = AcquisitionLog::new();
        log.record("processes", Outcome::Ok, None, None);
        log.record("sockets", Outcome::Ok, None, None);
        log.record("files", Outcome::Error, None, Some("boom".into()));
        assert_eq!(check_chain(log.bytes()).unwrap().len(), 3);
        let text = String::from_utf8(log.bytes().to_vec()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let without_middle = format!("{}\n{}\n", lines[0], lines[2]);
        assert!(check_chain(without_middle.as_bytes()).is_err());
    }

    #[test]
    fn empty_lines_and_a_missing_final_newline_are_refused() {
        let mut log = AcquisitionLog::new();
        log.record("a", Outcome::Ok, None, None);
        log.record("b", Outcome::Ok, None, None);
        let text = String::from_utf8(log.bytes().to_vec()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let blank = format!("{}\n\n{}\n", lines[0], lines[1]);
        assert!(check_chain(blank.as_bytes()).is_err());
        assert!(check_chain(text.trim_end().as_bytes()).is_err());
        assert_eq!(check_chain(b"").unwrap().len(), 0);
        assert_eq!(check_chain(b"\n").unwrap().len(), 0);
        assert_eq!(check_chain(text.as_bytes()).unwrap().len(), 2);
    }
}
