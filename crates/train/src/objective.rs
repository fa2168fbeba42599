//! The training objective: negative log-likelihood plus L2, and its gradient,
//! in one parallel pass over the corpus.
//!
//! `f(w) = Σᵢ NLLᵢ(w) + c2·‖w‖²` (CRFsuite's definition of `c2`; the L1 term
//! `c1·‖w‖₁` is added by OWL-QN itself). Two passes compute it, both
//! deterministic whatever the number of threads. The common one (`objective/fused.rs`)
//! sweeps the corpus once per thread and sums gradients in fixed point; it
//! applies to data without edge attributes whose values and counts fit its
//! range. The general one has two phases:
//!
//! 1. **Per sequence, in parallel:** compute the potentials from the
//!    attributes, run the scaled (exp-space) forward-backward of the core crate
//!    ([`chaincrf_core::Prob`]; a sequence whose scores leave its range is redone
//!    in the exact log semiring), and write `∂NLL/∂emission` for each position
//!    into one corpus-wide buffer (each sequence owns its rows). Losses and
//!    transition gradients are summed per fixed block of sequences, then over
//!    blocks in order.
//! 2. **Per attribute range, in parallel:** each thread owns a range of
//!    attribute ids and scans every position, adding `value · ∂NLL/∂emission`
//!    to the attributes it owns. Each weight's gradient is thus summed in
//!    position order, so the result is bit-for-bit the same on 1 or 16 threads.
//!
//! `argmin`'s interface asks for the cost and the gradient in separate calls;
//! [`Objective`] computes both in one pass and caches them keyed on the exact
//! parameter vector. The line search's trials, which ask about each point
//! once, skip the cache ([`Differentiable::fresh_cost_and_gradient`]): on 6.4
//! million weights its comparisons and copies were four passes over 51 MB
//! per evaluation.

mod fused;

use crate::data::Dataset;
use crate::error::TrainError;
use chaincrf_core::loss::{NllWorkspace, Target};
use chaincrf_core::{Log, Potentials, Prob, ProbabilitySemiring};
use chaincrf_features::prefetch;
use chaincrf_model::{ScoredChain, Structure, WeightLayout, WeightsView};
use fused::Fused;
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// How many positions ahead the gradient scatter requests the gradient rows
/// it will add to, so that several cache misses are in flight at once (the
/// distance the model's emission sum uses too).
const PREFETCH_AHEAD: usize = 4;

/// Weights per task when a vector operation is split over the threads.
const VECTOR_CHUNK: usize = 1 << 16;

/// State ids below this are the most frequent attributes (ids are assigned
/// by decreasing frequency), whose gradient rows phase 2 finds in cache.
const HOT_IDS: u32 = 1 << 15;

/// Sequences per block in phase 1 (fixed, so results do not depend on threads).
const BLOCK: usize = 32;

/// Why an evaluation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("training sequence {sequence}: {message}")]
pub struct EvalError {
    /// Index of the failing sequence.
    pub sequence: usize,
    /// What went wrong.
    pub message: String,
}

/// Buffers of one evaluation.
#[derive(Default)]
struct Buffers {
    /// The full-layout weight vector the compact parameters expand into.
    full: Vec<f64>,
    /// `∂NLL/∂emission` per position (`positions × k`); fully overwritten each pass.
    node: Vec<f64>,
    /// `∂NLL/∂transition` per position when edge attributes exist.
    edge: Vec<f64>,
    /// Full-layout gradient of the data term.
    grad: Vec<f64>,
}

struct Cached {
    param: Vec<f64>,
    cost: f64,
    grad: Vec<f64>,
}

/// Per-thread buffers for the gradient of one sequence at a time.
pub(crate) struct Scratch {
    scored: ScoredChain,
    fast: NllWorkspace<Prob>,
    exact: NllWorkspace<Log>,
}

impl Scratch {
    pub(crate) fn new() -> Self {
        Scratch {
            scored: ScoredChain::default(),
            fast: NllWorkspace::new(),
            exact: NllWorkspace::new(),
        }
    }

    /// NLL of sequence `i` under `scale · weights`. Writes `∂NLL/∂emission`
    /// into `node` (`n × k`), per-position `∂NLL/∂transition` into `edge`
    /// unless it is empty, and adds the summed transition gradient into `trans`.
    ///
    /// The fast exp-space semiring runs when the scores fit its range; the
    /// exact log semiring otherwise (or if the fast one fails).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sequence(
        &mut self,
        data: &Dataset,
        i: usize,
        weights: &WeightsView<'_, f64>,
        scale: f64,
        structure: &Structure,
        node: &mut [f64],
        edge: &mut [f64],
        trans: &mut [f64],
    ) -> Result<f64, EvalError> {
        weights.score_into(structure, &data.arena.sequence(i), &mut self.scored);
        if scale != 1.0 {
            self.scored.scale(scale);
        }
        let target = match &data.partial[i] {
            Some(allowed) => Target::Allowed(allowed),
            None => Target::Path(gold_path(data, i)),
        };
        let fast = if fits_exp_range(&self.scored) && !self.scored.has_varying_transitions() {
            // On failure nothing has been added to `trans` yet.
            sequence_gradient(&mut self.fast, &self.scored, target, node, edge, trans).ok()
        } else {
            None
        };
        match fast {
            Some(v) => Ok(v),
            None => {
                sequence_gradient(&mut self.exact, &self.scored, target, node, edge, trans).map_err(|e| EvalError {
                    sequence: i,
                    message: e.to_string(),
                })
            }
        }
    }
}

/// What the L-BFGS fit loop minimizes: a differentiable function of a
/// compact parameter vector, evaluated in one pass for cost and gradient.
///
/// The chain CRF's likelihood is one; another structure (a
/// semi-Markov CRF, a neural emission model) implements this trait and
/// reuses the fit loop, its stopping rules, progress events, held-out
/// evaluation and checkpoints.
pub trait Differentiable: Sync {
    /// Number of optimized parameters.
    fn dim(&self) -> usize;
    /// `(f(w), ∇f(w))`; asked twice in a row for the same `w` when a run
    /// starts (argmin's interface: cost, then gradient), so implementations
    /// may cache on the exact vector.
    ///
    /// # Errors
    /// [`EvalError`] naming the sequence that could not be evaluated.
    fn cost_and_gradient(&self, w: &[f64]) -> Result<(f64, Vec<f64>), EvalError>;
    /// `(f(w), ∇f(w))` at a point asked about once (each line-search trial
    /// of L-BFGS): an implementation that caches computes it without storing
    /// a copy. By default [`Differentiable::cost_and_gradient`].
    ///
    /// # Errors
    /// [`EvalError`] naming the sequence that could not be evaluated.
    fn fresh_cost_and_gradient(&self, w: &[f64]) -> Result<(f64, Vec<f64>), EvalError> {
        self.cost_and_gradient(w)
    }
    /// Full passes over the data so far.
    fn evaluations(&self) -> usize;
    /// The full-layout weights (what a model stores) of parameters `w`.
    fn expand(&self, w: &[f64]) -> Vec<f64>;
    /// Runs the optimizer's loop; an implementation with its own thread
    /// pool runs `f` so that the optimizer's vector arithmetic uses it.
    fn in_pool<R>(&self, f: impl FnOnce() -> R) -> R {
        f()
    }
}

impl Differentiable for Objective<'_> {
    fn dim(&self) -> usize {
        Objective::dim(self)
    }
    fn cost_and_gradient(&self, w: &[f64]) -> Result<(f64, Vec<f64>), EvalError> {
        Objective::cost_and_gradient(self, w)
    }
    fn fresh_cost_and_gradient(&self, w: &[f64]) -> Result<(f64, Vec<f64>), EvalError> {
        Objective::evaluate(self, w)
    }
    fn evaluations(&self) -> usize {
        Objective::evaluations(self)
    }
    fn expand(&self, w: &[f64]) -> Vec<f64> {
        Objective::expand(self, w)
    }
    fn in_pool<R>(&self, f: impl FnOnce() -> R) -> R {
        Objective::in_pool(self, f)
    }
}

/// The CRF training objective over a [`Dataset`].
pub struct Objective<'d> {
    data: &'d Dataset,
    layout: WeightLayout,
    structure: Structure,
    c2: f64,
    /// Full-layout index of each optimized (trainable) weight.
    active: Vec<u32>,
    /// Phase-2 split points over state attribute ids, balanced by occurrences
    /// (empty when the fused pass runs).
    splits: Vec<u32>,
    /// Corpus-sized buffers of the two-phase pass, reused across evaluations
    /// (no page faults per pass).
    buffers: Mutex<Buffers>,
    /// The fused pass, when it applies to the data (see `objective/fused.rs`).
    fused: Option<Fused>,
    pool: std::sync::Arc<rayon::ThreadPool>,
    cache: Mutex<Option<Cached>>,
    evaluations: AtomicUsize,
}

impl std::fmt::Debug for Objective<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objective")
            .field("layout", &self.layout)
            .field("c2", &self.c2)
            .finish()
    }
}

impl<'d> Objective<'d> {
    /// An objective over `data` with weight layout `layout`, structure, L2
    /// coefficient `c2`, which weights are trainable, and `threads` threads.
    ///
    /// # Errors
    /// [`TrainError::Threads`] when the thread pool cannot be built.
    ///
    /// # Panics
    /// When `trainable` does not have the layout's length or the dataset's
    /// rows are not sorted (both are built by this crate; see the crate docs
    /// on misuse).
    pub fn new(
        data: &'d Dataset,
        layout: WeightLayout,
        structure: Structure,
        c2: f64,
        trainable: Vec<bool>,
        threads: usize,
    ) -> Result<Self, TrainError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build()
            .map_err(|source| TrainError::Threads { threads, source })?;
        assert_eq!(
            trainable.len(),
            layout.len(),
            "the trainable mask must have one entry per weight of the layout"
        );
        let active: Vec<u32> = trainable
            .iter()
            .enumerate()
            .filter(|(_, &t)| t)
            .map(|(i, _)| i as u32)
            .collect();
        // Phase 2 finds each thread's ids as one run per position.
        assert!(
            data.arena.rows_sorted(),
            "the dataset's attribute ids must be sorted within positions (DatasetBuilder and \
             HeldOutBuilder sort them)"
        );
        let buffers = Mutex::new(Buffers::default());
        let fused = Fused::new(data, layout, &active, pool.current_num_threads());
        // Only the two-phase pass splits ids between threads.
        let splits = if fused.is_none() {
            phase_two_splits(data, layout, pool.current_num_threads())
        } else {
            Vec::new()
        };
        Ok(Objective {
            data,
            layout,
            structure,
            c2,
            active,
            splits,
            buffers,
            fused,
            pool: std::sync::Arc::new(pool),
            cache: Mutex::new(None),
            evaluations: AtomicUsize::new(0),
        })
    }

    /// Number of full passes over the corpus so far.
    pub fn evaluations(&self) -> usize {
        self.evaluations.load(Ordering::Relaxed)
    }

    /// Number of optimized parameters (the trainable weights).
    pub fn dim(&self) -> usize {
        self.active.len()
    }

    /// Compact parameters → full-layout weights (untrainable ones 0).
    pub fn expand(&self, compact: &[f64]) -> Vec<f64> {
        scatter(self.layout.len(), &self.active, compact)
    }

    /// The full-layout index of each parameter, dropping the objective
    /// (and its corpus-sized buffers).
    pub fn into_active(self) -> Vec<u32> {
        self.active
    }

    /// Full-layout weights → compact parameters.
    pub fn compress(&self, full: &[f64]) -> Vec<f64> {
        self.active.iter().map(|&i| full[i as usize]).collect()
    }

    /// Cost and gradient at `w`, from the cache when `w` is the last point asked for.
    ///
    /// # Errors
    /// [`EvalError`] naming a sequence whose likelihood cannot be computed.
    pub fn cost_and_gradient(&self, w: &[f64]) -> Result<(f64, Vec<f64>), EvalError> {
        let mut guard = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = guard.as_ref() {
            if self.same_bits(&c.param, w) {
                // A spare buffer of the solver's (see `parvec`), filled on the pool.
                let mut grad = crate::parvec::take(c.grad.len());
                self.pool
                    .install(|| grad.par_extend(c.grad.par_iter().with_min_len(VECTOR_CHUNK).copied()));
                return Ok((c.cost, grad));
            }
        }
        let (cost, grad) = self.evaluate(w)?;
        match guard.as_mut() {
            Some(c) if c.param.len() == w.len() && c.grad.len() == grad.len() => {
                self.copy(&mut c.param, w);
                self.copy(&mut c.grad, &grad);
                c.cost = cost;
            }
            _ => {
                *guard = Some(Cached {
                    param: w.to_vec(),
                    cost,
                    grad: grad.clone(),
                })
            }
        }
        Ok((cost, grad))
    }

    /// Runs `f` on the calling thread with the objective's pool as the one
    /// the solver's `ParVec` arithmetic runs on, so `--threads` holds for it
    /// too (see [`crate::parvec::with_pool`]).
    pub fn in_pool<R>(&self, f: impl FnOnce() -> R) -> R {
        crate::parvec::with_pool(&self.pool, f)
    }

    /// Whether `a` and `b` hold the same values bit for bit. Like the copies
    /// below, it runs on the objective's threads: these are passes over
    /// millions of weights between evaluations, and on one thread they would
    /// leave the others idle.
    fn same_bits(&self, a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len()
            && self.pool.install(|| {
                a.par_chunks(VECTOR_CHUNK)
                    .zip(b.par_chunks(VECTOR_CHUNK))
                    .all(|(x, y)| x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()))
            })
    }

    /// `dst = src` (equal lengths), on the objective's threads.
    fn copy(&self, dst: &mut [f64], src: &[f64]) {
        self.pool.install(|| {
            dst.par_chunks_mut(VECTOR_CHUNK)
                .zip(src.par_chunks(VECTOR_CHUNK))
                .for_each(|(d, s)| d.copy_from_slice(s))
        });
    }

    /// One full pass at compact parameters `w` (one value per trainable weight,
    /// see [`Objective::expand`]): `(f(w), ∇f(w))`, without the cache.
    ///
    /// # Errors
    /// [`EvalError`] naming a sequence whose likelihood cannot be computed.
    pub fn evaluate(&self, w: &[f64]) -> Result<(f64, Vec<f64>), EvalError> {
        self.evaluations.fetch_add(1, Ordering::Relaxed);
        // One evaluation at a time: both passes reuse buffers of the objective.
        let mut guard = self.buffers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(fused) = &self.fused {
            return self.evaluate_fused(fused, w);
        }
        let bufs = &mut *guard;
        bufs.full.resize(self.layout.len(), 0.0);
        for (&i, &x) in self.active.iter().zip(w) {
            bufs.full[i as usize] = x;
        }
        let cost = self.evaluate_full(bufs)?;
        let grad = &bufs.grad;
        let mut g = crate::parvec::take(w.len());
        let mut norm2 = 0.0;
        for (&i, &x) in self.active.iter().zip(w) {
            g.push(grad[i as usize] + 2.0 * self.c2 * x);
            norm2 += x * x;
        }
        Ok((cost + self.c2 * norm2, g))
    }

    /// The data term (NLL summed over sequences) and its full-layout gradient,
    /// in two parallel phases.
    fn evaluate_full(&self, bufs: &mut Buffers) -> Result<f64, EvalError> {
        let Buffers {
            full, node, edge, grad, ..
        } = bufs;
        let w: &[f64] = full;
        let data = self.data;
        let layout = self.layout;
        let k = layout.k;
        let kk = k * k;
        let weights = layout.view(w);
        let num_seq = data.len();
        let num_pos = data.arena.num_positions();
        let has_edges = data.arena.has_edge_attributes();

        // Phase 1: per-sequence marginals, in fixed blocks.
        node.resize(num_pos * k, 0.0);
        let node_grad: &mut Vec<f64> = node;
        edge.resize(if has_edges { num_pos * kk } else { 0 }, 0.0);
        let edge_grad: &mut Vec<f64> = edge;
        let blocks: Vec<(usize, usize)> = (0..num_seq.div_ceil(BLOCK))
            .map(|b| (b * BLOCK, ((b + 1) * BLOCK).min(num_seq)))
            .collect();
        // Split the corpus-wide buffers into one mutable slice per block.
        let mut node_slices = Vec::with_capacity(blocks.len());
        let mut edge_slices = Vec::with_capacity(blocks.len());
        {
            let mut rest_n: &mut [f64] = node_grad;
            let mut rest_e: &mut [f64] = edge_grad;
            for &(a, b) in &blocks {
                let p0 = data.arena.sequence_start(a);
                let p1 = if b < num_seq {
                    data.arena.sequence_start(b)
                } else {
                    num_pos
                };
                let (head, tail) = std::mem::take(&mut rest_n).split_at_mut((p1 - p0) * k);
                node_slices.push(head);
                rest_n = tail;
                if has_edges {
                    let (head, tail) = std::mem::take(&mut rest_e).split_at_mut((p1 - p0) * kk);
                    edge_slices.push(head);
                    rest_e = tail;
                } else {
                    edge_slices.push(&mut []);
                }
            }
        }
        let structure = &self.structure;
        let block_results: Vec<Result<(f64, Vec<f64>), EvalError>> = self.pool.install(|| {
            blocks
                .par_iter()
                .zip(node_slices.into_par_iter())
                .zip(edge_slices.into_par_iter())
                .map_init(Scratch::new, |scratch, ((&(a, b), node_out), edge_out)| {
                    let mut loss = 0.0;
                    let mut trans = vec![0.0; kk];
                    let mut off = 0usize;
                    for i in a..b {
                        let n = data.arena.sequence(i).len();
                        let node = &mut node_out[off * k..(off + n) * k];
                        let edge = if has_edges {
                            &mut edge_out[off * kk..(off + n) * kk]
                        } else {
                            &mut [][..]
                        };
                        loss += scratch.sequence(data, i, &weights, 1.0, structure, node, edge, &mut trans)?;
                        off += n;
                    }
                    Ok((loss, trans))
                })
                .collect()
        });
        grad.clear();
        grad.resize(layout.len(), 0.0);
        let mut cost = 0.0;
        {
            let t0 = layout.transition_offset();
            for r in block_results {
                let (loss, trans) = r?;
                cost += loss;
                for (g, x) in grad[t0..t0 + kk].iter_mut().zip(&trans) {
                    *g += x;
                }
            }
        }
        // Start and end gradients: the first and last rows of each sequence.
        {
            let (s0, e0) = (layout.start_offset(), layout.end_offset());
            for i in 0..num_seq {
                let obs = data.arena.sequence(i);
                if obs.is_empty() {
                    continue;
                }
                let first = obs.global_start();
                let last = first + obs.len() - 1;
                for y in 0..k {
                    grad[s0 + y] += node_grad[first * k + y];
                    grad[e0 + y] += node_grad[last * k + y];
                }
            }
        }
        // Phase 2: scatter into attribute weights, each thread owning an id range
        // (ranges balanced by estimated cost; sums run in position order).
        let (state_grad, rest) = grad.split_at_mut(layout.edge_offset());
        let (offsets, ids, values) = data.arena.state_layout();
        let mut parts: Vec<(u32, &mut [f64])> = Vec::with_capacity(self.splits.len());
        {
            let mut rest_s: &mut [f64] = state_grad;
            for win in self.splits.windows(2) {
                let (head, tail) = std::mem::take(&mut rest_s).split_at_mut((win[1] - win[0]) as usize * k);
                parts.push((win[0], head));
                rest_s = tail;
            }
        }
        self.pool.install(|| {
            parts.into_par_iter().for_each(|(lo, out)| {
                let hi = lo + (out.len() / k) as u32;
                // Rows are sorted by id: the ids in `from..hi` are one run per position.
                let run = |p: usize, from: u32| {
                    let (s, e) = (offsets[p] as usize, offsets[p + 1] as usize);
                    let row = &ids[s..e];
                    let a = row.partition_point(|&id| id < from);
                    let b = a + row[a..].partition_point(|&id| id < hi);
                    s + a..s + b
                };
                // The rows of the most frequent ids stay cached; prefetching
                // them would only cost time.
                let cold = lo.max(HOT_IDS);
                for p in 0..num_pos {
                    if cold < hi && p + PREFETCH_AHEAD < num_pos {
                        for &id in &ids[run(p + PREFETCH_AHEAD, cold)] {
                            prefetch(&out[(id - lo) as usize * k]);
                        }
                    }
                    let r = run(p, lo);
                    add_rows(
                        &ids[r.clone()],
                        values.map(|v| &v[r]),
                        &node_grad[p * k..(p + 1) * k],
                        out,
                        lo,
                        k,
                    );
                }
            });
        });
        if has_edges {
            let edge_block = &mut rest[..layout.num_edge * kk];
            for p in 0..num_pos {
                let (ids, values) = data.arena.edge_at(p);
                add_rows(ids, values, &edge_grad[p * kk..(p + 1) * kk], edge_block, 0, kk);
            }
        }
        Ok(cost)
    }
}

/// Phase-2 split points: state ids cut into `parts` ranges of about equal
/// cost. An id costs its occurrences plus a cache miss's worth for its row:
/// ids are ordered by frequency, and the rare ones' rows are rarely cached.
fn phase_two_splits(data: &Dataset, layout: WeightLayout, parts: usize) -> Vec<u32> {
    const ROW_MISS_COST: u64 = 8;
    let parts = parts.max(1);
    let mut counts = vec![0u64; layout.num_state + 1];
    for &id in data.arena.state_layout().1 {
        counts[id as usize] += 1;
    }
    for c in counts.iter_mut().filter(|c| **c > 0) {
        *c += ROW_MISS_COST;
    }
    let total: u64 = counts.iter().sum();
    let mut splits = vec![0u32];
    let mut acc = 0u64;
    for (id, &c) in counts.iter().enumerate().take(layout.num_state) {
        acc += c;
        if splits.len() < parts && acc * parts as u64 >= total * splits.len() as u64 {
            splits.push(id as u32 + 1);
        }
    }
    splits.push(layout.num_state as u32);
    splits.dedup();
    splits
}

/// Adds `value · g` to the row of each attribute id (`g.len()` values at
/// `out[(id − lo) · stride]`), with its value (1 when `values` is `None`).
#[inline]
fn add_rows(ids: &[u32], values: Option<&[f32]>, g: &[f64], out: &mut [f64], lo: u32, stride: usize) {
    let w = g.len();
    for (j, &id) in ids.iter().enumerate() {
        let v = values.map_or(1.0, |v| f64::from(v[j]));
        let at = (id - lo) as usize * stride;
        let row = &mut out[at..at + w];
        for (o, &x) in row.iter_mut().zip(g) {
            *o += v * x;
        }
    }
}

fn gold_path(data: &Dataset, i: usize) -> &[usize] {
    data.gold_of(i).unwrap_or(&[])
}

/// Whether the exp-space semiring represents these potentials without
/// underflow: within each emission row, and within the transition matrix, the
/// finite scores must lie within 600 of each other (e^-600 is still normal).
fn fits_exp_range(scored: &ScoredChain) -> bool {
    let k = scored.num_labels();
    spread_within(scored.transitions(), 600.0)
        && scored
            .emissions()
            .chunks_exact(k.max(1))
            .all(|row| spread_within(row, 600.0))
}

/// Whether the finite values of `xs` lie within `limit` of each other
/// (`-inf` and NaN are left out). Minimum and maximum are exact whatever the
/// order, so they are taken over eight lanes, in a loop that vectorizes
/// (one pass over the `k²` transitions per sequence).
fn spread_within(xs: &[f64], limit: f64) -> bool {
    const LANES: usize = 8;
    if xs.len() < 2 * LANES {
        // A short row (an emission row of a few labels) in one plain pass.
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for &x in xs {
            lo = if x > f64::NEG_INFINITY && x < lo { x } else { lo };
            hi = if x > hi { x } else { hi };
        }
        return hi - lo <= limit || lo > hi;
    }
    let (mut lo, mut hi) = ([f64::INFINITY; LANES], [f64::NEG_INFINITY; LANES]);
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for ((l, h), &x) in lo.iter_mut().zip(&mut hi).zip(chunk) {
            // `x > -inf` is false for -inf and NaN; `x > h` false for NaN.
            *l = if x > f64::NEG_INFINITY && x < *l { x } else { *l };
            *h = if x > *h { x } else { *h };
        }
    }
    for (&x, (l, h)) in rest.iter().zip(lo.iter_mut().zip(&mut hi)) {
        *l = if x > f64::NEG_INFINITY && x < *l { x } else { *l };
        *h = if x > *h { x } else { *h };
    }
    let lo = lo.iter().fold(f64::INFINITY, |m, &x| if x < m { x } else { m });
    let hi = hi.iter().fold(f64::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    hi - lo <= limit || lo > hi
}

/// NLL of one sequence, writing `∂NLL/∂emission` into `node` (`n × k`), per
/// position `∂NLL/∂transition` into `edge` when it is not empty, and adding the
/// summed transition gradient into `trans`.
fn sequence_gradient<S: ProbabilitySemiring>(
    ws: &mut NllWorkspace<S>,
    scored: &ScoredChain,
    target: Target<'_>,
    node: &mut [f64],
    edge: &mut [f64],
    trans: &mut [f64],
) -> chaincrf_core::Result<f64> {
    let nll = ws.evaluate(scored, target)?;
    if !nll.is_finite() {
        return Err(chaincrf_core::Error::NoFeasiblePath { position: None });
    }
    node.copy_from_slice(ws.node_gradient());
    if edge.is_empty() {
        ws.add_transition_gradient(1.0, trans);
        return Ok(nll);
    }
    let kk = scored.num_labels() * scored.num_labels();
    ws.for_each_edge_gradient(|t, g| {
        for (o, x) in trans.iter_mut().zip(g) {
            *o += x;
        }
        edge[t * kk..(t + 1) * kk].copy_from_slice(g);
    });
    Ok(nll)
}

/// `len` weights, `values[n]` at index `indices[n]` and 0 elsewhere.
pub(crate) fn scatter(len: usize, indices: &[u32], values: &[f64]) -> Vec<f64> {
    let mut full = vec![0.0; len];
    for (&i, &x) in indices.iter().zip(values) {
        full[i as usize] = x;
    }
    full
}

#[cfg(test)]
mod spread_tests {
    use super::spread_within;

    /// The eight-lane spread agrees with a plain fold over the finite values
    /// on every length (remainders included), with `-inf`, NaN and `+inf`.
    #[test]
    fn spread_within_agrees_with_a_plain_fold() {
        let special = [f64::NEG_INFINITY, f64::NAN, f64::INFINITY];
        for len in 0..40usize {
            for case in 0..60usize {
                let xs: Vec<f64> = (0..len)
                    .map(|i| match (i * 31 + case * 17) % 23 {
                        0 if case % 3 == 0 => special[case / 3 % 3],
                        v => (v as f64 - 11.0) * (case as f64) * 7.3,
                    })
                    .collect();
                let finite = xs.iter().copied().filter(|&x| x > f64::NEG_INFINITY);
                let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| (l.min(x), h.max(x)));
                let want = hi - lo <= 600.0 || lo > hi;
                assert_eq!(spread_within(&xs, 600.0), want, "{xs:?}");
            }
        }
    }
}
