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
pub mod netaddr;
pub mod profile;
pub mod render;
pub mod rules;
pub mod yara_rules;

pub use error::AnalyzeError;

use cli::{Cli, Command};
use exhibit_common::cli::ExitStatus;

/// Runs one command; the result is the exit status on success.
pub fn run(cli: &Cli) -> Result<ExitStatus, AnalyzeError> {
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
