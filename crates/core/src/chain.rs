//! The chain dynamic program, written once for every [`Semiring`].
//!
//! [`ChainWorkspace::forward`] lifts the potentials into the semiring and runs
//! the forward recursion
//! `α₀ = start ⊗ e₀`, `αₜ = (αₜ₋₁ · T) ⊗ eₜ`, total `= αₙ₋₁ · end`;
//! [`ChainWorkspace::backward`] runs `βₙ₋₁ = end`, `βₜ = T · (eₜ₊₁ ⊗ βₜ₊₁)`.
//! Everything else sits on top of these two passes:
//!
//! | want | semiring | method |
//! | --- | --- | --- |
//! | log Z | [`Log`] / [`crate::Prob`] | [`log_partition`] |
//! | node and edge marginals | any [`ProbabilitySemiring`] | [`ChainWorkspace::marginals_into`], [`ChainWorkspace::for_each_edge_marginal`] |
//! | best path | [`MaxPlus`] | [`ChainWorkspace::viterbi`] |
//! | K best paths | [`MaxPlus`] | [`ChainWorkspace::kbest`] |
//! | entropy | [`Entropy`] | [`entropy`] |
//! | samples | any [`ProbabilitySemiring`] | [`ChainWorkspace::sample`] |
//! | path count / feasibility | [`Counting`] / [`Boolean`] | [`count_paths`], [`has_path`] |
//!
//! **Numerics.** Every forward and backward row is normalized by the semiring
//! ([`Semiring::normalize`]) and the removed log-scale is accumulated separately
//! (compensated summation), so nothing overflows on chains of 10⁵ positions with
//! scores of 10⁴, and log Z keeps ~15 significant digits. Marginals are formed
//! per position from the normalized rows and normalized again there, instead of
//! the textbook `exp(α + β − log Z)`, which subtracts two numbers of size
//! `n·|score|` and loses digits accordingly.
//!
//! **Reuse.** A workspace keeps its buffers between calls: decoding many
//! sequences with one workspace allocates only when a longer chain arrives.

use crate::error::{Error, Result};
use crate::fused;
use crate::potentials::Potentials;
use crate::semiring::{Boolean, Counting, Entropy, Log, MaxPlus, ProbabilitySemiring, ScalarScore, Semiring};
use crate::simd::{vector_width, VectorWidth};

/// A chain sum: a semiring value and the log-scale factored out of it, so the
/// true sum is `value ⊗ from_score(log_scale)`.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainSum<S> {
    /// The normalized value.
    pub value: S,
    /// The log-scale removed during the passes.
    pub log_scale: f64,
}

impl<S: ScalarScore> ChainSum<S> {
    /// The sum as a log-space score (log Z for [`Log`], best score for [`MaxPlus`]).
    pub fn score(&self) -> f64 {
        self.value.score() + self.log_scale
    }
}

impl<S: ProbabilitySemiring> ChainSum<S> {
    /// The natural log of the weight the sum stands for (log Z, log of a count).
    pub fn log_value(&self) -> f64 {
        self.value.to_log() + self.log_scale
    }
}

/// A label path with its score (sum of the scores along it).
#[derive(Clone, Debug, PartialEq)]
pub struct Path {
    /// One label per position.
    pub labels: Vec<usize>,
    /// The path's total score.
    pub score: f64,
}

/// Runs `$body` with `$K` a compile-time constant equal to `$k` for the label
/// counts 1 to 8, and `$K = 0` ("read the count at run time") otherwise.
///
/// The per-position steps take the label count as a const parameter and use
/// [`fixed_or`] to read it. With it constant, every row loop inside them,
/// down to the semiring's row operations, has a known trip count: the
/// compiler unrolls them, keeps rows in registers and drops the bounds
/// checks. With few labels a step is only a few dozen operations, and loop
/// control was a large share of them. One copy of the steps is compiled per
/// width; larger label counts take the run-time copy, where the loop
/// overhead is small against the `k²` work.
macro_rules! with_width {
    ($k:expr, $K:ident => $body:expr) => {
        match $k {
            1 => {
                const $K: usize = 1;
                $body
            }
            2 => {
                const $K: usize = 2;
                $body
            }
            3 => {
                const $K: usize = 3;
                $body
            }
            4 => {
                const $K: usize = 4;
                $body
            }
            5 => {
                const $K: usize = 5;
                $body
            }
            6 => {
                const $K: usize = 6;
                $body
            }
            7 => {
                const $K: usize = 7;
                $body
            }
            8 => {
                const $K: usize = 8;
                $body
            }
            _ => {
                const $K: usize = 0;
                $body
            }
        }
    };
}

pub(crate) use with_width;

/// The most labels [`with_width`] compiles a loop for.
const MAX_FIXED_WIDTH: usize = 8;

/// The label count a step runs with: the compile-time `fixed` one, or the
/// run-time `k` when `fixed` is 0 (see [`with_width`]).
#[inline(always)]
pub(crate) fn fixed_or(fixed: usize, k: usize) -> usize {
    debug_assert!(
        fixed == 0 || fixed == k,
        "a step compiled for {fixed} labels ran with {k}"
    );
    if fixed == 0 {
        k
    } else {
        fixed
    }
}

/// A compensated sum: log-scales of 10⁵ rows add up without losing the digits
/// log Z needs. Each step is Knuth's branch-free TwoSum, which recovers the
/// rounding error of `sum + x` exactly whatever the magnitudes (Neumaier's
/// variant needs a data-dependent branch per add, three per position).
#[derive(Clone, Copy, Debug, Default)]
struct CompensatedSum {
    sum: f64,
    comp: f64,
}

impl CompensatedSum {
    #[inline]
    fn add(&mut self, x: f64) {
        // Max-plus rows are rescaled rarely: most steps add nothing.
        if x == 0.0 {
            return;
        }
        let t = self.sum + x;
        let x_part = t - self.sum;
        let err = (self.sum - (t - x_part)) + (x - x_part);
        self.comp += err;
        self.sum = t;
    }
    #[inline]
    fn value(&self) -> f64 {
        self.sum + self.comp
    }
}

/// `Σ_{i ≠ skip} term(i)` over `i < k`, in four interleaved partial sums
/// (one chain of dependent additions would wait on each), the skipped term
/// an exact 0 (the terms are not negative).
#[inline(always)]
fn sum_except(k: usize, skip: usize, term: impl Fn(usize) -> f64) -> f64 {
    let mut lanes = [0.0f64; 4];
    let full = k / 4 * 4;
    for i0 in (0..full).step_by(4) {
        for (l, lane) in lanes.iter_mut().enumerate() {
            let i = i0 + l;
            *lane += if i != skip { term(i) } else { 0.0 };
        }
    }
    let mut tail = 0.0;
    for i in full..k {
        if i != skip {
            tail += term(i);
        }
    }
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + tail
}

/// Buffers of the fused summed edges
/// ([`ChainWorkspace::add_edge_marginals`] beyond [`MAX_FIXED_WIDTH`]
/// labels), kept between chains so that a chain pays no zeroing: the rows'
/// padding lanes are never written, the accumulator is overwritten by each
/// sum, and the differences are set back to 0 where a chain wrote them.
#[derive(Clone, Debug, Default)]
struct EdgeScratch {
    /// The label count the buffers are laid out for.
    k: usize,
    /// One row of [`fused::term_stride`] values per edge: `αₜ₋₁`, `vₜ` and
    /// `vₜ` without the path's label, each padded with 0.
    rows: Vec<f64>,
    /// `Σ αₜ₋₁ ⊗ vₜ` but the path's pairs (`k²`).
    acc: Vec<f64>,
    /// `Σ (ξₜ − 1)` at the path's pairs (`k²`, 0 elsewhere).
    diff: Vec<f64>,
    /// The path's label at `t − 1` for each edge (`u32::MAX`: no path).
    masked_row: Vec<u32>,
}

impl EdgeScratch {
    /// Ready for a chain of `n` positions and `k` labels.
    fn reset(&mut self, k: usize, n: usize) {
        if self.k != k {
            *self = EdgeScratch {
                k,
                acc: vec![0.0; k * k],
                diff: vec![0.0; k * k],
                ..EdgeScratch::default()
            };
        }
        let len = n.saturating_sub(1) * fused::term_stride(k);
        if self.rows.len() < len {
            self.rows.resize(len, 0.0);
        }
        self.masked_row.clear();
    }
}

/// Reusable buffers for the chain algorithms in semiring `S`.
#[derive(Clone, Debug)]
pub struct ChainWorkspace<S: Semiring> {
    n: usize,
    k: usize,
    varying: bool,
    row_scores: Vec<f64>,
    emit: Vec<S>,
    emit_scale: Vec<f64>,
    trans: Vec<S>,
    /// The transposed transition matrix, for the backward step of chains
    /// with more labels than [`with_width`] compiles for and one matrix (see
    /// [`ChainWorkspace::backward_step`]); empty otherwise.
    trans_t: Vec<S>,
    trans_scale: Vec<f64>,
    /// The scores `trans` (one matrix) and `trans_t` were last lifted from,
    /// empty when they hold something else. A training pass scores every
    /// sequence with the same matrix: comparing `k²` scores is much cheaper
    /// than lifting them again (an exponential each, at 43 labels as many
    /// as the emissions of a 40-word sentence) and transposing them.
    lifted_trans: Vec<f64>,
    start: Vec<S>,
    start_scale: f64,
    end: Vec<S>,
    end_scale: f64,
    alpha: Vec<S>,
    alpha_scale: Vec<f64>,
    /// The log of the factor forward row `t` was divided by when it was
    /// normalized (what `S::normalize` returned).
    alpha_step: Vec<f64>,
    beta: Vec<S>,
    beta_scale: Vec<f64>,
    tmp: Vec<S>,
    probs: Vec<f64>,
    /// Scratch of the fused summed edges, kept between chains.
    edge_scratch: EdgeScratch,
    /// Whether the next forward pass leaves back-pointers in `from`
    /// (Viterbi sets it, for semirings that trace).
    tracing: bool,
    /// `from[t·k + j]`: the label at `t − 1` of the best prefix ending in `j`
    /// at `t` (written by a tracing forward pass).
    from: Vec<u32>,
    forward_done: bool,
    backward_done: bool,
}

impl<S: Semiring> Default for ChainWorkspace<S> {
    fn default() -> Self {
        Self::new()
    }
}

/// Rejects NaN and `+inf`. The scan has no early exit, so it vectorizes; only a
/// bad row pays for finding the offending index. One comparison finds both:
/// `v < +inf` is false exactly for NaN and `+inf`.
#[inline]
#[allow(clippy::neg_cmp_op_on_partial_ord)] // the negation is the point: it catches NaN
pub(crate) fn check_row(what: &'static str, position: Option<usize>, row: &[f64]) -> Result<()> {
    let invalid = |v: f64| !(v < f64::INFINITY);
    let bad = row.iter().fold(false, |bad, &v| bad | invalid(v));
    if !bad {
        return Ok(());
    }
    let (index, &value) = row
        .iter()
        .enumerate()
        .find(|(_, &v)| invalid(v))
        .expect("a bad score was seen");
    Err(Error::InvalidScore {
        what,
        position,
        index,
        value,
    })
}

impl<S: Semiring> ChainWorkspace<S> {
    /// An empty workspace; buffers grow on first use.
    pub fn new() -> Self {
        ChainWorkspace {
            n: 0,
            k: 0,
            varying: false,
            row_scores: Vec::new(),
            emit: Vec::new(),
            emit_scale: Vec::new(),
            trans: Vec::new(),
            trans_t: Vec::new(),
            trans_scale: Vec::new(),
            lifted_trans: Vec::new(),
            start: Vec::new(),
            start_scale: 0.0,
            end: Vec::new(),
            end_scale: 0.0,
            alpha: Vec::new(),
            alpha_scale: Vec::new(),
            alpha_step: Vec::new(),
            beta: Vec::new(),
            beta_scale: Vec::new(),
            tmp: Vec::new(),
            probs: Vec::new(),
            edge_scratch: EdgeScratch::default(),
            tracing: false,
            from: Vec::new(),
            forward_done: false,
            backward_done: false,
        }
    }

    /// Length of the chain last run.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the chain last run was empty.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Number of labels of the chain last run.
    pub fn num_labels(&self) -> usize {
        self.k
    }

    fn resize(&mut self, n: usize, k: usize, varying: bool) {
        self.n = n;
        self.k = k;
        self.varying = varying;
        let edges = if varying { n.saturating_sub(1) } else { 1 };
        self.row_scores.resize(k * k.max(1), 0.0);
        self.emit.resize(n * k, S::zero());
        self.emit_scale.resize(n, 0.0);
        self.trans.resize(edges * k * k, S::zero());
        self.trans_scale.resize(edges, 0.0);
        self.start.resize(k, S::zero());
        self.end.resize(k, S::zero());
        self.alpha.resize(n * k, S::zero());
        self.alpha_scale.resize(n, 0.0);
        self.alpha_step.resize(n, 0.0);
        self.tmp.resize(k * k, S::zero());
        self.probs.resize(k * k, 0.0);
        if self.tracing {
            self.from.resize(n * k, 0);
        }
        self.forward_done = false;
        self.backward_done = false;
    }

    /// Index of the lifted transition block into position `t ≥ 1`.
    #[inline]
    fn trans_index(&self, t: usize) -> usize {
        if self.varying {
            t - 1
        } else {
            0
        }
    }

    #[inline]
    fn trans_block(&self, t: usize) -> &[S] {
        let kk = self.k * self.k;
        let b = self.trans_index(t);
        &self.trans[b * kk..(b + 1) * kk]
    }

    /// Lifts every score of `p` into the semiring, checking each one.
    fn lift<P: Potentials + ?Sized>(&mut self, p: &P) -> Result<()> {
        let (n, k) = (p.len(), p.num_labels());
        if k == 0 {
            return Err(Error::ShapeMismatch {
                what: "labels",
                expected: "at least 1".into(),
                got: "0".into(),
            });
        }
        self.resize(n, k, p.has_varying_transitions() && n > 1);
        let row = &mut self.row_scores[..k];
        for (y, r) in row.iter_mut().enumerate() {
            *r = p.start(y);
        }
        check_row("start", None, row)?;
        self.start_scale = S::lift_row(row, &mut self.start);
        for (y, r) in row.iter_mut().enumerate() {
            *r = p.end(y);
        }
        check_row("end", None, row)?;
        self.end_scale = S::lift_row(row, &mut self.end);
        match p.emission_rows().filter(|all| all.len() == n * k) {
            Some(all) => {
                // Stored row-major already: one vectorized check over the whole
                // matrix, then lift each row from where it lies.
                if let Err(Error::InvalidScore { index, value, .. }) = check_row("emission", None, all) {
                    return Err(Error::InvalidScore {
                        what: "emission",
                        position: Some(index / k),
                        index: index % k,
                        value,
                    });
                }
                S::lift_rows(all, k, &mut self.emit[..n * k], &mut self.emit_scale[..n]);
            }
            None => {
                for t in 0..n {
                    let row = &mut self.row_scores[..k];
                    p.emissions_into(t, row);
                    check_row("emission", Some(t), row)?;
                    self.emit_scale[t] = S::lift_row(row, &mut self.emit[t * k..(t + 1) * k]);
                }
            }
        }
        let kk = k * k;
        if self.varying {
            self.lifted_trans.clear();
            for t in 1..n {
                p.transitions_at_into(t, &mut self.row_scores[..kk]);
                check_row("transition", Some(t), &self.row_scores[..kk])?;
                self.trans_scale[t - 1] = S::lift_row(&self.row_scores[..kk], &mut self.trans[(t - 1) * kk..t * kk]);
            }
        } else {
            p.transitions_into(&mut self.row_scores[..kk]);
            check_row("transition", None, &self.row_scores[..kk])?;
            let scores = &self.row_scores[..kk];
            let same = self.lifted_trans.len() == kk
                && self
                    .lifted_trans
                    .iter()
                    .zip(scores)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
            if !same {
                self.trans_scale[0] = S::lift_row(scores, &mut self.trans[..kk]);
                self.trans_t.clear();
                if k > MAX_FIXED_WIDTH {
                    for j in 0..k {
                        self.trans_t.extend((0..k).map(|i| self.trans[i * k + j].clone()));
                    }
                }
                self.lifted_trans.clear();
                self.lifted_trans.extend_from_slice(scores);
            }
        }
        Ok(())
    }

    /// Runs the forward pass over `p` and returns the chain sum (⊕ over all paths).
    ///
    /// # Errors
    /// [`Error::InvalidScore`] for a NaN or `+inf` score, [`Error::NoFeasiblePath`]
    /// when every path is forbidden, [`Error::ShapeMismatch`] when `k = 0`.
    pub fn forward<P: Potentials + ?Sized>(&mut self, p: &P) -> Result<ChainSum<S>> {
        self.forward_unexplained(p).map_err(|e| explain_no_path(p, e))
    }

    /// [`forward`](Self::forward) without telling overflow from infeasibility.
    fn forward_unexplained<P: Potentials + ?Sized>(&mut self, p: &P) -> Result<ChainSum<S>> {
        self.lift(p)?;
        if self.n == 0 {
            self.forward_done = true;
            return Ok(ChainSum {
                value: S::one(),
                log_scale: 0.0,
            });
        }
        let mut cum = self.forward_first()?;
        with_width!(self.k, K => self.forward_steps::<K>(&mut cum))?;
        self.forward_last(cum)
    }

    /// Forward rows `1..n`, with the label count fixed at compile time when
    /// `K > 0` (see [`with_width`]).
    fn forward_steps<const K: usize>(&mut self, cum: &mut CompensatedSum) -> Result<()> {
        for t in 1..self.n {
            self.forward_step::<K>(t, cum)?;
        }
        Ok(())
    }

    /// Runs the backward pass over the potentials of the last [`forward`](Self::forward)
    /// call and returns the chain sum computed from the other end (equal to the
    /// forward one up to rounding).
    ///
    /// # Panics
    /// If `forward` has not succeeded on this workspace first (a usage error).
    pub fn backward(&mut self) -> ChainSum<S> {
        assert!(
            self.forward_done,
            "ChainWorkspace::backward needs a successful forward() first"
        );
        if self.n == 0 {
            self.backward_done = true;
            return ChainSum {
                value: S::one(),
                log_scale: 0.0,
            };
        }
        let mut cum = self.backward_first();
        with_width!(self.k, K => {
            for t in (0..self.n - 1).rev() {
                self.backward_step::<K>(t, &mut cum);
            }
        });
        self.backward_last()
    }

    /// [`forward`](Self::forward) and then [`backward`](Self::backward) over
    /// `p`, with the same results, but the two passes run interleaved: step `t`
    /// of the forward pass and step `n − 1 − t` of the backward pass share one
    /// loop iteration. Each pass is a chain of dependent steps; interleaving two
    /// independent chains lets the processor overlap them, which on few labels
    /// (where one step is too short to keep it busy) saves a large part of the
    /// time. Returns the forward chain sum.
    ///
    /// # Errors
    /// As [`forward`](Self::forward).
    pub fn forward_backward<P: Potentials + ?Sized>(&mut self, p: &P) -> Result<ChainSum<S>> {
        self.forward_backward_unexplained(p).map_err(|e| explain_no_path(p, e))
    }

    /// [`forward_backward`](Self::forward_backward) without telling overflow
    /// from infeasibility.
    fn forward_backward_unexplained<P: Potentials + ?Sized>(&mut self, p: &P) -> Result<ChainSum<S>> {
        self.lift(p)?;
        let n = self.n;
        if n == 0 {
            self.forward_done = true;
            return Ok(self.backward());
        }
        let mut fwd = self.forward_first()?;
        let mut bwd = self.backward_first();
        with_width!(self.k, K => self.forward_backward_steps::<K>(&mut fwd, &mut bwd))?;
        let total = self.forward_last(fwd)?;
        self.backward_last();
        Ok(total)
    }

    /// The interleaved loop of [`forward_backward`](Self::forward_backward),
    /// with the label count fixed at compile time when `K > 0`; compiled
    /// three times, see [`crate::simd`].
    fn forward_backward_steps<const K: usize>(
        &mut self,
        fwd: &mut CompensatedSum,
        bwd: &mut CompensatedSum,
    ) -> Result<()> {
        #[cfg(target_arch = "x86_64")]
        match vector_width(K) {
            // SAFETY: the processor has AVX-512F (checked by `vector_width`).
            VectorWidth::Avx512 => return unsafe { self.forward_backward_steps_avx512::<K>(fwd, bwd) },
            // SAFETY: the processor has AVX2 (checked by `vector_width`).
            VectorWidth::Avx2 => return unsafe { self.forward_backward_steps_avx2::<K>(fwd, bwd) },
            VectorWidth::Baseline => {}
        }
        self.forward_backward_steps_body::<K>(fwd, bwd)
    }

    /// [`forward_backward_steps`](Self::forward_backward_steps) compiled for AVX-512.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn forward_backward_steps_avx512<const K: usize>(
        &mut self,
        fwd: &mut CompensatedSum,
        bwd: &mut CompensatedSum,
    ) -> Result<()> {
        self.forward_backward_steps_body::<K>(fwd, bwd)
    }

    /// [`forward_backward_steps`](Self::forward_backward_steps) compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn forward_backward_steps_avx2<const K: usize>(
        &mut self,
        fwd: &mut CompensatedSum,
        bwd: &mut CompensatedSum,
    ) -> Result<()> {
        self.forward_backward_steps_body::<K>(fwd, bwd)
    }

    #[inline(always)]
    fn forward_backward_steps_body<const K: usize>(
        &mut self,
        fwd: &mut CompensatedSum,
        bwd: &mut CompensatedSum,
    ) -> Result<()> {
        let n = self.n;
        for t in 1..n {
            self.forward_step::<K>(t, fwd)?;
            self.backward_step::<K>(n - 1 - t, bwd);
        }
        Ok(())
    }

    /// Forward row 0: `α₀ = start ⊗ e₀`, normalized.
    #[inline(always)]
    fn forward_first(&mut self) -> Result<CompensatedSum> {
        let k = self.k;
        let mut cum = CompensatedSum::default();
        let a0 = &mut self.alpha[..k];
        for ((a, s), e) in a0.iter_mut().zip(&self.start).zip(&self.emit[..k]) {
            *a = s.times(e);
        }
        let s = S::normalize(a0);
        if s == f64::NEG_INFINITY {
            return Err(Error::NoFeasiblePath { position: Some(0) });
        }
        cum.add(self.start_scale);
        cum.add(self.emit_scale[0]);
        cum.add(s);
        self.alpha_scale[0] = cum.value();
        Ok(cum)
    }

    /// Forward row `t ≥ 1`: `αₜ = (αₜ₋₁ · T) ⊗ eₜ`, normalized.
    #[inline(always)]
    fn forward_step<const K: usize>(&mut self, t: usize, cum: &mut CompensatedSum) -> Result<()> {
        let k = fixed_or(K, self.k);
        let kk = k * k;
        let b = self.trans_index(t);
        let (done, rest) = self.alpha.split_at_mut(t * k);
        let prev = &done[(t - 1) * k..][..k];
        let cur = &mut rest[..k];
        let trans = &self.trans[b * kk..][..kk];
        if S::TRACES && self.tracing {
            S::vec_mat_traced(prev, trans, cur, &mut self.from[t * k..][..k]);
        } else {
            S::vec_mat(prev, trans, cur);
        }
        for (c, e) in cur.iter_mut().zip(&self.emit[t * k..][..k]) {
            *c = c.times(e);
        }
        let s = S::normalize(cur);
        if s == f64::NEG_INFINITY {
            return Err(Error::NoFeasiblePath { position: Some(t) });
        }
        self.alpha_step[t] = s;
        // The three parts are of the size of one position's scores: adding
        // them plainly loses nothing the compensated total would keep.
        cum.add(self.trans_scale[b] + self.emit_scale[t] + s);
        self.alpha_scale[t] = cum.value();
        Ok(())
    }

    /// The forward total `αₙ₋₁ · end`; marks the forward pass done.
    #[inline(always)]
    fn forward_last(&mut self, mut cum: CompensatedSum) -> Result<ChainSum<S>> {
        let total = S::dot(&self.alpha[(self.n - 1) * self.k..], &self.end);
        if total.is_zero() {
            return Err(Error::NoFeasiblePath { position: None });
        }
        cum.add(self.end_scale);
        if !cum.value().is_finite() {
            // Every row was representable but their scales summed past f64.
            return Err(Error::Overflow { position: None });
        }
        self.forward_done = true;
        Ok(ChainSum {
            value: total,
            log_scale: cum.value(),
        })
    }

    /// Sizes the backward buffers and sets `βₙ₋₁ = end`, normalized.
    #[inline(always)]
    fn backward_first(&mut self) -> CompensatedSum {
        let (n, k) = (self.n, self.k);
        self.beta.resize(n * k, S::zero());
        self.beta_scale.resize(n, 0.0);
        let mut cum = CompensatedSum::default();
        let last = &mut self.beta[(n - 1) * k..];
        last.clone_from_slice(&self.end);
        let s = S::normalize(last);
        cum.add(self.end_scale);
        cum.add(if s == f64::NEG_INFINITY { 0.0 } else { s });
        self.beta_scale[n - 1] = cum.value();
        cum
    }

    /// Backward row `t < n − 1`: `βₜ = T · (eₜ₊₁ ⊗ βₜ₊₁)`, normalized.
    ///
    /// Beyond [`MAX_FIXED_WIDTH`] labels (one transition matrix), the product
    /// is `(eₜ₊₁ ⊗ βₜ₊₁) · Tᵀ`, the forward step's row sweep over the
    /// transposed matrix: it adds whole rows, which vectorizes, where a dot
    /// product per row of `T` keeps moving partial sums between vector
    /// lanes. Each entry still sums its `k` terms in one fixed order.
    #[inline(always)]
    fn backward_step<const K: usize>(&mut self, t: usize, cum: &mut CompensatedSum) {
        let k = fixed_or(K, self.k);
        let kk = k * k;
        let b = self.trans_index(t + 1);
        let (head, tail) = self.beta.split_at_mut((t + 1) * k);
        let next = &tail[..k];
        let tmp = &mut self.tmp[..k];
        for ((x, e), bn) in tmp.iter_mut().zip(&self.emit[(t + 1) * k..][..k]).zip(next) {
            *x = e.times(bn);
        }
        let cur = &mut head[t * k..][..k];
        if K == 0 && !self.trans_t.is_empty() {
            S::vec_mat(tmp, &self.trans_t[..kk], cur);
        } else {
            S::mat_vec(&self.trans[b * kk..][..kk], tmp, cur);
        }
        let s = S::normalize(cur);
        cum.add(self.trans_scale[b] + self.emit_scale[t + 1] + if s == f64::NEG_INFINITY { 0.0 } else { s });
        self.beta_scale[t] = cum.value();
    }

    /// The backward total `(start ⊗ e₀) · β₀`; marks the backward pass done.
    #[inline(always)]
    fn backward_last(&mut self) -> ChainSum<S> {
        let k = self.k;
        let tmp = &mut self.tmp[..k];
        for ((x, s), e) in tmp.iter_mut().zip(&self.start).zip(&self.emit[..k]) {
            *x = s.times(e);
        }
        let total = S::dot(tmp, &self.beta[..k]);
        let mut scale = CompensatedSum::default();
        scale.add(self.beta_scale[0]);
        scale.add(self.start_scale);
        scale.add(self.emit_scale[0]);
        self.backward_done = true;
        ChainSum {
            value: total,
            log_scale: scale.value(),
        }
    }

    /// The normalized forward row at position `t` (true row = this ⊗ `from_score(alpha_log_scale(t))`).
    pub fn alpha(&self, t: usize) -> &[S] {
        &self.alpha[t * self.k..(t + 1) * self.k]
    }

    /// The log-scale of forward row `t`.
    pub fn alpha_log_scale(&self, t: usize) -> f64 {
        self.alpha_scale[t]
    }

    /// The normalized backward row at position `t`.
    pub fn beta(&self, t: usize) -> &[S] {
        &self.beta[t * self.k..(t + 1) * self.k]
    }

    /// The log-scale of backward row `t`.
    pub fn beta_log_scale(&self, t: usize) -> f64 {
        self.beta_scale[t]
    }
}

impl<S: ProbabilitySemiring> ChainWorkspace<S> {
    /// Runs forward and backward over `p` and writes the node marginals
    /// `P(yₜ = y | x)` into `out` (`n × k`, row-major). Returns log Z.
    ///
    /// # Errors
    /// As [`forward`](Self::forward); [`Error::ShapeMismatch`] when `out` is not `n·k` long.
    pub fn marginals_into<P: Potentials + ?Sized>(&mut self, p: &P, out: &mut [f64]) -> Result<f64> {
        let log_z = self.forward_backward(p)?.log_value();
        self.node_marginals_into(out)?;
        Ok(log_z)
    }

    /// Node marginals after [`forward`](Self::forward) and [`backward`](Self::backward).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `out` is not `n·k` long.
    pub fn node_marginals_into(&mut self, out: &mut [f64]) -> Result<()> {
        let (n, k) = (self.n, self.k);
        if out.len() != n * k {
            return Err(Error::ShapeMismatch {
                what: "marginals buffer",
                expected: (n * k).to_string(),
                got: out.len().to_string(),
            });
        }
        assert!(self.backward_done, "node marginals need forward() and backward() first");
        for t in 0..n {
            let tmp = &mut self.tmp[..k];
            for ((x, a), b) in tmp
                .iter_mut()
                .zip(&self.alpha[t * k..(t + 1) * k])
                .zip(&self.beta[t * k..(t + 1) * k])
            {
                *x = a.times(b);
            }
            if !S::row_probabilities(tmp, &mut out[t * k..(t + 1) * k]) {
                out[t * k..(t + 1) * k].iter_mut().for_each(|o| *o = 0.0);
            }
        }
        Ok(())
    }

    /// After [`forward`](Self::forward) and [`backward`](Self::backward): writes
    /// the `k × k` edge marginals `out[i·k + j] = P(yₜ₋₁ = i, yₜ = j | x)` of edge
    /// `t` (`1 ≤ t < n`).
    pub fn edge_marginal_into(&mut self, t: usize, out: &mut [f64]) {
        assert!(self.backward_done, "edge marginals need forward() and backward() first");
        let kk = self.k * self.k;
        self.tmp.resize(kk + self.k, S::zero());
        with_width!(self.k, K => self.edge_weights::<K>(t));
        if !S::row_probabilities(&self.tmp[..kk], &mut out[..kk]) {
            out[..kk].iter_mut().for_each(|o| *o = 0.0);
        }
    }

    /// After [`forward`](Self::forward) and [`backward`](Self::backward): adds
    /// `scale · Σₜ ξₜ` into `out` (`k × k`), the edge marginals summed over every
    /// edge `t = 1..n`: the expected number of times each label pair follows
    /// one another, which is what the gradient of a position-independent
    /// transition matrix needs.
    ///
    /// With a linear semiring ([`ProbabilitySemiring::LINEAR`]) and one
    /// transition matrix for the whole chain, the sum is factored:
    /// `ξₜ(i, j) = αₜ₋₁(i) · T(i, j) · eₜ(j) βₜ(j) / (σₜ Nₜ)`, where `σₜ` is
    /// the factor forward row `t` was normalized by and `Nₜ = Σⱼ αₜ(j) βₜ(j)`
    /// (so `σₜ Nₜ` is edge `t`'s total weight). `T` does not depend on `t`, so
    /// `Σₜ ξₜ = T ⊙ Σₜ αₜ₋₁ ⊗ vₜ` with `vₜ = eₜ ⊙ βₜ / (σₜ Nₜ)`: one
    /// multiply-add per entry and edge, in a loop the compiler vectorizes,
    /// where forming each edge's `k²` marginals and normalizing them by their
    /// own sum costs about five passes (most of a training iteration at 40+
    /// labels). Forbidden pairs (`T(i, j) = 0`) get exactly 0. Otherwise (a
    /// log-domain semiring, or transitions that vary along the chain) the
    /// marginals are formed edge by edge, as
    /// [`for_each_edge_marginal`](Self::for_each_edge_marginal) gives them.
    /// Both agree up to rounding.
    ///
    /// # Panics
    /// If the passes have not run, or `out` is not `k²` long (usage errors).
    pub fn add_edge_marginals(&mut self, scale: f64, out: &mut [f64]) {
        self.add_summed_edges(scale, None, out);
    }

    /// [`add_edge_marginals`](Self::add_edge_marginals) minus the pair counts
    /// of `path`: adds `scale · Σₜ (ξₜ − 1[(yₜ₋₁, yₜ) = (i, j)])`, the gradient
    /// of the NLL of `path` with respect to a position-independent transition
    /// matrix.
    ///
    /// Each edge's difference at its path pair is formed without cancellation:
    /// `ξₜ(a, b) − 1 = −(Σ_{i≠a} P(yₜ₋₁ = i) + Σ_{j≠b} ξₜ(a, j))`, a sum of
    /// small positive terms, where subtracting counts from a finished sum of
    /// marginals would cancel digits of a number as large as the chain is long
    /// (a confident model's gradient is the sum of many differences of
    /// 10⁻¹³). The factored sum leaves the path pair of each edge out (its
    /// accumulator entry is restored after the row update, exactly; beyond
    /// eight labels the path's row reads a copy of the edge's vector with
    /// the pair's entry 0).
    ///
    /// # Panics
    /// If the passes have not run, `out` is not `k²` long, or `path` is not
    /// `n` labels below `k` (usage errors).
    pub fn add_edge_marginals_minus_path(&mut self, scale: f64, path: &[usize], out: &mut [f64]) {
        assert_eq!(path.len(), self.n, "the path has one label per position");
        assert!(path.iter().all(|&y| y < self.k), "path labels are below k");
        self.add_summed_edges(scale, Some(path), out);
    }

    /// Both summed-edge methods: factored for linear semirings and one
    /// transition matrix (beyond [`MAX_FIXED_WIDTH`] labels in fused
    /// multiply-adds), edge by edge otherwise.
    fn add_summed_edges(&mut self, scale: f64, path: Option<&[usize]>, out: &mut [f64]) {
        let k = self.k;
        assert_eq!(out.len(), k * k, "the summed edge marginals are k × k");
        assert!(self.backward_done, "edge marginals need forward() and backward() first");
        if S::LINEAR && !self.varying {
            with_width!(k, K => {
                #[cfg(target_arch = "x86_64")]
                match vector_width(K) {
                    // SAFETY: the processor has AVX-512F (checked by `vector_width`).
                    VectorWidth::Avx512 => return unsafe { self.add_summed_edges_avx512::<K>(scale, path, out) },
                    // SAFETY: the processor has AVX2 (checked by `vector_width`).
                    VectorWidth::Avx2 => return unsafe { self.add_summed_edges_avx2::<K>(scale, path, out) },
                    VectorWidth::Baseline => {}
                }
                self.add_summed_edges_linear::<K>(scale, path, out)
            });
            return;
        }
        self.for_each_edge_marginal(|t, xi| {
            if let Some(path) = path {
                balance_at(xi, path[t - 1] * k + path[t]);
            }
            for (o, p) in out.iter_mut().zip(xi.iter()) {
                *o += scale * p;
            }
        });
    }

    /// [`add_summed_edges_factored`](Self::add_summed_edges_factored) compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn add_summed_edges_avx2<const K: usize>(&mut self, scale: f64, path: Option<&[usize]>, out: &mut [f64]) {
        self.add_summed_edges_linear::<K>(scale, path, out);
    }

    /// [`add_summed_edges_factored`](Self::add_summed_edges_factored) compiled for AVX-512.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn add_summed_edges_avx512<const K: usize>(&mut self, scale: f64, path: Option<&[usize]>, out: &mut [f64]) {
        self.add_summed_edges_linear::<K>(scale, path, out);
    }

    /// The summed edges of a linear semiring and one transition matrix:
    /// fused beyond [`MAX_FIXED_WIDTH`] labels (`K = 0`) when every `vₜ`
    /// is finite, factored otherwise.
    #[inline(always)]
    fn add_summed_edges_linear<const K: usize>(&mut self, scale: f64, path: Option<&[usize]>, out: &mut [f64]) {
        if K == 0 && self.k > MAX_FIXED_WIDTH && self.add_summed_edges_fused(scale, path, out) {
            return;
        }
        self.add_summed_edges_factored::<K>(scale, path, out);
    }

    /// The summed edges of [`add_summed_edges`](Self::add_summed_edges)
    /// beyond [`MAX_FIXED_WIDTH`] labels: the same sums as
    /// [`add_summed_edges_factored`](Self::add_summed_edges_factored), with
    /// `Σ αₜ₋₁ ⊗ vₜ` as one tiled sum of outer products in fused
    /// multiply-adds ([`fused::outer_sum`]). The path's pair at `t` is left
    /// out of that sum through a copy of `vₜ` with its label's entry 0, used
    /// for the path's row only. Returns `false`, having done nothing, when
    /// some `vₜ` is not finite: a 0 of `αₜ₋₁` must then leave the sum as it
    /// is, which only the factored loop's explicit skip does.
    #[inline(always)]
    fn add_summed_edges_fused(&mut self, scale: f64, path: Option<&[usize]>, out: &mut [f64]) -> bool {
        let (n, k) = (self.n, self.k);
        let mut scratch = std::mem::take(&mut self.edge_scratch);
        scratch.reset(k, n);
        let (sa, sv) = (fused::a_stride(k), fused::v_stride(k));
        let stride = fused::term_stride(k);
        let mut finite = true;
        let mut prev_total = self.node_total(k, 0);
        for t in 1..n {
            let node = self.node_total(k, t);
            let Some(inv) = self.edge_normalizer(t, node) else {
                prev_total = node;
                continue;
            };
            let m = scratch.masked_row.len();
            let (a_row, rest) = scratch.rows[m * stride..][..stride].split_at_mut(sa);
            let (v, vm) = rest.split_at_mut(sv);
            let (v, vm) = (&mut v[..k], &mut vm[..k]);
            for ((x, e), b) in v.iter_mut().zip(&self.emit[t * k..][..k]).zip(&self.beta[t * k..][..k]) {
                *x = e.linear() * b.linear() * inv;
                finite &= x.is_finite();
            }
            for (d, a) in a_row[..k].iter_mut().zip(&self.alpha[(t - 1) * k..][..k]) {
                *d = a.linear();
            }
            vm.copy_from_slice(v);
            match path {
                Some(p) => {
                    let (a, b) = (p[t - 1], p[t]);
                    vm[b] = 0.0;
                    scratch.masked_row.push(a as u32);
                    scratch.diff[a * k + b] -= self.path_pair_complement(k, t, (a, b), v, prev_total);
                }
                None => scratch.masked_row.push(u32::MAX),
            }
            prev_total = node;
        }
        if finite {
            let terms = fused::OuterTerms {
                k,
                len: scratch.masked_row.len(),
                rows: &scratch.rows,
                masked_row: &scratch.masked_row,
            };
            fused::outer_sum(&terms, &mut scratch.acc);
            self.add_expected_edges(scale, &scratch.acc, &scratch.diff, out);
        }
        // Back to all zeros: only the path's pairs were written.
        if let Some(p) = path {
            for w in p.windows(2) {
                scratch.diff[w[0] * k + w[1]] = 0.0;
            }
        }
        self.edge_scratch = scratch;
        finite
    }

    /// `Σ_j αₜ(j) βₜ(j)`: the total weight of the paths, in the scale of
    /// row `t` (`k`: the label count, a constant where the caller has one).
    #[inline(always)]
    fn node_total(&self, k: usize, t: usize) -> f64 {
        S::dot(&self.alpha[t * k..][..k], &self.beta[t * k..][..k]).linear()
    }

    /// `1 / total` for edge `t` (`node`: [`node_total`](Self::node_total)
    /// at `t`), or `None` when the total is 0 or not representable: an
    /// edge of no weight, which per-edge normalization leaves out too.
    #[inline(always)]
    fn edge_normalizer(&self, t: usize, node: f64) -> Option<f64> {
        let total = node * self.alpha_step[t].exp();
        (total > 0.0 && total.is_finite()).then(|| 1.0 / total)
    }

    /// `1 − ξₜ(a, b)` for the path's pair `(a, b)` at edge `t`, summed from
    /// the other terms so that it keeps its precision when `ξ` is near 1:
    /// the other labels' marginals at `t − 1`, and the other pairs out of `a`
    /// (`v`: `vₜ`; `prev_total`: [`node_total`](Self::node_total) at `t − 1`;
    /// `k` as there).
    #[inline(always)]
    fn path_pair_complement(&self, k: usize, t: usize, (a, b): (usize, usize), v: &[f64], prev_total: f64) -> f64 {
        let prev = &self.alpha[(t - 1) * k..][..k];
        let prev_beta = &self.beta[(t - 1) * k..][..k];
        let pa = prev[a].linear();
        let tr_row = &self.trans[a * k..][..k];
        let others = sum_except(k, a, |i| prev[i].linear() * prev_beta[i].linear()) / prev_total;
        others + sum_except(k, b, |j| pa * tr_row[j].linear() * v[j])
    }

    /// `out += scale · (T ⊙ acc + diff)`, with `0 · acc` an exact 0 where
    /// `T` is 0 (even for an overflowed sum).
    #[inline(always)]
    fn add_expected_edges(&self, scale: f64, acc: &[f64], diff: &[f64], out: &mut [f64]) {
        let kk = self.k * self.k;
        for (((o, tr), a), d) in out.iter_mut().zip(&self.trans[..kk]).zip(acc).zip(diff) {
            let tr = tr.linear();
            let expected = if tr != 0.0 { tr * a } else { 0.0 };
            *o += scale * (expected + d);
        }
    }

    /// The factored sum of [`add_summed_edges`](Self::add_summed_edges).
    #[inline(always)]
    fn add_summed_edges_factored<const K: usize>(&mut self, scale: f64, path: Option<&[usize]>, out: &mut [f64]) {
        let k = fixed_or(K, self.k);
        let kk = k * k;
        let mut buf = std::mem::take(&mut self.probs);
        buf.clear();
        buf.resize(2 * kk + k, 0.0);
        // `acc`: Σ αₜ₋₁ ⊗ vₜ over every (edge, pair) but the path's;
        // `diff`: Σ (ξₜ − 1) at the path's pairs; `v`: vₜ.
        let (acc, rest) = buf.split_at_mut(kk);
        let (diff, v) = rest.split_at_mut(kk);
        let mut prev_total = self.node_total(k, 0);
        for t in 1..self.n {
            let node = self.node_total(k, t);
            let Some(inv) = self.edge_normalizer(t, node) else {
                prev_total = node;
                continue;
            };
            for ((x, e), b) in v.iter_mut().zip(&self.emit[t * k..][..k]).zip(&self.beta[t * k..][..k]) {
                *x = e.linear() * b.linear() * inv;
            }
            let prev = &self.alpha[(t - 1) * k..][..k];
            let kept = path.map(|p| (p[t - 1], p[t], acc[p[t - 1] * k + p[t]]));
            for (row, a) in acc.chunks_exact_mut(k).zip(prev) {
                let a = a.linear();
                if a == 0.0 {
                    continue;
                }
                for (r, x) in row.iter_mut().zip(&*v) {
                    *r += a * x;
                }
            }
            if let Some((a, b, before)) = kept {
                acc[a * k + b] = before;
                diff[a * k + b] -= self.path_pair_complement(k, t, (a, b), v, prev_total);
            }
            prev_total = node;
        }
        self.add_expected_edges(scale, acc, diff, out);
        self.probs = buf;
    }

    /// The unnormalized weights `αₜ₋₁(i) ⊗ T(i, j) ⊗ eₜ(j) ⊗ βₜ(j)` of edge `t`,
    /// written into `tmp[..k²]` (`tmp` at least `k² + k` long; its last `k`
    /// slots hold `eₜ ⊗ βₜ`).
    #[inline(always)]
    fn edge_weights<const K: usize>(&mut self, t: usize) {
        let k = fixed_or(K, self.k);
        let kk = k * k;
        let b = self.trans_index(t);
        let tr = &self.trans[b * kk..][..kk];
        let alpha = &self.alpha[(t - 1) * k..][..k];
        let emit = &self.emit[t * k..][..k];
        let beta = &self.beta[t * k..][..k];
        let (w, v) = self.tmp[..kk + k].split_at_mut(kk);
        for ((x, e), bt) in v.iter_mut().zip(emit).zip(beta) {
            *x = e.times(bt);
        }
        for (row, (a, tr_row)) in w.chunks_exact_mut(k).zip(alpha.iter().zip(tr.chunks_exact(k))) {
            for ((x, tr_ij), v_j) in row.iter_mut().zip(tr_row).zip(&*v) {
                *x = a.times(tr_ij).times(v_j);
            }
        }
    }

    /// After [`forward`](Self::forward) and [`backward`](Self::backward): calls
    /// `f(t, ξₜ)` for each edge `t = 1..n` with its `k × k` edge marginals, in a
    /// loop compiled for the label count (for up to 8 labels). `ξₜ` is a
    /// scratch buffer: `f` may change it (to subtract a target, say).
    ///
    /// # Panics
    /// If the passes have not run (a usage error).
    pub fn for_each_edge_marginal(&mut self, mut f: impl FnMut(usize, &mut [f64])) {
        assert!(self.backward_done, "edge marginals need forward() and backward() first");
        let kk = self.k * self.k;
        self.tmp.resize(kk + self.k, S::zero());
        let mut probs = std::mem::take(&mut self.probs);
        probs.resize(kk, 0.0);
        let xi = &mut probs[..kk];
        with_width!(self.k, K => {
            for t in 1..self.n {
                self.edge_weights::<K>(t);
                if !S::row_probabilities(&self.tmp[..kk], xi) {
                    xi.iter_mut().for_each(|p| *p = 0.0);
                }
                f(t, xi);
            }
        });
        self.probs = probs;
    }

    /// Draws `count` label paths from `P(y | x)` by forward filtering, backward
    /// sampling (one forward pass, then `O(n·k)` per sample).
    ///
    /// # Errors
    /// As [`forward`](Self::forward).
    pub fn sample<P: Potentials + ?Sized, R: rand::Rng + ?Sized>(
        &mut self,
        p: &P,
        count: usize,
        rng: &mut R,
    ) -> Result<Vec<Vec<usize>>> {
        self.forward(p)?;
        let (n, k) = (self.n, self.k);
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let mut path = vec![0usize; n];
            if n == 0 {
                out.push(path);
                continue;
            }
            {
                let tmp = &mut self.tmp[..k];
                for ((x, a), e) in tmp.iter_mut().zip(&self.alpha[(n - 1) * k..]).zip(&self.end) {
                    *x = a.times(e);
                }
            }
            path[n - 1] = draw::<S, R>(&self.tmp[..k], &mut self.probs[..k], rng);
            for t in (1..n).rev() {
                let next = path[t];
                let b = self.trans_index(t);
                let kk = k * k;
                for i in 0..k {
                    self.tmp[i] = self.alpha[(t - 1) * k + i].times(&self.trans[b * kk + i * k + next]);
                }
                path[t - 1] = draw::<S, R>(&self.tmp[..k], &mut self.probs[..k], rng);
            }
            out.push(path);
        }
        Ok(out)
    }
}

/// Sets `d[at]` to minus the sum of the other entries: for `d` the
/// difference of two distributions (which sums to 0), the entry where both
/// are near 1 is thus formed without cancellation. Subtracting a target the
/// model is sure of keeps only a few digits of `ξ(at) − 1` (within 10⁻¹³ of
/// 0), where the other entries are small numbers each known to full
/// precision. With `d` the edge marginals themselves, this subtracts a path's
/// one-hot pair at `at`.
pub(crate) fn balance_at(d: &mut [f64], at: usize) {
    let others: f64 = d.iter().enumerate().filter(|&(i, _)| i != at).map(|(_, x)| x).sum();
    d[at] = -others;
}

/// Turns a "no allowed path" from a pass in a semiring that adds scores into
/// [`Error::Overflow`] when the path exists after all: the boolean semiring
/// never adds scores, so when it finds a path the other pass lost every path to
/// sums that left the range of `f64` (finite scores of 1e308 added to one
/// another), not to forbidden scores. Runs only on the error path.
fn explain_no_path<P: Potentials + ?Sized>(p: &P, e: Error) -> Error {
    match e {
        Error::NoFeasiblePath { position } => match ChainWorkspace::<Boolean>::new().forward_unexplained(p) {
            Ok(_) => Error::Overflow { position },
            Err(_) => e,
        },
        e => e,
    }
}

pub(crate) fn draw<S: ProbabilitySemiring, R: rand::Rng + ?Sized>(row: &[S], probs: &mut [f64], rng: &mut R) -> usize {
    if !S::row_probabilities(row, probs) {
        return 0;
    }
    let u: f64 = rng.random::<f64>();
    let mut acc = 0.0;
    let mut last = 0;
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            last = i;
            acc += p;
            if u < acc {
                return i;
            }
        }
    }
    last
}

impl ChainWorkspace<MaxPlus> {
    /// The best path and its score (Viterbi). Ties go to the smaller label.
    ///
    /// Two ways to recover the path, chosen by the number of labels `k`:
    ///
    /// * up to 8 labels, the forward pass leaves
    ///   back-pointers ([`Semiring::vec_mat_traced`]): each position records,
    ///   per label, the previous label of its best prefix, and the path is
    ///   read back by following them. With few labels a step is short, and
    ///   the walk back, one dependent search per position, would otherwise
    ///   cost a third of the time;
    /// * above that, the forward pass keeps only its rows (tracking the
    ///   winner of `k²` comparisons costs more than it saves), and each step
    ///   back recomputes one argmax over `k` values.
    ///
    /// Both give the same path: the same sums, compared in the same order.
    ///
    /// # Errors
    /// As [`forward`](Self::forward).
    pub fn viterbi<P: Potentials + ?Sized>(&mut self, p: &P) -> Result<Path> {
        self.tracing = p.num_labels() <= TRACE_MAX_LABELS;
        let total = self.forward(p);
        let traced = std::mem::take(&mut self.tracing);
        let total = total?;
        let (n, k) = (self.n, self.k);
        let mut labels = vec![0usize; n];
        if n == 0 {
            return Ok(Path {
                labels,
                score: total.score(),
            });
        }
        labels[n - 1] = argmax(self.alpha[(n - 1) * k..].iter().zip(&self.end).map(|(a, e)| a.0 + e.0));
        if traced {
            for t in (1..n).rev() {
                labels[t - 1] = self.from[t * k + labels[t]] as usize;
            }
        } else {
            if !self.varying {
                // Each step reads one column of T: transpose it once so the
                // column is contiguous.
                let kk = k * k;
                let (tr, tmp) = (&self.trans[..kk], &mut self.tmp[..kk]);
                for i in 0..k {
                    for j in 0..k {
                        tmp[j * k + i] = tr[i * k + j];
                    }
                }
            }
            for t in (1..n).rev() {
                let next = labels[t];
                let prev = &self.alpha[(t - 1) * k..t * k];
                labels[t - 1] = if self.varying {
                    let tr = self.trans_block(t);
                    argmax(prev.iter().enumerate().map(|(i, a)| a.0 + tr[i * k + next].0))
                } else {
                    argmax(
                        prev.iter()
                            .zip(&self.tmp[next * k..(next + 1) * k])
                            .map(|(a, c)| a.0 + c.0),
                    )
                };
            }
        }
        Ok(Path {
            labels,
            score: total.score(),
        })
    }

    /// The `count` best paths, best first, distinct (fewer when fewer paths are
    /// allowed; ties in score in a fixed order). List Viterbi: each
    /// (position, label) keeps the `count` best prefixes ending there, each a
    /// score and a pointer to one of the previous position's lists, so the
    /// work is `O(n·k²·count·log)` and the memory `n·k·count` entries whatever
    /// the scores. (A best-first search over prefixes, tried first, is as
    /// fast on ordinary scores but can expand without bound when scores of
    /// 10⁸⁰ leave its priorities equal to the last bit.)
    ///
    /// # Errors
    /// As [`forward`](Self::forward); [`Error::TooLarge`] when `n·k·count`
    /// exceeds 2²⁶ entries (1 GiB), `count` first cut to the number of paths.
    pub fn kbest<P: Potentials + ?Sized>(&mut self, p: &P, count: usize) -> Result<Vec<Path>> {
        const LIMIT: usize = 1 << 26;
        self.forward(p)?;
        let (n, k) = (self.n, self.k);
        if count == 0 {
            return Ok(Vec::new());
        }
        if n == 0 {
            return Ok(vec![Path {
                labels: Vec::new(),
                score: 0.0,
            }]);
        }
        // No more paths than the chain has (k^n, saturating).
        let paths = (0..n)
            .try_fold(1usize, |acc, _| acc.checked_mul(k))
            .unwrap_or(usize::MAX);
        let count = count.min(paths);
        let needed = n.saturating_mul(k).saturating_mul(count);
        if needed > LIMIT {
            return Err(Error::TooLarge {
                what: "k-best paths",
                needed,
                limit: LIMIT,
            });
        }
        /// A prefix: its score and where it came from (label and rank in the
        /// previous position's list).
        #[derive(Clone, Copy)]
        struct Entry {
            score: f64,
            from: u32,
            rank: u32,
        }
        let best_first = |a: &Entry, b: &Entry| {
            b.score
                .total_cmp(&a.score)
                .then(a.from.cmp(&b.from))
                .then(a.rank.cmp(&b.rank))
        };
        // Max-plus lifting is the identity: the workspace holds raw scores.
        // lists[(t·k + y)·count ..] holds `lens[t·k + y]` entries, best first.
        let mut lists = vec![
            Entry {
                score: f64::NEG_INFINITY,
                from: 0,
                rank: 0
            };
            needed
        ];
        let mut lens = vec![0usize; n * k];
        for y in 0..k {
            let score = self.start[y].0 + self.emit[y].0;
            if score > f64::NEG_INFINITY {
                lists[y * count] = Entry {
                    score,
                    from: 0,
                    rank: 0,
                };
                lens[y] = 1;
            }
        }
        let mut candidates: Vec<Entry> = Vec::with_capacity(k * count);
        for t in 1..n {
            let tr = self.trans_block(t);
            for y in 0..k {
                candidates.clear();
                let e = self.emit[t * k + y].0;
                for i in 0..k {
                    let step = tr[i * k + y].0 + e;
                    if step == f64::NEG_INFINITY {
                        continue;
                    }
                    let prev = (t - 1) * k + i;
                    for (r, entry) in lists[prev * count..prev * count + lens[prev]].iter().enumerate() {
                        let score = entry.score + step;
                        if score > f64::NEG_INFINITY {
                            candidates.push(Entry {
                                score,
                                from: i as u32,
                                rank: r as u32,
                            });
                        }
                    }
                }
                candidates.sort_unstable_by(best_first);
                candidates.truncate(count);
                let at = t * k + y;
                lists[at * count..at * count + candidates.len()].copy_from_slice(&candidates);
                lens[at] = candidates.len();
            }
        }
        // Complete paths: the last position's lists plus the end scores.
        candidates.clear();
        for y in 0..k {
            let last = (n - 1) * k + y;
            for (r, entry) in lists[last * count..last * count + lens[last]].iter().enumerate() {
                let score = entry.score + self.end[y].0;
                if score > f64::NEG_INFINITY {
                    candidates.push(Entry {
                        score,
                        from: y as u32,
                        rank: r as u32,
                    });
                }
            }
        }
        candidates.sort_unstable_by(best_first);
        candidates.truncate(count);
        Ok(candidates
            .iter()
            .map(|c| {
                let mut labels = vec![0usize; n];
                let (mut y, mut r) = (c.from as usize, c.rank as usize);
                for t in (0..n).rev() {
                    labels[t] = y;
                    let entry = lists[(t * k + y) * count + r];
                    (y, r) = (entry.from as usize, entry.rank as usize);
                }
                Path { labels, score: c.score }
            })
            .collect())
    }
}

/// The largest number of labels for which [`ChainWorkspace::viterbi`] keeps
/// back-pointers during the forward pass. Measured with the core benches:
/// at k = 4, back-pointers made Viterbi 1.2–1.3× faster; at k = 44, 1.6×
/// slower.
pub(crate) const TRACE_MAX_LABELS: usize = 8;

/// Index of the largest value, the first on ties (0 when all are −∞).
#[inline]
pub(crate) fn argmax(it: impl Iterator<Item = f64>) -> usize {
    let mut best = f64::NEG_INFINITY;
    let mut arg = 0;
    for (i, v) in it.enumerate() {
        if v > best {
            best = v;
            arg = i;
        }
    }
    arg
}

/// The score of one label path under `p` (sum of its start, emission,
/// transition and end scores; `-inf` if any is forbidden).
///
/// # Errors
/// [`Error::ShapeMismatch`] when the path length differs from the chain's,
/// [`Error::LabelOutOfRange`] for a label `≥ k`.
pub fn path_score<P: Potentials + ?Sized>(p: &P, labels: &[usize]) -> Result<f64> {
    let (n, k) = (p.len(), p.num_labels());
    if labels.len() != n {
        return Err(Error::ShapeMismatch {
            what: "path",
            expected: n.to_string(),
            got: labels.len().to_string(),
        });
    }
    if let Some((t, &y)) = labels.iter().enumerate().find(|(_, &y)| y >= k) {
        return Err(Error::LabelOutOfRange {
            position: t,
            label: y,
            num_labels: k,
        });
    }
    if n == 0 {
        return Ok(0.0);
    }
    let vary = p.has_varying_transitions();
    let mut s = p.start(labels[0]) + p.end(labels[n - 1]);
    for (t, &y) in labels.iter().enumerate() {
        s += p.emission(t, y);
        if t > 0 {
            s += if vary {
                p.transition_at(t, labels[t - 1], y)
            } else {
                p.transition(labels[t - 1], y)
            };
        }
    }
    Ok(s)
}

/// log Z, the log-partition function (exact log semiring).
///
/// # Errors
/// As [`ChainWorkspace::forward`].
pub fn log_partition<P: Potentials + ?Sized>(p: &P) -> Result<f64> {
    Ok(ChainWorkspace::<Log>::new().forward(p)?.score())
}

/// Node marginals `P(yₜ = y | x)` as an `n × k` matrix (log semiring).
///
/// # Errors
/// As [`ChainWorkspace::forward`].
pub fn marginals<P: Potentials + ?Sized>(p: &P) -> Result<nalgebra::DMatrix<f64>> {
    let (n, k) = (p.len(), p.num_labels());
    let mut out = vec![0.0; n * k];
    ChainWorkspace::<Log>::new().marginals_into(p, &mut out)?;
    Ok(nalgebra::DMatrix::from_row_slice(n, k, &out))
}

/// Edge marginals: for each `t = 1..n`, the `k × k` matrix `P(yₜ₋₁ = i, yₜ = j | x)`.
///
/// # Errors
/// As [`ChainWorkspace::forward`].
pub fn edge_marginals<P: Potentials + ?Sized>(p: &P) -> Result<Vec<nalgebra::DMatrix<f64>>> {
    let k = p.num_labels();
    let mut ws = ChainWorkspace::<Log>::new();
    ws.forward(p)?;
    ws.backward();
    let mut out = Vec::with_capacity(p.len().saturating_sub(1));
    ws.for_each_edge_marginal(|_, xi| out.push(nalgebra::DMatrix::from_row_slice(k, k, xi)));
    Ok(out)
}

/// The best path (Viterbi).
///
/// # Errors
/// As [`ChainWorkspace::forward`].
pub fn viterbi<P: Potentials + ?Sized>(p: &P) -> Result<Path> {
    ChainWorkspace::<MaxPlus>::new().viterbi(p)
}

/// The `count` best paths, best first.
///
/// # Errors
/// As [`ChainWorkspace::forward`].
pub fn kbest<P: Potentials + ?Sized>(p: &P, count: usize) -> Result<Vec<Path>> {
    ChainWorkspace::<MaxPlus>::new().kbest(p, count)
}

/// The entropy `H(y | x)` of the path distribution, in nats.
///
/// # Errors
/// As [`ChainWorkspace::forward`].
pub fn entropy<P: Potentials + ?Sized>(p: &P) -> Result<f64> {
    Ok(ChainWorkspace::<Entropy>::new().forward(p)?.value.entropy)
}

/// The natural log of the number of allowed paths.
///
/// # Errors
/// As [`ChainWorkspace::forward`] ([`Error::NoFeasiblePath`] when there are none).
pub fn count_paths<P: Potentials + ?Sized>(p: &P) -> Result<f64> {
    Ok(ChainWorkspace::<Counting>::new().forward(p)?.log_value())
}

/// Whether any path is allowed.
///
/// # Errors
/// [`Error::InvalidScore`] or [`Error::ShapeMismatch`] for bad potentials.
pub fn has_path<P: Potentials + ?Sized>(p: &P) -> Result<bool> {
    match ChainWorkspace::<Boolean>::new().forward(p) {
        Ok(_) => Ok(true),
        Err(Error::NoFeasiblePath { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Draws `count` paths from `P(y | x)` with `rng` (log semiring, exact).
///
/// # Errors
/// As [`ChainWorkspace::forward`].
pub fn sample<P: Potentials + ?Sized, R: rand::Rng + ?Sized>(
    p: &P,
    count: usize,
    rng: &mut R,
) -> Result<Vec<Vec<usize>>> {
    ChainWorkspace::<Log>::new().sample(p, count, rng)
}
