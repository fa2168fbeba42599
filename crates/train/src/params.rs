//! Training parameters: CRFsuite's five algorithms, their parameters under
//! CRFsuite's names with CRFsuite's defaults, and the feature-generation
//! options.
//!
//! Why names: CRFsuite users know their runs as `-a pa -p type=2 -p c=0.5`,
//! python-crfsuite users as `trainer.set("c2", "0.1")`; the same names set
//! the same things here ([`Params::set`]), and [`Algorithm::parameters`]
//! lists them with their defaults (what `crfsuite learn -H` prints). Typed
//! setters ([`Params::c2`], ...) are the Rust spelling of the same values.
//!
//! A value that is not set takes the algorithm's default: `max_iterations`
//! means "no cap" for `lbfgs`, 1000 epochs for `l2sgd`, 100 for the others;
//! `epsilon` is 1e-5 for `lbfgs` and 0 for the perceptron family. A
//! parameter the chosen algorithm does not have is an error that lists the
//! ones it has ([`Params::check`]): a mistyped or misplaced option never
//! silently does nothing.

use crate::error::TrainError;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// CRFsuite's training algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub enum Algorithm {
    /// Limited-memory BFGS on the regularized likelihood (OWL-QN with `c1 > 0`).
    #[default]
    Lbfgs,
    /// Stochastic gradient descent on the L2-regularized likelihood.
    L2Sgd,
    /// Averaged perceptron.
    AveragedPerceptron,
    /// Passive-aggressive (PA, PA-I, PA-II).
    PassiveAggressive,
    /// Adaptive regularization of weights (AROW).
    Arow,
}

impl Algorithm {
    /// Every algorithm, in CRFsuite's order.
    pub const ALL: [Algorithm; 5] = [
        Algorithm::Lbfgs,
        Algorithm::L2Sgd,
        Algorithm::AveragedPerceptron,
        Algorithm::PassiveAggressive,
        Algorithm::Arow,
    ];

    /// CRFsuite's short name: `lbfgs`, `l2sgd`, `ap`, `pa`, `arow`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Lbfgs => "lbfgs",
            Algorithm::L2Sgd => "l2sgd",
            Algorithm::AveragedPerceptron => "ap",
            Algorithm::PassiveAggressive => "pa",
            Algorithm::Arow => "arow",
        }
    }

    /// A one-line description.
    pub fn description(self) -> &'static str {
        match self {
            Algorithm::Lbfgs => "L-BFGS on the L1/L2-regularized likelihood (OWL-QN when c1 > 0); parallel",
            Algorithm::L2Sgd => "SGD on the L2-regularized likelihood, learning rate calibrated on a sample",
            Algorithm::AveragedPerceptron => "averaged perceptron (one Viterbi per sequence)",
            Algorithm::PassiveAggressive => "passive-aggressive updates (PA, PA-I, PA-II)",
            Algorithm::Arow => "adaptive regularization of weight vectors",
        }
    }

    /// Whether the algorithm updates after every sequence (and so runs on
    /// one thread, in a shuffled order fixed by a seed).
    pub fn is_online(self) -> bool {
        !matches!(self, Algorithm::Lbfgs)
    }

    /// The parameters this algorithm takes, with CRFsuite's names and
    /// defaults, the feature options included.
    pub fn parameters(self) -> Vec<&'static ParamSpec> {
        PARAMS.iter().filter(|p| p.algorithms.contains(&self)).collect()
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = TrainError;
    /// CRFsuite's names and aliases (`lbfgs`; `l2sgd`; `ap`,
    /// `averaged-perceptron`; `pa`, `passive-aggressive`; `arow`), any case.
    fn from_str(s: &str) -> Result<Self, TrainError> {
        match s.to_ascii_lowercase().as_str() {
            "lbfgs" => Ok(Algorithm::Lbfgs),
            "l2sgd" => Ok(Algorithm::L2Sgd),
            "ap" | "averaged-perceptron" => Ok(Algorithm::AveragedPerceptron),
            "pa" | "passive-aggressive" => Ok(Algorithm::PassiveAggressive),
            "arow" => Ok(Algorithm::Arow),
            _ => Err(TrainError::UnknownAlgorithm { name: s.to_owned() }),
        }
    }
}

/// One named parameter: its CRFsuite name, its default and what it does.
#[derive(Debug)]
pub struct ParamSpec {
    /// CRFsuite's name (`c2`, `feature.minfreq`, `calibration.eta`, ...).
    pub name: &'static str,
    /// The default, as CRFsuite prints it.
    pub default: &'static str,
    /// What it does.
    pub help: &'static str,
    algorithms: &'static [Algorithm],
}

use Algorithm::{Arow, AveragedPerceptron as Ap, L2Sgd, Lbfgs, PassiveAggressive as Pa};

const EVERY: &[Algorithm] = &[Lbfgs, L2Sgd, Ap, Pa, Arow];
const ONLINE: &[Algorithm] = &[Ap, Pa, Arow];

const fn spec(
    name: &'static str,
    default: &'static str,
    algorithms: &'static [Algorithm],
    help: &'static str,
) -> ParamSpec {
    ParamSpec {
        name,
        default,
        help,
        algorithms,
    }
}

/// Every parameter. A name may appear once per algorithm group with its
/// own default (`max_iterations`, `epsilon`, `delta`, `period`).
static PARAMS: &[ParamSpec] = &[
    spec(
        "feature.minfreq",
        "0",
        EVERY,
        "drop attribute-label features whose summed value in the training data is below this",
    ),
    spec(
        "feature.possible_states",
        "0",
        EVERY,
        "1: a weight for every attribute-label pair, not only the pairs seen in training",
    ),
    spec(
        "feature.possible_transitions",
        "0",
        EVERY,
        "1: a weight for every label pair (and edge attribute-label pair), not only the seen ones",
    ),
    spec("c1", "0", &[Lbfgs], "L1 coefficient: c1 * |w|_1 (OWL-QN when > 0)"),
    spec("c2", "1", &[Lbfgs, L2Sgd], "L2 coefficient: c2 * |w|^2"),
    spec("max_iterations", "none", &[Lbfgs], "stop after this many iterations"),
    spec("max_iterations", "1000", &[L2Sgd], "stop after this many epochs"),
    spec("max_iterations", "100", ONLINE, "stop after this many epochs"),
    spec("num_memories", "6", &[Lbfgs], "correction pairs L-BFGS keeps"),
    spec("epsilon", "1e-05", &[Lbfgs], "stop when |g| / max(1, |w|) < epsilon"),
    spec(
        "epsilon",
        "0",
        ONLINE,
        "stop when the epoch's loss per item falls to epsilon or below",
    ),
    spec(
        "period",
        "10",
        &[Lbfgs, L2Sgd],
        "how many iterations (epochs) back the delta test looks",
    ),
    spec(
        "delta",
        "1e-05",
        &[Lbfgs],
        "stop when the objective improved by less than delta (relative) over period iterations",
    ),
    spec(
        "delta",
        "1e-06",
        &[L2Sgd],
        "stop when the objective improved by less than delta (relative) over period epochs",
    ),
    spec(
        "linesearch",
        "MoreThuente",
        &[Lbfgs],
        "line search method: MoreThuente, Backtracking (regular Wolfe conditions) or StrongBacktracking (strong Wolfe conditions); with c1 > 0 both backtracking names take OWL-QN's orthant-wise backtracking",
    ),
    spec(
        "max_linesearch",
        "20",
        &[Lbfgs],
        "most trials of the line search per iteration",
    ),
    spec(
        "calibration.eta",
        "0.1",
        &[L2Sgd],
        "the first learning rate the calibration tries",
    ),
    spec(
        "calibration.rate",
        "2",
        &[L2Sgd],
        "factor between two learning rates the calibration tries",
    ),
    spec(
        "calibration.samples",
        "1000",
        &[L2Sgd],
        "sequences the calibration runs on",
    ),
    spec(
        "calibration.candidates",
        "10",
        &[L2Sgd],
        "learning rates the calibration keeps trying after the first improvement",
    ),
    spec(
        "calibration.max_trials",
        "20",
        &[L2Sgd],
        "learning rates the calibration tries at most",
    ),
    spec(
        "type",
        "1",
        &[Pa],
        "0: PA (no slack), 1: PA-I (slack, linear), 2: PA-II (slack, squared)",
    ),
    spec("c", "1", &[Pa], "aggressiveness (the slack's cost) of PA-I and PA-II"),
    spec(
        "error_sensitive",
        "1",
        &[Pa],
        "1: the margin asked for grows with the square root of the number of wrong labels",
    ),
    spec("averaging", "1", &[Pa], "1: return the averaged weights"),
    spec("variance", "1", &[Arow], "initial variance of every weight"),
    spec("gamma", "1", &[Arow], "tradeoff between loss and confidence"),
];

/// The line searches CRFsuite offers for `lbfgs` (its `linesearch`
/// parameter), with libLBFGS's semantics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LineSearch {
    /// Moré and Thuente's line search (strong Wolfe conditions), the
    /// default; under OWL-QN it searches the orthant-projected objective.
    #[default]
    MoreThuente,
    /// Backtracking until the regular Wolfe conditions hold (sufficient
    /// decrease with ftol = 1e-4, curvature with wolfe = 0.9; the step
    /// halves or grows by 2.1); under OWL-QN, libLBFGS's orthant-wise
    /// backtracking (sufficient decrease only).
    Backtracking,
    /// As [`LineSearch::Backtracking`], with the strong Wolfe conditions.
    StrongBacktracking,
}

/// Passive-aggressive variants (CRFsuite's `type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PaVariant {
    /// PA: no slack, the step meets the margin exactly (`type=0`).
    Pa,
    /// PA-I: step capped by `c` (`type=1`).
    PaI,
    /// PA-II: squared slack (`type=2`).
    PaII,
}

/// Training parameters for one algorithm. Build with [`Params::new`] and the
/// setters or [`Params::set`], then [`Params::check`] before training.
#[derive(Clone, Debug)]
pub struct Params {
    algorithm: Algorithm,
    /// Names set explicitly (checked against the algorithm).
    set: BTreeSet<&'static str>,
    pub(crate) min_freq: f64,
    pub(crate) possible_states: bool,
    pub(crate) possible_transitions: bool,
    pub(crate) c1: f64,
    pub(crate) c2: f64,
    max_iterations: Option<Option<u64>>,
    pub(crate) num_memories: usize,
    epsilon: Option<f64>,
    pub(crate) period: usize,
    delta: Option<f64>,
    pub(crate) linesearch: LineSearch,
    pub(crate) max_linesearch: usize,
    pub(crate) calibration_eta: f64,
    pub(crate) calibration_rate: f64,
    pub(crate) calibration_samples: usize,
    pub(crate) calibration_candidates: usize,
    pub(crate) calibration_max_trials: usize,
    pub(crate) pa_variant: PaVariant,
    pub(crate) pa_c: f64,
    pub(crate) error_sensitive: bool,
    pub(crate) averaging: bool,
    pub(crate) variance: f64,
    pub(crate) gamma: f64,
    pub(crate) sgd_epochs: usize,
    pub(crate) gradient_tolerance: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params::new(Algorithm::Lbfgs)
    }
}

impl Params {
    /// CRFsuite's defaults for `algorithm`.
    pub fn new(algorithm: Algorithm) -> Self {
        Params {
            algorithm,
            set: BTreeSet::new(),
            min_freq: 0.0,
            possible_states: false,
            possible_transitions: false,
            c1: 0.0,
            c2: 1.0,
            max_iterations: None,
            num_memories: 6,
            epsilon: None,
            period: 10,
            delta: None,
            linesearch: LineSearch::MoreThuente,
            max_linesearch: 20,
            calibration_eta: 0.1,
            calibration_rate: 2.0,
            calibration_samples: 1000,
            calibration_candidates: 10,
            calibration_max_trials: 20,
            pa_variant: PaVariant::PaI,
            pa_c: 1.0,
            error_sensitive: true,
            averaging: true,
            variance: 1.0,
            gamma: 1.0,
            sgd_epochs: 0,
            gradient_tolerance: 0.0,
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn mark(mut self, name: &'static str) -> Self {
        self.set.insert(name);
        self
    }

    /// L1 coefficient `c1·‖w‖₁` (`lbfgs`; OWL-QN when `> 0`). Default 0.
    pub fn c1(mut self, c1: f64) -> Self {
        self.c1 = c1;
        self.mark("c1")
    }
    /// L2 coefficient `c2·‖w‖²` (`lbfgs`, `l2sgd`; CRF++'s `-c C` is `c2 = 1/(2C)`). Default 1.
    pub fn c2(mut self, c2: f64) -> Self {
        self.c2 = c2;
        self.mark("c2")
    }
    /// Iterations (`lbfgs`) or epochs (the others) at most; `None` for no
    /// cap. Default: none for `lbfgs`, 1000 for `l2sgd`, 100 for the others.
    pub fn max_iterations(mut self, n: Option<u64>) -> Self {
        self.max_iterations = Some(n);
        self.mark("max_iterations")
    }
    /// `lbfgs`: stop when `‖g‖ / max(1, ‖w‖) < epsilon` (default 1e-5); the
    /// perceptron family: stop when an epoch's loss per item is at most
    /// `epsilon` (default 0).
    pub fn epsilon(mut self, e: f64) -> Self {
        self.epsilon = Some(e);
        self.mark("epsilon")
    }
    /// Stop when the objective improved by less than `delta` (relative) over
    /// the last `period` iterations. Default 1e-5 (`lbfgs`), 1e-6 (`l2sgd`).
    pub fn delta(mut self, d: f64) -> Self {
        self.delta = Some(d);
        self.mark("delta")
    }
    /// The `period` of the `delta` test. Default 10.
    pub fn period(mut self, p: usize) -> Self {
        self.period = p;
        self.mark("period")
    }
    /// L-BFGS correction pairs. Default 6.
    pub fn num_memories(mut self, m: usize) -> Self {
        self.num_memories = m;
        self.mark("num_memories")
    }
    /// The L-BFGS line search (`linesearch`). Default
    /// [`LineSearch::MoreThuente`].
    pub fn linesearch(mut self, search: LineSearch) -> Self {
        self.linesearch = search;
        self.mark("linesearch")
    }
    /// Most trials of one L-BFGS line search (`max_linesearch`). Default 20.
    pub fn max_linesearch(mut self, n: usize) -> Self {
        self.max_linesearch = n;
        self.mark("max_linesearch")
    }
    /// `feature.minfreq`: drop attribute × label features whose summed value
    /// over the training data is below this (CRFsuite's meaning; not CRF++'s
    /// per-attribute count, which is the dataset's `min_count`). Default 0.
    pub fn min_freq(mut self, f: f64) -> Self {
        self.min_freq = f;
        self.mark("feature.minfreq")
    }
    /// `feature.possible_states`: a weight for every attribute × label pair.
    /// Default false (only pairs seen in training).
    pub fn possible_states(mut self, on: bool) -> Self {
        self.possible_states = on;
        self.mark("feature.possible_states")
    }
    /// `feature.possible_transitions`: a weight for every label pair. Default false.
    pub fn possible_transitions(mut self, on: bool) -> Self {
        self.possible_transitions = on;
        self.mark("feature.possible_transitions")
    }
    /// `lbfgs` only: epochs of SGD (the `l2sgd` update with its calibration)
    /// run first, from the initial weights, as a warm start. Default 0.
    pub fn sgd_epochs(mut self, n: usize) -> Self {
        self.sgd_epochs = n;
        self.mark("sgd_epochs")
    }
    /// `lbfgs` only: also stop when `‖g‖ < tol` (absolute). Default 0 (off).
    pub fn gradient_tolerance(mut self, tol: f64) -> Self {
        self.gradient_tolerance = tol;
        self.mark("gradient_tolerance")
    }

    /// The iteration or epoch cap in effect (the algorithm's default unless set).
    pub fn max_iterations_or_default(&self) -> Option<u64> {
        match (self.max_iterations, self.algorithm) {
            (Some(n), _) => n,
            (None, Algorithm::Lbfgs) => None,
            (None, Algorithm::L2Sgd) => Some(1000),
            (None, _) => Some(100),
        }
    }
    /// The `epsilon` in effect.
    pub fn epsilon_or_default(&self) -> f64 {
        self.epsilon
            .unwrap_or(if self.algorithm == Algorithm::Lbfgs { 1e-5 } else { 0.0 })
    }
    /// The `delta` in effect.
    pub fn delta_or_default(&self) -> f64 {
        self.delta
            .unwrap_or(if self.algorithm == Algorithm::L2Sgd { 1e-6 } else { 1e-5 })
    }
    /// The L1 coefficient.
    pub fn l1(&self) -> f64 {
        self.c1
    }
    /// The L2 coefficient.
    pub fn l2(&self) -> f64 {
        self.c2
    }

    /// Sets a parameter by its CRFsuite name, from CRFsuite's spelling of the
    /// value (numbers; `0`/`1` for switches; `MoreThuente` for the line search).
    /// Also takes `sgd_epochs` and `gradient_tolerance` (ours, `lbfgs` only).
    /// Whether the algorithm has it is checked by [`Params::check`].
    ///
    /// # Errors
    /// [`TrainError::UnknownParameter`] for a name no algorithm has,
    /// [`TrainError::InvalidParameter`] for a value that does not parse.
    pub fn set(self, name: &str, value: &str) -> Result<Self, TrainError> {
        let bad = |message: &str| TrainError::InvalidParameter {
            name: name.to_owned(),
            message: format!("{message}, got {value:?}"),
        };
        let float = || value.trim().parse::<f64>().map_err(|_| bad("expected a number"));
        let count = || {
            let v = value.trim();
            v.parse::<usize>().map_err(|_| bad("expected a whole number ≥ 0"))
        };
        let switch = || match value.trim() {
            "0" | "false" => Ok(false),
            "1" | "true" => Ok(true),
            _ => Err(bad("expected 0 or 1")),
        };
        Ok(match name {
            "feature.minfreq" => self.min_freq(float()?),
            "feature.possible_states" => self.possible_states(switch()?),
            "feature.possible_transitions" => self.possible_transitions(switch()?),
            "c1" => self.c1(float()?),
            "c2" => self.c2(float()?),
            "max_iterations" => {
                let n = count()? as u64;
                let lbfgs = self.algorithm == Algorithm::Lbfgs;
                // CRFsuite's lbfgs reads 0 as "no cap"; the epoch-based ones need ≥ 1.
                self.max_iterations(if n == 0 && lbfgs { None } else { Some(n) })
            }
            "num_memories" => self.num_memories(count()?),
            "epsilon" => self.epsilon(float()?),
            "period" => self.period(count()?),
            "delta" => self.delta(float()?),
            "linesearch" => {
                let ls = match value.trim() {
                    "MoreThuente" => LineSearch::MoreThuente,
                    "Backtracking" => LineSearch::Backtracking,
                    "StrongBacktracking" => LineSearch::StrongBacktracking,
                    _ => return Err(bad("expected MoreThuente, Backtracking or StrongBacktracking")),
                };
                let mut p = self;
                p.linesearch = ls;
                p.mark("linesearch")
            }
            "max_linesearch" => {
                let mut p = self;
                p.max_linesearch = count()?;
                p.mark("max_linesearch")
            }
            "calibration.eta" => {
                let mut p = self;
                p.calibration_eta = float()?;
                p.mark("calibration.eta")
            }
            "calibration.rate" => {
                let mut p = self;
                p.calibration_rate = float()?;
                p.mark("calibration.rate")
            }
            "calibration.samples" => {
                let mut p = self;
                p.calibration_samples = count()?;
                p.mark("calibration.samples")
            }
            "calibration.candidates" => {
                let mut p = self;
                p.calibration_candidates = count()?;
                p.mark("calibration.candidates")
            }
            "calibration.max_trials" => {
                let mut p = self;
                p.calibration_max_trials = count()?;
                p.mark("calibration.max_trials")
            }
            "type" => {
                let mut p = self;
                p.pa_variant = match value.trim() {
                    "0" => PaVariant::Pa,
                    "1" => PaVariant::PaI,
                    "2" => PaVariant::PaII,
                    _ => return Err(bad("expected 0, 1 or 2")),
                };
                p.mark("type")
            }
            "c" => {
                let mut p = self;
                p.pa_c = float()?;
                p.mark("c")
            }
            "error_sensitive" => {
                let mut p = self;
                p.error_sensitive = switch()?;
                p.mark("error_sensitive")
            }
            "averaging" => {
                let mut p = self;
                p.averaging = switch()?;
                p.mark("averaging")
            }
            "variance" => {
                let mut p = self;
                p.variance = float()?;
                p.mark("variance")
            }
            "gamma" => {
                let mut p = self;
                p.gamma = float()?;
                p.mark("gamma")
            }
            "sgd_epochs" => self.sgd_epochs(count()?),
            "gradient_tolerance" => self.gradient_tolerance(float()?),
            _ => {
                return Err(TrainError::UnknownParameter {
                    name: name.to_owned(),
                    algorithm: self.algorithm,
                    known: parameter_names(self.algorithm),
                })
            }
        })
    }

    /// The value of a parameter by its CRFsuite name, as CRFsuite spells it
    /// (python-crfsuite's `Trainer.get`); `None` for a name the algorithm
    /// does not have.
    pub fn get(&self, name: &str) -> Option<String> {
        if !parameter_names(self.algorithm).iter().any(|n| n == name) {
            return None;
        }
        let b = |x: bool| if x { "1" } else { "0" }.to_owned();
        Some(match name {
            "feature.minfreq" => self.min_freq.to_string(),
            "feature.possible_states" => b(self.possible_states),
            "feature.possible_transitions" => b(self.possible_transitions),
            "c1" => self.c1.to_string(),
            "c2" => self.c2.to_string(),
            "max_iterations" => self.max_iterations_or_default().map_or("0".into(), |n| n.to_string()),
            "num_memories" => self.num_memories.to_string(),
            "epsilon" => self.epsilon_or_default().to_string(),
            "period" => self.period.to_string(),
            "delta" => self.delta_or_default().to_string(),
            "linesearch" => format!("{:?}", self.linesearch),
            "max_linesearch" => self.max_linesearch.to_string(),
            "calibration.eta" => self.calibration_eta.to_string(),
            "calibration.rate" => self.calibration_rate.to_string(),
            "calibration.samples" => self.calibration_samples.to_string(),
            "calibration.candidates" => self.calibration_candidates.to_string(),
            "calibration.max_trials" => self.calibration_max_trials.to_string(),
            "type" => match self.pa_variant {
                PaVariant::Pa => "0",
                PaVariant::PaI => "1",
                PaVariant::PaII => "2",
            }
            .to_owned(),
            "c" => self.pa_c.to_string(),
            "error_sensitive" => b(self.error_sensitive),
            "averaging" => b(self.averaging),
            "variance" => self.variance.to_string(),
            "gamma" => self.gamma.to_string(),
            "sgd_epochs" => self.sgd_epochs.to_string(),
            "gradient_tolerance" => self.gradient_tolerance.to_string(),
            _ => return None,
        })
    }

    /// Checks that every parameter set belongs to the algorithm and every
    /// value is in range.
    ///
    /// # Errors
    /// [`TrainError::ParameterNotForAlgorithm`] (listing the algorithm's
    /// parameters) or [`TrainError::InvalidParameter`] naming the first bad one.
    pub fn check(self) -> Result<CheckedParams, TrainError> {
        let names = parameter_names(self.algorithm);
        if let Some(name) = self.set.iter().find(|n| !names.iter().any(|m| m == *n)) {
            return Err(TrainError::ParameterNotForAlgorithm {
                name: (*name).to_owned(),
                algorithm: self.algorithm,
                known: names,
            });
        }
        let bad = |name: &str, message: &str| {
            Err(TrainError::InvalidParameter {
                name: name.to_owned(),
                message: message.to_owned(),
            })
        };
        let nonneg = |x: f64| x.is_finite() && x >= 0.0;
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !nonneg(self.min_freq) {
            return bad("feature.minfreq", "must be a finite number ≥ 0");
        }
        if !nonneg(self.c1) {
            return bad("c1", "must be a finite number ≥ 0");
        }
        if !nonneg(self.c2) {
            return bad("c2", "must be a finite number ≥ 0");
        }
        if !nonneg(self.epsilon_or_default()) {
            return bad("epsilon", "must be a finite number ≥ 0");
        }
        if !nonneg(self.delta_or_default()) {
            return bad("delta", "must be a finite number ≥ 0");
        }
        if !nonneg(self.gradient_tolerance) {
            return bad("gradient_tolerance", "must be a finite number ≥ 0");
        }
        if self.period == 0 {
            return bad("period", "must be ≥ 1");
        }
        if self.num_memories == 0 {
            return bad("num_memories", "must be ≥ 1");
        }
        if self.max_linesearch == 0 {
            return bad("max_linesearch", "must be ≥ 1");
        }
        if self.algorithm.is_online() && self.max_iterations_or_default().is_none() {
            return bad("max_iterations", "the online algorithms need an epoch cap ≥ 1");
        }
        if self.max_iterations_or_default() == Some(0) {
            return bad("max_iterations", "must be ≥ 1");
        }
        if !positive(self.calibration_eta) {
            return bad("calibration.eta", "must be a finite number > 0");
        }
        if !(self.calibration_rate.is_finite() && self.calibration_rate > 1.0) {
            return bad("calibration.rate", "must be a finite number > 1");
        }
        if self.calibration_samples == 0 {
            return bad("calibration.samples", "must be ≥ 1");
        }
        if self.calibration_max_trials == 0 {
            return bad("calibration.max_trials", "must be ≥ 1");
        }
        if !positive(self.pa_c) {
            return bad("c", "must be a finite number > 0");
        }
        if !positive(self.variance) {
            return bad("variance", "must be a finite number > 0");
        }
        if !positive(self.gamma) {
            return bad("gamma", "must be a finite number > 0");
        }
        if self.algorithm == Algorithm::L2Sgd && self.c2 == 0.0 {
            return bad(
                "c2",
                "l2sgd needs c2 > 0 (its learning rate schedule is set by the L2 term)",
            );
        }
        if self.sgd_epochs > 0 && self.c2 == 0.0 {
            return bad(
                "sgd_epochs",
                "the SGD warm start needs c2 > 0 (its learning rate is set by the L2 term); use 0 SGD epochs with c2 = 0",
            );
        }
        Ok(CheckedParams(self))
    }
}

/// The parameter names `algorithm` takes (ours included), in listing order.
pub(crate) fn parameter_names(algorithm: Algorithm) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for p in algorithm.parameters() {
        if !names.iter().any(|n| n == p.name) {
            names.push(p.name.to_owned());
        }
    }
    if algorithm == Algorithm::Lbfgs {
        names.push("sgd_epochs".into());
        names.push("gradient_tolerance".into());
    }
    names
}

/// Parameters that passed [`Params::check`]: the only kind a
/// [`crate::Trainer`] takes.
#[derive(Clone, Debug)]
pub struct CheckedParams(pub(crate) Params);

impl CheckedParams {
    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.0
    }
    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.0.algorithm
    }
}

/// The help text of `algorithm`'s parameters, one per line with its default
/// (what `crfsuite learn -a ALG -H` prints).
pub fn parameter_help(algorithm: Algorithm) -> String {
    let mut out = format!("{}: {}\n", algorithm.name(), algorithm.description());
    for p in algorithm.parameters() {
        out.push_str(&format!("  {:<30} [default {:>11}]  {}\n", p.name, p.default, p.help));
    }
    if algorithm == Algorithm::Lbfgs {
        out.push_str(&format!(
            "  {:<30} [default {:>11}]  {}\n",
            "sgd_epochs", "0", "epochs of l2sgd run first as a warm start (ours)"
        ));
        out.push_str(&format!(
            "  {:<30} [default {:>11}]  {}\n",
            "gradient_tolerance", "0", "also stop when |g| < this (ours; 0 = off)"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_aliases() {
        for a in Algorithm::ALL {
            assert_eq!(a.name().parse::<Algorithm>().unwrap(), a);
        }
        assert_eq!(
            "averaged-perceptron".parse::<Algorithm>().unwrap(),
            Algorithm::AveragedPerceptron
        );
        assert_eq!(
            "Passive-Aggressive".parse::<Algorithm>().unwrap(),
            Algorithm::PassiveAggressive
        );
        assert!(matches!(
            "sgd".parse::<Algorithm>(),
            Err(TrainError::UnknownAlgorithm { .. })
        ));
    }

    #[test]
    fn defaults_depend_on_the_algorithm() {
        assert_eq!(Params::new(Algorithm::Lbfgs).max_iterations_or_default(), None);
        assert_eq!(Params::new(Algorithm::L2Sgd).max_iterations_or_default(), Some(1000));
        assert_eq!(Params::new(Algorithm::Arow).max_iterations_or_default(), Some(100));
        assert_eq!(Params::new(Algorithm::Lbfgs).epsilon_or_default(), 1e-5);
        assert_eq!(Params::new(Algorithm::PassiveAggressive).epsilon_or_default(), 0.0);
        assert_eq!(Params::new(Algorithm::L2Sgd).delta_or_default(), 1e-6);
    }

    #[test]
    fn a_parameter_of_another_algorithm_is_an_error_listing_the_right_ones() {
        let err = Params::new(Algorithm::AveragedPerceptron)
            .set("c2", "0.5")
            .unwrap()
            .check()
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, TrainError::ParameterNotForAlgorithm { .. }), "{text}");
        assert!(text.contains("max_iterations") && text.contains("epsilon"), "{text}");
        assert!(matches!(
            Params::new(Algorithm::Lbfgs).set("c3", "1"),
            Err(TrainError::UnknownParameter { .. })
        ));
        assert!(matches!(
            Params::new(Algorithm::PassiveAggressive).set("type", "3"),
            Err(TrainError::InvalidParameter { .. })
        ));
    }

    #[test]
    fn set_and_get_use_crfsuite_spellings() {
        let p = Params::new(Algorithm::PassiveAggressive)
            .set("type", "2")
            .unwrap()
            .set("averaging", "0")
            .unwrap()
            .set("c", "0.5")
            .unwrap();
        assert_eq!(p.get("type").as_deref(), Some("2"));
        assert_eq!(p.get("averaging").as_deref(), Some("0"));
        assert_eq!(p.get("c2"), None);
        assert!(p.check().is_ok());
        let help = parameter_help(Algorithm::L2Sgd);
        assert!(
            help.contains("calibration.max_trials") && help.contains("1e-06"),
            "{help}"
        );
    }
}
