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
use crate::normalize::char_class_code;
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
        Self::from_sentences_in_folds(sentences, max_len, folds, |i| i % folds.max(1))
    }

    /// [`WordStats::from_sentences`] with sentence `i` in fold `fold_of(i)`.
    ///
    /// # Panics
    /// When there are folds and `fold_of` gives one of `folds` or more.
    pub fn from_sentences_in_folds<S: AsRef<str>>(
        sentences: &[Vec<S>],
        max_len: usize,
        folds: usize,
        fold_of: impl Fn(usize) -> usize,
    ) -> Self {
        let folds = if folds > 1 { folds } else { 0 };
        let mut stats = WordStats::empty(max_len, folds);
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
                    let fold = fold_of(i);
                    assert!(fold < folds, "sentence {i} in fold {fold} of {folds}");
                    let at = stats.slot(node, fold);
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

/// Reusable buffers of [`WordFeatures::scores_into`]: per line, the
/// character classes and ids, the training words found (their counts per
/// start and length), how far they reach, and the trie walks in progress.
#[derive(Clone, Debug, Default)]
pub struct WordScratch {
    classes: Vec<u32>,
    ids: Vec<Option<u32>>,
    counts: Vec<(u32, u32)>,
    reach: Vec<usize>,
    earliest: Vec<usize>,
    walks: Vec<(usize, u32)>,
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
            // The first step reads the root's table, not the hashed edges.
            let next = if i == 0 {
                s.trie.root_child(c)
            } else {
                s.trie.child(node, c)
            };
            let Some(next) = next else {
                break;
            };
            node = next;
            if let Some((wc, sc)) = self.counts(node) {
                f(i + 1, wc, sc);
            }
        }
    }

    /// The word count and substring count in this view of the trie node
    /// `node`, when it ends a training word counted above 0 here.
    #[inline]
    fn counts(&self, node: u32) -> Option<(u32, u32)> {
        if !self.stats.trie.is_word(node) {
            return None;
        }
        self.word_counts(node)
    }

    /// [`StatsView::counts`] of a node known to end a training word.
    #[inline]
    fn word_counts(&self, node: u32) -> Option<(u32, u32)> {
        let s = self.stats;
        let total = s.slot(node, s.folds);
        let (mut wc, mut sc) = (s.word_counts[total], s.substring_counts[total]);
        if let Some(fold) = self.fold {
            let at = s.slot(node, fold);
            wc -= s.word_counts[at];
            sc -= s.substring_counts[at];
        }
        (wc > 0).then_some((wc, sc))
    }
}

impl StatsView<'_> {
    /// Calls `f(start, len, word_count, substring_count)` for every
    /// occurrence in `chars` of a training word with a word count above 0
    /// in this view: what [`for_each_word_at`](Self::for_each_word_at)
    /// finds at every start, in order of length, then of start, by the
    /// lockstep walks the lexicon matcher uses (`CharTrie::for_each_word`).
    /// `walks` is scratch space.
    pub fn for_each_word(
        &self,
        chars: &[char],
        walks: &mut Vec<(usize, u32)>,
        mut f: impl FnMut(usize, usize, u32, u32),
    ) {
        self.stats
            .trie
            .for_each_word(chars, self.stats.max_len, walks, |start, len, node| {
                if let Some((wc, sc)) = self.word_counts(node) {
                    f(start, len, wc, sc);
                }
            });
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

    /// [`SegmentFeatures::extract`] with a sink the compiler can inline.
    pub fn extract_with<F: FnMut(usize, usize, u32) + ?Sized>(&self, chars: &[char], sink: &mut F) {
        let (first_base, last_base) = (self.first_base(), self.last_base());
        let nc = self.stats.stats().num_chars() as u32;
        self.for_each_candidate(chars, &mut WordScratch::default(), |c| {
            let (i, d, lc) = (c.start, c.len, c.length_class);
            sink(i, d, LEX_BASE + lc * COUNT_BUCKETS + count_bucket(c.word_count));
            if c.word_count > 0 {
                sink(
                    i,
                    d,
                    RATIO_BASE + lc * RATIO_BUCKETS + ratio_bucket(c.word_count, c.occurrences),
                );
            }
            sink(
                i,
                d,
                EDGE_CLASS_BASE + (lc * CHAR_CLASSES + c.first_class) * CHAR_CLASSES + c.last_class,
            );
            if c.uniform {
                sink(i, d, UNIFORM_CLASS_BASE + lc * CHAR_CLASSES + c.first_class);
            }
            sink(i, d, CROSS_BASE + lc * 8 + c.cross);
            sink(
                i,
                d,
                CONTEXT_BASE + (lc * CHAR_CLASSES + c.before) * CHAR_CLASSES + c.after,
            );
            if let Some(ch) = c.first_char {
                sink(i, d, first_base + lc * nc + ch);
            }
            if let Some(ch) = c.last_char {
                sink(i, d, last_base + lc * nc + ch);
            }
        });
    }

    /// Calls `f` once for every candidate `[i, i + d)` with `d ≤ max_len`,
    /// in order of start, then of length, with what its features are made
    /// of (see the type's docs).
    #[inline]
    fn for_each_candidate(&self, chars: &[char], scratch: &mut WordScratch, mut f: impl FnMut(&Candidate)) {
        let n = chars.len();
        let l = self.max_len;
        let stats = self.stats.stats();
        let WordScratch {
            classes,
            ids,
            counts,
            reach,
            earliest,
            walks,
        } = scratch;
        classes.clear();
        classes.extend(chars.iter().map(|&c| u32::from(char_class_code(c))));
        ids.clear();
        ids.extend(chars.iter().map(|&c| stats.char_id(c)));
        // The counts of the training word [i, i + d) at `i·l + d − 1` ((0, 0)
        // when it is none); the longest reach of a word starting at each
        // position, the earliest start of a word ending at each position
        // (words longer than `l` included).
        counts.clear();
        counts.resize(n * l, (0, 0));
        reach.clear();
        reach.resize(n, 0);
        earliest.clear();
        earliest.extend(0..n);
        self.stats.for_each_word(chars, walks, |s, d, wc, sc| {
            if d <= l {
                counts[s * l + d - 1] = (wc, sc);
            }
            if d > 1 {
                reach[s] = reach[s].max(s + d);
                earliest[s + d - 1] = earliest[s + d - 1].min(s);
            }
        });
        for i in 0..n {
            let before = if i == 0 { 0 } else { classes[i - 1] };
            let mut uniform = true;
            // Furthest reach of words starting inside, earliest start of words
            // ending inside, over the candidate's inner characters so far.
            let mut inner_reach = 0;
            let mut inner_earliest = usize::MAX;
            for d in 1..=l.min(n - i) {
                let (wc, sc) = counts[i * l + d - 1];
                let end = i + d;
                if d > 1 {
                    inner_reach = inner_reach.max(reach[end - 1]);
                    inner_earliest = inner_earliest.min(earliest[end - 2]);
                }
                let (first, last) = (classes[i], classes[end - 1]);
                uniform &= last == first;
                let crosses_right = d > 1 && inner_reach > end;
                let crosses_left = d > 1 && inner_earliest < i;
                f(&Candidate {
                    start: i,
                    len: d,
                    length_class: (d as u32).min(LENGTH_CLASSES) - 1,
                    word_count: wc,
                    occurrences: sc,
                    first_class: first,
                    last_class: last,
                    uniform: uniform && d > 1,
                    cross: u32::from(wc > 0) << 2 | u32::from(crosses_left) << 1 | u32::from(crosses_right),
                    before,
                    after: if end < n { classes[end] } else { 0 },
                    first_char: ids[i],
                    last_char: ids[end - 1],
                });
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

/// What the features of one candidate word are made of.
struct Candidate {
    start: usize,
    len: usize,
    /// `min(len, 6) − 1`.
    length_class: u32,
    word_count: u32,
    occurrences: u32,
    first_class: u32,
    last_class: u32,
    /// Longer than one character, all of one class.
    uniform: bool,
    /// `known << 2 | crosses left << 1 | crosses right`.
    cross: u32,
    before: u32,
    after: u32,
    first_char: Option<u32>,
    last_char: Option<u32>,
}

/// The weights of [`WordFeatures`] laid out for scoring every candidate of a
/// line (what the semi-Markov segmenter does per line):
///
/// * the first four features' weights (count, share, edge classes,
///   uniform class) summed ahead, in their order, for every combination of
///   length class, count bucket, share bucket, edge classes and uniformity
///   (47k sums, 370 KiB): one load where there were four;
/// * the first- and last-character weights of each character side by side
///   (two lines per character) instead of in twelve blocks.
///
/// A candidate's score is `head + cross + context + first + last`, the same
/// additions in the same order as adding its features' weights one by one
/// to 0 (`head` is that sum's first part), so bit for bit the same score.
#[derive(Clone, Debug)]
pub struct WordScorer {
    max_len: usize,
    head: Vec<f64>,
    cross: Vec<f64>,
    context: Vec<f64>,
    /// Per training character: first-character weights by length class,
    /// then last-character weights by length class.
    chars: Vec<[f64; 2 * LENGTH_CLASSES as usize]>,
}

impl WordScorer {
    /// Lays out `weights` (one per feature id of `features`).
    ///
    /// # Panics
    /// When `weights` does not have one value per feature.
    pub fn new(features: &WordFeatures<'_>, weights: &[f64]) -> Self {
        assert_eq!(weights.len(), features.num_features(), "one weight per word feature");
        let w = |id: u32| weights[id as usize];
        let mut head = Vec::with_capacity(Self::head_len());
        for lc in 0..LENGTH_CLASSES {
            for cb in 0..COUNT_BUCKETS {
                for rb in 0..RATIO_BUCKETS {
                    for first in 0..CHAR_CLASSES {
                        for last in 0..CHAR_CLASSES {
                            for uniform in [false, true] {
                                let mut sum = 0.0;
                                sum += w(LEX_BASE + lc * COUNT_BUCKETS + cb);
                                if cb > 0 {
                                    sum += w(RATIO_BASE + lc * RATIO_BUCKETS + rb);
                                }
                                sum += w(EDGE_CLASS_BASE + (lc * CHAR_CLASSES + first) * CHAR_CLASSES + last);
                                if uniform {
                                    sum += w(UNIFORM_CLASS_BASE + lc * CHAR_CLASSES + first);
                                }
                                head.push(sum);
                            }
                        }
                    }
                }
            }
        }
        let nc = features.stats.stats().num_chars() as u32;
        let chars = (0..nc)
            .map(|c| {
                std::array::from_fn(|j| {
                    let (base, lc) = if j < LENGTH_CLASSES as usize {
                        (features.first_base(), j as u32)
                    } else {
                        (features.last_base(), (j - LENGTH_CLASSES as usize) as u32)
                    };
                    w(base + lc * nc + c)
                })
            })
            .collect();
        WordScorer {
            max_len: features.max_len,
            head,
            cross: weights[CROSS_BASE as usize..CONTEXT_BASE as usize].to_vec(),
            context: weights[CONTEXT_BASE as usize..FIXED_FEATURES as usize].to_vec(),
            chars,
        }
    }

    fn head_len() -> usize {
        (LENGTH_CLASSES * COUNT_BUCKETS * RATIO_BUCKETS * CHAR_CLASSES * CHAR_CLASSES * 2) as usize
    }

    /// The score of every candidate of `chars` under `features` (the
    /// features this scorer was built for) into `out`: `chars.len() · l`
    /// values, candidate `[i, i + d)` at `i·l + d − 1` (`l ≥ max_len`;
    /// longer candidates score 0). Bit for bit what adding each feature's
    /// weight through [`WordFeatures::extract_with`] to zeros gives.
    ///
    /// # Panics
    /// When `l` is below the features' `max_len`.
    pub fn scores_into(
        &self,
        features: &WordFeatures<'_>,
        chars: &[char],
        l: usize,
        scratch: &mut WordScratch,
        out: &mut Vec<f64>,
    ) {
        assert!(l >= self.max_len, "the rows must hold every candidate length");
        out.clear();
        out.resize(chars.len() * l, 0.0);
        features.for_each_candidate(chars, scratch, |c| {
            let lc = c.length_class;
            let (cb, rb) = if c.word_count > 0 {
                (count_bucket(c.word_count), ratio_bucket(c.word_count, c.occurrences))
            } else {
                (0, 0)
            };
            let at = ((((lc * COUNT_BUCKETS + cb) * RATIO_BUCKETS + rb) * CHAR_CLASSES + c.first_class) * CHAR_CLASSES
                + c.last_class)
                * 2
                + u32::from(c.uniform);
            let mut sum = self.head[at as usize];
            sum += self.cross[(lc * 8 + c.cross) as usize];
            sum += self.context[((lc * CHAR_CLASSES + c.before) * CHAR_CLASSES + c.after) as usize];
            if let Some(ch) = c.first_char {
                sum += self.chars[ch as usize][lc as usize];
            }
            if let Some(ch) = c.last_char {
                sum += self.chars[ch as usize][(LENGTH_CLASSES + lc) as usize];
            }
            out[c.start * l + c.len - 1] = sum;
        });
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

    /// A pseudo-random text over the training characters and a few others.
    fn text(seed: u64, n: usize) -> Vec<char> {
        let alphabet: Vec<char> = "中国人民的多，1２aＢ新年".chars().collect();
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                alphabet[(x >> 33) as usize % alphabet.len()]
            })
            .collect()
    }

    #[test]
    fn the_lockstep_walk_finds_what_the_walk_per_start_finds() {
        let stats = WordStats::from_sentences(&sentences(), 4, 2);
        let mut walks = Vec::new();
        for fold in [None, Some(0), Some(1)] {
            let view = stats.view(fold);
            for seed in 0..30 {
                let chars = text(seed, seed as usize);
                let mut expected = Vec::new();
                for i in 0..chars.len() {
                    view.for_each_word_at(&chars, i, |d, wc, sc| expected.push((i, d, wc, sc)));
                }
                let mut got = Vec::new();
                view.for_each_word(&chars, &mut walks, |i, d, wc, sc| got.push((i, d, wc, sc)));
                got.sort_unstable();
                expected.sort_unstable();
                assert_eq!(got, expected, "{chars:?}");
            }
        }
    }

    #[test]
    fn the_scorer_adds_what_the_features_add_bit_for_bit() {
        let stats = WordStats::from_sentences(&sentences(), 4, 0);
        for l in [3, 4, 6] {
            let features = WordFeatures::new(stats.view(None), l);
            // Weights of mixed magnitudes, so that the order of the additions
            // shows in the last bits.
            let mut x = 99u64;
            let weights: Vec<f64> = (0..features.num_features())
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let u = (x >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                    f64::from((u * 10f64.powi((x % 7) as i32 - 3)) as f32)
                })
                .collect();
            let scorer = WordScorer::new(&features, &weights);
            let mut scratch = WordScratch::default();
            let mut got = Vec::new();
            for seed in 0..40 {
                let chars = text(seed + 100, seed as usize);
                // Rows wider than the longest candidate, as forced words make them.
                let width = l + (seed as usize % 3);
                let mut expected = vec![0.0; chars.len() * width];
                features.extract_with(&chars, &mut |i, d, f| {
                    expected[i * width + d - 1] += weights[f as usize]
                });
                scorer.scores_into(&features, &chars, width, &mut scratch, &mut got);
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&expected), "l = {l}, {chars:?}");
            }
        }
    }
}
