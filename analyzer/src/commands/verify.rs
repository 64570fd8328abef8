//! `verify`: whether a bundle can be trusted, as a short summary.

use super::show::completeness_text;
use crate::cli::VerifyArgs;
use crate::error::AnalyzeError;
use crate::evidence::{load_keys, signer_text, Evidence};
use crate::render::{sanitize_line, write_out};
use exhibit_common::cli::ExitStatus;
use std::fmt::Write as _;

/// `verify BUNDLE`: a short summary on stdout; exit 0, 2 or 3.
pub fn verify_command(a: &VerifyArgs) -> Result<ExitStatus, AnalyzeError> {
    let keys = load_keys(&a.keys.pubkeys)?;
    let ev = Evidence::open(&a.bundle, &keys)?;
    let m = ev.bundle.manifest();
    let c = &ev.container;
    let mut out = String::new();
    let _ = writeln!(out, "OK {}", sanitize_line(&ev.path.display().to_string()));
    let _ = writeln!(out, "signer: {}", signer_text(ev.bundle.signer()));
    let _ = writeln!(
        out,
        "container: {} name={} runtime={}",
        sanitize_line(c.id.as_deref().unwrap_or("?")),
        sanitize_line(c.name.as_deref().unwrap_or("?")),
        sanitize_line(c.runtime.as_deref().unwrap_or("?"))
    );
    let _ = writeln!(out, "completeness: {}", completeness_text(&ev));
    let _ = writeln!(
        out,
        "counts: {} content entries, {} exhibit members, {} processes, {} sockets, {} log lines",
        ev.bundle.content_entries(),
        ev.bundle.member_digests().len() + 1,
        m.counts.processes,
        m.counts.sockets,
        m.counts.log_lines
    );
    let _ = writeln!(out, "sha256: {}", ev.file_sha256()?);
    write_out(&out)?;
    Ok(ExitStatus::Success)
}
