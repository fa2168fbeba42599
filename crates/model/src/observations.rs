//! Attribute ids per position, extracted once and kept in a flat layout.
//!
//! Training visits every position of the corpus at every iteration, so the
//! attributes are extracted, looked up and stored *once*: an
//! [`ObservationArena`] holds any number of sequences as compressed rows (an
//! offset per position into one `u32` id array, plus `f32` values only when some
//! attribute is not a plain indicator). An iteration then does no string work
//! and no allocation. Tagging uses the same layout for a single sequence.

use crate::model::StateRows;
use chaincrf_features::prefetch;
use chaincrf_features::{AttrKey, AttrKind, AttributeDictionary, DictionaryBuilder, FeatureExtractor};

/// Attribute ids (and values) of many sequences, in one flat layout.
#[derive(Clone, Debug, Default)]
pub struct ObservationArena {
    /// Position index where each sequence starts; one more entry than sequences.
    seq_starts: Vec<u32>,
    state: Csr,
    edge: Csr,
    /// Scratch for frozen lookups: one sequence's attributes before lookup.
    pending: Vec<PendingAttr>,
    /// Scratch: end of each position's attributes in `pending`.
    pending_ends: Vec<u32>,
    /// Scratch: the names of `pending` attributes, when kept.
    pending_names: String,
}

/// An attribute extracted but not yet looked up.
#[derive(Clone, Copy, Debug)]
struct PendingAttr {
    key: u64,
    value: f64,
    kind: AttrKind,
    /// Byte range of the name in the arena's name scratch, when names are kept.
    name: Option<(usize, usize)>,
}

/// How many attributes ahead a frozen lookup prefetches the dictionary slot.
const LOOKUP_AHEAD: usize = 8;

/// Compressed rows: `offsets[p]..offsets[p+1]` index `ids`/`values` for position `p`.
#[derive(Clone, Debug)]
struct Csr {
    offsets: Vec<u32>,
    ids: Vec<u32>,
    /// Empty while every value is 1.0.
    values: Vec<f32>,
}

impl Default for Csr {
    fn default() -> Self {
        Csr {
            offsets: vec![0],
            ids: Vec::new(),
            values: Vec::new(),
        }
    }
}

impl Csr {
    #[inline]
    fn push(&mut self, id: u32, value: f64) {
        if value != 1.0 && self.values.is_empty() {
            self.values = vec![1.0; self.ids.len()];
        }
        self.ids.push(id);
        if !self.values.is_empty() {
            self.values.push(value as f32);
        }
    }
    #[inline]
    fn end_position(&mut self) {
        self.offsets.push(self.ids.len() as u32);
    }
    fn clear(&mut self) {
        self.offsets.clear();
        self.offsets.push(0);
        self.ids.clear();
        self.values.clear();
    }
    #[inline]
    fn row(&self, p: usize) -> (&[u32], Option<&[f32]>) {
        let (a, b) = (self.offsets[p] as usize, self.offsets[p + 1] as usize);
        (
            &self.ids[a..b],
            if self.values.is_empty() {
                None
            } else {
                Some(&self.values[a..b])
            },
        )
    }
    /// Renumbers ids through `map`, dropping those mapped to `None`.
    /// Sorts `ids[from..to]` (values alongside, stably).
    fn sort_row(&mut self, from: usize, to: usize, pairs: &mut Vec<(u32, f32)>) {
        if self.values.is_empty() {
            self.ids[from..to].sort_unstable();
            return;
        }
        pairs.clear();
        pairs.extend(
            self.ids[from..to]
                .iter()
                .copied()
                .zip(self.values[from..to].iter().copied()),
        );
        pairs.sort_by_key(|&(id, _)| id);
        for (i, &(id, v)) in pairs.iter().enumerate() {
            self.ids[from + i] = id;
            self.values[from + i] = v;
        }
    }

    /// Sorts every row by id.
    fn sort_rows(&mut self) {
        let mut pairs = Vec::new();
        for p in 0..self.offsets.len().saturating_sub(1) {
            let (from, to) = (self.offsets[p] as usize, self.offsets[p + 1] as usize);
            self.sort_row(from, to, &mut pairs);
        }
    }

    /// Renumbers ids by `map`, drops the unmapped ones and sorts each row by
    /// id (stably, values alongside), so that the ids of any id range form one
    /// run in every row (see [`ObservationArena::rows_sorted`]).
    fn remap(&mut self, map: &[Option<u32>]) {
        let mut out = 0usize;
        let has_values = !self.values.is_empty();
        let mut start = 0usize;
        let mut pairs: Vec<(u32, f32)> = Vec::new();
        for p in 0..self.offsets.len() - 1 {
            let end = self.offsets[p + 1] as usize;
            let row_start = out;
            for i in start..end {
                if let Some(new) = map[self.ids[i] as usize] {
                    self.ids[out] = new;
                    if has_values {
                        self.values[out] = self.values[i];
                    }
                    out += 1;
                }
            }
            self.sort_row(row_start, out, &mut pairs);
            start = end;
            self.offsets[p + 1] = out as u32;
        }
        self.ids.truncate(out);
        if has_values {
            self.values.truncate(out);
        }
    }
}

/// How to turn attributes into ids while filling an arena.
enum Lookup<'a> {
    Frozen(&'a AttributeDictionary),
    Building(&'a mut DictionaryBuilder),
}

impl ObservationArena {
    /// An empty arena.
    pub fn new() -> Self {
        ObservationArena {
            seq_starts: vec![0],
            state: Csr::default(),
            edge: Csr::default(),
            pending: Vec::new(),
            pending_ends: Vec::new(),
            pending_names: String::new(),
        }
    }

    /// Removes every sequence, keeping the buffers.
    pub fn clear(&mut self) {
        self.seq_starts.clear();
        self.seq_starts.push(0);
        self.state.clear();
        self.edge.clear();
    }

    /// Number of sequences.
    pub fn num_sequences(&self) -> usize {
        self.seq_starts.len() - 1
    }

    /// Total number of positions over all sequences.
    pub fn num_positions(&self) -> usize {
        *self.seq_starts.last().unwrap_or(&0) as usize
    }

    /// Total number of stored state-attribute occurrences.
    pub fn num_occurrences(&self) -> usize {
        self.state.ids.len()
    }

    /// Whether any edge attribute occurs.
    pub fn has_edge_attributes(&self) -> bool {
        !self.edge.ids.is_empty()
    }

    /// Appends one sequence, keeping only attributes `dict` knows (unknown ones
    /// are ignored, as at tagging time).
    pub fn push<E: FeatureExtractor + ?Sized>(&mut self, extractor: &E, input: &E::Input, dict: &AttributeDictionary) {
        self.push_with(extractor, input, Lookup::Frozen(dict));
    }

    /// Appends one sequence while counting its attributes in `builder`; ids are
    /// the builder's provisional ids until [`ObservationArena::remap`] is called
    /// with the maps from [`DictionaryBuilder::freeze_with_map`].
    pub fn push_counting<E: FeatureExtractor + ?Sized>(
        &mut self,
        extractor: &E,
        input: &E::Input,
        builder: &mut DictionaryBuilder,
    ) {
        self.push_with(extractor, input, Lookup::Building(builder));
    }

    fn push_with<E: FeatureExtractor + ?Sized>(&mut self, extractor: &E, input: &E::Input, lookup: Lookup<'_>) {
        match lookup {
            Lookup::Frozen(d) => self.push_batched(
                extractor,
                input,
                false,
                |a| d.prefetch(a.kind, a.key),
                |a, _| d.id(a.kind, a.key),
            ),
            Lookup::Building(b) => {
                let names = b.keeps_names();
                let b = std::cell::RefCell::new(b);
                self.push_batched(
                    extractor,
                    input,
                    names,
                    |a| b.borrow().prefetch(a.kind, a.key),
                    |a, name| Some(b.borrow_mut().add_named(a.kind, a.key, name)),
                );
            }
        }
    }

    /// Pushes a sequence whose attributes are all extracted first and then
    /// resolved to ids by `lookup`, with `prefetch` called `LOOKUP_AHEAD`
    /// attributes in advance: lookups into a dictionary of millions of keys are
    /// mostly cache misses, and this way several are in flight at once instead
    /// of one after the other (tagging, segmenting and building the training
    /// dictionary are bound by them). `lookup` sees the attributes in order,
    /// with their names when `keep_names` is set and they have one.
    fn push_batched<E: FeatureExtractor + ?Sized>(
        &mut self,
        extractor: &E,
        input: &E::Input,
        keep_names: bool,
        prefetch: impl Fn(&PendingAttr),
        mut lookup: impl FnMut(&PendingAttr, Option<&str>) -> Option<u32>,
    ) {
        let n = extractor.len(input);
        let (pending, ends, names) = (&mut self.pending, &mut self.pending_ends, &mut self.pending_names);
        pending.clear();
        ends.clear();
        names.clear();
        extractor.extract_all(input, &mut |t, attr| {
            debug_assert!(
                ends.len() <= t && t < n,
                "extract_all must give positions in increasing order, below len()"
            );
            // Close the positions before `t` (some may have no attribute).
            while ends.len() < t.min(n) {
                ends.push(pending.len() as u32);
            }
            let name = match attr.key {
                AttrKey::Name(text) if keep_names => {
                    let start = names.len();
                    names.push_str(text);
                    Some((start, names.len()))
                }
                _ => None,
            };
            pending.push(PendingAttr {
                key: attr.key.key(),
                value: attr.value,
                kind: attr.kind,
                name,
            })
        });
        while ends.len() < n {
            ends.push(pending.len() as u32);
        }
        let mut i = 0;
        for (t, &end) in ends.iter().enumerate() {
            while i < end as usize {
                if let Some(ahead) = pending.get(i + LOOKUP_AHEAD) {
                    prefetch(ahead);
                }
                let a = &pending[i];
                if let Some(id) = lookup(a, a.name.map(|(s, e)| &names[s..e])) {
                    match a.kind {
                        AttrKind::State => self.state.push(id, a.value),
                        AttrKind::Edge if t > 0 => self.edge.push(id, a.value),
                        AttrKind::Edge => {}
                    }
                }
                i += 1;
            }
            self.state.end_position();
            self.edge.end_position();
        }
        let last = *self.seq_starts.last().unwrap_or(&0);
        self.seq_starts.push(last + n as u32);
    }

    /// Renumbers provisional ids to final ones (`maps = [state, edge]`), dropping
    /// attributes cut by the minimum frequency.
    ///
    /// Each position's ids come out sorted (values alongside): a training
    /// pass that splits the attributes into id ranges between threads then
    /// finds a range's ids as one run per position.
    pub fn remap(&mut self, maps: &[Vec<Option<u32>>; 2]) {
        self.state.remap(&maps[0]);
        self.edge.remap(&maps[1]);
    }

    /// Sorts each position's attribute ids (values alongside), as
    /// [`ObservationArena::remap`] leaves them; training needs it, so data
    /// built from frozen lookups ([`ObservationArena::push`]) is sorted
    /// before it is trained on.
    pub fn sort_rows(&mut self) {
        self.state.sort_rows();
        self.edge.sort_rows();
    }

    /// Whether every position's state attribute ids are in increasing order
    /// (true after [`ObservationArena::remap`]).
    pub fn rows_sorted(&self) -> bool {
        let s = &self.state;
        s.offsets
            .windows(2)
            .all(|w| s.ids[w[0] as usize..w[1] as usize].windows(2).all(|p| p[0] <= p[1]))
    }

    /// Sequence `i`.
    #[inline]
    pub fn sequence(&self, i: usize) -> Observations<'_> {
        Observations {
            arena: self,
            start: self.seq_starts[i] as usize,
            len: (self.seq_starts[i + 1] - self.seq_starts[i]) as usize,
        }
    }

    /// The global index of the first position of sequence `i`.
    pub fn sequence_start(&self, i: usize) -> usize {
        self.seq_starts[i] as usize
    }

    /// State attributes at global position `p` (ids, and values unless all are 1).
    #[inline]
    pub fn state_at(&self, p: usize) -> (&[u32], Option<&[f32]>) {
        self.state.row(p)
    }

    /// Edge attributes at global position `p`.
    #[inline]
    pub fn edge_at(&self, p: usize) -> (&[u32], Option<&[f32]>) {
        self.edge.row(p)
    }

    /// All state attribute ids with their position offsets (`offsets` has one
    /// more entry than positions).
    pub fn state_layout(&self) -> (&[u32], &[u32], Option<&[f32]>) {
        (
            &self.state.offsets,
            &self.state.ids,
            if self.state.values.is_empty() {
                None
            } else {
                Some(&self.state.values)
            },
        )
    }

    /// Approximate heap bytes used.
    pub fn heap_bytes(&self) -> usize {
        4 * (self.seq_starts.len()
            + self.state.offsets.len()
            + self.state.ids.len()
            + self.state.values.len()
            + self.edge.offsets.len()
            + self.edge.ids.len()
            + self.edge.values.len())
    }
}

/// The attributes of one sequence in an [`ObservationArena`].
#[derive(Clone, Copy, Debug)]
pub struct Observations<'a> {
    arena: &'a ObservationArena,
    start: usize,
    len: usize,
}

impl<'a> Observations<'a> {
    /// Number of positions.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the sequence is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// State attributes at position `t`.
    #[inline]
    pub fn state(&self, t: usize) -> (&'a [u32], Option<&'a [f32]>) {
        self.arena.state.row(self.start + t)
    }
    /// Edge attributes at position `t` (attributes of the transition into `t`).
    #[inline]
    pub fn edge(&self, t: usize) -> (&'a [u32], Option<&'a [f32]>) {
        self.arena.edge.row(self.start + t)
    }
    /// Whether this sequence has any edge attribute.
    pub fn has_edge_attributes(&self) -> bool {
        let a = &self.arena.edge.offsets;
        a[self.start] != a[self.start + self.len]
    }
    /// Global index of position 0 in the arena.
    pub fn global_start(&self) -> usize {
        self.start
    }
}

/// Adds `Σ value · (attribute's state weights)` for each attribute at each
/// position of `obs` into the `n × k` row-major `out` (which the caller zeroes
/// or pre-fills), from dense or sparse rows ([`StateRows`]). Generic over the
/// weight type so training (`f64`) and tagging (`f32`) share it.
///
/// On a large model most dense rows of rare attributes are cache misses; the
/// rows of position `t + PREFETCH_AHEAD` are requested while position `t` is
/// summed, so that several misses are in flight at once.
#[inline]
pub(crate) fn accumulate_emissions<W: Copy + Into<f64>>(
    obs: &Observations<'_>,
    state: StateRows<'_, W>,
    k: usize,
    out: &mut [f64],
) {
    let n = obs.len();
    for t in 0..n {
        let row = &mut out[t * k..(t + 1) * k];
        let (ids, values) = obs.state(t);
        match state {
            StateRows::Dense { weights, stride } => {
                if t + PREFETCH_AHEAD < n {
                    for &id in obs.state(t + PREFETCH_AHEAD).0 {
                        prefetch(&weights[id as usize * stride]);
                    }
                }
                let rows = ids.iter().map(|&id| &weights[id as usize * stride..][..k]);
                match values {
                    None => {
                        for w in rows {
                            for (o, &x) in row.iter_mut().zip(w) {
                                *o += x.into();
                            }
                        }
                    }
                    Some(values) => {
                        // A value of 0 (pycrfsuite's `False` features) adds
                        // `0 · x`, which changes no sum (none is `-0`): skipped.
                        for (w, &v) in rows.zip(values).filter(|&(_, &v)| v != 0.0) {
                            for (o, &x) in row.iter_mut().zip(w) {
                                *o += f64::from(v) * x.into();
                            }
                        }
                    }
                }
            }
            // Skipping the labels an attribute has no entry for adds nothing
            // but zeros, so the sums are those of the dense rows, bit for bit.
            StateRows::Sparse {
                starts,
                labels,
                weights,
            } => {
                if t + PREFETCH_AHEAD < n {
                    for &id in obs.state(t + PREFETCH_AHEAD).0 {
                        let at = starts[id as usize] as usize;
                        if let (Some(w), Some(y)) = (weights.get(at), labels.get(at)) {
                            prefetch(w);
                            prefetch(y);
                        }
                    }
                }
                for (j, &id) in ids.iter().enumerate() {
                    let v = values.map_or(1.0, |v| f64::from(v[j]));
                    if v == 0.0 {
                        continue; // as in the dense rows
                    }
                    let entries = starts[id as usize] as usize..starts[id as usize + 1] as usize;
                    add_sparse_row(row, &labels[entries.clone()], &weights[entries], v);
                }
            }
        }
    }
}

/// Adds `v ·` one attribute's sparse entries (labels `labels`, weights
/// `weights`) into an emission row. An attribute with an entry for every
/// label (labels `0..k` in order, as [`StateRows::Sparse`] requires) is added
/// as a dense row, in a loop the compiler vectorizes: the same additions in
/// the same order, so the same bits, without the indexed stores whose
/// repeated labels make each add wait for the one before.
#[inline(always)]
pub(crate) fn add_sparse_row<W: Copy + Into<f64>>(row: &mut [f64], labels: &[u32], weights: &[W], v: f64) {
    if labels.len() == row.len() {
        for (o, &x) in row.iter_mut().zip(weights) {
            *o += v * x.into();
        }
    } else {
        for (&y, &x) in labels.iter().zip(weights) {
            row[y as usize] += v * x.into();
        }
    }
}

/// How many positions ahead [`accumulate_emissions`] requests the weight rows
/// it will need.
pub(crate) const PREFETCH_AHEAD: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;
    use chaincrf_features::Attr;

    /// Attributes `a`, `b`, `c` at every position, `b` with value 0.5, in an
    /// order that `remap` has to sort.
    struct Three;
    impl FeatureExtractor for Three {
        type Input = [u8];
        fn len(&self, input: &[u8]) -> usize {
            input.len()
        }
        fn extract(&self, input: &[u8], t: usize, sink: &mut dyn FnMut(Attr<'_>)) {
            if input[t] == 0 {
                return; // a position without attributes
            }
            sink(Attr::state("c"));
            sink(Attr::state("b").with_value(0.5));
            sink(Attr::state("a"));
        }
    }

    #[test]
    fn remap_sorts_each_row_and_keeps_values_with_their_ids() {
        let mut builder = DictionaryBuilder::new(false);
        let mut arena = ObservationArena::new();
        arena.push_counting(&Three, &[1, 0, 1], &mut builder);
        let (dict, maps) = builder.freeze_with_map(1);
        arena.remap(&maps);
        assert!(arena.rows_sorted());
        let id = |name: &str| dict.id(AttrKind::State, chaincrf_features::hash_name(name)).unwrap();
        let seq = arena.sequence(0);
        assert_eq!(seq.state(1).0, &[] as &[u32]);
        for t in [0, 2] {
            let (ids, values) = seq.state(t);
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
            let values = values.expect("one attribute has a value");
            for (&i, &v) in ids.iter().zip(values) {
                assert_eq!(v, if i == id("b") { 0.5 } else { 1.0 });
            }
        }
    }
}
