//! Fuzz target: CRFsuite attribute data (`read_crfsuite_data`) on arbitrary
//! bytes, and the writer's escaping: a name written by `write_crfsuite_item`
//! reads back unchanged.
#![no_main]

use chaincrf_features::{read_crfsuite_data, write_crfsuite_item};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = read_crfsuite_data(data, "fuzz");
    if let Ok(text) = std::str::from_utf8(data) {
        // Escaping then unescaping gives the name back (names the format
        // cannot hold are refused by the writer).
        let mut line = Vec::new();
        if write_crfsuite_item(&mut line, "L", [(text, 0.5)]).is_ok() {
            let back = read_crfsuite_data(&line[..], "written").expect("the writer's output reads back");
            assert_eq!(back[0].attrs[0], vec![(text.to_owned(), 0.5)]);
        }
    }
});
