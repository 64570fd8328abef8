//! The manifest: what a bundle is, whose it is and how complete it is. It is both the
//! exhibit/manifest.json member and the predicate of the signed statement.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Current manifest schema version.
pub const SCHEMA_VERSION: u32 = 1;

/// The manifest of one bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub tool: Tool,
    pub case: Option<String>,
    pub examiner: Option<String>,
    pub note: Option<String>,
    pub container: ContainerIdentity,
    pub started_at: String,
    pub ended_at: String,
    pub freeze: Option<FreezeWindow>,
    pub completeness: Completeness,
    /// How the filesystem diff was read: `overlay-upperdir` (Docker's GraphDriver),
    /// `containerd-snapshot` (the upper dir of the container's containerd snapshot),
    /// `engine-api` or `none`.
    pub fs_method: String,
    pub counts: Counts,
    /// The command line of the capture.
    pub command_line: Vec<String>,
    /// uid of the operator who ran the capture.
    pub operator_uid: u32,
    /// Present when logs were cut at the entry limit.
    pub logs_cut_at: Option<String>,
}

/// Name and version of the tool that wrote the bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

/// Which container the bundle is of.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ContainerIdentity {
    /// `docker` or `containerd`.
    pub runtime: String,
    pub id: String,
    pub name: String,
    pub namespace: Option<String>,
    pub image: String,
    pub image_id: String,
    pub pod: Option<String>,
    pub pod_namespace: Option<String>,
}

/// When the container was paused (`--freeze`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FreezeWindow {
    pub paused_at: String,
    pub resumed_at: Option<String>,
}

/// `complete`, or `incomplete` with the reasons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completeness {
    pub status: CompletenessStatus,
    pub reasons: Vec<String>,
    /// The same reasons with their stable codes, in the same order (absent in bundles
    /// of earlier versions and when complete).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<Reason>,
}

/// Whether every source was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompletenessStatus {
    Complete,
    Incomplete,
}

impl Completeness {
    /// Complete when there are no reasons.
    pub fn from_reasons(reasons: Vec<String>) -> Self {
        Completeness {
            status: if reasons.is_empty() {
                CompletenessStatus::Complete
            } else {
                CompletenessStatus::Incomplete
            },
            reasons,
            lost: Vec::new(),
        }
    }

    /// Complete when nothing was lost; `reasons` holds the details of `lost`.
    pub fn from_losses(lost: Vec<Reason>) -> Self {
        let mut c = Completeness::from_reasons(lost.iter().map(|r| r.detail.clone()).collect());
        c.lost = lost;
        c
    }
}

/// Why a bundle is incomplete: a stable code for machines and the detail for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: ReasonCode,
    pub detail: String,
}

impl Reason {
    /// A reason with this code and detail.
    pub fn new(code: ReasonCode, detail: impl Into<String>) -> Self {
        Reason {
            code,
            detail: detail.into(),
        }
    }
}

/// The stable codes of [`Reason`] (docs/bundle-format.md, section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReasonCode {
    /// Every process of the container exited before it was read.
    ProcessesExited,
    /// The socket tables could not be read.
    SocketsUnreadable,
    /// A remote daemon: processes only as its `ps` listing, no sockets, memory or tmpfs.
    RemoteDaemon,
    /// Neither an upper dir nor a runtime API diff: no filesystem at all.
    FsNotCaptured,
    /// Filesystem entries (or whole mounts) lost to errors during the walk.
    FilesLost,
    /// Files that changed (or grew) while they were read: recorded, content not taken
    /// or not as it was when the capture began (flag `changed-during-read`).
    FilesChanged,
    /// The runtime's log API failed.
    LogsUnreadable,
    /// Memory regions `--memory` wanted were not taken (unreadable, gone, over a cap).
    MemoryNotTaken,
    /// Executables that should have been kept were not.
    ExecutablesNotKept,
    /// A process record was cut to the reader's line limit.
    RecordTruncated,
    /// Log lines longer than the log line limit were cut there.
    LogLineCut,
    /// The logs were cut at the bundle's entry limit (`logs_cut_at`).
    LogsOverLimit,
    /// The runtime's own log file on the host could not be read.
    RuntimeLogUnreadable,
    /// A code written by a later version of exhibit.
    #[serde(other)]
    Other,
}

/// Counts of what the bundle holds.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Counts {
    /// Entries and stored bytes per content tree (rootfs, literal, mounts, volumes).
    pub trees: BTreeMap<String, TreeCount>,
    pub processes: u64,
    pub sockets: u64,
    pub log_lines: u64,
    pub executables: u64,
    pub memory_regions: u64,
}

/// Entries and stored bytes of one content tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TreeCount {
    pub entries: u64,
    pub bytes: u64,
}
