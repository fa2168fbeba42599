//! Every chain algorithm against brute-force enumeration on small random chains,
//! every semiring through the public `testing` harness, and the numerics of long
//! chains.

use chaincrf_core::chain::{self, ChainWorkspace};
use chaincrf_core::loss::{self, CrfParams, NllWorkspace, Target};
use chaincrf_core::testing::{self, enumerate_paths};
use chaincrf_core::{
    log_sum_exp, AllowedLabels, DenseChain, Entropy, Error, KBest, Log, MaxPlus, Potentials, Prob, Semiring,
};
use nalgebra::DMatrix;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use rand::SeedableRng;

const TOL: f64 = 1e-9;

#[test]
fn every_semiring_passes_the_public_harness() {
    testing::check_semiring::<Log>(200, TOL).unwrap();
    testing::check_semiring::<Prob>(200, TOL).unwrap();
    testing::check_semiring::<MaxPlus>(200, TOL).unwrap();
    testing::check_semiring::<KBest<3>>(200, TOL).unwrap();
    testing::check_semiring::<Entropy>(200, 1e-8).unwrap();
    testing::check_semiring::<chaincrf_core::Counting>(200, TOL).unwrap();
    testing::check_semiring::<chaincrf_core::Boolean>(200, TOL).unwrap();
}

fn finite_scores(c: &DenseChain) -> Vec<(Vec<usize>, f64)> {
    enumerate_paths(c)
        .into_iter()
        .filter(|(_, s)| *s > f64::NEG_INFINITY)
        .collect()
}

fn brute_marginals(c: &DenseChain) -> Vec<f64> {
    let (n, k) = (c.len(), c.num_labels());
    let paths = finite_scores(c);
    let lz = log_sum_exp(&paths.iter().map(|p| p.1).collect::<Vec<_>>());
    let mut m = vec![0.0; n * k];
    for (path, s) in &paths {
        for (t, &y) in path.iter().enumerate() {
            m[t * k + y] += (s - lz).exp();
        }
    }
    m
}

/// log Z (both passes, two semirings), Viterbi, node and edge marginals,
/// entropy and the path count of `c` against enumeration of its paths.
fn check_against_enumeration(c: &DenseChain) -> Result<(), TestCaseError> {
    let c = c.clone();
    {
        let paths = finite_scores(&c);
        if paths.is_empty() {
            let infeasible = matches!(chain::log_partition(&c), Err(Error::NoFeasiblePath { .. }));
            prop_assert!(infeasible);
            let v_infeasible = matches!(chain::viterbi(&c), Err(Error::NoFeasiblePath { .. }));
            prop_assert!(v_infeasible);
            prop_assert!(!chain::has_path(&c).unwrap());
            return Ok(());
        }
        let (n, k) = (c.len(), c.num_labels());
        let scores: Vec<f64> = paths.iter().map(|p| p.1).collect();
        let lz = log_sum_exp(&scores);
        prop_assert!((chain::log_partition(&c).unwrap() - lz).abs() < 1e-9 * (1.0 + lz.abs()));
        let mut ws = ChainWorkspace::<Prob>::new();
        prop_assert!((ws.forward(&c).unwrap().log_value() - lz).abs() < 1e-9 * (1.0 + lz.abs()));
        // forward and backward agree
        let mut lw = ChainWorkspace::<Log>::new();
        let f = lw.forward(&c).unwrap().score();
        let b = lw.backward().score();
        prop_assert!((f - b).abs() < 1e-9 * (1.0 + f.abs()));

        let best = chain::viterbi(&c).unwrap();
        let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        prop_assert!((best.score - max).abs() < 1e-9 * (1.0 + max.abs()));
        prop_assert!(
            (chaincrf_core::chain::path_score(&c, &best.labels).unwrap() - max).abs() < 1e-9 * (1.0 + max.abs())
        );
        prop_assert!(best.score <= lz + 1e-12);

        let expect = brute_marginals(&c);
        let m = chain::marginals(&c).unwrap();
        let mut pm = vec![0.0; n * k];
        ChainWorkspace::<Prob>::new().marginals_into(&c, &mut pm).unwrap();
        for t in 0..n {
            for y in 0..k {
                prop_assert!((m[(t, y)] - expect[t * k + y]).abs() < 1e-9);
                prop_assert!((pm[t * k + y] - expect[t * k + y]).abs() < 1e-9);
            }
        }
        // edge marginals, one edge at a time and summed over the edges
        let edges = chain::edge_marginals(&c).unwrap();
        let mut expected_sum = vec![0.0; k * k];
        for t in 1..n {
            let mut e = vec![0.0; k * k];
            for (path, s) in &paths {
                e[path[t - 1] * k + path[t]] += (s - lz).exp();
            }
            for i in 0..k {
                for j in 0..k {
                    prop_assert!((edges[t - 1][(i, j)] - e[i * k + j]).abs() < 1e-9);
                    expected_sum[i * k + j] += e[i * k + j];
                }
            }
        }
        ws.backward();
        let mut summed = vec![0.5; k * k];
        ws.add_edge_marginals(2.0, &mut summed);
        let mut log_summed = vec![0.0; k * k];
        lw.add_edge_marginals(1.0, &mut log_summed);
        for ((s, l), e) in summed.iter().zip(&log_summed).zip(&expected_sum) {
            prop_assert!((s - (0.5 + 2.0 * e)).abs() < 1e-9, "Prob: {s} vs 0.5 + 2·{e}");
            prop_assert!((l - e).abs() < 1e-9, "Log: {l} vs {e}");
        }
        // entropy
        let h: f64 = scores
            .iter()
            .map(|s| {
                let p = (s - lz).exp();
                if p > 0.0 {
                    -p * p.ln()
                } else {
                    0.0
                }
            })
            .sum();
        prop_assert!((chain::entropy(&c).unwrap() - h).abs() < 1e-8);
        // counting
        prop_assert!((chain::count_paths(&c).unwrap() - (paths.len() as f64).ln()).abs() < 1e-9);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn log_partition_viterbi_marginals_match_enumeration(c in testing::chain(6, 5, 5.0)) {
        check_against_enumeration(&c)?;
    }

    /// Up to 10 labels on short chains: every label count the chain loops
    /// are compiled for (2 to 8), and the run-time one on either side.
    #[test]
    fn every_compiled_label_count_matches_enumeration(c in testing::chain(4, 10, 5.0)) {
        check_against_enumeration(&c)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn kbest_paths_are_the_top_scores_in_order(c in testing::chain(5, 4, 5.0), want in 1usize..12) {
        let mut scores: Vec<f64> = finite_scores(&c).into_iter().map(|p| p.1).collect();
        scores.sort_by(|a, b| b.total_cmp(a));
        match chain::kbest(&c, want) {
            Err(Error::NoFeasiblePath { .. }) => prop_assert!(scores.is_empty()),
            Err(e) => prop_assert!(false, "unexpected error {e}"),
            Ok(paths) => {
                prop_assert_eq!(paths.len(), want.min(scores.len()));
                for (i, p) in paths.iter().enumerate() {
                    prop_assert!((p.score - scores[i]).abs() < 1e-9 * (1.0 + scores[i].abs()));
                    let direct = chaincrf_core::chain::path_score(&c, &p.labels).unwrap();
                    prop_assert!((p.score - direct).abs() < 1e-9 * (1.0 + direct.abs()));
                    for q in &paths[..i] {
                        prop_assert!(q.labels != p.labels, "duplicate path");
                    }
                }
                // The K-best semiring gives the same scores through the generic forward.
                if let Ok(sum) = ChainWorkspace::<KBest<4>>::new().forward(&c) {
                    for (i, &s) in sum.value.0.iter().enumerate() {
                        let expect = scores.get(i).copied().unwrap_or(f64::NEG_INFINITY);
                        if expect == f64::NEG_INFINITY {
                            prop_assert!(s == f64::NEG_INFINITY);
                        } else {
                            prop_assert!((s + sum.log_scale - expect).abs() < 1e-9 * (1.0 + expect.abs()));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn nll_gradient_matches_finite_differences(c in testing::chain(5, 4, 2.0), seed in 0u64..1000) {
        let paths = finite_scores(&c);
        prop_assume!(!paths.is_empty());
        let gold = paths[(seed as usize) % paths.len()].0.clone();
        let (n, k) = (c.len(), c.num_labels());
        let mut ws = NllWorkspace::<Log>::new();
        let nll = ws.evaluate(&c, Target::Path(&gold)).unwrap();
        let lz = log_sum_exp(&paths.iter().map(|p| p.1).collect::<Vec<_>>());
        let gs = chaincrf_core::chain::path_score(&c, &gold).unwrap();
        prop_assert!((nll - (lz - gs)).abs() < 1e-9 * (1.0 + lz.abs()));
        let g = ws.node_gradient().to_vec();
        let mut tg = vec![0.0; k * k];
        ws.add_transition_gradient(1.0, &mut tg);
        let h = 1e-5;
        let nll_of = |c: &DenseChain| -> f64 {
            let mut w = NllWorkspace::<Log>::new();
            w.evaluate(c, Target::Path(&gold)).unwrap()
        };
        for t in 0..n { for y in 0..k {
            if c.emission(t, y) == f64::NEG_INFINITY { continue; }
            let mut plus = c.clone(); plus.emissions_mut()[(t, y)] += h;
            let mut minus = c.clone(); minus.emissions_mut()[(t, y)] -= h;
            let fd = (nll_of(&plus) - nll_of(&minus)) / (2.0 * h);
            prop_assert!((fd - g[t * k + y]).abs() < 1e-5, "emission ({t},{y}): fd {fd} vs {}", g[t * k + y]);
        }}
        for i in 0..k { for j in 0..k {
            if c.transition(i, j) == f64::NEG_INFINITY { continue; }
            let mut plus = c.clone(); plus.transitions_mut()[(i, j)] += h;
            let mut minus = c.clone(); minus.transitions_mut()[(i, j)] -= h;
            let fd = (nll_of(&plus) - nll_of(&minus)) / (2.0 * h);
            prop_assert!((fd - tg[i * k + j]).abs() < 1e-5, "transition ({i},{j}): fd {fd} vs {}", tg[i * k + j]);
        }}
    }

    /// More labels than the loops compiled per width (the backward step then
    /// sweeps the transposed matrix): marginals, log Z from both ends and the
    /// path gradient against enumeration.
    #[test]
    fn wide_chains_match_enumeration(c in testing::chain(3, 11, 3.0).prop_filter("more than 8 labels", |c| c.num_labels() > 8), seed in 0u64..1000) {
        let paths = finite_scores(&c);
        prop_assume!(!paths.is_empty());
        let (n, k) = (c.len(), c.num_labels());
        let lz = log_sum_exp(&paths.iter().map(|p| p.1).collect::<Vec<_>>());
        let expect = brute_marginals(&c);
        let mut prob = ChainWorkspace::<Prob>::new();
        let mut log = ChainWorkspace::<Log>::new();
        let (mut pm, mut lm) = (vec![0.0; n * k], vec![0.0; n * k]);
        prop_assert!((prob.marginals_into(&c, &mut pm).unwrap() - lz).abs() < 1e-9 * (1.0 + lz.abs()));
        prop_assert!((log.marginals_into(&c, &mut lm).unwrap() - lz).abs() < 1e-9 * (1.0 + lz.abs()));
        prop_assert!((prob.backward().log_value() - lz).abs() < 1e-9 * (1.0 + lz.abs()));
        for i in 0..n * k {
            prop_assert!((pm[i] - expect[i]).abs() < 1e-9, "prob marginal {i}");
            prop_assert!((lm[i] - expect[i]).abs() < 1e-9, "log marginal {i}");
        }
        let gold = paths[(seed as usize) % paths.len()].0.clone();
        let mut ws = NllWorkspace::<Prob>::new();
        ws.evaluate(&c, Target::Path(&gold)).unwrap();
        let mut tg = vec![0.0; k * k];
        ws.add_transition_gradient(1.0, &mut tg);
        let mut want = vec![0.0; k * k];
        for (path, sc) in &paths {
            for pair in path.windows(2) {
                want[pair[0] * k + pair[1]] += (sc - lz).exp();
            }
        }
        for pair in gold.windows(2) {
            want[pair[0] * k + pair[1]] -= 1.0;
        }
        for (g, w) in tg.iter().zip(&want) {
            prop_assert!((g - w).abs() < 1e-9, "transition gradient {g} vs {w}");
        }
    }

    /// The summed transition gradient of a path target, in the exp-space
    /// semiring (factored: one multiply-add per entry and edge) and the log
    /// one (edge by edge), against enumeration of every path: expected pair
    /// counts minus the path's, forbidden pairs exactly 0.
    #[test]
    fn path_transition_gradient_matches_enumeration(c in testing::chain(6, 5, 3.0), seed in 0u64..1000) {
        let paths = finite_scores(&c);
        prop_assume!(!paths.is_empty());
        let (k, gold) = (c.num_labels(), paths[(seed as usize) % paths.len()].0.clone());
        let lz = log_sum_exp(&paths.iter().map(|p| p.1).collect::<Vec<_>>());
        let mut expect = vec![0.0; k * k];
        for (path, s) in &paths {
            for pair in path.windows(2) {
                expect[pair[0] * k + pair[1]] += (s - lz).exp();
            }
        }
        for pair in gold.windows(2) {
            expect[pair[0] * k + pair[1]] -= 1.0;
        }
        let mut prob = NllWorkspace::<Prob>::new();
        let mut log = NllWorkspace::<Log>::new();
        prob.evaluate(&c, Target::Path(&gold)).unwrap();
        log.evaluate(&c, Target::Path(&gold)).unwrap();
        let (mut gp, mut gl) = (vec![0.25; k * k], vec![0.25; k * k]);
        prob.add_transition_gradient(-2.0, &mut gp);
        log.add_transition_gradient(-2.0, &mut gl);
        for i in 0..k * k {
            let want = 0.25 - 2.0 * expect[i];
            prop_assert!((gp[i] - want).abs() < 1e-9, "prob ({i}): {} vs {want}", gp[i]);
            prop_assert!((gl[i] - want).abs() < 1e-9, "log ({i}): {} vs {want}", gl[i]);
            if c.transition(i / k, i % k) == f64::NEG_INFINITY {
                prop_assert_eq!(gp[i], 0.25);
                prop_assert_eq!(gl[i], 0.25);
            }
        }
    }

    #[test]
    fn partial_label_nll_sums_over_agreeing_paths(c in testing::chain(5, 4, 3.0), mask in proptest::collection::vec(0u32..16, 5)) {
        let (n, k) = (c.len(), c.num_labels());
        let sets: Vec<Option<Vec<usize>>> = (0..n).map(|t| {
            let m = mask[t] as usize;
            if m == 0 { None } else { Some((0..k).filter(|y| m >> y & 1 == 1).collect()) }
        }).collect();
        let allowed = AllowedLabels::from_sets(&sets, k).unwrap();
        let all = finite_scores(&c);
        let agree: Vec<f64> = all.iter().filter(|(p, _)| p.iter().enumerate().all(|(t, &y)| allowed.is_allowed(t, y))).map(|p| p.1).collect();
        let mut ws = NllWorkspace::<Log>::new();
        match ws.evaluate(&c, Target::Allowed(&allowed)) {
            Ok(nll) => {
                let expect = log_sum_exp(&all.iter().map(|p| p.1).collect::<Vec<_>>()) - log_sum_exp(&agree);
                prop_assert!((nll - expect).abs() < 1e-9 * (1.0 + expect.abs()));
                // gradient rows sum to zero (both distributions are normalized)
                for t in 0..n {
                    let s: f64 = ws.node_gradient()[t * k..(t + 1) * k].iter().sum();
                    prop_assert!(s.abs() < 1e-9);
                }
                // the transition gradient: expected label-pair counts over all
                // paths minus those over the agreeing paths
                let (lz_all, lz_agree) = (log_sum_exp(&all.iter().map(|p| p.1).collect::<Vec<_>>()), log_sum_exp(&agree));
                let mut expect = vec![0.0; k * k];
                for (path, s) in &all {
                    let agrees = path.iter().enumerate().all(|(t, &y)| allowed.is_allowed(t, y));
                    for pair in path.windows(2) {
                        expect[pair[0] * k + pair[1]] += (s - lz_all).exp();
                        if agrees {
                            expect[pair[0] * k + pair[1]] -= (s - lz_agree).exp();
                        }
                    }
                }
                let mut tg = vec![0.0; k * k];
                ws.add_transition_gradient(1.0, &mut tg);
                for (g, e) in tg.iter().zip(&expect) {
                    prop_assert!((g - e).abs() < 1e-9, "transition gradient {g} vs {e}");
                }
            }
            Err(Error::NoFeasiblePath { .. }) => prop_assert!(agree.is_empty() || all.is_empty()),
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }
}

#[test]
fn sampling_frequencies_match_probabilities() {
    let mut c = DenseChain::from_rows(
        &[vec![0.5, -0.3, 0.1], vec![0.0, 1.0, -1.0], vec![0.2, 0.2, 0.4]],
        &[vec![0.0, 0.5, -0.5], vec![0.3, 0.0, 0.1], vec![-0.2, 0.4, 0.0]],
    )
    .unwrap();
    c.forbid_transition(0, 2);
    let paths = finite_scores(&c);
    let lz = log_sum_exp(&paths.iter().map(|p| p.1).collect::<Vec<_>>());
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let draws = 40_000;
    let samples = chain::sample(&c, draws, &mut rng).unwrap();
    let mut chi2 = 0.0;
    for (path, s) in &paths {
        let expected = draws as f64 * (s - lz).exp();
        let observed = samples.iter().filter(|p| *p == path).count() as f64;
        chi2 += (observed - expected).powi(2) / expected;
    }
    assert!(
        samples.iter().all(|p| p.windows(2).all(|w| !(w[0] == 0 && w[1] == 2))),
        "a forbidden transition was sampled"
    );
    // 27 - 3 = 24 allowed paths → 23 degrees of freedom; P(χ² > 49.7) ≈ 0.001.
    assert!(chi2 < 49.7, "chi-square {chi2} too large");
    // Same seed, same samples.
    let mut rng2 = rand::rngs::StdRng::seed_from_u64(7);
    assert_eq!(chain::sample(&c, 100, &mut rng2).unwrap()[..], samples[..100]);
}

/// The transition gradient of a long chain the model is sure of: each edge's
/// term `ξₜ − 1[gold pair]` is about −e⁻³⁰, and their sum (about −10⁻⁸) must
/// not be lost to cancellation against pair counts of order n. The reference
/// forms every edge's difference without cancellation, the gold pair's as
/// minus the sum of the edge's other marginals (`ξₜ − 1 = −Σ_{others} ξₜ`;
/// `ξₜ − 1` itself would keep only three digits of a 10⁻¹³), then sums edge
/// by edge.
fn check_confident_transition_gradient<S: chaincrf_core::ProbabilitySemiring>() {
    let (n, k) = (100_000, 4);
    let gold: Vec<usize> = (0..n).map(|t| (t * 7 + t / 3) % k).collect();
    let mut e = DMatrix::zeros(n, k);
    for (t, &y) in gold.iter().enumerate() {
        e[(t, y)] = 30.0;
    }
    let c = DenseChain::new(e, DMatrix::from_element(k, k, 0.1)).unwrap();
    let every_label_forced: Vec<Option<Vec<usize>>> = gold.iter().map(|&y| Some(vec![y])).collect();
    let allowed = AllowedLabels::from_sets(&every_label_forced, k).unwrap();
    for target in [Target::Path(&gold), Target::Allowed(&allowed)] {
        let mut ws = NllWorkspace::<S>::new();
        ws.evaluate(&c, target).unwrap();
        let mut reference = vec![0.0; k * k];
        ws.for_each_edge_gradient(|t, g| {
            let pair = gold[t - 1] * k + gold[t];
            let mut others = 0.0;
            for (i, (r, x)) in reference.iter_mut().zip(g).enumerate() {
                if i != pair {
                    *r += x;
                    others += x;
                }
            }
            reference[pair] -= others;
        });
        let mut summed = vec![0.0; k * k];
        ws.add_transition_gradient(1.0, &mut summed);
        let gold_pair = gold[0] * k + gold[1];
        assert!(
            reference[gold_pair] < -1e-9,
            "the sum to keep: {}",
            reference[gold_pair]
        );
        for (i, (s, r)) in summed.iter().zip(&reference).enumerate() {
            assert!(
                (s - r).abs() <= 1e-9 * r.abs() + 1e-15,
                "{} entry {i}: {s} vs {r}",
                S::NAME
            );
        }
    }
}

#[test]
fn transition_gradient_of_a_long_confident_chain_keeps_its_digits() {
    check_confident_transition_gradient::<Log>();
    check_confident_transition_gradient::<Prob>();
}

/// A 100,000-long chain with scores of magnitude 10⁴ where the answer is known
/// in closed form: two labels that can never switch, so
/// `Z = Σ_y exp(Σₜ eₜ(y))` and every marginal is `P(y) = softmax(totals)`.
#[test]
fn long_chain_with_huge_scores_is_exact() {
    let n = 100_000;
    let mut e = DMatrix::zeros(n, 2);
    let mut tot = [0.0f64; 2];
    for t in 0..n {
        let a = 1e4 * ((t as f64) * 0.37).sin();
        let b = 1e4 * ((t as f64) * 0.37).sin() + if t % 2 == 0 { 1e-5 } else { -0.9e-5 };
        e[(t, 0)] = a;
        e[(t, 1)] = b;
    }
    // exact totals with compensated summation
    for (y, slot) in tot.iter_mut().enumerate() {
        let (mut s, mut comp) = (0.0f64, 0.0f64);
        for t in 0..n {
            let x = e[(t, y)];
            let u = s + x;
            comp += if s.abs() >= x.abs() { (s - u) + x } else { (x - u) + s };
            s = u;
        }
        *slot = s + comp;
    }
    let tr = DMatrix::from_row_slice(2, 2, &[1e4, f64::NEG_INFINITY, f64::NEG_INFINITY, -1e4]);
    let c = DenseChain::new(e, tr).unwrap();
    let total = [tot[0] + (n as f64 - 1.0) * 1e4, tot[1] - (n as f64 - 1.0) * 1e4];
    let lz = log_sum_exp(&total);
    let got = chain::log_partition(&c).unwrap();
    assert!(((got - lz) / lz).abs() < 1e-9, "log Z {got} vs {lz}");
    let p1 = (total[1] - lz).exp();
    let m = chain::marginals(&c).unwrap();
    for t in (0..n).step_by(997) {
        assert!((m[(t, 1)] - p1).abs() < 1e-6, "marginal at {t}: {} vs {p1}", m[(t, 1)]);
        assert!((m[(t, 0)] + m[(t, 1)] - 1.0).abs() < 1e-9);
    }
    let v = chain::viterbi(&c).unwrap();
    assert!(v.labels.iter().all(|&y| y == v.labels[0]));
    assert!((v.score - total[0].max(total[1])).abs() < 1e-9 * total[0].abs());
}

/// Realistic scores on a long chain: the scaled probability semiring agrees with
/// the log semiring, and marginals from both agree.
#[test]
fn prob_semiring_agrees_with_log_on_long_realistic_chains() {
    let (n, k) = (50_000, 6);
    let e = DMatrix::from_fn(n, k, |t, y| ((t * 7 + y * 13) % 17) as f64 * 0.8 - 6.0);
    let tr = DMatrix::from_fn(k, k, |i, j| {
        if (i + j) % 5 == 0 {
            f64::NEG_INFINITY
        } else {
            ((i * 3 + j) % 7) as f64 - 3.0
        }
    });
    let c = DenseChain::new(e, tr)
        .unwrap()
        .with_start(&[0.5; 6])
        .unwrap()
        .with_end(&[-0.5; 6])
        .unwrap();
    let mut lw = ChainWorkspace::<Log>::new();
    let mut pw = ChainWorkspace::<Prob>::new();
    let (mut ml, mut mp) = (vec![0.0; n * k], vec![0.0; n * k]);
    let a = lw.marginals_into(&c, &mut ml).unwrap();
    let b = pw.marginals_into(&c, &mut mp).unwrap();
    assert!(((a - b) / a).abs() < 1e-12, "{a} vs {b}");
    let worst = ml.iter().zip(&mp).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    assert!(worst < 1e-10, "marginals differ by {worst}");
}

#[test]
fn infeasible_empty_and_invalid_chains_are_reported() {
    let mut c = DenseChain::from_rows(&[vec![0.0, 0.0], vec![0.0, 0.0]], &[vec![0.0, 0.0], vec![0.0, 0.0]]).unwrap();
    c.force_label(0, 0);
    c.force_label(1, 1);
    c.forbid_transition(0, 1);
    assert_eq!(
        chain::log_partition(&c),
        Err(Error::NoFeasiblePath { position: Some(1) })
    );
    assert!(matches!(chain::kbest(&c, 3), Err(Error::NoFeasiblePath { .. })));
    assert_eq!(chain::has_path(&c), Ok(false));
    let empty = DenseChain::from_rows(&[], &[vec![0.0]]).unwrap();
    assert_eq!(chain::log_partition(&empty).unwrap(), 0.0);
    assert_eq!(chain::viterbi(&empty).unwrap().labels, Vec::<usize>::new());
    let nan = DenseChain::from_rows(&[vec![f64::NAN]], &[vec![0.0]]).unwrap();
    assert!(matches!(
        chain::log_partition(&nan),
        Err(Error::InvalidScore {
            what: "emission",
            position: Some(0),
            ..
        })
    ));
    assert!(DenseChain::from_rows(&[vec![0.0, 1.0], vec![0.0]], &[vec![0.0, 0.0], vec![0.0, 0.0]]).is_err());
}

#[test]
fn a_reused_workspace_gives_the_same_answers() {
    let mut ws = ChainWorkspace::<MaxPlus>::new();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..50 {
        let c = testing::chain(8, 5, 4.0).new_tree(&mut runner).unwrap().current();
        let fresh = chain::viterbi(&c);
        let reused = ws.viterbi(&c);
        assert_eq!(fresh, reused);
    }
}

/// A probability workspace reused across chains, some with the transitions
/// of the chain before (whose lift it keeps) and some without, gives the
/// bits of a fresh workspace: log Z and marginals, below and above 8 labels.
#[test]
fn a_reused_workspace_keeps_only_the_right_transitions() {
    let mut ws = ChainWorkspace::<Prob>::new();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for round in 0..60 {
        let c = testing::chain(7, 13, 4.0).new_tree(&mut runner).unwrap().current();
        let (n, k) = (c.len(), c.num_labels());
        let mut tr = vec![0.0; k * k];
        c.transitions_into(&mut tr);
        let mut e = vec![0.0; n * k];
        for t in 0..n {
            c.emissions_into(t, &mut e[t * k..(t + 1) * k]);
        }
        let shifted: Vec<f64> = e.iter().map(|x| x * 0.5 + round as f64 * 0.01).collect();
        let same_transitions = DenseChain::new(
            DMatrix::from_row_slice(n, k, &shifted),
            DMatrix::from_row_slice(k, k, &tr),
        )
        .unwrap();
        for p in [&c, &same_transitions, &c] {
            let mut fresh = ChainWorkspace::<Prob>::new();
            let want = fresh.forward_backward(p).map(|s| s.log_value());
            let got = ws.forward_backward(p).map(|s| s.log_value());
            match (want, got) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a.to_bits(), b.to_bits(), "log Z, round {round}");
                    let (mut ma, mut mb) = (vec![0.0; n * k], vec![0.0; n * k]);
                    fresh.node_marginals_into(&mut ma).unwrap();
                    ws.node_marginals_into(&mut mb).unwrap();
                    assert!(
                        ma.iter().zip(&mb).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "round {round}"
                    );
                }
                (a, b) => assert_eq!(a.is_ok(), b.is_ok(), "round {round}"),
            }
        }
    }
}

#[test]
fn padded_batch_equals_per_sequence_and_gradient_is_right() {
    let k = 3;
    let tr = [0.1, -0.2, 0.3, 0.0, 0.5, -0.1, 0.2, 0.2, -0.3];
    let st = [0.1, 0.0, -0.1];
    let en = [0.0, 0.3, 0.1];
    let params = CrfParams {
        transitions: &tr,
        start: &st,
        end: &en,
        k,
    };
    let lens = [3usize, 1, 4];
    let n_max = 4;
    let mut em = vec![0.0; lens.len() * n_max * k];
    for (i, x) in em.iter_mut().enumerate() {
        *x = ((i * 31 % 11) as f64) * 0.3 - 1.5;
    }
    let gold: Vec<usize> = (0..lens.len() * n_max).map(|i| i % k).collect();
    let padded = loss::nll_padded(&params, &em, &lens, n_max, &gold).unwrap();
    // Changing the padding changes nothing.
    let mut em2 = em.clone();
    let mut gold2 = gold.clone();
    for (b, &l) in lens.iter().enumerate() {
        for t in l..n_max {
            for y in 0..k {
                em2[(b * n_max + t) * k + y] = 1e9;
            }
            gold2[b * n_max + t] = 99;
        }
    }
    assert_eq!(
        loss::nll_padded(&params, &em2, &lens, n_max, &gold2).unwrap().mean,
        padded.mean
    );
    // Per sequence (the padded layer runs the scaled-probability semiring when
    // the scores fit its range: equal to the log semiring up to rounding).
    for (b, &l) in lens.iter().enumerate() {
        let view = chaincrf_core::ChainView::new(&em[b * n_max * k..(b * n_max + l) * k], &tr, &st, &en, k).unwrap();
        let mut ws = NllWorkspace::<Log>::new();
        let nll = ws
            .evaluate(&view, Target::Path(&gold[b * n_max..b * n_max + l]))
            .unwrap();
        assert!((nll - padded.per_sequence[b]).abs() <= 1e-12 * nll.abs().max(1.0));
    }
    // Finite differences of the mean wrt a transition, a start and an emission.
    let h = 1e-6;
    let f = |tr: &[f64], st: &[f64], em: &[f64]| {
        loss::nll_padded(
            &CrfParams {
                transitions: tr,
                start: st,
                end: &en,
                k,
            },
            em,
            &lens,
            n_max,
            &gold,
        )
        .unwrap()
        .mean
    };
    for idx in 0..k * k {
        let (mut a, mut b) = (tr, tr);
        a[idx] += h;
        b[idx] -= h;
        let fd = (f(&a, &st, &em) - f(&b, &st, &em)) / (2.0 * h);
        assert!((fd - padded.transition_grad[idx]).abs() < 1e-7);
    }
    for idx in 0..k {
        let (mut a, mut b) = (st, st);
        a[idx] += h;
        b[idx] -= h;
        let fd = (f(&tr, &a, &em) - f(&tr, &b, &em)) / (2.0 * h);
        assert!((fd - padded.start_grad[idx]).abs() < 1e-7);
    }
    for idx in [0usize, 5, 13, 27, 35] {
        let (mut a, mut b) = (em.clone(), em.clone());
        a[idx] += h;
        b[idx] -= h;
        let fd = (f(&tr, &st, &a) - f(&tr, &st, &b)) / (2.0 * h);
        assert!(
            (fd - padded.emission_grad[idx]).abs() < 1e-7,
            "emission {idx}: {fd} vs {}",
            padded.emission_grad[idx]
        );
    }
    // Batched Viterbi equals one by one.
    let seqs: Vec<&[f64]> = lens
        .iter()
        .enumerate()
        .map(|(b, &l)| &em[b * n_max * k..(b * n_max + l) * k])
        .collect();
    let paths = loss::viterbi_batch(&params, &seqs).unwrap();
    for (b, p) in paths.iter().enumerate() {
        let view = chaincrf_core::ChainView::new(seqs[b], &tr, &st, &en, k).unwrap();
        assert_eq!(*p, chain::viterbi(&view).unwrap());
    }
    let _ = Entropy::zero();
}

/// The row-major view (lifted in one pass over the whole emission matrix) and
/// the dense chain (lifted row by row), run through separate forward and
/// backward passes or through the fused `forward_backward`, must compute the
/// very same numbers: these are different routes through identical arithmetic.
fn same_route_results<S: chaincrf_core::ProbabilitySemiring>(c: &DenseChain) {
    let (n, k) = (c.len(), c.num_labels());
    let rows: Vec<f64> = (0..n).flat_map(|t| (0..k).map(move |y| c.emission(t, y))).collect();
    let tr: Vec<f64> = (0..k * k).map(|i| c.transition(i / k, i % k)).collect();
    let st: Vec<f64> = (0..k).map(|y| c.start(y)).collect();
    let en: Vec<f64> = (0..k).map(|y| c.end(y)).collect();
    let view = chaincrf_core::ChainView::new(&rows, &tr, &st, &en, k).unwrap();

    let mut split = ChainWorkspace::<S>::new();
    let separate = split.forward(c).map(|f| f.log_value());
    let mut fused = ChainWorkspace::<S>::new();
    let mut m_fused = vec![0.0; n * k];
    let together = fused.marginals_into(&view, &mut m_fused);
    match (separate, together) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "{}: log Z", S::NAME);
            split.backward();
            let mut m_split = vec![0.0; n * k];
            split.node_marginals_into(&mut m_split).unwrap();
            assert_eq!(m_split, m_fused, "{}: marginals", S::NAME);
            for t in 0..n {
                assert_eq!(
                    split.beta_log_scale(t),
                    fused.beta_log_scale(t),
                    "{}: β scale {t}",
                    S::NAME
                );
            }
        }
        (a, b) => assert_eq!(a.is_err(), b.is_err(), "{}: {a:?} vs {b:?}", S::NAME),
    }
    let v1 = chain::viterbi(c);
    let v2 = chain::viterbi(&view);
    assert_eq!(v1, v2, "Viterbi through the two routes");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn views_dense_chains_and_fused_passes_agree_exactly(c in testing::chain(9, 13, 6.0)) {
        same_route_results::<Prob>(&c);
        same_route_results::<Log>(&c);
        same_route_results::<Entropy>(&c);
    }
}

#[test]
fn invalid_scores_in_a_view_name_their_position_and_label() {
    let rows = [0.0, 1.0, 2.0, 3.0, f64::INFINITY, 5.0];
    let tr = [0.0; 4];
    let view = chaincrf_core::ChainView::new(&rows, &tr, &[], &[], 2).unwrap();
    assert_eq!(
        chain::log_partition(&view),
        Err(Error::InvalidScore {
            what: "emission",
            position: Some(2),
            index: 0,
            value: f64::INFINITY,
        })
    );
}

/// k-best on scores near the top of the f64 range (a fuzzer find: a best-first
/// search degenerated there) and a request too large to hold are answered,
/// not allocated without bound.
#[test]
fn kbest_is_bounded_on_huge_scores_and_large_requests() {
    let n = 48;
    let emissions: Vec<Vec<f64>> = (0..n)
        .map(|t: i32| vec![0.0, 8.0 * 10f64.powi(20 + (t * 7) % 60)])
        .collect();
    let c = DenseChain::from_rows(&emissions, &[vec![5.0, 588.0], vec![5.0, 6.0]]).unwrap();
    let paths = chain::kbest(&c, 3).unwrap();
    assert_eq!(paths.len(), 3);
    // Scores this large absorb the small ones: many paths tie, so compare
    // scores (summed in another order: equal up to rounding).
    let best = chain::viterbi(&c).unwrap().score;
    assert!(
        (paths[0].score - best).abs() <= 1e-12 * best.abs(),
        "{} vs {best}",
        paths[0].score
    );
    assert!(paths
        .windows(2)
        .all(|w| w[0].score >= w[1].score && w[0].labels != w[1].labels));
    assert!(matches!(chain::kbest(&c, 1 << 30), Err(Error::TooLarge { .. })));
    // A request larger than the number of paths is cut to it, not refused.
    let tiny = DenseChain::from_rows(&[vec![0.0, 1.0], vec![2.0, 0.0]], &[vec![0.0, 0.5], vec![0.0, 0.0]]).unwrap();
    assert_eq!(chain::kbest(&tiny, usize::MAX).unwrap().len(), 4);
}

/// A textbook Viterbi with back-pointers, written plainly: the reference for
/// the tie rule (each label's best predecessor is the smallest one among
/// equals, and so is the last label).
fn reference_viterbi(c: &DenseChain) -> Vec<usize> {
    let (n, k) = (c.len(), c.num_labels());
    let mut delta: Vec<f64> = (0..k).map(|y| c.start(y) + c.emission(0, y)).collect();
    let mut back = vec![vec![0usize; k]; n];
    for (t, back_t) in back.iter_mut().enumerate().skip(1) {
        let mut next = vec![f64::NEG_INFINITY; k];
        for (j, (nj, bj)) in next.iter_mut().zip(back_t.iter_mut()).enumerate() {
            for (i, d) in delta.iter().enumerate() {
                let v = d + c.transition_at(t, i, j);
                if v > *nj {
                    *nj = v;
                    *bj = i;
                }
            }
            *nj += c.emission(t, j);
        }
        delta = next;
    }
    let mut best = f64::NEG_INFINITY;
    let mut path = vec![0usize; n];
    for (y, d) in delta.iter().enumerate() {
        if d + c.end(y) > best {
            best = d + c.end(y);
            path[n - 1] = y;
        }
    }
    for t in (1..n).rev() {
        path[t - 1] = back[t][path[t]];
    }
    path
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

    /// Scores from {−1, 0, 1} (and some −∞) make ties everywhere: the path
    /// recovered from the forward pass's back-pointers follows the reference's
    /// tie rule exactly, on up to 9 labels (a block of 4 columns and a rest).
    #[test]
    fn viterbi_breaks_ties_like_the_reference(
        (n, k, e, tr, se) in (1usize..12, 1usize..10).prop_flat_map(|(n, k)| (
            Just(n),
            Just(k),
            proptest::collection::vec(-1i32..=1, n * k),
            proptest::collection::vec(prop_oneof![4 => (-1i32..=1).prop_map(f64::from), 1 => Just(f64::NEG_INFINITY)], k * k),
            proptest::collection::vec(-1i32..=1, 2 * k),
        )),
    ) {
        let e: Vec<f64> = e.into_iter().map(f64::from).collect();
        let se: Vec<f64> = se.into_iter().map(f64::from).collect();
        let c = DenseChain::new(DMatrix::from_row_slice(n, k, &e), DMatrix::from_row_slice(k, k, &tr))
            .and_then(|c| c.with_start(&se[..k]))
            .and_then(|c| c.with_end(&se[k..]))
            .unwrap();
        match chain::viterbi(&c) {
            Ok(best) => {
                prop_assert_eq!(&best.labels, &reference_viterbi(&c));
                prop_assert_eq!(chain::path_score(&c, &best.labels).unwrap(), best.score);
            }
            Err(e) => prop_assert!(matches!(e, Error::NoFeasiblePath { .. }), "{e}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    /// Beyond eight labels the probability semiring's products are fused
    /// multiply-adds and the summed edges one tiled sum of outer products:
    /// node marginals, summed edge marginals and the path-balanced sum (the
    /// transition gradient) agree with the log semiring's edge-by-edge
    /// marginals, which share none of that code.
    #[test]
    fn many_label_prob_passes_match_the_log_semiring(c in testing::chain(12, 24, 5.0)) {
        prop_assume!(c.num_labels() > 8 && chain::has_path(&c).unwrap());
        let (n, k) = (c.len(), c.num_labels());
        let path = chain::viterbi(&c).unwrap().labels;
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * (1.0 + b.abs());
        let mut pm = vec![0.0; n * k];
        let mut lm = vec![0.0; n * k];
        ChainWorkspace::<Prob>::new().marginals_into(&c, &mut pm).unwrap();
        ChainWorkspace::<Log>::new().marginals_into(&c, &mut lm).unwrap();
        for (p, l) in pm.iter().zip(&lm) {
            prop_assert!(close(*p, *l), "node marginal {p} vs {l}");
        }
        let mut ws = ChainWorkspace::<Prob>::new();
        let mut lw = ChainWorkspace::<Log>::new();
        ws.forward(&c).unwrap();
        ws.backward();
        lw.forward(&c).unwrap();
        lw.backward();
        let (mut ps, mut ls) = (vec![0.25; k * k], vec![0.25; k * k]);
        ws.add_edge_marginals(3.0, &mut ps);
        lw.add_edge_marginals(3.0, &mut ls);
        let (mut pg, mut lg) = (vec![0.0; k * k], vec![0.0; k * k]);
        ws.add_edge_marginals_minus_path(1.0, &path, &mut pg);
        lw.add_edge_marginals_minus_path(1.0, &path, &mut lg);
        for i in 0..k * k {
            prop_assert!(close(ps[i], ls[i]), "summed edge {i}: {} vs {}", ps[i], ls[i]);
            prop_assert!(close(pg[i], lg[i]), "path-balanced edge {i}: {} vs {}", pg[i], lg[i]);
        }
    }
}
