//! The error type of this crate.
//!
//! What goes wrong here is either the segmentation crate's business (reading
//! corpora and model files, decoding), wrapped as [`Error::Cws`], or the
//! network's: a shape that does not fit ([`NetworkError`]), training options
//! out of range ([`OptionError`]), a checkpoint of another network
//! ([`CheckpointProblem`]), or candle failing. Each is a type, so callers
//! decide from variants, never from message text.

/// Errors from building, loading and training CNN segmenters.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error of the segmentation crate (I/O, model files, decoding,
    /// held-out scoring).
    #[error(transparent)]
    Cws(#[from] chaincrf_cws::Error),
    /// Training options that cannot be used.
    #[error("invalid CNN training options: {0}")]
    Options(OptionError),
    /// A network whose pieces do not fit together.
    #[error("bad CNN network: {0}")]
    Network(NetworkError),
    /// A network and CRF scores that do not fit the tag scheme.
    #[error("the network and CRF do not fit the tag scheme")]
    SchemeMismatch,
    /// The network cannot be stored in a model or checkpoint.
    #[error("the CNN network cannot be encoded")]
    Payload(#[source] chaincrf_model::PayloadError),
    /// Nothing to train on.
    #[error("no training sentences")]
    NoTrainingSentences,
    /// Resuming was asked for without a checkpoint file.
    #[error("resuming needs a checkpoint file")]
    ResumeWithoutCheckpoint,
    /// A checkpoint whose saved state does not fit this run's network.
    #[error("checkpoint: {0}")]
    Checkpoint(CheckpointProblem),
    /// candle failed while building or training the network.
    #[cfg(feature = "train")]
    #[error("CNN training failed in candle")]
    Candle(#[source] candle_core::Error),
    /// A thread panicked while holding the network's variables.
    #[cfg(feature = "train")]
    #[error("CNN training: the variable map is poisoned (a thread panicked)")]
    Poisoned,
}

/// A training option out of range ([`Error::Options`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OptionError {
    /// The network's shape cannot be built.
    #[error("{0}")]
    Shape(NetworkError),
    /// Zero epochs.
    #[error("at least one epoch is needed")]
    NoEpochs,
    /// A batch of zero sentences or zero characters.
    #[error("the batch size and the characters per batch must be at least 1")]
    EmptyBatch,
    /// A learning rate that is not a positive number.
    #[error("the learning rate must be positive")]
    LearningRate,
    /// Holding out every sentence (or no period at all).
    #[error("--dev-every must be at least 2")]
    DevEvery,
    /// A patience of 0 held-out checks.
    #[error("the patience must be at least 1")]
    ZeroPatience,
    /// Early stopping without held-out data.
    #[error("early stopping (patience) needs a held-out part (dev_every)")]
    PatienceWithoutHeldOut,
}

/// Which layer of the network ([`NetworkError`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// Convolution `n` (1-based).
    Convolution(usize),
    /// The dense layer to tag scores.
    Dense,
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Layer::Convolution(n) => write!(f, "convolution {n}"),
            Layer::Dense => f.write_str("dense layer"),
        }
    }
}

/// What does not fit in a network ([`Error::Network`], [`OptionError::Shape`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetworkError {
    /// An embedding width or filter count of 0.
    #[error("the embedding width and the number of filters must be at least 1")]
    ZeroWidth,
    /// An even kernel width (same padding needs an odd one).
    #[error("the kernel width must be odd (same padding), got {0}")]
    EvenKernel(usize),
    /// Sizes beyond the supported ones.
    #[error("network sizes out of range (embedding, filters ≤ 4096, layers ≤ 64, kernel ≤ 63)")]
    SizeOutOfRange,
    /// A network without tags.
    #[error("the network has no tags")]
    NoTags,
    /// An embedding table of the wrong size.
    #[error("the embedding table does not have the shape [{rows}, {width}]")]
    EmbeddingShape {
        /// Rows expected (vocabulary + the unknown character).
        rows: usize,
        /// The embedding width.
        width: usize,
    },
    /// A NaN or infinite embedding entry.
    #[error("an embedding is not finite")]
    NonFiniteEmbedding,
    /// Another number of convolutions than layers.
    #[error("{convs} convolutions for {layers} layers")]
    LayerCount {
        /// Convolutions present.
        convs: usize,
        /// Layers the shape says.
        layers: usize,
    },
    /// A layer's weights of the wrong shape.
    #[error("{layer}: weights do not have the shape [{inputs}, {outputs}]")]
    LayerShape {
        /// The layer.
        layer: Layer,
        /// Inputs expected.
        inputs: usize,
        /// Outputs expected.
        outputs: usize,
    },
    /// A NaN or infinite weight in a layer.
    #[error("{0}: a weight is not finite")]
    NonFiniteWeight(Layer),
    /// A character listed twice in the vocabulary.
    #[error("character {0:?} appears twice in the vocabulary")]
    DuplicateCharacter(char),
}

/// How a checkpoint does not fit this run's network ([`Error::Checkpoint`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointProblem {
    /// Another number of variables.
    #[error("wrong number of variables")]
    VariableCount,
    /// A variable of another size.
    #[error("a variable has the wrong size")]
    VariableSize,
    /// Another number of optimizer moments.
    #[error("wrong number of optimizer moments")]
    MomentCount,
    /// An optimizer moment of another size.
    #[error("an optimizer moment has the wrong size")]
    MomentSize,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The segmentation crate's [`chaincrf_cws::Error::Model`] for `message`
/// (model files that cannot be used, named in the message).
pub(crate) fn model_error(message: String) -> Error {
    Error::Cws(chaincrf_cws::Error::Model(message))
}
