//! Training data compiled for the optimizer: attribute ids per position (an
//! [`ObservationArena`]), the label alphabet and dictionary, and the targets —
//! a gold label per position, or allowed label sets (partial labels).

use chaincrf_core::AllowedLabels;
use chaincrf_features::{AttrKind, AttributeDictionary, DictionaryBuilder, FeatureExtractor, LabelAlphabet};
use chaincrf_model::{Model, ObservationArena};

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
    pub arena: ObservationArena,
    /// Labels (shared with the model).
    pub labels: LabelAlphabet,
    /// The attribute dictionary the ids refer to.
    pub attributes: AttributeDictionary,
    /// Gold label per position (`usize::MAX` at positions of partially labeled sequences).
    pub gold: Vec<usize>,
    /// Allowed labels for partially labeled sequences (`None` = fully labeled).
    pub partial: Vec<Option<AllowedLabels>>,
}

impl Dataset {
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
/// [`DatasetBuilder::finish`] applies the minimum-frequency cutoff.
#[derive(Debug)]
pub struct DatasetBuilder {
    builder: DictionaryBuilder,
    arena: ObservationArena,
    labels: LabelAlphabet,
    gold: Vec<usize>,
    partial: Vec<Option<AllowedLabels>>,
    pinned: usize,
}

impl DatasetBuilder {
    /// A builder; `keep_names` keeps attribute names in the dictionary (for `dump`).
    pub fn new(keep_names: bool) -> Self {
        DatasetBuilder {
            builder: DictionaryBuilder::new(keep_names),
            arena: ObservationArena::new(),
            labels: LabelAlphabet::new(),
            gold: Vec::new(),
            partial: Vec::new(),
            pinned: 0,
        }
    }

    /// A builder that starts from `model`'s labels and attributes (to continue
    /// training): they keep their ids and survive any frequency cutoff; new ones
    /// are appended.
    pub fn from_model(model: &Model, keep_names: bool) -> Self {
        let mut b = Self::new(keep_names);
        b.labels = model.labels.clone();
        for kind in [AttrKind::State, AttrKind::Edge] {
            for id in 0..model.attributes.len(kind) as u32 {
                b.builder
                    .pin(kind, model.attributes.key(kind, id), model.attributes.name(kind, id));
            }
        }
        b.pinned = 1;
        b
    }

    /// Starts from a fixed label set (e.g. a tag scheme), in this order.
    pub fn with_labels(mut self, labels: LabelAlphabet) -> Self {
        self.labels = labels;
        self
    }

    /// The label alphabet, to intern labels before adding sequences.
    pub fn labels_mut(&mut self) -> &mut LabelAlphabet {
        &mut self.labels
    }

    /// Adds a sequence with its target. Panics never; a target whose length
    /// differs from the input's is reported.
    ///
    /// # Errors
    /// A message when the target's length differs from the sequence length or a
    /// label id is out of range.
    pub fn add<E: FeatureExtractor + ?Sized>(
        &mut self,
        extractor: &E,
        input: &E::Input,
        target: LabelTarget,
    ) -> Result<(), String> {
        let n = extractor.len(input);
        let k = self.labels.len();
        match &target {
            LabelTarget::Gold(g) if g.len() != n => return Err(format!("{} labels for {n} positions", g.len())),
            LabelTarget::Partial(p) if p.len() != n => return Err(format!("{} label sets for {n} positions", p.len())),
            _ => {}
        }
        let bad = |y: u32| y as usize >= k;
        match target {
            LabelTarget::Gold(g) => {
                if g.iter().any(|&y| bad(y)) {
                    return Err("label id out of range".into());
                }
                self.gold.extend(g.iter().map(|&y| y as usize));
                self.partial.push(None);
            }
            LabelTarget::Partial(sets) => {
                let mut allowed = AllowedLabels::all(n, k);
                for (t, s) in sets.iter().enumerate() {
                    if let Some(s) = s {
                        if s.iter().any(|&y| bad(y)) {
                            return Err("label id out of range".into());
                        }
                        let ys: Vec<usize> = s.iter().map(|&y| y as usize).collect();
                        allowed.allow_only(t, &ys).map_err(|e| e.to_string())?;
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

    /// Freezes the dictionary keeping attributes seen at least `min_freq` times.
    pub fn finish(self, min_freq: u32) -> Dataset {
        let _ = self.pinned;
        let (attributes, maps) = self.builder.freeze_with_map(min_freq);
        let mut arena = self.arena;
        arena.remap(&maps);
        Dataset {
            arena,
            labels: self.labels,
            attributes,
            gold: self.gold,
            partial: self.partial,
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

    /// Adds a sequence with gold label ids.
    ///
    /// # Errors
    /// A message when the label count differs from the sequence length.
    pub fn add<E: FeatureExtractor + ?Sized>(
        &mut self,
        extractor: &E,
        input: &E::Input,
        gold: &[u32],
    ) -> Result<(), String> {
        if gold.len() != extractor.len(input) {
            return Err(format!("{} labels for {} positions", gold.len(), extractor.len(input)));
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
        }
    }
}
