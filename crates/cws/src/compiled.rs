//! Compiled emission tables: the segmenter's fast path from characters to
//! emission scores.
//!
//! The generic path hashes every attribute of every character (ten n-gram
//! templates, four class and three lexicon attributes by default), looks each
//! key up in a dictionary of hundreds of thousands, and gathers each
//! attribute's weight row from elsewhere: two cache misses per rare attribute,
//! and a dozen of them per character. Yet most of those lookups ask about the
//! same few strings: the bigram `中国` is `C0C1` at one position, `C-1C0` at
//! the next, `C1C2` and `C-2C-1` around them. This module groups the
//! templates by *shape* (their offsets relative to the first: `[0]`, `[0, 1]`,
//! `[0, 2]`, ...) and keeps, per distinct n-gram of each shape, one row holding
//! the weights of every template of that shape side by side. Sweeping a
//! sentence, each n-gram is then looked up once (one probe, one row: two
//! misses instead of eight for a bigram) and its row scattered to the
//! positions its templates score. Class and lexicon attributes have a few
//! hundred possible values between them, so they become small dense arrays
//! indexed directly, with no hashing at all.
//!
//! The n-grams themselves cannot be recovered from a model, which stores only
//! hashed keys; so `cws train` records the n-grams of the training text whose
//! attributes made it into the model, as an [`NgramInventory`] stored with
//! the model's configuration. At load the segmenter looks every inventoried
//! n-gram up once, under each template of its shape, and builds the tables.
//! It uses them only when they cover every state attribute of the model:
//! then both paths add exactly the same weights (in another order, so scores
//! may differ in the last bits), and otherwise (an older model without an
//! inventory, templates longer than three characters) segmentation takes the
//! generic path, never a silently different one.

use crate::clusters::CharClusters;
use crate::lexicon::{LexMatch, Lexicon};
use crate::ngram::{
    char_symbol, class_code, cluster_value_symbol, lexicon_inside_value, packed_symbol, unpacked_symbol, LexiconAttr,
    NgramExtractor, CLASS_OFFSETS, MAX_CLASS_CODE, PACKED_SYMBOL_BITS,
};
use chaincrf_features::prefetch;
use chaincrf_features::{AttrKind, AttributeDictionary, KeyIndex};
use chaincrf_model::Model;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;

/// The longest template a shape group supports: three packed symbols fill a `u64`.
const MAX_SHAPE_LEN: usize = 3;

/// The most n-gram templates the tables are built for (configurations in use
/// have about ten); beyond it, and for a forged configuration, the generic
/// path serves.
const MAX_TEMPLATES: usize = 64;

/// Number of class codes, the boundary code 0 included.
const CLASS_CODES: usize = MAX_CLASS_CODE as usize + 1;

/// Positions between issuing a prefetch and using what it fetches.
const AHEAD: usize = 8;

/// Templates that read the same relative offsets.
#[derive(Clone, Debug, PartialEq)]
struct ShapeGroup {
    /// Offsets relative to the first offset of each member (`shape[0] == 0`).
    shape: Vec<isize>,
    /// Per member: its index among the configured templates, and its first
    /// offset (the anchor: an n-gram starting at `p` is the member's
    /// attribute at position `p - anchor`).
    members: Vec<(usize, isize)>,
}

/// The shape groups of `templates`, in order of first appearance; `None`
/// when a template is longer than [`MAX_SHAPE_LEN`] or there are more than
/// [`MAX_TEMPLATES`].
fn shape_groups(templates: &[Vec<i32>]) -> Option<Vec<ShapeGroup>> {
    if templates.len() > MAX_TEMPLATES {
        return None;
    }
    let mut groups: Vec<ShapeGroup> = Vec::new();
    for (i, t) in templates.iter().enumerate() {
        if t.is_empty() || t.len() > MAX_SHAPE_LEN {
            return None;
        }
        let anchor = t[0] as isize;
        let shape: Vec<isize> = t.iter().map(|&o| o as isize - anchor).collect();
        match groups.iter_mut().find(|g| g.shape == shape) {
            Some(g) => g.members.push((i, anchor)),
            None => groups.push(ShapeGroup {
                shape,
                members: vec![(i, anchor)],
            }),
        }
    }
    Some(groups)
}

impl ShapeGroup {
    /// The n-gram starting at sentence position `p`, packed, from `symbols`
    /// (the packed symbols of positions `-pad..n + pad`).
    #[inline]
    fn packed_at(&self, symbols: &[u32], pad: usize, p: isize) -> u64 {
        let mut key = 0u64;
        for (i, &o) in self.shape.iter().enumerate() {
            let s = symbols[(p + o + pad as isize) as usize];
            key |= u64::from(s) << (PACKED_SYMBOL_BITS as usize * i);
        }
        key
    }

    /// The attribute key of member `m` for a packed n-gram of this shape.
    fn member_key(&self, extractor: &NgramExtractor, m: usize, packed: u64) -> u64 {
        let mask = (1u64 << PACKED_SYMBOL_BITS) - 1;
        let symbols = (0..self.shape.len())
            .map(|i| unpacked_symbol(((packed >> (PACKED_SYMBOL_BITS as usize * i)) & mask) as u32));
        extractor.template_key(self.members[m].0, symbols)
    }

    /// The n-gram start positions that score some position of an `n`-long
    /// sentence.
    fn starts(&self, n: usize) -> std::ops::Range<isize> {
        let lo = self.members.iter().map(|m| m.1).min().unwrap_or(0);
        let hi = self.members.iter().map(|m| m.1).max().unwrap_or(0);
        lo..n as isize + hi
    }
}

/// The n-grams of a training text whose attributes a model kept, per shape
/// group of the extractor's templates. Stored with a CWS model so the
/// segmenter can compile its weight tables (see [`Segmenter`](crate::Segmenter)).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NgramInventory {
    /// Per shape group: the packed n-grams, sorted, each stored as the
    /// difference from the previous one (small numbers encode short).
    groups: Vec<Vec<u64>>,
}

impl NgramInventory {
    /// The n-grams of `sentences` (normalized characters, as the extractor
    /// sees them) that fill at least one template whose attribute is in
    /// `attributes`. `None` when the templates cannot be compiled (one is
    /// longer than three characters).
    pub fn collect<'a>(
        extractor: &NgramExtractor,
        sentences: impl IntoIterator<Item = &'a [char]>,
        attributes: &AttributeDictionary,
    ) -> Option<Self> {
        let groups = shape_groups(&extractor.config().templates)?;
        let pad = extractor.config().window;
        let mut seen: Vec<HashSet<u64>> = vec![HashSet::new(); groups.len()];
        let mut symbols = Vec::new();
        for chars in sentences {
            fill_symbols(chars, pad, &mut symbols);
            for (g, set) in groups.iter().zip(&mut seen) {
                for p in g.starts(chars.len()) {
                    set.insert(g.packed_at(&symbols, pad, p));
                }
            }
        }
        let groups = groups
            .iter()
            .zip(seen)
            .map(|(g, set)| {
                let mut kept: Vec<u64> = set
                    .into_iter()
                    .filter(|&packed| {
                        (0..g.members.len()).any(|m| {
                            attributes
                                .id(AttrKind::State, g.member_key(extractor, m, packed))
                                .is_some()
                        })
                    })
                    .collect();
                kept.sort_unstable();
                let mut previous = 0;
                for x in &mut kept {
                    (*x, previous) = (*x - previous, *x);
                }
                kept
            })
            .collect();
        Some(NgramInventory { groups })
    }

    /// Number of n-grams, over all groups.
    pub fn len(&self) -> usize {
        self.groups.iter().map(Vec::len).sum()
    }

    /// Whether the inventory holds no n-gram.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The packed n-grams of group `g`, in increasing order.
    fn group(&self, g: usize) -> impl Iterator<Item = u64> + '_ {
        self.groups[g].iter().scan(0u64, |acc, &d| {
            *acc = acc.wrapping_add(d);
            Some(*acc)
        })
    }
}

/// One shape group's table: packed n-gram → row of its members' weights.
#[derive(Clone, Debug)]
struct CompiledGroup {
    group: ShapeGroup,
    index: KeyIndex,
    /// Row `r` holds, member after member, `k` weights each (zeros for a
    /// member whose attribute is not in the model).
    rows: Vec<f32>,
}

/// Dense rows of the class and lexicon attributes, indexed by their values
/// (no hashing), with the attributes that always fire together summed in
/// advance: one row per character for the four class attributes, two for
/// the three lexicon ones. Zeros stand for values the model has no
/// attribute for. Sums are in `f64`, as the generic path sums.
#[derive(Clone, Debug, Default)]
struct DenseRows {
    /// `T-1 + T0 + T1 + T-1T0T1`, indexed by the three class codes:
    /// `CLASS_CODES³` rows.
    class: Vec<f64>,
    /// `LS + LE`, indexed by the two capped lengths: `(cap + 1)²` rows.
    lex_ends: Vec<f64>,
    /// `LI`, indexed by capped length, then position in the word: `(cap + 1) × 5` rows.
    lex_inside: Vec<f64>,
}

/// The tables of the character-cluster attributes (see `crate::clusters`).
/// Cluster values are few (the ids, unknown, and the two boundaries at
/// distance 1), so the six attributes on clusters alone become three dense
/// tables over pairs of values, each pair's attributes summed in advance.
/// The two mixed attributes, a character beside a neighbour's cluster, are
/// keyed by (template, character, value) in an index of the pairs the model
/// has.
#[derive(Clone, Debug)]
struct ClusterTables {
    clusters: Arc<CharClusters>,
    /// Number of cluster values: `clusters.len() + 3`.
    values: usize,
    /// `K-1 + K0 + K-1K0`, by (K-1, K0); `values²` rows.
    left: Vec<f64>,
    /// `K1 + K0K1`, by (K0, K1).
    right: Vec<f64>,
    /// `K-1K1`, by (K-1, K1).
    skip: Vec<f64>,
    /// `C0K1` and `K-1C0` rows, by [`mixed_key`].
    mixed: KeyIndex,
    mixed_rows: Vec<f32>,
}

/// The index key of a mixed cluster attribute: `after` is 0 for `C0K1`
/// (the next character's cluster) and 1 for `K-1C0` (the previous one's).
#[inline]
fn mixed_key(after: u64, c: char, value: usize) -> u64 {
    after << 60 | u64::from(c as u32) << 20 | value as u64
}

impl ClusterTables {
    /// The tables for `clusters`, marking the attributes they hold in
    /// `covered`; `chars` are the characters whose mixed attributes to look
    /// up: those with a cluster and those of the unigram inventory (a rare
    /// character with a mixed attribute but no unigram one leaves the model
    /// uncovered, and the generic path serves it). The template numbers are those of
    /// [`CLUSTER_TEMPLATES`](crate::ngram::CLUSTER_TEMPLATES) (a test checks
    /// the order).
    fn new(
        extractor: &NgramExtractor,
        model: &Model,
        clusters: &Arc<CharClusters>,
        chars: &[char],
        covered: &mut [bool],
    ) -> Self {
        let k = model.num_labels();
        let values = clusters.len() + 3;
        let symbol = |v: usize| cluster_value_symbol(clusters, v);
        let mut row_of = |key: u64| -> Option<&[f32]> {
            let id = model.attributes().id(AttrKind::State, key)? as usize;
            covered[id] = true;
            Some(&model.state_weights()[id * k..(id + 1) * k])
        };
        let mut unigram = |template: usize| -> Vec<Vec<f64>> {
            (0..values)
                .map(|v| widen(row_of(extractor.cluster_key(template, [symbol(v)])), k))
                .collect()
        };
        let (before, at, after) = (unigram(0), unigram(1), unigram(2));
        let mut left = Vec::with_capacity(values * values * k);
        let mut right = Vec::with_capacity(values * values * k);
        let mut skip = Vec::with_capacity(values * values * k);
        for (a, before_a) in before.iter().enumerate() {
            for (b, at_b) in at.iter().enumerate() {
                let mut sum = widen(row_of(extractor.cluster_key(3, [symbol(a), symbol(b)])), k);
                add_row(&mut sum, before_a);
                add_row(&mut sum, at_b);
                left.extend(sum);
                let mut sum = widen(row_of(extractor.cluster_key(4, [symbol(a), symbol(b)])), k);
                add_row(&mut sum, &after[b]);
                right.extend(sum);
                skip.extend(widen(row_of(extractor.cluster_key(5, [symbol(a), symbol(b)])), k));
            }
        }
        let mut keys = Vec::new();
        let mut mixed_rows = Vec::new();
        for &c in chars {
            for v in 0..values {
                let found = [
                    (0, extractor.cluster_key(6, [char_symbol(c), symbol(v)])),
                    (1, extractor.cluster_key(7, [symbol(v), char_symbol(c)])),
                ];
                for (after, key) in found {
                    if let Some(row) = row_of(key) {
                        keys.push(mixed_key(after, c, v));
                        mixed_rows.extend_from_slice(row);
                    }
                }
            }
        }
        ClusterTables {
            clusters: Arc::clone(clusters),
            values,
            left,
            right,
            skip,
            mixed: KeyIndex::from_keys(&keys),
            mixed_rows,
        }
    }

    fn heap_bytes(&self) -> usize {
        8 * (self.left.len() + self.right.len() + self.skip.len()) + self.mixed.heap_bytes() + 4 * self.mixed_rows.len()
    }

    /// Adds the cluster attributes' weights of `chars` to `out`.
    #[inline(always)]
    fn add<const K: usize>(&self, chars: &[char], k: usize, values: &mut Vec<usize>, out: &mut [f64]) {
        let n = self.clusters.len();
        // values[i] is the cluster value of position i - 1.
        values.clear();
        values.push(n + 1);
        values.extend(chars.iter().map(|&c| usize::from(self.clusters.id(c))));
        values.push(n + 2);
        let v = self.values;
        for ((w, &c), row) in values.windows(3).zip(chars).zip(out.chunks_exact_mut(k)) {
            let (a, b, d) = (w[0], w[1], w[2]);
            add_weights::<K, _>(row, &self.left[(a * v + b) * k..][..k]);
            add_weights::<K, _>(row, &self.right[(b * v + d) * k..][..k]);
            add_weights::<K, _>(row, &self.skip[(a * v + d) * k..][..k]);
            for key in [mixed_key(0, c, d), mixed_key(1, c, a)] {
                if let Some(r) = self.mixed.get(key) {
                    add_weights::<K, _>(row, &self.mixed_rows[r as usize * k..][..k]);
                }
            }
        }
    }
}

/// A weight row widened to `f64`, zeros when the model lacks the attribute.
fn widen(row: Option<&[f32]>, k: usize) -> Vec<f64> {
    match row {
        Some(r) => r.iter().map(|&w| f64::from(w)).collect(),
        None => vec![0.0; k],
    }
}

/// The compiled tables of one segmentation model (see the module docs).
#[derive(Clone, Debug)]
pub(crate) struct CompiledEmissions {
    k: usize,
    pad: usize,
    groups: Vec<CompiledGroup>,
    classes: bool,
    lexicon_cap: Option<usize>,
    dense: DenseRows,
    clusters: Option<ClusterTables>,
}

/// The state-attribute ids of `keys`, each lookup requested `4 × AHEAD`
/// keys in advance (a lookup here is a few instructions: more of them fit
/// in the time of one miss).
fn resolve(attributes: &AttributeDictionary, keys: &[u64]) -> Vec<Option<u32>> {
    let mut ids = Vec::with_capacity(keys.len());
    for (i, &key) in keys.iter().enumerate() {
        if let Some(&ahead) = keys.get(i + 4 * AHEAD) {
            attributes.prefetch(AttrKind::State, ahead);
        }
        ids.push(attributes.id(AttrKind::State, key));
    }
    ids
}

/// `len` zeros in memory the kernel is asked to back with huge pages (Linux,
/// `madvise(MADV_HUGEPAGE)` before the pages are touched); elsewhere, or when
/// the kernel declines, a plain vector.
///
/// The rows of the two large groups (megabytes each) are read at random, a
/// few per character: with 4 KiB pages nearly every such read also misses
/// the TLB, and the page walk stalls even the prefetches that are meant to
/// hide the miss. Results never depend on it.
fn huge_page_zeros(len: usize) -> Vec<f32> {
    // Zeroed by the allocator: fresh pages, not written here, so the advice
    // below still comes before they are first touched.
    let mut v = vec![0f32; len];
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let bytes = len * std::mem::size_of::<f32>();
        if bytes >= 2 * HUGE {
            let start = v.as_mut_ptr() as usize;
            let first = start.div_ceil(4096) * 4096;
            let end = (start + bytes) / 4096 * 4096;
            if end > first {
                // SAFETY: the range lies inside this vector's allocation,
                // which nothing else references; MADV_HUGEPAGE only changes
                // how the kernel backs the pages, not their contents.
                unsafe {
                    libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
                }
            }
        }
    }
    v
}

/// Builds one group's table from its inventoried n-grams; also returns the
/// ids of the attributes it holds. `None` when the inventory is not what
/// [`NgramInventory::collect`] writes (n-grams strictly increasing, no bits
/// beyond the shape's symbols): a corrupted one must not half-work.
fn compile_group(
    extractor: &NgramExtractor,
    model: &Model,
    group: ShapeGroup,
    ngrams: impl Iterator<Item = u64>,
) -> Option<(CompiledGroup, Vec<u32>)> {
    let k = model.num_labels();
    let mut covered = Vec::new();
    let members = group.members.len();
    let ngrams: Vec<u64> = ngrams.collect();
    let bits = PACKED_SYMBOL_BITS as usize * group.shape.len();
    let stray = |x: u64| bits < 64 && x >> bits != 0;
    if ngrams.iter().any(|&x| stray(x)) || ngrams.windows(2).any(|w| w[0] >= w[1]) {
        return None;
    }
    // All keys first, then their ids with lookups requested ahead: a
    // model's dictionary is far larger than the cache.
    let keys: Vec<u64> = ngrams
        .iter()
        .flat_map(|&packed| (0..members).map(move |m| (m, packed)))
        .map(|(m, packed)| group.member_key(extractor, m, packed))
        .collect();
    let ids = resolve(model.attributes(), &keys);
    let state = model.state_weights();
    let ids_ahead = |i: usize| ids.get(i * members..(i + 1) * members);
    let width = members * k;
    let kept_count = ids
        .chunks_exact(members)
        .filter(|ids| ids.iter().any(Option::is_some))
        .count();
    let mut rows = huge_page_zeros(kept_count * width);
    let mut kept = Vec::with_capacity(kept_count);
    for (i, (&packed, ids)) in ngrams.iter().zip(ids.chunks_exact(members)).enumerate() {
        if let Some(ahead) = ids_ahead(i + AHEAD) {
            for &id in ahead.iter().flatten() {
                prefetch(&state[id as usize * k]);
            }
        }
        if ids.iter().all(Option::is_none) {
            continue;
        }
        let row = &mut rows[kept.len() * width..][..width];
        kept.push(packed);
        for (id, dst) in ids.iter().zip(row.chunks_exact_mut(k)) {
            if let Some(id) = *id {
                let id = id as usize;
                // Element by element: a call to `memcpy` per
                // 16-byte row costs more than the copy.
                for (d, &w) in dst.iter_mut().zip(&state[id * k..(id + 1) * k]) {
                    *d = w;
                }
                covered.push(id as u32);
            }
        }
    }
    // Row `i` belongs to the `i`-th kept n-gram.
    let index = KeyIndex::from_keys(&kept);
    Some((CompiledGroup { group, index, rows }, covered))
}

impl CompiledEmissions {
    /// Builds the tables of `model` for `extractor` from `inventory`; `None`
    /// when they would not cover every state attribute of the model (the
    /// generic path must then be used).
    pub(crate) fn new(extractor: &NgramExtractor, inventory: &NgramInventory, model: &Model) -> Option<Self> {
        let k = model.num_labels();
        let config = extractor.config();
        let groups = shape_groups(&config.templates)?;
        if groups.len() != inventory.groups.len() || model.attributes().len(AttrKind::Edge) != 0 || k == 0 {
            return None;
        }
        let num_state = model.attributes().len(AttrKind::State);
        // A valid inventory's n-grams each fill an attribute of the model
        // (or did, before a later pruning): bound the keys to look up by the
        // model's size, so a forged inventory cannot ask for terabytes.
        let keys: usize = groups
            .iter()
            .zip(&inventory.groups)
            .map(|(g, ngrams)| g.members.len().saturating_mul(ngrams.len()))
            .fold(0, usize::saturating_add);
        if keys > num_state.saturating_mul(16).saturating_add(1 << 20) {
            return None;
        }
        let mut covered = vec![false; num_state];
        // The groups are independent, and the large ones (bigrams, skip
        // bigrams) are about the same size: one thread each, so a model
        // loads in about half the time on two cores. A group whose thread
        // cannot be started is built here instead.
        let built: Vec<Option<(CompiledGroup, Vec<u32>)>> = std::thread::scope(|scope| {
            let compile = move |g: usize, group: ShapeGroup| compile_group(extractor, model, group, inventory.group(g));
            let handles: Vec<_> = groups
                .into_iter()
                .enumerate()
                .map(|(g, group)| {
                    std::thread::Builder::new()
                        .spawn_scoped(scope, {
                            let group = group.clone();
                            move || compile(g, group)
                        })
                        .map_err(|_| (g, group))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| match h {
                    Ok(h) => h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
                    Err((g, group)) => compile(g, group),
                })
                .collect()
        });
        let mut compiled = Vec::with_capacity(built.len());
        for (group, ids) in built.into_iter().collect::<Option<Vec<_>>>()? {
            for id in ids {
                covered[id as usize] = true;
            }
            compiled.push(group);
        }
        let mut dense = DenseRows::default();
        // The value's weight row (zeros when the model lacks the attribute).
        let mut row_of = |key: u64| -> Vec<f64> {
            match model.attributes().id(AttrKind::State, key) {
                Some(id) => {
                    covered[id as usize] = true;
                    let id = id as usize;
                    model.state_weights()[id * k..(id + 1) * k]
                        .iter()
                        .map(|&w| f64::from(w))
                        .collect()
                }
                None => vec![0.0; k],
            }
        };
        if config.char_classes {
            let unigrams: Vec<Vec<Vec<f64>>> = (0..CLASS_OFFSETS.len())
                .map(|i| {
                    (0..CLASS_CODES)
                        .map(|code| row_of(extractor.class_key(i, code as u64)))
                        .collect()
                })
                .collect();
            for c in 0..CLASS_CODES.pow(3) {
                let codes = [
                    c / (CLASS_CODES * CLASS_CODES),
                    c / CLASS_CODES % CLASS_CODES,
                    c % CLASS_CODES,
                ];
                let mut sum = row_of(extractor.class_trigram_key(codes.map(|c| c as u64)));
                for (i, &code) in codes.iter().enumerate() {
                    add_row(&mut sum, &unigrams[i][code]);
                }
                dense.class.extend(sum);
            }
        }
        // No match is longer than the lexicon's longest word, so lengths
        // capped there index the same rows; a forged configuration with a
        // cap of 2⁶⁴ − 1 must not size the tables.
        let lexicon_cap = extractor.lexicon().map(|l| config.lexicon_cap.min(l.max_len()));
        if let Some(cap) = lexicon_cap {
            let starts: Vec<Vec<f64>> = (0..=cap)
                .map(|len| row_of(extractor.lexicon_key(LexiconAttr::Start, len as u64)))
                .collect();
            for end in 0..=cap {
                let end_row = row_of(extractor.lexicon_key(LexiconAttr::End, end as u64));
                for start in &starts {
                    let mut sum = start.clone();
                    add_row(&mut sum, &end_row);
                    dense.lex_ends.extend(sum);
                }
            }
            for i in 0..(cap + 1) * 5 {
                let value = lexicon_inside_value(i / 5, (i % 5) as u8);
                dense
                    .lex_inside
                    .extend(row_of(extractor.lexicon_key(LexiconAttr::Inside, value)));
            }
        }
        let clusters = extractor.clusters().map(|cl| {
            // The characters the model can have mixed attributes of: those
            // with a cluster, and those of the unigram templates' n-grams.
            let mut chars: Vec<char> = cl.chars().collect();
            if let Some(g) = compiled.iter().position(|g| g.group.shape == [0]) {
                let packed = inventory.group(g).filter(|&p| p < 0x11_0000);
                chars.extend(packed.filter_map(|p| char::from_u32(p as u32)));
            }
            chars.sort_unstable();
            chars.dedup();
            ClusterTables::new(extractor, model, cl, &chars, &mut covered)
        });
        if covered.iter().any(|&c| !c) {
            return None;
        }
        Some(CompiledEmissions {
            k,
            pad: config.window,
            groups: compiled,
            classes: config.char_classes,
            lexicon_cap,
            dense,
            clusters,
        })
    }

    /// Heap bytes of the tables.
    pub(crate) fn heap_bytes(&self) -> usize {
        let d = &self.dense;
        self.groups
            .iter()
            .map(|g| g.index.heap_bytes() + g.rows.capacity() * 4)
            .sum::<usize>()
            + 8 * (d.class.len() + d.lex_ends.len() + d.lex_inside.len())
            + self.clusters.as_ref().map_or(0, ClusterTables::heap_bytes)
    }

    /// Adds the emission scores of `chars` (normalized) to `out` (`n × k`,
    /// zeroed by the caller), with the lexicon of the extractor when it has
    /// lexicon features.
    pub(crate) fn add_emissions(
        &self,
        chars: &[char],
        lexicon: Option<&Lexicon>,
        scratch: &mut CompiledScratch,
        out: &mut [f64],
    ) {
        debug_assert_eq!(out.len(), chars.len() * self.k);
        if chars.is_empty() {
            return;
        }
        // Rows of a length known at compile time become a few vector adds.
        match self.k {
            4 => self.add_emissions_k::<4>(chars, lexicon, scratch, out),
            6 => self.add_emissions_k::<6>(chars, lexicon, scratch, out),
            _ => self.add_emissions_k::<0>(chars, lexicon, scratch, out),
        }
    }

    /// [`CompiledEmissions::add_emissions`] for `K` labels (`K = 0`: any number).
    #[inline(always)]
    fn add_emissions_k<const K: usize>(
        &self,
        chars: &[char],
        lexicon: Option<&Lexicon>,
        scratch: &mut CompiledScratch,
        out: &mut [f64],
    ) {
        let k = if K == 0 { self.k } else { K };
        let d = &self.dense;
        fill_symbols(chars, self.pad, &mut scratch.symbols);
        for g in &self.groups {
            self.add_group::<K>(g, chars.len(), scratch, out);
        }
        if self.classes {
            // codes[i] is the class code of position i - 1.
            let codes = &mut scratch.codes;
            codes.clear();
            codes.extend((-1..=chars.len() as isize).map(|p| class_code(chars, p) as usize));
            for (c, row) in codes.windows(3).zip(out.chunks_exact_mut(k)) {
                let code = (c[0] * CLASS_CODES + c[1]) * CLASS_CODES + c[2];
                add_weights::<K, _>(row, &d.class[code * k..][..k]);
            }
        }
        if let (Some(cap), Some(lex)) = (self.lexicon_cap, lexicon) {
            lex.matches_all_into(chars, &mut scratch.matches, &mut scratch.walks);
            for (m, row) in scratch.matches.iter().zip(out.chunks_exact_mut(k)) {
                let ends = m.end_len.min(cap) * (cap + 1) + m.start_len.min(cap);
                let inside = m.in_len.min(cap) * 5 + usize::from(m.in_position());
                add_weights::<K, _>(row, &d.lex_ends[ends * k..][..k]);
                add_weights::<K, _>(row, &d.lex_inside[inside * k..][..k]);
            }
        }
        if let Some(c) = &self.clusters {
            c.add::<K>(chars, k, &mut scratch.values, out);
        }
    }

    /// Looks up every n-gram of one shape group (slots requested [`AHEAD`]
    /// n-grams in advance), then scatters the rows found (rows requested
    /// ahead too): misses overlap instead of queueing.
    #[inline(always)]
    fn add_group<const K: usize>(&self, g: &CompiledGroup, n: usize, scratch: &mut CompiledScratch, out: &mut [f64]) {
        let k = if K == 0 { self.k } else { K };
        let starts = g.group.starts(n);
        let keys = &mut scratch.keys;
        keys.clear();
        keys.extend(starts.clone().map(|p| g.group.packed_at(&scratch.symbols, self.pad, p)));
        let found = &mut scratch.found;
        found.clear();
        for (i, &key) in keys.iter().enumerate() {
            if let Some(&ahead) = keys.get(i + AHEAD) {
                g.index.prefetch(ahead);
            }
            if let Some(row) = g.index.get(key) {
                found.push((starts.start + i as isize, row));
            }
        }
        let width = g.group.members.len() * k;
        for (i, &(p, row)) in found.iter().enumerate() {
            if let Some(&(_, ahead)) = found.get(i + AHEAD) {
                // A row need not start a cache line: its first and last
                // weights can lie on two.
                let ahead = &g.rows[ahead as usize * width..][..width];
                prefetch(&ahead[0]);
                prefetch(&ahead[width - 1]);
            }
            let row = &g.rows[row as usize * width..][..width];
            for (&(_, anchor), weights) in g.group.members.iter().zip(row.chunks_exact(k)) {
                let t = p - anchor;
                if (0..n as isize).contains(&t) {
                    add_weights::<K, _>(&mut out[t as usize * k..][..k], weights);
                }
            }
        }
    }
}

/// `acc += weights` for `K` labels (`K = 0`: the length of `acc`), widening
/// to `f64`: with `K` fixed, arrays of known length, which compile to a few
/// vector conversions and additions.
#[inline(always)]
fn add_weights<const K: usize, W: Copy + Into<f64>>(acc: &mut [f64], weights: &[W]) {
    if K == 0 {
        add_row(acc, weights);
    } else {
        let acc: &mut [f64; K] = (&mut acc[..K]).try_into().expect("K scores");
        let weights: &[W; K] = weights[..K].try_into().expect("K weights");
        for (a, &w) in acc.iter_mut().zip(weights) {
            *a += w.into();
        }
    }
}

/// `row += weights`, widening to `f64`.
#[inline(always)]
fn add_row<W: Copy + Into<f64>>(row: &mut [f64], weights: &[W]) {
    for (o, &w) in row.iter_mut().zip(weights) {
        *o += w.into();
    }
}

/// The packed symbols of positions `-pad..n + pad` of `chars`.
fn fill_symbols(chars: &[char], pad: usize, symbols: &mut Vec<u32>) {
    symbols.clear();
    let n = chars.len() as isize;
    symbols.extend((-(pad as isize)..n + pad as isize).map(|p| packed_symbol(chars, p)));
}

/// Reusable buffers for [`CompiledEmissions::add_emissions`].
#[derive(Clone, Debug, Default)]
pub(crate) struct CompiledScratch {
    symbols: Vec<u32>,
    keys: Vec<u64>,
    found: Vec<(isize, u32)>,
    codes: Vec<usize>,
    matches: Vec<LexMatch>,
    walks: Vec<(usize, u32)>,
    values: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dense class rows are indexed by class code: every character's
    /// code must fit.
    #[test]
    fn every_class_code_fits_the_dense_rows() {
        let max = (0..=u32::from(char::MAX))
            .filter_map(char::from_u32)
            .map(|c| crate::normalize::char_class(c).code())
            .max()
            .unwrap();
        assert!(u64::from(max) <= MAX_CLASS_CODE, "class code {max}");
    }

    /// The cluster tables number the templates in this order.
    #[test]
    fn cluster_templates_are_in_the_order_the_tables_assume() {
        let names: Vec<String> = crate::ngram::CLUSTER_TEMPLATES
            .iter()
            .map(|t| crate::ngram::cluster_template_name(t))
            .collect();
        assert_eq!(names, ["K-1", "K0", "K1", "K-1K0", "K0K1", "K-1K1", "C0K1", "K-1C0"]);
    }

    #[test]
    fn default_templates_form_three_groups() {
        let groups = shape_groups(&crate::NgramConfig::default().templates).unwrap();
        let shapes: Vec<&[isize]> = groups.iter().map(|g| &g.shape[..]).collect();
        assert_eq!(shapes, [&[0][..], &[0, 1], &[0, 2]]);
        assert_eq!(groups[0].members, [(0, -2), (1, -1), (2, 0), (3, 1), (4, 2)]);
        assert_eq!(groups[1].members, [(5, -2), (6, -1), (7, 0), (8, 1)]);
        assert_eq!(groups[2].members, [(9, -1)]);
        assert!(shape_groups(&[vec![0, 1, 2, 3]]).is_none());
        // A template listing its offsets backwards has its own shape.
        let groups = shape_groups(&[vec![1, 0], vec![0, 1], vec![2, 1]]).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].members, [(0, 1), (2, 2)]);
    }
}

/// The compiled tables against the generic path, on models trained here.
#[cfg(all(test, feature = "train"))]
mod against_the_generic_path {
    use super::*;
    use crate::segmenter::{CwsModelConfig, EXTRACTOR_KIND_CLUSTERS, EXTRACTOR_KIND_WITH_INVENTORY};
    use crate::train::{train_segmenter, CwsTrainOptions};
    use crate::{normalize, parse_sighan, NgramConfig};
    use chaincrf_model::ExtractorSpec;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    const CORPUS: &str = "迈向  充满  希望  的  新  世纪\n中国  人民  共同  创造  美好  的  未来\n\
我們  在  臺灣  學習  中文\n這個  問題  很  複雜  ，  需要  時間  解決  。\nABC  公司  在  2024  年  上市\n\
１９９８年  ，  中国  人民  迈向  新  的  世纪\n";

    fn options(prune: f32) -> CwsTrainOptions {
        let mut o = CwsTrainOptions {
            min_freq: 1,
            lexicon_min_count: 1,
            prune_threshold: prune,
            ..CwsTrainOptions::default()
        };
        o.params = chaincrf_train::Params::new(chaincrf_train::Algorithm::Lbfgs)
            .c2(0.1)
            .check()
            .unwrap();
        o.threads = 1;
        o
    }

    /// A model's configuration, inventory and extractor, from its spec.
    fn parts(model: &Model) -> (CwsModelConfig, NgramInventory, NgramExtractor) {
        let ExtractorSpec::Custom { kind, payload } = model.extractor() else {
            panic!("not a CWS model")
        };
        let (config, inventory) = if kind == EXTRACTOR_KIND_CLUSTERS {
            let (mut config, inventory, clusters): (CwsModelConfig, Option<NgramInventory>, CharClusters) =
                chaincrf_model::decode_payload(payload).unwrap();
            config.clusters = Some(Arc::new(clusters));
            (config, inventory.expect("an inventory"))
        } else {
            assert_eq!(kind, EXTRACTOR_KIND_WITH_INVENTORY);
            chaincrf_model::decode_payload(payload).unwrap()
        };
        let extractor = config.extractor().unwrap();
        (config, inventory, extractor)
    }

    /// Models trained on `CORPUS`: the default configuration with nothing
    /// pruned and pruned hard; the six-tag scheme (six labels); no lexicon and
    /// no classes, with templates of other shapes (a trigram, a reversed
    /// bigram, a wide skip); lexicon lengths capped at 3 instead of 6;
    /// character clusters (three of them, so that values repeat).
    fn models() -> &'static [Model; 6] {
        static M: OnceLock<[Model; 6]> = OnceLock::new();
        M.get_or_init(|| {
            let sentences = parse_sighan(CORPUS).unwrap();
            let six = CwsTrainOptions {
                scheme: crate::TagScheme::SixTag,
                ..options(0.0)
            };
            let shapes = CwsTrainOptions {
                ngram: NgramConfig {
                    window: 3,
                    templates: vec![vec![0], vec![-1, 0, 1], vec![1, 0], vec![-3, 0], vec![0, 1, 3]],
                    char_classes: false,
                    lexicon_features: false,
                    ..NgramConfig::default()
                },
                ..options(0.0)
            };
            let short_cap = CwsTrainOptions {
                ngram: NgramConfig {
                    lexicon_cap: 3,
                    ..options(0.0).ngram
                },
                ..options(0.0)
            };
            let clusters = CwsTrainOptions {
                char_clusters: 3,
                fold_layout: crate::FoldLayout::Contiguous,
                lexicon_folds: 2,
                ..options(0.0)
            };
            [options(0.0), options(0.05), six, shapes, short_cap, clusters]
                .map(|o| train_segmenter(&sentences, &o, &mut |_| {}).unwrap().model)
        })
    }

    fn assert_same_emissions(model: &Model, text: &str) -> Result<(), TestCaseError> {
        let (_, inventory, extractor) = parts(model);
        let compiled = CompiledEmissions::new(&extractor, &inventory, model).expect("tables cover the model");
        let chars = normalize(text);
        let mut tagger = model.tagger();
        let generic = tagger.observe(&extractor, &chars[..]).emissions().to_vec();
        let mut fast = vec![0.0; generic.len()];
        let lexicon = extractor.lexicon().map(|l| &**l);
        compiled.add_emissions(&chars, lexicon, &mut CompiledScratch::default(), &mut fast);
        for (i, (a, b)) in generic.iter().zip(&fast).enumerate() {
            prop_assert!(
                (a - b).abs() <= 1e-9 * (1.0 + a.abs()),
                "{text:?}, score {i}: {a} vs {b}"
            );
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        /// Every emission score equals the generic path's, on text made of
        /// the training characters (so most n-grams are known), of unseen
        /// ones, and of the corpus's own sentences cut anywhere.
        #[test]
        fn emissions_equal_the_generic_paths(
            text in prop_oneof![
                "[迈向充满希望的新世纪中国人民共同创造美好未来我們在臺灣學習中文，。ABC公司2024年上市１９８]{0,40}",
                "[甲乙丙丁a-z0-9😀\u{10ffff}ß]{0,12}",
                (0usize..CORPUS.len()).prop_map(|i| CORPUS.chars().skip(i % 80).take(30).filter(|c| !c.is_whitespace()).collect::<String>()),
            ],
            which in 0usize..6,
        ) {
            assert_same_emissions(&models()[which], &text)?;
        }
    }

    #[test]
    fn pruning_keeps_the_tables_complete_and_shrinks_them() {
        let [full, pruned, ..] = models();
        assert!(pruned.attributes().len(AttrKind::State) < full.attributes().len(AttrKind::State));
        let (_, inv_full, _) = parts(full);
        let (_, inv_pruned, _) = parts(pruned);
        assert!(
            inv_pruned.len() < inv_full.len(),
            "{} vs {}",
            inv_pruned.len(),
            inv_full.len()
        );
        // A model pruned after training keeps its (now larger than needed)
        // inventory: n-grams without attributes are skipped.
        let mut later = full.clone();
        later.prune_attributes(0.05);
        let (_, inventory, extractor) = parts(&later);
        assert!(CompiledEmissions::new(&extractor, &inventory, &later).is_some());
    }

    #[test]
    fn incomplete_or_unsupported_inventories_are_refused() {
        let model = &models()[0];
        let (config, inventory, extractor) = parts(model);
        assert!(CompiledEmissions::new(&extractor, &inventory, model).is_some());
        // The inventory of part of the corpus misses attributes of the rest.
        let first: Vec<char> = normalize("迈向充满希望的新世纪");
        let partial = NgramInventory::collect(&extractor, [&first[..]], model.attributes()).unwrap();
        assert!(!partial.is_empty());
        assert!(CompiledEmissions::new(&extractor, &partial, model).is_none());
        assert!(CompiledEmissions::new(&extractor, &NgramInventory::default(), model).is_none());
        // Corrupted inventories are refused whole, not used in part: an
        // n-gram repeated (a zero step), bits beyond a unigram's 21, and more
        // n-grams than a model of this size can have.
        let mut repeated = inventory.clone();
        repeated.groups[1].insert(1, 0);
        assert!(CompiledEmissions::new(&extractor, &repeated, model).is_none());
        let mut stray = inventory.clone();
        stray.groups[0][0] |= 1 << 40;
        assert!(CompiledEmissions::new(&extractor, &stray, model).is_none());
        let mut huge = inventory.clone();
        let budget = 16 * model.attributes().len(AttrKind::State) + (1 << 20);
        huge.groups[0] = vec![1; budget / 5 + 1];
        assert!(CompiledEmissions::new(&extractor, &huge, model).is_none());
        let many = vec![vec![0]; MAX_TEMPLATES + 1];
        assert!(shape_groups(&many).is_none());
        // Four-character templates do not pack into a key.
        let long = NgramExtractor::new(
            NgramConfig {
                templates: vec![vec![-1, 0, 1, 2]],
                ..config.ngram.clone()
            },
            config.lexicon.clone(),
        )
        .unwrap();
        assert!(NgramInventory::collect(&long, [&first[..]], model.attributes()).is_none());
    }

    /// A model file whose configuration claims an absurd lexicon cap (a
    /// forged or corrupted one) loads at once and segments as the model does.
    #[test]
    fn an_absurd_lexicon_cap_does_not_size_the_tables() {
        let model = &models()[0];
        let (mut config, inventory, _) = parts(model);
        config.ngram.lexicon_cap = usize::MAX;
        let mut forged = model.clone();
        forged.set_extractor(config.spec_with_inventory(&inventory).unwrap());
        let forged = crate::Segmenter::from_model(forged).unwrap();
        assert!(forged.has_compiled_tables());
        let original = crate::Segmenter::from_model(model.clone()).unwrap();
        for text in ["中国人民迈向新的世纪", "我們在臺灣學習中文，ABC公司"] {
            assert_eq!(forged.words(text).unwrap(), original.words(text).unwrap());
        }
    }

    #[test]
    fn inventory_round_trips_through_its_encoding() {
        let (_, inventory, _) = parts(&models()[0]);
        let bytes = chaincrf_model::encode_payload(&inventory).unwrap();
        let back: NgramInventory = chaincrf_model::decode_payload(&bytes).unwrap();
        assert_eq!(back, inventory);
        for g in 0..inventory.groups.len() {
            let keys: Vec<u64> = inventory.group(g).collect();
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "group {g} is sorted and distinct");
        }
    }
}
