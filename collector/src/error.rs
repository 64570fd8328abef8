//! Errors the user can act on: one line saying what failed on what, then hints.

use std::fmt;

/// An error with hints and an exit code, shown as `error: ...` then `hint: ...` lines.
#[derive(Debug)]
pub struct UserError {
    pub message: String,
    pub hints: Vec<String>,
    pub code: u8,
}

impl UserError {
    /// A usage, I/O or runtime error (exit 2).
    pub fn new(message: impl Into<String>) -> Self {
        UserError {
            message: message.into(),
            hints: Vec::new(),
            code: 2,
        }
    }
    /// Adds a hint line.
    pub fn hint(mut self, h: impl Into<String>) -> Self {
        self.hints.push(h.into());
        self
    }
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UserError {}

/// Hints for an error that reached the top without any, from its chain.
pub fn guess_hints(err: &anyhow::Error) -> Vec<String> {
    let text = format!("{err:#}").to_lowercase();
    let mut hints = Vec::new();
    if text.contains("permission denied") || text.contains("operation not permitted") {
        hints.push(
            "run exhibit-collect as root (it reads /proc and the runtime's storage)".to_string(),
        );
    }
    if text.contains("docker")
        && (text.contains("no such file")
            || text.contains("connection refused")
            || text.contains("not reachable")
            || text.contains("did not answer"))
    {
        hints.push(
            "is dockerd running? check `docker info`, or point --docker-host / DOCKER_HOST at it"
                .to_string(),
        );
    }
    if text.contains("containerd")
        && (text.contains("no such file")
            || text.contains("connection refused")
            || text.contains("transport"))
    {
        hints.push(
            "is containerd running? point --containerd-address / CONTAINERD_ADDRESS at its socket"
                .to_string(),
        );
    }
    if text.contains("no space left") {
        hints.push(
            "the output filesystem is full: free space or write elsewhere with -o DIR".to_string(),
        );
    }
    if text.contains("read-only file system") {
        hints.push("the output location is read-only: write elsewhere with -o DIR".to_string());
    }
    if hints.is_empty() {
        hints.push("run with -v for details".to_string());
    }
    hints
}
