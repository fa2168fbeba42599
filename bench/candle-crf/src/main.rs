//! Loss plus backward of `chaincrf_candle::Crf::nll` (candle 0.11) against
//! `candle_crf::CRF::forward` (candle 0.8) on identical inputs: batch 32,
//! lengths 50 and 500, 4 and 20 labels, f32, right-padded sequences (lengths
//! between half the padded length and all of it, first step on as candle-crf
//! requires), mean reduction. Both crates' scores are set to the same values.
//! Before timing, the losses and the emission and transition gradients of the
//! two are compared. Timing alternates the two implementations, one run each
//! per round, and reports medians.
//!
//! Run from this folder: `cargo run --release -- [rounds]` (default 11).

use std::time::Instant;

const BATCH: usize = 32;

/// splitmix64: the inputs are the same on every machine and run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct Inputs {
    time: usize,
    k: usize,
    emissions: Vec<f32>,
    tags: Vec<i64>,
    mask: Vec<u8>,
    lengths: Vec<usize>,
    transitions: Vec<f32>,
    start: Vec<f32>,
    end: Vec<f32>,
}

impl Inputs {
    fn new(time: usize, k: usize, seed: u64) -> Inputs {
        let mut rng = Rng(seed);
        let emissions = (0..BATCH * time * k).map(|_| rng.uniform(-3.0, 3.0)).collect();
        let tags = (0..BATCH * time).map(|_| rng.below(k) as i64).collect();
        let lengths: Vec<usize> = (0..BATCH).map(|_| time / 2 + rng.below(time / 2 + 1)).collect();
        let mask = (0..BATCH * time).map(|x| u8::from(x % time < lengths[x / time])).collect();
        let mut params = |n: usize| (0..n).map(|_| rng.uniform(-0.1, 1.0)).collect::<Vec<f32>>();
        let (transitions, start, end) = (params(k * k), params(k), params(k));
        Inputs {
            time,
            k,
            emissions,
            tags,
            mask,
            lengths,
            transitions,
            start,
            end,
        }
    }
}

/// chaincrf-candle on candle 0.11.
mod ours {
    use super::{Inputs, BATCH};
    use candle::{DType, Device, Tensor, Var};
    use candle_nn::{VarBuilder, VarMap};
    use chaincrf_candle::{Crf, Reduction, SequenceMask};

    pub struct Case {
        crf: Crf,
        _vm: VarMap,
        emissions: Var,
        tags: Tensor,
        mask: Tensor,
    }

    pub fn setup(x: &Inputs) -> candle::Result<Case> {
        let dev = &Device::Cpu;
        let vm = VarMap::new();
        let crf = Crf::new(x.k, VarBuilder::from_varmap(&vm, DType::F32, dev))?;
        {
            let data = vm.data().lock().unwrap();
            data["transitions"].set(&Tensor::from_slice(&x.transitions, (x.k, x.k), dev)?)?;
            data["start"].set(&Tensor::from_slice(&x.start, x.k, dev)?)?;
            data["end"].set(&Tensor::from_slice(&x.end, x.k, dev)?)?;
        }
        Ok(Case {
            crf,
            _vm: vm,
            emissions: Var::from_slice(&x.emissions, (BATCH, x.time, x.k), dev)?,
            tags: Tensor::from_slice(&x.tags, (BATCH, x.time), dev)?,
            mask: Tensor::from_slice(&x.mask, (BATCH, x.time), dev)?,
        })
    }

    /// Mean NLL, and the gradients of emissions and transitions.
    pub fn run(c: &Case) -> candle::Result<(f64, Vec<f32>, Vec<f32>)> {
        let loss = c.crf.nll(
            c.emissions.as_tensor(),
            &c.tags,
            SequenceMask::Tensor(&c.mask),
            Reduction::Mean,
        )?;
        let grads = loss.backward()?;
        let flat = |t: &Tensor| grads.get(t).unwrap().flatten_all()?.to_vec1::<f32>();
        Ok((
            f64::from(loss.to_scalar::<f32>()?),
            flat(c.emissions.as_tensor())?,
            flat(c.crf.transitions())?,
        ))
    }
}

/// candle-crf 0.8.8 on candle 0.8.
mod theirs {
    use super::{Inputs, BATCH};
    use candle08::{DType, Device, Tensor, Var};
    use candle_crf::{Reduction, CRF};
    use candle_nn08::{VarBuilder, VarMap};

    pub struct Case {
        crf: CRF,
        vm: VarMap,
        emissions: Var,
        tags: Tensor,
        mask: Tensor,
        time: usize,
        k: usize,
    }

    /// `[batch, time, width]` row-major data as `[time, batch, width]`.
    fn time_major<T: Copy>(data: &[T], time: usize, width: usize) -> Vec<T> {
        let mut out = Vec::with_capacity(data.len());
        for t in 0..time {
            for b in 0..BATCH {
                out.extend_from_slice(&data[(b * time + t) * width..(b * time + t + 1) * width]);
            }
        }
        out
    }

    /// The inverse of [`time_major`].
    fn batch_major<T: Copy>(data: &[T], time: usize, width: usize) -> Vec<T> {
        let mut out = Vec::with_capacity(data.len());
        for b in 0..BATCH {
            for t in 0..time {
                out.extend_from_slice(&data[(t * BATCH + b) * width..(t * BATCH + b + 1) * width]);
            }
        }
        out
    }

    pub fn setup(x: &Inputs) -> candle08::Result<Case> {
        let dev = &Device::Cpu;
        let vm = VarMap::new();
        // Time-major (batch_first = false): with batch_first = true, candle-crf
        // 0.8.8 transposes its inputs and then fails in candle 0.8's `gather`
        // ("gather only supports contiguous tensors").
        let crf = candle_crf::crf(x.k, false, VarBuilder::from_varmap(&vm, DType::F32, dev))?;
        {
            let data = vm.data().lock().unwrap();
            data["transitions"].set(&Tensor::from_slice(&x.transitions, (x.k, x.k), dev)?)?;
            data["start_transitions"].set(&Tensor::from_slice(&x.start, x.k, dev)?)?;
            data["end_transitions"].set(&Tensor::from_slice(&x.end, x.k, dev)?)?;
        }
        Ok(Case {
            crf,
            vm,
            emissions: Var::from_slice(&time_major(&x.emissions, x.time, x.k), (x.time, BATCH, x.k), dev)?,
            tags: Tensor::from_slice(&time_major(&x.tags, x.time, 1), (x.time, BATCH), dev)?,
            mask: Tensor::from_slice(&time_major(&x.mask, x.time, 1), (x.time, BATCH), dev)?,
            time: x.time,
            k: x.k,
        })
    }

    /// Mean NLL (candle-crf returns the log-likelihood: negated), and the
    /// gradients of the NLL with respect to emissions and transitions.
    pub fn run(c: &Case) -> candle08::Result<(f64, Vec<f32>, Vec<f32>)> {
        let llh = c
            .crf
            .forward(c.emissions.as_tensor(), &c.tags, Some(&c.mask), Reduction::Mean)?;
        let loss = llh.neg()?;
        let grads = loss.backward()?;
        let transitions = c.vm.data().lock().unwrap()["transitions"].as_tensor().clone();
        let flat = |t: &Tensor| grads.get(t).unwrap().flatten_all()?.to_vec1::<f32>();
        Ok((
            f64::from(loss.to_scalar::<f32>()?),
            batch_major(&flat(c.emissions.as_tensor())?, c.time, c.k),
            flat(&transitions)?,
        ))
    }
}

fn max_rel_diff(a: &[f32], b: &[f32]) -> f64 {
    let scale = a.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-12);
    a.iter().zip(b).map(|(x, y)| f64::from((x - y).abs() / scale)).fold(0.0, f64::max)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::args().nth(1).map_or(Ok(11), |s| s.parse())?;
    println!("batch {BATCH}, f32, mean reduction, loss + backward; {rounds} alternating rounds, medians");
    println!("| length | labels | tokens | loss (ours) | loss (candle-crf) | rel. diff | emission grad diff | transition grad diff | ours ms | candle-crf ms | ratio |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (time, k) in [(50, 4), (50, 20), (500, 4), (500, 20)] {
        let x = Inputs::new(time, k, 20261207 + (time * 100 + k) as u64);
        let (a, b) = (ours::setup(&x)?, theirs::setup(&x)?);
        let (la, ga, ta) = ours::run(&a)?;
        let (lb, gb, tb) = theirs::run(&b)?;
        let (mut ta_ms, mut tb_ms) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let t0 = Instant::now();
            std::hint::black_box(ours::run(&a)?);
            ta_ms.push(t0.elapsed().as_secs_f64() * 1e3);
            let t0 = Instant::now();
            std::hint::black_box(theirs::run(&b)?);
            tb_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        let (ma, mb) = (median(ta_ms), median(tb_ms));
        println!(
            "| {time} | {k} | {} | {la:.6} | {lb:.6} | {:.1e} | {:.1e} | {:.1e} | {ma:.2} | {mb:.2} | {:.4} |",
            x.lengths.iter().sum::<usize>(),
            (la - lb).abs() / lb.abs(),
            max_rel_diff(&ga, &gb),
            max_rel_diff(&ta, &tb),
            ma / mb
        );
    }
    Ok(())
}
