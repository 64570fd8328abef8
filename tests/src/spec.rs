//! Builds evidence bundles for tests with exhibit_common::BundleWriter: crafted
//! records, processes, sockets and configuration. Shared by the analyzer's tests and
//! the end-to-end tests (tests/tests/e2e).

use ed25519_dalek::SigningKey;
use exhibit_common::custody::{AcquisitionEvent, GENESIS};
use exhibit_common::hashing::sha256_hex;
use exhibit_common::manifest::{Completeness, ContainerIdentity, Counts, Manifest, Tool};
use exhibit_common::records::{
    CappedList, ChangeKind, ChangeRecord, FdInfo, FileType, LogLine, MountRecord, ProcessRecord,
    SocketRecord, Source,
};
use exhibit_common::text::ByteText;
use exhibit_common::{BundleWriter, WriterOptions};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// What a test bundle holds.
pub struct Spec {
    pub container: Value,
    pub image: Value,
    pub processes: Vec<ProcessRecord>,
    pub sockets: Vec<SocketRecord>,
    pub files: Vec<(ChangeRecord, Vec<u8>)>,
    pub logs: Vec<LogLine>,
    pub volumes: Vec<MountRecord>,
    pub incomplete: Vec<String>,
    /// Raw bytes replacing a member's rendering (name → bytes).
    pub raw: BTreeMap<String, Vec<u8>>,
    /// exhibit/exe/ and exhibit/memory/ members (name → bytes), written in name order
    /// (exe/ sorts before memory/, as the format requires).
    pub kept: BTreeMap<String, Vec<u8>>,
}

pub const IMAGE_ID: &str =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";

impl Default for Spec {
    fn default() -> Self {
        Spec {
            container: json!({
                "runtime": "docker",
                "inspect": "{}",
                "summary": {
                    "id": "c0ffee0000000000000000000000000000000000000000000000000000000001",
                    "name": "web", "image": "exhibit-fixture-web:latest", "image_id": IMAGE_ID,
                    "privileged": false, "host_namespaces": [], "cap_add": [], "mounts": [],
                    "user": "root", "labels": {}, "created": "2026-11-23T08:00:00.000000000Z",
                    "started": "2026-11-23T08:00:01.000000000Z", "pod": null, "pod_namespace": null
                }
            }),
            image: json!({"reference": "exhibit-fixture-web:latest", "image_id": IMAGE_ID, "repo_digests": [], "diff_ids": [], "config": {}}),
            processes: Vec::new(),
            sockets: Vec::new(),
            files: Vec::new(),
            logs: Vec::new(),
            volumes: Vec::new(),
            incomplete: Vec::new(),
            raw: BTreeMap::new(),
            kept: BTreeMap::new(),
        }
    }
}

pub fn manifest(reasons: Vec<String>) -> Manifest {
    Manifest {
        schema_version: 1,
        tool: Tool {
            name: "exhibit-test".into(),
            version: "0".into(),
        },
        case: Some("INC-42".into()),
        examiner: Some("analyst".into()),
        note: Some("test bundle".into()),
        container: ContainerIdentity {
            runtime: "docker".into(),
            id: "c0ffee0000000000000000000000000000000000000000000000000000000001".into(),
            name: "web".into(),
            namespace: None,
            image: "exhibit-fixture-web:latest".into(),
            image_id: IMAGE_ID.into(),
            pod: None,
            pod_namespace: None,
        },
        started_at: "2026-11-23T08:31:02.123456789Z".into(),
        ended_at: "2026-11-23T08:31:03.123456789Z".into(),
        freeze: None,
        completeness: Completeness::from_reasons(reasons),
        fs_method: "overlay-upperdir".into(),
        counts: Counts::default(),
        command_line: vec!["exhibit-collect".into(), "capture".into(), "web".into()],
        operator_uid: 0,
        logs_cut_at: None,
    }
}

fn member_of(path: &[u8]) -> Vec<u8> {
    let mut m = b"rootfs".to_vec();
    m.extend_from_slice(path);
    m
}

/// A record of `path` (absolute) with defaults; content goes with it.
pub fn record(path: &[u8], kind: ChangeKind, ft: FileType, mode: u32, size: u64) -> ChangeRecord {
    let mut r = ChangeRecord::new(member_of(path), path.to_vec(), Source::Upper, kind, ft);
    r.mode = mode;
    r.size = size;
    r.stored_size = size;
    r.atime_ns = 1_795_420_000_000_000_000;
    r.mtime_ns = 1_795_420_100_000_000_000;
    r.ctime_ns = 1_795_420_200_000_000_000;
    r.btime_ns = Some(1_795_419_000_000_000_000);
    r
}

impl Spec {
    pub fn file(mut self, path: &str, kind: ChangeKind, mode: u32, content: &[u8]) -> Self {
        let r = record(
            path.as_bytes(),
            kind,
            FileType::File,
            mode,
            content.len() as u64,
        );
        self.files.push((r, content.to_vec()));
        self
    }
    pub fn dir(mut self, path: &str, kind: ChangeKind) -> Self {
        self.files.push((
            record(path.as_bytes(), kind, FileType::Dir, 0o755, 0),
            vec![],
        ));
        self
    }
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut r = record(
            path.as_bytes(),
            ChangeKind::Added,
            FileType::Symlink,
            0o777,
            target.len() as u64,
        );
        r.link_target = Some(ByteText(target.as_bytes().to_vec()));
        self.files.push((r, vec![]));
        self
    }
    pub fn deleted(mut self, path: &str) -> Self {
        let (dir, name) = path.rsplit_once('/').expect("absolute path");
        let mut r = record(
            path.as_bytes(),
            ChangeKind::Deleted,
            FileType::Whiteout,
            0o000,
            0,
        );
        r.member = ByteText(format!("rootfs{dir}/.wh.{name}").into_bytes());
        self.files.push((r, vec![]));
        self
    }
    pub fn summary(mut self, key: &str, value: Value) -> Self {
        self.container["summary"][key] = value;
        self
    }
    pub fn process(mut self, p: ProcessRecord) -> Self {
        self.processes.push(p);
        self
    }
    pub fn socket(
        mut self,
        proto: &str,
        state: &str,
        local: &str,
        remote: &str,
        inode: u64,
    ) -> Self {
        self.sockets.push(SocketRecord {
            netns: 4026531992,
            proto: proto.into(),
            state: state.into(),
            local: local.into(),
            remote: remote.into(),
            inode,
            pids: vec![100],
        });
        self
    }
    /// Adds an exhibit/exe/ or exhibit/memory/ member.
    pub fn kept(mut self, name: &str, bytes: &[u8]) -> Self {
        self.kept.insert(name.to_string(), bytes.to_vec());
        self
    }
    pub fn log(mut self, line: &str) -> Self {
        self.logs.push(LogLine {
            t: Some("2026-11-23T08:10:00.000000000Z".into()),
            stream: "stderr".into(),
            line: line.into(),
            truncated: false,
            original_len: None,
        });
        self
    }

    /// The bundle bytes, signed with `key` when given. zstd level 3 on the calling
    /// thread: the same spec and key always give the same bytes.
    pub fn bytes(&self, key: Option<&SigningKey>) -> Vec<u8> {
        self.bytes_with(
            key,
            WriterOptions {
                level: 3,
                threads: 0,
            },
        )
    }

    /// The bundle bytes written with the given zstd options.
    pub fn bytes_with(&self, key: Option<&SigningKey>, options: WriterOptions) -> Vec<u8> {
        let mut w = BundleWriter::new(Vec::new(), options).unwrap();
        let jsonl = |items: Vec<Value>| -> Vec<u8> {
            items
                .iter()
                .flat_map(|v| {
                    let mut l = serde_json::to_vec(v).unwrap();
                    l.push(b'\n');
                    l
                })
                .collect()
        };
        let mut members: Vec<(&str, Vec<u8>)> = vec![
            (
                "exhibit/host.json",
                serde_json::to_vec(&json!({"hostname": "lab", "kernel": "6.1"})).unwrap(),
            ),
            (
                "exhibit/container.json",
                serde_json::to_vec(&self.container).unwrap(),
            ),
            (
                "exhibit/processes.jsonl",
                jsonl(
                    self.processes
                        .iter()
                        .map(|p| serde_json::to_value(p).unwrap())
                        .collect(),
                ),
            ),
            (
                "exhibit/sockets.jsonl",
                jsonl(
                    self.sockets
                        .iter()
                        .map(|p| serde_json::to_value(p).unwrap())
                        .collect(),
                ),
            ),
            (
                "exhibit/image.json",
                serde_json::to_vec(&self.image).unwrap(),
            ),
        ];
        for (name, bytes) in members.iter_mut() {
            if let Some(r) = self.raw.get(*name) {
                *bytes = r.clone();
            }
        }
        for (i, (name, bytes)) in members.iter().enumerate() {
            if i == 2 {
                for (kept, bytes) in &self.kept {
                    w.add_member(kept, bytes).unwrap();
                }
            }
            w.add_member(name, bytes).unwrap();
        }
        for (rec, content) in &self.files {
            let mut c: &[u8] = content;
            w.add_content(rec.clone(), Some(&mut c), |_, _| {}).unwrap();
        }
        let logs = self
            .raw
            .get("exhibit/logs/container.jsonl")
            .cloned()
            .unwrap_or_else(|| {
                jsonl(
                    self.logs
                        .iter()
                        .map(|l| serde_json::to_value(l).unwrap())
                        .collect(),
                )
            });
        w.add_member("exhibit/logs/container.jsonl", &logs).unwrap();
        let vols = self
            .raw
            .get("exhibit/volumes.json")
            .cloned()
            .unwrap_or_else(|| serde_json::to_vec(&self.volumes).unwrap());
        w.add_member("exhibit/volumes.json", &vols).unwrap();
        let acq = self
            .raw
            .get("exhibit/acquisition.jsonl")
            .cloned()
            .unwrap_or_else(|| {
                acquisition(&[
                    ("container", None),
                    (
                        "processes",
                        Some(format!("{} processes", self.processes.len())),
                    ),
                    ("files", None),
                ])
            });
        w.add_member("exhibit/acquisition.jsonl", &acq).unwrap();
        let mut m = manifest(self.incomplete.clone());
        m.counts.processes = self.processes.len() as u64;
        m.counts.sockets = self.sockets.len() as u64;
        m.counts.log_lines = self.logs.len() as u64;
        w.finish(m, key).unwrap().0
    }

    /// Writes the bundle to `path`.
    pub fn write(&self, path: &Path, key: Option<&SigningKey>) {
        std::fs::write(path, self.bytes(key)).unwrap();
    }
}

/// A container after an intrusion: a miner in /tmp, a setuid copy, a dropped symlink,
/// a deleted file, the miner's process and its outbound connection.
pub fn intrusion() -> Spec {
    Spec::default()
        .dir("/tmp", ChangeKind::Modified)
        .file("/tmp/.x/miner", ChangeKind::Added, 0o755, b"\x7fELF miner")
        .file("/var/cache/app/data", ChangeKind::Added, 0o644, b"cache")
        .file("/usr/bin/su2", ChangeKind::Added, 0o4755, b"\x7fELF su")
        .symlink("/usr/bin/sh2", "/bin/busybox")
        .deleted("/etc/motd")
        .process(process(100, "/bin/httpd", &["httpd", "-f", "-p", "8080"]))
        .process(process(101, "/tmp/.x/miner", &["miner", "--pool", "x"]))
        .socket("tcp", "LISTEN", "0.0.0.0:8080", "0.0.0.0:0", 1)
        .socket(
            "tcp",
            "ESTABLISHED",
            "172.17.0.2:41000",
            "198.51.100.7:3333",
            2,
        )
        .log("started")
}

/// A hash-chained acquisition log of `ok` events at fixed instants (the library's
/// AcquisitionLog stamps the current time; test bundles must be reproducible).
pub fn acquisition(steps: &[(&str, Option<String>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev = GENESIS.to_string();
    for (seq, (step, detail)) in steps.iter().enumerate() {
        let ev = AcquisitionEvent {
            seq: seq as u64,
            t: format!("2026-11-23T08:31:02.{:09}Z", 200_000_000 + seq),
            step: step.to_string(),
            outcome: "ok".into(),
            detail: detail.clone(),
            error: None,
            prev: prev.clone(),
        };
        let line = serde_json::to_vec(&ev).unwrap();
        prev = sha256_hex(&line);
        out.extend_from_slice(&line);
        out.push(b'\n');
    }
    out
}

/// A process record with defaults.
pub fn process(pid: i32, exe: &str, argv: &[&str]) -> ProcessRecord {
    ProcessRecord {
        pid,
        ns_pid: Some(pid - 99),
        ppid: 1,
        uid: 0,
        gid: 0,
        user: Some("root".into()),
        start_time: Some("2026-11-23T08:05:00.000000000Z".into()),
        comm: exe.rsplit('/').next().unwrap_or(exe).into(),
        argv: CappedList {
            items: argv.iter().map(|a| ByteText::from(*a)).collect(),
            truncated: false,
            original_bytes: 0,
            original_entries: argv.len() as u64,
        },
        env: CappedList::default(),
        cwd: Some("/".into()),
        exe: Some(exe.into()),
        exe_sha256: Some("ab".repeat(32)),
        exe_size: Some(1000),
        exe_deleted: false,
        memfd: false,
        exe_member: None,
        fds: vec![FdInfo {
            fd: 0,
            target: "/dev/null".into(),
        }],
        fds_truncated: false,
        maps: CappedList::default(),
        anon_exec_maps: 0,
        memory: vec![],
        cgroup: None,
        namespaces: BTreeMap::new(),
        found_by: vec!["cgroup".into()],
        errors: vec![],
    }
}

/// (rule, subject) pairs of a findings list, sorted, for exact comparisons. Takes the
/// findings through their JSON form (`rule` and `subject` fields), so this library does
/// not link the analyzer, whose own tests use it.
pub fn pairs<F: serde::Serialize>(findings: &[F]) -> Vec<(String, String)> {
    let field = |v: &Value, name: &str| -> String {
        v[name]
            .as_str()
            .unwrap_or_else(|| panic!("finding without a string {name}: {v}"))
            .to_string()
    };
    let mut v: Vec<(String, String)> = findings
        .iter()
        .map(|f| serde_json::to_value(f).expect("finding as JSON"))
        .map(|f| (field(&f, "rule"), field(&f, "subject")))
        .collect();
    v.sort();
    v
}
