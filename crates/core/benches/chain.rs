//! Benchmarks of the core chain algorithms against hand-written loops.
//!
//! The generic dynamic program in `chaincrf_core::chain` is written once over a
//! semiring; its promise is that this costs nothing against code written for
//! one job. This file checks the promise: for node marginals it runs
//! `ChainWorkspace::<Prob>` (and `ChainWorkspace::<Log>` for reference) beside a
//! CRFsuite-style scaled exp-space forward-backward written directly on `&[f64]`,
//! and for decoding `ChainWorkspace::<MaxPlus>::viterbi` beside a hand-written
//! max-plus Viterbi with back-pointers. Each pair sits in one criterion group
//! per chain size (k = 4 and 44 labels, n = 50 and 10,000 positions), on random
//! scores with |score| < 5 from a fixed seed. Before timing anything, setup
//! asserts that the hand loops give the same marginals (to 1e-9), log Z and
//! best path as the generic code, so the comparison is between equal work.
//!
//! Times are the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not
//! wall-clock time: on a small shared machine other processes' work would
//! otherwise land in whichever benchmark happened to run beside it, and the
//! generic-versus-hand ratios this file exists for would be noise.
//!
//! Run: `cargo bench -p chaincrf-core -- --warm-up-time 1 --measurement-time 3`;
//! results are in `docs/benchmarks.md`. For the generic ÷ hand ratios, `paired.rs`
//! (alternating runs) is the better instrument.

mod common;

use chaincrf_core::chain::ChainWorkspace;
use chaincrf_core::{Log, MaxPlus, Prob};
use common::{check_agreement, scores_for, thread_cpu_ns, HandForwardBackward, HandViterbi, SIZES};
use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

/// Criterion measurement: CPU time of the calling thread, in nanoseconds.
struct ThreadCpuTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns() - start
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &NanosFormatter
    }
}

/// Prints nanoseconds as ns, µs, ms or s, like criterion's own wall-clock formatter.
struct NanosFormatter;

impl ValueFormatter for NanosFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical < 1e3 {
            (1.0, "ns")
        } else if typical < 1e6 {
            (1e-3, "µs")
        } else if typical < 1e9 {
            (1e-6, "ms")
        } else {
            (1e-9, "s")
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }
    fn scale_throughputs(&self, _typical: f64, throughput: &Throughput, values: &mut [f64]) -> &'static str {
        let per_iter = match throughput {
            Throughput::Elements(n) | Throughput::Bytes(n) | Throughput::BytesDecimal(n) => *n as f64,
            Throughput::ElementsAndBytes { elements, .. } => *elements as f64,
            Throughput::Bits(n) => *n as f64,
        };
        values.iter_mut().for_each(|v| *v = per_iter * 1e9 / *v);
        "elem/s"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn marginals(c: &mut Criterion<ThreadCpuTime>) {
    for (k, n) in SIZES {
        let s = scores_for(k, n);
        check_agreement(&s);
        let view = s.view();
        let mut out = vec![0.0; n * k];
        let mut group = c.benchmark_group(format!("marginals_k{k}_n{n}"));
        if n * k * k > 1_000_000 {
            group.sample_size(20);
        }
        let mut prob = ChainWorkspace::<Prob>::new();
        group.bench_function("generic_prob", |b| {
            b.iter(|| prob.marginals_into(black_box(&view), &mut out).unwrap())
        });
        let mut hand = HandForwardBackward::default();
        group.bench_function("hand_loop", |b| b.iter(|| hand.marginals(black_box(&s), &mut out)));
        let mut log = ChainWorkspace::<Log>::new();
        group.bench_function("generic_log", |b| {
            b.iter(|| log.marginals_into(black_box(&view), &mut out).unwrap())
        });
        group.finish();
    }
}

fn viterbi(c: &mut Criterion<ThreadCpuTime>) {
    for (k, n) in SIZES {
        let s = scores_for(k, n);
        let view = s.view();
        let mut group = c.benchmark_group(format!("viterbi_k{k}_n{n}"));
        if n * k * k > 1_000_000 {
            group.sample_size(20);
        }
        let mut ws = ChainWorkspace::<MaxPlus>::new();
        group.bench_function("generic_maxplus", |b| b.iter(|| ws.viterbi(black_box(&view)).unwrap()));
        let mut hand = HandViterbi::default();
        group.bench_function("hand_loop", |b| b.iter(|| hand.decode(black_box(&s))));
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = marginals, viterbi
}
criterion_main!(benches);
