//! The common training pass: one sweep over the corpus per thread, gradients
//! summed as integers.
//!
//! Why: the two-phase pass (see the parent module) stores every position's
//! emission gradient and then sweeps the corpus again, once per thread, to
//! scatter it; on one thread the second sweep costs about a third of the
//! pass, and on two threads the corpus is read three times in all. Scattering
//! each sequence's gradient right after its forward-backward avoids this, but
//! two threads scattering into one weight would add in an order that depends
//! on scheduling, and floating-point sums depend on order.
//!
//! Integer sums do not. Each contribution `value · ∂NLL/∂emission` is rounded
//! once to a fixed-point integer (a multiple of `2⁻ˢ`, with `s` chosen from the
//! data so that no sum can overflow 63 bits: `s` ≥ 24, and 41 on PKU) and
//! added into the summing thread's own gradient rows. Any split of the
//! sequences between any number of threads then gives the same sums, bit for
//! bit. The per-thread rows hold each attribute's weights next to its gradient
//! (`2k` words, one 64-byte line for four labels), so the scatter writes into
//! the lines the emission sum has just read. Losses, transition, start and end
//! gradients are summed in floating point per fixed block of sequences and
//! then over blocks in order, as in the two-phase pass.
//!
//! The pass applies when the data has no edge attributes and the fixed-point
//! range fits ([`Fused::new`]); the two-phase pass handles the rest.
//!
//! **Sparse rows.** With many labels and only observed attribute-label pairs
//! trained (CRFsuite's default), most attributes have weights for a few of
//! the `k` labels (about 2 of 43 on PKU part-of-speech tagging), and a dense
//! row would make every occurrence read `k` weights and add `k` sums to use 2.
//! Then ([`SPARSE_MIN_LABELS`], at most half the pairs trained) the rows hold
//! only the trained pairs: the emission sum reads the parameter vector itself
//! through [`StateRows::Sparse`], and each thread keeps one integer sum per
//! trained pair. The labels skipped would add zeros, so the cost and gradient
//! are the dense rows' to the bit (a test compares them).
//!
//! **Padded rows.** The few attributes that occur most (the bias, shapes,
//! common affixes) have weights for many labels, and they carry almost all
//! the work: on that tagging task 9 of a token's 14 attributes have 8 or more
//! labels, and 96% of the entries read per token are theirs. An entry costs
//! an indexed load and store each; a labels' run of `k` is added as a dense
//! row, several labels per instruction. So an attribute with at least a sixth
//! of the labels gets an entry for every label (weight and sum 0 for the
//! untrained ones, never gathered): the same additions of the same values in
//! the same order, zeros aside, so the same bits again.

use super::{EvalError, Objective, Scratch, BLOCK};
use chaincrf_features::prefetch;
use chaincrf_model::{StateRows, WeightLayout, WeightsView};
use rayon::prelude::*;
use std::sync::Mutex;

/// Fewest fractional bits the fixed-point sums may have (a resolution of
/// 6e-8 per contribution); data that would need fewer uses the two-phase pass.
const MIN_FRACTION_BITS: i32 = 24;

/// Most memory the threads' copies of the rows may take together (a model
/// of 2 million state weights needs 32 MB per copy).
const ROWS_BUDGET: usize = 4 << 30;

/// Fewest labels for which sparse rows are used (when at most half the
/// attribute-label pairs are trained). Below it a dense row is a cache line
/// or two that vectorized loops sweep faster than a list of entries.
const SPARSE_MIN_LABELS: usize = 16;

/// An attribute of sparse rows with at least `1 / PAD_FRACTION` of the labels
/// trained gets an entry for every label (see the module's "Padded rows").
const PAD_FRACTION: usize = 6;

/// Gradient entries per task when the threads' sums are gathered.
const GATHER_CHUNK: usize = 1 << 14;

/// One thread's rows. Dense: attribute `id`'s `k` weights at
/// `rows[at + id·2k]`, then its `k` gradient sums; sparse: one gradient sum per
/// trained state weight. Sums are integers stored as the bits of `f64` words.
#[derive(Default)]
struct Rows {
    words: Vec<f64>,
    at: usize,
}

impl Rows {
    /// The `len` words from a 64-byte boundary, allocated on first use.
    fn get(&mut self, len: usize) -> &mut [f64] {
        if self.words.len() < len + 8 {
            self.words = vec![0.0; len + 8];
            let misalign = (self.words.as_ptr() as usize / std::mem::size_of::<f64>()) % 8;
            self.at = (8 - misalign) % 8;
        }
        &mut self.words[self.at..self.at + len]
    }
}

/// Sums of one block of sequences.
struct BlockSums {
    loss: f64,
    /// Transitions (`k²`), then start (`k`) and end (`k`) scores.
    other: Vec<f64>,
}

/// How the threads' rows are laid out.
enum RowsLayout {
    /// Every attribute's `k` weights and `k` sums, interleaved.
    Dense,
    /// Attribute `a`'s entries are `starts[a]..starts[a + 1]`, for labels
    /// `labels[..]` (increasing); the `n`-th active state weight is entry
    /// `slots[n]`. Entries of padded attributes without a slot are labels
    /// that attribute has no weight for.
    Sparse {
        starts: Vec<u32>,
        labels: Vec<u32>,
        slots: Vec<u32>,
    },
}

impl RowsLayout {
    /// Words of one thread's rows.
    fn words(&self, num_state: usize, k: usize) -> usize {
        match self {
            RowsLayout::Dense => num_state * 2 * k,
            RowsLayout::Sparse { labels, .. } => labels.len(),
        }
    }

    /// The sparse layout of the active state weights `active` (increasing)
    /// over `num_state` attributes of `k` labels, with the attributes that
    /// have many labels padded to all of them; unpadded if the entries would
    /// not fit in `u32`.
    fn sparse(active: &[u32], num_state: usize, k: usize) -> Self {
        Self::sparse_padded(active, num_state, k, true)
            .or_else(|| Self::sparse_padded(active, num_state, k, false))
            .expect("the active weights' ids fit in u32, so unpadded entries do")
    }

    fn sparse_padded(active: &[u32], num_state: usize, k: usize, pad: bool) -> Option<Self> {
        let mut starts = Vec::with_capacity(num_state + 1);
        let mut labels: Vec<u32> = Vec::with_capacity(active.len());
        let mut slots = Vec::with_capacity(active.len());
        let mut next = 0usize;
        for a in 0..num_state {
            starts.push(u32::try_from(labels.len()).ok()?);
            let first = next;
            while next < active.len() && (active[next] as usize) < (a + 1) * k {
                next += 1;
            }
            let pairs = &active[first..next];
            if pad && !pairs.is_empty() && PAD_FRACTION * pairs.len() >= k {
                let base = labels.len();
                labels.extend(0..k as u32);
                for &i in pairs {
                    slots.push(u32::try_from(base + i as usize % k).ok()?);
                }
            } else {
                for &i in pairs {
                    slots.push(u32::try_from(labels.len()).ok()?);
                    labels.push(i % k as u32);
                }
            }
        }
        starts.push(u32::try_from(labels.len()).ok()?);
        Some(RowsLayout::Sparse { starts, labels, slots })
    }
}

/// The fused pass's settings and per-thread rows.
pub(super) struct Fused {
    /// `2ˢ`: a contribution `c` is added as `round(c · scale)`.
    scale: f64,
    /// How many of the active weights are state weights (they come first).
    active_state: usize,
    layout: RowsLayout,
    rows: Vec<Mutex<Rows>>,
    /// Sparse rows: the state weights at their entries (0 at padding).
    entry_weights: Mutex<Vec<f64>>,
}

impl Fused {
    /// The fused pass for `data`, or `None` when it does not apply: edge
    /// attributes, or attribute values and counts so large that fewer than
    /// [`MIN_FRACTION_BITS`] fractional bits would be left.
    pub(super) fn new(
        obj_data: &crate::data::Dataset,
        layout: WeightLayout,
        active: &[u32],
        threads: usize,
    ) -> Option<Self> {
        let active_state = active.partition_point(|&i| i < layout.edge_offset() as u32);
        let sparse = layout.k >= SPARSE_MIN_LABELS && 2 * active_state <= layout.edge_offset();
        Self::with_budget(obj_data, layout, active, threads, ROWS_BUDGET, sparse)
    }

    /// [`Fused::new`] with the rows' memory budget and layout given.
    fn with_budget(
        obj_data: &crate::data::Dataset,
        layout: WeightLayout,
        active: &[u32],
        threads: usize,
        budget: usize,
        sparse: bool,
    ) -> Option<Self> {
        // Edge weights in the layout (even ones that never occur) would sit
        // between the state and transition blocks this pass assumes adjacent.
        if obj_data.arena.has_edge_attributes() || layout.num_edge > 0 || layout.k == 0 {
            return None;
        }
        // |∂NLL/∂emission| ≤ 1, so an attribute's sum is at most the sum of
        // its |value|s, plus half a unit of rounding per occurrence; keep the
        // largest below 2⁶² units of 2⁻ˢ.
        let (_, ids, values) = obj_data.arena.state_layout();
        let mut mass = vec![0.0f64; layout.num_state];
        let mut count = vec![0u32; layout.num_state];
        for (j, &id) in ids.iter().enumerate() {
            mass[id as usize] += values.map_or(1.0, |v| f64::from(v[j]).abs());
            count[id as usize] += 1;
        }
        let rounding = 2f64.powi(-MIN_FRACTION_BITS);
        let bound = mass
            .iter()
            .zip(&count)
            .fold(1.0f64, |m, (&a, &c)| m.max(a + f64::from(c) * rounding));
        if !bound.is_finite() {
            return None;
        }
        let bits = 62 - bound.log2().ceil() as i32;
        if bits < MIN_FRACTION_BITS {
            return None;
        }
        let k = layout.k;
        let active_state = active.partition_point(|&i| i < layout.edge_offset() as u32);
        let rows_layout = if sparse {
            // Active ids are increasing, so each attribute's pairs are one run.
            RowsLayout::sparse(&active[..active_state], layout.num_state, k)
        } else {
            RowsLayout::Dense
        };
        // One copy of the rows per thread, within a memory budget; threads
        // beyond it share copies (a block holds a copy's lock while it runs).
        let words = rows_layout.words(layout.num_state, k);
        let copy_bytes = (words * std::mem::size_of::<f64>()).max(1);
        let copies = threads.max(1).min((budget / copy_bytes).max(1));
        Some(Fused {
            scale: 2f64.powi(bits.min(52)),
            active_state,
            layout: rows_layout,
            rows: (0..copies).map(|_| Mutex::new(Rows::default())).collect(),
            entry_weights: Mutex::new(Vec::new()),
        })
    }
}

/// Where state weight `i` (attribute `i / k`, label `i % k`) sits in the
/// rows (`2k` words per attribute). The division is redone only when an id
/// leaves the attribute of the previous one, so with ids in increasing order a
/// pass over all weights divides once per attribute instead of once per
/// weight (a 64-bit division costs tens of cycles; with every pair active
/// these passes handle 6.4 million weights per evaluation on PKU).
struct RowIndex {
    k: usize,
    /// First weight id of the current attribute, and that attribute's first word.
    base: usize,
    word: usize,
}

impl RowIndex {
    fn new(k: usize) -> Self {
        RowIndex { k, base: 0, word: 0 }
    }

    /// The word of weight `i` (any `i`; cheapest right after an id of the same attribute).
    #[inline]
    fn word(&mut self, i: usize) -> usize {
        let off = i.wrapping_sub(self.base);
        if off < self.k {
            return self.word + off;
        }
        let row = i / self.k;
        self.base = row * self.k;
        self.word = row * 2 * self.k;
        self.word + (i - self.base)
    }
}

/// Attributes per task when the threads' rows are set up.
const INIT_ROWS: usize = 1 << 12;

/// Sets up the dense rows of attributes `first..` (`rows` holds whole rows
/// of `2k` words): each attribute's trained weights from `w` (the state
/// weights `ids`, increasing, with values `w`), its sums zero. Untrained
/// weights are never written: they keep the zero the rows were allocated with.
fn init_dense_rows(rows: &mut [f64], first: usize, k: usize, ids: &[u32], w: &[f64]) {
    let mut next = ids.partition_point(|&i| (i as usize) < first * k);
    for (a, row) in (first..).zip(rows.chunks_exact_mut(2 * k)) {
        let (weights, sums) = row.split_at_mut(k);
        sums.fill(0.0);
        let end = (a + 1) * k;
        while let Some(&i) = ids.get(next).filter(|&&i| (i as usize) < end) {
            weights[i as usize - a * k] = w[next];
            next += 1;
        }
    }
}

/// `y` rounded to the nearest integer, halves away from zero (`f64::round`
/// without the library call it compiles to on baseline x86-64).
#[inline]
fn to_fixed(y: f64) -> i64 {
    (y + 0.5f64.copysign(y)) as i64
}

/// Adds the integer `f` to the sum stored in the bits of `o`.
#[inline(always)]
fn add_fixed(o: &mut f64, f: i64) {
    *o = f64::from_bits((o.to_bits() as i64).wrapping_add(f) as u64);
}

/// Locks one thread's rows (a poisoned lock only means another evaluation
/// failed; the rows are rewritten before use).
fn lock(r: &Mutex<Rows>) -> std::sync::MutexGuard<'_, Rows> {
    r.lock().unwrap_or_else(|p| p.into_inner())
}

impl Objective<'_> {
    /// One fused pass at compact parameters `w`: `(f(w), ∇f(w))`.
    pub(super) fn evaluate_fused(&self, fused: &Fused, w: &[f64]) -> Result<(f64, Vec<f64>), EvalError> {
        let data = self.data;
        let layout = self.layout;
        let (k, kk) = (layout.k, layout.k * layout.k);
        let state_len = layout.edge_offset();
        let (state_w, other_w) = w.split_at(fused.active_state);
        let (state_ids, other_ids) = self.active.split_at(fused.active_state);
        // Transition, start and end weights (no edge block on this path).
        let mut other = vec![0.0; layout.len() - state_len];
        for (&i, &x) in other_ids.iter().zip(other_w) {
            other[i as usize - state_len] = x;
        }
        let (trans, rest) = other.split_at(kk);
        let (start, end) = rest.split_at(k);
        let row_len = fused.layout.words(layout.num_state, k);
        // Sparse rows read the state weights at their entries.
        let mut entry_weights = fused.entry_weights.lock().unwrap_or_else(|p| p.into_inner());
        if let RowsLayout::Sparse { slots, .. } = &fused.layout {
            entry_weights.clear();
            entry_weights.resize(row_len, 0.0);
            for (&at, &x) in slots.iter().zip(state_w) {
                entry_weights[at as usize] = x;
            }
        }
        let entry_weights = &entry_weights[..];
        // Every thread's rows: gradients zero, and (dense) these weights, in
        // one pass over each copy, split between the threads.
        {
            let mut guards: Vec<_> = fused.rows.iter().map(lock).collect();
            let task = match fused.layout {
                RowsLayout::Dense => INIT_ROWS * 2 * k,
                RowsLayout::Sparse { .. } => INIT_ROWS,
            };
            let parts: Vec<(usize, &mut [f64])> = guards
                .iter_mut()
                .flat_map(|g| g.get(row_len).chunks_mut(task).enumerate())
                .collect();
            self.pool.install(|| {
                parts.into_par_iter().for_each(|(c, rows)| match fused.layout {
                    RowsLayout::Sparse { .. } => rows.fill(0.0),
                    RowsLayout::Dense => init_dense_rows(rows, c * INIT_ROWS, k, state_ids, state_w),
                })
            });
        }
        let blocks = data.len().div_ceil(BLOCK);
        let scale = fused.scale;
        let pass = || {
            (0..blocks)
                .into_par_iter()
                .map_init(
                    || (Scratch::new(), Vec::new(), vec![0i64; k]),
                    |(scratch, node, fixed), b| {
                        // This thread's copy, or any free one when copies are shared.
                        let me = rayon::current_thread_index().unwrap_or(0) % fused.rows.len();
                        let mut guard = (0..fused.rows.len())
                            .find_map(|d| fused.rows[(me + d) % fused.rows.len()].try_lock().ok())
                            .unwrap_or_else(|| lock(&fused.rows[me]));
                        let rows = guard.get(row_len);
                        let mut sums = BlockSums {
                            loss: 0.0,
                            other: vec![0.0; kk + 2 * k],
                        };
                        let (offsets, ids, values) = data.arena.state_layout();
                        for i in b * BLOCK..((b + 1) * BLOCK).min(data.len()) {
                            let n = data.arena.sequence(i).len();
                            node.resize(n * k, 0.0);
                            // Sparse rows: ask for the sums this sequence
                            // will add into (the first and last line of each
                            // run; the hardware fetches the ones between):
                            // they arrive while its potentials and marginals
                            // are computed, instead of stalling the scatter.
                            // (Dense rows keep each sum next to the weight
                            // the potentials read.)
                            if let RowsLayout::Sparse { starts, .. } = &fused.layout {
                                let (offsets, ids, _) = data.arena.state_layout();
                                let p0 = data.arena.sequence_start(i);
                                let (s, e) = (offsets[p0] as usize, offsets[p0 + n] as usize);
                                for &id in &ids[s..e] {
                                    let (first, last) =
                                        (starts[id as usize] as usize, starts[id as usize + 1] as usize);
                                    if last > first {
                                        prefetch(&rows[first]);
                                        prefetch(&rows[last - 1]);
                                    }
                                }
                            }
                            let state = match &fused.layout {
                                RowsLayout::Dense => StateRows::Dense {
                                    weights: &rows[..],
                                    stride: 2 * k,
                                },
                                RowsLayout::Sparse { starts, labels, .. } => StateRows::Sparse {
                                    starts,
                                    labels,
                                    weights: entry_weights,
                                },
                            };
                            let view = WeightsView {
                                k,
                                state,
                                edge: &[],
                                transitions: trans,
                                start,
                                end,
                            };
                            let (t_sum, se) = sums.other.split_at_mut(kk);
                            sums.loss +=
                                scratch.sequence(data, i, &view, 1.0, &self.structure, node, &mut [], t_sum)?;
                            if n == 0 {
                                continue;
                            }
                            for y in 0..k {
                                se[y] += node[y];
                                se[k + y] += node[(n - 1) * k + y];
                            }
                            let p0 = data.arena.sequence_start(i);
                            for t in 0..n {
                                let g = &node[t * k..(t + 1) * k];
                                for (f, &x) in fixed.iter_mut().zip(g) {
                                    *f = to_fixed(x * scale);
                                }
                                let (s, e) = (offsets[p0 + t] as usize, offsets[p0 + t + 1] as usize);
                                for (j, &id) in ids[s..e].iter().enumerate() {
                                    let id = id as usize;
                                    // A value of 1 (`1·x` is `x` exactly) adds the
                                    // position's contributions rounded once above;
                                    // only other values round each product.
                                    let v = values.map_or(1.0, |v| f64::from(v[s + j]));
                                    if v == 0.0 {
                                        // Adds 0 to every sum (pycrfsuite's
                                        // `False` features are such values).
                                        continue;
                                    }
                                    let contribution = |y: usize| {
                                        if v == 1.0 {
                                            fixed[y]
                                        } else {
                                            to_fixed(v * g[y] * scale)
                                        }
                                    };
                                    match &fused.layout {
                                        RowsLayout::Dense => {
                                            let slots = &mut rows[id * 2 * k + k..id * 2 * k + 2 * k];
                                            if v == 1.0 {
                                                // Integer adds the compiler vectorizes.
                                                for (o, &f) in slots.iter_mut().zip(fixed.iter()) {
                                                    add_fixed(o, f);
                                                }
                                            } else {
                                                for (y, o) in slots.iter_mut().enumerate() {
                                                    add_fixed(o, contribution(y));
                                                }
                                            }
                                        }
                                        RowsLayout::Sparse { starts, labels, .. } => {
                                            let entries = starts[id] as usize..starts[id + 1] as usize;
                                            let slots = &mut rows[entries.clone()];
                                            if slots.len() == k && v == 1.0 {
                                                // A padded row: as a dense one.
                                                for (o, &f) in slots.iter_mut().zip(fixed.iter()) {
                                                    add_fixed(o, f);
                                                }
                                            } else {
                                                for (o, &y) in slots.iter_mut().zip(&labels[entries]) {
                                                    add_fixed(o, contribution(y as usize));
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        Ok(sums)
                    },
                )
                .collect::<Vec<Result<BlockSums, EvalError>>>()
        };
        // ‖w‖² is a serial sum (its order of addition is in the objective's
        // bits): it runs beside the blocks, as one more task for the threads.
        let (sums, norm2) = self
            .pool
            .install(|| rayon::join(pass, || w.iter().map(|x| x * x).sum::<f64>()));
        let mut cost = 0.0;
        let mut other_grad = vec![0.0; kk + 2 * k];
        for s in sums {
            let s = s?;
            cost += s.loss;
            for (g, x) in other_grad.iter_mut().zip(&s.other) {
                *g += x;
            }
        }
        // The gradient: state sums over the threads' rows (exact integers),
        // then the rest; plus the L2 term.
        let mut guards: Vec<_> = fused.rows.iter().map(lock).collect();
        let all_rows: Vec<&[f64]> = guards.iter_mut().map(|g| &*g.get(row_len)).collect();
        let inv = 1.0 / scale;
        let c2 = self.c2;
        // The solver's spare buffer when it has one (see `parvec`): a fresh
        // vector of this size would be page-faulted in on every evaluation.
        let mut g = crate::parvec::take(w.len());
        g.resize(w.len(), 0.0);
        let (g_state, g_other) = g.split_at_mut(fused.active_state);
        self.pool.install(|| {
            g_state
                .par_chunks_mut(GATHER_CHUNK)
                .zip(state_ids.par_chunks(GATHER_CHUNK))
                .zip(state_w.par_chunks(GATHER_CHUNK))
                .enumerate()
                .for_each(|(chunk, ((out, ids), xs))| {
                    let mut row = RowIndex::new(k);
                    for (n, ((o, &i), &x)) in out.iter_mut().zip(ids).zip(xs).enumerate() {
                        let at = match &fused.layout {
                            RowsLayout::Dense => row.word(i as usize) + k,
                            RowsLayout::Sparse { slots, .. } => slots[chunk * GATHER_CHUNK + n] as usize,
                        };
                        let sum = all_rows
                            .iter()
                            .fold(0i64, |a, r| a.wrapping_add(r[at].to_bits() as i64));
                        *o = sum as f64 * inv + 2.0 * c2 * x;
                    }
                })
        });
        let t0 = layout.transition_offset();
        for ((o, &i), &x) in g_other.iter_mut().zip(other_ids).zip(other_w) {
            *o = other_grad[i as usize - t0] + 2.0 * c2 * x;
        }
        Ok((cost + c2 * norm2, g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::trainable_mask;
    use crate::tests::Tokens;
    use crate::{Algorithm, DatasetBuilder, LabelTarget, Params};
    use chaincrf_model::Structure;

    /// `RowIndex` finds `(i / k)·2k + i % k` for ids in any order.
    #[test]
    fn row_index_agrees_with_division() {
        for k in 1..7 {
            let mut at = RowIndex::new(k);
            let ids = (0..200).chain([3, 150, 7, 7, 0, 1000, 999, 4]);
            for i in ids {
                assert_eq!(at.word(i), (i / k) * 2 * k + i % k, "k = {k}, i = {i}");
            }
        }
    }

    /// Setting up rows in tasks of whole attributes puts every trained
    /// weight where `RowIndex` finds it, zeroes the sums, and leaves
    /// untrained weights as they were (zero).
    #[test]
    fn dense_rows_are_set_up_where_row_index_reads() {
        let k = 3;
        let attributes = 11;
        let ids: Vec<u32> = (0..(attributes * k) as u32).filter(|i| i % 5 != 2).collect();
        let w: Vec<f64> = (0..ids.len()).map(|j| j as f64 + 0.5).collect();
        for task in [1, 2, 4, attributes] {
            let mut rows = vec![7.0; attributes * 2 * k];
            for row in rows.chunks_exact_mut(2 * k) {
                row[..k].fill(0.0);
            }
            for (c, part) in rows.chunks_mut(task * 2 * k).enumerate() {
                init_dense_rows(part, c * task, k, &ids, &w);
            }
            let mut expected = vec![0.0; attributes * 2 * k];
            let mut at = RowIndex::new(k);
            for (&i, &x) in ids.iter().zip(&w) {
                expected[at.word(i as usize)] = x;
            }
            assert_eq!(rows, expected, "{task} attributes per task");
        }
    }

    /// With many labels and observed pairs only, the rows are sparse, and
    /// cost and gradient are the dense rows' bit for bit, on any number of
    /// threads (attribute values other than 1 included: `Tokens` gives its
    /// previous-token attributes 0.5).
    #[test]
    fn sparse_rows_give_the_dense_rows_bits() {
        let k = SPARSE_MIN_LABELS + 4;
        let mut b = DatasetBuilder::new().without_attribute_names().structure(Structure {
            transitions: true,
            start_end: true,
            ..Structure::default()
        });
        for y in 0..k {
            b.labels_mut().intern(&format!("y{y}"));
        }
        for i in 0..300usize {
            let n = 1 + i % 11;
            let x: Vec<u8> = (0..n).map(|t| ((i * 13 + t * 7) % 97) as u8).collect();
            // Labels that vary with the sequence, so that attributes have a few
            // labels or many (padded rows) or all.
            let y: Vec<u32> = x
                .iter()
                .map(|&v| (u32::from(v) * 3 + if v % 3 == 0 { (i % 5) as u32 } else { 0 }) % k as u32)
                .collect();
            b.add_target(&Tokens, &x[..], LabelTarget::Gold(y)).unwrap();
        }
        let data = b.build();
        let layout = data.layout();
        let mask = trainable_mask(&data, &Params::new(Algorithm::Lbfgs));
        let mut results = Vec::new();
        for (threads, sparse) in [(1, true), (3, true), (1, false), (3, false)] {
            let mut obj = Objective::new(&data, layout, data.structure.clone(), 0.1, mask.clone(), threads).unwrap();
            let chosen = obj
                .fused
                .as_ref()
                .map(|f| matches!(f.layout, RowsLayout::Sparse { .. }));
            assert_eq!(chosen, Some(true), "observed pairs of {k} labels take sparse rows");
            if let Some(RowsLayout::Sparse { starts, slots, .. }) = obj.fused.as_ref().map(|f| &f.layout) {
                let runs: Vec<usize> = starts.windows(2).map(|w| (w[1] - w[0]) as usize).collect();
                assert!(runs.contains(&k), "some attributes are padded to all labels");
                assert!(runs.iter().any(|&r| r > 0 && r < k), "and some are not");
                assert!(*starts.last().unwrap() as usize > slots.len());
            }
            obj.fused = Fused::with_budget(&data, layout, &obj.active, threads, ROWS_BUDGET, sparse);
            let w: Vec<f64> = (0..obj.dim()).map(|i| ((i * 37) % 17) as f64 / 17.0 - 0.5).collect();
            results.push(obj.evaluate(&w).unwrap());
        }
        let (f0, g0) = &results[0];
        assert!(g0.iter().any(|&x| x != 0.0));
        for (f, g) in &results[1..] {
            assert_eq!(f.to_bits(), f0.to_bits());
            assert_eq!(g.len(), g0.len());
            assert!(g.iter().zip(g0).all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }

    /// Threads sharing one copy of the rows (a memory budget below two copies)
    /// get the same cost and gradient, bit for bit, as one copy per thread.
    #[test]
    fn shared_row_copies_give_the_same_bits() {
        let mut b = DatasetBuilder::new().without_attribute_names().structure(Structure {
            transitions: true,
            start_end: true,
            ..Structure::default()
        });
        for l in ["a", "b", "c"] {
            b.labels_mut().intern(l);
        }
        for (i, n) in (0..400).map(|i| (i, 1 + i % 13)) {
            let x: Vec<u8> = (0..n).map(|t| ((i * 7 + t * 3) % 11) as u8).collect();
            let y: Vec<u32> = x.iter().map(|&v| u32::from(v % 3)).collect();
            b.add_target(&Tokens, &x[..], LabelTarget::Gold(y)).unwrap();
        }
        let data = b.build();
        let layout = data.layout();
        let all = Params::new(Algorithm::Lbfgs)
            .possible_states(true)
            .possible_transitions(true);
        let mask = trainable_mask(&data, &all);
        let mut obj = Objective::new(&data, layout, data.structure.clone(), 0.1, mask, 3).unwrap();
        let w: Vec<f64> = (0..obj.dim()).map(|i| ((i * 37) % 17) as f64 / 17.0 - 0.5).collect();
        assert_eq!(obj.fused.as_ref().map(|f| f.rows.len()), Some(3));
        let (f3, g3) = obj.evaluate(&w).unwrap();
        let one_copy = layout.num_state * 2 * layout.k * 8;
        obj.fused = Fused::with_budget(&data, layout, &obj.active, 3, one_copy, false);
        assert_eq!(obj.fused.as_ref().map(|f| f.rows.len()), Some(1));
        let (f1, g1) = obj.evaluate(&w).unwrap();
        assert_eq!(f1.to_bits(), f3.to_bits());
        assert!(g1.iter().zip(&g3).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}
