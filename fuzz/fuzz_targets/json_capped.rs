//! Capped JSON parsing into every bundle document type.
#![no_main]

use exhibit_common::dsse::{Envelope, Statement};
use exhibit_common::json::parse;
use exhibit_common::manifest::Manifest;
use exhibit_common::records::{ChangeRecord, ProcessRecord};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse::<serde_json::Value>(data);
    let _ = parse::<Manifest>(data);
    if let Ok(r) = parse::<ChangeRecord>(data) {
        // What the verifier does with a record next.
        let _ = exhibit_common::tarcodec::render(&r.tar_header());
    }
    let _ = parse::<ProcessRecord>(data);
    let _ = parse::<Envelope>(data);
    let _ = parse::<Statement>(data);
});
