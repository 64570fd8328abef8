//! `diff BASELINE SUSPECT`: what changed between two captures of (usually) the same
//! workload: files by path and content, processes by exe and arguments, listeners,
//! connections and the runtime configuration. Files are keyed by their raw path bytes
//! and compared through a compact index (see [`FileIndex`]); the file deltas are
//! streamed to stdout, added in the suspect's bundle order, removed and changed in the
//! baseline's.

use crate::cli::{DataFormat, DiffArgs};
use crate::error::AnalyzeError;
use crate::evidence::{load_keys, Evidence};
use crate::netaddr::{is_listener, outbound, subject};
use crate::profile::{args_text, exe_display};
use crate::render::{sanitize_line, with_stdout};
use exhibit_common::cli::ExitStatus;
use exhibit_common::text::{display_bytes, json_visible, ByteText};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufRead, Seek, Write};

/// The change records of one bundle, keyed by raw path bytes in a compact sorted
/// index (32 bytes a record) over a spool of the compared fields, so a diff of two
/// bundles at the entry cap stays small; two paths that differ in any byte (also
/// invalid UTF-8) are two files.
struct FileIndex {
    rows: Vec<Row>,
    spool: File,
}

#[derive(Clone, Copy)]
struct Row {
    /// sha256 of the path bytes, first 16 bytes.
    key: [u8; 16],
    /// sha256 of the compared fields, first 8 bytes.
    fields: [u8; 8],
    /// Offset of the record's line in the spool.
    off: u64,
}

fn path_key(path: &[u8]) -> [u8; 16] {
    let d = Sha256::digest(path);
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

impl FileIndex {
    fn build(ev: &Evidence) -> Result<Self, AnalyzeError> {
        let io_err = |e: io::Error| {
            AnalyzeError::input(format!("cannot spool the records of diff: {e}"), &[])
        };
        let file = tempfile::tempfile().map_err(io_err)?;
        let mut w = io::BufWriter::with_capacity(1 << 20, &file);
        let mut rows = Vec::with_capacity(ev.bundle.content_entries() as usize);
        let mut off = 0u64;
        for r in ev.records()? {
            let r = r?;
            let v = json!({"kind": r.kind, "type": r.file_type, "mode": format!("{:04o}", r.mode & 0o7777), "uid": r.uid, "gid": r.gid, "sha256": r.sha256, "link_target": r.link_target});
            let fields = serde_json::to_vec(&v).unwrap_or_default();
            let d = Sha256::digest(&fields);
            let mut f8 = [0u8; 8];
            f8.copy_from_slice(&d[..8]);
            let mut line = serde_json::to_vec(&json!({"path": r.path, "v": v})).unwrap_or_default();
            line.push(b'\n');
            w.write_all(&line).map_err(io_err)?;
            rows.push(Row {
                key: path_key(r.path.as_bytes()),
                fields: f8,
                off,
            });
            off += line.len() as u64;
        }
        w.flush().map_err(io_err)?;
        drop(w);
        // The last record of a path wins, as it did in a map.
        rows.sort_unstable_by_key(|r| (r.key, std::cmp::Reverse(r.off)));
        rows.dedup_by_key(|r| r.key);
        Ok(FileIndex { rows, spool: file })
    }

    fn get(&self, key: &[u8; 16]) -> Option<&Row> {
        self.rows
            .binary_search_by(|r| r.key.cmp(key))
            .ok()
            .map(|i| &self.rows[i])
    }

    /// The spooled line at `off`: (path, compared fields).
    fn line_at(&self, off: u64) -> io::Result<(Value, Value)> {
        use std::os::unix::fs::FileExt;
        let mut line = Vec::new();
        let mut buf = [0u8; 4096];
        let mut at = off;
        loop {
            let n = self.spool.read_at(&mut buf, at)?;
            if n == 0 {
                break;
            }
            match buf[..n].iter().position(|&b| b == b'\n') {
                Some(i) => {
                    line.extend_from_slice(&buf[..i]);
                    break;
                }
                None => line.extend_from_slice(&buf[..n]),
            }
            at += n as u64;
        }
        let mut v: Value = serde_json::from_slice(&line).map_err(io::Error::other)?;
        Ok((v["path"].take(), v["v"].take()))
    }

    /// Every kept record in bundle order: (row, path, fields).
    fn for_each(&self, f: &mut dyn FnMut(&Row, Value, Value) -> io::Result<()>) -> io::Result<()> {
        let mut r = io::BufReader::with_capacity(1 << 20, &self.spool);
        r.seek(io::SeekFrom::Start(0))?;
        let mut line = Vec::new();
        let mut off = 0u64;
        loop {
            line.clear();
            let n = r.read_until(b'\n', &mut line)?;
            if n == 0 {
                return Ok(());
            }
            let mut v: Value = serde_json::from_slice(&line).map_err(io::Error::other)?;
            let path = v["path"].take();
            if let Some(row) = self.get(&path_key(&path_bytes(&path))) {
                if row.off == off {
                    f(row, path, v["v"].take())?;
                }
            }
            off += n as u64;
        }
    }
}

// The raw bytes of a path as the spool holds it (a string or {"bytes": base64}).
fn path_bytes(v: &Value) -> Vec<u8> {
    serde_json::from_value::<ByteText>(v.clone())
        .map(|b| b.0)
        .unwrap_or_default()
}

/// Everything but the files that diff compares (small: processes, sockets, config).
struct State {
    processes: BTreeSet<(String, String)>,
    listeners: BTreeSet<String>,
    connections: BTreeSet<String>,
    config: BTreeMap<&'static str, Value>,
}

fn state(ev: &Evidence) -> Result<State, AnalyzeError> {
    let processes = ev
        .processes()?
        .iter()
        .map(|p| (exe_display(p), args_text(p)))
        .collect();
    let sockets = ev.sockets()?;
    let listeners = sockets
        .iter()
        .filter(|s| is_listener(s))
        .map(|s| subject(s, false))
        .collect();
    let connections = outbound(&sockets).map(|s| subject(s, true)).collect();
    let c = &ev.container;
    let mounts: Vec<String> = c
        .mounts
        .iter()
        .map(|m| {
            format!(
                "{}:{}{}",
                m.source,
                m.destination,
                if m.read_only { ":ro" } else { "" }
            )
        })
        .collect();
    let config = BTreeMap::from([
        ("image", json!(c.image)),
        (
            "image_id",
            json!(ev.image.image_id.clone().or(c.image_id.clone())),
        ),
        ("privileged", json!(c.privileged)),
        ("host_namespaces", json!(c.host_namespaces)),
        ("cap_add", json!(c.cap_add)),
        ("mounts", json!(mounts)),
        ("user", json!(c.user)),
        ("labels", json!(c.labels)),
    ]);
    Ok(State {
        processes,
        listeners,
        connections,
        config,
    })
}

fn set_delta<T: Ord + Clone>(a: &BTreeSet<T>, b: &BTreeSet<T>) -> (Vec<T>, Vec<T>) {
    (
        b.difference(a).cloned().collect(),
        a.difference(b).cloned().collect(),
    )
}

/// One file delta.
enum FileDelta {
    Added(Value, Value),
    Removed(Value, Value),
    Changed(Value, Value, Value),
}

impl FileDelta {
    fn json(self) -> Value {
        match self {
            FileDelta::Added(p, v) => json!({"path": p, "suspect": v}),
            FileDelta::Removed(p, v) => json!({"path": p, "baseline": v}),
            FileDelta::Changed(p, a, b) => json!({"path": p, "baseline": a, "suspect": b}),
        }
    }
}

/// The file deltas, streamed: added (suspect order), removed and changed (baseline
/// order), each group handed to `f` with its name first.
fn file_deltas(
    a: &FileIndex,
    b: &FileIndex,
    f: &mut dyn FnMut(&'static str, Option<FileDelta>) -> io::Result<()>,
) -> io::Result<()> {
    f("added", None)?;
    b.for_each(&mut |row, p, v| match a.get(&row.key) {
        None => f("added", Some(FileDelta::Added(p, v))),
        Some(_) => Ok(()),
    })?;
    f("removed", None)?;
    a.for_each(&mut |row, p, v| match b.get(&row.key) {
        None => f("removed", Some(FileDelta::Removed(p, v))),
        Some(_) => Ok(()),
    })?;
    f("changed", None)?;
    a.for_each(&mut |row, p, v| match b.get(&row.key) {
        Some(rb) if rb.fields != row.fields => {
            let (_, vb) = b.line_at(rb.off)?;
            f("changed", Some(FileDelta::Changed(p, v, vb)))
        }
        _ => Ok(()),
    })
}

/// Everything of the delta but the files, as JSON (the files are streamed).
fn rest_json(base: &Evidence, sus: &Evidence, a: &State, b: &State) -> Value {
    let (pa, pr) = set_delta(&a.processes, &b.processes);
    let (la, lr) = set_delta(&a.listeners, &b.listeners);
    let (ca, cr) = set_delta(&a.connections, &b.connections);
    let config: Vec<Value> = a
        .config
        .iter()
        .filter(|(k, v)| b.config.get(*k) != Some(v))
        .map(|(k, v)| json!({"field": k, "baseline": v, "suspect": b.config.get(k)}))
        .collect();
    let proc_json = |v: Vec<(String, String)>| -> Vec<Value> {
        v.into_iter()
            .map(|(e, a)| json!({"exe": e, "args": a}))
            .collect()
    };
    json!({
        "schema_version": 1,
        "baseline": {"path": base.path.display().to_string(), "container": base.container.id, "signer": base.bundle.signer()},
        "suspect": {"path": sus.path.display().to_string(), "container": sus.container.id, "signer": sus.bundle.signer()},
        "processes": {"added": proc_json(pa), "removed": proc_json(pr)},
        "listeners": {"added": la, "removed": lr},
        "connections": {"added": ca, "removed": cr},
        "config": config,
    })
}

// Pretty JSON of `v` to be placed at `indent` spaces.
fn pretty_at(v: &Value, indent: usize) -> String {
    let pad = " ".repeat(indent);
    json_visible(&serde_json::to_string_pretty(v).unwrap_or_default())
        .replace('\n', &format!("\n{pad}"))
}

/// Writes the delta as pretty JSON (schema_version 1), the files streamed.
fn write_json(w: &mut dyn Write, rest: &Value, a: &FileIndex, b: &FileIndex) -> io::Result<()> {
    let obj = rest.as_object().cloned().unwrap_or_default();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.push("files");
    keys.sort_unstable();
    w.write_all(b"{")?;
    for (i, k) in keys.iter().enumerate() {
        w.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        write!(w, "  {}: ", serde_json::to_string(k).unwrap_or_default())?;
        if *k != "files" {
            w.write_all(pretty_at(&obj[*k], 2).as_bytes())?;
            continue;
        }
        w.write_all(b"{")?;
        let mut items = 0u64;
        let mut groups = 0;
        file_deltas(a, b, &mut |group, delta| {
            match delta {
                None => {
                    if groups > 0 {
                        w.write_all(if items > 0 { b"\n    ]" } else { b"]" })?;
                    }
                    w.write_all(if groups == 0 { b"\n" } else { b",\n" })?;
                    write!(w, "    \"{group}\": [")?;
                    groups += 1;
                    items = 0;
                }
                Some(d) => {
                    w.write_all(if items == 0 {
                        b"\n      "
                    } else {
                        b",\n      "
                    })?;
                    w.write_all(pretty_at(&d.json(), 6).as_bytes())?;
                    items += 1;
                }
            }
            Ok(())
        })?;
        w.write_all(if items > 0 { b"\n    ]" } else { b"]" })?;
        w.write_all(b"\n  }")?;
    }
    w.write_all(b"\n}\n")
}

/// The delta as one JSON value (schema_version 1); holds every file delta in memory.
pub fn diff_json(base: &Evidence, sus: &Evidence) -> Result<Value, AnalyzeError> {
    let mut buf = Vec::new();
    let (fa, fb) = (FileIndex::build(base)?, FileIndex::build(sus)?);
    let rest = rest_json(base, sus, &state(base)?, &state(sus)?);
    write_json(&mut buf, &rest, &fa, &fb)
        .map_err(|e| AnalyzeError::input(format!("diff: {e}"), &[]))?;
    serde_json::from_slice(&buf).map_err(|e| AnalyzeError::input(format!("diff: {e}"), &[]))
}

// A path for a text line: each field sanitised, invalid UTF-8 bytes as \xNN.
fn path_text(v: &Value) -> String {
    display_bytes(&path_bytes(v))
}

/// Writes the delta as text, every field sanitised on its own before it is joined.
fn write_text(w: &mut dyn Write, rest: &Value, a: &FileIndex, b: &FileIndex) -> io::Result<()> {
    let v = rest;
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let st = |v: &Value| sanitize_line(v.as_str().unwrap_or(""));
    writeln!(
        w,
        "baseline: {}\nsuspect:  {}",
        st(&v["baseline"]["path"]),
        st(&v["suspect"]["path"])
    )?;
    writeln!(w, "\nfiles")?;
    file_deltas(a, b, &mut |_, d| match d {
        None => Ok(()),
        Some(FileDelta::Added(p, _)) => writeln!(w, "  + {}", path_text(&p)),
        Some(FileDelta::Removed(p, _)) => writeln!(w, "  - {}", path_text(&p)),
        Some(FileDelta::Changed(p, _, _)) => writeln!(w, "  ~ {}", path_text(&p)),
    })?;
    writeln!(w, "\nprocesses")?;
    for (sign, key) in [("+", "added"), ("-", "removed")] {
        for p in list(&v["processes"][key]) {
            writeln!(w, "  {sign} {} {}", st(&p["exe"]), st(&p["args"]))?;
        }
    }
    for sect in ["listeners", "connections"] {
        writeln!(w, "\n{sect}")?;
        for (sign, key) in [("+", "added"), ("-", "removed")] {
            for s in list(&v[sect][key]) {
                writeln!(w, "  {sign} {}", st(&s))?;
            }
        }
    }
    writeln!(w, "\nconfiguration")?;
    for c in list(&v["config"]) {
        writeln!(
            w,
            "  ~ {}: {} -> {}",
            st(&c["field"]),
            sanitize_line(&c["baseline"].to_string()),
            sanitize_line(&c["suspect"].to_string())
        )?;
    }
    Ok(())
}

/// `diff BASELINE SUSPECT`.
pub fn diff_command(a: &DiffArgs) -> Result<ExitStatus, AnalyzeError> {
    let keys = load_keys(&a.keys.pubkeys)?;
    let base = Evidence::open(&a.baseline, &keys)?;
    let sus = Evidence::open(&a.suspect, &keys)?;
    let rest = rest_json(&base, &sus, &state(&base)?, &state(&sus)?);
    let (fa, fb) = (FileIndex::build(&base)?, FileIndex::build(&sus)?);
    with_stdout(&mut |w| match a.format {
        DataFormat::Json => write_json(w, &rest, &fa, &fb),
        DataFormat::Text => write_text(w, &rest, &fa, &fb),
    })?;
    Ok(ExitStatus::Success)
}
