//! Property-testing support for users' semirings and chain code (feature `testing`).
//!
//! * Brute force: [`enumerate_paths`] lists every one of the `kⁿ` label paths
//!   with its score; [`brute_force_sum`] folds them in any semiring. Everything
//!   the dynamic program computes can be checked against these on small chains.
//! * Strategies: [`chain`] generates small random chains with forbidden
//!   transitions, forced labels and forbidden start/end labels; [`score`]
//!   generates scores including `-inf`.
//! * One-line checks: [`check_laws`] tests a semiring's laws on given values and
//!   [`check_semiring`] runs proptest over random values *and* random chains,
//!   comparing the forward and backward chain sums with brute-force enumeration.
//!   Our own semirings are tested with exactly this harness.
//! * The same for the semi-Markov structure: [`enumerate_segmentations`],
//!   [`brute_force_segment_sum`], the strategy [`semi_markov`] and
//!   [`check_segment_sum`].

use crate::chain::ChainWorkspace;
use crate::potentials::{DenseChain, Potentials};
use crate::semimarkov::{DenseSemiMarkov, Segment, SegmentPotentials, SemiMarkovWorkspace};
use crate::semiring::Semiring;
use nalgebra::DMatrix;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// A check of this module that failed: the semiring, and what was seen
/// (values printed with `Debug`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{semiring} semiring: {detail}")]
pub struct CheckFailure {
    /// The semiring's [`Semiring::NAME`].
    pub semiring: &'static str,
    /// What failed: the law or the sum, and the values.
    pub detail: String,
}

impl CheckFailure {
    fn of<S: Semiring>(detail: String) -> Self {
        CheckFailure {
            semiring: S::NAME,
            detail,
        }
    }
}

/// Every label path of `p` with its score (`kⁿ` of them: keep chains small).
pub fn enumerate_paths<P: Potentials + ?Sized>(p: &P) -> Vec<(Vec<usize>, f64)> {
    let (n, k) = (p.len(), p.num_labels());
    let mut out = Vec::new();
    let mut path = vec![0usize; n];
    loop {
        let score = crate::chain::path_score(p, &path).unwrap_or(f64::NAN);
        out.push((path.clone(), score));
        // odometer increment
        let mut t = n;
        loop {
            if t == 0 {
                return out;
            }
            t -= 1;
            path[t] += 1;
            if path[t] < k {
                break;
            }
            path[t] = 0;
        }
    }
}

/// ⊕ over all paths of the ⊗-product of the path's lifted scores, taken in
/// chain order (start, e₀, T, e₁, …, end): the definition the dynamic program
/// must agree with.
pub fn brute_force_sum<S: Semiring, P: Potentials + ?Sized>(p: &P) -> S {
    let (n, k) = (p.len(), p.num_labels());
    let mut total = S::zero();
    for (path, _) in enumerate_paths(p) {
        if n == 0 {
            total = total.plus(&S::one());
            continue;
        }
        let mut prod = S::from_score(p.start(path[0])).times(&S::from_score(p.emission(0, path[0])));
        for t in 1..n {
            let tr = if p.has_varying_transitions() {
                p.transition_at(t, path[t - 1], path[t])
            } else {
                p.transition(path[t - 1], path[t])
            };
            prod = prod
                .times(&S::from_score(tr))
                .times(&S::from_score(p.emission(t, path[t])));
        }
        prod = prod.times(&S::from_score(p.end(path[n - 1])));
        let _ = k;
        total = total.plus(&prod);
    }
    total
}

/// A score in `[-range, range]`, or `-inf` with probability about `p_forbid`.
pub fn score(range: f64, p_forbid: f64) -> impl Strategy<Value = f64> {
    let forbid_weight = ((p_forbid * 100.0).round() as u32).min(100);
    prop_oneof![
        100 - forbid_weight => -range..range,
        forbid_weight.max(1) => Just(f64::NEG_INFINITY),
    ]
}

/// Random chains: `1 ≤ n ≤ max_n`, `1 ≤ k ≤ max_k`, emission scores in ±`range`,
/// about 15% forbidden transitions, some forced labels (an emission row with one
/// label left), and start/end scores with some forbidden labels. Many such
/// chains still allow paths; some do not (algorithms must then say so).
pub fn chain(max_n: usize, max_k: usize, range: f64) -> impl Strategy<Value = DenseChain> {
    (1..=max_n, 1..=max_k).prop_flat_map(move |(n, k)| {
        (
            proptest::collection::vec(-range..range, n * k),
            proptest::collection::vec(score(range, 0.15), k * k),
            proptest::collection::vec(score(range, 0.1), k),
            proptest::collection::vec(score(range, 0.1), k),
            proptest::collection::vec(proptest::option::weighted(0.2, 0..k), n),
        )
            .prop_map(move |(e, tr, st, en, forced)| {
                let mut c = DenseChain::new(DMatrix::from_row_slice(n, k, &e), DMatrix::from_row_slice(k, k, &tr))
                    .and_then(|c| c.with_start(&st))
                    .and_then(|c| c.with_end(&en))
                    .expect("shapes are consistent by construction");
                for (t, f) in forced.iter().enumerate() {
                    if let Some(y) = f {
                        c.force_label(t, *y);
                    }
                }
                c
            })
    })
}

/// A random semiring value: the ⊕ of one to three lifted random scores (so
/// multi-entry values such as K-best lists are exercised too).
pub fn value<S: Semiring>(range: f64) -> impl Strategy<Value = S> {
    proptest::collection::vec(score(range, 0.1), 1..4)
        .prop_map(|xs| xs.iter().fold(S::zero(), |acc, &x| acc.plus(&S::from_score(x))))
}

/// Checks the semiring laws on three values with tolerance `tol`; returns a
/// description of the first law that fails.
///
/// # Errors
/// A [`CheckFailure`] naming the law and the values.
pub fn check_laws<S: Semiring>(a: &S, b: &S, c: &S, tol: f64) -> Result<(), CheckFailure> {
    let eq = |x: &S, y: &S, law: &str| -> Result<(), CheckFailure> {
        if x.approx_eq(y, tol) {
            Ok(())
        } else {
            Err(CheckFailure::of::<S>(format!(
                "{law} fails for a={a:?}, b={b:?}, c={c:?}: {x:?} vs {y:?}"
            )))
        }
    };
    eq(&a.plus(b).plus(c), &a.plus(&b.plus(c)), "⊕ associativity")?;
    eq(&a.times(b).times(c), &a.times(&b.times(c)), "⊗ associativity")?;
    eq(&a.plus(b), &b.plus(a), "⊕ commutativity")?;
    eq(
        &a.times(&b.plus(c)),
        &a.times(b).plus(&a.times(c)),
        "left distributivity",
    )?;
    eq(
        &b.plus(c).times(a),
        &b.times(a).plus(&c.times(a)),
        "right distributivity",
    )?;
    eq(&a.plus(&S::zero()), a, "0̄ is the ⊕ identity")?;
    eq(&a.times(&S::one()), a, "1̄ is the right ⊗ identity")?;
    eq(&S::one().times(a), a, "1̄ is the left ⊗ identity")?;
    if !a.times(&S::zero()).is_zero() || !S::zero().times(a).is_zero() {
        return Err(CheckFailure::of::<S>(format!("0̄ does not annihilate {a:?}")));
    }
    if S::IDEMPOTENT {
        eq(&a.plus(a), a, "⊕ idempotence")?;
    }
    if !S::from_score(f64::NEG_INFINITY).is_zero() {
        return Err(CheckFailure::of::<S>("from_score(-inf) is not 0̄".into()));
    }
    // The row operations must agree with the pairwise definitions.
    let row = [a.clone(), b.clone()];
    let mat = [c.clone(), a.clone(), b.clone(), c.clone()];
    let mut out = [S::zero(), S::zero()];
    S::vec_mat(&row, &mat, &mut out);
    eq(&out[0], &a.times(c).plus(&b.times(b)), "vec_mat")?;
    S::mat_vec(&mat, &row, &mut out);
    eq(&out[0], &c.times(a).plus(&a.times(b)), "mat_vec")?;
    eq(
        &S::dot(&row, &[c.clone(), a.clone()]),
        &a.times(c).plus(&b.times(a)),
        "dot",
    )?;
    // Lifting a whole matrix must agree with lifting it row by row.
    let scores = [0.5, -1.25, f64::NEG_INFINITY, 2.0, 1.5, f64::NEG_INFINITY];
    let (mut whole, mut whole_scales) = (vec![S::zero(); 6], [0.0; 3]);
    S::lift_rows(&scores, 2, &mut whole, &mut whole_scales);
    for t in 0..3 {
        let mut row = [S::zero(), S::zero()];
        let scale = S::lift_row(&scores[2 * t..2 * t + 2], &mut row);
        let back = |x: &S, s: f64| x.times(&S::from_score(s));
        for y in 0..2 {
            eq(
                &back(&whole[2 * t + y], whole_scales[t]),
                &back(&row[y], scale),
                "lift_rows agrees with lift_row",
            )?;
        }
    }
    let mut scaled = [a.clone(), b.clone()];
    let s = S::normalize(&mut scaled);
    if s.is_finite() {
        let back = S::from_score(s);
        eq(
            &scaled[0].times(&back),
            a,
            "normalize keeps row = row' ⊗ from_score(scale)",
        )?;
        eq(
            &scaled[1].times(&back),
            b,
            "normalize keeps row = row' ⊗ from_score(scale)",
        )?;
    }
    Ok(())
}

/// Compares the chain sums of the forward and backward passes with brute-force
/// enumeration on `p`.
///
/// # Errors
/// A [`CheckFailure`] describing the mismatch.
pub fn check_chain_sum<S: Semiring, P: Potentials + ?Sized>(p: &P, tol: f64) -> Result<(), CheckFailure> {
    let brute = brute_force_sum::<S, P>(p);
    let mut ws = ChainWorkspace::<S>::new();
    match ws.forward(p) {
        Ok(fwd) => {
            let f = fwd.value.times(&S::from_score(fwd.log_scale));
            if !f.approx_eq(&brute, tol) {
                return Err(CheckFailure::of::<S>(format!(
                    "forward sum {f:?} ≠ brute force {brute:?}"
                )));
            }
            let bwd = ws.backward();
            let b = bwd.value.times(&S::from_score(bwd.log_scale));
            if !b.approx_eq(&brute, tol) {
                return Err(CheckFailure::of::<S>(format!(
                    "backward sum {b:?} ≠ brute force {brute:?}"
                )));
            }
            Ok(())
        }
        Err(crate::Error::NoFeasiblePath { .. }) => {
            if brute.is_zero() {
                Ok(())
            } else {
                Err(CheckFailure::of::<S>(format!(
                    "forward says no path, brute force sums to {brute:?}"
                )))
            }
        }
        Err(e) => Err(CheckFailure::of::<S>(format!("forward failed: {e}"))),
    }
}

/// Checks a semiring in one call: its laws on random values and its chain sums
/// (forward and backward) against brute force on random chains (n ≤ 5, k ≤ 4,
/// with forbidden transitions and forced labels). Scores are kept within ±3 so
/// that exp-space semirings stay exactly comparable.
///
/// # Errors
/// A [`CheckFailure`] with the failing case, minimized by proptest.
pub fn check_semiring<S: Semiring>(cases: u32, tol: f64) -> Result<(), CheckFailure> {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&(value::<S>(3.0), value::<S>(3.0), value::<S>(3.0)), |(a, b, c)| {
            check_laws(&a, &b, &c, tol).map_err(|f| TestCaseError::fail(f.detail))
        })
        .map_err(|e| CheckFailure::of::<S>(e.to_string()))?;
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&chain(5, 4, 3.0), |c| {
            check_chain_sum::<S, _>(&c, tol).map_err(|f| TestCaseError::fail(f.detail))
        })
        .map_err(|e| CheckFailure::of::<S>(e.to_string()))
}

// ---------------------------------------------------------------------------
// Semi-Markov structure.

/// Every segmentation of `p`'s input into segments of length `1..=L` with
/// every labelling, with its score (`-inf` when forbidden). Their number
/// grows like `(k·…)ⁿ`: keep inputs small (n ≤ 6).
pub fn enumerate_segmentations<P: SegmentPotentials + ?Sized>(p: &P) -> Vec<(Vec<Segment>, f64)> {
    fn extend<P: SegmentPotentials + ?Sized>(p: &P, prefix: &mut Vec<Segment>, out: &mut Vec<(Vec<Segment>, f64)>) {
        let at = prefix.last().map_or(0, |s| s.start + s.len);
        if at == p.len() {
            let score = crate::semimarkov::segmentation_score(p, prefix).unwrap_or(f64::NAN);
            out.push((prefix.clone(), score));
            return;
        }
        for len in 1..=p.max_len().min(p.len() - at) {
            for label in 0..p.num_labels() {
                prefix.push(Segment { start: at, len, label });
                extend(p, prefix, out);
                prefix.pop();
            }
        }
    }
    let mut out = Vec::new();
    extend(p, &mut Vec::new(), &mut out);
    out
}

/// ⊕ over every segmentation of the ⊗-product of its lifted scores, in order
/// (start, s₀, T, s₁, …, end): what the semi-Markov forward pass must equal.
pub fn brute_force_segment_sum<S: Semiring, P: SegmentPotentials + ?Sized>(p: &P) -> S {
    let mut total = S::zero();
    for (segments, _) in enumerate_segmentations(p) {
        let (Some(first), Some(last)) = (segments.first(), segments.last()) else {
            total = total.plus(&S::one());
            continue;
        };
        let mut prod = S::from_score(p.start(first.label));
        for (j, s) in segments.iter().enumerate() {
            if j > 0 {
                prod = prod.times(&S::from_score(p.transition(segments[j - 1].label, s.label)));
            }
            prod = prod.times(&S::from_score(p.segment(s.start, s.len, s.label)));
        }
        total = total.plus(&prod.times(&S::from_score(p.end(last.label))));
    }
    total
}

/// Random semi-Markov potentials: `1 ≤ n ≤ max_n`, `1 ≤ k ≤ max_k`,
/// `1 ≤ L ≤ max_len`, segment scores in ±`range` with about 15% forbidden,
/// about 15% forbidden transitions and 10% forbidden start and end labels.
pub fn semi_markov(max_n: usize, max_k: usize, max_len: usize, range: f64) -> impl Strategy<Value = DenseSemiMarkov> {
    (1..=max_n, 1..=max_k, 1..=max_len).prop_flat_map(move |(n, k, l)| {
        (
            proptest::collection::vec(score(range, 0.15), n * l * k),
            proptest::collection::vec(score(range, 0.15), k * k),
            proptest::collection::vec(score(range, 0.1), k),
            proptest::collection::vec(score(range, 0.1), k),
        )
            .prop_map(move |(seg, tr, st, en)| {
                DenseSemiMarkov::from_fn(n, k, l, |i, d, y| seg[(i * l + d - 1) * k + y])
                    .and_then(|p| p.with_transitions(&tr))
                    .and_then(|p| p.with_start(&st))
                    .and_then(|p| p.with_end(&en))
                    .expect("shapes are consistent by construction")
            })
    })
}

/// Compares the semi-Markov forward and backward sums in semiring `S` with
/// brute-force enumeration on `p`.
///
/// # Errors
/// A [`CheckFailure`] describing the mismatch.
pub fn check_segment_sum<S: Semiring, P: SegmentPotentials + ?Sized>(p: &P, tol: f64) -> Result<(), CheckFailure> {
    let brute = brute_force_segment_sum::<S, P>(p);
    let mut ws = SemiMarkovWorkspace::<S>::new();
    match ws.forward(p) {
        Ok(fwd) => {
            let f = fwd.value.times(&S::from_log_scale(fwd.log_scale));
            if !f.approx_eq(&brute, tol) {
                return Err(CheckFailure::of::<S>(format!(
                    "semi-Markov forward sum {f:?} ≠ brute force {brute:?}"
                )));
            }
            let bwd = ws.backward();
            let b = bwd.value.times(&S::from_log_scale(bwd.log_scale));
            if !b.approx_eq(&brute, tol) {
                return Err(CheckFailure::of::<S>(format!(
                    "semi-Markov backward sum {b:?} ≠ brute force {brute:?}"
                )));
            }
            Ok(())
        }
        Err(crate::Error::NoFeasiblePath { .. }) if brute.is_zero() => Ok(()),
        Err(e) => Err(CheckFailure::of::<S>(format!(
            "semi-Markov forward failed ({e}), brute force sums to {brute:?}"
        ))),
    }
}
