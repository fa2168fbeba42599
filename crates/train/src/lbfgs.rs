//! L-BFGS (OWL-QN with `c1 > 0`) run by `argmin`'s executor, with CRFsuite's
//! stopping rules, held-out early stopping and exact resume.
//!
//! The iteration itself ([`solver::Lbfgs`]) is ours: it computes what
//! argmin's `LBFGS` computes, bit for bit, in fewer passes over the weights
//! (on 6.4 million weights the optimizer's vector work was a third of an
//! iteration); the line search is argmin's More–Thuente search (its vector
//! work done in place by the solver), or one of CRFsuite's backtracking
//! searches ([`linesearch`]).
//!
//! argmin's observers see iterations but cannot stop a run, so the solver is
//! wrapped in [`Stopping`], whose `terminate` applies CRFsuite's rules (the
//! `epsilon` gradient test, the `delta` test over `period` iterations), the
//! held-out patience and the stop flag, and reports each iteration. argmin
//! asks for cost and gradient in separate calls at the start; the
//! [`Differentiable`] objective serves both from one pass cached on the exact
//! parameter vector. Line-search trials are evaluated once each, uncached.
//!
//! CRFsuite's `max_linesearch` bounds the trials of one line search. argmin's
//! More-Thuente search has no such bound, so the problem it evaluates counts
//! them ([`TrialBudget`]): a trial beyond the bound is refused with an error,
//! which the iteration turns into the end of the run (as argmin's L-BFGS
//! does), and the run ends as CRFsuite's does
//! ([`Termination::LineSearchFailed`], keeping the best weights found).
//!
//! A run continues exactly from [`LbfgsState`]: L-BFGS's correction pairs,
//! argmin's iteration state, the `delta` test's history and early stopping's
//! best held-out score, so the continued run takes, bit for bit, the path of
//! the uninterrupted one.

use crate::error::TrainError;
use crate::objective::{Differentiable, EvalError};
use crate::parvec::ParVec;
use crate::progress::{HeldOutScore, Progress, Stage};
use crate::termination::Termination;
use crate::{data::Dataset, params::Algorithm};
use argmin::core::{
    CostFunction, Executor, Gradient, IterState, Problem, Solver, State, TerminationReason, TerminationStatus, KV,
};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use solver::{Lbfgs, St};
use std::cell::OnceCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

mod linesearch;
mod solver;

/// The best held-out accuracy seen, its iteration and its (compact) weights.
type BestHeldOut = Option<(f64, u64, Vec<f64>)>;

/// A saved L-BFGS run: what resuming needs to continue it exactly.
#[derive(serde::Deserialize)]
pub(crate) struct LbfgsState {
    solver: Lbfgs,
    state: St,
    history: Vec<f64>,
    best: BestHeldOut,
    trainable: u64,
}

/// The borrowed twin of [`LbfgsState`] (same fields, same order, hence the
/// same encoding), so that saving copies no vector.
#[derive(serde::Serialize)]
pub(crate) struct LbfgsStateRef<'a> {
    solver: &'a Lbfgs,
    state: &'a St,
    history: &'a [f64],
    best: &'a BestHeldOut,
    trainable: u64,
}

impl LbfgsState {
    /// Iterations completed when it was saved.
    pub(crate) fn iteration(&self) -> u64 {
        self.state.get_iter()
    }
}

/// How an L-BFGS run is set up.
pub(crate) struct LbfgsConfig<'a> {
    pub c1: f64,
    pub memory: usize,
    pub epsilon: f64,
    pub delta: f64,
    pub period: usize,
    pub gradient_tolerance: f64,
    pub max_iterations: Option<u64>,
    /// Most trials (evaluations) of one line search.
    pub max_linesearch: usize,
    /// The line search (not saved: a resumed run takes the configured one).
    pub linesearch: crate::params::LineSearch,
    pub patience: Option<usize>,
    pub stop: Option<&'a AtomicBool>,
    pub started: Instant,
    /// Held-out token accuracy of full-layout weights.
    pub heldout: Option<HeldOutScore<'a>>,
    /// Encodes a state for [`Progress::saved_state`] (the caller wraps it in
    /// its own envelope).
    pub encode: &'a dyn Fn(&LbfgsStateRef<'_>) -> Result<Vec<u8>, TrainError>,
}

/// Where a run starts.
pub(crate) enum LbfgsStart {
    /// From these compact weights, with a fresh optimizer.
    Weights(Vec<f64>),
    /// From a saved state.
    Saved(Box<LbfgsState>),
}

/// The end of a run.
pub(crate) struct LbfgsOutcome {
    /// Compact weights.
    pub weights: Vec<f64>,
    pub iterations: u64,
    pub final_objective: f64,
    pub termination: Termination,
    pub best_heldout: Option<f64>,
}

/// argmin's view of the objective.
struct ArgminProblem<'o, O> {
    objective: &'o O,
    trials: &'o TrialBudget,
}

/// The trials of the current line search, against `max_linesearch`. Every
/// trial of the More-Thuente search is one evaluation at a new point
/// ([`solver::Evaluate`]), and nothing else in an L-BFGS iteration
/// evaluates, so the evaluations since the iteration began are the trials.
struct TrialBudget {
    max: usize,
    used: AtomicUsize,
    /// Set when a trial was refused: the run ends for that reason.
    exhausted: AtomicBool,
}

/// The error that ends a line search which ran out of trials.
#[derive(Debug, thiserror::Error)]
#[error("no step met the line search's conditions within max_linesearch = {max} trials")]
struct LineSearchLimit {
    max: usize,
}

impl TrialBudget {
    fn new(max: usize) -> Self {
        TrialBudget {
            max,
            used: AtomicUsize::new(0),
            exhausted: AtomicBool::new(false),
        }
    }

    /// A new iteration (and so a new line search) begins.
    fn reset(&self) {
        self.used.store(0, Ordering::Relaxed);
    }

    /// Takes one trial, or refuses it when the line search has had its share.
    fn take(&self) -> Result<(), LineSearchLimit> {
        if self.used.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.exhausted.store(true, Ordering::Relaxed);
            return Err(LineSearchLimit { max: self.max });
        }
        Ok(())
    }
}

impl<O: Differentiable> CostFunction for ArgminProblem<'_, O> {
    type Param = ParVec;
    type Output = f64;
    fn cost(&self, w: &ParVec) -> Result<f64, argmin::core::Error> {
        self.trials.take()?;
        let (cost, grad) = self.objective.cost_and_gradient(w)?;
        // argmin asks for the gradient separately; this copy's buffer serves the next vector.
        crate::parvec::give(grad);
        Ok(cost)
    }
}

impl<O: Differentiable> Gradient for ArgminProblem<'_, O> {
    type Param = ParVec;
    type Gradient = ParVec;
    fn gradient(&self, w: &ParVec) -> Result<ParVec, argmin::core::Error> {
        Ok(ParVec(self.objective.cost_and_gradient(w)?.1))
    }
}

/// A line-search trial: one evaluation, counted against the budget, and
/// not cached (the search asks about each point once).
impl<O: Differentiable> solver::Evaluate for ArgminProblem<'_, O> {
    fn evaluate(&self, w: &[f64]) -> Result<(f64, ParVec), argmin::core::Error> {
        self.trials.take()?;
        let (cost, grad) = self.objective.fresh_cost_and_gradient(w)?;
        Ok((cost, ParVec(grad)))
    }
}

/// The solver wrapper that applies the stopping rules and reports progress.
struct Stopping<'a> {
    inner: Lbfgs,
    /// The line search's trials, counted by the problem.
    trials: &'a TrialBudget,
    config: &'a LbfgsConfig<'a>,
    history: Vec<f64>,
    evaluations: &'a dyn Fn() -> usize,
    expand: &'a dyn Fn(&[f64]) -> Vec<f64>,
    data: Option<&'a Dataset>,
    observer: &'a mut dyn FnMut(&Progress<'_>),
    best: BestHeldOut,
    termination: Option<Termination>,
    /// A resumed run's first iteration, already reported by the run it continues.
    replay: Option<u64>,
    /// The weights of the iteration at which the stop flag was seen.
    interrupted_at: Option<Vec<f64>>,
}

/// What the stopping test reads of an iteration's weights `w` and gradient
/// `g`: `‖g‖`, `‖w‖` and the non-zero weights. Each norm is a serial sum (in
/// order: these are the reported figures), so the solver computes them beside
/// its last pass over the same vectors ([`StopNorms::of`] is where).
#[derive(Clone, Copy, Debug)]
pub(crate) struct StopNorms {
    gradient: f64,
    weights: f64,
    nonzero: usize,
    /// The addresses of the buffers they were computed from (the state
    /// moves its vectors, never copies them, between the solver and the test).
    at: (usize, usize),
}

impl StopNorms {
    /// The norms of `w` and `g`, the two serial sums side by side when the
    /// pool has two threads.
    pub(crate) fn of(w: &[f64], g: &[f64]) -> Self {
        let (gradient, (weights, nonzero)) = crate::parvec::both(|| norm(g), || norm_and_nonzeros(w));
        StopNorms {
            gradient,
            weights,
            nonzero,
            at: (w.as_ptr() as usize, g.as_ptr() as usize),
        }
    }

    fn is_of(&self, w: &[f64], g: &[f64]) -> bool {
        self.at == (w.as_ptr() as usize, g.as_ptr() as usize)
    }
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// `(norm(w), the number of non-zero weights)` in one pass; the squares are
/// added in the same order as [`norm`]'s.
fn norm_and_nonzeros(w: &[f64]) -> (f64, usize) {
    let (mut sum, mut nonzero) = (0.0, 0);
    for &x in w {
        sum += x * x;
        nonzero += usize::from(x != 0.0);
    }
    (sum.sqrt(), nonzero)
}

impl<O> Solver<O, St> for Stopping<'_>
where
    Lbfgs: Solver<O, St>,
{
    fn name(&self) -> &str {
        "L-BFGS with CRFsuite stopping"
    }
    fn init(&mut self, problem: &mut Problem<O>, state: St) -> Result<(St, Option<KV>), argmin::core::Error> {
        self.inner.init(problem, state)
    }
    fn next_iter(&mut self, problem: &mut Problem<O>, state: St) -> Result<(St, Option<KV>), argmin::core::Error> {
        self.trials.reset();
        self.inner.next_iter(problem, state)
    }
    fn terminate(&mut self, state: &St) -> TerminationStatus {
        match self.check(state) {
            Some(t) => {
                self.termination = Some(t);
                TerminationStatus::Terminated(TerminationReason::SolverExit("CRFsuite stopping rule".into()))
            }
            None => TerminationStatus::NotTerminated,
        }
    }
}

impl Stopping<'_> {
    /// Reports iteration `state` and decides whether the run ends there.
    fn check(&mut self, state: &St) -> Option<Termination> {
        let iteration = state.get_iter();
        if iteration == 0 {
            return None;
        }
        let cost = state.get_cost();
        let (Some(w), Some(g)) = (state.get_param(), state.get_gradient()) else {
            return None;
        };
        let config = self.config;
        let norms = match self.inner.take_stop_norms() {
            Some(n) if n.is_of(w, g) => n,
            _ => StopNorms::of(w, g),
        };
        let (gnorm, wnorm, active_features) = (norms.gradient, norms.weights, norms.nonzero);
        let interrupted = config.stop.is_some_and(|f| f.load(Ordering::SeqCst));
        let full: OnceCell<Vec<f64>> = OnceCell::new();
        let expand = self.expand;
        let weights = || full.get_or_init(|| expand(w)).as_slice();
        let heldout = config.heldout.map(|h| h(weights()));
        // The snapshot is taken before this iteration's bookkeeping below; a
        // resumed run replays that bookkeeping (see `Trainer::resume_from`).
        let (solver, history, best) = (&self.inner, &self.history, &self.best);
        let snapshot = || {
            (config.encode)(&LbfgsStateRef {
                solver,
                state,
                history,
                best,
                trainable: w.len() as u64,
            })
        };
        let progress = Progress {
            algorithm: Algorithm::Lbfgs,
            stage: Stage::Main,
            iteration,
            objective: cost,
            gradient_norm: Some(gnorm),
            learning_rate: None,
            active_features,
            weight_norm: Some(wnorm),
            evaluations: (self.evaluations)(),
            seconds: config.started.elapsed().as_secs_f64(),
            heldout,
            interrupted,
            replayed: self.replay == Some(iteration),
            data: self.data,
            weights: &weights,
            state: Some(&snapshot),
        };
        (self.observer)(&progress);
        if interrupted {
            self.interrupted_at = Some(w.to_vec());
            return Some(Termination::Interrupted {
                after: iteration,
                during_warm_start: false,
            });
        }
        self.history.push(cost);
        if let Some(acc) = heldout {
            if self.best.as_ref().is_none_or(|(b, _, _)| acc > *b) {
                self.best = Some((acc, iteration, w.to_vec()));
            }
            if let (Some(p), Some((_, at, _))) = (config.patience, &self.best) {
                if iteration >= at + p as u64 {
                    return Some(Termination::EarlyStopping {
                        patience: p,
                        best_iteration: *at,
                    });
                }
            }
        }
        if gnorm / wnorm.max(1.0) < config.epsilon {
            return Some(Termination::Converged {
                epsilon: config.epsilon,
            });
        }
        if gnorm < config.gradient_tolerance {
            return Some(Termination::GradientTolerance {
                tolerance: config.gradient_tolerance,
            });
        }
        let h = &self.history;
        if h.len() > config.period {
            let before = h[h.len() - 1 - config.period];
            if (before - cost) / cost.abs().max(f64::MIN_POSITIVE) < config.delta {
                return Some(Termination::Stalled {
                    delta: config.delta,
                    period: config.period,
                });
            }
        }
        None
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

impl<L> FirstStepScaled<L> {
    /// The first step of the next search along `d`: 1/‖d‖ on a run's first
    /// search when ‖d‖ > 1 (a pass over `d`), else 1.
    fn next_first_step(&mut self, d: &[f64]) -> f64 {
        let n = if self.calls == 0 {
            crate::parvec::l2_norm(d)
        } else {
            0.0
        };
        self.calls += 1;
        if n > 1.0 {
            1.0 / n
        } else {
            1.0
        }
    }
}

impl<L: argmin::solver::linesearch::LineSearch<ParVec, f64>> argmin::solver::linesearch::LineSearch<ParVec, f64>
    for FirstStepScaled<L>
{
    fn search_direction(&mut self, d: ParVec) {
        let step = self.next_first_step(&d);
        // MoreThuente accepts any step > 0; the error case cannot occur here.
        let _ = self.inner.initial_step_length(step);
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

/// A fresh L-BFGS (OWL-QN with `c1 > 0`).
fn new_solver(c1: f64, memory: usize) -> Lbfgs {
    let linesearch = FirstStepScaled {
        inner: MoreThuenteLineSearch::new(),
        calls: 0,
    };
    Lbfgs::new(linesearch, memory, c1)
}

/// Runs L-BFGS on `objective` from `start`, reporting every iteration to `observer`.
pub(crate) fn run<O: Differentiable>(
    objective: &O,
    data: Option<&Dataset>,
    config: &LbfgsConfig<'_>,
    start: LbfgsStart,
    observer: &mut dyn FnMut(&Progress<'_>),
) -> Result<LbfgsOutcome, TrainError> {
    let dim = objective.dim();
    let max_iters = config.max_iterations.unwrap_or(u64::MAX);
    let (solver, state, history, best, replay) = match start {
        LbfgsStart::Weights(w0) => {
            // Evaluate once up front: a data error surfaces here with its sequence named.
            objective.cost_and_gradient(&w0)?;
            let state = IterState::new().param(ParVec(w0)).max_iters(max_iters);
            (new_solver(config.c1, config.memory), state, Vec::new(), None, None)
        }
        LbfgsStart::Saved(saved) => {
            let saved = *saved;
            if saved.trainable != dim as u64 {
                return Err(TrainError::SavedState {
                    problem: format!("is for {} trainable weights, this run has {dim}", saved.trainable),
                });
            }
            // A checkpoint passes its checksum but may still be forged or from
            // another build: vectors of the wrong length would panic in argmin.
            let fits = |v: Option<&[f64]>| v.is_none_or(|v| v.len() == dim);
            let st = &saved.state;
            if !(fits(st.get_param().map(|v| &v[..]))
                && fits(st.get_gradient().map(|v| &v[..]))
                && fits(st.get_best_param().map(|v| &v[..]))
                && fits(st.get_prev_param().map(|v| &v[..]))
                && fits(saved.best.as_ref().map(|(_, _, w)| &w[..])))
            {
                return Err(TrainError::SavedState {
                    problem: "is damaged: its vectors do not have the trainable weights' length".into(),
                });
            }
            let solver = saved
                .solver
                .restored(dim)
                .map_err(|problem| TrainError::SavedState { problem })?;
            let at = saved.state.get_iter();
            let state = saved.state.max_iters(max_iters);
            (solver, state, saved.history, saved.best, Some(at))
        }
    };
    let solver = solver.with_line_search(config.linesearch);
    let evaluations = || objective.evaluations();
    let expand = |w: &[f64]| objective.expand(w);
    let trials = TrialBudget::new(config.max_linesearch);
    let solver = Stopping {
        inner: solver,
        trials: &trials,
        config,
        history,
        evaluations: &evaluations,
        expand: &expand,
        data,
        observer,
        best,
        termination: None,
        replay,
        interrupted_at: None,
    };
    let problem = ArgminProblem {
        objective,
        trials: &trials,
    };
    // The solver runs in the objective's pool, so its vector arithmetic
    // (`ParVec`) uses the same threads as the evaluations.
    let result = objective
        .in_pool(|| Executor::new(problem, solver).configure(|_| state).ctrlc(false).run())
        .map_err(|e| match e.downcast::<EvalError>() {
            Ok(e) => TrainError::Eval(e),
            Err(e) => TrainError::Optimizer(e.into()),
        })?;
    let iterations = result.state().get_iter();
    let status = result.state().get_termination_status().clone();
    let mut state = result.state;
    let solver = result.solver;
    let termination = match (solver.termination, status) {
        (Some(t), _) => t,
        (None, TerminationStatus::Terminated(TerminationReason::MaxItersReached)) => {
            Termination::MaxIterations { limit: max_iters }
        }
        (None, TerminationStatus::Terminated(_)) if trials.exhausted.load(Ordering::Relaxed) => {
            Termination::LineSearchFailed {
                detail: LineSearchLimit {
                    max: config.max_linesearch,
                }
                .to_string(),
            }
        }
        // argmin's L-BFGS ends with a solver exit when its line search fails;
        // anything else that ends the run is reported the same way.
        (None, TerminationStatus::Terminated(r)) => Termination::LineSearchFailed {
            detail: r.text().to_string(),
        },
        (None, TerminationStatus::NotTerminated) => Termination::LineSearchFailed {
            detail: "the optimizer stopped without a reason".into(),
        },
    };
    let best_heldout = solver.best.as_ref().map(|(a, _, _)| *a);
    let (weights, final_objective) = match (config.patience, solver.best, solver.interrupted_at) {
        // Early stopping keeps the best held-out weights, interrupted or not.
        (Some(_), Some((_, _, w)), _) => {
            let f = objective.cost_and_gradient(&w)?.0;
            (w, f)
        }
        // Interrupted: the weights the observer last saw (the iteration's), so
        // that a checkpoint it wrote and the model built from the outcome agree.
        (_, _, Some(w)) => (w, state.get_cost()),
        _ => {
            let cost = state.get_best_cost();
            let w = state
                .take_best_param()
                .or_else(|| state.take_param())
                .unwrap_or_default();
            (w.into_inner(), cost)
        }
    };
    Ok(LbfgsOutcome {
        weights,
        iterations,
        final_objective,
        termination,
        best_heldout,
    })
}
