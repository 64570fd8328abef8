//! Member names of a bundle and the order they must appear in (DESIGN.md section 3).

/// host identity.
pub const HOST: &str = "exhibit/host.json";
/// runtime inspect output and summary.
pub const CONTAINER: &str = "exhibit/container.json";
/// processes, one per line.
pub const PROCESSES: &str = "exhibit/processes.jsonl";
/// sockets, one per line.
pub const SOCKETS: &str = "exhibit/sockets.jsonl";
/// image identity.
pub const IMAGE: &str = "exhibit/image.json";
/// content-tree records, one per line, in tar order.
pub const CHANGES: &str = "exhibit/fs/changes.jsonl";
/// container log lines.
pub const LOGS: &str = "exhibit/logs/container.jsonl";
/// the runtime's own log file, verbatim (Docker's json-file log), when present.
pub const RUNTIME_LOG: &str = "exhibit/logs/runtime.log";
/// mounts and volumes.
pub const VOLUMES: &str = "exhibit/volumes.json";
/// hash-chained acquisition log.
pub const ACQUISITION: &str = "exhibit/acquisition.jsonl";
/// the manifest.
pub const MANIFEST: &str = "exhibit/manifest.json";
/// the DSSE envelope, last member.
pub const ENVELOPE: &str = "exhibit/manifest.dsse.json";

/// The content trees, in tar order.
pub const CONTENT_TREES: [&str; 4] = ["rootfs", "literal", "mounts", "volumes"];

/// What a member name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberClass {
    /// An exhibit/ member covered by a statement subject; `rank` orders it.
    Metadata { rank: u8 },
    /// An entry of a content tree, bound through its changes.jsonl record.
    Content { tree: usize },
    /// exhibit/fs/changes.jsonl.
    Changes,
    /// The envelope.
    Envelope,
}

impl MemberClass {
    /// Position in the order of members; content sits between image.json and changes.jsonl.
    pub fn rank(self) -> u8 {
        match self {
            MemberClass::Metadata { rank } => rank,
            MemberClass::Content { .. } => 7,
            MemberClass::Changes => 8,
            MemberClass::Envelope => 13,
        }
    }
}

/// Classifies a member name; `None` when a bundle may not contain it.
pub fn classify(name: &[u8]) -> Option<MemberClass> {
    let rank = match name {
        b"exhibit/host.json" => 0,
        b"exhibit/container.json" => 1,
        b"exhibit/processes.jsonl" => 4,
        b"exhibit/sockets.jsonl" => 5,
        b"exhibit/image.json" => 6,
        b"exhibit/fs/changes.jsonl" => return Some(MemberClass::Changes),
        b"exhibit/logs/container.jsonl" => 9,
        b"exhibit/logs/runtime.log" => 9,
        b"exhibit/volumes.json" => 10,
        b"exhibit/acquisition.jsonl" => 11,
        b"exhibit/manifest.json" => 12,
        b"exhibit/manifest.dsse.json" => return Some(MemberClass::Envelope),
        n if n.starts_with(b"exhibit/exe/") => {
            let digest = &n[b"exhibit/exe/".len()..];
            if digest.len() == 64
                && digest
                    .iter()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            {
                2
            } else {
                return None;
            }
        }
        n if n.starts_with(b"exhibit/memory/") => {
            if is_memory_member(&n[b"exhibit/memory/".len()..]) {
                3
            } else {
                return None;
            }
        }
        n => {
            let tree = content_tree(n)?;
            return Some(MemberClass::Content { tree });
        }
    };
    Some(MemberClass::Metadata { rank })
}

// <pid>/<start>-<end>.bin with decimal pid and hex addresses.
fn is_memory_member(rest: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(rest) else {
        return false;
    };
    let Some((pid, region)) = text.split_once('/') else {
        return false;
    };
    let Some(region) = region.strip_suffix(".bin") else {
        return false;
    };
    let Some((a, b)) = region.split_once('-') else {
        return false;
    };
    !pid.is_empty()
        && pid.bytes().all(|c| c.is_ascii_digit())
        && !a.is_empty()
        && !b.is_empty()
        && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_hexdigit())
}

/// The content tree of a member (index into [`CONTENT_TREES`]) when its name is safe:
/// relative, no empty, `.` or `..` components. mounts/ and volumes/ members sit under a
/// decimal mount index.
pub fn content_tree(name: &[u8]) -> Option<usize> {
    let mut parts = name.split(|&b| b == b'/');
    let first = parts.next()?;
    let tree = CONTENT_TREES.iter().position(|t| t.as_bytes() == first)?;
    let rest: Vec<&[u8]> = parts.collect();
    if rest.is_empty() {
        return None;
    }
    if rest
        .iter()
        .any(|c| c.is_empty() || *c == b"." || *c == b"..")
    {
        return None;
    }
    if tree >= 2 && !rest[0].iter().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_and_refuses_unsafe_names() {
        assert_eq!(
            classify(b"exhibit/host.json"),
            Some(MemberClass::Metadata { rank: 0 })
        );
        assert_eq!(
            classify(b"rootfs/etc/passwd"),
            Some(MemberClass::Content { tree: 0 })
        );
        assert_eq!(
            classify(b"mounts/0"),
            Some(MemberClass::Content { tree: 2 })
        );
        assert!(classify(b"exhibit/memory/12/7f00-7f10.bin").is_some());
        for bad in [
            &b"rootfs/../etc"[..],
            b"/etc/passwd",
            b"rootfs//x",
            b"rootfs/./x",
            b"rootfs",
            b"mounts/x/y",
            b"exhibit/other.json",
            b"exhibit/exe/ABC",
            b"elsewhere/x",
        ] {
            assert_eq!(classify(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
