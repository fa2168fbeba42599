//! Tag schemes: how a segmentation becomes one label per character and back.
//!
//! Word segmentation is cast as sequence labelling: each character gets a tag
//! saying where it sits in its word. Two schemes are offered:
//!
//! * [`TagScheme::Bmes`]: `B` (begin), `M` (middle), `E` (end), `S` (single).
//! * [`TagScheme::SixTag`]: `B`, `B2`, `B3`, `M`, `E`, `S` (Zhao et al., 2006),
//!   which tells the second and third characters of a word apart from later
//!   ones: a word of 1 char is `S`; 2 → `B E`; 3 → `B B2 E`; 4 → `B B2 B3 E`;
//!   5 or more → `B B2 B3 M … M E`. Zhao et al. report it beats BMES on the
//!   Bakeoff corpora because it lets the model learn position-specific weights.
//!
//! Tag ids are indices into [`TagScheme::labels`]. Decoding must never fail, so
//! [`TagScheme::words_from_tags`] accepts *any* tag sequence, including illegal
//! ones (a boundary is placed wherever a tag begins a word or the previous tag
//! ends one). The transition rules ([`TagScheme::allowed_transition`] and friends)
//! let a decoder rule illegal sequences out in the first place.
//!
//! [`TagSet`] is a small bitmask of tag ids; hard constraints
//! ([`crate::constraints`]) are one `TagSet` per character.

use serde::{Deserialize, Serialize};
use std::ops::Range;

/// A labelling scheme for word segmentation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TagScheme {
    /// Begin / Middle / End / Single.
    #[default]
    Bmes,
    /// Begin / Begin2 / Begin3 / Middle / End / Single (Zhao et al., 2006).
    SixTag,
}

const BMES_LABELS: [&str; 4] = ["B", "M", "E", "S"];
const SIX_LABELS: [&str; 6] = ["B", "B2", "B3", "M", "E", "S"];

// BMES ids.
const BM_B: u32 = 0;
const BM_M: u32 = 1;
const BM_E: u32 = 2;
const BM_S: u32 = 3;
// Six-tag ids.
const SX_B: u32 = 0;
const SX_B2: u32 = 1;
const SX_B3: u32 = 2;
const SX_M: u32 = 3;
const SX_E: u32 = 4;
const SX_S: u32 = 5;

/// What a constraint requires of a word boundary at one side of a character.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Boundary {
    /// No requirement.
    Free,
    /// A word boundary must be there.
    Required,
    /// A word boundary must not be there.
    Forbidden,
}

impl TagScheme {
    /// The tag labels in id order.
    pub fn labels(self) -> &'static [&'static str] {
        match self {
            TagScheme::Bmes => &BMES_LABELS,
            TagScheme::SixTag => &SIX_LABELS,
        }
    }

    /// Number of tags.
    pub fn num_tags(self) -> usize {
        self.labels().len()
    }

    /// The id of a label, if this scheme has it.
    pub fn tag_id(self, label: &str) -> Option<u32> {
        self.labels().iter().position(|&l| l == label).map(|i| i as u32)
    }

    /// The scheme's name as used on the command line and in model files.
    pub fn name(self) -> &'static str {
        match self {
            TagScheme::Bmes => "bmes",
            TagScheme::SixTag => "6tag",
        }
    }

    /// Parses a scheme name (`bmes` or `6tag`, also `sixtag`; case-insensitive).
    pub fn from_name(name: &str) -> Option<TagScheme> {
        match name.to_ascii_lowercase().as_str() {
            "bmes" => Some(TagScheme::Bmes),
            "6tag" | "sixtag" | "six" | "6" => Some(TagScheme::SixTag),
            _ => None,
        }
    }

    /// The tag of the single-character word.
    pub fn single(self) -> u32 {
        match self {
            TagScheme::Bmes => BM_S,
            TagScheme::SixTag => SX_S,
        }
    }

    /// The tag of the first character of a longer word.
    pub fn begin(self) -> u32 {
        match self {
            TagScheme::Bmes => BM_B,
            TagScheme::SixTag => SX_B,
        }
    }

    /// The tag of the last character of a longer word.
    pub fn end(self) -> u32 {
        match self {
            TagScheme::Bmes => BM_E,
            TagScheme::SixTag => SX_E,
        }
    }

    /// Pushes the tags of a word of `len` characters onto `out` (nothing for 0).
    pub fn word_tags(self, len: usize, out: &mut Vec<u32>) {
        match len {
            0 => {}
            1 => out.push(self.single()),
            _ => {
                out.push(self.begin());
                for i in 1..len - 1 {
                    out.push(match self {
                        TagScheme::Bmes => BM_M,
                        TagScheme::SixTag => match i {
                            1 => SX_B2,
                            2 => SX_B3,
                            _ => SX_M,
                        },
                    });
                }
                out.push(self.end());
            }
        }
    }

    /// The exact tags of a word that must come out whole (same as [`Self::word_tags`]).
    pub fn forced_word_tags(self, len: usize) -> Vec<u32> {
        let mut out = Vec::with_capacity(len);
        self.word_tags(len, &mut out);
        out
    }

    /// The tags of a segmented sentence, one per character.
    pub fn tags_from_words<S: AsRef<str>>(self, words: &[S]) -> Vec<u32> {
        let mut out = Vec::new();
        for w in words {
            self.word_tags(w.as_ref().chars().count(), &mut out);
        }
        out
    }

    /// Whether `tag` places a word boundary before its character. Unknown ids
    /// count as single-character words.
    pub fn starts_word(self, tag: u32) -> bool {
        match self {
            TagScheme::Bmes => !matches!(tag, BM_M | BM_E),
            TagScheme::SixTag => !matches!(tag, SX_B2 | SX_B3 | SX_M | SX_E),
        }
    }

    /// Whether `tag` places a word boundary after its character. Unknown ids
    /// count as single-character words.
    pub fn ends_word(self, tag: u32) -> bool {
        match self {
            TagScheme::Bmes => !matches!(tag, BM_B | BM_M),
            TagScheme::SixTag => !matches!(tag, SX_B | SX_B2 | SX_B3 | SX_M),
        }
    }

    /// The character ranges of the words of `n` characters tagged `tags`.
    ///
    /// Works for any sequence: a boundary goes wherever a tag starts a word or the
    /// previous one ends one. Missing tags (when `tags.len() < n`) count as `S`;
    /// extra tags are ignored.
    pub fn word_spans(self, tags: &[u32], n: usize) -> Vec<Range<usize>> {
        let mut spans = Vec::new();
        self.word_spans_into(tags, n, &mut spans);
        spans
    }

    /// [`TagScheme::word_spans`] into `spans` (cleared first), reusing its memory.
    pub fn word_spans_into(self, tags: &[u32], n: usize, spans: &mut Vec<Range<usize>>) {
        let tag = |i: usize| tags.get(i).copied().unwrap_or(self.single());
        spans.clear();
        let mut start = 0;
        for i in 1..n {
            if self.ends_word(tag(i - 1)) || self.starts_word(tag(i)) {
                spans.push(start..i);
                start = i;
            }
        }
        if n > 0 {
            spans.push(start..n);
        }
    }

    /// The words of `chars` tagged `tags` (any tag sequence; see [`Self::word_spans`]).
    pub fn words_from_tags(self, chars: &[char], tags: &[u32]) -> Vec<String> {
        self.word_spans(tags, chars.len())
            .into_iter()
            .map(|r| chars[r].iter().collect())
            .collect()
    }

    /// Whether tag `j` may follow tag `i`. Unknown ids are never allowed.
    pub fn allowed_transition(self, i: u32, j: u32) -> bool {
        match self {
            TagScheme::Bmes => match i {
                BM_B | BM_M => matches!(j, BM_M | BM_E),
                BM_E | BM_S => matches!(j, BM_B | BM_S),
                _ => false,
            },
            TagScheme::SixTag => match i {
                SX_B => matches!(j, SX_B2 | SX_E),
                SX_B2 => matches!(j, SX_B3 | SX_E),
                SX_B3 | SX_M => matches!(j, SX_M | SX_E),
                SX_E | SX_S => matches!(j, SX_B | SX_S),
                _ => false,
            },
        }
    }

    /// Whether a sentence may start with tag `y` (only `B` and `S`).
    pub fn allowed_start(self, y: u32) -> bool {
        y == self.begin() || y == self.single()
    }

    /// Whether a sentence may end with tag `y` (only `E` and `S`).
    pub fn allowed_end(self, y: u32) -> bool {
        y == self.end() || y == self.single()
    }

    /// Whether a whole tag sequence is legal (start, transitions and end).
    pub fn is_valid(self, tags: &[u32]) -> bool {
        match (tags.first(), tags.last()) {
            (Some(&first), Some(&last)) => {
                self.allowed_start(first)
                    && self.allowed_end(last)
                    && tags.windows(2).all(|w| self.allowed_transition(w[0], w[1]))
            }
            _ => true,
        }
    }

    /// All tags of this scheme.
    pub fn all_tags(self) -> TagSet {
        TagSet::from_tags(0..self.num_tags() as u32)
    }

    /// The tags a character may take given what is required of the word boundary
    /// before it (`before`) and after it (`after`). For example "this character
    /// must begin a word" is `boundary_tags(Required, Free)` (`{B, S}` in BMES),
    /// and "no boundary inside" for an inner character is
    /// `boundary_tags(Forbidden, Forbidden)` (`{M}` in BMES).
    pub fn boundary_tags(self, before: Boundary, after: Boundary) -> TagSet {
        let ok = |want: Boundary, has: bool| match want {
            Boundary::Free => true,
            Boundary::Required => has,
            Boundary::Forbidden => !has,
        };
        TagSet::from_tags(
            (0..self.num_tags() as u32).filter(|&y| ok(before, self.starts_word(y)) && ok(after, self.ends_word(y))),
        )
    }
}

/// A set of tag ids `< 32` as a bitmask. [`TagSet::ANY`] (all bits set) means
/// "unconstrained" whatever the scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TagSet(pub u32);

impl TagSet {
    /// Every tag: no constraint.
    pub const ANY: TagSet = TagSet(u32::MAX);
    /// No tag at all (an infeasible constraint).
    pub const EMPTY: TagSet = TagSet(0);

    /// The set holding only `tag`.
    pub fn single(tag: u32) -> TagSet {
        TagSet(1u32.checked_shl(tag).unwrap_or(0))
    }

    /// The set of the given tags (ids ≥ 32 are ignored).
    pub fn from_tags(tags: impl IntoIterator<Item = u32>) -> TagSet {
        TagSet(tags.into_iter().fold(0, |m, t| m | TagSet::single(t).0))
    }

    /// Whether `tag` is in the set.
    #[inline]
    pub fn contains(self, tag: u32) -> bool {
        tag < 32 && self.0 >> tag & 1 == 1
    }

    /// The tags in both sets.
    pub fn intersect(self, other: TagSet) -> TagSet {
        TagSet(self.0 & other.0)
    }

    /// The tags in either set.
    pub fn union(self, other: TagSet) -> TagSet {
        TagSet(self.0 | other.0)
    }

    /// Whether this is [`TagSet::ANY`].
    pub fn is_any(self) -> bool {
        self == TagSet::ANY
    }

    /// Whether no tag is allowed.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The tags `< k` in the set, ascending.
    pub fn iter(self, k: usize) -> impl Iterator<Item = u32> {
        (0..k.min(32) as u32).filter(move |&t| self.contains(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SCHEMES: [TagScheme; 2] = [TagScheme::Bmes, TagScheme::SixTag];

    fn labels(s: TagScheme, tags: &[u32]) -> Vec<&'static str> {
        tags.iter().map(|&t| s.labels()[t as usize]).collect()
    }

    #[test]
    fn word_tags_by_length() {
        let s = TagScheme::SixTag;
        assert_eq!(labels(s, &s.forced_word_tags(1)), ["S"]);
        assert_eq!(labels(s, &s.forced_word_tags(2)), ["B", "E"]);
        assert_eq!(labels(s, &s.forced_word_tags(3)), ["B", "B2", "E"]);
        assert_eq!(labels(s, &s.forced_word_tags(4)), ["B", "B2", "B3", "E"]);
        assert_eq!(labels(s, &s.forced_word_tags(6)), ["B", "B2", "B3", "M", "M", "E"]);
        let b = TagScheme::Bmes;
        assert_eq!(labels(b, &b.forced_word_tags(4)), ["B", "M", "M", "E"]);
        assert!(b.forced_word_tags(0).is_empty());
    }

    #[test]
    fn transitions() {
        let b = TagScheme::Bmes;
        let id = |l| b.tag_id(l).unwrap();
        assert!(!b.allowed_transition(id("B"), id("S")));
        assert!(!b.allowed_transition(id("B"), id("B")));
        assert!(b.allowed_transition(id("B"), id("E")));
        assert!(b.allowed_transition(id("S"), id("B")));
        assert!(!b.allowed_transition(id("E"), id("M")));
        assert!(!b.allowed_transition(9, id("B")));
        assert!(b.allowed_start(id("B")) && b.allowed_start(id("S")));
        assert!(!b.allowed_start(id("M")) && !b.allowed_start(id("E")));
        assert!(b.allowed_end(id("E")) && b.allowed_end(id("S")));
        assert!(!b.allowed_end(id("B")) && !b.allowed_end(id("M")));
        let s = TagScheme::SixTag;
        let id = |l| s.tag_id(l).unwrap();
        assert!(!s.allowed_transition(id("B"), id("M")));
        assert!(!s.allowed_transition(id("B2"), id("M")));
        assert!(s.allowed_transition(id("B3"), id("M")));
        assert!(s.allowed_transition(id("B3"), id("E")));
    }

    #[test]
    fn illegal_sequences_still_decode() {
        let chars: Vec<char> = "abcdef".chars().collect();
        let b = TagScheme::Bmes;
        // M M B B E S → boundaries before index 2, 3 and 5.
        let tags = [1, 1, 0, 0, 2, 3];
        assert_eq!(b.words_from_tags(&chars, &tags), ["ab", "c", "de", "f"]);
        // Unknown ids and missing tags count as S.
        assert_eq!(b.words_from_tags(&chars, &[0, 99]), ["a", "b", "c", "d", "e", "f"]);
        assert!(b.words_from_tags(&[], &[]).is_empty());
        assert_eq!(b.words_from_tags(&chars[..1], &[1, 1, 1]), ["a"]);
    }

    #[test]
    fn boundary_tag_sets() {
        let b = TagScheme::Bmes;
        let set = |names: &[&str]| TagSet::from_tags(names.iter().map(|l| b.tag_id(l).unwrap()));
        use Boundary::*;
        assert_eq!(b.boundary_tags(Required, Free), set(&["B", "S"]));
        assert_eq!(b.boundary_tags(Free, Required), set(&["E", "S"]));
        assert_eq!(b.boundary_tags(Forbidden, Forbidden), set(&["M"]));
        assert_eq!(b.boundary_tags(Required, Forbidden), set(&["B"]));
        assert_eq!(b.boundary_tags(Free, Free), b.all_tags());
        let s = TagScheme::SixTag;
        let ids = |names: &[&str]| TagSet::from_tags(names.iter().map(|l| s.tag_id(l).unwrap()));
        assert_eq!(s.boundary_tags(Forbidden, Forbidden), ids(&["B2", "B3", "M"]));
        assert_eq!(s.boundary_tags(Forbidden, Free), ids(&["B2", "B3", "M", "E"]));
        assert!(TagSet::ANY.contains(5) && !TagSet::EMPTY.contains(0));
        assert_eq!(TagSet::from_tags([1, 3]).iter(6).collect::<Vec<_>>(), [1, 3]);
        assert!(!TagSet::single(40).contains(40));
    }

    #[test]
    fn names_round_trip() {
        for s in SCHEMES {
            assert_eq!(TagScheme::from_name(s.name()), Some(s));
        }
        assert_eq!(TagScheme::from_name("nope"), None);
    }

    fn arb_words() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec("[a-e中国人民]{1,8}", 0..12)
    }

    proptest! {
        #[test]
        fn words_tags_words_round_trip(words in arb_words(), six in any::<bool>()) {
            let s = if six { TagScheme::SixTag } else { TagScheme::Bmes };
            let tags = s.tags_from_words(&words);
            let chars: Vec<char> = words.concat().chars().collect();
            prop_assert_eq!(tags.len(), chars.len());
            prop_assert!(s.is_valid(&tags));
            prop_assert_eq!(s.words_from_tags(&chars, &tags), words);
        }

        #[test]
        fn any_tags_decode_to_a_cover(tags in proptest::collection::vec(0u32..8, 0..30)) {
            for s in SCHEMES {
                let spans = s.word_spans(&tags, tags.len());
                let mut next = 0;
                for r in &spans {
                    prop_assert_eq!(r.start, next);
                    prop_assert!(r.end > r.start);
                    next = r.end;
                }
                prop_assert_eq!(next, tags.len());
            }
        }
    }
}
