//! Docker through the Engine API (bollard), version negotiated with the daemon.

use super::{ContainerFacts, ListedContainer, Runtime, DEFAULT_CAPS};
use anyhow::{anyhow, Context, Result};
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions, LogsOptions};
use bollard::Docker;
use exhibit_common::records::{LogLine, MountRecord};
use exhibit_common::text::ByteText;
use futures_util::StreamExt;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A connected Docker daemon.
pub struct DockerRuntime {
    docker: Docker,
    version: String,
}

impl DockerRuntime {
    /// Connects to `host` (unix://, tcp://, http://) or the local default socket, and
    /// negotiates the API version.
    pub async fn connect(host: Option<&str>) -> Result<Self> {
        let docker = match host {
            Some(h) => Docker::connect_with_host(h),
            None => Docker::connect_with_local_defaults(),
        }
        .context("cannot set up the Docker client")?;
        let docker = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            docker.negotiate_version(),
        )
        .await
        .map_err(|_| anyhow!("Docker daemon did not answer within 10 s"))?
        .context("Docker daemon not reachable")?;
        let version = docker
            .version()
            .await
            .context("Docker daemon not reachable")?;
        Ok(DockerRuntime {
            docker,
            version: version.version.unwrap_or_default(),
        })
    }

    /// The bollard client.
    pub fn client(&self) -> &Docker {
        &self.docker
    }
}

fn caps(list: &Option<Vec<String>>) -> Vec<String> {
    list.iter()
        .flatten()
        .map(|c| {
            let c = c.to_ascii_uppercase();
            if c.starts_with("CAP_") || c == "ALL" {
                c
            } else {
                format!("CAP_{c}")
            }
        })
        .collect()
}

impl Runtime for DockerRuntime {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn list(&self) -> Result<Vec<ListedContainer>> {
        let opts = ListContainersOptions {
            all: true,
            ..Default::default()
        };
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .context("listing Docker containers")?;
        let mut out = Vec::new();
        for c in list {
            let labels: BTreeMap<String, String> =
                c.labels.clone().unwrap_or_default().into_iter().collect();
            out.push(ListedContainer {
                runtime: "docker",
                namespace: None,
                id: c.id.clone().unwrap_or_default(),
                name: c
                    .names
                    .as_ref()
                    .and_then(|n| n.first())
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
                image: c.image.clone().unwrap_or_default(),
                status: c.state.map(|s| s.to_string()).unwrap_or_default(),
                pid: None,
                pod: labels.get("io.kubernetes.pod.name").cloned(),
                pod_namespace: labels.get("io.kubernetes.pod.namespace").cloned(),
                container_name: labels.get("io.kubernetes.container.name").cloned(),
                labels,
            });
        }
        Ok(out)
    }

    async fn facts(&self, id: &str) -> Result<ContainerFacts> {
        let c = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .with_context(|| format!("inspecting Docker container {id}"))?;
        let inspect_json = serde_json::to_string(&c)?;
        let state = c.state.clone().unwrap_or_default();
        let host = c.host_config.clone().unwrap_or_default();
        let gd = c.graph_driver.clone();
        let (upper_dir, lower_dirs) = match &gd {
            Some(g) if g.name == "overlay2" || g.name == "overlay" => (
                g.data.get("UpperDir").map(PathBuf::from),
                g.data
                    .get("LowerDir")
                    .map(|l| {
                        l.split(':')
                            .filter(|s| !s.is_empty())
                            .map(PathBuf::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            _ => (None, Vec::new()),
        };
        let image_id = c.image.clone().unwrap_or_default();
        let config = c.config.clone().unwrap_or_default();
        let image_ref = config.image.clone().unwrap_or_default();
        let image = match self.docker.inspect_image(&image_id).await {
            Ok(img) => json!({
                "reference": image_ref,
                "image_id": img.id,
                "repo_digests": img.repo_digests.unwrap_or_default(),
                "repo_tags": img.repo_tags.unwrap_or_default(),
                "diff_ids": img.root_fs.and_then(|r| r.layers).unwrap_or_default(),
                "config": img.config,
            }),
            Err(e) => json!({"reference": image_ref, "image_id": image_id, "error": e.to_string()}),
        };
        let mut mounts = Vec::new();
        for (i, m) in c.mounts.clone().unwrap_or_default().into_iter().enumerate() {
            let mount_type = m.typ.map(|t| t.to_string()).unwrap_or_default();
            mounts.push(MountRecord {
                index: i as u32,
                source: m.source.clone().unwrap_or_default(),
                destination: m.destination.clone().unwrap_or_default(),
                mount_type,
                options: m
                    .mode
                    .clone()
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect(),
                read_only: !m.rw.unwrap_or(true),
                captured: "metadata".into(),
            });
        }
        for (dest, opts) in host.tmpfs.clone().unwrap_or_default() {
            mounts.push(MountRecord {
                index: mounts.len() as u32,
                source: "tmpfs".into(),
                destination: dest,
                mount_type: "tmpfs".into(),
                options: opts
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                read_only: false,
                captured: "metadata".into(),
            });
        }
        let mut runtime_files = Vec::new();
        for (dest, src) in [
            ("/etc/hosts", &c.hosts_path),
            ("/etc/hostname", &c.hostname_path),
            ("/etc/resolv.conf", &c.resolv_conf_path),
        ] {
            if let Some(src) = src.as_deref().filter(|s| !s.is_empty()) {
                runtime_files.push((dest.to_string(), PathBuf::from(src)));
            }
        }
        let mut host_ns = Vec::new();
        for (ns, mode) in [
            ("pid", &host.pid_mode),
            ("net", &host.network_mode),
            ("ipc", &host.ipc_mode),
            ("uts", &host.uts_mode),
        ] {
            if mode.as_deref() == Some("host") {
                host_ns.push(ns);
            }
        }
        let cap_add: Vec<String> = caps(&host.cap_add)
            .into_iter()
            .filter(|c| !DEFAULT_CAPS.contains(&c.as_str()))
            .collect();
        let name = c
            .name
            .clone()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string();
        let labels: BTreeMap<String, String> = config
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let summary = json!({
            "id": c.id,
            "name": name,
            "image": image_ref,
            "image_id": image_id,
            "privileged": host.privileged.unwrap_or(false),
            "host_namespaces": host_ns,
            "cap_add": cap_add,
            "cap_drop": caps(&host.cap_drop),
            "mounts": mounts.iter().map(|m| json!({
                "source": m.source, "destination": m.destination, "type": m.mount_type, "read_only": m.read_only
            })).collect::<Vec<_>>(),
            "devices": host.devices.clone().unwrap_or_default().iter().map(|d| d.path_on_host.clone()).collect::<Vec<_>>(),
            "security_opt": host.security_opt.clone().unwrap_or_default(),
            // Not a host namespace in the sense of DESIGN.md: on cgroup v1 Docker always
            // shares the cgroup namespace, and userns is host unless remapping is on.
            "cgroupns_mode": host.cgroupns_mode.map(|m| m.to_string()),
            "userns_mode": host.userns_mode.clone(),
            "user": config.user.clone().unwrap_or_default(),
            "labels": labels,
            "entrypoint": config.entrypoint.clone().unwrap_or_default(),
            "cmd": config.cmd.clone().unwrap_or_default(),
            "env_count": config.env.as_ref().map(|e| e.len()).unwrap_or(0),
            "created": c.created.as_ref().map(|d| d.to_string()),
            "started": state.started_at.clone(),
            "storage_driver": gd.as_ref().map(|g| g.name.clone()),
            "log_path": c.log_path.clone(),
            "pod": labels.get("io.kubernetes.pod.name"),
            "pod_namespace": labels.get("io.kubernetes.pod.namespace"),
        });
        Ok(ContainerFacts {
            runtime: "docker",
            runtime_version: self.version.clone(),
            id: c.id.clone().unwrap_or_default(),
            name,
            namespace: None,
            pod: labels.get("io.kubernetes.pod.name").cloned(),
            pod_namespace: labels.get("io.kubernetes.pod.namespace").cloned(),
            image_ref,
            image_id,
            init_pid: state.pid.filter(|p| *p > 0).map(|p| p as i32),
            running: state.running.unwrap_or(false),
            paused: state.paused.unwrap_or(false),
            upper_dir,
            lower_dirs,
            inspect_json,
            summary,
            image,
            mounts,
            runtime_files,
            log_file: c
                .log_path
                .clone()
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
        })
    }

    async fn logs(
        &self,
        facts: &ContainerFacts,
        since: Option<i64>,
        sink: &mut dyn FnMut(LogLine),
    ) -> Result<()> {
        let opts = LogsOptions {
            follow: false,
            stdout: true,
            stderr: true,
            since: since.unwrap_or(0).clamp(0, i32::MAX as i64) as i32,
            until: 0,
            timestamps: true,
            tail: "all".into(),
        };
        let mut stream = self.docker.logs(&facts.id, Some(opts));
        let mut pending: Vec<u8> = Vec::new();
        let mut pending_stream = "stdout";
        while let Some(item) = stream.next().await {
            let (stream_name, message) = match item.context("reading Docker logs")? {
                bollard::container::LogOutput::StdOut { message } => ("stdout", message),
                bollard::container::LogOutput::StdErr { message } => ("stderr", message),
                bollard::container::LogOutput::Console { message } => ("stdout", message),
                bollard::container::LogOutput::StdIn { message } => ("stdin", message),
            };
            // Frames may split or join lines; re-split on newlines per stream.
            if stream_name != pending_stream && !pending.is_empty() {
                sink(split_timestamp(
                    pending_stream,
                    &std::mem::take(&mut pending),
                ));
            }
            pending_stream = stream_name;
            pending.extend_from_slice(&message);
            while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=nl).collect();
                sink(split_timestamp(stream_name, &line[..line.len() - 1]));
            }
        }
        if !pending.is_empty() {
            sink(split_timestamp(pending_stream, &pending));
        }
        Ok(())
    }

    async fn pause(&self, id: &str) -> Result<()> {
        self.docker
            .pause_container(id)
            .await
            .with_context(|| format!("pausing {id}"))
    }

    async fn resume(&self, id: &str) -> Result<()> {
        self.docker
            .unpause_container(id)
            .await
            .with_context(|| format!("unpausing {id}"))
    }

    async fn api_changes(
        &self,
        id: &str,
        max_file_size: u64,
    ) -> Result<Option<(Vec<super::ApiEntry>, std::fs::File)>> {
        api_diff(&self.docker, id, max_file_size).await.map(Some)
    }

    fn resumer(&self, id: &str) -> crate::interrupt::Resumer {
        let docker = self.docker.clone();
        let id = id.to_string();
        std::sync::Arc::new(move || {
            let docker = docker.clone();
            let id = id.clone();
            Box::pin(async move {
                docker
                    .unpause_container(&id)
                    .await
                    .with_context(|| format!("unpausing {id}"))
            })
        })
    }
}

// Docker prefixes each line with an RFC 3339 timestamp and a space when asked to.
fn split_timestamp(stream: &str, line: &[u8]) -> LogLine {
    let (t, rest) = match line.iter().position(|&b| b == b' ') {
        Some(sp) => match std::str::from_utf8(&line[..sp])
            .ok()
            .and_then(exhibit_common::text::parse_rfc3339)
        {
            Some(ns) => (Some(exhibit_common::text::rfc3339_ns(ns)), &line[sp + 1..]),
            None => (None, line),
        },
        None => (None, line),
    };
    LogLine {
        t,
        stream: stream.to_string(),
        line: ByteText(rest.to_vec()),
    }
}

/// First tar header of an archive: type, size, mode, uid, gid, mtime, link, data offset.
type ArchiveHead = (
    tar::EntryType,
    u64,
    u32,
    u64,
    u64,
    u64,
    Option<Vec<u8>>,
    u64,
);

/// The diff through `GET /containers/ID/changes` and `GET /containers/ID/archive`: for
/// each changed path, the first tar entry of its archive (directories are not
/// downloaded beyond their own header). The daemon resolves paths inside the container.
async fn api_diff(
    docker: &Docker,
    id: &str,
    max_file_size: u64,
) -> Result<(Vec<super::ApiEntry>, std::fs::File)> {
    use exhibit_common::records::{ChangeKind, FileType};
    use std::io::{Seek, Write};
    let mut changes = docker
        .container_changes(id)
        .await
        .context("GET /containers/ID/changes")?
        .unwrap_or_default();
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    let mut spool = tempfile::tempfile()?;
    let mut out = Vec::new();
    for ch in changes {
        let kind = match ch.kind as i32 {
            0 => ChangeKind::Modified,
            1 => ChangeKind::Added,
            _ => ChangeKind::Deleted,
        };
        let mut entry = super::ApiEntry {
            path: ch.path.clone().into_bytes(),
            kind,
            file_type: FileType::Whiteout,
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime_ns: 0,
            link_target: None,
            content: None,
            reason: None,
        };
        if kind == ChangeKind::Deleted {
            out.push(entry);
            continue;
        }
        let opts = bollard::query_parameters::DownloadFromContainerOptions {
            path: ch.path.clone(),
        };
        let mut stream = docker.download_from_container(id, Some(opts));
        let mut buf: Vec<u8> = Vec::new();
        let mut header: Option<ArchiveHead> = None;
        let start = spool.stream_position()?;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    entry.reason = Some(format!("archive download failed: {e}"));
                    break;
                }
            };
            buf.extend_from_slice(&chunk);
            if header.is_none() {
                let mut ar = tar::Archive::new(&buf[..]);
                let parsed = ar
                    .entries()
                    .ok()
                    .and_then(|mut es| es.next())
                    .and_then(|e| e.ok())
                    .map(|e| {
                        let h = e.header();
                        (
                            h.entry_type(),
                            h.size().unwrap_or(0),
                            h.mode().unwrap_or(0),
                            h.uid().unwrap_or(0),
                            h.gid().unwrap_or(0),
                            h.mtime().unwrap_or(0),
                            e.link_name_bytes().map(|l| l.into_owned()),
                            e.raw_file_position(),
                        )
                    });
                if let Some(p) = parsed {
                    header = Some(p);
                }
            }
            if let Some((ty, size, ..)) = &header {
                // Directories and over-size files: the header is all we take.
                if !ty.is_file() || *size > max_file_size {
                    break;
                }
                if let Some((.., data_at)) = &header {
                    if buf.len() as u64 >= data_at + size {
                        break;
                    }
                }
            }
        }
        let Some((ty, size, mode, uid, gid, mtime, link, data_at)) = header else {
            entry
                .reason
                .get_or_insert_with(|| "no archive entry returned".into());
            entry.file_type = FileType::File;
            out.push(entry);
            continue;
        };
        entry.mode = mode & 0o7777;
        entry.uid = uid;
        entry.gid = gid;
        entry.mtime_ns = (mtime as i64).saturating_mul(1_000_000_000);
        entry.file_type = if ty.is_dir() {
            FileType::Dir
        } else if ty.is_symlink() {
            FileType::Symlink
        } else if ty.is_fifo() {
            FileType::Fifo
        } else if ty.is_character_special() {
            FileType::Char
        } else if ty.is_block_special() {
            FileType::Block
        } else {
            FileType::File
        };
        entry.link_target = link;
        if entry.file_type == FileType::File {
            entry.size = size;
            if size > max_file_size {
                entry.reason = Some("over --max-file-size".into());
            } else if (buf.len() as u64) >= data_at + size {
                spool.write_all(&buf[data_at as usize..(data_at + size) as usize])?;
                entry.content = Some((start, size));
            } else {
                entry
                    .reason
                    .get_or_insert_with(|| "archive ended early".into());
            }
        }
        out.push(entry);
    }
    spool.rewind()?;
    Ok((out, spool))
}
