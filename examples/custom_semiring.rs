//! Defining a semiring of your own: min-plus ("shortest path").
//!
//! The chain dynamic program never looks inside semiring values, so a new
//! question about all label paths only needs a new semiring. Here the question
//! is "what is the cheapest path, if a path's cost is minus its score?": the
//! tropical min-plus semiring, ⊕ = min, ⊗ = +, 0̄ = +∞, 1̄ = 0. The example
//! implements the trait from scratch (including `normalize`, so that long
//! chains keep their costs near zero), runs the chain sum with it, compares the
//! answer with Viterbi (cheapest = −best score), and checks the semiring laws
//! and its chain sums against brute-force enumeration in one line with
//! `chaincrf::core::testing::check_semiring`.
//!
//! Run: `cargo run --release --example custom_semiring`

use chaincrf::core::chain::{self, ChainWorkspace};
use chaincrf::core::testing::check_semiring;
use chaincrf::core::{DenseChain, Semiring};
use nalgebra::dmatrix;

/// A path cost: `from_score(s) = −s`; the chain sum is the cheapest path's cost.
#[derive(Clone, Copy, Debug, PartialEq)]
struct MinPlus(f64);

impl Semiring for MinPlus {
    const NAME: &'static str = "min-plus";
    // min(a, a) = a: the semiring picks a path rather than summing over paths.
    const IDEMPOTENT: bool = true;

    fn zero() -> Self {
        MinPlus(f64::INFINITY) // no path costs +∞
    }
    fn one() -> Self {
        MinPlus(0.0) // the empty path costs nothing
    }
    fn plus(&self, other: &Self) -> Self {
        MinPlus(self.0.min(other.0))
    }
    fn times(&self, other: &Self) -> Self {
        MinPlus(self.0 + other.0)
    }
    fn from_score(score: f64) -> Self {
        MinPlus(-score) // −(−∞) = +∞ = 0̄: forbidden stays forbidden
    }
    fn is_zero(&self) -> bool {
        self.0 == f64::INFINITY
    }
    fn approx_eq(&self, other: &Self, tol: f64) -> bool {
        self.0 == other.0 || (self.0 - other.0).abs() <= tol * (1.0 + self.0.abs().max(other.0.abs()))
    }
    /// Subtract the row's cheapest cost. The trait's contract is
    /// `old row = new row ⊗ from_score(returned)`; with `from_score(s) = −s`
    /// that means returning `−min`, and `−∞` when the row is all 0̄.
    fn normalize(row: &mut [Self]) -> f64 {
        let min = row.iter().fold(f64::INFINITY, |m, x| m.min(x.0));
        if min == f64::INFINITY {
            return f64::NEG_INFINITY;
        }
        for x in row.iter_mut() {
            x.0 -= min;
        }
        -min
    }
    // `dot`, `vec_mat`, `mat_vec` and `lift_row` keep their generic default
    // bodies; a semiring meant for speed would override `vec_mat` with a
    // contiguous, vectorizable loop as `MaxPlus` does.
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let emissions = dmatrix![
        0.5, -1.0, 2.0;
        1.5, 0.0, -0.5;
        -0.2, 1.1, 0.3;
        0.9, 0.4, -1.2
    ];
    let transitions = dmatrix![
        0.2, -0.4, 0.0;
        0.1, 0.3, -0.8;
        -0.5, 0.6, 0.1
    ];
    let mut p = DenseChain::new(emissions, transitions)?;
    p.forbid_transition(0, 2);

    // The generic forward pass in the new semiring: value ⊗ from_score(scale).
    let sum = ChainWorkspace::<MinPlus>::new().forward(&p)?;
    let cheapest = sum.value.times(&MinPlus::from_score(sum.log_scale)).0;
    let best = chain::viterbi(&p)?;
    println!("cheapest path cost (min-plus chain sum) = {cheapest:.6}");
    println!(
        "best path score (Viterbi)               = {:.6}  path {:?}",
        best.score, best.labels
    );
    assert!((cheapest + best.score).abs() < 1e-12, "min-plus must equal −Viterbi");

    // The semiring laws on random values, and forward/backward chain sums
    // against brute-force enumeration on random chains with forbidden entries.
    check_semiring::<MinPlus>(256, 1e-9)?;
    println!("check_semiring::<MinPlus>: laws and chain sums hold on 256 random cases each");
    Ok(())
}
