//! The error type of this crate.
//!
//! Every error that comes from user data names where the problem is: the file
//! (or `<string>` for in-memory text) and the 1-based line, and for bad UTF-8 also
//! the byte offset in the file, so that a user can open the file at the right
//! spot. Nothing in this crate panics on malformed input; it returns one of these.

use std::fmt;

/// Errors from reading corpora, word lists and dictionaries, from scoring, and
/// from invalid feature configurations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file (or stream name) being read.
        path: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line is not valid UTF-8.
    #[error("{path}:{line}: invalid UTF-8 at byte offset {offset} of the file")]
    InvalidUtf8 {
        /// The file (or stream name) being read.
        path: String,
        /// 1-based line number.
        line: usize,
        /// 0-based byte offset of the first invalid byte, from the start of the file.
        offset: u64,
    },
    /// A line does not follow the expected format.
    #[error("{path}:{line}: {message}")]
    Format {
        /// The file (or stream name) being read.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
    /// Gold and predicted segmentations do not line up.
    #[error("line {line}: {message}")]
    Misaligned {
        /// 1-based line number (of the gold and the predicted text alike).
        line: usize,
        /// What differs.
        message: String,
    },
    /// Gold and predicted files do not line up.
    #[error("{gold}:{line} and {pred}:{line}: {message}")]
    MisalignedFiles {
        /// The gold file.
        gold: String,
        /// The predicted file.
        pred: String,
        /// 1-based line number (in both files).
        line: usize,
        /// What differs.
        message: String,
    },
    /// A feature configuration or training option that cannot be used.
    #[error("invalid configuration: {0}")]
    Config(ConfigError),
    /// The constraints (user dictionary, forced Latin and number runs) leave
    /// no segmentation of the input the model can decode.
    #[error("no valid segmentation")]
    NoSegmentation(#[source] chaincrf_core::Error),
    /// The constraints (user dictionary, forced Latin and number runs) give
    /// a position no label at all.
    #[error("the segmentation constraints leave a position without an allowed label")]
    InvalidConstraints(#[source] chaincrf_core::Error),
    /// The segmenter's configuration cannot be stored in a model.
    #[error("the segmenter configuration cannot be stored in the model")]
    Payload(#[source] chaincrf_model::PayloadError),
    /// The worker threads could not be started.
    #[cfg(feature = "train")]
    #[error("cannot start {threads} worker threads")]
    Threads {
        /// The count asked for.
        threads: usize,
        /// rayon's error.
        #[source]
        source: rayon::ThreadPoolBuildError,
    },
    /// Training failed (bad parameters, a sequence that cannot be trained on,
    /// a saved state of another run, the optimizer).
    #[error("training failed")]
    Train(#[from] chaincrf_train::TrainError),
    /// A training checkpoint written by a run over another corpus or with
    /// other feature options.
    #[error(
        "the checkpoint was written by a run over a different corpus or with different feature options; \
         start over without resuming"
    )]
    CheckpointMismatch,
    /// A model file that cannot be loaded or is not a segmentation model; the
    /// message names the file.
    #[error("{0}")]
    Model(String),
}

/// What is wrong with a feature configuration or training options
/// ([`Error::Config`]).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The n-gram window is larger than the extractor supports.
    #[error("window {window} is larger than the maximum {max}")]
    WindowTooLarge {
        /// The window asked for.
        window: usize,
        /// The largest window.
        max: usize,
    },
    /// An n-gram template that cannot be used.
    #[error("n-gram template {template}: {problem}")]
    InvalidTemplate {
        /// The template as written, e.g. `C-1C0` (empty for an empty template).
        template: String,
        /// What is wrong with it.
        problem: TemplateProblem,
    },
    /// Lexicon features with a length cap of 0.
    #[error("lexicon_cap must be at least 1")]
    ZeroLexiconCap,
    /// Lexicon features without a lexicon.
    #[error("lexicon_features is set but no lexicon was given")]
    MissingLexicon,
    /// More character clusters than a model may have.
    #[error("at most {max} character clusters, not {got}")]
    TooManyClusters {
        /// The number asked for.
        got: usize,
        /// The largest number.
        max: usize,
    },
    /// A prune threshold that is negative or not a number.
    #[error("the prune threshold must be a finite number ≥ 0, not {0}")]
    PruneThreshold(f32),
    /// Nothing left to train on (empty corpus, or everything held out).
    #[error("no training sentences")]
    NoTrainingSentences,
    /// The semi-Markov segmenter with another scheme than B/M/E/S.
    #[error("the semi-Markov segmenter uses the B/M/E/S scheme")]
    SemiMarkovScheme,
    /// A maximum word length out of range.
    #[error("the maximum word length must be between 1 and {max}, not {got}")]
    MaxWordLength {
        /// The length asked for.
        got: usize,
        /// The largest length.
        max: usize,
    },
    /// A semi-Markov stage of 0 iterations.
    #[error("the semi-Markov stage needs at least 1 iteration")]
    NoSemiMarkovIterations,
    /// The character model under a semi-Markov model is not a B/M/E/S
    /// state-feature model.
    #[error("the character model is not a B/M/E/S state-feature model")]
    CharacterModel,
    /// A semi-Markov checkpoint whose character weights do not fit this run's
    /// character model.
    #[error("the semi-Markov checkpoint holds {got} character weights where this run has {expected}")]
    SemiMarkovCheckpoint {
        /// The character weights this run has.
        expected: usize,
        /// The character weights the checkpoint holds.
        got: usize,
    },
    /// More word-feature occurrences than the training data's index holds.
    #[error("the corpus has more than 2^32 word-feature occurrences: use a shorter --max-word-len")]
    TooManyWordFeatures,
}

/// What is wrong with an n-gram template ([`ConfigError::InvalidTemplate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateProblem {
    /// The template has no offsets.
    #[error("the template is empty")]
    Empty,
    /// An offset reaches outside the window.
    #[error("offset {offset} is outside the window {window}")]
    OffsetOutsideWindow {
        /// The offset outside.
        offset: i32,
        /// The window.
        window: usize,
    },
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}

impl Error {
    pub(crate) fn format(path: &str, line: usize, message: impl fmt::Display) -> Self {
        Error::Format {
            path: path.to_owned(),
            line,
            message: message.to_string(),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
