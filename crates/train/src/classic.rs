//! Training from the two classic file formats: CRF++ column data with a
//! template file, and CRFsuite attribute data.
//!
//! The training core ([`crate::train`]) takes any [`Dataset`]; this module is the
//! glue that turns a CRF++ or CRFsuite user's files into one, with the semantics
//! those tools have, and turns the trained weights back into a [`Model`] that
//! records how to extract attributes again at tagging time:
//!
//! * **CRF++**: the label is the **last** column, every other column is a
//!   feature column the templates may read; label-pair weights exist only when
//!   the template file has a plain `B` line (CRF++ learns no transitions
//!   otherwise), and there are no start/end weights.
//! * **CRFsuite**: the label is the **first** field, the other fields are the
//!   attributes; transitions are always learned, start/end weights are not
//!   (CRFsuite's CRF1d has none).
//!
//! Start/end weights can be switched on for either format
//! ([`ClassicOptions::start_end`]): an extension of ours, useful when the first
//! and last labels of a sequence are special (IOBES tags never start with `I`
//! or `E` and never end with `B` or `I`).
//!
//! Continuing training from a model (`--init`) keeps the model's labels and
//! attributes with their ids (new ones are appended) and starts from its weights;
//! [`ClassicSetup::new`] maps the old weights into the new layout by label name
//! and attribute key, so a grown label set or dictionary is handled.

use crate::data::{Dataset, DatasetBuilder, HeldOutBuilder, LabelTarget};
use chaincrf_features::{
    read_column_data, read_crfsuite_data, AttrKind, AttributeDictionary, AttributeSequence, ColumnReader,
    ColumnSequence, CrfsuiteExtractor, CrfsuiteReader, FormatError, LabelAlphabet, TemplateExtractor, Templates,
};
use chaincrf_model::{ExtractorSpec, Model, Structure, WeightLayout};
use std::borrow::Cow;
use std::io::BufRead;

/// The two classic data formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassicFormat {
    /// CRF++ column data (label in the last column), read through templates.
    Crfpp,
    /// CRFsuite attribute data (label in the first field).
    Crfsuite,
}

impl ClassicFormat {
    /// The format a model was trained from, if it is a classic one.
    pub fn of_model(model: &Model) -> Option<ClassicFormat> {
        match model.extractor() {
            ExtractorSpec::CrfppTemplates { .. } => Some(ClassicFormat::Crfpp),
            ExtractorSpec::CrfsuiteAttributes => Some(ClassicFormat::Crfsuite),
            ExtractorSpec::Custom { .. } => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ClassicFormat::Crfpp => "CRF++",
            ClassicFormat::Crfsuite => "CRFsuite",
        }
    }
}

/// A whole data file in one of the classic formats.
#[derive(Clone, Debug)]
pub enum ClassicCorpus {
    /// CRF++ column data.
    Columns(Vec<ColumnSequence>),
    /// CRFsuite attribute data.
    Attributes(Vec<AttributeSequence>),
}

impl ClassicCorpus {
    /// Reads a whole file of `format`; `path` names it in errors.
    ///
    /// # Errors
    /// The first [`FormatError`] of the file (with its line).
    pub fn read<R: BufRead>(format: ClassicFormat, reader: R, path: &str) -> Result<Self, FormatError> {
        Ok(match format {
            ClassicFormat::Crfpp => ClassicCorpus::Columns(read_column_data(reader, path)?),
            ClassicFormat::Crfsuite => ClassicCorpus::Attributes(read_crfsuite_data(reader, path)?),
        })
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        match self {
            ClassicCorpus::Columns(s) => s.len(),
            ClassicCorpus::Attributes(s) => s.len(),
        }
    }

    /// Whether the file held no sequence.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of tokens (items) over all sequences.
    pub fn tokens(&self) -> usize {
        match self {
            ClassicCorpus::Columns(s) => s.iter().map(ColumnSequence::len).sum(),
            ClassicCorpus::Attributes(s) => s.iter().map(AttributeSequence::len).sum(),
        }
    }

    fn format(&self) -> ClassicFormat {
        match self {
            ClassicCorpus::Columns(_) => ClassicFormat::Crfpp,
            ClassicCorpus::Attributes(_) => ClassicFormat::Crfsuite,
        }
    }
}

/// How to compile classic data.
#[derive(Clone, Debug)]
pub struct ClassicOptions {
    /// Learn start and end weights (our extension; neither CRF++ nor CRFsuite has them). Default false.
    pub start_end: bool,
    /// Keep attributes seen at least this many times (CRF++'s `-f`, CRFsuite's
    /// `feature.minfreq`). Default 1.
    pub min_freq: u32,
    /// Keep attribute names in the model (for `dump`). Default true.
    pub keep_names: bool,
}

impl Default for ClassicOptions {
    fn default() -> Self {
        ClassicOptions {
            start_end: false,
            min_freq: 1,
            keep_names: true,
        }
    }
}

/// Errors while preparing classic data for training.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClassicTrainError {
    /// A data or template file is malformed (the message names file and line).
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The initial model was trained on another format, or not on a classic one.
    #[error("{path}: read as {format} data, but the initial model was {}", model.map_or("not trained on CRF++ or CRFsuite data".to_owned(), |f| format!("trained on {} data", f.name())))]
    InitialModelFormat {
        /// The data file.
        path: String,
        /// The format the data is read as.
        format: &'static str,
        /// The initial model's format, if classic.
        model: Option<ClassicFormat>,
    },
    /// CRF++ data without a template.
    #[error("CRF++ data needs a template file (--template FILE)")]
    MissingTemplate,
    /// A template file without a `U` or `B` line.
    #[error("the template file has no U or B line, so there would be no feature")]
    EmptyTemplate,
    /// The data file holds no sequence.
    #[error("{path}: no training sequence")]
    NoSequences {
        /// The file.
        path: String,
    },
    /// A sequence cannot be used.
    #[error("{path}:{line}")]
    Sequence {
        /// The file.
        path: String,
        /// The line the sequence starts on.
        line: usize,
        /// What is wrong.
        #[source]
        source: crate::error::TrainError,
    },
    /// Held-out data whose columns differ from the training data's.
    #[error("{path}:{line}: {got} columns, but the training data has {expected}")]
    Columns {
        /// The file.
        path: String,
        /// The line.
        line: usize,
        /// Columns found.
        got: usize,
        /// Columns of the training data.
        expected: usize,
    },
    /// Held-out data in another format than the training data.
    #[error("{path}: held-out data must have the training data's format")]
    HeldOutFormat {
        /// The file.
        path: String,
    },
}

/// One sequence of either format, borrowed from a corpus or just read.
enum Sequence<'a> {
    Columns(Cow<'a, ColumnSequence>),
    Attributes(Cow<'a, AttributeSequence>),
}

/// The extractor in use, borrowed by the compiling code.
#[derive(Clone, Debug)]
enum Extractor {
    Templates(TemplateExtractor),
    Attributes,
}

/// Compiled training data with everything needed to train and to build the model.
#[derive(Debug)]
pub struct ClassicSetup {
    /// The compiled training data.
    pub dataset: Dataset,
    /// Initial weights mapped from the `init` model (zeros where it had none).
    pub init: Option<Vec<f64>>,
    extractor: Extractor,
}

impl ClassicSetup {
    /// Compiles `corpus` (read from `path`) for training.
    ///
    /// `templates` is required for CRF++ data unless `init` is a CRF++ model, whose
    /// stored templates are then used. With `init`, the corpus must have the
    /// model's format; its labels and attributes keep their ids and its weights
    /// become the starting point.
    ///
    /// # Errors
    /// [`ClassicTrainError::MissingTemplate`] or
    /// [`ClassicTrainError::EmptyTemplate`] for a missing or empty template,
    /// [`ClassicTrainError::InitialModelFormat`] for a format that differs from
    /// the initial model's, [`ClassicTrainError::NoSequences`] for an empty
    /// corpus, [`ClassicTrainError::Sequence`] for a sequence that cannot be
    /// trained on; [`ClassicTrainError::Format`] when the templates read
    /// columns the data does not have.
    pub fn new(
        corpus: &ClassicCorpus,
        path: &str,
        templates: Option<Templates>,
        options: &ClassicOptions,
        init: Option<&Model>,
    ) -> Result<Self, ClassicTrainError> {
        let sequences: Box<dyn Iterator<Item = Result<Sequence<'_>, FormatError>>> = match corpus {
            ClassicCorpus::Columns(seqs) => Box::new(seqs.iter().map(|s| Ok(Sequence::Columns(Cow::Borrowed(s))))),
            ClassicCorpus::Attributes(seqs) => {
                Box::new(seqs.iter().map(|s| Ok(Sequence::Attributes(Cow::Borrowed(s)))))
            }
        };
        Ok(Self::compile(corpus.format(), sequences, path, templates, options, init)?.0)
    }

    /// Reads and compiles a training file of `format` in one pass: each
    /// sequence is compiled as soon as it is read and its text dropped, so the
    /// corpus is never held in memory as text (on a large CRFsuite export that
    /// text is several times the compiled data). Also returns the number of
    /// sequences and tokens read. Otherwise as [`ClassicSetup::new`].
    ///
    /// # Errors
    /// As [`ClassicSetup::new`], and the first [`FormatError`] of the file.
    pub fn read<R: BufRead>(
        format: ClassicFormat,
        reader: R,
        path: &str,
        templates: Option<Templates>,
        options: &ClassicOptions,
        init: Option<&Model>,
    ) -> Result<(Self, usize, usize), ClassicTrainError> {
        let sequences: Box<dyn Iterator<Item = Result<Sequence<'_>, FormatError>>> = match format {
            ClassicFormat::Crfpp => {
                Box::new(ColumnReader::new(reader, path).map(|r| r.map(|s| Sequence::Columns(Cow::Owned(s)))))
            }
            ClassicFormat::Crfsuite => {
                Box::new(CrfsuiteReader::new(reader, path).map(|r| r.map(|s| Sequence::Attributes(Cow::Owned(s)))))
            }
        };
        Self::compile(format, sequences, path, templates, options, init)
    }

    /// Compiles `sequences` (all of `format`); returns the setup and the
    /// number of sequences and tokens.
    fn compile<'a>(
        format: ClassicFormat,
        sequences: impl Iterator<Item = Result<Sequence<'a>, FormatError>>,
        path: &str,
        templates: Option<Templates>,
        options: &ClassicOptions,
        init: Option<&Model>,
    ) -> Result<(Self, usize, usize), ClassicTrainError> {
        if let Some(model) = init {
            match ClassicFormat::of_model(model) {
                Some(f) if f == format => {}
                other => {
                    return Err(ClassicTrainError::InitialModelFormat {
                        path: path.to_owned(),
                        format: format.name(),
                        model: other,
                    })
                }
            }
        }
        let templates = match format {
            ClassicFormat::Crfsuite => None,
            ClassicFormat::Crfpp => {
                let templates = match (templates, init.map(Model::extractor)) {
                    (Some(t), _) => t,
                    (None, Some(ExtractorSpec::CrfppTemplates { source, .. })) => {
                        Templates::parse(source, "<initial model's template>")?
                    }
                    (None, _) => return Err(ClassicTrainError::MissingTemplate),
                };
                if templates.is_empty() {
                    return Err(ClassicTrainError::EmptyTemplate);
                }
                Some(templates)
            }
        };
        let mut builder = match init {
            Some(m) => DatasetBuilder::continuing(m, options.keep_names),
            None if options.keep_names => DatasetBuilder::new(),
            None => DatasetBuilder::new().without_attribute_names(),
        }
        .min_count(options.min_freq);
        let sequence_error = |line: usize| {
            move |source| ClassicTrainError::Sequence {
                path: path.to_owned(),
                line,
                source,
            }
        };
        // CRF++: the extractor needs the number of columns, known from the first row.
        let mut templates = templates;
        let mut template_extractor: Option<TemplateExtractor> = None;
        let (mut count, mut tokens) = (0usize, 0usize);
        for seq in sequences {
            let seq = seq?;
            count += 1;
            match seq {
                Sequence::Columns(s) => {
                    let columns = s.rows.first().map_or(0, Vec::len);
                    if template_extractor.is_none() {
                        let templates = templates.take().expect("CRF++ data comes with templates");
                        let feature_columns = columns.saturating_sub(1);
                        templates.check_columns(feature_columns, path)?;
                        template_extractor = Some(TemplateExtractor {
                            templates,
                            feature_columns,
                        });
                    }
                    let ex = template_extractor.as_ref().expect("set above");
                    tokens += s.len();
                    let gold: Vec<u32> = s.column(columns - 1).map(|l| builder.labels_mut().intern(l)).collect();
                    builder
                        .add_target(ex, &s.rows, LabelTarget::Gold(gold))
                        .map_err(sequence_error(s.first_line))?;
                }
                Sequence::Attributes(s) => {
                    tokens += s.len();
                    let gold: Vec<u32> = s.labels.iter().map(|l| builder.labels_mut().intern(l)).collect();
                    builder
                        .add_target(&CrfsuiteExtractor, &s.attrs, LabelTarget::Gold(gold))
                        .map_err(sequence_error(s.first_line))?;
                }
            }
        }
        if count == 0 {
            return Err(ClassicTrainError::NoSequences { path: path.to_owned() });
        }
        let (extractor, spec, transitions) = match template_extractor {
            Some(ex) => {
                let spec = ExtractorSpec::CrfppTemplates {
                    source: ex.templates.source().to_owned(),
                    feature_columns: ex.feature_columns,
                };
                let transitions = ex.templates.has_plain_bigram();
                (Extractor::Templates(ex), spec, transitions)
            }
            None => (Extractor::Attributes, ExtractorSpec::CrfsuiteAttributes, true),
        };
        let dataset = builder
            .extractor(spec)
            .structure(Structure {
                transitions,
                start_end: options.start_end,
                ..Structure::default()
            })
            .build();
        let init = init.map(|m| map_weights(m, &dataset.labels, &dataset.attributes));
        let setup = ClassicSetup {
            dataset,
            init,
            extractor,
        };
        Ok((setup, count, tokens))
    }

    /// Compiles held-out data (same format) against the training dictionary,
    /// for per-iteration accuracy and early stopping. Attributes unknown to the
    /// training data are ignored; tokens whose gold label never occurs in the
    /// training data are kept and always count as errors.
    ///
    /// # Errors
    /// [`ClassicTrainError::HeldOutFormat`] when the format differs from the
    /// training data's, [`ClassicTrainError::Columns`] when (CRF++ data) the
    /// number of columns does, [`ClassicTrainError::Sequence`] for a sequence
    /// that cannot be scored.
    pub fn held_out(&self, corpus: &ClassicCorpus, path: &str) -> Result<Dataset, ClassicTrainError> {
        let labels = &self.dataset.labels;
        let gold_of = |l: &str| labels.id(l).unwrap_or(u32::MAX);
        let mut b = HeldOutBuilder::new(&self.dataset.attributes, labels);
        match (&self.extractor, corpus) {
            (Extractor::Templates(ex), ClassicCorpus::Columns(seqs)) => {
                let want = ex.feature_columns + 1;
                for s in seqs {
                    let got = s.rows.first().map_or(want, Vec::len);
                    if got != want {
                        return Err(ClassicTrainError::Columns {
                            path: path.to_owned(),
                            line: s.first_line,
                            got,
                            expected: want,
                        });
                    }
                    let gold: Vec<u32> = s.column(want - 1).map(gold_of).collect();
                    b.add(ex, &s.rows, &gold)
                        .map_err(|source| ClassicTrainError::Sequence {
                            path: path.to_owned(),
                            line: s.first_line,
                            source,
                        })?;
                }
            }
            (Extractor::Attributes, ClassicCorpus::Attributes(seqs)) => {
                for s in seqs {
                    let gold: Vec<u32> = s.labels.iter().map(|l| gold_of(l)).collect();
                    b.add(&CrfsuiteExtractor, &s.attrs, &gold)
                        .map_err(|source| ClassicTrainError::Sequence {
                            path: path.to_owned(),
                            line: s.first_line,
                            source,
                        })?;
                }
            }
            _ => return Err(ClassicTrainError::HeldOutFormat { path: path.to_owned() }),
        }
        Ok(b.finish())
    }
}

/// Maps `old`'s weights into the flat layout of `labels` × `attributes`: each
/// weight goes to the same label names and attribute keys; everything new is 0.
pub fn map_weights(old: &Model, labels: &LabelAlphabet, attributes: &AttributeDictionary) -> Vec<f64> {
    let new = WeightLayout {
        k: labels.len(),
        num_state: attributes.len(AttrKind::State),
        num_edge: attributes.len(AttrKind::Edge),
    };
    let (k_old, k) = (old.num_labels(), new.k);
    let mut flat = vec![0.0; new.len()];
    // New id of each old label (labels the new alphabet lacks are dropped).
    let label_map: Vec<Option<usize>> = (0..k_old as u32)
        .map(|y| labels.id(old.labels().label(y)).map(|i| i as usize))
        .collect();
    // (old a, old b) → (new a, new b) for every label pair both alphabets have.
    let mut pairs = Vec::with_capacity(k_old * k_old);
    for (a, na) in label_map.iter().enumerate() {
        for (b, nb) in label_map.iter().enumerate() {
            if let (Some(na), Some(nb)) = (na, nb) {
                pairs.push(((a, b), (*na, *nb)));
            }
        }
    }
    let w = old.view();
    for id in 0..old.attributes().len(AttrKind::State) as u32 {
        let Some(nid) = attributes.id(AttrKind::State, old.attributes().key(AttrKind::State, id)) else {
            continue;
        };
        for (y, ny) in label_map.iter().enumerate() {
            if let Some(ny) = ny {
                flat[nid as usize * k + ny] = w.state.get(id as usize, y).map_or(0.0, f64::from);
            }
        }
    }
    let e0 = new.edge_offset();
    for id in 0..old.attributes().len(AttrKind::Edge) as u32 {
        let Some(nid) = attributes.id(AttrKind::Edge, old.attributes().key(AttrKind::Edge, id)) else {
            continue;
        };
        for ((a, b), (na, nb)) in &pairs {
            flat[e0 + nid as usize * k * k + na * k + nb] =
                f64::from(w.edge[id as usize * k_old * k_old + a * k_old + b]);
        }
    }
    let t0 = new.transition_offset();
    for ((a, b), (na, nb)) in &pairs {
        flat[t0 + na * k + nb] = f64::from(w.transitions[a * k_old + b]);
    }
    let (s0, f0) = (new.start_offset(), new.end_offset());
    for (y, ny) in label_map.iter().enumerate() {
        if let Some(ny) = ny {
            flat[s0 + ny] = f64::from(w.start[y]);
            flat[f0 + ny] = f64::from(w.end[y]);
        }
    }
    flat
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Algorithm, Params, Trainer};

    const DATA: &str = "He PRP B\nis VBZ O\nhere RB O\n\nShe PRP B\nruns VBZ O\n\nit PRP B\n";

    fn corpus(text: &str, format: ClassicFormat) -> ClassicCorpus {
        ClassicCorpus::read(format, text.as_bytes(), "data").unwrap()
    }

    fn templates(text: &str) -> Templates {
        Templates::parse(text, "tpl").unwrap()
    }

    #[test]
    fn crfpp_semantics() {
        let c = corpus(DATA, ClassicFormat::Crfpp);
        assert_eq!((c.len(), c.tokens()), (3, 6));
        let s = ClassicSetup::new(
            &c,
            "data",
            Some(templates("U0:%x[0,1]\nB\n")),
            &ClassicOptions::default(),
            None,
        )
        .unwrap();
        assert!(s.dataset.structure.transitions && !s.dataset.structure.start_end);
        assert_eq!(s.dataset.labels.labels(), ["B", "O"]);
        assert_eq!(
            s.dataset.extractor,
            ExtractorSpec::CrfppTemplates {
                source: "U0:%x[0,1]\nB\n".into(),
                feature_columns: 2
            }
        );
        // Without a plain B line there are no transitions.
        let s = ClassicSetup::new(
            &c,
            "data",
            Some(templates("U0:%x[0,1]\n")),
            &ClassicOptions::default(),
            None,
        )
        .unwrap();
        assert!(!s.dataset.structure.transitions);
        // Columns the data lacks, and a missing template.
        let e = ClassicSetup::new(
            &c,
            "data",
            Some(templates("U0:%x[0,2]\n")),
            &ClassicOptions::default(),
            None,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("data: template line 1"), "{e}");
        assert!(ClassicSetup::new(&c, "data", None, &ClassicOptions::default(), None).is_err());
    }

    #[test]
    fn crfsuite_semantics_and_held_out() {
        let c = corpus("B\tw=He\nO\tw=is\n\nB\tw=She\nO\tw=runs\n", ClassicFormat::Crfsuite);
        let s = ClassicSetup::new(&c, "data", None, &ClassicOptions::default(), None).unwrap();
        assert!(s.dataset.structure.transitions);
        assert_eq!(s.dataset.extractor, ExtractorSpec::CrfsuiteAttributes);
        let dev = corpus("B\tw=He\nX\tw=new\n", ClassicFormat::Crfsuite);
        let d = s.held_out(&dev, "dev").unwrap();
        assert_eq!(d.gold, [0, u32::MAX as usize]);
        let wrong = corpus(DATA, ClassicFormat::Crfpp);
        assert!(s.held_out(&wrong, "dev").is_err());
    }

    #[test]
    fn init_maps_weights_when_labels_and_attributes_grow() {
        let c = corpus(DATA, ClassicFormat::Crfpp);
        let opts = ClassicOptions::default();
        let s = ClassicSetup::new(&c, "data", Some(templates("U0:%x[0,0]\nB\n")), &opts, None).unwrap();
        let params = Params::new(Algorithm::Lbfgs).check().unwrap();
        let old = Trainer::new(params).threads(1).fit(&s.dataset).unwrap().into_model();
        // New data: a new label first, new words.
        let c2 = corpus("a DT X\nHe PRP B\nwalks VBZ O\n", ClassicFormat::Crfpp);
        let s2 = ClassicSetup::new(&c2, "more", None, &opts, Some(&old)).unwrap();
        assert_eq!(s2.dataset.labels.labels(), ["B", "O", "X"]);
        let init = s2.init.clone().unwrap();
        let l = s2.dataset.layout();
        assert_eq!(init.len(), l.len());
        let he = old
            .attributes()
            .id(AttrKind::State, chaincrf_features::hash_name("U0:He"))
            .unwrap();
        let he2 = s2
            .dataset
            .attributes
            .id(AttrKind::State, chaincrf_features::hash_name("U0:He"))
            .unwrap();
        assert_eq!(he, he2);
        for y in 0..2 {
            assert_eq!(
                init[he2 as usize * 3 + y],
                old.view().state.get(he as usize, y).map_or(0.0, f64::from)
            );
        }
        assert_eq!(init[he2 as usize * 3 + 2], 0.0);
        let t0 = l.transition_offset();
        assert_eq!(init[t0 + 3 + 1], f64::from(old.view().transitions[2 + 1]));
        assert_eq!(init[t0 + 2 * 3], 0.0);
        // Format mismatch is an error.
        let cs = corpus("B\tw=He\n", ClassicFormat::Crfsuite);
        assert!(ClassicSetup::new(&cs, "x", None, &opts, Some(&old)).is_err());
    }
}
