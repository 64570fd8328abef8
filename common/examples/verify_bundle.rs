//! Verifies a bundle with the library's streaming verifier and prints its entry count;
//! a stand-in for `exhibit-analyze verify` used by scripts/bench until that exists.
//!
//! ```text
//! cargo run --release -p exhibit-common --example verify_bundle -- BUNDLE
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: verify_bundle BUNDLE");
        return ExitCode::from(2);
    };
    match exhibit_common::verify(&path, &Default::default()) {
        Ok(b) => {
            println!(
                "{}: ok, {} content entries",
                path.display(),
                b.content_entries()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            ExitCode::from(e.exit_code())
        }
    }
}
