//! Fuzz target: the CRFsuite model reader (`chaincrf_model::from_bytes` on files with CRFsuite's magic).
//! The input gets CRFsuite's magic and, unless its first byte is odd, a file
//! size field that matches its length, so mutations of the seeds (models
//! python-crfsuite wrote, crates/model/tests/data/crfsuite) reach the
//! dictionaries, features and reference lists instead of stopping at the
//! header. A model that loads is then used as the commands use it: tagged
//! (Viterbi and marginals) on attributes it knows, pruned, and saved and read
//! back in chaincrf's format with every weight unchanged.
#![no_main]

use chaincrf_features::AttrKind;
use chaincrf_model::{from_bytes, to_bytes, ClassicInput, ClassicTagger, Model};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fn exercise(model: &Model) {
    let names: Vec<String> = (0..model.attributes().len(AttrKind::State).min(8) as u32)
        .filter_map(|id| model.attributes().name(AttrKind::State, id).map(str::to_owned))
        .collect();
    let items: Vec<Vec<(String, f64)>> = (0..4)
        .map(|t| {
            names
                .iter()
                .skip(t)
                .step_by(2)
                .map(|n| (n.clone(), 0.5 + t as f64))
                .collect()
        })
        .collect();
    let mut tagger = ClassicTagger::new(model).expect("a CRFsuite model has the CRFsuite extractor");
    tagger.observe(ClassicInput::Attributes(&items)).expect("attribute input");
    let _ = tagger.tagger().viterbi(None);
    let mut marginals = Vec::new();
    let _ = tagger.tagger().marginals(None, &mut marginals);
    let bytes = to_bytes(model).expect("encodes");
    let back = from_bytes(&bytes, Path::new("fuzz")).expect("reads back what it wrote");
    assert_eq!(back.has_exact_weights(), model.has_exact_weights());
    assert_eq!(back.to_flat(), model.to_flat());
    let mut pruned = model.clone();
    pruned.prune_zero_attributes();
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if bytes.len() >= 8 {
        bytes[..4].copy_from_slice(b"lCRF");
        if flags & 1 == 0 {
            let len = bytes.len() as u32;
            bytes[4..8].copy_from_slice(&len.to_le_bytes());
        }
    }
    if let Ok(model) = from_bytes(&bytes, Path::new("fuzz")) {
        exercise(&model);
    }
});
