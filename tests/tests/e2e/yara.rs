//! `exhibit-analyze report --yara` end to end: the shipped rules (fixtures/yara/) over a
//! bundle captured from a real container (a payload dropped in its filesystem and an
//! implant running from a deleted binary), and over bundles written with exhibit_common
//! where a match lives only in a memory region.

use crate::support;

use exhibit_tests::spec as bundles;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use support::{analyze, keypair, ok, run, Container, Rt};

fn rules() -> PathBuf {
    support::root().join("fixtures/yara")
}

fn report(bundle: &Path, extra: &[&str]) -> Output {
    run(analyze()
        .arg("report")
        .arg(bundle)
        .args(["--yara"])
        .arg(rules())
        .args(extra)
        .env("NO_COLOR", "1"))
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "report JSON: {e}\nstderr: {}",
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn yara_findings(v: &Value) -> Vec<&Value> {
    v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["rule"] == "yara.match")
        .collect()
}

fn offsets(f: &Value, pattern: &str) -> Vec<u64> {
    f["evidence"]["matches"]
        .as_array()
        .expect("matches")
        .iter()
        .find(|m| m["pattern"] == pattern)
        .unwrap_or_else(|| panic!("no {pattern} in {f}"))["offsets"]
        .as_array()
        .expect("offsets")
        .iter()
        .map(|o| o.as_u64().expect("offset"))
        .collect()
}

const WEBSHELL: &str = "#!/bin/sh\necho Content-Type: text/plain\necho\neval \"$QUERY_STRING\"\n";
const IMPLANT_CONFIG: &str = "EXHIBIT-DRILL-IMPLANT-CONFIG c2=127.0.0.1:4444\n";

#[test]
fn shipped_rules_find_a_dropped_payload_and_a_deleted_running_implant_in_a_real_capture() {
    let c = Container::start(Rt::Docker, "web", &[]);
    c.sh(&format!(
        "printf '{}' > /www/cgi-bin/cmd.cgi && chmod 755 /www/cgi-bin/cmd.cgi",
        WEBSHELL.replace('\n', "\\n")
    ));
    let busybox_size: u64 = c
        .sh("stat -c %s /bin/busybox")
        .trim()
        .parse()
        .expect("busybox size");
    c.sh(&format!(
        "mkdir -p /tmp/.hidden && cp /bin/busybox /tmp/.hidden/sleep && printf '{}' >> /tmp/.hidden/sleep && chmod 755 /tmp/.hidden/sleep",
        IMPLANT_CONFIG.replace('\n', "\\n")
    ));
    c.sh(
        "(/tmp/.hidden/sleep 3600 >/dev/null 2>&1 </dev/null &) ; sleep 0.5; rm /tmp/.hidden/sleep",
    );
    let implant_pid = c
        .pids()
        .into_iter()
        .find(|p| {
            std::fs::read_link(format!("/proc/{p}/exe"))
                .map(|l| l.to_string_lossy().contains("/tmp/.hidden/sleep"))
                .unwrap_or(false)
        })
        .expect("the implant runs from its deleted file");

    let dir = tempfile::tempdir().unwrap();
    let (key, pubkey) = keypair(dir.path());
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let (cap, bundle) = c.capture(&out_dir, &["--key", key.to_str().unwrap(), "--quiet"]);
    assert!(
        cap.status.code().is_some_and(|c| c <= 1),
        "capture: {}",
        String::from_utf8_lossy(&cap.stderr)
    );
    let bundle = bundle.expect("bundle written");
    let o = report(
        &bundle,
        &["--pubkey", pubkey.to_str().unwrap(), "--format", "json"],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json_of(&o);
    let found = yara_findings(&v);

    // The payload dropped in the filesystem, found in its rootfs/ member.
    let web = found
        .iter()
        .find(|f| f["subject"] == "webshell_cgi_eval@rootfs/www/cgi-bin/cmd.cgi")
        .unwrap_or_else(|| panic!("no webshell match in {found:#?}"));
    assert_eq!(web["severity"], "critical");
    let e = &web["evidence"];
    assert_eq!(e["object"], "file");
    assert_eq!(e["member"], "rootfs/www/cgi-bin/cmd.cgi");
    assert_eq!(e["path"], "/www/cgi-bin/cmd.cgi");
    assert_eq!(e["namespace"], "webshell");
    assert_eq!(e["tags"], serde_json::json!(["webshell", "drill"]));
    assert_eq!(e["meta"]["attack"], "T1505.003");
    assert_eq!(
        offsets(web, "$cgi"),
        [WEBSHELL.find("Content-Type:").unwrap() as u64]
    );
    assert_eq!(
        offsets(web, "$eval_query"),
        [WEBSHELL.find("eval").unwrap() as u64]
    );
    assert_eq!(e["truncated"], false);

    // The implant lives only in its kept executable: the file is gone from rootfs/.
    let implant = found
        .iter()
        .find(|f| {
            f["subject"]
                .as_str()
                .is_some_and(|s| s.starts_with("implant_appended_config@exhibit/exe/"))
        })
        .unwrap_or_else(|| panic!("no implant match in {found:#?}"));
    let e = &implant["evidence"];
    assert_eq!(implant["severity"], "critical");
    assert_eq!(e["object"], "executable");
    assert_eq!(e["path"], "/tmp/.hidden/sleep");
    assert!(
        e["pids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_i64() == Some(implant_pid as i64)),
        "{e}"
    );
    assert_eq!(offsets(implant, "$marker"), [busybox_size]);
    assert_eq!(
        e["size"].as_u64(),
        Some(busybox_size + IMPLANT_CONFIG.len() as u64)
    );
    assert!(
        !found
            .iter()
            .any(|f| f["evidence"]["member"] == "rootfs/tmp/.hidden/sleep"),
        "the deleted file is not in the bundle"
    );
    // Nothing else in the container matches the shipped rules (busybox, the web root).
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(v["yara"]["scanned"]["executables"].as_u64().unwrap() >= 1);
    assert!(v["yara"]["scanned"]["files"].as_u64().unwrap() >= 1);
    assert_eq!(v["inputs"]["yara"], rules().display().to_string());

    // The human formats show the same findings.
    let text = ok(analyze()
        .arg("report")
        .arg(&bundle)
        .arg("--yara")
        .arg(rules())
        .env("NO_COLOR", "1"));
    assert!(
        text.contains("yara.match")
            && text.contains("webshell_cgi_eval@rootfs/www/cgi-bin/cmd.cgi"),
        "{text}"
    );
    assert!(text.contains("note: YARA: "), "{text}");
}

fn memory_only_bundle(dir: &Path) -> PathBuf {
    // x86-64 execve("//bin/sh") shellcode at 0x100 of an anonymous executable region.
    let shellcode: &[u8] = &[
        0x48, 0x31, 0xf6, 0x56, 0x48, 0xbf, 0x2f, 0x62, 0x69, 0x6e, 0x2f, 0x2f, 0x73, 0x68, 0x57,
        0x54, 0x5f, 0x6a, 0x3b, 0x58, 0x99, 0xb0, 0x3b, 0x0f, 0x05,
    ];
    let mut region = vec![0x90u8; 0x1000];
    region[0x100..0x100 + shellcode.len()].copy_from_slice(shellcode);
    let member = "exhibit/memory/4242/7f0000001000-7f0000002000.bin";
    let mut p = bundles::process(4242, "/usr/sbin/nginx", &["nginx", "-g", "daemon off;"]);
    p.anon_exec_maps = 1;
    p.memory = vec![exhibit_common::records::MemoryRegion {
        start: 0x7f00_0000_1000,
        end: 0x7f00_0000_2000,
        perms: "rwxp".into(),
        pathname: "".into(),
        member: Some(member.into()),
        sha256: Some(exhibit_common::hashing::sha256_hex(&region)),
        size: 0x1000,
        error: None,
    }];
    let spec = bundles::Spec::default()
        .process(p)
        .kept(member, &region)
        // A file and a kept executable without the shellcode: scanned, no match.
        .file(
            "/etc/nginx/nginx.conf",
            exhibit_common::records::ChangeKind::Modified,
            0o644,
            b"worker_processes 1;\n",
        );
    let path = dir.join("memory-only.exhibit.tar.zst");
    spec.write(&path, None);
    path
}

#[test]
fn a_match_only_in_a_memory_region_names_pid_region_and_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = memory_only_bundle(dir.path());
    let o = report(&bundle, &["--format", "json", "--fail-on", "critical"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a critical YARA match fails --fail-on critical: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json_of(&o);
    let found = yara_findings(&v);
    assert_eq!(found.len(), 1, "{found:#?}");
    let f = found[0];
    assert_eq!(
        f["subject"],
        "shellcode_x64_execve_binsh@exhibit/memory/4242/7f0000001000-7f0000002000.bin"
    );
    let e = &f["evidence"];
    assert_eq!(e["object"], "memory");
    assert_eq!(e["pid"], 4242);
    assert_eq!(e["path"], "/usr/sbin/nginx");
    assert_eq!(e["region"]["start"], "7f0000001000");
    assert_eq!(e["region"]["perms"], "rwxp");
    assert_eq!(offsets(f, "$push_binsh"), [0x100]);
    let m = e["matches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["pattern"] == "$push_binsh")
        .unwrap();
    assert_eq!(m["addresses"], serde_json::json!(["7f0000001100"]));
    assert_eq!(offsets(f, "$execve"), [0x100 + 21]);
    assert_eq!(v["yara"]["scanned"]["memory_regions"], 1);
    assert_eq!(v["yara"]["scanned"]["files"], 1);
    assert_eq!(v["yara"]["truncated_total"], 0);

    for (format, needle) in [
        (
            "text",
            "shellcode_x64_execve_binsh@exhibit/memory/4242/7f0000001000-7f0000002000.bin",
        ),
        ("markdown", "yara\\.match"),
        ("html", "<td>yara.match</td>"),
    ] {
        let o = report(&bundle, &["--format", format]);
        assert_eq!(o.status.code(), Some(0));
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains(needle), "{format}: {text}");
    }
}

#[test]
fn an_object_over_the_scan_cap_is_scanned_up_to_it_and_reported_never_silently() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = memory_only_bundle(dir.path());
    // The shellcode sits at 0x100: a 64-byte cap scans before it.
    let o = report(&bundle, &["--format", "json", "--yara-max-size", "64"]);
    assert_eq!(o.status.code(), Some(0));
    let v = json_of(&o);
    assert!(yara_findings(&v).is_empty());
    assert_eq!(v["yara"]["truncated_total"], 1);
    assert_eq!(
        v["yara"]["truncated"][0]["member"],
        "exhibit/memory/4242/7f0000001000-7f0000002000.bin"
    );
    assert_eq!(v["yara"]["truncated"][0]["size"], 0x1000);
    assert_eq!(v["yara"]["truncated"][0]["scanned_bytes"], 64);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning: YARA: 1 object(s) larger than --yara-max-size (64 bytes)"),
        "{err}"
    );
    let o = report(&bundle, &["--yara-max-size", "64"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("note: YARA: 1 object(s) larger"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = report(&bundle, &["--yara-max-size", "0"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn broken_rules_exit_2_naming_file_and_line_before_the_bundle_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = memory_only_bundle(dir.path());
    let bad = dir.path().join("bad.yar");
    std::fs::write(
        &bad,
        "rule fine { condition: true }\nrule broken {\n  strings:\n    $a = \"x\"\n  condition:\n    $a and\n}\n",
    )
    .unwrap();
    let o = run(analyze()
        .arg("report")
        .arg(&bundle)
        .arg("--yara")
        .arg(&bad)
        .env("NO_COLOR", "1"));
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines[0].starts_with(&format!(
            "error: YARA rules do not compile: {}:7:",
            bad.display()
        )) && lines[0].contains("syntax error"),
        "{err}"
    );
    assert!(lines[1].starts_with("hint: fix the rule"), "{err}");

    // A tampered bundle is still exit 3 with nothing emitted, rules or not.
    let mut bytes = std::fs::read(&bundle).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x40;
    let tampered = dir.path().join("tampered.exhibit.tar.zst");
    std::fs::write(&tampered, bytes).unwrap();
    let o = report(&tampered, &["--format", "json"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(o.stdout.is_empty());
}
