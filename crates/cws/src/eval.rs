//! Scoring a segmentation the way the SIGHAN Bakeoff does.
//!
//! A predicted word is correct when its character span (start and end offsets
//! within the line, whitespace not counted) equals the span of a gold word.
//! Precision is correct / predicted words, recall is correct / gold words, F1
//! their harmonic mean. Given the training word list, recall is also split into
//! OOV recall (gold words not in the list) and IV recall (gold words in it), and
//! the OOV rate is the share of gold words not in the list: the Bakeoff reports
//! these because new words are where segmenters fail.
//!
//! Lines pair up in order. A prediction that lost or added a line, or changed
//! the characters of a line, cannot be scored meaningfully, so that is an error
//! naming the 1-based line rather than a silently wrong number. Blank lines at the
//! end of either text are ignored; other blank lines pair with blank lines.

use crate::corpus::{read_raw, LineReader, STRING_SOURCE};
use crate::error::{Error, Result};
use crate::lexicon::Lexicon;
use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::hash::BuildHasher;
use std::io::BufRead;
use std::path::Path;

/// A set of words for splitting recall into OOV and IV.
pub trait WordSet {
    /// Whether `word` is in the set.
    fn contains_word(&self, word: &str) -> bool;
}

impl<S: BuildHasher> WordSet for HashSet<String, S> {
    fn contains_word(&self, word: &str) -> bool {
        self.contains(word)
    }
}

impl WordSet for BTreeSet<String> {
    fn contains_word(&self, word: &str) -> bool {
        self.contains(word)
    }
}

impl WordSet for Lexicon {
    fn contains_word(&self, word: &str) -> bool {
        self.contains(word)
    }
}

/// Reads a word list from `reader`: the first whitespace-separated field of each
/// non-blank line (BOM and CRLF handled).
pub fn read_word_list_from<R: BufRead>(reader: R, name: &str) -> Result<HashSet<String>> {
    word_list_from_lines(LineReader::new(reader, name))
}

/// Reads a word list file (e.g. the Bakeoff's `pku_training_words.utf8`).
pub fn read_word_list(path: impl AsRef<Path>) -> Result<HashSet<String>> {
    word_list_from_lines(LineReader::open(path.as_ref())?)
}

/// Parses a word list held in a string.
pub fn parse_word_list(text: &str) -> Result<HashSet<String>> {
    read_word_list_from(text.as_bytes(), STRING_SOURCE)
}

fn word_list_from_lines<R: BufRead>(mut lines: LineReader<R>) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    while let Some(next) = lines.next_line() {
        let (_, text) = next?;
        if let Some(w) = text.split_whitespace().next() {
            out.insert(w.to_owned());
        }
    }
    Ok(out)
}

/// The result of scoring.
#[derive(Clone, Debug, PartialEq)]
pub struct Score {
    /// Number of line pairs scored.
    pub lines: usize,
    /// Words in the gold segmentation.
    pub gold_words: usize,
    /// Words in the predicted segmentation.
    pub pred_words: usize,
    /// Predicted words whose span matches a gold word.
    pub correct: usize,
    /// `correct / pred_words` (0 when there are no predicted words).
    pub precision: f64,
    /// `correct / gold_words` (0 when there are no gold words).
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
    /// Gold words not in the word list (0 without a word list).
    pub oov_words: usize,
    /// Of those, how many were found.
    pub correct_oov: usize,
    /// `oov_words / gold_words`; `None` without a word list.
    pub oov_rate: Option<f64>,
    /// `correct_oov / oov_words`; `None` without a word list.
    pub oov_recall: Option<f64>,
    /// Recall over the gold words in the word list; `None` without a word list.
    pub iv_recall: Option<f64>,
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

impl Score {
    /// The scores as text, one per line, labelled `P`, `R`, `F1` and, when a word
    /// list was given, `OOV rate`, `OOV recall`, `IV recall`; fractions with three
    /// decimals, e.g. `F1 0.951`.
    pub fn report(&self) -> String {
        let mut out = format!("P {:.3}\nR {:.3}\nF1 {:.3}\n", self.precision, self.recall, self.f1);
        if let (Some(rate), Some(oov), Some(iv)) = (self.oov_rate, self.oov_recall, self.iv_recall) {
            out.push_str(&format!("OOV rate {rate:.3}\nOOV recall {oov:.3}\nIV recall {iv:.3}\n"));
        }
        out
    }
}

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.report())
    }
}

/// Accumulates counts over line pairs; [`Scorer::score`] gives the totals.
pub struct Scorer<'a> {
    words: Option<&'a dyn WordSet>,
    lines: usize,
    gold_words: usize,
    pred_words: usize,
    correct: usize,
    oov_words: usize,
    correct_oov: usize,
    gold_spans: Vec<(usize, usize)>,
    pred_spans: Vec<(usize, usize)>,
}

/// The character spans of the whitespace-separated words of `line`.
fn spans<'l>(line: &'l str, out: &mut Vec<(usize, usize)>) -> Vec<&'l str> {
    out.clear();
    let mut words = Vec::new();
    let mut pos = 0;
    for w in line.split_whitespace() {
        let n = w.chars().count();
        out.push((pos, pos + n));
        words.push(w);
        pos += n;
    }
    words
}

/// Explains how the non-whitespace characters of two lines differ, if they do.
fn char_difference(gold: &str, pred: &str) -> Option<String> {
    let mut g = gold.chars().filter(|c| !c.is_whitespace());
    let mut p = pred.chars().filter(|c| !c.is_whitespace());
    let mut i = 0usize;
    loop {
        i += 1;
        match (g.next(), p.next()) {
            (None, None) => return None,
            (Some(a), Some(b)) if a == b => continue,
            (Some(a), Some(b)) => {
                return Some(format!(
                    "characters differ at character {i}: gold has `{a}`, prediction has `{b}`"
                ))
            }
            (Some(_), None) => {
                return Some(format!(
                    "prediction is shorter: it ends before character {i} of the gold line"
                ))
            }
            (None, Some(_)) => return Some(format!("prediction is longer: it has extra text from character {i} on")),
        }
    }
}

impl<'a> Scorer<'a> {
    /// A scorer; `words` is the training word list for OOV figures.
    pub fn new(words: Option<&'a dyn WordSet>) -> Self {
        Scorer {
            words,
            lines: 0,
            gold_words: 0,
            pred_words: 0,
            correct: 0,
            oov_words: 0,
            correct_oov: 0,
            gold_spans: Vec::new(),
            pred_spans: Vec::new(),
        }
    }

    /// Scores the next line pair; errors (naming this pair's 1-based line number)
    /// when their characters differ. A failed pair adds nothing to the counts.
    pub fn add_line(&mut self, gold: &str, pred: &str) -> Result<()> {
        self.lines += 1;
        if let Some(message) = char_difference(gold, pred) {
            return Err(Error::Misaligned {
                line: self.lines,
                message,
            });
        }
        let gold_words = spans(gold, &mut self.gold_spans);
        spans(pred, &mut self.pred_spans);
        self.gold_words += self.gold_spans.len();
        self.pred_words += self.pred_spans.len();
        let (mut i, mut j) = (0, 0);
        while i < self.gold_spans.len() {
            let g = self.gold_spans[i];
            let hit = loop {
                match self.pred_spans.get(j) {
                    Some(&p) if p.1 < g.1 => j += 1,
                    Some(&p) => break p == g,
                    None => break false,
                }
            };
            self.correct += usize::from(hit);
            if let Some(list) = self.words {
                if !list.contains_word(gold_words[i]) {
                    self.oov_words += 1;
                    self.correct_oov += usize::from(hit);
                }
            }
            i += 1;
        }
        Ok(())
    }

    /// The scores over all pairs added so far.
    pub fn score(&self) -> Score {
        let precision = ratio(self.correct, self.pred_words);
        let recall = ratio(self.correct, self.gold_words);
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        let with_list = self.words.is_some();
        let iv_words = self.gold_words - self.oov_words;
        let correct_iv = self.correct - self.correct_oov;
        Score {
            lines: self.lines,
            gold_words: self.gold_words,
            pred_words: self.pred_words,
            correct: self.correct,
            precision,
            recall,
            f1,
            oov_words: self.oov_words,
            correct_oov: self.correct_oov,
            oov_rate: with_list.then(|| ratio(self.oov_words, self.gold_words)),
            oov_recall: with_list.then(|| ratio(self.correct_oov, self.oov_words)),
            iv_recall: with_list.then(|| ratio(correct_iv, iv_words)),
        }
    }
}

/// The lines without trailing blank lines.
fn trim_trailing_blank<S: AsRef<str>>(lines: &[S]) -> &[S] {
    let n = lines
        .iter()
        .rposition(|l| !l.as_ref().trim().is_empty())
        .map_or(0, |i| i + 1);
    &lines[..n]
}

/// Scores predicted lines against gold lines (words separated by whitespace).
pub fn score_lines<G: AsRef<str>, P: AsRef<str>>(gold: &[G], pred: &[P], words: Option<&dyn WordSet>) -> Result<Score> {
    let gold = trim_trailing_blank(gold);
    let pred = trim_trailing_blank(pred);
    let mut scorer = Scorer::new(words);
    // Pairs first: a line lost in the middle shows up where it was lost.
    for (g, p) in gold.iter().zip(pred) {
        scorer.add_line(g.as_ref(), p.as_ref())?;
    }
    if gold.len() != pred.len() {
        return Err(Error::Misaligned {
            line: gold.len().min(pred.len()) + 1,
            message: format!("gold has {} lines, prediction has {}", gold.len(), pred.len()),
        });
    }
    Ok(scorer.score())
}

/// Scores texts held in strings (BOM and CRLF handled).
pub fn score_str(gold: &str, pred: &str, words: Option<&dyn WordSet>) -> Result<Score> {
    let gold = crate::corpus::parse_raw(gold)?;
    let pred = crate::corpus::parse_raw(pred)?;
    score_lines(&gold, &pred, words)
}

/// Scores a predicted file against a gold file.
///
/// A misalignment names both files ([`Error::MisalignedFiles`]).
pub fn score_files(gold: impl AsRef<Path>, pred: impl AsRef<Path>, words: Option<&dyn WordSet>) -> Result<Score> {
    let (gold_path, pred_path) = (gold.as_ref(), pred.as_ref());
    let gold = read_raw(gold_path)?;
    let pred = read_raw(pred_path)?;
    score_lines(&gold, &pred, words).map_err(|e| match e {
        Error::Misaligned { line, message } => Error::MisalignedFiles {
            gold: gold_path.display().to_string(),
            pred: pred_path.display().to_string(),
            line,
            message,
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLD: &str = "\u{feff}我们  喜欢  北京  天安门\r\n他  去  上海\r\n\r\n";
    const PRED: &str = "我们 喜欢北京 天安门\n他去 上 海\n";

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn known_answer() {
        let words = parse_word_list("我们\r\n喜欢 12\n北京\n他\n去\n").unwrap();
        let s = score_str(GOLD, PRED, Some(&words)).unwrap();
        assert_eq!((s.gold_words, s.pred_words, s.correct), (7, 6, 2));
        assert!(close(s.precision, 2.0 / 6.0));
        assert!(close(s.recall, 2.0 / 7.0));
        assert!(close(s.f1, 4.0 / 13.0));
        assert_eq!((s.oov_words, s.correct_oov), (2, 1));
        assert!(close(s.oov_rate.unwrap(), 2.0 / 7.0));
        assert!(close(s.oov_recall.unwrap(), 0.5));
        assert!(close(s.iv_recall.unwrap(), 0.2));
        assert_eq!(
            s.report(),
            "P 0.333\nR 0.286\nF1 0.308\nOOV rate 0.286\nOOV recall 0.500\nIV recall 0.200\n"
        );
        let plain = score_str(GOLD, PRED, None).unwrap();
        assert_eq!(plain.report(), "P 0.333\nR 0.286\nF1 0.308\n");
        assert_eq!(plain.oov_rate, None);
        assert_eq!(plain.to_string(), plain.report());
    }

    #[test]
    fn perfect_and_empty() {
        let s = score_str(GOLD, GOLD, None).unwrap();
        assert_eq!(s.f1, 1.0);
        assert_eq!(s.lines, 2);
        let e = score_str("", "\n\n", None).unwrap();
        assert_eq!((e.gold_words, e.precision, e.f1), (0, 0.0, 0.0));
        // Blank lines inside the text pair with blank lines.
        let s = score_str("a  b\n\nc\n", "a b\n\nc\n", None).unwrap();
        assert_eq!((s.lines, s.correct), (3, 3));
    }

    #[test]
    fn misalignment_errors() {
        let err = score_str("a b\nc d\ne\n", "a b\nc d\n", None).unwrap_err();
        assert!(
            matches!(&err, Error::Misaligned { line: 3, message } if message.contains("3 lines")),
            "{err}"
        );
        let err = score_str("a b\nc d\n", "a b\nc x\n", None).unwrap_err();
        assert!(matches!(&err, Error::Misaligned { line: 2, .. }), "{err}");
        assert!(err.to_string().starts_with("line 2:"), "{err}");
        assert!(err.to_string().contains("`d`"), "{err}");
        let err = score_str("ab\n", "a\n", None).unwrap_err();
        assert!(err.to_string().contains("shorter"), "{err}");
        let err = score_str("a\n", "a b\n", None).unwrap_err();
        assert!(err.to_string().contains("longer"), "{err}");
        let err = score_str("a\n\nb\n", "a\nb\n\n", None).unwrap_err();
        assert!(matches!(err, Error::Misaligned { line: 2, .. }));
    }

    #[test]
    fn spans_match_exactly() {
        // Same words at shifted positions do not count.
        let s = score_str("ab  c  d\n", "a  bc  d\n", None).unwrap();
        assert_eq!(s.correct, 1);
        let lex = Lexicon::from_sentences(&[vec!["ab"]]);
        let s = score_str("ab  c\n", "ab  c\n", Some(&lex)).unwrap();
        assert_eq!((s.oov_words, s.correct_oov), (1, 1));
        assert_eq!(s.iv_recall, Some(1.0));
    }
}
