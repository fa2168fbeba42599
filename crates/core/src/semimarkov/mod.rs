//! Semi-Markov structure: labelled segments instead of labelled positions,
//! on the same semirings as the chain.
//!
//! A semi-Markov model (Sarawagi & Cohen 2004) cuts an input of length `n`
//! into segments of at most `L` positions and labels each segment. A
//! segmentation `(i₀ = 0, d₀, y₀), (i₁ = d₀, d₁, y₁), …` scores
//! `start(y₀) + Σⱼ s(iⱼ, dⱼ, yⱼ) + Σⱼ T(yⱼ₋₁, yⱼ) + end(y_last)`: segment
//! scores can look at the whole segment (is it a dictionary word, how long is
//! it), which position labels can only approximate. A chain is the special
//! case `L = 1` ([`DenseSemiMarkov::from_chain`]); the tests check every
//! answer against the chain's.
//!
//! The dynamic program is the chain's with one more sum, over the length of
//! the last segment. With `αₜ` the segmentations of `[0, t)` whose last
//! segment ends at `t` (by its label) and `γₜ = αₜ · T` (`γ₀ = start`):
//!
//! `αₜ(y) = ⊕_{d = 1..min(L, t)} γₜ₋d(y) ⊗ s(t − d, d, y)`, total `= αₙ · end`,
//!
//! and backward, with `βₙ = end`, `δₜ(y) = ⊕_d s(t, d, y) ⊗ βₜ₊d(y)` and
//! `βₜ = T · δₜ`. It costs `O(n·L·k + n·k²)`. As for the chain, it is written
//! once over [`Semiring`] and everything comes out of the choice of semiring:
//!
//! | want | semiring | method |
//! | --- | --- | --- |
//! | log Z | [`Log`] / [`crate::Prob`] | [`log_partition`], [`SemiMarkovWorkspace::forward`] |
//! | segment marginals | any [`ProbabilitySemiring`] | [`SemiMarkovWorkspace::segment_marginals_into`] |
//! | best segmentation | [`MaxPlus`] | [`SemiMarkovWorkspace::viterbi`] |
//! | K best segmentations | [`MaxPlus`] (scores: [`crate::KBest`]) | [`SemiMarkovWorkspace::kbest`] |
//! | entropy | [`Entropy`] | [`entropy`] |
//! | samples | any [`ProbabilitySemiring`] | [`SemiMarkovWorkspace::sample`] |
//! | count / feasibility | [`Counting`] / [`Boolean`] | [`count_segmentations`], [`has_segmentation`] |
//!
//! and [`SemiMarkovNll`] is the loss layer (negative log-likelihood of a gold
//! segmentation and its gradient with respect to every score).
//!
//! **Numerics.** As in the chain, every row is normalized by the semiring and
//! its log-scale kept beside it. A row here sums terms that start at `L`
//! different rows, each with its own scale; the terms are brought to the
//! largest of those scales with [`Semiring::from_log_scale`] before they are
//! added. Scales are kept as unevaluated sums of two doubles, so the
//! differences between them, and the marginals formed from them
//! (`γ ⊗ s ⊗ β / Z`), keep their digits on inputs of 10⁵ positions. `-inf`
//! is exact: a forbidden segment or a row no segmentation reaches is skipped,
//! never turned into a tiny weight. Finite scores whose sums leave the range
//! of `f64` give [`Error::Overflow`], not a wrong answer.

mod loss;
mod potentials;

pub use loss::{nll, SegmentGradient, SemiMarkovNll};
pub use potentials::{DenseSemiMarkov, SegmentPotentials};

use crate::chain::{argmax, check_row, draw, fixed_or, with_width, ChainSum};
use crate::error::{Error, Result};
use crate::semiring::{Boolean, Counting, Entropy, Log, MaxPlus, ProbabilitySemiring, Semiring};

/// One labelled segment: positions `start..start + len`, label `label`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Segment {
    /// First position.
    pub start: usize,
    /// Number of positions (at least 1).
    pub len: usize,
    /// Label.
    pub label: usize,
}

/// A segmentation of the whole input with its score.
#[derive(Clone, Debug, PartialEq)]
pub struct Segmentation {
    /// The segments in order, covering `0..n` without gaps.
    pub segments: Vec<Segment>,
    /// The segmentation's total score.
    pub score: f64,
}

/// A log-scale as an unevaluated sum `hi + lo` of two doubles (`hi = -inf`
/// for a row of 0̄). Rows of an input 10⁵ long carry scales of 10⁶ and more;
/// the semi-Markov recursion subtracts such scales from one another, and the
/// marginals subtract log Z from sums of three of them, so each is kept to
/// twice the precision of an `f64`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Scale {
    hi: f64,
    lo: f64,
}

impl Scale {
    const ZERO_ROW: Scale = Scale {
        hi: f64::NEG_INFINITY,
        lo: 0.0,
    };

    fn new(x: f64) -> Scale {
        Scale { hi: x, lo: 0.0 }
    }

    #[inline(always)]
    fn is_zero_row(self) -> bool {
        self.hi == f64::NEG_INFINITY
    }

    /// `self + x`, the rounding error of the leading sum kept (Knuth's TwoSum).
    #[inline(always)]
    fn plus(self, x: f64) -> Scale {
        if x == 0.0 {
            return self;
        }
        let t = self.hi + x;
        let x_part = t - self.hi;
        let err = (self.hi - (t - x_part)) + (x - x_part);
        Scale {
            hi: t,
            lo: self.lo + err,
        }
    }

    #[inline(always)]
    fn plus_scale(self, o: Scale) -> Scale {
        self.plus(o.hi).plus(o.lo)
    }

    /// `self − o` as one double: exact in the leading parts when they are
    /// close, which is when the result is small.
    #[inline(always)]
    fn minus(self, o: Scale) -> f64 {
        (self.hi - o.hi) + (self.lo - o.lo)
    }

    #[inline(always)]
    fn value(self) -> f64 {
        self.hi + self.lo
    }

    fn is_finite(self) -> bool {
        self.hi.is_finite() && self.lo.is_finite()
    }
}

/// Reusable buffers for the semi-Markov algorithms in semiring `S`.
///
/// Row `t` of the forward pass (`1 ≤ t ≤ n`) is the segmentations of `[0, t)`
/// by the label of their last segment; row `t` of `γ` (`0 ≤ t < n`) the
/// same after one more transition (the label of a segment starting at `t`).
#[derive(Clone, Debug)]
pub struct SemiMarkovWorkspace<S: Semiring> {
    n: usize,
    k: usize,
    l: usize,
    row_scores: Vec<f64>,
    seg: Vec<S>,
    seg_scale: Vec<f64>,
    /// Whether every segment row was lifted with scale 0 (rows of 0̄ are
    /// marked with scale −inf afterwards, which keeps them plain too).
    seg_plain: bool,
    trans: Vec<S>,
    trans_scale: f64,
    end: Vec<S>,
    end_scale: f64,
    alpha: Vec<S>,
    alpha_scale: Vec<Scale>,
    gamma: Vec<S>,
    gamma_scale: Vec<Scale>,
    beta: Vec<S>,
    beta_scale: Vec<Scale>,
    delta: Vec<S>,
    delta_scale: Vec<Scale>,
    total: ChainSum<S>,
    tmp: Vec<S>,
    probs: Vec<f64>,
    forward_done: bool,
    backward_done: bool,
}

impl<S: Semiring> Default for SemiMarkovWorkspace<S> {
    fn default() -> Self {
        Self::new()
    }
}

/// The scale of one term of a row: the scale of the row it extends and the
/// scale of its segment scores (either −∞ for a term of 0̄).
type TermScale = (Scale, f64);

/// How far above the reference a term's scale may lie before the largest
/// scale is taken as the reference instead: `e³⁰ ≈ 10¹³` leaves room even
/// for counts of 10²⁰⁰ ([`Counting`] rescales only above that).
const FACTOR_LIMIT: f64 = 30.0;

/// Among the terms `d = 1..=dmax`, the one with the largest scale (by the
/// leading parts: every factor is then at most about 1), or `None` when
/// every term is 0̄.
#[inline(always)]
fn largest_term(dmax: usize, scale: impl Fn(usize) -> TermScale) -> Option<TermScale> {
    let mut best = f64::NEG_INFINITY;
    let mut best_d = 0;
    for d in 1..=dmax {
        let (r, s) = scale(d);
        let w = r.hi + s;
        if w > best {
            best = w;
            best_d = d;
        }
    }
    (best_d > 0).then(|| scale(best_d))
}

/// The first term that is not 0̄ (the segment of length 1, usually), or
/// `None` when every term is 0̄.
#[inline(always)]
fn first_term(dmax: usize, scale: impl Fn(usize) -> TermScale) -> Option<TermScale> {
    (1..=dmax).map(scale).find(|(r, s)| r.hi + s > f64::NEG_INFINITY)
}

/// The reference scale of a row: the first term's, unless some term lies
/// more than [`FACTOR_LIMIT`] above it, and then the largest. This is what
/// [`sum_over_lengths`] uses, in one pass over the terms when the first
/// term will do (nearly always: rows further back carry less weight).
#[inline(always)]
fn reference_term(dmax: usize, scale: impl Fn(usize) -> TermScale) -> Option<TermScale> {
    let first = first_term(dmax, &scale)?;
    let too_far = (1..=dmax).any(|d| term_factor(scale(d), first).is_some_and(|f| f > FACTOR_LIMIT));
    if too_far {
        largest_term(dmax, scale)
    } else {
        Some(first)
    }
}

/// The log-factor that brings a term of scale `term` to the scale
/// `reference`, or `None` for a term of 0̄. Exactly 0 when the two scales
/// are equal (the reference itself, or every row of a max-plus pass), which
/// lets the caller skip the multiplication.
#[inline(always)]
fn term_factor(term: TermScale, reference: TermScale) -> Option<f64> {
    let ((r, s), (rr, rs)) = (term, reference);
    if r.hi + s == f64::NEG_INFINITY {
        return None;
    }
    Some(((r.hi - rr.hi) + (s - rs)) + (r.lo - rr.lo))
}

/// The sum over `d = 1..=dmax` of `a(d) ⊗ b(d)`, label by label, into `out`,
/// where term `d` carries the scale `scale(d)`: the terms are brought to the
/// largest scale, added, and the result normalized. Returns the result's
/// scale, [`Scale::ZERO_ROW`] when every term is 0̄, and `Err(())` when the
/// values overflow.
///
/// The forward rows (`a` = γ rows, `b` = segment scores) and the backward
/// rows (`a` = segment scores, `b` = β rows) are both this sum.
#[inline(always)]
fn sum_over_lengths<'a, S: Semiring>(
    out: &mut [S],
    dmax: usize,
    scale: impl Fn(usize) -> TermScale,
    rows: impl Fn(usize) -> (&'a [S], &'a [S]),
) -> std::result::Result<Scale, ()> {
    for o in out.iter_mut() {
        *o = S::zero();
    }
    let Some(mut reference) = first_term(dmax, &scale) else {
        return Ok(Scale::ZERO_ROW);
    };
    let mut d = 1;
    let mut largest = false;
    while d <= dmax {
        let Some(f) = term_factor(scale(d), reference) else {
            d += 1;
            continue;
        };
        if f > FACTOR_LIMIT && !largest {
            // Rare: start again at the largest scale (see `reference_term`).
            reference = largest_term(dmax, &scale).expect("a term is not 0̄");
            largest = true;
            for o in out.iter_mut() {
                *o = S::zero();
            }
            d = 1;
            continue;
        }
        let (a, b) = rows(d);
        if f == 0.0 {
            for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
                *o = o.plus(&x.times(y));
            }
        } else {
            let f = S::from_log_scale(f);
            for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
                *o = o.plus(&x.times(y).times(&f));
            }
        }
        d += 1;
    }
    let s = S::normalize(out);
    if s == f64::NEG_INFINITY {
        return Ok(Scale::ZERO_ROW);
    }
    let result = reference.0.plus(reference.1).plus(s);
    if !s.is_finite() || !result.is_finite() {
        return Err(());
    }
    Ok(result)
}

/// Normalizes a row and returns its new scale `base + removed`
/// ([`Scale::ZERO_ROW`] for a row of 0̄, `Err(())` on overflow).
#[inline(always)]
fn normalize_row<S: Semiring>(row: &mut [S], base: Scale) -> std::result::Result<Scale, ()> {
    let s = S::normalize(row);
    if s == f64::NEG_INFINITY {
        return Ok(Scale::ZERO_ROW);
    }
    let result = base.plus(s);
    if !s.is_finite() || !result.is_finite() {
        return Err(());
    }
    Ok(result)
}

impl<S: Semiring> SemiMarkovWorkspace<S> {
    /// An empty workspace; buffers grow on first use.
    pub fn new() -> Self {
        SemiMarkovWorkspace {
            n: 0,
            k: 0,
            l: 0,
            row_scores: Vec::new(),
            seg: Vec::new(),
            seg_scale: Vec::new(),
            seg_plain: false,
            trans: Vec::new(),
            trans_scale: 0.0,
            end: Vec::new(),
            end_scale: 0.0,
            alpha: Vec::new(),
            alpha_scale: Vec::new(),
            gamma: Vec::new(),
            gamma_scale: Vec::new(),
            beta: Vec::new(),
            beta_scale: Vec::new(),
            delta: Vec::new(),
            delta_scale: Vec::new(),
            total: ChainSum {
                value: S::one(),
                log_scale: 0.0,
            },
            tmp: Vec::new(),
            probs: Vec::new(),
            forward_done: false,
            backward_done: false,
        }
    }

    /// Length of the input last run.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the input last run was empty.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Number of labels of the input last run.
    pub fn num_labels(&self) -> usize {
        self.k
    }

    /// Maximum segment length of the input last run.
    pub fn max_len(&self) -> usize {
        self.l
    }

    /// Index of the lifted scores of segment `(i, d)` (first label).
    #[inline(always)]
    fn seg_row(&self, i: usize, d: usize) -> usize {
        i * self.l + d - 1
    }

    /// Lifts every score of `p` into the semiring, checking each one.
    fn lift<P: SegmentPotentials + ?Sized>(&mut self, p: &P) -> Result<()> {
        let (n, k, l) = (p.len(), p.num_labels(), p.max_len());
        if k == 0 {
            return Err(Error::shape("labels", "at least 1".into(), "0".into()));
        }
        if l == 0 {
            return Err(Error::shape("maximum segment length", "at least 1".into(), "0".into()));
        }
        self.n = n;
        self.k = k;
        self.l = l;
        self.forward_done = false;
        self.backward_done = false;
        let rows = n * l;
        self.row_scores.resize(k * k, 0.0);
        self.seg.resize(rows * k, S::zero());
        self.seg_scale.resize(rows, 0.0);
        self.trans.resize(k * k, S::zero());
        self.end.resize(k, S::zero());
        self.alpha.resize((n + 1) * k, S::zero());
        self.alpha_scale.resize(n + 1, Scale::ZERO_ROW);
        self.gamma.resize(n.max(1) * k, S::zero());
        self.gamma_scale.resize(n.max(1), Scale::ZERO_ROW);
        self.tmp.resize(k * k.max(l), S::zero());
        self.probs.resize(k * k.max(l), 0.0);

        // γ₀ = start, the label of the segment starting at 0.
        let row = &mut self.row_scores[..k];
        for (y, r) in row.iter_mut().enumerate() {
            *r = p.start(y);
        }
        check_row("start", None, row)?;
        let start_scale = S::lift_row(row, &mut self.gamma[..k]);
        self.gamma_scale[0] = Scale::new(start_scale);
        for (y, r) in row.iter_mut().enumerate() {
            *r = p.end(y);
        }
        check_row("end", None, row)?;
        self.end_scale = S::lift_row(row, &mut self.end);
        let kk = k * k;
        for i in 0..k {
            for j in 0..k {
                self.row_scores[i * k + j] = p.transition(i, j);
            }
        }
        check_row("transition", None, &self.row_scores[..kk])?;
        self.trans_scale = S::lift_row(&self.row_scores[..kk], &mut self.trans);

        let inside = |i: usize, d: usize| i + d <= n;
        // A row lifts to 0̄ only if its best score is −inf: when the scores
        // come as one array with no −inf, there is no such row to look for.
        let mut may_have_zero_rows = true;
        match p.segment_rows().filter(|all| all.len() == rows * k) {
            Some(all) => {
                // One pass finds both bad scores (NaN, +inf: `v < +inf` is
                // false exactly for those) and forbidden ones; no early
                // exit, so it vectorizes.
                let (bad, forbidden) = all.iter().fold((false, false), |(bad, forbidden), &v| {
                    #[allow(clippy::neg_cmp_op_on_partial_ord)] // the negation catches NaN
                    let invalid = !(v < f64::INFINITY);
                    (bad | invalid, forbidden | (v == f64::NEG_INFINITY))
                });
                may_have_zero_rows = forbidden;
                if bad {
                    // Find the first bad score inside the input (those past
                    // the end are never read).
                    for i in 0..n {
                        for d in 1..=l.min(n - i) {
                            let at = (i * l + d - 1) * k;
                            if let Err(Error::InvalidScore { index, value, .. }) =
                                check_row("segment", Some(i), &all[at..at + k])
                            {
                                return Err(Error::invalid("segment", Some(i), (d - 1) * k + index, value));
                            }
                        }
                    }
                }
                S::lift_rows(all, k, &mut self.seg, &mut self.seg_scale);
            }
            None => {
                for i in 0..n {
                    for d in 1..=l {
                        let r = i * l + d - 1;
                        let out = &mut self.seg[r * k..(r + 1) * k];
                        if !inside(i, d) {
                            out.iter_mut().for_each(|x| *x = S::zero());
                            continue;
                        }
                        let scores = &mut self.row_scores[..k];
                        p.segment_scores_into(i, d, scores);
                        if let Err(Error::InvalidScore { index, value, .. }) = check_row("segment", Some(i), scores) {
                            return Err(Error::invalid("segment", Some(i), (d - 1) * k + index, value));
                        }
                        self.seg_scale[r] = S::lift_row(scores, out);
                    }
                }
            }
        }
        // A segment row of 0̄ gets scale −inf: the recursions skip it, and it
        // never becomes the reference other rows are scaled to.
        // (Rows past the end, only in the last L positions, likewise.)
        // Folds without early exits, so that they vectorize.
        self.seg_plain = self.seg_scale[..rows].iter().fold(true, |all, &s| all & (s == 0.0));
        if may_have_zero_rows {
            for (row, scale) in self.seg[..rows * k].chunks_exact(k).zip(&mut self.seg_scale[..rows]) {
                if row.iter().all(|x| x.is_zero()) {
                    *scale = f64::NEG_INFINITY;
                }
            }
        }
        for i in n.saturating_sub(l)..n {
            for d in n - i + 1..=l {
                self.seg_scale[i * l + d - 1] = f64::NEG_INFINITY;
            }
        }
        Ok(())
    }

    /// The scale of the forward term for a segment of length `d` ending at `t`.
    #[inline(always)]
    fn alpha_term_scale(&self, t: usize, d: usize) -> TermScale {
        let i = t - d;
        (self.gamma_scale[i], self.seg_scale[self.seg_row(i, d)])
    }

    /// Runs the forward pass over `p` and returns the sum over every
    /// segmentation (⊕ of ⊗ of their scores).
    ///
    /// # Errors
    /// [`Error::InvalidScore`] for a NaN or `+inf` score,
    /// [`Error::NoFeasiblePath`] when every segmentation is forbidden,
    /// [`Error::Overflow`] when finite scores sum past the range of `f64`,
    /// [`Error::ShapeMismatch`] when `k = 0` or `L = 0`.
    pub fn forward<P: SegmentPotentials + ?Sized>(&mut self, p: &P) -> Result<ChainSum<S>> {
        match self.forward_unexplained(p) {
            Err(Error::NoFeasiblePath { position }) => {
                // The boolean semiring adds no scores: if it finds a
                // segmentation, this pass lost them all to overflow.
                match SemiMarkovWorkspace::<Boolean>::new().forward_unexplained(p) {
                    Ok(_) => Err(Error::Overflow { position }),
                    Err(_) => Err(Error::NoFeasiblePath { position }),
                }
            }
            r => r,
        }
    }

    fn forward_unexplained<P: SegmentPotentials + ?Sized>(&mut self, p: &P) -> Result<ChainSum<S>> {
        self.lift(p)?;
        let (n, k) = (self.n, self.k);
        if n == 0 {
            self.total = ChainSum {
                value: S::one(),
                log_scale: 0.0,
            };
            self.forward_done = true;
            return Ok(self.total.clone());
        }
        let overflow = |t: usize| Error::Overflow { position: Some(t) };
        let start_scale = self.gamma_scale[0];
        self.gamma_scale[0] = normalize_row(&mut self.gamma[..k], start_scale).map_err(|_| overflow(0))?;
        if self.gamma_scale[0].is_zero_row() {
            return Err(Error::NoFeasiblePath { position: Some(0) });
        }
        with_width!(k, K => self.forward_rows::<K>())?;
        let last = &self.alpha[n * k..(n + 1) * k];
        let total = S::dot(last, &self.end);
        if total.is_zero() || self.alpha_scale[n].is_zero_row() {
            return Err(Error::NoFeasiblePath { position: None });
        }
        let scale = self.alpha_scale[n].plus(self.end_scale);
        if !scale.is_finite() {
            return Err(overflow(n - 1));
        }
        self.total = ChainSum {
            value: total,
            log_scale: scale.value(),
        };
        self.forward_done = true;
        Ok(self.total.clone())
    }

    /// Forward rows `1..=n` and `γ` rows `1..n`, with the label count fixed
    /// at compile time when `K > 0`.
    fn forward_rows<const K: usize>(&mut self) -> Result<()> {
        let (n, l) = (self.n, self.l);
        let k = fixed_or(K, self.k);
        let kk = k * k;
        // γ rows from `plain_from` on all have scale 0 (or are rows of 0̄).
        // When the segment rows have scale 0 too (lifts that keep the score,
        // as max-plus does) and every row of the window is such a row, the
        // terms need no bringing together: the step is the plain sum. This
        // is the common case of a max-plus pass, which rescales a row only
        // when its scores pass 2²⁰.
        let plain = |sc: Scale| sc.is_zero_row() || sc == Scale::new(0.0);
        let mut plain_from = usize::from(!plain(self.gamma_scale[0]));
        for t in 1..=n {
            let dmax = l.min(t);
            if self.seg_plain && t - dmax >= plain_from {
                let (seg, gamma) = (&self.seg, &self.gamma);
                let out = &mut self.alpha[t * k..][..k];
                for o in out.iter_mut() {
                    *o = S::zero();
                }
                for d in 1..=dmax {
                    let i = t - d;
                    let (a, b) = (&gamma[i * k..][..k], &seg[(i * l + d - 1) * k..][..k]);
                    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
                        *o = o.plus(&x.times(y));
                    }
                }
                self.alpha_scale[t] =
                    normalize_row(out, Scale::new(0.0)).map_err(|_| Error::Overflow { position: Some(t - 1) })?;
            } else {
                let (seg, gamma, seg_scale, gamma_scale) = (&self.seg, &self.gamma, &self.seg_scale, &self.gamma_scale);
                let out = &mut self.alpha[t * k..][..k];
                self.alpha_scale[t] = sum_over_lengths(
                    out,
                    l.min(t),
                    |d| (gamma_scale[t - d], seg_scale[(t - d) * l + d - 1]),
                    |d| {
                        let i = t - d;
                        (&gamma[i * k..][..k], &seg[(i * l + d - 1) * k..][..k])
                    },
                )
                .map_err(|_| Error::Overflow { position: Some(t - 1) })?;
            }
            let scale = self.alpha_scale[t];
            if t < n {
                let g = &mut self.gamma[t * k..][..k];
                if scale.is_zero_row() {
                    g.iter_mut().for_each(|x| *x = S::zero());
                    self.gamma_scale[t] = Scale::ZERO_ROW;
                } else {
                    S::vec_mat(&self.alpha[t * k..][..k], &self.trans[..kk], g);
                    self.gamma_scale[t] = normalize_row(g, scale.plus(self.trans_scale))
                        .map_err(|_| Error::Overflow { position: Some(t) })?;
                }
                if !plain(self.gamma_scale[t]) {
                    plain_from = t + 1;
                }
            }
        }
        Ok(())
    }

    /// Runs the backward pass over the potentials of the last successful
    /// [`forward`](Self::forward) and returns the total computed from the
    /// other end (equal to the forward one up to rounding).
    ///
    /// # Panics
    /// If `forward` has not succeeded on this workspace first (a usage error).
    pub fn backward(&mut self) -> ChainSum<S> {
        assert!(
            self.forward_done,
            "SemiMarkovWorkspace::backward needs a successful forward() first"
        );
        let (n, k) = (self.n, self.k);
        self.beta.resize((n + 1) * k, S::zero());
        self.beta_scale.resize(n + 1, Scale::ZERO_ROW);
        self.delta.resize(n.max(1) * k, S::zero());
        self.delta_scale.resize(n.max(1), Scale::ZERO_ROW);
        self.backward_done = true;
        if n == 0 {
            return ChainSum {
                value: S::one(),
                log_scale: 0.0,
            };
        }
        let last = &mut self.beta[n * k..];
        last.clone_from_slice(&self.end);
        // The forward pass succeeded, so no row overflows here: its terms
        // are products of the same finite pieces.
        self.beta_scale[n] = normalize_row(last, Scale::new(self.end_scale)).unwrap_or(Scale::ZERO_ROW);
        with_width!(k, K => self.backward_rows::<K>());
        let total = S::dot(&self.gamma[..k], &self.delta[..k]);
        let scale = self.gamma_scale[0].plus_scale(self.delta_scale[0]);
        ChainSum {
            value: total,
            log_scale: if self.delta_scale[0].is_zero_row() {
                f64::NEG_INFINITY
            } else {
                scale.value()
            },
        }
    }

    /// `δ` rows `n − 1..=0` and backward rows `n − 1..=1`.
    fn backward_rows<const K: usize>(&mut self) {
        let (n, l) = (self.n, self.l);
        let k = fixed_or(K, self.k);
        let kk = k * k;
        for t in (0..n).rev() {
            let scale = {
                let (seg, beta, beta_scale, seg_scale) = (&self.seg, &self.beta, &self.beta_scale, &self.seg_scale);
                let out = &mut self.delta[t * k..][..k];
                sum_over_lengths(
                    out,
                    l.min(n - t),
                    |d| (beta_scale[t + d], seg_scale[t * l + d - 1]),
                    |d| (&seg[(t * l + d - 1) * k..][..k], &beta[(t + d) * k..][..k]),
                )
            }
            .unwrap_or(Scale::ZERO_ROW);
            self.delta_scale[t] = scale;
            if t > 0 {
                let b = &mut self.beta[t * k..][..k];
                if scale.is_zero_row() {
                    b.iter_mut().for_each(|x| *x = S::zero());
                    self.beta_scale[t] = Scale::ZERO_ROW;
                } else {
                    S::mat_vec(&self.trans[..kk], &self.delta[t * k..][..k], b);
                    self.beta_scale[t] = normalize_row(b, scale.plus(self.trans_scale)).unwrap_or(Scale::ZERO_ROW);
                }
            }
        }
    }

    /// Writes into `tmp[..L]` the forward terms of label `y` at boundary `t`
    /// (segments of each length `d` ending at `t`), all at one scale, 0̄ for
    /// lengths that do not fit. Needs the forward pass.
    fn alpha_terms(&mut self, t: usize, y: usize) {
        let (k, l) = (self.k, self.l);
        let dmax = l.min(t);
        let reference = reference_term(dmax, |d| self.alpha_term_scale(t, d));
        for d in 1..=l {
            let factor = match reference {
                Some(r) if d <= dmax => term_factor(self.alpha_term_scale(t, d), r),
                _ => None,
            };
            self.tmp[d - 1] = match factor {
                None => S::zero(),
                Some(f) => {
                    let i = t - d;
                    let v = self.gamma[i * k + y].times(&self.seg[(i * l + d - 1) * k + y]);
                    if f == 0.0 {
                        v
                    } else {
                        v.times(&S::from_log_scale(f))
                    }
                }
            };
        }
    }

    /// Writes into `tmp[..k]` the weights `αₜ(y′) ⊗ T(y′, y)` of the label
    /// `y′` of the segment ending at `t`, given that the next one has label `y`.
    fn previous_label_terms(&mut self, t: usize, y: usize) {
        let k = self.k;
        for yp in 0..k {
            self.tmp[yp] = self.alpha[t * k + yp].times(&self.trans[yp * k + y]);
        }
    }

    /// Writes into `tmp[..k]` the weights `αₙ(y) ⊗ end(y)` of the last label.
    fn last_label_terms(&mut self) {
        let (n, k) = (self.n, self.k);
        for y in 0..k {
            self.tmp[y] = self.alpha[n * k + y].times(&self.end[y]);
        }
    }

    /// Walks back from the end choosing, at each boundary, the last label
    /// and then the segment length with `pick` over the candidates' weights
    /// (in `tmp`): the best with max-plus, a draw with probabilities.
    fn walk_back(&mut self, mut pick: impl FnMut(&[S]) -> usize) -> Vec<Segment> {
        let (n, k, l) = (self.n, self.k, self.l);
        let mut segments = Vec::new();
        if n == 0 {
            return segments;
        }
        self.last_label_terms();
        let mut y = pick(&self.tmp[..k]);
        let mut t = n;
        loop {
            self.alpha_terms(t, y);
            let d = pick(&self.tmp[..l]) + 1;
            let i = t - d;
            segments.push(Segment {
                start: i,
                len: d,
                label: y,
            });
            if i == 0 {
                break;
            }
            self.previous_label_terms(i, y);
            y = pick(&self.tmp[..k]);
            t = i;
        }
        segments.reverse();
        segments
    }
}

impl<S: ProbabilitySemiring> SemiMarkovWorkspace<S> {
    /// log Z as a two-double scale, after the forward pass.
    fn log_z(&self) -> Scale {
        Scale::new(self.total.log_scale).plus(self.total.value.to_log())
    }

    /// Runs forward and backward over `p` and writes the segment marginals
    /// `P(segment (i, d, y) | x)` into `out` (`n·L·k`, the layout of
    /// [`SegmentPotentials::segment_rows`], 0 past the end). Returns log Z.
    ///
    /// # Errors
    /// As [`forward`](Self::forward); [`Error::ShapeMismatch`] when `out`
    /// is not `n·L·k` long.
    pub fn segment_marginals_into<P: SegmentPotentials + ?Sized>(&mut self, p: &P, out: &mut [f64]) -> Result<f64> {
        let need = p.len() * p.max_len() * p.num_labels();
        if out.len() != need {
            return Err(Error::shape(
                "segment marginals buffer",
                need.to_string(),
                out.len().to_string(),
            ));
        }
        self.forward(p)?;
        self.backward();
        let log_z = self.log_z();
        let (n, k, l) = (self.n, self.k, self.l);
        for i in 0..n {
            for d in 1..=l {
                let r = i * l + d - 1;
                let row = &mut out[r * k..(r + 1) * k];
                let (g, s, b) = (self.gamma_scale[i], self.seg_scale[r], Scale::ZERO_ROW);
                let b = if i + d <= n { self.beta_scale[i + d] } else { b };
                if g.is_zero_row() || s == f64::NEG_INFINITY || b.is_zero_row() {
                    row.iter_mut().for_each(|o| *o = 0.0);
                    continue;
                }
                let shift = g.plus(s).plus_scale(b).minus(log_z);
                for (y, o) in row.iter_mut().enumerate() {
                    let w = self.gamma[i * k + y]
                        .times(&self.seg[r * k + y])
                        .times(&self.beta[(i + d) * k + y]);
                    *o = if w.is_zero() { 0.0 } else { (w.to_log() + shift).exp() };
                }
            }
        }
        Ok(log_z.value())
    }

    /// After [`segment_marginals_into`](Self::segment_marginals_into) (or
    /// forward and backward): the probability that the first segment has
    /// each label (into `first`, `k`) and that the last one has (into
    /// `last`, `k`).
    ///
    /// # Panics
    /// If the passes have not run, or a buffer is not `k` long.
    pub fn boundary_label_marginals(&self, first: &mut [f64], last: &mut [f64]) {
        assert!(self.backward_done, "marginals need forward() and backward() first");
        let (n, k) = (self.n, self.k);
        assert!(first.len() == k && last.len() == k, "label marginals are k long");
        if n == 0 {
            first.iter_mut().chain(last.iter_mut()).for_each(|x| *x = 0.0);
            return;
        }
        let log_z = self.log_z();
        let fill = |out: &mut [f64], a: &[S], b: &[S], sa: Scale, sb: Scale| {
            if sa.is_zero_row() || sb.is_zero_row() {
                out.iter_mut().for_each(|x| *x = 0.0);
                return;
            }
            let shift = sa.plus_scale(sb).minus(log_z);
            for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
                let w = x.times(y);
                *o = if w.is_zero() { 0.0 } else { (w.to_log() + shift).exp() };
            }
        };
        fill(
            first,
            &self.gamma[..k],
            &self.delta[..k],
            self.gamma_scale[0],
            self.delta_scale[0],
        );
        fill(
            last,
            &self.alpha[n * k..(n + 1) * k],
            &self.beta[n * k..(n + 1) * k],
            self.alpha_scale[n],
            self.beta_scale[n],
        );
    }

    /// After forward and backward: calls `f(t, ξₜ)` for each boundary
    /// `t = 1..n` with the `k × k` probabilities `ξₜ(y, y′)` that a segment
    /// labelled `y` ends at `t` and one labelled `y′` starts there. `ξₜ` is
    /// scratch: `f` may change it (to subtract a target, say).
    ///
    /// # Panics
    /// If the passes have not run (a usage error).
    pub fn for_each_transition_marginal(&mut self, mut f: impl FnMut(usize, &mut [f64])) {
        assert!(self.backward_done, "marginals need forward() and backward() first");
        let (n, k) = (self.n, self.k);
        let kk = k * k;
        let log_z = self.log_z();
        let mut xi = vec![0.0; kk];
        for t in 1..n {
            let (a, dl) = (self.alpha_scale[t], self.delta_scale[t]);
            if a.is_zero_row() || dl.is_zero_row() {
                xi.iter_mut().for_each(|x| *x = 0.0);
            } else {
                let shift = a.plus(self.trans_scale).plus_scale(dl).minus(log_z);
                for y in 0..k {
                    for yn in 0..k {
                        let w = self.alpha[t * k + y]
                            .times(&self.trans[y * k + yn])
                            .times(&self.delta[t * k + yn]);
                        xi[y * k + yn] = if w.is_zero() { 0.0 } else { (w.to_log() + shift).exp() };
                    }
                }
            }
            f(t, &mut xi);
        }
    }

    /// Draws `count` segmentations from `P(segmentation | x)` by forward
    /// filtering, backward sampling (one forward pass, then `O(n·(L + k))`
    /// per sample).
    ///
    /// # Errors
    /// As [`forward`](Self::forward).
    pub fn sample<P: SegmentPotentials + ?Sized, R: rand::Rng + ?Sized>(
        &mut self,
        p: &P,
        count: usize,
        rng: &mut R,
    ) -> Result<Vec<Vec<Segment>>> {
        self.forward(p)?;
        let mut probs = std::mem::take(&mut self.probs);
        let out = (0..count)
            .map(|_| {
                self.walk_back(|row| {
                    probs.resize(row.len(), 0.0);
                    draw::<S, R>(row, &mut probs[..row.len()], rng)
                })
            })
            .collect();
        self.probs = probs;
        Ok(out)
    }
}

impl SemiMarkovWorkspace<MaxPlus> {
    /// The best segmentation and its score. Ties go to the smaller label
    /// and, at equal label, the shorter last segment.
    ///
    /// # Errors
    /// As [`forward`](Self::forward).
    pub fn viterbi<P: SegmentPotentials + ?Sized>(&mut self, p: &P) -> Result<Segmentation> {
        let total = self.forward(p)?;
        let segments = self.walk_back(|row| argmax(row.iter().map(|x| x.0)));
        Ok(Segmentation {
            segments,
            score: total.score(),
        })
    }

    /// The `count` best segmentations, best first, distinct (fewer when
    /// fewer are allowed). List Viterbi: each (boundary, label) keeps the
    /// `count` best prefixes ending there, each a score and a pointer into
    /// the list it extends, so the work is `O(n·L·k²·count·log)` and the
    /// memory `n·k·count` entries.
    ///
    /// # Errors
    /// As [`forward`](Self::forward); [`Error::TooLarge`] when `n·k·count`
    /// exceeds 2²⁶ entries.
    pub fn kbest<P: SegmentPotentials + ?Sized>(&mut self, p: &P, count: usize) -> Result<Vec<Segmentation>> {
        const LIMIT: usize = 1 << 26;
        self.forward(p)?;
        let (n, k, l) = (self.n, self.k, self.l);
        if count == 0 {
            return Ok(Vec::new());
        }
        if n == 0 {
            return Ok(vec![Segmentation {
                segments: Vec::new(),
                score: 0.0,
            }]);
        }
        let needed = (n + 1).saturating_mul(k).saturating_mul(count);
        if needed > LIMIT {
            return Err(Error::TooLarge {
                what: "k-best segmentations",
                needed,
                limit: LIMIT,
            });
        }
        /// A prefix ending at a boundary: its score, the length of its last
        /// segment, and the label and rank of the prefix it extends.
        #[derive(Clone, Copy)]
        struct Entry {
            score: f64,
            len: u32,
            from: u32,
            rank: u32,
        }
        let best_first = |a: &Entry, b: &Entry| {
            b.score
                .total_cmp(&a.score)
                .then(a.len.cmp(&b.len))
                .then(a.from.cmp(&b.from))
                .then(a.rank.cmp(&b.rank))
        };
        // Scores are raw here (max-plus lifting is the identity); the start
        // scores are γ₀ before normalization, so read them from `p`.
        let start: Vec<f64> = (0..k).map(|y| p.start(y)).collect();
        let mut lists = vec![
            Entry {
                score: f64::NEG_INFINITY,
                len: 0,
                from: 0,
                rank: 0
            };
            needed
        ];
        let mut lens = vec![0usize; (n + 1) * k];
        let mut candidates: Vec<Entry> = Vec::with_capacity(l * k * count);
        for t in 1..=n {
            for (y, &start_y) in start.iter().enumerate() {
                candidates.clear();
                for d in 1..=l.min(t) {
                    let i = t - d;
                    let seg = self.seg[(i * l + d - 1) * k + y].0;
                    if seg == f64::NEG_INFINITY || self.seg_scale[i * l + d - 1] == f64::NEG_INFINITY {
                        continue;
                    }
                    if i == 0 {
                        let score = start_y + seg;
                        if score > f64::NEG_INFINITY {
                            candidates.push(Entry {
                                score,
                                len: d as u32,
                                from: 0,
                                rank: 0,
                            });
                        }
                        continue;
                    }
                    for yp in 0..k {
                        let step = self.trans[yp * k + y].0 + seg;
                        if step == f64::NEG_INFINITY {
                            continue;
                        }
                        let prev = i * k + yp;
                        for (r, e) in lists[prev * count..prev * count + lens[prev]].iter().enumerate() {
                            let score = e.score + step;
                            if score > f64::NEG_INFINITY {
                                candidates.push(Entry {
                                    score,
                                    len: d as u32,
                                    from: yp as u32,
                                    rank: r as u32,
                                });
                            }
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
        candidates.clear();
        for y in 0..k {
            let last = n * k + y;
            for (r, e) in lists[last * count..last * count + lens[last]].iter().enumerate() {
                let score = e.score + self.end[y].0 + self.end_scale;
                if score > f64::NEG_INFINITY {
                    candidates.push(Entry {
                        score,
                        len: 0,
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
                let mut segments = Vec::new();
                let (mut t, mut y, mut r) = (n, c.from as usize, c.rank as usize);
                while t > 0 {
                    let e = lists[(t * k + y) * count + r];
                    let d = e.len as usize;
                    segments.push(Segment {
                        start: t - d,
                        len: d,
                        label: y,
                    });
                    t -= d;
                    (y, r) = (e.from as usize, e.rank as usize);
                }
                segments.reverse();
                Segmentation {
                    segments,
                    score: c.score,
                }
            })
            .collect())
    }
}

/// Checks that `segments` is a segmentation of `p`'s input: in order,
/// without gaps or overlaps, covering `0..n`, each of length `1..=L` with a
/// label `< k`.
///
/// # Errors
/// [`Error::InvalidSegmentation`] naming the first offending segment.
pub fn check_segmentation<P: SegmentPotentials + ?Sized>(p: &P, segments: &[Segment]) -> Result<()> {
    let (n, k, l) = (p.len(), p.num_labels(), p.max_len());
    let mut at = 0;
    for (j, s) in segments.iter().enumerate() {
        let reason = if s.start != at {
            Some(format!("segment {j} starts at {}, expected {at}", s.start))
        } else if s.len == 0 || s.len > l {
            Some(format!("segment {j} has length {}, expected 1 to {l}", s.len))
        } else if s.start + s.len > n {
            Some(format!("segment {j} ends at {}, past the end ({n})", s.start + s.len))
        } else if s.label >= k {
            Some(format!("segment {j} has label {}, expected below {k}", s.label))
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(Error::InvalidSegmentation { reason });
        }
        at += s.len;
    }
    if at != n {
        return Err(Error::InvalidSegmentation {
            reason: format!("the segments cover 0..{at}, expected 0..{n}"),
        });
    }
    Ok(())
}

/// The score of one segmentation under `p` (its start, segment, transition
/// and end scores; `-inf` if any is forbidden).
///
/// # Errors
/// As [`check_segmentation`].
pub fn segmentation_score<P: SegmentPotentials + ?Sized>(p: &P, segments: &[Segment]) -> Result<f64> {
    check_segmentation(p, segments)?;
    let (Some(first), Some(last)) = (segments.first(), segments.last()) else {
        return Ok(0.0);
    };
    let mut score = p.start(first.label) + p.end(last.label);
    for (j, s) in segments.iter().enumerate() {
        score += p.segment(s.start, s.len, s.label);
        if j > 0 {
            score += p.transition(segments[j - 1].label, s.label);
        }
    }
    Ok(score)
}

/// log Z, the log of the total weight of every segmentation (log semiring).
///
/// # Errors
/// As [`SemiMarkovWorkspace::forward`].
pub fn log_partition<P: SegmentPotentials + ?Sized>(p: &P) -> Result<f64> {
    let sum = SemiMarkovWorkspace::<Log>::new().forward(p)?;
    Ok(sum.value.0 + sum.log_scale)
}

/// Segment marginals (`n·L·k`, the layout of
/// [`SegmentPotentials::segment_rows`]), log semiring.
///
/// # Errors
/// As [`SemiMarkovWorkspace::forward`].
pub fn segment_marginals<P: SegmentPotentials + ?Sized>(p: &P) -> Result<Vec<f64>> {
    let mut out = vec![0.0; p.len() * p.max_len() * p.num_labels()];
    SemiMarkovWorkspace::<Log>::new().segment_marginals_into(p, &mut out)?;
    Ok(out)
}

/// The best segmentation.
///
/// # Errors
/// As [`SemiMarkovWorkspace::forward`].
pub fn viterbi<P: SegmentPotentials + ?Sized>(p: &P) -> Result<Segmentation> {
    SemiMarkovWorkspace::<MaxPlus>::new().viterbi(p)
}

/// The `count` best segmentations, best first.
///
/// # Errors
/// As [`SemiMarkovWorkspace::kbest`].
pub fn kbest<P: SegmentPotentials + ?Sized>(p: &P, count: usize) -> Result<Vec<Segmentation>> {
    SemiMarkovWorkspace::<MaxPlus>::new().kbest(p, count)
}

/// The entropy of the distribution over segmentations, in nats.
///
/// # Errors
/// As [`SemiMarkovWorkspace::forward`].
pub fn entropy<P: SegmentPotentials + ?Sized>(p: &P) -> Result<f64> {
    Ok(SemiMarkovWorkspace::<Entropy>::new().forward(p)?.value.entropy)
}

/// The natural log of the number of allowed segmentations.
///
/// # Errors
/// As [`SemiMarkovWorkspace::forward`].
pub fn count_segmentations<P: SegmentPotentials + ?Sized>(p: &P) -> Result<f64> {
    let sum = SemiMarkovWorkspace::<Counting>::new().forward(p)?;
    Ok(sum.log_value())
}

/// Whether any segmentation is allowed.
///
/// # Errors
/// [`Error::InvalidScore`] or [`Error::ShapeMismatch`] for bad potentials.
pub fn has_segmentation<P: SegmentPotentials + ?Sized>(p: &P) -> Result<bool> {
    match SemiMarkovWorkspace::<Boolean>::new().forward(p) {
        Ok(_) => Ok(true),
        Err(Error::NoFeasiblePath { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Draws `count` segmentations from `P(segmentation | x)` (log semiring).
///
/// # Errors
/// As [`SemiMarkovWorkspace::forward`].
pub fn sample<P: SegmentPotentials + ?Sized, R: rand::Rng + ?Sized>(
    p: &P,
    count: usize,
    rng: &mut R,
) -> Result<Vec<Vec<Segment>>> {
    SemiMarkovWorkspace::<Log>::new().sample(p, count, rng)
}
