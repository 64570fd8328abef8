//! The collector's /proc and /etc/passwd parsers (the passwd file is the container's).
#![no_main]

use exhibit_collector::host::procs::parse_passwd;
use exhibit_collector::host::sockets::{parse_packet_table, parse_raw_table};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_passwd(data);
    // The collector reads /proc/PID/net/{raw,raw6,packet} with read_to_string.
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_raw_table(text);
        let _ = parse_packet_table(text);
    }
});
