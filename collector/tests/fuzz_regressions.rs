//! Inputs found by the proc_parsers fuzz target (fuzz/fuzz_targets/proc_parsers.rs),
//! fed through the same calls: a parser must return, never panic.

use exhibit_collector::host::procs::{
    parse_cgroup, parse_maps, parse_maps_line, parse_passwd, parse_stat, parse_status,
};
use exhibit_collector::host::sockets::{parse_net_table, parse_raw_table, NET_TABLES};
use std::path::PathBuf;

fn regressions(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no inputs in {}", dir.display());
    out
}

#[test]
fn proc_parsers_regressions_do_not_panic() {
    let mut failed = Vec::new();
    for (name, data) in regressions("proc_parsers") {
        let res = std::panic::catch_unwind(|| {
            let _ = parse_passwd(&data);
            for proto in NET_TABLES {
                let _ = parse_net_table(proto, &data);
            }
            let _ = parse_status(&data);
            let _ = parse_stat(&data);
            let _ = parse_cgroup(&data);
            let (maps, _) = parse_maps(&data, false);
            for line in &maps.items {
                let _ = parse_maps_line(&line.0);
            }
        });
        if res.is_err() {
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "parsers panicked on {failed:?}");
}

#[test]
fn raw_table_with_a_non_ascii_address_is_skipped() {
    // A 32-byte address field whose 8-byte groups do not fall on char boundaries.
    let ip = format!("a{}b", "\u{e9}".repeat(15));
    assert_eq!(ip.len(), 32);
    let text = format!("header\n0 {ip}:0 0 0 0 0 0 0 0 0\n");
    assert!(parse_raw_table(&text).is_empty());
}
