//! `profile` (pending).
use crate::cli::ProfileArgs;
use crate::error::AnalyzeError;
/// `profile BUNDLE...`.
pub fn profile_command(_a: &ProfileArgs) -> Result<u8, AnalyzeError> {
    Err(AnalyzeError::input("profile is not implemented yet", &[]))
}
