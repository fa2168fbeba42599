//! The semi-Markov structure against brute-force enumeration of every
//! segmentation, against the chain (its case L = 1), on long inputs, and its
//! loss layer against finite differences.

use chaincrf_core::chain;
use chaincrf_core::semimarkov::{
    self, DenseSemiMarkov, Segment, SegmentPotentials, SemiMarkovNll, SemiMarkovWorkspace,
};
use chaincrf_core::testing::{self, enumerate_segmentations};
use chaincrf_core::{log_sum_exp, Boolean, Counting, DenseChain, Entropy, Error, KBest, Log, MaxPlus, Prob};
use proptest::prelude::*;
use rand::SeedableRng;

fn close(a: f64, b: f64, tol: f64) -> bool {
    a == b || (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

/// The allowed segmentations of `p` with their scores.
fn allowed(p: &DenseSemiMarkov) -> Vec<(Vec<Segment>, f64)> {
    enumerate_segmentations(p)
        .into_iter()
        .filter(|(_, s)| *s > f64::NEG_INFINITY)
        .collect()
}

/// Segment marginals by enumeration, in the layout of the potentials.
fn brute_marginals(p: &DenseSemiMarkov, all: &[(Vec<Segment>, f64)], lz: f64) -> Vec<f64> {
    let mut m = vec![0.0; p.segments().len()];
    for (segs, s) in all {
        for g in segs {
            m[p.index(g.start, g.len, g.label)] += (s - lz).exp();
        }
    }
    m
}

/// Every quantity of the semi-Markov module against enumeration on `p`.
fn check_against_enumeration(p: &DenseSemiMarkov) -> Result<(), TestCaseError> {
    let all = allowed(p);
    if all.is_empty() {
        let infeasible = matches!(semimarkov::log_partition(p), Err(Error::NoFeasiblePath { .. }));
        prop_assert!(infeasible);
        let infeasible = matches!(semimarkov::viterbi(p), Err(Error::NoFeasiblePath { .. }));
        prop_assert!(infeasible);
        let infeasible = matches!(semimarkov::kbest(p, 2), Err(Error::NoFeasiblePath { .. }));
        prop_assert!(infeasible);
        prop_assert!(!semimarkov::has_segmentation(p).unwrap());
        return Ok(());
    }
    let scores: Vec<f64> = all.iter().map(|a| a.1).collect();
    let lz = log_sum_exp(&scores);
    prop_assert!(close(semimarkov::log_partition(p).unwrap(), lz, 1e-10));
    let mut prob = SemiMarkovWorkspace::<Prob>::new();
    prop_assert!(close(prob.forward(p).unwrap().log_value(), lz, 1e-10));
    let b = prob.backward();
    prop_assert!(close(b.log_value(), lz, 1e-10), "{} vs {lz}", b.log_value());
    prop_assert!(semimarkov::has_segmentation(p).unwrap());
    prop_assert!(close(
        semimarkov::count_segmentations(p).unwrap(),
        (all.len() as f64).ln(),
        1e-12
    ));

    // Viterbi: the best score, reached by the segmentation returned.
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let best = semimarkov::viterbi(p).unwrap();
    prop_assert!(close(best.score, max, 1e-10));
    let rescored = semimarkov::segmentation_score(p, &best.segments).unwrap();
    prop_assert!(close(rescored, max, 1e-10));

    // K best: the enumeration's scores in order, each list entry distinct
    // and scored right; the KBest semiring gives the same scores.
    let mut sorted = scores.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let count = 5;
    let list = semimarkov::kbest(p, count).unwrap();
    prop_assert_eq!(list.len(), count.min(all.len()));
    for (j, s) in list.iter().enumerate() {
        prop_assert!(
            close(s.score, sorted[j], 1e-10),
            "rank {}: {} vs {}",
            j,
            s.score,
            sorted[j]
        );
        let rescored = semimarkov::segmentation_score(p, &s.segments).unwrap();
        prop_assert!(close(rescored, s.score, 1e-10));
        for other in &list[..j] {
            prop_assert!(other.segments != s.segments);
        }
    }
    let k3 = SemiMarkovWorkspace::<KBest<3>>::new().forward(p).unwrap();
    for j in 0..3 {
        let want = sorted.get(j).copied().unwrap_or(f64::NEG_INFINITY);
        prop_assert!(close(k3.value.0[j] + k3.log_scale, want, 1e-10));
    }

    // Entropy.
    let h: f64 = -scores.iter().map(|s| (s - lz).exp() * (s - lz)).sum::<f64>();
    prop_assert!(close(semimarkov::entropy(p).unwrap(), h, 1e-9));

    // Segment marginals, in both probability semirings.
    let want = brute_marginals(p, &all, lz);
    let got = semimarkov::segment_marginals(p).unwrap();
    let mut got_prob = vec![0.0; want.len()];
    prob.segment_marginals_into(p, &mut got_prob).unwrap();
    for ((w, g), gp) in want.iter().zip(&got).zip(&got_prob) {
        prop_assert!((w - g).abs() < 1e-10, "{} vs {}", g, w);
        prop_assert!((w - gp).abs() < 1e-10, "{} vs {}", gp, w);
    }
    Ok(())
}

/// The loss layer's value and gradient against enumeration: the gradient of
/// `log Z − score(gold)` is `E[counts] − gold counts` for every score.
fn check_loss(p: &DenseSemiMarkov) -> Result<(), TestCaseError> {
    let all = allowed(p);
    let Some((gold, gold_score)) = all.iter().max_by(|a, b| a.1.total_cmp(&b.1)).cloned() else {
        return Ok(());
    };
    let (k, lz) = (
        p.num_labels(),
        log_sum_exp(&all.iter().map(|a| a.1).collect::<Vec<_>>()),
    );
    let mut ws = SemiMarkovNll::<Log>::new();
    let value = ws.compute(p, &gold).unwrap();
    prop_assert!(close(value, lz - gold_score, 1e-10));
    let g = ws.gradient();
    let mut want_seg = brute_marginals(p, &all, lz);
    let (mut want_tr, mut want_start, mut want_end) = (vec![0.0; k * k], vec![0.0; k], vec![0.0; k]);
    for (segs, s) in &all {
        let w = (s - lz).exp();
        want_start[segs[0].label] += w;
        want_end[segs[segs.len() - 1].label] += w;
        for pair in segs.windows(2) {
            want_tr[pair[0].label * k + pair[1].label] += w;
        }
    }
    for s in &gold {
        want_seg[p.index(s.start, s.len, s.label)] -= 1.0;
    }
    for pair in gold.windows(2) {
        want_tr[pair[0].label * k + pair[1].label] -= 1.0;
    }
    want_start[gold[0].label] -= 1.0;
    want_end[gold[gold.len() - 1].label] -= 1.0;
    for (a, b) in [
        (&g.segments, &want_seg),
        (&g.transitions, &want_tr),
        (&g.start, &want_start),
        (&g.end, &want_end),
    ] {
        prop_assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b.iter()) {
            prop_assert!((x - y).abs() < 1e-9, "{:?} vs {:?}", a, b);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_answer_matches_enumeration(p in testing::semi_markov(6, 3, 4, 5.0)) {
        check_against_enumeration(&p)?;
    }

    #[test]
    fn loss_and_gradient_match_enumeration(p in testing::semi_markov(5, 3, 3, 4.0)) {
        check_loss(&p)?;
    }

    #[test]
    fn every_semiring_sums_like_enumeration(p in testing::semi_markov(5, 3, 3, 3.0)) {
        let r = testing::check_segment_sum::<Log, _>(&p, 1e-10)
            .and(testing::check_segment_sum::<Prob, _>(&p, 1e-10))
            .and(testing::check_segment_sum::<MaxPlus, _>(&p, 1e-10))
            .and(testing::check_segment_sum::<KBest<4>, _>(&p, 1e-10))
            .and(testing::check_segment_sum::<Entropy, _>(&p, 1e-9))
            .and(testing::check_segment_sum::<Counting, _>(&p, 1e-12))
            .and(testing::check_segment_sum::<Boolean, _>(&p, 0.0));
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }

    /// L = 1 is the chain: every answer equals the chain code's.
    #[test]
    fn length_one_segments_are_the_chain(c in testing::chain(7, 4, 5.0)) {
        let p = DenseSemiMarkov::from_chain(&c).unwrap();
        match chain::log_partition(&c) {
            Err(Error::NoFeasiblePath { .. }) => {
                let infeasible = matches!(semimarkov::log_partition(&p), Err(Error::NoFeasiblePath { .. }));
        prop_assert!(infeasible);
                return Ok(());
            }
            r => prop_assert!(close(semimarkov::log_partition(&p).unwrap(), r.unwrap(), 1e-12)),
        }
        let labels = |segs: &[Segment]| segs.iter().map(|s| s.label).collect::<Vec<_>>();
        let (cv, sv) = (chain::viterbi(&c).unwrap(), semimarkov::viterbi(&p).unwrap());
        prop_assert!(close(cv.score, sv.score, 1e-12));
        prop_assert_eq!(&cv.labels, &labels(&sv.segments));
        let (ck, sk) = (chain::kbest(&c, 6).unwrap(), semimarkov::kbest(&p, 6).unwrap());
        prop_assert_eq!(ck.len(), sk.len());
        for (a, b) in ck.iter().zip(&sk) {
            prop_assert!(close(a.score, b.score, 1e-12));
        }
        prop_assert!(close(chain::entropy(&c).unwrap(), semimarkov::entropy(&p).unwrap(), 1e-10));
        let cm = chain::marginals(&c).unwrap();
        let sm = semimarkov::segment_marginals(&p).unwrap();
        for t in 0..c.emissions().nrows() {
            for y in 0..p.num_labels() {
                prop_assert!((cm[(t, y)] - sm[p.index(t, 1, y)]).abs() < 1e-12);
            }
        }
        prop_assert!(close(chain::count_paths(&c).unwrap(), semimarkov::count_segmentations(&p).unwrap(), 1e-12));
    }
}

#[test]
fn every_semiring_passes_the_semi_markov_harness_on_fixed_cases() {
    // A hand-made case with a forbidden segment, a forbidden transition and a
    // forbidden end label, so every branch of the recursion runs.
    let mut p = DenseSemiMarkov::from_fn(5, 2, 3, |i, d, y| {
        (i as f64 - d as f64 * 0.5) * if y == 0 { 1.0 } else { -0.5 }
    })
    .unwrap()
    .with_transitions(&[0.5, f64::NEG_INFINITY, -1.0, 0.25])
    .unwrap()
    .with_end(&[0.0, f64::NEG_INFINITY])
    .unwrap();
    p.set_segment(0, 1, 0, f64::NEG_INFINITY);
    testing::check_segment_sum::<Log, _>(&p, 1e-12).unwrap();
    testing::check_segment_sum::<Prob, _>(&p, 1e-12).unwrap();
    testing::check_segment_sum::<Counting, _>(&p, 0.0).unwrap();
    check_against_enumeration(&p).unwrap();
    check_loss(&p).unwrap();
}

/// Finite differences of the NLL against its gradient, every score.
#[test]
fn gradient_matches_finite_differences() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    use rand::Rng;
    let (n, k, l) = (6, 3, 3);
    let p = DenseSemiMarkov::from_fn(n, k, l, |_, _, _| rng.random_range(-2.0..2.0))
        .unwrap()
        .with_transitions(&(0..k * k).map(|_| rng.random_range(-1.0..1.0)).collect::<Vec<_>>())
        .unwrap()
        .with_start(&[0.3, -0.2, 0.1])
        .unwrap()
        .with_end(&[-0.4, 0.0, 0.2])
        .unwrap();
    let gold = vec![
        Segment {
            start: 0,
            len: 2,
            label: 1,
        },
        Segment {
            start: 2,
            len: 1,
            label: 1,
        },
        Segment {
            start: 3,
            len: 3,
            label: 0,
        },
    ];
    let (_, grad) = semimarkov::nll(&p, &gold).unwrap();
    let f = |q: &DenseSemiMarkov| semimarkov::nll(q, &gold).unwrap().0;
    let h = 1e-6;
    let diff = |bump: &dyn Fn(&mut DenseSemiMarkov, f64)| {
        let (mut a, mut b) = (p.clone(), p.clone());
        bump(&mut a, h);
        bump(&mut b, -h);
        (f(&a) - f(&b)) / (2.0 * h)
    };
    for i in 0..n {
        for d in 1..=l.min(n - i) {
            for y in 0..k {
                let at = p.index(i, d, y);
                let fd = diff(&|q, e| q.segments_mut()[at] += e);
                assert!(
                    (fd - grad.segments[at]).abs() < 1e-6,
                    "segment ({i},{d},{y}): {fd} vs {}",
                    grad.segments[at]
                );
            }
        }
    }
    for at in 0..k * k {
        let fd = diff(&|q, e| q.transitions_mut()[at] += e);
        assert!((fd - grad.transitions[at]).abs() < 1e-6, "transition {at}");
    }
    for y in 0..k {
        let fd = diff(&|q, e| q.start_scores_mut()[y] += e);
        assert!((fd - grad.start[y]).abs() < 1e-6, "start {y}");
        let fd = diff(&|q, e| q.end_scores_mut()[y] += e);
        assert!((fd - grad.end[y]).abs() < 1e-6, "end {y}");
    }
}

/// Samples follow P(segmentation | x): empirical frequencies against
/// enumeration (a tolerance of five standard errors).
#[test]
fn samples_follow_the_distribution() {
    let p = DenseSemiMarkov::from_fn(4, 2, 3, |i, d, y| ((i * 7 + d * 3 + y * 5) % 5) as f64 * 0.4 - 0.8)
        .unwrap()
        .with_transitions(&[0.2, -0.3, f64::NEG_INFINITY, 0.1])
        .unwrap();
    let all = allowed(&p);
    let lz = log_sum_exp(&all.iter().map(|a| a.1).collect::<Vec<_>>());
    let draws = 40_000;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let samples = semimarkov::sample(&p, draws, &mut rng).unwrap();
    let mut prob_ws = SemiMarkovWorkspace::<Prob>::new();
    let samples_prob = prob_ws.sample(&p, draws, &mut rng).unwrap();
    for samples in [samples, samples_prob] {
        for (segs, s) in &all {
            let want = (s - lz).exp();
            let got = samples.iter().filter(|x| *x == segs).count() as f64 / draws as f64;
            let se = (want * (1.0 - want) / draws as f64).sqrt();
            assert!((got - want).abs() < 5.0 * se + 1e-4, "{segs:?}: {got} vs {want}");
        }
        assert!(samples.iter().all(|x| all.iter().any(|(segs, _)| segs == x)));
    }
}

/// A 100 000-long input with large scores: log Z, Viterbi and the marginals
/// stay finite and consistent, in both log and scaled-probability semirings.
/// Every position is covered by exactly one segment of each segmentation, so
/// the marginals of the segments covering it sum to one.
#[test]
fn long_inputs_do_not_overflow() {
    let (n, k, l) = (100_000, 3, 4);
    let p = DenseSemiMarkov::from_fn(n, k, l, |i, d, y| {
        let h = (i.wrapping_mul(2_654_435_761) ^ (d * 97 + y * 13)) % 1000;
        h as f64 * 0.02 - 8.0 + d as f64
    })
    .unwrap()
    .with_transitions(&[1.0, -2.0, 0.5, f64::NEG_INFINITY, 0.0, 3.0, -1.0, 2.0, 0.0])
    .unwrap();
    let mut log_ws = SemiMarkovWorkspace::<Log>::new();
    let mut prob_ws = SemiMarkovWorkspace::<Prob>::new();
    let mut m_log = vec![0.0; n * l * k];
    let mut m_prob = vec![0.0; n * l * k];
    let lz = log_ws.segment_marginals_into(&p, &mut m_log).unwrap();
    let lz_prob = prob_ws.segment_marginals_into(&p, &mut m_prob).unwrap();
    assert!(lz.is_finite() && lz > 1e5, "{lz}");
    assert!(close(lz, lz_prob, 1e-13), "{lz} vs {lz_prob}");
    let best = semimarkov::viterbi(&p).unwrap();
    assert!(best.score <= lz && best.score.is_finite());
    assert!(close(
        semimarkov::segmentation_score(&p, &best.segments).unwrap(),
        best.score,
        1e-12
    ));
    let mut covering = vec![0.0; n];
    for i in 0..n {
        for d in 1..=l.min(n - i) {
            for y in 0..k {
                let at = p.index(i, d, y);
                assert!((m_log[at] - m_prob[at]).abs() < 1e-9);
                for c in &mut covering[i..i + d] {
                    *c += m_log[at];
                }
            }
        }
    }
    for (t, c) in covering.iter().enumerate() {
        assert!((c - 1.0).abs() < 1e-9, "position {t}: {c}");
    }
    // Scores of 10⁴ in the log semiring: no overflow, forward = backward.
    let big = DenseSemiMarkov::from_fn(n, 2, 3, |i, d, y| if (i + d + y) % 3 == 0 { 1e4 } else { -1e4 }).unwrap();
    let mut ws = SemiMarkovWorkspace::<Log>::new();
    let f = ws.forward(&big).unwrap().score();
    let b = ws.backward().score();
    assert!(f.is_finite() && close(f, b, 1e-13), "{f} vs {b}");
    let e = semimarkov::entropy(&big).unwrap();
    assert!(e.is_finite() && e >= -1e-9);
}

/// −inf is exact: forbidden segments get marginal exactly 0 and are never
/// chosen; an input that allows no segmentation says so.
#[test]
fn forbidden_scores_are_exact() {
    let mut p = DenseSemiMarkov::new(4, 2, 2).unwrap();
    for i in 0..4 {
        p.set_segment(i, 1, 1, f64::NEG_INFINITY);
    }
    p.set_segment(0, 2, 0, f64::NEG_INFINITY);
    let m = semimarkov::segment_marginals(&p).unwrap();
    for i in 0..4 {
        assert_eq!(m[p.index(i, 1, 1)], 0.0);
    }
    assert_eq!(m[p.index(0, 2, 0)], 0.0);
    let best = semimarkov::viterbi(&p).unwrap();
    assert!(best.segments.iter().all(|s| !(s.len == 1 && s.label == 1)));
    // Forbid every segment that could start at position 2: nothing gets past it.
    for d in 1..=2 {
        for y in 0..2 {
            p.set_segment(2, d, y, f64::NEG_INFINITY);
        }
    }
    p.set_segment(1, 2, 0, f64::NEG_INFINITY);
    p.set_segment(1, 2, 1, f64::NEG_INFINITY);
    assert!(enumerate_segmentations(&p).iter().all(|(_, s)| *s == f64::NEG_INFINITY));
    assert!(matches!(
        semimarkov::log_partition(&p),
        Err(Error::NoFeasiblePath { .. })
    ));
    assert!(matches!(semimarkov::viterbi(&p), Err(Error::NoFeasiblePath { .. })));
    assert!(!semimarkov::has_segmentation(&p).unwrap());
}

/// Finite scores whose sums leave f64 are an overflow, not "no segmentation",
/// for the chain and the semi-Markov structure alike, in every semiring.
#[test]
fn overflowing_sums_are_reported_as_overflow() {
    let c = DenseChain::from_rows(
        &[vec![1e308, 1e308], vec![1e308, 1e308]],
        &[vec![1e308, 1e308], vec![1e308, 1e308]],
    )
    .unwrap();
    let overflow = |r: Result<f64, Error>| matches!(r, Err(Error::Overflow { .. }));
    assert!(overflow(chain::log_partition(&c)), "{:?}", chain::log_partition(&c));
    assert!(overflow(chain::viterbi(&c).map(|v| v.score)));
    assert!(overflow(chain::entropy(&c)));
    assert!(overflow(
        chain::ChainWorkspace::<Prob>::new().forward(&c).map(|s| s.log_value())
    ));
    let neg = DenseChain::from_rows(&[vec![-1e308], vec![-1e308]], &[vec![-1e308]]).unwrap();
    assert!(overflow(chain::log_partition(&neg)), "{:?}", chain::log_partition(&neg));
    assert!(chain::has_path(&c).unwrap());

    let p = DenseSemiMarkov::from_fn(3, 2, 2, |_, _, _| 1e308).unwrap();
    assert!(
        overflow(semimarkov::log_partition(&p)),
        "{:?}",
        semimarkov::log_partition(&p)
    );
    assert!(overflow(semimarkov::viterbi(&p).map(|v| v.score)));
    assert!(overflow(semimarkov::entropy(&p)));
    assert!(overflow(
        SemiMarkovWorkspace::<Prob>::new().forward(&p).map(|s| s.log_value())
    ));
    let neg = DenseSemiMarkov::from_fn(3, 1, 1, |_, _, _| -1e308).unwrap();
    assert!(overflow(semimarkov::log_partition(&neg)));
    assert!(semimarkov::has_segmentation(&p).unwrap());
    // One huge score among ordinary ones is fine: nothing overflows.
    let mut q = DenseSemiMarkov::new(3, 2, 2).unwrap();
    q.set_segment(1, 1, 0, 1e307);
    assert!(close(semimarkov::log_partition(&q).unwrap(), 1e307, 1e-15));
}

#[test]
fn bad_input_is_an_error() {
    let mut p = DenseSemiMarkov::new(3, 2, 2).unwrap();
    p.set_segment(1, 2, 1, f64::NAN);
    assert!(matches!(
        semimarkov::log_partition(&p),
        Err(Error::InvalidScore {
            what: "segment",
            position: Some(1),
            index: 3,
            ..
        })
    ));
    // A NaN past the end is never read.
    let mut q = DenseSemiMarkov::new(3, 2, 2).unwrap();
    let at = q.index(2, 2, 0);
    q.segments_mut()[at] = f64::NAN;
    assert!(semimarkov::log_partition(&q).is_ok());
    assert!(DenseSemiMarkov::new(3, 0, 2).is_err());
    assert!(DenseSemiMarkov::new(3, 2, 0).is_err());
    let gap = [
        Segment {
            start: 0,
            len: 1,
            label: 0,
        },
        Segment {
            start: 2,
            len: 1,
            label: 0,
        },
    ];
    assert!(matches!(
        semimarkov::nll(&q, &gap),
        Err(Error::InvalidSegmentation { .. })
    ));
    let long = [Segment {
        start: 0,
        len: 3,
        label: 0,
    }];
    assert!(matches!(
        semimarkov::segmentation_score(&q, &long),
        Err(Error::InvalidSegmentation { .. })
    ));
    // An empty input has one (empty) segmentation.
    let e = DenseSemiMarkov::new(0, 2, 3).unwrap();
    assert_eq!(semimarkov::log_partition(&e).unwrap(), 0.0);
    assert!(semimarkov::viterbi(&e).unwrap().segments.is_empty());
    assert_eq!(semimarkov::kbest(&e, 3).unwrap().len(), 1);
}

/// One workspace decodes inputs of different shapes in turn.
#[test]
fn workspaces_are_reusable() {
    let mut ws = SemiMarkovWorkspace::<MaxPlus>::new();
    for (n, k, l) in [(5, 2, 3), (2, 3, 1), (7, 1, 4), (0, 2, 2), (3, 2, 5)] {
        let p = DenseSemiMarkov::from_fn(n, k, l, |i, d, y| ((i + 2 * d + 3 * y) % 4) as f64 - 1.5).unwrap();
        let v = ws.viterbi(&p).unwrap();
        assert_eq!(v, semimarkov::viterbi(&p).unwrap());
        let max = allowed(&p).iter().map(|a| a.1).fold(f64::NEG_INFINITY, f64::max);
        assert!(close(v.score, max, 1e-12));
    }
}
