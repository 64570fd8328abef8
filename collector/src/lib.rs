//! exhibit-collect: capture a running container, from the host and without touching
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
//! it, into one signed evidence bundle. Start at [`cli::run`].

pub mod args;
pub mod capture;
pub mod cli;
pub mod commands;
pub mod connect;
pub mod error;
pub mod host;
pub mod interrupt;
pub mod progress;
pub mod runtime;
pub mod targets;
