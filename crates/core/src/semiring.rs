//! Semirings: what "sum over all paths" means. The crate root re-exports
//! everything public here; the explanation is on [`Semiring`].

#[cfg(target_arch = "x86_64")]
use crate::fused;
use crate::simd::{vector_width, VectorWidth};
use std::fmt::Debug;

/// A semiring over chain scores: what "sum over all paths" means.
///
/// Laws (checked by `testing::check_semiring`, feature `testing`, with float
/// tolerances): ⊕ and ⊗ are associative, ⊕ is commutative, ⊗ distributes over
/// ⊕, 0̄ is the ⊕ identity and annihilates under ⊗, 1̄ is the ⊗ identity. ⊗
/// need not be commutative in general, but every semiring here has a
/// commutative ⊗.
///
/// The chain dynamic program in [`crate::chain`] computes `⊕ over paths of ⊗ over
/// the path's scores` and never looks inside the values. Which semiring it runs
/// in decides what comes out:
///
/// | semiring | value | ⊕ | ⊗ | 0̄ | 1̄ | chain sum |
/// | --- | --- | --- | --- | --- | --- | --- |
/// | [`Log`] | log-weight | log-sum-exp | + | −∞ | 0 | log Z |
/// | [`Prob`] | weight (scaled) | + | × | 0 | 1 | Z, per-step scaled |
/// | [`MaxPlus`] | score | max | + | −∞ | 0 | best path score |
/// | [`KBest`] | K largest scores | top-K merge | top-K of sums | all −∞ | (0, −∞…) | K best path scores |
/// | [`Entropy`] | (log-weight, entropy) | mixture | (+, +) | (−∞, 0) | (0, 0) | (log Z, H) |
/// | [`Counting`] | count | + | × | 0 | 1 | number of allowed paths |
/// | [`Boolean`] | bool | or | and | false | true | is any path allowed |
///
/// Beyond the four operations the trait has *row* operations with generic default
/// bodies ([`Semiring::vec_mat`], [`Semiring::mat_vec`], [`Semiring::lift_row`],
/// [`Semiring::normalize`]). A semiring overrides them when it can do a whole row
/// better than pair by pair: [`Log`] shifts by the maximum once per output instead
/// of a `log` per pair, [`Prob`] runs plain multiply-add loops the compiler can
/// vectorize. The algorithm calls only these; that is how one generic forward pass
/// serves every semiring without costing anything against a hand-written loop.
///
/// **Scaling.** Long chains overflow any fixed representation of path weights
/// (e^(10⁴·10⁵)). The algorithm therefore asks the semiring to *normalize* each
/// row and keeps the removed factor as a log-scale beside it: the true row is
/// `row ⊗ from_score(log_scale)`. For [`Prob`] this is CRFsuite's scaled
/// forward-backward; for the log-valued semirings it subtracts the row maximum so
/// values stay near zero and keep their precision.
pub trait Semiring: Clone + Debug + Send + Sync + 'static {
    /// A short name for messages and test output.
    const NAME: &'static str;
    /// Whether `a ⊕ a = a` (max-plus, boolean): such semirings pick a path.
    const IDEMPOTENT: bool;

    /// The ⊕ identity ("no path").
    fn zero() -> Self;
    /// The ⊗ identity ("the empty path").
    fn one() -> Self;
    /// `self ⊕ other`.
    fn plus(&self, other: &Self) -> Self;
    /// `self ⊗ other`.
    fn times(&self, other: &Self) -> Self;
    /// Lifts a log-space score into the semiring; `-inf` must give [`Semiring::zero`].
    fn from_score(score: f64) -> Self;
    /// Whether this is 0̄.
    fn is_zero(&self) -> bool;
    /// Equality up to a tolerance (relative for large magnitudes), for tests.
    fn approx_eq(&self, other: &Self, tol: f64) -> bool;

    /// `⊕_i a[i] ⊗ b[i]`.
    #[inline(always)]
    fn dot(a: &[Self], b: &[Self]) -> Self {
        let mut acc = Self::zero();
        for (x, y) in a.iter().zip(b) {
            acc = acc.plus(&x.times(y));
        }
        acc
    }

    /// Row vector times a `k × k` row-major matrix: `out[j] = ⊕_i row[i] ⊗ mat[i·k + j]`.
    #[inline(always)]
    fn vec_mat(row: &[Self], mat: &[Self], out: &mut [Self]) {
        let k = row.len();
        for (j, o) in out.iter_mut().enumerate() {
            let mut acc = Self::zero();
            for i in 0..k {
                acc = acc.plus(&row[i].times(&mat[i * k + j]));
            }
            *o = acc;
        }
    }

    /// Whether [`Semiring::vec_mat_traced`] records which term each ⊕ kept: true
    /// for semirings whose ⊕ picks one of its operands (max-plus), so that a
    /// forward pass can leave back-pointers and the best path needs no second
    /// search.
    const TRACES: bool = false;
    /// [`Semiring::vec_mat`] that also writes into `from[j]` the index `i` of
    /// the term `row[i] ⊗ mat[i·k + j]` that `out[j]` equals (the first one on
    /// ties; 0 when every term is 0̄). Called only when [`Semiring::TRACES`];
    /// the default leaves `from` alone.
    #[inline(always)]
    fn vec_mat_traced(row: &[Self], mat: &[Self], out: &mut [Self], from: &mut [u32]) {
        let _ = from;
        Self::vec_mat(row, mat, out);
    }
    /// A `k × k` row-major matrix times a column vector: `out[i] = ⊕_j mat[i·k + j] ⊗ v[j]`.
    #[inline(always)]
    fn mat_vec(mat: &[Self], v: &[Self], out: &mut [Self]) {
        let k = v.len();
        for (i, o) in out.iter_mut().enumerate() {
            *o = Self::dot(&mat[i * k..(i + 1) * k], v);
        }
    }

    /// Lifts a row of log-space scores, possibly factoring out a common scale:
    /// afterwards `from_score(scores[j]) = out[j] ⊗ from_score(returned)`.
    #[inline]
    fn lift_row(scores: &[f64], out: &mut [Self]) -> f64 {
        for (o, &s) in out.iter_mut().zip(scores) {
            *o = Self::from_score(s);
        }
        0.0
    }

    /// Lifts a row-major matrix of scores with rows of length `k`, one scale per
    /// row: `scales[t] = lift_row(row t, out row t)`. The default does exactly
    /// that; semirings whose lift needs no per-row scale override it with one
    /// pass over the whole matrix (emissions are lifted this way).
    #[inline]
    fn lift_rows(scores: &[f64], k: usize, out: &mut [Self], scales: &mut [f64]) {
        for ((row, o), sc) in scores.chunks_exact(k).zip(out.chunks_exact_mut(k)).zip(scales) {
            *sc = Self::lift_row(row, o);
        }
    }

    /// The value standing for the weight `e^log_factor`, by which a row with
    /// log-scale `a` is multiplied to be expressed at log-scale `b`
    /// (`log_factor = a − b`). Structures whose rows meet other rows at a
    /// different scale (a semi-Markov segment joins the row where it starts to
    /// the row where it ends) bring them together with it. The default is
    /// [`Semiring::from_score`], right for every semiring whose lift keeps the
    /// weight; [`Counting`], whose lift forgets it, overrides it.
    #[inline(always)]
    fn from_log_scale(log_factor: f64) -> Self {
        Self::from_score(log_factor)
    }

    /// Rescales a row in place so its values stay representable and returns the
    /// log-scale removed (old row = new row ⊗ `from_score(returned)`). Returns
    /// `-inf`, leaving the row as it was, when every entry is 0̄. The default
    /// does not rescale and returns 0.
    #[inline(always)]
    fn normalize(row: &mut [Self]) -> f64 {
        let _ = row;
        0.0
    }
}

/// Semirings whose values are (scaled) probabilities, so that a row of them can
/// be turned into a probability distribution: these give marginals and sampling.
pub trait ProbabilitySemiring: Semiring {
    /// The natural log of the weight this value stands for.
    fn to_log(&self) -> f64;

    /// Whether values hold their weight linearly (`x.0` is the weight itself,
    /// not its log), so that a sum of products of rows can be accumulated
    /// with plain multiply-adds and no conversion per entry. The chain's summed
    /// edge marginals take that shortcut
    /// ([`ChainWorkspace::add_edge_marginals`](crate::chain::ChainWorkspace::add_edge_marginals)).
    const LINEAR: bool = false;

    /// The weight as a plain number; meaningful when [`LINEAR`](Self::LINEAR),
    /// where it costs nothing.
    #[inline]
    fn linear(&self) -> f64 {
        self.to_log().exp()
    }

    /// Normalizes `row` into probabilities `out` (summing to 1). Returns `false`
    /// when every entry is 0̄.
    #[inline]
    fn row_probabilities(row: &[Self], out: &mut [f64]) -> bool {
        let mut m = f64::NEG_INFINITY;
        for (o, x) in out.iter_mut().zip(row) {
            *o = x.to_log();
            m = m.max(*o);
        }
        if m == f64::NEG_INFINITY {
            return false;
        }
        let mut s = 0.0;
        for o in out.iter_mut() {
            *o = (*o - m).exp();
            s += *o;
        }
        let inv = 1.0 / s;
        for o in out.iter_mut() {
            *o *= inv;
        }
        true
    }
}

/// Semirings whose values are a single log-space score (log-weight or max score):
/// their chain sum converts to an `f64` directly.
pub trait ScalarScore: Semiring {
    /// The score this value stands for, in log space.
    fn score(&self) -> f64;
}

#[inline]
fn approx(a: f64, b: f64, tol: f64) -> bool {
    if a == b {
        return true;
    }
    if !a.is_finite() || !b.is_finite() {
        return a.is_nan() && b.is_nan();
    }
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

/// `log(exp(a) + exp(b))`, exact for infinite arguments.
#[inline]
pub fn log_add_exp(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}

/// `log Σ exp(x)` over a slice, shifting by the maximum once; `-inf` for an empty
/// slice or all `-inf`.
#[inline]
pub fn log_sum_exp(xs: &[f64]) -> f64 {
    let m = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY || m.is_nan() {
        return m;
    }
    let s: f64 = xs.iter().map(|&x| (x - m).exp()).sum();
    m + s.ln()
}

/// `out[j] = step(… step(init, row[0], mat[0·k + j]) …, row[k−1], mat[(k−1)·k + j])`
/// for a `k × k` row-major `mat`: the vector–matrix product of a semiring whose
/// values are one `f64`, given its ⊗-then-⊕ as `step`.
///
/// Columns are done in blocks whose partial results stay in registers while
/// the rows stream past: the inner loop is a fixed-width, vectorizable
/// update, and no partial result goes through memory between rows. Each
/// column still folds its rows in order `0..k`, so results are exactly those
/// of the pairwise definition.
///
/// Up to 8 labels, blocks of 8, then 4, then single columns. Beyond, each
/// column's fold is a chain of dependent additions, one row at a time, so a
/// block must hold several vectors' worth of columns for the chains to
/// overlap: blocks of 32 columns, and the last `r ≤ 48` columns in one block
/// rounded up to a multiple of 8 (see [`fold_overhang`]), instead of a
/// narrow block and single columns that each wait on their own chain.
#[inline(always)]
fn fold_columns<T: Copy>(
    row: &[T],
    mat: &[T],
    out: &mut [T],
    get: impl Fn(T) -> f64 + Copy,
    put: impl Fn(f64) -> T + Copy,
    init: f64,
    step: impl Fn(f64, f64, f64) -> f64 + Copy,
) {
    let k = row.len();
    let (mat, out) = (&mat[..k * k], &mut out[..k]);
    let mut j = 0;
    if k > 8 {
        while k - j > 48 {
            fold_block::<T, 32>(row, mat, &mut out[j..j + 32], j, get, put, init, step);
            j += 32;
        }
        let rest = &mut out[j..];
        match rest.len().div_ceil(8) {
            1 => fold_overhang::<T, 8>(row, mat, rest, j, get, put, init, step),
            2 => fold_overhang::<T, 16>(row, mat, rest, j, get, put, init, step),
            3 => fold_overhang::<T, 24>(row, mat, rest, j, get, put, init, step),
            4 => fold_overhang::<T, 32>(row, mat, rest, j, get, put, init, step),
            5 => fold_overhang::<T, 40>(row, mat, rest, j, get, put, init, step),
            _ => fold_overhang::<T, 48>(row, mat, rest, j, get, put, init, step),
        }
        return;
    }
    while j + 8 <= k {
        fold_block::<T, 8>(row, mat, &mut out[j..j + 8], j, get, put, init, step);
        j += 8;
    }
    if j + 4 <= k {
        fold_block::<T, 4>(row, mat, &mut out[j..j + 4], j, get, put, init, step);
        j += 4;
    }
    for (jj, o) in out.iter_mut().enumerate().skip(j) {
        let mut acc = init;
        for (i, &r) in row.iter().enumerate() {
            acc = step(acc, get(r), get(mat[i * k + jj]));
        }
        *o = put(acc);
    }
}

/// The last `r = out.len()` columns from `j0` (`W − 8 < r ≤ W`, `k > 8`) as
/// one block of `W`: each row's `W` values from column `j0` run on into the
/// next row, and the lanes past the row's end fold those values, which
/// nobody reads. Every row but the last has `W` values from `j0` inside the
/// matrix (`W − r < 8 < k`); the last row's `r` are copied into a block
/// padded with any value. The first `r` lanes do exactly the steps of
/// single columns.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn fold_overhang<T: Copy, const W: usize>(
    row: &[T],
    mat: &[T],
    out: &mut [T],
    j0: usize,
    get: impl Fn(T) -> f64,
    put: impl Fn(f64) -> T,
    init: f64,
    step: impl Fn(f64, f64, f64) -> f64,
) {
    let k = row.len();
    let r = out.len();
    debug_assert!(k > 8 && r <= W && W - r < 8 && j0 + r == k);
    let mut acc = [init; W];
    let (&last, rows) = row.split_last().expect("k > 8 rows");
    for (i, &x) in rows.iter().enumerate() {
        let a = get(x);
        let m: &[T; W] = mat[i * k + j0..i * k + j0 + W]
            .try_into()
            .expect("the block lies inside the matrix");
        for (c, &y) in acc.iter_mut().zip(m) {
            *c = step(*c, a, get(y));
        }
    }
    let mut tail = [mat[0]; W];
    tail[..r].copy_from_slice(&mat[(k - 1) * k + j0..]);
    let a = get(last);
    for (c, &y) in acc.iter_mut().zip(&tail) {
        *c = step(*c, a, get(y));
    }
    for (o, &c) in out.iter_mut().zip(&acc) {
        *o = put(c);
    }
}

/// One block of `W` columns starting at `j0` for [`fold_columns`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn fold_block<T: Copy, const W: usize>(
    row: &[T],
    mat: &[T],
    out: &mut [T],
    j0: usize,
    get: impl Fn(T) -> f64,
    put: impl Fn(f64) -> T,
    init: f64,
    step: impl Fn(f64, f64, f64) -> f64,
) {
    let k = row.len();
    let mut acc = [init; W];
    for (i, &r) in row.iter().enumerate() {
        let a = get(r);
        let m: &[T; W] = mat[i * k + j0..i * k + j0 + W]
            .try_into()
            .expect("the block lies inside the row");
        for (c, &x) in acc.iter_mut().zip(m) {
            *c = step(*c, a, get(x));
        }
    }
    for (o, c) in out.iter_mut().zip(acc) {
        *o = put(c);
    }
}

/// `W` columns from `j0` of [`MaxPlus::vec_mat_traced`].
#[inline(always)]
fn max_plus_traced_block<const W: usize>(
    row: &[MaxPlus],
    mat: &[MaxPlus],
    out: &mut [MaxPlus],
    from: &mut [u32],
    j0: usize,
) {
    let k = row.len();
    let mut best = [f64::NEG_INFINITY; W];
    let mut arg = [0u32; W];
    for (i, r) in row.iter().enumerate() {
        let m: &[MaxPlus; W] = mat[i * k + j0..i * k + j0 + W]
            .try_into()
            .expect("the block lies inside the row");
        for ((b, a), x) in best.iter_mut().zip(&mut arg).zip(m) {
            let v = r.0 + x.0;
            if v > *b {
                *b = v;
                *a = i as u32;
            }
        }
    }
    for ((o, f), (b, a)) in out.iter_mut().zip(from).zip(best.into_iter().zip(arg)) {
        *o = MaxPlus(b);
        *f = a;
    }
}

// ---------------------------------------------------------------------------

/// The log semiring: ⊕ = log-sum-exp, ⊗ = +, 0̄ = −∞, 1̄ = 0.
///
/// The chain sum is `log Z`, the log-partition function; with the backward pass,
/// node and edge marginals. Exact for any finite scores, including transition
/// scores of magnitude 10⁴ and more, at the price of one `exp` per label pair.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Log(pub f64);

impl Semiring for Log {
    const NAME: &'static str = "log";
    const IDEMPOTENT: bool = false;
    /// The lift is the identity: one copy of the whole matrix, all scales 0.
    #[inline]
    fn lift_rows(scores: &[f64], _k: usize, out: &mut [Self], scales: &mut [f64]) {
        for (o, &x) in out.iter_mut().zip(scores) {
            *o = Log(x);
        }
        scales.iter_mut().for_each(|s| *s = 0.0);
    }
    #[inline]
    fn zero() -> Self {
        Log(f64::NEG_INFINITY)
    }
    #[inline]
    fn one() -> Self {
        Log(0.0)
    }
    #[inline]
    fn plus(&self, o: &Self) -> Self {
        Log(log_add_exp(self.0, o.0))
    }
    #[inline]
    fn times(&self, o: &Self) -> Self {
        Log(self.0 + o.0)
    }
    #[inline]
    fn from_score(s: f64) -> Self {
        Log(s)
    }
    #[inline]
    fn is_zero(&self) -> bool {
        self.0 == f64::NEG_INFINITY
    }
    fn approx_eq(&self, o: &Self, tol: f64) -> bool {
        approx(self.0, o.0, tol)
    }
    #[inline(always)]
    fn dot(a: &[Self], b: &[Self]) -> Self {
        let mut m = f64::NEG_INFINITY;
        for (x, y) in a.iter().zip(b) {
            m = m.max(x.0 + y.0);
        }
        if m == f64::NEG_INFINITY {
            return Log(m);
        }
        let mut s = 0.0;
        for (x, y) in a.iter().zip(b) {
            s += (x.0 + y.0 - m).exp();
        }
        Log(m + s.ln())
    }
    #[inline(always)]
    fn vec_mat(row: &[Self], mat: &[Self], out: &mut [Self]) {
        let k = row.len();
        for (j, o) in out.iter_mut().enumerate() {
            let mut m = f64::NEG_INFINITY;
            for i in 0..k {
                m = m.max(row[i].0 + mat[i * k + j].0);
            }
            if m == f64::NEG_INFINITY {
                *o = Log(m);
                continue;
            }
            let mut s = 0.0;
            for i in 0..k {
                s += (row[i].0 + mat[i * k + j].0 - m).exp();
            }
            *o = Log(m + s.ln());
        }
    }
    #[inline(always)]
    fn normalize(row: &mut [Self]) -> f64 {
        let m = row.iter().fold(f64::NEG_INFINITY, |m, x| m.max(x.0));
        if m == f64::NEG_INFINITY {
            return m;
        }
        for x in row.iter_mut() {
            x.0 -= m;
        }
        m
    }
}

impl ProbabilitySemiring for Log {
    #[inline]
    fn to_log(&self) -> f64 {
        self.0
    }
}

impl ScalarScore for Log {
    #[inline]
    fn score(&self) -> f64 {
        self.0
    }
}

/// The probability semiring in exp-space with per-step scaling: ⊕ = +, ⊗ = ×,
/// 0̄ = 0, 1̄ = 1.
///
/// The chain sum is the partition function `Z`, carried as a value near 1 and a
/// separate log-scale, so `log Z` is exact to rounding on chains of any length:
/// this is CRFsuite's scaled forward-backward, except that each row is divided
/// by a power of two close to its sum rather than by the sum itself (exact, and
/// no `ln` per row). It is the fast semiring for training: `k²` multiply-adds
/// and `k` exps per position instead of `k²` exps.
///
/// **Range.** Scores are lifted row by row after subtracting the row's maximum,
/// so within one row (one position's emissions, or the whole transition matrix)
/// scores that lie more than about 700 below the row's maximum underflow to 0
/// and behave as forbidden. Realistic CRF weights (|score| ≲ 100) are far inside
/// that; transition scores of magnitude 10⁴ are not — use [`Log`] for those.
/// `-inf` is exactly 0 either way.
///
/// **Rounding.** Beyond eight labels, each term of a vector–matrix product
/// is one fused multiply-add on every build (see `crate::fused`); up to
/// eight, a multiply and then an add.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
#[repr(transparent)]
pub struct Prob(pub f64);

impl Prob {
    /// The values of a slice of `Prob`s.
    #[inline(always)]
    pub(crate) fn values(x: &[Prob]) -> &[f64] {
        // SAFETY: `Prob` is a transparent `f64`.
        unsafe { std::slice::from_raw_parts(x.as_ptr().cast::<f64>(), x.len()) }
    }

    /// The values of a mutable slice of `Prob`s.
    #[inline(always)]
    pub(crate) fn values_mut(x: &mut [Prob]) -> &mut [f64] {
        // SAFETY: `Prob` is a transparent `f64`.
        unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr().cast::<f64>(), x.len()) }
    }
}

impl Semiring for Prob {
    const NAME: &'static str = "prob";
    const IDEMPOTENT: bool = false;
    #[inline]
    fn zero() -> Self {
        Prob(0.0)
    }
    #[inline]
    fn one() -> Self {
        Prob(1.0)
    }
    #[inline]
    fn plus(&self, o: &Self) -> Self {
        Prob(self.0 + o.0)
    }
    #[inline]
    fn times(&self, o: &Self) -> Self {
        Prob(self.0 * o.0)
    }
    #[inline]
    fn from_score(s: f64) -> Self {
        Prob(s.exp())
    }
    #[inline]
    fn is_zero(&self) -> bool {
        self.0 == 0.0
    }
    fn approx_eq(&self, o: &Self, tol: f64) -> bool {
        approx(self.0, o.0, tol)
    }
    /// Four independent partial sums: a single running sum is one long chain of
    /// dependent additions, which the compiler may not reorder for floats.
    #[inline(always)]
    fn dot(a: &[Self], b: &[Self]) -> Self {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [0.0f64; 4];
        let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
        let tail: f64 = a4.remainder().iter().zip(b4.remainder()).map(|(x, y)| x.0 * y.0).sum();
        for (x, y) in a4.zip(b4) {
            for l in 0..4 {
                acc[l] += x[l].0 * y[l].0;
            }
        }
        Prob((acc[0] + acc[1]) + (acc[2] + acc[3]) + tail)
    }
    #[inline(always)]
    fn vec_mat(row: &[Self], mat: &[Self], out: &mut [Self]) {
        if row.len() > 8 {
            return fused::vec_mat(Prob::values(row), Prob::values(mat), Prob::values_mut(out));
        }
        fold_columns(row, mat, out, |x| x.0, Prob, 0.0, |acc, a, m| acc + a * m);
    }
    #[inline(always)]
    fn lift_row(scores: &[f64], out: &mut [Self]) -> f64 {
        let m = row_max(scores);
        let shift = if m.is_finite() { m } else { 0.0 };
        for (o, &s) in out.iter_mut().zip(scores) {
            o.0 = exp_nonpositive(s - shift);
        }
        shift
    }
    /// Row by row as [`Semiring::lift_rows`] says, in a loop compiled for
    /// the widest vectors the processor has (see `crate::simd`): the
    /// exponentials are most of the lift, and [`exp_nonpositive`] vectorizes.
    fn lift_rows(scores: &[f64], k: usize, out: &mut [Self], scales: &mut [f64]) {
        #[cfg(target_arch = "x86_64")]
        match vector_width(0) {
            // SAFETY: the processor has AVX-512F (checked by `vector_width`).
            VectorWidth::Avx512 => return unsafe { prob_lift_rows_avx512(scores, k, out, scales) },
            // SAFETY: the processor has AVX2 (checked by `vector_width`).
            VectorWidth::Avx2 => return unsafe { prob_lift_rows_avx2(scores, k, out, scales) },
            VectorWidth::Baseline => {}
        }
        prob_lift_rows(scores, k, out, scales)
    }
    /// Divides the row by the power of two nearest below its sum, so the sum
    /// lands in `[1, 2)`. Scaling by `2^e` is exact and its log is `e·ln 2`,
    /// which spares the `ln` per row that dividing by the sum would need (a
    /// large share of the work when `k` is small). Sums outside the normal
    /// range fall back to dividing by the sum.
    #[inline(always)]
    fn normalize(row: &mut [Self]) -> f64 {
        let s: f64 = row.iter().map(|x| x.0).sum();
        if s <= 0.0 || !s.is_finite() {
            return if s == 0.0 { f64::NEG_INFINITY } else { s.ln() };
        }
        let biased = ((s.to_bits() >> 52) & 0x7ff) as i64;
        let e = biased - 1023;
        if (1..=2045).contains(&biased) {
            // 2^-e is a normal number for every such e (|e| ≤ 1022).
            let inv = f64::from_bits(((1023 - e) as u64) << 52);
            for x in row.iter_mut() {
                x.0 *= inv;
            }
            return e as f64 * std::f64::consts::LN_2;
        }
        // A subnormal sum: its reciprocal would overflow, so divide.
        for x in row.iter_mut() {
            x.0 /= s;
        }
        s.ln()
    }
}

/// [`Prob::lift_rows`]: each row shifted by its maximum, then the
/// exponentials in one pass over the whole matrix, so that they run in full
/// vectors whatever the row length (a row of 4 labels would leave an
/// 8-wide loop nothing but its scalar remainder).
#[inline(always)]
fn prob_lift_rows(scores: &[f64], k: usize, out: &mut [Prob], scales: &mut [f64]) {
    for ((row, o), sc) in scores.chunks_exact(k).zip(out.chunks_exact_mut(k)).zip(scales) {
        let m = row_max(row);
        let shift = if m.is_finite() { m } else { 0.0 };
        for (o, &s) in o.iter_mut().zip(row) {
            o.0 = s - shift;
        }
        *sc = shift;
    }
    for o in out.iter_mut() {
        o.0 = exp_nonpositive(o.0);
    }
}

/// [`prob_lift_rows`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn prob_lift_rows_avx512(scores: &[f64], k: usize, out: &mut [Prob], scales: &mut [f64]) {
    prob_lift_rows(scores, k, out, scales)
}

/// [`prob_lift_rows`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn prob_lift_rows_avx2(scores: &[f64], k: usize, out: &mut [Prob], scales: &mut [f64]) {
    prob_lift_rows(scores, k, out, scales)
}

/// The largest of `scores` (`-inf` when empty). The chain checks scores
/// before lifting them, so no NaN reaches it and the plain comparison
/// (cheaper than `f64::max`) is enough. A maximum is exact in any order, so
/// it is taken over eight lanes, which vectorizes, instead of one chain of
/// dependent comparisons.
#[inline(always)]
fn row_max(scores: &[f64]) -> f64 {
    if scores.len() <= 8 {
        return scores.iter().fold(f64::NEG_INFINITY, |m, &s| if s > m { s } else { m });
    }
    let mut lanes = [f64::NEG_INFINITY; 8];
    let chunks = scores.chunks_exact(8);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (m, &s) in lanes.iter_mut().zip(chunk) {
            *m = if s > *m { s } else { *m };
        }
    }
    for (m, &s) in lanes.iter_mut().zip(rest) {
        *m = if s > *m { s } else { *m };
    }
    lanes.iter().fold(f64::NEG_INFINITY, |m, &s| if s > m { s } else { m })
}

/// `eˣ` for `x ≤ 0` (`-inf` gives exactly 0), within an ulp of the
/// library's `exp` (a test sweeps the whole range where `eˣ` is not 0).
///
/// Why not `f64::exp`: the lift of emissions into probabilities takes one
/// exponential per position and label, and the library's is a call per
/// value that no loop can vectorize (a tenth of a training pass at 43
/// labels). This one is straight-line arithmetic that compiles into vector
/// code, with no fused multiply-add, so every build gives the same bits.
///
/// Method: `x = n·ln 2 + r` with `n` the nearest integer to `x / ln 2`
/// (rounded by adding and subtracting `1.5·2⁵²`) and `|r| ≤ ln 2 / 2`,
/// reduced in two parts (Cody and Waite) so that `r` keeps its digits; `eʳ`
/// by its Taylor series to degree 13 (the first term left out is below
/// `2⁻⁵⁷` relative); then times `2ⁿ` in two exact power-of-two factors, so
/// that results below the normal range round once, as subnormals. Inputs
/// below −746 (where `eˣ` rounds to 0) are clamped there.
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f64) -> f64 {
    const LOG2_E: f64 = std::f64::consts::LOG2_E;
    // ln 2 = LN2_HI + LN2_LO to about 2⁻⁷⁵: LN2_HI is `LN_2` with its low
    // 32 bits cleared, so `n · LN2_HI` is exact for |n| < 2²⁰; LN2_LO is the
    // rest of the true ln 2 (from a 60-digit value), rounded to `f64`.
    const LN2_HI: f64 = f64::from_bits(std::f64::consts::LN_2.to_bits() & !0xffff_ffff);
    const LN2_LO: f64 = f64::from_bits(0x3e9f_df47_3de6_af28);
    const ROUND: f64 = 6755399441055744.0; // 1.5 · 2⁵²
    let x = if x > -746.0 { x } else { -746.0 };
    let shifted = x * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // Horner's rule over the Taylor coefficients 1/j!, j = 13 down to 0.
    let mut p = 1.0 / 6227020800.0;
    for c in [
        1.0 / 479001600.0,
        1.0 / 39916800.0,
        1.0 / 3628800.0,
        1.0 / 362880.0,
        1.0 / 40320.0,
        1.0 / 5040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * r + c;
    }
    // n ∈ [−1077, 0], in the low bits of `shifted`: 2ⁿ = 2^h · 2^(n − h)
    // with h = ⌊n / 2⌋, both normal numbers.
    let n = (shifted.to_bits() as i64).wrapping_sub(ROUND.to_bits() as i64);
    let h = n >> 1;
    let pow2 = |e: i64| f64::from_bits(((e + 1023) as u64) << 52);
    p * pow2(h) * pow2(n - h)
}

impl ProbabilitySemiring for Prob {
    const LINEAR: bool = true;
    #[inline]
    fn to_log(&self) -> f64 {
        self.0.ln()
    }
    #[inline(always)]
    fn linear(&self) -> f64 {
        self.0
    }
    #[inline]
    fn row_probabilities(row: &[Self], out: &mut [f64]) -> bool {
        let s: f64 = row.iter().map(|x| x.0).sum();
        if s <= 0.0 {
            return false;
        }
        let inv = 1.0 / s;
        for (o, x) in out.iter_mut().zip(row) {
            *o = x.0 * inv;
        }
        true
    }
}

/// The max-plus (Viterbi) semiring: ⊕ = max, ⊗ = +, 0̄ = −∞, 1̄ = 0.
///
/// The chain sum is the best path's score; [`crate::chain::ChainWorkspace::viterbi`]
/// recovers the path itself by back-tracking through the stored forward rows.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct MaxPlus(pub f64);

impl Semiring for MaxPlus {
    const NAME: &'static str = "max-plus";
    const IDEMPOTENT: bool = true;
    /// The lift is the identity: one copy of the whole matrix, all scales 0.
    #[inline]
    fn lift_rows(scores: &[f64], _k: usize, out: &mut [Self], scales: &mut [f64]) {
        for (o, &x) in out.iter_mut().zip(scores) {
            *o = MaxPlus(x);
        }
        scales.iter_mut().for_each(|s| *s = 0.0);
    }
    #[inline]
    fn zero() -> Self {
        MaxPlus(f64::NEG_INFINITY)
    }
    #[inline]
    fn one() -> Self {
        MaxPlus(0.0)
    }
    #[inline]
    fn plus(&self, o: &Self) -> Self {
        MaxPlus(self.0.max(o.0))
    }
    #[inline]
    fn times(&self, o: &Self) -> Self {
        MaxPlus(self.0 + o.0)
    }
    #[inline]
    fn from_score(s: f64) -> Self {
        MaxPlus(s)
    }
    #[inline]
    fn is_zero(&self) -> bool {
        self.0 == f64::NEG_INFINITY
    }
    fn approx_eq(&self, o: &Self, tol: f64) -> bool {
        approx(self.0, o.0, tol)
    }
    // The row operations below compare with `>` instead of calling `f64::max`:
    // scores are checked before lifting, so no NaN can reach them, and the plain
    // comparison compiles to one vector max instead of a NaN-aware sequence.
    #[inline(always)]
    fn dot(a: &[Self], b: &[Self]) -> Self {
        let mut m = f64::NEG_INFINITY;
        for (x, y) in a.iter().zip(b) {
            let v = x.0 + y.0;
            if v > m {
                m = v;
            }
        }
        MaxPlus(m)
    }
    /// Column blocks kept in registers (see `fold_columns`): vectorized for
    /// large `k`, and for small `k` free of the store-to-load round trip that a
    /// row-by-row sweep of `out` puts on every step.
    #[inline(always)]
    fn vec_mat(row: &[Self], mat: &[Self], out: &mut [Self]) {
        fold_columns(
            row,
            mat,
            out,
            |x| x.0,
            MaxPlus,
            f64::NEG_INFINITY,
            |acc, a, m| {
                let v = a + m;
                if v > acc {
                    v
                } else {
                    acc
                }
            },
        );
    }
    const TRACES: bool = true;
    /// Blocks of four columns, as in `vec_mat`, each keeping its running
    /// maximum and the row it came from in registers; a later row replaces
    /// them only when strictly larger, so ties keep the smaller index.
    #[inline(always)]
    fn vec_mat_traced(row: &[Self], mat: &[Self], out: &mut [Self], from: &mut [u32]) {
        let k = row.len();
        let (mat, out, from) = (&mat[..k * k], &mut out[..k], &mut from[..k]);
        let mut j = 0;
        while j + 4 <= k {
            max_plus_traced_block::<4>(row, mat, &mut out[j..j + 4], &mut from[j..j + 4], j);
            j += 4;
        }
        for jj in j..k {
            max_plus_traced_block::<1>(row, mat, &mut out[jj..=jj], &mut from[jj..=jj], jj);
        }
    }
    /// Finds the row maximum (−∞ means no path) but subtracts it only once
    /// values pass 2²⁰ in magnitude: below that, rounding in a sum of scores is
    /// under 2.4·10⁻¹⁰, and leaving the row alone keeps the maximum off the
    /// critical path from one position to the next.
    #[inline(always)]
    fn normalize(row: &mut [Self]) -> f64 {
        let m = row.iter().fold(f64::NEG_INFINITY, |m, x| if x.0 > m { x.0 } else { m });
        if m == f64::NEG_INFINITY {
            return m;
        }
        if m.abs() < 1_048_576.0 {
            return 0.0;
        }
        for x in row.iter_mut() {
            x.0 -= m;
        }
        m
    }
}

impl ScalarScore for MaxPlus {
    #[inline]
    fn score(&self) -> f64 {
        self.0
    }
}

/// The K-best semiring: a value is the K largest scores of a set of paths, in
/// descending order, padded with −∞ (K is a compile-time constant; for a K chosen
/// at run time use [`crate::chain::ChainWorkspace::kbest`], which returns the paths).
///
/// ⊕ merges two lists keeping the K largest; ⊗ keeps the K largest pairwise sums.
/// 0̄ = (−∞, …), 1̄ = (0, −∞, …). The chain sum is the K largest path scores, with
/// multiplicity (two paths with equal scores both count).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KBest<const K: usize>(pub [f64; K]);

impl<const K: usize> Semiring for KBest<K> {
    const NAME: &'static str = "k-best";
    const IDEMPOTENT: bool = false;
    #[inline]
    fn zero() -> Self {
        KBest([f64::NEG_INFINITY; K])
    }
    #[inline]
    fn one() -> Self {
        Self::from_score(0.0)
    }
    fn plus(&self, o: &Self) -> Self {
        let mut out = [f64::NEG_INFINITY; K];
        let (mut i, mut j) = (0, 0);
        for slot in out.iter_mut() {
            if i < K && (j >= K || self.0[i] >= o.0[j]) {
                *slot = self.0[i];
                i += 1;
            } else {
                *slot = o.0[j];
                j += 1;
            }
        }
        KBest(out)
    }
    fn times(&self, o: &Self) -> Self {
        // Both lists are sorted: the r-th largest sum uses indices (a, b) with
        // (a+1)(b+1) ≤ r+1, so a lazy frontier over rows is enough.
        let mut out = [f64::NEG_INFINITY; K];
        let mut next_b = [0usize; K];
        for slot in out.iter_mut() {
            let mut best = f64::NEG_INFINITY;
            let mut best_a = usize::MAX;
            for (a, &b) in next_b.iter().enumerate() {
                if b < K {
                    let v = self.0[a] + o.0[b];
                    if v > best || best_a == usize::MAX && v == best {
                        best = v;
                        best_a = a;
                    }
                }
                if b == 0 {
                    break;
                }
            }
            if best_a == usize::MAX || best == f64::NEG_INFINITY {
                break;
            }
            *slot = best;
            next_b[best_a] += 1;
        }
        KBest(out)
    }
    #[inline]
    fn from_score(s: f64) -> Self {
        let mut v = [f64::NEG_INFINITY; K];
        if K > 0 {
            v[0] = s;
        }
        KBest(v)
    }
    #[inline]
    fn is_zero(&self) -> bool {
        K == 0 || self.0[0] == f64::NEG_INFINITY
    }
    fn approx_eq(&self, o: &Self, tol: f64) -> bool {
        self.0.iter().zip(&o.0).all(|(&a, &b)| approx(a, b, tol))
    }
    fn normalize(row: &mut [Self]) -> f64 {
        let m = row
            .iter()
            .fold(f64::NEG_INFINITY, |m, x| m.max(x.0.first().copied().unwrap_or(m)));
        if m == f64::NEG_INFINITY {
            return m;
        }
        for x in row.iter_mut() {
            for v in x.0.iter_mut() {
                *v -= m;
            }
        }
        m
    }
}

/// The entropy (expectation) semiring, in log space: a value `(log W, H)` stands
/// for a set of paths with total weight `W` and the entropy `H` of the path
/// distribution restricted to that set.
///
/// ⊕ mixes two disjoint sets: `W = W₁ + W₂`, `H = Σ (Wᵢ/W)(Hᵢ − log(Wᵢ/W))`.
/// ⊗ joins independent parts: `(log W₁ + log W₂, H₁ + H₂)`. 0̄ = (−∞, 0),
/// 1̄ = (0, 0). The chain sum is `(log Z, H(y | x))`, exact, in nats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Entropy {
    /// Log of the total weight.
    pub log_weight: f64,
    /// Entropy of the normalized distribution over the set, in nats.
    pub entropy: f64,
}

impl Semiring for Entropy {
    const NAME: &'static str = "entropy";
    const IDEMPOTENT: bool = false;
    #[inline]
    fn zero() -> Self {
        Entropy {
            log_weight: f64::NEG_INFINITY,
            entropy: 0.0,
        }
    }
    #[inline]
    fn one() -> Self {
        Entropy {
            log_weight: 0.0,
            entropy: 0.0,
        }
    }
    fn plus(&self, o: &Self) -> Self {
        if self.log_weight == f64::NEG_INFINITY {
            return *o;
        }
        if o.log_weight == f64::NEG_INFINITY {
            return *self;
        }
        let w = log_add_exp(self.log_weight, o.log_weight);
        let l1 = self.log_weight - w;
        let l2 = o.log_weight - w;
        let entropy = l1.exp() * (self.entropy - l1) + l2.exp() * (o.entropy - l2);
        Entropy { log_weight: w, entropy }
    }
    #[inline]
    fn times(&self, o: &Self) -> Self {
        if self.log_weight == f64::NEG_INFINITY || o.log_weight == f64::NEG_INFINITY {
            return Self::zero();
        }
        Entropy {
            log_weight: self.log_weight + o.log_weight,
            entropy: self.entropy + o.entropy,
        }
    }
    #[inline]
    fn from_score(s: f64) -> Self {
        Entropy {
            log_weight: s,
            entropy: 0.0,
        }
    }
    #[inline]
    fn is_zero(&self) -> bool {
        self.log_weight == f64::NEG_INFINITY
    }
    fn approx_eq(&self, o: &Self, tol: f64) -> bool {
        approx(self.log_weight, o.log_weight, tol)
            && (self.is_zero() && o.is_zero() || approx(self.entropy, o.entropy, tol))
    }
    fn dot(a: &[Self], b: &[Self]) -> Self {
        // One pass for the total, one for the mixture: avoids a log per term.
        let mut m = f64::NEG_INFINITY;
        for (x, y) in a.iter().zip(b) {
            m = m.max(x.log_weight + y.log_weight);
        }
        if m == f64::NEG_INFINITY {
            return Self::zero();
        }
        let (mut s, mut sh, mut sl) = (0.0, 0.0, 0.0);
        for (x, y) in a.iter().zip(b) {
            let l = x.log_weight + y.log_weight - m;
            if l == f64::NEG_INFINITY {
                continue;
            }
            let w = l.exp();
            s += w;
            sh += w * (x.entropy + y.entropy);
            sl += w * l;
        }
        let ls = s.ln();
        // H = Σ p_i (H_i − log p_i) with p_i = w_i / s, log p_i = l_i − ln s.
        Entropy {
            log_weight: m + ls,
            entropy: (sh - sl) / s + ls,
        }
    }
    fn normalize(row: &mut [Self]) -> f64 {
        let m = row.iter().fold(f64::NEG_INFINITY, |m, x| m.max(x.log_weight));
        if m == f64::NEG_INFINITY {
            return m;
        }
        for x in row.iter_mut() {
            x.log_weight -= m;
        }
        m
    }
}

impl ProbabilitySemiring for Entropy {
    fn to_log(&self) -> f64 {
        self.log_weight
    }
}

/// The counting semiring: ⊕ = +, ⊗ = ×, over path counts, with a score lifted
/// to 1 when allowed (finite) and 0 when forbidden (−∞).
///
/// The chain sum is the number of allowed paths. Rows are rescaled like [`Prob`]
/// so long chains do not overflow; the count comes back as a log-count
/// ([`crate::chain::ChainSum::log_value`]), exact as an integer while it fits in
/// 2⁵³ and the chain is short enough to need no rescaling.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Counting(pub f64);

impl Semiring for Counting {
    const NAME: &'static str = "counting";
    const IDEMPOTENT: bool = false;
    #[inline]
    fn zero() -> Self {
        Counting(0.0)
    }
    #[inline]
    fn one() -> Self {
        Counting(1.0)
    }
    #[inline]
    fn plus(&self, o: &Self) -> Self {
        Counting(self.0 + o.0)
    }
    #[inline]
    fn times(&self, o: &Self) -> Self {
        Counting(self.0 * o.0)
    }
    #[inline]
    fn from_score(s: f64) -> Self {
        Counting(if s == f64::NEG_INFINITY { 0.0 } else { 1.0 })
    }
    #[inline]
    fn is_zero(&self) -> bool {
        self.0 == 0.0
    }
    fn approx_eq(&self, o: &Self, tol: f64) -> bool {
        approx(self.0, o.0, tol)
    }
    /// A rescaled count stands for a weight: the factor is `e^log_factor` itself.
    #[inline]
    fn from_log_scale(log_factor: f64) -> Self {
        Counting(log_factor.exp())
    }
    fn normalize(row: &mut [Self]) -> f64 {
        let m = row.iter().fold(0.0f64, |m, x| m.max(x.0));
        if m == 0.0 {
            return f64::NEG_INFINITY;
        }
        if m < 1e200 {
            return 0.0; // keep counts exact while they are small
        }
        for x in row.iter_mut() {
            x.0 /= m;
        }
        m.ln()
    }
}

impl ProbabilitySemiring for Counting {
    fn to_log(&self) -> f64 {
        self.0.ln()
    }
}

/// The boolean semiring: ⊕ = or, ⊗ = and, over "is allowed". The chain sum says
/// whether any path is allowed at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Boolean(pub bool);

impl Semiring for Boolean {
    const NAME: &'static str = "boolean";
    const IDEMPOTENT: bool = true;
    #[inline]
    fn zero() -> Self {
        Boolean(false)
    }
    #[inline]
    fn one() -> Self {
        Boolean(true)
    }
    #[inline]
    fn plus(&self, o: &Self) -> Self {
        Boolean(self.0 || o.0)
    }
    #[inline]
    fn times(&self, o: &Self) -> Self {
        Boolean(self.0 && o.0)
    }
    #[inline]
    fn from_score(s: f64) -> Self {
        Boolean(s != f64::NEG_INFINITY)
    }
    #[inline]
    fn is_zero(&self) -> bool {
        !self.0
    }
    fn approx_eq(&self, o: &Self, _tol: f64) -> bool {
        self == o
    }
    fn normalize(row: &mut [Self]) -> f64 {
        if row.iter().any(|x| x.0) {
            0.0
        } else {
            f64::NEG_INFINITY
        }
    }
}

#[cfg(test)]
mod tests {
    /// The column-blocked vector–matrix products give, bit for bit, the
    /// pairwise definition's fold over rows in order, for every width up to
    /// past the blocks of 32 and the overhanging last block (and `-inf`
    /// entries for max-plus).
    #[test]
    fn blocked_vec_mat_is_the_pairwise_fold() {
        for k in 1..=75usize {
            let value = |i: usize| ((i * 7919) % 1013) as f64 / 1013.0;
            let row: Vec<f64> = (0..k).map(|i| value(i + 5)).collect();
            let mat: Vec<f64> = (0..k * k).map(|i| value(i * 3 + 1)).collect();
            let mut out = vec![Prob(f64::NAN); k];
            let prob_row: Vec<Prob> = row.iter().map(|&x| Prob(x)).collect();
            let prob_mat: Vec<Prob> = mat.iter().map(|&x| Prob(x)).collect();
            Prob::vec_mat(&prob_row, &prob_mat, &mut out);
            for (j, o) in out.iter().enumerate() {
                // Fused beyond eight labels (`crate::fused`).
                let want = if k > 8 {
                    (0..k).fold(0.0, |acc, i| row[i].mul_add(mat[i * k + j], acc))
                } else {
                    (0..k).fold(0.0, |acc, i| acc + row[i] * mat[i * k + j])
                };
                assert_eq!(o.0.to_bits(), want.to_bits(), "prob, k = {k}, column {j}");
            }
            let mp_row: Vec<MaxPlus> = row.iter().map(|&x| MaxPlus(x.ln())).collect();
            let mp_mat: Vec<MaxPlus> = mat
                .iter()
                .enumerate()
                .map(|(i, &x)| MaxPlus(if i % 5 == 0 { f64::NEG_INFINITY } else { x }))
                .collect();
            let mut out = vec![MaxPlus(f64::NAN); k];
            MaxPlus::vec_mat(&mp_row, &mp_mat, &mut out);
            let mut want = vec![MaxPlus(f64::NAN); k];
            for (j, w) in want.iter_mut().enumerate() {
                *w = (0..k).fold(MaxPlus::zero(), |acc, i| acc.plus(&mp_row[i].times(&mp_mat[i * k + j])));
            }
            for (j, (o, w)) in out.iter().zip(&want).enumerate() {
                assert_eq!(o.0.to_bits(), w.0.to_bits(), "max-plus, k = {k}, column {j}");
            }
        }
    }

    /// `exp_nonpositive` is within an ulp of the library's `exp` over the whole range where `eˣ` is not 0,
    /// subnormal results included, and exactly 0 at `-inf`.
    #[test]
    fn exp_nonpositive_matches_the_library() {
        let ulps = |a: f64, b: f64| (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs();
        let mut worst = 0;
        let mut check = |x: f64| {
            let (got, want) = (exp_nonpositive(x), x.exp());
            let d = ulps(got, want);
            assert!(d <= 1, "exp({x:e}) = {got:e}, the library says {want:e} ({d} ulp)");
            worst = worst.max(d);
        };
        for x in [
            0.0,
            -0.0,
            -1e-300,
            -1e-17,
            -0.5 * std::f64::consts::LN_2,
            -std::f64::consts::LN_2,
            -1.0,
        ] {
            check(x);
        }
        for x in [
            -700.0, -708.39, -708.4, -709.0, -720.0, -744.0, -745.0, -745.13, -745.2, -746.0, -800.0,
        ] {
            check(x);
        }
        // A dense sweep with a step that is not a multiple of ln 2.
        let mut x = 0.0;
        while x > -746.0 {
            check(x);
            x -= 0.000_731_9;
        }
        assert!(worst <= 1);
        assert_eq!(exp_nonpositive(f64::NEG_INFINITY).to_bits(), 0.0f64.to_bits());
        assert_eq!(exp_nonpositive(-1e10), 0.0);
        assert_eq!(exp_nonpositive(0.0), 1.0);
    }

    use super::*;

    #[test]
    fn log_add_exp_edge_cases() {
        let ninf = f64::NEG_INFINITY;
        assert_eq!(log_add_exp(ninf, ninf), ninf);
        assert_eq!(log_add_exp(ninf, 3.0), 3.0);
        assert_eq!(log_add_exp(1e308, 1e308), 1e308 + std::f64::consts::LN_2);
        assert!((log_add_exp(0.0, 0.0) - std::f64::consts::LN_2).abs() < 1e-15);
        assert!((log_add_exp(-1000.0, -1000.0) - (-1000.0 + std::f64::consts::LN_2)).abs() < 1e-12);
        // against the naive form where it is safe
        let (a, b) = (1.5f64, -2.25f64);
        assert!((log_add_exp(a, b) - (a.exp() + b.exp()).ln()).abs() < 1e-14);
        assert_eq!(log_sum_exp(&[]), ninf);
        assert!((log_sum_exp(&[1e4, 1e4]) - (1e4 + std::f64::consts::LN_2)).abs() < 1e-9);
    }

    /// The blocked row operations against the pairwise definitions, for sizes
    /// that exercise blocks of 8, of 4 and the single-column tail.
    #[test]
    fn blocked_row_operations_match_the_definitions() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let u = (seed >> 11) as f64 / (1u64 << 53) as f64;
            if u < 0.1 {
                f64::NEG_INFINITY
            } else {
                10.0 * u - 5.0
            }
        };
        fn pairwise_vec_mat<S: Semiring>(row: &[S], mat: &[S]) -> Vec<S> {
            let k = row.len();
            (0..k)
                .map(|j| (0..k).fold(S::zero(), |acc, i| acc.plus(&row[i].times(&mat[i * k + j]))))
                .collect()
        }
        for k in 1..=21 {
            let row: Vec<f64> = (0..k).map(|_| next()).collect();
            let mat: Vec<f64> = (0..k * k).map(|_| next()).collect();
            let (pr, pm): (Vec<Prob>, Vec<Prob>) = (
                row.iter().map(|&x| Prob::from_score(x)).collect(),
                mat.iter().map(|&x| Prob::from_score(x)).collect(),
            );
            let mut out = vec![Prob::zero(); k];
            Prob::vec_mat(&pr, &pm, &mut out);
            let want = if k > 8 {
                // Fused beyond eight labels (`crate::fused`).
                (0..k)
                    .map(|j| Prob((0..k).fold(0.0, |acc, i| pr[i].0.mul_add(pm[i * k + j].0, acc))))
                    .collect()
            } else {
                pairwise_vec_mat(&pr, &pm)
            };
            assert_eq!(out, want, "prob vec_mat, k = {k}");
            let dot = Prob::dot(&pr, &pm[..k]);
            let want = pr.iter().zip(&pm).fold(0.0, |a, (x, y)| a + x.0 * y.0);
            assert!(dot.approx_eq(&Prob(want), 1e-14), "prob dot, k = {k}");
            let (mr, mm): (Vec<MaxPlus>, Vec<MaxPlus>) = (
                row.iter().map(|&x| MaxPlus(x)).collect(),
                mat.iter().map(|&x| MaxPlus(x)).collect(),
            );
            let mut out = vec![MaxPlus::zero(); k];
            MaxPlus::vec_mat(&mr, &mm, &mut out);
            assert_eq!(out, pairwise_vec_mat(&mr, &mm), "max-plus vec_mat, k = {k}");
        }
    }

    #[test]
    fn prob_normalize_scales_by_a_power_of_two() {
        for s in [3.0, 0.75, 1e-300, 1e300, 1.0] {
            let mut row = [Prob(s * 0.25), Prob(s * 0.75)];
            let scale = Prob::normalize(&mut row);
            let sum = row[0].0 + row[1].0;
            assert!((1.0..2.0).contains(&sum), "sum {sum} for {s}");
            assert!((scale + sum.ln() - s.ln()).abs() < 1e-12 * (1.0 + s.ln().abs()));
        }
        // subnormal sums take the dividing fallback
        let mut row = [Prob(1e-310), Prob(0.0)];
        let scale = Prob::normalize(&mut row);
        assert_eq!(row[0].0, 1.0);
        assert!((scale - 1e-310f64.ln()).abs() < 1e-9);
    }

    #[test]
    fn kbest_merge_and_product() {
        let a = KBest::<3>([5.0, 2.0, 1.0]);
        let b = KBest::<3>([4.0, 3.0, f64::NEG_INFINITY]);
        assert_eq!(a.plus(&b).0, [5.0, 4.0, 3.0]);
        assert_eq!(a.times(&b).0, [9.0, 8.0, 6.0]);
        assert!(KBest::<3>::zero().times(&a).is_zero());
        assert_eq!(KBest::<3>::one().times(&a).0, a.0);
    }

    #[test]
    fn entropy_of_two_equal_paths_is_ln2() {
        let p = Entropy::from_score(0.3).plus(&Entropy::from_score(0.3));
        assert!((p.entropy - std::f64::consts::LN_2).abs() < 1e-15);
        let d = Entropy::dot(
            &[Entropy::one(), Entropy::one()],
            &[Entropy::from_score(0.3), Entropy::from_score(0.3)],
        );
        assert!(d.approx_eq(&p, 1e-14));
    }

    #[test]
    fn prob_lift_keeps_forbidden_exact() {
        let mut out = [Prob(9.0); 3];
        let s = Prob::lift_row(&[f64::NEG_INFINITY, 2.0, 1.0], &mut out);
        assert_eq!(s, 2.0);
        assert_eq!(out[0].0, 0.0);
        assert_eq!(out[1].0, 1.0);
        let s = Prob::lift_row(&[f64::NEG_INFINITY; 2], &mut out[..2]);
        assert_eq!(s, 0.0);
        assert_eq!(Prob::normalize(&mut out[..2]), f64::NEG_INFINITY);
    }
}
