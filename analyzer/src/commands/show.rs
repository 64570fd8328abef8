//! `show`: what a bundle holds: manifest, container, custody, counts, processes, sockets.

use crate::cli::{DataFormat, ShowArgs};
use crate::error::AnalyzeError;
use crate::evidence::{load_keys, signer_text, Evidence};
use crate::render::{sanitize_line, write_out};
use exhibit_common::cli::ExitStatus;
use exhibit_common::manifest::CompletenessStatus;
use exhibit_common::records::{ProcessRecord, SocketRecord};
use exhibit_common::text::json_visible;
use serde_json::{json, Value};
use std::fmt::Write as _;

/// "complete" or "INCOMPLETE (reasons)", each reason sanitised.
pub fn completeness_text(ev: &Evidence) -> String {
    let c = &ev.bundle.manifest().completeness;
    match c.status {
        CompletenessStatus::Complete => "complete".into(),
        CompletenessStatus::Incomplete => format!(
            "INCOMPLETE ({})",
            c.reasons
                .iter()
                .map(|r| sanitize_line(r))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}

/// The JSON view of a bundle used by `show --format json`.
pub fn show_json(
    ev: &Evidence,
    procs: &[ProcessRecord],
    socks: &[SocketRecord],
) -> Result<Value, AnalyzeError> {
    let m = ev.bundle.manifest();
    Ok(json!({
        "schema_version": 1,
        "bundle": {
            "path": ev.path.display().to_string(),
            "sha256": ev.file_sha256()?,
            "signer": ev.bundle.signer(),
            "compressed_size": ev.bundle.compressed_size(),
            "decompressed_size": ev.bundle.decompressed_size(),
            "content_entries": ev.bundle.content_entries(),
        },
        "manifest": m,
        "container": ev.container,
        "image": ev.image,
        "custody": {
            "case": m.case, "examiner": m.examiner, "note": m.note,
            "started_at": m.started_at, "ended_at": m.ended_at, "freeze": m.freeze,
            "operator_uid": m.operator_uid, "command_line": m.command_line,
            "acquisition_chain": "ok",
            "acquisition": ev.acquisition,
        },
        "completeness": m.completeness,
        "counts": m.counts,
        "processes": procs.iter().map(|p| json!({
            "pid": p.pid, "ns_pid": p.ns_pid, "ppid": p.ppid, "uid": p.uid, "user": p.user,
            "exe": p.exe, "exe_deleted": p.exe_deleted, "memfd": p.memfd,
            "argv": p.argv.items, "start_time": p.start_time,
        })).collect::<Vec<_>>(),
        "sockets": socks,
    }))
}

/// `show BUNDLE`.
pub fn show_command(a: &ShowArgs) -> Result<ExitStatus, AnalyzeError> {
    let keys = load_keys(&a.keys.pubkeys)?;
    let ev = Evidence::open(&a.bundle, &keys)?;
    let procs = ev.processes()?;
    let socks = ev.sockets()?;
    if a.format == DataFormat::Json {
        let v = show_json(&ev, &procs, &socks)?;
        write_out(&(json_visible(&serde_json::to_string_pretty(&v).unwrap_or_default()) + "\n"))?;
        return Ok(ExitStatus::Success);
    }
    let m = ev.bundle.manifest();
    let c = &ev.container;
    // Every field is sanitised on its own before it is joined into a line: a newline in
    // an argv, a path or a note is shown as \u{a}, never as a line of its own.
    let s = |t: &str| sanitize_line(t);
    let opt = |o: &Option<String>| sanitize_line(o.as_deref().unwrap_or("-"));
    let list = |v: &[String]| {
        v.iter()
            .map(|t| sanitize_line(t))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut o = String::new();
    let _ = writeln!(o, "bundle:       {}", s(&ev.path.display().to_string()));
    let _ = writeln!(o, "sha256:       {}", ev.file_sha256()?);
    let _ = writeln!(o, "signer:       {}", signer_text(ev.bundle.signer()));
    let _ = writeln!(
        o,
        "schema:       {} (written by {} {})",
        m.schema_version,
        s(&m.tool.name),
        s(&m.tool.version)
    );
    let _ = writeln!(o, "\ncontainer");
    let _ = writeln!(o, "  id:         {}", opt(&c.id));
    let _ = writeln!(o, "  name:       {}", opt(&c.name));
    let _ = writeln!(o, "  runtime:    {}", opt(&c.runtime));
    let _ = writeln!(o, "  image:      {} ({})", opt(&c.image), opt(&c.image_id));
    if c.pod.is_some() {
        let _ = writeln!(o, "  pod:        {}/{}", opt(&c.pod_namespace), opt(&c.pod));
    }
    let _ = writeln!(o, "  created:    {}", opt(&c.created));
    let _ = writeln!(o, "  started:    {}", opt(&c.started));
    let _ = writeln!(o, "  privileged: {}", c.privileged);
    if !c.host_namespaces.is_empty() {
        let _ = writeln!(o, "  host namespaces: {}", list(&c.host_namespaces));
    }
    if !c.cap_add.is_empty() {
        let _ = writeln!(o, "  added capabilities: {}", list(&c.cap_add));
    }
    let _ = writeln!(o, "\ncustody");
    let _ = writeln!(o, "  case:       {}", opt(&m.case));
    let _ = writeln!(o, "  examiner:   {}", opt(&m.examiner));
    let _ = writeln!(o, "  note:       {}", opt(&m.note));
    let _ = writeln!(
        o,
        "  captured:   {} .. {}",
        s(&m.started_at),
        s(&m.ended_at)
    );
    if let Some(f) = &m.freeze {
        let _ = writeln!(
            o,
            "  frozen:     {} .. {}",
            s(&f.paused_at),
            opt(&f.resumed_at)
        );
    }
    let _ = writeln!(
        o,
        "  acquisition log: {} events, hash chain ok",
        ev.acquisition.len()
    );
    for e in ev
        .acquisition
        .iter()
        .filter(|e| e.outcome != "ok" && e.outcome != "info")
    {
        let _ = writeln!(
            o,
            "    {} {} {}: {}",
            s(&e.t),
            s(&e.step),
            s(&e.outcome),
            opt(&e.error.clone().or(e.detail.clone()))
        );
    }
    let _ = writeln!(o, "\ncompleteness: {}", completeness_text(&ev));
    let _ = writeln!(o, "\ncounts");
    for (tree, t) in &m.counts.trees {
        let _ = writeln!(o, "  {}: {} entries, {} bytes", s(tree), t.entries, t.bytes);
    }
    let _ = writeln!(
        o,
        "  processes {}, sockets {}, log lines {}, executables {}, memory regions {}",
        m.counts.processes,
        m.counts.sockets,
        m.counts.log_lines,
        m.counts.executables,
        m.counts.memory_regions
    );
    let _ = writeln!(o, "\nprocesses ({})", procs.len());
    for p in &procs {
        let flags = [(p.exe_deleted, " [exe deleted]"), (p.memfd, " [memfd]")]
            .iter()
            .filter(|f| f.0)
            .map(|f| f.1)
            .collect::<String>();
        let argv: Vec<String> = p.argv.items.iter().map(|a| s(&a.lossy())).collect();
        let _ = writeln!(
            o,
            "  {:>7} {:<8} {}{}  {}",
            p.pid,
            s(&p.user.clone().unwrap_or_else(|| p.uid.to_string())),
            p.exe
                .as_ref()
                .map(|e| s(&e.lossy()))
                .unwrap_or_else(|| format!("[{}]", s(&p.comm.lossy()))),
            flags,
            argv.join(" ")
        );
    }
    let _ = writeln!(o, "\nsockets ({})", socks.len());
    for s in &socks {
        let _ = writeln!(
            o,
            "  {:<6} {:<12} {:<24} {:<24} pids {:?}",
            sanitize_line(&s.proto),
            sanitize_line(&s.state),
            sanitize_line(&s.local),
            sanitize_line(&s.remote),
            s.pids
        );
    }
    write_out(&o)?;
    Ok(ExitStatus::Success)
}
