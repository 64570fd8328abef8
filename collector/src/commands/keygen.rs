//! `exhibit-collect keygen`: a new signing key pair, never over existing files.

use anyhow::Result;
use exhibit_common::cli::{ExitStatus, Failure, Printer};

/// Writes PREFIX.key and PREFIX.pub and prints their paths and the keyid.
pub fn run(out: &std::path::Path) -> Result<ExitStatus> {
    let key = exhibit_common::keys::generate()?;
    match exhibit_common::keys::write_keypair(out, &key) {
        Ok((k, p)) => {
            let printer = Printer::new();
            printer.data_line(&k.display().to_string())?;
            printer.data_line(&p.display().to_string())?;
            printer.data_line(&format!(
                "keyid {}",
                exhibit_common::keys::keyid(&key.verifying_key())
            ))?;
            Ok(ExitStatus::Success)
        }
        Err(e @ exhibit_common::keys::KeyError::Exists { .. }) => {
            Err(Failure::usage(e.to_string())
                .hint("choose another --out prefix; existing keys are never overwritten")
                .into())
        }
        Err(e) => Err(Failure::io(e.to_string())
            .hint("check that the directory exists and is writable")
            .into()),
    }
}
