//! Command line of exhibit-collect: `main` parses, `run` does, errors become exit codes.

use crate::capture::{self, CaptureOptions, Captured, Destination, VolumesMode};
use crate::error::{guess_hints, UserError};
use crate::runtime::containerd::ContainerdRuntime;
use crate::runtime::docker::DockerRuntime;
use crate::runtime::{resolve, ListedContainer, Runtime};
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use exhibit_common::limits::{LEVELS, MAX_ENTRY_SIZE};
use exhibit_common::writer::WriterOptions;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

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

/// Parses sizes such as `512MiB`, `64GiB`, `10M`, `4096`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("not a size: {s:?} (try 512MiB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "unknown size unit in {s:?} (use KiB, MiB, GiB, TiB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// Entry point: parse, run, map to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .try_init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            report(&e);
            ExitCode::from(e.downcast_ref::<UserError>().map(|u| u.code).unwrap_or(2))
        }
    }
}

/// Prints an error as one line plus hints.
pub fn report(e: &anyhow::Error) {
    let mut err = std::io::stderr().lock();
    if let Some(u) = e.downcast_ref::<UserError>() {
        let _ = writeln!(err, "error: {}", u.message);
        for h in &u.hints {
            let _ = writeln!(err, "hint: {h}");
        }
        return;
    }
    let _ = writeln!(err, "error: {}", format!("{e:#}").replace('\n', " "));
    for h in guess_hints(e) {
        let _ = writeln!(err, "hint: {h}");
    }
}

/// Runs a parsed command; returns the exit code.
pub async fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Keygen { out } => keygen(&out),
        Command::List { conn, format } => list(&conn, format).await,
        Command::Capture(args) => capture_cmd(*args).await,
    }
}

fn keygen(out: &std::path::Path) -> Result<u8> {
    let key = exhibit_common::keys::generate()?;
    match exhibit_common::keys::write_keypair(out, &key) {
        Ok((k, p)) => {
            println!(
                "{}\n{}\nkeyid {}",
                k.display(),
                p.display(),
                exhibit_common::keys::keyid(&key.verifying_key())
            );
            Ok(0)
        }
        Err(e @ exhibit_common::keys::KeyError::Exists { .. }) => {
            Err(UserError::new(e.to_string())
                .hint("choose another --out prefix; existing keys are never overwritten")
                .into())
        }
        Err(e) => Err(UserError::new(e.to_string())
            .hint("check that the directory exists and is writable")
            .into()),
    }
}

/// The runtimes that answered.
pub struct Runtimes {
    pub docker: Option<DockerRuntime>,
    pub containerd: Option<ContainerdRuntime>,
    /// With --runtime auto: the runtimes that were tried and did not answer, and why.
    pub errors: Vec<String>,
}

/// Connects to the runtimes `conn` asks for. With auto, a runtime whose socket is absent
/// is left out; an explicitly requested one that fails is an error.
pub async fn connect(conn: &Connection) -> Result<Runtimes> {
    let mut rts = Runtimes {
        docker: None,
        containerd: None,
        errors: Vec::new(),
    };
    let mut errors = Vec::new();
    if conn.runtime != RuntimeChoice::Containerd {
        let local_socket = std::path::Path::new("/var/run/docker.sock").exists();
        if conn.runtime == RuntimeChoice::Docker || conn.docker_host.is_some() || local_socket {
            match DockerRuntime::connect(conn.docker_host.as_deref(), &conn.containerd_address)
                .await
            {
                Ok(d) => rts.docker = Some(d),
                Err(e) => errors.push(format!("docker: {e:#}")),
            }
        }
    }
    if conn.runtime != RuntimeChoice::Docker
        && (conn.runtime == RuntimeChoice::Containerd || conn.containerd_address.exists())
    {
        match ContainerdRuntime::connect(&conn.containerd_address, &conn.namespace).await {
            Ok(c) => rts.containerd = Some(c),
            Err(e) => errors.push(format!(
                "containerd at {}: {e:#}",
                conn.containerd_address.display()
            )),
        }
    }
    let explicit_failed = match conn.runtime {
        RuntimeChoice::Docker => rts.docker.is_none(),
        RuntimeChoice::Containerd => rts.containerd.is_none(),
        RuntimeChoice::Auto => rts.docker.is_none() && rts.containerd.is_none(),
    };
    if explicit_failed {
        let what = if errors.is_empty() {
            "no container runtime found".to_string()
        } else {
            errors.join("; ")
        };
        let mut e = UserError::new(format!("cannot reach a container runtime: {what}"));
        if conn.runtime != RuntimeChoice::Containerd {
            e = e.hint("is dockerd running? check `docker info`, or point --docker-host / DOCKER_HOST at it");
        }
        if conn.runtime != RuntimeChoice::Docker {
            e = e.hint("is containerd running? point --containerd-address / CONTAINERD_ADDRESS at its socket");
        }
        if !rustix::process::geteuid().is_root() {
            e = e.hint("the runtime sockets are root-only: run as root");
        }
        return Err(e.into());
    }
    rts.errors = errors;
    Ok(rts)
}

async fn list_all(rts: &Runtimes) -> Result<Vec<ListedContainer>> {
    let mut all = Vec::new();
    if let Some(d) = &rts.docker {
        all.extend(d.list().await?);
    }
    if let Some(c) = &rts.containerd {
        all.extend(c.list().await?);
    }
    Ok(all)
}

async fn list(conn: &Connection, format: ListFormat) -> Result<u8> {
    let rts = connect(conn).await?;
    let all = list_all(&rts).await?;
    let mut out = std::io::stdout().lock();
    match format {
        ListFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &all)?;
            writeln!(out)?;
        }
        ListFormat::Text => {
            writeln!(
                out,
                "{:<11} {:<10} {:<12} {:<28} {:<10} {:<8} {:<30} POD",
                "RUNTIME", "NAMESPACE", "ID", "NAME", "STATUS", "PID", "IMAGE"
            )?;
            for c in &all {
                let pod = match (&c.pod_namespace, &c.pod) {
                    (Some(ns), Some(p)) => {
                        format!("{ns}/{p}/{}", c.container_name.clone().unwrap_or_default())
                    }
                    _ => String::new(),
                };
                writeln!(
                    out,
                    "{:<11} {:<10} {:<12} {:<28} {:<10} {:<8} {:<30} {}",
                    c.runtime,
                    c.namespace.as_deref().unwrap_or("-"),
                    c.id.chars().take(12).collect::<String>(),
                    c.name,
                    c.status,
                    c.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                    c.image,
                    pod
                )?;
            }
        }
    }
    Ok(0)
}

fn logs_since(s: &str) -> Result<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    exhibit_common::text::parse_rfc3339(s)
        .map(|ns| (ns / 1_000_000_000) as i64)
        .ok_or_else(|| {
            UserError::new(format!("--logs-since {s:?} is not a time"))
                .hint("use RFC 3339 (2026-11-23T08:00:00Z) or Unix seconds")
                .into()
        })
}

fn matches_filters(c: &ListedContainer, filters: &[(String, String)]) -> bool {
    filters.iter().all(|(k, v)| match k.as_str() {
        "label" => match v.split_once('=') {
            Some((lk, lv)) => c.labels.get(lk).map(String::as_str) == Some(lv),
            None => c.labels.contains_key(v),
        },
        "name" => c.name == *v,
        "namespace" => c.namespace.as_deref() == Some(v) || c.pod_namespace.as_deref() == Some(v),
        "runtime" => c.runtime == v,
        _ => false,
    })
}

/// A container chosen for capture.
struct Target {
    runtime: &'static str,
    id: String,
    shown: String,
}

/// The containers chosen, and one error per requested name that names no single
/// container (DESIGN.md: the others are still captured, exit 2).
async fn select_targets(
    args: &CaptureArgs,
    rts: &Runtimes,
) -> Result<(Vec<Target>, Vec<anyhow::Error>)> {
    let all = list_all(rts).await?;
    if args.all {
        let mut filters = Vec::new();
        for f in &args.filter {
            let (k, v) = f.split_once('=').ok_or_else(|| {
                UserError::new(format!("--filter {f:?} is not KEY=VALUE"))
                    .hint("e.g. --filter label=app=web or --filter name=web-1")
            })?;
            if !["label", "name", "namespace", "runtime"].contains(&k) {
                return Err(UserError::new(format!("unknown --filter key {k:?}"))
                    .hint("keys: label, name, namespace, runtime")
                    .into());
            }
            filters.push((k.to_string(), v.to_string()));
        }
        let mut seen = std::collections::BTreeSet::new();
        let chosen = all
            .iter()
            .filter(|c| {
                c.status == "running"
                    && !crate::runtime::is_sandbox(c)
                    && matches_filters(c, &filters)
            })
            .filter(|c| seen.insert(c.id.clone()))
            .map(|c| Target {
                runtime: c.runtime,
                id: c.id.clone(),
                shown: c.name.clone(),
            })
            .collect();
        return Ok((chosen, Vec::new()));
    }
    let mut out = Vec::new();
    let mut failed = Vec::new();
    for q in &args.containers {
        let found = resolve(&all, q);
        // Docker's containers also live in containerd's `moby` namespace: one container.
        let mut distinct: Vec<&ListedContainer> = Vec::new();
        for c in found {
            if !distinct.iter().any(|d| d.id == c.id) {
                distinct.push(c);
            }
        }
        match distinct.len() {
            1 => out.push(Target {
                runtime: distinct[0].runtime,
                id: distinct[0].id.clone(),
                shown: q.clone(),
            }),
            0 => {
                let mut e = UserError::new(format!(
                    "no container {q:?} in {}",
                    searched(rts, &args.conn)
                ));
                if let Some(c) = &rts.containerd {
                    if let Ok(elsewhere) = c.find_in_other_namespaces(q).await {
                        if !elsewhere.is_empty() {
                            e = e.hint(format!(
                                "{q:?} exists in containerd namespace(s) {}: pass --namespace",
                                elsewhere.join(", ")
                            ));
                        }
                    }
                }
                // A runtime that did not answer may hold it (--runtime auto).
                for err in &rts.errors {
                    e = e.hint(format!(
                        "not searched: {err}; fix that, or choose the runtime with --runtime"
                    ));
                }
                failed.push(
                    e.hint("run `exhibit-collect list` to see the containers")
                        .into(),
                );
            }
            _ => {
                let names: Vec<String> = distinct
                    .iter()
                    .map(|c| {
                        format!(
                            "{}:{}{} ({})",
                            c.runtime,
                            c.namespace
                                .as_deref()
                                .map(|n| format!("{n}/"))
                                .unwrap_or_default(),
                            &c.id[..c.id.len().min(12)],
                            c.name
                        )
                    })
                    .collect();
                failed.push(
                    UserError::new(format!(
                        "{q:?} matches several containers: {}",
                        names.join(", ")
                    ))
                    .hint("give a longer id prefix or --runtime")
                    .into(),
                );
            }
        }
    }
    Ok((out, failed))
}

fn searched(rts: &Runtimes, conn: &Connection) -> String {
    let mut v = Vec::new();
    if rts.docker.is_some() {
        v.push("docker".to_string());
    }
    if rts.containerd.is_some() {
        v.push(format!("containerd namespace {}", conn.namespace));
    }
    v.join(" or ")
}

async fn capture_cmd(args: CaptureArgs) -> Result<u8> {
    if !LEVELS.contains(&args.level) {
        return Err(
            UserError::new(format!("--level {} is outside 1..=19", args.level))
                .hint("zstd levels 1 to 19; 3 is the default")
                .into(),
        );
    }
    if args.max_file_size > MAX_ENTRY_SIZE {
        return Err(UserError::new(format!(
            "--max-file-size {} is over the 4 GiB entry limit of a bundle",
            args.max_file_size
        ))
        .hint("use at most 4GiB")
        .into());
    }
    if args.threads == Some(0) {
        return Err(UserError::new("--threads 0 is not allowed")
            .hint("give at least 1")
            .into());
    }
    let key = match (&args.key, args.unsigned) {
        (Some(k), _) => Some(exhibit_common::keys::load_signing_key(k).map_err(|e| {
            let mut u = UserError::new(e.to_string());
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
        return Err(UserError::new(
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
                UserError::new(format!(
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
        return Err(UserError::new(format!(
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
                return Err(UserError::new(format!("{} already exists", q.display()))
                    .hint("bundles and their .sha256 files are never overwritten: choose another -o, or move the old files away")
                    .into());
            }
        }
    }
    // Names that match nothing: said first, captured nothing, exit 2 at the end.
    let mut worst = 0u8;
    for e in &unresolved {
        report(e);
        worst = 2;
    }
    if targets.is_empty() && worst == 2 {
        return Ok(worst);
    }
    if targets.is_empty() {
        return Err(UserError::new("no running container matches")
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
    for t in &targets {
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
                let status = if c.complete {
                    "complete".to_string()
                } else {
                    format!("INCOMPLETE: {}", c.reasons.join("; "))
                };
                match &c.path {
                    Some(p) => {
                        println!("{}  {}", c.sha256, p.display());
                        eprintln!("{}: {} ({status})", t.shown, p.display());
                    }
                    None => eprintln!("{}: sha256 {} ({status})", t.shown, c.sha256),
                }
                if !c.complete {
                    worst = worst.max(1);
                }
            }
            Err(e) => {
                let e = e.context(format!("capture of {} failed; no bundle written", t.shown));
                report(&e);
                worst = 2;
            }
        }
    }
    Ok(worst)
}
