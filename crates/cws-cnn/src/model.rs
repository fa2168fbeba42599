//! CNN segmentation models in chaincrf's model file format.
//!
//! A CNN model is an ordinary [`Model`] without attributes: its labels are
//! the tag scheme's tags, its transition, start and end weights are the CRF
//! layer's, and its structure forbids the scheme's illegal tag pairs, exactly
//! as for the feature segmenter. The network travels as the payload of a
//! custom extractor of kind [`CNN_KIND`]; the kind's name carries the version
//! of the payload, so a later layout gets a new name and this build reports it
//! as unknown instead of misreading it. The file's length and checksum catch
//! truncation and corruption before the payload is decoded, and the decoded
//! network is checked for consistent shapes and finite weights.

use crate::error::{model_error, Error, Result};
use crate::network::{CnnWeights, Scratch};
use chaincrf_cws::{CwsModelConfig, EmissionScorer, Segmenter, TagScheme};
use chaincrf_features::{AttributeDictionary, LabelAlphabet};
use chaincrf_model::{ExtractorSpec, Model};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;

/// The extractor kind of CNN segmentation models (payload [`CnnPayload`], version 1).
pub const CNN_KIND: &str = "chaincrf-cws/cnn-v1";

/// What a CNN model stores beside the CRF's weights.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CnnPayload {
    /// The tag scheme (labels are its tags in order).
    pub scheme: TagScheme,
    /// The network.
    pub network: CnnWeights,
}

/// The CRF layer's scores: `transitions` `[k, k]` row-major (from row tag to
/// column tag), `start` and `end` `[k]`.
#[derive(Clone, Debug, PartialEq)]
pub struct CrfWeights {
    /// `[k, k]`, row-major.
    pub transitions: Vec<f32>,
    /// `[k]`.
    pub start: Vec<f32>,
    /// `[k]`.
    pub end: Vec<f32>,
}

/// Builds the model file's [`Model`] from a network and the CRF's scores.
///
/// # Errors
/// [`Error::SchemeMismatch`] when the pieces do not fit the scheme,
/// [`Error::Payload`] when the network cannot be encoded.
pub fn to_model(scheme: TagScheme, network: &CnnWeights, crf: &CrfWeights) -> Result<Model> {
    let k = scheme.num_tags();
    if network.num_tags != k || crf.transitions.len() != k * k || crf.start.len() != k || crf.end.len() != k {
        return Err(Error::SchemeMismatch);
    }
    let payload = chaincrf_model::encode_payload(&CnnPayload {
        scheme,
        network: network.clone(),
    })
    .map_err(Error::Payload)?;
    let config = CwsModelConfig {
        scheme,
        ngram: Default::default(),
        lexicon: None,
        clusters: None,
    };
    let flat: Vec<f64> = crf
        .transitions
        .iter()
        .chain(&crf.start)
        .chain(&crf.end)
        .map(|&w| f64::from(w))
        .collect();
    Ok(Model::from_flat(
        LabelAlphabet::from_labels(scheme.labels().iter().copied()),
        AttributeDictionary::default(),
        ExtractorSpec::Custom {
            kind: CNN_KIND.into(),
            payload,
        },
        config.structure(),
        &flat,
    ))
}

/// The network and scheme of a CNN model, or `None` when `model` is of
/// another kind.
///
/// # Errors
/// [`chaincrf_cws::Error::Model`] for a CNN model whose payload is unusable.
pub fn cnn_payload(model: &Model) -> Result<Option<CnnPayload>> {
    let ExtractorSpec::Custom { kind, payload } = model.extractor() else {
        return Ok(None);
    };
    if kind != CNN_KIND {
        if kind.starts_with("chaincrf-cws/cnn-") {
            return Err(model_error(format!(
                "a CNN model of kind {kind:?}, which this build does not read (it reads {CNN_KIND:?})"
            )));
        }
        return Ok(None);
    }
    let bad = |e: String| model_error(format!("bad CNN network: {e}"));
    let mut p: CnnPayload = chaincrf_model::decode_payload(payload).map_err(|e| bad(e.to_string()))?;
    p.network.finish().map_err(|e| bad(e.to_string()))?;
    if p.network.num_tags != p.scheme.num_tags() || model.num_labels() != p.scheme.num_tags() {
        return Err(bad("the network's tags do not match its tag scheme".into()));
    }
    if !model.attributes().is_empty() {
        return Err(bad("a CNN model has no attributes".into()));
    }
    Ok(Some(p))
}

/// The network as the segmenter's emission scorer.
#[derive(Debug)]
struct Scorer(CnnWeights);

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl EmissionScorer for Scorer {
    fn add_emissions(&self, chars: &[char], out: &mut [f64]) {
        SCRATCH.with(|s| self.0.add_scores(chars, out, &mut s.borrow_mut()));
    }
}

/// A segmenter for `model`: a CNN model's network scores the characters, any
/// other model goes to [`Segmenter::from_model`].
///
/// # Errors
/// As [`Segmenter::from_model`], and [`cnn_payload`]'s.
pub fn segmenter_from_model(model: Model) -> Result<Segmenter> {
    Ok(match cnn_payload(&model)? {
        Some(p) => Segmenter::with_emission_scorer(model, p.scheme, Arc::new(Scorer(p.network)))?,
        None => Segmenter::from_model(model)?,
    })
}

/// Loads any segmentation model file, CNN or feature-based (what `chaincrf
/// cws segment` calls).
///
/// # Errors
/// I/O and format errors naming the file.
pub fn load_segmenter(path: impl AsRef<Path>) -> Result<Segmenter> {
    let path = path.as_ref();
    let model = chaincrf_model::load(path).map_err(|e| model_error(e.to_string()))?;
    segmenter_from_model(model).map_err(|e| match e {
        Error::Cws(chaincrf_cws::Error::Model(m)) => model_error(format!("{}: {m}", path.display())),
        other => model_error(format!("{}: {other}", path.display())),
    })
}

thread_local! {
    static FUSED_SCRATCH: RefCell<(Scratch, Vec<f64>)> = RefCell::new(Default::default());
}

/// The weighted sum of a network's scores and a feature model's emissions.
#[derive(Debug)]
struct Fused {
    network: CnnWeights,
    weight: f64,
    feature: Model,
    extractor: chaincrf_cws::NgramExtractor,
}

impl EmissionScorer for Fused {
    fn add_emissions(&self, chars: &[char], out: &mut [f64]) {
        FUSED_SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            let (scratch, cnn) = &mut *s;
            cnn.clear();
            cnn.resize(out.len(), 0.0);
            self.network.add_scores(chars, cnn, scratch);
            let mut tagger = self.feature.tagger();
            let feature = tagger.observe(&self.extractor, chars).emissions();
            for ((o, c), f) in out.iter_mut().zip(cnn.iter()).zip(feature) {
                *o += self.weight * c + f;
            }
        });
    }
}

/// Both kinds of emissions together (late fusion, `docs/neural.md`): a
/// segmenter whose emission, transition, start and end scores are
/// `weight · CNN + feature CRF`, for a CNN model and a feature model trained
/// separately on the same scheme. On the held-out part of `199801.txt` a
/// weight of 0.25 scored F1 0.9736 against the feature model's 0.9721; it
/// segments at the network's speed. User dictionaries and `--keep-latin`
/// apply to the sum as to any segmenter.
///
/// # Errors
/// [`chaincrf_cws::Error::Model`] when `cnn` is not a CNN model, `feature` is not a
/// feature (n-gram) model, their tag schemes differ, or `weight` is not a
/// finite number ≥ 0.
pub fn fused_segmenter(feature: &Segmenter, cnn: &Model, weight: f64) -> Result<Segmenter> {
    if !(weight.is_finite() && weight >= 0.0) {
        return Err(model_error(format!(
            "the CNN weight must be a finite number >= 0, not {weight}"
        )));
    }
    let payload = cnn_payload(cnn)?.ok_or_else(|| model_error("the model to add is not a CNN model".into()))?;
    if feature.model().attributes().is_empty() || feature.is_semi_markov() {
        return Err(model_error(
            "the CNN is added to a feature model (n-gram features, not semi-Markov, not CNN)".into(),
        ));
    }
    if feature.config().scheme != payload.scheme {
        return Err(model_error(format!(
            "the models' tag schemes differ ({} and {})",
            feature.config().scheme.name(),
            payload.scheme.name()
        )));
    }
    let (cv, fv) = (cnn.view(), feature.model().view());
    let sum = |a: &[f32], b: &[f32]| -> Vec<f32> {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| (weight * f64::from(x) + f64::from(y)) as f32)
            .collect()
    };
    let crf = CrfWeights {
        transitions: sum(cv.transitions, fv.transitions),
        start: sum(cv.start, fv.start),
        end: sum(cv.end, fv.end),
    };
    let model = to_model(payload.scheme, &payload.network, &crf)?;
    let scorer = Fused {
        network: payload.network,
        weight,
        feature: feature.model().clone(),
        extractor: feature.config().extractor()?,
    };
    Ok(Segmenter::with_emission_scorer(
        model,
        payload.scheme,
        Arc::new(scorer),
    )?)
}
