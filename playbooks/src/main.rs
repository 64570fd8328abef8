//! exhibit-drill: `main` parses, `run` does, the result becomes the exit code.

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use exhibit_common::cli::{init_tracing, ExitStatus, Failure, FailureKind, Printer};
use exhibit_playbooks::{data_dir, drill, interrupt, runner, scorecard};
use std::path::PathBuf;
use std::process::ExitCode;

const EXAMPLES: &str = "Examples:
  exhibit-drill list
  exhibit-drill run webshell
  exhibit-drill run --all --runtime containerd --format markdown";

/// Fire drills: stage an attack in a disposable container, capture, analyse, score.
#[derive(Parser)]
#[command(name = "exhibit-drill", version, after_help = EXAMPLES)]
struct Cli {
    /// More diagnostics on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Data directory: drills, profiles, YARA rules (default: EXHIBIT_DATA_DIR, else
    /// share/exhibit beside the binary, the checkout holding it, /usr/local/share/exhibit,
    /// /usr/share/exhibit).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Directory of drill playbooks (default: EXHIBIT_DRILLS or the data directory's).
    #[arg(long, global = true)]
    drills: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the drills.
    List,
    /// Run drills and print their scorecards.
    Run {
        /// Drill names.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        names: Vec<String>,
        /// Every drill.
        #[arg(long)]
        all: bool,
        #[arg(long, value_enum, default_value = "docker")]
        runtime: runner::DrillRuntime,
        /// Sign with this key (PREFIX.key beside PREFIX.pub) instead of an ephemeral one.
        #[arg(long)]
        key: Option<PathBuf>,
        #[arg(
            long,
            env = "CONTAINERD_ADDRESS",
            default_value = "/run/containerd/containerd.sock"
        )]
        containerd_address: String,
        #[arg(long, env = "CONTAINERD_NAMESPACE", default_value = "k8s.io")]
        namespace: String,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Keep containers and bundles (their paths are printed).
        #[arg(long)]
        keep: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
    Markdown,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match run(cli) {
        Ok(status) => status.into(),
        Err(e) => {
            let failure = match e.downcast_ref::<Failure>() {
                Some(f) => f.clone(),
                None => failure_of(&format!("{e:#}")),
            };
            Printer::new().error(&failure);
            failure.exit_status().into()
        }
    }
}

// An error whose text carries its own `hint:` lines (the drill loader's and the data
// directory's): the first line is the error, each `hint:` line a hint, so the printer
// shows them as lines of their own instead of escaping the newlines.
fn failure_of(text: &str) -> Failure {
    let mut lines = text.split('\n');
    let mut f = Failure::new(FailureKind::Internal, lines.next().unwrap_or_default());
    for l in lines {
        match l.trim_start().strip_prefix("hint: ") {
            Some(h) => f = f.hint(h),
            None => f = f.hint(l),
        }
    }
    f
}

fn run(cli: Cli) -> Result<ExitStatus> {
    let paths = data_dir::Lookup::from_env(cli.data_dir, cli.drills)
        .resolve(matches!(cli.command, Cmd::Run { .. }))?;
    let all = drill::load_all(&paths.drills)?;
    match cli.command {
        Cmd::List => {
            for d in &all {
                println!(
                    "{:<24} {:<28} {}",
                    d.name,
                    d.attack.join(","),
                    d.description
                );
            }
            Ok(ExitStatus::Success)
        }
        Cmd::Run {
            names,
            all: every,
            runtime,
            key,
            containerd_address,
            namespace,
            format,
            keep,
        } => {
            let chosen: Vec<&drill::Drill> = if every {
                all.iter().collect()
            } else {
                let mut v = Vec::new();
                for n in &names {
                    match all.iter().find(|d| d.name == *n) {
                        Some(d) => v.push(d),
                        None => {
                            let known: Vec<&str> = all.iter().map(|d| d.name.as_str()).collect();
                            return Err(Failure::usage(format!("no drill named {n:?}"))
                                .hint(format!("drills: {}", known.join(", ")))
                                .into());
                        }
                    }
                }
                v
            };
            let settings = runner::RunSettings {
                runtime,
                key,
                containerd_address,
                namespace,
                keep,
                fixtures: std::env::var_os("EXHIBIT_FIXTURES")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("/var/lib/exhibit/fixtures")),
                profiles: paths.profiles,
                yara_rules: paths.yara,
            };
            // Before any container exists: a signal then stops the running drill,
            // whose container guard removes the container, and starts no other.
            interrupt::install()?;
            let work = tempfile::Builder::new()
                .prefix("exhibit-drill-")
                .tempdir()?;
            let work_path = work.path().to_path_buf();
            let printer = Printer::new();
            let mut cards = Vec::new();
            for d in chosen {
                if interrupt::signal().is_some() {
                    break;
                }
                printer.status(&format!("drill {} on {:?}...", d.name, runtime));
                cards.push(runner::run(d, &settings, &work_path));
            }
            // Bundles of failed or errored drills are kept (their scorecards print
            // where), as is everything with --keep; else the work directory goes.
            if keep || cards.iter().any(|c| c.bundle.is_some()) {
                let kept = work.keep();
                if !keep {
                    printer.status(&format!(
                        "kept the bundles of failed or errored drills in {}",
                        kept.display()
                    ));
                }
            }
            if let Some(sig) = interrupt::signal() {
                printer.status(&format!(
                    "exhibit-drill: interrupted by {sig}; the drill's container was {} and no further drill ran",
                    if keep { "kept (--keep)" } else { "removed" }
                ));
            }
            match format {
                Format::Text => printer.data(scorecard::text(&cards).as_bytes())?,
                Format::Markdown => printer.data(scorecard::markdown(&cards).as_bytes())?,
                Format::Json => printer
                    .data(format!("{}\n", serde_json::to_string_pretty(&cards)?).as_bytes())?,
            }
            Ok(
                if interrupt::signal().is_some() || cards.iter().any(|c| c.result == "errored") {
                    ExitStatus::Error
                } else if cards.iter().any(|c| c.result == "failed") {
                    ExitStatus::DrillFailed
                } else {
                    ExitStatus::Success
                },
            )
        }
    }
}
