//! Progress on stderr (indicatif): shown only on a terminal and without --quiet.
//!
//! One line per capture: the container, the step in progress (processes, sockets,
//! memory, files, logs), and during the files step the entries and bytes stored so far,
//! also inside one large file (the walker reports every few MiB it copies). Every step
//! is also an `info` tracing event, shown with `-v` whether or not the bar is.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// A spinner naming the step, with files and bytes, or nothing.
pub struct Progress {
    bar: Option<ProgressBar>,
    name: String,
}

impl Progress {
    /// A progress display for the capture of `name`, when wanted and stderr is a terminal.
    pub fn new(wanted: bool, name: &str) -> Self {
        if !wanted || !std::io::stderr().is_terminal() {
            return Progress {
                bar: None,
                name: name.to_string(),
            };
        }
        let bar = ProgressBar::new_spinner();
        let style = ProgressStyle::with_template("{spinner} {prefix} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_prefix(format!("capturing {name}"));
        // Redrawn on a timer (indicatif limits the rate), not once per file.
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress {
            bar: Some(bar),
            name: name.to_string(),
        }
    }

    /// The step now in progress.
    pub fn step(&self, step: &str) {
        // Debug formatting: the name comes from the container and may hold controls.
        tracing::info!(container = ?self.name, step, "capture step");
        if let Some(b) = &self.bar {
            b.set_prefix(format!("capturing {}: {step}", self.name));
            b.set_message("");
        }
    }

    /// Entries and bytes stored so far (files step).
    pub fn files(&self, entries: u64, bytes: u64) {
        if let Some(b) = &self.bar {
            b.set_message(format!(
                "{entries} entries, {}",
                indicatif::HumanBytes(bytes)
            ));
        }
    }

    /// Removes the display.
    pub fn finish(&self) {
        tracing::debug!(container = ?self.name, "capture steps done");
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
