//! `diff BASELINE SUSPECT`: what changed between two captures of (usually) the same
//! workload: files by path and content, processes by exe and arguments, listeners,
//! connections and the runtime configuration.

use crate::cli::{DataFormat, DiffArgs};
use crate::error::AnalyzeError;
use crate::evidence::{load_keys, Evidence};
use crate::netaddr::{is_listener, outbound, subject};
use crate::profile::{args_text, exe_display};
use crate::render::{sanitize_line, write_out};
use exhibit_common::cli::ExitStatus;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// The state of one bundle that diff compares.
struct State {
    files: BTreeMap<String, Value>,
    processes: BTreeSet<(String, String)>,
    listeners: BTreeSet<String>,
    connections: BTreeSet<String>,
    config: BTreeMap<&'static str, Value>,
}

fn state(ev: &Evidence) -> Result<State, AnalyzeError> {
    let mut files = BTreeMap::new();
    for r in ev.records()? {
        let r = r?;
        files.insert(
            r.path.lossy(),
            json!({"kind": r.kind, "type": r.file_type, "mode": format!("{:04o}", r.mode & 0o7777), "uid": r.uid, "gid": r.gid, "sha256": r.sha256, "link_target": r.link_target}),
        );
    }
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
        files,
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

/// The delta as JSON (schema_version 1).
pub fn diff_json(base: &Evidence, sus: &Evidence) -> Result<Value, AnalyzeError> {
    let a = state(base)?;
    let b = state(sus)?;
    let added: Vec<Value> = b
        .files
        .iter()
        .filter(|(k, _)| !a.files.contains_key(*k))
        .map(|(k, v)| json!({"path": k, "suspect": v}))
        .collect();
    let removed: Vec<Value> = a
        .files
        .iter()
        .filter(|(k, _)| !b.files.contains_key(*k))
        .map(|(k, v)| json!({"path": k, "baseline": v}))
        .collect();
    let changed: Vec<Value> = a
        .files
        .iter()
        .filter_map(|(k, va)| {
            b.files
                .get(k)
                .filter(|vb| *vb != va)
                .map(|vb| json!({"path": k, "baseline": va, "suspect": vb}))
        })
        .collect();
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
    Ok(json!({
        "schema_version": 1,
        "baseline": {"path": base.path.display().to_string(), "container": base.container.id, "signer": base.bundle.signer()},
        "suspect": {"path": sus.path.display().to_string(), "container": sus.container.id, "signer": sus.bundle.signer()},
        "files": {"added": added, "removed": removed, "changed": changed},
        "processes": {"added": proc_json(pa), "removed": proc_json(pr)},
        "listeners": {"added": la, "removed": lr},
        "connections": {"added": ca, "removed": cr},
        "config": config,
    }))
}

fn text(v: &Value) -> String {
    let mut o = String::new();
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let _ = writeln!(
        o,
        "baseline: {}\nsuspect:  {}",
        v["baseline"]["path"].as_str().unwrap_or(""),
        v["suspect"]["path"].as_str().unwrap_or("")
    );
    let _ = writeln!(o, "\nfiles");
    for f in list(&v["files"]["added"]) {
        let _ = writeln!(o, "  + {}", f["path"].as_str().unwrap_or(""));
    }
    for f in list(&v["files"]["removed"]) {
        let _ = writeln!(o, "  - {}", f["path"].as_str().unwrap_or(""));
    }
    for f in list(&v["files"]["changed"]) {
        let _ = writeln!(o, "  ~ {}", f["path"].as_str().unwrap_or(""));
    }
    let _ = writeln!(o, "\nprocesses");
    for (sign, key) in [("+", "added"), ("-", "removed")] {
        for p in list(&v["processes"][key]) {
            let _ = writeln!(
                o,
                "  {sign} {} {}",
                p["exe"].as_str().unwrap_or(""),
                p["args"].as_str().unwrap_or("")
            );
        }
    }
    for sect in ["listeners", "connections"] {
        let _ = writeln!(o, "\n{sect}");
        for (sign, key) in [("+", "added"), ("-", "removed")] {
            for s in list(&v[sect][key]) {
                let _ = writeln!(o, "  {sign} {}", s.as_str().unwrap_or(""));
            }
        }
    }
    let _ = writeln!(o, "\nconfiguration");
    for c in list(&v["config"]) {
        let _ = writeln!(
            o,
            "  ~ {}: {} -> {}",
            c["field"].as_str().unwrap_or(""),
            c["baseline"],
            c["suspect"]
        );
    }
    o.lines().map(|l| sanitize_line(l) + "\n").collect()
}

/// `diff BASELINE SUSPECT`.
pub fn diff_command(a: &DiffArgs) -> Result<ExitStatus, AnalyzeError> {
    let keys = load_keys(&a.keys.pubkeys)?;
    let base = Evidence::open(&a.baseline, &keys)?;
    let sus = Evidence::open(&a.suspect, &keys)?;
    let v = diff_json(&base, &sus)?;
    match a.format {
        DataFormat::Json => {
            write_out(&(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"))
        }
        DataFormat::Text => write_out(&text(&v)),
    }?;
    Ok(ExitStatus::Success)
}
