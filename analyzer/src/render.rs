//! Rendering findings for people: text and Markdown (HTML is in html.rs), plus the
//! stdout writer the commands share. Findings carry attacker-controlled text: human
//! formats strip control characters, Markdown escapes its syntax and inline HTML, HTML
//! escapes everything (see html.rs).

use crate::error::AnalyzeError;
use crate::evidence::Evidence;
use crate::finding::{Finding, Severity, Summary};
use crate::rules::yara::ScanSummary;
pub use exhibit_common::text::sanitize_line;
use serde_json::Value;
use std::fmt::Write as _;
use std::io::Write;

/// Writes data to stdout; a closed pipe (`| head`) is not an error.
pub fn write_out(s: &str) -> Result<(), AnalyzeError> {
    write_bytes(s.as_bytes())
}

/// Streams output to stdout through a buffer; a closed pipe (`| head`) ends it quietly.
pub fn with_stdout(
    f: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), AnalyzeError> {
    let out = std::io::stdout().lock();
    let mut w = std::io::BufWriter::with_capacity(1 << 16, out);
    match f(&mut w).and_then(|_| w.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(AnalyzeError::input(
            format!("cannot write to stdout: {e}"),
            &[],
        )),
    }
}

/// Writes bytes to stdout; a closed pipe is not an error.
pub fn write_bytes(b: &[u8]) -> Result<(), AnalyzeError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(b).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(AnalyzeError::input(
            format!("cannot write to stdout: {e}"),
            &[],
        )),
    }
}

fn style(sev: Severity) -> anstyle::Style {
    use anstyle::AnsiColor::*;
    let c = match sev {
        Severity::Critical => Magenta,
        Severity::High => Red,
        Severity::Medium => Yellow,
        Severity::Low => Cyan,
        Severity::Info => White,
    };
    anstyle::Style::new().bold().fg_color(Some(c.into()))
}

/// Compact `key=value` rendering of evidence for the human formats.
pub fn evidence_text(f: &Finding) -> String {
    f.evidence
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The summary line.
pub fn summary_line(s: &Summary) -> String {
    format!(
        "{} finding(s): {} critical, {} high, {} medium, {} low, {} info",
        s.total, s.critical, s.high, s.medium, s.low, s.info
    )
}

/// Lines about what the YARA scan covered (and did not), for the human formats and
/// stderr: counts, objects truncated at `--yara-max-size`, failed scans.
pub fn yara_notes(s: &ScanSummary) -> Vec<String> {
    const LISTED: usize = 10;
    let c = &s.scanned;
    let mut notes = vec![format!(
        "YARA: {} rule(s) from {}; scanned {} file(s), {} kept executable(s), {} memory region(s), {} bytes",
        s.rules, s.path, c.files, c.executables, c.memory_regions, c.bytes
    )];
    if c.files_not_captured > 0 {
        notes.push(format!(
            "YARA: {} regular file(s) have no content in the bundle (captured: false) and were not scanned",
            c.files_not_captured
        ));
    }
    let list = |items: &[Value], key: &str| -> String {
        items
            .iter()
            .take(LISTED)
            .map(|v| {
                format!(
                    "{} ({})",
                    v["member"].as_str().unwrap_or("?"),
                    match &v[key] {
                        Value::String(t) => t.clone(),
                        other => format!("{other} bytes"),
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if s.truncated_total > 0 {
        let more = s.truncated_total.saturating_sub(LISTED as u64);
        notes.push(format!(
            "YARA: {} object(s) larger than --yara-max-size ({} bytes) were scanned only up to it: {}{}",
            s.truncated_total,
            s.max_size,
            list(&s.truncated, "size"),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        ));
    }
    if s.errors_total > 0 {
        let more = s.errors_total.saturating_sub(LISTED as u64);
        notes.push(format!(
            "YARA: the scan failed on {} object(s): {}{}",
            s.errors_total,
            list(&s.errors, "error"),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    notes
}

/// Text grouped by severity; coloured on a terminal unless NO_COLOR.
pub fn render_text(ev: &Evidence, findings: &[Finding], notes: &[String], colour: bool) -> String {
    let mut o = String::new();
    let c = &ev.container;
    let _ = writeln!(
        o,
        "exhibit report: {} (container {} {}, signer {})",
        sanitize_line(&ev.path.display().to_string()),
        sanitize_line(c.name.as_deref().unwrap_or("?")),
        sanitize_line(c.id.as_deref().unwrap_or("?")),
        sanitize_line(&crate::evidence::signer_text(ev.bundle.signer()))
    );
    for n in notes {
        let _ = writeln!(o, "note: {}", sanitize_line(n));
    }
    for sev in Severity::DESCENDING {
        let group: Vec<&Finding> = findings.iter().filter(|f| f.severity == sev).collect();
        if group.is_empty() {
            continue;
        }
        let st = if colour {
            style(sev)
        } else {
            anstyle::Style::new()
        };
        let _ = writeln!(
            o,
            "\n{st}{} ({}){st:#}",
            sev.as_str().to_uppercase(),
            group.len()
        );
        for f in group {
            let _ = writeln!(o, "  {:<26} {}", f.rule, sanitize_line(&f.subject));
            let _ = writeln!(o, "      {}", sanitize_line(&f.summary));
            let ev = evidence_text(f);
            if !ev.is_empty() {
                let _ = writeln!(o, "      {}", sanitize_line(&ev));
            }
        }
    }
    let _ = writeln!(o, "\n{}", summary_line(&Summary::of(findings)));
    o
}

/// Escapes text for Markdown: its syntax characters and inline HTML.
pub fn md_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in sanitize_line(s).chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '(' | ')' | '#' | '+' | '-' | '.'
            | '!' | '|' | '~' | '"' | '\'' => {
                o.push('\\');
                o.push(c);
            }
            c => o.push(c),
        }
    }
    o
}

/// Markdown with one table per severity.
pub fn render_markdown(ev: &Evidence, findings: &[Finding], notes: &[String]) -> String {
    let mut o = String::new();
    let c = &ev.container;
    let _ = writeln!(o, "# exhibit report\n");
    let _ = writeln!(o, "- bundle: {}", md_escape(&ev.path.display().to_string()));
    let _ = writeln!(
        o,
        "- container: {} ({})",
        md_escape(c.name.as_deref().unwrap_or("?")),
        md_escape(c.id.as_deref().unwrap_or("?"))
    );
    let _ = writeln!(
        o,
        "- signer: {}",
        md_escape(&crate::evidence::signer_text(ev.bundle.signer()))
    );
    for n in notes {
        let _ = writeln!(o, "- note: {}", md_escape(n));
    }
    let _ = writeln!(
        o,
        "- {}\n",
        md_escape(&summary_line(&Summary::of(findings)))
    );
    for sev in Severity::DESCENDING {
        let group: Vec<&Finding> = findings.iter().filter(|f| f.severity == sev).collect();
        if group.is_empty() {
            continue;
        }
        let _ = writeln!(o, "## {} ({})\n", sev.as_str(), group.len());
        let _ = writeln!(
            o,
            "| rule | subject | summary | evidence |\n|---|---|---|---|"
        );
        for f in group {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                md_escape(f.rule.as_str()),
                md_escape(&f.subject),
                md_escape(&f.summary),
                md_escape(&evidence_text(f))
            );
        }
        o.push('\n');
    }
    o
}
