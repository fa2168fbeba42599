//! # chaincrf-core
//!
//! Semirings, potentials, and one generic forward/backward over linear chains.
//!
//! A linear-chain model scores a whole label path
//! `score(y) = start(y₀) + Σₜ eₜ(yₜ) + Σₜ T(yₜ₋₁, yₜ) + end(yₙ₋₁)`.
//! Because labels interact only with their neighbours, sums and maxima over all
//! `kⁿ` paths take `O(n·k²)` by dynamic programming, and that dynamic program is
//! the same whatever "sum" means. So this crate has these parts:
//!
//! * the semirings: what ⊕ and ⊗ are ([`Semiring`]; log-sum-exp for log Z
//!   ([`Log`]), max for Viterbi ([`MaxPlus`]), K-best lists, entropy, scaled
//!   probabilities, counts, booleans);
//! * the potentials: where the scores come from ([`Potentials`] trait, dense
//!   matrices ([`DenseChain`]), borrowed buffers ([`ChainView`]), constraints
//!   that forbid labels ([`AllowedLabels`], [`Constrained`]));
//! * [`chain`]: the forward and backward passes written once over any semiring,
//!   and the algorithms built on them; [`loss`]: the CRF negative log-likelihood
//!   and its gradient, per chain and for batches (a loss layer for scores
//!   computed elsewhere);
//! * [`semimarkov`]: the same dynamic program over labelled *segments* of up
//!   to `L` positions (semi-Markov CRFs), on the same semirings, with its own
//!   loss layer; the chain is its case `L = 1`.
//!
//! **Where things are.** What every algorithm shares (semirings, potentials,
//! [`Error`]) is at the crate root. Each dynamic program is a module that owns
//! its workspace, result types and functions, whose names repeat across them
//! (`chain::viterbi` and `semimarkov::viterbi`, `chain::Path` and
//! `semimarkov::Segmentation`): [`chain`], [`semimarkov`], [`loss`]. Every
//! item has one path.
//!
//! **Misuse.** Bad scores (NaN, `+∞`) and shapes that do not fit (potentials,
//! label sets, output buffers sized by the caller) are `Err` values
//! ([`Error`]); using a workspace out of order (edge marginals before its
//! forward and backward passes) is a programming error and panics, as each
//! such method's `# Panics` section says.
//!
//! The crate has no training or I/O dependencies; `rayon` (feature `parallel`,
//! for the batched loss) and `proptest` (feature `testing`, see `testing`) are
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
mod fused;
pub mod loss;
mod potentials;
pub mod semimarkov;
mod semiring;
mod simd;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{Error, Result};
pub use potentials::{check_scores, AllowedLabels, ChainView, Constrained, DenseChain, Potentials};
pub use semiring::{
    log_add_exp, log_sum_exp, Boolean, Counting, Entropy, KBest, Log, MaxPlus, Prob, ProbabilitySemiring, ScalarScore,
    Semiring,
};
