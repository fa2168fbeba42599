//! The fit loop: one [`Trainer`] for every algorithm, returning a model.
//!
//! A run is configured once — checked parameters, threads, held-out data
//! and early stopping, an observer for [`Progress`] events, a stop flag,
//! a saved state to resume from — and [`Trainer::fit`] turns a [`Dataset`]
//! into a [`Fitted`] model with a [`Report`] whose [`Termination`] is a type.
//! The optimizers below it (`lbfgs`, `sgd`, `online`) only optimize; the
//! trainable mask, the weight layout, held-out scoring, the warm start and
//! the model are decided here, once.

use crate::data::Dataset;
use crate::epochs::EpochControl;
use crate::error::TrainError;
use crate::lbfgs::{self, LbfgsConfig, LbfgsStart};
use crate::mask::trainable_mask;
use crate::objective::{Differentiable, Objective};
use crate::online::{run_online, OnlineAlgorithm, OnlineConfig, OnlineStart, OnlineTermination};
use crate::params::{Algorithm, CheckedParams, Params};
use crate::progress::{HeldOutScore, Observer, Progress, Stage};
use crate::sgd::{run_l2sgd, Calibration, SgdConfig, SgdStart, SgdTermination};
use crate::state::{BestSoFar, Owned, SavedState, StateRef};
use crate::termination::Termination;
use chaincrf_core::chain::ChainWorkspace;
use chaincrf_core::MaxPlus;
use chaincrf_model::{Model, ScoredChain, Structure, WeightLayout};
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Trains models: configure once, then [`Trainer::fit`].
///
/// ```
/// use chaincrf_features::{Attr, FeatureExtractor};
/// use chaincrf_train::{Algorithm, DatasetBuilder, Params, Trainer};
/// struct Words;
/// impl FeatureExtractor for Words {
///     type Input = [&'static str];
///     fn len(&self, input: &Self::Input) -> usize { input.len() }
///     fn extract(&self, input: &Self::Input, t: usize, sink: &mut dyn FnMut(Attr<'_>)) {
///         sink(Attr::state(&format!("w={}", input[t])));
///     }
/// }
/// let mut data = DatasetBuilder::new();
/// data.add(&Words, &["the", "cat", "sat"][..], &["D", "N", "V"])?;
/// data.add(&Words, &["a", "dog", "ran"][..], &["D", "N", "V"])?;
/// let data = data.build();
/// let params = Params::new(Algorithm::Lbfgs).c2(0.1).check()?;
/// let fitted = Trainer::new(params).threads(1).fit(&data)?;
/// println!("{}", fitted.report());
/// let model = fitted.into_model();
/// let labels = model.tagger().tag(&Words, &["the", "dog", "sat"][..])?;
/// assert_eq!(labels, ["D", "N", "V"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Trainer<'a> {
    params: Params,
    threads: usize,
    held_out: Option<&'a Dataset>,
    patience: Option<usize>,
    stop: Option<Arc<AtomicBool>>,
    observer: Option<Observer<'a>>,
    initial: Option<Vec<f64>>,
    resume: Option<SavedState>,
}

impl std::fmt::Debug for Trainer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("params", &self.params)
            .field("threads", &self.threads)
            .field("patience", &self.patience)
            .finish_non_exhaustive()
    }
}

impl<'a> Trainer<'a> {
    /// A trainer for `params`, on all cores, with no held-out data, observer
    /// or stop flag.
    pub fn new(params: CheckedParams) -> Self {
        Trainer {
            params: params.0,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            held_out: None,
            patience: None,
            stop: None,
            observer: None,
            initial: None,
            resume: None,
        }
    }

    /// Worker threads for L-BFGS's evaluations and held-out scoring (the
    /// online algorithms run on one). The model does not depend on it.
    /// 0 means all cores.
    pub fn threads(mut self, threads: usize) -> Self {
        if threads > 0 {
            self.threads = threads;
        }
        self
    }

    /// Scores token accuracy on `data` after every iteration or epoch
    /// ([`Progress::heldout`], [`Report::best_heldout`]). Build it with
    /// [`crate::HeldOutBuilder`] against the training set's dictionary.
    pub fn held_out(mut self, data: &'a Dataset) -> Self {
        self.held_out = Some(data);
        self
    }

    /// With held-out data: stop when its accuracy has not improved for
    /// `patience` iterations, and return the best weights seen (0 = off).
    pub fn early_stopping(mut self, patience: usize) -> Self {
        self.patience = (patience > 0).then_some(patience);
        self
    }

    /// A flag another thread (a signal handler) may set to end training
    /// cleanly: the current iteration finishes, the observer sees it with
    /// [`Progress::interrupted`], and `fit` returns its weights with
    /// [`Termination::Interrupted`].
    pub fn stop_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.stop = Some(flag);
        self
    }

    /// Called after every iteration or epoch.
    pub fn observer(mut self, observer: impl FnMut(&Progress<'_>) + 'a) -> Self {
        self.observer = Some(Box::new(observer));
        self
    }

    /// Starts from these full-layout weights instead of zeros (continuing
    /// from a model: see [`crate::ClassicSetup`]); untrainable ones are zeroed.
    pub fn initial_weights(mut self, weights: Vec<f64>) -> Self {
        self.initial = Some(weights);
        self
    }

    /// Continues the run that saved `state` ([`Progress::saved_state`]).
    /// With the same data and parameters (threads may differ), the continued
    /// run takes exactly the path of the uninterrupted one and ends with the
    /// same model, bit for bit. The iteration cap counts both runs' iterations.
    pub fn resume_from(mut self, state: SavedState) -> Self {
        self.resume = Some(state);
        self
    }

    /// Trains on `data`.
    ///
    /// # Errors
    /// Empty data, initial weights or a saved state that do not fit the
    /// data, a sequence whose likelihood cannot be computed, an optimizer
    /// failure.
    pub fn fit(&mut self, data: &Dataset) -> Result<Fitted, TrainError> {
        if data.is_empty() {
            return Err(TrainError::NoSequences);
        }
        if data.labels.is_empty() {
            return Err(TrainError::NoLabels);
        }
        let started = Instant::now();
        let layout = data.layout();
        let params = &self.params;
        let trainable = trainable_mask(data, params);
        let features = trainable.iter().filter(|&&t| t).count();
        let mut start = match self.initial.take() {
            Some(w) if w.len() != layout.len() => {
                return Err(TrainError::InitialWeights {
                    expected: layout.len(),
                    got: w.len(),
                })
            }
            Some(w) => w,
            None => vec![0.0; layout.len()],
        };
        for (x, &t) in start.iter_mut().zip(&trainable) {
            if !t {
                *x = 0.0;
            }
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads)
            .build()
            .map_err(|source| TrainError::Threads {
                threads: self.threads,
                source,
            })?;
        let held_out = self.held_out;
        let heldout = |w: &[f64]| pool.install(|| token_accuracy(held_out.unwrap_or(data), layout, &data.structure, w));
        let heldout: Option<HeldOutScore<'_>> = held_out.map(|_| &heldout as HeldOutScore<'_>);
        let mut ignore = |_: &Progress<'_>| {};
        let observer: &mut dyn FnMut(&Progress<'_>) = match &mut self.observer {
            Some(o) => o.as_mut(),
            None => &mut ignore,
        };
        let stop = self.stop.as_deref();
        let cx = Context {
            started,
            stop,
            patience: self.patience,
            heldout,
            observer,
        };
        let resume = self.resume.take();
        let run = match params.algorithm() {
            Algorithm::Lbfgs => fit_lbfgs(data, params, &trainable, start, resume, self.threads, cx)?,
            Algorithm::L2Sgd => fit_l2sgd(data, params, &trainable, start, resume, cx)?,
            _ => fit_online(data, params, &trainable, start, resume, cx)?,
        };
        let mut model = run.weights.model(data);
        if params.c1 > 0.0 {
            // L1 zeroes most weights: attributes left with none are dead weight.
            model.prune_zero_attributes();
        }
        Ok(Fitted {
            model,
            report: Report {
                algorithm: params.algorithm(),
                termination: run.termination,
                iterations: run.iterations,
                warm_start_epochs: run.warm_start_epochs,
                evaluations: run.evaluations,
                final_objective: run.final_objective,
                seconds: started.elapsed().as_secs_f64(),
                features,
                best_heldout: run.best_heldout,
            },
            weights: run.weights,
            full: OnceLock::new(),
        })
    }
}

impl Trainer<'_> {
    /// Minimizes a custom objective with this trainer's L-BFGS settings,
    /// stopping rules, observer, stop flag and saved states: the fit loop for
    /// another structure (a semi-Markov CRF, a hybrid model) without
    /// rewriting it. `start` is in the objective's compact parameters
    /// ([`Differentiable::dim`]); `held_out` scores full-layout weights
    /// (higher is better) for progress events and early stopping. Events
    /// have no [`Progress::model`]: the weights are the caller's to
    /// interpret.
    ///
    /// # Errors
    /// [`TrainError::InvalidParameter`] for another algorithm than `lbfgs`
    /// or an SGD warm start (it needs a chain [`Dataset`]); initial weights
    /// of the wrong length; an evaluation or optimizer failure.
    ///
    /// ```
    /// use chaincrf_train::{Algorithm, Differentiable, EvalError, Params, Trainer};
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    ///
    /// /// (w₀ − 3)² + (w₁ + 1)²
    /// struct Bowl(AtomicUsize);
    /// impl Differentiable for Bowl {
    ///     fn dim(&self) -> usize {
    ///         2
    ///     }
    ///     fn cost_and_gradient(&self, w: &[f64]) -> Result<(f64, Vec<f64>), EvalError> {
    ///         self.0.fetch_add(1, Ordering::Relaxed);
    ///         let (a, b) = (w[0] - 3.0, w[1] + 1.0);
    ///         Ok((a * a + b * b, vec![2.0 * a, 2.0 * b]))
    ///     }
    ///     fn evaluations(&self) -> usize {
    ///         self.0.load(Ordering::Relaxed)
    ///     }
    ///     fn expand(&self, w: &[f64]) -> Vec<f64> {
    ///         w.to_vec()
    ///     }
    /// }
    ///
    /// let params = Params::new(Algorithm::Lbfgs).check()?;
    /// let done = Trainer::new(params).minimize(&Bowl(AtomicUsize::new(0)), vec![0.0, 0.0], None)?;
    /// assert!((done.weights[0] - 3.0).abs() < 1e-4 && (done.weights[1] + 1.0).abs() < 1e-4);
    /// # Ok::<(), chaincrf_train::TrainError>(())
    /// ```
    pub fn minimize<O: Differentiable>(
        &mut self,
        objective: &O,
        start: Vec<f64>,
        held_out: Option<HeldOutScore<'_>>,
    ) -> Result<Minimized, TrainError> {
        let params = &self.params;
        if params.algorithm() != Algorithm::Lbfgs {
            return Err(TrainError::InvalidParameter {
                name: "algorithm".into(),
                message: format!("a custom objective is minimized by lbfgs, not {}", params.algorithm()),
            });
        }
        if params.sgd_epochs > 0 {
            return Err(TrainError::InvalidParameter {
                name: "sgd_epochs".into(),
                message: "the SGD warm start needs a chain dataset; give the custom objective its start instead".into(),
            });
        }
        if start.len() != objective.dim() {
            return Err(TrainError::InitialWeights {
                expected: objective.dim(),
                got: start.len(),
            });
        }
        let started = Instant::now();
        let lbfgs_start = match self.resume.take() {
            Some(SavedState(Owned::Lbfgs(state))) => LbfgsStart::Saved(state),
            Some(other) => return Err(state_mismatch(&other, Algorithm::Lbfgs)),
            None => LbfgsStart::Weights(start),
        };
        let mut ignore = |_: &Progress<'_>| {};
        let observer: &mut dyn FnMut(&Progress<'_>) = match &mut self.observer {
            Some(o) => o.as_mut(),
            None => &mut ignore,
        };
        let config = lbfgs_config(params, self.patience, self.stop.as_deref(), started, held_out);
        let out = lbfgs::run(objective, None, &config, lbfgs_start, observer)?;
        Ok(Minimized {
            weights: objective.expand(&out.weights),
            report: Report {
                algorithm: Algorithm::Lbfgs,
                termination: out.termination,
                iterations: out.iterations,
                warm_start_epochs: 0,
                evaluations: objective.evaluations(),
                final_objective: out.final_objective,
                seconds: started.elapsed().as_secs_f64(),
                features: objective.dim(),
                best_heldout: out.best_heldout,
            },
        })
    }
}

/// The result of [`Trainer::minimize`]: the final (or best held-out)
/// weights in the objective's full layout, and how the run went.
#[derive(Debug)]
pub struct Minimized {
    /// [`Differentiable::expand`] of the final parameters.
    pub weights: Vec<f64>,
    /// How the run went (`best_heldout` is the best `held_out` score).
    pub report: Report,
}

/// The L-BFGS settings of `params` for one run (chain or custom objective).
fn lbfgs_config<'a>(
    params: &Params,
    patience: Option<usize>,
    stop: Option<&'a AtomicBool>,
    started: Instant,
    heldout: Option<HeldOutScore<'a>>,
) -> LbfgsConfig<'a> {
    LbfgsConfig {
        c1: params.c1,
        memory: params.num_memories,
        epsilon: params.epsilon_or_default(),
        delta: params.delta_or_default(),
        period: params.period,
        gradient_tolerance: params.gradient_tolerance,
        max_iterations: params.max_iterations_or_default(),
        max_linesearch: params.max_linesearch,
        linesearch: params.linesearch,
        patience,
        stop,
        started,
        heldout,
        encode: &encode_lbfgs_state,
    }
}

/// Encodes an L-BFGS state for [`Progress::saved_state`].
fn encode_lbfgs_state(state: &lbfgs::LbfgsStateRef<'_>) -> Result<Vec<u8>, TrainError> {
    StateRef::Lbfgs(state).encode()
}

/// What every optimizer's run shares with the fit loop.
struct Context<'c> {
    started: Instant,
    stop: Option<&'c AtomicBool>,
    patience: Option<usize>,
    heldout: Option<HeldOutScore<'c>>,
    observer: &'c mut dyn FnMut(&Progress<'_>),
}

/// An optimizer's result, full-layout weights.
struct Run {
    weights: FinalWeights,
    termination: Termination,
    iterations: u64,
    warm_start_epochs: usize,
    evaluations: usize,
    final_objective: f64,
    best_heldout: Option<f64>,
}

/// L-BFGS, after the SGD warm start when asked for.
fn fit_lbfgs(
    data: &Dataset,
    params: &Params,
    trainable: &[bool],
    start: Vec<f64>,
    resume: Option<SavedState>,
    threads: usize,
    cx: Context<'_>,
) -> Result<Run, TrainError> {
    let objective = Objective::new(
        data,
        data.layout(),
        data.structure.clone(),
        params.c2,
        trainable.to_vec(),
        threads,
    )?;
    let mut warm_start_epochs = 0;
    let lbfgs_start = match resume {
        Some(SavedState(Owned::Lbfgs(state))) => LbfgsStart::Saved(state),
        Some(other) => return Err(state_mismatch(&other, Algorithm::Lbfgs)),
        None => {
            let mut start = start;
            if params.sgd_epochs > 0 {
                let warm = crate::sgd::run_sgd(
                    data,
                    &data.structure,
                    params.c2,
                    cx.stop,
                    params.sgd_epochs,
                    data.layout(),
                    trainable,
                    start,
                    &mut |e| {
                        let weights = || e.weights;
                        (cx.observer)(&Progress {
                            algorithm: Algorithm::L2Sgd,
                            stage: Stage::WarmStart,
                            iteration: e.epoch as u64,
                            objective: e.objective,
                            gradient_norm: None,
                            learning_rate: Some(e.learning_rate),
                            active_features: e.weights.iter().filter(|x| **x != 0.0).count(),
                            weight_norm: None,
                            evaluations: 0,
                            seconds: cx.started.elapsed().as_secs_f64(),
                            heldout: None,
                            interrupted: false,
                            replayed: false,
                            data: Some(data),
                            weights: &weights,
                            state: None,
                        })
                    },
                )?;
                if cx.stop.is_some_and(|f| f.load(Ordering::SeqCst)) {
                    // No optimizer state exists yet to checkpoint: stop now
                    // with the SGD weights rather than start L-BFGS.
                    return Ok(Run {
                        weights: FinalWeights::Full(warm.weights),
                        termination: Termination::Interrupted {
                            after: warm.epochs as u64,
                            during_warm_start: true,
                        },
                        iterations: 0,
                        warm_start_epochs: warm.epochs,
                        evaluations: 0,
                        final_objective: warm.objective,
                        best_heldout: None,
                    });
                }
                warm_start_epochs = warm.epochs;
                start = warm.weights;
            }
            LbfgsStart::Weights(objective.compress(&start))
        }
    };
    let config = lbfgs_config(params, cx.patience, cx.stop, cx.started, cx.heldout);
    let out = lbfgs::run(&objective, Some(data), &config, lbfgs_start, cx.observer)?;
    let evaluations = objective.evaluations();
    Ok(Run {
        // The objective's buffers go before the model is built.
        weights: FinalWeights::Entries {
            len: data.layout().len(),
            indices: objective.into_active(),
            values: out.weights,
        },
        termination: out.termination,
        iterations: out.iterations,
        warm_start_epochs,
        evaluations,
        final_objective: out.final_objective,
        best_heldout: out.best_heldout,
    })
}

/// What differs between the epoch events of the online algorithms.
struct EpochEvent {
    algorithm: Algorithm,
    iteration: u64,
    objective: f64,
    learning_rate: Option<f64>,
    heldout: Option<f64>,
    interrupted: bool,
}

/// Reports an epoch (or the interrupt) of an online algorithm: no gradient,
/// no full evaluations, a saved state always available.
fn epoch_event<'a>(
    observer: &mut dyn FnMut(&Progress<'_>),
    e: EpochEvent,
    data: &'a Dataset,
    started: Instant,
    weights: &'a dyn Fn() -> &'a [f64],
    state: &'a dyn Fn() -> Result<Vec<u8>, TrainError>,
) {
    observer(&Progress {
        algorithm: e.algorithm,
        stage: Stage::Main,
        iteration: e.iteration,
        objective: e.objective,
        gradient_norm: None,
        learning_rate: e.learning_rate,
        active_features: weights().iter().filter(|x| **x != 0.0).count(),
        weight_norm: None,
        evaluations: 0,
        seconds: started.elapsed().as_secs_f64(),
        heldout: e.heldout,
        interrupted: e.interrupted,
        replayed: false,
        data: Some(data),
        weights,
        state: Some(state),
    });
}

/// A saved state of another algorithm's run.
fn state_mismatch(saved: &SavedState, algorithm: Algorithm) -> TrainError {
    TrainError::SavedState {
        problem: format!("was saved by {}, this run is {algorithm}", saved.algorithm()),
    }
}

/// Early stopping's bookkeeping for the epoch-based algorithms: the best
/// held-out accuracy, its epoch and its weights (saved with the optimizer's
/// state, so that a resumed run keeps them).
struct BestEpoch {
    patience: Option<usize>,
    best: BestSoFar,
}

impl BestEpoch {
    /// Records epoch `epoch`'s held-out score; whether patience ran out.
    fn record(&mut self, epoch: u64, heldout: Option<f64>, weights: &[f64]) -> bool {
        let (Some(acc), Some(patience)) = (heldout, self.patience) else {
            return false;
        };
        if self.best.as_ref().is_none_or(|(b, _, _)| acc > *b) {
            self.best = Some((acc, epoch, weights.to_vec()));
        }
        self.best
            .as_ref()
            .is_some_and(|(_, at, _)| epoch >= at + patience as u64)
    }

    fn best_heldout(&self, last: Option<f64>) -> Option<f64> {
        self.best.as_ref().map(|(a, _, _)| *a).or(last)
    }
}

/// The perceptron family (`ap`, `pa`, `arow`), one thread.
fn fit_online(
    data: &Dataset,
    params: &Params,
    trainable: &[bool],
    start: Vec<f64>,
    resume: Option<SavedState>,
    cx: Context<'_>,
) -> Result<Run, TrainError> {
    let algorithm = params.algorithm();
    let online = match algorithm {
        Algorithm::PassiveAggressive => OnlineAlgorithm::PassiveAggressive {
            variant: params.pa_variant,
            c: params.pa_c,
            error_sensitive: params.error_sensitive,
            averaging: params.averaging,
        },
        Algorithm::Arow => OnlineAlgorithm::Arow {
            variance: params.variance,
            gamma: params.gamma,
        },
        _ => OnlineAlgorithm::AveragedPerceptron,
    };
    let mut config = OnlineConfig::new(online);
    config.max_iterations = params.max_iterations_or_default().map_or(usize::MAX, |n| n as usize);
    config.epsilon = params.epsilon_or_default();
    let (online_start, saved_best) = match resume {
        None => (OnlineStart::Weights(Some(start)), None),
        Some(SavedState(Owned::Online(state, best))) => (OnlineStart::Resume(state), best),
        Some(other) => return Err(state_mismatch(&other, algorithm)),
    };
    let stop = || cx.stop.is_some_and(|f| f.load(Ordering::SeqCst));
    let mut best = BestEpoch {
        patience: cx.patience,
        best: saved_best,
    };
    let mut last_heldout = None;
    let observer = cx.observer;
    let out = run_online(
        data,
        &data.structure,
        data.layout(),
        trainable,
        online_start,
        &config,
        &stop,
        &mut |e| {
            let heldout = cx.heldout.map(|h| h(e.weights()));
            last_heldout = heldout;
            // Recorded before the event, whose checkpoint saves it.
            let patience_ran_out = best.record(e.epoch as u64, heldout, e.weights());
            let weights = || e.weights();
            let state = || StateRef::Online(&e.state(), &best.best).encode();
            epoch_event(
                observer,
                EpochEvent {
                    algorithm,
                    iteration: e.epoch as u64,
                    objective: e.loss,
                    learning_rate: None,
                    heldout,
                    interrupted: false,
                },
                data,
                cx.started,
                &weights,
                &state,
            );
            if patience_ran_out {
                EpochControl::Stop
            } else {
                EpochControl::Continue
            }
        },
    )?;
    let epochs = out.epochs as u64;
    let termination = match out.termination {
        OnlineTermination::MaxIterations => Termination::MaxIterations { limit: epochs },
        OnlineTermination::Converged => Termination::LossBelowEpsilon {
            epsilon: config.epsilon,
        },
        OnlineTermination::Stopped => Termination::EarlyStopping {
            patience: cx.patience.unwrap_or(0),
            best_iteration: best.best.as_ref().map_or(epochs, |(_, at, _)| *at),
        },
        OnlineTermination::Interrupted => {
            // Stopped mid-epoch: report it, so that a checkpoint of the
            // mid-epoch state can be written, and resumed exactly.
            let weights = || out.weights.as_slice();
            let state = || StateRef::Online(&out.state, &best.best).encode();
            epoch_event(
                observer,
                EpochEvent {
                    algorithm,
                    iteration: epochs,
                    objective: out.loss,
                    learning_rate: None,
                    heldout: None,
                    interrupted: true,
                },
                data,
                cx.started,
                &weights,
                &state,
            );
            Termination::Interrupted {
                after: epochs,
                during_warm_start: false,
            }
        }
    };
    let best_heldout = best.best_heldout(last_heldout);
    let weights = match (out.termination, best.best) {
        (OnlineTermination::Stopped, Some((_, _, w))) => w,
        _ => out.weights,
    };
    Ok(Run {
        weights: FinalWeights::Full(weights),
        termination,
        iterations: epochs,
        warm_start_epochs: 0,
        evaluations: 0,
        final_objective: out.loss,
        best_heldout,
    })
}

/// CRFsuite's `l2sgd`, one thread.
fn fit_l2sgd(
    data: &Dataset,
    params: &Params,
    trainable: &[bool],
    start: Vec<f64>,
    resume: Option<SavedState>,
    cx: Context<'_>,
) -> Result<Run, TrainError> {
    let mut config = SgdConfig::l2sgd();
    config.c2 = params.c2;
    config.max_iterations = params.max_iterations_or_default().map_or(usize::MAX, |n| n as usize);
    config.period = params.period;
    config.delta = params.delta_or_default();
    config.calibration = Calibration {
        eta: params.calibration_eta,
        rate: params.calibration_rate,
        samples: params.calibration_samples,
        candidates: params.calibration_candidates,
        max_trials: params.calibration_max_trials,
        ..Calibration::default()
    };
    let (sgd_start, saved_best) = match resume {
        None => (SgdStart::Weights(Some(start)), None),
        Some(SavedState(Owned::Sgd(state, best))) => (SgdStart::Resume(state), best),
        Some(other) => return Err(state_mismatch(&other, Algorithm::L2Sgd)),
    };
    let stop = || cx.stop.is_some_and(|f| f.load(Ordering::SeqCst));
    let mut best = BestEpoch {
        patience: cx.patience,
        best: saved_best,
    };
    let mut last_heldout = None;
    let observer = cx.observer;
    let out = run_l2sgd(
        data,
        &data.structure,
        data.layout(),
        trainable,
        sgd_start,
        &config,
        &stop,
        &mut |e| {
            let heldout = cx.heldout.map(|h| h(e.weights));
            last_heldout = heldout;
            // Recorded before the event, whose checkpoint saves it.
            let patience_ran_out = best.record(e.epoch as u64, heldout, e.weights);
            let weights = || e.weights;
            let state = || StateRef::Sgd(&e.state(), &best.best).encode();
            epoch_event(
                observer,
                EpochEvent {
                    algorithm: Algorithm::L2Sgd,
                    iteration: e.epoch as u64,
                    objective: e.objective,
                    learning_rate: Some(e.learning_rate),
                    heldout,
                    interrupted: false,
                },
                data,
                cx.started,
                &weights,
                &state,
            );
            if patience_ran_out {
                EpochControl::Stop
            } else {
                EpochControl::Continue
            }
        },
    )?;
    let epochs = out.epochs as u64;
    let termination = match out.termination {
        SgdTermination::MaxIterations => Termination::MaxIterations { limit: epochs },
        SgdTermination::Converged => Termination::Stalled {
            delta: config.delta,
            period: config.period,
        },
        SgdTermination::Stopped => Termination::EarlyStopping {
            patience: cx.patience.unwrap_or(0),
            best_iteration: best.best.as_ref().map_or(epochs, |(_, at, _)| *at),
        },
        SgdTermination::Interrupted => {
            let weights = || out.weights.as_slice();
            let state = || StateRef::Sgd(&out.state, &best.best).encode();
            epoch_event(
                observer,
                EpochEvent {
                    algorithm: Algorithm::L2Sgd,
                    iteration: epochs,
                    objective: out.objective,
                    learning_rate: None,
                    heldout: None,
                    interrupted: true,
                },
                data,
                cx.started,
                &weights,
                &state,
            );
            Termination::Interrupted {
                after: epochs,
                during_warm_start: false,
            }
        }
    };
    let best_heldout = best.best_heldout(last_heldout);
    let weights = match (out.termination, best.best) {
        (SgdTermination::Stopped, Some((_, _, w))) => w,
        _ => out.weights,
    };
    Ok(Run {
        weights: FinalWeights::Full(weights),
        termination,
        iterations: epochs,
        warm_start_epochs: 0,
        evaluations: 0,
        final_objective: out.objective,
        best_heldout,
    })
}

/// Token accuracy of full-layout `weights` on `data` (Viterbi, in parallel
/// on the current pool); 0 when `data` has no fully labeled token.
pub(crate) fn token_accuracy(data: &Dataset, layout: WeightLayout, structure: &Structure, weights: &[f64]) -> f64 {
    let view = layout.view(weights);
    let (correct, total) = (0..data.len())
        .into_par_iter()
        .map_init(
            || (ScoredChain::default(), ChainWorkspace::<MaxPlus>::new()),
            |(scored, ws), i| {
                let Some(gold) = data.gold_of(i) else {
                    return (0usize, 0usize);
                };
                view.score_into(structure, &data.arena.sequence(i), scored);
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

/// A run's final weights.
#[derive(Debug)]
enum FinalWeights {
    /// In the training set's full layout.
    Full(Vec<f64>),
    /// `values[n]` at full-layout index `indices[n]`, every other weight 0:
    /// L-BFGS optimizes only the trainable weights, and the full layout is
    /// formed only when asked for ([`Fitted::weights`]). On a 43-label task
    /// with 190,000 attributes it takes 65 MB where these lists take 5.
    Entries {
        len: usize,
        indices: Vec<u32>,
        values: Vec<f64>,
    },
}

impl FinalWeights {
    fn model(&self, data: &Dataset) -> Model {
        match self {
            FinalWeights::Full(w) => data.model_from(w),
            FinalWeights::Entries { indices, values, .. } => data.model_from_entries(indices, values),
        }
    }
}

/// A trained model and how training went.
#[derive(Debug)]
pub struct Fitted {
    model: Model,
    report: Report,
    weights: FinalWeights,
    /// [`Fitted::weights`], formed on first use.
    full: OnceLock<Vec<f64>>,
}

impl Fitted {
    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }
    /// How training went.
    pub fn report(&self) -> &Report {
        &self.report
    }
    /// The final weights in the training set's full layout (before the
    /// model dropped attributes an L1 run zeroed). After L-BFGS they are
    /// formed on the first call.
    pub fn weights(&self) -> &[f64] {
        match &self.weights {
            FinalWeights::Full(w) => w,
            FinalWeights::Entries { len, indices, values } => self
                .full
                .get_or_init(|| crate::objective::scatter(*len, indices, values)),
        }
    }
    /// The model, consuming the result.
    pub fn into_model(self) -> Model {
        self.model
    }
    /// The model and the report.
    pub fn into_parts(self) -> (Model, Report) {
        (self.model, self.report)
    }
}

/// How a training run went.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Why it stopped.
    pub termination: Termination,
    /// Iterations (L-BFGS) or epochs run, a resumed run's earlier ones included.
    pub iterations: u64,
    /// Epochs of the SGD warm start before L-BFGS.
    pub warm_start_epochs: usize,
    /// Passes over the corpus for function and gradient values (L-BFGS).
    pub evaluations: usize,
    /// The final objective (L-BFGS: loss + regularization; the online
    /// algorithms: the last epoch's loss).
    pub final_objective: f64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Trainable weights (the model's features).
    pub features: usize,
    /// The best held-out token accuracy seen, with held-out data.
    pub best_heldout: Option<f64>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: final objective {:.6} after {} iterations ({} evaluations, {:.2}s, {} features): {}",
            self.algorithm,
            self.final_objective,
            self.iterations,
            self.evaluations,
            self.seconds,
            self.features,
            self.termination
        )?;
        if self.warm_start_epochs > 0 {
            write!(f, "; {} SGD epochs before L-BFGS", self.warm_start_epochs)?;
        }
        if let Some(acc) = self.best_heldout {
            write!(f, "; best held-out accuracy {acc:.4}")?;
        }
        Ok(())
    }
}
