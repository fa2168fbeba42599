//! The perceptron family of CRFsuite: averaged perceptron (`ap`),
//! passive-aggressive (`pa`) and AROW (`arow`), as CRFsuite 0.12 defines
//! them, on one shared epoch loop.
//!
//! Why: these algorithms never compute a likelihood. Each visits the
//! sequences one at a time, tags a sequence with the current weights
//! (Viterbi), and when the best path `ŷ` differs from the gold path `y`
//! moves the weights along `Δ = φ(x, y) − φ(x, ŷ)`, the difference of the
//! two paths' feature vectors. An epoch costs about one tagging pass, so
//! they train quickly, and CRFsuite users expect to find them.
//!
//! The feature vector `φ(x, y)` of a path is over the whole weight layout:
//! at each position the state attributes (with their values) × the label,
//! the edge attributes × the label pair and the transition of the label
//! pair, and the start and end labels. Weights the trainable mask excludes
//! (unobserved pairs, forbidden transitions, disabled blocks) are not
//! features: they are left out of `Δ` and stay exactly zero. Where the two
//! paths agree (a position's label, or a pair of labels) their features
//! cancel, so `Δ` is collected only where they differ.
//!
//! With `d` the number of positions where `ŷ` is wrong, `s(·)` a path's
//! score under the current weights, and `n` the sequence's length, the
//! updates and the loss each epoch reports (the sum over its sequences) are
//! CRFsuite's:
//!
//! | algorithm | update when `d > 0` | loss of the sequence |
//! | --- | --- | --- |
//! | `ap` | `w += Δ` | `d / n` |
//! | `pa` | `w += τ·Δ`, with `cost = s(ŷ) − s(y) + √d` (`error_sensitive`, else `+ 1`) and `τ = cost/‖Δ‖²` (type 0), `min(c, cost/‖Δ‖²)` (type 1, PA-I), `cost/(‖Δ‖² + 1/(2c))` (type 2, PA-II) | `cost` |
//! | `arow` | `α = cost / (γ + Σₖ Δₖ²·σₖ)` with `cost = s(ŷ) − s(y) + d`; `wₖ += α·σₖ·Δₖ`; `σₖ ← 1/(1/σₖ + Δₖ²/γ)` (σ starts at `variance`) | `cost` |
//!
//! Training stops after `max_iterations` epochs, or after the first epoch
//! whose loss divided by the number of sequences is below `epsilon` (`ap`,
//! `pa`) or at most `epsilon` (`arow`: CRFsuite 0.12 compares with `<=`
//! there, so with the default `epsilon = 0` AROW stops after the first
//! epoch without a mistake, the others never stop early).
//!
//! **Averaging** (`ap`, and `pa` with `averaging = 1`): the model is the
//! average of the weights over all updates, computed with the usual lazy
//! trick. Besides `w` a second vector accumulates `u·τ·Δ` at each update,
//! where `u` counts the sequences visited (starting at 1, counting correct
//! ones too); the average is `w − ws/u`. Each update touches only the
//! features of `Δ`, and the average costs one pass over the weights when
//! asked for (at the end, or when a callback wants the epoch's weights).
//! `arow` returns its mean weights, `pa` without averaging its last ones.
//!
//! **Partial labels.** A sequence with allowed label sets instead of a gold
//! path counts a position as wrong when `ŷ`'s label there is not allowed;
//! when `d > 0`, the target is the best path within the allowed sets
//! (constrained Viterbi under the current weights), the usual latent-variable
//! perceptron. For fully labeled data this is CRFsuite's algorithm exactly.
//!
//! **Determinism and resume.** One thread; the sequences are visited in an
//! order reshuffled every epoch by a seeded generator ([`crate::epochs`]).
//! [`OnlineState`] holds everything the run depends on — the weights, the
//! averaging sums and counter, AROW's variances, the visiting order with its
//! generator and the position reached in the epoch, and the epoch's partial
//! sums — so a run stopped after any sequence and resumed with
//! [`OnlineStart::Resume`] ends with the same weights, bit for bit.

use crate::data::Dataset;
use crate::epochs::{EpochControl, VisitOrder};
use crate::error::TrainError;
use crate::objective::EvalError;
use crate::params::PaVariant;
use chaincrf_core::chain::{path_score, ChainWorkspace};
use chaincrf_core::{AllowedLabels, Constrained, MaxPlus};
use chaincrf_model::{ScoredChain, Structure, WeightLayout};
use serde::{Deserialize, Serialize};
use std::cell::OnceCell;

/// Default seed of the visiting order.
pub(crate) const DEFAULT_SEED: u64 = 0x5eed_0a11_0e00_0002;

/// The passive-aggressive step size for a violation `cost` along a
/// difference of squared norm `norm2 > 0`, with aggressiveness `c`:
/// `cost/‖Δ‖²` (PA, `type = 0`), `min(c, cost/‖Δ‖²)` (PA-I, `type = 1`),
/// `cost/(‖Δ‖² + 1/(2c))` (PA-II, `type = 2`).
pub(crate) fn pa_step(variant: PaVariant, cost: f64, norm2: f64, c: f64) -> f64 {
    match variant {
        PaVariant::Pa => cost / norm2,
        PaVariant::PaI => c.min(cost / norm2),
        PaVariant::PaII => cost / (norm2 + 0.5 / c),
    }
}

/// One of the perceptron-family algorithms with its parameters (CRFsuite's
/// names; defaults in [`OnlineAlgorithm::averaged_perceptron`] and the other
/// constructors).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum OnlineAlgorithm {
    /// `ap`: averaged perceptron.
    AveragedPerceptron,
    /// `pa`: passive-aggressive.
    PassiveAggressive {
        /// `type` (default PA-I).
        variant: PaVariant,
        /// `c`, the aggressiveness (default 1).
        c: f64,
        /// `error_sensitive`: the cost adds `√d` rather than 1 (default true).
        error_sensitive: bool,
        /// `averaging`: return the averaged weights (default true).
        averaging: bool,
    },
    /// `arow`: adaptive regularization of weights.
    Arow {
        /// `variance`, every weight's initial variance (default 1).
        variance: f64,
        /// `gamma`, the trade-off between keeping and fitting (default 1).
        gamma: f64,
    },
}

impl OnlineAlgorithm {
    /// `ap` (it has no parameter of its own).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn averaged_perceptron() -> Self {
        OnlineAlgorithm::AveragedPerceptron
    }
    /// `pa` with CRFsuite's defaults: PA-I, `c = 1`, error sensitive, averaged.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn passive_aggressive() -> Self {
        OnlineAlgorithm::PassiveAggressive {
            variant: PaVariant::PaI,
            c: 1.0,
            error_sensitive: true,
            averaging: true,
        }
    }
    /// `arow` with CRFsuite's defaults: `variance = 1`, `gamma = 1`.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn arow() -> Self {
        OnlineAlgorithm::Arow {
            variance: 1.0,
            gamma: 1.0,
        }
    }
    /// CRFsuite's name of the algorithm.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            OnlineAlgorithm::AveragedPerceptron => "ap",
            OnlineAlgorithm::PassiveAggressive { .. } => "pa",
            OnlineAlgorithm::Arow { .. } => "arow",
        }
    }
    /// CRFsuite's stopping test on an epoch's loss per sequence.
    fn converged(&self, mean_loss: f64, epsilon: f64) -> bool {
        match self {
            OnlineAlgorithm::Arow { .. } => mean_loss <= epsilon,
            _ => mean_loss < epsilon,
        }
    }
    fn averaging(&self) -> bool {
        match self {
            OnlineAlgorithm::AveragedPerceptron => true,
            OnlineAlgorithm::PassiveAggressive { averaging, .. } => *averaging,
            OnlineAlgorithm::Arow { .. } => false,
        }
    }
}

/// The configuration of a perceptron-family run.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct OnlineConfig {
    /// The algorithm and its own parameters.
    pub(crate) algorithm: OnlineAlgorithm,
    /// `max_iterations`: epochs at most, counting those of the run a resumed
    /// run continues (default 100).
    pub(crate) max_iterations: usize,
    /// `epsilon`: stop after an epoch whose loss per sequence is below this
    /// (`arow`: at most this; default 0).
    pub(crate) epsilon: f64,
    /// Seed of the visiting order (ignored when resuming: the saved order
    /// carries its generator).
    pub(crate) seed: u64,
}

impl OnlineConfig {
    /// `algorithm` with CRFsuite's common defaults (100 epochs, `epsilon = 0`).
    pub(crate) fn new(algorithm: OnlineAlgorithm) -> Self {
        OnlineConfig {
            algorithm,
            max_iterations: 100,
            epsilon: 0.0,
            seed: DEFAULT_SEED,
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
        if !(self.epsilon.is_finite() && self.epsilon >= 0.0) {
            return bad("epsilon", "must be a finite number ≥ 0");
        }
        match self.algorithm {
            OnlineAlgorithm::AveragedPerceptron => {}
            OnlineAlgorithm::PassiveAggressive { variant, c, .. } => {
                // Type 0 does not use c; CRFsuite does not check it either then.
                if variant != PaVariant::Pa && !(c.is_finite() && c > 0.0) {
                    return bad("c", "must be a finite number > 0");
                }
            }
            OnlineAlgorithm::Arow { variance, gamma } => {
                if !(variance.is_finite() && variance > 0.0) {
                    return bad("variance", "must be a finite number > 0");
                }
                if !(gamma.is_finite() && gamma > 0.0) {
                    return bad("gamma", "must be a finite number > 0");
                }
            }
        }
        Ok(())
    }
}

/// Everything a perceptron-family run depends on, to save and resume it
/// exactly (see the module documentation). Encode it with
/// `chaincrf_model::encode_payload`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct OnlineState {
    /// The algorithm and parameters it was saved by (a resumed run must use the same).
    algorithm: OnlineAlgorithm,
    /// Epochs completed.
    epoch: usize,
    /// The current weights (AROW's mean), full layout.
    weights: Vec<f64>,
    /// Averaging: the sum of `u·τ·Δ` over the updates (empty without averaging).
    sums: Vec<f64>,
    /// AROW's variance per weight (empty for the others).
    variances: Vec<f64>,
    /// Sequences visited so far plus one (CRFsuite's `c`/`u`).
    counter: u64,
    /// The visiting order and the position reached in the current epoch.
    order: VisitOrder,
    /// The current epoch's sums so far.
    partial: EpochSums,
}

impl OnlineState {
    /// Epochs completed when it was saved.
    pub(crate) fn epoch(&self) -> usize {
        self.epoch
    }

    /// The algorithm that saved it.
    pub(crate) fn algorithm(&self) -> crate::params::Algorithm {
        match self.algorithm {
            OnlineAlgorithm::AveragedPerceptron => crate::params::Algorithm::AveragedPerceptron,
            OnlineAlgorithm::PassiveAggressive { .. } => crate::params::Algorithm::PassiveAggressive,
            OnlineAlgorithm::Arow { .. } => crate::params::Algorithm::Arow,
        }
    }

    /// Whether it was saved in the middle of an epoch (after an interrupt).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn mid_epoch(&self) -> bool {
        self.order.in_epoch()
    }

    /// The weights the run returns at this point (averaged when the
    /// algorithm averages).
    pub(crate) fn model_weights(&self) -> Vec<f64> {
        if self.sums.is_empty() {
            return self.weights.clone();
        }
        let inv = 1.0 / self.counter as f64;
        self.weights
            .iter()
            .zip(&self.sums)
            .map(|(&w, &s)| w - inv * s)
            .collect()
    }
}

/// Per-epoch sums of the loss, the wrongly labeled positions and the positions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
struct EpochSums {
    loss: f64,
    errors: u64,
    items: u64,
    /// Sequences tagged with at least one wrong label.
    mistaken: u64,
}

/// Where a run starts.
#[derive(Debug)]
pub(crate) enum OnlineStart {
    /// From these full-layout weights (zeros when `None`); untrainable ones are zeroed.
    Weights(Option<Vec<f64>>),
    /// From a saved state (its epoch, position and order).
    Resume(Box<OnlineState>),
}

/// Why a perceptron-family run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnlineTermination {
    /// `max_iterations` epochs ran.
    MaxIterations,
    /// An epoch's loss per sequence fell below `epsilon` (`arow`: to `epsilon`).
    Converged,
    /// The callback returned [`EpochControl::Stop`].
    Stopped,
    /// The stop flag was seen between two sequences; the state is mid-epoch.
    Interrupted,
}

/// What the per-epoch callback sees.
pub(crate) struct OnlineEpoch<'a> {
    /// Epoch number (1-based, counting the epochs of a resumed run's predecessor).
    pub(crate) epoch: usize,
    /// CRFsuite's loss of the epoch (see the module documentation's table).
    pub(crate) loss: f64,
    /// Positions tagged wrongly during the epoch (before each update).
    pub(crate) errors: u64,
    /// Positions visited during the epoch.
    pub(crate) items: u64,
    state: &'a OnlineState,
    model: OnceCell<Vec<f64>>,
}

impl std::fmt::Debug for OnlineEpoch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnlineEpoch")
            .field("epoch", &self.epoch)
            .field("loss", &self.loss)
            .field("errors", &self.errors)
            .field("items", &self.items)
            .finish_non_exhaustive()
    }
}

impl OnlineEpoch<'_> {
    /// The model's weights after this epoch (averaged when the algorithm
    /// averages), full layout; computed on the first call (one pass over the
    /// weights), then kept.
    pub(crate) fn weights(&self) -> &[f64] {
        self.model.get_or_init(|| self.state.model_weights())
    }

    /// The run's state after this epoch, for a checkpoint (a copy of its vectors).
    pub(crate) fn state(&self) -> OnlineState {
        self.state.clone()
    }
}

/// The result of [`run_online`].
#[derive(Debug)]
pub(crate) struct OnlineOutcome {
    /// The model's weights (averaged when the algorithm averages), full layout.
    pub(crate) weights: Vec<f64>,
    /// The final state (resume from it to continue).
    pub(crate) state: OnlineState,
    /// Epochs completed in total.
    pub(crate) epochs: usize,
    /// The last completed epoch's loss (NaN when none completed in this run).
    pub(crate) loss: f64,
    /// Why the run ended.
    pub(crate) termination: OnlineTermination,
}

/// Trains `data` with a perceptron-family algorithm (see the module
/// documentation), one thread.
///
/// `layout` is the data's weight layout and `trainable` its mask (one entry
/// per weight). `stop` is polled before every sequence; when it returns
/// `true` the run ends at once with [`OnlineTermination::Interrupted`] and a
/// mid-epoch state. `on_epoch` sees every completed epoch.
///
/// # Errors
/// Bad parameters, empty data, initial weights or a saved state that do not
/// fit, or a sequence without any feasible path (forbidden transitions or
/// empty allowed sets).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_online(
    data: &Dataset,
    structure: &Structure,
    layout: WeightLayout,
    trainable: &[bool],
    start: OnlineStart,
    config: &OnlineConfig,
    stop: &dyn Fn() -> bool,
    on_epoch: &mut dyn FnMut(&OnlineEpoch<'_>) -> EpochControl,
) -> Result<OnlineOutcome, TrainError> {
    config.check()?;
    if data.is_empty() {
        return Err(TrainError::NoSequences);
    }
    assert_eq!(
        trainable.len(),
        layout.len(),
        "the trainable mask does not fit the layout"
    );
    let state = initial_state(data, layout, trainable, start, config)?;
    let mut learner = Learner::new(data, structure, layout, trainable, config.algorithm, state);
    let n = data.len() as f64;
    let mut last_loss = f64::NAN;
    let termination = 'run: loop {
        if !learner.state.order.in_epoch() {
            if learner.state.epoch >= config.max_iterations {
                break OnlineTermination::MaxIterations;
            }
            learner.state.order.start_epoch();
            learner.state.partial = EpochSums::default();
        }
        while let Some(i) = learner.state.order.peek() {
            if stop() {
                break 'run OnlineTermination::Interrupted;
            }
            learner.visit(i)?;
            learner.state.order.advance();
        }
        learner.state.epoch += 1;
        let sums = learner.state.partial;
        last_loss = sums.loss;
        let report = OnlineEpoch {
            epoch: learner.state.epoch,
            loss: sums.loss,
            errors: sums.errors,
            items: sums.items,
            state: &learner.state,
            model: OnceCell::new(),
        };
        let control = on_epoch(&report);
        if config.algorithm.converged(sums.loss / n, config.epsilon) {
            break OnlineTermination::Converged;
        }
        if control == EpochControl::Stop {
            break OnlineTermination::Stopped;
        }
    };
    let state = learner.state;
    Ok(OnlineOutcome {
        weights: state.model_weights(),
        epochs: state.epoch,
        state,
        loss: last_loss,
        termination,
    })
}

/// The state a run starts from, checked against the data.
fn initial_state(
    data: &Dataset,
    layout: WeightLayout,
    trainable: &[bool],
    start: OnlineStart,
    config: &OnlineConfig,
) -> Result<OnlineState, TrainError> {
    let dim = layout.len();
    match start {
        OnlineStart::Weights(init) => {
            let mut weights = init.unwrap_or_else(|| vec![0.0; dim]);
            if weights.len() != dim {
                return Err(TrainError::InitialWeights {
                    expected: dim,
                    got: weights.len(),
                });
            }
            for (w, &t) in weights.iter_mut().zip(trainable) {
                if !t {
                    *w = 0.0;
                }
            }
            let sums = if config.algorithm.averaging() {
                vec![0.0; dim]
            } else {
                Vec::new()
            };
            let variances = match config.algorithm {
                OnlineAlgorithm::Arow { variance, .. } => vec![variance; dim],
                _ => Vec::new(),
            };
            Ok(OnlineState {
                algorithm: config.algorithm,
                epoch: 0,
                weights,
                sums,
                variances,
                counter: 1,
                order: VisitOrder::new(data.len(), config.seed),
                partial: EpochSums::default(),
            })
        }
        OnlineStart::Resume(state) => {
            let state = *state;
            let problem = if state.algorithm != config.algorithm {
                Some(format!(
                    "was saved by {} with other parameters ({:?}); this run is {:?}",
                    state.algorithm.name(),
                    state.algorithm,
                    config.algorithm
                ))
            } else if state.weights.len() != dim
                || state.sums.len() != if config.algorithm.averaging() { dim } else { 0 }
                || state.variances.len()
                    != if matches!(config.algorithm, OnlineAlgorithm::Arow { .. }) {
                        dim
                    } else {
                        0
                    }
            {
                Some(format!("does not fit this data's {dim} weights"))
            } else if !state.order.fits(data.len()) {
                Some(format!("does not fit this data's {} sequences", data.len()))
            } else if state.counter == 0 || state.variances.iter().any(|&v| v.is_nan() || v <= 0.0) {
                Some("is damaged".into())
            } else {
                None
            };
            match problem {
                Some(problem) => Err(TrainError::SavedState { problem }),
                None => Ok(state),
            }
        }
    }
}

/// The per-sequence work: tagging, the difference vector and the update.
struct Learner<'d> {
    data: &'d Dataset,
    structure: &'d Structure,
    layout: WeightLayout,
    trainable: &'d [bool],
    algorithm: OnlineAlgorithm,
    state: OnlineState,
    scored: ScoredChain,
    viterbi: ChainWorkspace<MaxPlus>,
    delta: SparseDelta,
    /// The target path (gold, or the constrained best path).
    target: Vec<usize>,
}

impl<'d> Learner<'d> {
    fn new(
        data: &'d Dataset,
        structure: &'d Structure,
        layout: WeightLayout,
        trainable: &'d [bool],
        algorithm: OnlineAlgorithm,
        state: OnlineState,
    ) -> Self {
        Learner {
            data,
            structure,
            layout,
            trainable,
            algorithm,
            state,
            scored: ScoredChain::default(),
            viterbi: ChainWorkspace::new(),
            delta: SparseDelta::new(layout.len()),
            target: Vec::new(),
        }
    }

    /// Visits sequence `i`: tags it and updates the weights when wrong.
    fn visit(&mut self, i: usize) -> Result<(), TrainError> {
        let obs = self.data.arena.sequence(i);
        let n = obs.len();
        let u = self.state.counter;
        self.state.counter += 1;
        self.state.partial.items += n as u64;
        if n == 0 {
            return Ok(());
        }
        let fail = |e: chaincrf_core::Error| {
            TrainError::Eval(EvalError {
                sequence: i,
                message: e.to_string(),
            })
        };
        self.layout
            .view(&self.state.weights)
            .score_into(self.structure, &obs, &mut self.scored);
        let predicted = self.viterbi.viterbi(&self.scored).map_err(fail)?.labels;
        let d = match &self.data.partial[i] {
            None => {
                let gold = self.data.gold_of(i).unwrap_or(&[]);
                self.target.clear();
                self.target.extend_from_slice(gold);
                gold.iter().zip(&predicted).filter(|(a, b)| a != b).count()
            }
            Some(allowed) => {
                let d = (0..n).filter(|&t| !allowed.is_allowed(t, predicted[t])).count();
                if d > 0 {
                    self.target = constrained_best(&mut self.viterbi, &self.scored, allowed).map_err(fail)?;
                }
                d
            }
        };
        self.state.partial.errors += d as u64;
        if d == 0 {
            return Ok(());
        }
        self.state.partial.mistaken += 1;
        let violation = path_score(&self.scored, &predicted).map_err(fail)?
            - path_score(&self.scored, &self.target).map_err(fail)?;
        if !violation.is_finite() {
            return Err(fail(chaincrf_core::Error::NoFeasiblePath { position: None }));
        }
        self.delta
            .collect(self.data, i, self.layout, self.trainable, &self.target, &predicted);
        let d = d as f64;
        let loss = match self.algorithm {
            OnlineAlgorithm::AveragedPerceptron => {
                self.apply_uniform(1.0, u);
                d / n as f64
            }
            OnlineAlgorithm::PassiveAggressive {
                variant,
                c,
                error_sensitive,
                ..
            } => {
                let cost = violation + if error_sensitive { d.sqrt() } else { 1.0 };
                let norm2 = self.delta.norm2();
                // Δ = 0 happens only when every differing feature is
                // untrainable: there is nothing to move (and τ would be ∞).
                if norm2 > 0.0 {
                    self.apply_uniform(pa_step(variant, cost, norm2, c), u);
                }
                cost
            }
            OnlineAlgorithm::Arow { gamma, .. } => {
                let cost = violation + d;
                self.apply_arow(cost, gamma);
                cost
            }
        };
        self.state.partial.loss += loss;
        self.delta.clear();
        Ok(())
    }

    /// `w += τ·Δ`, and with averaging `ws += u·τ·Δ`.
    fn apply_uniform(&mut self, tau: f64, u: u64) {
        let tau_u = tau * u as f64;
        let (w, ws) = (&mut self.state.weights, &mut self.state.sums);
        let averaging = !ws.is_empty();
        for (k, x) in self.delta.entries() {
            w[k] += tau * x;
            if averaging {
                ws[k] += tau_u * x;
            }
        }
    }

    /// AROW's update of the mean and the variances along `Δ`.
    fn apply_arow(&mut self, cost: f64, gamma: f64) {
        let (w, var) = (&mut self.state.weights, &mut self.state.variances);
        let mut frac = gamma;
        for (k, x) in self.delta.entries() {
            frac += x * x * var[k];
        }
        let alpha = cost / frac;
        let beta = 1.0 / gamma;
        for (k, x) in self.delta.entries() {
            w[k] += alpha * var[k] * x;
            var[k] = 1.0 / (1.0 / var[k] + beta * x * x);
        }
    }
}

/// The best path within `allowed` under `scored`.
fn constrained_best(
    ws: &mut ChainWorkspace<MaxPlus>,
    scored: &ScoredChain,
    allowed: &AllowedLabels,
) -> chaincrf_core::Result<Vec<usize>> {
    Ok(ws.viterbi(&Constrained::new(scored, allowed)?)?.labels)
}

/// `Δ = φ(x, target) − φ(x, predicted)` over the trainable weights, as a
/// dense vector plus the list of the entries touched (cleared in time
/// proportional to them).
struct SparseDelta {
    values: Vec<f64>,
    touched: Vec<usize>,
    seen: Vec<bool>,
}

impl SparseDelta {
    fn new(dim: usize) -> Self {
        SparseDelta {
            values: vec![0.0; dim],
            touched: Vec::new(),
            seen: vec![false; dim],
        }
    }

    #[inline]
    fn add(&mut self, trainable: &[bool], k: usize, x: f64) {
        if !trainable[k] {
            return;
        }
        if !self.seen[k] {
            self.seen[k] = true;
            self.touched.push(k);
        }
        self.values[k] += x;
    }

    /// Collects the features where the two paths differ (equal labels, or
    /// equal label pairs, cancel exactly and are skipped).
    fn collect(
        &mut self,
        data: &Dataset,
        i: usize,
        layout: WeightLayout,
        trainable: &[bool],
        target: &[usize],
        predicted: &[usize],
    ) {
        let obs = data.arena.sequence(i);
        let n = obs.len();
        let k = layout.k;
        let kk = k * k;
        let (t0, e0) = (layout.transition_offset(), layout.edge_offset());
        for t in 0..n {
            let (y, p) = (target[t], predicted[t]);
            if y != p {
                let (ids, values) = obs.state(t);
                for (j, &id) in ids.iter().enumerate() {
                    let x = values.map_or(1.0, |v| f64::from(v[j]));
                    self.add(trainable, id as usize * k + y, x);
                    self.add(trainable, id as usize * k + p, -x);
                }
            }
            if t > 0 {
                let (ya, pa) = (target[t - 1] * k + y, predicted[t - 1] * k + p);
                if ya != pa {
                    self.add(trainable, t0 + ya, 1.0);
                    self.add(trainable, t0 + pa, -1.0);
                    let (ids, values) = obs.edge(t);
                    for (j, &id) in ids.iter().enumerate() {
                        let x = values.map_or(1.0, |v| f64::from(v[j]));
                        self.add(trainable, e0 + id as usize * kk + ya, x);
                        self.add(trainable, e0 + id as usize * kk + pa, -x);
                    }
                }
            }
        }
        if n > 0 {
            if target[0] != predicted[0] {
                self.add(trainable, layout.start_offset() + target[0], 1.0);
                self.add(trainable, layout.start_offset() + predicted[0], -1.0);
            }
            if target[n - 1] != predicted[n - 1] {
                self.add(trainable, layout.end_offset() + target[n - 1], 1.0);
                self.add(trainable, layout.end_offset() + predicted[n - 1], -1.0);
            }
        }
    }

    /// The touched entries `(index, value)` (some may have cancelled to 0).
    fn entries(&self) -> impl Iterator<Item = (usize, f64)> + '_ {
        self.touched.iter().map(|&k| (k, self.values[k]))
    }

    fn norm2(&self) -> f64 {
        self.entries().map(|(_, x)| x * x).sum()
    }

    fn clear(&mut self) {
        for &k in &self.touched {
            self.values[k] = 0.0;
            self.seen[k] = false;
        }
        self.touched.clear();
    }
}

#[cfg(test)]
mod tests;
