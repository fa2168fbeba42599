//! [`ParVec`]: the optimizer's parameter and gradient vectors, whose vector
//! arithmetic runs on the current rayon thread pool.
//!
//! argmin's L-BFGS and More–Thuente line search are generic over the vector
//! type and do all their arithmetic through `argmin-math` traits: a few
//! dozen dot products, scaled additions and copies of the trainable weights
//! (two million on PKU) per iteration. For `Vec<f64>` those run on one
//! thread. With the objective's pass on two cores that serial part was a
//! third of an iteration, and it capped what a second thread could bring.
//! `ParVec` implements the same traits over chunks of [`CHUNK`] weights, on
//! the pool that [`with_pool`] names for the calling thread: the trainer
//! runs the solver inside the objective's pool, so `--threads` holds. Outside
//! [`with_pool`], or on a pool of one thread, the operations are plain loops.
//!
//! Sums (dot products, norms) add each chunk's terms in order and then the
//! chunks' partial sums in order. The grouping depends only on the length,
//! never on the number of threads or on scheduling, so a model is the same
//! bit for bit on any number of threads, as the objective guarantees too.
//! Element-wise operations compute exactly what argmin's `Vec<f64>` versions
//! compute.
//!
//! It serializes as a plain `Vec<f64>` (`#[serde(transparent)]`), so
//! checkpoints are unchanged.
//!
//! **Buffer reuse.** argmin's operations return new vectors, so an iteration
//! allocates and frees a few dozen vectors of the problem's length. glibc
//! serves allocations above 32 MB (4.2 million weights) with a fresh `mmap`
//! each time, and every page of a fresh mapping costs a page fault when it is
//! first written and a zeroing by the kernel: on CRF++'s all-pairs PKU
//! problem (6.44 million weights, 51 MB per vector) that was about 35 faults
//! per kilobyte of arithmetic and most of an iteration's time, on a lock
//! that two threads share. Below that size glibc reuses freed memory, which
//! is why the 2-million-weight problem never showed it. Inside [`with_pool`]
//! a dropped `ParVec` therefore keeps its buffer in a short list of spares
//! of the calling thread, and the next vector of that length takes one from
//! there ([`take`]); the spares are freed when [`with_pool`] returns. Values
//! are computed exactly as before: only where they are stored changes.

use argmin_math::{
    ArgminAdd, ArgminDot, ArgminL1Norm, ArgminL2Norm, ArgminMinMax, ArgminMul, ArgminScaledAdd, ArgminSignum,
    ArgminSub, ArgminZeroLike,
};
use rayon::prelude::*;
use rayon::ThreadPool;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

thread_local! {
    /// The pool `ParVec` operations of this thread run on.
    static POOL: RefCell<Option<Arc<ThreadPool>>> = const { RefCell::new(None) };
    /// Buffers of dropped vectors for the next ones (see the module docs);
    /// `None` outside [`with_pool`].
    static SPARE: RefCell<Option<Vec<Vec<f64>>>> = const { RefCell::new(None) };
}

/// Most spare buffers kept per thread: an iteration's churn is one vector
/// freed for each one allocated, so a few absorb it while bounding the
/// memory held (4 × 51 MB on the all-pairs PKU problem, at most).
const MAX_SPARE: usize = 4;

/// Vectors shorter than this are allocated and freed normally (malloc reuses
/// their memory anyway).
const MIN_SPARE_LEN: usize = 1 << 16;

/// An empty vector with room for `len` values: a spare buffer of the
/// calling thread when one fits (inside [`with_pool`]), else a new one.
/// The buffer is allocated on the calling thread (see [`fill`]).
pub(crate) fn take(len: usize) -> Vec<f64> {
    if len >= MIN_SPARE_LEN {
        let spare = SPARE.with(|s| {
            let mut s = s.borrow_mut();
            let list = s.as_mut()?;
            // Only buffers of about this length: a longer one would keep
            // memory that a later, longer vector might need.
            let i = list
                .iter()
                .position(|v| v.capacity() >= len && v.capacity() - len <= len / 8)?;
            Some(list.swap_remove(i))
        });
        if let Some(mut v) = spare {
            v.clear();
            return v;
        }
    }
    Vec::with_capacity(len)
}

/// Keeps `v`'s buffer as a spare of the calling thread when inside
/// [`with_pool`] and there is room; frees it otherwise.
pub(crate) fn give(v: Vec<f64>) {
    if v.capacity() < MIN_SPARE_LEN {
        return;
    }
    // `try_with`: a vector dropped while the thread's locals are destroyed is just freed.
    let _ = SPARE.try_with(|s| {
        if let Some(list) = s.borrow_mut().as_mut() {
            if list.len() < MAX_SPARE {
                list.push(v);
            }
        }
    });
}

/// Runs `f` with `pool` as the pool of the `ParVec` operations this thread
/// performs (argmin calls them on the thread that runs the solver, which is
/// not one of the pool's). The previous pool is restored afterwards, even
/// when `f` panics.
pub fn with_pool<R>(pool: &Arc<ThreadPool>, f: impl FnOnce() -> R) -> R {
    type Spares = Option<Vec<Vec<f64>>>;
    struct Restore(Option<Arc<ThreadPool>>, Spares);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            POOL.with(|p| *p.borrow_mut() = previous);
            // This scope's spares are freed; an enclosing scope gets its own back.
            let outer = self.1.take();
            drop(SPARE.with(|s| std::mem::replace(&mut *s.borrow_mut(), outer)));
        }
    }
    let _restore = Restore(
        POOL.with(|p| p.borrow_mut().replace(Arc::clone(pool))),
        SPARE.with(|s| s.borrow_mut().replace(Vec::new())),
    );
    f()
}

/// Runs `op` on this thread's `ParVec` pool when it has more than one
/// thread; otherwise returns `None` (the caller then loops on its own).
fn on_pool<R: Send>(op: impl FnOnce() -> R + Send) -> Option<R> {
    let pool = POOL.with(|p| p.borrow().clone())?;
    (pool.current_num_threads() > 1).then(|| pool.install(op))
}

/// `(a(), b())`, side by side on this thread's pool when it has more than
/// one thread (two serial passes that must keep their order of addition
/// still take the time of one), one after the other otherwise.
pub(crate) fn both<A: Send, B: Send>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    let pool = POOL
        .with(|p| p.borrow().clone())
        .filter(|p| p.current_num_threads() > 1);
    match pool {
        Some(pool) => pool.install(|| rayon::join(a, b)),
        None => (a(), b()),
    }
}

/// Weights per task (and per partial sum).
pub const CHUNK: usize = 1 << 14;

/// The `K` sums of one pass, from each chunk's partial sums: added in chunk
/// order, as [`ParVec`]'s dot products and norms add theirs.
fn combine<const K: usize>(partials: &[[f64; K]]) -> [f64; K] {
    std::array::from_fn(|k| partials.iter().map(|p| p[k]).sum())
}

/// One pass over `out`, chunk by chunk ([`CHUNK`] values, on this thread's
/// pool when it has more than one thread): `body(offset, chunk)` updates
/// `out[offset..offset + chunk.len()]` in place and returns that chunk's `K`
/// partial sums, which are then added in chunk order. A sum computed as
/// `chunk.iter().zip(..).map(..).sum()` inside `body` therefore has the bits
/// of [`ParVec`]'s sum of the same terms, on any number of threads: this is
/// how an optimizer fuses an update with the dot product that follows it.
pub(crate) fn update_by_chunk<const K: usize>(
    out: &mut [f64],
    body: impl Fn(usize, &mut [f64]) -> [f64; K] + Sync + Send,
) -> [f64; K] {
    let parallel = on_pool(|| {
        out.par_chunks_mut(CHUNK)
            .enumerate()
            .map(|(c, chunk)| body(c * CHUNK, chunk))
            .collect::<Vec<_>>()
    });
    let partials = match parallel {
        Some(p) => p,
        None => out
            .chunks_mut(CHUNK)
            .enumerate()
            .map(|(c, chunk)| body(c * CHUNK, chunk))
            .collect(),
    };
    combine(&partials)
}

/// The `K` sums of `body(range)` over the chunks of `0..len`, grouped as
/// [`update_by_chunk`] groups them (a pass that only reads).
pub(crate) fn sums_by_chunk<const K: usize>(
    len: usize,
    body: impl Fn(std::ops::Range<usize>) -> [f64; K] + Sync + Send,
) -> [f64; K] {
    let chunk = |c: usize| body(c * CHUNK..((c + 1) * CHUNK).min(len));
    let chunks = len.div_ceil(CHUNK);
    let partials = on_pool(|| (0..chunks).into_par_iter().map(chunk).collect::<Vec<_>>())
        .unwrap_or_else(|| (0..chunks).map(chunk).collect());
    combine(&partials)
}

/// One pass over two vectors of equal length, chunk by chunk, as
/// [`update_by_chunk`] passes over one: `body(offset, a_chunk, b_chunk)`
/// updates both chunks in place and returns their `K` partial sums.
pub(crate) fn update2_by_chunk<const K: usize>(
    a: &mut [f64],
    b: &mut [f64],
    body: impl Fn(usize, &mut [f64], &mut [f64]) -> [f64; K] + Sync + Send,
) -> [f64; K] {
    assert_eq!(a.len(), b.len(), "vectors of different lengths");
    let parallel = on_pool(|| {
        a.par_chunks_mut(CHUNK)
            .zip(b.par_chunks_mut(CHUNK))
            .enumerate()
            .map(|(c, (a, b))| body(c * CHUNK, a, b))
            .collect::<Vec<_>>()
    });
    let partials = match parallel {
        Some(p) => p,
        None => a
            .chunks_mut(CHUNK)
            .zip(b.chunks_mut(CHUNK))
            .enumerate()
            .map(|(c, (a, b))| body(c * CHUNK, a, b))
            .collect(),
    };
    combine(&partials)
}

/// `Σ a[i]·b[i]` of one chunk, in order: the terms and grouping of a chunk
/// of [`ParVec`]'s dot product.
pub(crate) fn chunk_dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(&a, &b)| a * b).sum()
}

/// `Σ a[i]·b[i]` with [`ParVec`]'s grouping: `ParVec(a).dot(&ParVec(b))`,
/// bit for bit, without the vectors.
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "vectors of different lengths");
    let [sum] = sums_by_chunk(a.len(), |r| [chunk_dot(&a[r.clone()], &b[r])]);
    sum
}

/// `‖v‖₂` with [`ParVec`]'s grouping (its `l2_norm`, bit for bit).
pub(crate) fn l2_norm(v: &[f64]) -> f64 {
    dot(v, v).sqrt()
}

/// A new vector with `out[i] = f(a[i], b[i])`: in parallel, written straight
/// into the new vector (no zero-fill pass first); a plain loop on a pool of
/// one thread, where handing the work to the pool only costs.
pub(crate) fn map2(a: &[f64], b: &[f64], f: impl Fn(f64, f64) -> f64 + Sync + Send) -> ParVec {
    assert_eq!(a.len(), b.len(), "vectors of different lengths");
    ParVec(fill(
        a.len(),
        |out| out.par_extend(a.par_iter().with_min_len(CHUNK).zip(b).map(|(&a, &b)| f(a, b))),
        |out| out.extend(a.iter().zip(b).map(|(&a, &b)| f(a, b))),
    ))
}

/// A new vector with `out[i] = f(a[i], b[i], c[i])`, as [`map2`].
pub(crate) fn map3(a: &[f64], b: &[f64], c: &[f64], f: impl Fn(f64, f64, f64) -> f64 + Sync + Send) -> ParVec {
    assert!(a.len() == b.len() && a.len() == c.len(), "vectors of different lengths");
    ParVec(fill(
        a.len(),
        |out| {
            out.par_extend(
                a.par_iter()
                    .with_min_len(CHUNK)
                    .zip(b)
                    .zip(c)
                    .map(|((&a, &b), &c)| f(a, b, c)),
            )
        },
        |out| out.extend(a.iter().zip(b).zip(c).map(|((&a, &b), &c)| f(a, b, c))),
    ))
}

/// A vector of weights whose `argmin-math` operations run in parallel; see
/// the module docs.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ParVec(pub Vec<f64>);

/// argmin clones parameter and gradient vectors several times per
/// iteration (the line search's starting point, the previous and the best
/// parameters): copies of the whole vector, done on the pool too.
impl Clone for ParVec {
    fn clone(&self) -> Self {
        ParVec::copy_of(self)
    }
}

/// Returns the buffer to the calling thread's spares (see the module docs).
impl Drop for ParVec {
    fn drop(&mut self) {
        give(std::mem::take(&mut self.0));
    }
}

/// A new vector of `len` values: filled by `parallel` on the pool when there
/// is one, else by `serial`. The vector is allocated here, on the calling
/// thread ([`take`]): allocated by a pool thread, it would come from that
/// thread's malloc arena and, freed by the solver's thread, stay there,
/// which raised peak memory by about 90 MB on two threads.
fn fill(len: usize, parallel: impl FnOnce(&mut Vec<f64>) + Send, serial: impl FnOnce(&mut Vec<f64>)) -> Vec<f64> {
    let mut out = take(len);
    if on_pool(|| parallel(&mut out)).is_none() {
        serial(&mut out);
    }
    out
}

impl Deref for ParVec {
    type Target = Vec<f64>;
    fn deref(&self) -> &Vec<f64> {
        &self.0
    }
}

impl DerefMut for ParVec {
    fn deref_mut(&mut self) -> &mut Vec<f64> {
        &mut self.0
    }
}

impl From<Vec<f64>> for ParVec {
    fn from(v: Vec<f64>) -> Self {
        ParVec(v)
    }
}

impl ParVec {
    /// A new vector holding `a`'s values (copied on the pool).
    pub(crate) fn copy_of(a: &[f64]) -> ParVec {
        ParVec(fill(
            a.len(),
            |out| out.par_extend(a.par_iter().with_min_len(CHUNK).copied()),
            |out| out.extend_from_slice(a),
        ))
    }

    /// The values, without the vector (its buffer is not kept as a spare).
    pub(crate) fn into_inner(mut self) -> Vec<f64> {
        std::mem::take(&mut self.0)
    }

    /// `out[i] = f(self[i], other[i])` ([`map2`]).
    fn zip_map(&self, other: &[f64], f: impl Fn(f64, f64) -> f64 + Sync + Send) -> ParVec {
        map2(self, other, f)
    }

    /// `out[i] = f(self[i])`, as [`ParVec::zip_map`].
    fn map(&self, f: impl Fn(f64) -> f64 + Sync + Send) -> ParVec {
        let a: &[f64] = self;
        ParVec(fill(
            a.len(),
            |out| out.par_extend(a.par_iter().with_min_len(CHUNK).map(|&a| f(a))),
            |out| out.extend(a.iter().map(|&a| f(a))),
        ))
    }

    /// `Σ_i f(self[i], other[i])`, grouped by chunks independently of the
    /// threads (see the module docs): the same bits on one thread, where
    /// the chunks are summed in a plain loop.
    fn sum_zip(&self, other: &[f64], f: impl Fn(f64, f64) -> f64 + Sync + Send) -> f64 {
        assert_eq!(self.len(), other.len(), "vectors of different lengths");
        let a: &[f64] = self;
        let chunk_sum = |(a, b): (&[f64], &[f64])| a.iter().zip(b).map(|(&a, &b)| f(a, b)).sum::<f64>();
        let partial: Option<Vec<f64>> = on_pool(|| {
            a.par_chunks(CHUNK)
                .zip(other.par_chunks(CHUNK))
                .map(chunk_sum)
                .collect()
        });
        match partial {
            Some(p) => p.iter().sum(),
            None => a.chunks(CHUNK).zip(other.chunks(CHUNK)).map(chunk_sum).sum(),
        }
    }
}

impl ArgminAdd<ParVec, ParVec> for ParVec {
    fn add(&self, other: &ParVec) -> ParVec {
        self.zip_map(other, |a, b| a + b)
    }
}

impl ArgminAdd<f64, ParVec> for ParVec {
    fn add(&self, other: &f64) -> ParVec {
        let c = *other;
        self.map(|a| a + c)
    }
}

impl ArgminSub<ParVec, ParVec> for ParVec {
    fn sub(&self, other: &ParVec) -> ParVec {
        self.zip_map(other, |a, b| a - b)
    }
}

impl ArgminSub<f64, ParVec> for ParVec {
    fn sub(&self, other: &f64) -> ParVec {
        let c = *other;
        self.map(|a| a - c)
    }
}

impl ArgminMul<ParVec, ParVec> for ParVec {
    fn mul(&self, other: &ParVec) -> ParVec {
        self.zip_map(other, |a, b| a * b)
    }
}

impl ArgminMul<f64, ParVec> for ParVec {
    fn mul(&self, other: &f64) -> ParVec {
        let c = *other;
        self.map(|a| a * c)
    }
}

impl ArgminScaledAdd<ParVec, f64, ParVec> for ParVec {
    fn scaled_add(&self, factor: &f64, vec: &ParVec) -> ParVec {
        let c = *factor;
        self.zip_map(vec, |a, b| a + c * b)
    }
}

impl ArgminDot<ParVec, f64> for ParVec {
    fn dot(&self, other: &ParVec) -> f64 {
        self.sum_zip(other, |a, b| a * b)
    }
}

impl ArgminL1Norm<f64> for ParVec {
    fn l1_norm(&self) -> f64 {
        self.sum_zip(self, |a, _| a.abs())
    }
}

impl ArgminL2Norm<f64> for ParVec {
    fn l2_norm(&self) -> f64 {
        self.sum_zip(self, |a, b| a * b).sqrt()
    }
}

impl ArgminSignum for ParVec {
    fn signum(self) -> ParVec {
        self.map(f64::signum)
    }
}

impl ArgminZeroLike for ParVec {
    fn zero_like(&self) -> ParVec {
        let mut v = take(self.len());
        v.resize(self.len(), 0.0);
        ParVec(v)
    }
}

impl ArgminMinMax for ParVec {
    fn min(x: &ParVec, y: &ParVec) -> ParVec {
        x.zip_map(y, |a, b| if a < b { a } else { b })
    }
    fn max(x: &ParVec, y: &ParVec) -> ParVec {
        x.zip_map(y, |a, b| if a > b { a } else { b })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vecs() -> impl Strategy<Value = (Vec<f64>, Vec<f64>)> {
        (0usize..3 * CHUNK + 7).prop_flat_map(|n| {
            (
                proptest::collection::vec(-1e3f64..1e3, n),
                proptest::collection::vec(-1e3f64..1e3, n),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Element-wise operations equal argmin's `Vec<f64>` ones bit for
        /// bit; sums agree to rounding and do not depend on the pool size.
        #[test]
        fn agrees_with_argmins_vec_operations((a, b) in vecs(), c in -10f64..10.0) {
            let (pa, pb) = (ParVec(a.clone()), ParVec(b.clone()));
            prop_assert_eq!(&pa.add(&pb).0, &ArgminAdd::<Vec<f64>, Vec<f64>>::add(&a, &b));
            prop_assert_eq!(&pa.sub(&pb).0, &ArgminSub::<Vec<f64>, Vec<f64>>::sub(&a, &b));
            prop_assert_eq!(&pa.mul(&pb).0, &ArgminMul::<Vec<f64>, Vec<f64>>::mul(&a, &b));
            prop_assert_eq!(&ArgminMul::<f64, ParVec>::mul(&pa, &c).0, &ArgminMul::<f64, Vec<f64>>::mul(&a, &c));
            prop_assert_eq!(&ArgminAdd::<f64, ParVec>::add(&pa, &c).0, &ArgminAdd::<f64, Vec<f64>>::add(&a, &c));
            prop_assert_eq!(&ArgminSub::<f64, ParVec>::sub(&pa, &c).0, &ArgminSub::<f64, Vec<f64>>::sub(&a, &c));
            prop_assert_eq!(&pa.scaled_add(&c, &pb).0, &ArgminScaledAdd::<Vec<f64>, f64, Vec<f64>>::scaled_add(&a, &c, &b));
            prop_assert_eq!(&pa.clone().signum().0, &a.clone().signum());
            if !a.is_empty() {
                prop_assert_eq!(&ParVec::min(&pa, &pb).0, &<Vec<f64> as ArgminMinMax>::min(&a, &b));
                prop_assert_eq!(&ParVec::max(&pa, &pb).0, &<Vec<f64> as ArgminMinMax>::max(&a, &b));
            }
            prop_assert_eq!(pa.zero_like().into_inner(), vec![0.0; a.len()]);
            let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * (1.0 + x.abs().max(y.abs()));
            prop_assert!(close(pa.dot(&pb), ArgminDot::<Vec<f64>, f64>::dot(&a, &b)));
            prop_assert!(close(pa.l1_norm(), ArgminL1Norm::<f64>::l1_norm(&a)));
            prop_assert!(close(pa.l2_norm(), ArgminL2Norm::<f64>::l2_norm(&a)));
            let on = |threads: usize| {
                let pool = Arc::new(rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap());
                with_pool(&pool, || {
                    let sums = (pa.dot(&pb).to_bits(), pa.l1_norm().to_bits(), pa.l2_norm().to_bits());
                    (sums, pa.scaled_add(&c, &pb).into_inner(), pa.clone().signum().into_inner())
                })
            };
            let (one, three) = (on(1), on(3));
            prop_assert_eq!(&one, &three);
            // The slice functions have `ParVec`'s bits, on any pool.
            for threads in [1, 3] {
                let pool = Arc::new(rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap());
                with_pool(&pool, || {
                    assert_eq!(dot(&a, &b).to_bits(), pa.dot(&pb).to_bits());
                    assert_eq!(l2_norm(&a).to_bits(), pa.l2_norm().to_bits());
                    let (mut x, mut y) = (a.clone(), b.clone());
                    let [xy, yy] = update2_by_chunk(&mut x, &mut y, |o, x, y| {
                        for (i, (x, y)) in x.iter_mut().zip(y.iter_mut()).enumerate() {
                            *x -= b[o + i];
                            *y += a[o + i];
                        }
                        [chunk_dot(x, y), chunk_dot(y, y)]
                    });
                    let (px, py) = (pa.sub(&pb), pb.add(&pa));
                    assert_eq!(&x, &px.0);
                    assert_eq!(&y, &py.0);
                    assert_eq!(xy.to_bits(), px.dot(&py).to_bits());
                    assert_eq!(yy.to_bits(), py.dot(&py).to_bits());
                    let (g, w) = both(|| pa.l1_norm(), || pb.l1_norm());
                    assert_eq!((g.to_bits(), w.to_bits()), (pa.l1_norm().to_bits(), pb.l1_norm().to_bits()));
                });
            }
            prop_assert_eq!((pa.dot(&pb).to_bits(), pa.l1_norm().to_bits(), pa.l2_norm().to_bits()), one.0);
        }
    }

    /// Inside `with_pool`, a dropped vector's buffer serves the next vector
    /// of its length, whatever it held (values are the same as without
    /// reuse); spares end with the scope, and short vectors are not kept.
    #[test]
    fn dropped_buffers_serve_the_next_vectors() {
        let n = MIN_SPARE_LEN + 5;
        let a: Vec<f64> = (0..n).map(|i| (i as f64).sin()).collect();
        let b: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).cos()).collect();
        for threads in [1, 2] {
            let pool = Arc::new(rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap());
            with_pool(&pool, || {
                let (pa, pb) = (ParVec(a.clone()), ParVec(b.clone()));
                let first = pa.scaled_add(&2.5, &pb);
                let ptr = first.as_ptr();
                drop(first);
                let second = pa.sub(&pb);
                assert_eq!(second.as_ptr(), ptr, "the spare buffer is reused");
                assert_eq!(&second.0, &ArgminSub::<Vec<f64>, Vec<f64>>::sub(&a, &b));
                let third = pa.scaled_add(&2.5, &pb);
                assert_eq!(
                    &third.0,
                    &ArgminScaledAdd::<Vec<f64>, f64, Vec<f64>>::scaled_add(&a, &2.5, &b)
                );
                drop(second);
                assert_eq!(pa.zero_like().into_inner(), vec![0.0; n], "a reused buffer is zeroed");
                give(vec![1.0; 8]);
                assert_eq!(SPARE.with(|s| s.borrow().as_ref().map(Vec::len)), Some(0));
                let spare = take(n);
                assert!(spare.is_empty() && spare.capacity() >= n);
            });
            assert!(SPARE.with(|s| s.borrow().is_none()), "spares end with the scope");
        }
    }

    #[test]
    fn serializes_as_a_plain_vector() {
        let v = vec![1.5, -2.0, 0.0];
        let a = chaincrf_model::encode_payload(&ParVec(v.clone())).unwrap();
        let b = chaincrf_model::encode_payload(&v).unwrap();
        assert_eq!(a, b);
        let back: ParVec = chaincrf_model::decode_payload(&b).unwrap();
        assert_eq!(back.0, v);
    }
}
