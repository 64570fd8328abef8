//! Scorecards as text, JSON or markdown.

use crate::runner::{Matched, Scorecard};
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
        for f in &c.other {
            let _ = writeln!(s, "    other    {} {} ({})", f.rule, f.subject, f.severity);
        }
        if let Some(e) = &c.error {
            let _ = writeln!(s, "    error: {e}");
        }
        if let Some(b) = &c.bundle {
            let _ = write!(s, "    bundle kept: {}", b.display());
            if let Some(k) = &c.pubkey {
                let _ = write!(s, " (verifies with --pubkey {})", k.display());
            }
            let _ = writeln!(s);
        }
    }
    let count = |r: &str| cards.iter().filter(|c| c.result == r).count();
    let _ = writeln!(
        s,
        "{} passed, {} failed, {} errored",
        count("passed"),
        count("failed"),
        count("errored")
    );
    s
}

fn cell(list: &[Matched]) -> String {
    list.iter()
        .map(|m| format!("`{}` {}", m.rule, m.subject.replace('|', "\\|")))
        .collect::<Vec<_>>()
        .join("<br>")
}

/// Markdown table for case notes.
pub fn markdown(cards: &[Scorecard]) -> String {
    let mut s = String::from("| drill | runtime | result | ATT&CK | found | missed | forbidden | other findings | capture s | report s | error / kept bundle |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for c in cards {
        let note = c
            .error
            .iter()
            .map(|e| e.replace('\n', " ").replace('|', "\\|"))
            .chain(c.bundle.iter().map(|b| format!("`{}`", b.display())))
            .collect::<Vec<_>>()
            .join("<br>");
        let _ = writeln!(
            s,
            "| {} | {:?} | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {} |",
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
            cell(&c.forbidden_raised),
            cell(&c.other),
            c.capture_seconds,
            c.report_seconds,
            note
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::DrillRuntime;

    fn card() -> Scorecard {
        let m = |rule: &str, subject: &str| Matched {
            rule: rule.into(),
            subject: subject.into(),
            severity: "high".into(),
        };
        Scorecard {
            drill: "x".into(),
            runtime: DrillRuntime::Docker,
            attack: vec!["T1059.004".into()],
            result: "failed".into(),
            error: None,
            found: vec![m("fs.setuid", "/tmp/.sh")],
            missed: vec![],
            forbidden_raised: vec![],
            other_findings: 2,
            other: vec![
                m("fs.added-executable", "/root/a|b"),
                m("proc.unexpected", "/bin/busybox"),
            ],
            bundle_verified: true,
            capture_seconds: 0.1,
            report_seconds: 0.1,
            total_seconds: 1.0,
            over_budget: false,
            bundle: Some("/tmp/exhibit-drill-1/x-docker/bundle/b.exhibit.tar.zst".into()),
            pubkey: Some("/tmp/exhibit-drill-1/x-docker/drill.pub".into()),
        }
    }

    #[test]
    fn other_findings_are_listed_by_rule_and_subject() {
        let t = text(&[card()]);
        assert!(
            t.contains("    other    fs.added-executable /root/a|b (high)"),
            "{t}"
        );
        assert!(
            t.contains("    other    proc.unexpected /bin/busybox (high)"),
            "{t}"
        );
        assert!(t.contains("bundle kept: /tmp/exhibit-drill-1/x-docker/bundle/b.exhibit.tar.zst (verifies with --pubkey /tmp/exhibit-drill-1/x-docker/drill.pub)"), "{t}");
        assert!(t.contains("0 passed, 1 failed, 0 errored"), "{t}");
        let md = markdown(&[card()]);
        assert!(
            md.contains("`fs.added-executable` /root/a\\|b<br>`proc.unexpected` /bin/busybox"),
            "{md}"
        );
        assert!(
            md.contains("`/tmp/exhibit-drill-1/x-docker/bundle/b.exhibit.tar.zst`"),
            "{md}"
        );
        let json = serde_json::to_value(card()).unwrap();
        assert_eq!(json["other"][1]["rule"], "proc.unexpected");
        assert_eq!(json["other"][1]["subject"], "/bin/busybox");
    }
}
