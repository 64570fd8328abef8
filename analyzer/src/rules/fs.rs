//! fs.* rules: what the container's writable layer, tmpfs mounts and volumes hold
//! compared with its image and its profile.

use super::RuleInput;
use crate::finding::{Finding, RuleId, Severity};
use exhibit_common::records::{ChangeKind, ChangeRecord, FileType, Source};
use globset::GlobSet;
use std::io::{self, Read};

/// Paths where a write makes something run again later (or grants access).
pub const PERSISTENCE: &[&str] = &[
    "/etc/crontab",
    "/etc/anacrontab",
    "/etc/cron*/**",
    "/var/spool/cron/**",
    "/etc/init.d/**",
    "/etc/rc*.d/**",
    "/etc/rc.local",
    "/etc/inittab",
    "/etc/init/**",
    "/etc/systemd/**",
    "/lib/systemd/**",
    "/usr/lib/systemd/**",
    "/etc/xdg/autostart/**",
    "/etc/profile",
    "/etc/profile.d/**",
    "/etc/bash.bashrc",
    "/etc/bashrc",
    "/etc/zsh/**",
    "/etc/environment",
    "**/.bashrc",
    "**/.bash_profile",
    "**/.bash_login",
    "**/.bash_logout",
    "**/.profile",
    "**/.zshrc",
    "**/.zprofile",
    "**/.ssh/authorized_keys",
    "**/.ssh/authorized_keys2",
    "**/.config/autostart/**",
    "/etc/ssh/sshd_config",
    "/etc/ssh/sshd_config.d/**",
    "/etc/ld.so.preload",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d/**",
    "/etc/sudoers",
    "/etc/sudoers.d/**",
    "/etc/passwd",
    "/etc/shadow",
    "/etc/group",
    "/etc/pam.d/**",
    "/lib/security/**",
    "/etc/security/**",
    "/etc/update-motd.d/**",
    "/etc/apt/apt.conf.d/**",
    "/etc/modules",
    "/etc/modules-load.d/**",
];

/// World-writable scratch locations where dropped tools hide.
pub const SCRATCH: &[&str] = &["/tmp", "/dev/shm", "/var/tmp"];

/// The fs rules with their compiled globs.
pub struct FsRules {
    persistence: GlobSet,
}

impl Default for FsRules {
    fn default() -> Self {
        Self::new()
    }
}

/// ELF or script magic at the start of a file.
pub fn magic(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"\x7fELF") {
        Some("elf")
    } else if head.starts_with(b"#!") {
        Some("script")
    } else {
        None
    }
}

fn base(rec: &ChangeRecord) -> Vec<(&'static str, serde_json::Value)> {
    vec![
        ("path", serde_json::to_value(&rec.path).unwrap_or_default()),
        (
            "member",
            serde_json::to_value(&rec.member).unwrap_or_default(),
        ),
        ("kind", serde_json::to_value(rec.kind).unwrap_or_default()),
        (
            "type",
            serde_json::to_value(rec.file_type).unwrap_or_default(),
        ),
        ("mode", format!("{:04o}", rec.mode & 0o7777).into()),
        ("uid", rec.uid.into()),
        ("gid", rec.gid.into()),
        ("size", rec.size.into()),
        (
            "sha256",
            serde_json::to_value(&rec.sha256).unwrap_or_default(),
        ),
        (
            "source",
            serde_json::to_value(rec.source).unwrap_or_default(),
        ),
    ]
}

fn finding(rule: RuleId, sev: Severity, rec: &ChangeRecord, summary: String) -> Finding {
    let mut f = Finding::new(rule, sev, rec.path.lossy(), summary);
    for (k, v) in base(rec) {
        f.evidence.insert(k.to_string(), v);
    }
    f
}

/// Whether `path` lies strictly inside one of the scratch locations.
pub fn in_scratch(path: &str) -> Option<&'static str> {
    SCRATCH.iter().copied().find(|d| {
        path.strip_prefix(d)
            .is_some_and(|r| r.starts_with('/') && r.len() > 1)
    })
}

impl FsRules {
    /// Compiles the globs.
    pub fn new() -> Self {
        let mut b = globset::GlobSetBuilder::new();
        for p in PERSISTENCE {
            if let Ok(g) = crate::profile::glob(p) {
                b.add(g);
            }
        }
        FsRules {
            persistence: b.build().unwrap_or_else(|_| GlobSet::empty()),
        }
    }

    /// The persistence pattern a path matches.
    pub fn persistence_pattern(&self, path: &str) -> Option<&'static str> {
        self.persistence
            .matches(path)
            .first()
            .map(|&i| PERSISTENCE[i])
    }

    /// Checks one record (its content readable from `body`).
    pub fn check(
        &self,
        rec: &ChangeRecord,
        body: &mut dyn Read,
        input: &RuleInput<'_>,
        out: &mut Vec<Finding>,
    ) -> io::Result<()> {
        if rec.source == Source::RuntimeFile {
            return Ok(());
        }
        let path = rec.path.lossy();
        let is_file = rec.file_type == FileType::File && rec.hardlink_to.is_none();
        let mut head = [0u8; 4];
        let mut got = 0;
        if is_file && rec.stored_size > 0 {
            while got < head.len() {
                let n = body.read(&mut head[got..])?;
                if n == 0 {
                    break;
                }
                got += n;
            }
        }
        let magic = magic(&head[..got]);
        let exec = rec.file_type == FileType::File && (rec.mode & 0o111 != 0 || magic.is_some());
        let written = matches!(rec.kind, ChangeKind::Added | ChangeKind::Modified);
        let image = input.image.map(|i| &i.files);
        let in_image = image.and_then(|i| i.get(rec.path.as_bytes()));

        if rec.kind == ChangeKind::Added && exec {
            out.push(
                finding(
                    RuleId::FsAddedExecutable,
                    Severity::Medium,
                    rec,
                    format!("new executable file {path}"),
                )
                .with("magic", magic),
            );
        }
        if rec.kind == ChangeKind::Modified && rec.file_type != FileType::Dir {
            match in_image {
                Some(img) => {
                    let differs = match rec.file_type {
                        FileType::File => img.sha256.is_none() || img.sha256 != rec.sha256,
                        FileType::Symlink => {
                            img.link_target.as_deref().map(str::as_bytes)
                                != rec.link_target.as_ref().map(|t| t.as_bytes())
                        }
                        _ => false,
                    };
                    if differs {
                        out.push(
                            finding(
                                RuleId::FsModifiedImageFile,
                                Severity::Medium,
                                rec,
                                format!("{path} differs from the image's file"),
                            )
                            .with("compared", true)
                            .with("image_sha256", &img.sha256)
                            .with("image_link_target", &img.link_target),
                        );
                    }
                    let perm = (img.mode & 0o7777) != (rec.mode & 0o7777)
                        || img.uid != rec.uid
                        || img.gid != rec.gid;
                    if perm {
                        out.push(
                            finding(
                                RuleId::FsPermissionChange,
                                Severity::Medium,
                                rec,
                                format!("mode or owner of {path} changed from the image's"),
                            )
                            .with("image_mode", format!("{:04o}", img.mode & 0o7777))
                            .with("image_uid", img.uid)
                            .with("image_gid", img.gid),
                        );
                    }
                }
                None if rec.file_type == FileType::File || rec.file_type == FileType::Symlink => {
                    let summary = if image.is_some() {
                        format!("{path} is marked modified but is absent from the given image")
                    } else {
                        format!("{path} was modified (no --image: content not compared)")
                    };
                    out.push(
                        finding(RuleId::FsModifiedImageFile, Severity::Medium, rec, summary)
                            .with("compared", false),
                    );
                }
                None => {}
            }
        }
        match rec.kind {
            ChangeKind::Deleted if image.is_none() || in_image.is_some() => {
                out.push(
                    finding(
                        RuleId::FsDeletedImageFile,
                        Severity::Low,
                        rec,
                        format!("image file {path} was deleted"),
                    )
                    .with("image_entry", in_image),
                );
            }
            ChangeKind::OpaqueDir => {
                let hidden = image.map(|i| i.count_under(rec.path.as_bytes()));
                if hidden.is_none_or(|n| n > 0) {
                    out.push(
                        finding(RuleId::FsDeletedImageFile, Severity::Low, rec, format!("directory {path} was replaced: the image's entries under it are hidden"))
                            .with("opaque", true)
                            .with("hidden_image_entries", hidden),
                    );
                }
            }
            _ => {}
        }
        let special = rec.mode & 0o6000;
        if rec.file_type == FileType::File && written && special != 0 {
            let before = in_image.map(|i| i.mode & 0o6000).unwrap_or(0);
            if rec.kind == ChangeKind::Added || special & !before != 0 || image.is_none() {
                out.push(
                    finding(
                        RuleId::FsSetuid,
                        Severity::High,
                        rec,
                        format!("{path} is setuid/setgid ({:04o})", rec.mode & 0o7777),
                    )
                    .with(
                        "image_mode",
                        in_image.map(|i| format!("{:04o}", i.mode & 0o7777)),
                    ),
                );
            }
        }
        if written && rec.file_type != FileType::Dir {
            if let Some(p) = self.persistence_pattern(&path) {
                out.push(
                    finding(
                        RuleId::FsPersistence,
                        Severity::High,
                        rec,
                        format!("{path} is a persistence location ({p})"),
                    )
                    .with("pattern", p),
                );
            }
        }
        if written {
            if let Some(loc) = in_scratch(&path) {
                let name_hidden = path.rsplit('/').next().is_some_and(|n| n.starts_with('.'));
                if exec {
                    out.push(
                        finding(
                            RuleId::FsSuspiciousLocation,
                            Severity::High,
                            rec,
                            format!("executable {path} in {loc}"),
                        )
                        .with("location", loc)
                        .with("magic", magic),
                    );
                } else if rec.file_type == FileType::Dir && name_hidden {
                    out.push(
                        finding(
                            RuleId::FsSuspiciousLocation,
                            Severity::High,
                            rec,
                            format!("hidden directory {path} in {loc}"),
                        )
                        .with("location", loc),
                    );
                }
            }
        }
        if let Some(profile) = input.profile {
            let is_dir = rec.file_type == FileType::Dir || rec.kind == ChangeKind::OpaqueDir;
            let copy_up_dir = rec.file_type == FileType::Dir && rec.kind == ChangeKind::Modified;
            // The root of a mount (mounts/N, volumes/N) is where the runtime mounted it,
            // not something the container wrote.
            let mount_root = rec.member.as_bytes().iter().filter(|&&b| b == b'/').count() == 1
                && (rec.member.as_bytes().starts_with(b"mounts/")
                    || rec.member.as_bytes().starts_with(b"volumes/"));
            if !copy_up_dir && !mount_root && !profile.allows_write(&path, is_dir) {
                out.push(finding(
                    RuleId::FsUnexpectedWrite,
                    Severity::Medium,
                    rec,
                    format!("{path} was written outside the profile's writable paths"),
                ));
            }
        }
        Ok(())
    }
}
