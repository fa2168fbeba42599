//! # chaincrf-train
//!
//! Training linear-chain CRFs with CRFsuite's five algorithms: compile data
//! once ([`DatasetBuilder`], or [`ClassicSetup`] for CRF++ and CRFsuite
//! files), pick an [`Algorithm`] and its [`Params`] (CRFsuite's names and
//! defaults), and [`Trainer::fit`] returns a [`Fitted`] model with a
//! [`Report`] saying how the run went ([`Termination`] is a type).
//!
//! * `lbfgs` minimizes the negative log-likelihood plus `c1·‖w‖₁ + c2·‖w‖²`
//!   (CRFsuite's definitions) with `argmin`'s L-BFGS (OWL-QN when `c1 > 0`),
//!   optionally after a few epochs of SGD ([`Params::sgd_epochs`]). The
//!   objective is computed in one parallel pass with a deterministic
//!   reduction: the model is bit-for-bit the same on any number of threads.
//! * `l2sgd`, `ap`, `pa` and `arow` update after every sequence, on one
//!   thread, in an order shuffled with a fixed seed: deterministic too.
//!
//! Partial labels (allowed label sets per position) are trained by the
//! constrained partition function. A run can be observed ([`Progress`]),
//! stopped by a flag, checkpointed ([`Progress::saved_state`]) and resumed
//! exactly ([`Trainer::resume_from`]).
//!
//! ```
//! use chaincrf_features::{Attr, FeatureExtractor};
//! use chaincrf_train::{Algorithm, DatasetBuilder, Params, Trainer};
//!
//! /// The word itself and its last letter.
//! struct Words;
//! impl FeatureExtractor for Words {
//!     type Input = [&'static str];
//!     fn len(&self, input: &Self::Input) -> usize {
//!         input.len()
//!     }
//!     fn extract(&self, input: &Self::Input, t: usize, sink: &mut dyn FnMut(Attr<'_>)) {
//!         sink(Attr::state(&format!("w={}", input[t])));
//!         sink(Attr::state(&format!("last={}", input[t].chars().last().unwrap_or(' '))));
//!     }
//! }
//!
//! let mut data = DatasetBuilder::new();
//! data.add(&Words, &["the", "cats", "sat"][..], &["D", "N", "V"])?;
//! data.add(&Words, &["a", "dog", "runs"][..], &["D", "N", "V"])?;
//! let data = data.build();
//!
//! let params = Params::new(Algorithm::Lbfgs).c2(0.1).check()?;
//! let fitted = Trainer::new(params).threads(1).fit(&data)?;
//! let path = std::env::temp_dir().join(format!("chaincrf-doc-{}.model", std::process::id()));
//! chaincrf_model::save(fitted.model(), &path)?;
//!
//! let model = chaincrf_model::load(&path)?;
//! assert_eq!(model.tagger().tag(&Words, &["a", "cats", "sat"][..])?, ["D", "N", "V"]);
//! # std::fs::remove_file(&path)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **Misuse.** Bad data and bad parameters are `Err` values ([`TrainError`]);
//! the few internal invariants that only this crate's own builders can
//! break (a trainable mask of the wrong length) panic.

#![deny(missing_docs)]

mod classic;
mod data;
mod epochs;
mod error;
mod fit;
mod lbfgs;
mod mask;
mod objective;
mod online;
mod params;
mod parvec;
mod progress;
#[cfg(test)]
mod reference_tests;
mod sgd;
mod state;
mod termination;
#[cfg(test)]
mod tests;

pub use classic::{map_weights, ClassicCorpus, ClassicFormat, ClassicOptions, ClassicSetup, ClassicTrainError};
pub use data::{custom_extractor, default_structure, Dataset, DatasetBuilder, HeldOutBuilder, LabelTarget};
pub use error::{SequenceProblem, TrainError};
pub use fit::{Fitted, Minimized, Report, Trainer};
pub use objective::{Differentiable, EvalError};
pub use params::{parameter_help, Algorithm, CheckedParams, LineSearch, PaVariant, ParamSpec, Params};
pub use progress::{HeldOutScore, Progress, Stage};
pub use state::SavedState;
pub use termination::Termination;
