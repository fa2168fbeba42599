//! What the core benchmarks share: random chains, the hand-written loops the
//! generic code is measured against, a check that both compute the same
//! thing, and the benchmark thread's CPU clock.
//!
//! Included by `chain.rs` (criterion, absolute times) and `paired.rs`
//! (generic ÷ hand ratios from alternating runs) with `mod common;`.

#![allow(dead_code)] // each bench uses part of this module

pub mod semimarkov;

use chaincrf_core::chain::ChainWorkspace;
use chaincrf_core::{ChainView, Log, MaxPlus, Prob};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    fn clock_gettime(clock: i32, out: *mut Timespec) -> i32;
}

/// Linux's `CLOCK_THREAD_CPUTIME_ID`.
const CLOCK_THREAD_CPUTIME_ID: i32 = 3;

pub fn thread_cpu_ns() -> u64 {
    let mut ts = Timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec (64-bit Linux layout) and the
    // clock id is a constant the kernel knows.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Random potentials of one chain, row-major, owned.
pub struct Scores {
    pub n: usize,
    pub k: usize,
    emissions: Vec<f64>,
    transitions: Vec<f64>,
    start: Vec<f64>,
    end: Vec<f64>,
}

impl Scores {
    pub fn random(n: usize, k: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut draw = |len: usize| (0..len).map(|_| rng.random_range(-5.0..5.0)).collect::<Vec<f64>>();
        Scores {
            n,
            k,
            emissions: draw(n * k),
            transitions: draw(k * k),
            start: draw(k),
            end: draw(k),
        }
    }

    pub fn view(&self) -> ChainView<'_> {
        ChainView::new(&self.emissions, &self.transitions, &self.start, &self.end, self.k)
            .expect("shapes are consistent by construction")
    }
}

/// Buffers of the hand-written scaled forward-backward (CRFsuite's algorithm).
#[derive(Default)]
pub struct HandForwardBackward {
    exp_emit: Vec<f64>,
    exp_trans: Vec<f64>,
    exp_start: Vec<f64>,
    exp_end: Vec<f64>,
    alpha: Vec<f64>,
    beta: Vec<f64>,
    tmp: Vec<f64>,
}

impl HandForwardBackward {
    /// Writes node marginals into `out` (`n × k`) and returns log Z. Assumes
    /// finite scores small enough for `exp` (no checks, no −∞ handling).
    pub fn marginals(&mut self, s: &Scores, out: &mut [f64]) -> f64 {
        let (n, k) = (s.n, s.k);
        self.exp_emit.resize(n * k, 0.0);
        self.exp_trans.resize(k * k, 0.0);
        self.exp_start.resize(k, 0.0);
        self.exp_end.resize(k, 0.0);
        self.alpha.resize(n * k, 0.0);
        self.beta.resize(n * k, 0.0);
        self.tmp.resize(k, 0.0);
        for (x, &v) in self.exp_emit.iter_mut().zip(&s.emissions) {
            *x = v.exp();
        }
        for (x, &v) in self.exp_trans.iter_mut().zip(&s.transitions) {
            *x = v.exp();
        }
        for (x, &v) in self.exp_start.iter_mut().zip(&s.start) {
            *x = v.exp();
        }
        for (x, &v) in self.exp_end.iter_mut().zip(&s.end) {
            *x = v.exp();
        }

        // Forward, normalizing each row by its sum; log Z = Σ log(sums) + log(final dot).
        let mut log_z = 0.0;
        for j in 0..k {
            self.alpha[j] = self.exp_start[j] * self.exp_emit[j];
        }
        log_z += normalize(&mut self.alpha[..k]);
        for t in 1..n {
            let (done, rest) = self.alpha.split_at_mut(t * k);
            let prev = &done[(t - 1) * k..];
            let cur = &mut rest[..k];
            cur.fill(0.0);
            for (i, &a) in prev.iter().enumerate() {
                for (c, &w) in cur.iter_mut().zip(&self.exp_trans[i * k..(i + 1) * k]) {
                    *c += a * w;
                }
            }
            for (c, &e) in cur.iter_mut().zip(&self.exp_emit[t * k..(t + 1) * k]) {
                *c *= e;
            }
            log_z += normalize(cur);
        }
        let last: f64 = self.alpha[(n - 1) * k..]
            .iter()
            .zip(&self.exp_end)
            .map(|(a, e)| a * e)
            .sum();
        log_z += last.ln();

        // Backward, normalized the same way.
        self.beta[(n - 1) * k..].copy_from_slice(&self.exp_end);
        rescale(&mut self.beta[(n - 1) * k..]);
        for t in (0..n - 1).rev() {
            let (head, tail) = self.beta.split_at_mut((t + 1) * k);
            for ((x, &e), &b) in self.tmp.iter_mut().zip(&self.exp_emit[(t + 1) * k..]).zip(&tail[..k]) {
                *x = e * b;
            }
            let cur = &mut head[t * k..];
            for (i, c) in cur.iter_mut().enumerate() {
                *c = self.exp_trans[i * k..(i + 1) * k]
                    .iter()
                    .zip(&self.tmp)
                    .map(|(w, x)| w * x)
                    .sum();
            }
            rescale(cur);
        }

        // Marginals: α ⊙ β, normalized per position.
        for t in 0..n {
            let row = &mut out[t * k..(t + 1) * k];
            for ((o, &a), &b) in row
                .iter_mut()
                .zip(&self.alpha[t * k..(t + 1) * k])
                .zip(&self.beta[t * k..(t + 1) * k])
            {
                *o = a * b;
            }
            rescale(row);
        }
        log_z
    }
}

/// Divides `row` by its sum and returns the log of that sum.
#[inline]
fn normalize(row: &mut [f64]) -> f64 {
    let sum = rescale(row);
    sum.ln()
}

/// Divides `row` by its sum and returns the sum (no `ln` where none is needed).
#[inline]
fn rescale(row: &mut [f64]) -> f64 {
    let sum: f64 = row.iter().sum();
    let inv = 1.0 / sum;
    for x in row.iter_mut() {
        *x *= inv;
    }
    sum
}

/// Buffers of the hand-written max-plus Viterbi with back-pointers.
#[derive(Default)]
pub struct HandViterbi {
    delta: Vec<f64>,
    back: Vec<u32>,
}

impl HandViterbi {
    /// The best path (ties to the smaller label) and its score. Returns an owned
    /// path, as the generic `viterbi` does, so both pay for one allocation.
    pub fn decode(&mut self, s: &Scores) -> (Vec<usize>, f64) {
        let (n, k) = (s.n, s.k);
        self.delta.resize(n * k, 0.0);
        self.back.resize(n * k, 0);
        for j in 0..k {
            self.delta[j] = s.start[j] + s.emissions[j];
        }
        for t in 1..n {
            let (done, rest) = self.delta.split_at_mut(t * k);
            let prev = &done[(t - 1) * k..];
            let back = &mut self.back[t * k..(t + 1) * k];
            let emit = &s.emissions[t * k..(t + 1) * k];
            for (j, (cur, bp)) in rest[..k].iter_mut().zip(back).enumerate() {
                let mut best = f64::NEG_INFINITY;
                let mut arg = 0u32;
                for (i, &d) in prev.iter().enumerate() {
                    let v = d + s.transitions[i * k + j];
                    if v > best {
                        best = v;
                        arg = i as u32;
                    }
                }
                *cur = best + emit[j];
                *bp = arg;
            }
        }
        let mut best = f64::NEG_INFINITY;
        let mut arg = 0;
        for j in 0..k {
            let v = self.delta[(n - 1) * k + j] + s.end[j];
            if v > best {
                best = v;
                arg = j;
            }
        }
        let mut path = vec![0usize; n];
        path[n - 1] = arg;
        for t in (1..n).rev() {
            path[t - 1] = self.back[t * k + path[t]] as usize;
        }
        (path, best)
    }
}

/// Asserts that the hand loops compute what the generic code computes.
pub fn check_agreement(s: &Scores) {
    let view = s.view();
    let mut generic = vec![0.0; s.n * s.k];
    let log_z = ChainWorkspace::<Prob>::new()
        .marginals_into(&view, &mut generic)
        .expect("random finite scores allow every path");
    let mut exact = vec![0.0; s.n * s.k];
    let log_z_exact = ChainWorkspace::<Log>::new().marginals_into(&view, &mut exact).unwrap();
    let mut hand = vec![0.0; s.n * s.k];
    let log_z_hand = HandForwardBackward::default().marginals(s, &mut hand);
    for (i, ((g, h), e)) in generic.iter().zip(&hand).zip(&exact).enumerate() {
        assert!(
            (g - h).abs() < 1e-9 && (g - e).abs() < 1e-9,
            "marginal {i}: generic Prob {g}, hand {h}, Log {e}"
        );
    }
    let rel = |a: f64, b: f64| (a - b).abs() / a.abs().max(1.0);
    assert!(
        rel(log_z, log_z_hand) < 1e-9,
        "log Z: generic {log_z}, hand {log_z_hand}"
    );
    assert!(rel(log_z, log_z_exact) < 1e-9, "log Z: Prob {log_z}, Log {log_z_exact}");

    let best = ChainWorkspace::<MaxPlus>::new().viterbi(&view).unwrap();
    let (path, score) = HandViterbi::default().decode(s);
    assert_eq!(best.labels, path, "Viterbi paths differ");
    assert!(
        rel(best.score, score) < 1e-9,
        "Viterbi score: generic {}, hand {score}",
        best.score
    );
}

/// The chain sizes benchmarked: (labels, positions).
pub const SIZES: [(usize, usize); 4] = [(4, 50), (4, 10_000), (44, 50), (44, 10_000)];

/// The scores of the chain of size `(k, n)`, the same in every bench.
pub fn scores_for(k: usize, n: usize) -> Scores {
    Scores::random(n, k, 0x5eed ^ (k * 100_003 + n) as u64)
}
