//! What the writer writes, the reader accepts: the red-team cases of issue 17 item 1
//! at library level. Long control-character container paths in acquisition events and a
//! process holding thousands of fds to such a path give a bundle that verifies and whose
//! every line parses within the reader's caps.

use exhibit_common::custody::{check_chain, AcquisitionLog, Outcome};
use exhibit_common::limits::{MAX_JSON, MAX_JSON_DOCUMENT, MAX_JSON_LINE};
use exhibit_common::manifest::{Completeness, ContainerIdentity, Counts, Manifest, Tool};
use exhibit_common::records::{FdInfo, ProcessRecord};
use exhibit_common::text::ByteText;
use exhibit_common::writer::WriteError;
use exhibit_common::{json, verify, BundleWriter, VerifyOptions, WriterOptions};

fn manifest() -> Manifest {
    Manifest {
        schema_version: 1,
        tool: Tool {
            name: "test".into(),
            version: "0".into(),
        },
        case: None,
        examiner: None,
        note: None,
        container: ContainerIdentity::default(),
        started_at: "2026-11-23T08:31:02.123456789Z".into(),
        ended_at: "2026-11-23T08:31:03.123456789Z".into(),
        freeze: None,
        completeness: Completeness::from_reasons(vec![]),
        fs_method: "none".into(),
        counts: Counts::default(),
        command_line: vec![],
        operator_uid: 0,
        logs_cut_at: None,
    }
}

fn process(fds: usize, target: &[u8]) -> ProcessRecord {
    let line = r#"{"pid":7,"ns_pid":1,"ppid":0,"uid":0,"gid":0,"user":null,"start_time":null,"comm":"sh","argv":{"items":[],"truncated":false,"original_bytes":0,"original_entries":0},"env":{"items":[],"truncated":false,"original_bytes":0,"original_entries":0},"cwd":null,"exe":null,"exe_sha256":null,"exe_size":null,"exe_deleted":false,"memfd":false,"exe_member":null,"fds":[],"fds_truncated":false,"maps":{"items":[],"truncated":false,"original_bytes":0,"original_entries":0},"anon_exec_maps":0,"memory":[],"cgroup":null,"namespaces":{},"found_by":[],"errors":[]}"#;
    let mut p: ProcessRecord = serde_json::from_str(line).unwrap();
    p.fds = (0..fds)
        .map(|fd| FdInfo {
            fd: fd as i32,
            target: ByteText(target.to_vec()),
        })
        .collect();
    p
}

#[test]
fn hostile_paths_and_fds_give_a_bundle_that_verifies_and_whose_every_line_parses() {
    // 60 files at 64 KB control-character paths, each with an xattr named user.a=b:
    // the drop messages as the collector's first_of would quote them, and also raw.
    let path = "\u{1}".repeat(64 << 10);
    let drops: Vec<String> = (0..60)
        .map(|_| format!("{path}: user.a=b (name holds '=')"))
        .collect();
    let mut log = AcquisitionLog::new();
    log.record("files.xattrs", Outcome::Info, Some(drops.join("; ")), None);
    for d in &drops {
        log.record("files", Outcome::Error, None, Some(d.clone()));
    }
    log.record("capture.end", Outcome::Ok, None, None);
    assert!(log.bytes().len() as u64 <= MAX_JSON_DOCUMENT);

    // One process with 3000 fds to a 3.8 KB control-character path.
    let target = vec![0x1bu8; 3900];
    let mut p = process(3000, &target);
    assert!(serde_json::to_vec(&p).unwrap().len() as u64 > MAX_JSON_LINE);
    assert!(p.fit_line(MAX_JSON_LINE));
    assert!(p.fds_truncated && !p.fds.is_empty());
    let mut processes = serde_json::to_vec(&p).unwrap();
    processes.push(b'\n');

    let mut w = BundleWriter::new(Vec::new(), WriterOptions::default()).unwrap();
    w.add_member("exhibit/processes.jsonl", &processes).unwrap();
    w.add_member("exhibit/acquisition.jsonl", log.bytes())
        .unwrap();
    let bytes = w.finish(manifest(), None).unwrap().0;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.exhibit.tar.zst");
    std::fs::write(&path, &bytes).unwrap();
    let v = verify(
        &path,
        &VerifyOptions {
            keys: vec![],
            max_decompressed: None,
        },
    )
    .expect("the bundle verifies");
    for name in ["exhibit/processes.jsonl", "exhibit/acquisition.jsonl"] {
        let member = v.member(name).unwrap().unwrap();
        assert!((member.len() as u64) < MAX_JSON, "{name} is read whole");
        for line in member.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            json::parse::<serde_json::Value>(line).expect("every line parses");
        }
    }
    let events = check_chain(&v.member("exhibit/acquisition.jsonl").unwrap().unwrap()).unwrap();
    assert_eq!(events.len(), 62);
    let back: ProcessRecord = json::parse(
        v.member("exhibit/processes.jsonl")
            .unwrap()
            .unwrap()
            .strip_suffix(b"\n")
            .unwrap(),
    )
    .unwrap();
    assert!(back
        .errors
        .iter()
        .any(|e| e == exhibit_common::records::RECORD_CUT));
}

#[test]
fn the_writer_refuses_what_the_reader_would_refuse() {
    // A JSON Lines member with one line over the reader's line cap.
    let mut w = BundleWriter::new(Vec::new(), WriterOptions::default()).unwrap();
    let mut long = vec![b'"'; 1];
    long.extend(std::iter::repeat_n(b'a', MAX_JSON_LINE as usize));
    long.extend_from_slice(b"\"\n");
    assert!(matches!(
        w.add_member("exhibit/processes.jsonl", &long),
        Err(WriteError::Limit(_))
    ));
    // A line exactly at the cap is accepted (split across the writer's copy buffer).
    let mut w = BundleWriter::new(Vec::new(), WriterOptions::default()).unwrap();
    let mut at = vec![b'a'; MAX_JSON_LINE as usize];
    at.push(b'\n');
    at.extend_from_slice(b"{}\n");
    w.add_member("exhibit/processes.jsonl", &at).unwrap();
    // A JSON document at the reader's limit.
    let mut w = BundleWriter::new(Vec::new(), WriterOptions::default()).unwrap();
    let doc = vec![b' '; MAX_JSON as usize];
    assert!(matches!(
        w.add_member("exhibit/host.json", &doc),
        Err(WriteError::Limit(_))
    ));
}

#[test]
fn any_process_record_fits_the_line_cap_after_fit_line() {
    // Fuzz-regression style: records of growing hostile lists always end up readable.
    for (fds, len) in [
        (0usize, 0usize),
        (10, 64 << 10),
        (3000, 3900),
        (4096, 4000),
        (1, 16 << 20),
    ] {
        let mut p = process(fds, &vec![0x01; len]);
        p.argv.items = vec![ByteText(vec![0x02; 1 << 20])];
        p.env.items = (0..4096).map(|_| ByteText(vec![0x03; 256])).collect();
        p.fit_line(MAX_JSON_LINE);
        let line = serde_json::to_vec(&p).unwrap();
        assert!(
            line.len() as u64 <= MAX_JSON_LINE,
            "{fds} fds of {len}: {}",
            line.len()
        );
        json::parse::<ProcessRecord>(&line).unwrap();
    }
}
