//! # chaincrf-candle
//!
//! A linear-chain CRF layer for [candle](https://docs.rs/candle-core) networks.
//!
//! A neural tagger computes emission scores `[batch, time, labels]`; the CRF on
//! top scores whole label paths with learned transition, start and end scores
//! and is trained with the negative log-likelihood of the gold paths. [`Crf`]
//! keeps those scores as candle variables (made by a `VarBuilder`, like any
//! candle-nn layer) and its [`Crf::nll`] is a tensor that takes part in
//! candle's autograd, so one `backward()` trains the encoder and the CRF
//! together.
//!
//! ## Why a custom op, not tensor operations
//! The forward algorithm is a recursion over time. Written as tensor
//! operations (as ports of pytorch-crf do) it costs several small tensor
//! operations per time step, each allocating, and its backward pass is the
//! autograd of that recursion. Here the loss is one custom op whose forward
//! and backward hand the whole tensor to `chaincrf-core`'s chain code
//! (`loss::nll_masked`), which runs each sequence's forward/backward in f64 in
//! log space and returns exact gradients: emission gradients are marginals
//! minus gold indicators, transition gradients edge marginals minus gold
//! pairs. `f32` and `f64` tensors are both computed in f64. The op runs on the
//! CPU; tensors on other devices are an error, not a silent copy.
//!
//! ## Masks
//! A [`SequenceMask`] says which positions of the padded batch belong to each
//! sequence. A masked position is skipped and the chain joins across it (the
//! label before it is followed directly by the label after it), so right
//! padding is the common case, a mask may have holes, its first step need not
//! be on, and an all-masked sequence has loss 0 and no gradient.
//!
//! ## Constraints
//! Forbidden transitions, start and end labels ([`Crf::forbid_transition`] and
//! friends) are `-inf` scores in every computation of the layer, with zero
//! gradient; forced or restricted labels per position are `-inf` emissions
//! ([`force_labels`]). A gold path that a constraint forbids is an error.
//!
//! Candle types stay in this crate: `chaincrf-core` knows nothing of candle.

#![deny(missing_docs)]

mod layer;
mod op;

pub use chaincrf_core::chain::Path;
pub use chaincrf_core::loss::Reduction;
pub use layer::{force_labels, Crf, SequenceMask};
