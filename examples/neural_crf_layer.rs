//! The CRF as a loss layer on top of a (tiny) emission model.
//!
//! In a neural tagger a network computes per-position label scores and a CRF
//! layer on top turns them into a sequence likelihood. `chaincrf` provides that
//! layer on plain slices: `loss::nll_batch` takes the emission scores of a
//! batch of variable-length sequences plus the shared transition, start and
//! end scores, and returns the mean negative log-likelihood with its gradient
//! with respect to every one of those scores. Backpropagating further is the
//! emission model's business.
//!
//! Here the "network" is a linear scorer over one-hot features (the current
//! and the previous character) with its weights in an `nalgebra` matrix, and
//! the data are synthetic BIO sequences whose characters overlap between
//! labels, so the emissions alone cannot tell B from I: the learned
//! transitions have to. Training is plain full-batch gradient descent; every
//! few epochs the loss and the held-out token accuracy (Viterbi decoding) are
//! printed. Runs in a few seconds in release mode.
//!
//! Run: `cargo run --release --example neural_crf_layer`

use chaincrf::core::loss::{self, CrfParams};
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const K: usize = 3; // labels B, I, O
const LABELS: [&str; K] = ["B", "I", "O"];
const VOCAB: usize = 12;
const FEATURES: usize = 2 * VOCAB + 1; // current char, previous char, bias

/// One sentence: characters and gold labels.
struct Sentence {
    chars: Vec<usize>,
    labels: Vec<usize>,
}

/// BIO label sequences from a Markov chain (I only after B or I), characters
/// from label-specific ranges that overlap: B draws from 0..6, I from 3..9,
/// O from 6..12, plus 10% uniform noise.
fn synthetic(rng: &mut StdRng, count: usize) -> Vec<Sentence> {
    let next = |rng: &mut StdRng, prev: Option<usize>| -> usize {
        let u: f64 = rng.random();
        match prev {
            // from the start or from O: B or O (never I)
            None | Some(2) => {
                if u < 0.45 {
                    0
                } else {
                    2
                }
            }
            // from B: mostly I; from I: I, O or a new B
            Some(0) => [1, 1, 1, 1, 1, 1, 1, 0, 2, 2][(u * 10.0) as usize],
            _ => [1, 1, 1, 1, 2, 2, 2, 2, 0, 0][(u * 10.0) as usize],
        }
    };
    (0..count)
        .map(|_| {
            let n = rng.random_range(6..20);
            let mut labels: Vec<usize> = Vec::with_capacity(n);
            for _ in 0..n {
                let y = next(rng, labels.last().copied());
                labels.push(y);
            }
            let chars = labels
                .iter()
                .map(|&y| {
                    if rng.random::<f64>() < 0.1 {
                        rng.random_range(0..VOCAB)
                    } else {
                        3 * y + rng.random_range(0..6)
                    }
                })
                .collect();
            Sentence { chars, labels }
        })
        .collect()
}

/// The one-hot feature matrix `X` (`n × FEATURES`) of a sentence.
fn features(s: &Sentence) -> DMatrix<f64> {
    let n = s.chars.len();
    let mut x = DMatrix::zeros(n, FEATURES);
    for (t, &c) in s.chars.iter().enumerate() {
        x[(t, c)] = 1.0;
        if t > 0 {
            x[(t, VOCAB + s.chars[t - 1])] = 1.0;
        }
        x[(t, 2 * VOCAB)] = 1.0;
    }
    x
}

/// Emission scores `X·W` as the row-major `n × K` slice the loss layer takes.
fn emissions(x: &DMatrix<f64>, w: &DMatrix<f64>) -> Vec<f64> {
    // nalgebra is column-major: the transpose's storage is the row-major product.
    (x * w).transpose().as_slice().to_vec()
}

fn accuracy(data: &[Sentence], xs: &[DMatrix<f64>], w: &DMatrix<f64>, params: &CrfParams<'_>) -> f64 {
    let scores: Vec<Vec<f64>> = xs.iter().map(|x| emissions(x, w)).collect();
    let batch: Vec<&[f64]> = scores.iter().map(Vec::as_slice).collect();
    let paths = loss::viterbi_batch(params, &batch).expect("finite scores always decode");
    let (mut right, mut total) = (0usize, 0usize);
    for (path, s) in paths.iter().zip(data) {
        right += path.labels.iter().zip(&s.labels).filter(|(a, b)| a == b).count();
        total += s.labels.len();
    }
    right as f64 / total as f64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = StdRng::seed_from_u64(2024);
    let train = synthetic(&mut rng, 400);
    let test = synthetic(&mut rng, 200);
    let train_x: Vec<DMatrix<f64>> = train.iter().map(features).collect();
    let test_x: Vec<DMatrix<f64>> = test.iter().map(features).collect();

    // Parameters: emission weights W (FEATURES × K) and the CRF's own scores.
    let mut w = DMatrix::from_fn(FEATURES, K, |_, _| rng.random_range(-0.01..0.01));
    let mut transitions = vec![0.0; K * K];
    let mut start = vec![0.0; K];
    let mut end = vec![0.0; K];
    let learning_rate = 0.15;

    println!("epoch   mean NLL   test accuracy");
    for epoch in 0..=80 {
        let params = CrfParams {
            transitions: &transitions,
            start: &start,
            end: &end,
            k: K,
        };
        let scores: Vec<Vec<f64>> = train_x.iter().map(|x| emissions(x, &w)).collect();
        let batch: Vec<(&[f64], &[usize])> = scores
            .iter()
            .zip(&train)
            .map(|(e, s)| (e.as_slice(), s.labels.as_slice()))
            .collect();
        // The CRF layer: loss and ∂loss/∂(emissions, transitions, start, end).
        let out = loss::nll_batch(&params, &batch)?;
        if epoch % 10 == 0 {
            println!(
                "{epoch:>5}   {:>8.4}   {:>12.1}%",
                out.mean,
                100.0 * accuracy(&test, &test_x, &w, &params)
            );
        }
        // Backpropagate into the linear layer: ∂loss/∂W = Σ Xᵀ · ∂loss/∂E.
        let mut grad_w = DMatrix::zeros(FEATURES, K);
        for (x, g) in train_x.iter().zip(&out.emission_grads) {
            let g = DMatrix::from_row_slice(x.nrows(), K, g);
            grad_w += x.transpose() * g;
        }
        w -= learning_rate * grad_w;
        for (p, g) in transitions.iter_mut().zip(&out.transition_grad) {
            *p -= learning_rate * g;
        }
        for (p, g) in start.iter_mut().zip(&out.start_grad) {
            *p -= learning_rate * g;
        }
        for (p, g) in end.iter_mut().zip(&out.end_grad) {
            *p -= learning_rate * g;
        }
    }

    println!("\nlearned transition scores (row = from, column = to):");
    println!("       {}", LABELS.map(|l| format!("{l:>6}")).join(""));
    for (i, from) in LABELS.iter().enumerate() {
        let row: Vec<String> = transitions[i * K..(i + 1) * K]
            .iter()
            .map(|x| format!("{x:>6.2}"))
            .collect();
        println!("  {from:>3}  {}", row.join(""));
    }
    println!("(O → I never occurs in the data: its score ends up the lowest.)");
    Ok(())
}
