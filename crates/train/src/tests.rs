//! Training on small synthetic data: the gradient equals finite differences, a
//! known generating model is learned, and the weights do not depend on the
//! number of threads.

use crate::mask::trainable_mask;
use crate::objective::Objective;
use crate::{
    Algorithm, CheckedParams, Dataset, DatasetBuilder, Fitted, LabelTarget, LineSearch, Params, Progress, SavedState,
    Termination, Trainer,
};
use chaincrf_features::{Attr, FeatureExtractor};
use chaincrf_model::{Structure, WeightLayout};
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// L-BFGS parameters with CRFsuite's defaults.
fn lbfgs() -> Params {
    Params::new(Algorithm::Lbfgs)
}

/// Every attribute × label and label pair trainable.
fn mask_all(d: &Dataset) -> Vec<bool> {
    trainable_mask(d, &lbfgs().possible_states(true).possible_transitions(true))
}

/// Only the pairs seen in training trainable (CRFsuite's default).
fn mask_observed(d: &Dataset) -> Vec<bool> {
    trainable_mask(d, &lbfgs())
}

/// Trains `data` with `params` on `threads` threads, observing every event.
fn fit_with(data: &Dataset, params: Params, threads: usize, observer: impl FnMut(&Progress<'_>)) -> Fitted {
    Trainer::new(params.check().unwrap())
        .threads(threads)
        .observer(observer)
        .fit(data)
        .unwrap()
}
/// A run of `params` on `data` on one thread, stopped by its stop flag after
/// iteration (or epoch) `at`: the interrupted fit and the state it saved.
fn interrupted_after(params: CheckedParams, data: &Dataset, at: u64) -> (Fitted, SavedState) {
    let flag = Arc::new(AtomicBool::new(false));
    let mut saved = None;
    let fitted = Trainer::new(params)
        .threads(1)
        .stop_flag(flag.clone())
        .observer(|p| {
            if p.iteration == at {
                flag.store(true, Ordering::SeqCst);
            }
            if p.interrupted {
                saved = Some(p.saved_state().unwrap());
            }
        })
        .fit(data)
        .unwrap();
    let state = SavedState::from_bytes(&saved.expect("a state at the interrupt")).unwrap();
    (fitted, state)
}

fn bits_equal(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Input: a sequence of small integers; attributes: the token, the previous
/// token (value 0.5) and a bias. Shared with the other test modules.
pub(crate) struct Tokens;
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

/// A dataset builder with the three labels of [`synthetic`] in order.
fn builder(keep_names: bool) -> DatasetBuilder {
    let mut b = DatasetBuilder::new().structure(structure());
    if !keep_names {
        b = b.without_attribute_names();
    }
    for l in ["even", "odd", "after7"] {
        b.labels_mut().intern(l);
    }
    b
}

fn dataset(seqs: &[(Vec<u8>, Vec<u32>)]) -> Dataset {
    let mut b = builder(true);
    for (x, y) in seqs {
        b.add_target(&Tokens, x, LabelTarget::Gold(y.clone())).unwrap();
    }
    b.build()
}

fn structure() -> Structure {
    Structure {
        transitions: true,
        start_end: true,
        ..Structure::default()
    }
}

fn layout(d: &Dataset) -> WeightLayout {
    d.layout()
}

#[test]
fn gradient_equals_finite_differences() {
    let d = dataset(&synthetic(20, 1));
    let l = layout(&d);
    let mask = mask_all(&d);
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
    let mut b = builder(false);
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
        b.add_target(&Tokens, x, LabelTarget::Partial(sets)).unwrap();
    }
    let d = b.build();
    let l = layout(&d);
    let mask = mask_all(&d);
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
    let params = || lbfgs().c2(0.01).possible_states(true).possible_transitions(true);
    let one = fit_with(&train_set, params(), 1, |_| {});
    let two = fit_with(&train_set, params(), 2, |_| {});
    assert_eq!(one.report().iterations, two.report().iterations);
    assert!(bits_equal(one.weights(), two.weights()), "1 and 2 threads differ");
    let model = one.into_model();
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
    let bytes = chaincrf_model::to_bytes(&model).unwrap();
    let back = chaincrf_model::from_bytes(&bytes, std::path::Path::new("mem")).unwrap();
    let mut t2 = back.tagger();
    for (x, _) in &test {
        tagger.observe(&Tokens, x);
        t2.observe(&Tokens, x);
        assert_eq!(tagger.viterbi(None).unwrap(), t2.viterbi(None).unwrap());
    }
    // Truncated or corrupted bytes are errors, not panics.
    assert!(chaincrf_model::from_bytes(&bytes[..bytes.len() / 2], std::path::Path::new("m")).is_err());
    let mut bad = bytes.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert!(chaincrf_model::from_bytes(&bad, std::path::Path::new("m")).is_err());
}

/// The stop flag ends training after the iteration during which it was set;
/// the callback sees that iteration marked, and the outcome holds its weights.
#[test]
fn stop_flag_ends_training_after_the_current_iteration() {
    let data = dataset(&synthetic(200, 3));
    let flag = Arc::new(AtomicBool::new(false));
    let params = lbfgs().epsilon(0.0).delta(0.0).check().unwrap();
    let mut seen: Vec<(u64, bool)> = Vec::new();
    let mut last = Vec::new();
    let fitted = Trainer::new(params)
        .threads(1)
        .stop_flag(flag.clone())
        .observer(|p| {
            seen.push((p.iteration, p.interrupted));
            if p.iteration == 3 {
                flag.store(true, Ordering::SeqCst);
            }
            last = p.weights().to_vec();
        })
        .fit(&data)
        .unwrap();
    assert_eq!(seen, [(1, false), (2, false), (3, false), (4, true)]);
    assert_eq!(fitted.report().iterations, 4);
    assert_eq!(
        fitted.report().termination,
        crate::Termination::Interrupted {
            after: 4,
            during_warm_start: false
        }
    );
    assert_eq!(fitted.weights(), last);
}

/// A run interrupted after some iteration and resumed from the optimizer
/// state saved there ends with exactly the uninterrupted run's weights, after
/// the same number of iterations — for L-BFGS and OWL-QN, with CRFsuite's
/// `delta` test deciding the end (so its history must carry over), with early
/// stopping on held-out data (so must the best score), and on another thread
/// count.
#[test]
fn resumed_runs_end_exactly_where_uninterrupted_ones_do() {
    let data = dataset(&synthetic(200, 5));
    let dev = {
        let mut b = crate::HeldOutBuilder::new(&data.attributes, &data.labels);
        for (x, y) in synthetic(60, 6) {
            b.add(&Tokens, &x, &y).unwrap();
        }
        b.finish()
    };
    for (c1, patience) in [(0.0, None), (0.05, None), (0.0, Some(3))] {
        let params = || lbfgs().c1(c1).c2(0.01).check().unwrap();
        let trainer = || {
            let t = Trainer::new(params()).threads(1);
            match patience {
                Some(p) => t.held_out(&dev).early_stopping(p),
                None => t,
            }
        };
        let full = trainer().fit(&data).unwrap();
        assert!(
            full.report().iterations > 6,
            "too short to test: {}",
            full.report().iterations
        );
        // The same run, interrupted after iteration 4; the state saved there.
        let flag = Arc::new(AtomicBool::new(false));
        let mut saved = None;
        let first = trainer()
            .stop_flag(flag.clone())
            .observer(|p| {
                if p.iteration == 3 {
                    flag.store(true, Ordering::SeqCst);
                }
                if p.interrupted {
                    saved = Some(p.saved_state().unwrap());
                }
            })
            .fit(&data)
            .unwrap();
        assert_eq!(first.report().iterations, 4);
        let state = SavedState::from_bytes(&saved.unwrap()).unwrap();
        assert_eq!((state.iteration(), state.algorithm()), (4, Algorithm::Lbfgs));
        let mut seen = Vec::new();
        let rest = trainer()
            .threads(2)
            .resume_from(state)
            .observer(|p| seen.push((p.iteration, p.replayed)))
            .fit(&data)
            .unwrap();
        assert_eq!(seen[..2], [(4, true), (5, false)]);
        assert_eq!(
            rest.report().iterations,
            full.report().iterations,
            "c1 {c1}, patience {patience:?}"
        );
        assert_eq!(rest.report().termination, full.report().termination);
        assert!(
            bits_equal(rest.weights(), full.weights()),
            "c1 {c1}, patience {patience:?}: resumed weights differ"
        );
    }
    // A state saved for other data is refused.
    let other = dataset(&synthetic(20, 9));
    let mut bytes = None;
    fit_with(&data, lbfgs().max_iterations(Some(2)), 1, |p| {
        bytes = Some(p.saved_state().unwrap())
    });
    let state = SavedState::from_bytes(&bytes.unwrap()).unwrap();
    let err = Trainer::new(lbfgs().check().unwrap())
        .resume_from(state)
        .fit(&other)
        .unwrap_err();
    assert!(matches!(err, crate::TrainError::SavedState { .. }), "{err}");
    assert!(SavedState::from_bytes(b"junk").is_err());
}

/// Tokens plus an edge attribute (the pair of tokens an edge joins), so that
/// every weight block gets a gradient.
struct TokensAndPairs;
impl FeatureExtractor for TokensAndPairs {
    type Input = [u8];
    fn len(&self, input: &[u8]) -> usize {
        input.len()
    }
    fn extract(&self, input: &[u8], t: usize, sink: &mut dyn FnMut(Attr<'_>)) {
        Tokens.extract(input, t, sink);
        if t > 0 {
            let e = format!("pair={}{}", input[t - 1], input[t]);
            sink(Attr::edge(&e).with_value(2.0));
        }
    }
}

/// With one sequence, one SGD epoch is one step from zero weights at the
/// calibrated rate η₀: every trainable weight (state, edge, transition, start
/// and end blocks) moves by exactly −η₀ × the objective's gradient there, and
/// untrainable ones (unobserved pairs, which do have a gradient) stay zero.
#[test]
fn one_sgd_step_is_minus_the_learning_rate_times_the_gradient() {
    let x: Vec<u8> = vec![3, 7, 4, 7, 1, 2];
    let y: Vec<u32> = vec![1, 1, 2, 1, 2, 0];
    let mut b = builder(true);
    b.add_target(&TokensAndPairs, &x[..], LabelTarget::Gold(y)).unwrap();
    let d = b.build();
    let l = layout(&d);
    assert!(l.num_edge > 0);
    let mask = mask_observed(&d);
    let mut epochs = Vec::new();
    let out = crate::sgd::run_sgd(&d, &structure(), 0.5, None, 1, l, &mask, vec![0.0; l.len()], &mut |e| {
        epochs.push(e.epoch)
    })
    .unwrap();
    assert_eq!((out.epochs, epochs), (1, vec![1]));
    let eta = out.initial_learning_rate;
    assert!(eta > 0.0);
    let obj = Objective::new(&d, l, structure(), 0.5, mask.clone(), 1).unwrap();
    let (_, g) = obj.evaluate(&vec![0.0; obj.dim()]).unwrap();
    let g = obj.expand(&g);
    // Unobserved pairs get no weight even though the likelihood pulls on them.
    let all = Objective::new(&d, l, structure(), 0.5, vec![true; l.len()], 1).unwrap();
    let (_, g_all) = all.evaluate(&vec![0.0; l.len()]).unwrap();
    assert!((0..l.len()).any(|i| !mask[i] && g_all[i] != 0.0));
    for (i, (&w, &gi)) in out.weights.iter().zip(&g).enumerate() {
        if mask[i] {
            assert!(
                (w + eta * gi).abs() <= 1e-12 * (1.0 + w.abs()),
                "weight {i}: {w} vs {}",
                -eta * gi
            );
        } else {
            assert_eq!(w, 0.0, "untrainable weight {i}");
        }
    }
    for block in [
        0,
        l.edge_offset(),
        l.transition_offset(),
        l.start_offset(),
        l.end_offset(),
    ] {
        assert!(
            out.weights[block..].iter().take(l.k * l.k).any(|&w| w != 0.0),
            "block at {block} untouched"
        );
    }
}

/// A few SGD epochs get most of the way to the optimum, L-BFGS started from
/// them converges to it, and the whole run is deterministic.
#[test]
fn sgd_warm_start_gets_close_and_lbfgs_finishes_from_there() {
    let data = dataset(&synthetic(300, 21));
    let c2 = 0.05;
    let l = layout(&data);
    let mask = mask_observed(&data);
    let obj = Objective::new(&data, l, structure(), c2, mask, 1).unwrap();
    let objective = |w: &[f64]| obj.evaluate(&obj.compress(w)).unwrap().0;
    let params = || lbfgs().c2(c2).epsilon(1e-7).delta(1e-9);
    let cold = fit_with(&data, params(), 1, |_| {});
    let cold_f = cold.report().final_objective;
    let at_zero = objective(&vec![0.0; l.len()]);
    let warm = crate::sgd::run_sgd(
        &data,
        &structure(),
        c2,
        None,
        5,
        l,
        &mask_observed(&data),
        vec![0.0; l.len()],
        &mut |_| {},
    )
    .unwrap();
    let f_sgd = objective(&warm.weights);
    // Five passes close at least 98% of the gap between zero weights and the optimum.
    assert!(
        f_sgd - cold_f < 0.02 * (at_zero - cold_f),
        "after SGD {f_sgd}, from {at_zero} to optimum {cold_f}"
    );
    let mut stages = Vec::new();
    let both = fit_with(&data, params().sgd_epochs(5), 1, |p| {
        stages.push(p.stage == crate::Stage::WarmStart);
        assert_eq!(p.saved_state().is_err(), stages[stages.len() - 1]);
    });
    assert_eq!(both.report().warm_start_epochs, 5);
    assert_eq!(stages.iter().filter(|&&s| s).count(), 5);
    assert!(stages[..5].iter().all(|&s| s) && stages[5..].iter().all(|&s| !s));
    let both_f = both.report().final_objective;
    assert!(
        (both_f - cold_f).abs() < 1e-6 * cold_f,
        "warm-started L-BFGS ends at {both_f}, cold at {cold_f}"
    );
    let again = fit_with(&data, params().sgd_epochs(5), 2, |_| {});
    assert!(bits_equal(again.weights(), both.weights()));
}

/// The cost and gradient do not depend on the number of threads, bit for
/// bit, on either pass: the fused one (no edge attributes; gradients summed in
/// fixed point) and the two-phase one (edge attributes), with attribute
/// values and partial labels.
#[test]
fn evaluations_do_not_depend_on_the_thread_count() {
    fn check<E: FeatureExtractor<Input = [u8]>>(extractor: &E, edges: bool) {
        let mut b = builder(false);
        for (i, (x, y)) in synthetic(150, 31).into_iter().enumerate() {
            let target = if i % 4 == 0 {
                LabelTarget::Partial(y.iter().map(|&l| Some(vec![l, (l + 1) % 3])).collect())
            } else {
                LabelTarget::Gold(y)
            };
            b.add_target(extractor, &x[..], target).unwrap();
        }
        let d = b.build();
        assert_eq!(d.arena.has_edge_attributes(), edges);
        let l = layout(&d);
        let mask = mask_all(&d);
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let w: Vec<f64> = (0..l.len()).map(|_| rng.random_range(-1.0..1.0)).collect();
        let eval = |threads| {
            Objective::new(&d, l, structure(), 0.2, mask.clone(), threads)
                .unwrap()
                .evaluate(&w)
                .unwrap()
        };
        let (f1, g1) = eval(1);
        for threads in [2, 3] {
            let (f, g) = eval(threads);
            assert_eq!(f.to_bits(), f1.to_bits(), "{threads} threads: cost (edges {edges})");
            assert!(
                g.iter().zip(&g1).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{threads} threads: gradient (edges {edges})"
            );
        }
    }
    check(&Tokens, false);
    check(&TokensAndPairs, true);
}

/// Edge attributes in the dictionary that never reach the arena (an edge
/// attribute at position 0 is counted, but no edge leads into position 0)
/// still take their block in the layout: the gradient, start and end weights
/// included, must match finite differences.
#[test]
fn layout_with_edge_attributes_that_never_occur_is_handled() {
    struct EdgeAtStart;
    impl FeatureExtractor for EdgeAtStart {
        type Input = [u8];
        fn len(&self, input: &[u8]) -> usize {
            input.len()
        }
        fn extract(&self, input: &[u8], t: usize, sink: &mut dyn FnMut(Attr<'_>)) {
            Tokens.extract(input, t, sink);
            sink(Attr::edge("e"));
        }
    }
    let mut b = builder(false);
    for x in 0..9u8 {
        b.add_target(&EdgeAtStart, &[x][..], LabelTarget::Gold(vec![u32::from(x % 2)]))
            .unwrap();
    }
    let d = b.build();
    let l = layout(&d);
    assert!(l.num_edge > 0 && !d.arena.has_edge_attributes());
    let mask = mask_all(&d);
    for threads in [1, 2] {
        let obj = Objective::new(&d, l, structure(), 0.1, mask.clone(), threads).unwrap();
        let w: Vec<f64> = (0..obj.dim()).map(|i| ((i * 13) % 7) as f64 / 7.0 - 0.4).collect();
        let (_, g) = obj.evaluate(&w).unwrap();
        let h = 1e-5;
        for i in 0..obj.dim() {
            let (mut a, mut c) = (w.clone(), w.clone());
            a[i] += h;
            c[i] -= h;
            let fd = (obj.evaluate(&a).unwrap().0 - obj.evaluate(&c).unwrap().0) / (2.0 * h);
            assert!(
                (fd - g[i]).abs() < 1e-5 * (1.0 + fd.abs()),
                "weight {i}: fd {fd} vs {}",
                g[i]
            );
        }
    }
}

/// Every algorithm trains through the one `Trainer`: it learns the
/// generating rule, reports one event per epoch, and a run stopped by the
/// flag and resumed from its saved state ends with the uninterrupted run's
/// weights, bit for bit.
#[test]
fn every_algorithm_fits_and_resumes_exactly_through_the_trainer() {
    let train_set = dataset(&synthetic(200, 41));
    let test = synthetic(80, 42);
    for algorithm in Algorithm::ALL {
        let params = || {
            let p = Params::new(algorithm).max_iterations(Some(8));
            match algorithm {
                Algorithm::Lbfgs | Algorithm::L2Sgd => p.c2(0.01),
                _ => p,
            }
        };
        let mut events = 0;
        let full = fit_with(&train_set, params(), 1, |p| {
            events += 1;
            assert_eq!((p.algorithm, p.stage), (algorithm, crate::Stage::Main));
            assert_eq!(p.gradient_norm.is_some(), algorithm == Algorithm::Lbfgs);
            assert!(p.can_save_state());
        });
        assert_eq!(events as u64, full.report().iterations, "{algorithm}");
        let mut tagger = full.model().tagger();
        let (mut right, mut total) = (0, 0);
        for (x, y) in &test {
            tagger.observe(&Tokens, x);
            let p = tagger.viterbi(None).unwrap();
            right += p.labels.iter().zip(y).filter(|(a, b)| **a as u32 == **b).count();
            total += y.len();
        }
        let acc = right as f64 / total as f64;
        assert!(acc > 0.95, "{algorithm}: accuracy {acc}");
        // Stopped after epoch 1 (the flag is seen at the next sequence or
        // iteration), saved, resumed on another thread count.
        if full.report().iterations < 3 {
            continue; // converged at once: nothing to interrupt
        }
        let (first, state) = interrupted_after(params().check().unwrap(), &train_set, 1);
        assert!(
            first.report().termination.is_interrupted(),
            "{algorithm}: {}",
            first.report()
        );
        assert_eq!(state.algorithm(), algorithm);
        let rest = Trainer::new(params().check().unwrap())
            .threads(2)
            .resume_from(state)
            .fit(&train_set)
            .unwrap();
        assert_eq!(rest.report().iterations, full.report().iterations, "{algorithm}");
        assert!(
            bits_equal(rest.weights(), full.weights()),
            "{algorithm}: the resumed run ended elsewhere"
        );
    }
    // A state of one algorithm does not resume another.
    let mut bytes = None;
    fit_with(
        &train_set,
        Params::new(Algorithm::Arow).max_iterations(Some(1)),
        1,
        |p| bytes = Some(p.saved_state().unwrap()),
    );
    let err = Trainer::new(Params::new(Algorithm::AveragedPerceptron).check().unwrap())
        .resume_from(SavedState::from_bytes(&bytes.unwrap()).unwrap())
        .fit(&train_set)
        .unwrap_err();
    assert!(matches!(err, crate::TrainError::SavedState { .. }), "{err}");
}

/// The evaluations (line search trials) of each L-BFGS iteration of a run,
/// with the run.
fn trials_per_iteration(data: &Dataset, params: Params) -> (Fitted, Vec<usize>) {
    let mut seen = vec![1]; // the evaluation at the starting point
    let fitted = fit_with(data, params, 1, |p| seen.push(p.evaluations));
    let trials = seen.windows(2).map(|w| w[1] - w[0]).collect();
    (fitted, trials)
}

#[test]
fn max_linesearch_bounds_the_trials_of_every_line_search() {
    let d = dataset(&synthetic(30, 4));
    let params = || lbfgs().c1(0.05).c2(0.01).max_iterations(Some(40));
    let (free, trials) = trials_per_iteration(&d, params());
    let most = *trials.iter().max().unwrap();
    assert!(
        most >= 2,
        "the data should need a line search of several trials: {trials:?}"
    );
    // A bound no line search reaches changes nothing, bit for bit.
    let (same, same_trials) = trials_per_iteration(&d, params().set("max_linesearch", &most.to_string()).unwrap());
    assert_eq!(same_trials, trials);
    assert!(bits_equal(same.weights(), free.weights()));
    assert_eq!(same.report().termination, free.report().termination);
    // One trial fewer: the first line search that needs more ends the run, as
    // in CRFsuite, with the best weights found so far.
    let limit = most - 1;
    let (cut, cut_trials) = trials_per_iteration(&d, params().set("max_linesearch", &limit.to_string()).unwrap());
    let first_long = trials.iter().position(|&t| t > limit).unwrap();
    assert_eq!(cut_trials, trials[..first_long], "the run is the same up to there");
    match &cut.report().termination {
        crate::Termination::LineSearchFailed { detail } => {
            assert!(detail.contains(&format!("max_linesearch = {limit}")), "{detail}");
        }
        other => panic!("expected a failed line search, got {other:?}"),
    }
    // (argmin counts the iteration whose line search failed.)
    assert_eq!(cut.report().iterations, first_long as u64 + 1);
    assert_eq!(
        cut.report().evaluations,
        1 + trials[..first_long].iter().sum::<usize>() + limit
    );
}

/// Early stopping of the epoch-based algorithms survives a resume: a run
/// resumed from the state saved one epoch after its best held-out epoch (so
/// the best is in the past when it resumes) stops where the uninterrupted
/// run stops and returns the same best epoch's model, byte for byte.
#[test]
fn online_early_stopping_resumes_exactly() {
    // Labels flipped at random in a fifth of the training positions, so the
    // held-out accuracy moves from epoch to epoch.
    let mut rng = rand::rngs::StdRng::seed_from_u64(77);
    let noisy: Vec<(Vec<u8>, Vec<u32>)> = synthetic(150, 43)
        .into_iter()
        .map(|(x, y)| {
            let y = y
                .into_iter()
                .map(|l| {
                    if rng.random_bool(0.2) {
                        rng.random_range(0..3)
                    } else {
                        l
                    }
                })
                .collect();
            (x, y)
        })
        .collect();
    let data = dataset(&noisy);
    let dev = {
        let mut b = crate::HeldOutBuilder::new(data.attributes(), data.labels());
        for (x, y) in synthetic(60, 44) {
            b.add(&Tokens, &x, &y).unwrap();
        }
        b.finish()
    };
    for algorithm in [
        Algorithm::L2Sgd,
        Algorithm::AveragedPerceptron,
        Algorithm::PassiveAggressive,
        Algorithm::Arow,
    ] {
        let trainer = || {
            let p = Params::new(algorithm).max_iterations(Some(40));
            let p = if algorithm == Algorithm::L2Sgd { p.c2(0.01) } else { p };
            Trainer::new(p.check().unwrap())
                .threads(1)
                .held_out(&dev)
                .early_stopping(2)
        };
        let full = trainer().fit(&data).unwrap();
        let Termination::EarlyStopping { best_iteration, .. } = full.report().termination else {
            panic!("{algorithm}: no early stop to test: {}", full.report());
        };
        assert!(full.report().iterations > best_iteration, "{algorithm}");
        // The state saved at the end of the epoch after the best one.
        let at = best_iteration + 1;
        let mut saved = None;
        trainer()
            .observer(|p| {
                if p.iteration == at && !p.interrupted {
                    saved = Some(p.saved_state().unwrap());
                }
            })
            .fit(&data)
            .unwrap();
        let state = SavedState::from_bytes(&saved.expect("a state after the best epoch")).unwrap();
        assert_eq!((state.algorithm(), state.iteration()), (algorithm, at));
        let rest = trainer().resume_from(state).fit(&data).unwrap();
        assert_eq!(rest.report().termination, full.report().termination, "{algorithm}");
        assert_eq!(rest.report().iterations, full.report().iterations, "{algorithm}");
        assert_eq!(
            chaincrf_model::to_bytes(rest.model()).unwrap(),
            chaincrf_model::to_bytes(full.model()).unwrap(),
            "{algorithm}: the resumed run returned another model"
        );
    }
}

/// The three line searches, in CRFsuite's spelling.
const LINE_SEARCHES: [LineSearch; 3] = [
    LineSearch::MoreThuente,
    LineSearch::Backtracking,
    LineSearch::StrongBacktracking,
];

/// Every line search, with L2 alone and under OWL-QN, ends at the optimum
/// More–Thuente reaches (the objective is strictly convex: one optimum).
#[test]
fn every_line_search_reaches_the_same_optimum() {
    let data = dataset(&synthetic(150, 11));
    for c1 in [0.0, 0.05] {
        let fit = |search: LineSearch| {
            let params = lbfgs()
                .c1(c1)
                .c2(0.1)
                .epsilon(1e-9)
                .delta(0.0)
                .max_iterations(Some(400))
                .linesearch(search);
            let mut path = Vec::new();
            let fitted = fit_with(&data, params, 1, |p| path.push(p.objective));
            (fitted, path)
        };
        let (reference, reference_path) = fit(LineSearch::MoreThuente);
        for search in LINE_SEARCHES {
            let (fitted, path) = fit(search);
            if search != LineSearch::MoreThuente {
                assert_ne!(path, reference_path, "{search:?}, c1 {c1}: More-Thuente's path");
            }
            let report = fitted.report();
            assert!(
                !matches!(report.termination, Termination::MaxIterations { .. }),
                "{search:?}, c1 {c1}: did not converge: {report}"
            );
            let (f, f_ref) = (report.final_objective, reference.report().final_objective);
            assert!(
                (f - f_ref).abs() <= 1e-7 * f_ref.abs(),
                "{search:?}, c1 {c1}: objective {f} against More-Thuente's {f_ref}"
            );
            let far = fitted
                .weights()
                .iter()
                .zip(reference.weights())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(far < 1e-3, "{search:?}, c1 {c1}: weights {far} apart");
        }
    }
}

/// A line search that runs out of trials ends the run with the typed
/// [`Termination::LineSearchFailed`] (naming the bound) and the weights
/// before it, for every search, with and without L1: a strong L2 term
/// makes the first step (of unit length) overshoot, and one trial is all
/// it may take.
#[test]
fn a_failed_backtracking_search_ends_the_run_with_its_termination() {
    let data = dataset(&synthetic(60, 12));
    for c1 in [0.0, 0.05] {
        for search in [LineSearch::Backtracking, LineSearch::StrongBacktracking] {
            let params = lbfgs().c1(c1).c2(1e5).linesearch(search).max_linesearch(1);
            let fitted = fit_with(&data, params, 1, |_| {});
            match &fitted.report().termination {
                Termination::LineSearchFailed { detail } => {
                    assert!(detail.contains("max_linesearch = 1"), "{search:?}, c1 {c1}: {detail}")
                }
                other => panic!("{search:?}, c1 {c1}: expected a failed line search, got {other:?}"),
            }
            assert!(
                fitted.weights().iter().all(|w| *w == 0.0),
                "the starting weights are kept"
            );
        }
    }
}

/// A run with a backtracking search, interrupted and resumed from the state
/// saved there, ends with the uninterrupted run's weights, bit for bit.
#[test]
fn backtracking_runs_resume_exactly() {
    let data = dataset(&synthetic(200, 5));
    for c1 in [0.0, 0.05] {
        for search in [LineSearch::Backtracking, LineSearch::StrongBacktracking] {
            let params = || lbfgs().c1(c1).c2(0.01).linesearch(search).check().unwrap();
            let full = Trainer::new(params()).threads(1).fit(&data).unwrap();
            assert!(full.report().iterations > 6, "too short: {}", full.report());
            let (_, state) = interrupted_after(params(), &data, 3);
            let rest = Trainer::new(params()).threads(2).resume_from(state).fit(&data).unwrap();
            assert_eq!(
                rest.report().iterations,
                full.report().iterations,
                "{search:?}, c1 {c1}"
            );
            assert_eq!(rest.report().termination, full.report().termination);
            assert!(
                bits_equal(rest.weights(), full.weights()),
                "{search:?}, c1 {c1}: resumed weights differ"
            );
        }
    }
}

/// CRFsuite's three names are accepted (and read back), other names are
/// refused naming the parameter.
#[test]
fn linesearch_takes_crfsuites_names() {
    for (name, search) in [
        ("MoreThuente", LineSearch::MoreThuente),
        ("Backtracking", LineSearch::Backtracking),
        ("StrongBacktracking", LineSearch::StrongBacktracking),
    ] {
        let params = lbfgs().set("linesearch", name).unwrap();
        assert_eq!(params.get("linesearch").as_deref(), Some(name));
        assert_eq!(params.linesearch, search);
        params.check().unwrap();
    }
    let err = lbfgs().set("linesearch", "Armijo").unwrap_err();
    assert!(err.to_string().contains("linesearch"), "{err}");
}
