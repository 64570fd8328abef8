//! `timeline`: file times, process starts, log lines, container and custody events,
//! sorted by time, as a Sleuth Kit 3.x body file (for `mactime -b`), JSON Lines or CSV.

use crate::cli::{TimelineArgs, TimelineFormat};
use crate::error::AnalyzeError;
use crate::evidence::{load_keys, Evidence};
use crate::profile::exe_display;
use exhibit_common::cli::ExitStatus;
use exhibit_common::records::{ChangeKind, ChangeRecord, FileType};
use exhibit_common::text::{parse_rfc3339, rfc3339_ns, ByteText};
use serde_json::{json, Value};
use std::fmt::Write as _;

/// One timeline event.
#[derive(Debug, Clone)]
pub struct Event {
    pub t_ns: i128,
    /// file, process, log, container, acquisition.
    pub source: &'static str,
    /// For files the MACB letters of the times at this instant (`m.c.`); else a word.
    pub kind: String,
    pub subject: ByteText,
    pub detail: Value,
}

fn macb(r: &ChangeRecord, t: i64) -> String {
    let b = r.btime_ns;
    [
        (r.mtime_ns == t, 'm'),
        (r.atime_ns == t, 'a'),
        (r.ctime_ns == t, 'c'),
        (b == Some(t), 'b'),
    ]
    .iter()
    .map(|(on, c)| if *on { *c } else { '.' })
    .collect()
}

fn file_detail(r: &ChangeRecord) -> Value {
    json!({"kind": r.kind, "type": r.file_type, "mode": format!("{:04o}", r.mode & 0o7777), "uid": r.uid, "gid": r.gid, "size": r.size, "sha256": r.sha256, "member": r.member})
}

/// Collects every event of a bundle, sorted by time.
pub fn events(ev: &Evidence) -> Result<Vec<Event>, AnalyzeError> {
    let mut out = Vec::new();
    file_events(ev, &mut out)?;
    out.extend(small_events(ev)?);
    log_events(ev, &mut out)?;
    out.sort_by_key(|e| e.t_ns);
    Ok(out)
}

fn file_events(ev: &Evidence, out: &mut Vec<Event>) -> Result<(), AnalyzeError> {
    for r in ev.records()? {
        let r = r?;
        let mut times = vec![r.mtime_ns, r.atime_ns, r.ctime_ns];
        times.extend(r.btime_ns);
        times.sort();
        times.dedup();
        for t in times {
            out.push(Event {
                t_ns: t as i128,
                source: "file",
                kind: macb(&r, t),
                subject: r.path.clone(),
                detail: file_detail(&r),
            });
        }
    }
    Ok(())
}

/// Process starts, container and custody events (bounded by the member caps).
fn small_events(ev: &Evidence) -> Result<Vec<Event>, AnalyzeError> {
    let mut out = Vec::new();
    for p in ev.processes()? {
        if let Some(t) = p.start_time.as_deref().and_then(parse_rfc3339) {
            out.push(Event {
                t_ns: t,
                source: "process",
                kind: "start".into(),
                subject: exe_display(&p).into(),
                detail: json!({"pid": p.pid, "ppid": p.ppid, "uid": p.uid, "user": p.user, "argv": p.argv.items}),
            });
        }
    }
    let c = &ev.container;
    for (kind, t) in [("created", &c.created), ("started", &c.started)] {
        if let Some(t) = t.as_deref().and_then(parse_rfc3339) {
            out.push(Event {
                t_ns: t,
                source: "container",
                kind: kind.into(),
                subject: c.name.clone().or(c.id.clone()).unwrap_or_default().into(),
                detail: json!({"id": c.id}),
            });
        }
    }
    for a in &ev.acquisition {
        if let Some(t) = parse_rfc3339(&a.t) {
            out.push(Event {
                t_ns: t,
                source: "acquisition",
                kind: a.outcome.clone(),
                subject: a.step.clone().into(),
                detail: json!({"seq": a.seq, "detail": a.detail, "error": a.error}),
            });
        }
    }
    out.sort_by_key(|e| e.t_ns);
    Ok(out)
}

fn log_events(ev: &Evidence, out: &mut Vec<Event>) -> Result<(), AnalyzeError> {
    let mut undated = 0u64;
    ev.for_each_log(&mut |l| match l.t.as_deref().and_then(parse_rfc3339) {
        Some(t) => out.push(Event {
            t_ns: t,
            source: "log",
            kind: l.stream.clone(),
            subject: l.line,
            detail: Value::Null,
        }),
        None => undated += 1,
    })?;
    if undated > 0 {
        eprintln!("warning: {undated} log lines without a time are not in the timeline");
    }
    Ok(())
}

/// A body-file name field: `|`, `\`, controls, bidi, zero-width and separator
/// characters (exhibit_common::text::is_hidden_char) and invalid UTF-8 as `\xNN`.
pub fn body_name(b: &[u8]) -> String {
    let mut o = String::new();
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '|' || c == '\\' || exhibit_common::text::is_hidden_char(c) {
                let mut buf = [0u8; 4];
                for byte in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(o, "\\x{byte:02x}");
                }
            } else {
                o.push(c);
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(o, "\\x{byte:02x}");
        }
    }
    o
}

fn mode_string(ft: FileType, mode: u32) -> String {
    let t = match ft {
        FileType::File => 'r',
        FileType::Dir => 'd',
        FileType::Symlink => 'l',
        FileType::Fifo => 'p',
        FileType::Char => 'c',
        FileType::Block => 'b',
        FileType::Socket => 'h',
        FileType::Whiteout => 'w',
    };
    let mut s = format!("{t}/{t}");
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        s.push(if mode & (1 << (8 - i)) != 0 { c } else { '-' });
    }
    s
}

fn secs(ns: i64) -> i64 {
    ns.div_euclid(1_000_000_000)
}

/// The body file: one line per file record, plus processes, container and custody
/// events as pseudo-entries in brackets with all four times set to the event.
pub fn bodyfile(ev: &Evidence) -> Result<String, AnalyzeError> {
    let mut o = String::new();
    for r in ev.records()? {
        let r = r?;
        let mut name = body_name(r.path.as_bytes());
        if let Some(t) = &r.link_target {
            name.push_str(" -> ");
            name.push_str(&body_name(t.as_bytes()));
        }
        if r.kind == ChangeKind::Deleted {
            name.push_str(" (deleted)");
        }
        let _ = writeln!(
            o,
            "0|{name}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
            r.hardlink_group.unwrap_or(0),
            mode_string(r.file_type, r.mode),
            r.uid,
            r.gid,
            r.size,
            secs(r.atime_ns),
            secs(r.mtime_ns),
            secs(r.ctime_ns),
            r.btime_ns.map(secs).unwrap_or(0)
        );
    }
    for e in &small_events(ev)? {
        let s = e.t_ns.div_euclid(1_000_000_000);
        let _ = writeln!(
            o,
            "0|[{} {}] {}|0|-/----------|0|0|0|{s}|{s}|{s}|{s}",
            e.source,
            body_name(e.kind.as_bytes()),
            body_name(e.subject.as_bytes())
        );
    }
    Ok(o)
}

/// CSV cell: always quoted, quotes doubled, a leading formula character neutralised.
pub fn csv_cell(s: &str) -> String {
    let s = crate::render::sanitize_line(s);
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `timeline BUNDLE`.
pub fn timeline_command(a: &TimelineArgs) -> Result<ExitStatus, AnalyzeError> {
    let keys = load_keys(&a.keys.pubkeys)?;
    let ev = Evidence::open(&a.bundle, &keys)?;
    let text = match a.format {
        TimelineFormat::Bodyfile => bodyfile(&ev)?,
        TimelineFormat::Jsonl => {
            let mut o = String::new();
            for e in events(&ev)? {
                let v = json!({"t": rfc3339_ns(e.t_ns), "source": e.source, "kind": e.kind, "subject": e.subject, "detail": e.detail});
                o.push_str(&exhibit_common::text::json_visible(&v.to_string()));
                o.push('\n');
            }
            o
        }
        TimelineFormat::Csv => {
            let mut o = String::from("time,source,kind,subject,detail\n");
            for e in events(&ev)? {
                let detail = if e.detail.is_null() {
                    String::new()
                } else {
                    e.detail.to_string()
                };
                let _ = writeln!(
                    o,
                    "{},{},{},{},{}",
                    rfc3339_ns(e.t_ns),
                    e.source,
                    csv_cell(&e.kind),
                    csv_cell(&e.subject.lossy()),
                    csv_cell(&detail)
                );
            }
            o
        }
    };
    crate::render::write_out(&text)?;
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_names_and_csv_cells_are_safe() {
        assert_eq!(body_name(b"/a|b\n\xff"), "/a\\x7cb\\x0a\\xff");
        assert_eq!(csv_cell("=cmd|' /C calc'!A0"), "\"'=cmd|' /C calc'!A0\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(mode_string(FileType::Dir, 0o755), "d/drwxr-xr-x");
    }
}
