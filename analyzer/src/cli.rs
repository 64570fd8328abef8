//! The command line of DESIGN.md section 2 (clap derive). Usage errors exit 2.

use crate::finding::Severity;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  exhibit-analyze verify web-3f2a9c1b04de-20261123T083102Z.exhibit.tar.zst --pubkey ir.pub
  exhibit-analyze show BUNDLE --pubkey ir.pub --format json
  exhibit-analyze report BUNDLE --pubkey ir.pub --image web.tar --fail-on high
  exhibit-analyze report BUNDLE --pubkey ir.pub --profile expected.yaml
  exhibit-analyze report BUNDLE --pubkey ir.pub --format html > report.html
  exhibit-analyze report BUNDLE --pubkey ir.pub --yara rules/ --fail-on high
  exhibit-analyze diff baseline.exhibit.tar.zst suspect.exhibit.tar.zst
  exhibit-analyze timeline BUNDLE --format bodyfile > body && mactime -b body -d
  exhibit-analyze profile good1.exhibit.tar.zst good2.exhibit.tar.zst -o expected.yaml
  exhibit-analyze extract BUNDLE --pubkey ir.pub -o evidence-dir

Exit codes: 0 success; 1 a finding at or above --fail-on; 2 usage, I/O or rule error;
3 a bundle failed verification.";

/// Offline analysis of exhibit evidence bundles.
#[derive(Debug, Parser)]
#[command(name = "exhibit-analyze", version, about, after_help = EXAMPLES)]
pub struct Cli {
    /// More diagnostics on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Verify a bundle's signature, member digests and records.
    Verify(VerifyArgs),
    /// Show what a bundle holds: manifest, container, custody, counts.
    Show(ShowArgs),
    /// Report findings: what differs from the image and the expected profile.
    Report(ReportArgs),
    /// Compare a baseline bundle with a suspect one.
    Diff(DiffArgs),
    /// Emit a timeline of file times, process starts, log lines and custody events.
    Timeline(TimelineArgs),
    /// Learn an expected-behaviour profile from known-good bundles.
    Profile(ProfileArgs),
    /// Extract a verified bundle into a new directory.
    Extract(ExtractArgs),
}

/// Options every command that reads a bundle takes.
#[derive(Debug, Args, Clone)]
pub struct KeyArgs {
    /// Public key (SPKI PEM) of which one must have signed; repeatable.
    #[arg(long = "pubkey", value_name = "FILE")]
    pub pubkeys: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The bundle (*.exhibit.tar.zst).
    pub bundle: PathBuf,
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// text or json.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DataFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The bundle (*.exhibit.tar.zst).
    pub bundle: PathBuf,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[arg(long, value_enum, default_value_t = DataFormat::Text)]
    pub format: DataFormat,
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Markdown,
    Html,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The bundle (*.exhibit.tar.zst).
    pub bundle: PathBuf,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// The image the container should run: a `docker save` tar or an OCI layout dir.
    #[arg(long, value_name = "SAVED_IMAGE")]
    pub image: Option<PathBuf>,
    /// Expected behaviour (YAML; see `exhibit-analyze profile`).
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// YARA rules: a .yar file or a directory of .yar/.yara files (each file its own
    /// namespace); scans captured files, kept executables and memory regions.
    #[arg(long, value_name = "PATH")]
    pub yara: Option<PathBuf>,
    /// Bytes of one object held and scanned by --yara (1 to 1GiB); larger objects are
    /// scanned up to this size and listed as truncated.
    #[arg(long, value_name = "BYTES", default_value = "64MiB", value_parser = parse_scan_size)]
    pub yara_max_size: u64,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Exit 1 when a finding is at or above this severity.
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<Severity>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The known-good (or earlier) bundle.
    pub baseline: PathBuf,
    /// The bundle to compare with it.
    pub suspect: PathBuf,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[arg(long, value_enum, default_value_t = DataFormat::Text)]
    pub format: DataFormat,
}

/// Timeline formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TimelineFormat {
    /// Sleuth Kit 3.x body file (for mactime).
    Bodyfile,
    Jsonl,
    Csv,
}

#[derive(Debug, Args)]
pub struct TimelineArgs {
    /// The bundle (*.exhibit.tar.zst).
    pub bundle: PathBuf,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[arg(long, value_enum, default_value_t = TimelineFormat::Jsonl)]
    pub format: TimelineFormat,
}

#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Known-good bundles.
    #[arg(required = true)]
    pub bundles: Vec<PathBuf>,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Where to write the profile (never replaced).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// The bundle (*.exhibit.tar.zst).
    pub bundle: PathBuf,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// New directory to create (filled as DIR.partial, renamed at the end).
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: PathBuf,
}

/// Parses `--yara-max-size`: a size (exhibit_common::cli::parse_size), 1 byte to 1 GiB.
pub fn parse_scan_size(s: &str) -> Result<u64, String> {
    match exhibit_common::cli::parse_size(s)? {
        v if (1..=1 << 30).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is outside 1 byte to 1GiB")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_sizes_parse_with_units_and_limits() {
        assert_eq!(parse_scan_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_scan_size("4096"), Ok(4096));
        assert_eq!(parse_scan_size("1g"), Ok(1 << 30));
        assert!(parse_scan_size("0").is_err());
        assert!(parse_scan_size("2GiB").is_err());
        assert!(parse_scan_size("1T").is_err());
        assert_eq!(parse_scan_size("1GB"), Ok(1 << 30));
        assert!(parse_scan_size("99999999999999999999").is_err());
        assert!(parse_scan_size("5 parsecs").is_err());
    }
}
