//! End to end: an emission network and the CRF trained together with a candle
//! optimizer learn a task that needs the transitions. Every variable starts
//! from a seeded generator (candle's CPU generator cannot be seeded), so the
//! run is the same every time.

use candle_core::{DType, Device, Tensor};
use candle_nn::{embedding, Module, Optimizer, VarBuilder, VarMap};
use chaincrf_candle::{Crf, Reduction, SequenceMask};
use rand::{Rng, SeedableRng};

const TIME: usize = 12;

/// Labels alternate 0, 1, 0, 1, ... from a random first label; the token is
/// the label most of the time and a third, uninformative token (2) otherwise.
/// Tokens 2 can only be labelled from their neighbours, through transitions.
fn data(rng: &mut impl Rng, n: usize) -> (Tensor, Tensor, Vec<usize>) {
    let (mut tokens, mut tags, mut lengths) = (vec![0u32; n * TIME], vec![0u32; n * TIME], vec![]);
    for i in 0..n {
        let len = rng.random_range(1..=TIME);
        let first = rng.random_range(0..2u32);
        for t in 0..len {
            let y = (first + t as u32) % 2;
            tags[i * TIME + t] = y;
            tokens[i * TIME + t] = if rng.random_bool(0.4) { 2 } else { y };
        }
        lengths.push(len);
    }
    let dev = &Device::Cpu;
    (
        Tensor::from_vec(tokens, (n, TIME), dev).unwrap(),
        Tensor::from_vec(tags, (n, TIME), dev).unwrap(),
        lengths,
    )
}

#[test]
fn an_embedding_and_the_crf_learn_a_task_that_needs_transitions() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let embed = embedding(3, 2, vb.pp("embed")).unwrap();
    let crf = Crf::new(2, vb.pp("crf")).unwrap();
    for var in vm.all_vars() {
        let values: Vec<f32> = (0..var.elem_count()).map(|_| rng.random_range(-0.1..0.1)).collect();
        var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu).unwrap())
            .unwrap();
    }
    let mut opt = candle_nn::AdamW::new_lr(vm.all_vars(), 0.05).unwrap();
    let (test_tokens, test_tags, test_lengths) = data(&mut rng, 100);
    let mut losses = Vec::new();
    for _ in 0..60 {
        let (tokens, tags, lengths) = data(&mut rng, 16);
        let emissions = embed.forward(&tokens).unwrap();
        let loss = crf
            .nll(&emissions, &tags, SequenceMask::Lengths(&lengths), Reduction::TokenMean)
            .unwrap();
        losses.push(loss.to_scalar::<f32>().unwrap());
        opt.backward_step(&loss).unwrap();
    }
    let emissions = embed.forward(&test_tokens).unwrap();
    let paths = crf.decode(&emissions, SequenceMask::Lengths(&test_lengths)).unwrap();
    let gold = test_tags.to_vec2::<u32>().unwrap();
    let (mut right, mut total) = (0, 0);
    for (p, g) in paths.iter().zip(&gold) {
        right += p.labels.iter().zip(g).filter(|(a, b)| **a == **b as usize).count();
        total += p.labels.len();
    }
    let accuracy = right as f64 / total as f64;
    // Without transitions, token 2 (40% of tokens) is a coin flip: at most
    // about 0.8. With them, nearly every sequence is decoded whole.
    assert!(accuracy > 0.95, "held-out accuracy {accuracy}, losses {losses:?}");
    let (first, last) = (losses[..5].iter().sum::<f32>(), losses[55..].iter().sum::<f32>());
    assert!(last < 0.5 * first, "losses {losses:?}");
}
