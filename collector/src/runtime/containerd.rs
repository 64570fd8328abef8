//! containerd over its gRPC socket (containerd-client/tonic). Read-only use of the
//! containers, tasks, images, content and snapshots services: the collector never calls
//! Prepare, View, Commit or Remove on the snapshotter.

use super::{ContainerFacts, ListedContainer, Runtime, DEFAULT_CAPS};
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
use exhibit_common::text::ByteText;
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
        if !address.exists() {
            return Err(anyhow!(
                "containerd socket {} does not exist",
                address.display()
            ));
        }
        let channel = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            containerd_client::connect(address),
        )
        .await
        .map_err(|_| anyhow!("containerd did not answer within 10 s"))?
        .context("connecting to containerd")?;
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

    /// Namespaces other than ours holding a container with this id (or id prefix).
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
            if list.into_inner().containers.iter().any(|c| {
                c.id == query
                    || (query.len() >= 4 && c.id.starts_with(query))
                    || c.labels
                        .get("io.kubernetes.container.name")
                        .map(String::as_str)
                        == Some(query)
            }) {
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
            "repo_digests": [format!("{}@{}", name.split(':').next().unwrap_or(name), target.digest)],
            "manifest_digest": manifest_digest,
            "diff_ids": config["rootfs"]["diff_ids"],
            "config": config["config"],
        })
    }
}

fn labels_of(l: &std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    l.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
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
            let labels = labels_of(&c.labels);
            let task = self.task(&c.id).await;
            let status = match task {
                Some((_, RUNNING)) => "running",
                Some((_, PAUSED)) => "paused",
                Some(_) => "stopped",
                None => "created",
            };
            let container_name = labels.get("io.kubernetes.container.name").cloned();
            out.push(ListedContainer {
                runtime: "containerd",
                namespace: Some(self.namespace.clone()),
                id: c.id.clone(),
                name: container_name.clone().unwrap_or_else(|| c.id.clone()),
                image: c.image.clone(),
                status: status.into(),
                pid: task.map(|t| t.0 as i32).filter(|p| *p > 0),
                pod: labels.get("io.kubernetes.pod.name").cloned(),
                pod_namespace: labels.get("io.kubernetes.pod.namespace").cloned(),
                container_name,
                labels,
            });
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
        if !c.snapshot_key.is_empty() {
            let req = with_namespace!(
                MountsRequest {
                    snapshotter: c.snapshotter.clone(),
                    key: c.snapshot_key.clone()
                },
                self.namespace.as_str()
            );
            if let Ok(r) = SnapshotsClient::new(self.channel.clone()).mounts(req).await {
                for m in r.into_inner().mounts {
                    for o in &m.options {
                        if let Some(u) = o.strip_prefix("upperdir=") {
                            upper_dir = Some(PathBuf::from(u));
                        }
                        if let Some(l) = o.strip_prefix("lowerdir=") {
                            lower_dirs = l
                                .split(':')
                                .filter(|s| !s.is_empty())
                                .map(PathBuf::from)
                                .collect();
                        }
                    }
                }
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
            inspect_json,
            summary,
            image,
            mounts,
            runtime_files,
            log_file: None,
        })
    }

    async fn logs(
        &self,
        facts: &ContainerFacts,
        since: Option<i64>,
        sink: &mut dyn FnMut(LogLine),
    ) -> Result<()> {
        // CRI writes /var/log/pods/<ns>_<pod>_<uid>/<container>/<n>.log; plain ctr has no logs.
        let (Some(pod), Some(ns)) = (&facts.pod, &facts.pod_namespace) else {
            return Ok(());
        };
        let prefix = format!("{ns}_{pod}_");
        let Ok(rd) = std::fs::read_dir("/var/log/pods") else {
            return Ok(());
        };
        for d in rd.flatten() {
            if !d.file_name().to_string_lossy().starts_with(&prefix) {
                continue;
            }
            let dir = d.path().join(&facts.name);
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map(|r| r.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            files.sort();
            for f in files {
                let text = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
                for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    let mut parts = line.splitn(4, |&b| b == b' ');
                    let t = parts
                        .next()
                        .and_then(|t| std::str::from_utf8(t).ok())
                        .and_then(exhibit_common::text::parse_rfc3339);
                    let stream = parts
                        .next()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .unwrap_or_default();
                    let _tag = parts.next();
                    let rest = parts.next().unwrap_or_default();
                    if let (Some(s), Some(t)) = (since, t) {
                        if (t / 1_000_000_000) < s as i128 {
                            continue;
                        }
                    }
                    sink(LogLine {
                        t: t.map(exhibit_common::text::rfc3339_ns),
                        stream,
                        line: ByteText(rest.to_vec()),
                    });
                }
            }
        }
        Ok(())
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
