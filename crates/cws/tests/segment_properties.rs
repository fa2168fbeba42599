//! Properties of `Session::segment` over arbitrary Unicode, the library side
//! of `chaincrf cws segment`'s contract: one output line per input line, and
//! each line's non-whitespace characters unchanged and in order (the words
//! are the input minus its whitespace, cut into pieces). Also: word
//! confidences from the single forward/backward pass equal the definition
//! (a constrained partition function per word), and training continues from a
//! checkpoint only when the checkpoint belongs to the same run.
//!
//! The binary's side (a file of random lines through `chaincrf cws segment`)
//! is `segment_keeps_every_character_of_random_lines` in
//! `crates/cli/tests/reliability.rs`.

use chaincrf_core::AllowedLabels;
use chaincrf_cws::{normalize, parse_raw, parse_sighan, Segmenter, UserDict};
use chaincrf_cws::{train_segmenter, train_segmenter_with, CwsTrainOptions};
use proptest::prelude::*;
use std::sync::OnceLock;

const CORPUS: &str = "迈向  充满  希望  的  新  世纪\n中国  人民  共同  创造  美好  的  未来\n\
我們  在  臺灣  學習  中文\n這個  問題  很  複雜  ，  需要  時間  解決  。\nABC  公司  在  2024  年  上市\n";

fn options() -> CwsTrainOptions {
    let mut o = CwsTrainOptions {
        min_freq: 1,
        lexicon_min_count: 1,
        ..CwsTrainOptions::default()
    };
    o.params = chaincrf_train::Params::new(chaincrf_train::Algorithm::Lbfgs)
        .c2(0.1)
        .check()
        .unwrap();
    o.threads = 1;
    o
}

/// A plain segmenter and one with a user dictionary and Latin runs kept;
/// then the same two on the generic path instead of the compiled tables.
fn all_segmenters() -> &'static [Segmenter; 4] {
    static S: OnceLock<[Segmenter; 4]> = OnceLock::new();
    S.get_or_init(|| {
        let trained = train_segmenter(&parse_sighan(CORPUS).unwrap(), &options(), &mut |_| {}).unwrap();
        [(true, false), (true, true), (false, false), (false, true)].map(|(compiled, constrained)| {
            let seg = Segmenter::from_model(trained.model.clone())
                .unwrap()
                .use_compiled_tables(compiled);
            if constrained {
                seg.with_user_dict(UserDict::from_words(["希望的", "臺灣", "ab"]))
                    .keep_latin_runs(true)
            } else {
                seg
            }
        })
    })
}

/// The plain and the constrained segmenter (compiled tables).
fn segmenters() -> &'static [Segmenter] {
    &all_segmenters()[..2]
}

/// Text mixing scripts, emoji, combining marks, controls and every kind of
/// whitespace, newlines included; and arbitrary Unicode strings.
fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[迈向希望臺灣學習中文的了，。]{1,6}",
        "[a-zA-Z0-9.,%$/-]{1,5}",
        "[😀👍🍜🀄\u{1f3fd}\u{200d}\u{fe0f}]{1,3}",
        "[ \t\u{3000}\u{a0}\u{2028}\u{85}\r\n\u{b}]{1,3}",
        "[\u{301}\u{7f}\u{1}\u{fffd}\u{10ffff}ßΩ한글のア]{1,3}",
        any::<String>(),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

fn visible(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn lines_and_characters_are_preserved(text in text()) {
        // The lines the binary reads: LF or CRLF ends, a BOM dropped.
        let lines = parse_raw(&text).unwrap();
        let expected = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let expected_lines = expected.strip_suffix('\n').unwrap_or(expected).split('\n').count();
        prop_assert_eq!(lines.len(), if expected.is_empty() { 0 } else { expected_lines });
        for seg in segmenters() {
            let mut session = seg.session();
            for line in &lines {
                for confidence in [false, true] {
                    let words = session.segment(line, confidence).unwrap();
                    let mut end = 0;
                    let mut joined = String::new();
                    for w in &words {
                        prop_assert!(w.span.start >= end && w.span.start < w.span.end);
                        prop_assert!(line.is_char_boundary(w.span.start) && line.is_char_boundary(w.span.end));
                        end = w.span.end;
                        let word = &line[w.span.clone()];
                        prop_assert!(!word.chars().any(char::is_whitespace), "{:?}", word);
                        joined.push_str(word);
                        match w.confidence {
                            Some(c) => prop_assert!((0.0..=1.0).contains(&c), "{}", c),
                            None => prop_assert!(!confidence),
                        }
                    }
                    prop_assert_eq!(joined, visible(line));
                }
            }
        }
    }

    /// The compiled n-gram tables and the generic path give the same words
    /// and confidences, with and without constraints.
    #[test]
    fn compiled_tables_segment_like_the_generic_path(text in text()) {
        let [plain, constrained, plain_generic, constrained_generic] = all_segmenters();
        for (fast, generic) in [(plain, plain_generic), (constrained, constrained_generic)] {
            prop_assert!(fast.has_compiled_tables());
            let a = fast.session().segment(&text, true).unwrap();
            let b = generic.session().segment(&text, true).unwrap();
            prop_assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                prop_assert_eq!(&x.span, &y.span);
                let (cx, cy) = (x.confidence.unwrap(), y.confidence.unwrap());
                prop_assert!((cx - cy).abs() < 1e-9, "{} vs {}", cx, cy);
            }
        }
    }

    /// Each word's confidence is Z(that word forced) / Z, computed here the
    /// slow way, one constrained forward pass per word.
    #[test]
    fn confidences_match_their_definition(run in "[迈向希望臺灣學習中文的了，。a-z0-9😀]{1,24}") {
        let seg = &segmenters()[0];
        let words = seg.session().segment(&run, true).unwrap();
        let model = seg.model();
        let scheme = seg.config().scheme;
        let extractor = seg.config().extractor().unwrap();
        let chars = normalize(&run);
        let mut tagger = model.tagger();
        tagger.observe(&extractor, &chars[..]);
        let log_z = tagger.log_partition(None).unwrap();
        let k = model.num_labels();
        for w in &words {
            let start = run[..w.span.start].chars().count();
            let len = run[w.span.clone()].chars().count();
            let mut allowed = AllowedLabels::all(chars.len(), k);
            for (i, &y) in scheme.forced_word_tags(len).iter().enumerate() {
                allowed.force(start + i, y as usize).unwrap();
            }
            let expected = (tagger.log_partition(Some(&allowed)).unwrap() - log_z).exp().min(1.0);
            let got = w.confidence.unwrap();
            prop_assert!((got - expected).abs() < 1e-9, "{:?}: {} vs {}", &run[w.span.clone()], got, expected);
        }
    }
}

/// Training continues from a checkpoint of the same run to exactly the
/// weights of an uninterrupted run, and refuses one made over another corpus.
#[test]
fn training_resumes_only_from_its_own_checkpoint() {
    let sentences = parse_sighan(CORPUS).unwrap();
    let mut opts = options();
    let with_cap = |n| {
        chaincrf_train::Params::new(chaincrf_train::Algorithm::Lbfgs)
            .c2(0.1)
            .max_iterations(Some(n))
            .check()
            .unwrap()
    };
    opts.params = with_cap(4);
    let mut checkpoint = None;
    train_segmenter_with(&sentences, &opts, None, None, &mut |p| {
        if p.iteration == 3 {
            checkpoint = Some(chaincrf_model::Checkpoint {
                iteration: p.iteration,
                fingerprint: 42,
                weights: p.weights().to_vec(),
                model: p.model().expect("a chain run has a model"),
                optimizer: p.saved_state().unwrap(),
            });
        }
    })
    .unwrap();
    let checkpoint = checkpoint.expect("iteration 3 ran");
    assert_eq!((checkpoint.iteration, checkpoint.fingerprint), (3, 42));
    // The checkpoint's model is complete (not pruned) and loads as a segmenter.
    assert_eq!(checkpoint.weights.len(), checkpoint.model.layout().len());
    Segmenter::from_model(checkpoint.model.clone()).unwrap();
    let mut seen = Vec::new();
    opts.params = with_cap(6);
    let resumed = train_segmenter_with(&sentences, &opts, Some(&checkpoint), None, &mut |p| {
        seen.push(p.iteration);
    })
    .unwrap();
    assert_eq!(seen, [3, 4, 5, 6]);
    assert_eq!(resumed.report.iterations, 6);
    let whole = train_segmenter_with(&sentences, &opts, None, None, &mut |_| {}).unwrap();
    assert_eq!(whole.report.iterations, 6);
    assert!(
        whole
            .model
            .to_flat()
            .iter()
            .zip(&resumed.model.to_flat())
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "the resumed run ended with other weights"
    );
    let other = parse_sighan("完全  不同  的  语料\n").unwrap();
    let err = train_segmenter_with(&other, &opts, Some(&checkpoint), None, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("different corpus"), "{err}");
}
