//! Command-line conventions shared by exhibit-collect, exhibit-analyze and exhibit-drill
//! (feature `cli`): exit statuses, failures that carry their kind, one printer for
//! human text, one size parser and `-v` tracing.
//!
//! It lives here because all three programs need it and none of them may depend on
//! another (ARCHITECTURE.md, "Dependencies"); it is behind a feature so the format
//! crate itself stays free of tracing-subscriber. Nothing in it knows about bundles.

mod exit;
mod failure;
mod printer;
mod size;
mod verbosity;

pub use exit::ExitStatus;
pub use failure::{Failure, FailureKind};
pub use printer::{color_wanted, Printer};
pub use size::parse_size;
pub use verbosity::init_tracing;
