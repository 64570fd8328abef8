//! `exhibit-collect capture`: checks the options, picks the targets, runs
//! [`crate::capture::capture`] for each and prints one line per bundle.

use crate::args::{CaptureArgs, FsMethod, MemoryMode};
use crate::capture::{self, CaptureOptions, Captured, Destination};
use crate::connect::connect;
use crate::error::report;
use crate::targets::select_targets;
use anyhow::{Context, Result};
use exhibit_common::cli::{ExitStatus, Failure, Printer};
use exhibit_common::limits::{LEVELS, MAX_ENTRY_SIZE};
use exhibit_common::writer::WriterOptions;
use std::path::PathBuf;

/// Captures every selected container; returns the worst status.
pub async fn run(args: CaptureArgs) -> Result<ExitStatus> {
    if !LEVELS.contains(&args.level) {
        return Err(
            Failure::usage(format!("--level {} is outside 1..=19", args.level))
                .hint("zstd levels 1 to 19; 3 is the default")
                .into(),
        );
    }
    if args.max_file_size > MAX_ENTRY_SIZE {
        return Err(Failure::usage(format!(
            "--max-file-size {} is over the 4 GiB entry limit of a bundle",
            args.max_file_size
        ))
        .hint("use at most 4GiB")
        .into());
    }
    if args.threads == Some(0) {
        return Err(Failure::usage("--threads 0 is not allowed")
            .hint("give at least 1")
            .into());
    }
    let key = match (&args.key, args.unsigned) {
        (Some(k), _) => Some(exhibit_common::keys::load_signing_key(k).map_err(|e| {
            let mut u = Failure::io(e.to_string());
            if matches!(e, exhibit_common::keys::KeyError::Permissions { .. }) {
                u = u.hint(format!("chmod 600 {}", k.display()));
                u = u.hint(
                    "for a Kubernetes Secret volume set defaultMode: 0400 (256) and no fsGroup",
                );
            } else {
                u = u.hint("create one with `exhibit-collect keygen --out PREFIX`");
            }
            u
        })?),
        _ => None,
    };
    if !rustix::process::geteuid().is_root() {
        return Err(Failure::permission(
            "capture needs root: it reads /proc of other users and the runtime's storage",
        )
        .hint("run exhibit-collect as root (sudo)")
        .into());
    }
    let mut rts = connect(&args.conn).await?;
    if args.fs_method == FsMethod::Snapshot {
        if let Some(d) = rts.docker.as_mut() {
            d.force_snapshot = true;
        }
    }
    let (targets, mut unresolved) = select_targets(&args, &rts).await?;
    if targets.is_empty() && unresolved.len() == 1 {
        return Err(unresolved.remove(0));
    }
    // Several requested names go to a directory even when some are unknown.
    let requested = if args.all {
        targets.len()
    } else {
        args.containers.len()
    };
    let dest = match &args.output {
        Some(p) if p.as_os_str() == "-" => Destination::Stdout,
        Some(p) if p.is_dir() => Destination::Dir(p.clone()),
        // Several containers always go to a directory; create it.
        Some(p) if args.all || requested > 1 => {
            std::fs::create_dir_all(p).map_err(|e| {
                Failure::io(format!(
                    "cannot create output directory {}: {e}",
                    p.display()
                ))
                .hint("check the path and permissions")
            })?;
            Destination::Dir(p.clone())
        }
        Some(p) => Destination::File(p.clone()),
        None => Destination::Dir(PathBuf::from(".")),
    };
    if !matches!(dest, Destination::Dir(_)) && requested != 1 {
        return Err(Failure::usage(format!(
            "-o FILE and -o - take exactly one container, {requested} selected"
        ))
        .hint("use -o DIR for several containers")
        .into());
    }
    if let Destination::File(p) = &dest {
        // Checked before the container is touched (or frozen); the capture reserves
        // both names again when it creates them, so a race still cannot overwrite.
        let mut side = p.as_os_str().to_os_string();
        side.push(".sha256");
        for q in [p.clone(), PathBuf::from(side)] {
            if std::fs::symlink_metadata(&q).is_ok() {
                return Err(Failure::usage(format!("{} already exists", q.display()))
                    .hint("bundles and their .sha256 files are never overwritten: choose another -o, or move the old files away")
                    .into());
            }
        }
    }
    // Names that match nothing: said first, captured nothing, exit 2 at the end.
    let mut worst = ExitStatus::Success;
    for e in &unresolved {
        report(e);
        worst = ExitStatus::Error;
    }
    if targets.is_empty() && worst == ExitStatus::Error {
        return Ok(worst);
    }
    if targets.is_empty() {
        return Err(Failure::usage("no running container matches")
            .hint("run `exhibit-collect list`")
            .into());
    }
    let since = args.logs_since.as_deref().map(logs_since).transpose()?;
    let opts = CaptureOptions {
        key,
        case: args.case.clone(),
        examiner: args.examiner.clone(),
        note: args.note.clone(),
        max_file_size: args.max_file_size,
        max_spool: args.max_spool,
        max_total: args.max_total,
        logs_since: since,
        no_logs: args.no_logs,
        volumes: args.volumes,
        freeze: args.freeze,
        writer: WriterOptions {
            level: args.level,
            threads: args.threads.unwrap_or_else(|| {
                // Each zstd worker holds its own buffers: capped so memory stays under
                // 64 MiB on large hosts (measured: 8 threads 57 MiB, 16 threads 74 MiB).
                std::thread::available_parallelism()
                    .map(|n| n.get() as u32)
                    .unwrap_or(1)
                    .min(8)
            }),
        },
        command_line: std::env::args().collect(),
        progress: !args.quiet,
        force_api: args.fs_method == FsMethod::Api,
        memory: match args.memory {
            MemoryMode::None => crate::host::procs::MemoryScope::None,
            MemoryMode::Exec => crate::host::procs::MemoryScope::Exec,
            MemoryMode::Anon => crate::host::procs::MemoryScope::Anon,
        },
    };
    crate::interrupt::install().context("installing the SIGINT and SIGTERM handlers")?;
    let printer = Printer::new();
    tracing::info!(containers = targets.len(), "capturing");
    for t in &targets {
        tracing::info!(container = ?t.shown, runtime = t.runtime, id = %t.id, "capture starts");
        let r: Result<Captured> = match t.runtime {
            "docker" => match &rts.docker {
                Some(d) => capture::capture(d, &t.id, &dest, &opts).await,
                None => Err(anyhow::anyhow!("docker not connected")),
            },
            _ => match &rts.containerd {
                Some(c) => capture::capture(c, &t.id, &dest, &opts).await,
                None => Err(anyhow::anyhow!("containerd not connected")),
            },
        };
        match r {
            Ok(c) => {
                let place = match &c.path {
                    Some(p) => {
                        printer.data_line(&format!("{}  {}", c.sha256, p.display()))?;
                        p.display().to_string()
                    }
                    None => format!("sha256 {}", c.sha256),
                };
                tracing::info!(
                    container = ?t.shown,
                    sha256 = %c.sha256,
                    complete = c.complete,
                    "capture sealed"
                );
                printer.status(&outcome_line(&t.shown, &place, c.complete, &c.reasons));
                if !c.complete {
                    worst = worst.worst(ExitStatus::Incomplete);
                }
            }
            Err(e) => {
                let e = e.context(format!("capture of {} failed; no bundle written", t.shown));
                report(&e);
                worst = worst.worst(ExitStatus::Error);
            }
        }
    }
    Ok(worst)
}

/// The stderr line for one sealed bundle: the container as the user named it, where the
/// bundle is, complete or INCOMPLETE with the reasons. Names and reasons come from the
/// container: the caller prints this through the sanitizing printer.
fn outcome_line(shown: &str, place: &str, complete: bool, reasons: &[String]) -> String {
    if complete {
        format!("{shown}: {place} (complete)")
    } else {
        format!("{shown}: {place} (INCOMPLETE: {})", reasons.join("; "))
    }
}

fn logs_since(s: &str) -> Result<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    exhibit_common::text::parse_rfc3339(s)
        .map(|ns| (ns / 1_000_000_000) as i64)
        .ok_or_else(|| {
            Failure::usage(format!("--logs-since {s:?} is not a time"))
                .hint("use RFC 3339 (2026-11-23T08:00:00Z) or Unix seconds")
                .into()
        })
}

#[cfg(test)]
mod tests {
    use super::outcome_line;
    use exhibit_common::cli::Printer;

    #[test]
    fn an_incomplete_line_with_container_controlled_text_stays_one_inert_line() {
        let reasons = vec![
            "/tmp/a\nweb-2: /evidence/x.exhibit.tar.zst (complete)".to_string(),
            "pid 7: \u{1b}]0;owned\u{7}\u{202e}txt.sh changed during read".to_string(),
        ];
        let line = outcome_line("web\r1", "/evidence/web.exhibit.tar.zst", false, &reasons);
        let mut out = Vec::new();
        Printer::plain().write_status(&mut out, &line).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        assert!(!text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\u{202e}'));
        assert_eq!(
            text,
            "web\\u{d}1: /evidence/web.exhibit.tar.zst (INCOMPLETE: /tmp/a\\u{a}web-2: \
             /evidence/x.exhibit.tar.zst (complete); pid 7: \\u{1b}]0;owned\\u{7}\\u{202e}txt.sh \
             changed during read)\n"
        );
        assert_eq!(
            outcome_line("web", "sha256 ab", true, &[]),
            "web: sha256 ab (complete)"
        );
    }
}
