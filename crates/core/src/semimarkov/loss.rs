//! The semi-Markov CRF as a loss layer: the negative log-likelihood of a gold
//! segmentation and its gradient with respect to every score.
//!
//! `NLL = log Z − score(gold)`. Its gradient is a difference of expectations,
//! as for the chain: `∂NLL/∂s(i, d, y) = P(segment (i, d, y)) − 1[it is a gold
//! segment]`; for the transitions, the expected number of times a segment
//! labelled `y` is followed by one labelled `y′`, minus the gold count; for
//! the start and end scores, the probability of the first (last) segment's
//! label minus the gold indicator. Scores computed by a neural network or
//! from segment features plug in through [`SegmentPotentials`]; the gradient
//! has the layout of [`DenseSemiMarkov`](super::DenseSemiMarkov), so a caller
//! chains it to its own parameters.
//!
//! The transition gradient subtracts the gold pair boundary by boundary, so
//! each difference is formed at the size of one probability, not as the
//! difference of two counts as large as the input is long.

use super::{segmentation_score, Segment, SegmentPotentials, SemiMarkovWorkspace};
use crate::error::{Error, Result};
use crate::semiring::{Log, ProbabilitySemiring};

/// The gradient of the NLL with respect to every score.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SegmentGradient {
    /// `n·L·k`, the layout of
    /// [`SegmentPotentials::segment_rows`]; 0 for segments past the end.
    pub segments: Vec<f64>,
    /// `k × k`, row-major (from row label to column label).
    pub transitions: Vec<f64>,
    /// `k`.
    pub start: Vec<f64>,
    /// `k`.
    pub end: Vec<f64>,
}

/// Buffers for the semi-Markov NLL and its gradient, one input at a time, in
/// probability semiring `S` ([`Log`], exact for any scores, by default).
#[derive(Clone, Debug)]
pub struct SemiMarkovNll<S: ProbabilitySemiring = Log> {
    ws: SemiMarkovWorkspace<S>,
    grad: SegmentGradient,
}

impl<S: ProbabilitySemiring> Default for SemiMarkovNll<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: ProbabilitySemiring> SemiMarkovNll<S> {
    /// Empty buffers.
    pub fn new() -> Self {
        SemiMarkovNll {
            ws: SemiMarkovWorkspace::new(),
            grad: SegmentGradient::default(),
        }
    }

    /// The NLL of the segmentation `gold` under `p`; the gradient is then in
    /// [`gradient`](Self::gradient).
    ///
    /// # Errors
    /// As [`SemiMarkovWorkspace::forward`]; [`Error::InvalidSegmentation`]
    /// when `gold` is not a segmentation of the input or scores `-inf`.
    pub fn compute<P: SegmentPotentials + ?Sized>(&mut self, p: &P, gold: &[Segment]) -> Result<f64> {
        let gold_score = segmentation_score(p, gold)?;
        if gold_score == f64::NEG_INFINITY {
            return Err(Error::InvalidSegmentation {
                reason: "the gold segmentation scores -inf (a forbidden segment, transition, start or end)".into(),
            });
        }
        let (n, k, l) = (p.len(), p.num_labels(), p.max_len());
        let g = &mut self.grad;
        g.segments.resize(n * l * k, 0.0);
        g.transitions.clear();
        g.transitions.resize(k * k, 0.0);
        g.start.resize(k, 0.0);
        g.end.resize(k, 0.0);
        let log_z = self.ws.segment_marginals_into(p, &mut g.segments)?;
        let (Some(first), Some(last)) = (gold.first(), gold.last()) else {
            g.start.iter_mut().chain(g.end.iter_mut()).for_each(|x| *x = 0.0);
            return Ok(0.0);
        };
        for s in gold {
            g.segments[(s.start * l + s.len - 1) * k + s.label] -= 1.0;
        }
        // Gold boundaries in increasing order: the pair of labels at each.
        let mut next_gold = gold
            .windows(2)
            .map(|w| (w[1].start, w[0].label * k + w[1].label))
            .peekable();
        let transitions = &mut g.transitions;
        self.ws.for_each_transition_marginal(|t, xi| {
            if let Some(&(at, pair)) = next_gold.peek() {
                if at == t {
                    xi[pair] -= 1.0;
                    next_gold.next();
                }
            }
            for (o, x) in transitions.iter_mut().zip(xi.iter()) {
                *o += x;
            }
        });
        self.ws.boundary_label_marginals(&mut g.start, &mut g.end);
        g.start[first.label] -= 1.0;
        g.end[last.label] -= 1.0;
        Ok(log_z - gold_score)
    }

    /// The gradient of the last [`compute`](Self::compute).
    pub fn gradient(&self) -> &SegmentGradient {
        &self.grad
    }
}

/// The NLL of `gold` under `p` and its gradient (log semiring).
///
/// # Errors
/// As [`SemiMarkovNll::compute`].
pub fn nll<P: SegmentPotentials + ?Sized>(p: &P, gold: &[Segment]) -> Result<(f64, SegmentGradient)> {
    let mut w = SemiMarkovNll::<Log>::new();
    let value = w.compute(p, gold)?;
    Ok((value, w.grad))
}
