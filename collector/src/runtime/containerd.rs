//! containerd over its gRPC socket (containerd-client/tonic). Read-only use of the
//! containers, tasks, images, content and snapshots services: the collector never calls
//! Prepare, View, Commit or Remove on the snapshotter.

mod cri_logs;

use super::{split_lowers, ContainerFacts, ListedContainer, Runtime, DEFAULT_CAPS};
use crate::interrupt::Resumer;
use anyhow::{anyhow, Context, Result};
use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::namespaces_client::NamespacesClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::MountsRequest;
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::version_client::VersionClient;
use containerd_client::services::v1::{
    GetContainerRequest, GetImageRequest, GetRequest, ListContainersRequest, ListNamespacesRequest,
    PauseTaskRequest, ReadContentRequest, ResumeTaskRequest,
};
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::Request;
use containerd_client::with_namespace;
use exhibit_common::records::{LogLine, MountRecord};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A connected containerd, scoped to one namespace.
pub struct ContainerdRuntime {
    channel: Channel,
    namespace: String,
    version: String,
}

const RUNNING: i32 = 2;
const PAUSED: i32 = 4;

impl ContainerdRuntime {
    /// Connects to the socket at `address` and checks that containerd answers.
    pub async fn connect(address: &Path, namespace: &str) -> Result<Self> {
        let channel = connect_channel(address).await?;
        let version = VersionClient::new(channel.clone())
            .version(())
            .await
            .context("containerd not reachable")?
            .into_inner()
            .version;
        Ok(ContainerdRuntime {
            channel,
            namespace: namespace.to_string(),
            version,
        })
    }

    /// Namespaces other than ours holding a container that `query` names (any form
    /// `resolve` takes: id, id prefix, containerd://ID, NAMESPACE/POD/CONTAINER, name).
    pub async fn find_in_other_namespaces(&self, query: &str) -> Result<Vec<String>> {
        let nss = NamespacesClient::new(self.channel.clone())
            .list(ListNamespacesRequest {
                filter: String::new(),
            })
            .await?
            .into_inner()
            .namespaces;
        let mut out = Vec::new();
        for ns in nss {
            if ns.name == self.namespace {
                continue;
            }
            let req = with_namespace!(ListContainersRequest { filters: vec![] }, ns.name.as_str());
            let Ok(list) = ContainersClient::new(self.channel.clone()).list(req).await else {
                continue;
            };
            let listed: Vec<ListedContainer> = list
                .into_inner()
                .containers
                .iter()
                .map(|c| listed(c, &ns.name, None))
                .collect();
            if !super::resolve(&listed, query).is_empty() {
                out.push(ns.name);
            }
        }
        Ok(out)
    }

    async fn task(&self, id: &str) -> Option<(u32, i32)> {
        let req = with_namespace!(
            GetRequest {
                container_id: id.to_string(),
                exec_id: String::new()
            },
            self.namespace.as_str()
        );
        let p = TasksClient::new(self.channel.clone())
            .get(req)
            .await
            .ok()?
            .into_inner()
            .process?;
        Some((p.pid, p.status))
    }

    async fn read_blob(&self, digest: &str, cap: usize) -> Result<Vec<u8>> {
        let req = with_namespace!(
            ReadContentRequest {
                digest: digest.to_string(),
                offset: 0,
                size: 0
            },
            self.namespace.as_str()
        );
        let mut stream = ContentClient::new(self.channel.clone())
            .read(req)
            .await
            .with_context(|| format!("reading blob {digest}"))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = stream.message().await? {
            out.extend_from_slice(&chunk.data);
            if out.len() > cap {
                return Err(anyhow!("blob {digest} is over {cap} bytes"));
            }
        }
        Ok(out)
    }

    async fn image_identity(&self, name: &str) -> Value {
        let req = with_namespace!(
            GetImageRequest {
                name: name.to_string()
            },
            self.namespace.as_str()
        );
        let image = match ImagesClient::new(self.channel.clone()).get(req).await {
            Ok(r) => r.into_inner().image,
            Err(e) => return json!({"reference": name, "error": e.message()}),
        };
        let Some(target) = image.and_then(|i| i.target) else {
            return json!({"reference": name, "error": "image has no target"});
        };
        let mut manifest_digest = target.digest.clone();
        let mut doc: Value = match self
            .read_blob(&target.digest, 4 << 20)
            .await
            .ok()
            .and_then(|b| exhibit_common::json::parse(&b).ok())
        {
            Some(v) => v,
            None => {
                return json!({"reference": name, "manifest_digest": target.digest, "error": "manifest unreadable"})
            }
        };
        if doc.get("manifests").is_some() {
            let pick = doc["manifests"].as_array().and_then(|ms| {
                ms.iter()
                    .find(|m| {
                        m["platform"]["architecture"] == "amd64" && m["platform"]["os"] == "linux"
                    })
                    .or_else(|| ms.first())
                    .and_then(|m| m["digest"].as_str().map(str::to_string))
            });
            if let Some(d) = pick {
                manifest_digest = d.clone();
                doc = self
                    .read_blob(&d, 4 << 20)
                    .await
                    .ok()
                    .and_then(|b| exhibit_common::json::parse(&b).ok())
                    .unwrap_or(Value::Null);
            }
        }
        let config_digest = doc["config"]["digest"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let config: Value = self
            .read_blob(&config_digest, 16 << 20)
            .await
            .ok()
            .and_then(|b| exhibit_common::json::parse(&b).ok())
            .unwrap_or(Value::Null);
        json!({
            "reference": name,
            "image_id": config_digest,
            "repo_digests": [format!("{}@{}", repository(name), target.digest)],
            "manifest_digest": manifest_digest,
            "diff_ids": config["rootfs"]["diff_ids"],
            "config": config["config"],
        })
    }
}

fn labels_of(l: &std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    l.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

// One line of `list` for a containerd container; `task` is (pid, status) when it has one.
fn listed(
    c: &containerd_client::services::v1::Container,
    namespace: &str,
    task: Option<(u32, i32)>,
) -> ListedContainer {
    let labels = labels_of(&c.labels);
    let status = match task {
        Some((_, RUNNING)) => "running",
        Some((_, PAUSED)) => "paused",
        Some(_) => "stopped",
        None => "created",
    };
    let container_name = labels.get("io.kubernetes.container.name").cloned();
    ListedContainer {
        runtime: "containerd",
        namespace: Some(namespace.to_string()),
        id: c.id.clone(),
        name: container_name.clone().unwrap_or_else(|| c.id.clone()),
        image: c.image.clone(),
        status: status.into(),
        pid: task.map(|t| t.0 as i32).filter(|p| *p > 0),
        pod: labels.get("io.kubernetes.pod.name").cloned(),
        pod_namespace: labels.get("io.kubernetes.pod.namespace").cloned(),
        container_name,
        labels,
    }
}

// The CRI log files of a Kubernetes container (None for a container without the pod
// labels, such as one started with ctr).
fn cri_logs_of(facts: &ContainerFacts) -> Option<cri_logs::CriLogs> {
    let (Some(pod), Some(ns)) = (&facts.pod, &facts.pod_namespace) else {
        return None;
    };
    Some(cri_logs::locate(
        Path::new(cri_logs::PODS_ROOT),
        ns,
        pod,
        facts.pod_uid.as_deref(),
        &facts.name,
    ))
}

/// The repository of an image reference: without its `:tag` (the last `:` after the
/// last `/`, so a registry port stays) or `@digest`.
pub fn repository(reference: &str) -> &str {
    if let Some((repo, _)) = reference.split_once('@') {
        return repo;
    }
    let name_at = reference.rfind('/').map(|i| i + 1).unwrap_or(0);
    match reference[name_at..].rfind(':') {
        Some(colon) => &reference[..name_at + colon],
        None => reference,
    }
}

/// Connects a gRPC channel to the containerd socket at `address`. Shared by the
/// containerd runtime and by Docker on the containerd image store.
pub async fn connect_channel(address: &Path) -> Result<Channel> {
    if !address.exists() {
        return Err(anyhow!(
            "containerd socket {} does not exist",
            address.display()
        ));
    }
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        containerd_client::connect(address),
    )
    .await
    .map_err(|_| anyhow!("containerd did not answer within 10 s"))?
    .context("connecting to containerd")
}

/// The host directories of a container's active snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotDirs {
    /// The writable layer: overlay `upperdir=`, or the source of a read-write bind
    /// mount (a snapshot without parents).
    pub upper: PathBuf,
    /// Overlay `lowerdir=`, topmost first.
    pub lowers: Vec<PathBuf>,
}

/// The upper and lower dirs of the snapshot `key` of `snapshotter` in `namespace`, from
/// the snapshots service's Mounts: a read-only call (the collector never calls Prepare,
/// View, Commit or Remove). Used for containerd's own containers and for Docker's on the
/// containerd image store (namespace `moby`, key = the container id).
pub async fn snapshot_dirs(
    channel: &Channel,
    namespace: &str,
    snapshotter: &str,
    key: &str,
) -> Result<SnapshotDirs> {
    let req = with_namespace!(
        MountsRequest {
            snapshotter: snapshotter.to_string(),
            key: key.to_string()
        },
        namespace
    );
    let what =
        format!("snapshot {key} of snapshotter {snapshotter} in containerd namespace {namespace}");
    let mounts = SnapshotsClient::new(channel.clone())
        .mounts(req)
        .await
        .map_err(|e| anyhow!("{what}: Mounts failed: {:?}: {}", e.code(), e.message()))?
        .into_inner()
        .mounts;
    dirs_from_mounts(&mounts).with_context(|| what.clone())
}

/// The upper and lower dirs in a snapshot's mounts.
pub fn dirs_from_mounts(mounts: &[containerd_client::types::Mount]) -> Result<SnapshotDirs> {
    let mut types = Vec::new();
    for m in mounts {
        let opt = |k: &str| {
            m.options
                .iter()
                .rev()
                .find_map(|o| o.strip_prefix(k).map(str::to_string))
        };
        if m.r#type == "overlay" || m.r#type.ends_with("fuse-overlayfs") {
            let Some(upper) = opt("upperdir=") else {
                return Err(anyhow!(
                    "its overlay mount has no upperdir (a read-only view, not a container's snapshot)"
                ));
            };
            let lowers = opt("lowerdir=")
                .map(|l| split_lowers(&l))
                .unwrap_or_default();
            return Ok(SnapshotDirs {
                upper: PathBuf::from(upper),
                lowers,
            });
        }
        if m.r#type == "bind" && !m.options.iter().any(|o| o == "ro") && !m.source.is_empty() {
            return Ok(SnapshotDirs {
                upper: PathBuf::from(&m.source),
                lowers: Vec::new(),
            });
        }
        types.push(m.r#type.clone());
    }
    Err(anyhow!(
        "no overlay upperdir in its mounts (mount types: {})",
        if types.is_empty() {
            "none".to_string()
        } else {
            types.join(", ")
        }
    ))
}

impl Runtime for ContainerdRuntime {
    fn name(&self) -> &'static str {
        "containerd"
    }

    async fn list(&self) -> Result<Vec<ListedContainer>> {
        let req = with_namespace!(
            ListContainersRequest { filters: vec![] },
            self.namespace.as_str()
        );
        let list = ContainersClient::new(self.channel.clone())
            .list(req)
            .await
            .context("listing containerd containers")?
            .into_inner()
            .containers;
        let mut out = Vec::new();
        for c in list {
            let task = self.task(&c.id).await;
            out.push(listed(&c, &self.namespace, task));
        }
        Ok(out)
    }

    async fn facts(&self, id: &str) -> Result<ContainerFacts> {
        let req = with_namespace!(
            GetContainerRequest { id: id.to_string() },
            self.namespace.as_str()
        );
        let c = ContainersClient::new(self.channel.clone())
            .get(req)
            .await
            .with_context(|| format!("containerd container {id} in namespace {}", self.namespace))?
            .into_inner()
            .container
            .ok_or_else(|| anyhow!("containerd returned no container {id}"))?;
        let spec_bytes = c.spec.as_ref().map(|s| s.value.clone()).unwrap_or_default();
        let spec: Value = exhibit_common::json::parse(&spec_bytes).unwrap_or(Value::Null);
        let labels = labels_of(&c.labels);
        let task = self.task(id).await;
        let (mut upper_dir, mut lower_dirs) = (None, Vec::new());
        let (mut upper_origin, mut upper_error) = (None, None);
        if c.snapshot_key.is_empty() {
            upper_error = Some("the container has no snapshot key".to_string());
        } else {
            match snapshot_dirs(
                &self.channel,
                &self.namespace,
                &c.snapshotter,
                &c.snapshot_key,
            )
            .await
            {
                Ok(d) => {
                    upper_origin = Some(format!(
                        "containerd snapshot {} of snapshotter {} in namespace {}",
                        c.snapshot_key, c.snapshotter, self.namespace
                    ));
                    upper_dir = Some(d.upper);
                    lower_dirs = d.lowers;
                }
                Err(e) => upper_error = Some(format!("{e:#}")),
            }
        }
        let mut mounts = Vec::new();
        let mut runtime_files = Vec::new();
        for m in spec["mounts"].as_array().cloned().unwrap_or_default() {
            let dest = m["destination"].as_str().unwrap_or_default().to_string();
            let src = m["source"].as_str().unwrap_or_default().to_string();
            let options: Vec<String> = m["options"]
                .as_array()
                .map(|o| {
                    o.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let mut ty = m["type"].as_str().unwrap_or("bind").to_string();
            if options.iter().any(|o| o == "bind" || o == "rbind") {
                ty = "bind".into();
            }
            if matches!(
                dest.as_str(),
                "/etc/hosts" | "/etc/hostname" | "/etc/resolv.conf"
            ) && ty == "bind"
            {
                runtime_files.push((dest.clone(), PathBuf::from(&src)));
                continue;
            }
            if dest == "/dev"
                || ty == "proc"
                || ty == "sysfs"
                || ty == "cgroup"
                || ty == "devpts"
                || ty == "mqueue"
            {
                continue;
            }
            mounts.push(MountRecord {
                index: mounts.len() as u32,
                read_only: options.iter().any(|o| o == "ro"),
                source: src,
                destination: dest,
                mount_type: ty,
                options,
                captured: "metadata".into(),
            });
        }
        let caps: Vec<String> = spec["process"]["capabilities"]["bounding"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let cap_add: Vec<String> = caps
            .iter()
            .filter(|c| !DEFAULT_CAPS.contains(&c.as_str()))
            .cloned()
            .collect();
        let namespaces = spec["linux"]["namespaces"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut host_ns = Vec::new();
        for (name, ty) in [
            ("pid", "pid"),
            ("net", "network"),
            ("ipc", "ipc"),
            ("uts", "uts"),
        ] {
            let ns = namespaces.iter().find(|n| n["type"] == ty);
            let host = match ns {
                None => true,
                Some(n) => n["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("/proc/1/")),
            };
            if host && !spec.is_null() {
                host_ns.push(name);
            }
        }
        let masked_empty = spec["linux"]["maskedPaths"]
            .as_array()
            .is_none_or(|a| a.is_empty());
        let privileged =
            caps.iter().any(|c| c == "CAP_SYS_ADMIN") && masked_empty && !spec.is_null();
        let image = self.image_identity(&c.image).await;
        let pod = labels.get("io.kubernetes.pod.name").cloned();
        let pod_ns = labels.get("io.kubernetes.pod.namespace").cloned();
        let name = labels
            .get("io.kubernetes.container.name")
            .cloned()
            .unwrap_or_else(|| c.id.clone());
        let pod_uid = labels.get("io.kubernetes.pod.uid").cloned();
        let logs = cri_logs_of(&ContainerFacts {
            pod: pod.clone(),
            pod_namespace: pod_ns.clone(),
            pod_uid: pod_uid.clone(),
            name: name.clone(),
            ..Default::default()
        });
        let created = c.created_at.as_ref().map(|t| {
            exhibit_common::text::rfc3339_ns(t.seconds as i128 * 1_000_000_000 + t.nanos as i128)
        });
        let summary = json!({
            "id": c.id,
            "name": name,
            "image": c.image,
            "image_id": image["image_id"],
            "privileged": privileged,
            "host_namespaces": host_ns,
            "cap_add": cap_add,
            "mounts": mounts.iter().map(|m| json!({"source": m.source, "destination": m.destination, "type": m.mount_type, "read_only": m.read_only})).collect::<Vec<_>>(),
            "user": format!("{}:{}", spec["process"]["user"]["uid"], spec["process"]["user"]["gid"]),
            "labels": labels,
            "args": spec["process"]["args"],
            "created": created,
            "started": Value::Null,
            "snapshotter": c.snapshotter,
            "snapshot_key": c.snapshot_key,
            "runtime": c.runtime.as_ref().map(|r| r.name.clone()),
            "pod": pod,
            "pod_namespace": pod_ns,
            "pod_uid": pod_uid,
            "cri_logs": logs.as_ref().map(|l| l.summary()),
        });
        let inspect_json = serde_json::to_string(&json!({
            "container": {"id": c.id, "image": c.image, "labels": labels, "snapshotter": c.snapshotter, "snapshot_key": c.snapshot_key, "runtime": c.runtime.as_ref().map(|r| r.name.clone()), "created_at": created},
            "spec": spec,
        }))?;
        Ok(ContainerFacts {
            runtime: "containerd",
            runtime_version: self.version.clone(),
            id: c.id.clone(),
            name,
            namespace: Some(self.namespace.clone()),
            pod,
            pod_namespace: pod_ns,
            image_ref: c.image.clone(),
            image_id: image["image_id"].as_str().unwrap_or_default().to_string(),
            init_pid: task.map(|t| t.0 as i32).filter(|p| *p > 0),
            running: matches!(task, Some((_, RUNNING)) | Some((_, PAUSED))),
            paused: matches!(task, Some((_, PAUSED))),
            upper_dir,
            lower_dirs,
            upper_method: "containerd-snapshot",
            pod_uid,
            upper_origin,
            upper_error,
            inspect_json,
            summary,
            image,
            mounts,
            runtime_files,
            log_file: logs.as_ref().and_then(|l| l.current().cloned()),
        })
    }

    async fn logs(
        &self,
        facts: &ContainerFacts,
        since: Option<i64>,
        sink: &mut dyn FnMut(LogLine),
    ) -> Result<()> {
        // CRI writes /var/log/pods/<ns>_<pod>_<uid>/<container>/<n>.log; plain ctr has no logs.
        let Some(logs) = cri_logs_of(facts) else {
            return Ok(());
        };
        cri_logs::read(&logs.files, since, sink)
    }

    async fn pause(&self, id: &str) -> Result<()> {
        let req = with_namespace!(
            PauseTaskRequest {
                container_id: id.to_string()
            },
            self.namespace.as_str()
        );
        TasksClient::new(self.channel.clone())
            .pause(req)
            .await
            .with_context(|| format!("pausing {id}"))?;
        Ok(())
    }

    async fn resume(&self, id: &str) -> Result<()> {
        let req = with_namespace!(
            ResumeTaskRequest {
                container_id: id.to_string()
            },
            self.namespace.as_str()
        );
        TasksClient::new(self.channel.clone())
            .resume(req)
            .await
            .with_context(|| format!("resuming {id}"))?;
        Ok(())
    }

    async fn api_changes(
        &self,
        _id: &str,
        _max: u64,
    ) -> Result<Option<(Vec<super::ApiEntry>, std::fs::File)>> {
        // containerd has no diff-with-content API that leaves the snapshot untouched.
        Ok(None)
    }

    fn resumer(&self, id: &str) -> Resumer {
        let channel = self.channel.clone();
        let ns = self.namespace.clone();
        let id = id.to_string();
        Arc::new(move || {
            let channel = channel.clone();
            let ns = ns.clone();
            let id = id.clone();
            Box::pin(async move {
                let req = with_namespace!(
                    ResumeTaskRequest {
                        container_id: id.clone()
                    },
                    ns.as_str()
                );
                TasksClient::new(channel)
                    .resume(req)
                    .await
                    .with_context(|| format!("resuming {id}"))?;
                Ok(())
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_client::types::Mount;

    #[test]
    fn repository_keeps_registry_ports_and_drops_tags_and_digests() {
        for (r, want) in [
            (
                "docker.io/library/busybox:1.36",
                "docker.io/library/busybox",
            ),
            ("registry:5000/team/app:v1", "registry:5000/team/app"),
            ("registry:5000/app", "registry:5000/app"),
            ("localhost:5000/app@sha256:abcd", "localhost:5000/app"),
            ("app:v1@sha256:abcd", "app:v1"),
            ("busybox", "busybox"),
        ] {
            assert_eq!(repository(r), want, "{r}");
        }
    }

    fn mount(ty: &str, source: &str, options: &[&str]) -> Mount {
        Mount {
            r#type: ty.into(),
            source: source.into(),
            target: String::new(),
            options: options.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn snapshot_mounts_give_upper_and_lowers_or_say_why_not() {
        let d = dirs_from_mounts(&[mount(
            "overlay",
            "overlay",
            &[
                "index=off",
                "workdir=/s/3/work",
                "upperdir=/s/3/fs",
                "lowerdir=/s/2/fs:/s/1/fs",
            ],
        )])
        .unwrap();
        assert_eq!(d.upper, PathBuf::from("/s/3/fs"));
        assert_eq!(
            d.lowers,
            vec![PathBuf::from("/s/2/fs"), PathBuf::from("/s/1/fs")]
        );
        // A snapshot without parents is a read-write bind mount: all of it is the upper.
        let d = dirs_from_mounts(&[mount("bind", "/s/1/fs", &["rbind", "rw"])]).unwrap();
        assert_eq!(d.upper, PathBuf::from("/s/1/fs"));
        assert!(d.lowers.is_empty());
        // A view has no upper dir; neither has a read-only bind or nothing at all.
        let e = dirs_from_mounts(&[mount("overlay", "overlay", &["lowerdir=/a:/b"])]);
        assert!(format!("{:#}", e.unwrap_err()).contains("no upperdir"));
        assert!(dirs_from_mounts(&[mount("bind", "/s/1/fs", &["ro", "rbind"])]).is_err());
        assert!(format!("{:#}", dirs_from_mounts(&[]).unwrap_err()).contains("none"));
    }
}
