//! exhibit-analyze: parse the command line, run, map the outcome to an exit code.

use clap::Parser;
use exhibit_analyzer::cli::Cli;
use exhibit_common::cli::{init_tracing, Printer};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match exhibit_analyzer::run(&cli) {
        Ok(status) => status.into(),
        Err(e) => {
            let failure = e.failure();
            Printer::new().error(&failure);
            failure.exit_status().into()
        }
    }
}
