//! A CRF under your own candle network: an embedding and a convolution
//! compute emission scores, `chaincrf_candle::Crf` adds transitions and the
//! loss, and one `backward()` trains both. The data is synthetic: labels
//! follow a Markov chain (label 2 never follows label 0) and each token is its
//! label's token most of the time, a random one otherwise, so the neighbours
//! and the transitions are what recover the labels.
//! Run: `cargo run --release -p chaincrf-candle --example tagger`.

use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::{embedding, linear, Module, Optimizer, VarBuilder, VarMap};
use chaincrf_candle::{Crf, Reduction, SequenceMask};
use rand::{Rng, SeedableRng};

const VOCAB: usize = 12;
const LABELS: usize = 3;
const TIME: usize = 30;

/// A batch of `n` right-padded sequences: tokens, tags, lengths.
fn batch(rng: &mut impl Rng, n: usize) -> Result<(Tensor, Tensor, Vec<usize>)> {
    let (mut tokens, mut tags, mut lengths) = (vec![0u32; n * TIME], vec![0u32; n * TIME], vec![]);
    for i in 0..n {
        let len = rng.random_range(5..=TIME);
        let mut y = 0usize;
        for t in 0..len {
            y = match (y, rng.random_range(0..10)) {
                (0, 0..=6) | (1, 0..=2) | (2, 0..=5) => 0,
                (0, _) | (1, 3..=6) => 1,
                _ => 2,
            };
            let noisy = rng.random_bool(0.35);
            tags[i * TIME + t] = y as u32;
            tokens[i * TIME + t] = if noisy { rng.random_range(0..VOCAB) } else { y * 4 } as u32;
        }
        lengths.push(len);
    }
    let dev = &Device::Cpu;
    Ok((
        Tensor::from_vec(tokens, (n, TIME), dev)?,
        Tensor::from_vec(tags, (n, TIME), dev)?,
        lengths,
    ))
}

/// Embedding, a width-3 convolution with ReLU, and a dense layer to the
/// label scores. The convolution is a dense layer over each position's
/// window (padded explicitly): candle 0.11.1's `conv1d` computes wrong kernel
/// gradients on the CPU for batches of more than one sequence.
struct Encoder {
    embed: candle_nn::Embedding,
    conv: candle_nn::Linear,
    out: candle_nn::Linear,
}

impl Encoder {
    fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Encoder {
            embed: embedding(VOCAB, 16, vb.pp("embed"))?,
            conv: linear(3 * 16, 32, vb.pp("conv"))?,
            out: linear(32, LABELS, vb.pp("out"))?,
        })
    }

    fn forward(&self, tokens: &Tensor) -> Result<Tensor> {
        let x = self.embed.forward(tokens)?.pad_with_zeros(1, 1, 1)?; // [batch, time + 2, 16]
        let window = Tensor::cat(
            &[x.narrow(1, 0, TIME)?, x.narrow(1, 1, TIME)?, x.narrow(1, 2, TIME)?],
            D::Minus1,
        )?;
        self.out.forward(&self.conv.forward(&window)?.relu()?) // [batch, time, labels]
    }
}

fn main() -> Result<()> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let encoder = Encoder::new(vb.pp("encoder"))?;
    let mut crf = Crf::new(LABELS, vb.pp("crf"))?;
    crf.forbid_transition(0, 2)?; // known structure: a hard constraint
    let mut opt = candle_nn::AdamW::new_lr(vm.all_vars(), 0.01)?;
    let (test_tokens, test_tags, test_lengths) = batch(&mut rng, 200)?;
    for step in 1..=150 {
        let (tokens, tags, lengths) = batch(&mut rng, 32)?;
        let emissions = encoder.forward(&tokens)?;
        let loss = crf.nll(&emissions, &tags, SequenceMask::Lengths(&lengths), Reduction::TokenMean)?;
        opt.backward_step(&loss)?;
        if step % 30 == 0 {
            let paths = crf.decode(&encoder.forward(&test_tokens)?, SequenceMask::Lengths(&test_lengths))?;
            let gold = test_tags.to_vec2::<u32>()?;
            let (mut right, mut total) = (0, 0);
            for (path, gold) in paths.iter().zip(&gold) {
                right += path
                    .labels
                    .iter()
                    .zip(gold)
                    .filter(|(p, g)| **p == **g as usize)
                    .count();
                total += path.labels.len();
            }
            let acc = right as f64 / total as f64;
            println!(
                "step {step:3}  loss/token {:.4}  held-out accuracy {acc:.3}",
                loss.to_scalar::<f32>()?
            );
        }
    }
    Ok(())
}
