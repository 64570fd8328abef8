//! The command line of exhibit-collect (clap derive): every subcommand, option and default.
//!
//! Definitions only; the commands are in `commands/`. A new option is one field here and
//! its use in the command.

use crate::capture::VolumesMode;
use clap::{Args, Parser, Subcommand, ValueEnum};
use exhibit_common::cli::parse_size;
use std::path::PathBuf;

const EXAMPLES: &str = "Examples:
  exhibit-collect keygen --out ir
  exhibit-collect list
  exhibit-collect capture web-1 --key ir.key --case INC-42 --examiner alice
  exhibit-collect capture --all --filter label=app=web --key ir.key -o /evidence
  exhibit-collect capture web-1 --unsigned -o - | ssh analyst 'cat > web-1.exhibit.tar.zst'";

/// Capture running containers into signed evidence bundles, from the host.
#[derive(Parser, Debug)]
#[command(name = "exhibit-collect", version, after_help = EXAMPLES)]
pub struct Cli {
    /// More diagnostics on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a new signing key pair: PREFIX.key (PKCS#8 PEM, 0600) and PREFIX.pub (SPKI PEM).
    Keygen {
        /// Path prefix of the key files; existing files are never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
    /// List the containers the runtimes know.
    List {
        #[command(flatten)]
        conn: Connection,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: ListFormat,
    },
    /// Capture containers into evidence bundles.
    Capture(Box<CaptureArgs>),
}

/// Output of `list`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ListFormat {
    Text,
    Json,
}

/// Which runtime to talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeChoice {
    Auto,
    Docker,
    Containerd,
}

/// How to reach the runtimes.
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// Runtime to use; auto asks every runtime that answers.
    #[arg(long, value_enum, default_value = "auto")]
    pub runtime: RuntimeChoice,
    /// Docker daemon (unix://PATH or tcp://HOST:PORT); default DOCKER_HOST, else the local socket.
    #[arg(long, env = "DOCKER_HOST")]
    pub docker_host: Option<String>,
    /// containerd socket.
    #[arg(
        long,
        env = "CONTAINERD_ADDRESS",
        default_value = "/run/containerd/containerd.sock"
    )]
    pub containerd_address: PathBuf,
    /// containerd namespace.
    #[arg(long, env = "CONTAINERD_NAMESPACE", default_value = "k8s.io")]
    pub namespace: String,
}

/// Arguments of `capture`.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("signing").required(true).args(["key", "unsigned"])))]
pub struct CaptureArgs {
    /// Containers by name, id, id prefix, containerd://ID or NAMESPACE/POD/CONTAINER.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub containers: Vec<String>,
    /// Capture every running container (narrow with --filter).
    #[arg(long)]
    pub all: bool,
    /// With --all: label=KEY=VALUE, name=NAME or namespace=NS (repeatable, all must match).
    #[arg(long, requires = "all")]
    pub filter: Vec<String>,
    /// Output: a file (one container), a directory, or - for stdout (one container).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Private key (PKCS#8 PEM) to sign with.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Write an unsigned bundle (hashes only).
    #[arg(long)]
    pub unsigned: bool,
    #[command(flatten)]
    pub conn: Connection,
    /// Pause the container for the whole capture (always resumed, also on error).
    #[arg(long)]
    pub freeze: bool,
    /// Case identifier for the custody record.
    #[arg(long)]
    pub case: Option<String>,
    /// Examiner's name for the custody record.
    #[arg(long)]
    pub examiner: Option<String>,
    /// Free-text note for the custody record.
    #[arg(long)]
    pub note: Option<String>,
    /// Largest file whose content is taken (e.g. 512MiB); larger ones are recorded only.
    #[arg(long, default_value = "512MiB", value_parser = parse_size)]
    pub max_file_size: u64,
    /// Most file content taken in total (e.g. 64GiB).
    #[arg(long, default_value = "64GiB", value_parser = parse_size)]
    pub max_total: u64,
    /// Most bytes of memory regions and kept executables held in TMPDIR at once for one
    /// capture (at most 1,000 executables); beyond it they are not taken and the bundle
    /// is incomplete, never the host's disk full.
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    pub max_spool: u64,
    /// Only log lines since TIME (RFC 3339 or Unix seconds).
    #[arg(long)]
    pub logs_since: Option<String>,
    /// Do not capture logs.
    #[arg(long)]
    pub no_logs: bool,
    /// Volume handling: none, metadata (default) or content.
    #[arg(long, value_enum, default_value = "metadata")]
    pub volumes: VolumesMode,
    /// Memory capture: none, exec (default) or anon.
    #[arg(long, value_enum, default_value = "exec")]
    pub memory: MemoryMode,
    /// zstd level, 1 to 19.
    #[arg(long, default_value_t = 3)]
    pub level: i32,
    /// Compression threads (default: online CPUs, at most 8).
    #[arg(long)]
    pub threads: Option<u32>,
    /// No progress display.
    #[arg(short, long)]
    pub quiet: bool,
    /// How to read the filesystem diff: auto (the overlay upper dir when readable, else
    /// the Engine API), api (force the Engine API, e.g. to cross-check) or snapshot
    /// (Docker: force the containerd snapshot lookup).
    #[arg(long, value_enum, default_value = "auto", hide = true)]
    pub fs_method: FsMethod,
}

/// How the filesystem diff is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FsMethod {
    Auto,
    Api,
    /// Docker: the container's containerd snapshot (containerd image store) even where
    /// the daemon reports an overlay2 upper dir (tests).
    Snapshot,
}

/// What `--memory` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MemoryMode {
    None,
    Exec,
    Anon,
}
