//! Socket endpoints and CIDR ranges as sockets.jsonl and profiles spell them:
//! `addr:port`, IPv6 as `[addr]:port`, ranges as `CIDR:PORT` / `[CIDR]:PORT`.

use exhibit_common::records::SocketRecord;
use std::net::IpAddr;

/// Splits `addr:port` / `[v6]:port` into address text and port.
pub fn split_endpoint(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (addr, port) = rest.split_once("]:")?;
        return Some((addr, port));
    }
    s.rsplit_once(':')
}

/// Parses an endpoint into an address (IPv4-mapped IPv6 folded to IPv4) and port.
pub fn parse_endpoint(s: &str) -> Option<(IpAddr, u16)> {
    let (a, p) = split_endpoint(s)?;
    let ip: IpAddr = a.parse().ok()?;
    Some((fold(ip), p.parse().ok()?))
}

/// `::ffff:1.2.3.4` → `1.2.3.4`, so one egress rule covers both families.
pub fn fold(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The port of an endpoint.
pub fn port_of(s: &str) -> Option<u16> {
    split_endpoint(s)?.1.parse().ok()
}

/// An address range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `v6/n` or a bare address (a single host).
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = fold(a.parse().ok()?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = match p {
            Some(p) => p.parse().ok()?,
            None => max,
        };
        // An IPv4-mapped range written in IPv6 is folded too.
        let prefix = if a.contains(':') && addr.is_ipv4() {
            prefix.checked_sub(96)?
        } else {
            prefix
        };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    /// Whether `ip` lies inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, fold(ip)) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(n) & mask == u32::from(i) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(n) & mask == u128::from(i) & mask
            }
            _ => false,
        }
    }
}

/// The family-less protocol: tcp6 → tcp, udp6 → udp, raw6 → raw.
pub fn base_proto(proto: &str) -> &str {
    proto.strip_suffix('6').unwrap_or(proto)
}

/// A socket that accepts connections or datagrams: TCP LISTEN, an unconnected UDP
/// socket, or a listening named unix socket.
pub fn is_listener(s: &SocketRecord) -> bool {
    match base_proto(&s.proto) {
        "tcp" => s.state.eq_ignore_ascii_case("LISTEN"),
        "udp" => port_of(&s.remote).is_none_or(|p| p == 0),
        "unix" => s.state.eq_ignore_ascii_case("LISTEN") && !unix_path(s).is_empty(),
        _ => false,
    }
}

/// A connection to a peer: established or connecting TCP, connected UDP.
pub fn is_connection(s: &SocketRecord) -> bool {
    match base_proto(&s.proto) {
        "tcp" => {
            let st = s.state.to_ascii_uppercase();
            st == "ESTABLISHED" || st == "SYN_SENT"
        }
        "udp" => port_of(&s.remote).is_some_and(|p| p != 0),
        _ => false,
    }
}

/// Connections that are not inbound to one of the same namespace's listeners.
pub fn outbound<'a>(sockets: &'a [SocketRecord]) -> impl Iterator<Item = &'a SocketRecord> + 'a {
    sockets.iter().filter(move |c| {
        is_connection(c)
            && !sockets.iter().any(|l| {
                is_listener(l)
                    && l.netns == c.netns
                    && base_proto(&l.proto) == base_proto(&c.proto)
                    && port_of(&l.local).is_some()
                    && port_of(&l.local) == port_of(&c.local)
            })
    })
}

/// The path of a unix socket (its local address).
pub fn unix_path(s: &SocketRecord) -> &str {
    s.local.as_str()
}

/// The subject of a socket finding: `proto/addr:port` of the local end (listeners,
/// raw sockets) or the remote end (connections); `unix:PATH` for unix sockets.
pub fn subject(s: &SocketRecord, remote: bool) -> String {
    if base_proto(&s.proto) == "unix" {
        return format!("unix:{}", unix_path(s));
    }
    let end = if remote { &s.remote } else { &s.local };
    format!("{}/{}", s.proto, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_ranges() {
        assert_eq!(split_endpoint("[::1]:80"), Some(("::1", "80")));
        assert_eq!(
            parse_endpoint("[::ffff:10.0.0.1]:5432"),
            Some(("10.0.0.1".parse().unwrap(), 5432))
        );
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.2.3.4".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("fd00::/8")
            .unwrap()
            .contains("fd12::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert_eq!(Cidr::parse("10.0.0.0/33"), None);
    }
}
