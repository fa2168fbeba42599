//! The [`FeatureExtractor`] trait: what users implement to plug their own inputs in.
//!
//! The extractor is a *push* interface: for position `t` it calls a sink once per
//! attribute. Nothing is collected into a `Vec` by the trait itself, so an
//! extractor that emits hashed keys does no allocation per position.

/// Whether an attribute pairs with labels (state feature) or with label pairs
/// (edge feature: an attribute-conditioned transition, like a CRF++ `B` template
/// with a macro).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttrKind {
    /// Weight per (attribute, label `y_t`).
    State,
    /// Weight per (attribute, label pair `y_{t-1}, y_t`); never fires at `t = 0`.
    Edge,
}

/// The identity of an attribute: a name, or a key the extractor hashed itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrKey<'a> {
    /// A human-readable name, e.g. `U01:the` or `w[-1]=of`.
    Name(&'a str),
    /// A pre-hashed key (see [`crate::hash_name`] for the function names are hashed with).
    Hashed(u64),
}

impl AttrKey<'_> {
    /// The stable 64-bit key of this attribute (names are hashed with [`crate::hash_name`]).
    #[inline]
    pub fn key(&self) -> u64 {
        match *self {
            AttrKey::Name(name) => crate::hash_name(name),
            AttrKey::Hashed(h) => h,
        }
    }
}

/// One attribute firing at a position.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Attr<'a> {
    /// State or edge feature.
    pub kind: AttrKind,
    /// Name or hashed key.
    pub key: AttrKey<'a>,
    /// Real value of the attribute (1.0 for a plain indicator).
    pub value: f64,
}

impl<'a> Attr<'a> {
    /// A state indicator attribute with value 1.
    pub fn state(name: &'a str) -> Self {
        Attr {
            kind: AttrKind::State,
            key: AttrKey::Name(name),
            value: 1.0,
        }
    }
    /// A state attribute from a pre-hashed key with value 1.
    pub fn state_hashed(key: u64) -> Self {
        Attr {
            kind: AttrKind::State,
            key: AttrKey::Hashed(key),
            value: 1.0,
        }
    }
    /// An edge indicator attribute with value 1.
    pub fn edge(name: &'a str) -> Self {
        Attr {
            kind: AttrKind::Edge,
            key: AttrKey::Name(name),
            value: 1.0,
        }
    }
    /// The same attribute with a real value.
    pub fn with_value(mut self, value: f64) -> Self {
        self.value = value;
        self
    }
}

/// Produces the attributes of each position of an input sequence.
///
/// Implement this for your own input type; every training and tagging path of
/// chaincrf takes any `FeatureExtractor`. An implementation must be deterministic:
/// the same input and position always give the same attributes in the same order.
pub trait FeatureExtractor: Send + Sync {
    /// One sequence of input (e.g. a slice of token rows, or a slice of `char`s).
    type Input: ?Sized;

    /// Number of positions in `input`.
    fn len(&self, input: &Self::Input) -> usize;

    /// Calls `sink` once for each attribute that fires at position `t < len(input)`.
    fn extract(&self, input: &Self::Input, t: usize, sink: &mut dyn FnMut(Attr<'_>));

    /// Calls `sink(t, attr)` for every attribute of every position, positions
    /// in increasing order: exactly what [`FeatureExtractor::extract`] gives
    /// for `t = 0, 1, …`. Training and tagging call this one. The default
    /// calls `extract` per position; override it when positions can share work
    /// (the segmenter's dictionary matches span several characters at once).
    fn extract_all(&self, input: &Self::Input, sink: &mut dyn FnMut(usize, Attr<'_>)) {
        for t in 0..self.len(input) {
            self.extract(input, t, &mut |attr| sink(t, attr));
        }
    }
}
