//! CRI container log files: kubelet has containerd write
//! `/var/log/pods/<ns>_<pod>_<uid>/<container>/<n>.log` (n = the container's restart
//! count), rotates it to `<n>.log.<time>` and gzips older rotations.

use anyhow::{Context, Result};
use exhibit_common::records::LogLine;
use rustix::fs::{Mode, OFlags};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Where kubelet keeps pod logs.
pub const PODS_ROOT: &str = "/var/log/pods";

/// Longest log line kept; longer ones are cut there and marked (kubelet itself splits
/// lines at 16 KiB, so only a hostile or foreign file has longer ones).
pub const MAX_LINE: usize = exhibit_common::limits::MAX_LOG_LINE;

/// The log files of one container, as found on this host.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CriLogs {
    /// The container's log directory, when one was found.
    pub dir: Option<PathBuf>,
    /// Text log files, oldest first.
    pub files: Vec<PathBuf>,
    /// Files left out and why (gzip-compressed rotations, anything not a log file).
    pub skipped: Vec<(PathBuf, String)>,
    /// Why no directory was chosen.
    pub note: Option<String>,
}

impl CriLogs {
    /// The file being written: the current (unrotated) log of the latest restart.
    pub fn current(&self) -> Option<&PathBuf> {
        self.files
            .iter()
            .rev()
            .find(|f| log_key(f).is_some_and(|k| k.1))
    }

    /// What container.json records about the log files.
    pub fn summary(&self) -> Value {
        json!({
            "dir": self.dir,
            "files": self.files,
            "skipped": self.skipped.iter().map(|(f, why)| json!({"file": f, "why": why})).collect::<Vec<_>>(),
            "note": self.note,
        })
    }
}

// (restart count, is the current file, rotation suffix) of `<n>.log[.<suffix>]`; the
// current file sorts after its rotations.
fn log_key(f: &Path) -> Option<(u64, bool, String)> {
    let name = f.file_name()?.to_str()?;
    let (n, rest) = name.split_once(".log")?;
    let n: u64 = n.parse().ok()?;
    match rest {
        "" => Some((n, true, String::new())),
        r if r.starts_with('.') => Some((n, false, r[1..].to_string())),
        _ => None,
    }
}

/// Finds the log files of `container` of pod `ns/pod`. With the pod uid (label
/// io.kubernetes.pod.uid) the directory is exact; without it the one `<ns>_<pod>_*`
/// directory is taken, and none when there are several (an earlier pod of the same name
/// is another pod's evidence).
pub fn locate(root: &Path, ns: &str, pod: &str, uid: Option<&str>, container: &str) -> CriLogs {
    let mut out = CriLogs::default();
    let pod_dir = match uid {
        Some(uid) => {
            let d = root.join(format!("{ns}_{pod}_{uid}"));
            if !d.is_dir() {
                out.note = Some(format!("no pod log directory {}", d.display()));
                return out;
            }
            d
        }
        None => {
            let prefix = format!("{ns}_{pod}_");
            let mut found: Vec<PathBuf> = std::fs::read_dir(root)
                .map(|rd| {
                    rd.flatten()
                        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                        .map(|e| e.path())
                        .collect()
                })
                .unwrap_or_default();
            found.sort();
            match found.len() {
                1 => found.remove(0),
                0 => {
                    out.note = Some(format!("no pod log directory {}/{prefix}*", root.display()));
                    return out;
                }
                _ => {
                    out.note = Some(format!(
                        "several pod log directories {}/{prefix}* and no io.kubernetes.pod.uid label to choose one: none read",
                        root.display()
                    ));
                    return out;
                }
            }
        }
    };
    let dir = pod_dir.join(container);
    let entries = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) => {
            out.note = Some(format!("{}: {e}", dir.display()));
            return out;
        }
    };
    let mut files = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        let regular = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file());
        let name = e.file_name().to_string_lossy().into_owned();
        if !regular {
            out.skipped.push((path, "not a regular file".into()));
        } else if name.ends_with(".gz") {
            out.skipped
                .push((path, "gzip-compressed rotated log: not read as text".into()));
        } else if let Some(k) = log_key(&path) {
            files.push((k, path));
        } else {
            out.skipped.push((path, "not a CRI log file name".into()));
        }
    }
    files.sort();
    out.files = files.into_iter().map(|(_, p)| p).collect();
    out.skipped.sort();
    out.dir = Some(dir);
    out
}

/// Reads CRI log lines (`<time> <stream> <P|F> <text>`; P parts are joined up to their
/// F line) from `files`, each opened without following a symlink and read up to its
/// size at open, at most the bundle's entry limit; lines over MAX_LINE are cut.
pub fn read(files: &[PathBuf], since: Option<i64>, sink: &mut dyn FnMut(LogLine)) -> Result<()> {
    for f in files {
        let fd = rustix::fs::open(
            f,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOATIME | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening {}", f.display()))?;
        let st = rustix::fs::fstat(&fd)?;
        let size = (st.st_size as u64).min(exhibit_common::limits::MAX_ENTRY_SIZE);
        let mut r = BufReader::new(std::fs::File::from(fd).take(size));
        let mut line = Vec::new();
        // Partial lines per stream: (time of the first part, text so far, bytes cut).
        let mut pending: std::collections::BTreeMap<String, (Option<i128>, Vec<u8>, u64)> =
            Default::default();
        // Room for the time, stream and tag before the text.
        while let Some(total) = next_line(&mut r, &mut line, MAX_LINE + 256)
            .with_context(|| format!("reading {}", f.display()))?
        {
            if line.is_empty() {
                continue;
            }
            let mut parts = line.splitn(4, |&b| b == b' ');
            let t = parts
                .next()
                .and_then(|t| std::str::from_utf8(t).ok())
                .and_then(exhibit_common::text::parse_rfc3339);
            let stream = parts
                .next()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .unwrap_or_default();
            let tag = parts.next().unwrap_or_default();
            let text = parts.next().unwrap_or_default();
            let (t0, mut joined, mut cut) = pending.remove(&stream).unwrap_or((t, Vec::new(), 0));
            let room = MAX_LINE.saturating_sub(joined.len());
            let kept = text.len().min(room);
            joined.extend_from_slice(&text[..kept]);
            cut += (text.len() - kept) as u64 + (total - line.len() as u64);
            if tag == b"P" {
                pending.insert(stream, (t0, joined, cut));
                continue;
            }
            emit(t0, stream, joined, cut, since, sink);
        }
        for (stream, (t, text, cut)) in pending {
            emit(t, stream, text, cut, since, sink);
        }
    }
    Ok(())
}

fn emit(
    t: Option<i128>,
    stream: String,
    text: Vec<u8>,
    cut: u64,
    since: Option<i64>,
    sink: &mut dyn FnMut(LogLine),
) {
    if let (Some(s), Some(t)) = (since, t) {
        if t / 1_000_000_000 < s as i128 {
            return;
        }
    }
    sink(LogLine::capped(
        t.map(exhibit_common::text::rfc3339_ns),
        &stream,
        text,
        cut,
    ));
}

// The next line without its newline into `buf`, at most `max` bytes of it kept (the
// rest skipped without buffering); its whole length, or None at the end.
fn next_line<R: BufRead>(r: &mut R, buf: &mut Vec<u8>, max: usize) -> std::io::Result<Option<u64>> {
    buf.clear();
    let mut total = 0u64;
    let mut any = false;
    loop {
        let (used, done) = {
            let avail = r.fill_buf()?;
            if avail.is_empty() {
                return Ok(any.then_some(total));
            }
            any = true;
            let nl = avail.iter().position(|&b| b == b'\n');
            let chunk = &avail[..nl.unwrap_or(avail.len())];
            let room = max.saturating_sub(buf.len());
            buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            total += chunk.len() as u64;
            (nl.map(|i| i + 1).unwrap_or(avail.len()), nl.is_some())
        };
        r.consume(used);
        if done {
            return Ok(Some(total));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_files_sort_rotations_before_the_current_file() {
        let names = [
            "1.log",
            "0.log",
            "0.log.20261123-110000",
            "0.log.20261123-100000",
            "10.log",
        ];
        let mut v: Vec<_> = names
            .iter()
            .map(|n| (log_key(Path::new(n)).unwrap(), *n))
            .collect();
        v.sort();
        let order: Vec<&str> = v.into_iter().map(|x| x.1).collect();
        assert_eq!(
            order,
            [
                "0.log.20261123-100000",
                "0.log.20261123-110000",
                "0.log",
                "1.log",
                "10.log"
            ]
        );
        assert!(log_key(Path::new("x.log")).is_none());
        assert!(log_key(Path::new("0.logx")).is_none());
    }

    #[test]
    fn a_cri_line_over_the_cap_is_cut_and_marked() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("0.log");
        let mut data = b"2026-11-23T08:10:00.000000000Z stdout P ".to_vec();
        data.extend(std::iter::repeat_n(b'a', MAX_LINE));
        data.extend_from_slice(b"\n2026-11-23T08:10:00.100000000Z stdout F ");
        data.extend(std::iter::repeat_n(b'b', 3 << 20));
        data.extend_from_slice(b"\n2026-11-23T08:10:01.000000000Z stderr F short\n");
        std::fs::write(&f, &data).unwrap();
        let mut got = Vec::new();
        read(&[f], None, &mut |l| got.push(l)).unwrap();
        assert_eq!(got.len(), 2);
        let long = got.iter().find(|l| l.stream == "stdout").unwrap();
        assert!(long.truncated);
        assert_eq!(long.line.as_bytes().len(), MAX_LINE);
        assert_eq!(long.original_len, Some((MAX_LINE + (3 << 20)) as u64));
        let short = got.iter().find(|l| l.stream == "stderr").unwrap();
        assert!(!short.truncated && short.line.as_bytes() == b"short");
    }

    #[test]
    fn long_lines_are_cut_without_buffering_them() {
        let mut data = vec![b'a'; 3000];
        data.extend_from_slice(b"\nshort\nlast");
        let mut r = std::io::BufReader::with_capacity(64, &data[..]);
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        let mut totals = Vec::new();
        while let Some(total) = next_line(&mut r, &mut buf, 100).unwrap() {
            lines.push(buf.clone());
            totals.push(total);
        }
        assert_eq!(lines.len(), 3);
        assert_eq!(totals, [3000, 5, 4]);
        assert_eq!(lines[0].len(), 100);
        assert_eq!(lines[1], b"short");
        assert_eq!(lines[2], b"last");
    }
}
