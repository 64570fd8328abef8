//! `timeline` (pending).
use crate::cli::TimelineArgs;
use crate::error::AnalyzeError;
/// `timeline BUNDLE`.
pub fn timeline_command(_a: &TimelineArgs) -> Result<u8, AnalyzeError> {
    Err(AnalyzeError::input("timeline is not implemented yet", &[]))
}
