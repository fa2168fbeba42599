//! The core crate's error type. The dynamic program itself cannot fail; only
//! bad input does (shapes, invalid scores, a chain with no allowed path).

/// Errors from the core crate.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Every path is forbidden (−∞). `position` is the first position no allowed
    /// path reaches, when known.
    #[error("no allowed path{}", match .position { Some(t) => format!(": no allowed label sequence reaches position {t}"), None => String::new() })]
    NoFeasiblePath {
        /// First unreachable position, if known.
        position: Option<usize>,
    },
    /// Every score is finite or −∞, but sums of them leave the range of
    /// `f64` (magnitudes near 1.8·10³⁰⁸), so no answer can be represented.
    /// `position` is where the sums first overflowed, when known.
    #[error("scores too large: sums of the finite scores overflow f64{}; scale the scores down", match .position { Some(t) => format!(" (at position {t})"), None => String::new() })]
    Overflow {
        /// Position where a sum first overflowed, if known.
        position: Option<usize>,
    },
    /// A segmentation does not fit its input (a gap, an overlap, a segment
    /// longer than allowed, a label out of range).
    #[error("invalid segmentation: {reason}")]
    InvalidSegmentation {
        /// What is wrong, naming the segment.
        reason: String,
    },
    /// A shape does not fit.
    #[error("{what}: expected {expected}, got {got}")]
    ShapeMismatch {
        /// What has the wrong shape.
        what: &'static str,
        /// The expected shape.
        expected: String,
        /// The shape found.
        got: String,
    },
    /// A score is NaN or +∞ (only finite scores and −∞ are allowed).
    #[error("invalid {what} score {value}{} at index {index}", match .position { Some(t) => format!(" at position {t}"), None => String::new() })]
    InvalidScore {
        /// Emission, transition, start or end.
        what: &'static str,
        /// Position, for emissions.
        position: Option<usize>,
        /// Label (or `i·k + j` for transitions).
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// A label index is out of range.
    #[error("label {label} at position {position} is out of range (k = {num_labels})")]
    LabelOutOfRange {
        /// Position.
        position: usize,
        /// The label given.
        label: usize,
        /// Number of labels.
        num_labels: usize,
    },
    /// A request would need more memory than the library allows itself.
    #[error("{what}: needs {needed} entries, above the limit of {limit}")]
    TooLarge {
        /// What was asked for.
        what: &'static str,
        /// Entries it would need.
        needed: usize,
        /// The most allowed.
        limit: usize,
    },
    /// An error in one sequence of a batch; positions inside `source` are the
    /// sequence's own time steps (padded positions for a padded batch).
    #[error("sequence {index}: {source}")]
    InSequence {
        /// Index of the sequence in the batch.
        index: usize,
        /// What went wrong there.
        source: Box<Error>,
    },
    /// A reduction name that is not one of `none`, `sum`, `mean`, `token_mean`.
    #[error("unknown reduction {0:?}: expected one of \"none\", \"sum\", \"mean\", \"token_mean\"")]
    UnknownReduction(String),
}

impl Error {
    pub(crate) fn shape(what: &'static str, expected: String, got: String) -> Self {
        Error::ShapeMismatch { what, expected, got }
    }
    pub(crate) fn invalid(what: &'static str, position: Option<usize>, index: usize, value: f64) -> Self {
        Error::InvalidScore {
            what,
            position,
            index,
            value,
        }
    }
}

/// Result with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
