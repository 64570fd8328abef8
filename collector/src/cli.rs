//! Command line of exhibit-collect: `main` parses, `run` does, errors become exit codes.
//!
//! The clap definitions are in [`crate::args`], the commands in [`crate::commands`].

use crate::args::{Cli, Command};
use crate::commands;
use crate::error::{guess_hints, UserError};
use anyhow::Result;
use clap::Parser;
use std::io::Write;
use std::process::ExitCode;

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
        Command::Keygen { out } => commands::keygen::run(&out),
        Command::List { conn, format } => commands::list::run(&conn, format).await,
        Command::Capture(args) => commands::capture::run(*args).await,
    }
}
