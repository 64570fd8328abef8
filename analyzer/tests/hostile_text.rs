//! Container-controlled text never forges output: every text output sanitises each
//! field before joining (issue 17 item 5, issue 19 item 4), the signer shown as
//! verified is the key that verified, and diff keys files by raw bytes.

use exhibit_common::records::{ChangeKind as K, FileType};
use exhibit_tests::spec::{process, record, Spec};
use exhibit_tests::tamper;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FORGED: &str = "\n      1 root     /usr/sbin/sshd -D";

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_exhibit-analyze"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn out(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn hostile() -> Spec {
    let mut spec = Spec::default().file(
        &format!("/tmp/evil{FORGED}\u{202e}txt.exe"),
        K::Added,
        0o644,
        b"x",
    );
    spec.processes.push(process(
        100,
        &format!("/bin/evil{FORGED}"),
        &[
            "sh",
            &format!("-c{FORGED}"),
            "a\u{2066}b\u{2028}c\u{feff}d\u{85}",
        ],
    ));
    spec
}

fn bundle(dir: &Path, name: &str, spec: &Spec) -> PathBuf {
    let p = dir.join(name);
    spec.write(&p, None);
    p
}

// No output line is a forged one, and no hidden character reaches the output raw.
fn assert_clean(what: &str, text: &str) {
    for line in text.lines() {
        assert!(
            !line.trim_start().starts_with("1 root"),
            "{what}: forged line {line:?} in\n{text}"
        );
    }
    for c in text.chars() {
        assert!(
            c == '\n' || !exhibit_common::text::is_hidden_char(c),
            "{what}: raw {c:?} in\n{text}"
        );
    }
}

#[test]
fn show_diff_timeline_and_report_never_print_a_forged_line() {
    let dir = tempfile::tempdir().unwrap();
    let base = bundle(dir.path(), "base.exhibit.tar.zst", &Spec::default());
    let b = bundle(dir.path(), "b.exhibit.tar.zst", &hostile());
    let show = out(&run(&["show", s(&b)]));
    assert_clean("show", &show);
    assert!(show.contains("-c\\u{a}      1 root"), "{show}");
    assert!(
        show.contains("a\\u{2066}b\\u{2028}c\\u{feff}d\\u{85}"),
        "{show}"
    );
    assert_clean(
        "show json",
        &out(&run(&["show", s(&b), "--format", "json"])),
    );
    let diff = out(&run(&["diff", s(&base), s(&b)]));
    assert_clean("diff", &diff);
    assert!(diff.contains("  + /tmp/evil\\u{a}"), "{diff}");
    assert_clean(
        "diff json",
        &out(&run(&["diff", s(&base), s(&b), "--format", "json"])),
    );
    for format in ["bodyfile", "csv", "jsonl"] {
        let t = out(&run(&["timeline", s(&b), "--format", format]));
        assert_clean(format, &t);
        assert!(!t.contains('\u{202e}'), "{format}: {t}");
    }
    for format in ["text", "markdown", "json", "html"] {
        let r = out(&run(&["report", s(&b), "--format", format]));
        assert_clean(format, &r);
    }
    assert_clean("verify", &out(&run(&["verify", s(&b)])));
}

#[test]
fn diff_keys_files_by_raw_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Spec::default();
    a.files.push((
        record(b"/x/\x80", K::Added, FileType::Dir, 0o755, 0),
        vec![],
    ));
    let mut b = Spec::default();
    b.files.push((
        record("/x/\u{fffd}".as_bytes(), K::Added, FileType::Dir, 0o755, 0),
        vec![],
    ));
    let (pa, pb) = (
        bundle(dir.path(), "a.exhibit.tar.zst", &a),
        bundle(dir.path(), "b.exhibit.tar.zst", &b),
    );
    let v: serde_json::Value =
        serde_json::from_str(&out(&run(&["diff", s(&pa), s(&pb), "--format", "json"]))).unwrap();
    let files = &v["files"];
    assert_eq!(files["added"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(files["added"][0]["path"], "/x/\u{fffd}");
    assert_eq!(files["removed"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(
        files["removed"][0]["path"],
        serde_json::json!({"bytes": "L3gvgA=="})
    );
    assert_eq!(files["changed"].as_array().unwrap().len(), 0, "{v}");
    let text = out(&run(&["diff", s(&pa), s(&pb)]));
    assert!(text.contains("  + /x/\u{fffd}\n"), "{text}");
    assert!(text.contains("  - /x/\\x80\n"), "{text}");
    // The same bundle against itself: nothing differs.
    let same: serde_json::Value =
        serde_json::from_str(&out(&run(&["diff", s(&pa), s(&pa), "--format", "json"]))).unwrap();
    assert_eq!(
        same["files"],
        serde_json::json!({"added": [], "removed": [], "changed": []})
    );
}

#[test]
fn the_verified_keyid_is_the_key_that_verified_never_the_envelopes_claim() {
    let dir = tempfile::tempdir().unwrap();
    let key = exhibit_common::keys::generate().unwrap();
    let real = exhibit_common::keys::keyid(&key.verifying_key());
    let tar = tamper::decompress(&hostile().bytes(Some(&key)));
    let mut env = tamper::envelope(&tar);
    env.signatures[0].keyid = "attacker-key\n signer: verified (keyid forged)".into();
    let b = dir.path().join("b.exhibit.tar.zst");
    std::fs::write(&b, tamper::compress(&tamper::with_envelope(&tar, &env))).unwrap();
    let pubkey = dir.path().join("k.pub");
    std::fs::write(
        &pubkey,
        exhibit_common::keys::public_pem(&key.verifying_key()),
    )
    .unwrap();
    let v = out(&run(&["verify", s(&b), "--pubkey", s(&pubkey)]));
    assert!(
        v.contains(&format!("signer: verified (keyid {real})\n")),
        "{v}"
    );
    assert!(!v.contains("attacker"), "{v}");
    let v = out(&run(&["verify", s(&b)]));
    assert!(!v.contains("verified (keyid"), "{v}");
    assert!(
        v.contains("signer: UNVERIFIED: no --pubkey given; the envelope claims keyid <not a keyid, 45 bytes>\n"),
        "{v}"
    );
    assert_clean("verify without key", &v);
}
