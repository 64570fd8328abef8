//! One module per subcommand of exhibit-collect.

pub mod capture;
pub mod keygen;
pub mod list;
