//! exhibit-analyze: parse the command line, run, map the outcome to an exit code.

use clap::Parser;
use exhibit_analyzer::cli::Cli;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    exhibit_analyzer::logging::init(cli.verbose);
    match exhibit_analyzer::run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let e = anyhow::Error::new(e);
            exhibit_analyzer::report_error(&e);
            ExitCode::from(exhibit_analyzer::exit_code_of(&e))
        }
    }
}
