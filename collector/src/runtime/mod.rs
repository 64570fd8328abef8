//! Container runtimes behind one trait. A backend answers "which containers exist" and
//! "what does the runtime say about this one"; everything read from the host itself
//! (processes, sockets, the overlay upper dir) is runtime-independent and lives in
//! crate::host.

pub mod containerd;
pub mod docker;
pub mod remote;

use exhibit_common::records::{LogLine, MountRecord, ProcessRecord};
use std::path::PathBuf;

/// One line of `exhibit-collect list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ListedContainer {
    pub runtime: &'static str,
    pub namespace: Option<String>,
    pub id: String,
    pub name: String,
    pub image: String,
    pub status: String,
    pub pid: Option<i32>,
    pub pod: Option<String>,
    pub pod_namespace: Option<String>,
    pub container_name: Option<String>,
    pub labels: std::collections::BTreeMap<String, String>,
}

/// What the runtime says about one container, enough to capture it.
#[derive(Debug, Clone, Default)]
pub struct ContainerFacts {
    pub runtime: &'static str,
    pub runtime_version: String,
    pub id: String,
    pub name: String,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub pod_namespace: Option<String>,
    pub image_ref: String,
    pub image_id: String,
    /// Host pid of the container's init process, when it runs.
    pub init_pid: Option<i32>,
    pub running: bool,
    pub paused: bool,
    /// The overlay upper dir, when the storage is overlay on this host.
    pub upper_dir: Option<PathBuf>,
    /// Lower dirs, topmost first.
    pub lower_dirs: Vec<PathBuf>,
    /// The manifest's `fs_method` when the upper dir is walked: `overlay-upperdir`
    /// (Docker's GraphDriver) or `containerd-snapshot` (the snapshots service's Mounts).
    pub upper_method: &'static str,
    /// Where the upper dir came from, for the acquisition log.
    pub upper_origin: Option<String>,
    /// Why there is no upper dir, when there is none (for the acquisition log and the
    /// reasons of an incomplete bundle).
    pub upper_error: Option<String>,
    /// The Kubernetes pod uid (label io.kubernetes.pod.uid), which names the CRI log dir.
    pub pod_uid: Option<String>,
    /// The runtime's own inspect output (Docker) or OCI spec (containerd), as JSON text.
    pub inspect_json: String,
    /// Normalized summary for container.json (see docs/bundle-format.md).
    pub summary: serde_json::Value,
    /// Content of image.json.
    pub image: serde_json::Value,
    pub mounts: Vec<MountRecord>,
    /// Runtime-provided files (hosts, hostname, resolv.conf): container path, host path.
    pub runtime_files: Vec<(String, PathBuf)>,
    /// The runtime's own log file on the host (Docker json-file), kept verbatim.
    pub log_file: Option<PathBuf>,
}

/// A container runtime the collector can read from.
#[allow(async_fn_in_trait)]
pub trait Runtime {
    /// `docker` or `containerd`.
    fn name(&self) -> &'static str;
    /// Every container the runtime knows.
    async fn list(&self) -> anyhow::Result<Vec<ListedContainer>>;
    /// Everything needed to capture the container with this full id.
    async fn facts(&self, id: &str) -> anyhow::Result<ContainerFacts>;
    /// Log lines since `since` (Unix seconds), oldest first, through `sink`.
    async fn logs(
        &self,
        facts: &ContainerFacts,
        since: Option<i64>,
        sink: &mut dyn FnMut(LogLine),
    ) -> anyhow::Result<()>;
    /// Pauses (freezes) the container.
    async fn pause(&self, id: &str) -> anyhow::Result<()>;
    /// Resumes a paused container.
    async fn resume(&self, id: &str) -> anyhow::Result<()>;
    /// The filesystem diff through the runtime's own API (no upper dir on this host):
    /// `None` when the runtime has no such API.
    async fn api_changes(
        &self,
        id: &str,
        max_file_size: u64,
    ) -> anyhow::Result<Option<(Vec<ApiEntry>, std::fs::File)>>;
    /// A handle that resumes the container from a signal handler.
    fn resumer(&self, id: &str) -> crate::interrupt::Resumer;
    /// The daemon's address when it is not a local unix socket (remote.rs): then no
    /// host path or pid the runtime reports may be read on this host.
    fn remote(&self) -> Option<&str> {
        None
    }
    /// The container's processes as the runtime's own API lists them (Docker `top`),
    /// for a remote daemon; `None` when the runtime has no such API.
    async fn top(&self, _id: &str) -> anyhow::Result<Option<Vec<ProcessRecord>>> {
        Ok(None)
    }
}

/// One entry of a filesystem diff read through a runtime API, in path order. Content of
/// regular files is spooled to `spool` at `offset`.
#[derive(Debug)]
pub struct ApiEntry {
    pub path: Vec<u8>,
    pub kind: exhibit_common::records::ChangeKind,
    pub file_type: exhibit_common::records::FileType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub link_target: Option<Vec<u8>>,
    /// Offset and length of the content in the spool; None when not taken.
    pub content: Option<(u64, u64)>,
    pub reason: Option<String>,
}

/// Resolves a user's CONTAINER argument against listed containers: exact id, exact
/// name, or unique id prefix.
pub fn resolve<'a>(all: &'a [ListedContainer], query: &str) -> Vec<&'a ListedContainer> {
    // Kubernetes reports ids as containerd://ID or docker://ID.
    let q = query
        .strip_prefix("containerd://")
        .or_else(|| query.strip_prefix("docker://"))
        .unwrap_or(query);
    let q = q.trim_start_matches('/');
    // NAMESPACE/POD/CONTAINER names one container of one pod.
    let parts: Vec<&str> = q.split('/').collect();
    if parts.len() == 3 {
        return all
            .iter()
            .filter(|c| {
                c.pod_namespace.as_deref() == Some(parts[0])
                    && c.pod.as_deref() == Some(parts[1])
                    && c.container_name.as_deref() == Some(parts[2])
                    && !is_sandbox(c)
            })
            .collect();
    }
    let exact: Vec<_> = all
        .iter()
        .filter(|c| c.id == q || c.name == q || c.container_name.as_deref() == Some(q))
        .collect();
    if !exact.is_empty() {
        return exact;
    }
    if q.len() >= 4 && q.bytes().all(|b| b.is_ascii_hexdigit()) {
        return all.iter().filter(|c| c.id.starts_with(q)).collect();
    }
    Vec::new()
}

/// A Kubernetes pod sandbox (pause container), not a workload container.
pub fn is_sandbox(c: &ListedContainer) -> bool {
    c.labels.get("io.cri-containerd.kind").map(String::as_str) == Some("sandbox")
        || c.labels
            .get("io.kubernetes.docker.type")
            .map(String::as_str)
            == Some("podsandbox")
}

/// Capabilities Docker and containerd grant by default (OCI default set).
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// An overlay `lowerdir` list (`a:b:c`, topmost first) as paths.
pub fn split_lowers(list: &str) -> Vec<PathBuf> {
    list.split(':')
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, name: &str, pod: Option<(&str, &str, &str)>, kind: &str) -> ListedContainer {
        ListedContainer {
            runtime: "containerd",
            namespace: Some("k8s.io".into()),
            id: id.into(),
            name: name.into(),
            image: String::new(),
            status: "running".into(),
            pid: None,
            pod: pod.map(|p| p.1.into()),
            pod_namespace: pod.map(|p| p.0.into()),
            container_name: pod.map(|p| p.2.into()),
            labels: [("io.cri-containerd.kind".to_string(), kind.to_string())].into(),
        }
    }

    #[test]
    fn resolves_ids_prefixes_kubernetes_ids_and_pod_paths() {
        let all = vec![
            c(
                "aaaa1111",
                "web",
                Some(("prod", "web-7f9", "web")),
                "container",
            ),
            c(
                "bbbb2222",
                "web",
                Some(("prod", "web-8c1", "web")),
                "container",
            ),
            c(
                "cccc3333",
                "cccc3333",
                Some(("prod", "web-7f9", "POD")),
                "sandbox",
            ),
        ];
        assert_eq!(resolve(&all, "aaaa1111").len(), 1);
        assert_eq!(resolve(&all, "containerd://bbbb2222")[0].id, "bbbb2222");
        assert_eq!(resolve(&all, "aaaa")[0].id, "aaaa1111");
        assert_eq!(
            resolve(&all, "web").len(),
            2,
            "a bare container name is ambiguous across pods"
        );
        assert_eq!(resolve(&all, "prod/web-8c1/web")[0].id, "bbbb2222");
        assert!(
            resolve(&all, "prod/web-7f9/POD").is_empty(),
            "sandboxes are not targets"
        );
        assert!(resolve(&all, "zz").is_empty());
        assert!(is_sandbox(&all[2]) && !is_sandbox(&all[0]));
    }
}
