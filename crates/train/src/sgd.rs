//! Stochastic gradient descent over sequences, as a warm start for L-BFGS.
//!
//! Why: L-BFGS needs a full pass over the corpus per step and on a large
//! corpus spends its first few dozen iterations just finding the scale of the
//! weights. One SGD epoch costs about one such pass, yet moves the weights
//! once per sequence; a handful of epochs lands close to the optimum, and
//! L-BFGS started there needs far fewer iterations to converge (the same idea
//! as CRFsuite's `l2sgd` and Wapiti's `sgd-l1`, here as the first stage).
//!
//! The method is Bottou's SGD for L2-regularized objectives, the one CRFsuite
//! uses. The objective `Σᵢ NLLᵢ(w) + c2·‖w‖²` is split into per-sequence terms
//! `NLLᵢ(w) + (λ/2)·‖w‖²` with `λ = 2·c2/N`. The weights are kept as
//! `scale · v`, so the decay `w ← (1 − ηλ)·w` of every step touches one number
//! and only the weights of the sequence's attributes are written. The
//! learning rate is `η_t = 1 / (λ·(t₀ + t))` (`t` counts sequences), and
//! `t₀ = 1/(λ·η₀)` comes from a calibration: `η₀` candidates, doubling or
//! halving from 0.1, each run one pass over a sample of up to 1000 sequences
//! from the starting weights, and the one with the lowest sample objective wins.
//!
//! Deterministic: sequences are visited in an order shuffled by a fixed seed,
//! on one thread. Weights that are not trainable (unobserved pairs, forbidden
//! transitions) stay exactly zero. `c1` plays no part here; OWL-QN applies it
//! afterwards.

use crate::data::Dataset;
use crate::error::TrainError;
use crate::objective::{EvalError, Scratch};
use chaincrf_model::{Structure, WeightLayout};
use std::sync::atomic::{AtomicBool, Ordering};

/// Learning rate the calibration tries first (CRFsuite's `calibration.eta`).
const CALIBRATION_ETA: f64 = 0.1;
/// Factor between calibration candidates (CRFsuite's `calibration.rate`).
const CALIBRATION_RATE: f64 = 2.0;
/// Sequences in the calibration sample (CRFsuite's `calibration.samples`).
const CALIBRATION_SAMPLES: usize = 1000;
/// Candidates tried in each direction at most.
const CALIBRATION_TRIALS: usize = 10;
/// When the weight scale falls below this, it is folded into the weights.
const MIN_SCALE: f64 = 1e-9;
/// Sequences between two looks at the stop flag.
const STOP_CHECK_EVERY: usize = 256;
/// Seed of the visiting order.
const SEED: u64 = 0x5eed_c0ff_ee00_0001;

/// What the per-epoch callback of [`run_sgd`] sees.
#[derive(Debug)]
pub(crate) struct SgdEpoch<'a> {
    /// Epoch number (1-based).
    pub epoch: usize,
    /// The sum of the sequences' losses as they were visited, plus `c2·‖w‖²`
    /// at the end of the epoch (CRFsuite's figure; a running estimate of the
    /// objective, not an exact evaluation).
    pub objective: f64,
    /// The learning rate at the end of the epoch.
    pub learning_rate: f64,
    /// The weights at the end of the epoch, in the full layout.
    pub weights: &'a [f64],
}

/// The result of [`run_sgd`].
#[derive(Clone, Debug)]
pub(crate) struct SgdOutcome {
    /// The weights, in the full layout (start L-BFGS from them).
    pub weights: Vec<f64>,
    /// Epochs run to the end (fewer than asked when the stop flag was set;
    /// the weights then include the interrupted epoch's steps).
    pub epochs: usize,
    /// The last finished epoch's objective estimate ([`SgdEpoch::objective`];
    /// NaN when none finished).
    pub objective: f64,
    /// The calibrated initial learning rate `η₀`.
    #[cfg_attr(not(test), allow(dead_code))]
    pub initial_learning_rate: f64,
}

/// Runs `epochs` epochs of SGD on `Σ NLLᵢ + c2·‖w‖²` from `start` (the
/// full layout, untrainable weights zero; see the module documentation),
/// reporting each epoch; a set `stop` flag ends it within a few hundred
/// sequences.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_sgd(
    data: &Dataset,
    structure: &Structure,
    c2: f64,
    stop: Option<&AtomicBool>,
    epochs: usize,
    layout: WeightLayout,
    mask: &[bool],
    start: Vec<f64>,
    on_epoch: &mut dyn FnMut(&SgdEpoch<'_>),
) -> Result<SgdOutcome, TrainError> {
    let stop_requested = || stop.is_some_and(|f| f.load(Ordering::SeqCst));
    let mut sgd = Sgd::new(data, structure, layout, mask, start, 2.0 * c2 / data.len() as f64);
    let mut rng = SplitMix(SEED);
    let mut order: Vec<usize> = (0..data.len()).collect();
    rng.shuffle(&mut order);
    let eta0 = sgd.calibrate(&order[..order.len().min(CALIBRATION_SAMPLES)])?;
    sgd.reset();
    sgd.start = Vec::new();
    let t0 = 1.0 / (sgd.lambda * eta0);
    let mut t = 0.0;
    let mut done = 0;
    let mut full = vec![0.0; layout.len()];
    let mut objective = f64::NAN;
    'epochs: while done < epochs {
        rng.shuffle(&mut order);
        let mut loss = 0.0;
        for (j, &i) in order.iter().enumerate() {
            // An interrupt is honoured within a second or so, mid-epoch.
            if j % STOP_CHECK_EVERY == 0 && stop_requested() {
                break 'epochs;
            }
            loss += sgd.step(i, 1.0 / (sgd.lambda * (t0 + t)))?;
            t += 1.0;
        }
        done += 1;
        sgd.weights_into(&mut full);
        let norm2: f64 = full.iter().map(|w| w * w).sum();
        objective = loss + c2 * norm2;
        on_epoch(&SgdEpoch {
            epoch: done,
            objective,
            learning_rate: 1.0 / (sgd.lambda * (t0 + t)),
            weights: &full,
        });
    }
    sgd.weights_into(&mut full);
    Ok(SgdOutcome {
        weights: full,
        epochs: done,
        objective,
        initial_learning_rate: eta0,
    })
}

/// The SGD state: weights as `scale · v`, and per-sequence buffers.
struct Sgd<'d> {
    data: &'d Dataset,
    structure: &'d Structure,
    layout: WeightLayout,
    trainable: &'d [bool],
    /// Per-sequence regularization strength `2·c2/N`.
    lambda: f64,
    /// The weights every run (calibration trials, then the epochs) starts from.
    start: Vec<f64>,
    v: Vec<f64>,
    scale: f64,
    scratch: Scratch,
    node: Vec<f64>,
    edge: Vec<f64>,
    trans: Vec<f64>,
}

impl<'d> Sgd<'d> {
    fn new(
        data: &'d Dataset,
        structure: &'d Structure,
        layout: WeightLayout,
        trainable: &'d [bool],
        start: Vec<f64>,
        lambda: f64,
    ) -> Self {
        Sgd {
            data,
            structure,
            layout,
            trainable,
            lambda,
            v: start.clone(),
            start,
            scale: 1.0,
            scratch: Scratch::new(),
            node: Vec::new(),
            edge: Vec::new(),
            trans: vec![0.0; layout.k * layout.k],
        }
    }

    fn reset(&mut self) {
        self.v.copy_from_slice(&self.start);
        self.scale = 1.0;
    }

    /// The current weights `scale · v` into `out`.
    fn weights_into(&self, out: &mut [f64]) {
        for (o, &x) in out.iter_mut().zip(&self.v) {
            *o = self.scale * x;
        }
    }

    /// The NLL of sequence `i` at the current weights, with its gradient in
    /// `node`, `edge` (when it has edge attributes) and `trans`.
    fn gradient(&mut self, i: usize) -> Result<f64, EvalError> {
        let (k, kk) = (self.layout.k, self.layout.k * self.layout.k);
        let obs = self.data.arena.sequence(i);
        self.node.resize(obs.len() * k, 0.0);
        self.edge
            .resize(if obs.has_edge_attributes() { obs.len() * kk } else { 0 }, 0.0);
        self.trans.fill(0.0);
        self.scratch.sequence(
            self.data,
            i,
            &self.layout.view(&self.v),
            self.scale,
            self.structure,
            &mut self.node,
            &mut self.edge,
            &mut self.trans,
        )
    }

    /// The NLL of sequence `i` at the current weights, followed by one step
    /// with learning rate `eta` on `NLLᵢ + (λ/2)·‖w‖²`.
    fn step(&mut self, i: usize, eta: f64) -> Result<f64, EvalError> {
        let (k, layout) = (self.layout.k, self.layout);
        let kk = k * k;
        let obs = self.data.arena.sequence(i);
        let (n, has_edges) = (obs.len(), obs.has_edge_attributes());
        let nll = self.gradient(i)?;
        // Decay every weight by (1 − ηλ) through the scale, then add the
        // sequence's gradient to the weights it touches.
        self.scale *= 1.0 - eta * self.lambda;
        if self.scale < MIN_SCALE {
            let s = self.scale;
            self.v.iter_mut().for_each(|x| *x *= s);
            self.scale = 1.0;
        }
        let gain = eta / self.scale;
        let (v, mask) = (&mut self.v[..], self.trainable);
        let update = |v: &mut [f64], at: usize, factor: f64, grad: &[f64]| {
            for ((w, &m), &g) in v[at..at + grad.len()]
                .iter_mut()
                .zip(&mask[at..at + grad.len()])
                .zip(grad)
            {
                if m {
                    *w -= factor * g;
                }
            }
        };
        for t in 0..n {
            let g = &self.node[t * k..(t + 1) * k];
            let (ids, values) = obs.state(t);
            for (j, &id) in ids.iter().enumerate() {
                let x = values.map_or(1.0, |vals| f64::from(vals[j]));
                update(v, id as usize * k, gain * x, g);
            }
            if has_edges && t > 0 {
                let g = &self.edge[t * kk..(t + 1) * kk];
                let (ids, values) = obs.edge(t);
                for (j, &id) in ids.iter().enumerate() {
                    let x = values.map_or(1.0, |vals| f64::from(vals[j]));
                    update(v, layout.edge_offset() + id as usize * kk, gain * x, g);
                }
            }
        }
        update(v, layout.transition_offset(), gain, &self.trans);
        if n > 0 {
            update(v, layout.start_offset(), gain, &self.node[..k]);
            update(v, layout.end_offset(), gain, &self.node[(n - 1) * k..]);
        }
        Ok(nll)
    }

    /// The objective on `sample` at the current weights, scaled to the sample:
    /// `Σ NLLᵢ + |sample|·(λ/2)·‖w‖²`.
    fn sample_objective(&mut self, sample: &[usize]) -> Result<f64, EvalError> {
        let mut loss = 0.0;
        for &i in sample {
            loss += self.gradient(i)?;
        }
        let norm2: f64 = self.v.iter().map(|x| x * x).sum::<f64>() * self.scale * self.scale;
        Ok(loss + sample.len() as f64 * 0.5 * self.lambda * norm2)
    }

    /// The sample objective after one pass over `sample` from the starting
    /// weights with initial learning rate `eta0`; infinite when the pass
    /// diverges (scores overflow, which the likelihood reports as an error:
    /// the data itself was checked at the starting weights).
    fn trial(&mut self, sample: &[usize], eta0: f64) -> f64 {
        self.reset();
        let t0 = 1.0 / (self.lambda * eta0);
        for (t, &i) in sample.iter().enumerate() {
            if self.step(i, 1.0 / (self.lambda * (t0 + t as f64))).is_err() {
                return f64::INFINITY;
            }
        }
        match self.sample_objective(sample) {
            Ok(f) if f.is_finite() => f,
            _ => f64::INFINITY,
        }
    }

    /// Picks `η₀`: from 0.1, doubling while the sample objective improves (or
    /// halving until it first beats the starting weights'), keeping the best.
    /// Candidates with `η₀·λ ≥ 1` would flip the sign of the decay and are
    /// not tried.
    fn calibrate(&mut self, sample: &[usize]) -> Result<f64, TrainError> {
        self.reset();
        let initial = self.sample_objective(sample)?;
        let limit = 1.0 / self.lambda;
        let mut eta = CALIBRATION_ETA.min(0.5 * limit);
        let mut best = (self.trial(sample, eta), eta);
        if best.0 < initial {
            for _ in 0..CALIBRATION_TRIALS {
                eta *= CALIBRATION_RATE;
                if eta >= limit {
                    break;
                }
                let f = self.trial(sample, eta);
                if f >= best.0 {
                    break;
                }
                best = (f, eta);
            }
        } else {
            for _ in 0..CALIBRATION_TRIALS {
                eta /= CALIBRATION_RATE;
                let f = self.trial(sample, eta);
                if f < best.0 {
                    best = (f, eta);
                }
                if f < initial {
                    break;
                }
            }
        }
        if !best.0.is_finite() {
            return Err(TrainError::Optimizer(
                format!(
                    "SGD calibration: every learning rate tried (down to {eta:.3e}) diverged on the sample; \
                     train without the SGD warm start"
                )
                .into(),
            ));
        }
        Ok(best.1)
    }
}

/// A small deterministic generator (SplitMix64) for the visiting order.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fisher–Yates shuffle.
    fn shuffle(&mut self, xs: &mut [usize]) {
        for i in (1..xs.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            xs.swap(i, j);
        }
    }
}
