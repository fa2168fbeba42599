//! Training errors, one type for the crate.
//!
//! Each variant says what went wrong in its own words and carries its cause
//! as [`std::error::Error::source`], never inside its message too: a program
//! that prints the chain (the CLI does) prints each fact once. Callers decide
//! on variants, never on message text.

use crate::params::Algorithm;

/// Everything training can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// A parameter value is out of range or does not parse.
    #[error("invalid training parameter {name}: {message}")]
    InvalidParameter {
        /// The parameter (CRFsuite's name).
        name: String,
        /// Why it is invalid.
        message: String,
    },
    /// No algorithm has this name.
    #[error("unknown training algorithm {name:?}: expected one of lbfgs, l2sgd, ap, pa, arow")]
    UnknownAlgorithm {
        /// The name given.
        name: String,
    },
    /// No algorithm has a parameter of this name.
    #[error("unknown training parameter {name:?}; {algorithm} takes: {}", known.join(", "))]
    UnknownParameter {
        /// The name given.
        name: String,
        /// The algorithm chosen.
        algorithm: Algorithm,
        /// The parameters it takes.
        known: Vec<String>,
    },
    /// The parameter exists, but not for the chosen algorithm.
    #[error("training parameter {name:?} is not one of {algorithm}'s; {algorithm} takes: {}", known.join(", "))]
    ParameterNotForAlgorithm {
        /// The name given.
        name: String,
        /// The algorithm chosen.
        algorithm: Algorithm,
        /// The parameters it takes.
        known: Vec<String>,
    },
    /// The training set holds no sequence.
    #[error("no training sequences")]
    NoSequences,
    /// The training set has no labels.
    #[error("no labels in the training data")]
    NoLabels,
    /// A training sequence cannot be added.
    #[error("training sequence {index}: {problem}")]
    BadSequence {
        /// Its index among the sequences added.
        index: usize,
        /// What is wrong with it.
        problem: SequenceProblem,
    },
    /// Initial weights of the wrong length.
    #[error("initial weights have {got} values, the weight layout needs {expected}")]
    InitialWeights {
        /// The layout's length.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// A saved training state does not belong to this run.
    #[error("the saved training state {problem}")]
    SavedState {
        /// What does not fit.
        problem: String,
    },
    /// A saved training state cannot be encoded or decoded.
    #[error("the training state cannot be {action}")]
    StateEncoding {
        /// `encoded` or `decoded`.
        action: &'static str,
        /// The codec's error.
        #[source]
        source: chaincrf_model::ModelIoError,
    },
    /// The objective could not be evaluated.
    #[error(transparent)]
    Eval(#[from] crate::objective::EvalError),
    /// The optimizer failed.
    #[error("the optimizer failed")]
    Optimizer(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The worker threads could not be started.
    #[error("cannot start {threads} worker threads")]
    Threads {
        /// The count asked for.
        threads: usize,
        /// rayon's error.
        #[source]
        source: rayon::ThreadPoolBuildError,
    },
}

/// What is wrong with a training sequence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SequenceProblem {
    /// The labels do not match the positions one to one.
    #[error("{labels} labels for {positions} positions")]
    LengthMismatch {
        /// Labels (or label sets) given.
        labels: usize,
        /// Positions the extractor reports.
        positions: usize,
    },
    /// A label id is not in the label alphabet.
    #[error("label id {id} is out of range (there are {labels} labels)")]
    LabelOutOfRange {
        /// The id.
        id: u32,
        /// How many labels exist.
        labels: usize,
    },
    /// A position allows no label.
    #[error("position {position} allows no label")]
    NoAllowedLabel {
        /// The position.
        position: usize,
    },
}
