//! Sockets, read once per network namespace from /proc/PID/net/* of a process in it,
//! mapped to owning processes through their socket fds. In the host's or a shared
//! namespace only sockets a container process holds are kept.

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

/// Reads the sockets of the namespace `netns` through process `pid`.
pub fn read_netns(
    netns: u64,
    pid: i32,
    owners: &BTreeMap<u64, Vec<i32>>,
    only_owned: bool,
    errors: &mut Vec<String>,
) -> Vec<SocketRecord> {
    let mut out = Vec::new();
    let mut push = |proto: &str, state: String, local: String, remote: String, inode: u64| {
        let pids = owners.get(&inode).cloned().unwrap_or_default();
        if only_owned && pids.is_empty() {
            return;
        }
        out.push(SocketRecord {
            netns,
            proto: proto.to_string(),
            state,
            local,
            remote,
            inode,
            pids,
        });
    };
    let p = match procfs::process::Process::new(pid) {
        Ok(p) => p,
        Err(e) => {
            errors.push(format!("sockets of netns {netns} via pid {pid}: {e}"));
            return out;
        }
    };
    for (proto, r) in [("tcp", p.tcp()), ("tcp6", p.tcp6())] {
        match r {
            Ok(v) => v.iter().for_each(|e| {
                push(
                    proto,
                    format!("{:?}", e.state).to_uppercase(),
                    addr(&e.local_address),
                    addr(&e.remote_address),
                    e.inode,
                )
            }),
            Err(e) => errors.push(format!("{proto} of pid {pid}: {e}")),
        }
    }
    for (proto, r) in [("udp", p.udp()), ("udp6", p.udp6())] {
        match r {
            Ok(v) => v.iter().for_each(|e| {
                push(
                    proto,
                    format!("{:?}", e.state).to_uppercase(),
                    addr(&e.local_address),
                    addr(&e.remote_address),
                    e.inode,
                )
            }),
            Err(e) => errors.push(format!("{proto} of pid {pid}: {e}")),
        }
    }
    match p.unix() {
        Ok(v) => v.iter().for_each(|e| {
            let path = e
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            push(
                "unix",
                format!("{:?}", e.state).to_uppercase(),
                path,
                String::new(),
                e.inode,
            )
        }),
        Err(e) => errors.push(format!("unix of pid {pid}: {e}")),
    }
    for proto in ["raw", "raw6"] {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{proto}")) {
            for (local, remote, inode) in parse_raw_table(&text) {
                push(proto, "RAW".into(), local, remote, inode);
            }
        }
    }
    if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/packet")) {
        for (proto_num, iface, inode) in parse_packet_table(&text) {
            push(
                "packet",
                "RAW".into(),
                format!("ifindex {iface} proto 0x{proto_num:04x}"),
                String::new(),
                inode,
            );
        }
    }
    out
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
    for (netns, pid) in crate::host::procs::net_namespaces(procs) {
        let shared = crate::host::procs::netns_shared(netns, &members);
        out.extend(read_netns(netns, pid, &owners, shared, errors));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
