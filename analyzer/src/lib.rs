//! exhibit-analyzer: offline analysis of verified evidence bundles.
//!
//! Every command starts at [`evidence::Evidence::open`], which verifies the bundle with
//! `exhibit_common::verify` and only then parses its members. Findings are produced by
//! the [`rules`] over a [`rules::RuleInput`] (evidence, optional saved image, optional
//! profile) and rendered by [`render`]. This crate opens no network connection and links
//! no daemon client (DESIGN.md invariant 3).

pub mod cli;
pub mod commands;
pub mod container;
pub mod error;
pub mod evidence;
pub mod finding;
pub mod html;
pub mod image;
pub mod layer;
pub mod logging;
pub mod netaddr;
pub mod profile;
pub mod render;
pub mod rules;
pub mod yara_rules;

pub use error::AnalyzeError;

use cli::{Cli, Command};

/// Runs one command; the result is the exit code on success.
pub fn run(cli: &Cli) -> Result<u8, AnalyzeError> {
    match &cli.command {
        Command::Verify(a) => commands::verify::verify_command(a),
        Command::Show(a) => commands::show::show_command(a),
        Command::Report(a) => commands::report::report_command(a),
        Command::Diff(a) => commands::diff::diff_command(a),
        Command::Timeline(a) => commands::timeline::timeline_command(a),
        Command::Profile(a) => commands::profile::profile_command(a),
        Command::Extract(a) => commands::extract::extract_command(a),
    }
}

/// Prints an error as one `error:` line and its `hint:` lines to stderr.
pub fn report_error(e: &anyhow::Error) {
    use std::io::Write;
    let mut err = anstream::stderr();
    let red = anstyle::Style::new()
        .bold()
        .fg_color(Some(anstyle::AnsiColor::Red.into()));
    let (msg, hints) = match e.downcast_ref::<AnalyzeError>() {
        Some(a) => (render::sanitize_line(&a.to_string()), a.hints()),
        None => (render::sanitize_line(&format!("{e:#}")), Vec::new()),
    };
    let _ = writeln!(err, "{red}error:{red:#} {msg}");
    for h in hints {
        let _ = writeln!(err, "hint: {}", render::sanitize_line(&h));
    }
}

/// The exit code of an error (2 unless it says otherwise).
pub fn exit_code_of(e: &anyhow::Error) -> u8 {
    e.downcast_ref::<AnalyzeError>()
        .map(AnalyzeError::exit_code)
        .unwrap_or(2)
}
