//! The perceptron family against brute force: one update on a tiny chain
//! moves exactly the weights of `Δ = φ(gold) − φ(best)` (paths enumerated),
//! by the step size each algorithm's formula gives; runs are deterministic,
//! resume exactly (between and within epochs), keep untrainable weights at 0.

use super::*;
use crate::data::{DatasetBuilder, LabelTarget};
use crate::mask::trainable_mask;
use crate::params::{Algorithm, Params};
use chaincrf_features::{Attr, FeatureExtractor};
use rand::{Rng, SeedableRng};

/// Tokens (small integers): the token, the previous one (value 0.5), a bias,
/// and an edge attribute for the previous token's parity.
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
            sink(Attr::edge(&format!("e={}", input[t - 1] % 2)).with_value(1.5));
        }
        sink(Attr::state("bias"));
    }
}

const K: usize = 3;

/// Label = token parity, except label 2 after a token 7.
fn rule(toks: &[u8]) -> Vec<u32> {
    toks.iter()
        .enumerate()
        .map(|(t, &x)| if t > 0 && toks[t - 1] == 7 { 2 } else { u32::from(x % 2) })
        .collect()
}

fn random_tokens(rng: &mut rand::rngs::StdRng, len: std::ops::Range<usize>) -> Vec<u8> {
    let n = rng.random_range(len);
    (0..n).map(|_| rng.random_range(0..9)).collect()
}

fn dataset(seqs: &[(Vec<u8>, LabelTarget)]) -> Dataset {
    let mut b = DatasetBuilder::new().without_attribute_names().structure(structure());
    for l in ["even", "odd", "after7"] {
        b.labels_mut().intern(l);
    }
    for (x, y) in seqs {
        b.add_target(&Tokens, &x[..], y.clone()).unwrap();
    }
    b.build()
}

/// The trainable mask: every pair (`all`), or the observed ones (CRFsuite's default).
fn mask_of(d: &Dataset, all: bool) -> Vec<bool> {
    trainable_mask(
        d,
        &Params::new(Algorithm::AveragedPerceptron)
            .possible_states(all)
            .possible_transitions(all),
    )
}

fn synthetic(n: usize, seed: u64) -> Dataset {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let seqs: Vec<_> = (0..n)
        .map(|_| {
            let x = random_tokens(&mut rng, 1..12);
            let y = LabelTarget::Gold(rule(&x));
            (x, y)
        })
        .collect();
    dataset(&seqs)
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
    assert_eq!(d.layout().k, K);
    d.layout()
}

fn all_algorithms() -> Vec<OnlineAlgorithm> {
    vec![
        OnlineAlgorithm::averaged_perceptron(),
        OnlineAlgorithm::passive_aggressive(),
        OnlineAlgorithm::PassiveAggressive {
            variant: PaVariant::PaII,
            c: 0.3,
            error_sensitive: false,
            averaging: false,
        },
        OnlineAlgorithm::arow(),
    ]
}

struct Run {
    outcome: OnlineOutcome,
    losses: Vec<f64>,
}

fn run(
    d: &Dataset,
    mask: &[bool],
    start: OnlineStart,
    config: &OnlineConfig,
    stop: &dyn Fn() -> bool,
    stop_after_epoch: Option<usize>,
) -> Run {
    let mut losses = Vec::new();
    let outcome = run_online(d, &structure(), layout(d), mask, start, config, stop, &mut |e| {
        losses.push(e.loss);
        if Some(e.epoch) == stop_after_epoch {
            EpochControl::Stop
        } else {
            EpochControl::Continue
        }
    })
    .unwrap();
    Run { outcome, losses }
}

/// The feature vector of `path` over the trainable weights, written out
/// position by position (independently of `SparseDelta`).
fn phi(d: &Dataset, i: usize, l: WeightLayout, mask: &[bool], path: &[usize]) -> Vec<f64> {
    let mut f = vec![0.0; l.len()];
    let obs = d.arena.sequence(i);
    let k = l.k;
    for (t, &y) in path.iter().enumerate() {
        let (ids, vals) = obs.state(t);
        for (j, &a) in ids.iter().enumerate() {
            f[a as usize * k + y] += vals.map_or(1.0, |v| f64::from(v[j]));
        }
        if t > 0 {
            let pair = path[t - 1] * k + y;
            f[l.transition_offset() + pair] += 1.0;
            let (ids, vals) = obs.edge(t);
            for (j, &a) in ids.iter().enumerate() {
                f[l.edge_offset() + a as usize * k * k + pair] += vals.map_or(1.0, |v| f64::from(v[j]));
            }
        }
    }
    f[l.start_offset() + path[0]] += 1.0;
    f[l.end_offset() + path[path.len() - 1]] += 1.0;
    for (x, &m) in f.iter_mut().zip(mask) {
        if !m {
            *x = 0.0;
        }
    }
    f
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The best path by enumeration (forbidden transitions excluded; random
/// weights leave no ties).
fn brute_best(d: &Dataset, i: usize, l: WeightLayout, w: &[f64]) -> Vec<usize> {
    let n = d.arena.sequence(i).len();
    let mut best: Option<(f64, Vec<usize>)> = None;
    for code in 0..K.pow(n as u32) {
        let path: Vec<usize> = (0..n).map(|t| code / K.pow((n - 1 - t) as u32) % K).collect();
        if path.windows(2).any(|p| (p[0], p[1]) == (0, 2)) {
            continue;
        }
        let s = dot(&phi(d, i, l, &vec![true; l.len()], &path), w);
        if best.as_ref().is_none_or(|(b, _)| s > *b) {
            best = Some((s, path));
        }
    }
    best.unwrap().1
}

/// One sequence whose random initial weights tag it wrongly, with its mask.
fn one_wrong_sequence(seed: u64) -> (Dataset, Vec<bool>, Vec<f64>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    loop {
        let x = random_tokens(&mut rng, 3..6);
        let gold = rule(&x);
        let d = dataset(&[(x, LabelTarget::Gold(gold.clone()))]);
        let l = layout(&d);
        let mask = mask_of(&d, true);
        let w0: Vec<f64> = mask
            .iter()
            .map(|&m| if m { rng.random_range(-1.0..1.0) } else { 0.0 })
            .collect();
        let best = brute_best(&d, 0, l, &w0);
        if best.iter().zip(&gold).any(|(&a, &b)| a != b as usize) {
            return (d, mask, w0);
        }
    }
}

fn one_epoch(algorithm: OnlineAlgorithm) -> OnlineConfig {
    OnlineConfig {
        max_iterations: 1,
        ..OnlineConfig::new(algorithm)
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * (1.0 + a.abs().max(b.abs()))
}

/// With each algorithm, one update moves `w` by `step·Δ` where `Δ` is the
/// brute-force feature difference and `step` the algorithm's formula, and
/// the reported loss is CRFsuite's.
#[test]
fn one_update_moves_exactly_the_difference_of_the_two_paths() {
    for seed in 0..6 {
        let (d, mask, w0) = one_wrong_sequence(seed);
        let l = layout(&d);
        let gold: Vec<usize> = d.gold_of(0).unwrap().to_vec();
        let best = brute_best(&d, 0, l, &w0);
        let n = gold.len() as f64;
        let errors = gold.iter().zip(&best).filter(|(a, b)| a != b).count() as f64;
        let delta: Vec<f64> = phi(&d, 0, l, &mask, &gold)
            .iter()
            .zip(phi(&d, 0, l, &mask, &best))
            .map(|(a, b)| a - b)
            .collect();
        let norm2 = dot(&delta, &delta);
        let violation = dot(&phi(&d, 0, l, &vec![true; l.len()], &best), &w0)
            - dot(&phi(&d, 0, l, &vec![true; l.len()], &gold), &w0);
        assert!(norm2 > 0.0 && violation >= 0.0);
        for algorithm in all_algorithms() {
            let r = run(
                &d,
                &mask,
                OnlineStart::Weights(Some(w0.clone())),
                &one_epoch(algorithm),
                &|| false,
                None,
            );
            let w1 = &r.outcome.state.weights;
            let (expected, loss): (Vec<f64>, f64) = match algorithm {
                OnlineAlgorithm::AveragedPerceptron => {
                    (w0.iter().zip(&delta).map(|(w, x)| w + x).collect(), errors / n)
                }
                OnlineAlgorithm::PassiveAggressive {
                    variant,
                    c,
                    error_sensitive,
                    ..
                } => {
                    let cost = violation + if error_sensitive { errors.sqrt() } else { 1.0 };
                    let tau = pa_step(variant, cost, norm2, c);
                    (w0.iter().zip(&delta).map(|(w, x)| w + tau * x).collect(), cost)
                }
                OnlineAlgorithm::Arow { variance, gamma } => {
                    let cost = violation + errors;
                    let alpha = cost / (gamma + variance * norm2);
                    let w = w0.iter().zip(&delta).map(|(w, x)| w + alpha * variance * x).collect();
                    for (k, &x) in delta.iter().enumerate() {
                        let v = r.outcome.state.variances[k];
                        assert!(close(v, 1.0 / (1.0 / variance + x * x / gamma)), "variance {k}");
                    }
                    (w, cost)
                }
            };
            for (k, (&a, &b)) in w1.iter().zip(&expected).enumerate() {
                assert!(close(a, b), "{} seed {seed} weight {k}: {a} vs {b}", algorithm.name());
            }
            assert!(
                close(r.losses[0], loss),
                "{}: loss {} vs {loss}",
                algorithm.name(),
                r.losses[0]
            );
            // One sequence: the counter is 2 after it, and the update was
            // summed with u = 1, so the average is w0 + step·Δ/2.
            if algorithm.averaging() {
                for (k, ((&avg, &a), &b)) in r.outcome.weights.iter().zip(w1).zip(&w0).enumerate() {
                    assert!(close(avg, b + 0.5 * (a - b)), "average {k}");
                }
            } else {
                assert_eq!(&r.outcome.weights, w1);
            }
        }
    }
}

#[test]
fn pa_step_sizes_follow_the_three_types() {
    let (cost, norm2, c) = (3.0, 4.0, 0.5);
    assert_eq!(pa_step(PaVariant::Pa, cost, norm2, c), 0.75);
    assert_eq!(pa_step(PaVariant::PaI, cost, norm2, c), 0.5);
    assert_eq!(pa_step(PaVariant::PaI, cost, norm2, 1.0), 0.75);
    assert_eq!(pa_step(PaVariant::PaII, cost, norm2, c), 3.0 / 5.0);
}

/// PA without slack makes the margin constraint tight: after the update
/// the gold path beats the old best path by exactly `√d`.
#[test]
fn pa_without_slack_meets_the_margin_exactly() {
    let (d, mask, w0) = one_wrong_sequence(11);
    let l = layout(&d);
    let gold: Vec<usize> = d.gold_of(0).unwrap().to_vec();
    let best = brute_best(&d, 0, l, &w0);
    let errors = gold.iter().zip(&best).filter(|(a, b)| a != b).count() as f64;
    let algorithm = OnlineAlgorithm::PassiveAggressive {
        variant: PaVariant::Pa,
        c: 1.0,
        error_sensitive: true,
        averaging: false,
    };
    let r = run(
        &d,
        &mask,
        OnlineStart::Weights(Some(w0)),
        &one_epoch(algorithm),
        &|| false,
        None,
    );
    let all = vec![true; l.len()];
    let w1 = &r.outcome.weights;
    let margin = dot(&phi(&d, 0, l, &all, &gold), w1) - dot(&phi(&d, 0, l, &all, &best), w1);
    assert!((margin - errors.sqrt()).abs() < 1e-9, "{margin} vs {}", errors.sqrt());
}

/// A sequence tagged right changes nothing but the counter.
#[test]
fn a_correct_sequence_is_not_updated() {
    let x = vec![1u8, 2, 3];
    let d = dataset(&[(x.clone(), LabelTarget::Gold(rule(&x)))]);
    let l = layout(&d);
    let mask = mask_of(&d, false);
    // Weights that make the gold path the best: φ(gold) itself, scaled.
    let gold: Vec<usize> = d.gold_of(0).unwrap().to_vec();
    let w0: Vec<f64> = phi(&d, 0, l, &mask, &gold).iter().map(|x| 10.0 * x).collect();
    for algorithm in all_algorithms() {
        let r = run(
            &d,
            &mask,
            OnlineStart::Weights(Some(w0.clone())),
            &one_epoch(algorithm),
            &|| false,
            None,
        );
        assert_eq!(r.outcome.state.weights, w0);
        assert_eq!(r.outcome.weights, w0);
        assert_eq!(r.losses, vec![0.0]);
        assert_eq!(r.outcome.state.counter, 2);
    }
}

#[test]
fn learns_the_rule_deterministically_and_keeps_untrainable_weights_zero() {
    let d = synthetic(120, 3);
    let test = {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let mut b = crate::data::HeldOutBuilder::new(&d.attributes, &d.labels);
        for _ in 0..200 {
            let x = random_tokens(&mut rng, 1..12);
            b.add(&Tokens, &x[..], &rule(&x)).unwrap();
        }
        b.finish()
    };
    let l = layout(&d);
    let mask = mask_of(&d, false);
    assert!(mask.iter().any(|&m| !m));
    for algorithm in all_algorithms() {
        let config = OnlineConfig {
            max_iterations: 10,
            ..OnlineConfig::new(algorithm)
        };
        let a = run(&d, &mask, OnlineStart::Weights(None), &config, &|| false, None);
        let b = run(&d, &mask, OnlineStart::Weights(None), &config, &|| false, None);
        let bits = |w: &[f64]| w.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&a.outcome.weights),
            bits(&b.outcome.weights),
            "{}",
            algorithm.name()
        );
        // AROW stops at its first epoch without mistakes (see the next test).
        if matches!(algorithm, OnlineAlgorithm::Arow { .. }) && a.outcome.epochs < 10 {
            assert_eq!(a.outcome.termination, OnlineTermination::Converged);
        } else {
            assert_eq!(a.outcome.termination, OnlineTermination::MaxIterations);
            assert_eq!(a.outcome.epochs, 10);
        }
        for (k, (&w, &m)) in a.outcome.weights.iter().zip(&mask).enumerate() {
            assert!(m || w == 0.0, "{}: untrainable weight {k} = {w}", algorithm.name());
        }
        for (k, (&w, &m)) in a.outcome.state.weights.iter().zip(&mask).enumerate() {
            assert!(m || w == 0.0, "{}: untrainable weight {k} = {w}", algorithm.name());
        }
        let acc = crate::fit::token_accuracy(&test, l, &structure(), &a.outcome.weights);
        assert!(acc > 0.97, "{}: held-out accuracy {acc}", algorithm.name());
        // Another seed visits the sequences in another order.
        let other = OnlineConfig { seed: 99, ..config };
        let c = run(&d, &mask, OnlineStart::Weights(None), &other, &|| false, None);
        assert_ne!(bits(&a.outcome.weights), bits(&c.outcome.weights));
    }
}

/// Stopped after an epoch (by the callback) or in the middle of one (by the
/// flag), saved, encoded, decoded and resumed: the same weights, bit for
/// bit, and the same per-epoch losses, as the run that was never stopped.
#[test]
fn resumed_runs_end_with_the_same_bits() {
    let d = synthetic(60, 5);
    let mask = mask_of(&d, false);
    for algorithm in all_algorithms() {
        let config = OnlineConfig {
            max_iterations: 5,
            ..OnlineConfig::new(algorithm)
        };
        let full = run(&d, &mask, OnlineStart::Weights(None), &config, &|| false, None);
        let bits = |w: &[f64]| w.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let roundtrip = |s: &OnlineState| -> OnlineState {
            let bytes = chaincrf_model::encode_payload(s).unwrap();
            chaincrf_model::decode_payload(&bytes).unwrap()
        };
        // Between epochs.
        let first = run(&d, &mask, OnlineStart::Weights(None), &config, &|| false, Some(2));
        assert_eq!(first.outcome.termination, OnlineTermination::Stopped);
        assert!(!first.outcome.state.mid_epoch());
        let rest = run(
            &d,
            &mask,
            OnlineStart::Resume(Box::new(roundtrip(&first.outcome.state))),
            &config,
            &|| false,
            None,
        );
        assert_eq!(
            bits(&rest.outcome.weights),
            bits(&full.outcome.weights),
            "{}",
            algorithm.name()
        );
        assert_eq!([first.losses, rest.losses].concat(), full.losses);
        // In the middle of epoch 3.
        let visits = std::cell::Cell::new(0usize);
        let stop = || {
            visits.set(visits.get() + 1);
            visits.get() > 2 * d.len() + 17
        };
        let cut = run(&d, &mask, OnlineStart::Weights(None), &config, &stop, None);
        assert_eq!(cut.outcome.termination, OnlineTermination::Interrupted);
        assert!(cut.outcome.state.mid_epoch());
        assert_eq!(cut.outcome.epochs, 2);
        let rest = run(
            &d,
            &mask,
            OnlineStart::Resume(Box::new(roundtrip(&cut.outcome.state))),
            &config,
            &|| false,
            None,
        );
        assert_eq!(
            bits(&rest.outcome.weights),
            bits(&full.outcome.weights),
            "{}",
            algorithm.name()
        );
        assert_eq!(rest.losses, full.losses[2..]);
    }
}

#[test]
fn bad_parameters_and_foreign_states_are_errors() {
    let d = synthetic(10, 6);
    let l = layout(&d);
    let mask = mask_of(&d, false);
    let bad = [
        OnlineConfig {
            epsilon: -1.0,
            ..OnlineConfig::new(OnlineAlgorithm::averaged_perceptron())
        },
        OnlineConfig::new(OnlineAlgorithm::Arow {
            variance: 0.0,
            gamma: 1.0,
        }),
        OnlineConfig::new(OnlineAlgorithm::Arow {
            variance: 1.0,
            gamma: f64::NAN,
        }),
        OnlineConfig::new(OnlineAlgorithm::PassiveAggressive {
            variant: PaVariant::PaII,
            c: 0.0,
            error_sensitive: true,
            averaging: true,
        }),
    ];
    for config in &bad {
        let r = run_online(
            &d,
            &structure(),
            l,
            &mask,
            OnlineStart::Weights(None),
            config,
            &|| false,
            &mut |_| EpochControl::Continue,
        );
        assert!(matches!(r, Err(TrainError::InvalidParameter { .. })), "{config:?}");
    }
    let ap = OnlineConfig {
        max_iterations: 1,
        ..OnlineConfig::new(OnlineAlgorithm::averaged_perceptron())
    };
    let state = run(&d, &mask, OnlineStart::Weights(None), &ap, &|| false, None)
        .outcome
        .state;
    let arow = OnlineConfig {
        max_iterations: 2,
        ..OnlineConfig::new(OnlineAlgorithm::arow())
    };
    let other = synthetic(11, 6);
    let other_mask = mask_of(&other, false);
    for (data, mask, config) in [(&d, &mask, &arow), (&other, &other_mask, &ap)] {
        let r = run_online(
            data,
            &structure(),
            layout(data),
            mask,
            OnlineStart::Resume(Box::new(state.clone())),
            config,
            &|| false,
            &mut |_| EpochControl::Continue,
        );
        let message = r.unwrap_err().to_string();
        assert!(message.contains("saved training state"), "{message}");
    }
}

/// Separable data: the averaged perceptron's loss reaches 0 and `epsilon`
/// ends the run before `max_iterations`.
#[test]
fn epsilon_stops_once_the_loss_per_sequence_is_below_it() {
    let d = synthetic(40, 8);
    let mask = mask_of(&d, false);
    let config = OnlineConfig {
        max_iterations: 100,
        epsilon: 1e-12,
        ..OnlineConfig::new(OnlineAlgorithm::averaged_perceptron())
    };
    let r = run(&d, &mask, OnlineStart::Weights(None), &config, &|| false, None);
    assert_eq!(r.outcome.termination, OnlineTermination::Converged);
    assert!(r.outcome.epochs < 100);
    assert_eq!(*r.losses.last().unwrap(), 0.0);
    assert!(r.losses[0] > 0.0);
}

/// AROW compares with `<=` (CRFsuite 0.12): with `epsilon = 0` it stops
/// after the first epoch without a mistake; the others run on.
#[test]
fn arow_stops_at_the_first_epoch_without_mistakes() {
    let d = synthetic(40, 8);
    let mask = mask_of(&d, false);
    for algorithm in all_algorithms() {
        let config = OnlineConfig {
            max_iterations: 60,
            ..OnlineConfig::new(algorithm)
        };
        let r = run(&d, &mask, OnlineStart::Weights(None), &config, &|| false, None);
        if matches!(algorithm, OnlineAlgorithm::Arow { .. }) {
            assert_eq!(r.outcome.termination, OnlineTermination::Converged);
            assert_eq!(*r.losses.last().unwrap(), 0.0);
            assert!(r.losses[..r.losses.len() - 1].iter().all(|&x| x > 0.0));
        } else {
            assert_eq!(r.outcome.termination, OnlineTermination::MaxIterations);
            assert_eq!(r.outcome.epochs, 60);
        }
    }
}

/// A partially labeled sequence is wrong where the best path leaves the
/// allowed sets; the update then goes to the best path inside them.
#[test]
fn partial_labels_target_the_best_allowed_path() {
    let x = vec![1u8, 7, 2, 4];
    // Position 2 must be "after7" (2); the others are free.
    let target = LabelTarget::Partial(vec![None, Some(vec![1]), Some(vec![2]), None]);
    let d = dataset(&[(x, target)]);
    let l = layout(&d);
    let mask = mask_of(&d, true);
    let allowed = d.partial[0].as_ref().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut checked = 0;
    while checked < 5 {
        let w0: Vec<f64> = mask
            .iter()
            .map(|&m| if m { rng.random_range(-1.0..1.0) } else { 0.0 })
            .collect();
        let best = brute_best(&d, 0, l, &w0);
        if (0..4).all(|t| allowed.is_allowed(t, best[t])) {
            continue;
        }
        // The best allowed path by enumeration.
        let all = vec![true; l.len()];
        let mut inside: Option<(f64, Vec<usize>)> = None;
        for code in 0..K.pow(4) {
            let p: Vec<usize> = (0..4).map(|t| code / K.pow(3 - t as u32) % K).collect();
            if !(0..4).all(|t| allowed.is_allowed(t, p[t])) || p.windows(2).any(|q| (q[0], q[1]) == (0, 2)) {
                continue;
            }
            let s = dot(&phi(&d, 0, l, &all, &p), &w0);
            if inside.as_ref().is_none_or(|(b, _)| s > *b) {
                inside = Some((s, p));
            }
        }
        let inside = inside.unwrap().1;
        let config = one_epoch(OnlineAlgorithm::averaged_perceptron());
        let r = run(
            &d,
            &mask,
            OnlineStart::Weights(Some(w0.clone())),
            &config,
            &|| false,
            None,
        );
        let (pi, pb) = (phi(&d, 0, l, &mask, &inside), phi(&d, 0, l, &mask, &best));
        for k in 0..l.len() {
            assert!(close(r.outcome.state.weights[k], w0[k] + pi[k] - pb[k]), "weight {k}");
        }
        checked += 1;
    }
}
