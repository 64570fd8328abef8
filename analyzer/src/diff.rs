//! `diff` (pending).
use crate::cli::DiffArgs;
use crate::error::AnalyzeError;
/// `diff BASELINE SUSPECT`.
pub fn diff_command(_a: &DiffArgs) -> Result<u8, AnalyzeError> {
    Err(AnalyzeError::input("diff is not implemented yet", &[]))
}
