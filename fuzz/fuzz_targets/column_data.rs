//! Fuzz target: CRF++ column data (`read_column_data` and the streaming
//! `ColumnReader`) on arbitrary bytes.
#![no_main]

use chaincrf_features::{read_column_data, ColumnReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = read_column_data(data, "fuzz");
    for seq in ColumnReader::new(data, "fuzz") {
        let Ok(seq) = seq else { break };
        let columns = seq.rows.first().map_or(0, Vec::len);
        let _ = seq.column(columns.saturating_sub(1)).count();
    }
});
