//! Tagging with models trained on CRF++ column data or CRFsuite attribute data.
//!
//! A model file records how its attributes were extracted
//! ([`ExtractorSpec::CrfppTemplates`] keeps the template text and the number of
//! feature columns; [`ExtractorSpec::CrfsuiteAttributes`] needs nothing). To tag,
//! the extractor must be rebuilt from that record, exactly as it was at training
//! time: a different extractor would produce attribute names the dictionary does
//! not know and the model would silently predict from its biases alone. This
//! module does that rebuilding once ([`ClassicExtractor::from_spec`]) and pairs
//! the result with a [`Tagger`] ([`ClassicTagger`]), so command-line tools and
//! applications that read the two classic formats share one code path and
//! cannot pick the wrong extractor for a model.

use crate::model::{ExtractorSpec, Model, ScoredChain, Tagger};
use chaincrf_features::{CrfsuiteExtractor, FormatError, TemplateExtractor, Templates};

/// Why a model cannot be used with the classic formats, or an input does not fit it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClassicError {
    /// The model was trained with another extractor (for instance the word segmenter's).
    #[error("the model uses the {0:?} extractor, not CRF++ templates or CRFsuite attributes")]
    NotClassic(String),
    /// The template text stored in the model no longer parses (a corrupted or hand-made model).
    #[error("the template stored in the model is invalid: {0}")]
    BadTemplate(FormatError),
    /// Column data given to a CRFsuite model, or attribute data to a CRF++ model.
    #[error("this model was trained on {expected} data and cannot tag {got} data")]
    WrongInput {
        /// The format the model expects.
        expected: &'static str,
        /// The format given.
        got: &'static str,
    },
}

/// The extractor a classic model was trained with.
#[derive(Clone, Debug)]
pub enum ClassicExtractor {
    /// CRF++ templates over column data.
    Templates(TemplateExtractor),
    /// CRFsuite attributes given in the data.
    Attributes(CrfsuiteExtractor),
}

/// One sequence of input in either classic format.
#[derive(Clone, Copy, Debug)]
pub enum ClassicInput<'a> {
    /// Rows of CRF++ column data; rows may carry extra columns (gold label,
    /// forced label) after the model's feature columns.
    Columns(&'a [Vec<String>]),
    /// CRFsuite items: `(attribute, value)` lists.
    Attributes(&'a [Vec<(String, f64)>]),
}

impl ClassicInput<'_> {
    fn format(&self) -> &'static str {
        match self {
            ClassicInput::Columns(_) => "CRF++ column",
            ClassicInput::Attributes(_) => "CRFsuite attribute",
        }
    }
}

impl ClassicExtractor {
    /// Rebuilds the extractor recorded in `spec`.
    ///
    /// # Errors
    /// [`ClassicError::NotClassic`] for a custom extractor,
    /// [`ClassicError::BadTemplate`] when the stored template does not parse or
    /// uses more columns than the model's data had.
    pub fn from_spec(spec: &ExtractorSpec) -> Result<Self, ClassicError> {
        match spec {
            ExtractorSpec::CrfppTemplates {
                source,
                feature_columns,
            } => {
                let templates = Templates::parse(source, "<model template>").map_err(ClassicError::BadTemplate)?;
                templates
                    .check_columns(*feature_columns, "<model template>")
                    .map_err(ClassicError::BadTemplate)?;
                Ok(ClassicExtractor::Templates(TemplateExtractor {
                    templates,
                    feature_columns: *feature_columns,
                }))
            }
            ExtractorSpec::CrfsuiteAttributes => Ok(ClassicExtractor::Attributes(CrfsuiteExtractor)),
            ExtractorSpec::Custom { kind, .. } => Err(ClassicError::NotClassic(kind.clone())),
        }
    }

    /// The number of feature columns a CRF++ model reads (`None` for CRFsuite models).
    pub fn feature_columns(&self) -> Option<usize> {
        match self {
            ClassicExtractor::Templates(t) => Some(t.feature_columns),
            ClassicExtractor::Attributes(_) => None,
        }
    }

    /// The name of the input format this extractor reads.
    pub fn format_name(&self) -> &'static str {
        match self {
            ClassicExtractor::Templates(_) => "CRF++ column",
            ClassicExtractor::Attributes(_) => "CRFsuite attribute",
        }
    }
}

/// A [`Tagger`] together with the extractor its model was trained with.
#[derive(Debug)]
pub struct ClassicTagger<'m> {
    tagger: Tagger<'m>,
    extractor: ClassicExtractor,
}

impl<'m> ClassicTagger<'m> {
    /// A tagger for a model trained on CRF++ or CRFsuite data.
    ///
    /// # Errors
    /// As [`ClassicExtractor::from_spec`].
    pub fn new(model: &'m Model) -> Result<Self, ClassicError> {
        Ok(ClassicTagger {
            tagger: model.tagger(),
            extractor: ClassicExtractor::from_spec(&model.extractor)?,
        })
    }

    /// The rebuilt extractor.
    pub fn extractor(&self) -> &ClassicExtractor {
        &self.extractor
    }

    /// The model.
    pub fn model(&self) -> &'m Model {
        self.tagger.model()
    }

    /// Extracts the attributes of `input` and computes its potentials; then use
    /// [`ClassicTagger::tagger`] to decode (Viterbi, n-best, marginals).
    ///
    /// # Errors
    /// [`ClassicError::WrongInput`] when the input's format is not the model's.
    pub fn observe(&mut self, input: ClassicInput<'_>) -> Result<&ScoredChain, ClassicError> {
        match (&self.extractor, input) {
            (ClassicExtractor::Templates(e), ClassicInput::Columns(rows)) => Ok(self.tagger.observe(e, rows)),
            (ClassicExtractor::Attributes(e), ClassicInput::Attributes(items)) => Ok(self.tagger.observe(e, items)),
            (e, input) => Err(ClassicError::WrongInput {
                expected: e.format_name(),
                got: input.format(),
            }),
        }
    }

    /// The underlying tagger, to decode the sequence last observed.
    pub fn tagger(&mut self) -> &mut Tagger<'m> {
        &mut self.tagger
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Structure;
    use chaincrf_features::{AttrKind, DictionaryBuilder, LabelAlphabet};

    fn model(spec: ExtractorSpec) -> Model {
        let labels = LabelAlphabet::from_labels(["A", "B"]);
        let mut b = DictionaryBuilder::new(true);
        b.add(&chaincrf_features::Attr::state("U0:x"));
        let attributes = b.freeze(1);
        let n = attributes.len(AttrKind::State) * 2 + 4 + 4;
        let mut flat = vec![0.0; n];
        // "U0:x" prefers label B.
        flat[1] = 2.0;
        Model::from_flat(labels, attributes, spec, Structure::default(), &flat)
    }

    #[test]
    fn rebuilds_templates_and_tags_columns() {
        let m = model(ExtractorSpec::CrfppTemplates {
            source: "U0:%x[0,0]\n".into(),
            feature_columns: 1,
        });
        let mut t = ClassicTagger::new(&m).unwrap();
        assert_eq!(t.extractor().feature_columns(), Some(1));
        let rows = vec![
            vec!["x".to_owned(), "gold".to_owned()],
            vec!["y".to_owned(), "gold".to_owned()],
        ];
        t.observe(ClassicInput::Columns(&rows)).unwrap();
        let p = t.tagger().viterbi(None).unwrap();
        assert_eq!(p.labels, [1, 0]);
        let items = vec![vec![("x".to_owned(), 1.0)]];
        assert!(matches!(
            t.observe(ClassicInput::Attributes(&items)),
            Err(ClassicError::WrongInput { .. })
        ));
    }

    #[test]
    fn attributes_and_bad_specs() {
        let m = model(ExtractorSpec::CrfsuiteAttributes);
        let mut t = ClassicTagger::new(&m).unwrap();
        assert_eq!(t.extractor().feature_columns(), None);
        let items = vec![vec![("U0:x".to_owned(), 1.0)]];
        t.observe(ClassicInput::Attributes(&items)).unwrap();
        assert_eq!(t.tagger().viterbi(None).unwrap().labels, [1]);
        let bad = model(ExtractorSpec::CrfppTemplates {
            source: "X\n".into(),
            feature_columns: 1,
        });
        assert!(matches!(ClassicTagger::new(&bad), Err(ClassicError::BadTemplate(_))));
        let wide = model(ExtractorSpec::CrfppTemplates {
            source: "U:%x[0,3]\n".into(),
            feature_columns: 1,
        });
        assert!(matches!(ClassicTagger::new(&wide), Err(ClassicError::BadTemplate(_))));
        let custom = model(ExtractorSpec::Custom {
            kind: "cws".into(),
            payload: vec![],
        });
        assert!(matches!(ClassicTagger::new(&custom), Err(ClassicError::NotClassic(_))));
    }
}
