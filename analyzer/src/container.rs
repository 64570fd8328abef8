//! The normalized views of exhibit/container.json and exhibit/image.json. The collector
//! owns their shape; every field is read leniently so that an absent or oddly typed
//! field degrades to "unknown" instead of failing the analysis.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// One mount as the container summary describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MountSummary {
    pub source: String,
    pub destination: String,
    #[serde(rename = "type")]
    pub mount_type: String,
    pub read_only: bool,
}

/// The runtime configuration that the config.* rules and `diff` look at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ContainerSummary {
    pub runtime: Option<String>,
    pub id: Option<String>,
    pub name: Option<String>,
    pub image: Option<String>,
    pub image_id: Option<String>,
    pub privileged: bool,
    pub host_namespaces: Vec<String>,
    pub cap_add: Vec<String>,
    pub mounts: Vec<MountSummary>,
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub created: Option<String>,
    pub started: Option<String>,
    pub pod: Option<String>,
    pub pod_namespace: Option<String>,
}

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn texts(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl ContainerSummary {
    /// Reads the summary out of container.json's value.
    pub fn from_json(doc: &Value) -> Self {
        let s = doc.get("summary").unwrap_or(&Value::Null);
        let mounts = s
            .get("mounts")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|m| MountSummary {
                        source: text(m, "source").unwrap_or_default(),
                        destination: text(m, "destination").unwrap_or_default(),
                        mount_type: text(m, "type").unwrap_or_default(),
                        read_only: m.get("read_only").and_then(Value::as_bool).unwrap_or(false),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let labels = s
            .get("labels")
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let mut host_namespaces = texts(s, "host_namespaces");
        host_namespaces.sort();
        host_namespaces.dedup();
        let mut cap_add: Vec<String> = texts(s, "cap_add")
            .into_iter()
            .map(|c| normalize_cap(&c))
            .collect();
        cap_add.sort();
        cap_add.dedup();
        ContainerSummary {
            runtime: text(doc, "runtime"),
            id: text(s, "id"),
            name: text(s, "name"),
            image: text(s, "image"),
            image_id: text(s, "image_id"),
            privileged: s
                .get("privileged")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            host_namespaces,
            cap_add,
            mounts,
            user: text(s, "user"),
            labels,
            created: text(s, "created"),
            started: text(s, "started"),
            pod: text(s, "pod"),
            pod_namespace: text(s, "pod_namespace"),
        }
    }
}

/// `net_admin` → `CAP_NET_ADMIN`.
pub fn normalize_cap(c: &str) -> String {
    let up = c.trim().to_ascii_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// What exhibit/image.json says about the container's image.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImageDoc {
    pub reference: Option<String>,
    pub image_id: Option<String>,
    pub repo_digests: Vec<String>,
    pub diff_ids: Vec<String>,
    pub config: Option<Value>,
}

impl ImageDoc {
    /// Reads image.json's value.
    pub fn from_json(doc: &Value) -> Self {
        ImageDoc {
            reference: text(doc, "reference"),
            image_id: text(doc, "image_id"),
            repo_digests: texts(doc, "repo_digests"),
            diff_ids: texts(doc, "diff_ids"),
            config: doc.get("config").cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_and_odd_fields_degrade() {
        let v: Value = serde_json::json!({"runtime": "docker", "summary": {"privileged": "yes", "cap_add": ["net_admin", 3], "mounts": [{"source": "/"}]}});
        let s = ContainerSummary::from_json(&v);
        assert!(!s.privileged);
        assert_eq!(s.cap_add, vec!["CAP_NET_ADMIN"]);
        assert_eq!(s.mounts[0].source, "/");
        assert_eq!(s.runtime.as_deref(), Some("docker"));
        assert_eq!(
            ContainerSummary::from_json(&Value::Null),
            ContainerSummary::default()
        );
    }
}
