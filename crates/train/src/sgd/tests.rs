//! `l2sgd`: the calibration follows CRFsuite's search step by step, the
//! `delta` test and the best-epoch rule, exact resume, untrainable weights.

use super::*;
use crate::data::{DatasetBuilder, LabelTarget};
use crate::mask::trainable_mask;
use crate::params::{Algorithm, Params};
use chaincrf_features::{Attr, FeatureExtractor};
use rand::{Rng, SeedableRng};

struct Tokens;
impl FeatureExtractor for Tokens {
    type Input = [u8];
    fn len(&self, input: &[u8]) -> usize {
        input.len()
    }
    fn extract(&self, input: &[u8], t: usize, sink: &mut dyn FnMut(Attr<'_>)) {
        sink(Attr::state(&format!("w={}", input[t])));
        if t > 0 {
            sink(Attr::state(&format!("p={}", input[t - 1])).with_value(0.5));
            sink(Attr::edge(&format!("e={}", input[t - 1] % 2)));
        }
    }
}

/// `n` random token sequences of 1 to 9 tokens below 9, drawn from `seed`.
fn random_sequences(n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let len = rng.random_range(1..10);
            (0..len).map(|_| rng.random_range(0..9)).collect()
        })
        .collect()
}

fn synthetic(n: usize, seed: u64) -> Dataset {
    from_sequences(&random_sequences(n, seed))
}

fn structure() -> Structure {
    Structure {
        transitions: true,
        start_end: true,
        forbidden_transitions: vec![(0, 2)],
        ..Structure::default()
    }
}

fn layout(d: &Dataset) -> WeightLayout {
    d.layout()
}

/// CRFsuite's default mask: the observed pairs.
fn observed(d: &Dataset) -> Vec<bool> {
    trainable_mask(d, &Params::new(Algorithm::L2Sgd))
}

/// The candidates CRFsuite 0.12 tries, worked out by hand from its loop:
/// up from `eta` while acceptable (at most `candidates`), then down from
/// `eta / rate`, within `max_trials − 1` passes.
#[test]
fn calibration_tries_crfsuites_candidates() {
    let c = Calibration {
        rule: CalibrationRule::Crfsuite,
        eta: 1.0,
        rate: 2.0,
        samples: 10,
        candidates: 3,
        max_trials: 20,
    };
    let record = |accept_up_to: f64, scores: &dyn Fn(f64) -> f64| {
        let mut tried = Vec::new();
        let best = search_learning_rate(&c, 10.0, |eta| {
            tried.push(eta);
            if eta <= accept_up_to {
                scores(eta)
            } else {
                f64::INFINITY
            }
        });
        (tried, best)
    };
    // Every rate acceptable: three up (the third exhausts the candidates),
    // then three down; the lowest score wins.
    let (tried, best) = record(f64::INFINITY, &|eta: f64| (eta.log2() - 1.0).powi(2) / 100.0);
    assert_eq!(tried, [1.0, 2.0, 4.0, 0.5, 0.25, 0.125]);
    assert_eq!(best, Some(2.0));
    // Divergence above 2: the up phase ends at the first failure.
    let (tried, best) = record(2.0, &|eta: f64| eta);
    assert_eq!(tried, [1.0, 2.0, 4.0, 0.5, 0.25, 0.125]);
    assert_eq!(best, Some(0.125));
    let (tried, _) = record(1.5, &|eta: f64| eta);
    assert_eq!(tried, [1.0, 2.0, 0.5, 0.25, 0.125]);
    // A finite score that is no better than the start is not acceptable but
    // may still be the best one seen (CRFsuite keeps it).
    let (tried, best) = record(f64::INFINITY, &|eta: f64| if eta < 0.1 { 5.0 } else { 11.0 + eta });
    assert_eq!(tried, [1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625]);
    assert_eq!(best, Some(0.0625));
    // max_trials bounds the passes.
    let short = Calibration { max_trials: 4, ..c };
    let mut tried = Vec::new();
    search_learning_rate(&short, 10.0, |eta| {
        tried.push(eta);
        1.0
    });
    assert_eq!(tried, [1.0, 2.0, 4.0]);
    // Nothing finite: no rate.
    assert_eq!(search_learning_rate(&c, 10.0, |_| f64::INFINITY), None);
}

/// The warm start's greedy search: up while the score improves, or down
/// until a candidate beats the starting weights.
#[test]
fn greedy_calibration_stops_at_the_first_turn() {
    let c = Calibration {
        rule: CalibrationRule::Greedy,
        eta: 1.0,
        candidates: 10,
        ..Calibration::default()
    };
    let mut tried = Vec::new();
    let best = search_greedily(&c, 10.0, |eta| {
        tried.push(eta);
        (eta.log2() - 2.0).powi(2)
    });
    assert_eq!((tried, best), (vec![1.0, 2.0, 4.0, 8.0], Some(4.0)));
    let mut tried = Vec::new();
    let best = search_greedily(&c, 10.0, |eta| {
        tried.push(eta);
        if eta > 0.3 {
            f64::INFINITY
        } else {
            9.0
        }
    });
    assert_eq!((tried, best), (vec![1.0, 0.5, 0.25], Some(0.25)));
    assert_eq!(search_greedily(&c, 10.0, |_| f64::NAN), None);
}

fn run(
    d: &Dataset,
    start: SgdStart,
    config: &SgdConfig,
    stop: &dyn Fn() -> bool,
    stop_after: Option<usize>,
) -> (SgdOutcome, Vec<f64>) {
    let l = layout(d);
    let mask = observed(d);
    let mut objectives = Vec::new();
    let out = run_l2sgd(d, &structure(), l, &mask, start, config, stop, &mut |e| {
        objectives.push(e.objective);
        assert_eq!(e.weights.len(), l.len());
        if Some(e.epoch) == stop_after {
            EpochControl::Stop
        } else {
            EpochControl::Continue
        }
    })
    .unwrap();
    (out, objectives)
}

/// `run_l2sgd` on `d` with `mask`, never stopped, every epoch continued.
fn run_through(d: &Dataset, mask: &[bool], start: SgdStart, config: &SgdConfig) -> Result<SgdOutcome, TrainError> {
    run_l2sgd(d, &structure(), layout(d), mask, start, config, &|| false, &mut |_| {
        EpochControl::Continue
    })
}

fn config(epochs: usize) -> SgdConfig {
    SgdConfig {
        c2: 0.5,
        max_iterations: epochs,
        calibration: Calibration {
            samples: 20,
            ..Calibration::default()
        },
        ..SgdConfig::l2sgd()
    }
}

#[test]
fn returns_the_best_epoch_and_keeps_untrainable_weights_zero() {
    let d = synthetic(80, 1);
    let l = layout(&d);
    let mask = observed(&d);
    let (out, objectives) = run(&d, SgdStart::Weights(None), &config(8), &|| false, None);
    assert_eq!(out.termination, SgdTermination::MaxIterations);
    assert_eq!(out.epochs, 8);
    let best = objectives.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(out.objective, best);
    assert!(objectives[7] < objectives[0]);
    for (k, (&w, &m)) in out.weights.iter().zip(&mask).enumerate() {
        assert!(m || w == 0.0, "untrainable weight {k} = {w}");
    }
    assert!(out.weights.iter().any(|&w| w != 0.0));
    let acc = crate::fit::token_accuracy(&d, l, &structure(), &out.weights);
    assert!(acc > 0.95, "training accuracy {acc}");
}

/// A `delta` above any possible improvement stops the run as soon as the
/// test applies: after `period + 1` epochs.
#[test]
fn delta_test_applies_after_period_epochs() {
    let d = synthetic(30, 2);
    let cfg = SgdConfig {
        period: 3,
        delta: 10.0,
        ..config(50)
    };
    let (out, objectives) = run(&d, SgdStart::Weights(None), &cfg, &|| false, None);
    assert_eq!(out.termination, SgdTermination::Converged);
    assert_eq!((out.epochs, objectives.len()), (4, 4));
}

/// Stopped after an epoch or in the middle of one, encoded and resumed: the
/// same weights, bit for bit, and the same objectives.
#[test]
fn resumed_runs_end_with_the_same_bits() {
    let d = synthetic(50, 3);
    let cfg = config(6);
    let (full, all) = run(&d, SgdStart::Weights(None), &cfg, &|| false, None);
    let bits = |w: &[f64]| w.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let roundtrip = |s: &SgdState| -> SgdState {
        let bytes = chaincrf_model::encode_payload(s).unwrap();
        chaincrf_model::decode_payload(&bytes).unwrap()
    };
    let (first, head) = run(&d, SgdStart::Weights(None), &cfg, &|| false, Some(2));
    assert_eq!(first.termination, SgdTermination::Stopped);
    assert!(!first.state.mid_epoch());
    let (rest, tail) = run(
        &d,
        SgdStart::Resume(Box::new(roundtrip(&first.state))),
        &cfg,
        &|| false,
        None,
    );
    assert_eq!(bits(&rest.weights), bits(&full.weights));
    assert_eq!([head, tail].concat(), all);
    let polls = std::cell::Cell::new(0usize);
    let stop = || {
        polls.set(polls.get() + 1);
        polls.get() > 3 * d.len() + 11
    };
    let (cut, _) = run(&d, SgdStart::Weights(None), &cfg, &stop, None);
    assert_eq!(cut.termination, SgdTermination::Interrupted);
    assert!(cut.state.mid_epoch());
    assert_eq!(cut.state.epoch(), 3);
    let (rest, tail) = run(
        &d,
        SgdStart::Resume(Box::new(roundtrip(&cut.state))),
        &cfg,
        &|| false,
        None,
    );
    assert_eq!(bits(&rest.weights), bits(&full.weights));
    assert_eq!(tail, all[3..]);
    // Another c2 does not resume this state.
    let other = SgdConfig { c2: 0.25, ..cfg };
    let mask = observed(&d);
    let r = run_through(&d, &mask, SgdStart::Resume(Box::new(cut.state.clone())), &other);
    assert!(r.unwrap_err().to_string().contains("c2"));
}

#[test]
fn bad_parameters_are_named() {
    let d = synthetic(5, 4);
    let mask = observed(&d);
    let cases: Vec<(SgdConfig, &str)> = vec![
        (SgdConfig { c2: 0.0, ..config(1) }, "c2"),
        (SgdConfig { period: 0, ..config(1) }, "period"),
        (
            SgdConfig {
                calibration: Calibration {
                    rate: 1.0,
                    ..Calibration::default()
                },
                ..config(1)
            },
            "calibration.rate",
        ),
        (
            SgdConfig {
                calibration: Calibration {
                    max_trials: 1,
                    ..Calibration::default()
                },
                ..config(1)
            },
            "calibration.max_trials",
        ),
    ];
    for (cfg, name) in cases {
        let r = run_through(&d, &mask, SgdStart::Weights(None), &cfg);
        match r {
            Err(TrainError::InvalidParameter { name: got, .. }) => assert_eq!(got, name),
            other => panic!("{name}: {other:?}"),
        }
    }
}

/// The data of `seqs` in the given order (labels as in [`synthetic`]).
fn from_sequences(seqs: &[Vec<u8>]) -> Dataset {
    let mut b = DatasetBuilder::new().without_attribute_names().structure(structure());
    for l in ["even", "odd", "after7"] {
        b.labels_mut().intern(l);
    }
    for x in seqs {
        let y = x
            .iter()
            .enumerate()
            .map(|(t, &v)| if t > 0 && x[t - 1] == 7 { 2 } else { u32::from(v % 2) })
            .collect();
        b.add_target(&Tokens, &x[..], LabelTarget::Gold(y)).unwrap();
    }
    b.build()
}

/// The calibration sample is the first `calibration.samples` positions of
/// the permutation the seed draws (CRFsuite: the first `samples` of its
/// `dataset_shuffle`d permutation), visited in that order. So η₀ depends on
/// which sequences the input puts at those positions, as CRFsuite's does,
/// and on nothing else: reordering the sequences at the other positions
/// leaves it bit for bit unchanged, while every weight passed to the
/// calibration is zero there. Runs are deterministic.
#[test]
fn calibration_sample_is_the_seeded_permutations_prefix() {
    let n = 40;
    let seqs = random_sequences(n, 17);
    let mut cfg = config(1);
    cfg.calibration.samples = 9;
    // Every pair trainable: the mask then does not depend on the order.
    let eta0 = |seqs: &[Vec<u8>]| {
        let d = from_sequences(seqs);
        let l = layout(&d);
        let mask = vec![true; l.len()];
        run_through(&d, &mask, SgdStart::Weights(None), &cfg)
            .unwrap()
            .initial_learning_rate
    };
    let base = eta0(&seqs);
    assert_eq!(eta0(&seqs).to_bits(), base.to_bits(), "not deterministic");

    let mut order = VisitOrder::new(n, cfg.seed);
    order.reshuffle();
    let sample: Vec<usize> = order.prefix(cfg.calibration.samples).collect();
    let others: Vec<usize> = (0..n).filter(|i| !sample.contains(i)).collect();
    // The other positions' sequences rotated among themselves.
    let mut rotated = seqs.clone();
    for (k, &i) in others.iter().enumerate() {
        rotated[i] = seqs[others[(k + 1) % others.len()]].clone();
    }
    assert_ne!(rotated, seqs);
    assert_eq!(eta0(&rotated).to_bits(), base.to_bits());

    // A sample of sequences that each end in a long run of the "after 7"
    // label: calibrated on them alone, η₀ differs from the mixed sample's.
    let mut skewed = seqs.clone();
    for &i in &sample {
        skewed[i] = [7u8; 9].to_vec();
    }
    let skewed_eta0 = eta0(&skewed);
    assert_ne!(skewed_eta0.to_bits(), base.to_bits(), "η₀ {base} both times");
}
