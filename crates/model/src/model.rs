//! The trained model: labels, attributes, extractor configuration and weights,
//! and how they turn observations into [`Potentials`].
//!
//! Weights come in blocks: a state weight per (attribute, label), laid out so an
//! attribute's `k` label weights are contiguous (one cache line at small `k`);
//! an edge weight per (edge attribute, label pair); a `k × k` transition matrix;
//! start and end scores. The model stores `f32` (half the memory and load time
//! of `f64`, far below the precision that matters for tagging); training works
//! on a flat `f64` vector with the same block order ([`WeightLayout`]), and the
//! same scoring code ([`WeightsView`]) serves both.

use crate::observations::{accumulate_emissions, ObservationArena, Observations};
use chaincrf_core::chain::{ChainWorkspace, Path};
use chaincrf_core::{AllowedLabels, Constrained, Log, MaxPlus, Potentials};
use chaincrf_features::{AttrKind, AttributeDictionary, FeatureExtractor, LabelAlphabet};
use serde::{Deserialize, Serialize};

/// How the model's attributes are extracted from input, so tagging rebuilds
/// exactly the training-time extractor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ExtractorSpec {
    /// CRF++ templates over column data.
    CrfppTemplates {
        /// The template file's text.
        source: String,
        /// Number of feature columns (the label column excluded).
        feature_columns: usize,
    },
    /// CRFsuite attribute data (attributes given in the data).
    CrfsuiteAttributes,
    /// An extractor defined elsewhere (e.g. the CWS n-gram extractor), with its
    /// configuration encoded by its owner (see [`crate::io::encode_payload`]).
    Custom {
        /// Name of the extractor kind, checked when loading.
        kind: String,
        /// Its encoded configuration.
        payload: Vec<u8>,
    },
}

/// Which label-pair, start and end weights exist, and hard structural constraints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Structure {
    /// Whether label-pair (transition) weights are learned.
    pub transitions: bool,
    /// Whether start and end weights are learned.
    pub start_end: bool,
    /// Label pairs that may never follow each other (score −∞).
    pub forbidden_transitions: Vec<(u32, u32)>,
    /// Labels a sequence may not start with.
    pub forbidden_start: Vec<u32>,
    /// Labels a sequence may not end with.
    pub forbidden_end: Vec<u32>,
}

/// Positions of the weight blocks in a flat parameter vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightLayout {
    /// Number of labels.
    pub k: usize,
    /// Number of state attributes.
    pub num_state: usize,
    /// Number of edge attributes.
    pub num_edge: usize,
}

impl WeightLayout {
    /// Start of the edge block.
    pub fn edge_offset(&self) -> usize {
        self.num_state * self.k
    }
    /// Start of the transition block.
    pub fn transition_offset(&self) -> usize {
        self.edge_offset() + self.num_edge * self.k * self.k
    }
    /// Start of the start-score block.
    pub fn start_offset(&self) -> usize {
        self.transition_offset() + self.k * self.k
    }
    /// Start of the end-score block.
    pub fn end_offset(&self) -> usize {
        self.start_offset() + self.k
    }
    /// Total number of weights.
    pub fn len(&self) -> usize {
        self.end_offset() + self.k
    }
    /// Whether the layout holds no weight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Splits a flat vector into its blocks.
    pub fn view<'a, W>(&self, flat: &'a [W]) -> WeightsView<'a, W> {
        WeightsView {
            k: self.k,
            state: &flat[..self.edge_offset()],
            state_stride: self.k,
            edge: &flat[self.edge_offset()..self.transition_offset()],
            transitions: &flat[self.transition_offset()..self.start_offset()],
            start: &flat[self.start_offset()..self.end_offset()],
            end: &flat[self.end_offset()..self.len()],
        }
    }
}

/// Borrowed weight blocks of any float type.
#[derive(Clone, Copy, Debug)]
pub struct WeightsView<'a, W> {
    /// Number of labels.
    pub k: usize,
    /// `num_state` rows of `k` weights, `state_stride` apart.
    pub state: &'a [W],
    /// Distance between the starts of two attributes' rows in `state`: `k`,
    /// unless the rows are interleaved with other data.
    pub state_stride: usize,
    /// `num_edge × k²`.
    pub edge: &'a [W],
    /// `k × k`.
    pub transitions: &'a [W],
    /// `k`.
    pub start: &'a [W],
    /// `k`.
    pub end: &'a [W],
}

impl<W: Copy + Into<f64>> WeightsView<'_, W> {
    /// Computes the potentials of `obs` into `out` (reusing its buffers).
    pub fn score_into(&self, structure: &Structure, obs: &Observations<'_>, out: &mut ScoredChain) {
        let (n, k) = (obs.len(), self.k);
        out.k = k;
        out.emissions.clear();
        out.emissions.resize(n * k, 0.0);
        accumulate_emissions(obs, self.state, k, self.state_stride, &mut out.emissions);
        self.score_structure_into(structure, out);
        out.varying = obs.has_edge_attributes();
        if out.varying {
            let kk = k * k;
            out.edge_transitions.clear();
            out.edge_transitions.resize(n * kk, 0.0);
            for t in 1..n {
                let row = &mut out.edge_transitions[t * kk..(t + 1) * kk];
                row.copy_from_slice(&out.transitions);
                let (ids, values) = obs.edge(t);
                for (i, &id) in ids.iter().enumerate() {
                    let v = values.map_or(1.0, |v| f64::from(v[i]));
                    let w = &self.edge[id as usize * kk..(id as usize + 1) * kk];
                    for (o, &x) in row.iter_mut().zip(w) {
                        *o += v * x.into();
                    }
                }
            }
        }
    }

    /// Fills the parts of `out` that do not depend on the sequence: the
    /// transition matrix, start and end scores, with the structure's forbidden
    /// pairs, starts and ends at −∞.
    fn score_structure_into(&self, structure: &Structure, out: &mut ScoredChain) {
        let k = self.k;
        out.transitions.clear();
        out.transitions.extend(self.transitions.iter().map(|&w| w.into()));
        out.start.clear();
        out.start.extend(self.start.iter().map(|&w| w.into()));
        out.end.clear();
        out.end.extend(self.end.iter().map(|&w| w.into()));
        for &(i, j) in &structure.forbidden_transitions {
            out.transitions[i as usize * k + j as usize] = f64::NEG_INFINITY;
        }
        for &y in &structure.forbidden_start {
            out.start[y as usize] = f64::NEG_INFINITY;
        }
        for &y in &structure.forbidden_end {
            out.end[y as usize] = f64::NEG_INFINITY;
        }
    }
}

/// The potentials of one sequence under a model: emission rows computed from
/// the attributes, the transition matrix (with forbidden pairs at −∞), and, when
/// edge attributes fire, a transition matrix per position.
#[derive(Clone, Debug, Default)]
pub struct ScoredChain {
    k: usize,
    emissions: Vec<f64>,
    transitions: Vec<f64>,
    start: Vec<f64>,
    end: Vec<f64>,
    varying: bool,
    edge_transitions: Vec<f64>,
}

impl ScoredChain {
    /// The emission rows (`n × k`, row-major).
    pub fn emissions(&self) -> &[f64] {
        &self.emissions
    }

    /// Multiplies every score by `factor` (> 0, so −∞ stays −∞): the
    /// potentials of the weights times `factor`, for optimizers that keep
    /// weights as a scale times a vector (SGD's weight decay).
    pub fn scale(&mut self, factor: f64) {
        for x in self
            .emissions
            .iter_mut()
            .chain(&mut self.transitions)
            .chain(&mut self.start)
            .chain(&mut self.end)
            .chain(&mut self.edge_transitions)
        {
            *x *= factor;
        }
    }
}

impl Potentials for ScoredChain {
    #[inline]
    fn len(&self) -> usize {
        self.emissions.len().checked_div(self.k).unwrap_or(0)
    }
    #[inline]
    fn num_labels(&self) -> usize {
        self.k
    }
    #[inline]
    fn emission(&self, t: usize, y: usize) -> f64 {
        self.emissions[t * self.k + y]
    }
    #[inline]
    fn transition(&self, i: usize, j: usize) -> f64 {
        self.transitions[i * self.k + j]
    }
    #[inline]
    fn start(&self, y: usize) -> f64 {
        self.start[y]
    }
    #[inline]
    fn end(&self, y: usize) -> f64 {
        self.end[y]
    }
    fn has_varying_transitions(&self) -> bool {
        self.varying
    }
    fn transition_at(&self, t: usize, i: usize, j: usize) -> f64 {
        if self.varying {
            self.edge_transitions[t * self.k * self.k + i * self.k + j]
        } else {
            self.transition(i, j)
        }
    }
    #[inline]
    fn emission_rows(&self) -> Option<&[f64]> {
        Some(&self.emissions)
    }
    #[inline]
    fn emissions_into(&self, t: usize, out: &mut [f64]) {
        out.copy_from_slice(&self.emissions[t * self.k..(t + 1) * self.k]);
    }
    #[inline]
    fn transitions_into(&self, out: &mut [f64]) {
        out.copy_from_slice(&self.transitions);
    }
    fn transitions_at_into(&self, t: usize, out: &mut [f64]) {
        let kk = self.k * self.k;
        if self.varying {
            out.copy_from_slice(&self.edge_transitions[t * kk..(t + 1) * kk]);
        } else {
            out.copy_from_slice(&self.transitions);
        }
    }
}

/// The model weights, in `f32`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Weights {
    /// `num_state × k`.
    pub state: Vec<f32>,
    /// `num_edge × k²`.
    pub edge: Vec<f32>,
    /// `k × k`.
    pub transitions: Vec<f32>,
    /// `k`.
    pub start: Vec<f32>,
    /// `k`.
    pub end: Vec<f32>,
}

/// A trained chain CRF.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Model {
    /// Label strings.
    pub labels: LabelAlphabet,
    /// Attribute dictionary.
    pub attributes: AttributeDictionary,
    /// How attributes are extracted.
    pub extractor: ExtractorSpec,
    /// Which weight blocks exist, and hard constraints.
    pub structure: Structure,
    /// The weights.
    pub weights: Weights,
}

impl Model {
    /// Number of labels `k`.
    pub fn num_labels(&self) -> usize {
        self.labels.len()
    }

    /// The layout of this model's weights as a flat vector.
    pub fn layout(&self) -> WeightLayout {
        WeightLayout {
            k: self.num_labels(),
            num_state: self.attributes.len(AttrKind::State),
            num_edge: self.attributes.len(AttrKind::Edge),
        }
    }

    /// The weights as borrowed blocks.
    pub fn view(&self) -> WeightsView<'_, f32> {
        WeightsView {
            k: self.num_labels(),
            state: &self.weights.state,
            state_stride: self.num_labels(),
            edge: &self.weights.edge,
            transitions: &self.weights.transitions,
            start: &self.weights.start,
            end: &self.weights.end,
        }
    }

    /// Builds a model from a flat `f64` weight vector laid out by [`Model::layout`]
    /// of the same labels and attributes.
    pub fn from_flat(
        labels: LabelAlphabet,
        attributes: AttributeDictionary,
        extractor: ExtractorSpec,
        structure: Structure,
        flat: &[f64],
    ) -> Self {
        let layout = WeightLayout {
            k: labels.len(),
            num_state: attributes.len(AttrKind::State),
            num_edge: attributes.len(AttrKind::Edge),
        };
        let v = layout.view(flat);
        let f = |s: &[f64]| s.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let weights = Weights {
            state: f(v.state),
            edge: f(v.edge),
            transitions: f(v.transitions),
            start: f(v.start),
            end: f(v.end),
        };
        Model {
            labels,
            attributes,
            extractor,
            structure,
            weights,
        }
    }

    /// The weights as a flat `f64` vector (to continue training).
    pub fn to_flat(&self) -> Vec<f64> {
        let w = &self.weights;
        [&w.state[..], &w.edge, &w.transitions, &w.start, &w.end]
            .iter()
            .flat_map(|b| b.iter().map(|&x| f64::from(x)))
            .collect()
    }

    /// Drops attributes whose weights are all zero (after L1 training, most are),
    /// so the model stores and looks up only what matters. Returns how many
    /// attributes were dropped.
    pub fn prune_zero_attributes(&mut self) -> usize {
        self.prune_attributes(0.0)
    }

    /// Drops attributes whose largest absolute weight is at most `threshold`.
    /// Returns how many attributes were dropped.
    pub fn prune_attributes(&mut self, threshold: f32) -> usize {
        let k = self.num_labels();
        let kk = k * k;
        let before = self.attributes.len(AttrKind::State) + self.attributes.len(AttrKind::Edge);
        let (state, edge) = (&self.weights.state, &self.weights.edge);
        let keep = |kind: AttrKind, id: u32| {
            let id = id as usize;
            let w = match kind {
                AttrKind::State => &state[id * k..(id + 1) * k],
                AttrKind::Edge => &edge[id * kk..(id + 1) * kk],
            };
            w.iter().any(|x| x.abs() > threshold)
        };
        let maps = self.attributes.retain(keep);
        let compact = |w: &[f32], map: &[Option<u32>], width: usize| {
            let mut out = vec![0f32; map.iter().flatten().count() * width];
            for (old, new) in map.iter().enumerate() {
                if let Some(new) = new {
                    let new = *new as usize;
                    out[new * width..(new + 1) * width].copy_from_slice(&w[old * width..(old + 1) * width]);
                }
            }
            out
        };
        self.weights.state = compact(&self.weights.state, &maps[0], k);
        self.weights.edge = compact(&self.weights.edge, &maps[1], kk);
        before - self.attributes.len(AttrKind::State) - self.attributes.len(AttrKind::Edge)
    }

    /// Number of non-zero weights.
    pub fn num_active_weights(&self) -> usize {
        let w = &self.weights;
        [&w.state[..], &w.edge, &w.transitions, &w.start, &w.end]
            .iter()
            .map(|b| b.iter().filter(|x| **x != 0.0).count())
            .sum()
    }

    /// A tagger borrowing this model, with its own reusable buffers.
    pub fn tagger(&self) -> Tagger<'_> {
        Tagger::new(self)
    }
}

/// Tags sequences with a model. Holds every buffer it needs, so tagging many
/// sequences with one tagger allocates only when a longer sequence arrives.
/// Not `Sync`: give each thread its own (they share the `&Model`).
#[derive(Debug)]
pub struct Tagger<'m> {
    model: &'m Model,
    arena: ObservationArena,
    scored: ScoredChain,
    best: ChainWorkspace<MaxPlus>,
    log: ChainWorkspace<Log>,
}

impl<'m> Tagger<'m> {
    /// A tagger for `model`.
    pub fn new(model: &'m Model) -> Self {
        Tagger {
            model,
            arena: ObservationArena::new(),
            scored: ScoredChain::default(),
            best: ChainWorkspace::new(),
            log: ChainWorkspace::new(),
        }
    }

    /// The model.
    pub fn model(&self) -> &'m Model {
        self.model
    }

    /// Extracts the attributes of `input` and computes its potentials; the other
    /// methods then work on this sequence.
    pub fn observe<E: FeatureExtractor + ?Sized>(&mut self, extractor: &E, input: &E::Input) -> &ScoredChain {
        self.arena.clear();
        self.arena.push(extractor, input, &self.model.attributes);
        let obs = self.arena.sequence(0);
        self.model
            .view()
            .score_into(&self.model.structure, &obs, &mut self.scored);
        &self.scored
    }

    /// Takes a sequence of `n` positions whose emission rows are computed
    /// elsewhere, by an extractor with its own compiled weight tables (the
    /// segmenter's n-gram tables): `fill` receives the `n × k` rows, zeroed,
    /// and adds the scores; the model's transitions, start and end scores and
    /// its structure apply as in [`Tagger::observe`]. The other methods then
    /// work on this sequence.
    pub fn observe_emissions(&mut self, n: usize, fill: impl FnOnce(&mut [f64])) -> &ScoredChain {
        let view = self.model.view();
        let out = &mut self.scored;
        out.k = view.k;
        out.emissions.clear();
        out.emissions.resize(n * view.k, 0.0);
        fill(&mut out.emissions);
        view.score_structure_into(&self.model.structure, out);
        out.varying = false;
        &self.scored
    }

    /// Tags `input`: its best label path, as label names.
    ///
    /// # Errors
    /// [`chaincrf_core::Error::NoFeasiblePath`] when the model's constraints
    /// leave no path (or the scores are not finite).
    pub fn tag<E: FeatureExtractor + ?Sized>(
        &mut self,
        extractor: &E,
        input: &E::Input,
    ) -> chaincrf_core::Result<Vec<&'m str>> {
        self.observe(extractor, input);
        let path = self.viterbi(None)?;
        let labels = &self.model.labels;
        Ok(path.labels.iter().map(|&y| labels.label(y as u32)).collect())
    }

    /// The potentials of the sequence last observed.
    pub fn potentials(&self) -> &ScoredChain {
        &self.scored
    }

    /// The best label path of the observed sequence, optionally within `allowed`.
    ///
    /// # Errors
    /// [`chaincrf_core::Error::NoFeasiblePath`] when the constraints leave no path.
    pub fn viterbi(&mut self, allowed: Option<&AllowedLabels>) -> chaincrf_core::Result<Path> {
        match allowed {
            None => self.best.viterbi(&self.scored),
            Some(a) => self.best.viterbi(&Constrained::new(&self.scored, a)?),
        }
    }

    /// The `count` best paths, best first.
    ///
    /// # Errors
    /// As [`Tagger::viterbi`].
    pub fn nbest(&mut self, count: usize, allowed: Option<&AllowedLabels>) -> chaincrf_core::Result<Vec<Path>> {
        match allowed {
            None => self.best.kbest(&self.scored, count),
            Some(a) => self.best.kbest(&Constrained::new(&self.scored, a)?, count),
        }
    }

    /// Node marginals (`n × k`) into `out`; returns log Z.
    ///
    /// # Errors
    /// As [`Tagger::viterbi`].
    pub fn marginals(&mut self, allowed: Option<&AllowedLabels>, out: &mut Vec<f64>) -> chaincrf_core::Result<f64> {
        out.resize(self.scored.len() * self.scored.num_labels(), 0.0);
        match allowed {
            None => self.log.marginals_into(&self.scored, out),
            Some(a) => self.log.marginals_into(&Constrained::new(&self.scored, a)?, out),
        }
    }

    /// log Z of the observed sequence (optionally constrained).
    ///
    /// # Errors
    /// As [`Tagger::viterbi`].
    pub fn log_partition(&mut self, allowed: Option<&AllowedLabels>) -> chaincrf_core::Result<f64> {
        Ok(match allowed {
            None => self.log.forward(&self.scored)?.log_value(),
            Some(a) => self.log.forward(&Constrained::new(&self.scored, a)?)?.log_value(),
        })
    }
}
