//! Training a segmenter from a segmented corpus (feature `train`).
//!
//! Sentences become character sequences tagged by the scheme; attributes come
//! from the n-gram extractor over width-normalized characters; the model is
//! trained by `chaincrf-train` with the scheme's illegal tag pairs forbidden, so
//! training and decoding see the same constrained model. Every N-th sentence can
//! be held out for per-iteration accuracy and early stopping.

use crate::clusters::{CharClusters, MAX_CLUSTERS};
use crate::compiled::NgramInventory;
use crate::corpus::Sentence;
use crate::error::{ConfigError, Error, Result};
use crate::lexicon::Lexicon;
use crate::ngram::{NgramConfig, NgramExtractor};
use crate::normalize::normalize;
use crate::scheme::TagScheme;
use crate::segmenter::CwsModelConfig;
use chaincrf_features::LabelAlphabet;
use chaincrf_model::Checkpoint;
use chaincrf_model::Model;
use chaincrf_train::{
    Algorithm, CheckedParams, DatasetBuilder, HeldOutBuilder, LabelTarget, Params, Progress, Report, SavedState,
    Trainer,
};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Options for training a segmenter.
#[derive(Clone, Debug)]
pub struct CwsTrainOptions {
    /// Tag scheme. Default B/M/E/S.
    pub scheme: TagScheme,
    /// Feature configuration.
    pub ngram: NgramConfig,
    /// Lexicon words must occur at least this often (lexicon features only).
    pub lexicon_min_count: u32,
    /// Attributes must occur at least this often.
    pub min_freq: u32,
    /// Hold out every N-th sentence as a development set.
    pub dev_every: Option<usize>,
    /// Lexicon features of training sentences come from a lexicon built without
    /// the sentence's own fold (`folds` folds; 0 or 1 = one lexicon from all of
    /// the training text). At test time every word of a lexicon built from the
    /// whole training text is known, but many test words are not; without
    /// jackknifing the model learns that the lexicon is always right and
    /// over-trusts it on out-of-vocabulary words.
    pub lexicon_folds: usize,
    /// Which training sentences form each jackknife fold (lexicon features,
    /// and the semi-Markov stage's word counts). Default interleaved.
    pub fold_layout: FoldLayout,
    /// Character clusters learned from the training text (their number, at
    /// most [`MAX_CLUSTERS`]; 0 = no cluster attributes, the default;
    /// [`SUGGESTED_CHAR_CLUSTERS`] is the number tuned on held-out data).
    pub char_clusters: usize,
    /// The final model drops attributes whose weights are all at most this
    /// in absolute value (see `chaincrf prune`). Default
    /// [`DEFAULT_PRUNE_THRESHOLD`].
    pub prune_threshold: f32,
    /// Optimizer parameters (see [`default_params`]).
    pub params: CheckedParams,
    /// Worker threads (0 = all cores). The model does not depend on it.
    pub threads: usize,
    /// With a held-out part: stop when its accuracy has not improved for
    /// this many iterations, keeping the best weights.
    pub patience: Option<usize>,
}

/// How the training sentences are dealt into jackknife folds.
///
/// Contiguous folds with character clusters raised F1 on a held-out block
/// of the corpus's last days from 0.9633 to 0.9653 (OOV recall 0.61 →
/// 0.65), but not on the interleaved held-out part, nor on the PKU test
/// set (0.954 against 0.955): both stay options (docs/cws.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FoldLayout {
    /// Sentence `i` is in fold `i % folds`: the sentences of one article
    /// spread over every fold, so a name or new word that the article
    /// repeats is still in the other folds' lexicons.
    #[default]
    Interleaved,
    /// Fold `f` is the `f`-th run of consecutive sentences: an article's
    /// names and new words are unseen by the other folds' lexicons, as a new
    /// text's are by the final lexicon.
    Contiguous,
}

impl FoldLayout {
    /// The fold of sentence `i` of `n`, with `folds` folds (at least 1).
    pub fn fold_of(self, i: usize, n: usize, folds: usize) -> usize {
        match self {
            FoldLayout::Interleaved => i % folds,
            FoldLayout::Contiguous => i * folds / n.max(1),
        }
    }
}

/// The number of character clusters tuned on held-out data: 64 (32 to 200
/// did as well; docs/cws.md).
pub const SUGGESTED_CHAR_CLUSTERS: usize = 64;

/// The segmenter's tuned defaults for `algorithm` on top of CRFsuite's:
/// for `lbfgs`, [`DEFAULT_SGD_EPOCHS`] of SGD then at most
/// [`DEFAULT_MAX_ITERATIONS`] iterations; the others keep CRFsuite's.
pub fn default_params(algorithm: Algorithm) -> Params {
    let p = Params::new(algorithm);
    match algorithm {
        Algorithm::Lbfgs => p
            .c2(1.0)
            .sgd_epochs(DEFAULT_SGD_EPOCHS)
            .max_iterations(Some(DEFAULT_MAX_ITERATIONS)),
        _ => p,
    }
}

/// Attributes of the default model whose weights all lie within ±0.01 are
/// dropped: about half of them on `199801.txt`, with the same held-out F1
/// (5 of 974 held-out sentences segmented differently), a model half the
/// size and half the load time (docs/cws.md).
pub const DEFAULT_PRUNE_THRESHOLD: f32 = 0.01;

/// SGD epochs the default configuration starts with. After 10 epochs the
/// objective on `199801.txt` is below where 150 L-BFGS iterations from zero
/// get it (docs/cws.md).
pub const DEFAULT_SGD_EPOCHS: usize = 10;

/// L-BFGS iterations the default configuration runs after the SGD epochs.
/// Held-out accuracy levels off within them; CRFsuite's delta rule alone
/// would run for hundreds more with little gain.
pub const DEFAULT_MAX_ITERATIONS: u64 = 20;

impl Default for CwsTrainOptions {
    /// The best configuration found on the held-out part of `199801.txt`
    /// (docs/cws.md): B/M/E/S, n-grams + classes + lexicon features jackknifed
    /// over 10 folds, attributes seen at least twice, c2 = 1, 10 SGD epochs then
    /// 20 L-BFGS iterations.
    fn default() -> Self {
        CwsTrainOptions {
            scheme: TagScheme::Bmes,
            ngram: NgramConfig {
                lexicon_features: true,
                ..NgramConfig::default()
            },
            lexicon_min_count: 1,
            min_freq: 2,
            dev_every: None,
            lexicon_folds: 10,
            fold_layout: FoldLayout::Interleaved,
            char_clusters: 0,
            prune_threshold: DEFAULT_PRUNE_THRESHOLD,
            params: default_params(Algorithm::Lbfgs)
                .check()
                .expect("the default parameters are valid"),
            threads: 0,
            patience: None,
        }
    }
}

/// Characters seen fewer times than this in the training text get no cluster.
const CLUSTER_MIN_COUNT: u32 = 3;

/// A trained segmenter model and how training went.
#[derive(Debug)]
pub struct CwsTrained {
    /// The model (save it with `chaincrf_model::save`).
    pub model: Model,
    /// How training went.
    pub report: Report,
    /// Sentences trained on.
    pub train_sentences: usize,
    /// Sentences held out.
    pub dev_sentences: usize,
}

/// Whether sentence `i` is held out under `dev_every`.
pub fn is_held_out(i: usize, dev_every: Option<usize>) -> bool {
    matches!(dev_every, Some(n) if n > 0 && i % n == n - 1)
}

/// Trains a segmenter on `sentences` (each a list of words).
///
/// # Errors
/// [`Error::Config`] for bad options, [`Error::Train`] when training fails.
pub fn train_segmenter(
    sentences: &[Sentence],
    options: &CwsTrainOptions,
    progress: &mut dyn FnMut(&Progress<'_>),
) -> Result<CwsTrained> {
    train_segmenter_with(sentences, options, None, None, progress)
}

/// The parts of a training run that the chain and the semi-Markov trainer
/// share: the split, the model configuration and the extractors.
pub(crate) struct Prepared<'s> {
    pub train_set: Vec<&'s Sentence>,
    pub dev_set: Vec<&'s Sentence>,
    pub config: CwsModelConfig,
    /// The extractor of the final model (lexicon of the whole training set).
    pub extractor: NgramExtractor,
    /// With jackknifed lexicon features, one extractor per fold whose lexicon
    /// leaves that fold out (training sentence `i` is in the fold
    /// [`FoldLayout::fold_of`] gives); empty otherwise.
    pub fold_extractors: Vec<NgramExtractor>,
}

/// Checks the options, splits the corpus and builds the extractors.
pub(crate) fn prepare<'s>(sentences: &'s [Sentence], options: &CwsTrainOptions) -> Result<Prepared<'s>> {
    options.ngram.validate()?;
    if options.char_clusters > MAX_CLUSTERS {
        return Err(ConfigError::TooManyClusters {
            got: options.char_clusters,
            max: MAX_CLUSTERS,
        }
        .into());
    }
    if !(options.prune_threshold.is_finite() && options.prune_threshold >= 0.0) {
        return Err(ConfigError::PruneThreshold(options.prune_threshold).into());
    }
    let scheme = options.scheme;
    let mut train_set = Vec::new();
    let mut dev_set = Vec::new();
    for (i, s) in sentences.iter().enumerate() {
        if s.is_empty() {
            continue;
        }
        if is_held_out(i, options.dev_every) {
            dev_set.push(s);
        } else {
            train_set.push(s);
        }
    }
    if train_set.is_empty() {
        return Err(ConfigError::NoTrainingSentences.into());
    }
    // The lexicon of the sentences `keep` selects (by index in the training set).
    let lexicon_of = |keep: &dyn Fn(usize) -> bool| {
        let mut lex = Lexicon::default();
        for (_, s) in train_set.iter().enumerate().filter(|(i, _)| keep(*i)) {
            for w in s.iter() {
                lex.add(w, 1);
            }
        }
        lex.retain_min_count(options.lexicon_min_count);
        lex
    };
    let lexicon = if options.ngram.lexicon_features {
        Some(Arc::new(lexicon_of(&|_| true)))
    } else {
        None
    };
    // Character clusters of the training text (its characters only, not
    // its segmentation, so no jackknifing is needed).
    let clusters = if options.char_clusters > 0 {
        let texts: Vec<Vec<char>> = train_set.iter().map(|s| normalize(&s.concat())).collect();
        Some(Arc::new(CharClusters::learn(
            texts.iter().map(Vec::as_slice),
            options.char_clusters,
            CLUSTER_MIN_COUNT,
        )))
    } else {
        None
    };
    let config = CwsModelConfig {
        scheme,
        ngram: options.ngram.clone(),
        lexicon,
        clusters: clusters.clone(),
    };
    let extractor = config.extractor()?;
    let folds = if config.lexicon.is_some() {
        options.lexicon_folds
    } else {
        0
    };
    let (layout, n) = (options.fold_layout, train_set.len());
    let fold_extractors = if folds > 1 {
        (0..folds)
            .map(|f| {
                CwsModelConfig {
                    scheme,
                    ngram: options.ngram.clone(),
                    lexicon: Some(Arc::new(lexicon_of(&|i| layout.fold_of(i, n, folds) != f))),
                    clusters: clusters.clone(),
                }
                .extractor()
            })
            .collect::<Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    Ok(Prepared {
        train_set,
        dev_set,
        config,
        extractor,
        fold_extractors,
    })
}

/// [`train_segmenter`] with a stop flag (see `chaincrf_train::Trainer::stop_flag`)
/// and, with `resume`, continuing from a checkpoint exactly as the run that
/// wrote it would have gone on (`chaincrf_train::Trainer::resume_from`).
/// Progress events give each iteration's model and saved state for
/// checkpoints ([`Progress::model`], [`Progress::saved_state`]).
///
/// The checkpoint must come from a run over the same corpus and options: its
/// labels, attribute ids, extractor configuration and structure are compared
/// with this run's, and a difference is an error.
///
/// # Errors
/// [`Error::Config`] for bad options, [`Error::CheckpointMismatch`] for a
/// checkpoint of another run, [`Error::Train`] when training fails.
pub fn train_segmenter_with(
    sentences: &[Sentence],
    options: &CwsTrainOptions,
    resume: Option<&Checkpoint>,
    stop: Option<Arc<AtomicBool>>,
    on_progress: &mut dyn FnMut(&Progress<'_>),
) -> Result<CwsTrained> {
    let Prepared {
        train_set,
        dev_set,
        config,
        extractor,
        fold_extractors,
    } = prepare(sentences, options)?;
    let scheme = options.scheme;
    let structure = config.structure();
    let labels = LabelAlphabet::from_labels(scheme.labels().iter());
    let folds = fold_extractors.len();
    let spec = config.spec()?;
    let mut builder = DatasetBuilder::new()
        .without_attribute_names()
        .labels(labels.clone())
        .min_count(options.min_freq)
        .extractor(spec)
        .structure(structure);
    for (i, s) in train_set.iter().enumerate() {
        let chars = normalize(&s.concat());
        let tags = scheme.tags_from_words(s);
        let ex = if folds > 1 {
            &fold_extractors[options.fold_layout.fold_of(i, train_set.len(), folds)]
        } else {
            &extractor
        };
        builder.add_target(ex, &chars[..], LabelTarget::Gold(tags))?;
    }
    drop(fold_extractors);
    let data = builder.build();
    let dev = if dev_set.is_empty() {
        None
    } else {
        let mut hb = HeldOutBuilder::new(data.attributes(), data.labels());
        for s in &dev_set {
            let chars = normalize(&s.concat());
            hb.add(&extractor, &chars[..], &scheme.tags_from_words(s))?;
        }
        Some(hb.finish())
    };
    let saved = match resume {
        None => None,
        Some(c) => {
            if !data.has_features_of(&c.model) {
                return Err(Error::CheckpointMismatch);
            }
            Some(SavedState::from_bytes(&c.optimizer)?)
        }
    };
    let mut trainer = Trainer::new(options.params.clone())
        .threads(options.threads)
        .observer(on_progress);
    if let Some(dev) = &dev {
        trainer = trainer.held_out(dev);
    }
    if let Some(p) = options.patience {
        trainer = trainer.early_stopping(p);
    }
    if let Some(flag) = stop {
        trainer = trainer.stop_flag(flag);
    }
    if let Some(state) = saved {
        trainer = trainer.resume_from(state);
    }
    let (mut model, report) = trainer.fit(&data)?.into_parts();
    model.prune_attributes(options.prune_threshold);
    // The n-grams behind the kept attributes, so the segmenter can compile
    // its tables (see `crate::compiled`); the generic path needs none.
    let texts: Vec<Vec<char>> = train_set.iter().map(|s| normalize(&s.concat())).collect();
    if let Some(inventory) = NgramInventory::collect(&extractor, texts.iter().map(Vec::as_slice), model.attributes()) {
        model.set_extractor(config.spec_with_inventory(&inventory)?);
    }
    Ok(CwsTrained {
        model,
        report,
        train_sentences: train_set.len(),
        dev_sentences: dev_set.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::parse_sighan;
    use crate::segmenter::{Segmenter, EXTRACTOR_KIND_CLUSTERS};
    use chaincrf_model::ExtractorSpec;

    #[test]
    fn fold_layouts_deal_every_sentence_into_a_fold() {
        let interleaved: Vec<usize> = (0..7).map(|i| FoldLayout::Interleaved.fold_of(i, 7, 3)).collect();
        assert_eq!(interleaved, [0, 1, 2, 0, 1, 2, 0]);
        let contiguous: Vec<usize> = (0..7).map(|i| FoldLayout::Contiguous.fold_of(i, 7, 3)).collect();
        assert_eq!(contiguous, [0, 0, 0, 1, 1, 2, 2]);
        assert_eq!(FoldLayout::Contiguous.fold_of(0, 0, 3), 0);
    }

    /// A model with character clusters is written under its own kind,
    /// reloads with the same clusters and segments as the trained model did.
    #[test]
    fn a_model_with_clusters_round_trips() {
        let corpus = "我们 是 学生\n学生 们 在 学习\n我们 在 北京 学习\n北京 是 首都\n他们 在 上海 工作\n";
        let sentences = parse_sighan(corpus).unwrap();
        let options = CwsTrainOptions {
            min_freq: 1,
            lexicon_folds: 2,
            fold_layout: FoldLayout::Contiguous,
            char_clusters: 4,
            threads: 1,
            ..CwsTrainOptions::default()
        };
        let trained = train_segmenter(&sentences, &options, &mut |_| {}).unwrap();
        let ExtractorSpec::Custom { kind, .. } = trained.model.extractor() else {
            panic!("a custom extractor");
        };
        assert_eq!(kind, EXTRACTOR_KIND_CLUSTERS);
        let fresh = Segmenter::from_model(trained.model.clone()).unwrap();
        let path = std::env::temp_dir().join(format!("chaincrf-cws-clusters-{}.model", std::process::id()));
        chaincrf_model::save(&trained.model, &path).unwrap();
        let loaded = Segmenter::load(&path).unwrap();
        std::fs::remove_file(&path).ok();
        assert!(loaded.config().clusters.is_some());
        assert_eq!(loaded.config().clusters, fresh.config().clusters);
        for text in ["我们在北京学习", "他们是学生", "新词在上海"] {
            assert_eq!(loaded.words(text).unwrap(), fresh.words(text).unwrap());
        }
        assert_eq!(loaded.words("我们在北京学习").unwrap(), ["我们", "在", "北京", "学习"]);
    }
}
