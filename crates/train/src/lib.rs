//! # chaincrf-train
//!
//! Training linear-chain CRFs: compile data once ([`DatasetBuilder`]), then
//! minimize the negative log-likelihood plus `c1·‖w‖₁ + c2·‖w‖²` (CRFsuite's
//! definitions) with `argmin`'s L-BFGS (OWL-QN when `c1 > 0`). The objective
//! ([`Objective`]) computes loss and gradient in one parallel pass with a
//! deterministic reduction: the trained weights are bit-for-bit the same
//! whatever the number of threads. Partial labels (allowed label sets per
//! position) are trained by the constrained partition function.

#![deny(missing_docs)]

pub mod classic;
pub mod data;
pub mod objective;
pub mod parvec;
pub mod sgd;
pub mod trainer;

pub use classic::{map_weights, ClassicCorpus, ClassicFormat, ClassicOptions, ClassicSetup, ClassicTrainError};
pub use data::{Dataset, DatasetBuilder, HeldOutBuilder, LabelTarget};
pub use objective::{EvalError, Objective};
pub use sgd::{sgd_warm_start, SgdEpoch, SgdOutcome};
pub use trainer::{
    dev_accuracy, resume, train, trainable_mask, FeaturePairs, Iteration, OptimizerState, Progress, Stage, Stopping,
    TrainError, TrainOutcome, TrainParams,
};
