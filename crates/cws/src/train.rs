//! Training a segmenter from a segmented corpus (feature `train`).
//!
//! Sentences become character sequences tagged by the scheme; attributes come
//! from the n-gram extractor over width-normalized characters; the model is
//! trained by `chaincrf-train` with the scheme's illegal tag pairs forbidden, so
//! training and decoding see the same constrained model. Every N-th sentence can
//! be held out for per-iteration accuracy and early stopping.

use crate::compiled::NgramInventory;
use crate::corpus::Sentence;
use crate::error::{Error, Result};
use crate::lexicon::Lexicon;
use crate::ngram::NgramConfig;
use crate::normalize::normalize;
use crate::scheme::TagScheme;
use crate::segmenter::CwsModelConfig;
use chaincrf_features::{AttrKind, LabelAlphabet};
use chaincrf_model::io::Checkpoint;
use chaincrf_model::{ExtractorSpec, Model, Structure};
use chaincrf_train::{
    train, Dataset, DatasetBuilder, HeldOutBuilder, Iteration, LabelTarget, OptimizerState, Progress, TrainOutcome,
    TrainParams,
};
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
    /// The final model drops attributes whose weights are all at most this
    /// in absolute value (see `chaincrf prune`). Default
    /// [`DEFAULT_PRUNE_THRESHOLD`].
    pub prune_threshold: f32,
    /// Optimizer parameters.
    pub params: TrainParams,
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
            prune_threshold: DEFAULT_PRUNE_THRESHOLD,
            params: TrainParams::new()
                .c2(1.0)
                .sgd_epochs(DEFAULT_SGD_EPOCHS)
                .max_iterations(Some(DEFAULT_MAX_ITERATIONS)),
        }
    }
}

/// A trained segmenter model and how training went.
#[derive(Debug)]
pub struct CwsTrained {
    /// The model (save it with `chaincrf_model::save`).
    pub model: Model,
    /// Optimizer outcome.
    pub outcome: TrainOutcome,
    /// Sentences trained on.
    pub train_sentences: usize,
    /// Sentences held out.
    pub dev_sentences: usize,
}

/// Whether sentence `i` is held out under `dev_every`.
pub fn is_held_out(i: usize, dev_every: Option<usize>) -> bool {
    matches!(dev_every, Some(n) if n > 0 && i % n == n - 1)
}

/// One finished training iteration, as [`train_segmenter_with`] reports it.
#[derive(Debug)]
pub struct CwsIteration<'a> {
    /// How the iteration went (held-out accuracy filled in when there is a held-out part).
    pub progress: &'a Progress,
    data: &'a Dataset,
    spec: &'a ExtractorSpec,
    structure: &'a Structure,
    trainer: &'a Iteration<'a>,
}

impl CwsIteration<'_> {
    /// The iteration's weights, in the layout of [`CwsIteration::model`]
    /// (computed on first use; see `chaincrf_train::Iteration::weights`).
    pub fn weights(&self) -> &[f64] {
        self.trainer.weights()
    }

    /// The model of these weights with the run's complete attribute dictionary
    /// (nothing pruned, unlike the final model), as a checkpoint needs it.
    pub fn model(&self) -> Model {
        Model::from_flat(
            self.data.labels.clone(),
            self.data.attributes.clone(),
            self.spec.clone(),
            self.structure.clone(),
            self.weights(),
        )
    }

    /// A checkpoint of this iteration (see `chaincrf_model::io::save_checkpoint`),
    /// with the optimizer's state, so that a run resumed from it ends with the
    /// model an uninterrupted run would have produced.
    ///
    /// # Errors
    /// A message when the optimizer state cannot be encoded.
    pub fn checkpoint(&self, fingerprint: u64) -> std::result::Result<Checkpoint, String> {
        Ok(Checkpoint {
            iteration: self.progress.iteration,
            fingerprint,
            weights: self.weights().to_vec(),
            model: self.model(),
            optimizer: self.trainer.optimizer_state()?,
        })
    }
}

/// Trains a segmenter on `sentences` (each a list of words).
///
/// # Errors
/// [`Error::Config`] for bad options or when training fails.
pub fn train_segmenter(
    sentences: &[Sentence],
    options: &CwsTrainOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<CwsTrained> {
    train_segmenter_with(sentences, options, None, &mut |it| progress(it.progress))
}

/// Whether a checkpoint was made by a run over the same features: same labels,
/// same attributes with the same ids, same extractor configuration (lexicon
/// included) and structure.
fn checkpoint_matches(c: &Checkpoint, data: &Dataset, spec: &ExtractorSpec, structure: &Structure) -> bool {
    let (m, d) = (&c.model, &data.attributes);
    m.labels.labels() == data.labels.labels()
        && m.extractor == *spec
        && m.structure == *structure
        && [AttrKind::State, AttrKind::Edge].into_iter().all(|kind| {
            m.attributes.len(kind) == d.len(kind)
                && (0..d.len(kind) as u32).all(|id| m.attributes.key(kind, id) == d.key(kind, id))
        })
}

/// [`train_segmenter`] with a per-iteration view of the weights (for
/// checkpoints) and, with `resume`, continuing from a checkpoint exactly as
/// the run that wrote it would have gone on (`chaincrf_train::resume`).
/// `options.params` may carry a stop flag.
///
/// The checkpoint must come from a run over the same corpus and options: its
/// labels, attribute ids, extractor configuration and structure are compared
/// with this run's, and a difference is an error.
///
/// # Errors
/// [`Error::Config`] for bad options, a checkpoint of another run, or when
/// training fails.
pub fn train_segmenter_with(
    sentences: &[Sentence],
    options: &CwsTrainOptions,
    resume: Option<&Checkpoint>,
    on_iteration: &mut dyn FnMut(&CwsIteration<'_>),
) -> Result<CwsTrained> {
    options.ngram.validate()?;
    if !(options.prune_threshold.is_finite() && options.prune_threshold >= 0.0) {
        return Err(Error::Config(format!(
            "the prune threshold must be a finite number ≥ 0, not {}",
            options.prune_threshold
        )));
    }
    let scheme = options.scheme;
    let (train_set, dev_set): (Vec<&Sentence>, Vec<&Sentence>) = {
        let mut tr = Vec::new();
        let mut dv = Vec::new();
        for (i, s) in sentences.iter().enumerate() {
            if s.is_empty() {
                continue;
            }
            if is_held_out(i, options.dev_every) {
                dv.push(s);
            } else {
                tr.push(s);
            }
        }
        (tr, dv)
    };
    if train_set.is_empty() {
        return Err(Error::Config("no training sentences".into()));
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
    let config = CwsModelConfig {
        scheme,
        ngram: options.ngram.clone(),
        lexicon,
    };
    let extractor = config.extractor()?;
    let structure = config.structure();
    let labels = LabelAlphabet::from_labels(scheme.labels().iter());
    // One extractor per fold, each with a lexicon that leaves that fold out.
    let folds = if config.lexicon.is_some() {
        options.lexicon_folds
    } else {
        0
    };
    let fold_extractors = if folds > 1 {
        (0..folds)
            .map(|f| {
                CwsModelConfig {
                    scheme,
                    ngram: options.ngram.clone(),
                    lexicon: Some(Arc::new(lexicon_of(&|i| i % folds != f))),
                }
                .extractor()
            })
            .collect::<Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    let mut builder = DatasetBuilder::new(false).with_labels(labels.clone());
    for (i, s) in train_set.iter().enumerate() {
        let chars = normalize(&s.concat());
        let tags = scheme.tags_from_words(s);
        let ex = if folds > 1 {
            &fold_extractors[i % folds]
        } else {
            &extractor
        };
        builder
            .add(ex, &chars[..], LabelTarget::Gold(tags))
            .map_err(Error::Config)?;
    }
    drop(fold_extractors);
    let data = builder.finish(options.min_freq);
    let dev = if dev_set.is_empty() {
        None
    } else {
        let mut hb = HeldOutBuilder::new(&data.attributes, &data.labels);
        for s in &dev_set {
            let chars = normalize(&s.concat());
            hb.add(&extractor, &chars[..], &scheme.tags_from_words(s))
                .map_err(Error::Config)?;
        }
        Some(hb.finish())
    };
    let layout = chaincrf_model::WeightLayout {
        k: scheme.num_tags(),
        num_state: data.attributes.len(chaincrf_features::AttrKind::State),
        num_edge: 0,
    };
    let spec = config.spec()?;
    let saved = match resume {
        None => None,
        Some(c) => {
            if !checkpoint_matches(c, &data, &spec, &structure) {
                return Err(Error::Config(
                    "the checkpoint was written by a run over a different corpus or with different feature options; \
                     start over without resuming"
                        .into(),
                ));
            }
            Some(OptimizerState::from_bytes(&c.optimizer).map_err(Error::Config)?)
        }
    };
    let mut on_iter = |it: &Iteration<'_>| -> Option<f64> {
        let acc = dev
            .as_ref()
            .map(|d| chaincrf_train::dev_accuracy(d, layout, &structure, it.weights()));
        let mut p = it.progress.clone();
        p.dev_accuracy = acc;
        on_iteration(&CwsIteration {
            progress: &p,
            data: &data,
            spec: &spec,
            structure: &structure,
            trainer: it,
        });
        acc
    };
    let params = &options.params;
    let outcome = match saved {
        None => train(&data, &structure, params, None, &mut on_iter),
        Some(state) => chaincrf_train::resume(&data, &structure, params, state, &mut on_iter),
    }
    .map_err(|e| Error::Config(e.to_string()))?;
    let mut model = Model::from_flat(
        data.labels.clone(),
        data.attributes.clone(),
        spec.clone(),
        structure.clone(),
        &outcome.weights,
    );
    model.prune_attributes(options.prune_threshold);
    // The n-grams behind the kept attributes, so the segmenter can compile
    // its tables (see `crate::compiled`); the generic path needs none.
    let texts: Vec<Vec<char>> = train_set.iter().map(|s| normalize(&s.concat())).collect();
    if let Some(inventory) = NgramInventory::collect(&extractor, texts.iter().map(Vec::as_slice), &model.attributes) {
        model.extractor = config.spec_with_inventory(&inventory)?;
    }
    Ok(CwsTrained {
        model,
        outcome,
        train_sentences: train_set.len(),
        dev_sentences: dev_set.len(),
    })
}
