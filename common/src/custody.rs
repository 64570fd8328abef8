//! The acquisition log (exhibit/acquisition.jsonl): custody and acquisition events in
//! order, each line carrying the sha256 of the previous line so that a removed or
//! reordered event is visible even without the signature.

use crate::limits::{MAX_EVENT_TEXT, MAX_JSON_DOCUMENT, MAX_QUOTED};
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

    /// Appends an event stamped now. `detail` and `error` are cut to
    /// [`MAX_EVENT_TEXT`] JSON-encoded bytes; once the log nears the reader's document
    /// limit they are left out, so the log always stays readable.
    pub fn record(
        &mut self,
        step: &str,
        outcome: Outcome,
        detail: Option<String>,
        error: Option<String>,
    ) {
        // Room for the last events (capture.end) whatever came before.
        let full = self.lines.len() + 2 * MAX_EVENT_TEXT + (64 << 10) > LOG_ROOM;
        let fit = |t: Option<String>| {
            t.map(|t| {
                if full {
                    "(left out: the acquisition log is at its size limit)".to_string()
                } else {
                    cut_encoded(t, MAX_EVENT_TEXT)
                }
            })
        };
        let (detail, error) = (fit(detail), fit(error));
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

// The log's size at which details are left out: the document limit less room for the
// remaining events of a capture.
const LOG_ROOM: usize = MAX_JSON_DOCUMENT as usize - (1 << 20);

// Bytes of `c` inside a JSON string as serde_json writes it.
fn encoded_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

// `text` cut so that its JSON encoding is at most `max` bytes, with a note of the cut.
fn cut_encoded(text: String, max: usize) -> String {
    let mut used = 0;
    for (i, c) in text.char_indices() {
        used += encoded_len(c);
        if used > max.saturating_sub(48) {
            let cut = text.len() - i;
            return format!("{}… ({cut} bytes cut)", &text[..i]);
        }
    }
    text
}

/// A container-controlled text (a path, a name) as an acquisition event or a reason
/// quotes it: control characters shown as `\xNN`, at most [`MAX_QUOTED`] bytes of it,
/// then "…" when there was more.
pub fn quote(bytes: &[u8]) -> String {
    quote_at_most(bytes, MAX_QUOTED)
}

/// [`quote`] with another length: at most `max` bytes of `bytes`.
pub fn quote_at_most(bytes: &[u8], max: usize) -> String {
    let shown = &bytes[..bytes.len().min(max)];
    let mut out = String::with_capacity(shown.len() + 4);
    for chunk in shown.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                for b in c.to_string().bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    if bytes.len() > max {
        out.push('…');
    }
    out
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
    fn an_event_line_stays_under_the_readers_line_cap_and_the_log_under_its_document_cap() {
        // 60 drop messages of 64 KB control-character paths (the red-team case): each
        // JSON-escapes to six times its size.
        let path = "\u{1}".repeat(64 << 10);
        let mut log = AcquisitionLog::new();
        for _ in 0..300 {
            let items: Vec<String> = (0..60).map(|_| format!("{path}: user.a=b (x)")).collect();
            log.record(
                "files.xattrs",
                Outcome::Info,
                Some(items.join("; ")),
                Some(path.clone()),
            );
        }
        log.record("capture.end", Outcome::Ok, Some("done".into()), None);
        assert!(log.bytes().len() as u64 <= MAX_JSON_DOCUMENT);
        for line in log.bytes().split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            assert!(line.len() <= 2 * MAX_EVENT_TEXT + 1024, "{}", line.len());
        }
        let events = check_chain(log.bytes()).unwrap();
        assert_eq!(events.len(), 301);
        assert_eq!(events[300].step, "capture.end");
        assert!(events[0].detail.as_ref().unwrap().contains("bytes cut)"));
    }

    #[test]
    fn quoted_paths_are_bounded_and_escaped() {
        assert_eq!(quote(b"/etc/passwd"), "/etc/passwd");
        assert_eq!(quote(b"/x\n\x1b[31m\xff"), "/x\\x0a\\x1b[31m\\xff");
        let long = vec![b'\x01'; 64 << 10];
        let q = quote(&long);
        assert!(q.ends_with('…'));
        assert_eq!(q.len(), MAX_QUOTED * 4 + '…'.len_utf8());
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
