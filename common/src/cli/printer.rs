//! One printer: data on stdout, human text on stderr, every line sanitized.
//!
//! Lines that may quote container-controlled text (names, paths, reasons, error
//! chains) go through [`crate::text::sanitize_line`] as a whole, so a newline or a
//! terminal escape inside such text can neither start a forged line nor drive the
//! responder's terminal. Colour only on a terminal and never with `NO_COLOR` set.

use super::Failure;
use crate::text::sanitize_line;
use std::io::{self, IsTerminal, Write};

/// Whether to colour what goes to `stream`: a terminal, and `NO_COLOR` unset or empty
/// (<https://no-color.org>).
pub fn color_wanted(stream: &impl IsTerminal) -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && stream.is_terminal()
}

const RED_BOLD: &str = "\x1b[1;31m";
const YELLOW_BOLD: &str = "\x1b[1;33m";
const RESET: &str = "\x1b[0m";

/// Writes human lines to stderr and data to stdout.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    color: bool,
}

impl Default for Printer {
    fn default() -> Self {
        Printer::new()
    }
}

impl Printer {
    /// A printer that colours stderr when [`color_wanted`] says so.
    pub fn new() -> Self {
        Printer {
            color: color_wanted(&io::stderr()),
        }
    }

    /// A printer that never colours (tests, files).
    pub fn plain() -> Self {
        Printer { color: false }
    }

    fn label(&self, label: &str, style: &str) -> String {
        if self.color {
            format!("{style}{label}{RESET}")
        } else {
            label.to_string()
        }
    }

    /// `error: MESSAGE` and its `hint:` lines (the kind's fallback when it has none).
    pub fn write_failure(&self, w: &mut dyn Write, f: &Failure) -> io::Result<()> {
        writeln!(
            w,
            "{} {}",
            self.label("error:", RED_BOLD),
            sanitize_line(&f.message)
        )?;
        for h in f.hints_or_fallback() {
            writeln!(w, "hint: {}", sanitize_line(&h))?;
        }
        Ok(())
    }

    /// Prints a failure to stderr.
    pub fn error(&self, f: &Failure) {
        let _ = self.write_failure(&mut io::stderr().lock(), f);
    }

    /// `warning: MESSAGE` on stderr.
    pub fn warning(&self, msg: &str) {
        let _ = writeln!(
            io::stderr().lock(),
            "{} {}",
            self.label("warning:", YELLOW_BOLD),
            sanitize_line(msg)
        );
    }

    /// `hint: MESSAGE` on stderr.
    pub fn hint(&self, msg: &str) {
        let _ = writeln!(io::stderr().lock(), "hint: {}", sanitize_line(msg));
    }

    /// One line of human status (sanitized) to `w`.
    pub fn write_status(&self, w: &mut dyn Write, msg: &str) -> io::Result<()> {
        writeln!(w, "{}", sanitize_line(msg))
    }

    /// One line of human status on stderr.
    pub fn status(&self, msg: &str) {
        let _ = self.write_status(&mut io::stderr().lock(), msg);
    }

    /// One line of text data on stdout, sanitized; a closed pipe is not an error.
    pub fn data_line(&self, line: &str) -> io::Result<()> {
        let mut out = io::stdout().lock();
        ignore_broken_pipe(writeln!(out, "{}", sanitize_line(line)).and_then(|_| out.flush()))
    }

    /// Raw data on stdout (JSON, a bundle): written as is; a closed pipe is not an error.
    pub fn data(&self, bytes: &[u8]) -> io::Result<()> {
        let mut out = io::stdout().lock();
        ignore_broken_pipe(out.write_all(bytes).and_then(|_| out.flush()))
    }
}

fn ignore_broken_pipe(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_one_error_line_then_hints_all_sanitized() {
        let f = Failure::runtime("no container \"web\nerror: forged\u{1b}[2J\"")
            .hint("pass --namespace\rx");
        let mut out = Vec::new();
        Printer::plain().write_failure(&mut out, &f).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("error: no container \"web\\u{a}error: forged\\u{1b}[2J"));
        assert_eq!(lines[1], "hint: pass --namespace\\u{d}x");
    }

    #[test]
    fn a_failure_without_hints_gets_its_kinds_fallback() {
        let mut out = Vec::new();
        Printer::plain()
            .write_failure(&mut out, &Failure::usage("bad"))
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "error: bad\nhint: see --help for the options and examples\n"
        );
    }

    #[test]
    fn colour_only_when_asked() {
        let f = Failure::usage("bad").hint("h");
        let mut out = Vec::new();
        Printer { color: true }.write_failure(&mut out, &f).unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .starts_with("\x1b[1;31merror:\x1b[0m bad"));
    }
}
