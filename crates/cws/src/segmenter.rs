//! The segmenter: a trained CWS model, loaded once, segmenting text into words.
//!
//! A CWS model is an ordinary chaincrf [`Model`] whose extractor is the
//! character n-gram extractor ([`NgramExtractor`]) and whose structure forbids
//! the tag pairs a scheme never allows (B→S in B/M/E/S...), so every decoded tag
//! sequence is a valid segmentation. The extractor configuration (scheme,
//! templates, lexicon) travels in the model file as [`CwsModelConfig`].
//!
//! Segmentation splits the input at whitespace (whitespace is always a boundary
//! and never part of a word), normalizes each run's characters for the features
//! only, and decodes with the core Viterbi under optional hard constraints
//! ([`Constraints`]: user-dictionary words and Latin/number runs become forced
//! labels, so they come out whole by construction, not by a score bonus). The
//! words are spans of the original text: concatenating them, with the
//! whitespace between, gives back the input exactly.
//!
//! [`Segmenter`] is `Sync`; each thread segments through its own [`Session`]
//! (reusable buffers), or through [`Segmenter::segment`], which makes one per call.

use crate::clusters::CharClusters;
use crate::compiled::{CompiledEmissions, CompiledScratch, NgramInventory};
use crate::constraints::{Constraints, UserDict};
use crate::error::{Error, Result};
use crate::lexicon::Lexicon;
use crate::ngram::{NgramConfig, NgramExtractor};
use crate::normalize::normalize_char;
use crate::scheme::TagScheme;
use crate::semi::{ChainScores, HybridPotentials, HybridViterbi, SemiModel};
use crate::tag_viterbi::TagViterbi;
use crate::words::{WordScorer, WordScratch};
use chaincrf_core::chain::ChainWorkspace;
use chaincrf_core::semimarkov::SemiMarkovWorkspace;
use chaincrf_core::{AllowedLabels, Constrained, Log, MaxPlus, Potentials};
use chaincrf_model::{ExtractorSpec, Model, Structure, Tagger};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

/// The extractor kind name of CWS model files whose payload is a
/// [`CwsModelConfig`] alone.
pub const EXTRACTOR_KIND: &str = "chaincrf-cws/ngram-v1";

/// The extractor kind name of CWS model files whose payload is a
/// [`CwsModelConfig`] followed by the [`NgramInventory`] of the training text
/// (what the segmenter's compiled tables are built from).
pub const EXTRACTOR_KIND_WITH_INVENTORY: &str = "chaincrf-cws/ngram-v2";

/// The extractor kind name of semi-Markov CWS models: the payload is the
/// [`CwsModelConfig`], the optional [`NgramInventory`] and the
/// [`SemiModel`] (word statistics and word-feature weights); the model's own
/// weights are the character part (see [`crate::semi`]).
pub const EXTRACTOR_KIND_SEMI: &str = "chaincrf-cws/semi-v1";

/// The extractor kind name of CWS models with character clusters: the
/// payload is the [`CwsModelConfig`], the optional [`NgramInventory`] and
/// the [`CharClusters`].
pub const EXTRACTOR_KIND_CLUSTERS: &str = "chaincrf-cws/ngram-v3";

/// [`EXTRACTOR_KIND_SEMI`] with character clusters: the payload is
/// followed by the [`CharClusters`].
pub const EXTRACTOR_KIND_SEMI_CLUSTERS: &str = "chaincrf-cws/semi-v2";

/// Emission scores computed outside the n-gram features, by a neural encoder
/// for instance (`chaincrf-cws-cnn`). A segmenter built with one
/// ([`Segmenter::with_emission_scorer`]) decodes its scores with the model's
/// transitions and structure, so user dictionaries, Latin runs and word
/// confidences apply to them unchanged (they are `-inf` emissions added at
/// decoding time).
pub trait EmissionScorer: std::fmt::Debug + Send + Sync {
    /// Adds the scores of the width-normalized characters `chars` (see
    /// [`normalize_char`]) to `out`: `chars.len()` rows of one score per tag.
    fn add_emissions(&self, chars: &[char], out: &mut [f64]);
}

/// What a CWS model stores about its features.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CwsModelConfig {
    /// Tag scheme (labels are the scheme's tags in order).
    pub scheme: TagScheme,
    /// N-gram extractor configuration.
    pub ngram: NgramConfig,
    /// Training lexicon, when lexicon features are on (shared with the
    /// extractors built from this configuration, not copied).
    pub lexicon: Option<Arc<Lexicon>>,
    /// Character clusters, when the model has cluster attributes. Stored
    /// after the configuration, under the kinds that carry them
    /// ([`EXTRACTOR_KIND_CLUSTERS`], [`EXTRACTOR_KIND_SEMI_CLUSTERS`]), so
    /// that models without clusters keep the layout older releases read.
    #[serde(skip)]
    pub clusters: Option<Arc<CharClusters>>,
}

impl CwsModelConfig {
    /// The model structure for this scheme: transitions and start/end learned,
    /// illegal tag pairs, starts and ends forbidden.
    pub fn structure(&self) -> Structure {
        let s = self.scheme;
        let k = s.num_tags() as u32;
        let mut st = Structure {
            transitions: true,
            start_end: true,
            ..Structure::default()
        };
        for i in 0..k {
            for j in 0..k {
                if !s.allowed_transition(i, j) {
                    st.forbidden_transitions.push((i, j));
                }
            }
            if !s.allowed_start(i) {
                st.forbidden_start.push(i);
            }
            if !s.allowed_end(i) {
                st.forbidden_end.push(i);
            }
        }
        st
    }

    /// Builds the extractor.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid configuration.
    pub fn extractor(&self) -> Result<NgramExtractor> {
        Ok(NgramExtractor::new(self.ngram.clone(), self.lexicon.clone())?.with_clusters(self.clusters.clone()))
    }

    /// The [`ExtractorSpec`] to store in a model.
    ///
    /// # Errors
    /// [`Error::Payload`] if encoding fails.
    pub fn spec(&self) -> Result<ExtractorSpec> {
        match &self.clusters {
            None => custom_spec(EXTRACTOR_KIND, self),
            Some(c) => custom_spec(EXTRACTOR_KIND_CLUSTERS, &(self, None::<NgramInventory>, &**c)),
        }
    }

    /// The [`ExtractorSpec`] to store in a model, with the inventory of its
    /// training n-grams (see [`NgramInventory`]).
    ///
    /// # Errors
    /// [`Error::Payload`] if encoding fails.
    pub fn spec_with_inventory(&self, inventory: &NgramInventory) -> Result<ExtractorSpec> {
        match &self.clusters {
            None => custom_spec(EXTRACTOR_KIND_WITH_INVENTORY, &(self, inventory)),
            Some(c) => custom_spec(EXTRACTOR_KIND_CLUSTERS, &(self, Some(inventory), &**c)),
        }
    }

    /// The [`ExtractorSpec`] of a semi-Markov model with this configuration.
    pub(crate) fn semi_spec(&self, inventory: Option<&NgramInventory>, semi: &SemiModel) -> Result<ExtractorSpec> {
        match &self.clusters {
            None => custom_spec(EXTRACTOR_KIND_SEMI, &(self, inventory, semi)),
            Some(c) => custom_spec(EXTRACTOR_KIND_SEMI_CLUSTERS, &(self, inventory, semi, &**c)),
        }
    }
}

/// The [`NgramInventory`] a character model's file stores, if any.
pub(crate) fn stored_inventory(model: &Model) -> Result<Option<NgramInventory>> {
    let bad = |e: chaincrf_model::PayloadError| Error::Model(format!("bad CWS configuration: {e}"));
    Ok(match model.extractor() {
        ExtractorSpec::Custom { kind, payload } if kind == EXTRACTOR_KIND_WITH_INVENTORY => Some(
            chaincrf_model::decode_payload::<(CwsModelConfig, NgramInventory)>(payload)
                .map_err(bad)?
                .1,
        ),
        ExtractorSpec::Custom { kind, payload } if kind == EXTRACTOR_KIND_CLUSTERS => {
            chaincrf_model::decode_payload::<(CwsModelConfig, Option<NgramInventory>, CharClusters)>(payload)
                .map_err(bad)?
                .1
        }
        _ => None,
    })
}

fn custom_spec(kind: &str, payload: &impl Serialize) -> Result<ExtractorSpec> {
    Ok(ExtractorSpec::Custom {
        kind: kind.into(),
        payload: chaincrf_model::encode_payload(payload).map_err(Error::Payload)?,
    })
}

/// A word of the output: its byte span in the input, and optionally its confidence.
#[derive(Clone, Debug, PartialEq)]
pub struct Word {
    /// Byte range in the input text.
    pub span: Range<usize>,
    /// Marginal probability that this span is a word (when asked for).
    pub confidence: Option<f64>,
}

/// A loaded segmentation model.
#[derive(Debug)]
pub struct Segmenter {
    model: Model,
    config: CwsModelConfig,
    extractor: NgramExtractor,
    compiled: Option<CompiledEmissions>,
    use_compiled: bool,
    /// Word features of a semi-Markov model, and its weights laid out for
    /// segmenting.
    semi: Option<(SemiModel, WordScorer)>,
    user_dict: Option<UserDict>,
    keep_latin_runs: bool,
    scorer: Option<Arc<dyn EmissionScorer>>,
}

impl Segmenter {
    /// Loads a model file.
    ///
    /// # Errors
    /// [`Error::Model`] naming the file when it cannot be read or is not a
    /// CWS model.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let model = chaincrf_model::load(path).map_err(|e| Error::Model(e.to_string()))?;
        Self::from_model(model).map_err(|e| match e {
            Error::Model(m) => Error::Model(format!("{}: {m}", path.display())),
            other => Error::Model(format!("{}: {other}", path.display())),
        })
    }

    /// Wraps a model trained for segmentation.
    ///
    /// # Errors
    /// [`Error::Model`] when the model was not trained by the CWS trainer.
    pub fn from_model(model: Model) -> Result<Self> {
        let bad = |e: String| Error::Model(format!("bad CWS configuration: {e}"));
        let (config, inventory, semi): (CwsModelConfig, Option<NgramInventory>, Option<SemiModel>) = match model
            .extractor()
        {
            ExtractorSpec::Custom { kind, payload } if kind == EXTRACTOR_KIND => (
                chaincrf_model::decode_payload(payload).map_err(|e| bad(e.to_string()))?,
                None,
                None,
            ),
            ExtractorSpec::Custom { kind, payload } if kind == EXTRACTOR_KIND_WITH_INVENTORY => {
                let (config, inventory) = chaincrf_model::decode_payload(payload).map_err(|e| bad(e.to_string()))?;
                (config, Some(inventory), None)
            }
            ExtractorSpec::Custom { kind, payload } if kind == EXTRACTOR_KIND_CLUSTERS => {
                let (mut config, inventory, clusters): (CwsModelConfig, Option<NgramInventory>, CharClusters) =
                    chaincrf_model::decode_payload(payload).map_err(|e| bad(e.to_string()))?;
                config.clusters = Some(Arc::new(clusters));
                (config, inventory, None)
            }
            ExtractorSpec::Custom { kind, payload }
                if kind == EXTRACTOR_KIND_SEMI || kind == EXTRACTOR_KIND_SEMI_CLUSTERS =>
            {
                let (config, inventory, semi) = if kind == EXTRACTOR_KIND_SEMI {
                    chaincrf_model::decode_payload::<(CwsModelConfig, Option<NgramInventory>, SemiModel)>(payload)
                } else {
                    chaincrf_model::decode_payload::<(CwsModelConfig, Option<NgramInventory>, SemiModel, CharClusters)>(
                        payload,
                    )
                    .map(|(mut config, inventory, semi, clusters)| {
                        config.clusters = Some(Arc::new(clusters));
                        (config, inventory, semi)
                    })
                }
                .map_err(|e| bad(e.to_string()))?;
                semi.check().map_err(bad)?;
                if config.scheme != TagScheme::Bmes {
                    return Err(bad("a semi-Markov model must use the B/M/E/S scheme".into()));
                }
                (config, inventory, Some(semi))
            }
            _ => {
                return Err(Error::Model(
                    "not a word-segmentation model (train one with `chaincrf cws train`)".into(),
                ))
            }
        };
        if model.num_labels() != config.scheme.num_tags() {
            return Err(Error::Model("the model's labels do not match its tag scheme".into()));
        }
        let extractor = config.extractor()?;
        let compiled = inventory.and_then(|inv| CompiledEmissions::new(&extractor, &inv, &model));
        Ok(Segmenter {
            model,
            config,
            extractor,
            compiled,
            use_compiled: true,
            semi: semi.map(|m| {
                let scorer = WordScorer::new(&m.features(), &m.weights());
                (m, scorer)
            }),
            user_dict: None,
            keep_latin_runs: false,
            scorer: None,
        })
    }

    /// A segmenter whose emission scores all come from `scorer`; `model`
    /// supplies the tags, transitions, start and end scores and the forbidden
    /// tag pairs of `scheme`, and has no attributes of its own.
    ///
    /// # Errors
    /// [`Error::Model`] when the model has attributes or its labels do not
    /// match the scheme.
    pub fn with_emission_scorer(model: Model, scheme: TagScheme, scorer: Arc<dyn EmissionScorer>) -> Result<Self> {
        if model.num_labels() != scheme.num_tags() {
            return Err(Error::Model("the model's labels do not match its tag scheme".into()));
        }
        if !model.attributes().is_empty() {
            return Err(Error::Model(
                "a model with an emission scorer has no attributes of its own".into(),
            ));
        }
        let config = CwsModelConfig {
            scheme,
            ngram: NgramConfig {
                lexicon_features: false,
                ..NgramConfig::default()
            },
            lexicon: None,
            clusters: None,
        };
        let extractor = config.extractor()?;
        Ok(Segmenter {
            model,
            config,
            extractor,
            compiled: None,
            use_compiled: true,
            semi: None,
            user_dict: None,
            keep_latin_runs: false,
            scorer: Some(scorer),
        })
    }

    /// Words of `dict` always come out whole (leftmost-longest matches on the raw text).
    pub fn with_user_dict(mut self, dict: UserDict) -> Self {
        self.user_dict = Some(dict);
        self
    }

    /// Adds `word` to the user dictionary (starting one when there is none),
    /// as jieba's `add_word` does at run time; empty words are ignored.
    pub fn add_user_word(&mut self, word: &str) {
        self.user_dict.get_or_insert_with(UserDict::new).insert(word);
    }

    /// Keeps runs of Latin letters, digits and number punctuation unsplit.
    pub fn keep_latin_runs(mut self, on: bool) -> Self {
        self.keep_latin_runs = on;
        self
    }

    /// Whether segmentation may use the compiled n-gram tables (the default;
    /// see [`Segmenter::has_compiled_tables`]). Turning them off gives the
    /// generic path, the reference the tables are tested against.
    pub fn use_compiled_tables(mut self, on: bool) -> Self {
        self.use_compiled = on;
        self
    }

    /// Whether the model came with an n-gram inventory from which compiled
    /// tables covering all its attributes were built: segmentation then looks
    /// each n-gram up once instead of once per template (see
    /// `chaincrf_cws::compiled`). Models written before the inventory
    /// existed segment on the generic path, slower. Both paths add the same
    /// weights, in another order: scores can differ in the last bits, so an
    /// exact tie between two segmentations could go either way.
    pub fn has_compiled_tables(&self) -> bool {
        self.compiled.is_some()
    }

    /// Heap bytes of the compiled tables (0 without them).
    pub fn compiled_heap_bytes(&self) -> usize {
        self.compiled.as_ref().map_or(0, CompiledEmissions::heap_bytes)
    }

    /// Whether this is a semi-Markov model (word features on top of the
    /// character model; see [`crate::semi`]).
    pub fn is_semi_markov(&self) -> bool {
        self.semi.is_some()
    }

    /// The underlying model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The model's CWS configuration.
    pub fn config(&self) -> &CwsModelConfig {
        &self.config
    }

    /// A reusable per-thread session.
    pub fn session(&self) -> Session<'_> {
        Session {
            seg: self,
            tagger: self.model.tagger(),
            raw: Vec::new(),
            norm: Vec::new(),
            offsets: Vec::new(),
            tags: Vec::new(),
            chain: ChainWorkspace::new(),
            scratch: CompiledScratch::default(),
            semi: SemiScratch::default(),
            viterbi: TagViterbi::default(),
            spans: Vec::new(),
        }
    }

    /// Segments `text` into word spans (allocates a session; use [`Segmenter::session`] in loops).
    ///
    /// # Errors
    /// Only when constraints leave no valid segmentation, which the constraint
    /// builder prevents; reported rather than panicking.
    pub fn segment(&self, text: &str) -> Result<Vec<Range<usize>>> {
        Ok(self
            .session()
            .segment(text, false)?
            .into_iter()
            .map(|w| w.span)
            .collect())
    }

    /// Segments `text` and returns the words as string slices.
    ///
    /// # Errors
    /// As [`Segmenter::segment`].
    pub fn words<'t>(&self, text: &'t str) -> Result<Vec<&'t str>> {
        Ok(self.segment(text)?.into_iter().map(|r| &text[r]).collect())
    }
}

/// Per-thread buffers for segmenting with a [`Segmenter`].
#[derive(Debug)]
pub struct Session<'s> {
    seg: &'s Segmenter,
    tagger: Tagger<'s>,
    raw: Vec<char>,
    norm: Vec<char>,
    offsets: Vec<usize>,
    tags: Vec<u32>,
    /// Forward and backward rows of the last run, for word confidences.
    chain: ChainWorkspace<Log>,
    scratch: CompiledScratch,
    semi: SemiScratch,
    viterbi: TagViterbi,
    spans: Vec<Range<usize>>,
}

/// The longest forced word the semi-Markov decoder handles itself (see
/// [`Session::segment_run`]).
const MAX_SEMI_LEN: usize = 64;

/// The longest word a constraint forces: one more than the longest run of
/// positions that allow neither E nor S (a forced word's characters but its
/// last). Forced words side by side do not add up: each one's last character
/// allows E.
fn longest_forced_run(allowed: &AllowedLabels, n: usize) -> usize {
    let (e, s) = (TagScheme::Bmes.end() as usize, TagScheme::Bmes.single() as usize);
    let (mut best, mut run) = (0, 0);
    for t in 0..n {
        if allowed.is_allowed(t, e) || allowed.is_allowed(t, s) {
            run = 0;
        } else {
            run += 1;
            best = best.max(run);
        }
    }
    if best == 0 {
        0
    } else {
        best + 1
    }
}

/// Per-thread buffers of the semi-Markov decoder.
#[derive(Debug, Default)]
struct SemiScratch {
    potentials: HybridPotentials,
    best: SemiMarkovWorkspace<MaxPlus>,
    sums: SemiMarkovWorkspace<Log>,
    segment_scores: Vec<f64>,
    words: WordScratch,
    fast: HybridViterbi,
    /// The best segmentation: `(start, len, label)`.
    segments: Vec<(usize, usize, usize)>,
    emissions: Vec<f64>,
    marginals: Vec<f64>,
}

impl Session<'_> {
    /// Segments `text`; with `confidence`, each word also gets its marginal probability.
    ///
    /// # Errors
    /// As [`Segmenter::segment`].
    pub fn segment(&mut self, text: &str, confidence: bool) -> Result<Vec<Word>> {
        let mut out = Vec::new();
        self.segment_into(text, confidence, &mut out)?;
        Ok(out)
    }

    /// [`Session::segment`] into `out` (cleared first), reusing its memory:
    /// a loop over many lines then allocates nothing per line.
    ///
    /// # Errors
    /// As [`Segmenter::segment`]; `out` then holds the words of the runs
    /// before the failing one.
    pub fn segment_into(&mut self, text: &str, confidence: bool, out: &mut Vec<Word>) -> Result<()> {
        out.clear();
        let mut run_start: Option<usize> = None;
        for (i, c) in text.char_indices() {
            if c.is_whitespace() {
                if let Some(s) = run_start.take() {
                    self.segment_run(text, s, i, confidence, out)?;
                }
            } else if run_start.is_none() {
                run_start = Some(i);
            }
        }
        if let Some(s) = run_start {
            self.segment_run(text, s, text.len(), confidence, out)?;
        }
        Ok(())
    }

    /// Segments `line` and appends it to `out` as `chaincrf cws segment`
    /// writes a line: the words separated by a space (with `confidence`, each
    /// followed by `/` and its probability to 4 decimals), then a newline.
    /// `words` is scratch space, as in [`Session::segment_into`].
    ///
    /// # Errors
    /// As [`Segmenter::segment`]; `out` is then left as it was.
    pub fn write_line(&mut self, line: &str, confidence: bool, words: &mut Vec<Word>, out: &mut String) -> Result<()> {
        use std::fmt::Write as _;
        self.segment_into(line, confidence, words)?;
        for (i, w) in words.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&line[w.span.clone()]);
            if let Some(c) = w.confidence {
                write!(out, "/{c:.4}").expect("writing to a String cannot fail");
            }
        }
        out.push('\n');
        Ok(())
    }

    fn segment_run(
        &mut self,
        text: &str,
        start: usize,
        end: usize,
        confidence: bool,
        out: &mut Vec<Word>,
    ) -> Result<()> {
        let run = &text[start..end];
        self.raw.clear();
        self.norm.clear();
        self.offsets.clear();
        for (i, c) in run.char_indices() {
            self.raw.push(c);
            self.norm.push(normalize_char(c));
            self.offsets.push(start + i);
        }
        self.offsets.push(end);
        let scheme = self.seg.config.scheme;
        let k = scheme.num_tags();
        match self.seg.compiled.as_ref().filter(|_| self.seg.use_compiled) {
            _ if self.seg.scorer.is_some() => {
                let (norm, scorer) = (&self.norm, self.seg.scorer.as_deref());
                self.tagger.observe_emissions(norm.len(), |out| {
                    if let Some(s) = scorer {
                        s.add_emissions(norm, out)
                    }
                });
            }
            Some(compiled) => {
                let lexicon = self.seg.extractor.lexicon().map(|l| &**l);
                let (norm, scratch) = (&self.norm, &mut self.scratch);
                self.tagger
                    .observe_emissions(norm.len(), |out| compiled.add_emissions(norm, lexicon, scratch, out));
            }
            None => {
                self.tagger.observe(&self.seg.extractor, &self.norm[..]);
            }
        }
        let constraints = if self.seg.user_dict.is_some() || self.seg.keep_latin_runs {
            Some(Constraints::for_text(
                scheme,
                &self.raw,
                self.seg.user_dict.as_ref(),
                self.seg.keep_latin_runs,
            ))
        } else {
            None
        };
        let allowed = match &constraints {
            Some(c) if !c.is_free() => {
                let sets: Vec<Option<Vec<usize>>> = c
                    .as_slice()
                    .iter()
                    .map(|s| {
                        if s.is_any() {
                            None
                        } else {
                            Some(s.iter(k).map(|y| y as usize).collect())
                        }
                    })
                    .collect();
                Some(AllowedLabels::from_sets(&sets, k).map_err(Error::InvalidConstraints)?)
            }
            _ => None,
        };
        if let Some((semi, scorer)) = &self.seg.semi {
            let forced = allowed.as_ref().map_or(0, |a| longest_forced_run(a, self.raw.len()));
            // A forced word longer than the model's limit still fits: the limit
            // grows for this input, up to `MAX_SEMI_LEN`; past that (a Latin run
            // of thousands of characters, say) the character model decodes
            // alone, so memory stays linear in the input.
            if forced <= MAX_SEMI_LEN {
                let l = semi.max_len().max(forced);
                return self.segment_run_semi(semi, scorer, l, allowed.as_ref(), confidence, out);
            }
        }
        self.decode(allowed.as_ref())?;
        let mut spans = std::mem::take(&mut self.spans);
        scheme.word_spans_into(&self.tags, self.raw.len(), &mut spans);
        let log_z = if confidence {
            let log_z = self.forward_backward(allowed.as_ref()).map_err(Error::NoSegmentation)?;
            Some(log_z)
        } else {
            None
        };
        for span in spans.iter().cloned() {
            let conf = match log_z {
                Some(lz) => {
                    let tags = scheme.forced_word_tags(span.len());
                    Some(
                        (self.word_log_score(span.clone(), &tags, allowed.as_ref()) - lz)
                            .exp()
                            .min(1.0),
                    )
                }
                None => None,
            };
            out.push(Word {
                span: self.offsets[span.start]..self.offsets[span.end],
                confidence: conf,
            });
        }
        self.spans = spans;
        Ok(())
    }

    /// The best tags of the observed run (within `allowed`) into `self.tags`:
    /// by the decoder specialized to the tag scheme when it covers the run
    /// (see [`crate::tag_viterbi`]; the same path, bit for bit), else by the
    /// core's.
    fn decode(&mut self, allowed: Option<&AllowedLabels>) -> Result<()> {
        if allowed.is_none()
            && self
                .viterbi
                .decode(self.seg.config.scheme, self.tagger.potentials(), &mut self.tags)
        {
            return Ok(());
        }
        let path = self.tagger.viterbi(allowed).map_err(Error::NoSegmentation)?;
        self.tags.clear();
        self.tags.extend(path.labels.iter().map(|&y| y as u32));
        Ok(())
    }

    /// The semi-Markov decoder of [`Session::segment_run`], after the
    /// character scores of the run are observed.
    fn segment_run_semi(
        &mut self,
        semi: &SemiModel,
        scorer: &WordScorer,
        l: usize,
        allowed: Option<&AllowedLabels>,
        confidence: bool,
        out: &mut Vec<Word>,
    ) -> Result<()> {
        let n = self.raw.len();
        let sc = &mut self.semi;
        scorer.scores_into(&semi.features(), &self.norm, l, &mut sc.words, &mut sc.segment_scores);
        let scored = self.tagger.potentials();
        match allowed {
            Some(a) => {
                let c = Constrained::new(scored, a).map_err(Error::NoSegmentation)?;
                sc.potentials.fill_from(&c, l, &sc.segment_scores, &mut sc.emissions);
            }
            None => {
                // The chain's own score arrays (what `fill_from` would copy).
                let mut t = [0.0; 16];
                scored.transitions_into(&mut t);
                let start: [f64; 4] = std::array::from_fn(|y| scored.start(y));
                let end: [f64; 4] = std::array::from_fn(|y| scored.end(y));
                let chain = ChainScores {
                    emissions: scored.emissions(),
                    transitions: &t,
                    start: &start,
                    end: &end,
                };
                sc.potentials.fill(chain, l, &sc.segment_scores);
            }
        }
        if sc
            .potentials
            .best_segmentation(&mut sc.fast, &mut sc.segments)
            .is_none()
        {
            let best = sc.best.viterbi(&sc.potentials).map_err(Error::NoSegmentation)?;
            sc.segments.clear();
            sc.segments
                .extend(best.segments.iter().map(|s| (s.start, s.len, s.label)));
        }
        if confidence {
            sc.marginals.clear();
            sc.marginals.resize(n * l * 2, 0.0);
            sc.sums
                .segment_marginals_into(&sc.potentials, &mut sc.marginals)
                .map_err(Error::NoSegmentation)?;
        }
        for &(start, len, _) in &sc.segments {
            let conf = confidence.then(|| {
                let at = (start * l + len - 1) * 2;
                (sc.marginals[at] + sc.marginals[at + 1]).min(1.0)
            });
            out.push(Word {
                span: self.offsets[start]..self.offsets[start + len],
                confidence: conf,
            });
        }
        Ok(())
    }

    /// The forward and backward passes of the chain, in the log semiring, over
    /// the observed run's potentials (within `allowed`); returns log Z.
    ///
    /// Afterwards the forward row at `t` (with its log-scale) sums the paths
    /// of positions `0..=t` ending in each label, start and emission at `t`
    /// included, and the backward row those of `t+1..n` given the label at `t`,
    /// end score included. With both, the probability of any word is one
    /// product along the word: O(n·k²) for the whole run, where computing a
    /// constrained partition function per word was O(n²) on long runs.
    fn forward_backward(&mut self, allowed: Option<&AllowedLabels>) -> chaincrf_core::Result<f64> {
        let scored = self.tagger.potentials();
        let total = match allowed.map(|a| Constrained::new(scored, a)) {
            Some(Ok(c)) => self.chain.forward_backward(&c),
            _ => self.chain.forward_backward(scored),
        }?;
        Ok(total.score())
    }

    /// The log of the summed weight of all paths that tag `span` with `tags`
    /// (after [`Session::forward_backward`]).
    fn word_log_score(&self, span: Range<usize>, tags: &[u32], allowed: Option<&AllowedLabels>) -> f64 {
        let p = self.tagger.potentials();
        if let Some(a) = allowed {
            if span.clone().zip(tags).any(|(t, &y)| !a.is_allowed(t, y as usize)) {
                return f64::NEG_INFINITY;
            }
        }
        let (first, last) = (span.start, span.end - 1);
        let (head, tail) = (tags[0] as usize, tags[tags.len() - 1] as usize);
        let mut score = self.chain.alpha(first)[head].0 + self.chain.alpha_log_scale(first);
        for (t, w) in (first + 1..=last).zip(tags.windows(2)) {
            let (a, b) = (w[0] as usize, w[1] as usize);
            score += p.transition_at(t, a, b) + p.emission(t, b);
        }
        score + self.chain.beta(last)[tail].0 + self.chain.beta_log_scale(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_forced_word_is_measured_word_by_word() {
        let scheme = TagScheme::Bmes;
        let chars: Vec<char> = "中华人民共和国国务院总理".chars().collect();
        let mut c = Constraints::free(scheme, chars.len());
        c.force_word(0..7);
        c.force_word(7..10);
        c.force_word(10..12);
        let k = scheme.num_tags();
        let sets: Vec<Option<Vec<usize>>> = c
            .as_slice()
            .iter()
            .map(|s| (!s.is_any()).then(|| s.iter(k).map(|y| y as usize).collect()))
            .collect();
        let allowed = AllowedLabels::from_sets(&sets, k).unwrap();
        assert_eq!(longest_forced_run(&allowed, chars.len()), 7);
        let free = AllowedLabels::all(chars.len(), k);
        assert_eq!(longest_forced_run(&free, chars.len()), 0);
    }
}
