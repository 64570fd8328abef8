//! Progress on stderr (indicatif): shown only on a terminal and without --quiet.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// A spinner with files and bytes, or nothing.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A progress display for the capture of `name`, when wanted and stderr is a terminal.
    pub fn new(wanted: bool, name: &str) -> Self {
        if !wanted || !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = ProgressBar::new_spinner();
        let style = ProgressStyle::with_template("{spinner} {prefix} files: {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_prefix(format!("capturing {name}"));
        Progress { bar: Some(bar) }
    }

    /// Entries and bytes so far.
    pub fn files(&self, entries: u64, bytes: u64) {
        if let Some(b) = &self.bar {
            if entries.is_multiple_of(64) {
                b.set_message(format!(
                    "{entries} entries, {}",
                    indicatif::HumanBytes(bytes)
                ));
                b.tick();
            }
        }
    }

    /// Removes the display.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
