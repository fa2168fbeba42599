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
//!
//! Neural layers hand over one padded `batch × time × k` array with a [`Mask`]
//! ([`PaddedBatch`]); [`nll_masked`] gathers each sequence's unmasked positions
//! into one chain, runs the same per-chain code, scatters the gradients back
//! and reduces with a [`Reduction`] (`none`, `sum`, `mean`, `token_mean`: one
//! definition shared by every layer built on this crate). [`viterbi_masked`],
//! [`kbest_masked`] and [`marginals_masked`] decode such a batch.

use crate::chain::{balance_at, path_score, ChainWorkspace, Path};
use crate::error::{Error, Result};
use crate::potentials::{AllowedLabels, ChainView, Constrained, Potentials};
use crate::semiring::{Log, MaxPlus, Prob, ProbabilitySemiring};

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
    /// transitions) into `out` (`k × k`). For a path target this is
    /// [`ChainWorkspace::add_edge_marginals_minus_path`] (factored into one
    /// multiply-add per entry and edge in the exp-space semiring, each
    /// edge's difference kept exact); for partial labels, the difference of
    /// the model's and the clamped chain's marginals, formed edge by edge.
    ///
    /// # Panics
    /// If `out` is not `k²` long, or no [`evaluate`](Self::evaluate) has succeeded.
    pub fn add_transition_gradient(&mut self, scale: f64, out: &mut [f64]) {
        assert_eq!(out.len(), self.k * self.k, "the transition gradient is k × k");
        if self.partial {
            self.edge_gradients(|_, g| {
                for (o, x) in out.iter_mut().zip(g.iter()) {
                    *o += scale * x;
                }
            });
        } else {
            self.model.add_edge_marginals_minus_path(scale, &self.gold, out);
        }
    }

    /// The edge gradients `ξₜ − ξₜ(target)`, formed edge by edge, the entry
    /// most likely to cancel (a path's pair; the clamped chain's likeliest
    /// pair) as minus the sum of the others (see [`balance_at`]).
    fn edge_gradients(&mut self, mut f: impl FnMut(usize, &mut [f64])) {
        let k = self.k;
        if self.partial {
            let (clamped, target) = (&mut self.clamped, &mut self.edge_clamped);
            target.resize(k * k, 0.0);
            self.model.for_each_edge_marginal(|t, g| {
                clamped.edge_marginal_into(t, target);
                // The entry where the target is largest is where both sides
                // are near 1 when the model is sure.
                let mut top = 0;
                for (i, (x, q)) in g.iter_mut().zip(target.iter()).enumerate() {
                    *x -= q;
                    if *q > target[top] {
                        top = i;
                    }
                }
                balance_at(g, top);
                f(t, g);
            });
        } else {
            let gold = &self.gold;
            self.model.for_each_edge_marginal(|t, g| {
                balance_at(g, gold[t - 1] * k + gold[t]);
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
    one_sequence_view::<S>(&view, gold)
}

/// The NLL of one chain with its node gradient and its summed transition
/// gradient: the one per-sequence computation behind every batch entry point.
fn one_sequence_view<S: ProbabilitySemiring>(view: &ChainView<'_>, gold: &[usize]) -> Result<OneLoss> {
    let mut ws = NllWorkspace::<S>::new();
    let nll = ws.evaluate(view, Target::Path(gold))?;
    let mut transition_grad = vec![0.0; view.k * view.k];
    ws.add_transition_gradient(1.0, &mut transition_grad);
    Ok(OneLoss {
        nll,
        emission_grad: ws.node_grad,
        transition_grad,
    })
}

/// The per-chain NLL in the scaled-probability semiring ([`Prob`], several
/// times faster: multiply-adds instead of an `exp` per label pair) when the
/// scores fit its range, in the log semiring otherwise or if it fails. Both
/// are exact to rounding; `Prob` only loses scores more than ~700 below their
/// row's best, which [`fits_exp_range`] rules out.
fn one_sequence_fast_or_exact(view: &ChainView<'_>, gold: &[usize]) -> Result<OneLoss> {
    if fits_exp_range(view) {
        if let Ok(r) = one_sequence_view::<Prob>(view, gold) {
            return Ok(r);
        }
    }
    one_sequence_view::<Log>(view, gold)
}

/// Whether [`Prob`] represents these scores without underflow: within each
/// emission row, the transition matrix, the start and the end scores, the
/// finite scores lie within 600 of each other (`e^-600` is still normal).
fn fits_exp_range(view: &ChainView<'_>) -> bool {
    let spread_ok = |xs: &[f64]| {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for &x in xs.iter().filter(|x| **x > f64::NEG_INFINITY) {
            lo = lo.min(x);
            hi = hi.max(x);
        }
        lo > hi || hi - lo <= 600.0
    };
    spread_ok(view.transitions)
        && spread_ok(view.start)
        && spread_ok(view.end)
        && view.emissions.chunks_exact(view.k).all(spread_ok)
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

/// [`nll_batch`] in a chosen semiring (e.g. [`crate::Prob`] for speed
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
/// is cut to its length before anything is computed. This is [`nll_masked`]
/// with a length mask and [`Reduction::Mean`].
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
    let batch = PaddedBatch::new(emissions, lengths.len(), n_max, params.k, Mask::Lengths(lengths))?;
    if lengths.is_empty() {
        return Err(Error::shape("batch", "at least one sequence".into(), "0".into()));
    }
    let r = nll_masked(params, &batch, gold, Reduction::Mean)?;
    Ok(PaddedLoss {
        mean: r.loss,
        per_sequence: r.per_sequence,
        emission_grad: r.emission_grad,
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

/// How the losses of a batch's sequences become the loss a layer reports (and
/// whose gradient it returns). One definition for every layer built on this
/// crate (the candle layer, the Python layer), so the names mean the same
/// everywhere: `"none"`, `"sum"`, `"mean"`, `"token_mean"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Reduction {
    /// One loss per sequence; gradients are those of their sum (an upstream
    /// gradient of 1 for every sequence).
    None,
    /// The sum of the sequences' losses.
    Sum,
    /// The sum divided by the batch size (all-masked sequences count).
    #[default]
    Mean,
    /// The sum divided by the number of unmasked tokens in the batch (0 when
    /// there are none): a per-token loss that does not depend on how the
    /// tokens were split into sequences.
    TokenMean,
}

impl Reduction {
    /// Every reduction, in the order of their names above.
    pub const ALL: [Reduction; 4] = [Reduction::None, Reduction::Sum, Reduction::Mean, Reduction::TokenMean];

    /// The name [`FromStr`](std::str::FromStr) accepts: `none`, `sum`, `mean`, `token_mean`.
    pub fn name(self) -> &'static str {
        match self {
            Reduction::None => "none",
            Reduction::Sum => "sum",
            Reduction::Mean => "mean",
            Reduction::TokenMean => "token_mean",
        }
    }

    /// The weight of each sequence's loss in the reduced loss: 1 for `none` and
    /// `sum`, `1 / batch` for `mean`, `1 / tokens` for `token_mean` (0 when a
    /// count is 0, so an empty batch has loss 0 rather than NaN).
    pub fn weight(self, batch: usize, tokens: usize) -> f64 {
        let inverse = |n: usize| if n == 0 { 0.0 } else { 1.0 / n as f64 };
        match self {
            Reduction::None | Reduction::Sum => 1.0,
            Reduction::Mean => inverse(batch),
            Reduction::TokenMean => inverse(tokens),
        }
    }
}

impl std::fmt::Display for Reduction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Reduction {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Reduction::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| Error::UnknownReduction(s.to_string()))
    }
}

/// Which positions of a padded `batch × time` array belong to the sequences.
///
/// A masked (off) position is skipped: the chain joins across it, so the label
/// before it is followed directly by the label after it (the state carries
/// over). Right padding is the common case, but a mask may have holes, its
/// first step need not be on, and a sequence may be all masked (an empty
/// chain: loss 0, no gradient, an empty path).
#[derive(Clone, Copy, Debug)]
pub enum Mask<'a> {
    /// Every position is on.
    Full,
    /// One length per sequence: positions `0..lengthᵢ` are on.
    Lengths(&'a [usize]),
    /// `batch × time` flags, row-major, `true` = on.
    Flags(&'a [bool]),
}

/// A padded batch of emission scores, `batch × time × k` row-major
/// (`[(i·time + t)·k + y]`), with the mask that says which positions count.
#[derive(Clone, Copy, Debug)]
pub struct PaddedBatch<'a> {
    emissions: &'a [f64],
    batch: usize,
    time: usize,
    k: usize,
    mask: Mask<'a>,
}

/// The positions of one sequence that are on.
enum Kept {
    /// `0..len` (no gather needed: the rows are one slice).
    Prefix(usize),
    /// Any other pattern, in increasing order.
    Positions(Vec<usize>),
}

impl Kept {
    fn len(&self) -> usize {
        match self {
            Kept::Prefix(l) => *l,
            Kept::Positions(p) => p.len(),
        }
    }
    fn position(&self, j: usize) -> usize {
        match self {
            Kept::Prefix(_) => j,
            Kept::Positions(p) => p[j],
        }
    }
}

impl<'a> PaddedBatch<'a> {
    /// Checks the shapes: `emissions` is `batch × time × k`, a length mask has
    /// `batch` lengths of at most `time`, a flag mask has `batch × time` flags.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] naming what does not fit.
    pub fn new(emissions: &'a [f64], batch: usize, time: usize, k: usize, mask: Mask<'a>) -> Result<Self> {
        if k == 0 {
            return Err(Error::shape("labels", "at least 1".into(), "0".into()));
        }
        if Some(emissions.len()) != batch.checked_mul(time).and_then(|bt| bt.checked_mul(k)) {
            return Err(Error::shape(
                "padded emissions",
                format!("batch × time × labels = {batch}×{time}×{k}"),
                format!("{} values", emissions.len()),
            ));
        }
        match mask {
            Mask::Full => {}
            Mask::Lengths(lengths) => {
                if lengths.len() != batch {
                    return Err(Error::shape(
                        "sequence lengths",
                        format!("one per sequence ({batch})"),
                        lengths.len().to_string(),
                    ));
                }
                if let Some((i, &l)) = lengths.iter().enumerate().find(|(_, &l)| l > time) {
                    return Err(Error::InSequence {
                        index: i,
                        source: Box::new(Error::shape("length", format!("at most time = {time}"), l.to_string())),
                    });
                }
            }
            Mask::Flags(flags) => {
                if flags.len() != batch * time {
                    return Err(Error::shape(
                        "mask",
                        format!("batch × time = {batch}×{time}"),
                        format!("{} flags", flags.len()),
                    ));
                }
            }
        }
        Ok(PaddedBatch {
            emissions,
            batch,
            time,
            k,
            mask,
        })
    }

    /// Number of sequences.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Padded length.
    pub fn time(&self) -> usize {
        self.time
    }

    /// Number of labels.
    pub fn num_labels(&self) -> usize {
        self.k
    }

    /// Whether position `t` of sequence `i` is on.
    pub fn is_on(&self, i: usize, t: usize) -> bool {
        match self.mask {
            Mask::Full => true,
            Mask::Lengths(l) => t < l[i],
            Mask::Flags(f) => f[i * self.time + t],
        }
    }

    /// The positions of sequence `i` that are on, in order: where the labels of
    /// a decoded path (one per kept position) belong in the padded array.
    pub fn kept_positions(&self, i: usize) -> Vec<usize> {
        (0..self.time).filter(|&t| self.is_on(i, t)).collect()
    }

    /// Number of positions that are on, over the whole batch.
    pub fn tokens(&self) -> usize {
        (0..self.batch).map(|i| self.kept(i).len()).sum()
    }

    fn kept(&self, i: usize) -> Kept {
        match self.mask {
            Mask::Full => Kept::Prefix(self.time),
            Mask::Lengths(l) => Kept::Prefix(l[i]),
            Mask::Flags(f) => {
                let row = &f[i * self.time..(i + 1) * self.time];
                let on = row.iter().filter(|&&x| x).count();
                if row[..on].iter().all(|&x| x) {
                    Kept::Prefix(on)
                } else {
                    Kept::Positions((0..self.time).filter(|&t| row[t]).collect())
                }
            }
        }
    }

    /// The emission rows of sequence `i`'s kept positions: borrowed when they
    /// are a prefix, gathered otherwise.
    fn rows(&self, i: usize, kept: &Kept) -> std::borrow::Cow<'a, [f64]> {
        let (k, base) = (self.k, i * self.time * self.k);
        match kept {
            Kept::Prefix(l) => std::borrow::Cow::Borrowed(&self.emissions[base..base + l * k]),
            Kept::Positions(p) => {
                let mut rows = Vec::with_capacity(p.len() * k);
                for &t in p {
                    rows.extend_from_slice(&self.emissions[base + t * k..base + (t + 1) * k]);
                }
                std::borrow::Cow::Owned(rows)
            }
        }
    }

    /// Runs `f` on the chain of every sequence's kept positions (in parallel
    /// with the `parallel` feature), results in batch order. An all-masked
    /// sequence gets `empty()` instead. Errors name the sequence and the padded
    /// position.
    fn map_chains<T: Send>(
        &self,
        params: &CrfParams<'_>,
        empty: impl Fn() -> T + Sync + Send,
        f: impl Fn(usize, &Kept, &ChainView<'_>) -> Result<T> + Sync + Send,
    ) -> Result<Vec<T>> {
        if params.k != self.k {
            return Err(Error::shape(
                "labels",
                format!("the CRF's {}", params.k),
                format!("{} in the emissions", self.k),
            ));
        }
        let results = map_indexed(self.batch, |i| {
            let kept = self.kept(i);
            if kept.len() == 0 {
                return Ok(empty());
            }
            let rows = self.rows(i, &kept);
            let located = |e: Error| locate(e, i, &kept);
            let view =
                ChainView::new(&rows, params.transitions, params.start, params.end, params.k).map_err(located)?;
            f(i, &kept, &view).map_err(located)
        });
        results.into_iter().collect()
    }
}

/// Names the sequence of a per-chain error and maps its chain position back to
/// the padded one.
fn locate(e: Error, index: usize, kept: &Kept) -> Error {
    let at = |p: Option<usize>| p.map(|j| kept.position(j));
    let e = match e {
        Error::InvalidScore {
            what,
            position,
            index,
            value,
        } => Error::InvalidScore {
            what,
            position: at(position),
            index,
            value,
        },
        Error::LabelOutOfRange {
            position,
            label,
            num_labels,
        } => Error::LabelOutOfRange {
            position: kept.position(position),
            label,
            num_labels,
        },
        Error::NoFeasiblePath { position } => Error::NoFeasiblePath { position: at(position) },
        other => other,
    };
    Error::InSequence {
        index,
        source: Box::new(e),
    }
}

/// Loss and gradients of a masked, padded batch ([`nll_masked`]).
#[derive(Clone, Debug, PartialEq)]
pub struct MaskedLoss {
    /// The reduced loss `Σᵢ wᵢ·NLLᵢ` (for [`Reduction::None`], the plain sum).
    pub loss: f64,
    /// The NLL of each sequence, unweighted (0 for an all-masked one).
    pub per_sequence: Vec<f64>,
    /// Number of unmasked positions in the batch.
    pub tokens: usize,
    /// `∂loss/∂emissions`, `batch × time × k` like the input, 0 at masked positions.
    pub emission_grad: Vec<f64>,
    /// `∂loss/∂transitions` (`k × k`).
    pub transition_grad: Vec<f64>,
    /// `∂loss/∂start` (`k`; empty when no start scores were given).
    pub start_grad: Vec<f64>,
    /// `∂loss/∂end` (`k`; empty when no end scores were given).
    pub end_grad: Vec<f64>,
}

/// NLL and exact gradients (f64; the scaled-probability semiring when the
/// scores fit its range, the log semiring otherwise) of a padded batch under
/// a mask, reduced by `reduction`. `tags` holds `batch × time` gold labels; those at
/// masked positions are ignored, whatever they hold. Each sequence's kept
/// positions form one chain (see [`Mask`]) that the per-chain
/// [`NllWorkspace`] evaluates; gradients are scattered back to the padded
/// positions.
///
/// # Errors
/// Shape errors; for a sequence, [`Error::InSequence`] around an invalid
/// score, a label out of range, or a gold path forbidden by the scores
/// (positions are padded positions).
pub fn nll_masked(
    params: &CrfParams<'_>,
    batch: &PaddedBatch<'_>,
    tags: &[usize],
    reduction: Reduction,
) -> Result<MaskedLoss> {
    let w = reduction.weight(batch.batch, batch.tokens());
    nll_masked_weighted(params, batch, tags, &vec![w; batch.batch])
}

/// [`nll_masked`] with an explicit weight per sequence: `loss = Σᵢ wᵢ·NLLᵢ` and
/// the gradients are of that sum. This is the backward pass of an unreduced
/// loss, given the upstream gradient of each sequence's loss.
///
/// # Errors
/// As [`nll_masked`]; a shape error when `weights` is not one per sequence.
pub fn nll_masked_weighted(
    params: &CrfParams<'_>,
    batch: &PaddedBatch<'_>,
    tags: &[usize],
    weights: &[f64],
) -> Result<MaskedLoss> {
    let (b, time, k) = (batch.batch, batch.time, params.k);
    if tags.len() != b * time {
        return Err(Error::shape(
            "tags",
            format!("batch × time = {b}×{time}"),
            format!("{} labels", tags.len()),
        ));
    }
    if weights.len() != b {
        return Err(Error::shape(
            "sequence weights",
            format!("one per sequence ({b})"),
            weights.len().to_string(),
        ));
    }
    let results = batch.map_chains(
        params,
        || None,
        |i, kept, view| {
            let gold: Vec<usize> = (0..kept.len()).map(|j| tags[i * time + kept.position(j)]).collect();
            one_sequence_fast_or_exact(view, &gold).map(Some)
        },
    )?;
    let mut out = MaskedLoss {
        loss: 0.0,
        per_sequence: Vec::with_capacity(b),
        tokens: 0,
        emission_grad: vec![0.0; b * time * k],
        transition_grad: vec![0.0; k * k],
        start_grad: vec![0.0; if params.start.is_empty() { 0 } else { k }],
        end_grad: vec![0.0; if params.end.is_empty() { 0 } else { k }],
    };
    for (i, r) in results.into_iter().enumerate() {
        let Some(r) = r else {
            out.per_sequence.push(0.0);
            continue;
        };
        let w = weights[i];
        out.per_sequence.push(r.nll);
        out.loss += w * r.nll;
        for (o, g) in out.transition_grad.iter_mut().zip(&r.transition_grad) {
            *o += w * g;
        }
        let n = r.emission_grad.len() / k;
        out.tokens += n;
        for (o, g) in out.start_grad.iter_mut().zip(&r.emission_grad[..k]) {
            *o += w * g;
        }
        for (o, g) in out.end_grad.iter_mut().zip(&r.emission_grad[(n - 1) * k..]) {
            *o += w * g;
        }
        let kept = batch.kept(i);
        for j in 0..n {
            let t = kept.position(j);
            let dst = &mut out.emission_grad[(i * time + t) * k..(i * time + t + 1) * k];
            for (o, g) in dst.iter_mut().zip(&r.emission_grad[j * k..(j + 1) * k]) {
                *o = w * g;
            }
        }
    }
    Ok(out)
}

/// Viterbi decoding of a masked, padded batch: one best path per sequence,
/// with a label for each kept position in order
/// ([`PaddedBatch::kept_positions`] says where they go); an all-masked
/// sequence gets the empty path of score 0.
///
/// # Errors
/// Shape errors; [`Error::InSequence`] around invalid scores or a sequence
/// with no allowed path.
pub fn viterbi_masked(params: &CrfParams<'_>, batch: &PaddedBatch<'_>) -> Result<Vec<Path>> {
    batch.map_chains(params, empty_path, |_, _, view| {
        ChainWorkspace::<MaxPlus>::new().viterbi(view)
    })
}

/// The `count` best paths of each sequence, best first (fewer when fewer
/// paths are allowed), labels on the kept positions as in [`viterbi_masked`].
///
/// # Errors
/// As [`viterbi_masked`]; [`Error::TooLarge`] as [`ChainWorkspace::kbest`].
pub fn kbest_masked(params: &CrfParams<'_>, batch: &PaddedBatch<'_>, count: usize) -> Result<Vec<Vec<Path>>> {
    let empty = || if count == 0 { Vec::new() } else { vec![empty_path()] };
    batch.map_chains(params, empty, |_, _, view| {
        ChainWorkspace::<MaxPlus>::new().kbest(view, count)
    })
}

fn empty_path() -> Path {
    Path {
        labels: Vec::new(),
        score: 0.0,
    }
}

/// Node marginals of a masked, padded batch ([`marginals_masked`]).
#[derive(Clone, Debug, PartialEq)]
pub struct MaskedMarginals {
    /// `P(yₜ = y)`, `batch × time × k`; rows of masked positions are 0.
    pub marginals: Vec<f64>,
    /// log Z of each sequence (0 for an all-masked one).
    pub log_z: Vec<f64>,
}

/// Node marginals and log Z of every sequence of a masked, padded batch.
///
/// # Errors
/// As [`viterbi_masked`].
pub fn marginals_masked(params: &CrfParams<'_>, batch: &PaddedBatch<'_>) -> Result<MaskedMarginals> {
    let k = params.k;
    let results = batch.map_chains(
        params,
        || (0.0, Vec::new()),
        |_, _, view| {
            let mut m = vec![0.0; view.len() * k];
            let log_z = ChainWorkspace::<Log>::new().marginals_into(view, &mut m)?;
            Ok((log_z, m))
        },
    )?;
    let time = batch.time;
    let mut out = MaskedMarginals {
        marginals: vec![0.0; batch.batch * time * k],
        log_z: Vec::with_capacity(batch.batch),
    };
    for (i, (log_z, m)) in results.into_iter().enumerate() {
        out.log_z.push(log_z);
        let kept = batch.kept(i);
        for (j, row) in m.chunks_exact(k).enumerate() {
            let t = kept.position(j);
            out.marginals[(i * time + t) * k..(i * time + t + 1) * k].copy_from_slice(row);
        }
    }
    Ok(out)
}
