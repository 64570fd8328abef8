//! The output files and the end of a capture: the bundle and its `.sha256` reserved
//! before anything is written, the acquisition log and the manifest (with its
//! completeness) written last, both names committed together.

use super::logs::LogsWritten;
use super::volatile::Volatile;
use super::{default_name, Captured, Destination, Run};
use crate::interrupt;
use crate::runtime::ContainerFacts;
use anyhow::{Context, Result};
use exhibit_common::custody::Outcome;
use exhibit_common::hashing::HashingWriter;
use exhibit_common::manifest::{
    Completeness, ContainerIdentity, Counts, Manifest, Tool, SCHEMA_VERSION,
};
use exhibit_common::members;
use exhibit_common::output::AtomicFile;
use exhibit_common::text::now_rfc3339;
use exhibit_common::writer::{BundleWriter, WriterOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Where the bundle is being written: the reserved output files (none for stdout) and
/// the writer.
pub(super) struct Output {
    atomic: Option<AtomicFile>,
    path: Option<PathBuf>,
    sidecar: Option<AtomicFile>,
    pub writer: BundleWriter<HashingWriter<Box<dyn Write>>>,
}

impl Output {
    /// Creates both names (registered for removal on interrupt) and starts the bundle.
    pub fn create(facts: &ContainerFacts, dest: &Destination, opts: WriterOptions) -> Result<Self> {
        let (mut atomic, path): (Option<AtomicFile>, Option<PathBuf>) = match dest {
            Destination::Stdout => (None, None),
            Destination::File(p) => (
                Some(
                    interrupt::create_output(p)
                        .with_context(|| format!("creating {}", p.display()))?,
                ),
                Some(p.clone()),
            ),
            Destination::Dir(d) => {
                let p = d.join(default_name(facts));
                (
                    Some(
                        interrupt::create_output(&p)
                            .with_context(|| format!("creating {}", p.display()))?,
                    ),
                    Some(p),
                )
            }
        };
        // The `.sha256` sidecar is reserved now too: a stale one must stop the capture
        // before anything is written, never end up beside a bundle it does not describe.
        let sidecar_path = path.as_deref().map(sidecar_of);
        let sidecar = match &sidecar_path {
            Some(s) => Some(
                interrupt::create_output(s).with_context(|| format!("creating {}", s.display()))?,
            ),
            None => None,
        };
        let sink: Box<dyn Write> = match &mut atomic {
            Some(a) => Box::new(BufWriter::with_capacity(1 << 20, a.file().try_clone()?)),
            None => Box::new(BufWriter::with_capacity(1 << 20, std::io::stdout().lock())),
        };
        let writer = BundleWriter::new(HashingWriter::new(sink), opts)?;
        Ok(Output {
            atomic,
            path,
            sidecar,
            writer,
        })
    }
}

impl Run<'_> {
    /// Writes the acquisition log, the manifest and the envelope, then commits both
    /// output names.
    pub(super) fn seal(
        &mut self,
        out: Output,
        fs_method: &str,
        state: &Volatile,
        logs: LogsWritten,
    ) -> Result<Captured> {
        let Output {
            atomic,
            path,
            mut sidecar,
            mut writer,
        } = out;
        let facts = self.facts;
        let opts = self.opts;
        self.log.record(
            "capture.end",
            Outcome::ok_unless(!self.reasons.is_empty()),
            Some(format!("{} reasons for incompleteness", self.reasons.len())),
            None,
        );
        // After the last event, so that every event lies within started_at..ended_at.
        let ended_at = now_rfc3339();
        writer.add_member(members::ACQUISITION, self.log.bytes())?;
        let reasons: Vec<String> = self.reasons.iter().map(|r| r.detail.clone()).collect();
        let manifest = Manifest {
            schema_version: SCHEMA_VERSION,
            tool: Tool {
                name: "exhibit-collect".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            case: opts.case.clone(),
            examiner: opts.examiner.clone(),
            note: opts.note.clone(),
            container: ContainerIdentity {
                runtime: facts.runtime.into(),
                id: facts.id.clone(),
                name: facts.name.clone(),
                namespace: facts.namespace.clone(),
                image: facts.image_ref.clone(),
                image_id: facts.image_id.clone(),
                pod: facts.pod.clone(),
                pod_namespace: facts.pod_namespace.clone(),
            },
            started_at: self.started_at.clone(),
            ended_at,
            freeze: self.freeze.clone(),
            completeness: Completeness::from_losses(self.reasons.clone()),
            fs_method: fs_method.into(),
            counts: Counts {
                trees: Default::default(),
                processes: state.processes.len() as u64,
                sockets: state.sockets.len() as u64,
                log_lines: logs.lines,
                executables: state.kept.len() as u64,
                memory_regions: state.regions.len() as u64,
            },
            command_line: opts.command_line.clone(),
            operator_uid: rustix::process::getuid().as_raw(),
            logs_cut_at: logs.cut_at,
        };
        let (hashing, manifest) = writer.finish(manifest, opts.key.as_ref())?;
        let (mut sink, sha256) = hashing.finish();
        sink.flush()?;
        drop(sink);
        if let (Some(a), Some(p), Some(mut side)) = (atomic, &path, sidecar.take()) {
            // Both are synced, then renamed back to back, the bundle first; if the sidecar
            // then cannot take its name, the bundle is removed again, so an error always
            // means nothing at the final names (output::commit_pair).
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            writeln!(side.file(), "{sha256}  {name}")?;
            let side_path = sidecar_of(p);
            interrupt::seal(&[p, &side_path], || {
                exhibit_common::output::commit_pair(a, side)
                    .context("sealing the bundle and its .sha256 file")
            })?;
        }
        Ok(Captured {
            path,
            sha256,
            complete: reasons.is_empty(),
            reasons,
            manifest,
        })
    }
}

fn sidecar_of(bundle: &Path) -> PathBuf {
    let mut s = bundle.as_os_str().to_os_string();
    s.push(".sha256");
    PathBuf::from(s)
}
