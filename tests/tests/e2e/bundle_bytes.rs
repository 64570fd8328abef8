//! The bundle bytes for a fixed input are pinned (issue 16, item 9): a bundle written by
//! the library's BundleWriter from fixed records, fixed instants and a fixed Ed25519
//! key has exactly the sha256 recorded here, and two writes give identical bytes.
//!
//! The input touches every part of the format (docs/bundle-format.md): small JSON
//! members, kept executables and memory regions, every file type and change kind, a
//! PAX path record for a long name that is not UTF-8, sub-second times, an xattr, a
//! hard-link group, uncaptured records, literal/ and mounts/ trees, changes.jsonl,
//! the manifest and the signed envelope.
//!
//! If a pin fails, the format changed. That is never a side effect of a re-layout:
//! either the change is a mistake, or it is a deliberate format change that updates
//! docs/bundle-format.md (and its version) and these pins in the same commit. The tar
//! pin (decompressed bytes) and the zstd pin are separate, so a zstd upgrade that only
//! compresses differently shows as the zstd pin alone.

use exhibit_common::hashing::sha256_hex;
use exhibit_common::records::{xattr, ChangeKind as K, FileType, Source};
use exhibit_common::text::ByteText;
use exhibit_common::{verify, VerifyOptions, WriterOptions};
use exhibit_tests::spec::{process, record, Spec};
use serde_json::json;

/// sha256 of the decompressed tar of [`pinned_spec`] signed with [`pinned_key`].
const TAR_SHA256: &str = "55dcb8573ca27a2fcac744c677f7384b711af294e0752c3ea2cd8301538bf197";
/// sha256 of the bundle file itself (zstd level 3, compressed on the calling thread).
const BUNDLE_SHA256: &str = "a1095ade88044048e476eba278b1f4a5387691b0e8dfb3e3b374103404ad6e74";

/// A fixed Ed25519 key (Ed25519 signatures are deterministic: same key, same message,
/// same signature).
fn pinned_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[0x42; 32])
}

/// The fixed input: every record, member and instant is a constant.
fn pinned_spec() -> Spec {
    let exe = b"\x7fELF\x02\x01\x01\0 a deleted executable, recovered through /proc/PID/exe";
    let exe_member = format!("exhibit/exe/{}", sha256_hex(exe));
    let region = [0x90u8; 4096];
    let region_member = "exhibit/memory/4242/7f1c2a000000-7f1c2a001000.bin";

    let mut p = process(
        4242,
        "/tmp/.x (deleted)",
        &["/tmp/.x", "-c", "10.0.0.9:4444"],
    );
    p.argv.items[1] = ByteText(vec![b'-', b'c', 0xff]);
    p.exe_deleted = true;
    p.exe_sha256 = Some(sha256_hex(exe));
    p.exe_size = Some(exe.len() as u64);
    p.exe_member = Some(exe_member.clone());
    p.anon_exec_maps = 1;
    p.memory = serde_json::from_value(json!([{
        "start": 0x7f1c_2a00_0000u64, "end": 0x7f1c_2a00_1000u64, "perms": "r-xp",
        "pathname": "", "member": region_member, "sha256": sha256_hex(&region),
        "size": region.len(), "error": null,
    }]))
    .unwrap();

    let mut spec = Spec::default()
        .process(process(100, "/bin/httpd", &["httpd", "-f", "-p", "8080"]))
        .process(p)
        .socket("tcp", "LISTEN", "0.0.0.0:8080", "0.0.0.0:0", 91000)
        .socket(
            "tcp",
            "ESTABLISHED",
            "172.17.0.2:41822",
            "10.0.0.9:4444",
            91234,
        )
        .kept(&exe_member, exe)
        .kept(region_member, &region)
        .log("GET /cgi-bin/status.sh 200")
        .log("sh: \u{fffd}(");
    spec.logs[1].line = ByteText(vec![b's', b'h', b':', b' ', 0xc3, 0x28]);
    spec.volumes = serde_json::from_value(json!([{
        "index": 0, "source": "tmpfs", "destination": "/run/secrets", "type": "tmpfs",
        "options": ["rw", "size=65536k"], "read_only": false, "captured": "content",
    }]))
    .unwrap();

    spec = spec.dir("/etc", K::Modified).deleted("/etc/motd");
    let mut cron = record(b"/etc/crontab", K::Modified, FileType::File, 0o644, 23);
    cron.mtime_ns = 1_795_422_600_000_000_000; // whole seconds: no PAX header
    spec.files
        .push((cron, b"* * * * * root /tmp/.x\n".to_vec()));

    let mut tmp = record(b"/tmp", K::Modified, FileType::Dir, 0o1777, 0);
    tmp.uid = 0;
    spec.files.push((tmp, vec![]));
    let body = b"#!/bin/sh\nexec /bin/sh -i\n".to_vec();
    // A setuid file with an xattr, and a second name hard-linked to it.
    let setuid = |path: &[u8]| {
        let mut r = record(path, K::Added, FileType::File, 0o4755, body.len() as u64);
        (r.uid, r.gid, r.nlink, r.hardlink_group) = (33, 33, 2, Some(1_048_577));
        r
    };
    let mut x = setuid(b"/tmp/.x");
    x.xattrs = vec![xattr(b"user.origin", b"curl\0http://10.0.0.9/x")];
    spec.files.push((x, body.clone()));
    let mut y = setuid(b"/tmp/.y");
    y.stored_size = 0;
    y.hardlink_to = Some(ByteText(b"rootfs/tmp/.x".to_vec()));
    spec.files.push((y, vec![]));
    let mut fifo = record(b"/tmp/ctl", K::Added, FileType::Fifo, 0o600, 0);
    fifo.captured = false;
    fifo.reason = Some("fifo".into());
    spec.files.push((fifo, vec![]));
    spec = spec.symlink("/tmp/hosts", "/etc/hosts");
    // A name that is neither UTF-8 nor short: carried in a PAX path record.
    let odd = [b"/tmp/".to_vec(), vec![0xff, 0xfe], vec![b'n'; 110]].concat();
    spec.files.push((
        record(&odd, K::Added, FileType::File, 0o600, 9),
        b"odd name\n".to_vec(),
    ));
    let mut big = record(b"/tmp/big.iso", K::Added, FileType::File, 0o644, 8 << 30);
    big.stored_size = 0;
    big.captured = false;
    big.reason = Some("over --max-file-size".into());
    spec.files.push((big, vec![]));

    spec = spec.dir("/var", K::Modified).dir("/var/cache", K::Modified);
    let mut opq = record(b"/var/cache", K::OpaqueDir, FileType::Whiteout, 0, 0);
    opq.member = ByteText(b"rootfs/var/cache/.wh..wh..opq".to_vec());
    opq.captured = false;
    opq.reason = Some("opaque directory marker".into());
    spec.files.push((opq, vec![]));

    // A regular file whose own name starts with .wh.: literal/, never a whiteout.
    let mut lit = record(b"/tmp/.wh.notes", K::Added, FileType::File, 0o644, 15);
    lit.member = ByteText(b"literal/tmp/.wh.notes".to_vec());
    spec.files.push((lit, b"not a whiteout\n".to_vec()));

    // The container's tmpfs mount (volumes.json index 0).
    let mut m = record(b"/run/secrets", K::Added, FileType::Dir, 0o755, 0);
    m.member = ByteText(b"mounts/0".to_vec());
    m.source = Source::Tmpfs;
    spec.files.push((m, vec![]));
    let mut s = record(b"/run/secrets/db", K::Added, FileType::File, 0o400, 20);
    s.member = ByteText(b"mounts/0/db".to_vec());
    s.source = Source::Tmpfs;
    spec.files.push((s, b"db-password=hunter2\n".to_vec()));
    spec
}

fn write(threads: u32) -> Vec<u8> {
    pinned_spec().bytes_with(Some(&pinned_key()), WriterOptions { level: 3, threads })
}

#[test]
fn the_bundle_bytes_for_a_fixed_input_are_pinned() {
    let bytes = write(0);
    assert_eq!(bytes, write(0), "two writes of the same input differ");

    // The pinned bundle is a valid one: it verifies with the library and the key.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pinned.exhibit.tar.zst");
    std::fs::write(&path, &bytes).unwrap();
    let mut options = VerifyOptions::default();
    options.keys.push(pinned_key().verifying_key());
    let verified = verify(&path, &options)
        .unwrap_or_else(|e| panic!("the pinned bundle does not verify: {e}"));
    assert_eq!(verified.manifest().counts.processes, 2);

    let tar = zstd::decode_all(&bytes[..]).unwrap();
    assert_eq!(
        sha256_hex(&tar),
        TAR_SHA256,
        "the tar inside the bundle changed for a fixed input: a format change"
    );
    assert_eq!(
        sha256_hex(&bytes),
        BUNDLE_SHA256,
        "the bundle file changed for a fixed input (the tar did not: zstd compresses differently)"
    );
}

#[test]
fn compression_threads_change_the_frames_never_the_tar() {
    let one = write(0);
    let two = write(2);
    assert_eq!(
        zstd::decode_all(&one[..]).unwrap(),
        zstd::decode_all(&two[..]).unwrap()
    );
    assert_eq!(two, write(2), "two multithreaded writes differ");
}
