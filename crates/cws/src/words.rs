//! Whole-word features for the semi-Markov segmenter: what the training text
//! says about a candidate word as a unit.
//!
//! A character tagger sees a word only through the n-grams around each of its
//! characters. A segment-level model can ask about the candidate itself: is
//! this string a word of the training text, how often, and — the statistic
//! character tags approximate worst — *how often does the string stand as a
//! word where it occurs*? `中国` occurs almost always as a word (or inside a
//! longer one); `国人` occurs often but rarely as a word (`中国人民`). The
//! ratio of the two counts says so directly.
//!
//! [`WordStats`] keeps, for every training word of at most `max_len`
//! characters (normalized, see [`crate::normalize()`]), how often it
//! occurs as a word and how often as a substring of the training text. As
//! for the lexicon features ([`crate::train::CwsTrainOptions::lexicon_folds`]),
//! counts seen by a training sentence must not include the sentence itself,
//! or the model learns that every gold word is known: the counts are kept per
//! fold, and a sentence of fold `f` sees the totals minus fold `f`'s
//! ([`WordStats::view`]). At segmentation time the totals are used.
//!
//! [`WordFeatures`] turns the counts, the candidate's length and its
//! characters' classes into seven or eight feature ids per candidate
//! segment: 1,146 fixed features plus 12 per training character (57k weights
//! on PKU), none hashed per candidate, so the scores of every candidate
//! starting at a position cost one trie walk.

use crate::lexicon::CharTrie;
use crate::normalize::char_class;
use crate::semi::SegmentFeatures;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A hasher for `char` keys: one multiply (the keys are not attacker-chosen
/// in a way that matters here: a model's own characters).
#[derive(Default)]
struct CharHasher(u64);

impl Hasher for CharHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type BuildCharHasher = BuildHasherDefault<CharHasher>;

/// Word and substring counts of the training words, per fold.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(from = "WordStatsData", into = "WordStatsData")]
pub struct WordStats {
    max_len: usize,
    folds: usize,
    trie: CharTrie,
    /// Every word with its trie node (for serialization).
    words: Vec<(String, u32)>,
    /// The characters of the training words, numbered (first/last
    /// character features).
    chars: HashMap<char, u32, BuildCharHasher>,
    /// Per trie node, `folds + 1` counts: one per fold, then the total.
    word_counts: Vec<u32>,
    substring_counts: Vec<u32>,
}

/// The serialized form: the total counts of each word (what segmentation
/// uses); the folds are a training-time matter.
#[derive(Serialize, Deserialize)]
struct WordStatsData {
    max_len: usize,
    words: Vec<(String, u32, u32)>,
    chars: String,
}

impl From<WordStatsData> for WordStats {
    fn from(data: WordStatsData) -> Self {
        let mut stats = WordStats::empty(data.max_len, 0);
        for c in data.chars.chars() {
            stats.add_char(c);
        }
        for (w, wc, sc) in data.words {
            let node = stats.insert(&w);
            let at = stats.slot(node, 0);
            stats.word_counts[at] = wc;
            stats.substring_counts[at] = sc.max(wc);
        }
        stats
    }
}

impl From<WordStats> for WordStatsData {
    fn from(stats: WordStats) -> Self {
        let total = stats.folds;
        let mut words: Vec<(String, u32, u32)> = stats
            .words
            .iter()
            .map(|(w, node)| {
                let at = stats.slot(*node, total);
                (w.clone(), stats.word_counts[at], stats.substring_counts[at])
            })
            .collect();
        words.sort_unstable();
        let mut chars: Vec<(u32, char)> = stats.chars.iter().map(|(&c, &i)| (i, c)).collect();
        chars.sort_unstable();
        WordStatsData {
            max_len: stats.max_len,
            words,
            chars: chars.into_iter().map(|(_, c)| c).collect(),
        }
    }
}

impl WordStats {
    /// The longest word length allowed.
    pub const MAX_MAX_LEN: usize = 32;

    fn empty(max_len: usize, folds: usize) -> Self {
        WordStats {
            max_len: max_len.clamp(1, Self::MAX_MAX_LEN),
            folds,
            trie: CharTrie::new(),
            words: Vec::new(),
            chars: HashMap::default(),
            word_counts: vec![0; folds + 1],
            substring_counts: vec![0; folds + 1],
        }
    }

    #[inline]
    fn slot(&self, node: u32, fold_or_total: usize) -> usize {
        node as usize * (self.folds + 1) + fold_or_total
    }

    fn add_char(&mut self, c: char) {
        let next = self.chars.len() as u32;
        self.chars.entry(c).or_insert(next);
    }

    /// The id of a training character (`None` for one never seen).
    #[inline]
    pub fn char_id(&self, c: char) -> Option<u32> {
        self.chars.get(&c).copied()
    }

    /// Number of distinct training characters.
    pub fn num_chars(&self) -> usize {
        self.chars.len()
    }

    /// The trie node of `word` (normalized characters), inserted if new.
    fn insert(&mut self, word: &str) -> u32 {
        let (node, new) = self.trie.insert_node(word.chars());
        if new {
            self.words.push((word.to_owned(), node));
        }
        let need = (node as usize + 1) * (self.folds + 1);
        if self.word_counts.len() < need {
            self.word_counts.resize(need, 0);
            self.substring_counts.resize(need, 0);
        }
        node
    }

    /// Counts over `sentences` (each a list of words, normalized or not):
    /// sentence `i` belongs to fold `i % folds` (no folds for `folds` ≤ 1).
    /// Words longer than `max_len` characters are not kept.
    pub fn from_sentences<S: AsRef<str>>(sentences: &[Vec<S>], max_len: usize, folds: usize) -> Self {
        let folds = if folds > 1 { folds } else { 0 };
        let mut stats = WordStats::empty(max_len, folds);
        let fold_of = |i: usize| if folds > 1 { i % folds } else { 0 };
        for (i, s) in sentences.iter().enumerate() {
            for w in s {
                let word: String = crate::normalize::normalize(w.as_ref()).into_iter().collect();
                let len = word.chars().count();
                if len == 0 || len > stats.max_len {
                    continue;
                }
                for c in word.chars() {
                    stats.add_char(c);
                }
                let node = stats.insert(&word);
                if folds > 1 {
                    let at = stats.slot(node, fold_of(i));
                    stats.word_counts[at] += 1;
                }
                let at = stats.slot(node, folds);
                stats.word_counts[at] += 1;
            }
        }
        // Substring occurrences of every word, by one trie walk per position.
        for (i, s) in sentences.iter().enumerate() {
            let text: Vec<char> = crate::normalize::normalize(&s.iter().map(AsRef::as_ref).collect::<String>());
            for start in 0..text.len() {
                let mut node = 0u32;
                for &c in text[start..].iter().take(stats.max_len) {
                    let Some(next) = stats.trie.child(node, c) else {
                        break;
                    };
                    node = next;
                    if stats.trie.is_word(node) {
                        if folds > 1 {
                            let at = stats.slot(node, fold_of(i));
                            stats.substring_counts[at] += 1;
                        }
                        let at = stats.slot(node, folds);
                        stats.substring_counts[at] += 1;
                    }
                }
            }
        }
        stats
    }

    /// The longest word length kept.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Number of folds (0 when the counts are not split).
    pub fn folds(&self) -> usize {
        self.folds
    }

    /// The counts as seen by a sentence of fold `fold` (its own fold left
    /// out), or the totals with `None`.
    pub fn view(&self, fold: Option<usize>) -> StatsView<'_> {
        StatsView {
            stats: self,
            fold: fold.filter(|&f| self.folds > 1 && f < self.folds),
        }
    }
}

/// [`WordStats`] as one fold's sentences see them.
#[derive(Clone, Copy, Debug)]
pub struct StatsView<'a> {
    stats: &'a WordStats,
    fold: Option<usize>,
}

impl<'a> StatsView<'a> {
    /// The statistics viewed.
    pub fn stats(&self) -> &'a WordStats {
        self.stats
    }

    /// Calls `f(len, word_count, substring_count)` for every prefix of
    /// `chars[start..]` (up to `max_len` characters) that is a training word
    /// with a word count above 0 in this view.
    #[inline]
    pub fn for_each_word_at(&self, chars: &[char], start: usize, mut f: impl FnMut(usize, u32, u32)) {
        let s = self.stats;
        let mut node = 0u32;
        for (i, &c) in chars[start..].iter().take(s.max_len).enumerate() {
            let Some(next) = s.trie.child(node, c) else {
                break;
            };
            node = next;
            if !s.trie.is_word(node) {
                continue;
            }
            let total = s.slot(node, s.folds);
            let (mut wc, mut sc) = (s.word_counts[total], s.substring_counts[total]);
            if let Some(fold) = self.fold {
                let at = s.slot(node, fold);
                wc -= s.word_counts[at];
                sc -= s.substring_counts[at];
            }
            if wc > 0 {
                f(i + 1, wc, sc);
            }
        }
    }
}

/// How often a string is a word: 0 (never) to 5 (64 times or more).
#[inline]
fn count_bucket(count: u32) -> u32 {
    match count {
        0 => 0,
        1 => 1,
        2..=3 => 2,
        4..=15 => 3,
        16..=63 => 4,
        _ => 5,
    }
}

/// The share of a string's occurrences in which it stands as a word.
#[inline]
fn ratio_bucket(words: u32, occurrences: u32) -> u32 {
    let r = f64::from(words) / f64::from(occurrences.max(1));
    match r {
        r if r < 0.05 => 0,
        r if r < 0.2 => 1,
        r if r < 0.5 => 2,
        r if r < 0.8 => 3,
        r if r < 0.95 => 4,
        _ => 5,
    }
}

const LENGTH_CLASSES: u32 = 6;
const COUNT_BUCKETS: u32 = 6;
const RATIO_BUCKETS: u32 = 6;
const CHAR_CLASSES: u32 = 9;

// Feature blocks, in id order; the first/last character blocks follow,
// sized by the training characters.
const LEX_BASE: u32 = 0;
const RATIO_BASE: u32 = LEX_BASE + LENGTH_CLASSES * COUNT_BUCKETS;
const EDGE_CLASS_BASE: u32 = RATIO_BASE + LENGTH_CLASSES * RATIO_BUCKETS;
const UNIFORM_CLASS_BASE: u32 = EDGE_CLASS_BASE + LENGTH_CLASSES * CHAR_CLASSES * CHAR_CLASSES;
const CROSS_BASE: u32 = UNIFORM_CLASS_BASE + LENGTH_CLASSES * CHAR_CLASSES;
const CONTEXT_BASE: u32 = CROSS_BASE + LENGTH_CLASSES * 8;
const FIXED_FEATURES: u32 = CONTEXT_BASE + LENGTH_CLASSES * CHAR_CLASSES * CHAR_CLASSES;

/// The built-in segment features of the semi-Markov segmenter, for
/// candidate words of up to `max_len` characters (see the module docs):
///
/// * `lex[len][count]`: the candidate's length (capped at 6) and how often it
///   is a training word (bucketed; bucket 0 = never);
/// * `ratio[len][share]`: for training words, the share of the string's
///   occurrences in which it stands as a word (bucketed);
/// * `edges[len][class of first char][class of last char]`;
/// * `uniform[len][class]`: every character of the candidate has one class
///   (all digits, all Latin letters, all punctuation...);
/// * `cross[len][known][left][right]`: whether a training word crosses the
///   candidate's left or right boundary (starts before it and ends inside,
///   or starts inside and ends after it) — the ambiguities a segmenter
///   resolves;
/// * `context[len][class before][class after]`;
/// * `first[len][char]`, `last[len][char]`: the candidate's first and last
///   characters (surnames start names, suffixes end words).
#[derive(Clone, Copy, Debug)]
pub struct WordFeatures<'a> {
    stats: StatsView<'a>,
    max_len: usize,
}

impl<'a> WordFeatures<'a> {
    /// Features over `stats` for candidates of up to `max_len` characters.
    pub fn new(stats: StatsView<'a>, max_len: usize) -> Self {
        WordFeatures { stats, max_len }
    }

    fn first_base(&self) -> u32 {
        FIXED_FEATURES
    }

    fn last_base(&self) -> u32 {
        FIXED_FEATURES + LENGTH_CLASSES * self.stats.stats().num_chars() as u32
    }

    /// [`SegmentFeatures::extract`] with a sink the compiler can inline
    /// (the segmenter adds weights straight into its score rows).
    pub fn extract_with<F: FnMut(usize, usize, u32) + ?Sized>(&self, chars: &[char], sink: &mut F) {
        let n = chars.len();
        let l = self.max_len;
        let stats = self.stats.stats();
        let nc = stats.num_chars() as u32;
        let classes: Vec<u32> = chars.iter().map(|&c| u32::from(char_class(c).code())).collect();
        let ids: Vec<Option<u32>> = chars.iter().map(|&c| stats.char_id(c)).collect();
        // Every training word in the sentence, as (start, len, count, occurrences).
        let mut found: Vec<(usize, usize, u32, u32)> = Vec::new();
        for i in 0..n {
            self.stats
                .for_each_word_at(chars, i, |d, wc, sc| found.push((i, d, wc, sc)));
        }
        // Longest reach of a word starting at each position, earliest start of
        // a word ending at each position.
        let mut reach = vec![0usize; n];
        let mut earliest = (0..n).collect::<Vec<usize>>();
        for &(s, d, _, _) in &found {
            if d > 1 {
                reach[s] = reach[s].max(s + d);
                earliest[s + d - 1] = earliest[s + d - 1].min(s);
            }
        }
        let mut counts = vec![(0u32, 0u32); l + 1];
        let mut next = 0;
        for i in 0..n {
            counts.iter_mut().for_each(|c| *c = (0, 0));
            while next < found.len() && found[next].0 == i {
                let (_, d, wc, sc) = found[next];
                if d <= l {
                    counts[d] = (wc, sc);
                }
                next += 1;
            }
            let before = if i == 0 { 0 } else { classes[i - 1] };
            let mut uniform = true;
            // Furthest reach of words starting inside, earliest start of words
            // ending inside, over the candidate's inner characters so far.
            let mut inner_reach = 0;
            let mut inner_earliest = usize::MAX;
            for (d, &(wc, sc)) in counts.iter().enumerate().take(l.min(n - i) + 1).skip(1) {
                let end = i + d;
                let lc = (d as u32).min(LENGTH_CLASSES) - 1;
                if d > 1 {
                    inner_reach = inner_reach.max(reach[end - 1]);
                    inner_earliest = inner_earliest.min(earliest[end - 2]);
                }
                sink(i, d, LEX_BASE + lc * COUNT_BUCKETS + count_bucket(wc));
                if wc > 0 {
                    sink(i, d, RATIO_BASE + lc * RATIO_BUCKETS + ratio_bucket(wc, sc));
                }
                let (first, last) = (classes[i], classes[end - 1]);
                uniform &= last == first;
                sink(
                    i,
                    d,
                    EDGE_CLASS_BASE + (lc * CHAR_CLASSES + first) * CHAR_CLASSES + last,
                );
                if uniform && d > 1 {
                    sink(i, d, UNIFORM_CLASS_BASE + lc * CHAR_CLASSES + first);
                }
                let crosses_right = d > 1 && inner_reach > end;
                let crosses_left = d > 1 && inner_earliest < i;
                let cross = u32::from(wc > 0) << 2 | u32::from(crosses_left) << 1 | u32::from(crosses_right);
                sink(i, d, CROSS_BASE + lc * 8 + cross);
                let after = if end < n { classes[end] } else { 0 };
                sink(i, d, CONTEXT_BASE + (lc * CHAR_CLASSES + before) * CHAR_CLASSES + after);
                if let Some(c) = ids[i] {
                    sink(i, d, self.first_base() + lc * nc + c);
                }
                if let Some(c) = ids[end - 1] {
                    sink(i, d, self.last_base() + lc * nc + c);
                }
            }
        }
    }

    /// A readable name for feature `id`.
    pub fn describe(&self, id: u32) -> String {
        let block = |base: u32, inner: u32| ((id - base) / inner, (id - base) % inner);
        if id < RATIO_BASE {
            let (l, b) = block(LEX_BASE, COUNT_BUCKETS);
            format!("lex[len={}][count bucket {b}]", l + 1)
        } else if id < EDGE_CLASS_BASE {
            let (l, b) = block(RATIO_BASE, RATIO_BUCKETS);
            format!("ratio[len={}][share bucket {b}]", l + 1)
        } else if id < UNIFORM_CLASS_BASE {
            let (l, r) = block(EDGE_CLASS_BASE, CHAR_CLASSES * CHAR_CLASSES);
            format!("edges[len={}][{}][{}]", l + 1, r / CHAR_CLASSES, r % CHAR_CLASSES)
        } else if id < CROSS_BASE {
            let (l, c) = block(UNIFORM_CLASS_BASE, CHAR_CLASSES);
            format!("uniform[len={}][class {c}]", l + 1)
        } else if id < CONTEXT_BASE {
            let (l, r) = block(CROSS_BASE, 8);
            format!(
                "cross[len={}][known {}][left {}][right {}]",
                l + 1,
                r >> 2,
                (r >> 1) & 1,
                r & 1
            )
        } else if id < FIXED_FEATURES {
            let (l, r) = block(CONTEXT_BASE, CHAR_CLASSES * CHAR_CLASSES);
            format!("context[len={}][{}][{}]", l + 1, r / CHAR_CLASSES, r % CHAR_CLASSES)
        } else if id < self.last_base() {
            let (l, c) = block(self.first_base(), self.stats.stats().num_chars() as u32);
            format!("first[len={}][char {c}]", l + 1)
        } else if (id as usize) < self.num_features() {
            let (l, c) = block(self.last_base(), self.stats.stats().num_chars() as u32);
            format!("last[len={}][char {c}]", l + 1)
        } else {
            format!("unknown feature {id}")
        }
    }
}

impl SegmentFeatures for WordFeatures<'_> {
    fn num_features(&self) -> usize {
        FIXED_FEATURES as usize + 2 * LENGTH_CLASSES as usize * self.stats.stats().num_chars()
    }

    fn max_len(&self) -> usize {
        self.max_len
    }

    fn extract(&self, chars: &[char], sink: &mut dyn FnMut(usize, usize, u32)) {
        self.extract_with(chars, sink);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentences() -> Vec<Vec<String>> {
        let text = ["中国 人民", "中国 的 人民", "人民 中国", "中国人 多"];
        text.iter().map(|l| l.split(' ').map(str::to_owned).collect()).collect()
    }

    fn counts(view: StatsView<'_>, word: &str) -> Option<(u32, u32)> {
        let chars: Vec<char> = word.chars().collect();
        let mut found = None;
        view.for_each_word_at(&chars, 0, |d, wc, sc| {
            if d == chars.len() {
                found = Some((wc, sc));
            }
        });
        found
    }

    #[test]
    fn counts_words_and_occurrences_and_leaves_a_fold_out() {
        let stats = WordStats::from_sentences(&sentences(), 4, 2);
        // 中国 is a word 3 times and occurs 4 times (once inside 中国人).
        assert_eq!(counts(stats.view(None), "中国"), Some((3, 4)));
        // Sentences 0 and 2 are fold 0: leaving them out leaves sentences 1 and 3.
        assert_eq!(counts(stats.view(Some(0)), "中国"), Some((1, 2)));
        assert_eq!(counts(stats.view(Some(1)), "中国"), Some((2, 2)));
        // 中国人 is a word only in fold 1: unknown to that fold's sentences.
        assert_eq!(counts(stats.view(Some(1)), "中国人"), None);
        assert_eq!(counts(stats.view(Some(0)), "中国人"), Some((1, 1)));
        assert_eq!(counts(stats.view(None), "国人"), None);
    }

    #[test]
    fn serializes_the_totals() {
        let stats = WordStats::from_sentences(&sentences(), 4, 2);
        let bytes = chaincrf_model::encode_payload(&stats).unwrap();
        let back: WordStats = chaincrf_model::decode_payload(&bytes).unwrap();
        assert_eq!(back.folds(), 0);
        for w in ["中国", "人民", "的", "中国人", "多"] {
            assert_eq!(counts(back.view(None), w), counts(stats.view(None), w), "{w}");
        }
        assert_eq!(back.num_chars(), stats.num_chars());
        for c in "中国人民的多".chars() {
            assert_eq!(back.char_id(c), stats.char_id(c));
        }
    }

    #[test]
    fn every_feature_id_is_in_range_and_named() {
        let stats = WordStats::from_sentences(&sentences(), 4, 0);
        let features = WordFeatures::new(stats.view(None), 5);
        let chars: Vec<char> = "中国人民，123年abc的多".chars().collect();
        let mut seen = 0;
        features.extract(&chars, &mut |i, d, f| {
            assert!((1..=5).contains(&d) && i + d <= chars.len());
            assert!((f as usize) < features.num_features(), "{f}");
            assert!(!features.describe(f).starts_with("unknown"));
            seen += 1;
        });
        assert!(seen > chars.len() * 4);
    }
}
