//! Command line of exhibit-collect: `main` parses, `run` does, errors become exit codes.
//!
//! The clap definitions are in [`crate::args`], the commands in [`crate::commands`].

use crate::args::{Cli, Command};
use crate::commands;
use crate::error::report;
use anyhow::Result;
use clap::Parser;
use exhibit_common::cli::ExitStatus;
use std::process::ExitCode;

/// Entry point: parse, run, map to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    exhibit_common::cli::init_tracing(cli.verbose);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let e = anyhow::Error::new(e).context("cannot start the async runtime");
            return report(&e).into();
        }
    };
    match rt.block_on(run(cli)) {
        Ok(status) => status.into(),
        Err(e) => report(&e).into(),
    }
}

/// Runs a parsed command; returns the exit status.
pub async fn run(cli: Cli) -> Result<ExitStatus> {
    match cli.command {
        Command::Keygen { out } => commands::keygen::run(&out),
        Command::List { conn, format } => commands::list::run(&conn, format).await,
        Command::Capture(args) => commands::capture::run(*args).await,
    }
}
