//! Training a segmenter from a segmented corpus (feature `train`).
//!
//! Sentences become character sequences tagged by the scheme; attributes come
//! from the n-gram extractor over width-normalized characters; the model is
//! trained by `chaincrf-train` with the scheme's illegal tag pairs forbidden, so
//! training and decoding see the same constrained model. Every N-th sentence can
//! be held out for per-iteration accuracy and early stopping.

use crate::corpus::Sentence;
use crate::error::{Error, Result};
use crate::lexicon::Lexicon;
use crate::ngram::NgramConfig;
use crate::normalize::normalize;
use crate::scheme::TagScheme;
use crate::segmenter::CwsModelConfig;
use chaincrf_features::LabelAlphabet;
use chaincrf_model::Model;
use chaincrf_train::{train, DatasetBuilder, HeldOutBuilder, LabelTarget, Progress, TrainOutcome, TrainParams};

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
    /// Optimizer parameters.
    pub params: TrainParams,
}

impl Default for CwsTrainOptions {
    fn default() -> Self {
        CwsTrainOptions {
            scheme: TagScheme::Bmes,
            ngram: NgramConfig::default(),
            lexicon_min_count: 1,
            min_freq: 1,
            dev_every: None,
            params: TrainParams::new(),
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

/// Trains a segmenter on `sentences` (each a list of words).
///
/// # Errors
/// [`Error::Config`] for bad options or when training fails.
pub fn train_segmenter(
    sentences: &[Sentence],
    options: &CwsTrainOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<CwsTrained> {
    options.ngram.validate()?;
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
    let lexicon = if options.ngram.lexicon_features {
        let owned: Vec<Sentence> = train_set.iter().map(|s| (*s).clone()).collect();
        let mut lex = Lexicon::from_sentences(&owned);
        lex.retain_min_count(options.lexicon_min_count);
        Some(lex)
    } else {
        None
    };
    let config = CwsModelConfig { scheme, ngram: options.ngram.clone(), lexicon };
    let extractor = config.extractor()?;
    let structure = config.structure();
    let labels = LabelAlphabet::from_labels(scheme.labels().iter());
    let mut builder = DatasetBuilder::new(false).with_labels(labels.clone());
    for s in &train_set {
        let chars = normalize(&s.concat());
        let tags = scheme.tags_from_words(s);
        builder.add(&extractor, &chars[..], LabelTarget::Gold(tags)).map_err(Error::Config)?;
    }
    let data = builder.finish(options.min_freq);
    let dev = if dev_set.is_empty() {
        None
    } else {
        let mut hb = HeldOutBuilder::new(&data.attributes, &data.labels);
        for s in &dev_set {
            let chars = normalize(&s.concat());
            hb.add(&extractor, &chars[..], &scheme.tags_from_words(s)).map_err(Error::Config)?;
        }
        Some(hb.finish())
    };
    let layout = chaincrf_model::WeightLayout {
        k: scheme.num_tags(),
        num_state: data.attributes.len(chaincrf_features::AttrKind::State),
        num_edge: 0,
    };
    let mut on_iter = |p: &Progress, w: &[f64]| -> Option<f64> {
        let acc = dev.as_ref().map(|d| chaincrf_train::dev_accuracy(d, layout, &structure, w));
        let mut p = p.clone();
        p.dev_accuracy = acc;
        progress(&p);
        acc
    };
    let outcome = train(&data, &structure, &options.params, None, &mut on_iter).map_err(|e| Error::Config(e.to_string()))?;
    let mut model = Model::from_flat(data.labels.clone(), data.attributes.clone(), config.spec()?, structure.clone(), &outcome.weights);
    model.prune_zero_attributes();
    Ok(CwsTrained { model, outcome, train_sentences: train_set.len(), dev_sentences: dev_set.len() })
}
