//! Expected behaviour (YAML, DESIGN.md section 4) and how observations match it.
//!
//! `exe` is an exact path; `args` a regex searched in argv[1..] joined by single spaces
//! (anchor it with `^...$`); `user` a name or uid; listeners `tcp/PORT`, `udp/PORT`
//! (both families) or `unix:PATH`; egress `CIDR:PORT` or `[CIDR]:PORT` (PORT may be `*`);
//! writable_paths globs where `*` never crosses `/` and `**` does.

use crate::error::AnalyzeError;
use crate::netaddr::{self, base_proto, Cidr};
use exhibit_common::records::{ProcessRecord, SocketRecord};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Largest profile file read.
pub const MAX_PROFILE_BYTES: u64 = 4 << 20;

/// The profile as written in YAML.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileDoc {
    #[serde(default)]
    pub processes: Vec<ProcessRule>,
    #[serde(default)]
    pub listeners: Vec<String>,
    #[serde(default)]
    pub egress: Vec<String>,
    #[serde(default)]
    pub writable_paths: Vec<String>,
    #[serde(default, skip_serializing_if = "LogPatterns::is_empty")]
    pub log_patterns: LogPatterns,
}

/// One allowed process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessRule {
    pub exe: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserSpec>,
}

/// A user name or uid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UserSpec {
    Uid(u32),
    Name(String),
}

/// Log patterns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogPatterns {
    #[serde(default)]
    pub deny: Vec<String>,
}

impl LogPatterns {
    fn is_empty(&self) -> bool {
        self.deny.is_empty()
    }
}

/// An allowed listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listener {
    Tcp(u16),
    Udp(u16),
    Unix(String),
}

/// A compiled profile.
#[derive(Debug)]
pub struct Profile {
    pub doc: ProfileDoc,
    processes: Vec<(String, Option<Regex>, Option<UserSpec>)>,
    listeners: Vec<Listener>,
    egress: Vec<(Cidr, Option<u16>)>,
    writable: GlobSet,
    /// The deny patterns, compiled, with their source text.
    pub deny: Vec<(String, Regex)>,
}

fn bad(path: &Path, what: String) -> AnalyzeError {
    AnalyzeError::input(
        format!("profile {}: {what}", path.display()),
        &["see docs/findings.md for the profile schema; `exhibit-analyze profile` writes one from known-good bundles"],
    )
}

/// Parses `tcp/8080`, `udp/53` or `unix:/path`.
pub fn parse_listener(s: &str) -> Option<Listener> {
    if let Some(p) = s.strip_prefix("unix:") {
        return (!p.is_empty()).then(|| Listener::Unix(p.to_string()));
    }
    let (proto, port) = s.split_once('/')?;
    let port: u16 = port.parse().ok()?;
    match proto {
        "tcp" => Some(Listener::Tcp(port)),
        "udp" => Some(Listener::Udp(port)),
        _ => None,
    }
}

/// Parses `CIDR:PORT` or `[CIDR]:PORT`; `*` is any port.
pub fn parse_egress(s: &str) -> Option<(Cidr, Option<u16>)> {
    let (net, port) = if let Some(rest) = s.strip_prefix('[') {
        rest.split_once("]:")?
    } else {
        s.rsplit_once(':')?
    };
    if !s.starts_with('[') && net.contains(':') {
        return None;
    }
    let port = if port == "*" {
        None
    } else {
        Some(port.parse().ok()?)
    };
    Some((Cidr::parse(net)?, port))
}

/// Builds a glob with `*` not crossing `/`.
pub fn glob(p: &str) -> Result<globset::Glob, globset::Error> {
    GlobBuilder::new(p).literal_separator(true).build()
}

impl Profile {
    /// Reads and compiles a profile file; malformed YAML names the line (exit 2).
    pub fn load(path: &Path) -> Result<Profile, AnalyzeError> {
        use std::io::Read;
        let f = std::fs::File::open(path).map_err(|e| {
            AnalyzeError::input(
                format!("cannot read profile {}: {e}", path.display()),
                &["check the --profile path"],
            )
        })?;
        let mut text = String::new();
        f.take(MAX_PROFILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| bad(path, format!("cannot read: {e}")))?;
        if text.len() as u64 > MAX_PROFILE_BYTES {
            return Err(bad(path, format!("larger than {MAX_PROFILE_BYTES} bytes")));
        }
        Self::parse(&text).map_err(|what| bad(path, what))
    }

    /// Parses and compiles profile text.
    pub fn parse(text: &str) -> Result<Profile, String> {
        let doc: ProfileDoc = if text.trim().is_empty() {
            ProfileDoc::default()
        } else {
            serde_norway::from_str(text).map_err(|e| match e.location() {
                Some(l) => format!(
                    "malformed YAML at line {} column {}: {e}",
                    l.line(),
                    l.column()
                ),
                None => format!("malformed YAML: {e}"),
            })?
        };
        Self::compile(doc)
    }

    /// Compiles a parsed profile.
    pub fn compile(doc: ProfileDoc) -> Result<Profile, String> {
        let mut processes = Vec::new();
        for (i, p) in doc.processes.iter().enumerate() {
            let re = match &p.args {
                Some(a) => Some(
                    regex::RegexBuilder::new(a)
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| format!("processes[{i}].args: invalid regex: {e}"))?,
                ),
                None => None,
            };
            processes.push((p.exe.clone(), re, p.user.clone()));
        }
        let listeners = doc
            .listeners
            .iter()
            .map(|l| {
                parse_listener(l)
                    .ok_or_else(|| format!("listener {l:?} is not tcp/PORT, udp/PORT or unix:PATH"))
            })
            .collect::<Result<_, _>>()?;
        let egress = doc
            .egress
            .iter()
            .map(|e| {
                parse_egress(e)
                    .ok_or_else(|| format!("egress {e:?} is not CIDR:PORT or [CIDR]:PORT"))
            })
            .collect::<Result<_, _>>()?;
        let mut gs = GlobSetBuilder::new();
        for w in &doc.writable_paths {
            gs.add(glob(w).map_err(|e| format!("writable_paths {w:?}: {e}"))?);
        }
        let writable = gs.build().map_err(|e| format!("writable_paths: {e}"))?;
        let deny = doc
            .log_patterns
            .deny
            .iter()
            .map(|p| {
                regex::RegexBuilder::new(p)
                    .size_limit(1 << 20)
                    .build()
                    .map(|r| (p.clone(), r))
                    .map_err(|e| format!("log_patterns.deny {p:?}: invalid regex: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Profile {
            doc,
            processes,
            listeners,
            egress,
            writable,
            deny,
        })
    }

    /// Whether a process is allowed.
    pub fn allows_process(&self, p: &ProcessRecord) -> bool {
        let exe = exe_display(p);
        let args = args_text(p);
        self.processes.iter().any(|(e, re, user)| {
            *e == exe
                && re.as_ref().is_none_or(|r| r.is_match(&args))
                && user.as_ref().is_none_or(|u| user_matches(u, p))
        })
    }

    /// Whether a listening socket is allowed.
    pub fn allows_listener(&self, s: &SocketRecord) -> bool {
        let port = netaddr::port_of(&s.local);
        self.listeners
            .iter()
            .any(|l| match (l, base_proto(&s.proto)) {
                (Listener::Tcp(p), "tcp") => Some(*p) == port,
                (Listener::Udp(p), "udp") => Some(*p) == port,
                (Listener::Unix(path), "unix") => *path == netaddr::unix_path(s),
                _ => false,
            })
    }

    /// Whether an outbound connection is allowed by the egress list.
    pub fn allows_egress(&self, s: &SocketRecord) -> bool {
        let Some((ip, port)) = netaddr::parse_endpoint(&s.remote) else {
            return false;
        };
        self.egress
            .iter()
            .any(|(net, p)| net.contains(ip) && p.is_none_or(|p| p == port))
    }

    /// Whether a write at `path` is covered; a directory counts as covered when the
    /// globs match it or entries directly inside it.
    pub fn allows_write(&self, path: &str, is_dir: bool) -> bool {
        self.writable.is_match(path)
            || (is_dir
                && self
                    .writable
                    .is_match(format!("{}/.exhibit-entry", path.trim_end_matches('/'))))
    }
}

fn user_matches(u: &UserSpec, p: &ProcessRecord) -> bool {
    match u {
        UserSpec::Uid(id) => *id == p.uid,
        UserSpec::Name(n) => {
            p.user.as_deref() == Some(n.as_str()) || n.parse::<u32>().is_ok_and(|id| id == p.uid)
        }
    }
}

/// The exe path a finding and a profile use: the link text without the
/// ` (deleted)` suffix when fstat said the file is gone, or `[comm]` without an exe.
pub fn exe_display(p: &ProcessRecord) -> String {
    match &p.exe {
        Some(e) => {
            let t = e.lossy();
            if p.exe_deleted {
                t.strip_suffix(" (deleted)")
                    .map(str::to_string)
                    .unwrap_or(t)
            } else {
                t
            }
        }
        None => format!("[{}]", p.comm.lossy()),
    }
}

/// argv[1..] joined by single spaces.
pub fn args_text(p: &ProcessRecord) -> String {
    p.argv
        .items
        .iter()
        .skip(1)
        .map(|a| a.lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_design_example_and_reports_lines() {
        let p = Profile::parse(
            "processes:\n  - exe: /bin/httpd\n    args: \"^-f -p 8080\"\n    user: root\nlisteners: [\"tcp/8080\"]\negress: [\"127.0.0.1/32:5432\", \"[fd00::/8]:443\"]\nwritable_paths: [\"/tmp/**\", \"/var/cache/*\"]\nlog_patterns:\n  deny: [\"(?i)segfault\"]\n",
        )
        .unwrap();
        assert_eq!(p.listeners, vec![Listener::Tcp(8080)]);
        assert!(p.allows_write("/tmp/a/b", false));
        assert!(p.allows_write("/var/cache/x", false));
        assert!(!p.allows_write("/var/cache/x/y", false));
        assert!(p.allows_write("/var/cache", true));
        let e = Profile::parse("processes:\n  - exe: [\n").unwrap_err();
        assert!(e.contains("line"), "{e}");
        let e = Profile::parse("listeners: [\"sctp/1\"]\n").unwrap_err();
        assert!(e.contains("sctp"), "{e}");
        assert!(Profile::parse("bogus: 1\n").is_err());
        assert!(Profile::parse("log_patterns:\n  deny: [\"(\"]\n").is_err());
    }
}
