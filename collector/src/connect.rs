//! Connecting to the container runtimes `--runtime` asks for.

use crate::args::{Connection, RuntimeChoice};
use crate::error::{CONTAINERD_HINT, DOCKER_HINT};
use crate::runtime::containerd::ContainerdRuntime;
use crate::runtime::docker::DockerRuntime;
use crate::runtime::{ListedContainer, Runtime};
use anyhow::Result;
use exhibit_common::cli::Failure;

/// The runtimes that answered.
pub struct Runtimes {
    pub docker: Option<DockerRuntime>,
    pub containerd: Option<ContainerdRuntime>,
    /// With --runtime auto: the runtimes that were tried and did not answer, and why.
    pub errors: Vec<String>,
}

/// Connects to the runtimes `conn` asks for. With auto, a runtime whose socket is absent
/// is left out; an explicitly requested one that fails is an error.
pub async fn connect(conn: &Connection) -> Result<Runtimes> {
    let mut rts = Runtimes {
        docker: None,
        containerd: None,
        errors: Vec::new(),
    };
    let mut errors = Vec::new();
    if conn.runtime != RuntimeChoice::Containerd {
        let local_socket = std::path::Path::new("/var/run/docker.sock").exists();
        if conn.runtime == RuntimeChoice::Docker || conn.docker_host.is_some() || local_socket {
            tracing::info!(host = ?conn.docker_host, "connecting to docker");
            match DockerRuntime::connect(conn.docker_host.as_deref(), &conn.containerd_address)
                .await
            {
                Ok(d) => rts.docker = Some(d),
                Err(e) => {
                    tracing::debug!(error = %format!("{e:#}"), "docker did not answer");
                    errors.push(format!("docker: {e:#}"))
                }
            }
        }
    }
    if conn.runtime != RuntimeChoice::Docker
        && (conn.runtime == RuntimeChoice::Containerd || conn.containerd_address.exists())
    {
        tracing::info!(
            address = %conn.containerd_address.display(),
            namespace = %conn.namespace,
            "connecting to containerd"
        );
        match ContainerdRuntime::connect(&conn.containerd_address, &conn.namespace).await {
            Ok(c) => rts.containerd = Some(c),
            Err(e) => errors.push(format!(
                "containerd at {}: {e:#}",
                conn.containerd_address.display()
            )),
        }
    }
    let explicit_failed = match conn.runtime {
        RuntimeChoice::Docker => rts.docker.is_none(),
        RuntimeChoice::Containerd => rts.containerd.is_none(),
        RuntimeChoice::Auto => rts.docker.is_none() && rts.containerd.is_none(),
    };
    if explicit_failed {
        let what = if errors.is_empty() {
            "no container runtime found".to_string()
        } else {
            errors.join("; ")
        };
        let mut e = Failure::runtime(format!("cannot reach a container runtime: {what}"));
        if conn.runtime != RuntimeChoice::Containerd {
            e = e.hint(DOCKER_HINT);
        }
        if conn.runtime != RuntimeChoice::Docker {
            e = e.hint(CONTAINERD_HINT);
        }
        if !rustix::process::geteuid().is_root() {
            e = e.hint("the runtime sockets are root-only: run as root");
        }
        return Err(e.into());
    }
    rts.errors = errors;
    Ok(rts)
}

/// Every container of every connected runtime.
pub async fn list_all(rts: &Runtimes) -> Result<Vec<ListedContainer>> {
    let mut all = Vec::new();
    if let Some(d) = &rts.docker {
        all.extend(d.list().await?);
    }
    if let Some(c) = &rts.containerd {
        all.extend(c.list().await?);
    }
    Ok(all)
}
