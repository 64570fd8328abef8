//! `exhibit-collect list`: the containers the runtimes know, as a table or JSON.

use crate::args::{Connection, ListFormat};
use crate::connect::{connect, list_all};
use anyhow::Result;
use exhibit_common::cli::ExitStatus;
use std::io::Write;

/// Prints every container of every runtime that answered.
pub async fn run(conn: &Connection, format: ListFormat) -> Result<ExitStatus> {
    let rts = connect(conn).await?;
    let all = list_all(&rts).await?;
    let mut out = std::io::stdout().lock();
    match format {
        ListFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &all)?;
            writeln!(out)?;
        }
        ListFormat::Text => {
            writeln!(
                out,
                "{:<11} {:<10} {:<12} {:<28} {:<10} {:<8} {:<30} POD",
                "RUNTIME", "NAMESPACE", "ID", "NAME", "STATUS", "PID", "IMAGE"
            )?;
            for c in &all {
                let pod = match (&c.pod_namespace, &c.pod) {
                    (Some(ns), Some(p)) => {
                        format!("{ns}/{p}/{}", c.container_name.clone().unwrap_or_default())
                    }
                    _ => String::new(),
                };
                writeln!(
                    out,
                    "{:<11} {:<10} {:<12} {:<28} {:<10} {:<8} {:<30} {}",
                    c.runtime,
                    c.namespace.as_deref().unwrap_or("-"),
                    c.id.chars().take(12).collect::<String>(),
                    c.name,
                    c.status,
                    c.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                    c.image,
                    pod
                )?;
            }
        }
    }
    Ok(ExitStatus::Success)
}
