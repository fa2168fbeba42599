//! Fuzz target: `chaincrf_model::from_bytes` and `checkpoint_from_bytes`
//! on arbitrary bytes — the header checks (magic, version, length, checksum)
//! must reject everything without panicking or allocating what a forged
//! length claims. Random bytes almost never pass the checksum; `model_body`
//! covers the decoder behind it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = chaincrf_model::from_bytes(data, Path::new("fuzz"));
    let _ = chaincrf_model::checkpoint_from_bytes(data, Path::new("fuzz"));
});
