//! The HTML report: one self-contained file, inline CSS, no scripts and no external
//! resources; every piece of text is escaped (findings carry attacker-controlled text).

use crate::evidence::{signer_text, Evidence};
use crate::finding::{Finding, Severity, Summary};
use crate::render::{evidence_text, summary_line};
use std::fmt::Write as _;

/// Escapes text for HTML element content and quoted attribute values; controls, bidi
/// overrides and isolates, zero-width characters and separators are shown as `\u{..}`.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if exhibit_common::text::is_hidden_char(c) && c != '\n' && c != '\t' => {
                let _ = write!(o, "\\u{{{:x}}}", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;width:100%;margin-bottom:2em}\
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}\
td.subject,td.evidence{font-family:monospace;word-break:break-all}\
.critical{background:#f3d1f5}.high{background:#f8d0d0}.medium{background:#fbefc9}\
.low{background:#d6eef8}.info{background:#eee}";

/// Renders the report page.
pub fn render_html(ev: &Evidence, findings: &[Finding], notes: &[String]) -> String {
    let mut o = String::new();
    let c = &ev.container;
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
<title>exhibit report: {}</title><style>{CSS}</style></head><body>\n",
        escape(c.name.as_deref().unwrap_or("?"))
    );
    let _ = writeln!(o, "<h1>exhibit report</h1><ul>");
    let _ = writeln!(
        o,
        "<li>bundle: <code>{}</code></li>",
        escape(&ev.path.display().to_string())
    );
    let _ = writeln!(
        o,
        "<li>container: {} <code>{}</code></li>",
        escape(c.name.as_deref().unwrap_or("?")),
        escape(c.id.as_deref().unwrap_or("?"))
    );
    let _ = writeln!(
        o,
        "<li>signer: {}</li>",
        escape(&signer_text(ev.bundle.signer()))
    );
    for n in notes {
        let _ = writeln!(o, "<li class=\"note\">note: {}</li>", escape(n));
    }
    let _ = writeln!(
        o,
        "<li id=\"summary\">{}</li></ul>",
        escape(&summary_line(&Summary::of(findings)))
    );
    for sev in Severity::DESCENDING {
        let group: Vec<&Finding> = findings.iter().filter(|f| f.severity == sev).collect();
        if group.is_empty() {
            continue;
        }
        let _ = writeln!(o, "<h2>{} ({})</h2>", sev.as_str(), group.len());
        let _ = writeln!(
            o,
            "<table><tr><th>rule</th><th>subject</th><th>summary</th><th>evidence</th></tr>"
        );
        for f in group {
            let _ = writeln!(
                o,
                "<tr class=\"{}\"><td>{}</td><td class=\"subject\">{}</td><td>{}</td><td class=\"evidence\">{}</td></tr>",
                sev.as_str(),
                escape(f.rule.as_str()),
                escape(&f.subject),
                escape(&f.summary),
                escape(&evidence_text(f))
            );
        }
        let _ = writeln!(o, "</table>");
    }
    o.push_str("</body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::escape("<script>\"'&"),
            "&lt;script&gt;&quot;&#39;&amp;"
        );
        assert_eq!(
            super::escape("a\u{202e}b\u{2066}c\u{200b}d\u{1b}"),
            "a\\u{202e}b\\u{2066}c\\u{200b}d\\u{1b}"
        );
    }
}
