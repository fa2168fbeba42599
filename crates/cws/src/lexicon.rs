//! The training word list and the dictionary-match features built on it.
//!
//! In the closed track of the Bakeoff the only dictionary allowed is the word
//! list of the training corpus. A [`Lexicon`] holds those words with their
//! counts and answers, for each character of a sentence: how long is the longest
//! lexicon word that *starts* here, that *ends* here, and that *covers* this
//! character (and where the character sits in it). These lengths are strong
//! cues for words the n-gram features have not seen in this exact context.
//!
//! Caveat for training: on its own training corpus every gold word is in the
//! lexicon, so the model learns to trust these features more than it should on
//! new text. Pruning rare words ([`Lexicon::retain_min_count`]) or building the
//! lexicon from other folds of the corpus than the one being featurized softens
//! this.
//!
//! Matching uses a character trie (one [`KeyIndex`] keyed by `(node, char)`), over
//! the *normalized* form of each word (see [`crate::normalize`](mod@crate::normalize)) because the
//! extractor sees normalized text. Only words of at most [`Lexicon::max_len`]
//! characters go into the trie; that bounds the work per character at
//! `max_len` short walks. The lexicon serializes as its word list (sorted, so the
//! bytes are deterministic) and rebuilds the trie when deserialized.

use crate::normalize::normalize_char;
use chaincrf_features::mix64;
use chaincrf_features::KeyIndex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A trie over characters: node ids are dense, node 0 is the root, and all
/// edges live in one hash map keyed by a mix of `(node, char)`.
///
/// Every walk starts with a child of the root, so those are also kept in a
/// table indexed by character for the Basic Multilingual Plane (256 KiB,
/// allocated with the first such child): a matcher's first step is one load
/// instead of a hashed probe of a table larger than the cache.
#[derive(Clone, Debug, Default)]
pub(crate) struct CharTrie {
    /// Word length (in chars) ending at each node, 0 when no word ends there.
    terminal: Vec<u32>,
    edges: KeyIndex,
    /// `root[c]`: the root's child along `c` ([`NO_NODE`] when none), for
    /// `c < BMP_END`; empty until the first such child exists.
    root: Vec<u32>,
}

/// No node (in [`CharTrie`]'s root table).
const NO_NODE: u32 = u32::MAX;

/// The end of the Basic Multilingual Plane.
const BMP_END: usize = 0x1_0000;

impl CharTrie {
    pub(crate) fn new() -> Self {
        CharTrie {
            terminal: vec![0],
            edges: KeyIndex::new(),
            root: Vec::new(),
        }
    }

    #[inline]
    fn edge_key(node: u32, c: char) -> u64 {
        // A bijective mix of a 53-bit value: distinct (node, char) never collide.
        mix64(u64::from(node) << 21 | u64::from(c as u32))
    }

    /// Makes room for `edges` more edges.
    pub(crate) fn reserve(&mut self, edges: usize) {
        self.edges.reserve(edges);
        self.terminal.reserve(edges);
    }

    /// The child of `node` along `c`.
    #[inline]
    pub(crate) fn child(&self, node: u32, c: char) -> Option<u32> {
        self.edges.get(Self::edge_key(node, c))
    }

    /// The child of the root along `c`.
    #[inline]
    pub(crate) fn root_child(&self, c: char) -> Option<u32> {
        match self.root.get(c as usize) {
            Some(&node) => (node != NO_NODE).then_some(node),
            None => self.child(0, c),
        }
    }

    /// Asks the CPU to load the slot of the edge from `node` along `c`.
    #[inline]
    pub(crate) fn prefetch(&self, node: u32, c: char) {
        self.edges.prefetch(Self::edge_key(node, c));
    }

    /// Whether a word ends at `node`.
    #[inline]
    pub(crate) fn is_word(&self, node: u32) -> bool {
        self.terminal[node as usize] != 0
    }

    /// Calls `found(start, len, node)` for every occurrence in `chars` of a
    /// word of at most `max_len` characters, in order of length, then of
    /// start; `node` is the word's node. `walks` is scratch space.
    ///
    /// The walks from all start positions advance in lockstep, one character
    /// per round, and each round asks for the trie slots of walks a few places
    /// ahead before it needs them: a trie of a whole corpus's words is larger
    /// than the cache, and this way its misses overlap instead of coming one
    /// after the other.
    #[inline]
    pub(crate) fn for_each_word(
        &self,
        chars: &[char],
        max_len: usize,
        walks: &mut Vec<(usize, u32)>,
        mut found: impl FnMut(usize, usize, u32),
    ) {
        const AHEAD: usize = 8;
        let n = chars.len();
        walks.clear();
        if max_len == 0 {
            return;
        }
        // Length 1: the root's children, from its table (no probing).
        for (s, &c) in chars.iter().enumerate() {
            let Some(node) = self.root_child(c) else {
                continue;
            };
            walks.push((s, node));
            if self.is_word(node) {
                found(s, 1, node);
            }
        }
        for len in 2..=max_len {
            if walks.is_empty() {
                break;
            }
            // Walks are in increasing start order; those that would read past
            // the end are at the back.
            let live = walks.partition_point(|&(s, _)| s + len <= n);
            let mut kept = 0;
            for i in 0..live {
                if let Some(&(s, node)) = walks[..live].get(i + AHEAD) {
                    self.prefetch(node, chars[s + len - 1]);
                }
                let (s, node) = walks[i];
                let Some(next) = self.child(node, chars[s + len - 1]) else {
                    continue;
                };
                walks[kept] = (s, next);
                kept += 1;
                if self.is_word(next) {
                    found(s, len, next);
                }
            }
            walks.truncate(kept);
        }
    }

    /// Inserts a word given as characters; returns its node (the root for
    /// an empty word, which is never marked as a word) and whether it was new.
    pub(crate) fn insert_node(&mut self, chars: impl IntoIterator<Item = char>) -> (u32, bool) {
        let mut node = 0u32;
        let mut len = 0u32;
        for c in chars {
            let next = self.terminal.len() as u32;
            let parent = node;
            node = self.edges.insert(Self::edge_key(parent, c), next);
            if node == next {
                self.terminal.push(0);
                if parent == 0 && (c as usize) < BMP_END {
                    if self.root.is_empty() {
                        self.root = vec![NO_NODE; BMP_END];
                    }
                    self.root[c as usize] = node;
                }
            }
            len += 1;
        }
        let new = len > 0 && self.terminal[node as usize] == 0;
        if len > 0 {
            self.terminal[node as usize] = len;
        }
        (node, new)
    }

    /// Inserts a word given as characters (empty words are ignored); returns
    /// whether it was new.
    pub(crate) fn insert(&mut self, chars: impl IntoIterator<Item = char>) -> bool {
        self.insert_node(chars).1
    }

    /// The length of the longest word that is a prefix of `chars[start..]` and at
    /// most `max` characters long (0 when none).
    pub(crate) fn longest_at(&self, chars: &[char], start: usize, max: usize) -> usize {
        let mut node = 0u32;
        let mut best = 0;
        for (i, &c) in chars[start..].iter().take(max).enumerate() {
            match self.child(node, c) {
                Some(n) => node = n,
                None => break,
            }
            if self.is_word(node) {
                best = i + 1;
            }
        }
        best
    }
}

/// What the lexicon says about one character position.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LexMatch {
    /// Length of the longest lexicon word starting at this character (0: none).
    pub start_len: usize,
    /// Length of the longest lexicon word ending at this character (0: none).
    pub end_len: usize,
    /// Length of the longest lexicon word covering this character (0: none;
    /// the leftmost such word when several tie).
    pub in_len: usize,
    /// The character's offset inside that covering word.
    pub in_offset: usize,
}

impl LexMatch {
    /// Position of the character in the covering word: 0 = begin, 1 = middle,
    /// 2 = end, 3 = single-character word, 4 = no covering word.
    pub fn in_position(&self) -> u8 {
        match (self.in_len, self.in_offset) {
            (0, _) => 4,
            (1, _) => 3,
            (_, 0) => 0,
            (len, off) if off + 1 == len => 2,
            _ => 1,
        }
    }
}

/// Words of a training corpus with their counts, and a matcher over them.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(from = "LexiconData", into = "LexiconData")]
pub struct Lexicon {
    counts: HashMap<String, u32>,
    max_len: usize,
    trie: CharTrie,
}

/// The serialized form of a [`Lexicon`].
#[derive(Serialize, Deserialize)]
struct LexiconData {
    max_len: usize,
    words: Vec<(String, u32)>,
}

impl From<LexiconData> for Lexicon {
    fn from(data: LexiconData) -> Self {
        let mut lex = Lexicon::new(data.max_len);
        lex.counts.reserve(data.words.len());
        let chars: usize = data.words.iter().map(|(w, _)| w.chars().count().min(lex.max_len)).sum();
        lex.trie.reserve(chars);
        for (w, c) in data.words {
            lex.add_owned(w, c);
        }
        lex
    }
}

impl From<Lexicon> for LexiconData {
    fn from(lex: Lexicon) -> Self {
        let mut words: Vec<(String, u32)> = lex.counts.into_iter().collect();
        words.sort_unstable();
        LexiconData {
            max_len: lex.max_len,
            words,
        }
    }
}

impl Default for Lexicon {
    fn default() -> Self {
        Lexicon::new(Lexicon::DEFAULT_MAX_LEN)
    }
}

impl Lexicon {
    /// The default longest word (in characters) used for matching.
    pub const DEFAULT_MAX_LEN: usize = 6;

    /// The largest `max_len` accepted: matching costs `max_len²` steps per
    /// character, and no word is longer than this. A model file claiming more
    /// (a corrupted or forged one) is clamped instead of making segmentation
    /// quadratic in the length of the text.
    pub const MAX_MAX_LEN: usize = 64;

    /// An empty lexicon that matches words of up to `max_len` characters (at
    /// least 1, at most [`Lexicon::MAX_MAX_LEN`]).
    pub fn new(max_len: usize) -> Self {
        Lexicon {
            counts: HashMap::new(),
            max_len: max_len.clamp(1, Self::MAX_MAX_LEN),
            trie: CharTrie::new(),
        }
    }

    /// The words of segmented sentences, counted (matching up to
    /// [`Lexicon::DEFAULT_MAX_LEN`] characters).
    pub fn from_sentences<S: AsRef<str>>(sentences: &[Vec<S>]) -> Self {
        let mut lex = Lexicon::default();
        for s in sentences {
            for w in s {
                lex.add(w.as_ref(), 1);
            }
        }
        lex
    }

    /// Adds `count` occurrences of `word` (empty words and zero counts are ignored).
    pub fn add(&mut self, word: &str, count: u32) {
        if word.is_empty() || count == 0 {
            return;
        }
        match self.counts.get_mut(word) {
            Some(c) => *c = c.saturating_add(count),
            None => {
                self.counts.insert(word.to_owned(), count);
                if word.chars().count() <= self.max_len {
                    self.trie.insert(word.chars().map(normalize_char));
                }
            }
        }
    }

    /// [`Lexicon::add`] of an owned word: one hash lookup, and the word is
    /// kept rather than copied (how a model's lexicon is read back).
    fn add_owned(&mut self, word: String, count: u32) {
        if word.is_empty() || count == 0 {
            return;
        }
        let max_len = self.max_len;
        match self.counts.entry(word) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let c = e.get_mut();
                *c = c.saturating_add(count);
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                let word = e.key();
                if word.chars().count() <= max_len {
                    self.trie.insert(word.chars().map(normalize_char));
                }
                e.insert(count);
            }
        }
    }

    /// Drops the words seen fewer than `min_count` times.
    pub fn retain_min_count(&mut self, min_count: u32) {
        if min_count <= 1 {
            return; // every word has a count of at least 1
        }
        self.counts.retain(|_, c| *c >= min_count);
        self.trie = CharTrie::new();
        for w in self.counts.keys() {
            if w.chars().count() <= self.max_len {
                self.trie.insert(w.chars().map(normalize_char));
            }
        }
    }

    /// How often `word` occurred (0 when never).
    pub fn count(&self, word: &str) -> u32 {
        self.counts.get(word).copied().unwrap_or(0)
    }

    /// Whether `word` is in the lexicon (exactly as written).
    pub fn contains(&self, word: &str) -> bool {
        self.counts.contains_key(word)
    }

    /// Number of distinct words.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether the lexicon has no words.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The longest word length (in characters) considered when matching.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The words and their counts, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> {
        self.counts.iter().map(|(w, &c)| (w.as_str(), c))
    }

    /// The matches at every position of `chars` (normalized characters), the
    /// same as [`Lexicon::matches_at`] for each, in one pass: one trie walk of
    /// at most `max_len` steps per start position instead of `max_len` walks
    /// per position.
    pub fn matches_all(&self, chars: &[char]) -> Vec<LexMatch> {
        let mut out = Vec::new();
        self.matches_all_into(chars, &mut out, &mut Vec::new());
        out
    }

    /// [`Lexicon::matches_all`] into `out`, with `walks` as scratch space
    /// (both reused across calls).
    ///
    /// The walks from all start positions advance in lockstep (see
    /// `CharTrie::for_each_word`), so words are found in order of length,
    /// then of start: "the leftmost of the longest covering words" is the
    /// first one found that is longer than the cover so far, as in a
    /// start-by-start pass.
    pub fn matches_all_into(&self, chars: &[char], out: &mut Vec<LexMatch>, walks: &mut Vec<(usize, u32)>) {
        out.clear();
        out.resize(chars.len(), LexMatch::default());
        self.trie.for_each_word(chars, self.max_len, walks, |s, len, _| {
            let e = s + len - 1;
            out[s].start_len = out[s].start_len.max(len);
            out[e].end_len = out[e].end_len.max(len);
            for (u, m) in out[s..=e].iter_mut().enumerate() {
                if len > m.in_len {
                    m.in_len = len;
                    m.in_offset = u;
                }
            }
        });
    }

    /// The matches at position `t` of `chars` (normalized characters):
    /// [`Lexicon::matches_all`] over the window of `2·max_len − 1` characters
    /// around `t`, which holds every word that can start, end or cover it.
    pub fn matches_at(&self, chars: &[char], t: usize) -> LexMatch {
        if t >= chars.len() {
            return LexMatch::default();
        }
        // Every word that starts, ends or covers `t` lies in this window.
        let first = t.saturating_sub(self.max_len - 1);
        let end = t.saturating_add(self.max_len).min(chars.len());
        self.matches_all(&chars[first..end])[t - first]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a model file whose lexicon claims `max_len = usize::MAX`
    /// overflowed `s + max` (a panic with debug assertions) and made matching
    /// quadratic in the text length.
    #[test]
    fn forged_max_len_is_clamped() {
        let lex: Lexicon =
            serde_json::from_str(r#"{"max_len": 18446744073709551615, "words": [["中国", 3]]}"#).unwrap();
        assert_eq!(lex.max_len(), Lexicon::MAX_MAX_LEN);
        let text: Vec<char> = "我们中国人".chars().collect();
        assert_eq!(lex.matches_at(&text, 2).start_len, 2);
        assert_eq!(Lexicon::new(0).max_len(), 1);
    }

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    proptest::proptest! {
        /// On a small alphabet, where overlapping words and ties are common:
        /// the whole-sentence pass agrees with a brute-force reference that
        /// checks every substring of at most `max_len` characters (equally
        /// long covering words: the leftmost wins), and with the per-position
        /// matcher (a window around the position) everywhere.
        #[test]
        fn matches_all_agrees_with_brute_force_and_matches_at(
            words in proptest::collection::vec("[abc😀]{1,5}", 0..12),
            text in "[abcd😀]{0,30}",
            max_len in 1usize..7,
        ) {
            let mut lex = Lexicon::new(max_len);
            for w in &words {
                lex.add(w, 1);
            }
            let text = chars(&text);
            let n = text.len();
            let mut expected = vec![LexMatch::default(); n];
            for s in 0..n {
                for e in s..n.min(s + max_len) {
                    let word: String = text[s..=e].iter().collect();
                    if !lex.contains(&word) {
                        continue;
                    }
                    let len = e - s + 1;
                    expected[s].start_len = expected[s].start_len.max(len);
                    expected[e].end_len = expected[e].end_len.max(len);
                    for (offset, m) in expected[s..=e].iter_mut().enumerate() {
                        if len > m.in_len {
                            m.in_len = len;
                            m.in_offset = offset;
                        }
                    }
                }
            }
            let all = lex.matches_all(&text);
            proptest::prop_assert_eq!(all.len(), text.len());
            proptest::prop_assert_eq!(&all, &expected);
            for (t, m) in all.iter().enumerate() {
                proptest::prop_assert_eq!(*m, lex.matches_at(&text, t), "position {}", t);
            }
        }
    }

    fn lex() -> Lexicon {
        let sents = vec![
            vec!["中国", "人民", "中国人民银行"],
            vec!["人", "民", "银行", "１９９８年"],
            vec!["中国"],
        ];
        Lexicon::from_sentences(&sents)
    }

    #[test]
    fn counts_and_membership() {
        let l = lex();
        assert_eq!(l.count("中国"), 2);
        assert_eq!(l.count("人"), 1);
        assert_eq!(l.count("国"), 0);
        assert!(l.contains("中国人民银行"));
        assert!(!l.contains("1998年"));
        assert_eq!(l.len(), 7);
    }

    #[test]
    fn longest_matches() {
        let l = lex();
        let c = chars("中国人民银行");
        // 中国人民银行 is 6 chars = max_len, so it is matched.
        let m0 = l.matches_at(&c, 0);
        assert_eq!((m0.start_len, m0.end_len, m0.in_len, m0.in_offset), (6, 0, 6, 0));
        let m2 = l.matches_at(&c, 2);
        assert_eq!((m2.start_len, m2.end_len), (2, 1));
        assert_eq!((m2.in_len, m2.in_offset, m2.in_position()), (6, 2, 1));
        let m5 = l.matches_at(&c, 5);
        assert_eq!((m5.start_len, m5.end_len, m5.in_position()), (0, 6, 2));
        // Normalized input matches full-width lexicon words.
        let c = chars("在1998年");
        let m = l.matches_at(&c, 1);
        assert_eq!((m.start_len, m.in_len, m.in_position()), (5, 5, 0));
        let none = l.matches_at(&c, 0);
        assert_eq!((none.in_len, none.in_position()), (0, 4));
        assert_eq!(l.matches_at(&c, 99), LexMatch::default());
    }

    #[test]
    fn max_len_limits_matching() {
        let mut l = Lexicon::new(2);
        l.add("中国人", 1);
        l.add("中国", 1);
        let m = l.matches_at(&chars("中国人"), 0);
        assert_eq!(m.start_len, 2);
        assert!(l.contains("中国人"));
    }

    #[test]
    fn retain_and_serde_round_trip() {
        let mut l = lex();
        let json = serde_json::to_string(&l).unwrap();
        let back: Lexicon = serde_json::from_str(&json).unwrap();
        assert_eq!(back.len(), l.len());
        let c = chars("中国人民银行");
        for t in 0..c.len() {
            assert_eq!(back.matches_at(&c, t), l.matches_at(&c, t));
        }
        assert_eq!(json, serde_json::to_string(&back).unwrap());
        l.retain_min_count(2);
        assert_eq!(l.len(), 1);
        assert_eq!(l.matches_at(&c, 2).in_len, 0);
        assert_eq!(l.matches_at(&c, 1).in_len, 2);
    }

    #[test]
    fn trie_longest_at() {
        let mut t = CharTrie::new();
        t.insert("ab".chars());
        t.insert("abcd".chars());
        let c = chars("abcde");
        assert_eq!(t.longest_at(&c, 0, 10), 4);
        assert_eq!(t.longest_at(&c, 0, 3), 2);
        assert_eq!(t.longest_at(&c, 1, 10), 0);
    }
}
