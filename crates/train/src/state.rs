//! Saved training states: what a checkpoint holds so that a resumed run
//! continues exactly where the interrupted one was.
//!
//! One envelope for every algorithm, tagged by algorithm, so a checkpoint
//! file of one kind is never mistaken for another's. Saving borrows the
//! optimizer's vectors ([`StateRef`]) and decoding owns them ([`SavedState`]);
//! the two enums have the same variants in the same order and hence the same
//! encoding.

use crate::error::TrainError;
use crate::lbfgs::{LbfgsState, LbfgsStateRef};
use crate::online::OnlineState;
use crate::params::Algorithm;
use crate::sgd::SgdState;

/// A decoded saved state, for [`crate::Trainer::resume_from`].
pub struct SavedState(pub(crate) Owned);

/// The owned states, by algorithm.
#[derive(serde::Deserialize)]
pub(crate) enum Owned {
    Lbfgs(Box<LbfgsState>),
    Sgd(Box<SgdState>),
    Online(Box<OnlineState>),
}

/// The borrowed states, encoded by [`StateRef::encode`].
#[derive(serde::Serialize)]
pub(crate) enum StateRef<'a> {
    Lbfgs(&'a LbfgsStateRef<'a>),
    Sgd(&'a SgdState),
    Online(&'a OnlineState),
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
            Owned::Sgd(_) => Algorithm::L2Sgd,
            Owned::Online(s) => s.algorithm(),
        }
    }

    /// Iterations (epochs) finished when it was saved.
    pub fn iteration(&self) -> u64 {
        match &self.0 {
            Owned::Lbfgs(s) => s.iteration(),
            Owned::Sgd(s) => s.epoch() as u64,
            Owned::Online(s) => s.epoch() as u64,
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
