//! # chaincrf-features
//!
//! Turning inputs into *attributes*: named (or pre-hashed) observations at each
//! position of a sequence, optionally carrying a real value. A trained model pairs
//! each attribute with one weight per label (a *state* feature) or, for
//! attribute-conditioned transitions (CRF++ `B` templates with macros), one weight
//! per label pair (an *edge* feature).
//!
//! Why attributes are hashed to `u64` keys: feature extraction is the part of
//! tagging that runs per character, and building a `String` per attribute costs
//! more than the whole dynamic program at four labels. Extractors can therefore
//! emit a pre-hashed key ([`AttrKey::Hashed`]) and never allocate; string
//! attributes are hashed with the same stable function ([`hash_name`]) so both
//! kinds share one dictionary. Names are kept beside the ids only when asked for
//! (`dump` wants them; a segmenter with millions of n-grams does not). The hash
//! functions ([`hash_name`], [`hash_bytes`], [`hash_combine`], [`mix64`]) are
//! part of the file formats and never change; [`KeyIndex`] and [`prefetch`]
//! are the lookup pieces the tagger and the segmenter build their tables on.
//!
//! This crate knows nothing of semirings or weights: it only says which attributes
//! fire where.
//!
//! ```
//! use chaincrf_features::{read_column_data, FeatureExtractor, TemplateExtractor, Templates};
//! // CRF++ data (label last) and a template over the word column.
//! let data = read_column_data("He PRP B\nruns VBZ O\n".as_bytes(), "inline")?;
//! let templates = Templates::parse("U00:%x[0,0]\nU01:%x[-1,0]/%x[0,0]\nB\n", "template")?;
//! let extractor = TemplateExtractor::new(templates, 2)?;
//! let mut names = Vec::new();
//! extractor.extract_all(&data[0].rows, &mut |t, attr| names.push((t, attr.key.key())));
//! assert_eq!(names.len(), 4); // two unigram templates at each of the two positions
//! # Ok::<(), chaincrf_features::FormatError>(())
//! ```
//!
//! **Misuse.** Malformed input files and templates are `Err` values naming
//! the file and line ([`FormatError`]); nothing here panics on user data.

#![deny(missing_docs)]

mod column;
mod crfsuite;
mod dictionary;
mod error;
mod evaluation;
mod extractor;
mod hash;
mod key_index;
mod lines;
mod template;

pub use column::{read_column_data, ColumnReader, ColumnSequence};
pub use crfsuite::{
    read_crfsuite_data, write_crfsuite_item, write_crfsuite_sequence, AttributeSequence, CrfsuiteExtractor,
    CrfsuiteReader,
};
pub use dictionary::{AttributeDictionary, DictionaryBuilder, LabelAlphabet};
pub use error::FormatError;
pub use evaluation::{Evaluation, EvaluationSummary, LengthMismatch, PrfCounts};
pub use extractor::{Attr, AttrKey, AttrKind, FeatureExtractor};
pub use hash::{hash_bytes, hash_combine, hash_name, mix64, prefetch};
pub use key_index::KeyIndex;
pub use lines::LineReader;
pub use template::{Template, TemplateExtractor, TemplateKind, Templates};
