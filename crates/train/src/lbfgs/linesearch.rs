//! CRFsuite's two backtracking line searches for L-BFGS (`linesearch =
//! Backtracking` and `StrongBacktracking`), with libLBFGS's semantics, and
//! the backtracking OWL-QN uses under them.
//!
//! **Why.** The More–Thuente search (the default, argmin's) interpolates its
//! trial steps; backtracking only halves or stretches the step, so it is
//! cheaper per trial and more predictable, at the price of more trials on
//! badly scaled problems. CRFsuite users pick it by name, and sklearn-crfsuite
//! and python-crfsuite pass the name through.
//!
//! **The rules** (libLBFGS 1.10, the library CRFsuite links): from step `a`
//! (1/‖d‖ on a run's first search when ‖d‖ > 1, else 1, as for
//! More–Thuente here), each trial evaluates `x = x₀ + a·d`. A trial that
//! misses the sufficient decrease (Armijo) condition
//! `f(x) ≤ f(x₀) + ftol·a·g₀·d` (ftol = 1e-4) halves the step (dec = 0.5).
//! Otherwise:
//! - `Backtracking` (libLBFGS's `LBFGS_LINESEARCH_BACKTRACKING`, the regular
//!   Wolfe conditions, as CRFsuite maps the name): accepts when
//!   `g(x)·d ≥ wolfe·g₀·d` (wolfe = 0.9), else stretches the step by
//!   inc = 2.1;
//! - `StrongBacktracking` (`…_STRONG_WOLFE`): stretches as above, and
//!   accepts only when also `g(x)·d ≤ −wolfe·g₀·d`, halving the step when
//!   the slope turned too steeply upward.
//!
//! A direction that does not descend (`g₀·d > 0`), a step below 1e-20 or
//! above 1e20 without an accepted trial, and `max_linesearch` trials (the
//! trainer's trial budget refuses the next one) end the search with an
//! error, which ends the run with [`crate::Termination::LineSearchFailed`]
//! keeping the best weights, as CRFsuite does.
//!
//! **OWL-QN** (`c1 > 0`): CRFsuite switches every L1 run to
//! `LBFGS_LINESEARCH_BACKTRACKING`, which libLBFGS then runs as its
//! orthant-wise backtracking: each trial point is projected onto the orthant
//! chosen at `x₀` (the sign of `x₀`, or of `−pseudo-gradient` where `x₀ = 0`),
//! the L1 term is added to the objective, and the only test is sufficient
//! decrease measured along the projected move,
//! `F(x) ≤ F(x₀) + ftol·(x − x₀)·pg₀`; a failed trial halves the step. Here
//! both backtracking names take that search under `c1 > 0`; `MoreThuente`
//! keeps More–Thuente on the orthant-projected problem (this crate's default,
//! where CRFsuite would backtrack).

use crate::params::LineSearch;
use crate::parvec::{map2, ParVec};
use argmin::core::{CostFunction, Error, Gradient, IterState, Problem, State};
use argmin_math::ArgminDot;

use super::solver::{projected, St};

/// Sufficient decrease coefficient (libLBFGS's `ftol`).
const FTOL: f64 = 1e-4;
/// Curvature coefficient of the Wolfe conditions (libLBFGS's `wolfe`).
const WOLFE: f64 = 0.9;
/// Factor that shrinks the step (libLBFGS's `dec`).
const DEC: f64 = 0.5;
/// Factor that stretches the step (libLBFGS's `inc`).
const INC: f64 = 2.1;
/// Smallest step tried (libLBFGS's `min_step`).
const MIN_STEP: f64 = 1e-20;
/// Largest step tried (libLBFGS's `max_step`).
const MAX_STEP: f64 = 1e20;

/// Why a backtracking search found no step.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BacktrackFailure {
    /// The search direction points uphill.
    #[error("the search direction does not descend (slope {0:e} > 0)")]
    Uphill(f64),
    /// The step shrank below [`MIN_STEP`].
    #[error("the step fell below {MIN_STEP:e} without meeting the line search's conditions")]
    MinimumStep,
    /// The step grew beyond [`MAX_STEP`].
    #[error("the step grew beyond {MAX_STEP:e} without meeting the line search's conditions")]
    MaximumStep,
    /// A trial reached a cost of −∞.
    #[error("the line search reached a cost of -inf")]
    NegativeInfinity,
}

/// What a trial decided.
enum Verdict {
    Accept,
    Shrink,
    Stretch,
}

/// Searches along `d` from `x0` (cost `f0`, gradient or, under OWL-QN,
/// pseudo-gradient `g0`) with backtracking `kind`, starting at step `step`;
/// `orthant` is OWL-QN's orthant (then the objective `problem` adds the L1
/// term and projects, and the orthant-wise rule applies whatever `kind`).
///
/// Returns the accepted point with its cost, and, without OWL-QN, the
/// objective's gradient there. Errors: [`BacktrackFailure`], or the
/// objective's (including the trainer's refusal of a trial beyond
/// `max_linesearch`).
///
/// # Panics
/// When `kind` is [`LineSearch::MoreThuente`] (argmin's search serves it).
#[allow(clippy::too_many_arguments)]
pub(crate) fn backtrack<P>(
    kind: LineSearch,
    problem: &mut Problem<P>,
    x0: &ParVec,
    f0: f64,
    g0: &ParVec,
    d: &ParVec,
    mut step: f64,
    orthant: Option<&ParVec>,
) -> Result<St, Error>
where
    P: CostFunction<Param = ParVec, Output = f64> + Gradient<Param = ParVec, Gradient = ParVec>,
{
    assert!(kind != LineSearch::MoreThuente, "More-Thuente is argmin's search");
    let slope0 = g0.dot(d);
    if orthant.is_none() && slope0 > 0.0 {
        return Err(BacktrackFailure::Uphill(slope0).into());
    }
    loop {
        let mut x = map2(x0, d, |a, b| a + step * b);
        if let Some(xi) = orthant {
            x = projected(&x, xi);
        }
        let f = problem.cost(&x)?;
        if f == f64::NEG_INFINITY {
            return Err(BacktrackFailure::NegativeInfinity.into());
        }
        let mut gradient = None;
        let verdict = match orthant {
            Some(_) => {
                // Sufficient decrease along the projected move.
                let moved = map2(&x, x0, |a, b| a - b).dot(g0);
                if f <= f0 + FTOL * moved {
                    Verdict::Accept
                } else {
                    Verdict::Shrink
                }
            }
            // A NaN cost shrinks the step too (libLBFGS's `f > …` would accept it).
            None if f.is_nan() || f > f0 + step * FTOL * slope0 => Verdict::Shrink,
            None => {
                let g = problem.gradient(&x)?;
                let slope = g.dot(d);
                gradient = Some(g);
                if slope < WOLFE * slope0 {
                    Verdict::Stretch
                } else if kind == LineSearch::Backtracking || slope <= -WOLFE * slope0 {
                    Verdict::Accept
                } else {
                    Verdict::Shrink
                }
            }
        };
        match verdict {
            Verdict::Accept => {
                let state = IterState::new().param(x).cost(f);
                return Ok(match gradient {
                    Some(g) => state.gradient(g),
                    None => state,
                });
            }
            _ if step < MIN_STEP => return Err(BacktrackFailure::MinimumStep.into()),
            _ if step > MAX_STEP => return Err(BacktrackFailure::MaximumStep.into()),
            Verdict::Shrink => step *= DEC,
            Verdict::Stretch => step *= INC,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `f(x) = Σ cᵢ·(xᵢ − 1)⁴ + (xᵢ − 1)²`: convex, minimum 0 at all ones.
    struct Quartic;
    impl CostFunction for Quartic {
        type Param = ParVec;
        type Output = f64;
        fn cost(&self, x: &ParVec) -> Result<f64, Error> {
            Ok(x.iter()
                .enumerate()
                .map(|(i, &v)| (i as f64 + 1.0) * (v - 1.0).powi(4) + (v - 1.0).powi(2))
                .sum())
        }
    }
    impl Gradient for Quartic {
        type Param = ParVec;
        type Gradient = ParVec;
        fn gradient(&self, x: &ParVec) -> Result<ParVec, Error> {
            Ok(ParVec(
                x.iter()
                    .enumerate()
                    .map(|(i, &v)| 4.0 * (i as f64 + 1.0) * (v - 1.0).powi(3) + 2.0 * (v - 1.0))
                    .collect(),
            ))
        }
    }

    fn start() -> (ParVec, f64, ParVec) {
        let x0 = ParVec(vec![-1.0, 3.0, 0.5]);
        let f0 = Quartic.cost(&x0).unwrap();
        let g0 = Quartic.gradient(&x0).unwrap();
        (x0, f0, g0)
    }

    /// The accepted step meets the conditions each kind promises.
    #[test]
    fn accepted_steps_meet_their_conditions() {
        let (x0, f0, g0) = start();
        let d = ParVec(g0.iter().map(|g| -g).collect());
        let slope0 = g0.dot(&d);
        for (kind, first) in [
            (LineSearch::Backtracking, 1.0),
            (LineSearch::Backtracking, 1e-6),
            (LineSearch::StrongBacktracking, 1.0),
            (LineSearch::StrongBacktracking, 1e-6),
        ] {
            let mut p = Problem::new(Quartic);
            let found = backtrack(kind, &mut p, &x0, f0, &g0, &d, first, None).unwrap();
            let x = found.get_param().unwrap();
            let f = found.get_cost();
            let g = found.get_gradient().expect("the gradient at the accepted point");
            let step = (x[0] - x0[0]) / d[0];
            assert!(
                f <= f0 + FTOL * step * slope0,
                "{kind:?} from {first}: no sufficient decrease"
            );
            let slope = g.dot(&d);
            assert!(slope >= WOLFE * slope0, "{kind:?} from {first}: curvature condition");
            if kind == LineSearch::StrongBacktracking {
                assert!(slope.abs() <= -WOLFE * slope0, "{kind:?} from {first}: strong Wolfe");
            }
            // Steps are the first one times powers of 0.5 and 2.1.
            assert!(step > 0.0);
        }
    }

    /// An uphill direction, and a direction along which no step decreases
    /// enough, end the search with an error, not a point.
    #[test]
    fn failures_are_errors() {
        let (x0, f0, g0) = start();
        let mut p = Problem::new(Quartic);
        let err = backtrack(LineSearch::Backtracking, &mut p, &x0, f0, &g0, &g0, 1.0, None).unwrap_err();
        assert!(matches!(
            err.downcast_ref::<BacktrackFailure>(),
            Some(BacktrackFailure::Uphill(_))
        ));
        // A claimed slope far steeper than the real one: no step gives the
        // decrease it promises, and the step shrinks below the minimum.
        let steep = ParVec(g0.iter().map(|g| g * 1e12).collect());
        let d = ParVec(g0.iter().map(|g| -g).collect());
        let err = backtrack(LineSearch::StrongBacktracking, &mut p, &x0, f0, &steep, &d, 1.0, None).unwrap_err();
        assert!(
            matches!(
                err.downcast_ref::<BacktrackFailure>(),
                Some(BacktrackFailure::MinimumStep)
            ),
            "{err}"
        );
    }

    /// Under OWL-QN the trial points stay in the orthant and the accepted
    /// one decreases the objective enough along the projected move.
    #[test]
    fn orthant_wise_search_projects_and_decreases() {
        let (x0, f0, g0) = start();
        let d = ParVec(g0.iter().map(|g| -g).collect());
        // The orthant of x0 (no zeros): its signs.
        let xi = ParVec(x0.iter().map(|v| v.signum()).collect());
        let mut p = Problem::new(Quartic);
        let found = backtrack(LineSearch::StrongBacktracking, &mut p, &x0, f0, &g0, &d, 1.0, Some(&xi)).unwrap();
        let x = found.get_param().unwrap();
        for (v, s) in x.iter().zip(xi.iter()) {
            assert!(*v == 0.0 || v.signum() == *s, "{v} left orthant {s}");
        }
        let moved: f64 = x
            .iter()
            .zip(x0.iter())
            .zip(g0.iter())
            .map(|((a, b), g)| (a - b) * g)
            .sum();
        assert!(found.get_cost() <= f0 + FTOL * moved);
        assert!(found.get_cost() < f0);
    }
}
