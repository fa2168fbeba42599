//! Training data compiled for the optimizer: attribute ids per position (an
//! [`ObservationArena`]), the label alphabet and dictionary, and the targets —
//! a gold label per position, or allowed label sets (partial labels).

use crate::error::{SequenceProblem, TrainError};
use chaincrf_core::AllowedLabels;
use chaincrf_features::{AttrKind, AttributeDictionary, DictionaryBuilder, FeatureExtractor, LabelAlphabet};
use chaincrf_model::{ExtractorSpec, Model, ObservationArena, Structure, WeightLayout};

/// What a training sequence says about its labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelTarget {
    /// One label id per position.
    Gold(Vec<u32>),
    /// Per position, the allowed label ids (`None` = unknown, any label).
    Partial(Vec<Option<Vec<u32>>>),
}

/// Compiled training (or held-out) data.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Attribute ids per position of every sequence.
    pub(crate) arena: ObservationArena,
    /// Labels (shared with the model).
    pub(crate) labels: LabelAlphabet,
    /// The attribute dictionary the ids refer to.
    pub(crate) attributes: AttributeDictionary,
    /// Gold label per position (`usize::MAX` at positions of partially labeled sequences).
    pub(crate) gold: Vec<usize>,
    /// Allowed labels for partially labeled sequences (`None` = fully labeled).
    pub(crate) partial: Vec<Option<AllowedLabels>>,
    /// How the attributes were extracted, recorded in the trained model.
    pub(crate) extractor: ExtractorSpec,
    /// Which weight blocks the model has, and its hard constraints.
    pub(crate) structure: Structure,
}

/// The extractor spec of a dataset built from a user's own extractor: the
/// model records no configuration, and tagging passes the same extractor.
pub fn custom_extractor() -> ExtractorSpec {
    ExtractorSpec::Custom {
        kind: "custom".into(),
        payload: Vec::new(),
    }
}

/// The structure of a dataset unless set: label-pair weights, no start/end
/// weights (CRFsuite's CRF1d).
pub fn default_structure() -> Structure {
    Structure {
        transitions: true,
        ..Structure::default()
    }
}

impl Dataset {
    /// Attribute ids per position of every sequence.
    pub fn arena(&self) -> &ObservationArena {
        &self.arena
    }
    /// The label alphabet (shared with the model).
    pub fn labels(&self) -> &LabelAlphabet {
        &self.labels
    }
    /// The attribute dictionary the ids refer to.
    pub fn attributes(&self) -> &AttributeDictionary {
        &self.attributes
    }
    /// Gold label per position of all sequences, concatenated (`usize::MAX`
    /// at positions of partially labeled sequences); [`Dataset::gold_of`]
    /// gives one sequence's.
    pub fn gold(&self) -> &[usize] {
        &self.gold
    }
    /// Per sequence, its allowed labels when partially labeled (`None` =
    /// fully labeled).
    pub fn partial(&self) -> &[Option<AllowedLabels>] {
        &self.partial
    }
    /// How the attributes were extracted (recorded in the trained model).
    pub fn extractor(&self) -> &ExtractorSpec {
        &self.extractor
    }
    /// Which weight blocks the model has, and its hard constraints.
    pub fn structure(&self) -> &Structure {
        &self.structure
    }

    /// Whether `model` has exactly this data's features: the same labels,
    /// the same attributes with the same ids, the same extractor and
    /// structure (what resuming from a checkpoint's model needs).
    pub fn has_features_of(&self, model: &Model) -> bool {
        let (m, d) = (model, &self.attributes);
        m.labels().labels() == self.labels.labels()
            && *m.extractor() == self.extractor
            && *m.structure() == self.structure
            && [AttrKind::State, AttrKind::Edge].into_iter().all(|kind| {
                m.attributes().len(kind) == d.len(kind)
                    && (0..d.len(kind) as u32).all(|id| m.attributes().key(kind, id) == d.key(kind, id))
            })
    }

    /// The layout of the weights a model of this data has (the one place it
    /// is computed).
    pub fn layout(&self) -> WeightLayout {
        WeightLayout {
            k: self.labels.len(),
            num_state: self.attributes.len(AttrKind::State),
            num_edge: self.attributes.len(AttrKind::Edge),
        }
    }

    /// The model of full-layout `weights` over this data's labels,
    /// attributes, extractor and structure.
    ///
    /// # Panics
    /// When `weights` does not have the layout's length.
    pub fn model_from(&self, weights: &[f64]) -> Model {
        Model::from_flat(
            self.labels.clone(),
            self.attributes.clone(),
            self.extractor.clone(),
            self.structure.clone(),
            weights,
        )
    }

    /// [`Dataset::model_from`] for the weights `values[n]` at full-layout
    /// indices `indices[n]`, every other weight 0.
    ///
    /// # Panics
    /// When an index lies outside the layout.
    pub fn model_from_entries(&self, indices: &[u32], values: &[f64]) -> Model {
        Model::from_entries(
            self.labels.clone(),
            self.attributes.clone(),
            self.extractor.clone(),
            self.structure.clone(),
            indices,
            values,
        )
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.arena.num_sequences()
    }
    /// Whether there are no sequences.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Gold labels of sequence `i`, when fully labeled.
    pub fn gold_of(&self, i: usize) -> Option<&[usize]> {
        if self.partial[i].is_some() {
            return None;
        }
        let s = self.arena.sequence(i);
        Some(&self.gold[s.global_start()..s.global_start() + s.len()])
    }
}

/// Builds a [`Dataset`] sequence by sequence, counting attributes as it goes;
/// [`DatasetBuilder::build`] applies the minimum-count cutoff.
///
/// ```
/// use chaincrf_features::{Attr, FeatureExtractor};
/// use chaincrf_train::DatasetBuilder;
/// struct Words;
/// impl FeatureExtractor for Words {
///     type Input = [&'static str];
///     fn len(&self, input: &Self::Input) -> usize { input.len() }
///     fn extract(&self, input: &Self::Input, t: usize, sink: &mut dyn FnMut(Attr<'_>)) {
///         sink(Attr::state(&format!("w={}", input[t])));
///     }
/// }
/// let mut builder = DatasetBuilder::new().min_count(1);
/// builder.add(&Words, &["a", "b"][..], &["X", "Y"]).unwrap();
/// let data = builder.build();
/// assert_eq!((data.len(), data.labels().len()), (1, 2));
/// ```
#[derive(Debug)]
pub struct DatasetBuilder {
    builder: DictionaryBuilder,
    arena: ObservationArena,
    labels: LabelAlphabet,
    gold: Vec<usize>,
    partial: Vec<Option<AllowedLabels>>,
    min_count: u32,
    extractor: ExtractorSpec,
    structure: Structure,
}

impl Default for DatasetBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl DatasetBuilder {
    /// A builder that keeps attribute names (for `dump`), keeps every
    /// attribute, records a user's own extractor ([`custom_extractor`]) and
    /// the [`default_structure`].
    pub fn new() -> Self {
        DatasetBuilder {
            builder: DictionaryBuilder::new(true),
            arena: ObservationArena::new(),
            labels: LabelAlphabet::new(),
            gold: Vec::new(),
            partial: Vec::new(),
            min_count: 1,
            extractor: custom_extractor(),
            structure: default_structure(),
        }
    }

    /// Drops attribute names, keeping only their hashes: a smaller model
    /// whose `dump` shows hashes instead of names.
    pub fn without_attribute_names(mut self) -> Self {
        self.builder = DictionaryBuilder::new(false);
        self
    }

    /// Keeps attributes seen at least `n` times (CRF++'s `-f`). Default 1.
    pub fn min_count(mut self, n: u32) -> Self {
        self.min_count = n.max(1);
        self
    }

    /// Records how attributes are extracted, so that the model can rebuild
    /// its extractor. Default [`custom_extractor`].
    pub fn extractor(mut self, spec: ExtractorSpec) -> Self {
        self.extractor = spec;
        self
    }

    /// Which weight blocks the model has and its hard constraints. Default
    /// [`default_structure`].
    pub fn structure(mut self, structure: Structure) -> Self {
        self.structure = structure;
        self
    }

    /// A builder that starts from `model`'s labels and attributes (to continue
    /// training): they keep their ids and survive any frequency cutoff; new ones
    /// are appended. Names are kept when `keep_names`.
    pub fn continuing(model: &Model, keep_names: bool) -> Self {
        let mut b = Self::new();
        if !keep_names {
            b = b.without_attribute_names();
        }
        b.labels = model.labels().clone();
        for kind in [AttrKind::State, AttrKind::Edge] {
            for id in 0..model.attributes().len(kind) as u32 {
                b.builder.pin(
                    kind,
                    model.attributes().key(kind, id),
                    model.attributes().name(kind, id),
                );
            }
        }
        b
    }

    /// Starts from a fixed label set (e.g. a tag scheme), in this order.
    pub fn labels(mut self, labels: LabelAlphabet) -> Self {
        self.labels = labels;
        self
    }

    /// The label alphabet, to intern labels before adding sequences.
    pub fn labels_mut(&mut self) -> &mut LabelAlphabet {
        &mut self.labels
    }

    /// Adds a sequence with its labels by name (new names are added to the
    /// label set, in order of first appearance).
    ///
    /// # Errors
    /// [`TrainError::BadSequence`] when the label count differs from the
    /// positions the extractor reports.
    pub fn add<E: FeatureExtractor + ?Sized, L: AsRef<str>>(
        &mut self,
        extractor: &E,
        input: &E::Input,
        labels: &[L],
    ) -> Result<(), TrainError> {
        let n = extractor.len(input);
        if labels.len() != n {
            return Err(self.bad(SequenceProblem::LengthMismatch {
                labels: labels.len(),
                positions: n,
            }));
        }
        let ids = labels.iter().map(|l| self.labels.intern(l.as_ref())).collect();
        self.add_target(extractor, input, LabelTarget::Gold(ids))
    }

    fn bad(&self, problem: SequenceProblem) -> TrainError {
        TrainError::BadSequence {
            index: self.len(),
            problem,
        }
    }

    /// Adds a sequence with its target as label ids of [`DatasetBuilder::labels_mut`].
    ///
    /// # Errors
    /// [`TrainError::BadSequence`] when the target's length differs from the
    /// sequence length, a label id is out of range, or a position allows no label.
    pub fn add_target<E: FeatureExtractor + ?Sized>(
        &mut self,
        extractor: &E,
        input: &E::Input,
        target: LabelTarget,
    ) -> Result<(), TrainError> {
        let n = extractor.len(input);
        let k = self.labels.len();
        let got = match &target {
            LabelTarget::Gold(g) => g.len(),
            LabelTarget::Partial(p) => p.len(),
        };
        if got != n {
            return Err(self.bad(SequenceProblem::LengthMismatch {
                labels: got,
                positions: n,
            }));
        }
        let out_of_range = |id: u32| SequenceProblem::LabelOutOfRange { id, labels: k };
        match target {
            LabelTarget::Gold(g) => {
                if let Some(&y) = g.iter().find(|&&y| y as usize >= k) {
                    return Err(self.bad(out_of_range(y)));
                }
                self.gold.extend(g.iter().map(|&y| y as usize));
                self.partial.push(None);
            }
            LabelTarget::Partial(sets) => {
                let mut allowed = AllowedLabels::all(n, k);
                for (t, s) in sets.iter().enumerate() {
                    if let Some(s) = s {
                        if let Some(&y) = s.iter().find(|&&y| y as usize >= k) {
                            return Err(self.bad(out_of_range(y)));
                        }
                        let ys: Vec<usize> = s.iter().map(|&y| y as usize).collect();
                        if allowed.allow_only(t, &ys).is_err() {
                            return Err(self.bad(SequenceProblem::NoAllowedLabel { position: t }));
                        }
                    }
                }
                // A partial sequence whose every position has one label is just gold.
                if sets.iter().all(|s| s.as_ref().is_some_and(|s| s.len() == 1)) {
                    self.gold
                        .extend(sets.iter().map(|s| s.as_ref().map_or(0, |s| s[0] as usize)));
                    self.partial.push(None);
                } else {
                    self.gold.extend(std::iter::repeat_n(usize::MAX, n));
                    self.partial.push(Some(allowed));
                }
            }
        }
        self.arena.push_counting(extractor, input, &mut self.builder);
        Ok(())
    }

    /// Number of sequences added.
    pub fn len(&self) -> usize {
        self.arena.num_sequences()
    }

    /// Whether no sequence was added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Freezes the dictionary, keeping attributes seen at least
    /// [`DatasetBuilder::min_count`] times.
    pub fn build(self) -> Dataset {
        let (attributes, maps) = self.builder.freeze_with_map(self.min_count);
        let mut arena = self.arena;
        arena.remap(&maps);
        Dataset {
            arena,
            labels: self.labels,
            attributes,
            gold: self.gold,
            partial: self.partial,
            extractor: self.extractor,
            structure: self.structure,
        }
    }
}

/// Compiles held-out data against a frozen dictionary (unknown attributes are
/// ignored, as at tagging time).
#[derive(Debug)]
pub struct HeldOutBuilder<'a> {
    attributes: &'a AttributeDictionary,
    labels: &'a LabelAlphabet,
    arena: ObservationArena,
    gold: Vec<usize>,
    partial: Vec<Option<AllowedLabels>>,
}

impl<'a> HeldOutBuilder<'a> {
    /// A builder against `attributes` and `labels` (usually a training set's).
    pub fn new(attributes: &'a AttributeDictionary, labels: &'a LabelAlphabet) -> Self {
        HeldOutBuilder {
            attributes,
            labels,
            arena: ObservationArena::new(),
            gold: Vec::new(),
            partial: Vec::new(),
        }
    }

    /// Adds a sequence with gold label ids. An id outside the label set (a
    /// label the training data never has) is kept and always counts as an
    /// error.
    ///
    /// # Errors
    /// [`TrainError::BadSequence`] when the label count differs from the
    /// sequence length.
    pub fn add<E: FeatureExtractor + ?Sized>(
        &mut self,
        extractor: &E,
        input: &E::Input,
        gold: &[u32],
    ) -> Result<(), TrainError> {
        let bad = |problem| TrainError::BadSequence {
            index: self.arena.num_sequences(),
            problem,
        };
        if gold.len() != extractor.len(input) {
            return Err(bad(SequenceProblem::LengthMismatch {
                labels: gold.len(),
                positions: extractor.len(input),
            }));
        }

        self.arena.push(extractor, input, self.attributes);
        self.gold.extend(gold.iter().map(|&y| y as usize));
        self.partial.push(None);
        Ok(())
    }

    /// The compiled held-out set (its `attributes` field is left empty: the ids
    /// refer to the dictionary given to [`HeldOutBuilder::new`]).
    pub fn finish(mut self) -> Dataset {
        // Rows sorted by id, as training data has them (see `ObservationArena::remap`).
        self.arena.sort_rows();
        Dataset {
            arena: self.arena,
            labels: self.labels.clone(),
            attributes: AttributeDictionary::default(),
            gold: self.gold,
            partial: self.partial,
            extractor: custom_extractor(),
            structure: default_structure(),
        }
    }
}
