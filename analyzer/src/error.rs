//! The analyzer's error type: what failed on what, its kind (and so its exit code) and
//! `hint:` lines, shown through the shared printer as an [`exhibit_common::cli::Failure`].

use exhibit_common::cli::{ExitStatus, Failure, FailureKind};
use exhibit_common::keys::KeyError;
use exhibit_common::VerifyError;
use std::path::PathBuf;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// The bundle could not be read or failed verification.
    #[error("{}", verify_message(.path, .source))]
    Verify { path: PathBuf, source: VerifyError },
    /// A verified member could not be used (unparsable, over a limit): exit 3.
    #[error("bundle {}: member {member}: {reason}", .path.display())]
    Member {
        path: PathBuf,
        member: String,
        reason: String,
    },
    /// A verified bundle whose content cannot be extracted safely: exit 3.
    #[error("refusing to extract {}: member {member}: {reason}", .path.display())]
    Unsafe {
        path: PathBuf,
        member: String,
        reason: String,
    },
    /// A public key could not be loaded.
    #[error("cannot load public key {0}")]
    Key(#[source] KeyError),
    /// Any other input problem (image, profile, output path, arguments): exit 2.
    #[error("{what}")]
    Input { what: String, hints: Vec<String> },
    /// `--yara` rules that do not compile: exit 2.
    #[error("{what}")]
    RuleCompile { what: String, hints: Vec<String> },
}

fn verify_message(path: &std::path::Path, e: &VerifyError) -> String {
    match e {
        VerifyError::Io { source, .. } => {
            format!("cannot read bundle {}: {source}", path.display())
        }
        VerifyError::Invalid(i) => format!("bundle {} failed verification: {i}", path.display()),
    }
}

impl AnalyzeError {
    /// What sort of failure: decides the exit status.
    pub fn kind(&self) -> FailureKind {
        match self {
            AnalyzeError::Verify {
                source: VerifyError::Io { .. },
                ..
            } => FailureKind::Io,
            AnalyzeError::Verify { .. }
            | AnalyzeError::Member { .. }
            | AnalyzeError::Unsafe { .. } => FailureKind::Verification,
            AnalyzeError::Key(_) | AnalyzeError::Input { .. } => FailureKind::Usage,
            AnalyzeError::RuleCompile { .. } => FailureKind::RuleCompile,
        }
    }

    /// Exit status of DESIGN.md section 2.
    pub fn exit_status(&self) -> ExitStatus {
        self.kind().exit_status()
    }

    /// Exit code of DESIGN.md section 2.
    pub fn exit_code(&self) -> u8 {
        self.exit_status().code()
    }

    /// The error as the user sees it: message, kind and hints.
    pub fn failure(&self) -> Failure {
        Failure {
            kind: self.kind(),
            message: self.to_string(),
            hints: self.hints(),
        }
    }

    /// The likely fixes, one per `hint:` line.
    pub fn hints(&self) -> Vec<String> {
        match self {
            AnalyzeError::Verify { source, .. } => match source {
                VerifyError::Io { source, .. } => {
                    let mut h = vec!["BUNDLE is the *.exhibit.tar.zst file written by `exhibit-collect capture`".to_string()];
                    if source.kind() == std::io::ErrorKind::NotFound {
                        h.insert(0, "check the path: no such file".into());
                    } else if source.kind() == std::io::ErrorKind::PermissionDenied {
                        h.insert(0, "permission denied: bundles are mode 0600; run as their owner".into());
                    }
                    h
                }
                VerifyError::Invalid(i) => {
                    let mut h = Vec::new();
                    use exhibit_common::dsse::EnvelopeError;
                    match i.envelope {
                        Some(EnvelopeError::UnsignedWithKey) => h.push("the bundle carries no signature; omit --pubkey to check its hashes only (the signer stays UNSIGNED)".into()),
                        Some(EnvelopeError::BadSignature) => h.push("check that --pubkey is the public key (PREFIX.pub) of the key that signed the capture".into()),
                        _ => {}
                    }
                    h.push("do not trust this bundle's content: it changed after capture or is not an exhibit bundle".into());
                    h
                }
            },
            AnalyzeError::Member { .. } => vec![
                "the member verified but is malformed or over a limit: the collector that wrote it is broken or hostile".into(),
            ],
            AnalyzeError::Unsafe { .. } => vec![
                "nothing was written outside the target; the partial directory was removed".into(),
                "list the bundle without extracting: tar --zstd -tvf BUNDLE".into(),
            ],
            AnalyzeError::Key(_) => vec![
                "--pubkey takes the SPKI PEM public key written by `exhibit-collect keygen` (PREFIX.pub)".into(),
            ],
            AnalyzeError::Input { hints, .. } | AnalyzeError::RuleCompile { hints, .. } => {
                hints.clone()
            }
        }
    }

    /// An input error with hints.
    pub fn input(what: impl Into<String>, hints: &[&str]) -> Self {
        AnalyzeError::Input {
            what: what.into(),
            hints: hints.iter().map(|h| h.to_string()).collect(),
        }
    }
}
