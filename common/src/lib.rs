//! exhibit-common: the evidence bundle format shared by the collector and the analyzer.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
//!
//! Synchronous `Read`/`Write` only, no async runtime, no daemon clients. Start at
//! [`writer::BundleWriter`] (what a capture produces) and [`verify::verify`] (the only
//! way to a [`verify::VerifiedBundle`]). docs/bundle-format.md specifies the format.

#[cfg(feature = "cli")]
pub mod cli;
pub mod custody;
pub mod dsse;
pub mod hashing;
pub mod json;
pub mod keys;
pub mod limits;
pub mod manifest;
pub mod members;
pub mod output;
pub mod records;
pub mod rule_id;
pub mod tarcodec;
pub mod text;
pub mod verify;
pub mod writer;

pub use verify::{verify, VerifiedBundle, VerifyError, VerifyOptions, WalkEntry};
pub use writer::{BundleWriter, WriterOptions};
