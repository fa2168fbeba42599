//! Where semi-Markov scores come from: the [`SegmentPotentials`] trait and
//! its dense implementation [`DenseSemiMarkov`].

use crate::error::{Error, Result};
use crate::potentials::Potentials;

/// Scores of a semi-Markov model over one input of length `n`: a segment
/// `[i, i + d)` with label `y` scores `segment(i, d, y)` for `1 ≤ d ≤ L`
/// (the maximum segment length) and `i + d ≤ n`; consecutive segments with
/// labels `y`, `y′` add `transition(y, y′)`; the first segment's label adds
/// `start(y)`, the last one's `end(y)`. All in log space, `-inf` forbids.
///
/// Segments that would run past the end of the input are never asked for.
pub trait SegmentPotentials {
    /// Length `n` of the input.
    fn len(&self) -> usize;
    /// Number of labels `k`.
    fn num_labels(&self) -> usize;
    /// The maximum segment length `L ≥ 1`.
    fn max_len(&self) -> usize;
    /// Score of the segment starting at `i` of length `d` with label `y`.
    fn segment(&self, i: usize, d: usize, y: usize) -> f64;
    /// Score of a segment labelled `i` followed directly by one labelled `j`.
    fn transition(&self, i: usize, j: usize) -> f64;
    /// Score of the first segment's label (default 0).
    fn start(&self, _y: usize) -> f64 {
        0.0
    }
    /// Score of the last segment's label (default 0).
    fn end(&self, _y: usize) -> f64 {
        0.0
    }
    /// Whether the input is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Writes the `k` scores of segment `(i, d)` into `out` (one per label).
    fn segment_scores_into(&self, i: usize, d: usize, out: &mut [f64]) {
        for (y, o) in out.iter_mut().enumerate() {
            *o = self.segment(i, d, y);
        }
    }
    /// All segment scores at once, when stored that way: `n·L·k` values, the
    /// score of `(i, d, y)` at `(i·L + d − 1)·k + y`, with `-inf` (or any
    /// score: they are not read) for segments past the end. Lets the
    /// algorithms check and lift them in one pass.
    fn segment_rows(&self) -> Option<&[f64]> {
        None
    }
}

/// Dense semi-Markov potentials: every segment score in one row-major array
/// (see [`SegmentPotentials::segment_rows`] for the layout), a `k × k`
/// transition matrix, start and end vectors.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseSemiMarkov {
    n: usize,
    k: usize,
    max_len: usize,
    segments: Vec<f64>,
    transitions: Vec<f64>,
    start: Vec<f64>,
    end: Vec<f64>,
}

impl DenseSemiMarkov {
    /// An input of length `n` with `k` labels and segments of up to `max_len`
    /// positions, every score 0 (segments past the end `-inf`).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `k` or `max_len` is 0.
    pub fn new(n: usize, k: usize, max_len: usize) -> Result<Self> {
        Self::from_fn(n, k, max_len, |_, _, _| 0.0)
    }

    /// Like [`new`](Self::new), with segment scores `f(i, d, y)` (called only
    /// for segments inside the input).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `k` or `max_len` is 0.
    pub fn from_fn(n: usize, k: usize, max_len: usize, mut f: impl FnMut(usize, usize, usize) -> f64) -> Result<Self> {
        if k == 0 {
            return Err(Error::shape("labels", "at least 1".into(), "0".into()));
        }
        if max_len == 0 {
            return Err(Error::shape("maximum segment length", "at least 1".into(), "0".into()));
        }
        let mut segments = vec![f64::NEG_INFINITY; n * max_len * k];
        for i in 0..n {
            for d in 1..=max_len.min(n - i) {
                for y in 0..k {
                    segments[(i * max_len + d - 1) * k + y] = f(i, d, y);
                }
            }
        }
        Ok(DenseSemiMarkov {
            n,
            k,
            max_len,
            segments,
            transitions: vec![0.0; k * k],
            start: vec![0.0; k],
            end: vec![0.0; k],
        })
    }

    /// The chain `p` as a semi-Markov model with `L = 1`: each position is a
    /// segment of length 1 scoring the position's emission. Every answer of
    /// the semi-Markov algorithms on it equals the chain's.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `k = 0` or the chain's transitions vary
    /// with the position (a semi-Markov model has one transition matrix).
    pub fn from_chain<P: Potentials + ?Sized>(p: &P) -> Result<Self> {
        if p.has_varying_transitions() {
            return Err(Error::shape(
                "transitions",
                "one matrix for every position".into(),
                "position-dependent transitions".into(),
            ));
        }
        let mut s = Self::from_fn(p.len(), p.num_labels(), 1, |i, _, y| p.emission(i, y))?;
        let k = s.k;
        p.transitions_into(&mut s.transitions);
        for y in 0..k {
            s.start[y] = p.start(y);
            s.end[y] = p.end(y);
        }
        Ok(s)
    }

    /// Index of segment `(i, d, y)` in [`segments`](Self::segments).
    #[inline]
    pub fn index(&self, i: usize, d: usize, y: usize) -> usize {
        debug_assert!(d >= 1 && d <= self.max_len && y < self.k);
        (i * self.max_len + d - 1) * self.k + y
    }

    /// Sets the score of segment `(i, d, y)`.
    ///
    /// # Panics
    /// If the segment runs past the end of the input or `y ≥ k`.
    pub fn set_segment(&mut self, i: usize, d: usize, y: usize, score: f64) {
        assert!(
            d >= 1 && d <= self.max_len && i + d <= self.n && y < self.k,
            "segment ({i}, {d}, {y}) is outside the input (n = {}, L = {}, k = {})",
            self.n,
            self.max_len,
            self.k
        );
        let at = self.index(i, d, y);
        self.segments[at] = score;
    }

    /// Sets the `k × k` transition matrix (row-major, from row to column label).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless it has `k²` entries.
    pub fn with_transitions(mut self, transitions: &[f64]) -> Result<Self> {
        check_len("transitions", transitions.len(), self.k * self.k)?;
        self.transitions.copy_from_slice(transitions);
        Ok(self)
    }

    /// Sets the start scores.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless there are `k`.
    pub fn with_start(mut self, start: &[f64]) -> Result<Self> {
        check_len("start", start.len(), self.k)?;
        self.start.copy_from_slice(start);
        Ok(self)
    }

    /// Sets the end scores.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless there are `k`.
    pub fn with_end(mut self, end: &[f64]) -> Result<Self> {
        check_len("end", end.len(), self.k)?;
        self.end.copy_from_slice(end);
        Ok(self)
    }

    /// Every segment score (layout of [`SegmentPotentials::segment_rows`]).
    pub fn segments(&self) -> &[f64] {
        &self.segments
    }

    /// Every segment score, writable. Entries past the end are never read.
    pub fn segments_mut(&mut self) -> &mut [f64] {
        &mut self.segments
    }

    /// The transition matrix, row-major.
    pub fn transitions(&self) -> &[f64] {
        &self.transitions
    }

    /// The transition matrix, writable.
    pub fn transitions_mut(&mut self) -> &mut [f64] {
        &mut self.transitions
    }

    /// The start scores.
    pub fn start_scores(&self) -> &[f64] {
        &self.start
    }

    /// The start scores, writable.
    pub fn start_scores_mut(&mut self) -> &mut [f64] {
        &mut self.start
    }

    /// The end scores.
    pub fn end_scores(&self) -> &[f64] {
        &self.end
    }

    /// The end scores, writable.
    pub fn end_scores_mut(&mut self) -> &mut [f64] {
        &mut self.end
    }
}

fn check_len(what: &'static str, got: usize, expected: usize) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(Error::shape(what, expected.to_string(), got.to_string()))
    }
}

impl SegmentPotentials for DenseSemiMarkov {
    fn len(&self) -> usize {
        self.n
    }
    fn num_labels(&self) -> usize {
        self.k
    }
    fn max_len(&self) -> usize {
        self.max_len
    }
    fn segment(&self, i: usize, d: usize, y: usize) -> f64 {
        self.segments[self.index(i, d, y)]
    }
    fn transition(&self, i: usize, j: usize) -> f64 {
        self.transitions[i * self.k + j]
    }
    fn start(&self, y: usize) -> f64 {
        self.start[y]
    }
    fn end(&self, y: usize) -> f64 {
        self.end[y]
    }
    fn segment_scores_into(&self, i: usize, d: usize, out: &mut [f64]) {
        let at = self.index(i, d, 0);
        out.copy_from_slice(&self.segments[at..at + self.k]);
    }
    fn segment_rows(&self) -> Option<&[f64]> {
        Some(&self.segments)
    }
}
