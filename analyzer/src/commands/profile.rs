//! `profile`: learns expected behaviour from known-good bundles, so that a report of
//! the same bundles against it raises no profile finding.

use crate::cli::ProfileArgs;
use crate::error::AnalyzeError;
use crate::evidence::{load_keys, Evidence};
use crate::netaddr::{self, base_proto, is_listener, outbound};
use crate::profile::{args_text, exe_display, ProcessRule, ProfileDoc, UserSpec};
use exhibit_common::cli::ExitStatus;
use exhibit_common::output::AtomicFile;
use exhibit_common::records::{ChangeKind, FileType, Source};
use std::collections::BTreeSet;
use std::io::Write;

/// What one bundle contributes to a profile.
pub fn learn(ev: &Evidence, doc: &mut ProfileDoc) -> Result<(), AnalyzeError> {
    let mut procs: BTreeSet<(String, String, String)> = doc
        .processes
        .iter()
        .map(|p| {
            (
                p.exe.clone(),
                p.args.clone().unwrap_or_default(),
                format!("{:?}", p.user),
            )
        })
        .collect();
    for p in ev.processes()? {
        let rule = ProcessRule {
            exe: exe_display(&p),
            args: Some(format!("^{}$", regex::escape(&args_text(&p)))),
            user: Some(match &p.user {
                Some(n) => UserSpec::Name(n.clone()),
                None => UserSpec::Uid(p.uid),
            }),
        };
        let key = (
            rule.exe.clone(),
            rule.args.clone().unwrap_or_default(),
            format!("{:?}", rule.user),
        );
        if procs.insert(key) {
            doc.processes.push(rule);
        }
    }
    let sockets = ev.sockets()?;
    let mut listeners: BTreeSet<String> = doc.listeners.iter().cloned().collect();
    for s in sockets.iter().filter(|s| is_listener(s)) {
        let l = match base_proto(&s.proto) {
            "unix" => format!("unix:{}", netaddr::unix_path(s)),
            p => match netaddr::port_of(&s.local) {
                Some(port) => format!("{p}/{port}"),
                None => continue,
            },
        };
        listeners.insert(l);
    }
    doc.listeners = listeners.into_iter().collect();
    let mut egress: BTreeSet<String> = doc.egress.iter().cloned().collect();
    for s in outbound(&sockets) {
        if let Some((ip, port)) = netaddr::parse_endpoint(&s.remote) {
            egress.insert(match ip {
                std::net::IpAddr::V4(v4) => format!("{v4}/32:{port}"),
                std::net::IpAddr::V6(v6) => format!("[{v6}/128]:{port}"),
            });
        }
    }
    doc.egress = egress.into_iter().collect();
    let mut dirs: BTreeSet<String> = doc
        .writable_paths
        .iter()
        .filter_map(|w| w.strip_suffix("/**").map(str::to_string))
        .collect();
    for r in ev.records()? {
        let r = r?;
        if r.source == Source::RuntimeFile
            || (r.file_type == FileType::Dir && r.kind == ChangeKind::Modified)
        {
            continue;
        }
        let path = r.path.lossy();
        let dir = if r.file_type == FileType::Dir || r.kind == ChangeKind::OpaqueDir {
            path.trim_end_matches('/').to_string()
        } else {
            match path.rsplit_once('/') {
                Some((d, _)) => d.to_string(),
                None => continue,
            }
        };
        dirs.insert(dir);
    }
    // Drop directories covered by an ancestor; glob metacharacters are escaped.
    let kept: Vec<String> = dirs
        .iter()
        .filter(|d| {
            !dirs
                .iter()
                .any(|a| *a != **d && (a.is_empty() || d.starts_with(&format!("{a}/"))))
        })
        .cloned()
        .collect();
    doc.writable_paths = kept
        .iter()
        .map(|d| format!("{}/**", glob_escape(d)))
        .collect();
    Ok(())
}

/// Escapes glob metacharacters so a learned path matches only itself.
pub fn glob_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\' | '!') {
            o.push('[');
            o.push(c);
            o.push(']');
        } else {
            o.push(c);
        }
    }
    o
}

/// `profile BUNDLE... -o FILE`.
pub fn profile_command(a: &ProfileArgs) -> Result<ExitStatus, AnalyzeError> {
    let keys = load_keys(&a.keys.pubkeys)?;
    let mut doc = ProfileDoc::default();
    for b in &a.bundles {
        let ev = Evidence::open(b, &keys)?;
        learn(&ev, &mut doc)?;
    }
    let yaml = serde_norway::to_string(&doc)
        .map_err(|e| AnalyzeError::input(format!("cannot render the profile: {e}"), &[]))?;
    let sources: Vec<String> = a
        .bundles
        .iter()
        .map(|b| b.display().to_string().replace('\n', " "))
        .collect();
    let text = format!(
        "# exhibit expected-behaviour profile, learned by exhibit-analyze profile from:\n#   {}\n# Review it before use: everything these bundles did is allowed.\n{yaml}",
        sources.join("\n#   ")
    );
    let out_err = |e: std::io::Error| {
        AnalyzeError::input(
            format!("cannot write profile {}: {e}", a.output.display()),
            &["the output is never replaced: choose a new file name"],
        )
    };
    let mut f = AtomicFile::create(&a.output).map_err(out_err)?;
    f.file().write_all(text.as_bytes()).map_err(out_err)?;
    f.commit().map_err(out_err)?;
    eprintln!(
        "wrote {}: {} processes, {} listeners, {} egress, {} writable paths",
        a.output.display(),
        doc.processes.len(),
        doc.listeners.len(),
        doc.egress.len(),
        doc.writable_paths.len()
    );
    Ok(ExitStatus::Success)
}
