//! # chaincrf-model
//!
//! Trained models and tagging: a [`Model`] holds labels, the attribute
//! dictionary, how attributes are extracted ([`ExtractorSpec`]) and the weights;
//! a [`Tagger`] turns one sequence's attributes into potentials
//! ([`ScoredChain`], which implements the core `Potentials` trait, so every core
//! algorithm runs on trained models unchanged) and decodes them. [`save`] and
//! [`load`] write and read the model file format (and [`load`] also reads
//! CRFsuite's model files); [`Checkpoint`]s of training runs use the same
//! container. Nothing here depends on the optimizer: an application that
//! only tags needs this crate and the core.
//!
//! ```
//! use chaincrf_features::{hash_name, AttrKind, AttributeDictionary, CrfsuiteExtractor, LabelAlphabet};
//! use chaincrf_model::{ExtractorSpec, Model, Structure};
//! // Two labels, one attribute that votes for "NOUN", and transitions.
//! let labels = LabelAlphabet::from_labels(["NOUN", "VERB"]);
//! let mut attributes = AttributeDictionary::default();
//! attributes.insert(AttrKind::State, hash_name("w=dog"), Some("w=dog"));
//! let structure = Structure { transitions: true, ..Structure::default() };
//! // The flat layout: state weights (attribute × label), transitions (2 × 2), start, end.
//! let weights = [2.0, -1.0, -0.5, 0.5, 0.5, -0.5, 0.0, 0.0, 0.0, 0.0];
//! let model = Model::from_flat(labels, attributes, ExtractorSpec::CrfsuiteAttributes, structure, &weights);
//! let path = std::env::temp_dir().join(format!("chaincrf-model-doc-{}.model", std::process::id()));
//! chaincrf_model::save(&model, &path)?;
//! let model = chaincrf_model::load(&path)?;
//! let input = vec![vec![("w=dog".to_owned(), 1.0)], vec![("w=runs".to_owned(), 1.0)]];
//! assert_eq!(model.tagger().tag(&CrfsuiteExtractor, &input[..]).unwrap(), ["NOUN", "VERB"]);
//! # std::fs::remove_file(&path).ok();
//! # Ok::<(), chaincrf_model::ModelIoError>(())
//! ```
//!
//! **Misuse.** Bad files are `Err` values naming the file ([`ModelIoError`]);
//! weight vectors or buffers of the wrong length handed to the constructors
//! are programming errors and panic, as slice indexing does.

#![deny(missing_docs)]

mod classic;
mod io;
mod model;
mod observations;

pub use classic::{ClassicError, ClassicExtractor, ClassicInput, ClassicTagger};
pub use io::{
    check_writable, checkpoint_from_bytes, checkpoint_path, decode_payload, encode_payload, from_bytes, load,
    load_checkpoint, save, save_checkpoint, temp_path, to_bytes, write_atomically, Checkpoint, ModelIoError,
    PayloadError,
};
pub use model::{ExactWeights, ExtractorSpec, Model, ScoredChain, Structure, Tagger, WeightLayout, WeightsView};
pub use observations::{ObservationArena, Observations};
