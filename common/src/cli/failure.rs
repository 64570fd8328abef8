//! Errors a user sees: a kind (which decides the exit status and the fallback hint),
//! one line saying what failed on what, and `hint:` lines.

use super::ExitStatus;
use std::fmt;

/// What sort of failure, decided where it happens, never guessed from message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A bad option, argument or combination of them.
    Usage,
    /// Reading or writing a file or stream failed (missing, permissions, full disk).
    Io,
    /// The program lacks a privilege it needs (e.g. capture runs as root).
    Permission,
    /// A container runtime (dockerd, containerd) is unreachable or failed.
    Runtime,
    /// Rules given by the user (YARA, profiles) could not be compiled or loaded.
    RuleCompile,
    /// A bundle failed verification (signature, hash, header, limit, parse).
    Verification,
    /// Anything else.
    Internal,
}

impl FailureKind {
    /// The exit status of DESIGN.md section 2: 3 for verification, else 2.
    pub fn exit_status(self) -> ExitStatus {
        match self {
            FailureKind::Verification => ExitStatus::VerificationFailed,
            _ => ExitStatus::Error,
        }
    }

    /// The hint printed when the failure carries none of its own.
    pub fn fallback_hint(self) -> &'static str {
        match self {
            FailureKind::Usage => "see --help for the options and examples",
            FailureKind::Io => "check the path, its permissions and the free space",
            FailureKind::Permission => "run as root (sudo)",
            FailureKind::Runtime => {
                "check that the container runtime is running and its socket reachable"
            }
            FailureKind::RuleCompile => "fix the rule file named above",
            FailureKind::Verification => {
                "do not trust this bundle's content: it changed after capture or is not an exhibit bundle"
            }
            FailureKind::Internal => "run with -v for details",
        }
    }
}

/// A failure as the user sees it: `error: MESSAGE`, then one `hint: ...` per hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
    pub hints: Vec<String>,
}

impl Failure {
    /// A failure of `kind` with no hints yet.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
            hints: Vec::new(),
        }
    }
    /// A bad option or argument.
    pub fn usage(message: impl Into<String>) -> Self {
        Failure::new(FailureKind::Usage, message)
    }
    /// A file or stream that could not be read or written.
    pub fn io(message: impl Into<String>) -> Self {
        Failure::new(FailureKind::Io, message)
    }
    /// A missing privilege.
    pub fn permission(message: impl Into<String>) -> Self {
        Failure::new(FailureKind::Permission, message)
    }
    /// A container runtime that is unreachable or failed.
    pub fn runtime(message: impl Into<String>) -> Self {
        Failure::new(FailureKind::Runtime, message)
    }
    /// A bundle that failed verification.
    pub fn verification(message: impl Into<String>) -> Self {
        Failure::new(FailureKind::Verification, message)
    }
    /// Adds a hint line.
    pub fn hint(mut self, h: impl Into<String>) -> Self {
        self.hints.push(h.into());
        self
    }
    /// The exit status its kind stands for.
    pub fn exit_status(&self) -> ExitStatus {
        self.kind.exit_status()
    }
    /// The hints to print: its own, else its kind's fallback.
    pub fn hints_or_fallback(&self) -> Vec<String> {
        if self.hints.is_empty() {
            vec![self.kind.fallback_hint().to_string()]
        } else {
            self.hints.clone()
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_decides_the_exit_status_and_the_fallback_hint() {
        assert_eq!(Failure::usage("x").exit_status().code(), 2);
        assert_eq!(Failure::runtime("x").exit_status().code(), 2);
        assert_eq!(Failure::verification("x").exit_status().code(), 3);
        assert_eq!(
            Failure::usage("x").hints_or_fallback(),
            vec!["see --help for the options and examples".to_string()]
        );
        assert_eq!(
            Failure::usage("x").hint("give -o").hints_or_fallback(),
            vec!["give -o".to_string()]
        );
    }
}
