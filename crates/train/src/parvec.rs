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
}

/// Runs `f` with `pool` as the pool of the `ParVec` operations this thread
/// performs (argmin calls them on the thread that runs the solver, which is
/// not one of the pool's). The previous pool is restored afterwards, even
/// when `f` panics.
pub fn with_pool<R>(pool: &Arc<ThreadPool>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Arc<ThreadPool>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            POOL.with(|p| *p.borrow_mut() = previous);
        }
    }
    let _restore = Restore(POOL.with(|p| p.borrow_mut().replace(Arc::clone(pool))));
    f()
}

/// Runs `op` on this thread's `ParVec` pool when it has more than one
/// thread; otherwise returns `None` (the caller then loops on its own).
fn on_pool<R: Send>(op: impl FnOnce() -> R + Send) -> Option<R> {
    let pool = POOL.with(|p| p.borrow().clone())?;
    (pool.current_num_threads() > 1).then(|| pool.install(op))
}

/// Weights per task (and per partial sum).
pub const CHUNK: usize = 1 << 14;

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
        let a: &[f64] = self;
        ParVec(fill(
            a.len(),
            |out| out.par_extend(a.par_iter().with_min_len(CHUNK).copied()),
            || a.to_vec(),
        ))
    }
}

/// A new vector of `len` values: filled by `parallel` on the pool when there
/// is one, else built by `serial`. The vector is allocated here, on the
/// calling thread: allocated by a pool thread, it would come from that
/// thread's malloc arena and, freed by the solver's thread, stay there,
/// which raised peak memory by about 90 MB on two threads.
fn fill(len: usize, parallel: impl FnOnce(&mut Vec<f64>) + Send, serial: impl FnOnce() -> Vec<f64>) -> Vec<f64> {
    let mut out = Vec::with_capacity(len);
    match on_pool(|| parallel(&mut out)) {
        Some(()) => out,
        None => serial(),
    }
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
    /// `out[i] = f(self[i], other[i])`: in parallel, written straight into
    /// the new vector (no zero-fill pass first); a plain loop on a pool of
    /// one thread, where handing the work to the pool only costs.
    fn zip_map(&self, other: &[f64], f: impl Fn(f64, f64) -> f64 + Sync + Send) -> ParVec {
        assert_eq!(self.len(), other.len(), "vectors of different lengths");
        let a: &[f64] = self;
        ParVec(fill(
            a.len(),
            |out| {
                out.par_extend(
                    a.par_iter()
                        .with_min_len(CHUNK)
                        .zip(other.par_iter())
                        .map(|(&a, &b)| f(a, b)),
                )
            },
            || a.iter().zip(other).map(|(&a, &b)| f(a, b)).collect(),
        ))
    }

    /// `out[i] = f(self[i])`, as [`ParVec::zip_map`].
    fn map(&self, f: impl Fn(f64) -> f64 + Sync + Send) -> ParVec {
        let a: &[f64] = self;
        ParVec(fill(
            a.len(),
            |out| out.par_extend(a.par_iter().with_min_len(CHUNK).map(|&a| f(a))),
            || a.iter().map(|&a| f(a)).collect(),
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
        ParVec(vec![0.0; self.len()])
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
            prop_assert_eq!(pa.zero_like().0, vec![0.0; a.len()]);
            let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * (1.0 + x.abs().max(y.abs()));
            prop_assert!(close(pa.dot(&pb), ArgminDot::<Vec<f64>, f64>::dot(&a, &b)));
            prop_assert!(close(pa.l1_norm(), ArgminL1Norm::<f64>::l1_norm(&a)));
            prop_assert!(close(pa.l2_norm(), ArgminL2Norm::<f64>::l2_norm(&a)));
            let on = |threads: usize| {
                let pool = Arc::new(rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap());
                with_pool(&pool, || {
                    let sums = (pa.dot(&pb).to_bits(), pa.l1_norm().to_bits(), pa.l2_norm().to_bits());
                    (sums, pa.scaled_add(&c, &pb).0, pa.clone().signum().0)
                })
            };
            let (one, three) = (on(1), on(3));
            prop_assert_eq!(&one, &three);
            prop_assert_eq!((pa.dot(&pb).to_bits(), pa.l1_norm().to_bits(), pa.l2_norm().to_bits()), one.0);
        }
    }

    #[test]
    fn serializes_as_a_plain_vector() {
        let v = vec![1.5, -2.0, 0.0];
        let a = chaincrf_model::io::encode_payload(&ParVec(v.clone())).unwrap();
        let b = chaincrf_model::io::encode_payload(&v).unwrap();
        assert_eq!(a, b);
        let back: ParVec = chaincrf_model::io::decode_payload(&b).unwrap();
        assert_eq!(back.0, v);
    }
}
