//! The container's logs: the lines the runtime's log API returns, spooled as
//! exhibit/logs/container.jsonl, and the runtime's own log file kept verbatim.

use super::Run;
use crate::host::open;
use crate::runtime::Runtime;
use anyhow::{Context, Result};
use exhibit_common::custody::Outcome;
use exhibit_common::manifest::ReasonCode;
use exhibit_common::members;
use exhibit_common::records::LogLine;
use exhibit_common::writer::BundleWriter;
use std::io::{BufWriter, Read, Seek, Write};
use std::path::Path;

/// What the logs phase wrote.
#[derive(Debug, Default)]
pub(super) struct LogsWritten {
    pub lines: u64,
    /// Lines cut at the log line limit.
    pub cut_lines: u64,
    /// The time of the first line left out at the entry limit.
    pub cut_at: Option<String>,
}

impl Run<'_> {
    /// Writes exhibit/logs/container.jsonl and, when the runtime has one on this host,
    /// exhibit/logs/runtime.log.
    pub(super) async fn write_logs<R: Runtime, W: Write>(
        &mut self,
        rt: &R,
        writer: &mut BundleWriter<W>,
    ) -> Result<LogsWritten> {
        let mut log_spool = tempfile::tempfile()?;
        let mut out = LogsWritten::default();
        if self.opts.no_logs {
            self.log
                .record("logs", Outcome::Skipped, Some("--no-logs".into()), None);
        } else {
            let mut spool = BufWriter::new(&mut log_spool);
            let mut bytes = 0u64;
            let mut io_err = None;
            let mut sink = |l: LogLine| {
                if out.cut_at.is_some() || io_err.is_some() {
                    return;
                }
                let Ok(line) = serde_json::to_vec(&l) else {
                    return;
                };
                if bytes + line.len() as u64 + 1 > exhibit_common::limits::MAX_ENTRY_SIZE {
                    out.cut_at = Some(l.t.clone().unwrap_or_default());
                    return;
                }
                bytes += line.len() as u64 + 1;
                out.lines += 1;
                out.cut_lines += u64::from(l.truncated);
                if let Err(e) = spool.write_all(&line).and_then(|_| spool.write_all(b"\n")) {
                    io_err = Some(e);
                }
            };
            match rt.logs(self.facts, self.opts.logs_since, &mut sink).await {
                Ok(()) => self.log.record(
                    "logs",
                    Outcome::Ok,
                    Some(format!("{} lines", out.lines)),
                    None,
                ),
                Err(e) => {
                    self.log
                        .record("logs", Outcome::Error, None, Some(format!("{e:#}")));
                    self.lost(ReasonCode::LogsUnreadable, format!("logs: {e:#}"));
                }
            }
            if let Some(e) = io_err {
                return Err(e).context("spooling logs");
            }
            if out.cut_lines > 0 {
                self.lost(
                    ReasonCode::LogLineCut,
                    format!(
                        "{} log lines longer than {} bytes cut there (their records are marked truncated)",
                        out.cut_lines,
                        exhibit_common::limits::MAX_LOG_LINE
                    ),
                );
            }
            if let Some(t) = &out.cut_at {
                self.lost(
                    ReasonCode::LogsOverLimit,
                    format!("logs cut at the bundle's entry limit from {t} on"),
                );
            }
            spool.flush()?;
        }
        let log_size = log_spool.stream_position()?;
        log_spool.rewind()?;
        writer.add_member_from(members::LOGS, &mut log_spool, log_size)?;
        if !self.opts.no_logs {
            if let Some(path) = &self.facts.log_file {
                self.write_runtime_log(writer, path)?;
            }
        }
        Ok(out)
    }

    fn write_runtime_log<W: Write>(
        &mut self,
        writer: &mut BundleWriter<W>,
        path: &Path,
    ) -> Result<()> {
        match open::open_log_file(path) {
            Ok((f, size)) => {
                // Spooled first: the runtime may rotate or truncate it meanwhile.
                let mut spool = tempfile::tempfile()?;
                let copied = std::io::copy(&mut f.take(size), &mut spool)?;
                spool.rewind()?;
                writer.add_member_from(members::RUNTIME_LOG, &mut spool, copied)?;
                self.log.record(
                    "logs.runtime-file",
                    Outcome::Ok,
                    Some(format!("{} ({copied} bytes)", path.display())),
                    None,
                );
            }
            Err(e) => {
                self.log.record(
                    "logs.runtime-file",
                    Outcome::Error,
                    Some(path.display().to_string()),
                    Some(e.to_string()),
                );
                self.lost(
                    ReasonCode::RuntimeLogUnreadable,
                    format!("the runtime's log file {}: {e}", path.display()),
                );
            }
        }
        Ok(())
    }
}
