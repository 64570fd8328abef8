//! Docker through the Engine API (bollard), version negotiated with the daemon.

use super::{split_lowers, ContainerFacts, ListedContainer, Runtime, DEFAULT_CAPS};
use anyhow::{anyhow, Context, Result};
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions, LogsOptions};
use bollard::Docker;
use exhibit_common::records::{LogLine, MountRecord};
use futures_util::StreamExt;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A connected Docker daemon.
pub struct DockerRuntime {
    docker: Docker,
    version: String,
    /// The daemon runs on this host (a unix socket), so its storage is readable here.
    local: bool,
    /// The address, when it is not a local unix socket (see remote.rs).
    remote: Option<String>,
    /// containerd socket to try first for containers on the containerd image store
    /// (--containerd-address); the address the daemon reports is tried next.
    containerd_address: PathBuf,
    /// Look the container's snapshot up in containerd even when Docker reports an
    /// overlay2 upper dir (hidden `--fs-method snapshot`, for tests).
    pub force_snapshot: bool,
}

/// Where the filesystem diff of a Docker container comes from, decided on its inspect
/// output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageRoute {
    /// The overlay2 graphdriver's directories (GraphDriver.Data).
    Overlay {
        upper: PathBuf,
        lowers: Vec<PathBuf>,
    },
    /// The containerd image store: the container's snapshot (key = the container id)
    /// of this snapshotter, in the daemon's containerd namespace (`moby`).
    Snapshot { snapshotter: String },
    /// Neither is readable from this host: the Engine API diff, and why.
    Api { why: String },
}

// Graph drivers of the classic image store that are not containerd snapshotters.
const GRAPHDRIVERS_ONLY: [&str; 6] = [
    "overlay2",
    "overlay",
    "aufs",
    "devicemapper",
    "vfs",
    "windowsfilter",
];

/// Decides where a container's diff comes from. Docker 29+ on the containerd image
/// store reports `Storage.RootFS.Snapshot.Name` and no GraphDriver; Docker 24 to 28 on
/// it reported the snapshotter as `GraphDriver.Name` (e.g. `overlayfs`) with no data.
pub fn storage_route(
    c: &bollard::models::ContainerInspectResponse,
    local: bool,
    force_snapshot: bool,
) -> StorageRoute {
    let gd = c.graph_driver.as_ref();
    if !force_snapshot {
        if let Some(g) = gd.filter(|g| g.name == "overlay2" || g.name == "overlay") {
            if let Some(upper) = g.data.get("UpperDir").filter(|u| !u.is_empty()) {
                let lowers = g
                    .data
                    .get("LowerDir")
                    .map(|l| split_lowers(l))
                    .unwrap_or_default();
                return StorageRoute::Overlay {
                    upper: PathBuf::from(upper),
                    lowers,
                };
            }
        }
    }
    let snapshotter = c
        .storage
        .as_ref()
        .and_then(|s| s.root_fs.as_ref())
        .and_then(|r| r.snapshot.as_ref())
        .and_then(|s| s.name.clone())
        .filter(|n| !n.is_empty())
        .or_else(|| {
            gd.filter(|g| {
                !g.name.is_empty()
                    && !g.data.contains_key("UpperDir")
                    && !GRAPHDRIVERS_ONLY.contains(&g.name.as_str())
            })
            .map(|g| g.name.clone())
        })
        .or_else(|| force_snapshot.then(|| "overlayfs".to_string()));
    let driver = gd
        .map(|g| g.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "none".into());
    match snapshotter {
        Some(_) if !local => StorageRoute::Api {
            why: "the Docker daemon is not local (not a unix socket): its containerd snapshot is not on this host".into(),
        },
        Some(snapshotter) => StorageRoute::Snapshot { snapshotter },
        None => StorageRoute::Api {
            why: format!("storage driver {driver} gives no upper dir readable from this host"),
        },
    }
}

impl DockerRuntime {
    /// Connects to `host` (unix://, tcp://, http://) or the local default socket, and
    /// negotiates the API version.
    pub async fn connect(host: Option<&str>, containerd_address: &Path) -> Result<Self> {
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
            local: super::remote::is_local(host),
            remote: host
                .filter(|h| !super::remote::is_local(Some(h)))
                .map(str::to_string),
            containerd_address: containerd_address.to_path_buf(),
            force_snapshot: false,
        })
    }

    /// The upper and lower dirs of a container on the containerd image store: its
    /// snapshot (key = the container id) through the snapshots service's Mounts, in the
    /// daemon's containerd namespace (`moby` unless the daemon says otherwise), at
    /// --containerd-address and then at the address the daemon reports. Returns the dirs
    /// and where they came from.
    async fn container_snapshot(
        &self,
        snapshotter: &str,
        id: &str,
    ) -> Result<(super::containerd::SnapshotDirs, String)> {
        let info = self.docker.info().await.ok().and_then(|i| i.containerd);
        let namespace = info
            .as_ref()
            .and_then(|c| c.namespaces.as_ref())
            .and_then(|n| n.containers.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "moby".into());
        let mut addresses = vec![self.containerd_address.clone()];
        if let Some(a) = info.and_then(|c| c.address).filter(|a| !a.is_empty()) {
            let a = PathBuf::from(a.trim_start_matches("unix://"));
            if !addresses.contains(&a) {
                addresses.push(a);
            }
        }
        let mut errors = Vec::new();
        for addr in &addresses {
            let found = async {
                let channel = super::containerd::connect_channel(addr).await?;
                super::containerd::snapshot_dirs(&channel, &namespace, snapshotter, id).await
            }
            .await;
            match found {
                Ok(d) => {
                    let origin = format!(
                        "containerd snapshot {id} of snapshotter {snapshotter} in namespace {namespace} at {}",
                        addr.display()
                    );
                    return Ok((d, origin));
                }
                Err(e) => errors.push(format!("containerd at {}: {e:#}", addr.display())),
            }
        }
        Err(anyhow!(
            "no containerd snapshot for this container: {}",
            errors.join("; ")
        ))
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
        let (mut upper_dir, mut lower_dirs) = (None, Vec::new());
        let (mut upper_method, mut upper_origin, mut upper_error) =
            ("overlay-upperdir", None, None);
        match storage_route(&c, self.local, self.force_snapshot) {
            StorageRoute::Overlay { upper, lowers } => {
                upper_origin = Some("GraphDriver.Data.UpperDir (overlay2)".to_string());
                upper_dir = Some(upper);
                lower_dirs = lowers;
            }
            StorageRoute::Snapshot { snapshotter } => {
                let full_id = c.id.clone().unwrap_or_else(|| id.to_string());
                match self.container_snapshot(&snapshotter, &full_id).await {
                    Ok((d, origin)) => {
                        upper_method = "containerd-snapshot";
                        upper_origin = Some(origin);
                        upper_dir = Some(d.upper);
                        lower_dirs = d.lowers;
                    }
                    Err(e) => upper_error = Some(format!("{e:#}")),
                }
            }
            StorageRoute::Api { why } => upper_error = Some(why),
        }
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
            "snapshotter": c.storage.as_ref().and_then(|s| s.root_fs.as_ref()).and_then(|r| r.snapshot.as_ref()).and_then(|s| s.name.clone()),
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
            upper_method,
            upper_origin,
            upper_error,
            pod_uid: labels.get("io.kubernetes.pod.uid").cloned(),
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
        let mut lines = LineSplitter::default();
        while let Some(item) = stream.next().await {
            let (stream_name, message) = match item.context("reading Docker logs")? {
                bollard::container::LogOutput::StdOut { message } => ("stdout", message),
                bollard::container::LogOutput::StdErr { message } => ("stderr", message),
                bollard::container::LogOutput::Console { message } => ("stdout", message),
                bollard::container::LogOutput::StdIn { message } => ("stdin", message),
            };
            // Frames may split or join lines; re-split on newlines per stream.
            lines.push(stream_name, &message, sink);
        }
        lines.finish(sink);
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

    fn remote(&self) -> Option<&str> {
        self.remote.as_deref()
    }

    async fn top(&self, id: &str) -> Result<Option<Vec<exhibit_common::records::ProcessRecord>>> {
        let opts = bollard::query_parameters::TopOptions {
            ps_args: super::remote::PS_ARGS.into(),
        };
        // A daemon whose ps refuses -o gets the default listing (ps -ef).
        let top = match self.docker.top_processes(id, Some(opts)).await {
            Ok(t) => t,
            Err(_) => self
                .docker
                .top_processes(id, None::<bollard::query_parameters::TopOptions>)
                .await
                .with_context(|| format!("GET /containers/{id}/top"))?,
        };
        Ok(Some(super::remote::processes_from_top(
            &top.titles.unwrap_or_default(),
            &top.processes.unwrap_or_default(),
        )))
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

/// Splits the frames of a log stream into lines in one pass: only new bytes are scanned
/// for a newline, and at most `MAX_LOG_LINE` bytes of a line are held (the rest is
/// counted, and the line's record marked truncated), so memory stays flat and time
/// linear whatever the container writes.
#[derive(Default)]
pub(crate) struct LineSplitter {
    pending: Vec<u8>,
    /// Bytes of the pending line dropped over the cap.
    skipped: u64,
    stream: &'static str,
}

impl LineSplitter {
    /// Adds the bytes of one frame of `stream`, handing every finished line to `sink`.
    pub(crate) fn push(
        &mut self,
        stream: &'static str,
        bytes: &[u8],
        sink: &mut dyn FnMut(LogLine),
    ) {
        if stream != self.stream {
            self.finish(sink);
            self.stream = stream;
        }
        let mut rest = bytes;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            self.take(&rest[..nl]);
            self.emit(sink);
            rest = &rest[nl + 1..];
        }
        self.take(rest);
    }

    /// Hands over the last line when it has no newline.
    pub(crate) fn finish(&mut self, sink: &mut dyn FnMut(LogLine)) {
        if !self.pending.is_empty() || self.skipped > 0 {
            self.emit(sink);
        }
    }

    fn take(&mut self, part: &[u8]) {
        // The timestamp prefix rides on top of the line's own cap.
        let room = (exhibit_common::limits::MAX_LOG_LINE + TIMESTAMP_ROOM)
            .saturating_sub(self.pending.len());
        let kept = part.len().min(room);
        self.pending.extend_from_slice(&part[..kept]);
        self.skipped += (part.len() - kept) as u64;
    }

    fn emit(&mut self, sink: &mut dyn FnMut(LogLine)) {
        let line = std::mem::take(&mut self.pending);
        let skipped = std::mem::take(&mut self.skipped);
        sink(split_timestamp(self.stream, &line, skipped));
    }
}

// Room for Docker's RFC 3339 timestamp and its space before a line.
const TIMESTAMP_ROOM: usize = 64;

// Docker prefixes each line with an RFC 3339 timestamp and a space when asked to.
fn split_timestamp(stream: &str, line: &[u8], skipped: u64) -> LogLine {
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
    LogLine::capped(t, stream, rest.to_vec(), skipped)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_line_without_newline_is_cut_marked_and_held_flat() {
        // 400 MiB of stdout without a newline, in 16 KiB frames, then a short line.
        let frame = vec![b'x'; 16 << 10];
        let mut got = Vec::new();
        let mut sink = |l: LogLine| got.push(l);
        let mut s = LineSplitter::default();
        s.push("stdout", b"2026-11-23T08:10:00.000000000Z ", &mut sink);
        for _ in 0..(400 << 20) / frame.len() {
            s.push("stdout", &frame, &mut sink);
            assert!(s.pending.capacity() <= 4 << 20, "memory stays flat");
        }
        s.push(
            "stdout",
            b"\n2026-11-23T08:10:01.000000000Z ok\n",
            &mut sink,
        );
        s.push("stderr", b"2026-11-23T08:10:02.000000000Z tail", &mut sink);
        s.finish(&mut sink);
        assert_eq!(got.len(), 3);
        assert!(got[0].truncated);
        assert_eq!(
            got[0].line.as_bytes().len(),
            exhibit_common::limits::MAX_LOG_LINE
        );
        assert_eq!(got[0].original_len, Some(400 << 20));
        assert_eq!(got[0].t.as_deref(), Some("2026-11-23T08:10:00.000000000Z"));
        assert!(!got[1].truncated && got[1].original_len.is_none());
        assert_eq!(got[1].line.as_bytes(), b"ok");
        assert_eq!(
            (got[2].stream.as_str(), got[2].line.as_bytes()),
            ("stderr", &b"tail"[..])
        );
    }

    fn inspect(v: serde_json::Value) -> bollard::models::ContainerInspectResponse {
        serde_json::from_value(v).expect("inspect JSON")
    }

    #[test]
    fn storage_route_follows_the_image_store() {
        // Classic store, overlay2: the graphdriver's directories.
        let overlay2 = inspect(
            json!({"Id": "abc", "GraphDriver": {"Name": "overlay2", "Data": {
            "UpperDir": "/var/lib/docker/overlay2/x/diff",
            "LowerDir": "/var/lib/docker/overlay2/x-init/diff:/var/lib/docker/overlay2/y/diff",
            "MergedDir": "/var/lib/docker/overlay2/x/merged", "WorkDir": "/var/lib/docker/overlay2/x/work"}}}),
        );
        assert_eq!(
            storage_route(&overlay2, true, false),
            StorageRoute::Overlay {
                upper: "/var/lib/docker/overlay2/x/diff".into(),
                lowers: vec![
                    "/var/lib/docker/overlay2/x-init/diff".into(),
                    "/var/lib/docker/overlay2/y/diff".into()
                ],
            }
        );
        // Docker 29+ on the containerd image store: no GraphDriver, Storage names the
        // snapshotter.
        let docker29 = inspect(json!({"Id": "abc",
            "Storage": {"RootFS": {"Snapshot": {"Name": "overlayfs"}}}}));
        let snap = StorageRoute::Snapshot {
            snapshotter: "overlayfs".into(),
        };
        assert_eq!(storage_route(&docker29, true, false), snap);
        // Docker 24 to 28 on the containerd image store: the snapshotter as the driver
        // name, no data.
        let docker27 =
            inspect(json!({"Id": "abc", "GraphDriver": {"Name": "overlayfs", "Data": null}}));
        assert_eq!(storage_route(&docker27, true, false), snap);
        // A remote daemon's snapshot is not on this host.
        assert!(matches!(
            storage_route(&docker29, false, false),
            StorageRoute::Api { why } if why.contains("not local")
        ));
        // Graph drivers without an upper dir go to the Engine API.
        let vfs = inspect(json!({"Id": "abc", "GraphDriver": {"Name": "vfs", "Data": {}}}));
        assert!(matches!(
            storage_route(&vfs, true, false),
            StorageRoute::Api { why } if why.contains("vfs")
        ));
        // --fs-method snapshot: the snapshot even where overlay2 has an upper dir.
        assert_eq!(storage_route(&overlay2, true, true), snap);
    }
}
