//! Fuzz target: the model and checkpoint decoders behind the header. The
//! input becomes the body of a file with a valid header and checksum (the
//! first byte picks model or checkpoint), so every input reaches bincode and
//! `validate`; a model that loads is then used the way the commands use it
//! (classic tagger, segmenter, a tagging pass), because "it loaded" must mean
//! "it is safe to use".
#![no_main]

use chaincrf_model::{checkpoint_from_bytes, from_bytes, ClassicInput, ClassicTagger, Model};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fn file(magic: &[u8; 8], body: &[u8]) -> Vec<u8> {
    let mut out = magic.to_vec();
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&chaincrf_features::hash_bytes(body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

fn exercise(model: &Model) {
    let _ = model.num_active_weights();
    for kind in [chaincrf_features::AttrKind::State, chaincrf_features::AttrKind::Edge] {
        for id in 0..model.attributes().len(kind).min(64) as u32 {
            let _ = model.attributes().name(kind, id);
            let _ = model.attributes().key(kind, id);
        }
    }
    if let Ok(mut tagger) = ClassicTagger::new(model) {
        let rows: Vec<Vec<String>> = (0..3).map(|t| (0..4).map(|c| format!("v{t}{c}")).collect()).collect();
        let attrs: Vec<Vec<(String, f64)>> = (0..3).map(|t| vec![(format!("a{t}"), 1.0)]).collect();
        for input in [ClassicInput::Columns(&rows), ClassicInput::Attributes(&attrs)] {
            if tagger.observe(input).is_ok() {
                let _ = tagger.tagger().viterbi(None);
                let _ = tagger.tagger().log_partition(None);
            }
        }
    }
    if let Ok(seg) = chaincrf_cws::Segmenter::from_model(model.clone()) {
        let mut session = seg.session();
        let _ = session.segment("我們在臺灣 abc 123 😀", true);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    if which & 1 == 0 {
        if let Ok(model) = from_bytes(&file(b"CHAINCRF", body), Path::new("fuzz")) {
            exercise(&model);
        }
    } else if let Ok(c) = checkpoint_from_bytes(&file(b"CHAINCKP", body), Path::new("fuzz")) {
        exercise(&c.model);
    }
});
