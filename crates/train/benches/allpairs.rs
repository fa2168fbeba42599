//! CRF++'s configuration (every attribute × every label has a weight) on a
//! PKU-shaped job: seconds per function + gradient evaluation of a real
//! L-BFGS fit, against a hand-written evaluation loop on the same data.
//!
//! The hand loop is the floor a user could write in an afternoon: scaled
//! exp-space forward-backward over flat `u32` attribute ids, dense weights
//! with each attribute's four label weights contiguous, one gradient buffer
//! per thread summed at the end, the L2 term. The fit's figure is its
//! optimizer seconds over its evaluations, so it includes everything a user
//! waits for per evaluation (the optimizer's vector arithmetic too), as the
//! performance issue measured it.
//!
//! On a shared machine the processor's speed drifts by tens of percent
//! between runs, so the two sides run alternately, round by round (the order
//! swapped every round), and the report gives each round's ratio and the
//! median, in wall-clock seconds (both sides use the same threads) and in
//! the process's CPU seconds (which a busy machine inflates less: on one
//! thread, the ratio to quote when other jobs share the cores). The fit is
//! timed from its first iteration's progress event to its last, leaving out
//! setup and the first evaluation.
//!
//! Data: synthetic by default, shaped like PKU character tagging (BMES, 11
//! attributes per character from a Zipf-distributed character stream: five
//! unigrams, five bigrams and a bias; about 19.5K sentences of ~94
//! characters). `ALLPAIRS_SCALE` (default 1.0) scales the number of sentences.
//! `ALLPAIRS_DATA=FILE` reads CRFsuite attribute data instead, e.g. the real
//! PKU attributes from `chaincrf cws export --corpus
//! $CHAINCRF_DATA/pku-199801/199801.txt --no-lexicon -o FILE` (labels B, M,
//! E, S; values other than 1 are ignored).
//!
//! Run: `cargo bench -p chaincrf-train --bench allpairs`; `ALLPAIRS_ROUNDS`
//! (default 3), `ALLPAIRS_ITERATIONS` (L-BFGS iterations per fit, default 5)
//! and `ALLPAIRS_THREADS` (default 1) set the rest. Results are in
//! `docs/benchmarks.md`.

use chaincrf_features::{Attr, FeatureExtractor};
use chaincrf_train::{Algorithm, DatasetBuilder, LabelTarget, Params, Trainer};
use std::collections::HashMap;
use std::time::Instant;

/// Labels (BMES).
const K: usize = 4;

/// The corpus in the hand loop's form.
struct Corpus {
    /// Attribute ids of position `p`: `ids[offsets[p]..offsets[p + 1]]`.
    offsets: Vec<u32>,
    ids: Vec<u32>,
    /// Label of each position.
    gold: Vec<u8>,
    /// First position of each sequence, and the total at the end.
    starts: Vec<usize>,
    num_attributes: usize,
}

impl Corpus {
    fn sequences(&self) -> usize {
        self.starts.len() - 1
    }
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Interns attribute keys as dense ids in order of first appearance.
#[derive(Default)]
struct Interner(HashMap<u64, u32>);
impl Interner {
    fn id(&mut self, key: u64) -> u32 {
        let n = self.0.len() as u32;
        *self.0.entry(key).or_insert(n)
    }
}

/// PKU-shaped synthetic data: characters drawn from a Zipf(1.0) law over
/// 5,000 characters, words of 1–4 characters giving the BMES labels.
fn synthetic(scale: f64) -> Corpus {
    const CHARS: usize = 5000;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let cdf: Vec<f64> = {
        let w: Vec<f64> = (1..=CHARS).map(|r| 1.0 / r as f64).collect();
        let total: f64 = w.iter().sum();
        w.iter()
            .scan(0.0, |acc, x| {
                *acc += x / total;
                Some(*acc)
            })
            .collect()
    };
    let draw = |rng: &mut Rng| cdf.partition_point(|&c| c < rng.unit()).min(CHARS - 1) as u64;
    let sentences = ((19_500.0 * scale) as usize).max(1);
    let mut interner = Interner::default();
    let mut c = Corpus {
        offsets: vec![0],
        ids: Vec::new(),
        gold: Vec::new(),
        starts: vec![0],
        num_attributes: 0,
    };
    for _ in 0..sentences {
        let n = 40 + (rng.next() % 109) as usize;
        let text: Vec<u64> = (0..n).map(|_| draw(&mut rng)).collect();
        let mut t = 0;
        while t < n {
            let len = (1 + rng.next() % 4).min((n - t) as u64) as usize;
            for j in 0..len {
                c.gold.push(match (len, j) {
                    (1, _) => 3,
                    (_, 0) => 0,
                    (l, j) if j == l - 1 => 2,
                    _ => 1,
                });
            }
            t += len;
        }
        let at = |i: isize| -> u64 {
            if i < 0 || i >= n as isize {
                CHARS as u64 + 1
            } else {
                text[i as usize]
            }
        };
        for t in 0..n as isize {
            // Key: template number in the top bits, characters below.
            let uni = (-2isize..=2).map(|d| ((d + 3) as u64) << 56 | at(t + d));
            let bi = [(-2, -1), (-1, 0), (0, 1), (1, 2), (-1, 1)]
                .into_iter()
                .enumerate()
                .map(|(j, (a, b))| (j as u64 + 8) << 56 | at(t + a) << 20 | at(t + b));
            for key in uni.chain(bi).chain([15u64 << 56]) {
                c.ids.push(interner.id(key));
            }
            c.offsets.push(c.ids.len() as u32);
        }
        c.starts.push(c.gold.len());
    }
    c.num_attributes = interner.0.len();
    c
}

/// CRFsuite attribute data (label, TAB, attributes; blank line between sequences).
fn read_crfsuite(path: &str) -> Corpus {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut names: HashMap<&str, u32> = HashMap::new();
    let mut c = Corpus {
        offsets: vec![0],
        ids: Vec::new(),
        gold: Vec::new(),
        starts: vec![0],
        num_attributes: 0,
    };
    for (no, line) in text.lines().enumerate() {
        if line.is_empty() {
            if *c.starts.last().unwrap() != c.gold.len() {
                c.starts.push(c.gold.len());
            }
            continue;
        }
        let mut fields = line.split('\t');
        let label = fields.next().unwrap_or("");
        c.gold.push(match label {
            "B" => 0,
            "M" => 1,
            "E" => 2,
            "S" => 3,
            _ => panic!("{path}:{}: label {label:?} is not one of B, M, E, S", no + 1),
        });
        for f in fields {
            let name = f.rsplit_once(':').map_or(f, |(n, _)| n);
            let n = names.len() as u32;
            let id = *names.entry(name).or_insert(n);
            c.ids.push(id);
        }
        c.offsets.push(c.ids.len() as u32);
    }
    if *c.starts.last().unwrap() != c.gold.len() {
        c.starts.push(c.gold.len());
    }
    c.num_attributes = names.len();
    c
}

/// Emits a position's attribute ids as names, for chaincrf's dataset builder.
struct Ids<'c>(&'c Corpus);
impl FeatureExtractor for Ids<'_> {
    type Input = usize;
    fn len(&self, &i: &usize) -> usize {
        self.0.starts[i + 1] - self.0.starts[i]
    }
    fn extract(&self, &i: &usize, t: usize, sink: &mut dyn FnMut(Attr<'_>)) {
        let p = self.0.starts[i] + t;
        let mut name = String::new();
        for &id in &self.0.ids[self.0.offsets[p] as usize..self.0.offsets[p + 1] as usize] {
            name.clear();
            use std::fmt::Write;
            let _ = write!(name, "{id}");
            sink(Attr::state(&name));
        }
    }
}

/// The hand-written evaluation: `(f(w), ∇f(w))` for weights `w` laid out as
/// `num_attributes × K` state weights, then `K × K` transitions.
fn hand_evaluate(c: &Corpus, w: &[f64], c2: f64, threads: usize) -> (f64, Vec<f64>) {
    let seqs = c.sequences();
    let per = seqs.div_ceil(threads);
    let parts: Vec<(f64, Vec<f64>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|j| {
                let (a, b) = ((j * per).min(seqs), ((j + 1) * per).min(seqs));
                s.spawn(move || hand_sequences(c, w, a..b))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut grad = vec![0.0; w.len()];
    let mut cost = 0.0;
    for (loss, g) in &parts {
        cost += loss;
        for (o, x) in grad.iter_mut().zip(g) {
            *o += x;
        }
    }
    for (o, &x) in grad.iter_mut().zip(w) {
        *o += 2.0 * c2 * x;
        cost += c2 * x * x;
    }
    (cost, grad)
}

/// NLL and gradient (no L2) of sequences `range`, in one thread.
fn hand_sequences(c: &Corpus, w: &[f64], range: std::ops::Range<usize>) -> (f64, Vec<f64>) {
    let t0 = c.num_attributes * K;
    let mut grad = vec![0.0; w.len()];
    let mut trans = [[0.0; K]; K];
    for (a, row) in trans.iter_mut().enumerate() {
        for (b, x) in row.iter_mut().enumerate() {
            *x = w[t0 + a * K + b].exp();
        }
    }
    let mut psi: Vec<[f64; K]> = Vec::new();
    let mut alpha: Vec<[f64; K]> = Vec::new();
    let mut beta: Vec<[f64; K]> = Vec::new();
    let mut z: Vec<f64> = Vec::new();
    let mut loss = 0.0;
    for i in range {
        let (p0, p1) = (c.starts[i], c.starts[i + 1]);
        let n = p1 - p0;
        if n == 0 {
            continue;
        }
        let ids = |t: usize| &c.ids[c.offsets[p0 + t] as usize..c.offsets[p0 + t + 1] as usize];
        let gold = &c.gold[p0..p1];
        psi.resize(n, [0.0; K]);
        alpha.resize(n, [0.0; K]);
        beta.resize(n, [0.0; K]);
        z.resize(n, 0.0);
        let mut log_z = 0.0;
        let mut gold_score = 0.0;
        for t in 0..n {
            let mut s = [0.0; K];
            for &id in ids(t) {
                let row = &w[id as usize * K..id as usize * K + K];
                for y in 0..K {
                    s[y] += row[y];
                }
            }
            gold_score += s[gold[t] as usize];
            let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            log_z += m;
            for y in 0..K {
                psi[t][y] = (s[y] - m).exp();
            }
        }
        for t in 1..n {
            gold_score += w[t0 + gold[t - 1] as usize * K + gold[t] as usize];
        }
        // Forward, normalized per position.
        for t in 0..n {
            let mut a = [0.0; K];
            if t == 0 {
                a = psi[0];
            } else {
                for (y, ay) in a.iter_mut().enumerate() {
                    let mut acc = 0.0;
                    for x in 0..K {
                        acc += alpha[t - 1][x] * trans[x][y];
                    }
                    *ay = acc * psi[t][y];
                }
            }
            let sum: f64 = a.iter().sum();
            z[t] = sum;
            log_z += sum.ln();
            for y in 0..K {
                alpha[t][y] = a[y] / sum;
            }
        }
        // Backward with the same scales.
        beta[n - 1] = [1.0; K];
        for t in (0..n - 1).rev() {
            let mut next = [0.0; K];
            for y in 0..K {
                next[y] = psi[t + 1][y] * beta[t + 1][y];
            }
            for x in 0..K {
                let mut acc = 0.0;
                for y in 0..K {
                    acc += trans[x][y] * next[y];
                }
                beta[t][x] = acc / z[t + 1];
            }
        }
        loss += log_z - gold_score;
        // Gradients: node marginals minus gold, scattered per attribute; edges.
        for t in 0..n {
            let mut g = [0.0; K];
            for y in 0..K {
                g[y] = alpha[t][y] * beta[t][y];
            }
            g[gold[t] as usize] -= 1.0;
            for &id in ids(t) {
                let row = &mut grad[id as usize * K..id as usize * K + K];
                for y in 0..K {
                    row[y] += g[y];
                }
            }
            if t > 0 {
                for x in 0..K {
                    for y in 0..K {
                        grad[t0 + x * K + y] += alpha[t - 1][x] * trans[x][y] * psi[t][y] * beta[t][y] / z[t];
                    }
                }
                grad[t0 + gold[t - 1] as usize * K + gold[t] as usize] -= 1.0;
            }
        }
    }
    (loss, grad)
}

/// Checks the hand loop before timing it, on the first sequences: at zero
/// weights the NLL is `n·ln K`, and its gradient matches central differences.
fn check_hand_loop(c: &Corpus) {
    let seqs = c.sequences().min(40);
    let p1 = c.starts[seqs];
    let small = Corpus {
        offsets: c.offsets[..=p1].to_vec(),
        ids: c.ids[..c.offsets[p1] as usize].to_vec(),
        gold: c.gold[..p1].to_vec(),
        starts: c.starts[..=seqs].to_vec(),
        num_attributes: c.num_attributes,
    };
    let dim = c.num_attributes * K + K * K;
    let (f0, _) = hand_evaluate(&small, &vec![0.0; dim], 1.0, 2);
    let expected = p1 as f64 * (K as f64).ln();
    assert!(
        (f0 - expected).abs() < 1e-9 * expected,
        "hand loop: NLL at zero {f0}, expected {expected}"
    );
    let mut w: Vec<f64> = (0..dim).map(|i| ((i * 7919) % 13) as f64 / 13.0 - 0.5).collect();
    let (_, g) = hand_evaluate(&small, &w, 1.0, 1);
    let first_attr = small.ids[0] as usize * K;
    for i in [first_attr, first_attr + 3, dim - K * K, dim - 1] {
        let x = w[i];
        let h = 1e-5;
        w[i] = x + h;
        let up = hand_evaluate(&small, &w, 1.0, 1).0;
        w[i] = x - h;
        let down = hand_evaluate(&small, &w, 1.0, 1).0;
        w[i] = x;
        let fd = (up - down) / (2.0 * h);
        assert!(
            (fd - g[i]).abs() < 1e-4 * (1.0 + fd.abs()),
            "hand loop: weight {i}: gradient {} vs {fd}",
            g[i]
        );
    }
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

/// CPU seconds of the whole process (all threads): on a machine shared with
/// other jobs, what one thread's work costs regardless of how long it waited.
fn process_cpu() -> f64 {
    const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
    let mut ts = Timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec (64-bit Linux layout) and the
    // clock id is a constant the kernel knows.
    let rc = unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Wall and CPU seconds per evaluation.
#[derive(Clone, Copy)]
struct PerEval {
    wall: f64,
    cpu: f64,
}

fn main() {
    // `cargo bench` passes `--bench`; no arguments are used.
    let rounds: usize = env("ALLPAIRS_ROUNDS", 3);
    let iterations: u64 = env("ALLPAIRS_ITERATIONS", 5);
    let threads: usize = env("ALLPAIRS_THREADS", 1);
    let started = Instant::now();
    let corpus = match std::env::var("ALLPAIRS_DATA") {
        Ok(path) => read_crfsuite(&path),
        Err(_) => synthetic(env("ALLPAIRS_SCALE", 1.0)),
    };
    check_hand_loop(&corpus);
    let mut builder = DatasetBuilder::new().without_attribute_names();
    for l in ["B", "M", "E", "S"] {
        builder.labels_mut().intern(l);
    }
    for i in 0..corpus.sequences() {
        let gold = corpus.gold[corpus.starts[i]..corpus.starts[i + 1]]
            .iter()
            .map(|&y| u32::from(y))
            .collect();
        builder.add_target(&Ids(&corpus), &i, LabelTarget::Gold(gold)).unwrap();
    }
    let data = builder.build();
    let dim = corpus.num_attributes * K + K * K;
    println!(
        "data: {} sequences, {} positions, {} attributes, {} weights (all pairs), {:.1} attributes per position; \
         built in {:.1} s; {threads} thread(s), {iterations} L-BFGS iterations per fit",
        corpus.sequences(),
        corpus.gold.len(),
        corpus.num_attributes,
        dim,
        corpus.ids.len() as f64 / corpus.gold.len() as f64,
        started.elapsed().as_secs_f64()
    );
    let params = Params::new(Algorithm::Lbfgs)
        .c2(1.0)
        .possible_states(true)
        .possible_transitions(true)
        .max_iterations(Some(iterations.max(2)))
        .check()
        .unwrap();
    // The hand loop at a point away from zero (weights from a hash of the index).
    let w: Vec<f64> = (0..dim)
        .map(|i| ((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as f64 / (1u64 << 24) as f64 - 0.5)
        .collect();
    // Our side: from the first iteration's event to the last, so the setup
    // and the first evaluation (page faults of fresh buffers) are left out.
    let fit = || {
        let mut marks: Vec<(Instant, f64, usize)> = Vec::new();
        let fitted = Trainer::new(params.clone())
            .threads(threads)
            .observer(|p| marks.push((Instant::now(), process_cpu(), p.evaluations)))
            .fit(&data)
            .unwrap();
        assert_eq!(fitted.report().features, dim, "every pair has a weight");
        let (first, last) = (marks[0], marks[marks.len() - 1]);
        let evals = (last.2 - first.2) as f64;
        PerEval {
            wall: (last.0 - first.0).as_secs_f64() / evals,
            cpu: (last.1 - first.1) / evals,
        }
    };
    let hand_loop = || {
        std::hint::black_box(hand_evaluate(&corpus, &w, 1.0, threads));
        let reps = 3;
        let (t, c) = (Instant::now(), process_cpu());
        for _ in 0..reps {
            std::hint::black_box(hand_evaluate(&corpus, &w, 1.0, threads));
        }
        PerEval {
            wall: t.elapsed().as_secs_f64() / reps as f64,
            cpu: (process_cpu() - c) / reps as f64,
        }
    };
    let (mut wall_ratio, mut cpu_ratio, mut ours_wall, mut hand_wall) = (vec![], vec![], vec![], vec![]);
    for r in 0..rounds {
        let (a, b) = if r % 2 == 0 {
            let a = fit();
            (a, hand_loop())
        } else {
            let b = hand_loop();
            (fit(), b)
        };
        println!(
            "round {r}: chaincrf {:.3} s/evaluation wall, {:.3} CPU; hand loop {:.3} wall, {:.3} CPU; \
             ratio {:.2} wall, {:.2} CPU",
            a.wall,
            a.cpu,
            b.wall,
            b.cpu,
            a.wall / b.wall,
            a.cpu / b.cpu
        );
        wall_ratio.push(a.wall / b.wall);
        cpu_ratio.push(a.cpu / b.cpu);
        ours_wall.push(a.wall);
        hand_wall.push(b.wall);
    }
    println!(
        "medians over {rounds} rounds: chaincrf {:.3} s/evaluation, hand loop {:.3} (wall); \
         chaincrf / hand {:.2} wall, {:.2} CPU",
        median(&mut ours_wall),
        median(&mut hand_wall),
        median(&mut wall_ratio),
        median(&mut cpu_ratio)
    );
}
