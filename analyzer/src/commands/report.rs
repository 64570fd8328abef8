//! `report`: runs the rules and renders findings as text, JSON, Markdown or HTML.

use crate::cli::{ReportArgs, ReportFormat};
use crate::error::AnalyzeError;
use crate::evidence::{load_keys, Evidence};
use crate::finding::{Finding, Summary};
use crate::image::SavedImage;
use crate::profile::Profile;
use crate::render::{render_markdown, render_text, sanitize_line, write_out, yara_notes};
use crate::rules::yara::ScanSummary;
use crate::rules::{self, RuleInput};
use exhibit_common::cli::ExitStatus;
use exhibit_common::dsse::SignerStatus;
use serde_json::{json, Value};

/// The report as one JSON value (schema_version 1, documented in docs/findings.md).
pub fn report_json(
    ev: &Evidence,
    image: Option<&SavedImage>,
    profile: Option<&std::path::Path>,
    yara: Option<&ScanSummary>,
    findings: &[Finding],
) -> Result<Value, AnalyzeError> {
    let c = &ev.container;
    let m = ev.bundle.manifest();
    let (sig, keyids): (&str, Vec<String>) = match ev.bundle.signer() {
        SignerStatus::Verified { keyid } => ("verified", vec![keyid.clone()]),
        SignerStatus::Unverified { keyids } => ("unverified", keyids.clone()),
        SignerStatus::Unsigned => ("unsigned", vec![]),
    };
    Ok(json!({
        "schema_version": 1,
        "bundle": {
            "path": ev.path.display().to_string(),
            "sha256": ev.file_sha256()?,
            "container": {
                "runtime": c.runtime, "id": c.id, "name": c.name, "image": c.image,
                "image_id": c.image_id, "pod": c.pod, "pod_namespace": c.pod_namespace,
            },
            "signer": ev.bundle.signer(),
            "completeness": m.completeness,
            "case": m.case,
            "captured": {"started_at": m.started_at, "ended_at": m.ended_at},
        },
        "verification": {
            "signature": sig,
            "keyids": keyids,
            "members_verified": ev.bundle.member_digests().len() + 1,
            "content_entries_verified": ev.bundle.content_entries(),
            "acquisition_chain": "ok",
            "acquisition_events": ev.acquisition.len(),
        },
        "inputs": {
            "image": image.map(|i| json!({"path": i.source.display().to_string(), "id": i.id, "repo_tags": i.repo_tags, "files": i.files.len()})),
            "profile": profile.map(|p| p.display().to_string()),
            "yara": yara.map(|y| y.path.clone()),
        },
        "yara": yara,
        "summary": Summary::of(findings),
        "findings": findings,
    }))
}

/// `report BUNDLE`.
pub fn report_command(a: &ReportArgs) -> Result<ExitStatus, AnalyzeError> {
    let keys = load_keys(&a.keys.pubkeys)?;
    let profile = a.profile.as_deref().map(Profile::load).transpose()?;
    // Rules compile before the bundle is read: a broken rule fails fast, and nothing of
    // the bundle is scanned before it verified.
    let yara = a.yara.as_deref().map(crate::yara_rules::load).transpose()?;
    let ev = Evidence::open(&a.bundle, &keys)?;
    let prefer = ev
        .image
        .image_id
        .clone()
        .or_else(|| ev.container.image_id.clone());
    let image = a
        .image
        .as_deref()
        .map(|p| crate::image::load(p, prefer.as_deref()))
        .transpose()?;
    if let Some(i) = &image {
        if i.skipped_entries > 0 {
            eprintln!(
                "warning: {} layer entries with '..' in their path were ignored",
                i.skipped_entries
            );
        }
    }
    let input = RuleInput {
        ev: &ev,
        image: image.as_ref(),
        profile: profile.as_ref(),
    };
    let yara_input = yara.as_ref().map(|rules| rules::YaraInput {
        rules,
        max_size: a.yara_max_size,
    });
    let (findings, scan) = rules::run_with_yara(&input, yara_input.as_ref())?;
    let notes = scan.as_ref().map(yara_notes).unwrap_or_default();
    // Coverage gaps go to stderr too, whatever the format: never silent.
    for n in notes.iter().skip(1) {
        eprintln!("warning: {}", sanitize_line(n));
    }
    let text = match a.format {
        ReportFormat::Json => {
            let v = report_json(
                &ev,
                image.as_ref(),
                a.profile.as_deref(),
                scan.as_ref(),
                &findings,
            )?;
            exhibit_common::text::json_visible(
                &serde_json::to_string_pretty(&v).unwrap_or_default(),
            ) + "\n"
        }
        ReportFormat::Text => {
            let colour =
                anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never;
            render_text(&ev, &findings, &notes, colour)
        }
        ReportFormat::Markdown => render_markdown(&ev, &findings, &notes),
        ReportFormat::Html => crate::html::render_html(&ev, &findings, &notes),
    };
    write_out(&text)?;
    let fail = a
        .fail_on
        .is_some_and(|min| findings.iter().any(|f| f.severity >= min));
    Ok(if fail {
        ExitStatus::FindingAtFailOn
    } else {
        ExitStatus::Success
    })
}
