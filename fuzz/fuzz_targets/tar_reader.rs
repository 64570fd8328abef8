//! The strict tar reader on an arbitrary (decompressed) stream.
#![no_main]

use exhibit_common::tarcodec::{render, TarReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = TarReader::new(data);
    let mut buf = [0u8; 4096];
    // Bounded by the input: each entry consumes at least one 512-byte block.
    loop {
        match r.next_entry() {
            Ok(Some(e)) => {
                // The canonical rendering of what was read must not panic either.
                let _ = render(&e.header);
                loop {
                    match r.read_body(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
});
