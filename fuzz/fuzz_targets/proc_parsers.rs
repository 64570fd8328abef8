//! The collector's /proc parsers and its /etc/passwd parser (the passwd file is the
//! container's): every input goes through each of them, as the bytes the collector
//! reads from /proc/PID/net/{tcp,tcp6,udp,udp6,unix,raw,raw6,packet}, status, stat,
//! maps and cgroup. The collector reads no mountinfo (mount identity comes from
//! statx STX_MNT_ID), so there is no mountinfo parser to fuzz.
#![no_main]

use exhibit_collector::host::procs::{
    parse_cgroup, parse_maps, parse_maps_line, parse_passwd, parse_stat, parse_status,
};
use exhibit_collector::host::sockets::{parse_net_table, NET_TABLES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_passwd(data);
    for proto in NET_TABLES {
        let _ = parse_net_table(proto, data);
    }
    let _ = parse_status(data);
    let _ = parse_stat(data);
    let _ = parse_cgroup(data);
    let (maps, _) = parse_maps(data, false);
    for line in &maps.items {
        if let Some(l) = parse_maps_line(&line.0) {
            assert!(l.path.len() <= line.0.len());
        }
    }
});
