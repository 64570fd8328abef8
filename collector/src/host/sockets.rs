//! Sockets, read once per network namespace from /proc/PID/net/* of a process in it,
//! mapped to owning processes through their socket fds. In the host's or a shared
//! namespace only sockets a container process holds are kept.

use crate::host::procs::ProcDir;
use exhibit_common::records::{ProcessRecord, SocketRecord};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

fn addr(a: &SocketAddr) -> String {
    match a {
        SocketAddr::V4(v) => format!("{}:{}", v.ip(), v.port()),
        SocketAddr::V6(v) => format!("[{}]:{}", v.ip(), v.port()),
    }
}

/// Socket inode → pids holding it, from the processes' fd lists.
pub fn owners(procs: &[ProcessRecord]) -> BTreeMap<u64, Vec<i32>> {
    let mut out: BTreeMap<u64, Vec<i32>> = BTreeMap::new();
    for p in procs {
        for fd in &p.fds {
            let t = fd.target.as_bytes();
            if let Some(ino) = t
                .strip_prefix(b"socket:[")
                .and_then(|r| r.strip_suffix(b"]"))
            {
                if let Some(ino) = std::str::from_utf8(ino).ok().and_then(|s| s.parse().ok()) {
                    let v = out.entry(ino).or_default();
                    if !v.contains(&p.pid) {
                        v.push(p.pid);
                    }
                }
            }
        }
    }
    out
}

/// One row of a /proc/net table, as the collector records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetRow {
    pub state: String,
    pub local: String,
    pub remote: String,
    pub inode: u64,
}

/// The /proc/PID/net tables read once per network namespace.
pub const NET_TABLES: [&str; 8] = [
    "tcp", "tcp6", "udp", "udp6", "unix", "raw", "raw6", "packet",
];

/// Parses the content of /proc/PID/net/`proto` (one of [`NET_TABLES`]). tcp and udp
/// tables go through procfs, which refuses a table with a bad line (the kernel writes
/// them, no container-chosen text appears in them); the unix table carries socket
/// paths a container chooses, raw bytes and newlines included, so a line that does
/// not parse is skipped there, never the table.
pub fn parse_net_table(proto: &str, bytes: &[u8]) -> Result<Vec<NetRow>, String> {
    use procfs::FromReadSI;
    let si = procfs::current_system_info();
    let row = |state: String, l: &SocketAddr, r: &SocketAddr, inode: u64| NetRow {
        state,
        local: addr(l),
        remote: addr(r),
        inode,
    };
    macro_rules! rows {
        ($entries:expr) => {
            $entries
                .iter()
                .map(|e| {
                    let state = format!("{:?}", e.state).to_uppercase();
                    row(state, &e.local_address, &e.remote_address, e.inode)
                })
                .collect()
        };
    }
    match proto {
        // procfs has one entry type per table, with the same fields.
        "tcp" | "tcp6" => procfs::net::TcpNetEntries::from_read(bytes, si)
            .map(|t| rows!(t.0))
            .map_err(|e| e.to_string()),
        "udp" | "udp6" => procfs::net::UdpNetEntries::from_read(bytes, si)
            .map(|t| rows!(t.0))
            .map_err(|e| e.to_string()),
        "unix" => Ok(parse_unix_table(bytes)),
        "raw" | "raw6" => Ok(std::str::from_utf8(bytes)
            .map(parse_raw_table)
            .unwrap_or_default()
            .into_iter()
            .map(|(local, remote, inode)| NetRow {
                state: "RAW".into(),
                local,
                remote,
                inode,
            })
            .collect()),
        "packet" => Ok(std::str::from_utf8(bytes)
            .map(parse_packet_table)
            .unwrap_or_default()
            .into_iter()
            .map(|(proto_num, iface, inode)| NetRow {
                state: "RAW".into(),
                local: format!("ifindex {iface} proto 0x{proto_num:04x}"),
                remote: String::new(),
                inode,
            })
            .collect()),
        _ => Err(format!("unknown table {proto}")),
    }
}

/// Parses /proc/net/unix. The kernel prints a row as `%pK: %08X %08X %08X %04X %02X
/// %5lu` and then, for a bound socket, a space and the path byte for byte, so a path
/// may hold spaces, invalid UTF-8 and newlines (which start what looks like a new
/// line): the path is the rest of the line, and a line that is not a row is skipped.
pub fn parse_unix_table(bytes: &[u8]) -> Vec<NetRow> {
    let mut out = Vec::new();
    for line in bytes.split(|&b| b == b'\n').skip(1) {
        let mut rest = line;
        let mut f: [&[u8]; 7] = [b""; 7];
        for field in f.iter_mut() {
            rest = rest.trim_ascii_start();
            let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
            (*field, rest) = rest.split_at(end);
        }
        let hex = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_hexdigit);
        let Some(slot) = f[0].strip_suffix(b":") else {
            continue;
        };
        if !(hex(slot) && f[1..6].iter().all(|x| hex(x))) {
            continue;
        }
        let state = match std::str::from_utf8(f[5])
            .ok()
            .and_then(|s| u8::from_str_radix(s, 16).ok())
        {
            Some(1) => "UNCONNECTED",
            Some(2) => "CONNECTING",
            Some(3) => "CONNECTED",
            Some(4) => "DISCONNECTING",
            _ => continue,
        };
        let Some(inode) = std::str::from_utf8(f[6]).ok().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let path = rest.strip_prefix(b" ").unwrap_or(rest);
        out.push(NetRow {
            state: state.into(),
            local: String::from_utf8_lossy(path).into_owned(),
            remote: String::new(),
            inode,
        });
    }
    out
}

/// Reads the sockets of the namespace `netns` through the process `rec` (only while it
/// is still that process: a reused pid yields an error, never another namespace).
pub fn read_netns(
    netns: u64,
    rec: &ProcessRecord,
    owners: &BTreeMap<u64, Vec<i32>>,
    only_owned: bool,
    errors: &mut Vec<String>,
) -> Vec<SocketRecord> {
    let mut out = Vec::new();
    let pid = rec.pid;
    let dir = match ProcDir::reopen(rec) {
        Ok(d) => d,
        Err(e) => {
            errors.push(format!("sockets of netns {netns} via pid {pid}: {e}"));
            return out;
        }
    };
    for proto in NET_TABLES {
        let bytes = match read_table(&dir, proto) {
            Ok(Some(b)) => b,
            Ok(None) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && proto == "tcp" => {
                errors.push(format!("sockets of netns {netns} via pid {pid}: {e}"));
                return out;
            }
            Err(e) => {
                errors.push(format!("{proto} of pid {pid}: {e}"));
                continue;
            }
        };
        let rows = match parse_net_table(proto, &bytes) {
            Ok(r) => r,
            Err(e) => {
                errors.push(format!("{proto} of pid {pid}: {e}"));
                continue;
            }
        };
        for r in rows {
            let pids = owners.get(&r.inode).cloned().unwrap_or_default();
            if only_owned && pids.is_empty() {
                continue;
            }
            out.push(SocketRecord {
                netns,
                proto: proto.to_string(),
                state: r.state,
                local: r.local,
                remote: r.remote,
                inode: r.inode,
                pids,
            });
        }
    }
    out
}

/// Reads /proc/PID/net/`proto`. `Ok(None)` only for a raw, raw6 or packet table this
/// kernel does not have (absent from /proc/self/net too); every other failure, such as
/// the process exiting between two tables, is an error for the caller to record.
pub fn read_table(dir: &ProcDir, proto: &str) -> std::io::Result<Option<Vec<u8>>> {
    match dir.read(&format!("net/{proto}")) {
        Ok(b) => Ok(Some(b)),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && matches!(proto, "raw" | "raw6" | "packet")
                && !std::path::Path::new(&format!("/proc/self/net/{proto}")).exists() =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Parses /proc/net/raw or raw6: (local "addr:proto", remote, inode) per line.
pub fn parse_raw_table(text: &str) -> Vec<(String, String, u64)> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 {
            continue;
        }
        let (Some(l), Some(r), Ok(inode)) = (hex_addr(f[1]), hex_addr(f[2]), f[9].parse::<u64>())
        else {
            continue;
        };
        out.push((l, r, inode));
    }
    out
}

fn hex_addr(s: &str) -> Option<String> {
    let (ip, port) = s.split_once(':')?;
    // Sliced by byte offsets below: only ASCII hex is an address.
    if !ip.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match ip.len() {
        8 => {
            let v = u32::from_str_radix(ip, 16).ok()?;
            std::net::IpAddr::V4(std::net::Ipv4Addr::from(v.swap_bytes()))
        }
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                let w = u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16).ok()?;
                b[i * 4..i * 4 + 4].copy_from_slice(&w.swap_bytes().to_be_bytes());
            }
            std::net::IpAddr::V6(std::net::Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(addr(&SocketAddr::new(ip, port)))
}

/// Parses /proc/net/packet: (protocol, ifindex, inode) per line.
pub fn parse_packet_table(text: &str) -> Vec<(u32, u32, u64)> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 9 {
            continue;
        }
        let (Ok(proto), Ok(iface), Ok(inode)) = (
            u32::from_str_radix(f[3], 16),
            f[4].parse::<u32>(),
            f[8].parse::<u64>(),
        ) else {
            continue;
        };
        out.push((proto, iface, inode));
    }
    out
}

/// All sockets of the processes' namespaces.
pub fn collect(procs: &[ProcessRecord], errors: &mut Vec<String>) -> Vec<SocketRecord> {
    let owners = owners(procs);
    let members: BTreeSet<i32> = procs.iter().map(|p| p.pid).collect();
    let mut out = Vec::new();
    for (netns, rec) in crate::host::procs::net_namespaces(procs) {
        let shared = crate::host::procs::netns_shared(netns, &members);
        out.extend(read_netns(netns, rec, &owners, shared, errors));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_packet_tables_that_cannot_be_read_are_errors() {
        let me = ProcDir::open(std::process::id() as i32).unwrap();
        // A process that exits after its /proc directory was opened: like one that
        // exited between two tables. Its directory never shows another process.
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let gone = ProcDir::open(child.id() as i32).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        for proto in ["raw", "raw6", "packet"] {
            let present = std::path::Path::new(&format!("/proc/self/net/{proto}")).exists();
            match read_table(&gone, proto) {
                Err(e) => assert!(present, "{proto}: {e}"),
                Ok(None) => assert!(!present, "{proto}: the kernel has it, the error was lost"),
                Ok(Some(_)) => panic!("{proto}: read through a process that exited"),
            }
            assert_eq!(read_table(&me, proto).unwrap().is_some(), present);
        }
        // A record of a process that no longer exists: one error, no sockets.
        let (mut rec, _) = crate::host::procs::read_process(
            std::process::id() as i32,
            Vec::new(),
            &Default::default(),
            None,
            0,
            None,
            &mut Default::default(),
        );
        rec.pid = i32::MAX;
        let mut errors = Vec::new();
        assert!(read_netns(1, &rec, &BTreeMap::new(), false, &mut errors).is_empty());
        assert_eq!(errors.len(), 1, "{errors:?}");
    }

    #[test]
    fn parses_raw_and_packet_tables() {
        let raw = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n   1: 00000000:0001 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 12345 2 0000000000000000 0\n";
        assert_eq!(
            parse_raw_table(raw),
            vec![("0.0.0.0:1".to_string(), "0.0.0.0:0".to_string(), 12345)]
        );
        let packet = "sk               RefCnt Type Proto  Iface R Rmem   User   Inode\n0000000000000000 3      3    0003   0     1 0      0      54321\n";
        assert_eq!(parse_packet_table(packet), vec![(3, 0, 54321)]);
        assert_eq!(hex_addr("0100007F:1F90").unwrap(), "127.0.0.1:8080");
        assert_eq!(
            hex_addr("00000000000000000000000001000000:0016").unwrap(),
            "[::1]:22"
        );
    }

    #[test]
    fn a_unix_path_with_a_newline_and_invalid_utf8_hides_no_other_socket() {
        // What the kernel printed for a socket bound to "\0ab\ncd ef\xff" (procfs
        // refused the whole table: every unix socket of the namespace was lost).
        let table = b"Num       RefCount Protocol Flags    Type St Inode Path\n\
000000004eb4d44a: 00000002 00000000 00010000 0001 01 315823 /run/a b.sock\n\
000000009247125b: 00000002 00000000 00000000 0001 01 342386 @ab\ncd ef\xff\n\
0000000012345678: 00000003 00000000 00000000 0001 03  4242\n";
        let rows = parse_net_table("unix", table).unwrap();
        let got: Vec<(&str, &str, u64)> = rows
            .iter()
            .map(|r| (r.state.as_str(), r.local.as_str(), r.inode))
            .collect();
        assert_eq!(
            got,
            vec![
                ("UNCONNECTED", "/run/a b.sock", 315823),
                ("UNCONNECTED", "@ab", 342386),
                ("CONNECTED", "", 4242),
            ]
        );
    }

    #[test]
    fn tcp_rows_keep_the_procfs_state_names() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0\n";
        let rows = parse_net_table("tcp", table.as_bytes()).unwrap();
        assert_eq!(
            rows,
            vec![NetRow {
                state: "LISTEN".into(),
                local: "127.0.0.1:8080".into(),
                remote: "0.0.0.0:0".into(),
                inode: 777
            }]
        );
    }
}
