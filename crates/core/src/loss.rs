//! The CRF as a loss layer: negative log-likelihood and its gradient.
//!
//! For one chain and a *target* — a gold path, or a set of allowed labels per
//! position (partial labels) — the loss is
//! `NLL = log Z(x) − log Z_target(x)`, where `Z_target` sums over the paths that
//! agree with the target (for a gold path, `exp(score(gold))`). Its gradient with
//! respect to every score is a difference of marginals:
//! `∂NLL/∂eₜ(y) = P(yₜ = y) − P_target(yₜ = y)`, and likewise for edges with edge
//! marginals; start and end gradients are the first and last rows of the node
//! gradient. [`NllWorkspace`] computes this for one chain and is what the
//! trainer uses per sequence; [`nll_batch`] and [`nll_padded`] wrap it for a
//! batch of emissions computed elsewhere (a neural network), in parallel over
//! the batch with a fixed-order (deterministic) reduction.

use crate::chain::{path_score, ChainWorkspace, Path};
use crate::error::{Error, Result};
use crate::potentials::{AllowedLabels, ChainView, Constrained, Potentials};
use crate::semiring::{Log, MaxPlus, ProbabilitySemiring};

/// What the likelihood's numerator sums over.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// One gold label per position.
    Path(&'a [usize]),
    /// Allowed labels per position (partial labels): every agreeing path counts.
    Allowed(&'a AllowedLabels),
}

/// Buffers for computing the NLL and its gradient on one chain at a time.
#[derive(Clone, Debug)]
pub struct NllWorkspace<S: ProbabilitySemiring> {
    model: ChainWorkspace<S>,
    clamped: ChainWorkspace<S>,
    node_grad: Vec<f64>,
    clamped_marginals: Vec<f64>,
    edge_clamped: Vec<f64>,
    gold: Vec<usize>,
    partial: bool,
    n: usize,
    k: usize,
}

impl<S: ProbabilitySemiring> Default for NllWorkspace<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: ProbabilitySemiring> NllWorkspace<S> {
    /// Empty buffers.
    pub fn new() -> Self {
        NllWorkspace {
            model: ChainWorkspace::new(),
            clamped: ChainWorkspace::new(),
            node_grad: Vec::new(),
            clamped_marginals: Vec::new(),
            edge_clamped: Vec::new(),
            gold: Vec::new(),
            partial: false,
            n: 0,
            k: 0,
        }
    }

    /// Computes `NLL = log Z − log Z_target` for `p` and keeps the marginals for
    /// the gradient accessors.
    ///
    /// # Errors
    /// As [`ChainWorkspace::forward`]; [`Error::NoFeasiblePath`] when the target
    /// itself is forbidden by the potentials; shape errors for a target that
    /// does not fit the chain.
    pub fn evaluate<P: Potentials + ?Sized>(&mut self, p: &P, target: Target<'_>) -> Result<f64> {
        let (n, k) = (p.len(), p.num_labels());
        self.n = n;
        self.k = k;
        self.node_grad.resize(n * k, 0.0);
        let log_z = self.model.forward_backward(p)?.log_value();
        self.model.node_marginals_into(&mut self.node_grad)?;
        let log_target = match target {
            Target::Path(gold) => {
                let s = path_score(p, gold)?;
                if s == f64::NEG_INFINITY {
                    return Err(Error::NoFeasiblePath { position: None });
                }
                self.partial = false;
                self.gold.clear();
                self.gold.extend_from_slice(gold);
                for (t, &y) in gold.iter().enumerate() {
                    self.node_grad[t * k + y] -= 1.0;
                }
                s
            }
            Target::Allowed(allowed) => {
                let c = Constrained::new(p, allowed)?;
                self.partial = true;
                self.clamped_marginals.resize(n * k, 0.0);
                let lz = self.clamped.marginals_into(&c, &mut self.clamped_marginals)?;
                for (g, q) in self.node_grad.iter_mut().zip(&self.clamped_marginals) {
                    *g -= q;
                }
                lz
            }
        };
        // log Z ≥ log Z_target mathematically; rounding can make tiny negatives.
        Ok((log_z - log_target).max(0.0))
    }

    /// `∂NLL/∂eₜ(y)` for the last [`evaluate`](Self::evaluate), `n × k` row-major.
    /// Row 0 is also the start-score gradient and row `n − 1` the end-score one.
    pub fn node_gradient(&self) -> &[f64] {
        &self.node_grad
    }

    /// Calls `f(t, g)` for each edge `t = 1..n` with `g[i·k + j] = ∂NLL/∂T_t(i, j)`
    /// (the transition score into position `t`).
    pub fn for_each_edge_gradient(&mut self, mut f: impl FnMut(usize, &[f64])) {
        self.edge_gradients(|t, g| f(t, g));
    }

    /// Adds `scale · ∂NLL/∂T` summed over edges (for position-independent
    /// transitions) into `out` (`k × k`).
    ///
    /// # Panics
    /// If `out` is not `k²` long, or no [`evaluate`](Self::evaluate) has succeeded.
    pub fn add_transition_gradient(&mut self, scale: f64, out: &mut [f64]) {
        assert_eq!(out.len(), self.k * self.k, "the transition gradient is k × k");
        self.edge_gradients(|_, g| {
            for (o, x) in out.iter_mut().zip(g.iter()) {
                *o += scale * x;
            }
        });
    }

    /// The edge gradients `ξₜ − ξₜ(target)`, formed edge by edge so that sums
    /// over a long chain keep the digits of the differences (see
    /// [`ChainWorkspace::add_edge_marginals`]).
    fn edge_gradients(&mut self, mut f: impl FnMut(usize, &mut [f64])) {
        let k = self.k;
        if self.partial {
            let (clamped, target) = (&mut self.clamped, &mut self.edge_clamped);
            target.resize(k * k, 0.0);
            self.model.for_each_edge_marginal(|t, g| {
                clamped.edge_marginal_into(t, target);
                for (x, q) in g.iter_mut().zip(target.iter()) {
                    *x -= q;
                }
                f(t, g);
            });
        } else {
            let gold = &self.gold;
            self.model.for_each_edge_marginal(|t, g| {
                g[gold[t - 1] * k + gold[t]] -= 1.0;
                f(t, g);
            });
        }
    }
}

/// Shared CRF parameters of a loss layer: transitions (`k × k`, row-major
/// `[i·k + j]`), start and end scores (`k` each, or empty for none).
#[derive(Clone, Copy, Debug)]
pub struct CrfParams<'a> {
    /// Transition scores, row-major.
    pub transitions: &'a [f64],
    /// Start scores (empty = all 0, and no gradient is reported).
    pub start: &'a [f64],
    /// End scores (empty = all 0).
    pub end: &'a [f64],
    /// Number of labels.
    pub k: usize,
}

/// Loss and gradients for a batch of variable-length sequences. Gradients are of
/// the **mean** loss over the batch.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchLoss {
    /// Mean NLL over the batch.
    pub mean: f64,
    /// NLL of each sequence.
    pub per_sequence: Vec<f64>,
    /// `∂mean/∂emissions` for each sequence (`nᵢ × k`, row-major).
    pub emission_grads: Vec<Vec<f64>>,
    /// `∂mean/∂transitions` (`k × k`).
    pub transition_grad: Vec<f64>,
    /// `∂mean/∂start` (`k`, empty when no start scores were given).
    pub start_grad: Vec<f64>,
    /// `∂mean/∂end` (`k`, empty when no end scores were given).
    pub end_grad: Vec<f64>,
}

/// Runs `f` over `0..len` in parallel (with the `parallel` feature) and returns
/// the results in index order.
fn map_indexed<T: Send, F>(len: usize, f: F) -> Vec<T>
where
    F: Fn(usize) -> T + Sync + Send,
{
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        (0..len).into_par_iter().map(f).collect()
    }
    #[cfg(not(feature = "parallel"))]
    {
        (0..len).map(f).collect()
    }
}

struct OneLoss {
    nll: f64,
    emission_grad: Vec<f64>,
    transition_grad: Vec<f64>,
}

fn one_sequence<S: ProbabilitySemiring>(params: &CrfParams<'_>, emissions: &[f64], gold: &[usize]) -> Result<OneLoss> {
    let view = ChainView::new(emissions, params.transitions, params.start, params.end, params.k)?;
    let mut ws = NllWorkspace::<S>::new();
    let nll = ws.evaluate(&view, Target::Path(gold))?;
    let mut transition_grad = vec![0.0; params.k * params.k];
    ws.add_transition_gradient(1.0, &mut transition_grad);
    Ok(OneLoss {
        nll,
        emission_grad: ws.node_grad,
        transition_grad,
    })
}

/// NLL and gradients for a batch of sequences of different lengths, exact (log
/// semiring). `batch[i] = (emissions nᵢ × k row-major, gold path of length nᵢ)`.
///
/// # Errors
/// Shape errors, invalid scores, or a gold path forbidden by the scores, naming
/// no sequence index (the first failing sequence's error is returned).
pub fn nll_batch(params: &CrfParams<'_>, batch: &[(&[f64], &[usize])]) -> Result<BatchLoss> {
    nll_batch_with::<Log>(params, batch)
}

/// [`nll_batch`] in a chosen semiring (e.g. [`crate::semiring::Prob`] for speed
/// when scores are moderate).
///
/// # Errors
/// As [`nll_batch`].
pub fn nll_batch_with<S: ProbabilitySemiring>(
    params: &CrfParams<'_>,
    batch: &[(&[f64], &[usize])],
) -> Result<BatchLoss> {
    let k = params.k;
    if batch.is_empty() {
        return Err(Error::ShapeMismatch {
            what: "batch",
            expected: "at least one sequence".into(),
            got: "0".into(),
        });
    }
    let results = map_indexed(batch.len(), |i| one_sequence::<S>(params, batch[i].0, batch[i].1));
    let b = batch.len() as f64;
    let mut out = BatchLoss {
        mean: 0.0,
        per_sequence: Vec::with_capacity(batch.len()),
        emission_grads: Vec::with_capacity(batch.len()),
        transition_grad: vec![0.0; k * k],
        start_grad: vec![0.0; if params.start.is_empty() { 0 } else { k }],
        end_grad: vec![0.0; if params.end.is_empty() { 0 } else { k }],
    };
    for r in results {
        let mut r = r?;
        out.per_sequence.push(r.nll);
        out.mean += r.nll;
        for (o, g) in out.transition_grad.iter_mut().zip(&r.transition_grad) {
            *o += g / b;
        }
        let n = r.emission_grad.len() / k;
        if n > 0 {
            for (o, g) in out.start_grad.iter_mut().zip(&r.emission_grad[..k]) {
                *o += g / b;
            }
            for (o, g) in out.end_grad.iter_mut().zip(&r.emission_grad[(n - 1) * k..]) {
                *o += g / b;
            }
        }
        r.emission_grad.iter_mut().for_each(|g| *g /= b);
        out.emission_grads.push(r.emission_grad);
    }
    out.mean /= b;
    Ok(out)
}

/// Loss and gradients for a padded batch.
#[derive(Clone, Debug, PartialEq)]
pub struct PaddedLoss {
    /// Mean NLL over the batch.
    pub mean: f64,
    /// NLL of each sequence.
    pub per_sequence: Vec<f64>,
    /// `∂mean/∂emissions`, `batch × n_max × k` like the input; 0 in the padding.
    pub emission_grad: Vec<f64>,
    /// `∂mean/∂transitions` (`k × k`).
    pub transition_grad: Vec<f64>,
    /// `∂mean/∂start` (`k`, empty when no start scores were given).
    pub start_grad: Vec<f64>,
    /// `∂mean/∂end` (`k`, empty when no end scores were given).
    pub end_grad: Vec<f64>,
}

/// NLL and gradients for one padded `batch × n_max × k` emission array with a
/// length per sequence and gold labels `batch × n_max` (padding positions are
/// ignored, whatever they hold). The padding changes no result: each sequence
/// is cut to its length before anything is computed.
///
/// # Errors
/// Shape errors (array sizes, a length above `n_max`), invalid scores in the
/// unpadded part, a gold path forbidden by the scores.
pub fn nll_padded(
    params: &CrfParams<'_>,
    emissions: &[f64],
    lengths: &[usize],
    n_max: usize,
    gold: &[usize],
) -> Result<PaddedLoss> {
    let (b, k) = (lengths.len(), params.k);
    if emissions.len() != b * n_max * k {
        return Err(Error::ShapeMismatch {
            what: "padded emissions",
            expected: format!("{b}×{n_max}×{k}"),
            got: emissions.len().to_string(),
        });
    }
    if gold.len() != b * n_max {
        return Err(Error::ShapeMismatch {
            what: "padded gold",
            expected: format!("{b}×{n_max}"),
            got: gold.len().to_string(),
        });
    }
    if let Some(&bad) = lengths.iter().find(|&&l| l > n_max) {
        return Err(Error::ShapeMismatch {
            what: "sequence length",
            expected: format!("at most n_max = {n_max}"),
            got: bad.to_string(),
        });
    }
    let batch: Vec<(&[f64], &[usize])> = lengths
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            (
                &emissions[i * n_max * k..(i * n_max + l) * k],
                &gold[i * n_max..i * n_max + l],
            )
        })
        .collect();
    let r = nll_batch(params, &batch)?;
    let mut emission_grad = vec![0.0; b * n_max * k];
    for (i, g) in r.emission_grads.iter().enumerate() {
        emission_grad[i * n_max * k..i * n_max * k + g.len()].copy_from_slice(g);
    }
    Ok(PaddedLoss {
        mean: r.mean,
        per_sequence: r.per_sequence,
        emission_grad,
        transition_grad: r.transition_grad,
        start_grad: r.start_grad,
        end_grad: r.end_grad,
    })
}

/// Viterbi decoding of a batch of emission matrices (`nᵢ × k`, row-major) under
/// shared transitions, in parallel; results in batch order.
///
/// # Errors
/// The first sequence's error (shapes, invalid scores, no allowed path).
pub fn viterbi_batch(params: &CrfParams<'_>, batch: &[&[f64]]) -> Result<Vec<Path>> {
    let results = map_indexed(batch.len(), |i| {
        let view = ChainView::new(batch[i], params.transitions, params.start, params.end, params.k)?;
        ChainWorkspace::<MaxPlus>::new().viterbi(&view)
    });
    results.into_iter().collect()
}
