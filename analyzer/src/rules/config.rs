//! config.* rules (runtime configuration), image.mismatch, bundle.incomplete and
//! log.pattern.

use super::RuleInput;
use crate::container::MountSummary;
use crate::error::AnalyzeError;
use crate::finding::{Finding, RuleId, Severity};
use exhibit_common::manifest::CompletenessStatus;
use std::collections::BTreeSet;

/// Capabilities that amount to host access.
pub const DANGEROUS_CAPS: &[&str] = &[
    "CAP_SYS_ADMIN",
    "CAP_SYS_MODULE",
    "CAP_SYS_PTRACE",
    "CAP_SYS_RAWIO",
    "CAP_DAC_READ_SEARCH",
    "CAP_DAC_OVERRIDE",
    "CAP_BPF",
    "CAP_SYS_BOOT",
    "CAP_MAC_ADMIN",
    "CAP_NET_ADMIN",
    "CAP_ALL",
];

/// Host paths whose bind mount exposes the host (exact, or anything under).
const SENSITIVE_TREES: &[&str] = &[
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/root",
    "/lib/modules",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/var/lib/kubelet/pki",
    "/run/containerd",
    "/var/run/containerd",
    "/run/docker",
    "/var/run/docker",
    "/run/crio",
    "/var/run/crio",
];
/// Host paths sensitive only as a whole.
const SENSITIVE_EXACT: &[&str] = &[
    "/",
    "/home",
    "/var",
    "/usr",
    "/run",
    "/var/run",
    "/var/log",
    "/var/lib",
    "/var/lib/kubelet",
    "/lib",
    "/bin",
    "/sbin",
    "/opt",
];

/// Why a host path is sensitive, and whether critically so (runtime sockets, `/`).
pub fn sensitive(source: &str) -> Option<(&'static str, bool)> {
    let s = if source.len() > 1 {
        source.trim_end_matches('/')
    } else {
        source
    };
    if s.ends_with(".sock")
        && (s.contains("docker")
            || s.contains("containerd")
            || s.contains("crio")
            || s.contains("podman")
            || s.contains("kubelet")
            || s.contains("dockershim"))
    {
        return Some(("container runtime socket", true));
    }
    if s == "/" {
        return Some(("host root filesystem", true));
    }
    if SENSITIVE_EXACT.contains(&s) {
        return Some(("host system directory", false));
    }
    SENSITIVE_TREES
        .iter()
        .find(|t| s == **t || s.strip_prefix(**t).is_some_and(|r| r.starts_with('/')))
        .map(|_| ("host system path", false))
}

fn is_bind(m: &MountSummary, options: &[String]) -> bool {
    m.mount_type == "bind" || options.iter().any(|o| o == "bind" || o == "rbind")
}

/// Checks the runtime configuration, completeness and image identity.
pub fn check(input: &RuleInput<'_>, out: &mut Vec<Finding>) {
    let ev = input.ev;
    let c = &ev.container;
    let id = |f: Finding| {
        f.with("container_id", &c.id)
            .with("container_name", &c.name)
    };
    if c.privileged {
        out.push(id(Finding::new(
            RuleId::ConfigPrivileged,
            Severity::Critical,
            "privileged",
            "the container runs privileged: all capabilities and host devices",
        )));
    }
    for ns in &c.host_namespaces {
        out.push(id(Finding::new(
            RuleId::ConfigHostNamespace,
            Severity::High,
            ns,
            format!("the container shares the host's {ns} namespace"),
        )));
    }
    for cap in &c.cap_add {
        let sev = if DANGEROUS_CAPS.contains(&cap.as_str()) {
            Severity::High
        } else {
            Severity::Medium
        };
        out.push(id(Finding::new(
            RuleId::ConfigAddedCapability,
            sev,
            cap,
            format!("capability {cap} added beyond the runtime default"),
        )));
    }
    let mut mounts: Vec<(MountSummary, Vec<String>)> =
        c.mounts.iter().map(|m| (m.clone(), Vec::new())).collect();
    for m in &ev.mounts {
        mounts.push((
            MountSummary {
                source: m.source.clone(),
                destination: m.destination.clone(),
                mount_type: m.mount_type.clone(),
                read_only: m.read_only,
            },
            m.options.clone(),
        ));
    }
    let mut seen = BTreeSet::new();
    for (m, opts) in &mounts {
        if !is_bind(m, opts) || !seen.insert(m.source.clone()) {
            continue;
        }
        if let Some((why, critical)) = sensitive(&m.source) {
            let sev = if critical {
                Severity::Critical
            } else {
                Severity::High
            };
            out.push(id(Finding::new(
                RuleId::ConfigSensitiveMount,
                sev,
                &m.source,
                format!(
                    "{why} {} mounted at {}{}",
                    m.source,
                    m.destination,
                    if m.read_only { " (read-only)" } else { "" }
                ),
            )
            .with("destination", &m.destination)
            .with("read_only", m.read_only)
            .with("type", &m.mount_type)));
        }
    }
    let comp = &ev.bundle.manifest().completeness;
    if comp.status == CompletenessStatus::Incomplete {
        out.push(
            Finding::new(
                RuleId::BundleIncomplete,
                Severity::Medium,
                "bundle",
                format!("the capture is incomplete: {}", comp.reasons.join("; ")),
            )
            .with("reasons", &comp.reasons),
        );
    }
    if let Some(img) = input.image {
        let bundle_id = ev.image.image_id.clone().or_else(|| c.image_id.clone());
        let saved: Vec<&str> = [Some(img.id.as_str()), img.manifest_digest.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        let digest_match = |d: &str| {
            saved.contains(&d)
                || ev
                    .image
                    .repo_digests
                    .iter()
                    .any(|r| r.rsplit('@').next() == Some(d))
        };
        let id_differs = bundle_id.as_deref().is_some_and(|b| !digest_match(b));
        let layers_differ = !ev.image.diff_ids.is_empty() && ev.image.diff_ids != img.diff_ids;
        if bundle_id.is_none() && ev.image.diff_ids.is_empty() {
            tracing::warn!("the bundle records no image id or layers; --image cannot be compared");
        }
        if id_differs || layers_differ {
            let subject = bundle_id
                .clone()
                .or_else(|| ev.image.reference.clone())
                .unwrap_or_else(|| "image".into());
            out.push(
                Finding::new(
                    RuleId::ImageMismatch,
                    Severity::High,
                    subject,
                    format!(
                        "--image {} is not the image the container was started from",
                        img.source.display()
                    ),
                )
                .with("bundle_image_id", &bundle_id)
                .with("bundle_reference", &ev.image.reference)
                .with("saved_image_id", &img.id)
                .with("saved_repo_tags", &img.repo_tags)
                .with("image_id_differs", id_differs)
                .with("layers_differ", layers_differ)
                .with("bundle_diff_ids", &ev.image.diff_ids)
                .with("saved_diff_ids", &img.diff_ids),
            );
        }
    }
}

/// Most sample lines kept per pattern.
const SAMPLES: usize = 5;

/// log.pattern: log lines matching a profile deny pattern (one finding per pattern).
pub fn check_logs(input: &RuleInput<'_>, out: &mut Vec<Finding>) -> Result<(), AnalyzeError> {
    let Some(profile) = input.profile else {
        return Ok(());
    };
    if profile.deny.is_empty() {
        return Ok(());
    }
    let mut hits: Vec<(u64, Vec<serde_json::Value>)> = vec![(0, Vec::new()); profile.deny.len()];
    input.ev.for_each_log(&mut |l| {
        let text = l.line.lossy();
        for (i, (_, re)) in profile.deny.iter().enumerate() {
            if re.is_match(&text) {
                hits[i].0 += 1;
                if hits[i].1.len() < SAMPLES {
                    hits[i]
                        .1
                        .push(serde_json::json!({"t": l.t, "stream": l.stream, "line": l.line}));
                }
            }
        }
    })?;
    for ((pattern, _), (count, samples)) in profile.deny.iter().zip(hits) {
        if count > 0 {
            out.push(
                Finding::new(
                    RuleId::LogPattern,
                    Severity::Medium,
                    pattern,
                    format!("{count} log line(s) match deny pattern {pattern}"),
                )
                .with("matches", count)
                .with("samples", samples),
            );
        }
    }
    Ok(())
}
