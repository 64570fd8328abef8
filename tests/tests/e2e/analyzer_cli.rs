//! exhibit-analyze end to end: the built binary against bundles written here with
//! exhibit_common (signed, unsigned, tampered and hostile ones), real `mactime` and a
//! real headless Chromium.

use crate::support as e2e;
use exhibit_tests::spec as support;

use e2e::{lab, Lab};
use exhibit_common::dsse::{seal, Statement, Subject, PREDICATE_TYPE, STATEMENT_TYPE};
use exhibit_common::hashing::sha256_hex;
use exhibit_common::keys;
use exhibit_common::records::{ChangeKind as K, FdInfo, FileType};
use exhibit_common::tarcodec::{end_marker, padding, render, EntryHeader, EntryType};
use exhibit_common::text::ByteText;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::{intrusion as sample, process, record, Spec};

fn run(args: &[&str]) -> Output {
    e2e::run(e2e::analyze().args(args))
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited")
}
fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every path under `dir` with its type and content digest, for "nothing else changed".
fn tree(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut m = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let v = if md.is_dir() {
                todo.push(p.clone());
                "dir".to_string()
            } else if md.file_type().is_symlink() {
                format!("link {:?}", std::fs::read_link(&p).unwrap())
            } else {
                sha256_hex(&std::fs::read(&p).unwrap())
            };
            m.insert(p, v);
        }
    }
    m
}

#[test]
fn verify_reports_ok_signer_counts_and_sha256() {
    let l = lab();
    let b = l.bundle("ok.exhibit.tar.zst", &sample(), true);
    let o = run(&["verify", s(&b), "--pubkey", s(&l.pubkey)]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let text = out(&o);
    assert!(text.starts_with(&format!("OK {}", b.display())), "{text}");
    assert!(
        text.contains(&format!(
            "verified (keyid {})",
            keys::keyid(&l.key.verifying_key())
        )),
        "{text}"
    );
    assert!(text.contains("name=web runtime=docker"), "{text}");
    assert!(text.contains("completeness: complete"), "{text}");
    assert!(
        text.contains(&sha256_hex(&std::fs::read(&b).unwrap())),
        "{text}"
    );
    assert!(err(&o).is_empty(), "{}", err(&o));
    // Without a key: hashes checked, signer UNVERIFIED, still exit 0.
    let o = run(&["verify", s(&b)]);
    assert_eq!(code(&o), 0);
    assert!(
        err(&o).contains("warning: signer UNVERIFIED (no --pubkey given)"),
        "{}",
        err(&o)
    );
}

#[test]
fn tampered_wrong_key_unsigned_and_missing() {
    let l = lab();
    let b = l.bundle("b.exhibit.tar.zst", &sample(), true);
    let mut tar = zstd::decode_all(&std::fs::read(&b).unwrap()[..]).unwrap();
    let at = tar
        .windows(14)
        .position(|w| w == br#""hostname":"la"#)
        .unwrap();
    tar[at + 12] = b'L';
    let t = l.p("tampered.exhibit.tar.zst");
    std::fs::write(&t, zstd::encode_all(&tar[..], 3).unwrap()).unwrap();
    let o = run(&["verify", s(&t), "--pubkey", s(&l.pubkey)]);
    assert_eq!(code(&o), 3);
    assert!(err(&o).contains("exhibit/host.json"), "{}", err(&o));
    assert!(err(&o).starts_with("error: "), "{}", err(&o));
    assert!(err(&o).contains("\nhint: "), "{}", err(&o));
    assert!(out(&o).is_empty());

    let other = keys::generate().unwrap();
    std::fs::write(l.p("other.pub"), keys::public_pem(&other.verifying_key())).unwrap();
    let o = run(&["report", s(&b), "--pubkey", s(&l.p("other.pub"))]);
    assert_eq!(code(&o), 3);
    assert!(err(&o).contains("signature"), "{}", err(&o));
    assert!(out(&o).is_empty());

    let u = l.bundle("u.exhibit.tar.zst", &sample(), false);
    let o = run(&["show", s(&u), "--pubkey", s(&l.pubkey)]);
    assert_eq!(code(&o), 3);
    assert!(err(&o).contains("unsigned"), "{}", err(&o));
    let o = run(&["verify", s(&u)]);
    assert_eq!(code(&o), 0);
    assert!(
        err(&o).contains("warning: bundle is UNSIGNED"),
        "{}",
        err(&o)
    );
    assert!(out(&o).contains("signer: UNSIGNED"));

    let o = run(&["verify", s(&l.p("nope.exhibit.tar.zst"))]);
    assert_eq!(code(&o), 2);
    assert!(err(&o).contains("hint: check the path"), "{}", err(&o));
    let o = run(&["verify", s(&b), "--pubkey", s(&l.p("missing.pub"))]);
    assert_eq!(code(&o), 2);
    let o = run(&["verify"]);
    assert_eq!(code(&o), 2, "clap usage errors exit 2");
}

#[test]
fn show_text_json_and_broken_chain() {
    let l = lab();
    let b = l.bundle("b", &sample(), true);
    let o = run(&["show", s(&b), "--pubkey", s(&l.pubkey), "--format", "json"]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let v: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["custody"]["case"], "INC-42");
    assert_eq!(v["custody"]["acquisition_chain"], "ok");
    assert_eq!(v["container"]["name"], "web");
    assert_eq!(v["processes"].as_array().unwrap().len(), 2);
    assert_eq!(v["completeness"]["status"], "complete");
    let o = run(&["show", s(&b), "--pubkey", s(&l.pubkey)]);
    assert!(
        out(&o).contains("examiner:   analyst") && out(&o).contains("/tmp/.x/miner"),
        "{}",
        out(&o)
    );

    // A signed bundle whose acquisition log chain is broken (a broken collector).
    let mut spec = sample();
    let mut log = exhibit_common::custody::AcquisitionLog::new();
    log.record("a", exhibit_common::custody::Outcome::Ok, None, None);
    log.record("b", exhibit_common::custody::Outcome::Ok, None, None);
    let text = String::from_utf8(log.bytes().to_vec()).unwrap();
    let second = text.lines().nth(1).unwrap().to_string();
    spec.raw.insert(
        "exhibit/acquisition.jsonl".into(),
        format!("{second}\n").into_bytes(),
    );
    let c = l.bundle("chain", &spec, true);
    let o = run(&["show", s(&c), "--pubkey", s(&l.pubkey)]);
    assert_eq!(code(&o), 3, "{}", err(&o));
    assert!(
        err(&o).contains("exhibit/acquisition.jsonl") && err(&o).contains("chain"),
        "{}",
        err(&o)
    );
}

#[test]
fn report_formats_fail_on_and_usage_errors() {
    let l = lab();
    let b = l.bundle("b", &sample(), true);
    let k = s(&l.pubkey);
    let o = run(&["report", s(&b), "--pubkey", k, "--format", "json"]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let v: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(
        v["bundle"]["sha256"],
        sha256_hex(&std::fs::read(&b).unwrap())
    );
    assert_eq!(v["verification"]["signature"], "verified");
    let f = v["findings"].as_array().unwrap();
    assert_eq!(v["summary"]["total"], f.len());
    assert!(f.iter().any(|f| f["rule"] == "fs.setuid"
        && f["subject"] == "/usr/bin/su2"
        && f["severity"] == "high"));
    assert!(f
        .iter()
        .any(|f| f["rule"] == "fs.suspicious-location" && f["subject"] == "/tmp/.x/miner"));

    assert_eq!(
        code(&run(&["report", s(&b), "--pubkey", k, "--fail-on", "high"])),
        1
    );
    assert_eq!(
        code(&run(&[
            "report",
            s(&b),
            "--pubkey",
            k,
            "--fail-on",
            "critical"
        ])),
        0
    );
    let o = run(&["report", s(&b), "--pubkey", k]);
    assert!(
        out(&o).contains("HIGH (") && out(&o).contains("finding(s):"),
        "{}",
        out(&o)
    );
    assert!(!out(&o).contains('\u{1b}'), "NO_COLOR honoured");
    let o = run(&["report", s(&b), "--pubkey", k, "--format", "markdown"]);
    assert!(
        out(&o).contains("| fs\\.setuid | /usr/bin/su2 |"),
        "{}",
        out(&o)
    );

    let o = run(&["report", s(&b), "--yara", "/nonexistent"]);
    assert_eq!(code(&o), 2);
    assert!(
        err(&o).starts_with("error: --yara /nonexistent: ") && err(&o).contains("\nhint: "),
        "{}",
        err(&o)
    );
    assert!(out(&o).is_empty());
    std::fs::write(
        l.p("bad.yaml"),
        "processes:\n  - exe: /bin/x\n    args: [unclosed\n",
    )
    .unwrap();
    let o = run(&["report", s(&b), "--profile", s(&l.p("bad.yaml"))]);
    assert_eq!(code(&o), 2);
    assert!(
        err(&o).contains("bad.yaml") && err(&o).contains("line"),
        "{}",
        err(&o)
    );
    std::fs::write(l.p("re.yaml"), "log_patterns:\n  deny: [\"(\"]\n").unwrap();
    assert_eq!(
        code(&run(&["report", s(&b), "--profile", s(&l.p("re.yaml"))])),
        2
    );
    assert_eq!(code(&run(&["report", s(&b), "--fail-on", "severe"])), 2);
}

#[test]
fn learned_profile_round_trips_without_profile_findings() {
    let l = lab();
    let mut spec = sample()
        .socket("udp", "UNCONN", "0.0.0.0:53", "0.0.0.0:0", 3)
        .socket("unix", "LISTEN", "/run/app.sock", "", 4)
        .socket(
            "tcp6",
            "ESTABLISHED",
            "[fd00::2]:41001",
            "[2001:db8::1]:443",
            5,
        )
        .socket("tcp", "ESTABLISHED", "172.17.0.2:8080", "10.1.1.1:50000", 6)
        .dir("/data", K::Added)
        .file("/data/x[1]*", K::Added, 0o644, b"1")
        .file("/etc/app.conf", K::Modified, 0o644, b"2");
    let mut nobody = process(102, "/usr/sbin/worker (deleted)", &["worker", "a.b", "(x)"]);
    nobody.exe_deleted = true;
    nobody.user = None;
    nobody.uid = 65534;
    spec.processes.push(nobody);
    let b = l.bundle("good", &spec, true);
    let other = l.bundle(
        "good2",
        &Spec::default().process(process(100, "/bin/sh", &["sh", "-c", "true"])),
        true,
    );
    let prof = l.p("expected.yaml");
    let o = run(&[
        "profile",
        s(&b),
        s(&other),
        "--pubkey",
        s(&l.pubkey),
        "-o",
        s(&prof),
    ]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let text = std::fs::read_to_string(&prof).unwrap();
    assert!(
        text.contains("tcp/8080")
            && text.contains("unix:/run/app.sock")
            && text.contains("[2001:db8::1/128]:443"),
        "{text}"
    );
    let o = run(&[
        "report",
        s(&b),
        "--pubkey",
        s(&l.pubkey),
        "--profile",
        s(&prof),
        "--format",
        "json",
    ]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let v: Value = serde_json::from_str(&out(&o)).unwrap();
    let profile_rules = [
        "proc.unexpected",
        "net.unexpected-listener",
        "net.unexpected-connection",
        "fs.unexpected-write",
    ];
    let bad: Vec<&Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| profile_rules.contains(&f["rule"].as_str().unwrap()))
        .collect();
    assert!(bad.is_empty(), "{bad:?}\n{text}");
    // The output is never replaced.
    let o = run(&["profile", s(&b), "-o", s(&prof)]);
    assert_eq!(code(&o), 2);
    // And a different bundle against it does raise them.
    let o = run(&[
        "report",
        s(&l.bundle(
            "bad",
            &Spec::default()
                .process(process(100, "/usr/bin/nc", &["nc"]))
                .socket("tcp", "LISTEN", "0.0.0.0:4444", "0.0.0.0:0", 1),
            true,
        )),
        "--profile",
        s(&prof),
        "--format",
        "json",
    ]);
    let v: Value = serde_json::from_str(&out(&o)).unwrap();
    let rules: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(
        rules.contains(&"proc.unexpected") && rules.contains(&"net.unexpected-listener"),
        "{rules:?}"
    );
}

#[test]
fn extract_writes_a_safe_tree() {
    let l = lab();
    let mut spec = sample()
        .symlink("/usr/bin/rel", "../lib/x")
        .symlink("/usr/bin/up", "../../../../../etc");
    let mut dev = record(b"/dev/evil", K::Added, FileType::Char, 0o666, 0);
    dev.rdev_major = 1;
    dev.rdev_minor = 1;
    dev.captured = false;
    spec.files.push((dev, vec![]));
    let mut hl = record(b"/usr/bin/su3", K::Added, FileType::File, 0o4755, 0);
    hl.hardlink_to = Some(ByteText::from("rootfs/usr/bin/su2"));
    spec.files.push((hl, vec![]));
    let mut odd = record(b"/tmp/\xff\xfe", K::Added, FileType::File, 0o644, 3);
    odd.member = ByteText(b"rootfs/tmp/\xff\xfe".to_vec());
    spec.files.push((odd, b"odd".to_vec()));
    let b = l.bundle("b", &spec, true);
    let dest = l.p("out");
    let o = run(&["extract", s(&b), "--pubkey", s(&l.pubkey), "-o", s(&dest)]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(
        std::fs::read(dest.join("rootfs/tmp/.x/miner")).unwrap(),
        b"\x7fELF miner"
    );
    let su = std::fs::metadata(dest.join("rootfs/usr/bin/su2")).unwrap();
    assert_eq!(
        su.permissions().mode() & 0o7777,
        0o755,
        "setuid bit removed"
    );
    assert_eq!(
        std::fs::metadata(dest.join("rootfs/usr/bin/su3"))
            .unwrap()
            .ino(),
        su.ino(),
        "hard link inside"
    );
    assert_eq!(
        std::fs::read_link(dest.join("rootfs/usr/bin/sh2")).unwrap(),
        Path::new("../../../rootfs/bin/busybox")
    );
    assert_eq!(
        std::fs::read_link(dest.join("rootfs/usr/bin/rel")).unwrap(),
        Path::new("../lib/x")
    );
    assert!(
        std::fs::symlink_metadata(dest.join("rootfs/usr/bin/up")).is_err(),
        "escaping symlink refused"
    );
    let devm = std::fs::symlink_metadata(dest.join("rootfs/dev/evil")).unwrap();
    assert!(
        devm.is_file() && devm.len() == 0,
        "device became a placeholder"
    );
    use std::os::unix::ffi::OsStrExt;
    assert_eq!(
        std::fs::read(dest.join(std::ffi::OsStr::from_bytes(b"rootfs/tmp/\xff\xfe"))).unwrap(),
        b"odd"
    );
    assert!(
        dest.join("exhibit/manifest.dsse.json").is_file()
            && dest.join("exhibit/fs/changes.jsonl").is_file()
    );
    assert!(dest.join("rootfs/etc/.wh.motd").is_file());
    let notes = std::fs::read_to_string(dest.join("extract-notes.jsonl")).unwrap();
    assert!(
        notes.contains("symlink-refused")
            && notes.contains("placeholder")
            && notes.contains("mode-masked"),
        "{notes}"
    );
    assert!(!l.p("out.partial").exists());
    // The extracted exhibit/ tree re-packs to the verified members.
    let m = std::fs::read(dest.join("exhibit/manifest.json")).unwrap();
    assert!(String::from_utf8_lossy(&m).contains("INC-42"));
    // Never into an existing directory.
    assert_eq!(code(&run(&["extract", s(&b), "-o", s(&dest)])), 2);
}

/// Extract must fail with `want_code` naming `needle`; `report` must exit `report_code`;
/// neither writes anything anywhere around the bundle.
fn assert_refused(l: &Lab, b: &Path, want_code: i32, needle: &str, report_code: Option<i32>) {
    let before = tree(l.dir.path());
    let dest = l.p("x-out");
    let o = run(&["extract", s(b), "-o", s(&dest)]);
    assert_eq!(code(&o), want_code, "{}: {}", b.display(), err(&o));
    assert!(err(&o).contains(needle), "{}: {}", b.display(), err(&o));
    assert_eq!(
        tree(l.dir.path()),
        before,
        "nothing written for {}",
        b.display()
    );
    let o = run(&["report", s(b)]);
    if let Some(rc) = report_code {
        assert_eq!(code(&o), rc, "report of {}: {}", b.display(), err(&o));
    }
    assert_eq!(tree(l.dir.path()), before);
}

#[test]
fn hostile_bundles_through_writer_are_refused_with_nothing_outside() {
    let l = lab();
    // A symlink to a directory inside, then a file through it.
    let spec = Spec::default()
        .dir("/real", K::Added)
        .symlink("/link", "real")
        .file("/link/x", K::Added, 0o644, b"through");
    assert_refused(
        &l,
        &l.bundle("through.b", &spec, true),
        3,
        "symlink or not a directory",
        Some(0),
    );
    // A symlink escaping, then a file through it.
    let spec = Spec::default()
        .symlink("/esc", "../../../../../../tmp")
        .file("/esc/pwned", K::Added, 0o644, b"x");
    assert_refused(
        &l,
        &l.bundle("escape.b", &spec, true),
        3,
        "under the refused symlink",
        Some(0),
    );
    // A hard link to outside.
    let mut spec = Spec::default();
    let mut hl = record(b"/h", K::Added, FileType::File, 0o644, 0);
    hl.hardlink_to = Some(ByteText::from("rootfs/../../../etc/passwd"));
    spec.files.push((hl, vec![]));
    assert_refused(
        &l,
        &l.bundle("hardlink.b", &spec, true),
        3,
        "hard link",
        // Newer verifiers already refuse the link target (exit 3); extract refuses it anyway.
        None,
    );
    // Duplicate members.
    let spec = Spec::default()
        .file("/d", K::Added, 0o644, b"1")
        .file("/d", K::Added, 0o644, b"2");
    assert_refused(
        &l,
        &l.bundle("dup.b", &spec, true),
        3,
        // Newer verifiers refuse duplicates themselves; extract refuses them anyway.
        "duplicate member",
        None,
    );
    // Deeply nested JSON in a member.
    let mut spec = Spec::default();
    spec.raw.insert(
        "exhibit/container.json".into(),
        ("[".repeat(100) + &"]".repeat(100)).into_bytes(),
    );
    assert_refused(&l, &l.bundle("deep.b", &spec, true), 3, "nesting", Some(3));
}

/// A signed bundle assembled from raw tar entries, for names the writer refuses.
fn raw_bundle(l: &Lab, name: &str, content: &[(&[u8], &[u8])], subjects_extra: &[&str]) -> PathBuf {
    raw_bundle_with(l, name, &[], content, subjects_extra)
}

// A bundle written without the library's writer (which refuses what the reader would
// refuse), with `members` placed after exhibit/host.json.
fn raw_bundle_with(
    l: &Lab,
    name: &str,
    members: &[(&str, &[u8])],
    content: &[(&[u8], &[u8])],
    subjects_extra: &[&str],
) -> PathBuf {
    let mut tar = Vec::new();
    let mut subjects = Vec::new();
    let meta = |tar: &mut Vec<u8>, subjects: &mut Vec<Subject>, n: &str, b: &[u8]| {
        tar.extend(render(&EntryHeader::metadata(n, b.len() as u64)));
        tar.extend(b);
        tar.extend(vec![0u8; padding(b.len() as u64)]);
        subjects.push(Subject::sha256(n, &sha256_hex(b)));
    };
    meta(&mut tar, &mut subjects, "exhibit/host.json", b"{}");
    for (n, b) in members {
        meta(&mut tar, &mut subjects, n, b);
    }
    let mut changes = Vec::new();
    for (member, body) in content {
        let mut r = record(b"/x", K::Added, FileType::File, 0o644, body.len() as u64);
        r.member = ByteText(member.to_vec());
        r.sha256 = Some(sha256_hex(body));
        tar.extend(render(&r.tar_header()));
        tar.extend(*body);
        tar.extend(vec![0u8; padding(body.len() as u64)]);
        changes.extend(serde_json::to_vec(&r).unwrap());
        changes.push(b'\n');
    }
    meta(
        &mut tar,
        &mut subjects,
        "exhibit/fs/changes.jsonl",
        &changes,
    );
    let mut log = exhibit_common::custody::AcquisitionLog::new();
    log.record("files", exhibit_common::custody::Outcome::Ok, None, None);
    meta(
        &mut tar,
        &mut subjects,
        "exhibit/acquisition.jsonl",
        log.bytes(),
    );
    for extra in subjects_extra {
        subjects.push(Subject::sha256(extra, &sha256_hex(b"")));
    }
    let manifest = serde_json::to_vec_pretty(&support::manifest(vec![])).unwrap();
    meta(&mut tar, &mut subjects, "exhibit/manifest.json", &manifest);
    let statement = Statement {
        statement_type: STATEMENT_TYPE.into(),
        subject: subjects,
        predicate_type: PREDICATE_TYPE.into(),
        predicate: serde_json::from_slice(&manifest).unwrap(),
    };
    let env = serde_json::to_vec(&seal(
        &serde_json::to_vec(&statement).unwrap(),
        Some(&l.key),
    ))
    .unwrap();
    tar.extend(render(&EntryHeader {
        path: b"exhibit/manifest.dsse.json".to_vec(),
        kind: EntryType::File,
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: env.len() as u64,
        mtime_ns: 0,
        link: None,
        dev_major: 0,
        dev_minor: 0,
        xattrs: vec![],
    }));
    tar.extend(&env);
    tar.extend(vec![0u8; padding(env.len() as u64)]);
    tar.extend(end_marker());
    let p = l.p(name);
    std::fs::write(&p, zstd::encode_all(&tar[..], 3).unwrap()).unwrap();
    p
}

#[test]
fn hostile_raw_bundles_are_verification_failures() {
    let l = lab();
    let ok = raw_bundle(&l, "control.b", &[(b"rootfs/fine", b"ok")], &[]);
    assert_eq!(
        code(&run(&["verify", s(&ok), "--pubkey", s(&l.pubkey)])),
        0,
        "the raw harness itself is sound"
    );
    for (n, name) in [
        ("dotdot.b", &b"rootfs/../../evil"[..]),
        ("abs.b", b"/etc/evil"),
        ("empty.b", b"rootfs//evil"),
        ("nonutf.b", b"rootfs/../\xff"),
    ] {
        let b = raw_bundle(&l, n, &[(name, b"evil")], &[]);
        assert_refused(&l, &b, 3, "not a valid bundle member name", Some(3));
    }
    let b = raw_bundle(
        &l,
        "absent.b",
        &[(b"rootfs/fine", b"ok")],
        &["exhibit/volumes.json"],
    );
    assert_refused(&l, &b, 3, "exhibit/volumes.json", Some(3));
}

#[test]
fn a_gigabyte_json_line_is_refused_by_the_caps() {
    use std::io::Read;
    let l = lab();
    // The library's writer refuses to write a line the reader would refuse...
    let mut w = exhibit_common::BundleWriter::new(
        Vec::new(),
        exhibit_common::WriterOptions {
            level: 1,
            threads: 2,
        },
    )
    .unwrap();
    let size = 1u64 << 30;
    let mut line = (&b"{\"pid\":\""[..]).chain(std::io::repeat(b'a').take(size - 8));
    w.add_member("exhibit/container.json", b"{}").unwrap();
    assert!(w
        .add_member_from("exhibit/processes.jsonl", &mut line, size)
        .is_err());
    // ...so a hostile writer makes the bundle: one line just over the reader's cap.
    let mut long = b"{\"pid\":\"".to_vec();
    long.resize(exhibit_common::limits::MAX_JSON as usize + 2, b'a');
    let b = raw_bundle_with(
        &l,
        "gig.b",
        &[("exhibit/processes.jsonl", &long)],
        &[(b"rootfs/fine", b"ok")],
        &[],
    );
    let before = tree(l.dir.path());
    let o = run(&["report", s(&b), "--pubkey", s(&l.pubkey)]);
    assert_eq!(code(&o), 3, "{}", err(&o));
    assert!(
        err(&o).contains("exhibit/processes.jsonl") && err(&o).contains("limit"),
        "{}",
        err(&o)
    );
    assert!(out(&o).is_empty());
    assert_eq!(tree(l.dir.path()), before);
}

#[test]
fn timeline_bodyfile_feeds_real_mactime() {
    let l = lab();
    let b = l.bundle("b", &sample(), true);
    let o = run(&[
        "timeline",
        s(&b),
        "--pubkey",
        s(&l.pubkey),
        "--format",
        "bodyfile",
    ]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let body = l.p("body");
    std::fs::write(&body, &o.stdout).unwrap();
    let m = Command::new("mactime")
        .args(["-b", s(&body), "-d"])
        .output()
        .expect("mactime (sleuthkit) is installed by scripts/setup");
    assert!(m.status.success(), "{}", String::from_utf8_lossy(&m.stderr));
    let text = String::from_utf8_lossy(&m.stdout);
    assert!(text.contains("/tmp/.x/miner"), "{text}");
    assert!(text.contains("/etc/motd (deleted)"), "{text}");
    assert!(text.contains("[process start] /tmp/.x/miner"), "{text}");

    let o = run(&["timeline", s(&b), "--format", "jsonl"]);
    let lines: Vec<Value> = out(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ts: Vec<&str> = lines.iter().map(|v| v["t"].as_str().unwrap()).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "sorted");
    assert!(lines
        .iter()
        .any(|v| v["source"] == "log" && v["subject"] == "started"));
    assert!(lines
        .iter()
        .any(|v| v["source"] == "container" && v["kind"] == "created"));
    let o = run(&["timeline", s(&b), "--format", "csv"]);
    assert!(out(&o).starts_with("time,source,kind,subject,detail\n"));
    assert!(out(&o).contains("\"/tmp/.x/miner\""));
}

#[test]
fn diff_reports_file_process_socket_and_config_deltas() {
    let l = lab();
    let base = l.bundle(
        "base",
        &Spec::default()
            .process(process(100, "/bin/httpd", &["httpd"]))
            .socket("tcp", "LISTEN", "0.0.0.0:8080", "0.0.0.0:0", 1),
        true,
    );
    let sus = l.bundle(
        "sus",
        &sample().summary("privileged", serde_json::json!(true)),
        true,
    );
    let o = run(&[
        "diff",
        s(&base),
        s(&sus),
        "--pubkey",
        s(&l.pubkey),
        "--format",
        "json",
    ]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let v: Value = serde_json::from_str(&out(&o)).unwrap();
    assert!(v["files"]["added"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["path"] == "/tmp/.x/miner"));
    assert!(v["processes"]["added"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["exe"] == "/tmp/.x/miner"));
    assert!(v["processes"]["removed"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["exe"] == "/bin/httpd" && p["args"] == ""));
    assert_eq!(
        v["connections"]["added"],
        serde_json::json!(["tcp/198.51.100.7:3333"])
    );
    assert!(v["config"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["field"] == "privileged" && c["suspect"] == true));
    let o = run(&["diff", s(&base), s(&sus)]);
    assert!(out(&o).contains("  + /tmp/.x/miner"), "{}", out(&o));
}

#[test]
fn html_report_renders_in_headless_chromium_with_hostile_text_escaped() {
    let l = lab();
    let mut spec = sample().file(
        "/tmp/<script>alert(1)</script>",
        K::Added,
        0o755,
        b"#!/bin/sh\n",
    );
    let mut p = process(103, "/bin/busybox", &["sh"]);
    p.fds = vec![FdInfo {
        fd: 0,
        target: "/dev/pts/0".into(),
    }];
    spec.processes.push(p);
    let b = l.bundle("b", &spec, true);
    let o = run(&[
        "report",
        s(&b),
        "--pubkey",
        s(&l.pubkey),
        "--format",
        "html",
    ]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let html = out(&o);
    assert!(!html.contains("<script>"), "no live script element");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external resources"
    );
    let page = l.p("report.html");
    std::fs::write(&page, &html).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let c = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium is installed by scripts/setup");
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    let dom = String::from_utf8_lossy(&c.stdout);
    assert!(dom.contains("/usr/bin/su2"), "{dom}");
    assert!(
        dom.contains("fs.setuid") && dom.contains("proc.shell"),
        "{dom}"
    );
    assert!(
        dom.contains("/tmp/&lt;script&gt;alert(1)&lt;/script&gt;"),
        "subject shown as text: {dom}"
    );
    assert!(!dom.contains("<script>"), "{dom}");
}
