//! The analyzer's rule ids (`fs.setuid`, `proc.shell`, ...): the `rule` of every finding,
//! and what drills name in `expect:` and `forbid:`.
//!
//! The analyzer owns the rules and re-exports this type as
//! `exhibit_analyzer::finding::RuleId`; the list lives here, in the dependency-light
//! format crate, so the drill runner can check a playbook's rule ids without linking
//! the analyzer (and yara-x with it). docs/findings.md lists every id; a test keeps the
//! two equal. Serialized as the id text, so JSON output is the same as with strings.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

macro_rules! rule_ids {
    ($($(#[$doc:meta])* $variant:ident = $id:literal,)+) => {
        /// One analyzer rule (docs/findings.md, "Rules").
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum RuleId {
            $($(#[$doc])* $variant,)+
        }

        impl RuleId {
            /// Every rule, in the order of docs/findings.md.
            pub const ALL: &'static [RuleId] = &[$(RuleId::$variant,)+];

            /// The id as findings and drills spell it, e.g. `fs.setuid`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(RuleId::$variant => $id,)+
                }
            }
        }
    };
}

rule_ids! {
    /// An added file that is executable (exec bit or ELF/script magic).
    FsAddedExecutable = "fs.added-executable",
    /// A modified image file (content or link target differs).
    FsModifiedImageFile = "fs.modified-image-file",
    /// An image file deleted (whiteout) or hidden by an opaque directory.
    FsDeletedImageFile = "fs.deleted-image-file",
    /// Mode, uid or gid changed against the image.
    FsPermissionChange = "fs.permission-change",
    /// A setuid or setgid file added, or bits gained.
    FsSetuid = "fs.setuid",
    /// A write to a persistence location (cron, rc files, authorized_keys, ...).
    FsPersistence = "fs.persistence",
    /// An executable or hidden directory in /tmp, /dev/shm or /var/tmp.
    FsSuspiciousLocation = "fs.suspicious-location",
    /// A write the profile's writable paths do not cover.
    FsUnexpectedWrite = "fs.unexpected-write",
    /// A process the profile does not list.
    ProcUnexpected = "proc.unexpected",
    /// A process running a deleted executable.
    ProcExeDeleted = "proc.exe-deleted",
    /// A process whose executable is not a file of the image.
    ProcExeNotInImage = "proc.exe-not-in-image",
    /// A process whose executable differs from the image's.
    ProcExeModified = "proc.exe-modified",
    /// A memfd executable or anonymous executable mappings.
    ProcFileless = "proc.fileless",
    /// An interactive shell or a shell holding a network socket.
    ProcShell = "proc.shell",
    /// A listener the profile does not list.
    NetUnexpectedListener = "net.unexpected-listener",
    /// An outbound connection to a remote the profile does not list.
    NetUnexpectedConnection = "net.unexpected-connection",
    /// A raw or packet socket.
    NetRawSocket = "net.raw-socket",
    /// The container runs privileged.
    ConfigPrivileged = "config.privileged",
    /// A host namespace shared with the container.
    ConfigHostNamespace = "config.host-namespace",
    /// A sensitive host path bind-mounted.
    ConfigSensitiveMount = "config.sensitive-mount",
    /// A capability added.
    ConfigAddedCapability = "config.added-capability",
    /// Log lines match a denied pattern of the profile.
    LogPattern = "log.pattern",
    /// A YARA rule matched (`--yara`).
    YaraMatch = "yara.match",
    /// The bundle's image is not the saved image given with `--image`.
    ImageMismatch = "image.mismatch",
    /// The manifest says the bundle is incomplete.
    BundleIncomplete = "bundle.incomplete",
}

impl RuleId {
    /// Known ids close to `text` (a likely misspelling), closest first: within a few
    /// edits, else the ids of the same family (`fs.`, `proc.`, ...).
    pub fn close_to(text: &str) -> Vec<RuleId> {
        let limit = 2 + text.chars().count() / 8;
        let mut near: Vec<(usize, RuleId)> = RuleId::ALL
            .iter()
            .map(|&r| (edit_distance(text, r.as_str()), r))
            .filter(|&(d, _)| d <= limit)
            .collect();
        near.sort_by_key(|&(d, r)| (d, r.as_str()));
        if !near.is_empty() {
            return near.into_iter().map(|(_, r)| r).collect();
        }
        let family = text.split('.').next().unwrap_or_default();
        RuleId::ALL
            .iter()
            .copied()
            .filter(|r| r.as_str().split('.').next() == Some(family))
            .collect()
    }
}

/// Levenshtein distance over chars (ids are short).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// A rule id that no rule has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rule {0:?}")]
pub struct UnknownRule(pub String);

impl UnknownRule {
    /// The `hint:` text: the close ids, or every id when none is close.
    pub fn hint(&self) -> String {
        let close = RuleId::close_to(&self.0);
        let (what, list) = if close.is_empty() {
            ("rule ids are", RuleId::ALL.to_vec())
        } else {
            ("close rule ids:", close)
        };
        let list: Vec<&str> = list.iter().map(|r| r.as_str()).collect();
        format!("{what} {} (docs/findings.md)", list.join(", "))
    }
}

impl FromStr for RuleId {
    type Err = UnknownRule;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RuleId::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRule(s.to_string()))
    }
}

impl fmt::Display for RuleId {
    /// The id; width and alignment apply (`{:<26}`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Ordered by the id text, so findings sort as they did when rules were strings.
impl Ord for RuleId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for RuleId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq<str> for RuleId {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for RuleId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for RuleId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RuleId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        text.parse()
            .map_err(|e: UnknownRule| serde::de::Error::custom(format_args!("{e}; {}", e.hint())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The rule ids of the "Rules" table of docs/findings.md, as written there.
    fn documented() -> Vec<String> {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/findings.md"))
                .expect("docs/findings.md");
        let section = doc
            .split("\n## Rules")
            .nth(1)
            .expect("docs/findings.md has a Rules section");
        let section = section.split("\n## ").next().unwrap_or_default();
        section
            .lines()
            .skip_while(|l| !l.starts_with("| rule |"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|row| {
                let cell = row.trim_matches('|').split('|').next().unwrap_or_default();
                cell.trim().trim_matches('`').to_string()
            })
            .collect()
    }

    #[test]
    fn every_documented_rule_parses_and_every_rule_is_documented() {
        let documented = documented();
        assert!(documented.len() >= 20, "only {documented:?}");
        for id in &documented {
            let r: RuleId = id
                .parse()
                .unwrap_or_else(|e| panic!("docs/findings.md: {e}"));
            assert_eq!(r.as_str(), id);
        }
        let documented: BTreeSet<&str> = documented.iter().map(String::as_str).collect();
        for r in RuleId::ALL {
            assert!(
                documented.contains(r.as_str()),
                "{r} is missing from the Rules table of docs/findings.md"
            );
        }
        assert_eq!(documented.len(), RuleId::ALL.len(), "an id twice");
    }

    #[test]
    fn serializes_as_the_id_text_and_sorts_by_it() {
        for &r in RuleId::ALL {
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
            let back: RuleId = serde_json::from_str(&format!("\"{r}\"")).unwrap();
            assert_eq!(back, r);
        }
        let mut sorted = RuleId::ALL.to_vec();
        sorted.sort();
        let mut texts: Vec<&str> = RuleId::ALL.iter().map(|r| r.as_str()).collect();
        texts.sort();
        assert_eq!(sorted.iter().map(|r| r.as_str()).collect::<Vec<_>>(), texts);
        assert_eq!(format!("[{:<12}]", RuleId::FsSetuid), "[fs.setuid   ]");
    }

    #[test]
    fn unknown_ids_are_refused_with_the_close_ones() {
        let e = "fs.setuidd".parse::<RuleId>().unwrap_err();
        assert_eq!(e.to_string(), "unknown rule \"fs.setuidd\"");
        assert_eq!(e.hint(), "close rule ids: fs.setuid (docs/findings.md)");
        assert_eq!(
            RuleId::close_to("proc.exe-delted"),
            [RuleId::ProcExeDeleted]
        );
        // Nothing within a few edits: the family.
        assert_eq!(
            RuleId::close_to("net.something-else"),
            [
                RuleId::NetUnexpectedListener,
                RuleId::NetUnexpectedConnection,
                RuleId::NetRawSocket
            ]
        );
        // No family either: every id.
        let e = "bogus".parse::<RuleId>().unwrap_err();
        assert!(
            e.hint().starts_with("rule ids are fs.added-executable, "),
            "{}",
            e.hint()
        );
        let e = serde_json::from_str::<RuleId>("\"yara.mach\"").unwrap_err();
        assert!(e.to_string().contains("close rule ids: yara.match"), "{e}");
    }
}
