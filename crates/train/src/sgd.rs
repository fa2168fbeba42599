//! Stochastic gradient descent for the L2-regularized likelihood: CRFsuite's
//! `l2sgd`, and the warm start that runs a few of its epochs before L-BFGS.
//!
//! Why a warm start: L-BFGS needs a full pass over the corpus per step and
//! on a large corpus spends its first few dozen iterations just finding the
//! scale of the weights. One SGD epoch costs about one such pass, yet moves
//! the weights once per sequence; a handful of epochs lands close to the
//! optimum, and L-BFGS started there needs far fewer iterations.
//!
//! The method is CRFsuite's (after Pegasos and Bottou's `sgd`). The
//! objective `Σᵢ NLLᵢ(w) + c2·‖w‖²` is split into per-sequence terms
//! `NLLᵢ(w) + (λ/2)·‖w‖²` with `λ = 2·c2/N`. Step `t` (counting sequences
//! from 0) uses the learning rate `η = 1/(λ·(t₀ + t))`: the weights decay by
//! `(1 − ηλ)`, then move by `−η·∇NLLᵢ` taken at the decayed weights. The
//! weights are kept as `scale · v`, so the decay touches one number and a
//! step writes only the weights of the sequence's attributes; the scale is
//! folded into `v` at the end of every epoch.
//!
//! Each epoch reports CRFsuite's objective estimate: the sequences' losses
//! as they were visited plus `c2·‖w‖²` at the end. `l2sgd` stops after
//! `max_iterations` epochs, or when the estimate improved by less than
//! `delta` (relative to the current one) over the last `period` epochs, and
//! returns the weights of the epoch with the lowest estimate.
//!
//! **Calibration** picks `t₀ = 1/(λ·η₀)`: it shuffles the sequences once and
//! takes the first `calibration.samples` as a sample; each candidate `η₀`
//! runs one pass over the sample from the starting weights and scores it the
//! same way (losses as visited, plus `(λ/2)·‖w‖²·|sample|`). A candidate is
//! acceptable when its score beats the starting weights'. From
//! `calibration.eta` the candidates grow by `calibration.rate` while they
//! are acceptable (up to `calibration.candidates` of them), then shrink
//! from `calibration.eta / rate` until as many acceptable ones were found;
//! `calibration.max_trials` bounds the number of passes, and the candidate
//! with the lowest score wins (CRFsuite 0.12's procedure). The warm start
//! searches greedily instead ([`CalibrationRule::Greedy`]): up from
//! `calibration.eta` while the sample objective after the pass improves, or
//! down until it beats the starting weights' — fewer passes, and on PKU a
//! better start for L-BFGS. When no candidate gives a finite score,
//! training fails with an error rather than diverge.
//!
//! **Which sequences the sample holds.** The sample is a set of *positions*:
//! the first `calibration.samples` entries of the permutation the fixed seed
//! draws over `0..N`, visited in that order (CRFsuite 0.12 likewise calls
//! `dataset_shuffle` once, with C's `rand()`, and calibrates on the first
//! `samples` instances of its permutation). The chosen `η₀` is therefore
//! deterministic for a given input, and it depends on the order of the
//! training sequences exactly as CRFsuite's does: through which sequences sit
//! at the sampled positions (and, when `samples ≥ N`, through the order the
//! sample is visited in). Reordering only the sequences at the other
//! positions leaves it unchanged. With the discrete candidates
//! (`eta · rateᵏ`) two orders of the same corpus can calibrate one factor of
//! `rate` apart, as CRFsuite's can; `docs/training.md` shows such a case on
//! PKU.
//!
//! Deterministic: one thread, sequences visited in an order reshuffled every
//! epoch by a seeded generator ([`crate::epochs`]). Weights that are not
//! trainable (unobserved pairs, forbidden transitions) stay exactly zero.
//! `c1` plays no part here (OWL-QN applies it after a warm start). A run can
//! be stopped after any sequence and resumed from its [`SgdState`] with the
//! same result, bit for bit.

use crate::data::Dataset;
use crate::epochs::{EpochControl, VisitOrder};
use crate::error::TrainError;
use crate::objective::{EvalError, Scratch};
use chaincrf_model::{Structure, WeightLayout};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// When the weight scale falls below this within an epoch, it is folded into
/// the weights early (only extreme learning rates get there).
const MIN_SCALE: f64 = 1e-9;
/// Sequences between two looks at the stop flag of the warm start.
const STOP_CHECK_EVERY: usize = 256;
/// Seed of the visiting order.
pub(crate) const DEFAULT_SEED: u64 = 0x5eed_c0ff_ee00_0001;

/// How the calibration searches and scores its candidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CalibrationRule {
    /// CRFsuite 0.12's search and score (`l2sgd`).
    Crfsuite,
    /// The warm start's: greedy, scored by the sample objective after the
    /// pass (see [`search_greedily`]). On PKU it picks a rate that leaves
    /// L-BFGS a lower objective after its 20 iterations than CRFsuite's
    /// choice does (held-out F1 0.955 against 0.954).
    Greedy,
}

/// CRFsuite's learning-rate calibration parameters (`calibration.*`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Calibration {
    /// The search and its score.
    pub(crate) rule: CalibrationRule,
    /// `calibration.eta`: the first candidate (default 0.1).
    pub(crate) eta: f64,
    /// `calibration.rate`: the factor between candidates (default 2).
    pub(crate) rate: f64,
    /// `calibration.samples`: sequences in the sample (default 1000).
    pub(crate) samples: usize,
    /// `calibration.candidates`: acceptable candidates wanted in each direction (default 10).
    pub(crate) candidates: usize,
    /// `calibration.max_trials`: bound on the passes (default 20; CRFsuite
    /// counts from 1, so at most `max_trials − 1` passes run).
    pub(crate) max_trials: usize,
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration {
            rule: CalibrationRule::Crfsuite,
            eta: 0.1,
            rate: 2.0,
            samples: 1000,
            candidates: 10,
            max_trials: 20,
        }
    }
}

/// The configuration of an SGD run.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SgdConfig {
    /// `c2`: the L2 coefficient (default 1; must be > 0).
    pub(crate) c2: f64,
    /// `max_iterations`: epochs at most, counting a resumed run's
    /// predecessor's (default 1000).
    pub(crate) max_iterations: usize,
    /// `period`: epochs the `delta` test looks back (default 10); the test
    /// never fires while `period ≥ max_iterations`.
    pub(crate) period: usize,
    /// `delta`: stop when the relative improvement over `period` epochs is
    /// below this (default 1e-6).
    pub(crate) delta: f64,
    /// The learning-rate calibration.
    pub(crate) calibration: Calibration,
    /// Return the weights of the epoch with the lowest objective estimate
    /// (CRFsuite's `l2sgd`), rather than the last epoch's (the warm start,
    /// which saves a copy of the weights per improving epoch).
    pub(crate) keep_best: bool,
    /// Seed of the visiting order (a resumed run keeps its saved order).
    pub(crate) seed: u64,
}

impl SgdConfig {
    /// CRFsuite's `l2sgd` with its defaults.
    pub(crate) fn l2sgd() -> Self {
        SgdConfig {
            c2: 1.0,
            max_iterations: 1000,
            period: 10,
            delta: 1e-6,
            calibration: Calibration::default(),
            keep_best: true,
            seed: DEFAULT_SEED,
        }
    }

    /// The warm start before L-BFGS: `epochs` epochs with coefficient `c2`,
    /// the greedy calibration, no `delta` test, the last weights.
    pub(crate) fn warm_start(c2: f64, epochs: usize) -> Self {
        SgdConfig {
            c2,
            max_iterations: epochs,
            period: epochs.max(1),
            keep_best: false,
            calibration: Calibration {
                rule: CalibrationRule::Greedy,
                ..Calibration::default()
            },
            ..Self::l2sgd()
        }
    }

    /// Checks every parameter.
    ///
    /// # Errors
    /// [`TrainError::InvalidParameter`] naming the first bad one (CRFsuite's name).
    pub(crate) fn check(&self) -> Result<(), TrainError> {
        let bad = |name: &str, message: &str| {
            Err(TrainError::InvalidParameter {
                name: name.into(),
                message: message.into(),
            })
        };
        let c = &self.calibration;
        if !(self.c2.is_finite() && self.c2 > 0.0) {
            return bad(
                "c2",
                "SGD needs c2 > 0 (its learning rate is set by the L2 term); train with lbfgs for c2 = 0",
            );
        }
        if self.period == 0 {
            return bad("period", "must be ≥ 1");
        }
        if !(self.delta.is_finite() && self.delta >= 0.0) {
            return bad("delta", "must be a finite number ≥ 0");
        }
        if !(c.eta.is_finite() && c.eta > 0.0) {
            return bad("calibration.eta", "must be a finite number > 0");
        }
        if !(c.rate.is_finite() && c.rate > 1.0) {
            return bad("calibration.rate", "must be a finite number > 1");
        }
        if c.samples == 0 {
            return bad("calibration.samples", "must be ≥ 1");
        }
        if c.candidates == 0 {
            return bad("calibration.candidates", "must be ≥ 1");
        }
        if c.max_trials < 2 {
            return bad(
                "calibration.max_trials",
                "must be ≥ 2 (CRFsuite counts the trials from 1)",
            );
        }
        Ok(())
    }
}

/// Everything an SGD run depends on after calibration, to save and resume
/// it exactly. Encode it with `chaincrf_model::encode_payload`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct SgdState {
    /// The `c2` it ran with (a resumed run must use the same).
    c2: f64,
    /// The weights are `scale · v` (full layout).
    v: Vec<f64>,
    scale: f64,
    /// Steps taken, and the calibrated offset of the learning rate.
    t: f64,
    t0: f64,
    /// The calibrated initial learning rate.
    eta0: f64,
    /// Epochs completed.
    epoch: usize,
    /// The visiting order and the position reached in the current epoch.
    order: VisitOrder,
    /// The current epoch's summed losses so far.
    partial_loss: f64,
    /// The objective estimate of every completed epoch.
    history: Vec<f64>,
    /// The lowest estimate so far and its weights (with `keep_best`).
    best: Option<(f64, Vec<f64>)>,
}

impl SgdState {
    /// Epochs completed when it was saved.
    #[allow(dead_code)] // until the trainer runs `l2sgd` through `run_l2sgd`
    pub(crate) fn epoch(&self) -> usize {
        self.epoch
    }

    /// Whether it was saved in the middle of an epoch (after an interrupt).
    #[allow(dead_code)]
    pub(crate) fn mid_epoch(&self) -> bool {
        self.order.in_epoch()
    }

    /// The weights the run returns at this point: the best epoch's when it
    /// keeps the best, else the current ones.
    fn result(&self) -> (Vec<f64>, f64) {
        match &self.best {
            Some((f, w)) => (w.clone(), *f),
            None => (
                self.v.iter().map(|x| self.scale * x).collect(),
                self.history.last().copied().unwrap_or(f64::NAN),
            ),
        }
    }
}

/// Where an SGD run starts.
#[derive(Debug)]
#[allow(dead_code)]
pub(crate) enum SgdStart {
    /// From these full-layout weights (zeros when `None`; untrainable ones
    /// are zeroed), calibrating first.
    Weights(Option<Vec<f64>>),
    /// From a saved state (no calibration).
    Resume(Box<SgdState>),
}

/// Why an SGD run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SgdTermination {
    /// `max_iterations` epochs ran.
    MaxIterations,
    /// The objective improved by less than `delta` over `period` epochs.
    Converged,
    /// The callback returned [`EpochControl::Stop`].
    Stopped,
    /// The stop flag was seen between two sequences; the state is mid-epoch.
    Interrupted,
}

/// What the per-epoch callback sees.
#[derive(Debug)]
pub(crate) struct SgdEpoch<'a> {
    /// Epoch number (1-based).
    pub epoch: usize,
    /// The sum of the sequences' losses as they were visited, plus `c2·‖w‖²`
    /// at the end of the epoch (CRFsuite's figure; a running estimate of the
    /// objective, not an exact evaluation).
    pub objective: f64,
    /// `(f[epoch − period] − f) / f`, CRFsuite's improvement ratio, once
    /// `period` epochs lie behind.
    #[allow(dead_code)] // for the progress events of `l2sgd`
    pub improvement: Option<f64>,
    /// The learning rate of the epoch's last step.
    pub learning_rate: f64,
    /// Seconds since the run began (calibration included).
    #[allow(dead_code)]
    pub seconds: f64,
    /// The weights at the end of the epoch, in the full layout.
    pub weights: &'a [f64],
    #[allow(dead_code)]
    state: &'a SgdState,
}

impl SgdEpoch<'_> {
    /// The run's state after this epoch, for a checkpoint (a copy of its vectors).
    #[allow(dead_code)]
    pub(crate) fn state(&self) -> SgdState {
        self.state.clone()
    }
}

/// The result of an SGD run.
#[derive(Clone, Debug)]
pub(crate) struct SgdOutcome {
    /// The weights, in the full layout: the best epoch's with `keep_best`
    /// (when an epoch completed), else the last ones.
    pub weights: Vec<f64>,
    /// Epochs completed in total (when interrupted mid-epoch, the weights of
    /// a warm start include the interrupted epoch's steps).
    pub epochs: usize,
    /// The objective estimate of the returned weights' epoch
    /// ([`SgdEpoch::objective`]; NaN when no epoch completed).
    pub objective: f64,
    /// The calibrated initial learning rate `η₀`.
    #[cfg_attr(not(test), allow(dead_code))]
    pub initial_learning_rate: f64,
    /// Wall-clock seconds, calibration included.
    #[allow(dead_code)]
    pub seconds: f64,
    #[allow(dead_code)]
    pub(crate) termination: SgdTermination,
    #[allow(dead_code)]
    pub(crate) state: SgdState,
}

/// The warm start before L-BFGS: `epochs` epochs of [`run_l2sgd`] with
/// [`SgdConfig::warm_start`] on `Σ NLLᵢ + c2·‖w‖²` from `start` (the full
/// layout, untrainable weights zero), reporting each epoch; a set `stop`
/// flag ends it within a few hundred sequences (the weights then include the
/// interrupted epoch's steps).
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
    let config = SgdConfig::warm_start(c2, epochs);
    let polls = std::cell::Cell::new(0usize);
    let stop = || {
        let n = polls.get();
        polls.set(n + 1);
        n.is_multiple_of(STOP_CHECK_EVERY) && stop.is_some_and(|f| f.load(Ordering::SeqCst))
    };
    run_l2sgd(
        data,
        structure,
        layout,
        mask,
        SgdStart::Weights(Some(start)),
        &config,
        &stop,
        &mut |e| {
            on_epoch(e);
            EpochControl::Continue
        },
    )
}

/// Trains `data` with SGD (CRFsuite's `l2sgd`; see the module
/// documentation), one thread.
///
/// `layout` is the data's weight layout and `trainable` its mask. `stop` is
/// polled before every sequence (calibration excluded); when it returns
/// `true` the run ends at once with [`SgdTermination::Interrupted`] and a
/// mid-epoch state. `on_epoch` sees every completed epoch.
///
/// # Errors
/// Bad parameters, empty data, initial weights or a saved state that do not
/// fit, a calibration where every candidate diverged, or a sequence whose
/// likelihood cannot be computed.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_l2sgd(
    data: &Dataset,
    structure: &Structure,
    layout: WeightLayout,
    trainable: &[bool],
    start: SgdStart,
    config: &SgdConfig,
    stop: &dyn Fn() -> bool,
    on_epoch: &mut dyn FnMut(&SgdEpoch<'_>) -> EpochControl,
) -> Result<SgdOutcome, TrainError> {
    config.check()?;
    if data.is_empty() {
        return Err(TrainError::NoSequences);
    }
    assert_eq!(
        trainable.len(),
        layout.len(),
        "the trainable mask does not fit the layout"
    );
    let started = Instant::now();
    let lambda = 2.0 * config.c2 / data.len() as f64;
    let mut sgd = Sgd::new(data, structure, layout, trainable, lambda);
    let mut state = match start {
        SgdStart::Weights(init) => {
            let mut w = init.unwrap_or_else(|| vec![0.0; layout.len()]);
            if w.len() != layout.len() {
                return Err(TrainError::InitialWeights {
                    expected: layout.len(),
                    got: w.len(),
                });
            }
            for (x, &m) in w.iter_mut().zip(trainable) {
                if !m {
                    *x = 0.0;
                }
            }
            let mut order = VisitOrder::new(data.len(), config.seed);
            order.reshuffle();
            let sample: Vec<usize> = order.prefix(config.calibration.samples).collect();
            let eta0 = sgd.calibrate(&w, &sample, &config.calibration)?;
            SgdState {
                c2: config.c2,
                v: w,
                scale: 1.0,
                t: 0.0,
                t0: 1.0 / (lambda * eta0),
                eta0,
                epoch: 0,
                order,
                partial_loss: 0.0,
                history: Vec::new(),
                best: None,
            }
        }
        SgdStart::Resume(saved) => {
            let saved = *saved;
            let fits = saved.v.len() == layout.len()
                && saved.best.as_ref().is_none_or(|(_, w)| w.len() == layout.len())
                && saved.order.fits(data.len());
            if saved.c2.to_bits() != config.c2.to_bits() {
                return Err(TrainError::SavedState {
                    problem: format!("was trained with c2 = {}, this run has c2 = {}", saved.c2, config.c2),
                });
            }
            if !(fits && saved.scale > 0.0 && saved.t0 > 0.0 && saved.t >= 0.0) {
                return Err(TrainError::SavedState {
                    problem: format!(
                        "does not fit this data ({} weights, {} sequences) or is damaged",
                        layout.len(),
                        data.len()
                    ),
                });
            }
            saved
        }
    };
    let mut eta = 1.0 / (lambda * (state.t0 + state.t));
    let termination = 'run: loop {
        if !state.order.in_epoch() {
            if state.epoch >= config.max_iterations {
                break SgdTermination::MaxIterations;
            }
            state.order.start_epoch();
            state.partial_loss = 0.0;
        }
        while let Some(i) = state.order.peek() {
            if stop() {
                break 'run SgdTermination::Interrupted;
            }
            eta = 1.0 / (lambda * (state.t0 + state.t));
            state.partial_loss += sgd.step(&mut state.v, &mut state.scale, i, eta)?;
            state.t += 1.0;
            state.order.advance();
        }
        // The epoch is complete: fold the scale into the weights.
        let s = std::mem::replace(&mut state.scale, 1.0);
        state.v.iter_mut().for_each(|x| *x *= s);
        state.epoch += 1;
        let norm2: f64 = state.v.iter().map(|w| w * w).sum();
        let objective = state.partial_loss + config.c2 * norm2;
        state.history.push(objective);
        if config.keep_best && state.best.as_ref().is_none_or(|(f, _)| objective < *f) {
            match &mut state.best {
                Some((f, w)) => {
                    *f = objective;
                    w.copy_from_slice(&state.v);
                }
                None => state.best = Some((objective, state.v.clone())),
            }
        }
        let h = &state.history;
        let improvement = (h.len() > config.period).then(|| {
            let before = h[h.len() - 1 - config.period];
            (before - objective) / objective
        });
        let control = on_epoch(&SgdEpoch {
            epoch: state.epoch,
            objective,
            improvement,
            learning_rate: eta,
            seconds: started.elapsed().as_secs_f64(),
            weights: &state.v,
            state: &state,
        });
        if improvement.is_some_and(|r| r < config.delta) {
            break SgdTermination::Converged;
        }
        if control == EpochControl::Stop {
            break SgdTermination::Stopped;
        }
    };
    let (weights, objective) = state.result();
    Ok(SgdOutcome {
        weights,
        epochs: state.epoch,
        objective,
        initial_learning_rate: state.eta0,
        seconds: started.elapsed().as_secs_f64(),
        termination,
        state,
    })
}

/// The per-sequence work: the likelihood's gradient and the step.
struct Sgd<'d> {
    data: &'d Dataset,
    structure: &'d Structure,
    layout: WeightLayout,
    trainable: &'d [bool],
    /// Per-sequence regularization strength `2·c2/N`.
    lambda: f64,
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
        lambda: f64,
    ) -> Self {
        Sgd {
            data,
            structure,
            layout,
            trainable,
            lambda,
            scratch: Scratch::new(),
            node: Vec::new(),
            edge: Vec::new(),
            trans: vec![0.0; layout.k * layout.k],
        }
    }

    /// The NLL of sequence `i` at `scale · v`, with its gradient in `node`,
    /// `edge` (when it has edge attributes) and `trans`.
    fn gradient(&mut self, v: &[f64], scale: f64, i: usize) -> Result<f64, EvalError> {
        let (k, kk) = (self.layout.k, self.layout.k * self.layout.k);
        let obs = self.data.arena.sequence(i);
        self.node.resize(obs.len() * k, 0.0);
        self.edge
            .resize(if obs.has_edge_attributes() { obs.len() * kk } else { 0 }, 0.0);
        self.trans.fill(0.0);
        self.scratch.sequence(
            self.data,
            i,
            &self.layout.view(v),
            scale,
            self.structure,
            &mut self.node,
            &mut self.edge,
            &mut self.trans,
        )
    }

    /// One step with learning rate `eta` on `NLLᵢ + (λ/2)·‖w‖²` for the
    /// weights `scale · v`: decay, then the gradient at the decayed weights.
    /// Returns the NLL there.
    fn step(&mut self, v: &mut [f64], scale: &mut f64, i: usize, eta: f64) -> Result<f64, EvalError> {
        let decay = 1.0 - eta * self.lambda;
        if decay <= 0.0 {
            return Err(EvalError {
                sequence: i,
                message: format!("the learning rate {eta:e} reverses the weight decay"),
            });
        }
        *scale *= decay;
        if *scale < MIN_SCALE {
            let s = std::mem::replace(scale, 1.0);
            v.iter_mut().for_each(|x| *x *= s);
        }
        let nll = self.gradient(v, *scale, i)?;
        let (k, layout) = (self.layout.k, self.layout);
        let kk = k * k;
        let obs = self.data.arena.sequence(i);
        let (n, has_edges) = (obs.len(), obs.has_edge_attributes());
        let gain = eta / *scale;
        let mask = self.trainable;
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

    /// The score of one calibration pass with initial learning rate `eta0`
    /// over `sample` from `start`, infinite when the pass diverges. By
    /// `rule`: CRFsuite's, the losses as visited plus `(λ/2)·‖w‖²·|sample|`
    /// at the end; the greedy rule's, the sample objective re-evaluated at
    /// the end (one more pass).
    fn trial(&mut self, start: &[f64], v: &mut Vec<f64>, sample: &[usize], eta0: f64, rule: CalibrationRule) -> f64 {
        v.clear();
        v.extend_from_slice(start);
        let mut scale = 1.0;
        let t0 = 1.0 / (self.lambda * eta0);
        let mut loss = 0.0;
        for (t, &i) in sample.iter().enumerate() {
            match self.step(v, &mut scale, i, 1.0 / (self.lambda * (t0 + t as f64))) {
                Ok(l) => loss += l,
                Err(_) => return f64::INFINITY,
            }
        }
        let f = match rule {
            CalibrationRule::Crfsuite => {
                let norm2: f64 = v.iter().map(|x| x * x).sum::<f64>() * scale * scale;
                loss + 0.5 * self.lambda * norm2 * sample.len() as f64
            }
            CalibrationRule::Greedy => self.sample_objective(v, scale, sample).unwrap_or(f64::INFINITY),
        };
        if f.is_finite() {
            f
        } else {
            f64::INFINITY
        }
    }

    /// `Σ NLLᵢ + |sample|·(λ/2)·‖w‖²` over `sample` at `scale · v`.
    fn sample_objective(&mut self, v: &[f64], scale: f64, sample: &[usize]) -> Result<f64, EvalError> {
        let mut loss = 0.0;
        for &i in sample {
            loss += self.gradient(v, scale, i)?;
        }
        let norm2: f64 = v.iter().map(|x| x * x).sum::<f64>() * scale * scale;
        Ok(loss + 0.5 * self.lambda * norm2 * sample.len() as f64)
    }

    /// Picks `η₀` by the calibration `c` (see the module documentation).
    fn calibrate(&mut self, start: &[f64], sample: &[usize], c: &Calibration) -> Result<f64, TrainError> {
        let initial = self.sample_objective(start, 1.0, sample)?;
        let mut v = Vec::with_capacity(start.len());
        let mut smallest = c.eta;
        let lambda = self.lambda;
        let mut score = |eta: f64| {
            smallest = smallest.min(eta);
            // Such a rate would flip the sign of the decay.
            if eta * lambda >= 1.0 {
                return f64::INFINITY;
            }
            self.trial(start, &mut v, sample, eta, c.rule)
        };
        let eta = match c.rule {
            CalibrationRule::Crfsuite => search_learning_rate(c, initial, &mut score),
            CalibrationRule::Greedy => search_greedily(c, initial, &mut score),
        };
        eta.ok_or_else(|| {
            TrainError::Optimizer(
                format!(
                    "SGD calibration: every learning rate tried (from {} down to {smallest:.3e}) diverged on the sample",
                    c.eta
                )
                .into(),
            )
        })
    }
}

/// The warm start's search: from `calibration.eta`, multiply by the rate
/// while the score improves, or, when the first candidate does not beat the
/// starting weights, divide until one does, at most `candidates` steps
/// either way; the lowest score wins. Fewer passes than CRFsuite's search,
/// and a score measured after the pass.
fn search_greedily(c: &Calibration, initial: f64, mut score: impl FnMut(f64) -> f64) -> Option<f64> {
    let mut eta = c.eta;
    let mut best = (score(eta), eta);
    if best.0 < initial {
        for _ in 0..c.candidates {
            eta *= c.rate;
            let f = score(eta);
            if f >= best.0 {
                break;
            }
            best = (f, eta);
        }
    } else {
        for _ in 0..c.candidates {
            eta /= c.rate;
            let f = score(eta);
            if f < best.0 {
                best = (f, eta);
            }
            if f < initial {
                break;
            }
        }
    }
    best.0.is_finite().then_some(best.1)
}

/// CRFsuite's search for the initial learning rate: `score(η)` is a
/// calibration pass's score (infinite when it diverges) and `initial` the
/// starting weights' (see the module documentation). Returns the candidate
/// with the lowest finite score, `None` when none is finite.
fn search_learning_rate(c: &Calibration, initial: f64, mut score: impl FnMut(f64) -> f64) -> Option<f64> {
    let (mut eta, mut best) = (c.eta, (f64::INFINITY, c.eta));
    let (mut wanted, mut decreasing, mut trials) = (c.candidates, false, 1);
    while wanted > 0 || !decreasing {
        let f = score(eta);
        let acceptable = f < initial;
        if acceptable {
            wanted -= 1;
        }
        if f < best.0 {
            best = (f, eta);
        }
        if decreasing {
            eta /= c.rate;
        } else if acceptable && wanted > 0 {
            eta *= c.rate;
        } else {
            decreasing = true;
            wanted = c.candidates;
            eta = c.eta / c.rate;
        }
        trials += 1;
        if trials >= c.max_trials {
            break;
        }
    }
    best.0.is_finite().then_some(best.1)
}

#[cfg(test)]
mod tests;
