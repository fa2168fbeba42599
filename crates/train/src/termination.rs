//! Why a training run ended, as a type.
//!
//! Programs act on how a run ended: the CLI exits with status 130 after an
//! interrupt, keeps a checkpoint when the iteration cap cut a run short, and
//! writes [`Termination::name`] into `--summary-json`. They match on this
//! enum; the human-readable [`std::fmt::Display`] text may change freely.

use std::fmt;

/// Why training stopped.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Termination {
    /// `‖g‖ / max(1, ‖w‖) < epsilon` (L-BFGS).
    Converged {
        /// The threshold.
        epsilon: f64,
    },
    /// `‖g‖ < tolerance` (L-BFGS, [`crate::Params::gradient_tolerance`]).
    GradientTolerance {
        /// The threshold.
        tolerance: f64,
    },
    /// The objective improved by less than `delta` (relative) over the last
    /// `period` iterations or epochs (L-BFGS, l2sgd).
    Stalled {
        /// The relative improvement threshold.
        delta: f64,
        /// How far back the test looks.
        period: usize,
    },
    /// An epoch's loss per item fell to `epsilon` or below (the perceptron family).
    LossBelowEpsilon {
        /// The threshold.
        epsilon: f64,
    },
    /// The iteration (epoch) cap was reached.
    MaxIterations {
        /// The cap.
        limit: u64,
    },
    /// Held-out accuracy did not improve for `patience` iterations; the
    /// weights of `best_iteration` are returned.
    EarlyStopping {
        /// The patience.
        patience: usize,
        /// The iteration whose weights are kept.
        best_iteration: u64,
    },
    /// The line search found no acceptable step; the best weights found are kept.
    LineSearchFailed {
        /// The optimizer's explanation.
        detail: String,
    },
    /// The stop flag was set; the weights of the last finished iteration (or
    /// the warm start's, when it was interrupted) are returned.
    Interrupted {
        /// Iterations (epochs) finished.
        after: u64,
        /// Whether it happened during the SGD warm start before L-BFGS.
        during_warm_start: bool,
    },
}

impl Termination {
    /// A stable lowercase name: `converged`, `gradient_tolerance`, `stalled`,
    /// `loss_below_epsilon`, `max_iterations`, `early_stopping`,
    /// `line_search_failed`, `interrupted`.
    pub fn name(&self) -> &'static str {
        match self {
            Termination::Converged { .. } => "converged",
            Termination::GradientTolerance { .. } => "gradient_tolerance",
            Termination::Stalled { .. } => "stalled",
            Termination::LossBelowEpsilon { .. } => "loss_below_epsilon",
            Termination::MaxIterations { .. } => "max_iterations",
            Termination::EarlyStopping { .. } => "early_stopping",
            Termination::LineSearchFailed { .. } => "line_search_failed",
            Termination::Interrupted { .. } => "interrupted",
        }
    }

    /// Whether the run was stopped by the stop flag.
    pub fn is_interrupted(&self) -> bool {
        matches!(self, Termination::Interrupted { .. })
    }

    /// Whether the iteration cap ended the run (it can be continued).
    pub fn is_iteration_limit(&self) -> bool {
        matches!(self, Termination::MaxIterations { .. })
    }
}

impl fmt::Display for Termination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Termination::Converged { epsilon } => write!(f, "converged: |g|/max(1,|w|) < epsilon = {epsilon}"),
            Termination::GradientTolerance { tolerance } => write!(f, "converged: |g| < {tolerance}"),
            Termination::Stalled { delta, period } => write!(
                f,
                "converged: the objective improved by less than delta = {delta} over {period} iterations"
            ),
            Termination::LossBelowEpsilon { epsilon } => {
                write!(f, "converged: the loss per item fell to epsilon = {epsilon} or below")
            }
            Termination::MaxIterations { limit } => write!(f, "reached the maximum number of iterations ({limit})"),
            Termination::EarlyStopping {
                patience,
                best_iteration,
            } => write!(
                f,
                "early stopping: held-out accuracy has not improved for {patience} iterations \
                 (keeping iteration {best_iteration})"
            ),
            Termination::LineSearchFailed { detail } => {
                write!(
                    f,
                    "stopped: the line search failed ({detail}); keeping the best weights found"
                )
            }
            Termination::Interrupted {
                after,
                during_warm_start: true,
            } => write!(f, "interrupted during the SGD warm start (after {after} epochs)"),
            Termination::Interrupted { after, .. } => write!(f, "interrupted after iteration {after}"),
        }
    }
}
