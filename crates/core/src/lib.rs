//! # chaincrf-core
//!
//! Semirings, potentials, and one generic forward/backward over linear chains.
//!
//! A linear-chain model scores a whole label path
//! `score(y) = start(y₀) + Σₜ eₜ(yₜ) + Σₜ T(yₜ₋₁, yₜ) + end(yₙ₋₁)`.
//! Because labels interact only with their neighbours, sums and maxima over all
//! `kⁿ` paths take `O(n·k²)` by dynamic programming, and that dynamic program is
//! the same whatever "sum" means. So this crate has three parts:
//!
//! * [`semiring`]: what ⊕ and ⊗ are (log-sum-exp for log Z, max for Viterbi,
//!   K-best lists, entropy, scaled probabilities, counts, booleans);
//! * [`potentials`]: where the scores come from ([`Potentials`] trait, dense
//!   matrices, constraints that forbid labels);
//! * [`chain`]: the forward and backward passes written once over any semiring,
//!   and the algorithms built on them; [`loss`]: the CRF negative log-likelihood
//!   and its gradient, per chain and for batches (a loss layer for scores
//!   computed elsewhere);
//! * [`semimarkov`]: the same dynamic program over labelled *segments* of up
//!   to `L` positions (semi-Markov CRFs), on the same semirings, with its own
//!   loss layer; the chain is its case `L = 1`.
//!
//! The crate has no training or I/O dependencies; `rayon` (feature `parallel`,
//! for the batched loss) and `proptest` (feature `testing`, see [`testing`]) are
//! optional.
//!
//! ```
//! use chaincrf_core::{chain, DenseChain};
//! use nalgebra::dmatrix;
//! let mut p = DenseChain::new(dmatrix![1.0, 0.0; 0.0, 2.0; 0.5, 0.5], dmatrix![0.0, -1.0; -1.0, 0.0]).unwrap();
//! p.forbid_transition(0, 1);
//! let best = chain::viterbi(&p).unwrap();
//! let log_z = chain::log_partition(&p).unwrap();
//! assert!(best.score <= log_z);
//! ```

#![deny(missing_docs)]

pub mod chain;
mod error;
pub mod loss;
pub mod potentials;
pub mod semimarkov;
pub mod semiring;
#[cfg(feature = "testing")]
pub mod testing;

pub use chain::{ChainSum, ChainWorkspace, Path};
pub use error::{Error, Result};
pub use potentials::{AllowedLabels, ChainView, Constrained, DenseChain, Potentials};
pub use semimarkov::{DenseSemiMarkov, Segment, SegmentPotentials, Segmentation, SemiMarkovWorkspace};
pub use semiring::{Boolean, Counting, Entropy, KBest, Log, MaxPlus, Prob, ProbabilitySemiring, ScalarScore, Semiring};
