//! Potentials: the scores a chain model assigns, from whatever source. The
//! crate root re-exports everything public here; the explanation is on
//! [`Potentials`].

use crate::error::{Error, Result};
use nalgebra::{DMatrix, DVector};

/// Scores of a linear chain, in log space. `-inf` = forbidden; NaN and `+inf` are
/// invalid (the algorithms report them as [`Error::InvalidScore`]).
///
/// A [`Potentials`] value is a chain of length `n` over `k` labels with an
/// emission score per (position, label), a transition score per label pair and
/// start/end scores, all in log space: a path's score is their sum, and `-inf`
/// means *forbidden* everywhere. A feature model, a neural network's output or a
/// JSON file can all be potentials; the chain algorithms only ever see this trait.
///
/// [`DenseChain`] stores them in `nalgebra` matrices. [`Constrained`] wraps any
/// potentials with per-position allowed label sets ([`AllowedLabels`]): forced
/// labels and partial labels are just `-inf` emissions, so every algorithm
/// handles them with no extra code.
pub trait Potentials {
    /// Chain length `n` (number of positions).
    fn len(&self) -> usize;
    /// Number of labels `k`.
    fn num_labels(&self) -> usize;
    /// Emission score of label `y` at position `t`.
    fn emission(&self, t: usize, y: usize) -> f64;
    /// Transition score from label `i` at `t-1` to label `j` at `t`.
    fn transition(&self, i: usize, j: usize) -> f64;
    /// Score of starting in label `y` (default 0).
    fn start(&self, _y: usize) -> f64 {
        0.0
    }
    /// Score of ending in label `y` (default 0).
    fn end(&self, _y: usize) -> f64 {
        0.0
    }
    /// Whether transition scores depend on the position (attribute-conditioned
    /// transitions). When `false` (the default) [`Potentials::transition_at`] is
    /// never called.
    fn has_varying_transitions(&self) -> bool {
        false
    }
    /// Transition score from `i` at `t-1` to `j` at `t` (for `1 ≤ t < n`).
    fn transition_at(&self, _t: usize, i: usize, j: usize) -> f64 {
        self.transition(i, j)
    }
    /// Whether the chain is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// All `n × k` emission scores as one row-major slice (`[t·k + y]`), when
    /// they are stored that way. The chain algorithms then check and lift them
    /// in place instead of copying row by row, which matters for few labels.
    /// Default `None`; a wrapper that changes emissions must not forward it.
    fn emission_rows(&self) -> Option<&[f64]> {
        None
    }
    /// Writes the `k` emission scores of position `t` into `out`. Override when a
    /// whole row is cheaper than `k` single calls (feature models are).
    fn emissions_into(&self, t: usize, out: &mut [f64]) {
        for (y, o) in out.iter_mut().enumerate() {
            *o = self.emission(t, y);
        }
    }
    /// Writes the `k × k` transition scores (row-major, `[i·k + j]`) into `out`.
    fn transitions_into(&self, out: &mut [f64]) {
        let k = self.num_labels();
        for i in 0..k {
            for j in 0..k {
                out[i * k + j] = self.transition(i, j);
            }
        }
    }
    /// Writes the transition scores into position `t` (row-major) into `out`.
    fn transitions_at_into(&self, t: usize, out: &mut [f64]) {
        let k = self.num_labels();
        for i in 0..k {
            for j in 0..k {
                out[i * k + j] = self.transition_at(t, i, j);
            }
        }
    }
}

impl<P: Potentials + ?Sized> Potentials for &P {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn num_labels(&self) -> usize {
        (**self).num_labels()
    }
    fn emission(&self, t: usize, y: usize) -> f64 {
        (**self).emission(t, y)
    }
    fn transition(&self, i: usize, j: usize) -> f64 {
        (**self).transition(i, j)
    }
    fn start(&self, y: usize) -> f64 {
        (**self).start(y)
    }
    fn end(&self, y: usize) -> f64 {
        (**self).end(y)
    }
    fn has_varying_transitions(&self) -> bool {
        (**self).has_varying_transitions()
    }
    fn transition_at(&self, t: usize, i: usize, j: usize) -> f64 {
        (**self).transition_at(t, i, j)
    }
    fn emission_rows(&self) -> Option<&[f64]> {
        (**self).emission_rows()
    }
    fn emissions_into(&self, t: usize, out: &mut [f64]) {
        (**self).emissions_into(t, out)
    }
    fn transitions_into(&self, out: &mut [f64]) {
        (**self).transitions_into(out)
    }
    fn transitions_at_into(&self, t: usize, out: &mut [f64]) {
        (**self).transitions_at_into(t, out)
    }
}

/// Checks that every score is finite or `-inf`. The algorithms check as they go;
/// this is for callers who want the error before doing anything else.
///
/// # Errors
/// [`Error::InvalidScore`] naming the first offending score.
pub fn check_scores<P: Potentials + ?Sized>(p: &P) -> Result<()> {
    let (n, k) = (p.len(), p.num_labels());
    let bad = |v: f64| v.is_nan() || v == f64::INFINITY;
    for y in 0..k {
        if bad(p.start(y)) {
            return Err(Error::invalid("start", None, y, p.start(y)));
        }
        if bad(p.end(y)) {
            return Err(Error::invalid("end", None, y, p.end(y)));
        }
        for j in 0..k {
            if bad(p.transition(y, j)) {
                return Err(Error::invalid("transition", None, y * k + j, p.transition(y, j)));
            }
        }
    }
    for t in 0..n {
        for y in 0..k {
            let v = p.emission(t, y);
            if bad(v) {
                return Err(Error::invalid("emission", Some(t), y, v));
            }
        }
    }
    Ok(())
}

/// Potentials held in dense `nalgebra` matrices: emissions `n × k`, transitions
/// `k × k`, start and end vectors of length `k`.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseChain {
    emissions: DMatrix<f64>,
    transitions: DMatrix<f64>,
    start: DVector<f64>,
    end: DVector<f64>,
}

impl DenseChain {
    /// Emissions (`n × k`) and transitions (`k × k`); start and end scores 0.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the transition matrix is not `k × k`.
    pub fn new(emissions: DMatrix<f64>, transitions: DMatrix<f64>) -> Result<Self> {
        let k = emissions.ncols();
        if transitions.nrows() != k || transitions.ncols() != k {
            return Err(Error::shape(
                "transitions",
                format!("{k}×{k}"),
                format!("{}×{}", transitions.nrows(), transitions.ncols()),
            ));
        }
        Ok(DenseChain {
            emissions,
            transitions,
            start: DVector::zeros(k),
            end: DVector::zeros(k),
        })
    }

    /// From row-major nested vectors (`emissions[t][y]`, `transitions[i][j]`).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for ragged rows or a non-square transition matrix.
    pub fn from_rows(emissions: &[Vec<f64>], transitions: &[Vec<f64>]) -> Result<Self> {
        let k = transitions.len();
        for (t, row) in emissions.iter().enumerate() {
            if row.len() != k {
                return Err(Error::shape(
                    "emissions row",
                    format!("{k} scores (row {t})"),
                    row.len().to_string(),
                ));
            }
        }
        for (i, row) in transitions.iter().enumerate() {
            if row.len() != k {
                return Err(Error::shape(
                    "transitions row",
                    format!("{k} scores (row {i})"),
                    row.len().to_string(),
                ));
            }
        }
        let e = DMatrix::from_fn(emissions.len(), k, |t, y| emissions[t][y]);
        let tr = DMatrix::from_fn(k, k, |i, j| transitions[i][j]);
        Self::new(e, tr)
    }

    /// Sets the start scores.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless `start.len() == k`.
    pub fn with_start(mut self, start: &[f64]) -> Result<Self> {
        if start.len() != self.num_labels() {
            return Err(Error::shape(
                "start",
                self.num_labels().to_string(),
                start.len().to_string(),
            ));
        }
        self.start = DVector::from_column_slice(start);
        Ok(self)
    }

    /// Sets the end scores.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless `end.len() == k`.
    pub fn with_end(mut self, end: &[f64]) -> Result<Self> {
        if end.len() != self.num_labels() {
            return Err(Error::shape(
                "end",
                self.num_labels().to_string(),
                end.len().to_string(),
            ));
        }
        self.end = DVector::from_column_slice(end);
        Ok(self)
    }

    /// Forbids the transition `i → j` (score `-inf`).
    pub fn forbid_transition(&mut self, i: usize, j: usize) {
        self.transitions[(i, j)] = f64::NEG_INFINITY;
    }

    /// Forces label `y` at position `t` (every other label's emission becomes `-inf`).
    pub fn force_label(&mut self, t: usize, y: usize) {
        for l in 0..self.num_labels() {
            if l != y {
                self.emissions[(t, l)] = f64::NEG_INFINITY;
            }
        }
    }

    /// The emission matrix (`n × k`).
    pub fn emissions(&self) -> &DMatrix<f64> {
        &self.emissions
    }
    /// The emission matrix, mutable.
    pub fn emissions_mut(&mut self) -> &mut DMatrix<f64> {
        &mut self.emissions
    }
    /// The transition matrix (`k × k`).
    pub fn transitions(&self) -> &DMatrix<f64> {
        &self.transitions
    }
    /// The transition matrix, mutable.
    pub fn transitions_mut(&mut self) -> &mut DMatrix<f64> {
        &mut self.transitions
    }
    /// Start scores.
    pub fn start_scores(&self) -> &DVector<f64> {
        &self.start
    }
    /// End scores.
    pub fn end_scores(&self) -> &DVector<f64> {
        &self.end
    }
}

impl Potentials for DenseChain {
    #[inline]
    fn len(&self) -> usize {
        self.emissions.nrows()
    }
    #[inline]
    fn num_labels(&self) -> usize {
        self.emissions.ncols()
    }
    #[inline]
    fn emission(&self, t: usize, y: usize) -> f64 {
        self.emissions[(t, y)]
    }
    #[inline]
    fn transition(&self, i: usize, j: usize) -> f64 {
        self.transitions[(i, j)]
    }
    #[inline]
    fn start(&self, y: usize) -> f64 {
        self.start[y]
    }
    #[inline]
    fn end(&self, y: usize) -> f64 {
        self.end[y]
    }
}

/// Borrowed row-major potentials: the zero-copy view used by the loss layer and
/// by feature models that compute emission rows into a buffer.
#[derive(Clone, Copy, Debug)]
pub struct ChainView<'a> {
    /// `n × k` emission scores, row-major (`[t·k + y]`).
    pub emissions: &'a [f64],
    /// `k × k` transition scores, row-major (`[i·k + j]`).
    pub transitions: &'a [f64],
    /// `k` start scores, or empty for all zeros.
    pub start: &'a [f64],
    /// `k` end scores, or empty for all zeros.
    pub end: &'a [f64],
    /// Number of labels.
    pub k: usize,
}

impl<'a> ChainView<'a> {
    /// A view; checks the slice lengths.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when a length does not fit `k`.
    pub fn new(
        emissions: &'a [f64],
        transitions: &'a [f64],
        start: &'a [f64],
        end: &'a [f64],
        k: usize,
    ) -> Result<Self> {
        if k == 0 {
            return Err(Error::shape("labels", "at least 1".into(), "0".into()));
        }
        if !emissions.len().is_multiple_of(k) {
            return Err(Error::shape(
                "emissions",
                format!("a multiple of k={k}"),
                emissions.len().to_string(),
            ));
        }
        if transitions.len() != k * k {
            return Err(Error::shape(
                "transitions",
                format!("{}", k * k),
                transitions.len().to_string(),
            ));
        }
        for (what, v) in [("start", start), ("end", end)] {
            if !v.is_empty() && v.len() != k {
                return Err(Error::shape(what, k.to_string(), v.len().to_string()));
            }
        }
        Ok(ChainView {
            emissions,
            transitions,
            start,
            end,
            k,
        })
    }
}

impl Potentials for ChainView<'_> {
    #[inline]
    fn len(&self) -> usize {
        self.emissions.len() / self.k
    }
    #[inline]
    fn num_labels(&self) -> usize {
        self.k
    }
    #[inline]
    fn emission(&self, t: usize, y: usize) -> f64 {
        self.emissions[t * self.k + y]
    }
    #[inline]
    fn transition(&self, i: usize, j: usize) -> f64 {
        self.transitions[i * self.k + j]
    }
    #[inline]
    fn start(&self, y: usize) -> f64 {
        self.start.get(y).copied().unwrap_or(0.0)
    }
    #[inline]
    fn end(&self, y: usize) -> f64 {
        self.end.get(y).copied().unwrap_or(0.0)
    }
    #[inline]
    fn emission_rows(&self) -> Option<&[f64]> {
        Some(self.emissions)
    }
    #[inline]
    fn emissions_into(&self, t: usize, out: &mut [f64]) {
        out.copy_from_slice(&self.emissions[t * self.k..(t + 1) * self.k]);
    }
    #[inline]
    fn transitions_into(&self, out: &mut [f64]) {
        out.copy_from_slice(self.transitions);
    }
}

/// Allowed labels per position: `n × k` flags. Positions with every label
/// allowed cost nothing; a position with none allowed makes the chain infeasible.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AllowedLabels {
    n: usize,
    k: usize,
    allowed: Vec<bool>,
}

impl AllowedLabels {
    /// Everything allowed at every position.
    pub fn all(n: usize, k: usize) -> Self {
        AllowedLabels {
            n,
            k,
            allowed: vec![true; n * k],
        }
    }

    /// From one optional label set per position (`None` = any label).
    ///
    /// # Errors
    /// [`Error::LabelOutOfRange`] for a label `≥ k`.
    pub fn from_sets(sets: &[Option<Vec<usize>>], k: usize) -> Result<Self> {
        let mut a = Self::all(sets.len(), k);
        for (t, s) in sets.iter().enumerate() {
            if let Some(s) = s {
                a.allow_only(t, s)?;
            }
        }
        Ok(a)
    }

    /// Forces label `y` at position `t`.
    ///
    /// # Errors
    /// [`Error::LabelOutOfRange`] when `t ≥ n` or `y ≥ k`.
    pub fn force(&mut self, t: usize, y: usize) -> Result<()> {
        self.allow_only(t, &[y])
    }

    /// Allows exactly the labels in `ys` at position `t`.
    ///
    /// # Errors
    /// [`Error::LabelOutOfRange`] when `t ≥ n` or a label is `≥ k`.
    pub fn allow_only(&mut self, t: usize, ys: &[usize]) -> Result<()> {
        if t >= self.n {
            return Err(Error::LabelOutOfRange {
                position: t,
                label: 0,
                num_labels: self.k,
            });
        }
        if let Some(&y) = ys.iter().find(|&&y| y >= self.k) {
            return Err(Error::LabelOutOfRange {
                position: t,
                label: y,
                num_labels: self.k,
            });
        }
        let row = &mut self.allowed[t * self.k..(t + 1) * self.k];
        row.iter_mut().for_each(|a| *a = false);
        for &y in ys {
            row[y] = true;
        }
        Ok(())
    }

    /// Whether label `y` is allowed at `t`.
    #[inline]
    pub fn is_allowed(&self, t: usize, y: usize) -> bool {
        self.allowed[t * self.k + y]
    }

    /// Chain length this mask was made for.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the mask covers no position.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

/// Potentials with some labels forbidden at some positions: emissions of
/// disallowed labels become `-inf`, everything else passes through.
#[derive(Clone, Copy, Debug)]
pub struct Constrained<'a, P: ?Sized> {
    inner: &'a P,
    allowed: &'a AllowedLabels,
}

impl<'a, P: Potentials + ?Sized> Constrained<'a, P> {
    /// Wraps `inner` with `allowed`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the mask's shape differs from the chain's.
    pub fn new(inner: &'a P, allowed: &'a AllowedLabels) -> Result<Self> {
        if allowed.n != inner.len() || allowed.k != inner.num_labels() {
            return Err(Error::shape(
                "allowed labels",
                format!("{}×{}", inner.len(), inner.num_labels()),
                format!("{}×{}", allowed.n, allowed.k),
            ));
        }
        Ok(Constrained { inner, allowed })
    }
}

impl<P: Potentials + ?Sized> Potentials for Constrained<'_, P> {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn num_labels(&self) -> usize {
        self.inner.num_labels()
    }
    #[inline]
    fn emission(&self, t: usize, y: usize) -> f64 {
        if self.allowed.is_allowed(t, y) {
            self.inner.emission(t, y)
        } else {
            f64::NEG_INFINITY
        }
    }
    fn transition(&self, i: usize, j: usize) -> f64 {
        self.inner.transition(i, j)
    }
    fn start(&self, y: usize) -> f64 {
        self.inner.start(y)
    }
    fn end(&self, y: usize) -> f64 {
        self.inner.end(y)
    }
    fn has_varying_transitions(&self) -> bool {
        self.inner.has_varying_transitions()
    }
    fn transition_at(&self, t: usize, i: usize, j: usize) -> f64 {
        self.inner.transition_at(t, i, j)
    }
    #[inline]
    fn emissions_into(&self, t: usize, out: &mut [f64]) {
        self.inner.emissions_into(t, out);
        let k = out.len();
        for (o, &a) in out.iter_mut().zip(&self.allowed.allowed[t * k..(t + 1) * k]) {
            if !a {
                *o = f64::NEG_INFINITY;
            }
        }
    }
    fn transitions_into(&self, out: &mut [f64]) {
        self.inner.transitions_into(out)
    }
    fn transitions_at_into(&self, t: usize, out: &mut [f64]) {
        self.inner.transitions_at_into(t, out)
    }
}
