//! deploy/kubernetes/*.yaml: every manifest validates against the Kubernetes schemas
//! (kubernetes-validate --strict, offline, from the venv scripts/setup creates), and the
//! collector's pods are set up the way docs/kubernetes.md says the collector needs.

use serde::Deserialize;
use serde_norway::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const VALIDATOR: &str = "/opt/exhibit-venv/bin/kubernetes-validate";
/// A Kubernetes version kubernetes-validate ships schemas for (no network needed).
const KUBERNETES_VERSION: &str = "1.30.0";
const IMAGE: &str = "ghcr.io/exhibit-ir/exhibit-collect:0.1.0";
const SOCKET: &str = "/run/containerd/containerd.sock";
const KEY_DIR: &str = "/etc/exhibit/key";
const KEY_FILE: &str = "/etc/exhibit/key/ir.key";
const EVIDENCE_HOST: &str = "/var/lib/exhibit/evidence";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn manifest_dir() -> PathBuf {
    root().join("deploy/kubernetes")
}

/// deploy/kubernetes/*.yaml, sorted.
fn manifests() -> Vec<PathBuf> {
    let dir = manifest_dir();
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    out.sort();
    out
}

/// Every document of a (multi-document) YAML file.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::Deserializer::from_str(&text)
        .map(|d| {
            Value::deserialize(d).unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// The one document of `file` of the given kind.
fn object(file: &str, kind: &str) -> Value {
    let docs = documents(&manifest_dir().join(file));
    let mut found: Vec<Value> = docs.into_iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "{file}: expected one {kind}");
    found.remove(0)
}

fn string(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v:?}"))
}

fn seq(v: &Value) -> &Vec<Value> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("expected a list, got {v:?}"))
}

/// The element of a list whose `name` is `name`.
fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    seq(list)
        .iter()
        .find(|x| x["name"] == name)
        .unwrap_or_else(|| panic!("no entry named {name:?} in {list:?}"))
}

/// The name of the volume mounted at `mount_path`, and whether the mount is read-only.
fn mount_at<'a>(container: &'a Value, mount_path: &str) -> (&'a str, bool) {
    let m = seq(&container["volumeMounts"])
        .iter()
        .find(|m| m["mountPath"] == mount_path)
        .unwrap_or_else(|| panic!("nothing mounted at {mount_path}"));
    (string(&m["name"]), m["readOnly"].as_bool() == Some(true))
}

/// Checks a collector pod spec (Job or DaemonSet template) and returns its container.
fn check_collector_pod<'a>(what: &str, pod: &'a Value) -> &'a Value {
    assert_eq!(pod["hostPID"].as_bool(), Some(true), "{what}: hostPID");
    assert_eq!(
        pod["automountServiceAccountToken"].as_bool(),
        Some(false),
        "{what}: the collector needs no API token"
    );
    assert_eq!(
        pod["serviceAccountName"], "exhibit-collect",
        "{what}: serviceAccountName"
    );
    assert!(
        pod["securityContext"]["fsGroup"].is_null(),
        "{what}: fsGroup would make the key group-readable"
    );
    let containers = seq(&pod["containers"]);
    assert_eq!(containers.len(), 1, "{what}: one container");
    let c = &containers[0];
    assert_eq!(c["image"], IMAGE, "{what}: the documented image");
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"].as_bool(), Some(true), "{what}: privileged");
    assert_eq!(sc["runAsUser"].as_u64(), Some(0), "{what}: runAsUser 0");
    assert!(
        !c["resources"]["limits"]["memory"].is_null() && !c["resources"]["limits"]["cpu"].is_null(),
        "{what}: memory and cpu limits"
    );

    // The containerd socket, from the host, at the collector's default address.
    let (sock, _) = mount_at(c, SOCKET);
    let sock = named(&pod["volumes"], sock);
    assert_eq!(sock["hostPath"]["path"], SOCKET, "{what}: socket hostPath");

    // The key: a Secret, mode 0400 (decimal 256), holding ir.key.
    let (key, key_ro) = mount_at(c, KEY_DIR);
    assert!(key_ro, "{what}: key mount read-only");
    let key = &named(&pod["volumes"], key)["secret"];
    assert_eq!(
        key["secretName"], "exhibit-signing-key",
        "{what}: key Secret"
    );
    assert_eq!(
        key["defaultMode"].as_u64(),
        Some(256),
        "{what}: key mode 0400"
    );
    for item in key["items"].as_sequence().into_iter().flatten() {
        assert_eq!(item["path"], "ir.key", "{what}: key item path");
        assert!(item["mode"].is_null(), "{what}: no per-item mode");
    }

    // Output: the only writable host path.
    let (evidence, evidence_ro) = mount_at(c, "/evidence");
    assert!(!evidence_ro, "{what}: /evidence is writable");
    let evidence = &named(&pod["volumes"], evidence)["hostPath"];
    assert_eq!(evidence["path"], EVIDENCE_HOST, "{what}: evidence hostPath");
    assert_eq!(
        evidence["type"], "DirectoryOrCreate",
        "{what}: evidence type"
    );
    for m in seq(&c["volumeMounts"]) {
        let v = named(&pod["volumes"], string(&m["name"]));
        if !v["hostPath"].is_null() && m["mountPath"] != "/evidence" {
            assert_eq!(
                m["readOnly"].as_bool(),
                Some(true),
                "{what}: host path {:?} must be mounted read-only",
                v["hostPath"]["path"]
            );
        }
    }
    for path in ["/var/lib/containerd", "/var/log/pods", "/sys/fs/cgroup"] {
        let (vol, _) = mount_at(c, path);
        assert_eq!(
            named(&pod["volumes"], vol)["hostPath"]["path"],
            path,
            "{what}: {path} is the host's"
        );
    }
    c
}

/// `$(VAR)` references in `text` (Kubernetes' substitution syntax).
fn references(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("$(") {
        let after = &rest[i + 2..];
        match after.find(')') {
            Some(j)
                if after[..j]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                out.push(after[..j].to_string());
                rest = &after[j + 1..];
            }
            _ => rest = after,
        }
    }
    out
}

/// Every `$(VAR)` in command/args is defined in env: Kubernetes leaves an undefined one
/// in place as literal text, which would reach the collector as a container name.
fn check_env_references(what: &str, c: &Value) {
    let defined: Vec<&str> = c["env"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|e| string(&e["name"]))
        .collect();
    for field in ["command", "args"] {
        for a in c[field].as_sequence().into_iter().flatten() {
            for r in references(string(a)) {
                assert!(
                    defined.contains(&r.as_str()),
                    "{what}: $({r}) is not in env"
                );
            }
        }
    }
}

fn has_pair(args: &[&str], flag: &str, value: &str) -> bool {
    args.windows(2).any(|w| w[0] == flag && w[1] == value)
        || args.contains(&format!("{flag}={value}").as_str())
}

#[test]
fn manifests_pass_kubernetes_validate_strict() {
    let files = manifests();
    for want in ["job.yaml", "daemonset.yaml", "rbac.yaml"] {
        assert!(
            files.iter().any(|f| f.ends_with(want)),
            "deploy/kubernetes/{want} is missing"
        );
    }
    for f in &files {
        let out = Command::new(VALIDATOR)
            .args(["--strict", "-k", KUBERNETES_VERSION])
            .arg(f)
            .output()
            .unwrap_or_else(|e| panic!("running {VALIDATOR} (installed by scripts/setup): {e}"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "{} failed kubernetes-validate --strict -k {KUBERNETES_VERSION}:\n{text}",
            f.display()
        );
        // One "passed" line per resource: nothing was skipped as unknown.
        let passed = text.lines().filter(|l| l.contains(" passed ")).count();
        assert_eq!(
            passed,
            documents(f).len(),
            "{}: not every resource was validated:\n{text}",
            f.display()
        );
    }
}

#[test]
fn job_captures_one_container_with_containerd() {
    let job = object("job.yaml", "Job");
    assert_eq!(job["metadata"]["namespace"], "exhibit");
    assert_eq!(
        job["spec"]["backoffLimit"].as_u64(),
        Some(0),
        "never retried"
    );
    assert!(job["spec"]["ttlSecondsAfterFinished"].as_u64().is_some());
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert!(
        pod["nodeName"].is_string() || !pod["nodeSelector"]["kubernetes.io/hostname"].is_null(),
        "the Job is pinned to the suspect's node"
    );
    let c = check_collector_pod("job.yaml", pod);
    assert!(
        c["command"].is_null(),
        "the Job uses the image's entrypoint (exhibit-collect)"
    );
    let args: Vec<&str> = seq(&c["args"]).iter().map(string).collect();
    assert_eq!(
        args.first(),
        Some(&"capture"),
        "args start with capture: {args:?}"
    );
    assert!(has_pair(&args, "--runtime", "containerd"), "{args:?}");
    assert!(has_pair(&args, "--namespace", "k8s.io"), "{args:?}");
    assert!(has_pair(&args, "--key", KEY_FILE), "{args:?}");
    assert!(has_pair(&args, "-o", "/evidence"), "{args:?}");
    assert!(has_pair(&args, "--case", "$(CASE)"), "{args:?}");
    assert!(!args.contains(&"--unsigned"), "bundles are signed");
    assert!(!args.contains(&"--freeze"), "the target is never paused");
    check_env_references("job.yaml", c);
}

#[test]
fn daemonset_sweeps_a_namespace_once_per_node() {
    let ds = object("daemonset.yaml", "DaemonSet");
    assert_eq!(ds["metadata"]["namespace"], "exhibit");
    let pod = &ds["spec"]["template"]["spec"];
    let c = check_collector_pod("daemonset.yaml", pod);
    assert!(
        seq(&pod["tolerations"])
            .iter()
            .any(|t| t["operator"] == "Exists" && t["key"].is_null()),
        "tolerates every taint"
    );
    let command: Vec<&str> = seq(&c["command"]).iter().map(string).collect();
    assert_eq!(
        command,
        ["/bin/sh", "-c"],
        "a shell runs the capture, then sleeps"
    );
    let script = string(&seq(&c["args"])[0]);
    let words: Vec<&str> = script.split_whitespace().collect();
    let start = words
        .windows(2)
        .position(|w| w == ["exhibit-collect", "capture"])
        .unwrap_or_else(|| panic!("no `exhibit-collect capture` in {script}"));
    let capture = &words[start..];
    assert!(capture.contains(&"--all"), "{script}");
    assert!(has_pair(capture, "--runtime", "containerd"), "{script}");
    assert!(has_pair(capture, "--key", KEY_FILE), "{script}");
    assert!(has_pair(capture, "-o", "/evidence"), "{script}");
    assert!(
        has_pair(capture, "--filter", "namespace=$(TARGET_NAMESPACE)"),
        "{script}"
    );
    assert!(script.contains("sleep infinity"), "{script}");
    assert!(!script.contains("--unsigned") && !script.contains("--freeze"));
    check_env_references("daemonset.yaml", c);
}

#[test]
fn collector_service_account_has_no_token_and_no_role() {
    let sa = object("rbac.yaml", "ServiceAccount");
    assert_eq!(sa["metadata"]["name"], "exhibit-collect");
    assert_eq!(sa["metadata"]["namespace"], "exhibit");
    assert_eq!(sa["automountServiceAccountToken"].as_bool(), Some(false));
    let ns = object("rbac.yaml", "Namespace");
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "privileged",
        "the namespace admits the privileged collector pods"
    );
    // No binding names the collector's ServiceAccount: it needs no API access.
    for doc in documents(&manifest_dir().join("rbac.yaml")) {
        if doc["kind"] == "RoleBinding" || doc["kind"] == "ClusterRoleBinding" {
            for s in seq(&doc["subjects"]) {
                assert!(
                    !(s["kind"] == "ServiceAccount" && s["name"] == "exhibit-collect"),
                    "{:?} binds the collector's ServiceAccount",
                    doc["metadata"]["name"]
                );
            }
        }
    }
}

#[test]
fn image_and_runbook_agree_with_the_manifests() {
    let dockerfile = std::fs::read_to_string(manifest_dir().join("Dockerfile"))
        .expect("deploy/kubernetes/Dockerfile");
    assert!(
        dockerfile.contains("ENTRYPOINT [\"/usr/local/bin/exhibit-collect\"]"),
        "the Job's args go to exhibit-collect"
    );
    assert!(
        dockerfile.contains("debian:") && dockerfile.contains("-slim"),
        "a base with /bin/sh for the DaemonSet"
    );
    let doc = std::fs::read_to_string(root().join("docs/kubernetes.md")).expect("runbook");
    assert!(
        doc.contains(IMAGE),
        "the runbook names the placeholder image"
    );
    for f in manifests() {
        let name = f
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        assert!(doc.contains(&name), "the runbook does not mention {name}");
        for d in documents(&f) {
            let spec = match d["kind"].as_str() {
                Some("Job") | Some("DaemonSet") => &d["spec"]["template"]["spec"],
                Some("Pod") => &d["spec"],
                _ => continue,
            };
            for c in seq(&spec["containers"]) {
                assert_eq!(c["image"], IMAGE, "{name}: one image everywhere");
            }
        }
    }
}
