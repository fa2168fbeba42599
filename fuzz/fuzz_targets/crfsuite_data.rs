//! Fuzz target: CRFsuite attribute data (`read_crfsuite_data`, attribute
//! fields, name escaping) on arbitrary bytes.
#![no_main]

use chaincrf_features::crfsuite::{escape_name, parse_attribute, unescape_name};
use chaincrf_features::read_crfsuite_data;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = read_crfsuite_data(data, "fuzz");
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_attribute(text);
        // Escaping then unescaping gives the name back.
        assert_eq!(unescape_name(&escape_name(text)), text);
    }
});
