//! `extract` (pending).
use crate::cli::ExtractArgs;
use crate::error::AnalyzeError;
/// `extract BUNDLE -o DIR`.
pub fn extract_command(_a: &ExtractArgs) -> Result<u8, AnalyzeError> {
    Err(AnalyzeError::input("extract is not implemented yet", &[]))
}
