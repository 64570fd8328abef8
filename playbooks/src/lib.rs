//! exhibit-drill: fire drills that stage attacks in disposable containers, capture,
//! analyse and score detection. Start at [`runner::run`]; playbooks are in drills/.

pub mod data_dir;
pub mod drill;
pub mod interrupt;
pub mod runner;
pub mod scorecard;
