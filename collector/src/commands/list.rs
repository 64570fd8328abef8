//! `exhibit-collect list`: the containers the runtimes know, as a table or JSON.

use crate::args::{Connection, ListFormat};
use crate::connect::{connect, list_all};
use anyhow::Result;
use exhibit_common::cli::{ExitStatus, Printer};

/// Prints every container of every runtime that answered.
pub async fn run(conn: &Connection, format: ListFormat) -> Result<ExitStatus> {
    let rts = connect(conn).await?;
    let all = list_all(&rts).await?;
    let printer = Printer::new();
    match format {
        ListFormat::Json => {
            let mut json = serde_json::to_vec_pretty(&all)?;
            json.push(b'\n');
            printer.data(&json)?;
        }
        ListFormat::Text => {
            // Names, images and pod identities come from the containers: each row goes
            // through the sanitizing printer.
            printer.data_line(&format!(
                "{:<11} {:<10} {:<12} {:<28} {:<10} {:<8} {:<30} POD",
                "RUNTIME", "NAMESPACE", "ID", "NAME", "STATUS", "PID", "IMAGE"
            ))?;
            for c in &all {
                let pod = match (&c.pod_namespace, &c.pod) {
                    (Some(ns), Some(p)) => {
                        format!("{ns}/{p}/{}", c.container_name.clone().unwrap_or_default())
                    }
                    _ => String::new(),
                };
                printer.data_line(&format!(
                    "{:<11} {:<10} {:<12} {:<28} {:<10} {:<8} {:<30} {}",
                    c.runtime,
                    c.namespace.as_deref().unwrap_or("-"),
                    c.id.chars().take(12).collect::<String>(),
                    c.name,
                    c.status,
                    c.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                    c.image,
                    pod
                ))?;
            }
        }
    }
    Ok(ExitStatus::Success)
}
