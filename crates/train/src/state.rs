//! Saved training states: what a checkpoint holds so that a resumed run
//! continues exactly where the interrupted one was.
//!
//! One envelope for every algorithm, tagged by algorithm, so a checkpoint
//! file of one kind is never mistaken for another's. Saving borrows the
//! optimizer's vectors ([`StateRef`]) and decoding owns them ([`SavedState`]);
//! the two enums have the same variants in the same order and hence the same
//! encoding.
//!
//! The epoch-based algorithms' states travel with early stopping's
//! best-so-far ([`BestSoFar`]: the best held-out score, its epoch and its
//! weights), which lives in the fit loop rather than in the optimizer; without
//! it a resumed run would forget the best epoch before the interruption and
//! could return another model than the uninterrupted run.

use crate::error::TrainError;
use crate::lbfgs::{LbfgsState, LbfgsStateRef};
use crate::online::OnlineState;
use crate::params::Algorithm;
use crate::sgd::SgdState;

/// A decoded saved state, for [`crate::Trainer::resume_from`].
pub struct SavedState(pub(crate) Owned);

/// Early stopping's best held-out score so far, the epoch it was reached
/// at and that epoch's weights (`None` before the first held-out score, or
/// without early stopping).
pub(crate) type BestSoFar = Option<(f64, u64, Vec<f64>)>;

/// The owned states, by algorithm.
#[derive(serde::Deserialize)]
pub(crate) enum Owned {
    Lbfgs(Box<LbfgsState>),
    Sgd(Box<SgdState>, BestSoFar),
    Online(Box<OnlineState>, BestSoFar),
}

/// The borrowed states, encoded by [`StateRef::encode`].
#[derive(serde::Serialize)]
pub(crate) enum StateRef<'a> {
    Lbfgs(&'a LbfgsStateRef<'a>),
    Sgd(&'a SgdState, &'a BestSoFar),
    Online(&'a OnlineState, &'a BestSoFar),
}

impl StateRef<'_> {
    /// The bytes of a checkpoint's training state.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, TrainError> {
        chaincrf_model::encode_payload(self).map_err(|reason| TrainError::SavedState {
            problem: format!("cannot be encoded: {reason}"),
        })
    }
}

impl SavedState {
    /// Decodes the bytes of [`crate::Progress::saved_state`].
    ///
    /// # Errors
    /// [`TrainError::SavedState`] when the bytes are not such a state.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TrainError> {
        chaincrf_model::decode_payload(bytes)
            .map(SavedState)
            .map_err(|reason| TrainError::SavedState {
                problem: format!("cannot be decoded: {reason}"),
            })
    }

    /// The algorithm whose run it continues.
    pub fn algorithm(&self) -> Algorithm {
        match &self.0 {
            Owned::Lbfgs(_) => Algorithm::Lbfgs,
            Owned::Sgd(..) => Algorithm::L2Sgd,
            Owned::Online(s, _) => s.algorithm(),
        }
    }

    /// Iterations (epochs) finished when it was saved.
    pub fn iteration(&self) -> u64 {
        match &self.0 {
            Owned::Lbfgs(s) => s.iteration(),
            Owned::Sgd(s, _) => s.epoch() as u64,
            Owned::Online(s, _) => s.epoch() as u64,
        }
    }
}

impl std::fmt::Debug for SavedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedState")
            .field("algorithm", &self.algorithm())
            .field("iteration", &self.iteration())
            .finish_non_exhaustive()
    }
}
