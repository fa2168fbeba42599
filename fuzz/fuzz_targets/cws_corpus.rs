//! Fuzz target: every segmentation-corpus reader of `chaincrf_cws`
//! (`parse_pku`, `parse_sighan`, `parse_raw`, their byte-stream forms, format
//! detection), word lists (`read_word_list_from`), user dictionaries and the
//! scorer, on arbitrary bytes.
#![no_main]

use chaincrf_cws::{read_pku_from, read_raw_from, read_sighan_from};
use chaincrf_cws::read_word_list_from;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = read_pku_from(data, "fuzz");
    let _ = read_sighan_from(data, "fuzz");
    let _ = read_raw_from(data, "fuzz");
    let _ = read_word_list_from(data, "fuzz");
    if let Ok(dict) = chaincrf_cws::UserDict::from_reader(data, "fuzz") {
        let chars: Vec<char> = "我們在臺灣學習中文abc".chars().collect();
        let _ = dict.find(&chars);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = chaincrf_cws::parse_pku(text);
        let _ = chaincrf_cws::parse_sighan(text);
        let _ = chaincrf_cws::parse_raw(text);
        let _ = chaincrf_cws::detect_format(text);
        // Gold and prediction split from the same text: any pair must score or
        // fail with a message.
        let (gold, pred) = text.split_at(text.char_indices().nth(text.chars().count() / 2).map_or(0, |(i, _)| i));
        let _ = chaincrf_cws::score_str(gold, pred, None);
        let _ = chaincrf_cws::score_str(text, text, None);
    }
});
