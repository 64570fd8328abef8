//! Envelope parsing and opening with a fixed key.
#![no_main]

use ed25519_dalek::SigningKey;
use exhibit_common::dsse::{open, Envelope};
use exhibit_common::json::parse_capped;
use exhibit_common::limits::MAX_ENVELOPE;
use libfuzzer_sys::fuzz_target;

const TEST_SEED: [u8; 32] = [0x42; 32];

fuzz_target!(|data: &[u8]| {
    let Ok(env) = parse_capped::<Envelope>(data, MAX_ENVELOPE) else {
        return;
    };
    let key = SigningKey::from_bytes(&TEST_SEED).verifying_key();
    let _ = open(&env, &[key]);
    let _ = open(&env, &[]);
});
