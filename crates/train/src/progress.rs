//! Progress events: what an observer of a training run sees after every
//! iteration (L-BFGS) or epoch (the other algorithms and the SGD warm start).
//!
//! One type for every algorithm, so a progress printer, a JSON-lines log, a
//! plot or a checkpoint writer is written once. The numbers are plain
//! fields; the weights and the resumable state are computed only when asked
//! for, because on a large model each is tens of megabytes.

use crate::data::Dataset;
use crate::error::TrainError;
use crate::params::Algorithm;
use chaincrf_model::Model;

/// Scores full-layout weights on held-out data, higher is better (token
/// accuracy for a chain; any score for [`crate::Trainer::minimize`]).
pub type HeldOutScore<'a> = &'a dyn Fn(&[f64]) -> f64;

/// A boxed observer of progress events.
pub(crate) type Observer<'a> = Box<dyn FnMut(&Progress<'_>) + 'a>;

/// Which part of a run an event comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The SGD warm start before L-BFGS ([`crate::Params::sgd_epochs`]):
    /// `iteration` counts epochs; no state can be saved.
    WarmStart,
    /// The chosen algorithm.
    Main,
}

/// One finished iteration or epoch.
pub struct Progress<'a> {
    /// The algorithm of this stage (`l2sgd` during the warm start).
    pub algorithm: Algorithm,
    /// Warm start or the main algorithm.
    pub stage: Stage,
    /// Iteration (L-BFGS) or epoch number, 1-based.
    pub iteration: u64,
    /// L-BFGS: the objective (loss + regularization). l2sgd: the epoch's
    /// summed sequence losses plus the L2 term (CRFsuite's figure). The
    /// perceptron family: the epoch's loss as CRFsuite reports it.
    pub objective: f64,
    /// The (pseudo-)gradient's norm; `None` for algorithms without a full gradient.
    pub gradient_norm: Option<f64>,
    /// The learning rate at the end of the epoch (l2sgd).
    pub learning_rate: Option<f64>,
    /// Non-zero weights.
    pub active_features: usize,
    /// The weights' Euclidean norm, when the algorithm has it without
    /// forming the full-layout weights (L-BFGS keeps it for its stopping
    /// test); otherwise it is that of [`Progress::weights`].
    pub weight_norm: Option<f64>,
    /// Passes over the corpus so far (function + gradient evaluations).
    pub evaluations: usize,
    /// Seconds since training started.
    pub seconds: f64,
    /// Token accuracy on the held-out data, when the trainer has some.
    pub heldout: Option<f64>,
    /// The stop flag was seen: this is the last event, and its weights are
    /// the ones returned.
    pub interrupted: bool,
    /// Already reported by the run that a resumed run continues (reported
    /// again because its held-out score feeds early stopping); a checkpoint
    /// writer need not save it again.
    pub replayed: bool,
    /// The training set of a [`crate::Trainer::fit`] run; `None` for a
    /// custom objective ([`crate::Trainer::minimize`]).
    pub(crate) data: Option<&'a Dataset>,
    pub(crate) weights: &'a dyn Fn() -> &'a [f64],
    pub(crate) state: Option<&'a dyn Fn() -> Result<Vec<u8>, TrainError>>,
}

impl std::fmt::Debug for Progress<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("algorithm", &self.algorithm)
            .field("stage", &self.stage)
            .field("iteration", &self.iteration)
            .field("objective", &self.objective)
            .field("gradient_norm", &self.gradient_norm)
            .field("heldout", &self.heldout)
            .finish_non_exhaustive()
    }
}

impl Progress<'_> {
    /// This iteration's weights in the full layout (computed on the first
    /// call, then kept).
    pub fn weights(&self) -> &[f64] {
        (self.weights)()
    }

    /// The model of this iteration's weights, with the training set's full
    /// attribute dictionary (what a checkpoint stores); `None` when a custom
    /// objective is minimized ([`crate::Trainer::minimize`]): its weights
    /// are the caller's to interpret.
    pub fn model(&self) -> Option<Model> {
        self.data.map(|d| d.model_from(self.weights()))
    }

    /// Whether [`Progress::saved_state`] can be asked for (not during the
    /// SGD warm start).
    pub fn can_save_state(&self) -> bool {
        self.state.is_some()
    }

    /// Everything a run resumed from here needs to continue exactly,
    /// encoded (decode with [`crate::SavedState::from_bytes`] and give it to
    /// [`crate::Trainer::resume_from`]). Large (L-BFGS: about `2·m + 8`
    /// vectors of the trainable weights): ask only when checkpointing.
    ///
    /// # Errors
    /// During the warm start ([`TrainError::SavedState`]), or when the state
    /// cannot be encoded.
    pub fn saved_state(&self) -> Result<Vec<u8>, TrainError> {
        match self.state {
            Some(f) => f(),
            None => Err(TrainError::SavedState {
                problem: "does not exist during the SGD warm start (no checkpoint before L-BFGS starts)".into(),
            }),
        }
    }
}
