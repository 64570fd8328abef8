//! One module per subcommand of `exhibit-analyze`, named after it; each has a
//! `*_command` function that takes its parsed arguments and returns the exit code.

pub mod diff;
pub mod extract;
pub mod profile;
pub mod report;
pub mod show;
pub mod timeline;
pub mod verify;
