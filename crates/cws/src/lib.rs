//! # chaincrf-cws
//!
//! Chinese word segmentation (CWS) with chaincrf, cast as character tagging:
//! each character gets a tag saying where it sits in its word, a linear-chain CRF
//! predicts the tags, and the tags are read back as words.
//!
//! The pieces, in the order text flows through them:
//!
//! * Corpora: readers for the PKU People's Daily corpus (`word/POS`,
//!   [`read_pku`]), SIGHAN Bakeoff files (space-separated words,
//!   [`read_sighan`]) and raw text ([`read_raw`]); [`read_corpus`] detects
//!   which.
//! * [`TagScheme`]: tag schemes (BMES, the 6-tag scheme of Zhao et al.),
//!   words ⇄ tags, and which tag transitions are legal.
//! * [`normalize`]: full-width → ASCII mapping and character classes
//!   ([`char_class`]), so that `１９９８` in the training text and `2001` in
//!   the test text look alike.
//! * [`Lexicon`]: the training word list and its dictionary-match features.
//! * [`NgramExtractor`]: a fast hashed character n-gram feature extractor
//!   implementing [`chaincrf_features::FeatureExtractor`], configured by
//!   [`NgramConfig`].
//! * [`Segmenter`]: a loaded model; its fast path compiles n-gram weight
//!   tables from the model and the [`NgramInventory`] stored with it.
//! * [`UserDict`] and [`Constraints`]: hard constraints from a user dictionary
//!   and from Latin / number runs, as allowed tags per character.
//! * [`score_files`], [`Scorer`]: SIGHAN Bakeoff scoring (P, R, F1, OOV rate,
//!   OOV and IV recall).
//! * Training (feature `train`): [`train_segmenter`] and
//!   [`train_semi_segmenter`] (a semi-Markov model of words on top of the
//!   character model). The modules [`semi`] and [`words`] are the pieces of
//!   that model, public as a namespace for one's own segment features.
//!
//! Everything that reads user data returns [`Error`] values that name the file
//! and line; nothing here panics on malformed input.
//!
//! ```
//! # #[cfg(feature = "train")] {
//! use chaincrf_cws::{train_segmenter, CwsTrainOptions};
//! use chaincrf_cws::{parse_sighan, Segmenter};
//! let corpus = "我们 是 学生\n学生 们 在 学习\n我们 在 北京 学习\n北京 是 首都\n";
//! let options = CwsTrainOptions { min_freq: 1, lexicon_folds: 0, ..CwsTrainOptions::default() };
//! let trained = train_segmenter(&parse_sighan(corpus)?, &options, &mut |_| {})?;
//! let path = std::env::temp_dir().join(format!("chaincrf-cws-doc-{}.model", std::process::id()));
//! chaincrf_model::save(&trained.model, &path).expect("saved");
//! let segmenter = Segmenter::load(&path)?;
//! assert_eq!(segmenter.words("我们在北京学习")?, ["我们", "在", "北京", "学习"]);
//! # std::fs::remove_file(&path).ok();
//! # }
//! # Ok::<(), chaincrf_cws::Error>(())
//! ```

#![deny(missing_docs)]

mod clusters;
mod compiled;
mod constraints;
mod corpus;
mod error;
mod eval;
mod lexicon;
mod ngram;
mod normalize;
mod scheme;
mod segmenter;
pub mod semi;
#[cfg(feature = "train")]
mod semi_train;
mod tag_viterbi;
#[cfg(feature = "train")]
mod train;
pub mod words;

pub use clusters::{CharClusters, MAX_CLUSTERS};
pub use compiled::NgramInventory;
pub use constraints::{latin_runs, Constraints, UserDict};
pub use corpus::{
    detect_format, detect_format_file, parse_pku, parse_raw, parse_sighan, read_corpus, read_corpus_as, read_pku,
    read_pku_from, read_raw, read_raw_from, read_sighan, read_sighan_from, CorpusFormat, Sentence,
};
pub use error::{ConfigError, Error, Result, TemplateProblem};
pub use eval::{
    parse_word_list, read_word_list, read_word_list_from, score_files, score_lines, score_str, Score, Scorer, WordSet,
};
pub use lexicon::{LexMatch, Lexicon};
pub use ngram::{NgramConfig, NgramExtractor};
pub use normalize::{
    char_class, feature_class, normalize, normalize_char, normalize_in_place, normalize_into, CharClass,
};
pub use scheme::{Boundary, TagScheme, TagSet};
pub use segmenter::{CwsModelConfig, EmissionScorer, Segmenter, Session, Word};
#[cfg(feature = "train")]
pub use semi_train::{train_semi_segmenter, train_semi_segmenter_with, SemiOptions, SemiResume, SemiStage};
#[cfg(feature = "train")]
pub use train::{
    default_params, is_held_out, train_segmenter, train_segmenter_with, CwsTrainOptions, CwsTrained, FoldLayout,
    DEFAULT_MAX_ITERATIONS, DEFAULT_PRUNE_THRESHOLD, DEFAULT_SGD_EPOCHS, SUGGESTED_CHAR_CLUSTERS,
};

#[cfg(test)]
mod real_data {
    //! Checks against the real corpora; they run only when `CHAINCRF_DATA` points
    //! at the shared data folder (the files are not part of the repository).

    use super::*;
    use chaincrf_features::FeatureExtractor;
    use std::path::PathBuf;

    fn data_dir() -> Option<PathBuf> {
        match std::env::var_os("CHAINCRF_DATA") {
            Some(d) => Some(PathBuf::from(d)),
            None => {
                eprintln!("skipped: set CHAINCRF_DATA to the shared data folder to run");
                None
            }
        }
    }

    #[test]
    fn pku_corpus_and_bakeoff_gold() {
        let Some(dir) = data_dir() else { return };
        let train = dir.join("pku-199801/199801.txt");
        let (format, sentences) = read_corpus(&train).unwrap();
        assert_eq!(format, CorpusFormat::Pku);
        assert_eq!(sentences.len(), 19_484);
        let words: usize = sentences.iter().map(Vec::len).sum();
        eprintln!("199801.txt: {} sentences, {words} words", sentences.len());

        // Every sentence survives words → tags → words in both schemes.
        for scheme in [TagScheme::Bmes, TagScheme::SixTag] {
            for s in &sentences {
                let chars: Vec<char> = s.concat().chars().collect();
                let tags = scheme.tags_from_words(s);
                assert!(scheme.is_valid(&tags));
                assert_eq!(&scheme.words_from_tags(&chars, &tags), s);
            }
        }

        let gold = dir.join("icwb2/pku_test_gold.utf8");
        let word_list = read_word_list(dir.join("icwb2/pku_training_words.utf8")).unwrap();
        let score = score_files(&gold, &gold, Some(&word_list)).unwrap();
        eprintln!("gold vs gold:\n{}", score.report());
        assert_eq!(score.f1, 1.0);
        let oov = score.oov_rate.unwrap();
        assert!((0.05..0.065).contains(&oov), "OOV rate {oov}");

        // The raw test text lines up with the gold one.
        let raw = read_raw(dir.join("icwb2/pku_test.utf8")).unwrap();
        let gold_lines = read_raw(&gold).unwrap();
        assert_eq!(raw.len(), gold_lines.len());
        let lexicon = std::sync::Arc::new(Lexicon::from_sentences(&sentences));
        let ex = NgramExtractor::new(
            NgramConfig {
                lexicon_features: true,
                ..NgramConfig::default()
            },
            Some(lexicon),
        )
        .unwrap();
        let start = std::time::Instant::now();
        let (mut chars, mut attrs) = (0usize, 0usize);
        for line in &raw {
            let input = normalize(line);
            for t in 0..input.len() {
                ex.extract(&input, t, &mut |_| attrs += 1);
            }
            chars += input.len();
        }
        eprintln!(
            "extracted {attrs} attributes over {chars} chars in {:?}",
            start.elapsed()
        );
    }
}
