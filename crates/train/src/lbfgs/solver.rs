//! One L-BFGS iteration (OWL-QN with an L1 coefficient), computing exactly
//! what argmin 0.11's `LBFGS` computes, in fewer passes over the vectors.
//!
//! **Why not argmin's solver.** Every `argmin-math` operation reads its
//! operands and returns a new vector, and argmin's two-loop recursion
//! recomputes `yᵢ·sᵢ` for every stored pair at every iteration: about sixty
//! passes over the trainable weights per iteration, a third of an all-pairs
//! PKU iteration (6.4 million weights, 51 MB per vector) spent moving memory.
//! Here each step of the recursion is one pass that updates the work vector
//! in place and computes, chunk by chunk, the dot product the next step needs;
//! `yᵢ·sᵢ` and `yᵢ·yᵢ` are computed once, when the pair is stored; the new
//! direction is written in place by the last step, which also computes the
//! line search's first slope `g·d`; `s`, `y` and their dot products are one
//! pass.
//!
//! **The line search's vectors.** argmin's More–Thuente search copies its
//! start and start gradient, forms each trial point as a new vector, copies
//! each trial gradient, and asks for cost and gradient in two calls, which
//! the objective answered from a cache it compared and copied 51 MB vectors
//! into. Its decisions depend on the vectors only through `f(x₀ + α·d)` and
//! the slopes `d·∇f`, so here it runs, argmin's code unchanged, on stand-ins
//! ([`Point`], [`Slope`]): [`Line`] forms `x₀ + α·d` in one parallel pass,
//! evaluates the objective once per trial (no cache), and computes `d·∇f` in
//! one more; the search's last trial is the new point.
//!
//! **Same results.** Every element is computed with argmin's operations in
//! argmin's order (no fused multiply-add: Rust never contracts), and every
//! dot product adds the same terms in the same grouping as [`ParVec`]'s:
//! each [`CHUNK`](crate::parvec::CHUNK) of terms in order, then the chunks'
//! sums in order ([`update_by_chunk`]). Products commute exactly, so `yᵢ·sᵢ`
//! and `sᵢ·yᵢ` are the same number. The line search is argmin's
//! More–Thuente search itself, driven as argmin's executor drives it, given
//! the numbers argmin's vector operations give it (or, when configured, a
//! backtracking search of [`super::linesearch`]). So a run
//! takes argmin's path bit for bit (the tests compare whole trajectories,
//! with and without L1), on any number of threads.
//!
//! **Same checkpoints.** [`Lbfgs`] serializes field for field as argmin's
//! `LBFGS` over the same line search, so a state saved by a build that used
//! argmin's solver resumes here (a test decodes one); the cached dot products
//! are not saved but recomputed from the pairs, to the same bits.

use super::linesearch;
use super::StopNorms;
use crate::params::LineSearch;
use crate::parvec::{both, chunk_dot, dot, map2, map3, sums_by_chunk, update2_by_chunk, update_by_chunk, ParVec};
use argmin::core::{
    ArgminError, CostFunction, Error, Gradient, IterState, LineSearch as _, Problem, Solver, State, TerminationReason,
    TerminationStatus, KV,
};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin_math::{ArgminDot, ArgminL1Norm, ArgminL2Norm, ArgminScaledAdd};
use std::cell::RefCell;
use std::collections::VecDeque;

/// The optimizer's iteration state (argmin's, so checkpoints keep their form).
pub(crate) type St = IterState<ParVec, ParVec, (), (), (), f64>;

/// The line search: argmin's More–Thuente search, its first step scaled.
pub(crate) type Search = super::FirstStepScaled<MoreThuenteLineSearch<ParVec, ParVec, f64>>;

/// L-BFGS with `m` correction pairs; OWL-QN when `l1_coeff` is set. The
/// serialized fields are argmin's `LBFGS`'s, in its order (see the module
/// docs).
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Lbfgs {
    linesearch: Search,
    m: usize,
    /// `sᵢ = xᵢ₊₁ − xᵢ`, oldest first.
    s: VecDeque<ParVec>,
    /// `yᵢ = ∇f(xᵢ₊₁) − ∇f(xᵢ)` (the plain gradients under OWL-QN), oldest first.
    y: VecDeque<ParVec>,
    tol_grad: f64,
    tol_cost: f64,
    l1_coeff: Option<f64>,
    /// Under OWL-QN, the plain gradient at the current point (`y` needs it).
    l1_prev_unreg_grad: Option<ParVec>,
    /// `(yᵢ·sᵢ, yᵢ·yᵢ)` of each pair, computed when it is stored (recomputed
    /// after loading a saved state).
    #[serde(skip)]
    curvature: VecDeque<(f64, f64)>,
    /// The two-loop recursion's work vector, kept between iterations.
    #[serde(skip)]
    work: Vec<f64>,
    /// Which line search runs (configuration, not saved).
    #[serde(skip)]
    line_search: LineSearch,
    /// The stopping test's norms of the last iteration's point and gradient.
    #[serde(skip)]
    stop_norms: Option<StopNorms>,
}

impl Lbfgs {
    /// A fresh solver: `m` pairs, OWL-QN when `c1 > 0`; argmin's gradient and
    /// cost tolerances set to 0 (the caller applies CRFsuite's stopping rules).
    pub(crate) fn new(linesearch: Search, m: usize, c1: f64) -> Self {
        Lbfgs {
            linesearch,
            m,
            s: VecDeque::with_capacity(m),
            y: VecDeque::with_capacity(m),
            tol_grad: 0.0,
            tol_cost: 0.0,
            l1_coeff: (c1 > 0.0).then_some(c1),
            l1_prev_unreg_grad: None,
            curvature: VecDeque::with_capacity(m),
            work: Vec::new(),
            line_search: LineSearch::MoreThuente,
            stop_norms: None,
        }
    }

    /// The same solver searching its lines with `kind`.
    pub(crate) fn with_line_search(mut self, kind: LineSearch) -> Self {
        self.line_search = kind;
        self
    }

    /// The stopping test's norms of the point and gradient the last
    /// iteration ended on, when it computed them.
    pub(crate) fn take_stop_norms(&mut self) -> Option<StopNorms> {
        self.stop_norms.take()
    }

    /// Checks a decoded solver against the problem's dimension `dim` and
    /// makes it ready to continue: a state saved by argmin's solver kept the
    /// last search direction in its line search, which is never read again
    /// (each iteration sets a new one) and is dropped here.
    pub(crate) fn restored(mut self, dim: usize) -> Result<Self, String> {
        let fits = |v: &ParVec| v.len() == dim;
        if self.s.len() != self.y.len()
            || !(self.s.iter().all(fits) && self.y.iter().all(fits))
            || !self.l1_prev_unreg_grad.as_ref().is_none_or(fits)
        {
            return Err("is damaged: its correction pairs do not have the trainable weights' length".into());
        }
        self.linesearch.inner = MoreThuenteLineSearch::new();
        Ok(self)
    }

    /// `(yᵢ·sᵢ, yᵢ·yᵢ)` of every pair, computing what a loaded state lacks.
    fn curvature(&mut self) -> &VecDeque<(f64, f64)> {
        if self.curvature.len() != self.s.len() {
            self.curvature = self.s.iter().zip(&self.y).map(|(s, y)| pair_dots(s, y)).collect();
        }
        &self.curvature
    }

    /// The search direction from (pseudo-)gradient `g` by the two-loop
    /// recursion, finished by `finish(rᵢ, gᵢ)` (the negation, and OWL-QN's
    /// orthant constraint), left in [`Lbfgs::work`]: `2m + 1` passes for `m`
    /// pairs. Returns `g·d`, computed in the last pass with the grouping of
    /// argmin's `init_grad.dot(direction)` (the line search's first slope).
    fn direction(&mut self, g: &[f64], finish: impl Fn(f64, f64) -> f64 + Sync + Send) -> f64 {
        let n = g.len();
        let m = self.s.len();
        let curvature = self.curvature().clone();
        let gamma = match curvature.back() {
            Some(&(ys, yy)) => ys / yy,
            None => 1.0,
        };
        let work = &mut self.work;
        work.resize(n, 0.0);
        if m == 0 {
            let [gd] = update_by_chunk(work, |o, d| {
                let g = &g[o..o + d.len()];
                for (d, &gi) in d.iter_mut().zip(g) {
                    *d = finish(gi * gamma, gi);
                }
                [chunk_dot(g, d)]
            });
            return gd;
        }
        let rho: Vec<f64> = curvature.iter().map(|&(ys, _)| 1.0 / ys).collect();
        let (s, y) = (&self.s, &self.y);
        // First loop, newest pair to oldest: q ← q − αᵢ·yᵢ with αᵢ = ρᵢ·(sᵢ·q).
        let [mut sq] = update_by_chunk(work, |o, q| {
            q.copy_from_slice(&g[o..o + q.len()]);
            [chunk_dot(&s[m - 1][o..o + q.len()], q)]
        });
        let mut alpha = vec![0.0; m];
        for i in (1..m).rev() {
            alpha[i] = sq * rho[i];
            let (a, yi, next) = (alpha[i], &y[i], &s[i - 1]);
            [sq] = update_by_chunk(work, |o, q| {
                for (q, &y) in q.iter_mut().zip(&yi[o..]) {
                    *q -= y * a;
                }
                [chunk_dot(&next[o..o + q.len()], q)]
            });
        }
        alpha[0] = sq * rho[0];
        // The last step of the first loop, then r = γ·q, and y₀·r.
        let (a, y0) = (alpha[0], &y[0]);
        let [mut yr] = update_by_chunk(work, |o, q| {
            for (q, &y) in q.iter_mut().zip(&y0[o..]) {
                *q = (*q - y * a) * gamma;
            }
            [chunk_dot(&y0[o..o + q.len()], q)]
        });
        // Second loop, oldest pair to newest: r ← r + (αᵢ − βᵢ)·sᵢ with βᵢ = ρᵢ·(yᵢ·r).
        for i in 0..m - 1 {
            let c = alpha[i] - yr * rho[i];
            let (si, next) = (&s[i], &y[i + 1]);
            [yr] = update_by_chunk(work, |o, r| {
                for (r, &s) in r.iter_mut().zip(&si[o..]) {
                    *r += s * c;
                }
                [chunk_dot(&next[o..o + r.len()], r)]
            });
        }
        // The last step, finished into the direction in place, and g·d.
        let c = alpha[m - 1] - yr * rho[m - 1];
        let last = &s[m - 1];
        let [gd] = update_by_chunk(work, |o, r| {
            let g = &g[o..o + r.len()];
            for ((r, &s), &gi) in r.iter_mut().zip(&last[o..]).zip(g) {
                *r = finish(*r + s * c, gi);
            }
            [chunk_dot(g, r)]
        });
        gd
    }

    /// Stores the pair `(s, y)` whose `(y·s, y·y)` are `dots`.
    fn push_pair(&mut self, s: ParVec, y: ParVec, dots: (f64, f64)) {
        // A loaded state's cache is filled before the pair joins (see `curvature`).
        self.curvature();
        self.s.push_back(s);
        self.y.push_back(y);
        self.curvature.push_back(dots);
    }

    fn pop_pair(&mut self) {
        self.s.pop_front();
        self.y.pop_front();
        self.curvature.pop_front();
    }
}

/// `(y·s, y·y)` in one pass, grouped as [`ParVec`]'s dot products.
fn pair_dots(s: &[f64], y: &[f64]) -> (f64, f64) {
    let [ys, yy] = sums_by_chunk(s.len(), |r| {
        [chunk_dot(&y[r.clone()], &s[r.clone()]), chunk_dot(&y[r.clone()], &y[r])]
    });
    (ys, yy)
}

/// One element of OWL-QN's pseudo-gradient at weight `p` with gradient `g`
/// and L1 coefficient `c1` (argmin's `calculate_pseudo_gradient`, element by
/// element): the gradient of `f + c1·|w|₁` where it exists, otherwise the
/// one-sided derivative of least magnitude, or 0.
fn pseudo_gradient(c1: f64, p: f64, g: f64) -> f64 {
    let plus = (p + f64::MIN_POSITIVE).signum() * c1;
    let minus = (p - f64::MIN_POSITIVE).signum() * c1;
    let right = g + minus;
    let left = g + plus;
    (if right > 0.0 { right } else { 0.0 }) + (if left < 0.0 { left } else { 0.0 })
}

fn pseudo_gradient_of(c1: f64, p: &[f64], g: &[f64]) -> ParVec {
    map2(p, g, |p, g| pseudo_gradient(c1, p, g))
}

/// OWL-QN's orthant of weight `p` with pseudo-gradient `pg` (argmin's `xi`):
/// the sign of `p`, or of `−pg` where `p` is 0.
fn orthant_sign(p: f64, pg: f64) -> f64 {
    let up = (p - f64::MIN_POSITIVE).signum();
    let down = (p + f64::MIN_POSITIVE).signum();
    let sign = (if up > 0.0 { up } else { 0.0 }) + (if down < 0.0 { down } else { 0.0 });
    sign + (sign * sign - 1.0) * pg
}

/// `p`, or 0 where it left orthant `xi`.
fn project(p: f64, xi: f64) -> f64 {
    let keep = (p * xi).signum();
    (if keep > 0.0 { keep } else { 0.0 }) * p
}

pub(super) fn projected(p: &[f64], xi: &[f64]) -> ParVec {
    map2(p, xi, project)
}

/// What the line search asks of the problem: the cost and the gradient at a
/// point, computed together, once (no cache: each trial point is new).
pub(crate) trait Evaluate {
    /// `(f(w), ∇f(w))`.
    fn evaluate(&self, w: &[f64]) -> Result<(f64, ParVec), Error>;
}

/// A point of the line search, as argmin's More–Thuente search holds it:
/// not a vector but which point it is. The search's own vector arithmetic
/// is `x₀ + α·d` (its trial points) and two dot products with `d`; here
/// [`Line`] does that work in its passes, and the search keeps its scalar
/// logic, argmin's code unchanged, on these stand-ins.
#[derive(Clone, Debug)]
enum Point {
    /// The search's starting point `x₀`.
    Start,
    /// `x₀ + α·d`.
    Trial(f64),
    /// Anything else (the search never forms one).
    Other,
}

impl Point {
    fn same(&self, other: &Point) -> bool {
        match (self, other) {
            (Point::Start, Point::Start) => true,
            (Point::Trial(a), Point::Trial(b)) => a.to_bits() == b.to_bits(),
            _ => false,
        }
    }
}

/// A vector of the line search's, as it holds it: the direction `d`, or a
/// gradient with its dot product with `d` (computed when it was).
#[derive(Clone, Debug)]
enum Slope {
    Direction,
    Gradient(f64),
}

impl ArgminScaledAdd<Slope, f64, Point> for Point {
    fn scaled_add(&self, factor: &f64, vec: &Slope) -> Point {
        match (self, vec) {
            (Point::Start, Slope::Direction) => Point::Trial(*factor),
            _ => Point::Other,
        }
    }
}

impl ArgminDot<Slope, f64> for Slope {
    fn dot(&self, other: &Slope) -> f64 {
        match (self, other) {
            (Slope::Direction, Slope::Gradient(v)) | (Slope::Gradient(v), Slope::Direction) => *v,
            // Not asked by the search; NaN fails its tests rather than steering it.
            _ => f64::NAN,
        }
    }
}

impl ArgminDot<Slope, f64> for Point {
    fn dot(&self, _: &Slope) -> f64 {
        // Required by the search's bounds, never asked.
        f64::NAN
    }
}

/// argmin's More–Thuente search over the stand-ins.
type MoreThuente = MoreThuenteLineSearch<Point, Slope, f64>;

/// The line search's iteration state.
type LineState = IterState<Point, Slope, (), (), (), f64>;

/// The line search's last trial.
struct Trial {
    at: Point,
    /// The trial point (projected onto the orthant under OWL-QN).
    point: ParVec,
    /// The objective's gradient there.
    gradient: ParVec,
    /// Under OWL-QN, the pseudo-gradient there.
    pseudo: Option<ParVec>,
    /// `d·g` with `g` the (pseudo-)gradient.
    slope: f64,
}

/// The problem the line search sees: the objective along `x₀ + α·d`, under
/// OWL-QN plus the L1 term at points projected onto the orthant `xi`, with
/// the pseudo-gradient. Each trial is one pass forming the point, one
/// evaluation, and one pass for `d·g`: where argmin's vectors made the
/// search copy its start and every trial gradient and the objective
/// compare and copy every trial point and gradient for its cache.
struct Line<'a, O> {
    problem: &'a O,
    start: &'a [f64],
    direction: &'a [f64],
    orthant: Option<(f64, &'a [f64])>,
    last: RefCell<Option<Trial>>,
}

impl<O: Evaluate> CostFunction for Line<'_, O> {
    type Param = Point;
    type Output = f64;
    fn cost(&self, at: &Point) -> Result<f64, Error> {
        // The previous trial's buffers serve this one (see `parvec`).
        drop(self.last.take());
        let (x, d) = (self.start, self.direction);
        // argmin's `x₀.scaled_add(α, d)` (`x₀ + α·d` element by element),
        // then its projection.
        let point = match (at, self.orthant) {
            (Point::Trial(a), None) => map2(x, d, |x, d| x + a * d),
            (Point::Trial(a), Some((_, xi))) => map3(x, d, xi, |x, d, s| project(x + a * d, s)),
            (Point::Start, None) => ParVec::copy_of(x),
            (Point::Start, Some((_, xi))) => projected(x, xi),
            (Point::Other, _) => {
                return Err(ArgminError::PotentialBug {
                    text: "the line search asked for a point off its line".into(),
                }
                .into())
            }
        };
        let (cost, gradient) = self.problem.evaluate(&point)?;
        let (cost, pseudo) = match self.orthant {
            Some((c1, _)) => (
                cost + c1 * point.l1_norm(),
                Some(pseudo_gradient_of(c1, &point, &gradient)),
            ),
            None => (cost, None),
        };
        let slope = dot(d, pseudo.as_ref().unwrap_or(&gradient));
        *self.last.borrow_mut() = Some(Trial {
            at: at.clone(),
            point,
            gradient,
            pseudo,
            slope,
        });
        Ok(cost)
    }
}

impl<O: Evaluate> Gradient for Line<'_, O> {
    type Param = Point;
    type Gradient = Slope;
    fn gradient(&self, at: &Point) -> Result<Slope, Error> {
        // The search asks for the gradient right after the cost, at the same point.
        match &*self.last.borrow() {
            Some(t) if t.at.same(at) => Ok(Slope::Gradient(t.slope)),
            _ => Err(ArgminError::PotentialBug {
                text: "the line search asked for a gradient before the cost".into(),
            }
            .into()),
        }
    }
}

/// The problem a backtracking search sees (it forms its trial points
/// itself): the objective, or under OWL-QN the objective plus the L1 term at
/// points projected onto the orthant `xi`, with the pseudo-gradient.
struct Projected<'a, O> {
    problem: &'a O,
    orthant: Option<(f64, &'a ParVec)>,
}

impl<O: CostFunction<Param = ParVec, Output = f64>> CostFunction for Projected<'_, O> {
    type Param = ParVec;
    type Output = f64;
    fn cost(&self, param: &ParVec) -> Result<f64, Error> {
        match self.orthant {
            Some((c1, xi)) => {
                let p = projected(param, xi);
                let cost = self.problem.cost(&p)?;
                Ok(cost + c1 * p.l1_norm())
            }
            None => self.problem.cost(param),
        }
    }
}

impl<O: Gradient<Param = ParVec, Gradient = ParVec>> Gradient for Projected<'_, O> {
    type Param = ParVec;
    type Gradient = ParVec;
    fn gradient(&self, param: &ParVec) -> Result<ParVec, Error> {
        match self.orthant {
            Some((c1, xi)) => {
                let p = projected(param, xi);
                let g = self.problem.gradient(&p)?;
                Ok(pseudo_gradient_of(c1, &p, &g))
            }
            None => self.problem.gradient(param),
        }
    }
}

/// Runs the line search from `state` as argmin's executor would: `init`,
/// then `next_iter` until the search ends; the executor's other stopping
/// test (the best cost reaching its target, −∞) is kept.
fn search<O: Evaluate>(
    ls: &mut MoreThuente,
    problem: &mut Problem<Line<'_, O>>,
    state: LineState,
) -> Result<LineState, Error> {
    let (mut state, _) = ls.init(problem, state)?;
    let mut best = f64::INFINITY;
    loop {
        if state.get_cost() < best {
            best = state.get_cost();
        }
        if state.terminated() {
            return Ok(state);
        }
        if best == f64::NEG_INFINITY {
            return Err(ArgminError::ConditionViolated {
                text: "the line search reached a cost of -inf".into(),
            }
            .into());
        }
        (state, _) = ls.next_iter(problem, state)?;
    }
}

impl<O> Solver<O, St> for Lbfgs
where
    O: CostFunction<Param = ParVec, Output = f64> + Gradient<Param = ParVec, Gradient = ParVec> + Evaluate,
{
    fn name(&self) -> &str {
        "L-BFGS"
    }

    fn init(&mut self, problem: &mut Problem<O>, mut state: St) -> Result<(St, Option<KV>), Error> {
        let param = state.take_param().ok_or_else(|| ArgminError::NotInitialized {
            text: "L-BFGS needs an initial parameter vector".into(),
        })?;
        let cost = state.get_cost();
        let cost = if cost.is_infinite() {
            match self.l1_coeff {
                Some(c1) => problem.cost(&param)? + c1 * param.l1_norm(),
                None => problem.cost(&param)?,
            }
        } else {
            cost
        };
        let grad = match state.take_gradient() {
            Some(g) => g,
            None => problem.gradient(&param)?,
        };
        Ok((state.param(param).cost(cost).gradient(grad), None))
    }

    // argmin negates the direction by multiplying by −1; so does this
    // (the same bits, even for a NaN, whose sign a negation would flip).
    #[allow(clippy::neg_multiply)]
    fn next_iter(&mut self, problem: &mut Problem<O>, mut state: St) -> Result<(St, Option<KV>), Error> {
        let missing = |what: &str| ArgminError::PotentialBug {
            text: format!("L-BFGS: the state has no {what}"),
        };
        self.stop_norms = None;
        let param = state.take_param().ok_or_else(|| missing("parameter vector"))?;
        let cur_cost = state.get_cost();
        // Under OWL-QN the state holds the pseudo-gradient, except at the start.
        let mut prev_grad = state.take_gradient().ok_or_else(|| missing("gradient"))?;
        if let Some(c1) = self.l1_coeff {
            if self.l1_prev_unreg_grad.is_none() {
                let pseudo = pseudo_gradient_of(c1, &param, &prev_grad);
                self.l1_prev_unreg_grad = Some(std::mem::replace(&mut prev_grad, pseudo));
            }
        }
        let orthant = self.l1_coeff.map(|c1| {
            let xi = map2(&param, &prev_grad, orthant_sign);
            (c1, xi)
        });
        let slope = match self.l1_coeff {
            // The direction is kept where it agrees in sign with −pseudo-gradient.
            Some(_) => self.direction(&prev_grad, |r, g| {
                let agree = (r * g - f64::MIN_POSITIVE).signum();
                ((if agree > 0.0 { agree } else { 0.0 }) * r) * -1.0
            }),
            None => self.direction(&prev_grad, |r, _| r * -1.0),
        };
        let direction = std::mem::take(&mut self.work);
        let step = self.linesearch.next_first_step(&direction);
        let inner = problem.take_problem().ok_or_else(|| missing("problem"))?;
        // The search's end: its cost, point, the objective's gradient there
        // and, under OWL-QN, the pseudo-gradient; or why it failed.
        let (searched, counts) = match self.line_search {
            LineSearch::MoreThuente => {
                // A fresh search, as argmin's solver sets up a copy of its own; any
                // step > 0 is accepted, a rejected one leaves the default (argmin
                // ignores the error too).
                let mut ls = MoreThuente::new();
                let _ = ls.initial_step_length(step);
                ls.search_direction(Slope::Direction);
                let mut line = Problem::new(Line {
                    problem: &inner,
                    start: &param,
                    direction: &direction,
                    orthant: orthant.as_ref().map(|(c1, xi)| (*c1, &xi[..])),
                    last: RefCell::new(None),
                });
                let start = LineState::new()
                    .param(Point::Start)
                    .gradient(Slope::Gradient(slope))
                    .cost(cur_cost);
                let searched = search(&mut ls, &mut line, start);
                let last = line.problem.take().and_then(|l| l.last.into_inner());
                let searched = searched.map(|found| {
                    // The search ends on its last trial, whose point and gradients `Line` kept.
                    match last {
                        Some(t) if found.get_param().is_some_and(|p| p.same(&t.at)) => {
                            Ok((found.get_cost(), t.point, t.gradient, t.pseudo))
                        }
                        _ => Err(Error::from(missing("line search point at its last trial"))),
                    }
                });
                (searched, line.counts)
            }
            kind => {
                let d = ParVec(direction.clone());
                let mut line = Problem::new(Projected {
                    problem: &inner,
                    orthant: orthant.as_ref().map(|(c1, xi)| (*c1, xi)),
                });
                let xi = orthant.as_ref().map(|(_, xi)| xi);
                let searched = linesearch::backtrack(kind, &mut line, &param, cur_cost, &prev_grad, &d, step, xi);
                let searched = searched.map(|mut found| {
                    let mut xk1 = found.take_param().ok_or_else(|| missing("line search point"))?;
                    if let Some(xi) = xi {
                        xk1 = projected(&xk1, xi);
                    }
                    // Without L1 the search's last gradient is the objective's at
                    // `xk1`; otherwise the objective answers from its cache.
                    let grad = match (self.l1_coeff, found.take_gradient()) {
                        (None, Some(g)) => g,
                        _ => inner.gradient(&xk1)?,
                    };
                    let pseudo = self.l1_coeff.map(|c1| pseudo_gradient_of(c1, &xk1, &grad));
                    Ok::<_, Error>((found.get_cost(), xk1, grad, pseudo))
                });
                (searched, line.counts)
            }
        };
        for (name, n) in counts {
            *problem.counts.entry(name).or_insert(0) += n;
        }
        self.work = direction;
        problem.problem = Some(inner);
        let (next_cost, xk1, grad, pseudo) = match searched {
            Ok(found) => found?,
            Err(e) => {
                let reason = TerminationReason::SolverExit(format!("Line search terminated with: '{e}'"));
                return Ok((state.terminate_with(reason), None));
            }
        };
        if state.get_iter() >= self.m as u64 {
            self.pop_pair();
        }
        // sᵢ = xₖ₊₁ − xₖ and yᵢ = ∇f(xₖ₊₁) − ∇f(xₖ) (argmin's `sub`s), each
        // written over the vector it no longer needs, with y·s and y·y; beside
        // it, the stopping test's serial norms of the new point and gradient.
        let (mut s, mut y) = match self.l1_coeff {
            Some(_) => (
                param,
                self.l1_prev_unreg_grad
                    .take()
                    .ok_or_else(|| missing("plain gradient"))?,
            ),
            None => (param, prev_grad),
        };
        let reported = pseudo.as_ref().unwrap_or(&grad);
        let (norms, [ys, yy]) = both(
            || StopNorms::of(&xk1, reported),
            || {
                update2_by_chunk(&mut s, &mut y, |o, s, y| {
                    for ((s, y), (&x1, &g1)) in s.iter_mut().zip(y.iter_mut()).zip(xk1[o..].iter().zip(&grad[o..])) {
                        *s = x1 - *s;
                        *y = g1 - *y;
                    }
                    [chunk_dot(y, s), chunk_dot(y, y)]
                })
            },
        );
        self.stop_norms = Some(norms);
        self.push_pair(s, y, (ys, yy));
        let grad = match pseudo {
            Some(pseudo) => {
                self.l1_prev_unreg_grad = Some(grad);
                pseudo
            }
            None => grad,
        };
        Ok((state.param(xk1).cost(next_cost).gradient(grad), None))
    }

    fn terminate(&mut self, state: &St) -> TerminationStatus {
        // A norm is never below 0, so with the tolerance at 0 (as the trainer
        // sets it) the test is skipped rather than computed.
        if self.tol_grad > 0.0 && state.get_gradient().is_some_and(|g| g.l2_norm() < self.tol_grad) {
            return TerminationStatus::Terminated(TerminationReason::SolverConverged);
        }
        if (state.get_prev_cost() - state.get_cost()).abs() < self.tol_cost {
            return TerminationStatus::Terminated(TerminationReason::SolverConverged);
        }
        TerminationStatus::NotTerminated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lbfgs::{ArgminProblem, FirstStepScaled, TrialBudget};
    use crate::objective::{Differentiable, EvalError};
    use crate::parvec::{with_pool, CHUNK};
    use argmin::core::Executor;
    use argmin::solver::quasinewton::LBFGS;
    use std::sync::Arc;

    /// argmin's solver over the same line search: the reference.
    type ArgminLbfgs = LBFGS<Search, ParVec, ParVec, f64>;

    /// A smooth, non-separable, non-quadratic test function over more than
    /// two chunks: `Σ softplus(aᵢwᵢ + bᵢwᵢ₊₁ − tᵢ) + 0.05·|w|²` (indices
    /// wrap around), whose L1-regularized minimum has many exact zeros.
    struct Bumpy {
        a: Vec<f64>,
        b: Vec<f64>,
        t: Vec<f64>,
    }

    impl Bumpy {
        fn new(n: usize) -> Self {
            let h = |i: usize, k: u64| {
                let x = (i as u64 ^ k).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                ((x >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            };
            Bumpy {
                a: (0..n).map(|i| 1.0 + h(i, 1)).collect(),
                b: (0..n).map(|i| 0.5 * h(i, 2)).collect(),
                t: (0..n).map(|i| 2.0 * h(i, 3)).collect(),
            }
        }
    }

    impl Differentiable for Bumpy {
        fn dim(&self) -> usize {
            self.a.len()
        }
        fn cost_and_gradient(&self, w: &[f64]) -> Result<(f64, Vec<f64>), EvalError> {
            let n = w.len();
            let mut cost = 0.0;
            let mut g: Vec<f64> = w.iter().map(|x| 0.1 * x).collect();
            for i in 0..n {
                let j = (i + 1) % n;
                let u = self.a[i] * w[i] + self.b[i] * w[j] - self.t[i];
                cost += if u > 0.0 {
                    u + (-u).exp().ln_1p()
                } else {
                    u.exp().ln_1p()
                };
                let sigma = 1.0 / (1.0 + (-u).exp());
                g[i] += sigma * self.a[i];
                g[j] += sigma * self.b[i];
            }
            Ok((cost + 0.05 * w.iter().map(|x| x * x).sum::<f64>(), g))
        }
        fn evaluations(&self) -> usize {
            0
        }
        fn expand(&self, w: &[f64]) -> Vec<f64> {
            w.to_vec()
        }
    }

    fn search() -> Search {
        FirstStepScaled {
            inner: MoreThuenteLineSearch::new(),
            calls: 0,
        }
    }

    fn reference(m: usize, c1: f64) -> ArgminLbfgs {
        let s = ArgminLbfgs::new(search(), m)
            .with_tolerance_grad(0.0)
            .unwrap()
            .with_tolerance_cost(0.0)
            .unwrap();
        if c1 > 0.0 {
            s.with_l1_regularization(c1).unwrap()
        } else {
            s
        }
    }

    /// `solver` run from `state` until iteration `until`: the final state's
    /// weights, cost and gradient as bits, and the solver.
    fn run<S: Solver<ArgminProblem<'static, Bumpy>, St>>(
        f: &'static Bumpy,
        solver: S,
        state: St,
        until: u64,
    ) -> (Vec<u64>, S, St) {
        let trials: &'static TrialBudget = Box::leak(Box::new(TrialBudget::new(usize::MAX)));
        let problem = ArgminProblem { objective: f, trials };
        let done = Executor::new(problem, solver)
            .configure(|_| state.max_iters(until))
            .ctrlc(false)
            .run()
            .unwrap();
        let st = done.state;
        assert_eq!(
            st.get_iter(),
            until,
            "the run ended early: {:?}",
            st.get_termination_status()
        );
        let mut bits: Vec<u64> = st.get_param().unwrap().iter().map(|x| x.to_bits()).collect();
        bits.extend(st.get_gradient().unwrap().iter().map(|x| x.to_bits()));
        bits.push(st.get_cost().to_bits());
        (bits, done.solver, st)
    }

    fn start(n: usize) -> St {
        IterState::new().param(ParVec(vec![0.0; n]))
    }

    fn pool(threads: usize) -> Arc<rayon::ThreadPool> {
        Arc::new(rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap())
    }

    /// The fused solver takes argmin's path bit for bit: weights, cost and
    /// (pseudo-)gradient after every iteration count tried, with and without
    /// L1, on one and on three threads, with the memory full and evicting.
    #[test]
    fn trajectories_equal_argmins_bit_for_bit() {
        let n = 2 * CHUNK + 123;
        let f: &'static Bumpy = Box::leak(Box::new(Bumpy::new(n)));
        for c1 in [0.0, 0.05] {
            let m = 3;
            for until in [1, 4, 9] {
                let expected = with_pool(&pool(1), || run(f, reference(m, c1), start(n), until).0);
                for threads in [1, 3] {
                    let got = with_pool(&pool(threads), || {
                        run(f, Lbfgs::new(search(), m, c1), start(n), until).0
                    });
                    assert!(
                        got == expected,
                        "c1 {c1}, {until} iterations, {threads} threads: paths differ"
                    );
                }
                if c1 > 0.0 && until == 9 {
                    let zeros = expected[..n].iter().filter(|&&b| f64::from_bits(b) == 0.0).count();
                    assert!(zeros > n / 20, "OWL-QN should zero some weights, got {zeros}");
                }
            }
        }
    }

    /// Saves `(solver, state)` when iteration `at` has ended, as the
    /// trainer's checkpoints do (from the stopping test, mid-run).
    struct SaveAt<S> {
        inner: S,
        at: u64,
        saved: Option<Vec<u8>>,
    }

    impl<O, S: Solver<O, St> + serde::Serialize> Solver<O, St> for SaveAt<S> {
        fn name(&self) -> &str {
            "save at"
        }
        fn init(&mut self, problem: &mut Problem<O>, state: St) -> Result<(St, Option<KV>), Error> {
            self.inner.init(problem, state)
        }
        fn next_iter(&mut self, problem: &mut Problem<O>, state: St) -> Result<(St, Option<KV>), Error> {
            self.inner.next_iter(problem, state)
        }
        fn terminate(&mut self, state: &St) -> TerminationStatus {
            if state.get_iter() == self.at {
                self.saved = Some(chaincrf_model::encode_payload(&(&self.inner, state)).unwrap());
            }
            TerminationStatus::NotTerminated
        }
    }

    /// A state saved by argmin's solver (the checkpoints of earlier builds)
    /// decodes as this solver's and continues on argmin's path exactly.
    #[test]
    fn continues_a_state_saved_by_argmins_solver() {
        let n = CHUNK + 77;
        let f: &'static Bumpy = Box::leak(Box::new(Bumpy::new(n)));
        for c1 in [0.0, 0.05] {
            with_pool(&pool(2), || {
                let saving = SaveAt {
                    inner: reference(2, c1),
                    at: 4,
                    saved: None,
                };
                let (expected, saving, _) = run(f, saving, start(n), 7);
                let bytes = saving.saved.expect("saved at iteration 4");
                let (solver, state): (Lbfgs, St) = chaincrf_model::decode_payload(&bytes).unwrap();
                let solver = solver.restored(n).unwrap();
                assert_eq!(solver.s.len(), 2);
                let (got, solver, state) = run(f, solver, state, 7);
                assert!(got == expected, "c1 {c1}: the continued path differs");
                // This solver's own state round-trips too.
                let bytes = chaincrf_model::encode_payload(&(&solver, &state)).unwrap();
                let (back, _): (Lbfgs, St) = chaincrf_model::decode_payload(&bytes).unwrap();
                assert!(back.restored(n + 1).is_err(), "a state for another length is refused");
            });
        }
    }
}
