//! Hard constraints on the segmentation of a sentence.
//!
//! A statistical segmenter will sometimes split a product name or join a name
//! the user knows to be a word. Constraints let the caller fix such cases
//! without retraining: they restrict, per character, which tags the decoder may
//! choose. Representation: [`Constraints`] holds one [`TagSet`] (a bitmask of tag
//! ids) per character; [`TagSet::ANY`] means unconstrained. A decoder keeps only
//! the tags in the set at each position, so the best path is the best
//! *consistent* one.
//!
//! Two sources:
//!
//! * **User dictionary** ([`UserDict`]): words loaded from a file, one per line
//!   (further whitespace-separated fields are ignored, as in jieba's dictionary
//!   files). They are matched on the *raw* characters, leftmost-longest and
//!   non-overlapping, and each occurrence gets its exact word tags
//!   ([`TagScheme::forced_word_tags`]): it comes out as exactly that word.
//! * **Latin runs** ([`latin_runs`]): runs of ASCII or full-width letters and
//!   digits, joined by number and address punctuation (`3.14`, `1,000`, `50%`,
//!   `-5`, `1/3`, `a_b`, `a.b@c.org`, `http://example.com/a_b`, `CD—ROM`), must not
//!   be split: no word boundary may fall *inside* the run. The run may still be
//!   joined to its neighbours, because PKU treats `2001年`, `A股` and `卡拉OK` as
//!   single words; forcing the run to stand alone would break all of them.
//!
//! When the two overlap, the dictionary wins: a Latin run that overlaps any
//! dictionary match is dropped (partly applying it could leave no legal tag
//! sequence).
//!
//! Whitespace is not part of tagging: the segmenter splits the raw line on
//! whitespace first and builds constraints for each whitespace-free chunk.

use crate::corpus::{LineReader, STRING_SOURCE};
use crate::error::Result;
use crate::lexicon::CharTrie;
use crate::normalize::normalize_char;
use crate::scheme::{Boundary, TagScheme, TagSet};
use std::io::BufRead;
use std::ops::Range;
use std::path::Path;

/// A user word list matched leftmost-longest on raw characters.
#[derive(Clone, Debug, Default)]
pub struct UserDict {
    trie: CharTrie,
    words: usize,
    max_len: usize,
}

impl UserDict {
    /// An empty dictionary.
    pub fn new() -> Self {
        UserDict {
            trie: CharTrie::new(),
            words: 0,
            max_len: 0,
        }
    }

    /// A dictionary of the given words (empty strings are ignored).
    pub fn from_words<I: IntoIterator<Item = S>, S: AsRef<str>>(words: I) -> Self {
        let mut d = UserDict::new();
        for w in words {
            d.insert(w.as_ref());
        }
        d
    }

    /// Adds a word (ignored when empty).
    pub fn insert(&mut self, word: &str) {
        if self.trie.insert(word.chars()) {
            self.words += 1;
            self.max_len = self.max_len.max(word.chars().count());
        }
    }

    /// Reads a dictionary: one word per line as its first whitespace-separated
    /// field; blank lines are skipped; UTF-8 (BOM allowed), LF or CRLF.
    pub fn from_reader<R: BufRead>(reader: R, name: &str) -> Result<Self> {
        UserDict::from_lines(LineReader::new(reader, name))
    }

    /// Loads a dictionary file (see [`UserDict::from_reader`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        UserDict::from_lines(LineReader::open(path.as_ref())?)
    }

    fn from_lines<R: BufRead>(mut lines: LineReader<R>) -> Result<Self> {
        let mut d = UserDict::new();
        while let Some(next) = lines.next_line() {
            let (_, text) = next?;
            if let Some(word) = text.split_whitespace().next() {
                d.insert(word);
            }
        }
        Ok(d)
    }

    /// Parses a dictionary held in a string.
    pub fn parse(text: &str) -> Result<Self> {
        UserDict::from_reader(text.as_bytes(), STRING_SOURCE)
    }

    /// Number of distinct words.
    pub fn len(&self) -> usize {
        self.words
    }

    /// Whether the dictionary has no words.
    pub fn is_empty(&self) -> bool {
        self.words == 0
    }

    /// The occurrences of dictionary words in `chars`: scanning left to right,
    /// at each position the longest word starting there is taken and the scan
    /// resumes after it (leftmost-longest, non-overlapping).
    pub fn find(&self, chars: &[char]) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        if self.words == 0 {
            return out;
        }
        let mut i = 0;
        while i < chars.len() {
            let len = self.trie.longest_at(chars, i, self.max_len);
            if len > 0 {
                out.push(i..i + len);
                i += len;
            } else {
                i += 1;
            }
        }
        out
    }
}

#[inline]
fn alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

#[inline]
fn digit(c: char) -> bool {
    c.is_ascii_digit()
}

/// Characters allowed anywhere inside a URL once `://` or `www.` has been seen.
const URL_CHARS: &str = "/.-_~?=&#%+:@";
/// URL characters that do not end a URL (trimmed at its end).
const URL_TRAILING: &str = ".-_~?=&#+:@";

/// The runs of Latin letters and digits (ASCII or full-width) that must not be
/// split, as character ranges (length 1 included).
///
/// A run starts at a letter or digit, or at a sign (`-`, `+`) directly before a
/// digit when no letter or digit precedes it (`-5`). Inside a run these join:
/// `.`, `-`, `_`, `@`, `/` between letters/digits; `,` between digits; `%` after
/// a digit; an em dash `—` between a letter-containing part and a letter or digit
/// (`CD—ROM`, `G—432`; PKU writes such names with it); and after `scheme://` or
/// `www.` any URL character (`/.-_~?=&#%+:@`), with trailing `.`-like punctuation
/// trimmed. Full-width forms count as their ASCII counterparts.
pub fn latin_runs(chars: &[char]) -> Vec<Range<usize>> {
    let n: Vec<char> = chars.iter().map(|&c| normalize_char(c)).collect();
    let at = |i: usize| n.get(i).copied().unwrap_or('\0');
    let mut runs = Vec::new();
    let mut i = 0;
    while i < n.len() {
        let c = n[i];
        let sign_start = matches!(c, '-' | '+') && digit(at(i + 1)) && (i == 0 || !alnum(n[i - 1]));
        if !alnum(c) && !sign_start {
            i += 1;
            continue;
        }
        let start = i;
        let mut j = i + 1;
        let mut url = false;
        let mut has_letter = c.is_ascii_alphabetic();
        while j < n.len() {
            let c = n[j];
            let prev = n[j - 1];
            let next = at(j + 1);
            let take = if alnum(c) {
                has_letter |= c.is_ascii_alphabetic();
                1
            } else if url && URL_CHARS.contains(c) {
                1
            } else {
                match c {
                    ':' if prev.is_ascii_alphabetic() && next == '/' && at(j + 2) == '/' => {
                        url = true;
                        3
                    }
                    '.' | '-' | '_' | '@' | '/' if alnum(prev) && alnum(next) => {
                        if c == '.' && n[start..j].iter().collect::<String>().eq_ignore_ascii_case("www") {
                            url = true;
                        }
                        1
                    }
                    ',' if digit(prev) && digit(next) => 1,
                    '%' if digit(prev) => 1,
                    '\u{2014}' if has_letter && alnum(prev) && alnum(next) => 1,
                    _ => 0,
                }
            };
            if take == 0 {
                break;
            }
            j += take;
        }
        if url {
            while j > start + 1 && URL_TRAILING.contains(n[j - 1]) {
                j -= 1;
            }
        }
        runs.push(start..j);
        i = j;
    }
    runs
}

/// Allowed tags per character of one whitespace-free chunk of text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Constraints {
    scheme: TagScheme,
    sets: Vec<TagSet>,
}

impl Constraints {
    /// No constraint on any of `n` characters.
    pub fn free(scheme: TagScheme, n: usize) -> Self {
        Constraints {
            scheme,
            sets: vec![TagSet::ANY; n],
        }
    }

    /// The constraints for the raw characters `chars` (no whitespace) from a user
    /// dictionary and/or Latin runs; the dictionary wins where they overlap.
    pub fn for_text(scheme: TagScheme, chars: &[char], dict: Option<&UserDict>, keep_latin_runs: bool) -> Self {
        let mut c = Constraints::free(scheme, chars.len());
        let words = dict.map(|d| d.find(chars)).unwrap_or_default();
        if keep_latin_runs {
            let mut in_word = vec![false; chars.len()];
            for w in &words {
                in_word[w.clone()].iter_mut().for_each(|x| *x = true);
            }
            for run in latin_runs(chars) {
                if !in_word[run.clone()].iter().any(|&x| x) {
                    c.forbid_split(run);
                }
            }
        }
        for w in words {
            c.force_word(w);
        }
        c
    }

    /// Forces `span` to come out as exactly one word (overriding earlier
    /// constraints on its characters). Out-of-range parts are ignored.
    pub fn force_word(&mut self, span: Range<usize>) {
        let tags = self.scheme.forced_word_tags(span.len());
        for (i, tag) in span.zip(tags) {
            if let Some(s) = self.sets.get_mut(i) {
                *s = TagSet::single(tag);
            }
        }
    }

    /// Forbids word boundaries inside `span` (it may still join its neighbours).
    /// Out-of-range parts are ignored.
    pub fn forbid_split(&mut self, span: Range<usize>) {
        if span.len() < 2 {
            return;
        }
        let last = span.end.saturating_sub(1);
        for i in span.clone() {
            let before = if i > span.start {
                Boundary::Forbidden
            } else {
                Boundary::Free
            };
            let after = if i < last { Boundary::Forbidden } else { Boundary::Free };
            let allowed = self.scheme.boundary_tags(before, after);
            if let Some(s) = self.sets.get_mut(i) {
                *s = s.intersect(allowed);
            }
        }
    }

    /// The tag scheme the sets refer to.
    pub fn scheme(&self) -> TagScheme {
        self.scheme
    }

    /// Number of characters.
    pub fn len(&self) -> usize {
        self.sets.len()
    }

    /// Whether there are no characters.
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// The allowed tags at character `t` ([`TagSet::ANY`] when out of range).
    pub fn allowed(&self, t: usize) -> TagSet {
        self.sets.get(t).copied().unwrap_or(TagSet::ANY)
    }

    /// The allowed tag sets, one per character.
    pub fn as_slice(&self) -> &[TagSet] {
        &self.sets
    }

    /// Whether nothing is constrained: every set holds all tags of the scheme
    /// (the decoder can skip masking).
    pub fn is_free(&self) -> bool {
        let all = self.scheme.all_tags();
        self.sets.iter().all(|s| s.intersect(all) == all)
    }

    /// Whether a tag sequence satisfies every constraint.
    pub fn admits(&self, tags: &[u32]) -> bool {
        tags.len() == self.sets.len() && tags.iter().zip(&self.sets).all(|(&t, s)| s.contains(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    fn run_texts(s: &str) -> Vec<String> {
        let c = chars(s);
        latin_runs(&c).into_iter().map(|r| c[r].iter().collect()).collect()
    }

    #[test]
    fn user_dict_leftmost_longest() {
        let d = UserDict::from_words(["南京", "南京市", "市长", "长江大桥", "江大"]);
        let c = chars("南京市长江大桥");
        let spans = d.find(&c);
        assert_eq!(spans, vec![0..3, 3..7]);
        let c = chars("去南京");
        assert_eq!(d.find(&c), vec![1..3]);
        assert!(UserDict::new().find(&c).is_empty());
        assert_eq!(d.len(), 5);
    }

    #[test]
    fn user_dict_file_format() {
        let d = UserDict::parse("\u{feff}云计算 5 n\r\n\r\n  \r\n韩玉赏鉴 3 nz\r\n云计算\n").unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d.find(&chars("云计算和韩玉赏鉴")), vec![0..3, 4..8]);
        let err = UserDict::from_reader(&b"ok\nbad\xfe\n"[..], "dict.txt").unwrap_err();
        assert!(
            matches!(err, crate::Error::InvalidUtf8 { line: 2, offset: 6, .. }),
            "{err}"
        );
        assert!(err.to_string().starts_with("dict.txt:2:"));
        assert!(UserDict::load("/nonexistent/chaincrf/dict.txt").is_err());
    }

    #[test]
    fn latin_run_examples() {
        for whole in [
            "iPhone6s",
            "0.7m",
            "3.14",
            "http://example.com/a_b",
            "a.b@c.org",
            "1,000",
            "50%",
            "１／３",
            "www.people.com.cn／sports",
            "caibian3＠peopledaily．com．cn",
            "ＣＤ—ＲＯＭ",
            "ＩＳＯ９００２",
        ] {
            assert_eq!(run_texts(whole), [whole], "{whole}");
            assert_eq!(run_texts(&format!("买了{whole}。")), [whole], "{whole}");
        }
        assert_eq!(run_texts("气温－5℃"), ["－5"]);
        assert_eq!(run_texts("2001年A股"), ["2001", "A"]);
        assert_eq!(run_texts("1—2月"), ["1", "2"]);
        assert_eq!(run_texts("比分2:1。"), ["2", "1"]);
        assert_eq!(run_texts("见http://a.cn/x."), ["http://a.cn/x"]);
        assert_eq!(run_texts("a. b"), ["a", "b"]);
        assert_eq!(run_texts("ab-"), ["ab"]);
        assert_eq!(run_texts("1,"), ["1"]);
        assert!(run_texts("中文，。").is_empty());
    }

    #[test]
    fn latin_runs_are_not_split() {
        let s = TagScheme::Bmes;
        let c = chars("用iPhone6s拍");
        let k = Constraints::for_text(s, &c, None, true);
        // "iPhone6s" whole: allowed; "iPhone6s拍" joined: allowed; split: not.
        let good = s.tags_from_words(&["用", "iPhone6s", "拍"]);
        let joined = s.tags_from_words(&["用", "iPhone6s拍"]);
        let split = s.tags_from_words(&["用", "iPhone", "6s", "拍"]);
        assert!(k.admits(&good) && k.admits(&joined));
        assert!(!k.admits(&split));
        assert!(k.allowed(0).is_any());
        let none = Constraints::for_text(s, &c, None, false);
        assert!(none.is_free() && none.admits(&split));
        // Single-character runs constrain nothing.
        assert!(Constraints::for_text(s, &chars("A股"), None, true).is_free());
    }

    #[test]
    fn user_dict_forces_exact_words_and_wins() {
        for s in [TagScheme::Bmes, TagScheme::SixTag] {
            let d = UserDict::from_words(["6s拍照"]);
            let c = chars("用iPhone6s拍照");
            let k = Constraints::for_text(s, &c, Some(&d), true);
            // The Latin run overlaps the dictionary word and is dropped.
            let ok = s.tags_from_words(&["用", "iPhone", "6s拍照"]);
            assert!(k.admits(&ok), "{s:?}");
            let ok2 = s.tags_from_words(&["用", "i", "Phone", "6s拍照"]);
            assert!(k.admits(&ok2));
            let bad = s.tags_from_words(&["用", "iPhone6s", "拍照"]);
            assert!(!k.admits(&bad));
            assert_eq!(k.allowed(7), TagSet::single(s.begin()));
            assert_eq!(k.allowed(10), TagSet::single(s.end()));
        }
    }

    #[test]
    fn forced_words_admit_a_valid_path() {
        // Dictionary words plus Latin runs never make the chunk infeasible when
        // they do not overlap: the segmentation built from them is admitted.
        let s = TagScheme::SixTag;
        let d = UserDict::from_words(["北京大学", "学"]);
        let c = chars("北京大学COVID-19学研究");
        let k = Constraints::for_text(s, &c, Some(&d), true);
        let words = ["北京大学", "COVID-19", "学", "研", "究"];
        let tags = s.tags_from_words(&words);
        assert!(s.is_valid(&tags));
        assert!(k.admits(&tags));
        assert!(k.as_slice().iter().all(|t| !t.is_empty()));
        assert_eq!(k.len(), c.len());
        assert_eq!(k.scheme(), s);
    }
}
