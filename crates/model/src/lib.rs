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
//! ## Model files
//!
//! Layout (little-endian):
//!
//! | bytes | content |
//! | --- | --- |
//! | 8 | magic `CHAINCRF` |
//! | 4 | format version: 1, or 2 for a model with exact weights |
//! | 8 | body length in bytes |
//! | 8 | body checksum (FNV-1a/64 with a final mix, [`chaincrf_features::hash_bytes`]) |
//! | … | body: the [`Model`] encoded with `bincode` 2 (`serde`, standard config); in version 2 followed by its [`ExactWeights`], encoded the same way |
//!
//! Models that chaincrf trains store `f32` weights and are written as version
//! 1, so every build reads them; a model read from a CRFsuite file keeps its
//! `f64` weights ([`Model::has_exact_weights`]), and saving it (after
//! `chaincrf prune`, say) writes version 2, so nothing is rounded on the way.
//!
//! Why a length and a checksum around bincode: a truncated file is then
//! reported as such before any decoding, a corrupted one as such (a body of a
//! megabyte or more is checksummed on a second thread while it decodes; what
//! was decoded from a body that fails the check is dropped), and a forged
//! length inside the body cannot pass the checksum by accident. Decoding also runs with a size
//! limit (2 GiB), so no claimed length can make the loader reserve
//! more than that. Files are written to a temporary file in the same directory,
//! synced, then renamed over the target: a crash leaves the old model or the new
//! one, never half of one.
//!
//! [`load`] and [`from_bytes`] also read the model files CRFsuite writes
//! (`crfsuite learn`, python-crfsuite, sklearn-crfsuite), recognized by their
//! magic `lCRF` (CRFsuite 0.12's linear-chain model format). A file that is neither is named when its
//! first bytes say what it is (a CRF++ model, an image, an executable, JSON...).
//!
//! Training checkpoints ([`Checkpoint`], written by `--checkpoint-every` and on
//! an interrupt) use the same layout with their own magic `CHAINCKP` and
//! version (2): the body holds the iteration number, a
//! fingerprint of the run, the exact `f64` training weights and the model built
//! from them. One module of this crate writes every byte chaincrf writes.
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
pub use model::{
    ExactWeights, ExtractorSpec, Model, ScoredChain, StateRows, Structure, Tagger, WeightLayout, WeightsView,
};
pub use observations::{ObservationArena, Observations};
