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
    /// A feature configuration that cannot be used.
    #[error("invalid configuration: {0}")]
    Config(String),
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
