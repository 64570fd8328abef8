//! The whole verifier on an arbitrary file: zstd, tar, envelope, statement, records.
#![no_main]

use ed25519_dalek::SigningKey;
use exhibit_common::{verify, VerifyOptions};
use libfuzzer_sys::fuzz_target;
use std::io::Write;

/// The fixed test key; the seed bundles in corpus/verify_bundle are signed with it
/// (its PKCS#8 PEM is fuzz/test-key.pem), so mutations that keep the envelope intact
/// reach the checks after the signature.
const TEST_SEED: [u8; 32] = [0x42; 32];

fuzz_target!(|data: &[u8]| {
    let key = SigningKey::from_bytes(&TEST_SEED).verifying_key();
    let Ok(mut f) = tempfile::NamedTempFile::new() else {
        return;
    };
    if f.write_all(data).and_then(|_| f.flush()).is_err() {
        return;
    }
    let opts = VerifyOptions {
        keys: vec![key],
        max_decompressed: Some(64 << 20),
    };
    if let Ok(b) = verify(f.path(), &opts) {
        // A verified bundle: its accessors must not panic either.
        let _ = b.records();
        let _ = b.member(exhibit_common::members::PROCESSES);
    }
});
