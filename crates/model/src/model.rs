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
//!
//! A model read from a file that stores `f64` weights (CRFsuite's, see
//! [`crate::load`]) also keeps them exactly ([`ExactWeights`]), so that
//! it tags exactly as the program that trained it: its scores are then computed
//! from the `f64` weights and the attribute values in full precision, in the
//! order the input gives them (CRFsuite's order of summation). The `f32` blocks
//! still hold the weights (rounded), so code that reads `f32` weights directly
//! works on every model; chaincrf's own models have no exact copy and take the
//! `f32` path unchanged.

use crate::observations::{accumulate_emissions, add_sparse_row, ObservationArena, Observations};
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
    /// The layout of a model with these labels and attributes.
    fn of(labels: &LabelAlphabet, attributes: &AttributeDictionary) -> Self {
        WeightLayout {
            k: labels.len(),
            num_state: attributes.len(AttrKind::State),
            num_edge: attributes.len(AttrKind::Edge),
        }
    }

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
            state: StateRows::dense(&flat[..self.edge_offset()], self.k),
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
    /// The state weights, one row per attribute.
    pub state: StateRows<'a, W>,
    /// `num_edge × k²`.
    pub edge: &'a [W],
    /// `k × k`.
    pub transitions: &'a [W],
    /// `k`.
    pub start: &'a [W],
    /// `k`.
    pub end: &'a [W],
}

/// The state weights of a [`WeightsView`]: for each attribute, its weight
/// for each label.
///
/// Dense rows hold all `k` labels of every attribute: one contiguous,
/// vectorizable row per attribute, the best layout when most attributes
/// occur with most labels (few labels, or every pair trained). Sparse rows
/// hold only the labels an attribute has weights for (CRFsuite's observed
/// pairs): with many labels, most attributes occur with a few of them (about
/// 2 of 43 on PKU part-of-speech tagging), and a dense row would make every
/// occurrence read and write 43 values to use 2.
#[derive(Clone, Copy, Debug)]
pub enum StateRows<'a, W> {
    /// Attribute `a`'s `k` weights at `weights[a · stride..][..k]`; `stride` is
    /// `k` unless the rows are interleaved with other data.
    Dense {
        /// The rows.
        weights: &'a [W],
        /// Distance between the starts of two attributes' rows.
        stride: usize,
    },
    /// Attribute `a`'s weights are the entries `starts[a]..starts[a + 1]` of
    /// `weights`, entry `e` for label `labels[e]`, in increasing label order;
    /// labels an attribute has no entry for score 0. An attribute may have
    /// entries of weight 0 (a trainer pads the attributes that have most
    /// labels to all `k`, whose rows are then added as dense ones).
    Sparse {
        /// Entry range of each attribute (`num_state + 1` offsets).
        starts: &'a [u32],
        /// The label of each entry.
        labels: &'a [u32],
        /// The weight of each entry.
        weights: &'a [W],
    },
}

impl<'a, W> StateRows<'a, W> {
    /// Dense rows of `k` weights, back to back.
    pub fn dense(weights: &'a [W], k: usize) -> Self {
        StateRows::Dense { weights, stride: k }
    }

    /// The rows as one slice when they are dense and back to back (a
    /// model's own weights always are).
    pub fn as_dense(&self) -> Option<&'a [W]> {
        match self {
            StateRows::Dense { weights, .. } => Some(*weights),
            StateRows::Sparse { .. } => None,
        }
    }
}

impl<W: Copy> StateRows<'_, W> {
    /// The weight of `attribute` for `label`; `None` when sparse rows have no
    /// entry for the pair (it scores 0).
    pub fn get(&self, attribute: usize, label: usize) -> Option<W> {
        match *self {
            StateRows::Dense { weights, stride } => Some(weights[attribute * stride + label]),
            StateRows::Sparse {
                starts,
                labels,
                weights,
            } => {
                let entries = starts[attribute] as usize..starts[attribute + 1] as usize;
                let at = labels[entries.clone()].iter().position(|&y| y as usize == label)?;
                Some(weights[entries.start + at])
            }
        }
    }
}

impl<W: Copy + Into<f64>> WeightsView<'_, W> {
    /// Computes the potentials of `obs` into `out` (reusing its buffers).
    pub fn score_into(&self, structure: &Structure, obs: &Observations<'_>, out: &mut ScoredChain) {
        let (n, k) = (obs.len(), self.k);
        out.k = k;
        out.emissions.clear();
        out.emissions.resize(n * k, 0.0);
        accumulate_emissions(obs, self.state, k, &mut out.emissions);
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

    /// Computes the potentials of `input` into `out` straight from the
    /// extractor, without an [`ObservationArena`]: attribute values stay `f64`
    /// and each position's attributes are added in the order the extractor
    /// emits them, as CRFsuite does. The path of models with
    /// [`ExactWeights`]; attributes the dictionary lacks are ignored, edge
    /// attributes at the first position too (as [`ObservationArena`] does).
    pub(crate) fn score_exactly_into<E: FeatureExtractor + ?Sized>(
        &self,
        structure: &Structure,
        extractor: &E,
        input: &E::Input,
        attributes: &AttributeDictionary,
        out: &mut ScoredChain,
    ) {
        let (n, k) = (extractor.len(input), self.k);
        let kk = k * k;
        out.k = k;
        out.emissions.clear();
        out.emissions.resize(n * k, 0.0);
        self.score_structure_into(structure, out);
        out.varying = false;
        out.edge_transitions.clear();
        for t in 0..n {
            extractor.extract(input, t, &mut |attr| {
                let Some(id) = attributes.lookup(&attr) else {
                    return;
                };
                let (id, v) = (id as usize, attr.value);
                match attr.kind {
                    AttrKind::State => {
                        let row = &mut out.emissions[t * k..(t + 1) * k];
                        match self.state {
                            StateRows::Dense { weights, stride } => {
                                for (o, &x) in row.iter_mut().zip(&weights[id * stride..][..k]) {
                                    *o += v * x.into();
                                }
                            }
                            StateRows::Sparse {
                                starts,
                                labels,
                                weights,
                            } => {
                                let entries = starts[id] as usize..starts[id + 1] as usize;
                                add_sparse_row(row, &labels[entries.clone()], &weights[entries], v);
                            }
                        }
                    }
                    AttrKind::Edge if t > 0 => {
                        if !out.varying {
                            out.varying = true;
                            out.edge_transitions.clear();
                            for _ in 0..n {
                                out.edge_transitions.extend_from_slice(&out.transitions);
                            }
                        }
                        let w = &self.edge[id * kk..(id + 1) * kk];
                        for (o, &x) in out.edge_transitions[t * kk..(t + 1) * kk].iter_mut().zip(w) {
                            *o += v * x.into();
                        }
                    }
                    AttrKind::Edge => {}
                }
            });
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

    /// The transition scores (`k × k`, row-major; those between positions
    /// when [`Potentials::has_varying_transitions`] is false).
    pub fn transitions(&self) -> &[f64] {
        &self.transitions
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

/// The model weights, in `f32`, and for models read from a file that stores
/// them in `f64` (CRFsuite's) also those exactly.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Weights {
    /// `num_state × k`.
    pub(crate) state: Vec<f32>,
    /// `num_edge × k²`.
    pub(crate) edge: Vec<f32>,
    /// `k × k`.
    pub(crate) transitions: Vec<f32>,
    /// `k`.
    pub(crate) start: Vec<f32>,
    /// `k`.
    pub(crate) end: Vec<f32>,
    /// The weights in full `f64` precision, when the model was read from a
    /// file that stores them so (`state` ... `end` then hold them rounded).
    /// Tagging uses them when present. The model file format stores them
    /// after the model's body (see [`crate::io`]), so serde skips them here.
    #[serde(skip)]
    pub(crate) exact: Option<Box<ExactWeights>>,
}

/// Model weights in `f64`, for [`Model::from_exact`]: the blocks of the
/// flat layout ([`WeightLayout`]), each its own vector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExactWeights {
    /// `num_state × k`.
    pub state: Vec<f64>,
    /// `num_edge × k²`.
    pub edge: Vec<f64>,
    /// `k × k`.
    pub transitions: Vec<f64>,
    /// `k`.
    pub start: Vec<f64>,
    /// `k`.
    pub end: Vec<f64>,
}

impl ExactWeights {
    /// The blocks, for `k` labels.
    pub fn view(&self, k: usize) -> WeightsView<'_, f64> {
        WeightsView {
            k,
            state: StateRows::dense(&self.state, k),
            edge: &self.edge,
            transitions: &self.transitions,
            start: &self.start,
            end: &self.end,
        }
    }

    /// The blocks in order (state, edge, transitions, start, end).
    pub fn blocks(&self) -> [&[f64]; 5] {
        [&self.state, &self.edge, &self.transitions, &self.start, &self.end]
    }
}

impl Weights {
    /// The `f32` blocks in order (state, edge, transitions, start, end).
    pub(crate) fn blocks(&self) -> [&[f32]; 5] {
        [&self.state, &self.edge, &self.transitions, &self.start, &self.end]
    }
}

/// A trained chain CRF.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Model {
    /// Label strings.
    pub(crate) labels: LabelAlphabet,
    /// Attribute dictionary.
    pub(crate) attributes: AttributeDictionary,
    /// How attributes are extracted.
    pub(crate) extractor: ExtractorSpec,
    /// Which weight blocks exist, and hard constraints.
    pub(crate) structure: Structure,
    /// The weights.
    pub(crate) weights: Weights,
}

impl Model {
    /// The labels, by id.
    pub fn labels(&self) -> &LabelAlphabet {
        &self.labels
    }

    /// The attribute dictionary the weights' rows belong to.
    pub fn attributes(&self) -> &AttributeDictionary {
        &self.attributes
    }

    /// How tagging extracts attributes from input.
    pub fn extractor(&self) -> &ExtractorSpec {
        &self.extractor
    }

    /// Replaces how tagging extracts attributes (the attribute dictionary and
    /// weights stay): for an extractor whose recorded configuration grows
    /// after training, as the word segmenter's n-gram inventory does.
    pub fn set_extractor(&mut self, extractor: ExtractorSpec) {
        self.extractor = extractor;
    }

    /// Which weight blocks the model has, and its hard constraints.
    pub fn structure(&self) -> &Structure {
        &self.structure
    }

    /// Whether the model keeps exact `f64` weights ([`Model::from_exact`]).
    pub fn has_exact_weights(&self) -> bool {
        self.weights.exact.is_some()
    }

    /// Number of labels `k`.
    pub fn num_labels(&self) -> usize {
        self.labels.len()
    }

    /// The state weights as dense rows: attribute `a`'s `k` weights at
    /// `[a · k..][..k]`.
    pub fn state_weights(&self) -> &[f32] {
        &self.weights.state
    }

    /// The layout of this model's weights as a flat vector.
    pub fn layout(&self) -> WeightLayout {
        WeightLayout::of(&self.labels, &self.attributes)
    }

    /// The weights as borrowed blocks.
    pub fn view(&self) -> WeightsView<'_, f32> {
        WeightsView {
            k: self.num_labels(),
            state: StateRows::dense(&self.weights.state, self.num_labels()),
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
        let flat = flat.iter().map(|&x| x as f32).collect();
        Self::from_flat_f32(labels, attributes, extractor, structure, flat)
    }

    /// [`Model::from_flat`] with the weights given as the full layout's
    /// nonzero entries: `values[n]` at index `indices[n]`, every other
    /// weight 0. Spares a trainer that optimizes only some weights (CRFsuite's
    /// observed attribute-label pairs) a full-layout `f64` copy, eight bytes
    /// per attribute and label, next to the model's four.
    ///
    /// # Panics
    /// When an index lies outside the layout, or the two lists differ in
    /// length.
    pub fn from_entries(
        labels: LabelAlphabet,
        attributes: AttributeDictionary,
        extractor: ExtractorSpec,
        structure: Structure,
        indices: &[u32],
        values: &[f64],
    ) -> Self {
        assert_eq!(indices.len(), values.len(), "one value per index");
        let mut flat = vec![0.0f32; WeightLayout::of(&labels, &attributes).len()];
        for (&i, &x) in indices.iter().zip(values) {
            flat[i as usize] = x as f32;
        }
        Self::from_flat_f32(labels, attributes, extractor, structure, flat)
    }

    /// The blocks of a full-layout `f32` vector, the state block in place.
    fn from_flat_f32(
        labels: LabelAlphabet,
        attributes: AttributeDictionary,
        extractor: ExtractorSpec,
        structure: Structure,
        mut state: Vec<f32>,
    ) -> Self {
        let layout = WeightLayout::of(&labels, &attributes);
        assert_eq!(state.len(), layout.len(), "the weights have the layout's length");
        let k = layout.k;
        // The small blocks after the state block, split off from the end.
        let end = state.split_off(state.len() - k);
        let start = state.split_off(state.len() - k);
        let transitions = state.split_off(state.len() - k * k);
        let edge = state.split_off(layout.edge_offset());
        // Gives back the room of the blocks split off (a no-op without edge
        // attributes but for a few words).
        state.shrink_to_fit();
        let weights = Weights {
            state,
            edge,
            transitions,
            start,
            end,
            exact: None,
        };
        Model {
            labels,
            attributes,
            extractor,
            structure,
            weights,
        }
    }

    /// A model that keeps `weights` exactly: tagging computes in `f64` from
    /// them (see [`ExactWeights`]), and the `f32` blocks hold them rounded.
    /// For weights that come from elsewhere in `f64` (CRFsuite's models);
    /// chaincrf's own training makes `f32` models ([`Model::from_flat`]).
    ///
    /// # Panics
    /// When the blocks do not have the sizes the labels and attributes need.
    pub fn from_exact(
        labels: LabelAlphabet,
        attributes: AttributeDictionary,
        extractor: ExtractorSpec,
        structure: Structure,
        weights: ExactWeights,
    ) -> Self {
        let (k, num_state, num_edge) = (
            labels.len(),
            attributes.len(AttrKind::State),
            attributes.len(AttrKind::Edge),
        );
        let sizes = [num_state * k, num_edge * k * k, k * k, k, k];
        assert_eq!(
            weights.blocks().map(<[f64]>::len),
            sizes,
            "weight blocks do not fit the model"
        );
        let f = |s: &[f64]| s.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let rounded = Weights {
            state: f(&weights.state),
            edge: f(&weights.edge),
            transitions: f(&weights.transitions),
            start: f(&weights.start),
            end: f(&weights.end),
            exact: Some(Box::new(weights)),
        };
        Model {
            labels,
            attributes,
            extractor,
            structure,
            weights: rounded,
        }
    }

    /// The exact `f64` weights, for models that keep them.
    pub fn exact_view(&self) -> Option<WeightsView<'_, f64>> {
        self.weights.exact.as_deref().map(|e| e.view(self.num_labels()))
    }

    /// The weights as a flat `f64` vector (to continue training); the exact
    /// weights when the model keeps them.
    pub fn to_flat(&self) -> Vec<f64> {
        match self.weights.exact.as_deref() {
            Some(e) => e.blocks().concat(),
            None => self
                .weights
                .blocks()
                .iter()
                .flat_map(|b| b.iter().map(|&x| f64::from(x)))
                .collect(),
        }
    }

    /// Drops attributes whose weights are all zero (after L1 training, most are),
    /// so the model stores and looks up only what matters. Returns how many
    /// attributes were dropped.
    pub fn prune_zero_attributes(&mut self) -> usize {
        self.prune_attributes(0.0)
    }

    /// Drops attributes whose largest absolute weight is at most `threshold`
    /// (compared with the exact weights when the model keeps them).
    /// Returns how many attributes were dropped.
    pub fn prune_attributes(&mut self, threshold: f32) -> usize {
        let k = self.num_labels();
        let kk = k * k;
        let before = self.attributes.len(AttrKind::State) + self.attributes.len(AttrKind::Edge);
        let maps = match self.weights.exact.as_deref() {
            Some(e) => self
                .attributes
                .retain(keep_above(&e.state, &e.edge, k, f64::from(threshold))),
            None => self
                .attributes
                .retain(keep_above(&self.weights.state, &self.weights.edge, k, threshold)),
        };
        let w = &mut self.weights;
        compact_rows(&mut w.state, &maps[0], k);
        compact_rows(&mut w.edge, &maps[1], kk);
        if let Some(e) = w.exact.as_deref_mut() {
            compact_rows(&mut e.state, &maps[0], k);
            compact_rows(&mut e.edge, &maps[1], kk);
        }
        before - self.attributes.len(AttrKind::State) - self.attributes.len(AttrKind::Edge)
    }

    /// Number of non-zero weights (of the exact weights when the model keeps them).
    pub fn num_active_weights(&self) -> usize {
        fn count<W: PartialEq + Default>(blocks: [&[W]; 5]) -> usize {
            blocks
                .iter()
                .map(|b| b.iter().filter(|x| **x != W::default()).count())
                .sum()
        }
        match self.weights.exact.as_deref() {
            Some(e) => count(e.blocks()),
            None => count(self.weights.blocks()),
        }
    }

    /// A tagger borrowing this model, with its own reusable buffers.
    pub fn tagger(&self) -> Tagger<'_> {
        Tagger::new(self)
    }
}

/// Whether an attribute's state row (`k` wide) or edge block (`k²`) has a
/// weight above `threshold` in absolute value.
fn keep_above<'w, W: Copy + Into<f64>>(
    state: &'w [W],
    edge: &'w [W],
    k: usize,
    threshold: W,
) -> impl FnMut(AttrKind, u32) -> bool + 'w {
    let threshold: f64 = threshold.into();
    move |kind, id| {
        let id = id as usize;
        let w = match kind {
            AttrKind::State => &state[id * k..(id + 1) * k],
            AttrKind::Edge => &edge[id * k * k..(id + 1) * k * k],
        };
        w.iter().any(|&x| x.into().abs() > threshold)
    }
}

/// Keeps the rows (`width` wide) of the attributes `map` keeps, at their new ids.
/// Keeps the rows of `w` (`width` values each) that `map` gives a new
/// index, at that index, in place: a model's weights are its largest part,
/// and pruning after training would otherwise hold two copies at the
/// fit's peak. New indices never exceed old ones ([`AttributeDictionary::retain`]
/// keeps the order), so each row moves down onto rows already moved or
/// dropped.
fn compact_rows<W: Copy>(w: &mut Vec<W>, map: &[Option<u32>], width: usize) {
    let mut kept = 0;
    for (old, new) in map.iter().enumerate() {
        if let Some(new) = new {
            let new = *new as usize;
            assert!(new <= old, "pruning keeps the attributes' order");
            w.copy_within(old * width..(old + 1) * width, new * width);
            kept = new + 1;
        }
    }
    w.truncate(kept * width);
    w.shrink_to_fit();
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
        let model = self.model;
        if let Some(exact) = model.exact_view() {
            exact.score_exactly_into(&model.structure, extractor, input, &model.attributes, &mut self.scored);
            return &self.scored;
        }
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
        let (model, out) = (self.model, &mut self.scored);
        out.k = model.num_labels();
        out.emissions.clear();
        out.emissions.resize(n * out.k, 0.0);
        fill(&mut out.emissions);
        match model.exact_view() {
            Some(exact) => exact.score_structure_into(&model.structure, out),
            None => model.view().score_structure_into(&model.structure, out),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A model built from the nonzero entries has the same blocks, bit for
    /// bit, as one built from the full layout they stand for: state, edge,
    /// transition, start and end weights, each block's ends included.
    #[test]
    fn a_model_from_entries_is_the_model_from_the_full_layout() {
        let labels = LabelAlphabet::from_labels(["A", "B", "C"]);
        let mut attributes = AttributeDictionary::default();
        for (kind, key) in [(AttrKind::State, 1), (AttrKind::State, 2), (AttrKind::Edge, 3)] {
            attributes.insert(kind, key, None);
        }
        let structure = Structure {
            transitions: true,
            ..Structure::default()
        };
        let layout = WeightLayout {
            k: 3,
            num_state: 2,
            num_edge: 1,
        };
        let mut full = vec![0.0; layout.len()];
        let (mut indices, mut values) = (Vec::new(), Vec::new());
        for i in (0..layout.len()).filter(|i| i % 3 != 1 || *i + 1 == layout.len()) {
            let x = (i as f64 + 0.5) * if i % 2 == 0 { 1.0 } else { -1.0 } / 7.0;
            full[i] = x;
            indices.push(i as u32);
            values.push(x);
        }
        let spec = ExtractorSpec::CrfsuiteAttributes;
        let a = Model::from_flat(
            labels.clone(),
            attributes.clone(),
            spec.clone(),
            structure.clone(),
            &full,
        );
        let b = Model::from_entries(labels, attributes, spec, structure, &indices, &values);
        assert_eq!(a.weights, b.weights);
        assert_eq!(b.weights.state.len(), 6);
        assert_eq!(b.weights.edge.len(), 9);
        assert_eq!(b.weights.end[2], (full[layout.len() - 1]) as f32);
    }
}
