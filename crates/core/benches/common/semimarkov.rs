//! Random semi-Markov inputs and the hand-written semi-Markov loops the
//! generic code is measured against (`paired.rs`, rows `semi-Markov ...`).

use chaincrf_core::semimarkov::{self, DenseSemiMarkov, Segment, SegmentPotentials, SemiMarkovWorkspace};
use chaincrf_core::{MaxPlus, Prob};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The semi-Markov sizes benchmarked: (labels, positions, maximum length).
pub const SEMI_SIZES: [(usize, usize, usize); 2] = [(1, 10_000, 6), (4, 10_000, 6)];

/// Random segment scores in ±5 for every segment inside the input, random
/// transitions, start and end scores.
pub fn semi_scores_for(k: usize, n: usize, l: usize) -> DenseSemiMarkov {
    let mut rng = StdRng::seed_from_u64(0x5e61 ^ (k * 100_003 + n * 7 + l) as u64);
    let mut draw = |len: usize| (0..len).map(|_| rng.random_range(-5.0..5.0)).collect::<Vec<f64>>();
    let (tr, st, en) = (draw(k * k), draw(k), draw(k));
    let seg = draw(n * l * k);
    DenseSemiMarkov::from_fn(n, k, l, |i, d, y| seg[(i * l + d - 1) * k + y])
        .and_then(|p| p.with_transitions(&tr))
        .and_then(|p| p.with_start(&st))
        .and_then(|p| p.with_end(&en))
        .expect("shapes are consistent by construction")
}

/// Buffers of a hand-written scaled semi-Markov forward pass (probabilities,
/// each row divided by its sum, as CRFsuite does for the chain).
#[derive(Default)]
pub struct HandSemiForward {
    exp_seg: Vec<f64>,
    exp_trans: Vec<f64>,
    alpha: Vec<f64>,
    gamma: Vec<f64>,
    gamma_log: Vec<f64>,
    acc: Vec<f64>,
}

impl HandSemiForward {
    /// log Z. Assumes finite scores small enough for `exp` (no checks, no
    /// −∞ handling).
    pub fn log_partition(&mut self, p: &DenseSemiMarkov) -> f64 {
        let (n, k, l) = (p.len(), p.num_labels(), p.max_len());
        self.exp_seg.resize(n * l * k, 0.0);
        self.exp_trans.resize(k * k, 0.0);
        self.alpha.resize(k, 0.0);
        self.gamma.resize(n * k, 0.0);
        self.gamma_log.resize(n, 0.0);
        self.acc.resize(k, 0.0);
        for (x, &v) in self.exp_seg.iter_mut().zip(p.segments()) {
            *x = v.exp();
        }
        for (x, &v) in self.exp_trans.iter_mut().zip(p.transitions()) {
            *x = v.exp();
        }
        // γ₀ = exp(start), normalized; γ rows carry their log-scale.
        for (g, &s) in self.gamma[..k].iter_mut().zip(p.start_scores()) {
            *g = s.exp();
        }
        self.gamma_log[0] = normalize(&mut self.gamma[..k]);
        let mut alpha_log = 0.0;
        for t in 1..=n {
            // Terms of segments ending at t, brought to the scale of the
            // newest γ row (γₜ₋₁).
            let reference = self.gamma_log[t - 1];
            self.acc.fill(0.0);
            for d in 1..=l.min(t) {
                let i = t - d;
                let f = (self.gamma_log[i] - reference).exp();
                let g = &self.gamma[i * k..(i + 1) * k];
                let s = &self.exp_seg[(i * l + d - 1) * k..(i * l + d) * k];
                for ((a, &g), &s) in self.acc.iter_mut().zip(g).zip(s) {
                    *a += g * s * f;
                }
            }
            alpha_log = reference + normalize(&mut self.acc);
            self.alpha.copy_from_slice(&self.acc);
            if t < n {
                let g = &mut self.gamma[t * k..(t + 1) * k];
                g.fill(0.0);
                for (i, &a) in self.alpha.iter().enumerate() {
                    for (x, &w) in g.iter_mut().zip(&self.exp_trans[i * k..(i + 1) * k]) {
                        *x += a * w;
                    }
                }
                self.gamma_log[t] = alpha_log + normalize(g);
            }
        }
        let last: f64 = self.alpha.iter().zip(p.end_scores()).map(|(a, e)| a * e.exp()).sum();
        alpha_log + last.ln()
    }
}

/// Divides `row` by its sum and returns the log of that sum.
fn normalize(row: &mut [f64]) -> f64 {
    let sum: f64 = row.iter().sum();
    let inv = 1.0 / sum;
    for x in row.iter_mut() {
        *x *= inv;
    }
    sum.ln()
}

/// Buffers of a hand-written semi-Markov Viterbi on raw scores, with
/// back-pointers for the segment length and the previous label.
#[derive(Default)]
pub struct HandSemiViterbi {
    alpha: Vec<f64>,
    gamma: Vec<f64>,
    back_len: Vec<u32>,
    back_label: Vec<u32>,
}

impl HandSemiViterbi {
    /// The best segmentation (ties to the smaller label, then the shorter
    /// segment) and its score.
    pub fn decode(&mut self, p: &DenseSemiMarkov) -> (Vec<Segment>, f64) {
        let (n, k, l) = (p.len(), p.num_labels(), p.max_len());
        let (seg, tr) = (p.segments(), p.transitions());
        self.alpha.resize((n + 1) * k, 0.0);
        self.gamma.resize(n * k, 0.0);
        self.back_len.resize((n + 1) * k, 0);
        self.back_label.resize(n * k, 0);
        self.gamma[..k].copy_from_slice(p.start_scores());
        for t in 1..=n {
            for y in 0..k {
                let mut best = f64::NEG_INFINITY;
                let mut arg = 0u32;
                for d in 1..=l.min(t) {
                    let i = t - d;
                    let v = self.gamma[i * k + y] + seg[(i * l + d - 1) * k + y];
                    if v > best {
                        best = v;
                        arg = d as u32;
                    }
                }
                self.alpha[t * k + y] = best;
                self.back_len[t * k + y] = arg;
            }
            if t < n {
                for y in 0..k {
                    let mut best = f64::NEG_INFINITY;
                    let mut arg = 0u32;
                    for yp in 0..k {
                        let v = self.alpha[t * k + yp] + tr[yp * k + y];
                        if v > best {
                            best = v;
                            arg = yp as u32;
                        }
                    }
                    self.gamma[t * k + y] = best;
                    self.back_label[t * k + y] = arg;
                }
            }
        }
        let mut best = f64::NEG_INFINITY;
        let mut y = 0;
        for (j, &e) in p.end_scores().iter().enumerate() {
            let v = self.alpha[n * k + j] + e;
            if v > best {
                best = v;
                y = j;
            }
        }
        let mut segments = Vec::new();
        let mut t = n;
        while t > 0 {
            let d = self.back_len[t * k + y] as usize;
            let i = t - d;
            segments.push(Segment {
                start: i,
                len: d,
                label: y,
            });
            if i > 0 {
                y = self.back_label[i * k + y] as usize;
            }
            t = i;
        }
        segments.reverse();
        (segments, best)
    }
}

/// Asserts that the hand loops compute what the generic code computes.
pub fn check_semi_agreement(p: &DenseSemiMarkov) {
    let rel = |a: f64, b: f64| (a - b).abs() / a.abs().max(1.0);
    let generic = SemiMarkovWorkspace::<Prob>::new().forward(p).unwrap().log_value();
    let exact = semimarkov::log_partition(p).unwrap();
    let hand = HandSemiForward::default().log_partition(p);
    assert!(rel(generic, hand) < 1e-9, "log Z: generic {generic}, hand {hand}");
    assert!(rel(generic, exact) < 1e-9, "log Z: Prob {generic}, Log {exact}");
    let best = SemiMarkovWorkspace::<MaxPlus>::new().viterbi(p).unwrap();
    let (segments, score) = HandSemiViterbi::default().decode(p);
    assert_eq!(best.segments, segments, "Viterbi segmentations differ");
    assert!(
        rel(best.score, score) < 1e-9,
        "Viterbi score: generic {}, hand {score}",
        best.score
    );
}
