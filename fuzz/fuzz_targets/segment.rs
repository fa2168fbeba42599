//! Fuzz target: `Session::segment` on arbitrary text with a small segmenter
//! trained once, with and without user dictionary, Latin runs and
//! confidences. Checks the contract, not just the absence of panics: the
//! words are in order, do not overlap, and cover exactly the non-whitespace
//! characters of the input.
#![no_main]

use chaincrf_cws::{default_params, train_segmenter, CwsTrainOptions};
use chaincrf_train::Algorithm;
use chaincrf_cws::{Segmenter, UserDict};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn segmenters() -> &'static [Segmenter; 2] {
    static S: OnceLock<[Segmenter; 2]> = OnceLock::new();
    S.get_or_init(|| {
        let corpus = chaincrf_cws::parse_sighan(
            "迈向  充满  希望  的  新  世纪\n我們  在  臺灣  學習  中文\nABC  公司  2024  年\n",
        )
        .expect("corpus");
        let mut options = CwsTrainOptions::default();
        options.threads = 1;
        options.params = default_params(Algorithm::Lbfgs)
            .max_iterations(Some(20))
            .check()
            .expect("parameters");
        let model = train_segmenter(&corpus, &options, &mut |_| {}).expect("train").model;
        let plain = Segmenter::from_model(model.clone()).expect("segmenter");
        let constrained = Segmenter::from_model(model)
            .expect("segmenter")
            .with_user_dict(UserDict::from_words(["希望的", "臺灣", "a"]))
            .keep_latin_runs(true);
        [plain, constrained]
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for (i, seg) in segmenters().iter().enumerate() {
        let mut session = seg.session();
        let words = session.segment(text, i == 1).expect("segmentation always succeeds");
        let mut end = 0;
        let mut joined = String::new();
        for w in &words {
            assert!(w.span.start >= end && w.span.start < w.span.end, "{words:?}");
            end = w.span.end;
            let word = &text[w.span.clone()];
            assert!(!word.chars().any(char::is_whitespace), "{word:?}");
            joined.push_str(word);
            if let Some(c) = w.confidence {
                assert!((0.0..=1.0).contains(&c) || c.is_nan(), "{c}");
            }
        }
        let visible: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        assert_eq!(joined, visible);
    }
});
