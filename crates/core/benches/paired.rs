//! Generic ÷ hand-loop ratios from alternating runs.
//!
//! `chain.rs` times the generic code and the hand loops with criterion, one
//! after the other, a few seconds each. On a shared machine the speed of the
//! processor drifts by tens of percent over such spans, so the ratio of two
//! criterion medians is partly a ratio of two moments. This bench removes the
//! drift from the ratio: it runs the two in short alternating slices (about
//! 5 ms each, the order swapped every round), takes the ratio within each
//! round, and reports the median ratio with its interquartile range. Both
//! sides are timed with the thread's CPU clock, as in `chain.rs`, and setup
//! checks that they compute the same thing before anything is timed.
//!
//! A second table does the same for the semi-Markov structure: log Z (the
//! generic forward pass in `Prob`) and Viterbi (`MaxPlus`) against
//! hand-written semi-Markov loops, at `L = 6`.
//!
//! Run: `cargo bench -p chaincrf-core --bench paired` (optionally followed by
//! a substring of the rows to run, e.g. `viterbi k=4` or `semi-Markov`); the
//! number of rounds is `PAIRED_ROUNDS` (default 41). Results are in
//! `docs/benchmarks.md`.

mod common;

use chaincrf_core::chain::ChainWorkspace;
use chaincrf_core::semimarkov::SemiMarkovWorkspace;
use chaincrf_core::{MaxPlus, Prob};
use common::semimarkov::{check_semi_agreement, semi_scores_for, HandSemiForward, HandSemiViterbi, SEMI_SIZES};
use common::{check_agreement, scores_for, thread_cpu_ns, HandForwardBackward, HandViterbi, SIZES};
use std::hint::black_box;

/// Target CPU time of one slice, in nanoseconds.
const SLICE_NS: u64 = 5_000_000;

/// Median of a non-empty list (sorted in place).
fn median(xs: &mut [f64]) -> f64 {
    quantile(xs, 0.5)
}

/// The `q`-quantile of a non-empty list by linear interpolation (sorts in place).
fn quantile(xs: &mut [f64], q: f64) -> f64 {
    xs.sort_by(f64::total_cmp);
    let pos = q * (xs.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    xs[lo] + (xs[hi] - xs[lo]) * (pos - lo as f64)
}

/// CPU nanoseconds per call of `f`, over `reps` calls.
fn per_call(reps: u64, f: &mut dyn FnMut()) -> f64 {
    let start = thread_cpu_ns();
    for _ in 0..reps {
        f();
    }
    (thread_cpu_ns() - start) as f64 / reps as f64
}

/// One table row: per-call medians of both sides and the paired ratios.
struct Row {
    generic_ns: f64,
    hand_ns: f64,
    ratio: f64,
    ratio_q1: f64,
    ratio_q3: f64,
}

/// Alternates `generic` and `hand` for `rounds` rounds of one slice each.
fn paired(rounds: usize, generic: &mut dyn FnMut(), hand: &mut dyn FnMut()) -> Row {
    // Calibrate on the hand loop, then warm both sides up.
    let mut reps = 1u64;
    while per_call(reps, hand) * (reps as f64) < SLICE_NS as f64 / 4.0 {
        reps *= 2;
    }
    let reps = (reps as f64 * SLICE_NS as f64 / (per_call(reps, hand) * reps as f64)).ceil() as u64;
    let reps = reps.max(1);
    per_call(reps, generic);
    per_call(reps, hand);
    let (mut g, mut h, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (gt, ht) = if round % 2 == 0 {
            let gt = per_call(reps, generic);
            (gt, per_call(reps, hand))
        } else {
            let ht = per_call(reps, hand);
            (per_call(reps, generic), ht)
        };
        g.push(gt);
        h.push(ht);
        r.push(gt / ht);
    }
    Row {
        generic_ns: median(&mut g),
        hand_ns: median(&mut h),
        ratio: median(&mut r),
        ratio_q1: quantile(&mut r, 0.25),
        ratio_q3: quantile(&mut r, 0.75),
    }
}

/// Formats nanoseconds as µs or ms.
fn time(ns: f64) -> String {
    if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{:.3} ms", ns / 1e6)
    }
}

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let filter = filter.join(" ");
    let rounds: usize = match std::env::var("PAIRED_ROUNDS") {
        Ok(v) => match v.parse() {
            Ok(r) if r > 0 => r,
            _ => {
                eprintln!("PAIRED_ROUNDS must be a positive integer, got {v:?}");
                std::process::exit(2);
            }
        },
        Err(_) => 41,
    };
    println!("{rounds} alternating rounds of ~{} ms per side", SLICE_NS / 1_000_000);
    println!();
    println!("| algorithm | k | n | generic | hand loop | generic / hand (median) | interquartile range |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (k, n) in SIZES {
        let s = scores_for(k, n);
        let view = s.view();
        let mut checked = false;
        for algorithm in ["marginals", "viterbi"] {
            let name = format!("{algorithm} k={k} n={n}");
            if !name.contains(&filter) {
                continue;
            }
            if !checked {
                check_agreement(&s);
                checked = true;
            }
            let row = if algorithm == "marginals" {
                let mut out_g = vec![0.0; n * k];
                let mut out_h = vec![0.0; n * k];
                let mut ws = ChainWorkspace::<Prob>::new();
                let mut hand = HandForwardBackward::default();
                paired(
                    rounds,
                    &mut || {
                        black_box(ws.marginals_into(black_box(&view), &mut out_g).unwrap());
                    },
                    &mut || {
                        black_box(hand.marginals(black_box(&s), &mut out_h));
                    },
                )
            } else {
                let mut ws = ChainWorkspace::<MaxPlus>::new();
                let mut hand = HandViterbi::default();
                paired(
                    rounds,
                    &mut || {
                        black_box(ws.viterbi(black_box(&view)).unwrap());
                    },
                    &mut || {
                        black_box(hand.decode(black_box(&s)));
                    },
                )
            };
            println!(
                "| {algorithm} | {k} | {n} | {} | {} | **{:.3}** | {:.3}–{:.3} |",
                time(row.generic_ns),
                time(row.hand_ns),
                row.ratio,
                row.ratio_q1,
                row.ratio_q3
            );
        }
    }
    semi_markov_rows(rounds, &filter);
}

/// The semi-Markov table: log Z and Viterbi, generic against hand loops.
fn semi_markov_rows(rounds: usize, filter: &str) {
    let mut header = false;
    for (k, n, l) in SEMI_SIZES {
        let p = semi_scores_for(k, n, l);
        let mut checked = false;
        for algorithm in ["log Z", "viterbi"] {
            let name = format!("semi-Markov {algorithm} k={k} n={n} L={l}");
            if !name.contains(filter) {
                continue;
            }
            if !header {
                println!();
                println!(
                    "| semi-Markov | k | n | L | generic | hand loop | generic / hand (median) | interquartile range |"
                );
                println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
                header = true;
            }
            if !checked {
                check_semi_agreement(&p);
                checked = true;
            }
            let row = if algorithm == "log Z" {
                let mut ws = SemiMarkovWorkspace::<Prob>::new();
                let mut hand = HandSemiForward::default();
                paired(
                    rounds,
                    &mut || {
                        black_box(ws.forward(black_box(&p)).unwrap().log_value());
                    },
                    &mut || {
                        black_box(hand.log_partition(black_box(&p)));
                    },
                )
            } else {
                let mut ws = SemiMarkovWorkspace::<MaxPlus>::new();
                let mut hand = HandSemiViterbi::default();
                paired(
                    rounds,
                    &mut || {
                        black_box(ws.viterbi(black_box(&p)).unwrap());
                    },
                    &mut || {
                        black_box(hand.decode(black_box(&p)));
                    },
                )
            };
            println!(
                "| {algorithm} | {k} | {n} | {l} | {} | {} | **{:.3}** | {:.3}–{:.3} |",
                time(row.generic_ns),
                time(row.hand_ns),
                row.ratio,
                row.ratio_q1,
                row.ratio_q3
            );
        }
    }
}
