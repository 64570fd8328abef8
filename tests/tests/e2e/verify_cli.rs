//! The built `exhibit-analyze verify` (not only the library) on library-written bundles
//! that were cut, had members removed, added or duplicated, or had their envelope's
//! payloadType swapped: exit 3 with one `error:` line naming the problem, never a panic.
//! Key problems are exit 2 with a `hint:` line (DESIGN.md section 2), for the analyzer's
//! --pubkey and for `exhibit-collect keygen`.

use crate::support;
use exhibit_tests::spec;
use exhibit_tests::tamper;

use exhibit_common::keys;
use exhibit_common::records::ChangeKind as K;
use spec::{process, Spec};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
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

impl Lab {
    fn put(&self, bytes: &[u8]) -> PathBuf {
        self.n.set(self.n.get() + 1);
        let p = self
            .dir
            .path()
            .join(format!("b{}.exhibit.tar.zst", self.n.get()));
        std::fs::write(&p, bytes).unwrap();
        p
    }
    fn good(&self) -> Vec<u8> {
        sample().bytes(Some(&self.key))
    }
}

fn sample() -> Spec {
    Spec::default()
        .dir("/tmp", K::Modified)
        .file("/tmp/payload", K::Added, 0o755, &[b'x'; 3000])
        .file("/tmp/notes", K::Added, 0o644, b"hello")
        .symlink("/tmp/sh", "/bin/busybox")
        .deleted("/etc/motd")
        .process(process(100, "/bin/httpd", &["httpd", "-f"]))
        .log("started")
}

fn analyze(args: &[&std::ffi::OsStr]) -> Output {
    support::run(
        Command::new(support::bin("exhibit-analyze"))
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG"),
    )
}

fn verify_cli(bundle: &Path, pubkey: &Path) -> Output {
    analyze(&[
        "verify".as_ref(),
        bundle.as_os_str(),
        "--pubkey".as_ref(),
        pubkey.as_os_str(),
    ])
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit 3, nothing on stdout, exactly one `error:` line (then only `hint:` lines), no
/// panic; returns the error line.
fn refused(o: &Output, what: &str) -> String {
    let err = stderr(o);
    assert!(!err.contains("panicked"), "{what}: panic: {err}");
    assert_eq!(o.status.code(), Some(3), "{what}: {err}");
    assert!(o.stdout.is_empty(), "{what}: stdout not empty");
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines.first().is_some_and(|l| l.starts_with("error: ")),
        "{what}: {err}"
    );
    assert!(
        lines[1..].iter().all(|l| l.starts_with("hint: ")),
        "{what}: more than one error line: {err}"
    );
    lines[0].to_string()
}

/// Exit 2 with an `error:` line and at least one `hint:` line, no panic.
fn usage_error(o: &Output, what: &str) -> String {
    let err = stderr(o);
    assert!(!err.contains("panicked"), "{what}: panic: {err}");
    assert_eq!(o.status.code(), Some(2), "{what}: {err}");
    assert!(err.starts_with("error: "), "{what}: {err}");
    assert!(
        err.lines().any(|l| l.starts_with("hint: ")),
        "{what}: {err}"
    );
    err
}

#[test]
fn the_good_bundle_verifies() {
    let l = lab();
    let b = l.put(&l.good());
    let o = verify_cli(&b, &l.pubkey);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("OK "));
}

#[test]
fn a_truncated_bundle_fails_with_one_error_line_and_no_panic() {
    let l = lab();
    let b = l.good();
    let n = b.len();
    for cut in [
        0,
        1,
        3,
        4,
        5,
        17,
        n / 3,
        n / 2,
        2 * n / 3,
        n - 5,
        n - 4,
        n - 1,
    ] {
        let o = verify_cli(&l.put(&b[..cut]), &l.pubkey);
        let line = refused(&o, &format!("cut at {cut} of {n}"));
        assert!(
            line.contains("truncated"),
            "cut at {cut} of {n} does not say truncated: {line}"
        );
    }
    // A whole zstd frame around a cut tar stream: inside a header, inside content,
    // inside the envelope, before and inside the end-of-archive marker.
    let tar = decompress(&b);
    let sp = tamper::spans(&tar);
    let payload = tamper::span(&sp, "rootfs/tmp/payload");
    let env = tamper::span(&sp, "exhibit/manifest.dsse.json");
    for cut in [
        payload.start + 100,
        payload.data + 1000,
        env.data + 10,
        env.next,
        env.next + 512,
    ] {
        let o = verify_cli(&l.put(&compress(&tar[..cut])), &l.pubkey);
        let line = refused(&o, &format!("tar cut at {cut}"));
        assert!(line.contains("truncated"), "tar cut at {cut}: {line}");
    }
}

#[test]
fn removed_added_and_duplicated_members_fail_naming_the_member() {
    let l = lab();
    let tar = decompress(&l.good());
    let sp = tamper::spans(&tar);
    for (i, s) in sp.iter().enumerate() {
        let name = s.name();
        let o = verify_cli(&l.put(&compress(&tamper::without(&tar, i))), &l.pubkey);
        let line = refused(&o, &format!("without {name}"));
        assert!(line.contains(&name), "without {name}: {line}");

        let o = verify_cli(&l.put(&compress(&tamper::duplicated(&tar, i))), &l.pubkey);
        let line = refused(&o, &format!("duplicated {name}"));
        assert!(line.contains(&name), "duplicated {name}: {line}");
    }
    // Added: an unsigned exhibit/ member, a content entry without a record (a copy of
    // a file under another name), and a member after the envelope.
    let exe = vec![0x7fu8; 100];
    let exe_name = format!("exhibit/exe/{}", exhibit_common::hashing::sha256_hex(&exe));
    let at = sp
        .iter()
        .position(|s| s.name == b"exhibit/processes.jsonl")
        .unwrap();
    let t = tamper::inserted(&tar, at, &tamper::member_blocks(&exe_name, &exe));
    let line = refused(&verify_cli(&l.put(&compress(&t)), &l.pubkey), "added exe");
    assert!(line.contains(&exe_name), "{line}");

    let payload = sp
        .iter()
        .position(|s| s.name == b"rootfs/tmp/payload")
        .unwrap();
    let mut copy = tamper::blocks(&tar, &sp, payload).to_vec();
    let (h, n) = (
        sp[payload].data - 512 - sp[payload].start,
        b"rootfs/tmp/payloae",
    );
    copy[h..h + n.len()].copy_from_slice(n);
    copy[h + 148..h + 156].copy_from_slice(b"        ");
    let sum: u32 = copy[h..h + 512].iter().map(|&b| b as u32).sum();
    copy[h + 148..h + 156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    for (where_, before) in [("middle", payload + 1), ("last", payload + 4)] {
        assert!(sp[before - 1].name.starts_with(b"rootfs/"));
        let t = tamper::inserted(&tar, before, &copy);
        let line = refused(
            &verify_cli(&l.put(&compress(&t)), &l.pubkey),
            &format!("added content entry ({where_})"),
        );
        assert!(line.contains("rootfs/tmp/payloae"), "{where_}: {line}");
    }

    let mut t = tar[..sp.last().unwrap().next].to_vec();
    t.extend(tamper::member_blocks("exhibit/host.json", b"{}"));
    t.extend(exhibit_common::tarcodec::end_marker());
    let line = refused(
        &verify_cli(&l.put(&compress(&t)), &l.pubkey),
        "member after the envelope",
    );
    assert!(line.contains("exhibit/host.json"), "{line}");
}

#[test]
fn a_swapped_payload_type_fails() {
    let l = lab();
    let tar = decompress(&l.good());
    let mut env = tamper::envelope(&tar);
    env.payload_type = "application/json".into();
    let t = tamper::with_envelope(&tar, &env);
    let line = refused(&verify_cli(&l.put(&compress(&t)), &l.pubkey), "payloadType");
    assert!(line.contains("payloadType"), "{line}");
    assert!(line.contains("exhibit/manifest.dsse.json"), "{line}");
}

#[test]
fn a_missing_or_malformed_pubkey_is_exit_2_with_a_hint() {
    let l = lab();
    let b = l.put(&l.good());
    let missing = l.dir.path().join("missing.pub");
    let err = usage_error(&verify_cli(&b, &missing), "missing --pubkey");
    assert!(err.contains("missing.pub"), "{err}");
    assert!(err.contains("hint: --pubkey"), "{err}");

    let cases: [(&str, Vec<u8>); 5] = [
        ("empty.pub", Vec::new()),
        ("garbage.pub", b"not a key at all\n".to_vec()),
        (
            "truncated.pub",
            keys::public_pem(&l.key.verifying_key()).as_bytes()[..40].to_vec(),
        ),
        // The private key where the public key belongs.
        ("private.pub", keys::private_pem(&l.key).as_bytes().to_vec()),
        (
            "badbase64.pub",
            b"-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n".to_vec(),
        ),
    ];
    for (name, body) in cases {
        let p = l.dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        let err = usage_error(&verify_cli(&b, &p), name);
        assert!(err.contains(name), "{name}: {err}");
    }
    // A directory is not a key file either.
    let err = usage_error(&verify_cli(&b, l.dir.path()), "directory as --pubkey");
    assert!(err.contains("hint: "), "{err}");
}

#[test]
fn keygen_into_a_missing_directory_is_exit_2_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("missing").join("ir");
    let o = support::run(
        Command::new(support::bin("exhibit-collect"))
            .args(["keygen", "--out"])
            .arg(&prefix)
            .env("NO_COLOR", "1"),
    );
    let err = usage_error(&o, "keygen into a missing directory");
    assert!(err.contains("missing"), "{err}");
    assert!(
        err.contains("hint: check that the directory exists"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
    assert!(!dir.path().join("missing").exists());
}
