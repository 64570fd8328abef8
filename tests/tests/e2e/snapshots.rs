//! Snapshot tests (insta) of what the programs print: every exhibit-analyze command's
//! text and JSON output on fixed bundles built with the spec builder, the error and hint
//! of bad input, and the `--help` of the three programs. A changed output is a changed
//! snapshot file in review (`cargo insta review`, or accept a `.snap.new` by renaming
//! it); a mismatch fails `cargo test` with or without cargo-insta installed.
//!
//! Each snapshot holds the exit code, stdout and stderr of one run. The temporary
//! directory of a run reads `[TMP]`, so snapshots do not depend on where it ran.

use crate::support;
use exhibit_common::keys;
use exhibit_common::records::ChangeKind as K;
use exhibit_tests::spec::{intrusion, process, Spec};
use exhibit_tests::tamper;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A temporary directory with the fixed bundles and keys; every snapshot run's paths
/// are inside it.
struct Bench {
    dir: tempfile::TempDir,
}

/// Fixed keys: the same key signs the same bytes the same way, so the signer's keyid
/// and every digest in the outputs are stable.
fn signing_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[0x17; 32])
}
fn other_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[0x29; 32])
}

/// A known-good container: the web server and its listening socket.
fn baseline() -> Spec {
    Spec::default()
        .dir("/var/cache", K::Modified)
        .file("/var/cache/app/data", K::Added, 0o644, b"cache")
        .process(process(100, "/bin/httpd", &["httpd", "-f", "-p", "8080"]))
        .socket("tcp", "LISTEN", "0.0.0.0:8080", "0.0.0.0:0", 1)
        .log("started")
}

/// The same container after an intrusion (exhibit_tests::spec::intrusion), with a log
/// line that is not UTF-8.
fn suspect() -> Spec {
    let mut s = intrusion().log("sh: x");
    s.logs[1].line = exhibit_common::text::ByteText(b"sh: \xc3\x28".to_vec());
    s
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().expect("temporary dir");
        let b = Bench { dir };
        keys::write_keypair(&b.p("ir"), &signing_key()).expect("key pair");
        keys::write_keypair(&b.p("other"), &other_key()).expect("other key pair");
        baseline().write(&b.p("baseline.exhibit.tar.zst"), Some(&signing_key()));
        suspect().write(&b.p("suspect.exhibit.tar.zst"), Some(&signing_key()));
        b
    }

    fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Bad input beside the good bundles: an unsigned bundle, a malformed public key,
    /// a bundle with one byte of a member flipped (recompressed, so only the member
    /// digest catches it) and one cut in the middle.
    fn bad_inputs(&self) {
        suspect().write(&self.p("unsigned.exhibit.tar.zst"), None);
        std::fs::write(self.p("bad.pub"), "not a key\n").unwrap();
        let whole = std::fs::read(self.p("suspect.exhibit.tar.zst")).unwrap();
        let mut tar = tamper::decompress(&whole);
        let procs = tamper::span(&tamper::spans(&tar), "exhibit/processes.jsonl").data;
        tar[procs + 10] ^= 0x01;
        std::fs::write(self.p("tampered.exhibit.tar.zst"), tamper::compress(&tar)).unwrap();
        std::fs::write(self.p("cut.exhibit.tar.zst"), &whole[..whole.len() / 2]).unwrap();
    }

    /// `exhibit-analyze ARGS` run in the bench directory (relative names are inside it).
    fn analyze(&self, args: &[&str]) -> String {
        self.shot(Command::new(support::bin("exhibit-analyze")).args(args))
    }

    /// Exit code, stdout and stderr of `cmd`, with the bench directory as `[TMP]`.
    fn shot(&self, cmd: &mut Command) -> String {
        let out = support::run(
            cmd.current_dir(self.dir.path())
                .env("NO_COLOR", "1")
                .env("COLUMNS", "100")
                .env_remove("RUST_LOG"),
        );
        let text = format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            out.status
                .code()
                .map_or_else(|| format!("{:?}", out.status), |c| c.to_string()),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        redact(&text, self.dir.path())
    }
}

/// `text` with `dir` (and its canonical form) written as `[TMP]`.
fn redact(text: &str, dir: &Path) -> String {
    let mut t = text.to_string();
    if let Ok(real) = dir.canonicalize() {
        t = t.replace(real.to_str().expect("UTF-8 temp dir"), "[TMP]");
    }
    t.replace(dir.to_str().expect("UTF-8 temp dir"), "[TMP]")
}

/// Every exhibit-analyze command and format on the fixed bundles, then bad input:
/// (snapshot name, arguments separated by spaces), run in this order in the bench directory (`profile`
/// writes expected.yaml before the report that reads it).
const ANALYZE: &[(&str, &str)] = &[
    ("verify", "verify suspect.exhibit.tar.zst --pubkey ir.pub"),
    ("verify_without_pubkey", "verify suspect.exhibit.tar.zst"),
    ("verify_unsigned", "verify unsigned.exhibit.tar.zst"),
    ("show_text", "show suspect.exhibit.tar.zst --pubkey ir.pub"),
    (
        "show_json",
        "show suspect.exhibit.tar.zst --pubkey ir.pub --format json",
    ),
    (
        "report_text",
        "report suspect.exhibit.tar.zst --pubkey ir.pub",
    ),
    (
        "report_json",
        "report suspect.exhibit.tar.zst --pubkey ir.pub --format json",
    ),
    (
        "report_markdown",
        "report suspect.exhibit.tar.zst --pubkey ir.pub --format markdown",
    ),
    (
        "report_html",
        "report suspect.exhibit.tar.zst --pubkey ir.pub --format html",
    ),
    (
        "report_fail_on_high",
        "report suspect.exhibit.tar.zst --pubkey ir.pub --fail-on high",
    ),
    (
        "diff_text",
        "diff baseline.exhibit.tar.zst suspect.exhibit.tar.zst --pubkey ir.pub",
    ),
    (
        "diff_json",
        "diff baseline.exhibit.tar.zst suspect.exhibit.tar.zst --pubkey ir.pub --format json",
    ),
    (
        "timeline_bodyfile",
        "timeline suspect.exhibit.tar.zst --pubkey ir.pub --format bodyfile",
    ),
    (
        "timeline_jsonl",
        "timeline suspect.exhibit.tar.zst --pubkey ir.pub --format jsonl",
    ),
    (
        "timeline_csv",
        "timeline suspect.exhibit.tar.zst --pubkey ir.pub --format csv",
    ),
    (
        "profile",
        "profile baseline.exhibit.tar.zst --pubkey ir.pub -o expected.yaml",
    ),
    (
        "report_with_profile",
        "report suspect.exhibit.tar.zst --pubkey ir.pub --profile expected.yaml",
    ),
    (
        "extract",
        "extract suspect.exhibit.tar.zst --pubkey ir.pub -o out",
    ),
    (
        "error_missing_bundle",
        "verify missing.exhibit.tar.zst --pubkey ir.pub",
    ),
    (
        "error_missing_pubkey",
        "verify suspect.exhibit.tar.zst --pubkey missing.pub",
    ),
    (
        "error_malformed_pubkey",
        "verify suspect.exhibit.tar.zst --pubkey bad.pub",
    ),
    (
        "error_other_signer",
        "verify suspect.exhibit.tar.zst --pubkey other.pub",
    ),
    (
        "error_unsigned_with_pubkey",
        "report unsigned.exhibit.tar.zst --pubkey ir.pub",
    ),
    (
        "error_tampered_verify",
        "verify tampered.exhibit.tar.zst --pubkey ir.pub",
    ),
    (
        "error_tampered_report",
        "report tampered.exhibit.tar.zst --pubkey ir.pub",
    ),
    (
        "error_truncated",
        "verify cut.exhibit.tar.zst --pubkey ir.pub",
    ),
    (
        "error_profile_output_exists",
        "profile baseline.exhibit.tar.zst --pubkey ir.pub -o ir.pub",
    ),
    (
        "error_unknown_format",
        "report suspect.exhibit.tar.zst --pubkey ir.pub --format pdf",
    ),
];

#[test]
fn analyzer_output_and_errors() {
    let b = Bench::new();
    b.bad_inputs();
    for (name, args) in ANALYZE {
        let args: Vec<&str> = args.split(' ').collect();
        insta::assert_snapshot!(*name, b.analyze(&args));
    }
    let learned = std::fs::read_to_string(b.p("expected.yaml")).expect("profile written");
    insta::assert_snapshot!("profile_yaml", redact(&learned, b.dir.path()));
    insta::assert_snapshot!("extract_tree", tree(&b.p("out")));
}

/// Every path under `root` (relative, sorted) with its type: d, l or f.
fn tree(root: &Path) -> String {
    let mut listing = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("extracted dir") {
            let p = e.expect("entry").path();
            let ft = std::fs::symlink_metadata(&p).expect("metadata").file_type();
            if ft.is_dir() {
                todo.push(p.clone());
            }
            let kind = if ft.is_dir() {
                "d"
            } else if ft.is_symlink() {
                "l"
            } else {
                "f"
            };
            listing.push(format!(
                "{kind} {}",
                p.strip_prefix(root).unwrap().display()
            ));
        }
    }
    listing.sort();
    listing.join("\n")
}

#[test]
fn help_of_the_three_programs() {
    let b = Bench::new();
    for program in ["exhibit-analyze", "exhibit-collect", "exhibit-drill"] {
        insta::assert_snapshot!(
            format!("help_{program}"),
            b.shot(Command::new(support::bin(program)).arg("--help"))
        );
    }
}

/// `exhibit-collect` with the tests' runtime environment, in the bench directory.
fn collect(b: &Bench, args: &[&str]) -> String {
    b.shot(support::collect().args(args))
}

#[test]
fn collector_keygen_output() {
    let b = Bench::new();
    // A fresh key each run: its keyid (64 hex digits after "keyid ") is checked for
    // shape, then written as [KEYID].
    let out = collect(&b, &["keygen", "--out", "new"]);
    let keyid = out
        .lines()
        .find_map(|l| l.strip_prefix("keyid "))
        .unwrap_or_else(|| panic!("no keyid line: {out}"));
    assert!(
        keyid.len() == 64 && keyid.bytes().all(|c| c.is_ascii_hexdigit()),
        "{out}"
    );
    insta::assert_snapshot!("collect_keygen", out.replace(keyid, "[KEYID]"));
    insta::assert_snapshot!(
        "collect_keygen_existing",
        collect(&b, &["keygen", "--out", "new"])
    );
}

/// The stable parts of `exhibit-collect` against the real daemons: the keys of a
/// `list --format json` entry, and the error and hints for a container that is not there.
#[test]
fn collector_list_keys_and_unknown_container() {
    let b = Bench::new();
    let c = support::Container::start(support::Rt::Docker, "web", &[]);
    let out = support::ok(support::collect().args(["list", "--format", "json"]));
    let list: serde_json::Value = serde_json::from_str(&out).expect("list JSON");
    let entry = list
        .as_array()
        .expect("a JSON array")
        .iter()
        .find(|e| e["id"] == c.id.as_str())
        .unwrap_or_else(|| panic!("{} not listed: {out}", c.id));
    let mut keys: Vec<String> = entry
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    insta::assert_snapshot!("collect_list_json_keys", keys.join("\n"));

    for rt in ["docker", "containerd"] {
        insta::assert_snapshot!(
            format!("collect_unknown_container_{rt}"),
            collect(
                &b,
                &[
                    "capture",
                    "--runtime",
                    rt,
                    "exhibit-snapshot-no-such-container",
                    "--unsigned",
                    "-o",
                    "out",
                ]
            )
        );
    }
}

#[test]
fn collector_not_root() {
    let b = Bench::new();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(b.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    // Reachable by uid 65534 wherever the target dir is: a hard link (or a copy).
    let built = support::bin("exhibit-collect");
    let bin = b.p("exhibit-collect");
    if std::fs::hard_link(&built, &bin).is_err() {
        std::fs::copy(&built, &bin).unwrap();
    }
    insta::assert_snapshot!(
        "collect_not_root",
        b.shot(
            Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&bin)
                .args(["capture", "some-container", "--unsigned", "-o", "."])
                .env_remove("DOCKER_HOST")
        )
    );
}
