//! Viterbi decoding specialized to the segmenter's tag schemes (B/M/E/S and
//! the six tags), the segmenter's last step for unconstrained text.
//!
//! The core Viterbi ([`chaincrf_core::ChainWorkspace`]) handles any number of
//! labels, any transition matrix, constraints and varying transitions. A
//! segmentation scheme forbids most tag pairs: in B/M/E/S half of the 16
//! (`B→B`, `B→S`, `M→B`, ...), in the six-tag scheme 24 of 36 (`B2` follows
//! only `B`, `B3` only `B2`), and the starts and ends in the middle of a
//! word. A forbidden pair scores −∞ and can never be a strict maximum, so
//! leaving it out changes nothing but the work: in B/M/E/S 8 additions and
//! 4 comparisons per character instead of 16 and 16, in the six-tag scheme
//! 12 and 6 instead of 36 and 36; no lifting of the potentials into a second
//! buffer, and back-pointers one byte wide.
//!
//! The result is the generic decoder's, bit for bit: the same sums in the same
//! order, maxima taken with the same strict `>` over predecessors in
//! increasing order (ties keep the smaller tag), and each row shifted by its
//! maximum under the same rule as the max-plus semiring's `normalize` (only
//! once it reaches 2²⁰ in magnitude). Potentials it does not cover (another
//! pattern of forbidden pairs, a non-finite score) are refused, and the caller
//! falls back to the generic decoder, which also reports their errors. A
//! proptest per scheme compares the two on random potentials, ties and huge
//! scores included.

use crate::TagScheme;
use chaincrf_core::Potentials;

/// The most tags of a scheme.
const MAX_TAGS: usize = 6;

/// Reusable buffers of the specialized decoder.
#[derive(Clone, Debug, Default)]
pub(crate) struct TagViterbi {
    /// Per position `t ≥ 1` and tag: the predecessor of the best path.
    from: Vec<[u8; MAX_TAGS]>,
}

/// What a scheme allows: each tag's `P` predecessors in increasing order,
/// its starts and ends. A tag with fewer repeats its last one: an equal
/// score is never a strict maximum, so the repeat changes nothing, and every
/// tag's loop has the same fixed length (unrolled).
struct Allowed<const K: usize, const P: usize> {
    predecessors: [[usize; P]; K],
    start: [bool; K],
    end: [bool; K],
}

// Tag ids: B/M/E/S, and the six tags.
const B: usize = 0;
const M: usize = 1;
const E: usize = 2;
const S: usize = 3;
const SX_B: usize = 0;
const SX_B2: usize = 1;
const SX_B3: usize = 2;
const SX_M: usize = 3;
const SX_E: usize = 4;
const SX_S: usize = 5;

/// What B/M/E/S allows, as constants (the decoder's loops then unroll);
/// a test holds them to [`TagScheme`]'s rules.
const BMES: Allowed<4, 2> = Allowed {
    predecessors: [[E, S], [B, M], [B, M], [E, S]],
    start: [true, false, false, true],
    end: [false, false, true, true],
};

/// What the six-tag scheme allows.
const SIX_TAG: Allowed<6, 4> = Allowed {
    predecessors: [
        [SX_E, SX_S, SX_S, SX_S],
        [SX_B, SX_B, SX_B, SX_B],
        [SX_B2, SX_B2, SX_B2, SX_B2],
        [SX_B3, SX_M, SX_M, SX_M],
        [SX_B, SX_B2, SX_B3, SX_M],
        [SX_E, SX_S, SX_S, SX_S],
    ],
    start: [true, false, false, false, false, true],
    end: [false, false, false, false, true, true],
};

/// Shifts `row` by its maximum exactly when the max-plus semiring's
/// `normalize` does; `false` when every entry is −∞.
#[inline(always)]
fn normalize<const K: usize>(row: &mut [f64; K]) -> bool {
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

impl TagViterbi {
    /// Writes the best tag path of `p` into `tags` and returns `true`, or
    /// returns `false` (leaving `tags` unspecified) when `p` is not a chain
    /// of `scheme` this decoder covers: the scheme's tags, fixed transitions
    /// with exactly its allowed pairs, its forbidden starts and ends −∞ and
    /// every other score finite.
    pub(crate) fn decode<P: Potentials + ?Sized>(&mut self, scheme: TagScheme, p: &P, tags: &mut Vec<u32>) -> bool {
        match scheme {
            TagScheme::Bmes => self.decode_k(&BMES, p, tags),
            TagScheme::SixTag => self.decode_k(&SIX_TAG, p, tags),
        }
    }

    #[inline(always)]
    fn decode_k<const K: usize, const Q: usize, P: Potentials + ?Sized>(
        &mut self,
        allowed: &Allowed<K, Q>,
        p: &P,
        tags: &mut Vec<u32>,
    ) -> bool {
        if p.num_labels() != K || p.has_varying_transitions() {
            return false;
        }
        let n = p.len();
        let Some(emissions) = p.emission_rows().filter(|e| e.len() == n * K) else {
            return false;
        };
        let mut trans = [0.0; 36];
        p.transitions_into(&mut trans[..K * K]);
        let start: [f64; K] = std::array::from_fn(|y| p.start(y));
        let end: [f64; K] = std::array::from_fn(|y| p.end(y));
        let mut allowed_pair = [false; 36];
        for j in 0..K {
            for &i in &allowed.predecessors[j] {
                allowed_pair[i * K + j] = true;
            }
        }
        let expected = |ok: bool, x: f64| if ok { x.is_finite() } else { x == f64::NEG_INFINITY };
        let pattern_ok = (0..K * K).all(|x| expected(allowed_pair[x], trans[x]))
            && (0..K).all(|y| expected(allowed.start[y], start[y]) && expected(allowed.end[y], end[y]));
        if !pattern_ok || !emissions.iter().all(|x| x.is_finite()) {
            return false;
        }
        tags.clear();
        if n == 0 {
            return true;
        }
        self.from.clear();
        self.from.resize(n, [0; MAX_TAGS]);
        let row = |t: usize| -> [f64; K] { emissions[t * K..t * K + K].try_into().expect("K scores") };
        let e0 = row(0);
        let mut alpha: [f64; K] = std::array::from_fn(|y| start[y] + e0[y]);
        if !normalize(&mut alpha) {
            return false;
        }
        for (t, from) in self.from.iter_mut().enumerate().skip(1) {
            let e = row(t);
            let mut next = [0.0; K];
            for j in 0..K {
                let mut best = f64::NEG_INFINITY;
                let mut arg = 0u8;
                for &i in &allowed.predecessors[j] {
                    let v = alpha[i] + trans[i * K + j];
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
        for y in 0..K {
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
    use chaincrf_core::chain::ChainWorkspace;
    use chaincrf_core::{MaxPlus, Potentials};
    use proptest::prelude::*;

    /// Fixed-transition potentials given as plain arrays.
    #[derive(Debug)]
    struct Plain {
        k: usize,
        emissions: Vec<f64>,
        trans: Vec<f64>,
        start: Vec<f64>,
        end: Vec<f64>,
    }

    impl Potentials for Plain {
        fn len(&self) -> usize {
            self.emissions.len() / self.k
        }
        fn num_labels(&self) -> usize {
            self.k
        }
        fn emission(&self, t: usize, y: usize) -> f64 {
            self.emissions[t * self.k + y]
        }
        fn transition(&self, i: usize, j: usize) -> f64 {
            self.trans[i * self.k + j]
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

    /// Potentials of `scheme` from free scores (`k² + 2k` of them): forbidden
    /// pairs, starts and ends set to −∞ as the segmenter's model structure
    /// sets them.
    fn chain(scheme: TagScheme, emissions: Vec<f64>, free: &[f64]) -> Plain {
        let k = scheme.num_tags();
        let mut p = Plain {
            k,
            emissions,
            trans: free[..k * k].to_vec(),
            start: free[k * k..k * k + k].to_vec(),
            end: free[k * k + k..k * k + 2 * k].to_vec(),
        };
        for i in 0..k as u32 {
            for j in 0..k as u32 {
                if !scheme.allowed_transition(i, j) {
                    p.trans[(i * k as u32 + j) as usize] = f64::NEG_INFINITY;
                }
            }
            if !scheme.allowed_start(i) {
                p.start[i as usize] = f64::NEG_INFINITY;
            }
            if !scheme.allowed_end(i) {
                p.end[i as usize] = f64::NEG_INFINITY;
            }
        }
        p
    }

    fn bmes(emissions: Vec<f64>, free: [f64; 24]) -> Plain {
        chain(TagScheme::Bmes, emissions, &free)
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

    #[test]
    fn the_constant_rules_are_the_schemes() {
        fn check<const K: usize, const P: usize>(scheme: TagScheme, a: &Allowed<K, P>) {
            assert_eq!(scheme.num_tags(), K);
            for j in 0..K {
                let expected: Vec<usize> = (0..K)
                    .filter(|&i| scheme.allowed_transition(i as u32, j as u32))
                    .collect();
                let mut listed = a.predecessors[j].to_vec();
                assert!(listed.windows(2).all(|w| w[0] <= w[1]), "{scheme:?} tag {j}: in order");
                listed.dedup();
                assert_eq!(listed, expected, "{scheme:?} tag {j}");
                assert_eq!(a.start[j], scheme.allowed_start(j as u32));
                assert_eq!(a.end[j], scheme.allowed_end(j as u32));
            }
        }
        check(TagScheme::Bmes, &BMES);
        check(TagScheme::SixTag, &SIX_TAG);
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
            prop_assert!(TagViterbi::default().decode(TagScheme::Bmes, &p, &mut tags));
            prop_assert_eq!(tags, generic(&p));
        }

        #[test]
        fn equals_the_generic_viterbi_with_six_tags(
            emissions in (0usize..40).prop_flat_map(|n| proptest::collection::vec(score(), n * 6)),
            free in proptest::collection::vec(score(), 48),
        ) {
            let p = chain(TagScheme::SixTag, emissions, &free);
            let mut tags = vec![7; 3];
            prop_assert!(TagViterbi::default().decode(TagScheme::SixTag, &p, &mut tags));
            prop_assert_eq!(tags, generic(&p));
        }
    }

    #[test]
    fn long_runs_are_shifted_as_the_generic_decoder_shifts_them() {
        // 100k positions of large scores: rows pass 2²⁰ and get shifted.
        let n: usize = 100_000;
        for scheme in [TagScheme::Bmes, TagScheme::SixTag] {
            let k = scheme.num_tags();
            let emissions: Vec<f64> = (0..n * k)
                .map(|i| ((i * 7919 % 13) as f64 - 6.0) * 1000.0 + (i % 3) as f64 * 0.25)
                .collect();
            let free: Vec<f64> = (0..k * k + 2 * k).map(|i| (i % 5) as f64 - 2.0).collect();
            let p = chain(scheme, emissions, &free);
            let mut tags = Vec::new();
            assert!(TagViterbi::default().decode(scheme, &p, &mut tags));
            assert_eq!(tags, generic(&p), "{scheme:?}");
        }
    }

    #[test]
    fn other_potentials_are_refused() {
        let decode = |p: &Plain, tags: &mut Vec<u32>| TagViterbi::default().decode(TagScheme::Bmes, p, tags);
        let free: [f64; 24] = std::array::from_fn(|i| i as f64 * 0.1);
        let mut tags = Vec::new();
        let ok = bmes(vec![0.5; 12], free);
        assert!(decode(&ok, &mut tags));
        // A forbidden pair given a score, an allowed one forbidden, a start
        // allowed in a word's middle, a non-finite emission: all refused.
        let mut p = bmes(vec![0.5; 12], free);
        p.trans[B * 4 + B] = 0.0;
        assert!(!decode(&p, &mut tags));
        let mut p = bmes(vec![0.5; 12], free);
        p.trans[B * 4 + M] = f64::NEG_INFINITY;
        assert!(!decode(&p, &mut tags));
        let mut p = bmes(vec![0.5; 12], free);
        p.start[M] = 0.0;
        assert!(!decode(&p, &mut tags));
        let mut p = bmes(vec![0.5; 12], free);
        p.emissions[5] = f64::NAN;
        assert!(!decode(&p, &mut tags));
        let mut p = bmes(vec![0.5; 12], free);
        p.emissions[5] = f64::INFINITY;
        assert!(!decode(&p, &mut tags));
        // A B/M/E/S chain is not a six-tag one.
        assert!(!TagViterbi::default().decode(TagScheme::SixTag, &ok, &mut tags));
        // An empty chain has the empty path.
        let p = bmes(Vec::new(), free);
        assert!(decode(&p, &mut tags));
        assert!(tags.is_empty());
    }
}
