//! The training driver: parameters, L-BFGS / OWL-QN from `argmin`, CRFsuite's
//! stopping rules, progress reporting and early stopping on held-out data.
//!
//! [`TrainParams`] is a consuming builder whose setters document their defaults
//! (CRFsuite's) and whose [`TrainParams::check`] rejects bad values before any
//! work. [`train`] wires the [`Objective`] into `argmin`'s L-BFGS (with
//! More-Thuente line search; with `c1 > 0`, argmin's OWL-QN mode) and wraps the
//! solver in [`Stopping`], whose `terminate` applies CRFsuite's rules — argmin
//! observers see iterations but cannot stop a run.
//!
//! A run can be continued exactly: after every iteration the callback may ask
//! for the optimizer's complete state ([`Iteration::optimizer_state`]: L-BFGS's
//! correction pairs, argmin's iteration state, the `delta` test's history and
//! early stopping's best held-out score), and [`resume`] picks it up so that
//! the continued run takes, bit for bit, the path the uninterrupted one takes.

use crate::data::Dataset;
use crate::objective::Objective;
use crate::parvec::ParVec;
use argmin::core::{
    CostFunction, Executor, Gradient, IterState, Problem, Solver, State, TerminationReason, TerminationStatus, KV,
};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use argmin_math::ArgminL2Norm;
use chaincrf_core::chain::ChainWorkspace;
use chaincrf_core::MaxPlus;
use chaincrf_model::{ScoredChain, Structure, WeightLayout};
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Errors from training.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// A parameter is out of range.
    #[error("invalid training parameter {name}: {message}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// Why it is invalid.
        message: String,
    },
    /// The data cannot be trained on.
    #[error("{0}")]
    Data(String),
    /// The objective could not be evaluated.
    #[error(transparent)]
    Eval(#[from] crate::objective::EvalError),
    /// The optimizer failed.
    #[error("optimizer: {0}")]
    Optimizer(String),
}

/// Which attribute × label pairs and label pairs get weights (CRFsuite's
/// `feature.possible_states` / `feature.possible_transitions`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FeaturePairs {
    /// Only pairs seen in the training data (CRFsuite's default).
    #[default]
    Observed,
    /// Every pair (CRF++'s model).
    All,
}

/// Training parameters. Every default is CRFsuite's unless said otherwise.
#[derive(Clone, Debug)]
pub struct TrainParams {
    c1: f64,
    c2: f64,
    max_iterations: Option<u64>,
    epsilon: f64,
    delta: f64,
    period: usize,
    gradient_tolerance: f64,
    memory: usize,
    threads: usize,
    feature_pairs: FeaturePairs,
    patience: Option<usize>,
    stop: Option<Arc<AtomicBool>>,
    sgd_epochs: usize,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            c1: 0.0,
            c2: 1.0,
            max_iterations: None,
            epsilon: 1e-5,
            delta: 1e-5,
            period: 10,
            gradient_tolerance: 0.0,
            memory: 6,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            feature_pairs: FeaturePairs::Observed,
            patience: None,
            stop: None,
            sgd_epochs: 0,
        }
    }
}

impl TrainParams {
    /// Defaults: `c1 = 0`, `c2 = 1`, no iteration cap, `epsilon = 1e-5`,
    /// `delta = 1e-5`, `period = 10`, 6 L-BFGS memories, all cores, observed pairs.
    pub fn new() -> Self {
        Self::default()
    }
    /// L1 coefficient: adds `c1·‖w‖₁` and switches to OWL-QN when `> 0`. Default 0.
    pub fn c1(mut self, c1: f64) -> Self {
        self.c1 = c1;
        self
    }
    /// L2 coefficient: adds `c2·‖w‖²` (CRFsuite's definition; CRF++'s `-c C` is `c2 = 1/(2C)`). Default 1.
    pub fn c2(mut self, c2: f64) -> Self {
        self.c2 = c2;
        self
    }
    /// Stops after this many iterations. Default: no cap.
    pub fn max_iterations(mut self, n: Option<u64>) -> Self {
        self.max_iterations = n;
        self
    }
    /// Stops when `‖g‖ / max(1, ‖w‖) < epsilon`. Default 1e-5.
    pub fn epsilon(mut self, e: f64) -> Self {
        self.epsilon = e;
        self
    }
    /// Stops when the objective improved by less than `delta` (relative) over the
    /// last `period` iterations. Default 1e-5.
    pub fn delta(mut self, d: f64) -> Self {
        self.delta = d;
        self
    }
    /// The `period` of the `delta` test. Default 10.
    pub fn period(mut self, p: usize) -> Self {
        self.period = p;
        self
    }
    /// Stops when `‖g‖ < tol` (absolute). Default 0 (off).
    pub fn gradient_tolerance(mut self, tol: f64) -> Self {
        self.gradient_tolerance = tol;
        self
    }
    /// L-BFGS memory size. Default 6.
    pub fn memory(mut self, m: usize) -> Self {
        self.memory = m;
        self
    }
    /// Worker threads. Default: all cores. The model does not depend on it.
    pub fn threads(mut self, t: usize) -> Self {
        self.threads = t;
        self
    }
    /// Epochs of SGD (see [`crate::sgd`]) run before L-BFGS, from the
    /// initial weights; 0 (the default, CRFsuite's plain L-BFGS) for none.
    /// Not run when a saved state is resumed.
    pub fn sgd_epochs(mut self, n: usize) -> Self {
        self.sgd_epochs = n;
        self
    }
    /// Epochs of the SGD warm start.
    pub fn sgd_epochs_value(&self) -> usize {
        self.sgd_epochs
    }
    /// Which pairs get weights. Default [`FeaturePairs::Observed`].
    pub fn feature_pairs(mut self, f: FeaturePairs) -> Self {
        self.feature_pairs = f;
        self
    }
    /// With a held-out set: stop when its accuracy has not improved for this many
    /// iterations, and return the best weights seen. Default: off.
    pub fn patience(mut self, p: Option<usize>) -> Self {
        self.patience = p;
        self
    }
    /// A flag another thread (a signal handler) may set to end training
    /// cleanly: the current iteration finishes, the callback sees it with
    /// [`Progress::interrupted`] set, and [`train`] returns its weights with a
    /// termination reason saying so. Default: none.
    pub fn stop_flag(mut self, flag: Option<Arc<AtomicBool>>) -> Self {
        self.stop = flag;
        self
    }
    /// The L1 coefficient.
    pub fn c1_value(&self) -> f64 {
        self.c1
    }
    /// The L2 coefficient.
    pub fn c2_value(&self) -> f64 {
        self.c2
    }
    /// Which pairs get weights.
    pub fn feature_pairs_value(&self) -> FeaturePairs {
        self.feature_pairs
    }
    /// Whether the stop flag is set.
    pub fn stop_requested(&self) -> bool {
        self.stop.as_ref().is_some_and(|f| f.load(Ordering::SeqCst))
    }
    /// The thread count.
    pub fn threads_value(&self) -> usize {
        self.threads
    }

    /// Checks every parameter.
    ///
    /// # Errors
    /// [`TrainError::InvalidParameter`] naming the first bad one.
    pub fn check(&self) -> Result<(), TrainError> {
        let bad = |name, message: &str| {
            Err(TrainError::InvalidParameter {
                name,
                message: message.into(),
            })
        };
        let nonneg = |x: f64| x.is_finite() && x >= 0.0;
        if !nonneg(self.c1) {
            return bad("c1", "must be a finite number ≥ 0");
        }
        if !nonneg(self.c2) {
            return bad("c2", "must be a finite number ≥ 0");
        }
        if !nonneg(self.epsilon) {
            return bad("epsilon", "must be ≥ 0");
        }
        if !nonneg(self.delta) {
            return bad("delta", "must be ≥ 0");
        }
        if !nonneg(self.gradient_tolerance) {
            return bad("gradient_tolerance", "must be ≥ 0");
        }
        if self.period == 0 {
            return bad("period", "must be ≥ 1");
        }
        if self.memory == 0 {
            return bad("memory", "must be ≥ 1");
        }
        if self.threads == 0 {
            return bad("threads", "must be ≥ 1");
        }
        if self.patience == Some(0) {
            return bad("patience", "must be ≥ 1");
        }
        if self.sgd_epochs > 0 && self.c2 == 0.0 {
            return bad(
                "sgd_epochs",
                "the SGD warm start needs c2 > 0 (its learning rate is set by the L2 term); \
                 use 0 SGD epochs (--sgd-epochs 0) with c2 = 0",
            );
        }
        Ok(())
    }
}

/// What one iteration reports.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Iteration number (1-based).
    pub iteration: u64,
    /// Objective value (loss + regularization).
    pub objective: f64,
    /// Norm of the (pseudo-)gradient.
    pub gradient_norm: f64,
    /// Non-zero trainable weights.
    pub active_features: usize,
    /// Passes over the corpus so far.
    pub evaluations: usize,
    /// Seconds since training started.
    pub seconds: f64,
    /// Token accuracy on the held-out set, when one was given.
    pub dev_accuracy: Option<f64>,
    /// The stop flag ([`TrainParams::stop_flag`]) was set: this is the last
    /// iteration, and these are the weights [`train`] returns. Decided once,
    /// before the callback runs, so a callback that saves state when it sees
    /// `true` always saves the final weights.
    pub interrupted: bool,
    /// This iteration was reported by the run that [`resume`] continues; it
    /// is reported again because its held-out score feeds early stopping. A
    /// callback need not checkpoint it again.
    pub replayed: bool,
    /// Which optimizer this report comes from.
    pub stage: Stage,
}

/// Which optimizer produced a [`Progress`] report.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stage {
    /// An epoch of the SGD warm start ([`TrainParams::sgd_epochs`]):
    /// `iteration` counts epochs, `objective` is SGD's running estimate (see
    /// [`crate::SgdEpoch::objective`]), `gradient_norm` is NaN (no full
    /// gradient is computed) and `evaluations` is 0. There is no optimizer
    /// state to save ([`Iteration::optimizer_state`] is an error), and early
    /// stopping ignores these reports.
    Sgd {
        /// The learning rate at the end of the epoch.
        learning_rate: f64,
    },
    /// An L-BFGS (OWL-QN) iteration.
    Lbfgs,
}

/// What the per-iteration callback sees.
pub struct Iteration<'a> {
    /// Numbers of this iteration.
    pub progress: &'a Progress,
    weights: IterationWeights<'a>,
    snapshot: &'a dyn Fn() -> Result<Vec<u8>, String>,
}

/// An iteration's weights: in the full layout already (SGD), or the
/// optimizer's compact vector, expanded on first use. Expanding means
/// allocating and filling a vector of every weight (51 MB on PKU), on one
/// thread while the others wait; most iterations of a run without held-out
/// data or checkpoints never need it.
enum IterationWeights<'a> {
    Full(&'a [f64]),
    Compact {
        weights: &'a [f64],
        expand: &'a dyn Fn(&[f64]) -> Vec<f64>,
        full: std::cell::OnceCell<Vec<f64>>,
    },
}

impl std::fmt::Debug for Iteration<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iteration")
            .field("progress", self.progress)
            .finish_non_exhaustive()
    }
}

impl Iteration<'_> {
    /// The iteration's weights, in the full layout (computed on the first
    /// call of an iteration, then kept).
    pub fn weights(&self) -> &[f64] {
        match &self.weights {
            IterationWeights::Full(w) => w,
            IterationWeights::Compact { weights, expand, full } => full.get_or_init(|| expand(weights)),
        }
    }

    /// The optimizer's complete state as of this iteration, encoded, for
    /// [`OptimizerState::from_bytes`] and [`resume`]. Its size is about
    /// `2·memory + 8` vectors of the trainable weights' length, so ask for
    /// it only when saving a checkpoint.
    ///
    /// # Errors
    /// A message when it cannot be encoded (larger than the file format allows).
    pub fn optimizer_state(&self) -> Result<Vec<u8>, String> {
        (self.snapshot)()
    }
}

/// The concrete solver [`train`] runs: L-BFGS (OWL-QN with `c1 > 0`) with a
/// More-Thuente line search whose first step is scaled.
type Lbfgs = LBFGS<FirstStepScaled<MoreThuenteLineSearch<ParVec, ParVec, f64>>, ParVec, ParVec, f64>;

/// The best held-out accuracy seen, its iteration and its (compact) weights.
type BestDev = Option<(f64, u64, Vec<f64>)>;

/// An optimizer state saved by [`Iteration::optimizer_state`], decoded: what
/// [`resume`] needs to continue a run exactly where it was.
#[derive(serde::Deserialize)]
pub struct OptimizerState {
    solver: Lbfgs,
    state: St,
    history: Vec<f64>,
    best_dev: BestDev,
    trainable: u64,
}

/// The borrowed twin of [`OptimizerState`] (same fields, same order, hence
/// the same encoding), so that saving copies no vector.
#[derive(serde::Serialize)]
struct OptimizerStateRef<'a, S> {
    solver: &'a S,
    state: &'a St,
    history: &'a [f64],
    best_dev: &'a BestDev,
    trainable: u64,
}

impl OptimizerState {
    /// Decodes bytes from [`Iteration::optimizer_state`].
    ///
    /// # Errors
    /// A message when the bytes are not such a state.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        chaincrf_model::io::decode_payload(bytes).map_err(|e| format!("not a saved optimizer state: {e}"))
    }
    /// Iterations completed when it was saved.
    pub fn iteration(&self) -> u64 {
        self.state.get_iter()
    }
}

impl std::fmt::Debug for OptimizerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OptimizerState")
            .field("iteration", &self.iteration())
            .field("trainable", &self.trainable)
            .finish_non_exhaustive()
    }
}

/// The result of training.
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    /// The final weights (flat, laid out by the objective's layout).
    pub weights: Vec<f64>,
    /// Iterations run.
    pub iterations: u64,
    /// Passes over the corpus (function + gradient evaluations).
    pub evaluations: usize,
    /// Final objective value.
    pub final_objective: f64,
    /// Why training stopped.
    pub termination: String,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Number of trainable weights (the model's features).
    pub features: usize,
    /// Best held-out accuracy seen, when a held-out set was given.
    pub best_dev_accuracy: Option<f64>,
    /// Epochs of the SGD warm start run before L-BFGS.
    pub sgd_epochs: usize,
}

/// Marks which weights are trainable for `data` under `pairs` and `structure`.
pub fn trainable_mask(data: &Dataset, layout: WeightLayout, structure: &Structure, pairs: FeaturePairs) -> Vec<bool> {
    let k = layout.k;
    let kk = k * k;
    let mut mask = vec![pairs == FeaturePairs::All; layout.len()];
    let t0 = layout.transition_offset();
    if pairs == FeaturePairs::Observed {
        // State pairs and edge pairs seen with their gold (or allowed) labels.
        // The labels each position may take (one for gold data), reused buffers.
        let (mut prev, mut ys): (Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new());
        for i in 0..data.len() {
            let obs = data.arena.sequence(i);
            prev.clear();
            for t in 0..obs.len() {
                ys.clear();
                match &data.partial[i] {
                    None => ys.push(data.gold_of(i).map_or(0, |g| g[t])),
                    Some(a) => ys.extend((0..k).filter(|&y| a.is_allowed(t, y))),
                }
                for &id in obs.state(t).0 {
                    for &y in &ys {
                        mask[id as usize * k + y] = true;
                    }
                }
                if t > 0 {
                    for &a in &prev {
                        for &b in &ys {
                            mask[t0 + a * k + b] = true;
                            for &id in obs.edge(t).0 {
                                mask[layout.edge_offset() + id as usize * kk + a * k + b] = true;
                            }
                        }
                    }
                }
                std::mem::swap(&mut prev, &mut ys);
            }
        }
    }
    if !structure.transitions {
        mask[t0..t0 + kk].iter_mut().for_each(|m| *m = false);
    }
    for &(i, j) in &structure.forbidden_transitions {
        mask[t0 + i as usize * k + j as usize] = false;
    }
    let s0 = layout.start_offset();
    let start_end = structure.start_end;
    mask[s0..s0 + 2 * k].iter_mut().for_each(|m| *m = start_end);
    for &y in &structure.forbidden_start {
        mask[s0 + y as usize] = false;
    }
    for &y in &structure.forbidden_end {
        mask[s0 + k + y as usize] = false;
    }
    mask
}

/// Token accuracy of `weights` on `dev` (Viterbi, in parallel).
pub fn dev_accuracy(dev: &Dataset, layout: WeightLayout, structure: &Structure, weights: &[f64]) -> f64 {
    let view = layout.view(weights);
    let (correct, total) = (0..dev.len())
        .into_par_iter()
        .map_init(
            || (ScoredChain::default(), ChainWorkspace::<MaxPlus>::new()),
            |(scored, ws), i| {
                let Some(gold) = dev.gold_of(i) else {
                    return (0usize, 0usize);
                };
                view.score_into(structure, &dev.arena.sequence(i), scored);
                match ws.viterbi(scored) {
                    Ok(p) => (p.labels.iter().zip(gold).filter(|(a, b)| a == b).count(), gold.len()),
                    Err(_) => (0, gold.len()),
                }
            },
        )
        .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    if total == 0 {
        0.0
    } else {
        correct as f64 / total as f64
    }
}

/// argmin's view of the objective: cost and gradient served from one cached pass.
struct ArgminProblem<'o, 'd> {
    objective: &'o Objective<'d>,
}

impl CostFunction for ArgminProblem<'_, '_> {
    type Param = ParVec;
    type Output = f64;
    fn cost(&self, w: &ParVec) -> Result<f64, argmin::core::Error> {
        Ok(self.objective.cost_and_gradient(w)?.0)
    }
}

impl Gradient for ArgminProblem<'_, '_> {
    type Param = ParVec;
    type Gradient = ParVec;
    fn gradient(&self, w: &ParVec) -> Result<ParVec, argmin::core::Error> {
        Ok(ParVec(self.objective.cost_and_gradient(w)?.1))
    }
}

type St = IterState<ParVec, ParVec, (), (), (), f64>;

/// A solver wrapper that applies CRFsuite's stopping rules, reports progress
/// and evaluates the held-out set after every iteration.
pub struct Stopping<'a, S> {
    inner: S,
    epsilon: f64,
    delta: f64,
    period: usize,
    gradient_tolerance: f64,
    history: Vec<f64>,
    started: Instant,
    evaluations: &'a dyn Fn() -> usize,
    on_iteration: &'a mut dyn FnMut(&Iteration<'_>) -> Option<f64>,
    expand: &'a dyn Fn(&[f64]) -> Vec<f64>,
    patience: Option<usize>,
    best_dev: BestDev,
    reason: Option<String>,
    stop: Option<Arc<AtomicBool>>,
    /// A resumed run's first iteration, already reported by the run it continues.
    replay: Option<u64>,
    /// The weights of the iteration at which the stop flag was seen.
    interrupted_at: Option<Vec<f64>>,
}

impl<S: Solver<ArgminProblem<'static, 'static>, St>> std::fmt::Debug for Stopping<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stopping")
            .field("epsilon", &self.epsilon)
            .field("delta", &self.delta)
            .finish()
    }
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

impl<O, S: Solver<O, St> + serde::Serialize> Solver<O, St> for Stopping<'_, S> {
    fn name(&self) -> &str {
        "L-BFGS with CRFsuite stopping"
    }
    fn init(&mut self, problem: &mut Problem<O>, state: St) -> Result<(St, Option<KV>), argmin::core::Error> {
        self.inner.init(problem, state)
    }
    fn next_iter(&mut self, problem: &mut Problem<O>, state: St) -> Result<(St, Option<KV>), argmin::core::Error> {
        self.inner.next_iter(problem, state)
    }
    fn terminate(&mut self, state: &St) -> TerminationStatus {
        if state.get_iter() == 0 {
            return TerminationStatus::NotTerminated;
        }
        let iteration = state.get_iter();
        let cost = state.get_cost();
        let (Some(w), Some(g)) = (state.get_param(), state.get_gradient()) else {
            return TerminationStatus::NotTerminated;
        };
        let gnorm = norm(g);
        let active = w.iter().filter(|x| **x != 0.0).count();
        let mut progress = Progress {
            iteration,
            objective: cost,
            gradient_norm: gnorm,
            active_features: active,
            evaluations: (self.evaluations)(),
            seconds: self.started.elapsed().as_secs_f64(),
            dev_accuracy: None,
            interrupted: self.stop.as_ref().is_some_and(|f| f.load(Ordering::SeqCst)),
            replayed: self.replay == Some(iteration),
            stage: Stage::Lbfgs,
        };
        // The snapshot is taken before this iteration's bookkeeping below; a
        // resumed run replays that bookkeeping (see `resume`).
        let (solver, history, best_dev) = (&self.inner, &self.history, &self.best_dev);
        let snapshot = || {
            chaincrf_model::io::encode_payload(&OptimizerStateRef {
                solver,
                state,
                history,
                best_dev,
                trainable: w.len() as u64,
            })
            .map_err(|e| format!("cannot encode the optimizer state: {e}"))
        };
        progress.dev_accuracy = (self.on_iteration)(&Iteration {
            progress: &progress,
            weights: IterationWeights::Compact {
                weights: w,
                expand: self.expand,
                full: std::cell::OnceCell::new(),
            },
            snapshot: &snapshot,
        });
        if progress.interrupted {
            self.interrupted_at = Some(w.to_vec());
            return self.stop(format!("interrupted after iteration {iteration}"));
        }
        self.history.push(cost);
        if let Some(acc) = progress.dev_accuracy {
            let better = self.best_dev.as_ref().is_none_or(|(b, _, _)| acc > *b);
            if better {
                self.best_dev = Some((acc, iteration, w.to_vec()));
            }
            if let (Some(p), Some((_, at, _))) = (self.patience, &self.best_dev) {
                if iteration >= at + p as u64 {
                    return self.stop(format!(
                        "early stopping: held-out accuracy has not improved for {p} iterations"
                    ));
                }
            }
        }
        if gnorm / norm(w).max(1.0) < self.epsilon {
            return self.stop(format!("converged: ‖g‖/max(1,‖w‖) < epsilon = {}", self.epsilon));
        }
        if gnorm < self.gradient_tolerance {
            return self.stop(format!("converged: ‖g‖ < {}", self.gradient_tolerance));
        }
        let h = &self.history;
        if h.len() > self.period {
            let before = h[h.len() - 1 - self.period];
            if (before - cost) / cost.abs().max(f64::MIN_POSITIVE) < self.delta {
                return self.stop(format!(
                    "converged: objective improved by less than delta = {} over {} iterations",
                    self.delta, self.period
                ));
            }
        }
        TerminationStatus::NotTerminated
    }
}

impl<S> Stopping<'_, S> {
    fn stop(&mut self, reason: String) -> TerminationStatus {
        self.reason = Some(reason.clone());
        TerminationStatus::Terminated(TerminationReason::SolverExit(reason))
    }
}

/// A line search whose first trial step is `1/‖d‖` on the first iteration
/// (liblbfgs/CRFsuite's choice: the first direction is the raw gradient, whose
/// norm on a large corpus is 10⁵ or more) and 1 afterwards, where L-BFGS
/// directions are well scaled. Without it the first iteration spends about ten
/// passes over the corpus shrinking an absurd first step.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct FirstStepScaled<L> {
    inner: L,
    calls: usize,
}

impl<L: argmin::solver::linesearch::LineSearch<ParVec, f64>> argmin::solver::linesearch::LineSearch<ParVec, f64>
    for FirstStepScaled<L>
{
    fn search_direction(&mut self, d: ParVec) {
        let n = d.l2_norm();
        let step = if self.calls == 0 && n > 1.0 { 1.0 / n } else { 1.0 };
        // MoreThuente accepts any step > 0; the error case cannot occur here.
        let _ = self.inner.initial_step_length(step);
        self.calls += 1;
        self.inner.search_direction(d);
    }
    fn initial_step_length(&mut self, step: f64) -> Result<(), argmin::core::Error> {
        self.inner.initial_step_length(step)
    }
}

impl<O, L: Solver<O, St>> Solver<O, St> for FirstStepScaled<L> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn init(&mut self, problem: &mut Problem<O>, state: St) -> Result<(St, Option<KV>), argmin::core::Error> {
        self.inner.init(problem, state)
    }
    fn next_iter(&mut self, problem: &mut Problem<O>, state: St) -> Result<(St, Option<KV>), argmin::core::Error> {
        self.inner.next_iter(problem, state)
    }
    fn terminate(&mut self, state: &St) -> TerminationStatus {
        self.inner.terminate(state)
    }
}

/// Trains weights on `data` starting from `init` (zeros when `None`), calling
/// `on_iteration` after each iteration; it may return the held-out accuracy
/// of the iteration's weights for reporting and early stopping.
///
/// # Errors
/// Bad parameters, data that cannot be trained on, or an evaluation error.
pub fn train(
    data: &Dataset,
    structure: &Structure,
    params: &TrainParams,
    init: Option<Vec<f64>>,
    on_iteration: &mut dyn FnMut(&Iteration<'_>) -> Option<f64>,
) -> Result<TrainOutcome, TrainError> {
    run(data, structure, params, Start::Weights(init), on_iteration)
}

/// Continues a run from the optimizer state it saved after some iteration
/// ([`Iteration::optimizer_state`]). With the same data, structure and
/// parameters (the thread count may differ: the objective does not depend on
/// it), the continued run takes exactly the path of the uninterrupted one
/// and ends with the same weights, bit for bit. `params.max_iterations`
/// counts the iterations of both runs. The saved iteration is reported again
/// (with [`Progress::replayed`] set) because its held-out score is part of
/// early stopping's bookkeeping.
///
/// # Errors
/// As [`train`], and [`TrainError::Data`] when the state does not fit the
/// data (another number of trainable weights).
pub fn resume(
    data: &Dataset,
    structure: &Structure,
    params: &TrainParams,
    saved: OptimizerState,
    on_iteration: &mut dyn FnMut(&Iteration<'_>) -> Option<f64>,
) -> Result<TrainOutcome, TrainError> {
    run(data, structure, params, Start::Saved(Box::new(saved)), on_iteration)
}

/// Where a run starts.
enum Start {
    /// From these weights (zeros when `None`), with a fresh optimizer.
    Weights(Option<Vec<f64>>),
    /// From a saved optimizer state.
    Saved(Box<OptimizerState>),
}

fn run(
    data: &Dataset,
    structure: &Structure,
    params: &TrainParams,
    start: Start,
    on_iteration: &mut dyn FnMut(&Iteration<'_>) -> Option<f64>,
) -> Result<TrainOutcome, TrainError> {
    params.check()?;
    if data.is_empty() {
        return Err(TrainError::Data("no training sequences".into()));
    }
    if data.labels.is_empty() {
        return Err(TrainError::Data("no labels".into()));
    }
    let started = Instant::now();
    let layout = WeightLayout {
        k: data.labels.len(),
        num_state: data.attributes.len(chaincrf_features::AttrKind::State),
        num_edge: data.attributes.len(chaincrf_features::AttrKind::Edge),
    };
    let trainable = trainable_mask(data, layout, structure, params.feature_pairs);
    let features = trainable.iter().filter(|&&t| t).count();
    let objective = Objective::new(
        data,
        layout,
        structure.clone(),
        params.c2,
        trainable.clone(),
        params.threads,
    )
    .map_err(TrainError::Data)?;
    let max_iters = params.max_iterations.unwrap_or(u64::MAX);
    let mut sgd_epochs = 0;
    let (solver, state, history, best_dev, replay) = match start {
        Start::Weights(init) => {
            let mut w0 = init.unwrap_or_else(|| vec![0.0; layout.len()]);
            if w0.len() != layout.len() {
                return Err(TrainError::Data(format!(
                    "initial weights have {} values, the layout needs {}",
                    w0.len(),
                    layout.len()
                )));
            }
            for (x, &t) in w0.iter_mut().zip(&trainable) {
                if !t {
                    *x = 0.0;
                }
            }
            if params.sgd_epochs > 0 {
                let warm = warm_start(data, structure, params, layout, &trainable, w0, started, on_iteration)?;
                if params.stop_requested() {
                    // No optimizer state exists yet to checkpoint: stop now
                    // with the SGD weights rather than start L-BFGS.
                    return Ok(TrainOutcome {
                        weights: warm.weights,
                        iterations: 0,
                        evaluations: objective.evaluations(),
                        final_objective: warm.objective,
                        termination: format!("interrupted during the SGD warm start (after {} epochs)", warm.epochs),
                        seconds: started.elapsed().as_secs_f64(),
                        features,
                        best_dev_accuracy: None,
                        sgd_epochs: warm.epochs,
                    });
                }
                sgd_epochs = warm.epochs;
                w0 = warm.weights;
            }
            let w0 = objective.compress(&w0);
            // Evaluate once up front: a data error surfaces here with its sequence named.
            objective.cost_and_gradient(&w0)?;
            let state = IterState::new().param(ParVec(w0)).max_iters(max_iters);
            (new_solver(params)?, state, Vec::new(), None, None)
        }
        Start::Saved(saved) => {
            let saved = *saved;
            if saved.trainable != features as u64 {
                return Err(TrainError::Data(format!(
                    "the saved optimizer state is for {} trainable weights, this run has {features}",
                    saved.trainable
                )));
            }
            // A checkpoint passes its checksum but may still be forged or from
            // another build: vectors of the wrong length would panic in argmin.
            let fits = |v: Option<&[f64]>| v.is_none_or(|v| v.len() == features);
            let state = &saved.state;
            if !(fits(state.get_param().map(|v| &v[..]))
                && fits(state.get_gradient().map(|v| &v[..]))
                && fits(state.get_best_param().map(|v| &v[..]))
                && fits(state.get_prev_param().map(|v| &v[..]))
                && fits(saved.best_dev.as_ref().map(|(_, _, w)| &w[..])))
            {
                return Err(TrainError::Data(
                    "the saved optimizer state is damaged: its vectors do not have the trainable weights' length"
                        .into(),
                ));
            }
            let at = saved.state.get_iter();
            let state = saved.state.max_iters(max_iters);
            (saved.solver, state, saved.history, saved.best_dev, Some(at))
        }
    };
    let problem = ArgminProblem { objective: &objective };
    let evals = || objective.evaluations();
    let expand = |w: &[f64]| objective.expand(w);
    let solver = Stopping {
        inner: solver,
        epsilon: params.epsilon,
        delta: params.delta,
        period: params.period,
        gradient_tolerance: params.gradient_tolerance,
        history,
        started,
        evaluations: &evals,
        on_iteration,
        expand: &expand,
        patience: params.patience,
        best_dev,
        reason: None,
        stop: params.stop.clone(),
        replay,
        interrupted_at: None,
    };
    // The solver runs in the objective's pool, so its vector arithmetic
    // (`ParVec`) uses the same threads as the evaluations.
    let result = objective
        .in_pool(|| Executor::new(problem, solver).configure(|_| state).ctrlc(false).run())
        .map_err(|e| match e.downcast::<crate::objective::EvalError>() {
            Ok(e) => TrainError::Eval(e),
            Err(e) => TrainError::Optimizer(e.to_string()),
        })?;
    let iterations = result.state().get_iter();
    let status = result.state().get_termination_status().clone();
    let mut state = result.state;
    let solver = result.solver;
    let termination = match status {
        argmin::core::TerminationStatus::Terminated(TerminationReason::SolverExit(s)) => {
            if s.starts_with("Line search") {
                format!("stopped: the line search failed ({s}); keeping the best weights found")
            } else {
                s
            }
        }
        argmin::core::TerminationStatus::Terminated(TerminationReason::MaxItersReached) => {
            "reached the maximum number of iterations".into()
        }
        argmin::core::TerminationStatus::Terminated(r) => r.text().to_string(),
        argmin::core::TerminationStatus::NotTerminated => "not terminated".into(),
    };
    let best_dev = solver.best_dev.as_ref().map(|(a, _, _)| *a);
    let (weights, final_objective) = match (params.patience, solver.best_dev, solver.interrupted_at) {
        // Early stopping keeps the best held-out weights, interrupted or not.
        (Some(_), Some((_, _, w)), _) => {
            let f = objective.cost_and_gradient(&w)?.0;
            (w, f)
        }
        // Interrupted: the weights the callback last saw (the iteration's), so
        // that a checkpoint it wrote and the model built from the outcome agree.
        (_, _, Some(w)) => {
            let f = state.get_cost();
            (w, f)
        }
        _ => {
            let cost = state.get_best_cost();
            let w = state
                .take_best_param()
                .or_else(|| state.take_param())
                .unwrap_or_default();
            (w.0, cost)
        }
    };
    Ok(TrainOutcome {
        weights: objective.expand(&weights),
        iterations,
        evaluations: objective.evaluations(),
        final_objective,
        termination,
        seconds: started.elapsed().as_secs_f64(),
        features,
        best_dev_accuracy: best_dev,
        sgd_epochs,
    })
}

/// Runs the SGD warm start of `params` from `start` (masked), reporting each
/// epoch to `on_iteration`.
#[allow(clippy::too_many_arguments)]
fn warm_start(
    data: &Dataset,
    structure: &Structure,
    params: &TrainParams,
    layout: WeightLayout,
    trainable: &[bool],
    start: Vec<f64>,
    started: Instant,
    on_iteration: &mut dyn FnMut(&Iteration<'_>) -> Option<f64>,
) -> Result<crate::sgd::SgdOutcome, TrainError> {
    let no_state = || Err("no optimizer state is saved during the SGD warm start".to_string());
    crate::sgd::run_sgd(
        data,
        structure,
        params,
        params.sgd_epochs,
        layout,
        trainable,
        start,
        &mut |e| {
            let progress = Progress {
                iteration: e.epoch as u64,
                objective: e.objective,
                gradient_norm: f64::NAN,
                active_features: e.weights.iter().filter(|x| **x != 0.0).count(),
                evaluations: 0,
                seconds: started.elapsed().as_secs_f64(),
                dev_accuracy: None,
                interrupted: false,
                replayed: false,
                stage: Stage::Sgd {
                    learning_rate: e.learning_rate,
                },
            };
            on_iteration(&Iteration {
                progress: &progress,
                weights: IterationWeights::Full(e.weights),
                snapshot: &no_state,
            });
        },
    )
}

/// A fresh L-BFGS (OWL-QN with `c1 > 0`) for `params`.
fn new_solver(params: &TrainParams) -> Result<Lbfgs, TrainError> {
    let linesearch = FirstStepScaled {
        inner: MoreThuenteLineSearch::new(),
        calls: 0,
    };
    let lbfgs = LBFGS::new(linesearch, params.memory)
        .with_tolerance_grad(0.0)
        .and_then(|s| s.with_tolerance_cost(0.0))
        .map_err(|e| TrainError::Optimizer(e.to_string()))?;
    if params.c1 > 0.0 {
        lbfgs
            .with_l1_regularization(params.c1)
            .map_err(|e| TrainError::Optimizer(e.to_string()))
    } else {
        Ok(lbfgs)
    }
}
