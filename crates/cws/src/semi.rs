//! Semi-Markov segmentation: the character tagger's scores read as scores of
//! whole words, plus features of each candidate word as a unit.
//!
//! A B/M/E/S character tagging and a segmentation into words are the same
//! thing, so the chain's scores can be summed word by word. With two segment
//! labels, [`SINGLE`] (a one-character word, tag S) and [`MULTI`] (a longer
//! word, tags B M… E), a word `[i, i + d)` scores
//!
//! * `S`: `e(i, S)`;
//! * `B M… E`: `e(i, B) + Σ e(j, M) + e(i + d − 1, E)` plus the transitions
//!   inside the word (`B→E`, or `B→M`, `(d − 3)·M→M`, `M→E`),
//!
//! and the transitions between words are the chain's `S/E → S/B`
//! transitions, the start and end scores its `S/B` starts and `S/E` ends.
//! Every segmentation then scores exactly what its tag sequence scores in the
//! chain, so with no segment features the semi-Markov model *is* the chain
//! (restricted to words of at most `L` characters; tested). A hybrid model
//! (Andrew 2006) adds a score per candidate word from [`SegmentFeatures`]:
//! whole-word evidence that character tags can only approximate (is this a
//! training word, how often does the string stand as a word, ...; see
//! [`crate::words`]). Decoding and training run on the core's semi-Markov
//! dynamic program (`chaincrf_core::semimarkov`), over the same semirings as
//! the chain.
//!
//! Words longer than `L` characters: in training, such a gold word is cut
//! into the fewest even pieces of at most `L` (0.006% of the PKU training
//! words at `L = 10`); in decoding, an unforced word longer than `L` (a long
//! number without `--keep-latin`, say) comes out in pieces, where the
//! character model could keep it whole;
//! in decoding, a word forced by the user dictionary or a Latin/number run is
//! allowed at any length (the maximum length grows for that input, up to 64
//! characters; past that the model's character part decodes that input alone,
//! without the word features, so memory stays linear), so forced words come
//! out whole as in the chain. Decoding keeps `O(n·L)` scores per input line
//! (a few hundred bytes per character at `L = 10`): split very long lines.
//!
//! [`SegmentFeatures`], [`HybridPotentials`] and [`segment_scores_into`] are
//! the pieces for a semi-Markov segmenter with one's own word features over
//! the core's dynamic program; the trainer (`semi_train`) and the model file
//! use the built-in [`WordFeatures`] only.

use crate::words::{WordFeatures, WordStats};
use chaincrf_core::semimarkov::SegmentPotentials;
use chaincrf_core::Potentials;
use serde::{Deserialize, Serialize};

/// Segment label of a one-character word (tag S).
pub const SINGLE: usize = 0;
/// Segment label of a word of two or more characters (tags B M… E).
pub const MULTI: usize = 1;

// B/M/E/S tag ids (see `crate::scheme`).
const B: usize = 0;
const M: usize = 1;
const E: usize = 2;
const S: usize = 3;

/// Features of candidate segments: a user's own segment-level extractor
/// plugs in here, as a character-level one does through
/// `chaincrf_features::FeatureExtractor`.
///
/// Feature ids are dense (`0..num_features`), each one weight of the model.
/// [`extract`](Self::extract) sees a whole input at once, so it can share
/// work between candidates (one dictionary walk per start position gives
/// every length).
pub trait SegmentFeatures: Sync {
    /// Number of feature ids.
    fn num_features(&self) -> usize;
    /// The longest candidate the features describe.
    fn max_len(&self) -> usize;
    /// Calls `sink(start, len, feature)` for the features of every candidate
    /// segment `chars[start..start + len]` with `1 ≤ len ≤ max_len` (any
    /// order; a feature may fire more than once, each time adding its
    /// weight). `chars` are normalized characters.
    fn extract(&self, chars: &[char], sink: &mut dyn FnMut(usize, usize, u32));
}

/// The chain's B/M/E/S scores as semi-Markov potentials over the segment
/// labels [`SINGLE`] and [`MULTI`], plus optional segment scores (see the
/// module docs). Buffers are reused across inputs.
#[derive(Clone, Debug, Default)]
pub struct HybridPotentials {
    n: usize,
    max_len: usize,
    rows: Vec<f64>,
    transitions: [f64; 4],
    start: [f64; 2],
    end: [f64; 2],
}

/// One input's chain scores in B/M/E/S order: `n × 4` emissions, the `4 × 4`
/// transitions, start and end scores.
#[derive(Clone, Copy, Debug)]
pub struct ChainScores<'a> {
    /// `n × 4`, row-major.
    pub emissions: &'a [f64],
    /// `4 × 4`, from row tag to column tag.
    pub transitions: &'a [f64],
    /// Start score per tag.
    pub start: &'a [f64],
    /// End score per tag.
    pub end: &'a [f64],
}

impl HybridPotentials {
    /// Empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fills the potentials of an input from its chain scores and, when
    /// `segment_scores` is not empty, one extra score per candidate at
    /// `i·max_len + d − 1` (added to both labels; `n·max_len` values).
    ///
    /// # Panics
    /// When the slices do not have the sizes above or `max_len` is 0.
    pub fn fill(&mut self, chain: ChainScores<'_>, max_len: usize, segment_scores: &[f64]) {
        assert!(max_len >= 1, "the maximum word length must be at least 1");
        assert_eq!(chain.emissions.len() % 4, 0, "B/M/E/S emissions have 4 columns");
        let n = chain.emissions.len() / 4;
        assert!(
            segment_scores.is_empty() || segment_scores.len() == n * max_len,
            "segment scores: {} values for n = {n}, L = {max_len}",
            segment_scores.len()
        );
        let (e, t) = (chain.emissions, chain.transitions);
        self.n = n;
        self.max_len = max_len;
        self.rows.clear();
        self.rows.resize(n * max_len * 2, f64::NEG_INFINITY);
        let inner_two = t[B * 4 + E];
        let (b_m, m_m, m_e) = (t[B * 4 + M], t[M * 4 + M], t[M * 4 + E]);
        for i in 0..n {
            let row = &mut self.rows[i * max_len * 2..(i + 1) * max_len * 2];
            let extra = |d: usize| {
                if segment_scores.is_empty() {
                    0.0
                } else {
                    segment_scores[i * max_len + d - 1]
                }
            };
            row[SINGLE] = e[i * 4 + S] + extra(1);
            // Σ e(j, M) + (d − 3)·M→M over the middle characters so far.
            let mut middle = 0.0;
            for d in 2..=max_len.min(n - i) {
                let last = i + d - 1;
                let inner = if d == 2 {
                    inner_two
                } else {
                    middle += e[(last - 1) * 4 + M];
                    if d > 3 {
                        middle += m_m;
                    }
                    b_m + middle + m_e
                };
                row[(d - 1) * 2 + MULTI] = e[i * 4 + B] + inner + e[last * 4 + E] + extra(d);
            }
        }
        self.transitions = [t[S * 4 + S], t[S * 4 + B], t[E * 4 + S], t[E * 4 + B]];
        self.start = [chain.start[S], chain.start[B]];
        self.end = [chain.end[S], chain.end[E]];
    }

    /// Fills from any chain potentials with the B/M/E/S labels (see
    /// [`fill`](Self::fill)); `scratch` holds the gathered scores.
    pub fn fill_from<P: Potentials + ?Sized>(
        &mut self,
        chain: &P,
        max_len: usize,
        segment_scores: &[f64],
        scratch: &mut Vec<f64>,
    ) {
        let n = chain.len();
        scratch.clear();
        scratch.extend((0..n).flat_map(|t| (0..4).map(move |y| chain.emission(t, y))));
        let mut t = [0.0; 16];
        chain.transitions_into(&mut t);
        let start: [f64; 4] = std::array::from_fn(|y| chain.start(y));
        let end: [f64; 4] = std::array::from_fn(|y| chain.end(y));
        self.fill(
            ChainScores {
                emissions: scratch,
                transitions: &t,
                start: &start,
                end: &end,
            },
            max_len,
            segment_scores,
        );
    }
}

/// Reusable buffers of [`HybridPotentials::best_segmentation`].
#[derive(Clone, Debug, Default)]
pub struct HybridViterbi {
    /// Per boundary `t`, the best score of a prefix whose last segment ends
    /// at `t`, by its label.
    alpha: Vec<[f64; 2]>,
    /// Per boundary `t`, the best score of a prefix ending at `t` followed
    /// by a segment of each label (the transition included).
    gamma: Vec<[f64; 2]>,
}

/// Where the core's max-plus pass starts shifting rows by their maximum.
const SHIFT_THRESHOLD: f64 = 1_048_576.0;

impl HybridPotentials {
    /// The best segmentation, as the core's semi-Markov Viterbi
    /// (`chaincrf_core::semimarkov::SemiMarkovWorkspace::viterbi`) finds it
    /// on these potentials: the same sums in the same order and the same
    /// choices on ties (the smaller label, then the shorter last segment),
    /// for two labels and the score rows read in place instead of copied
    /// and checked. Returns `None`, leaving the work to the core, where that
    /// pass would do anything else: an empty input, a score of 2²⁰ or more in
    /// magnitude (the core then shifts its rows), or no segmentation at all.
    /// Segments are `(start, len, label)`.
    pub fn best_segmentation(&self, work: &mut HybridViterbi, out: &mut Vec<(usize, usize, usize)>) -> Option<()> {
        let (n, l) = (self.n, self.max_len);
        out.clear();
        let plain = |row: [f64; 2]| {
            let m = if row[1] > row[0] { row[1] } else { row[0] };
            m != f64::NEG_INFINITY && m.abs() < SHIFT_THRESHOLD
        };
        let finite = |x: f64| x.is_finite() || x == f64::NEG_INFINITY;
        if n == 0
            || !self
                .start
                .iter()
                .chain(&self.end)
                .chain(&self.transitions)
                .all(|&x| finite(x))
            || !plain(self.start)
        {
            return None;
        }
        let HybridViterbi { alpha, gamma } = work;
        alpha.clear();
        alpha.resize(n + 1, [f64::NEG_INFINITY; 2]);
        gamma.clear();
        gamma.resize(n, [f64::NEG_INFINITY; 2]);
        gamma[0] = self.start;
        let t = &self.transitions;
        for end in 1..=n {
            let mut o = [f64::NEG_INFINITY; 2];
            for d in 1..=l.min(end) {
                let i = end - d;
                let s = &self.rows[(i * l + d - 1) * 2..][..2];
                let g = gamma[i];
                o[0] = o[0].max(g[0] + s[0]);
                o[1] = o[1].max(g[1] + s[1]);
            }
            if !plain(o) {
                return None;
            }
            alpha[end] = o;
            if end < n {
                let mut g = [f64::NEG_INFINITY; 2];
                for (j, gj) in g.iter_mut().enumerate() {
                    for (y, &a) in o.iter().enumerate() {
                        let v = a + t[y * 2 + j];
                        if v > *gj {
                            *gj = v;
                        }
                    }
                }
                if !plain(g) {
                    return None;
                }
                gamma[end] = g;
            }
        }
        // Walk back: the last label, then per segment its length and the
        // label before it; the first of equal scores wins.
        let argmax = |it: &mut dyn Iterator<Item = f64>| {
            let (mut best, mut arg) = (f64::NEG_INFINITY, 0);
            for (i, v) in it.enumerate() {
                if v > best {
                    (best, arg) = (v, i);
                }
            }
            arg
        };
        let mut y = argmax(&mut (0..2).map(|y| alpha[n][y] + self.end[y]));
        let mut end = n;
        loop {
            let d = 1 + argmax(&mut (1..=l).map(|d| {
                if d <= end {
                    let i = end - d;
                    gamma[i][y] + self.rows[(i * l + d - 1) * 2 + y]
                } else {
                    f64::NEG_INFINITY
                }
            }));
            let i = end - d;
            out.push((i, d, y));
            if i == 0 {
                break;
            }
            let next = y;
            y = argmax(&mut (0..2).map(|yp| alpha[i][yp] + t[yp * 2 + next]));
            end = i;
        }
        out.reverse();
        Some(())
    }
}

impl SegmentPotentials for HybridPotentials {
    fn len(&self) -> usize {
        self.n
    }
    fn num_labels(&self) -> usize {
        2
    }
    fn max_len(&self) -> usize {
        self.max_len
    }
    #[inline]
    fn segment(&self, i: usize, d: usize, y: usize) -> f64 {
        self.rows[(i * self.max_len + d - 1) * 2 + y]
    }
    #[inline]
    fn transition(&self, i: usize, j: usize) -> f64 {
        self.transitions[i * 2 + j]
    }
    fn start(&self, y: usize) -> f64 {
        self.start[y]
    }
    fn end(&self, y: usize) -> f64 {
        self.end[y]
    }
    fn segment_rows(&self) -> Option<&[f64]> {
        Some(&self.rows)
    }
}

/// What a semi-Markov segmenter model stores beside its character model:
/// the longest word it considers, the word statistics its features read
/// and one weight per feature of [`WordFeatures`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SemiModel {
    pub(crate) max_len: usize,
    pub(crate) stats: WordStats,
    pub(crate) weights: Vec<f32>,
}

impl SemiModel {
    /// The longest word (in characters) scored by the word features.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The features, over the word statistics of the whole training text.
    pub fn features(&self) -> WordFeatures<'_> {
        WordFeatures::new(self.stats.view(None), self.max_len)
    }

    /// The feature weights, widened.
    pub fn weights(&self) -> Vec<f64> {
        self.weights.iter().map(|&x| f64::from(x)).collect()
    }

    /// Checks a model read from a file: sizes that fit.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        if self.max_len == 0 || self.max_len > WordStats::MAX_MAX_LEN {
            return Err(format!("word length limit {} is out of range", self.max_len));
        }
        let expected = self.features().num_features();
        if self.weights.len() != expected {
            return Err(format!(
                "{} word-feature weights, expected {expected}",
                self.weights.len()
            ));
        }
        if self.weights.iter().any(|w| !w.is_finite()) {
            return Err("a word-feature weight is not finite".into());
        }
        Ok(())
    }
}

/// The segment scores of `chars` under `features` and `weights` (one per
/// feature id), `n·max_len` values as [`HybridPotentials::fill`] takes them
/// (0 for candidates the features do not reach).
pub fn segment_scores_into(
    features: &dyn SegmentFeatures,
    weights: &[f64],
    chars: &[char],
    max_len: usize,
    out: &mut Vec<f64>,
) {
    out.clear();
    out.resize(chars.len() * max_len, 0.0);
    features.extract(chars, &mut |i, d, f| {
        if d >= 1 && d <= max_len {
            if let (Some(o), Some(w)) = (out.get_mut(i * max_len + d - 1), weights.get(f as usize)) {
                *o += w;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaincrf_core::semimarkov::{self, Segment};
    use chaincrf_core::{chain, DenseChain};

    /// A random B/M/E/S chain with the scheme's illegal pairs at -inf.
    fn chain(n: usize, seed: u64) -> DenseChain {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((x >> 33) as f64 / (1u64 << 31) as f64) * 4.0 - 2.0
        };
        let emissions: Vec<Vec<f64>> = (0..n).map(|_| (0..4).map(|_| next()).collect()).collect();
        let legal = |a: usize, b: usize| {
            matches!(
                (a, b),
                (B, M) | (B, E) | (M, M) | (M, E) | (E, B) | (E, S) | (S, B) | (S, S)
            )
        };
        let transitions: Vec<Vec<f64>> = (0..4)
            .map(|a| {
                (0..4)
                    .map(|b| if legal(a, b) { next() } else { f64::NEG_INFINITY })
                    .collect()
            })
            .collect();
        let start = [next(), f64::NEG_INFINITY, f64::NEG_INFINITY, next()];
        let end = [f64::NEG_INFINITY, f64::NEG_INFINITY, next(), next()];
        DenseChain::from_rows(&emissions, &transitions)
            .unwrap()
            .with_start(&start)
            .unwrap()
            .with_end(&end)
            .unwrap()
    }

    #[test]
    fn without_segment_features_the_hybrid_is_the_chain() {
        for n in 1..=7 {
            for seed in 0..5 {
                let c = chain(n, seed * 31 + n as u64);
                let mut p = HybridPotentials::new();
                let mut scratch = Vec::new();
                // L = n: every segmentation is reachable.
                p.fill_from(&c, n, &[], &mut scratch);
                let chain_z = chain::log_partition(&c).unwrap();
                let semi_z = semimarkov::log_partition(&p).unwrap();
                assert!((chain_z - semi_z).abs() < 1e-10, "n={n}: {chain_z} vs {semi_z}");
                let best_chain = chain::viterbi(&c).unwrap();
                let best_semi = semimarkov::viterbi(&p).unwrap();
                assert!((best_chain.score - best_semi.score).abs() < 1e-10);
                let mut tags = Vec::new();
                for s in &best_semi.segments {
                    crate::TagScheme::Bmes.word_tags(s.len, &mut tags);
                }
                assert_eq!(tags, best_chain.labels.iter().map(|&y| y as u32).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn segment_scores_add_to_exactly_their_words() {
        let c = chain(5, 7);
        let mut p = HybridPotentials::new();
        let mut scratch = Vec::new();
        let l = 3;
        let mut extra = vec![0.0; 5 * l];
        extra[l + 1] = 2.5; // the word [1, 3)
        p.fill_from(&c, l, &[], &mut scratch);
        let plain = p.clone();
        p.fill_from(&c, l, &extra, &mut scratch);
        let seg = |start, len| Segment {
            start,
            len,
            label: if len == 1 { SINGLE } else { MULTI },
        };
        let with = [seg(0, 1), seg(1, 2), seg(3, 2)];
        let without = [seg(0, 2), seg(2, 3)];
        let s = |p: &HybridPotentials, g: &[Segment]| semimarkov::segmentation_score(p, g).unwrap();
        assert!((s(&p, &with) - s(&plain, &with) - 2.5).abs() < 1e-12);
        assert_eq!(s(&p, &without), s(&plain, &without));
    }

    /// Random chain and segment scores on a coarse grid (so that ties are
    /// common) or of any size, decoded by the two-label decoder and by the
    /// core's: the same segmentation whenever the former answers, and an
    /// answer whenever no score reaches the core's shifting threshold.
    #[test]
    fn the_two_label_decoder_is_the_core_viterbi() {
        let mut x = 5u64;
        let mut next = move |coarse: bool, scale: f64| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            if coarse {
                ((u * 5.0).floor() - 2.0) * scale
            } else {
                (u - 0.5) * scale
            }
        };
        let (mut answered, mut declined) = (0, 0);
        for case in 0..3000 {
            let n = 1 + case % 23;
            let l = 1 + case % 7;
            let coarse = case % 3 != 0;
            let scale = match case % 50 {
                0 => 3.0e5,
                1 => 1.0e7,
                _ => 4.0,
            };
            let emissions: Vec<f64> = (0..n * 4).map(|_| next(coarse, scale)).collect();
            let transitions: Vec<f64> = (0..16).map(|_| next(coarse, scale)).collect();
            let start: Vec<f64> = (0..4).map(|_| next(coarse, scale)).collect();
            let end: Vec<f64> = (0..4).map(|_| next(coarse, scale)).collect();
            let extra: Vec<f64> = (0..n * l).map(|_| next(coarse, scale)).collect();
            let mut p = HybridPotentials::new();
            p.fill(
                ChainScores {
                    emissions: &emissions,
                    transitions: &transitions,
                    start: &start,
                    end: &end,
                },
                l,
                if case % 2 == 0 { &extra } else { &[] },
            );
            let core = semimarkov::viterbi(&p).unwrap();
            let core: Vec<_> = core.segments.iter().map(|s| (s.start, s.len, s.label)).collect();
            let mut got = Vec::new();
            match p.best_segmentation(&mut HybridViterbi::default(), &mut got) {
                Some(()) => {
                    assert_eq!(got, core, "case {case}");
                    answered += 1;
                }
                None => {
                    assert!(scale > 4.0, "case {case}: small scores must be decoded");
                    declined += 1;
                }
            }
        }
        assert!(
            answered > 2800 && declined > 0,
            "{answered} answered, {declined} declined"
        );
    }
}
