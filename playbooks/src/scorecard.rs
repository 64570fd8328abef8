//! Scorecards as text, JSON or markdown.

use crate::runner::Scorecard;
use std::fmt::Write;

/// Text scorecard for a terminal.
pub fn text(cards: &[Scorecard]) -> String {
    let mut s = String::new();
    for c in cards {
        let _ = writeln!(
            s,
            "{:<8} {:<24} {:<10} capture {:.2}s  report {:.2}s  total {:.1}s  verified: {}  [{}]",
            c.result.to_uppercase(),
            c.drill,
            format!("{:?}", c.runtime).to_lowercase(),
            c.capture_seconds,
            c.report_seconds,
            c.total_seconds,
            if c.bundle_verified { "yes" } else { "no" },
            c.attack.join(", ")
        );
        for f in &c.found {
            let _ = writeln!(s, "    found    {} {} ({})", f.rule, f.subject, f.severity);
        }
        for m in &c.missed {
            let _ = writeln!(s, "    MISSED   {} /{}/", m.rule, m.subject);
        }
        for f in &c.forbidden_raised {
            let _ = writeln!(s, "    FORBIDDEN {} {}", f.rule, f.subject);
        }
        if let Some(e) = &c.error {
            let _ = writeln!(s, "    error: {e}");
        }
        if let Some(b) = &c.bundle {
            let _ = writeln!(s, "    bundle: {}", b.display());
        }
    }
    let passed = cards.iter().filter(|c| c.result == "passed").count();
    let _ = writeln!(s, "{passed} passed, {} failed", cards.len() - passed);
    s
}

/// Markdown table for case notes.
pub fn markdown(cards: &[Scorecard]) -> String {
    let mut s = String::from("| drill | runtime | result | ATT&CK | found | missed | forbidden | capture s | report s |\n|---|---|---|---|---|---|---|---|---|\n");
    for c in cards {
        let _ = writeln!(
            s,
            "| {} | {:?} | {} | {} | {} | {} | {} | {:.2} | {:.2} |",
            c.drill,
            c.runtime,
            c.result,
            c.attack.join(" "),
            c.found.len(),
            c.missed
                .iter()
                .map(|m| format!("`{}` {}", m.rule, m.subject.replace('|', "\\|")))
                .collect::<Vec<_>>()
                .join("<br>"),
            c.forbidden_raised.len(),
            c.capture_seconds,
            c.report_seconds
        );
    }
    s
}
