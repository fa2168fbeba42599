//! # chaincrf
//!
//! Structured prediction over chains: linear-chain conditional random fields built
//! on one generic forward/backward dynamic program parameterised by a semiring.
//!
//! This facade re-exports the member crates, each with one job:
//!
//! | module | crate | job |
//! | --- | --- | --- |
//! | [`core`] | `chaincrf-core` | semirings, potentials, the chain dynamic program, the CRF loss layer |
//! | [`features`] | `chaincrf-features` | feature extractors, CRF++ templates, CRFsuite data, attribute dictionaries |
//! | [`model`] | `chaincrf-model` | trained models: weights, tagging, model files on disk |
//! | [`train`] | `chaincrf-train` | the training objective, L-BFGS / OWL-QN in parallel |
//! | [`cws`] | `chaincrf-cws` | Chinese word segmentation as character tagging |
//!
//! A user who only needs inference over their own scores can depend on
//! `chaincrf-core` alone.

pub use chaincrf_core as core;
pub use chaincrf_cws as cws;
pub use chaincrf_features as features;
pub use chaincrf_model as model;
pub use chaincrf_train as train;
