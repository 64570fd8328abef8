//! Test material shared by the end-to-end tests (tests/tests/e2e) and the analyzer's
//! library tests: evidence bundles built from a [`spec::Spec`] with the real
//! `BundleWriter`, and tar-level tampering with such bundles ([`tamper`]).

pub mod spec;
pub mod tamper;
