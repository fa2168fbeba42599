//! Attribute dictionaries (attribute key → dense id) and label alphabets.
//!
//! A [`DictionaryBuilder`] counts attributes over the training data; freezing it
//! with a minimum frequency gives an [`AttributeDictionary`] whose ids are dense
//! and assigned in order of first occurrence, so the same data always gives the
//! same ids. State and edge attributes have separate id spaces, because their
//! weights live in separate blocks (k per state attribute, k² per edge attribute).
//! At tagging time an attribute the dictionary does not know is simply ignored.

use crate::extractor::{Attr, AttrKey, AttrKind};
use crate::key_index::KeyIndex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Counts attributes seen in training data, in order of first occurrence.
#[derive(Debug, Default, Clone)]
pub struct DictionaryBuilder {
    keep_names: bool,
    kinds: [KindCounts; 2],
}

#[derive(Debug, Default, Clone)]
struct KindCounts {
    index: KeyIndex,
    keys: Vec<u64>,
    counts: Vec<u32>,
    /// One entry per key when names are kept, empty otherwise.
    names: Vec<Option<Box<str>>>,
}

impl KindCounts {
    /// Adds `by` to the count of `key` (saturating), adding the key with
    /// `name()` when it is new; returns its provisional id.
    #[inline]
    fn count(&mut self, key: u64, by: u32, keep_names: bool, name: impl FnOnce() -> Option<Box<str>>) -> u32 {
        let next = self.keys.len() as u32;
        let id = self.index.insert(key, next);
        if id == next {
            self.keys.push(key);
            self.counts.push(by);
            if keep_names {
                self.names.push(name());
            }
        } else {
            let c = &mut self.counts[id as usize];
            *c = c.saturating_add(by);
        }
        id
    }
}

fn kind_slot(kind: AttrKind) -> usize {
    match kind {
        AttrKind::State => 0,
        AttrKind::Edge => 1,
    }
}

fn name_of(keep: bool, key: AttrKey<'_>) -> Option<Box<str>> {
    match (keep, key) {
        (true, AttrKey::Name(n)) => Some(n.into()),
        _ => None,
    }
}

impl DictionaryBuilder {
    /// A builder; with `keep_names` the names of string attributes are kept (for `dump`).
    pub fn new(keep_names: bool) -> Self {
        DictionaryBuilder {
            keep_names,
            kinds: Default::default(),
        }
    }

    /// Whether names are kept.
    pub fn keeps_names(&self) -> bool {
        self.keep_names
    }

    /// Counts one occurrence of `attr`.
    pub fn add(&mut self, attr: &Attr<'_>) {
        self.add_id(attr);
    }

    /// Counts one occurrence of `attr` and returns its provisional id (dense, in
    /// order of first occurrence per kind); [`DictionaryBuilder::freeze_with_map`]
    /// maps provisional ids to final ones.
    #[inline]
    pub(crate) fn add_id(&mut self, attr: &Attr<'_>) -> u32 {
        let keep = self.keep_names;
        self.kinds[kind_slot(attr.kind)].count(attr.key.key(), 1, keep, || name_of(keep, attr.key))
    }

    /// Counts one occurrence of the attribute `key` of `kind` (named `name`, kept
    /// when the builder keeps names); returns its provisional id (dense, in
    /// order of first occurrence per kind), which
    /// [`DictionaryBuilder::freeze_with_map`] maps to the final one.
    #[inline]
    pub fn add_named(&mut self, kind: AttrKind, key: u64, name: Option<&str>) -> u32 {
        let keep = self.keep_names;
        self.kinds[kind_slot(kind)].count(key, 1, keep, || name.map(Into::into))
    }

    /// Starts loading what counting `key` will touch (see [`KeyIndex::prefetch`]).
    #[inline]
    pub fn prefetch(&self, kind: AttrKind, key: u64) {
        self.kinds[kind_slot(kind)].index.prefetch(key);
    }

    /// Freezes like [`DictionaryBuilder::freeze`] and also returns, per kind
    /// (`[state, edge]`), the map provisional id → final id (`None` = cut).
    ///
    /// Final ids are assigned in order of decreasing frequency (ties keep their
    /// first-occurrence order; pinned attributes come first in their old order):
    /// the weights of frequent attributes then share cache lines, which makes
    /// the per-position weight lookups of training and tagging markedly faster.
    pub fn freeze_with_map(self, min_freq: u32) -> (AttributeDictionary, [Vec<Option<u32>>; 2]) {
        let keep_names = self.keep_names;
        let mut out = AttributeDictionary::default();
        let mut maps: [Vec<Option<u32>>; 2] = Default::default();
        for (slot, kc) in self.kinds.into_iter().enumerate() {
            let part = &mut out.kinds[slot];
            let mut order: Vec<usize> = (0..kc.keys.len())
                .filter(|&i| kc.counts[i] >= min_freq.max(1))
                .collect();
            order.sort_by_key(|&i| std::cmp::Reverse(kc.counts[i]));
            let mut map = vec![None; kc.keys.len()];
            for i in order {
                let name = if keep_names { kc.names[i].clone() } else { None };
                map[i] = Some(part.insert(kc.keys[i], name));
            }
            maps[slot] = map;
        }
        (out, maps)
    }

    /// Adds `key` so that it keeps its place and survives any frequency cutoff
    /// (used to extend an existing model's dictionary).
    pub fn pin(&mut self, kind: AttrKind, key: u64, name: Option<&str>) {
        let keep = self.keep_names;
        let slot = &mut self.kinds[kind_slot(kind)];
        let id = slot.count(key, u32::MAX, keep, || name.map(Into::into));
        slot.counts[id as usize] = u32::MAX;
    }

    /// Number of distinct attributes of `kind` counted so far.
    pub fn distinct(&self, kind: AttrKind) -> usize {
        self.kinds[kind_slot(kind)].keys.len()
    }

    /// Merges counts from another builder (its first occurrences come after ours).
    pub fn merge(&mut self, other: &DictionaryBuilder) {
        let keep = self.keep_names;
        for (slot, theirs) in self.kinds.iter_mut().zip(other.kinds.iter()) {
            for (n, (&key, &count)) in theirs.keys.iter().zip(&theirs.counts).enumerate() {
                slot.count(key, count, keep, || theirs.names.get(n).cloned().flatten());
            }
        }
    }

    /// Freezes into a dictionary keeping attributes seen at least `min_freq` times.
    pub fn freeze(self, min_freq: u32) -> AttributeDictionary {
        self.freeze_with_map(min_freq).0
    }
}

/// Attribute key → dense id, separately for state and edge attributes.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct AttributeDictionary {
    kinds: [KindIndex; 2],
}

/// Keys of one kind in id order, with their names when they were kept.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct KindIndex {
    keys: Vec<u64>,
    /// Empty when no names were kept; otherwise one entry per id.
    names: Vec<Option<Box<str>>>,
    #[serde(skip)]
    index: KeyIndex,
}

impl KindIndex {
    fn insert(&mut self, key: u64, name: Option<Box<str>>) -> u32 {
        if let Some(id) = self.index.get(key) {
            return id;
        }
        let id = self.keys.len() as u32;
        self.keys.push(key);
        if name.is_some() && self.names.len() < self.keys.len() - 1 {
            self.names.resize(self.keys.len() - 1, None);
        }
        if name.is_some() || !self.names.is_empty() {
            self.names.push(name);
        }
        self.index.insert(key, id);
        id
    }
    fn rebuild(&mut self) {
        self.index = KeyIndex::from_keys(&self.keys);
    }
}

impl AttributeDictionary {
    /// Number of attributes of `kind`.
    pub fn len(&self, kind: AttrKind) -> usize {
        self.kinds[kind_slot(kind)].keys.len()
    }

    /// Whether the dictionary holds no attribute at all.
    pub fn is_empty(&self) -> bool {
        self.kinds.iter().all(|k| k.keys.is_empty())
    }

    /// The id of an attribute key, if known.
    #[inline]
    pub fn id(&self, kind: AttrKind, key: u64) -> Option<u32> {
        self.kinds[kind_slot(kind)].index.get(key)
    }

    /// Starts loading what a lookup of `key` will read (see [`KeyIndex::prefetch`]).
    #[inline]
    pub fn prefetch(&self, kind: AttrKind, key: u64) {
        self.kinds[kind_slot(kind)].index.prefetch(key);
    }

    /// The id of `attr`, if known.
    #[inline]
    pub fn lookup(&self, attr: &Attr<'_>) -> Option<u32> {
        self.id(attr.kind, attr.key.key())
    }

    /// Adds a key (used when continuing training on new data); returns its id.
    pub fn insert(&mut self, kind: AttrKind, key: u64, name: Option<&str>) -> u32 {
        self.kinds[kind_slot(kind)].insert(key, name.map(Into::into))
    }

    /// The key of id `id`.
    pub fn key(&self, kind: AttrKind, id: u32) -> u64 {
        self.kinds[kind_slot(kind)].keys[id as usize]
    }

    /// The name of id `id`, when names were kept.
    pub fn name(&self, kind: AttrKind, id: u32) -> Option<&str> {
        self.kinds[kind_slot(kind)]
            .names
            .get(id as usize)
            .and_then(|n| n.as_deref())
    }

    /// Keeps only the ids for which `keep(kind, id)` is true, renumbering densely in
    /// the old order; returns for each kind the map old id → new id.
    pub fn retain(&mut self, mut keep: impl FnMut(AttrKind, u32) -> bool) -> [Vec<Option<u32>>; 2] {
        let mut maps: [Vec<Option<u32>>; 2] = Default::default();
        for (slot, kind) in [AttrKind::State, AttrKind::Edge].into_iter().enumerate() {
            let part = std::mem::take(&mut self.kinds[slot]);
            let mut map = Vec::with_capacity(part.keys.len());
            let mut next = KindIndex::default();
            // Names move into the new index (no second copy of them all).
            let mut names = part.names.into_iter();
            for (id, &key) in part.keys.iter().enumerate() {
                let name = names.next().flatten();
                if keep(kind, id as u32) {
                    map.push(Some(next.insert(key, name)));
                } else {
                    map.push(None);
                }
            }
            self.kinds[slot] = next;
            maps[slot] = map;
        }
        maps
    }

    /// Rebuilds the lookup index; call after deserializing.
    pub fn rebuild_index(&mut self) {
        for k in &mut self.kinds {
            k.rebuild();
        }
    }
}

/// Label strings ⇄ dense label ids `0..k`, in order of first occurrence.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LabelAlphabet {
    labels: Vec<String>,
    #[serde(skip)]
    index: HashMap<String, u32>,
}

impl LabelAlphabet {
    /// An empty alphabet.
    pub fn new() -> Self {
        Self::default()
    }

    /// An alphabet with these labels in this order (duplicates are kept once).
    pub fn from_labels<I: IntoIterator<Item = S>, S: AsRef<str>>(labels: I) -> Self {
        let mut a = Self::new();
        for l in labels {
            a.intern(l.as_ref());
        }
        a
    }

    /// The id of `label`, adding it if new.
    pub fn intern(&mut self, label: &str) -> u32 {
        if let Some(&i) = self.index.get(label) {
            return i;
        }
        let i = self.labels.len() as u32;
        self.labels.push(label.to_owned());
        self.index.insert(label.to_owned(), i);
        i
    }

    /// The id of `label`, if known.
    pub fn id(&self, label: &str) -> Option<u32> {
        self.index.get(label).copied()
    }

    /// The label of id `id`.
    pub fn label(&self, id: u32) -> &str {
        &self.labels[id as usize]
    }

    /// Number of labels `k`.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// All labels in id order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Rebuilds the lookup index; call after deserializing.
    pub fn rebuild_index(&mut self) {
        self.index = self
            .labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), i as u32))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_freq_cutoff_and_dense_ids() {
        let mut b = DictionaryBuilder::new(true);
        for name in ["a", "b", "a", "c", "a", "b"] {
            b.add(&Attr::state(name));
        }
        b.add(&Attr::edge("a"));
        let d = b.freeze(2);
        assert_eq!(d.len(AttrKind::State), 2);
        assert_eq!(d.len(AttrKind::Edge), 0);
        assert_eq!(d.lookup(&Attr::state("a")), Some(0));
        assert_eq!(d.lookup(&Attr::state("b")), Some(1));
        assert_eq!(d.lookup(&Attr::state("c")), None);
        assert_eq!(d.name(AttrKind::State, 1), Some("b"));
    }

    #[test]
    fn retain_renumbers() {
        let mut b = DictionaryBuilder::new(false);
        for name in ["a", "b", "c"] {
            b.add(&Attr::state(name));
        }
        let mut d = b.freeze(1);
        let maps = d.retain(|_, id| id != 1);
        assert_eq!(maps[0], vec![Some(0), None, Some(1)]);
        assert_eq!(d.lookup(&Attr::state("c")), Some(1));
    }

    #[test]
    fn labels_roundtrip() {
        let mut a = LabelAlphabet::from_labels(["B", "I", "O", "B"]);
        assert_eq!(a.len(), 3);
        assert_eq!(a.id("O"), Some(2));
        assert_eq!(a.intern("X"), 3);
        assert_eq!(a.label(1), "I");
    }
}
