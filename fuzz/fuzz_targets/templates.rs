//! Fuzz target: CRF++ template parsing (`Templates::parse` on text,
//! `Templates::read` on bytes) and, for templates that parse, expanding them
//! over a few rows — macros with any offset or column must never panic.
#![no_main]

use chaincrf_features::{FeatureExtractor, TemplateExtractor, Templates};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Templates::read(data, "fuzz");
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(templates) = Templates::parse(text, "fuzz") else {
        return;
    };
    let columns = templates.max_column().map_or(1, |c| c.saturating_add(1)).min(8);
    let rows: Vec<Vec<String>> = (0..3)
        .map(|t| (0..columns).map(|c| format!("x{t}{c}")).collect())
        .collect();
    // Rows shorter than the templates ask for must be handled too.
    let short: Vec<Vec<String>> = vec![vec!["a".into()]];
    for ex in [
        TemplateExtractor::new(templates.clone(), columns).ok(),
        Some(TemplateExtractor {
            templates,
            feature_columns: columns,
        }),
    ]
    .into_iter()
    .flatten()
    {
        for input in [&rows, &short] {
            for t in 0..=input.len() {
                ex.extract(input, t, &mut |_| {});
            }
        }
    }
});
