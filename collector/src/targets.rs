//! Which containers a capture takes: names, ids and prefixes resolved across the
//! runtimes, or `--all` narrowed by `--filter`.

use crate::args::{CaptureArgs, Connection};
use crate::connect::{list_all, Runtimes};
use crate::runtime::{resolve, ListedContainer};
use anyhow::Result;
use exhibit_common::cli::Failure;

fn matches_filters(c: &ListedContainer, filters: &[(String, String)]) -> bool {
    filters.iter().all(|(k, v)| match k.as_str() {
        "label" => match v.split_once('=') {
            Some((lk, lv)) => c.labels.get(lk).map(String::as_str) == Some(lv),
            None => c.labels.contains_key(v),
        },
        "name" => c.name == *v,
        "namespace" => c.namespace.as_deref() == Some(v) || c.pod_namespace.as_deref() == Some(v),
        "runtime" => c.runtime == v,
        _ => false,
    })
}

/// A container chosen for capture.
pub struct Target {
    pub runtime: &'static str,
    pub id: String,
    /// The name the user gave (or the runtime's name with --all), for messages.
    pub shown: String,
}

/// The containers chosen, and one error per requested name that names no single
/// container (DESIGN.md: the others are still captured, exit 2).
pub async fn select_targets(
    args: &CaptureArgs,
    rts: &Runtimes,
) -> Result<(Vec<Target>, Vec<anyhow::Error>)> {
    let all = list_all(rts).await?;
    if args.all {
        let mut filters = Vec::new();
        for f in &args.filter {
            let (k, v) = f.split_once('=').ok_or_else(|| {
                Failure::usage(format!("--filter {f:?} is not KEY=VALUE"))
                    .hint("e.g. --filter label=app=web or --filter name=web-1")
            })?;
            if !["label", "name", "namespace", "runtime"].contains(&k) {
                return Err(Failure::usage(format!("unknown --filter key {k:?}"))
                    .hint("keys: label, name, namespace, runtime")
                    .into());
            }
            filters.push((k.to_string(), v.to_string()));
        }
        let mut seen = std::collections::BTreeSet::new();
        let chosen: Vec<Target> = all
            .iter()
            .filter(|c| {
                c.status == "running"
                    && !crate::runtime::is_sandbox(c)
                    && matches_filters(c, &filters)
            })
            .filter(|c| seen.insert(c.id.clone()))
            .map(|c| Target {
                runtime: c.runtime,
                id: c.id.clone(),
                shown: c.name.clone(),
            })
            .collect();
        tracing::debug!(chosen = chosen.len(), "containers selected by --all");
        return Ok((chosen, Vec::new()));
    }
    let mut out = Vec::new();
    let mut failed = Vec::new();
    for q in &args.containers {
        let found = resolve(&all, q);
        // Docker's containers also live in containerd's `moby` namespace: one container.
        let mut distinct: Vec<&ListedContainer> = Vec::new();
        for c in found {
            if !distinct.iter().any(|d| d.id == c.id) {
                distinct.push(c);
            }
        }
        match distinct.len() {
            1 => out.push(Target {
                runtime: distinct[0].runtime,
                id: distinct[0].id.clone(),
                shown: q.clone(),
            }),
            0 => {
                let mut e = Failure::usage(format!(
                    "no container {q:?} in {}",
                    searched(rts, &args.conn)
                ));
                if let Some(c) = &rts.containerd {
                    if let Ok(elsewhere) = c.find_in_other_namespaces(q).await {
                        if !elsewhere.is_empty() {
                            e = e.hint(format!(
                                "{q:?} exists in containerd namespace(s) {}: pass --namespace",
                                elsewhere.join(", ")
                            ));
                        }
                    }
                }
                // A runtime that did not answer may hold it (--runtime auto).
                for err in &rts.errors {
                    e = e.hint(format!(
                        "not searched: {err}; fix that, or choose the runtime with --runtime"
                    ));
                }
                failed.push(
                    e.hint("run `exhibit-collect list` to see the containers")
                        .into(),
                );
            }
            _ => {
                let names: Vec<String> = distinct
                    .iter()
                    .map(|c| {
                        format!(
                            "{}:{}{} ({})",
                            c.runtime,
                            c.namespace
                                .as_deref()
                                .map(|n| format!("{n}/"))
                                .unwrap_or_default(),
                            &c.id[..c.id.len().min(12)],
                            c.name
                        )
                    })
                    .collect();
                failed.push(
                    Failure::usage(format!(
                        "{q:?} matches several containers: {}",
                        names.join(", ")
                    ))
                    .hint("give a longer id prefix or --runtime")
                    .into(),
                );
            }
        }
    }
    Ok((out, failed))
}

fn searched(rts: &Runtimes, conn: &Connection) -> String {
    let mut v = Vec::new();
    if rts.docker.is_some() {
        v.push("docker".to_string());
    }
    if rts.containerd.is_some() {
        v.push(format!("containerd namespace {}", conn.namespace));
    }
    v.join(" or ")
}
