//! Training on small synthetic data: the gradient equals finite differences, a
//! known generating model is learned, and the weights do not depend on the
//! number of threads.

use chaincrf_features::{Attr, FeatureExtractor};
use chaincrf_model::{Structure, WeightLayout};
use chaincrf_train::{
    train, trainable_mask, Dataset, DatasetBuilder, FeaturePairs, LabelTarget, Objective, TrainParams,
};
use rand::{Rng, SeedableRng};

/// Input: a sequence of small integers; attributes: the token and its neighbours.
struct Tokens;
impl FeatureExtractor for Tokens {
    type Input = [u8];
    fn len(&self, input: &[u8]) -> usize {
        input.len()
    }
    fn extract(&self, input: &[u8], t: usize, sink: &mut dyn FnMut(Attr<'_>)) {
        let w = format!("w={}", input[t]);
        sink(Attr::state(&w));
        if t > 0 {
            let p = format!("p={}", input[t - 1]);
            sink(Attr::state(&p).with_value(0.5));
        }
        sink(Attr::state("bias"));
    }
}

/// Label = token parity, except that label 2 follows any token 7.
fn synthetic(n_seq: usize, seed: u64) -> Vec<(Vec<u8>, Vec<u32>)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n_seq)
        .map(|_| {
            let len = rng.random_range(1..12);
            let toks: Vec<u8> = (0..len).map(|_| rng.random_range(0..9)).collect();
            let labels = toks
                .iter()
                .enumerate()
                .map(|(t, &x)| if t > 0 && toks[t - 1] == 7 { 2 } else { u32::from(x % 2) })
                .collect();
            (toks, labels)
        })
        .collect()
}

fn dataset(seqs: &[(Vec<u8>, Vec<u32>)]) -> Dataset {
    let mut b = DatasetBuilder::new(true);
    for l in ["even", "odd", "after7"] {
        b.labels_mut().intern(l);
    }
    for (x, y) in seqs {
        b.add(&Tokens, x, LabelTarget::Gold(y.clone())).unwrap();
    }
    b.finish(1)
}

fn structure() -> Structure {
    Structure {
        transitions: true,
        start_end: true,
        ..Structure::default()
    }
}

fn layout(d: &Dataset) -> WeightLayout {
    WeightLayout {
        k: 3,
        num_state: d.attributes.len(chaincrf_features::AttrKind::State),
        num_edge: 0,
    }
}

#[test]
fn gradient_equals_finite_differences() {
    let d = dataset(&synthetic(20, 1));
    let l = layout(&d);
    let mask = trainable_mask(&d, l, &structure(), FeaturePairs::All);
    let obj = Objective::new(&d, l, structure(), 0.3, mask, 2).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let w: Vec<f64> = (0..obj.dim()).map(|_| rng.random_range(-1.0..1.0)).collect();
    let (_, g) = obj.evaluate(&w).unwrap();
    let h = 1e-5;
    for i in (0..obj.dim()).step_by(3) {
        let (mut a, mut b) = (w.clone(), w.clone());
        a[i] += h;
        b[i] -= h;
        let fd = (obj.evaluate(&a).unwrap().0 - obj.evaluate(&b).unwrap().0) / (2.0 * h);
        assert!(
            (fd - g[i]).abs() < 1e-5 * (1.0 + fd.abs()),
            "weight {i}: fd {fd} vs {}",
            g[i]
        );
    }
}

#[test]
fn partial_labels_gradient_equals_finite_differences() {
    let seqs = synthetic(10, 5);
    let mut b = DatasetBuilder::new(false);
    for l in ["even", "odd", "after7"] {
        b.labels_mut().intern(l);
    }
    for (i, (x, y)) in seqs.iter().enumerate() {
        let sets = y
            .iter()
            .enumerate()
            .map(|(t, &l)| {
                if (t + i) % 3 == 0 {
                    None
                } else if t % 2 == 0 {
                    Some(vec![l])
                } else {
                    Some(vec![l, (l + 1) % 3])
                }
            })
            .collect();
        b.add(&Tokens, x, LabelTarget::Partial(sets)).unwrap();
    }
    let d = b.finish(1);
    let l = layout(&d);
    let mask = trainable_mask(&d, l, &structure(), FeaturePairs::All);
    let obj = Objective::new(&d, l, structure(), 0.1, mask, 1).unwrap();
    let w: Vec<f64> = (0..obj.dim()).map(|i| ((i * 7919) % 13) as f64 / 13.0 - 0.5).collect();
    let (_, g) = obj.evaluate(&w).unwrap();
    let h = 1e-5;
    for i in 0..obj.dim() {
        let (mut a, mut bb) = (w.clone(), w.clone());
        a[i] += h;
        bb[i] -= h;
        let fd = (obj.evaluate(&a).unwrap().0 - obj.evaluate(&bb).unwrap().0) / (2.0 * h);
        assert!(
            (fd - g[i]).abs() < 1e-5 * (1.0 + fd.abs()),
            "weight {i}: fd {fd} vs {}",
            g[i]
        );
    }
}

#[test]
fn learns_the_generating_rule_and_threads_do_not_change_the_model() {
    let train_set = dataset(&synthetic(300, 11));
    let test = synthetic(100, 12);
    let params = TrainParams::new().c2(0.01).feature_pairs(FeaturePairs::All);
    let one = train(
        &train_set,
        &structure(),
        &params.clone().threads(1),
        None,
        &mut |_, _| None,
    )
    .unwrap();
    let two = train(&train_set, &structure(), &params.threads(2), None, &mut |_, _| None).unwrap();
    assert_eq!(one.iterations, two.iterations);
    assert!(
        one.weights
            .iter()
            .zip(&two.weights)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "1 and 2 threads differ"
    );
    let model = chaincrf_model::Model::from_flat(
        train_set.labels.clone(),
        train_set.attributes.clone(),
        chaincrf_model::ExtractorSpec::Custom {
            kind: "tokens".into(),
            payload: vec![],
        },
        structure(),
        &one.weights,
    );
    let mut tagger = model.tagger();
    let (mut right, mut total) = (0, 0);
    for (x, y) in &test {
        tagger.observe(&Tokens, x);
        let p = tagger.viterbi(None).unwrap();
        right += p.labels.iter().zip(y).filter(|(a, b)| **a as u32 == **b).count();
        total += y.len();
    }
    let acc = right as f64 / total as f64;
    assert!(acc > 0.99, "accuracy {acc}");
    // The model survives a round trip through bytes with identical predictions.
    let bytes = chaincrf_model::io::to_bytes(&model).unwrap();
    let back = chaincrf_model::io::from_bytes(&bytes, std::path::Path::new("mem")).unwrap();
    let mut t2 = back.tagger();
    for (x, _) in &test {
        tagger.observe(&Tokens, x);
        t2.observe(&Tokens, x);
        assert_eq!(tagger.viterbi(None).unwrap(), t2.viterbi(None).unwrap());
    }
    // Truncated or corrupted bytes are errors, not panics.
    assert!(chaincrf_model::io::from_bytes(&bytes[..bytes.len() / 2], std::path::Path::new("m")).is_err());
    let mut bad = bytes.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert!(chaincrf_model::io::from_bytes(&bad, std::path::Path::new("m")).is_err());
}

/// The stop flag ends training after the iteration during which it was set;
/// the callback sees that iteration marked, and the outcome holds its weights.
#[test]
fn stop_flag_ends_training_after_the_current_iteration() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let data = dataset(&synthetic(200, 3));
    let flag = Arc::new(AtomicBool::new(false));
    let params = TrainParams::new()
        .threads(1)
        .epsilon(0.0)
        .delta(0.0)
        .stop_flag(Some(flag.clone()));
    let mut seen: Vec<(u64, bool)> = Vec::new();
    let mut last = Vec::new();
    let outcome = train(&data, &structure(), &params, None, &mut |p, w| {
        seen.push((p.iteration, p.interrupted));
        if p.iteration == 3 {
            flag.store(true, Ordering::SeqCst);
        }
        last = w.to_vec();
        None
    })
    .unwrap();
    assert_eq!(seen, [(1, false), (2, false), (3, false), (4, true)]);
    assert_eq!(outcome.iterations, 4);
    assert!(outcome.termination.contains("interrupted"), "{}", outcome.termination);
    assert_eq!(outcome.weights, last);
}

/// A continued run numbers its iterations after the earlier run's and counts
/// them against `max_iterations`; one with nothing left returns its start.
#[test]
fn iterations_done_continue_the_count() {
    let data = dataset(&synthetic(100, 4));
    let params = TrainParams::new()
        .threads(1)
        .epsilon(0.0)
        .delta(0.0)
        .max_iterations(Some(7))
        .iterations_done(5);
    let mut seen = Vec::new();
    let outcome = train(&data, &structure(), &params, None, &mut |p, _| {
        seen.push(p.iteration);
        None
    })
    .unwrap();
    assert_eq!(seen, [6, 7]);
    assert_eq!(outcome.iterations, 7);
    let start = vec![0.0; layout(&data).len()];
    let done = train(
        &data,
        &structure(),
        &params.iterations_done(7),
        Some(start.clone()),
        &mut |_, _| panic!("no iteration is left"),
    )
    .unwrap();
    assert_eq!((done.iterations, done.weights), (7, start));
}
