//! The analyzer's profile loader (YAML, then globs, regexes, CIDRs) on arbitrary bytes.
#![no_main]

use exhibit_analyzer::profile::Profile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Profile::load reads the file with read_to_string: non-UTF-8 is an error there.
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Profile::parse(text);
    }
});
