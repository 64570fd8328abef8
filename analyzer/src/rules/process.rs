//! proc.* rules: processes against the image, the captured changes and the profile.

use super::RuleInput;
use crate::finding::{Finding, RuleId, Severity};
use crate::layer::ImageFileType;
use crate::netaddr::base_proto;
use crate::profile::exe_display;
use exhibit_common::records::{ChangeKind, ChangeRecord, FileType, ProcessRecord, SocketRecord};
use std::collections::{HashMap, HashSet};

/// Names of shells.
pub const SHELLS: &[&str] = &[
    "sh",
    "bash",
    "dash",
    "ash",
    "zsh",
    "ksh",
    "mksh",
    "csh",
    "tcsh",
    "fish",
    "busybox-sh",
];

fn basename(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

/// Whether a process is a shell: its exe is one, or it is a multi-call binary
/// (busybox, toybox) run under a shell's name.
pub fn is_shell(p: &ProcessRecord) -> bool {
    let exe = exe_display(p);
    let exe_name = basename(&exe);
    let argv0 = p.argv.items.first().map(|a| a.lossy()).unwrap_or_default();
    let argv0 = basename(argv0.trim_start_matches('-')).to_string();
    SHELLS.contains(&exe_name)
        || (matches!(exe_name, "busybox" | "toybox") && SHELLS.contains(&argv0.as_str()))
}

fn socket_inode(target: &[u8]) -> Option<u64> {
    let t = std::str::from_utf8(target).ok()?;
    t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

fn is_terminal(target: &[u8]) -> bool {
    target.starts_with(b"/dev/pts/") || target.starts_with(b"/dev/tty") || target == b"/dev/console"
}

fn evidence(f: Finding, p: &ProcessRecord) -> Finding {
    f.with("pid", p.pid)
        .with("ns_pid", p.ns_pid)
        .with("ppid", p.ppid)
        .with("uid", p.uid)
        .with("user", &p.user)
        .with("argv", &p.argv.items)
        .with("exe", &p.exe)
        .with("exe_sha256", &p.exe_sha256)
        .with("start_time", &p.start_time)
}

/// Checks every process.
pub fn check(
    procs: &[ProcessRecord],
    sockets: &[SocketRecord],
    exe_records: &HashMap<Vec<u8>, ChangeRecord>,
    input: &RuleInput<'_>,
    out: &mut Vec<Finding>,
) {
    let net_inodes: HashMap<u64, &SocketRecord> = sockets
        .iter()
        .filter(|s| base_proto(&s.proto) != "unix")
        .map(|s| (s.inode, s))
        .collect();
    let mut seen: HashSet<(RuleId, String, i32)> = HashSet::new();
    let mut push = |f: Finding, p: &ProcessRecord| {
        if seen.insert((f.rule, f.subject.clone(), p.pid)) {
            out.push(evidence(f, p));
        }
    };
    for p in procs {
        let exe = exe_display(p);
        if p.exe_deleted && !p.memfd {
            push(
                Finding::new(
                    RuleId::ProcExeDeleted,
                    Severity::Critical,
                    &exe,
                    format!("pid {} runs {exe}, which was deleted", p.pid),
                )
                .with("exe_member", &p.exe_member),
                p,
            );
        }
        if p.memfd || p.anon_exec_maps > 0 {
            let what = if p.memfd {
                "runs from a memfd"
            } else {
                "has anonymous executable memory"
            };
            push(
                Finding::new(
                    RuleId::ProcFileless,
                    Severity::Critical,
                    &exe,
                    format!("pid {} {what}", p.pid),
                )
                .with("memfd", p.memfd)
                .with("anon_exec_maps", p.anon_exec_maps)
                .with("exe_member", &p.exe_member),
                p,
            );
        }
        if p.exe.is_some() && !p.memfd {
            let rec = exe_records.get(exe.as_bytes());
            let added = rec.is_some_and(|r| r.kind == ChangeKind::Added);
            let img_file = input.image.map(|i| i.files.resolve(exe.as_bytes()));
            let absent = match img_file {
                Some(ref found) => found
                    .as_ref()
                    .is_none_or(|(_, f)| f.file_type != ImageFileType::File),
                None => added,
            };
            if absent || added {
                push(
                    Finding::new(
                        RuleId::ProcExeNotInImage,
                        Severity::High,
                        &exe,
                        format!("pid {} runs {exe}, which is not in the image", p.pid),
                    )
                    .with("image_given", input.image.is_some())
                    .with("added_in_container", added),
                    p,
                );
            } else {
                let img_sha = img_file.flatten().and_then(|(_, f)| f.sha256.clone());
                let modified_rec =
                    rec.filter(|r| r.kind == ChangeKind::Modified && r.file_type == FileType::File);
                let differs = match (&img_sha, modified_rec) {
                    (Some(i), Some(r)) => r.sha256.as_ref() != Some(i),
                    (None, Some(_)) => true,
                    (Some(i), None) => {
                        !p.exe_deleted && p.exe_sha256.as_ref().is_some_and(|s| s != i)
                    }
                    (None, None) => false,
                };
                if differs {
                    push(
                        Finding::new(
                            RuleId::ProcExeModified,
                            Severity::High,
                            &exe,
                            format!(
                                "pid {} runs {exe}, which differs from the image's file",
                                p.pid
                            ),
                        )
                        .with("image_sha256", img_sha)
                        .with("bundle_sha256", modified_rec.and_then(|r| r.sha256.clone())),
                        p,
                    );
                }
            }
        }
        if is_shell(p) {
            let args: Vec<String> = p.argv.items.iter().skip(1).map(|a| a.lossy()).collect();
            let has_c = args
                .iter()
                .any(|a| a.starts_with('-') && !a.starts_with("--") && a.contains('c'));
            let has_i = args
                .iter()
                .any(|a| a.starts_with('-') && !a.starts_with("--") && a.contains('i'));
            let login = p
                .argv
                .items
                .first()
                .is_some_and(|a| a.as_bytes().starts_with(b"-"));
            let operand = args.iter().any(|a| !a.starts_with('-'));
            let stdin = p
                .fds
                .iter()
                .find(|f| f.fd == 0)
                .map(|f| f.target.as_bytes().to_vec());
            let tty_in = stdin.as_deref().is_some_and(is_terminal);
            let net: Vec<&SocketRecord> = p
                .fds
                .iter()
                .filter_map(|f| socket_inode(f.target.as_bytes()))
                .filter_map(|i| net_inodes.get(&i).copied())
                .collect();
            let interactive = has_i || login || (!has_c && !operand && tty_in);
            if interactive || !net.is_empty() {
                let why = if net.is_empty() {
                    "interactive shell"
                } else {
                    "shell with a network socket"
                };
                push(
                    Finding::new(
                        RuleId::ProcShell,
                        Severity::High,
                        &exe,
                        format!("pid {} is an {why}", p.pid).replace("an shell", "a shell"),
                    )
                    .with("interactive", interactive)
                    .with(
                        "sockets",
                        net.iter()
                            .map(|s| crate::netaddr::subject(s, crate::netaddr::is_connection(s)))
                            .collect::<Vec<_>>(),
                    ),
                    p,
                );
            }
        }
        if let Some(profile) = input.profile {
            if !profile.allows_process(p) {
                push(
                    Finding::new(
                        RuleId::ProcUnexpected,
                        Severity::High,
                        &exe,
                        format!("pid {} ({exe}) is not allowed by the profile", p.pid),
                    ),
                    p,
                );
            }
        }
    }
}
