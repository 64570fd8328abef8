//! The documented exit statuses (DESIGN.md section 2, docs/security.md).

use std::process::ExitCode;

/// How a program ends; [`ExitStatus::code`] is the number the shell sees.
///
/// The three programs give status 1 different meanings, so each has its own variant;
/// they share code 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: everything asked for was done.
    Success,
    /// 1, `exhibit-collect capture`: every bundle sealed, at least one `incomplete`.
    Incomplete,
    /// 1, `exhibit-analyze`: a finding at or above `--fail-on`.
    FindingAtFailOn,
    /// 1, `exhibit-drill`: a drill missed an expected finding or raised a forbidden one.
    DrillFailed,
    /// 2: usage, I/O, runtime or rule-compile error (for a capture: at least one
    /// requested container has no bundle).
    Error,
    /// 3: a bundle failed verification.
    VerificationFailed,
    /// 130: stopped by SIGINT or SIGTERM (the collector, after cleaning up).
    Interrupted,
}

impl ExitStatus {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Incomplete | ExitStatus::FindingAtFailOn | ExitStatus::DrillFailed => 1,
            ExitStatus::Error => 2,
            ExitStatus::VerificationFailed => 3,
            ExitStatus::Interrupted => 130,
        }
    }

    /// The more severe of two statuses (the higher code), for commands that do
    /// several things and report the worst.
    pub fn worst(self, other: ExitStatus) -> ExitStatus {
        if other.code() > self.code() {
            other
        } else {
            self
        }
    }

    /// Ends the process now with this status (for signal handlers; `main` returns
    /// an [`ExitCode`] instead).
    pub fn exit(self) -> ! {
        std::process::exit(i32::from(self.code()))
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(s: ExitStatus) -> ExitCode {
        ExitCode::from(s.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        let all = [
            (ExitStatus::Success, 0),
            (ExitStatus::Incomplete, 1),
            (ExitStatus::FindingAtFailOn, 1),
            (ExitStatus::DrillFailed, 1),
            (ExitStatus::Error, 2),
            (ExitStatus::VerificationFailed, 3),
            (ExitStatus::Interrupted, 130),
        ];
        for (s, code) in all {
            assert_eq!(s.code(), code, "{s:?}");
        }
    }

    #[test]
    fn worst_keeps_the_higher_code() {
        use ExitStatus::*;
        assert_eq!(Success.worst(Incomplete), Incomplete);
        assert_eq!(Incomplete.worst(Error), Error);
        assert_eq!(Error.worst(Incomplete), Error);
        assert_eq!(Error.worst(Success), Error);
    }
}
