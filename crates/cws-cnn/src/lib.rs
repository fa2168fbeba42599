//! # chaincrf-cws-cnn
//!
//! The CNN+CRF word segmenter of the system chaincrf started from: character
//! embeddings, a stack of 1-D convolutions with ReLU and "same" padding, a
//! dense layer to tag scores, and chaincrf's CRF layer on top, trained end to
//! end.
//!
//! * [`network`]: the weights and the forward pass in plain Rust — what
//!   segmenting runs, so segmenting does not need candle.
//! * [`model`](mod@model): the model file kind ([`CNN_KIND`]) and
//!   [`load_segmenter`], which loads a CNN model or a feature model into a
//!   [`chaincrf_cws::Segmenter`] (user dictionaries, `--keep-latin` and word
//!   confidences work the same for both: the network's scores are emissions,
//!   and the hard constraints are `-inf` emissions on top).
//! * `train` (feature `train`, on by default): training with candle and the
//!   `chaincrf-candle` CRF layer, Adam, held-out early stopping, exact
//!   checkpoints.
//!
//! The input characters are width-normalized as for the feature segmenter
//! (`chaincrf_cws::normalize_char`), and the tag scheme's illegal transitions,
//! starts and ends are forbidden in training and decoding alike.

#![deny(missing_docs)]

#[cfg(feature = "train")]
mod conv;
mod error;
pub mod model;
pub mod network;
#[cfg(feature = "train")]
pub mod train;

pub use error::{CheckpointProblem, Error, Layer, NetworkError, OptionError, Result};
pub use model::{
    cnn_payload, fused_segmenter, load_segmenter, segmenter_from_model, to_model, CnnPayload, CrfWeights, CNN_KIND,
};
pub use network::{Affine, CnnShape, CnnWeights};
#[cfg(feature = "train")]
pub use train::{train_cnn, Checkpoints, CnnNet, CnnStop, CnnTrainOptions, CnnTrained, EpochProgress, SplitMix64};
