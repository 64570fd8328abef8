//! Writes a small, signed, representative evidence bundle and its key pair, so the format
//! can be inspected and verified by hand (docs/bundle-format.md, "Verify with standard
//! tools") or fed to another verifier (tests/interop/verify_bundle.py).
//!
//! ```text
//! cargo run -p exhibit-common --example write_sample -- DIR
//! ```
//!
//! DIR gets sample.key and sample.pub (an existing sample.key is reused, so a rerun
//! with the same key writes the same bytes), sample.exhibit.tar.zst and
//! sample.exhibit.tar.zst.sha256. An existing bundle is never replaced.

use exhibit_common::custody::{check_chain, AcquisitionEvent, GENESIS};
use exhibit_common::hashing::sha256_hex;
use exhibit_common::keys;
use exhibit_common::manifest::{
    Completeness, ContainerIdentity, Counts, Manifest, Tool, SCHEMA_VERSION,
};
use exhibit_common::members;
use exhibit_common::output::AtomicFile;
use exhibit_common::records::{
    xattr, CappedList, ChangeKind, ChangeRecord, FdInfo, FileType, LogLine, MemoryRegion,
    MountRecord, ProcessRecord, SocketRecord, Source,
};
use exhibit_common::text::{rfc3339_ns, ByteText};
use exhibit_common::{BundleWriter, WriterOptions};
use serde_json::json;
use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// 2026-11-23T08:31:02.123456789Z: every instant in the sample is derived from it, so the
/// bundle is reproducible.
const T0: i64 = 1_795_422_662_123_456_789;
const CONTAINER_ID: &str = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778899";

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: write_sample DIR");
        return ExitCode::from(2);
    };
    match run(&dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: writing the sample into {}: {e}", dir.display());
            ExitCode::from(2)
        }
    }
}

fn run(dir: &Path) -> Result<(), Box<dyn Error>> {
    std::fs::create_dir_all(dir)?;
    let key = signing_key(dir)?;

    let path = dir.join("sample.exhibit.tar.zst");
    let mut out = AtomicFile::create(&path)?;
    let mut w = BundleWriter::new(
        out.file(),
        // One thread: the compressed bytes are then reproducible too.
        WriterOptions {
            level: 3,
            threads: 0,
        },
    )?;

    w.add_member(members::HOST, &pretty(&host())?)?;
    w.add_member(members::CONTAINER, &pretty(&container())?)?;
    let exe = b"\x7fELF\x02\x01\x01\0 a deleted executable, recovered through /proc/PID/exe";
    let exe_digest = sha256_hex(exe);
    w.add_member(&format!("exhibit/exe/{exe_digest}"), exe)?;
    let region = [0x90u8; 4096];
    let region_member = "exhibit/memory/4242/7f1c2a000000-7f1c2a001000.bin";
    w.add_member(region_member, &region)?;
    w.add_member(
        members::PROCESSES,
        &jsonl(&[process(
            &exe_digest,
            exe.len() as u64,
            region_member,
            &region,
        )])?,
    )?;
    w.add_member(members::SOCKETS, &jsonl(&sockets())?)?;
    w.add_member(members::IMAGE, &pretty(&image())?)?;

    for (record, content) in content() {
        let mut body: &[u8] = &content;
        w.add_content(record, Some(&mut body), |_, _| {})?;
    }

    w.add_member(members::LOGS, &jsonl(&logs())?)?;
    w.add_member(members::VOLUMES, &pretty(&volumes())?)?;
    w.add_member(members::ACQUISITION, &acquisition()?)?;

    let (_, manifest) = w.finish(manifest(), Some(&key))?;
    out.commit()?;

    let digest = sha256_hex(&std::fs::read(&path)?);
    let sums = dir.join("sample.exhibit.tar.zst.sha256");
    let mut f = exhibit_common::output::create_exclusive(&sums, 0o600)?;
    writeln!(f, "{digest}  sample.exhibit.tar.zst")?;

    println!("{}", path.display());
    println!("{}", sums.display());
    println!("{}", dir.join("sample.pub").display());
    println!("keyid {}", keys::keyid(&key.verifying_key()));
    println!(
        "content entries {}",
        manifest
            .counts
            .trees
            .values()
            .map(|t| t.entries)
            .sum::<u64>()
    );
    Ok(())
}

fn signing_key(dir: &Path) -> Result<ed25519_dalek::SigningKey, Box<dyn Error>> {
    let key_path = dir.join("sample.key");
    if key_path.exists() {
        return Ok(keys::load_signing_key(&key_path)?);
    }
    let key = keys::generate()?;
    keys::write_keypair(&dir.join("sample"), &key)?;
    Ok(key)
}

fn pretty(v: &serde_json::Value) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec_pretty(v)
}

fn jsonl<T: serde::Serialize>(items: &[T]) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::new();
    for item in items {
        serde_json::to_writer(&mut out, item)?;
        out.push(b'\n');
    }
    Ok(out)
}

fn t(offset_ms: i64) -> String {
    rfc3339_ns((T0 + offset_ms * 1_000_000) as i128)
}

/// The hash-chained acquisition log, built by hand with fixed times (AcquisitionLog
/// stamps the current time) and checked with the library's own chain check.
fn acquisition() -> Result<Vec<u8>, Box<dyn Error>> {
    let mut out = Vec::new();
    let mut prev = GENESIS.to_string();
    for (seq, (step, outcome, detail)) in [
        ("open-runtime", "ok", "docker 28.1.1"),
        ("processes", "ok", "1 process"),
        ("sockets", "ok", "2 sockets"),
        ("files", "ok", "rootfs, literal, mounts/0"),
        ("logs", "ok", "2 lines"),
    ]
    .into_iter()
    .enumerate()
    {
        let ev = AcquisitionEvent {
            seq: seq as u64,
            t: t(10 + seq as i64),
            step: step.into(),
            outcome: outcome.into(),
            detail: Some(detail.into()),
            error: None,
            prev: prev.clone(),
        };
        let line = serde_json::to_vec(&ev)?;
        prev = sha256_hex(&line);
        out.extend_from_slice(&line);
        out.push(b'\n');
    }
    check_chain(&out)?;
    Ok(out)
}

fn host() -> serde_json::Value {
    json!({
        "hostname": "node-7",
        "machine_id": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "boot_id": "6b7c8d9e-0f1a-2b3c-4d5e-6f7a8b9c0d1e",
        "kernel": "Linux 6.8.0-48-generic #48-Ubuntu SMP PREEMPT_DYNAMIC",
        "runtime": {"name": "docker", "version": "28.1.1"},
        "tool": {"name": "exhibit-collect", "version": "0.1.0", "binary_sha256": sha256_hex(b"exhibit-collect")},
    })
}

fn container() -> serde_json::Value {
    let inspect = json!({"Id": CONTAINER_ID, "Name": "/web", "HostConfig": {"Privileged": false}});
    json!({
        "runtime": "docker",
        "inspect": inspect.to_string(),
        "summary": {
            "id": CONTAINER_ID,
            "name": "web",
            "image": "exhibit-fixture/web:1",
            "image_id": format!("sha256:{}", sha256_hex(b"image config")),
            "privileged": false,
            "host_namespaces": [],
            "cap_add": ["CAP_NET_ADMIN"],
            "mounts": [{"source": "tmpfs", "destination": "/run/secrets", "type": "tmpfs", "read_only": false}],
            "user": "www",
            "labels": {"org.exhibit.fixture-hash": "1"},
            "created": t(-3_600_000),
            "started": t(-3_599_000),
            "pod": null,
            "pod_namespace": null,
        },
    })
}

fn image() -> serde_json::Value {
    json!({
        "reference": "exhibit-fixture/web:1",
        "image_id": format!("sha256:{}", sha256_hex(b"image config")),
        "repo_digests": [],
        "diff_ids": [format!("sha256:{}", sha256_hex(b"layer"))],
        "config": {"Cmd": ["httpd", "-f", "-p", "8080"], "User": "www"},
    })
}

fn capped(items: Vec<ByteText>) -> CappedList {
    let bytes = items.iter().map(|i| i.0.len() as u64 + 1).sum();
    CappedList {
        original_entries: items.len() as u64,
        original_bytes: bytes,
        items,
        truncated: false,
    }
}

fn process(exe_digest: &str, exe_size: u64, region_member: &str, region: &[u8]) -> ProcessRecord {
    ProcessRecord {
        pid: 4242,
        ns_pid: Some(7),
        ppid: 4200,
        uid: 33,
        gid: 33,
        user: Some("www".into()),
        start_time: Some(t(-60_000)),
        comm: "kworker".into(),
        argv: capped(vec![
            "/tmp/.x".into(),
            ByteText(vec![b'-', b'c', 0xff]),
            "10.0.0.9:4444".into(),
        ]),
        env: capped(vec!["PATH=/bin".into(), "SECRET=hunter2".into()]),
        cwd: Some("/tmp".into()),
        exe: Some("/tmp/.x (deleted)".into()),
        exe_sha256: Some(exe_digest.to_string()),
        exe_size: Some(exe_size),
        exe_deleted: true,
        memfd: false,
        exe_member: Some(format!("exhibit/exe/{exe_digest}")),
        fds: vec![
            FdInfo {
                fd: 0,
                target: "/dev/null".into(),
            },
            FdInfo {
                fd: 3,
                target: "socket:[91234]".into(),
            },
        ],
        fds_truncated: false,
        maps: capped(vec!["/tmp/.x (deleted)".into()]),
        anon_exec_maps: 1,
        memory: vec![MemoryRegion {
            start: 0x7f1c_2a00_0000,
            end: 0x7f1c_2a00_1000,
            perms: "r-xp".into(),
            pathname: "".into(),
            member: Some(region_member.to_string()),
            sha256: Some(sha256_hex(region)),
            size: region.len() as u64,
            error: None,
        }],
        cgroup: Some(format!("0::/system.slice/docker-{CONTAINER_ID}.scope")),
        namespaces: [
            ("net".to_string(), 4026532999u64),
            ("pid".into(), 4026532997),
        ]
        .into_iter()
        .collect(),
        found_by: vec!["cgroup".into(), "pidns".into()],
        errors: vec![],
    }
}

fn sockets() -> Vec<SocketRecord> {
    vec![
        SocketRecord {
            netns: 4026532999,
            proto: "tcp".into(),
            state: "LISTEN".into(),
            local: "0.0.0.0:8080".into(),
            remote: "0.0.0.0:0".into(),
            inode: 91000,
            pids: vec![4200],
        },
        SocketRecord {
            netns: 4026532999,
            proto: "tcp".into(),
            state: "ESTABLISHED".into(),
            local: "172.17.0.2:41822".into(),
            remote: "10.0.0.9:4444".into(),
            inode: 91234,
            pids: vec![4242],
        },
    ]
}

fn logs() -> Vec<LogLine> {
    vec![
        LogLine {
            t: Some(t(-5_000)),
            stream: "stdout".into(),
            line: "GET /cgi-bin/status.sh 200".into(),
            truncated: false,
            original_len: None,
        },
        LogLine {
            t: Some(t(-4_000)),
            stream: "stderr".into(),
            line: ByteText(vec![b's', b'h', b':', b' ', 0xc3, 0x28]),
            truncated: false,
            original_len: None,
        },
    ]
}

fn volumes() -> serde_json::Value {
    json!([MountRecord {
        index: 0,
        source: "tmpfs".into(),
        destination: "/run/secrets".into(),
        mount_type: "tmpfs".into(),
        options: vec!["rw".into(), "size=65536k".into()],
        read_only: false,
        captured: "content".into(),
    }])
}

fn manifest() -> Manifest {
    Manifest {
        schema_version: SCHEMA_VERSION,
        tool: Tool {
            name: "exhibit-collect".into(),
            version: "0.1.0".into(),
        },
        case: Some("INC-2026-0042".into()),
        examiner: Some("A. Responder".into()),
        note: Some("sample bundle written by common/examples/write_sample.rs".into()),
        container: ContainerIdentity {
            runtime: "docker".into(),
            id: CONTAINER_ID.into(),
            name: "web".into(),
            namespace: None,
            image: "exhibit-fixture/web:1".into(),
            image_id: format!("sha256:{}", sha256_hex(b"image config")),
            pod: None,
            pod_namespace: None,
        },
        started_at: t(0),
        ended_at: t(2_000),
        freeze: None,
        completeness: Completeness::from_reasons(vec![]),
        fs_method: "overlay-upperdir".into(),
        counts: Counts {
            processes: 1,
            sockets: 2,
            log_lines: 2,
            executables: 1,
            memory_regions: 1,
            ..Counts::default()
        },
        command_line: vec![
            "exhibit-collect".into(),
            "capture".into(),
            "web".into(),
            "--key".into(),
            "ir.key".into(),
        ],
        operator_uid: 0,
        logs_cut_at: None,
    }
}

fn rec(member: &[u8], path: &[u8], kind: ChangeKind, ft: FileType, mode: u32) -> ChangeRecord {
    let mut r = ChangeRecord::new(member.to_vec(), path.to_vec(), Source::Upper, kind, ft);
    r.mode = mode;
    r.atime_ns = T0 - 7_000_000_000;
    r.mtime_ns = T0 - 9_000_000_000;
    r.ctime_ns = T0 - 9_000_000_000;
    r.btime_ns = Some(T0 - 9_000_000_000);
    r.nlink = 1;
    r
}

// A header-only whiteout record (a deleted file or an opaque directory's marker).
fn marker(member: &[u8], path: &[u8], kind: ChangeKind, reason: &str) -> ChangeRecord {
    let mut r = rec(member, path, kind, FileType::Whiteout, 0);
    r.captured = false;
    r.reason = Some(reason.into());
    r
}

fn file(member: &[u8], path: &[u8], kind: ChangeKind, mode: u32, body: &[u8]) -> ChangeRecord {
    let mut r = rec(member, path, kind, FileType::File, mode);
    r.size = body.len() as u64;
    r.stored_size = body.len() as u64;
    r
}

/// The content trees in tar order: each record with the bytes it stores.
fn content() -> Vec<(ChangeRecord, Vec<u8>)> {
    use ChangeKind::*;
    let mut v = Vec::new();
    let none = Vec::new;

    v.push((
        rec(b"rootfs/etc", b"/etc", Modified, FileType::Dir, 0o755),
        none(),
    ));
    // A deleted image file: an OCI whiteout, header-only.
    v.push((
        marker(b"rootfs/etc/.wh.motd", b"/etc/motd", Deleted, "whiteout"),
        none(),
    ));
    // Whole-second mtime and a short ASCII name: no PAX header at all.
    let body = b"* * * * * root /tmp/.x\n".to_vec();
    let mut cron = file(
        b"rootfs/etc/crontab",
        b"/etc/crontab",
        Modified,
        0o644,
        &body,
    );
    cron.mtime_ns = 1_795_422_600_000_000_000;
    v.push((cron, body));

    v.push((
        rec(b"rootfs/tmp", b"/tmp", Modified, FileType::Dir, 0o1777),
        none(),
    ));
    // A setuid executable with an xattr, hard-linked under a second name.
    let body = b"#!/bin/sh\nexec /bin/sh -i\n".to_vec();
    let mut x = file(b"rootfs/tmp/.x", b"/tmp/.x", Added, 0o4755, &body);
    x.uid = 33;
    x.gid = 33;
    x.nlink = 2;
    x.hardlink_group = Some(1_048_577);
    x.xattrs = vec![xattr(b"user.origin", b"curl\0http://10.0.0.9/x")];
    v.push((x, body));
    let mut again = rec(b"rootfs/tmp/.y", b"/tmp/.y", Added, FileType::File, 0o4755);
    again.size = 26;
    again.uid = 33;
    again.gid = 33;
    again.nlink = 2;
    again.hardlink_group = Some(1_048_577);
    again.hardlink_to = Some(ByteText(b"rootfs/tmp/.x".to_vec()));
    v.push((again, none()));
    let mut fifo = rec(b"rootfs/tmp/ctl", b"/tmp/ctl", Added, FileType::Fifo, 0o600);
    fifo.captured = false;
    fifo.reason = Some("fifo".into());
    v.push((fifo, none()));
    let mut link = rec(
        b"rootfs/tmp/hosts",
        b"/tmp/hosts",
        Added,
        FileType::Symlink,
        0o777,
    );
    link.link_target = Some("/etc/hosts".into());
    v.push((link, none()));
    // A name that is neither UTF-8 nor short: carried in a PAX path record.
    let odd = [b"tmp/".to_vec(), vec![0xff, 0xfe], vec![b'n'; 110]].concat();
    let member = [b"rootfs/".to_vec(), odd.clone()].concat();
    let path = [b"/".to_vec(), odd].concat();
    let body = b"odd name\n".to_vec();
    v.push((file(&member, &path, Added, 0o600, &body), body));
    // A file over --max-file-size: recorded, not stored.
    let mut big = rec(
        b"rootfs/tmp/big.iso",
        b"/tmp/big.iso",
        Added,
        FileType::File,
        0o644,
    );
    big.size = 8 << 30;
    big.captured = false;
    big.reason = Some("over --max-file-size".into());
    v.push((big, none()));

    v.push((
        rec(b"rootfs/var", b"/var", Modified, FileType::Dir, 0o755),
        none(),
    ));
    // An opaque directory: the directory, then its marker.
    v.push((
        rec(
            b"rootfs/var/cache",
            b"/var/cache",
            Modified,
            FileType::Dir,
            0o755,
        ),
        none(),
    ));
    v.push((
        marker(
            b"rootfs/var/cache/.wh..wh..opq",
            b"/var/cache",
            OpaqueDir,
            "opaque directory marker",
        ),
        none(),
    ));

    // A regular file whose own name starts with .wh.: literal/, never a whiteout.
    let body = b"not a whiteout\n".to_vec();
    v.push((
        file(
            b"literal/tmp/.wh.notes",
            b"/tmp/.wh.notes",
            Added,
            0o644,
            &body,
        ),
        body,
    ));

    // The container's tmpfs mount (volumes.json index 0).
    let mut m = rec(b"mounts/0", b"/run/secrets", Added, FileType::Dir, 0o755);
    m.source = Source::Tmpfs;
    v.push((m, none()));
    let body = b"db-password=hunter2\n".to_vec();
    let mut s = file(b"mounts/0/db", b"/run/secrets/db", Added, 0o400, &body);
    s.source = Source::Tmpfs;
    v.push((s, body));
    v
}
