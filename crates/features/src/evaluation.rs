//! Evaluation of predicted label sequences: token and sequence accuracy,
//! per-label precision/recall/F1, and chunk scores computed as `conlleval.pl` does.
//!
//! Sequence labellers are compared on the CoNLL chunk F1 computed by the
//! CoNLL-2000 script `conlleval`, so reproducing its numbers exactly matters
//! more than any cleaner definition of a chunk. This module is a
//! reimplementation of its state machine, described here in our words.
//!
//! **Splitting labels.** A label is cut at its *first* hyphen into a tag and a
//! type: `B-NP` is tag `B`, type `NP`; `B-I-X` is tag `B`, type `I-X`; a label
//! without hyphen (`O`, or `B` in base-NP data, or `PER`) is a tag with the
//! empty type. (Perl quirk kept: a type spelled `0` counts as empty.)
//!
//! **Chunk starts** between the previous token (tag `p`, type `pt`) and the
//! current one (tag `c`, type `ct`), where sequence boundaries act as an `O`:
//! * `c` is `B` after `B`, `I` or `O`;
//! * `c` is `I` after `O`, or `E` after `O`, or `E`/`I` after `E` (IOE);
//! * `c` is neither `O` nor `.` and `ct` differs from `pt`;
//! * `c` is `[` or `]` (one-token chunks of the bracket notation).
//!
//! **Chunk ends** between the previous and current token:
//! * `p` is `B` or `I` and `c` is `B` or `O`;
//! * `p` is `E` and `c` is `E`, `I` or `O`;
//! * `p` is neither `O` nor `.` and `pt` differs from `ct`;
//! * `p` is `[` or `]`.
//!
//! So IOB1 (`I-X I-X B-X`), IOB2 (`B-X I-X`), IOE1/IOE2 (`I-X E-X`) and
//! untyped `B`/`I`/`O` tags all work. `conlleval` itself knows no `S-` tag and
//! would merge `S-X S-X` into one chunk; we add the rules of the widely used
//! IOBES-aware variant: a chunk ends after every `S` and before every `S`
//! following `B`, `I` or `E`; it starts at every `S`, and at `I` or `E` after
//! `S`; and `B` after `E` or `S` both ends and starts. These extra rules only
//! fire on tag pairs involving `S` or `E`-then-`B`, so data in the schemes
//! `conlleval` handles gets exactly its numbers.
//!
//! **Counting.** A gold (predicted) chunk is counted whenever a chunk starts in
//! the gold (predicted) labels. A chunk is *correct* when gold and prediction
//! start a chunk at the same token with the same type, and then end it at the
//! same token without disagreeing on the type in between: while such a
//! candidate is open, a token where exactly one side ends a chunk, or where
//! the two current types differ, cancels it; a token where both end it (and
//! the previous types agree) counts it. The end of each sequence is processed
//! as a token `O`/`O` that is not counted, as `conlleval` does for blank lines.
//!
//! Precision is correct / predicted chunks, recall correct / gold chunks, F1
//! their harmonic mean; each is 0 when its denominator is 0.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

/// Gold and predicted sequences of different lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthMismatch {
    /// Number of gold labels.
    pub gold: usize,
    /// Number of predicted labels.
    pub predicted: usize,
}

impl fmt::Display for LengthMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gold sequence has {} labels but prediction has {}",
            self.gold, self.predicted
        )
    }
}

impl std::error::Error for LengthMismatch {}

/// Counts for precision/recall: gold items, predicted items, correct items.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrfCounts {
    /// Items in the gold data (the support).
    pub gold: usize,
    /// Items in the prediction.
    pub predicted: usize,
    /// Predicted items that are correct.
    pub correct: usize,
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

impl PrfCounts {
    /// correct / predicted, 0 when nothing was predicted.
    pub fn precision(&self) -> f64 {
        ratio(self.correct, self.predicted)
    }

    /// correct / gold, 0 when there is no gold item.
    pub fn recall(&self) -> f64 {
        ratio(self.correct, self.gold)
    }

    /// Harmonic mean of precision and recall, 0 when both are 0.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        }
    }
}

/// Splits a label at its first hyphen into (tag, type), like `conlleval`.
fn split_label(label: &str) -> (&str, &str) {
    match label.split_once('-') {
        // Perl treats the string "0" as false, and conlleval writes
        // `$type = $type ? $type : ""`.
        Some((tag, ty)) => (tag, if ty == "0" { "" } else { ty }),
        None => (label, ""),
    }
}

fn start_of_chunk(prev: &str, tag: &str, prev_ty: &str, ty: &str) -> bool {
    let by_tags = match tag {
        "B" => matches!(prev, "B" | "I" | "O" | "E" | "S"),
        "I" => matches!(prev, "O" | "E" | "S"),
        "E" => matches!(prev, "O" | "E" | "S"),
        "S" => true,
        "[" | "]" => true,
        _ => false,
    };
    by_tags || (tag != "O" && tag != "." && prev_ty != ty)
}

fn end_of_chunk(prev: &str, tag: &str, prev_ty: &str, ty: &str) -> bool {
    let by_tags = match prev {
        "B" | "I" => matches!(tag, "B" | "O" | "S"),
        "E" => matches!(tag, "E" | "I" | "O" | "B" | "S"),
        "S" => true,
        "[" | "]" => true,
        _ => false,
    };
    by_tags || (prev != "O" && prev != "." && prev_ty != ty)
}

/// The chunk state machine of `conlleval`.
#[derive(Debug, Clone)]
struct ChunkCounter {
    last_gold: String,
    last_pred: String,
    in_correct: bool,
    total: PrfCounts,
    by_type: BTreeMap<String, PrfCounts>,
}

impl Default for ChunkCounter {
    fn default() -> Self {
        ChunkCounter {
            last_gold: "O".to_owned(),
            last_pred: "O".to_owned(),
            in_correct: false,
            total: PrfCounts::default(),
            by_type: BTreeMap::new(),
        }
    }
}

fn type_entry<'m>(map: &'m mut BTreeMap<String, PrfCounts>, ty: &str) -> &'m mut PrfCounts {
    map.entry(ty.to_owned()).or_default()
}

impl ChunkCounter {
    fn step(&mut self, gold: &str, pred: &str) {
        let (g, gty) = split_label(gold);
        let (p, pty) = split_label(pred);
        let (lg, lgty) = split_label(&self.last_gold);
        let (lp, lpty) = split_label(&self.last_pred);

        let gold_ends = end_of_chunk(lg, g, lgty, gty);
        let pred_ends = end_of_chunk(lp, p, lpty, pty);
        if self.in_correct {
            if gold_ends && pred_ends && lpty == lgty {
                self.in_correct = false;
                self.total.correct += 1;
                type_entry(&mut self.by_type, lgty).correct += 1;
            } else if gold_ends != pred_ends || pty != gty {
                self.in_correct = false;
            }
        }
        let gold_starts = start_of_chunk(lg, g, lgty, gty);
        let pred_starts = start_of_chunk(lp, p, lpty, pty);
        if gold_starts && pred_starts && gty == pty {
            self.in_correct = true;
        }
        if gold_starts {
            self.total.gold += 1;
            type_entry(&mut self.by_type, gty).gold += 1;
        }
        if pred_starts {
            self.total.predicted += 1;
            type_entry(&mut self.by_type, pty).predicted += 1;
        }
        self.last_gold.clear();
        self.last_gold.push_str(gold);
        self.last_pred.clear();
        self.last_pred.push_str(pred);
    }
}

/// Accumulates evaluation counts over sequences; see the module documentation.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    tokens: usize,
    correct_tokens: usize,
    conll_correct_tokens: usize,
    sequences: usize,
    correct_sequences: usize,
    labels: BTreeMap<String, PrfCounts>,
    chunks: ChunkCounter,
}

impl Evaluation {
    /// An empty evaluation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one sequence of gold and predicted labels (same length).
    pub fn add_sequence(&mut self, gold: &[&str], pred: &[&str]) -> Result<(), LengthMismatch> {
        if gold.len() != pred.len() {
            return Err(LengthMismatch {
                gold: gold.len(),
                predicted: pred.len(),
            });
        }
        let mut all_correct = true;
        for (&g, &p) in gold.iter().zip(pred) {
            self.tokens += 1;
            if g == p {
                self.correct_tokens += 1;
            } else {
                all_correct = false;
            }
            if split_label(g) == split_label(p) {
                self.conll_correct_tokens += 1;
            }
            type_entry(&mut self.labels, g).gold += 1;
            let e = type_entry(&mut self.labels, p);
            e.predicted += 1;
            if g == p {
                e.correct += 1;
            }
            self.chunks.step(g, p);
        }
        // The sequence boundary: an uncounted O/O token.
        self.chunks.step("O", "O");
        self.sequences += 1;
        if all_correct {
            self.correct_sequences += 1;
        }
        Ok(())
    }

    /// The scores so far.
    pub fn summary(&self) -> EvaluationSummary {
        let mut chunks = self.chunks.total;
        let mut chunk_types = self.chunks.by_type.clone();
        // conlleval counts a chunk still open at the end of the input.
        if self.chunks.in_correct {
            chunks.correct += 1;
            let (_, ty) = split_label(&self.chunks.last_gold);
            type_entry(&mut chunk_types, ty).correct += 1;
        }
        EvaluationSummary {
            tokens: self.tokens,
            correct_tokens: self.correct_tokens,
            conll_correct_tokens: self.conll_correct_tokens,
            sequences: self.sequences,
            correct_sequences: self.correct_sequences,
            labels: self.labels.clone(),
            chunks,
            chunk_types,
        }
    }

    /// A readable report: accuracies, a per-label table, then `conlleval`'s lines.
    pub fn report(&self) -> String {
        self.summary().report()
    }
}

/// Evaluation results.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationSummary {
    /// Number of tokens.
    pub tokens: usize,
    /// Tokens whose predicted label equals the gold label.
    pub correct_tokens: usize,
    /// Correct tokens as `conlleval` counts them (equal tag and type after
    /// splitting; differs from `correct_tokens` only through the type-`0` quirk).
    pub conll_correct_tokens: usize,
    /// Number of sequences.
    pub sequences: usize,
    /// Sequences with every label correct.
    pub correct_sequences: usize,
    /// Token-level counts per label, sorted by label.
    pub labels: BTreeMap<String, PrfCounts>,
    /// Chunk counts over all types.
    pub chunks: PrfCounts,
    /// Chunk counts per chunk type (the empty string for untyped chunks), sorted.
    pub chunk_types: BTreeMap<String, PrfCounts>,
}

impl EvaluationSummary {
    /// correct tokens / tokens (0 without tokens).
    pub fn token_accuracy(&self) -> f64 {
        ratio(self.correct_tokens, self.tokens)
    }

    /// fully correct sequences / sequences (0 without sequences).
    pub fn sequence_accuracy(&self) -> f64 {
        ratio(self.correct_sequences, self.sequences)
    }

    /// The report of [`Evaluation::report`].
    pub fn report(&self) -> String {
        let mut s = String::new();
        let _ = self.write_report(&mut s);
        s
    }

    /// Only the `conlleval` part of the report, formatted as `conlleval` prints it.
    pub fn conlleval_report(&self) -> String {
        let mut s = String::new();
        let _ = self.write_conlleval(&mut s);
        s
    }

    fn write_report(&self, s: &mut String) -> fmt::Result {
        writeln!(
            s,
            "token accuracy:    {:6.2}% ({}/{})",
            100.0 * self.token_accuracy(),
            self.correct_tokens,
            self.tokens
        )?;
        writeln!(
            s,
            "sequence accuracy: {:6.2}% ({}/{})",
            100.0 * self.sequence_accuracy(),
            self.correct_sequences,
            self.sequences
        )?;
        writeln!(s)?;
        let width = self.labels.keys().map(|l| l.chars().count()).max().unwrap_or(0).max(5);
        writeln!(
            s,
            "{:<width$}  precision     recall         F1    support  predicted",
            "label"
        )?;
        for (label, c) in &self.labels {
            writeln!(
                s,
                "{:<width$}  {:8.2}%  {:8.2}%  {:8.2}%  {:>9}  {:>9}",
                label,
                100.0 * c.precision(),
                100.0 * c.recall(),
                100.0 * c.f1(),
                c.gold,
                c.predicted
            )?;
        }
        writeln!(s)?;
        self.write_conlleval(s)
    }

    fn write_conlleval(&self, s: &mut String) -> fmt::Result {
        let c = &self.chunks;
        writeln!(
            s,
            "processed {} tokens with {} phrases; found: {} phrases; correct: {}.",
            self.tokens, c.gold, c.predicted, c.correct
        )?;
        if self.tokens > 0 {
            writeln!(
                s,
                "accuracy: {:6.2}%; precision: {:6.2}%; recall: {:6.2}%; FB1: {:6.2}",
                100.0 * ratio(self.conll_correct_tokens, self.tokens),
                100.0 * c.precision(),
                100.0 * c.recall(),
                100.0 * c.f1()
            )?;
        }
        for (ty, c) in &self.chunk_types {
            writeln!(
                s,
                "{:>17}: precision: {:6.2}%; recall: {:6.2}%; FB1: {:6.2}  {}",
                ty,
                100.0 * c.precision(),
                100.0 * c.recall(),
                100.0 * c.f1(),
                c.predicted
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(seqs: &[(&[&str], &[&str])]) -> EvaluationSummary {
        let mut e = Evaluation::new();
        for (g, p) in seqs {
            e.add_sequence(g, p).unwrap();
        }
        e.summary()
    }

    fn gold_chunks(labels: &[&str]) -> usize {
        eval(&[(labels, labels)]).chunks.gold
    }

    fn counts(gold: usize, predicted: usize, correct: usize) -> PrfCounts {
        PrfCounts {
            gold,
            predicted,
            correct,
        }
    }

    /// Hand-computed: 9 tokens, 7 correct; gold chunks PER PER LOC ORG,
    /// predicted PER PER ORG ORG, correct the two PER.
    #[test]
    fn known_answer() {
        let s = eval(&[
            (
                &["B-PER", "I-PER", "O", "B-LOC", "O"],
                &["B-PER", "I-PER", "O", "B-ORG", "O"],
            ),
            (&["B-ORG", "I-ORG", "O", "B-PER"], &["B-ORG", "O", "O", "B-PER"]),
        ]);
        assert_eq!((s.tokens, s.correct_tokens), (9, 7));
        assert_eq!((s.sequences, s.correct_sequences), (2, 0));
        assert_eq!(s.chunks, counts(4, 4, 2));
        assert_eq!(s.chunk_types["PER"], counts(2, 2, 2));
        assert_eq!(s.chunk_types["LOC"], counts(1, 0, 0));
        assert_eq!(s.chunk_types["ORG"], counts(1, 2, 0));
        assert_eq!(s.labels["O"], counts(3, 4, 3));
        assert_eq!(s.labels["B-ORG"], counts(1, 2, 1));
        assert_eq!(s.labels["I-ORG"], counts(1, 0, 0));
        assert!((s.labels["B-ORG"].precision() - 0.5).abs() < 1e-12);
        assert!((s.labels["B-ORG"].f1() - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.token_accuracy() - 7.0 / 9.0).abs() < 1e-12);
        assert_eq!(s.chunks.f1(), 0.5);
        let expected = "\
processed 9 tokens with 4 phrases; found: 4 phrases; correct: 2.
accuracy:  77.78%; precision:  50.00%; recall:  50.00%; FB1:  50.00
              LOC: precision:   0.00%; recall:   0.00%; FB1:   0.00  0
              ORG: precision:   0.00%; recall:   0.00%; FB1:   0.00  2
              PER: precision: 100.00%; recall: 100.00%; FB1: 100.00  2
";
        assert_eq!(s.conlleval_report(), expected);
        let report = s.report();
        assert!(report.starts_with("token accuracy:     77.78% (7/9)\n"), "{report}");
        assert!(report.contains("B-ORG"), "{report}");
        assert!(report.ends_with(expected), "{report}");
    }

    #[test]
    fn chunk_schemes() {
        // IOB2 and IOB1.
        assert_eq!(gold_chunks(&["B-NP", "I-NP", "B-NP", "O", "B-VP"]), 3);
        assert_eq!(gold_chunks(&["I-NP", "I-NP", "B-NP", "O", "I-VP"]), 3);
        // Type change starts a chunk even with I.
        assert_eq!(gold_chunks(&["I-NP", "I-VP"]), 2);
        // IOE1 and IOE2.
        assert_eq!(gold_chunks(&["I-NP", "E-NP", "I-NP", "O"]), 2);
        assert_eq!(gold_chunks(&["E-NP", "I-NP", "E-NP"]), 2);
        // IOBES: single-token chunks and E followed by B.
        assert_eq!(gold_chunks(&["S-X", "S-X", "B-X", "E-X", "B-X", "E-X"]), 4);
        assert_eq!(gold_chunks(&["B-X", "S-X", "I-X", "E-X"]), 3);
        // Untyped B/I/O (base-NP style).
        let s = eval(&[(&["B", "I", "O", "B", "B"], &["B", "I", "O", "B", "I"])]);
        assert_eq!(s.chunks, counts(3, 2, 1));
        assert_eq!(s.chunk_types[""], counts(3, 2, 1));
        // Types may contain hyphens: split at the first one.
        let s = eval(&[(&["B-I-X", "I-I-X"], &["B-I-X", "I-I-X"])]);
        assert_eq!(s.chunk_types["I-X"], counts(1, 1, 1));
        // Chunks do not cross sequence boundaries.
        let s = eval(&[(&["B-X"], &["B-X"]), (&["I-X"], &["I-X"])]);
        assert_eq!(s.chunks, counts(2, 2, 2));
    }

    #[test]
    fn boundary_disagreement_is_not_correct() {
        // Same start and type, different end.
        let s = eval(&[(&["B-NP", "I-NP", "O"], &["B-NP", "B-NP", "O"])]);
        assert_eq!(s.chunks, counts(1, 2, 0));
        // Same span but a type disagreement inside.
        let s = eval(&[(&["B-NP", "I-NP"], &["B-NP", "I-VP"])]);
        assert_eq!(s.chunks.correct, 0);
    }

    #[test]
    fn empty_and_mismatch() {
        let mut e = Evaluation::new();
        assert_eq!(
            e.add_sequence(&["O"], &[]),
            Err(LengthMismatch { gold: 1, predicted: 0 })
        );
        let s = e.summary();
        assert_eq!((s.tokens, s.sequences), (0, 0));
        assert_eq!(s.token_accuracy(), 0.0);
        assert_eq!(
            s.conlleval_report(),
            "processed 0 tokens with 0 phrases; found: 0 phrases; correct: 0.\n"
        );
        e.add_sequence(&[], &[]).unwrap();
        assert_eq!(e.summary().correct_sequences, 1);
    }
}
