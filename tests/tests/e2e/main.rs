//! The end-to-end tests: one binary that drives the built programs against real
//! dockerd, containerd and files (scripts/setup starts the daemons; a test that cannot
//! reach one fails, it never skips). One module per area; `support` is the shared harness.

mod support;

mod analyzer_cli;
mod bundle_bytes;
mod capture_evidence;
mod collector;
mod containerd;
mod drill_data_dir;
mod drills;
mod faults;
mod interop;
mod kubernetes_manifests;
mod output;
mod smoke;
mod snapshots;
mod tidy;
mod verify_cli;
mod yara;
