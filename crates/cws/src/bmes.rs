//! Viterbi decoding specialized to the B/M/E/S scheme, the segmenter's last
//! step for unconstrained text.
//!
//! The core Viterbi ([`chaincrf_core::ChainWorkspace`]) handles any number of
//! labels, any transition matrix, constraints and varying transitions. A
//! B/M/E/S model forbids half of the 16 tag pairs (`B→B`, `B→S`, `M→B`,
//! `M→S`, `E→M`, `E→E`, `S→M`, `S→E`), both starts in the middle of a word
//! and both ends in the middle of one: every tag has exactly two possible
//! predecessors. A forbidden pair scores −∞ and can never be a strict
//! maximum, so leaving it out changes nothing but the work: 8 additions and
//! 4 comparisons per character instead of 16 and 16, no lifting of the
//! potentials into a second buffer, and back-pointers one byte wide.
//!
//! The result is the generic decoder's, bit for bit: the same sums in the same
//! order, maxima taken with the same strict `>` over predecessors in
//! increasing order (ties keep the smaller tag), and each row shifted by its
//! maximum under the same rule as the max-plus semiring's `normalize` (only
//! once it reaches 2²⁰ in magnitude). Potentials it does not cover (another
//! pattern of forbidden pairs, a non-finite score) are refused, and the caller
//! falls back to the generic decoder, which also reports their errors. A
//! proptest compares the two on random potentials, ties and huge scores
//! included.

use chaincrf_core::Potentials;

/// B/M/E/S tag ids (the order of [`crate::TagScheme::Bmes`]'s labels).
const B: usize = 0;
const M: usize = 1;
const E: usize = 2;
const S: usize = 3;

/// The two predecessors of each tag, in increasing order.
const PREDECESSORS: [[usize; 2]; 4] = [[E, S], [B, M], [B, M], [E, S]];

/// Reusable buffers of the specialized decoder.
#[derive(Clone, Debug, Default)]
pub(crate) struct BmesViterbi {
    /// Per position `t ≥ 1` and tag: the predecessor of the best path.
    from: Vec<[u8; 4]>,
}

/// Shifts `row` by its maximum exactly when the max-plus semiring's
/// `normalize` does; `false` when every entry is −∞.
#[inline(always)]
fn normalize(row: &mut [f64; 4]) -> bool {
    let m = row.iter().fold(f64::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    if m == f64::NEG_INFINITY {
        return false;
    }
    if m.abs() >= 1_048_576.0 {
        for x in row.iter_mut() {
            *x -= m;
        }
    }
    true
}

impl BmesViterbi {
    /// Writes the best tag path of `p` into `tags` and returns `true`, or
    /// returns `false` (leaving `tags` unspecified) when `p` is not a B/M/E/S
    /// chain this decoder covers: four labels, fixed transitions with exactly
    /// the B/M/E/S pairs, starts and ends forbidden (−∞) and every other
    /// score finite.
    pub(crate) fn decode<P: Potentials + ?Sized>(&mut self, p: &P, tags: &mut Vec<u32>) -> bool {
        if p.num_labels() != 4 || p.has_varying_transitions() {
            return false;
        }
        let n = p.len();
        let Some(emissions) = p.emission_rows().filter(|e| e.len() == n * 4) else {
            return false;
        };
        let mut trans = [0.0; 16];
        p.transitions_into(&mut trans);
        let start: [f64; 4] = std::array::from_fn(|y| p.start(y));
        let end: [f64; 4] = std::array::from_fn(|y| p.end(y));
        let allowed_pair = |i: usize, j: usize| PREDECESSORS[j].contains(&i);
        let pattern_ok = (0..16).all(|x| {
            let (i, j) = (x / 4, x % 4);
            if allowed_pair(i, j) {
                trans[x].is_finite()
            } else {
                trans[x] == f64::NEG_INFINITY
            }
        }) && [start[B], start[S], end[E], end[S]].iter().all(|x| x.is_finite())
            && [start[M], start[E], end[B], end[M]]
                .iter()
                .all(|&x| x == f64::NEG_INFINITY);
        if !pattern_ok || !emissions.iter().all(|x| x.is_finite()) {
            return false;
        }
        tags.clear();
        if n == 0 {
            return true;
        }
        self.from.clear();
        self.from.resize(n, [0; 4]);
        let row = |t: usize| -> [f64; 4] { emissions[t * 4..t * 4 + 4].try_into().expect("four scores") };
        let e0 = row(0);
        let mut alpha: [f64; 4] = std::array::from_fn(|y| start[y] + e0[y]);
        if !normalize(&mut alpha) {
            return false;
        }
        for (t, from) in self.from.iter_mut().enumerate().skip(1) {
            let e = row(t);
            let mut next = [0.0; 4];
            for j in 0..4 {
                let mut best = f64::NEG_INFINITY;
                let mut arg = 0u8;
                for &i in &PREDECESSORS[j] {
                    let v = alpha[i] + trans[i * 4 + j];
                    if v > best {
                        best = v;
                        arg = i as u8;
                    }
                }
                next[j] = best + e[j];
                from[j] = arg;
            }
            alpha = next;
            if !normalize(&mut alpha) {
                return false;
            }
        }
        let mut last = 0;
        let mut best = f64::NEG_INFINITY;
        for y in 0..4 {
            let v = alpha[y] + end[y];
            if v > best {
                best = v;
                last = y;
            }
        }
        if best == f64::NEG_INFINITY {
            return false;
        }
        tags.resize(n, 0);
        tags[n - 1] = last as u32;
        for t in (1..n).rev() {
            tags[t - 1] = u32::from(self.from[t][tags[t] as usize]);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TagScheme;
    use chaincrf_core::chain::ChainWorkspace;
    use chaincrf_core::{MaxPlus, Potentials};
    use proptest::prelude::*;

    /// Fixed-transition potentials given as plain arrays.
    #[derive(Debug)]
    struct Plain {
        emissions: Vec<f64>,
        trans: [f64; 16],
        start: [f64; 4],
        end: [f64; 4],
    }

    impl Potentials for Plain {
        fn len(&self) -> usize {
            self.emissions.len() / 4
        }
        fn num_labels(&self) -> usize {
            4
        }
        fn emission(&self, t: usize, y: usize) -> f64 {
            self.emissions[t * 4 + y]
        }
        fn transition(&self, i: usize, j: usize) -> f64 {
            self.trans[i * 4 + j]
        }
        fn start(&self, y: usize) -> f64 {
            self.start[y]
        }
        fn end(&self, y: usize) -> f64 {
            self.end[y]
        }
        fn emission_rows(&self) -> Option<&[f64]> {
            Some(&self.emissions)
        }
    }

    /// B/M/E/S potentials from free scores: forbidden pairs, starts and ends
    /// set to −∞ as the segmenter's model structure sets them.
    fn bmes(emissions: Vec<f64>, free: [f64; 24]) -> Plain {
        let s = TagScheme::Bmes;
        let mut p = Plain {
            emissions,
            trans: free[..16].try_into().unwrap(),
            start: free[16..20].try_into().unwrap(),
            end: free[20..].try_into().unwrap(),
        };
        for i in 0..4u32 {
            for j in 0..4u32 {
                if !s.allowed_transition(i, j) {
                    p.trans[(i * 4 + j) as usize] = f64::NEG_INFINITY;
                }
            }
            if !s.allowed_start(i) {
                p.start[i as usize] = f64::NEG_INFINITY;
            }
            if !s.allowed_end(i) {
                p.end[i as usize] = f64::NEG_INFINITY;
            }
        }
        p
    }

    fn generic(p: &Plain) -> Vec<u32> {
        let path = ChainWorkspace::<MaxPlus>::new().viterbi(p).unwrap();
        path.labels.iter().map(|&y| y as u32).collect()
    }

    /// Scores drawn from a handful of small integers (ties everywhere),
    /// ordinary reals, or reals near ±10⁶·n (rows shifted by their maximum).
    fn score() -> impl Strategy<Value = f64> {
        prop_oneof![
            (-2i32..3).prop_map(f64::from),
            -8.0f64..8.0,
            (-3.0e6f64..3.0e6).prop_map(|x| x.round()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn equals_the_generic_viterbi(
            emissions in (0usize..40).prop_flat_map(|n| proptest::collection::vec(score(), n * 4)),
            free in proptest::array::uniform24(score()),
        ) {
            let p = bmes(emissions, free);
            let mut tags = vec![7; 3];
            prop_assert!(BmesViterbi::default().decode(&p, &mut tags));
            prop_assert_eq!(tags, generic(&p));
        }
    }

    #[test]
    fn long_runs_are_shifted_as_the_generic_decoder_shifts_them() {
        // 100k positions of large scores: rows pass 2²⁰ and get shifted.
        let n: usize = 100_000;
        let emissions: Vec<f64> = (0..n * 4)
            .map(|i| ((i * 7919 % 13) as f64 - 6.0) * 1000.0 + (i % 3) as f64 * 0.25)
            .collect();
        let free: [f64; 24] = std::array::from_fn(|i| (i % 5) as f64 - 2.0);
        let p = bmes(emissions, free);
        let mut tags = Vec::new();
        assert!(BmesViterbi::default().decode(&p, &mut tags));
        assert_eq!(tags, generic(&p));
    }

    #[test]
    fn other_potentials_are_refused() {
        let free: [f64; 24] = std::array::from_fn(|i| i as f64 * 0.1);
        let mut tags = Vec::new();
        let ok = bmes(vec![0.5; 12], free);
        assert!(BmesViterbi::default().decode(&ok, &mut tags));
        // A forbidden pair given a score, an allowed one forbidden, a start
        // allowed in a word's middle, a non-finite emission: all refused.
        let mut p = bmes(vec![0.5; 12], free);
        p.trans[B * 4 + B] = 0.0;
        assert!(!BmesViterbi::default().decode(&p, &mut tags));
        let mut p = bmes(vec![0.5; 12], free);
        p.trans[B * 4 + M] = f64::NEG_INFINITY;
        assert!(!BmesViterbi::default().decode(&p, &mut tags));
        let mut p = bmes(vec![0.5; 12], free);
        p.start[M] = 0.0;
        assert!(!BmesViterbi::default().decode(&p, &mut tags));
        let mut p = bmes(vec![0.5; 12], free);
        p.emissions[5] = f64::NAN;
        assert!(!BmesViterbi::default().decode(&p, &mut tags));
        let mut p = bmes(vec![0.5; 12], free);
        p.emissions[5] = f64::INFINITY;
        assert!(!BmesViterbi::default().decode(&p, &mut tags));
        // An empty chain has the empty path.
        let p = bmes(Vec::new(), free);
        assert!(BmesViterbi::default().decode(&p, &mut tags));
        assert!(tags.is_empty());
    }
}
