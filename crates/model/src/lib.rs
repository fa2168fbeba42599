//! # chaincrf-model
//!
//! Trained models and tagging: a [`Model`] holds labels, the attribute
//! dictionary, how attributes are extracted ([`ExtractorSpec`]) and the weights;
//! a [`Tagger`] turns one sequence's attributes into potentials
//! ([`ScoredChain`], which implements the core `Potentials` trait, so every core
//! algorithm runs on trained models unchanged) and decodes them. [`io`] is the
//! model file format. Nothing here depends on the optimizer: an application that
//! only tags needs this crate and the core.

#![deny(missing_docs)]

pub mod classic;
pub mod io;
mod model;
pub mod observations;

pub use classic::{ClassicError, ClassicExtractor, ClassicInput, ClassicTagger};
pub use io::{load, save, ModelIoError};
pub use model::{ExtractorSpec, Model, ScoredChain, Structure, Tagger, WeightLayout, Weights, WeightsView};
pub use observations::{accumulate_emissions, ObservationArena, Observations, PREFETCH_AHEAD};
