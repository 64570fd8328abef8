//! The analyzer's `docker save` reader (tar, manifest, config, layers) on a temp file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let Ok(mut f) = tempfile::NamedTempFile::new() else {
        return;
    };
    if f.write_all(data).and_then(|_| f.flush()).is_err() {
        return;
    }
    let _ = exhibit_analyzer::image::load(f.path(), None);
});
