//! The NLL as a candle custom op: forward and backward call core's chain code
//! on the tensor data.
//!
//! The op has two tensor arguments, the emissions `[batch, time, k]` and the
//! CRF's scores packed into one vector `[k·k + 2k]` (transitions row-major,
//! then start, then end; the layer concatenates its three variables, and
//! candle's own `cat` backward hands each its slice of the gradient). Tags,
//! mask and constraints are plain data in the op. The forward computes the
//! loss *and* its gradients (one forward/backward per sequence) and keeps the
//! gradients; the backward scales them by the upstream gradient, which is
//! exact because the gradient is linear in it. Only an unreduced loss whose
//! upstream gradients differ between sequences needs a second pass (with
//! those weights), because the transition gradient is a sum over sequences.

use std::sync::{Arc, Mutex};

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};
use chaincrf_core::loss::{self, CrfParams, Mask, MaskedLoss, PaddedBatch, Reduction};

/// Which label pairs, starts and ends are allowed (`false` = `-inf`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Constraints {
    pub(crate) transitions: Vec<bool>,
    pub(crate) start: Vec<bool>,
    pub(crate) end: Vec<bool>,
}

impl Constraints {
    pub(crate) fn none(k: usize) -> Self {
        Constraints {
            transitions: vec![true; k * k],
            start: vec![true; k],
            end: vec![true; k],
        }
    }

    /// Splits packed `[k·k + 2k]` scores into transitions, start and end, with
    /// `-inf` where forbidden.
    pub(crate) fn apply(&self, packed: &[f64], k: usize) -> CrfScores {
        let forbid = |v: &[f64], allowed: &[bool]| -> Vec<f64> {
            v.iter()
                .zip(allowed)
                .map(|(&x, &ok)| if ok { x } else { f64::NEG_INFINITY })
                .collect()
        };
        CrfScores {
            transitions: forbid(&packed[..k * k], &self.transitions),
            start: forbid(&packed[k * k..k * k + k], &self.start),
            end: forbid(&packed[k * k + k..], &self.end),
            k,
        }
    }
}

/// The CRF's scores in f64 with constraints applied.
pub(crate) struct CrfScores {
    pub(crate) transitions: Vec<f64>,
    pub(crate) start: Vec<f64>,
    pub(crate) end: Vec<f64>,
    pub(crate) k: usize,
}

impl CrfScores {
    pub(crate) fn params(&self) -> CrfParams<'_> {
        CrfParams {
            transitions: &self.transitions,
            start: &self.start,
            end: &self.end,
            k: self.k,
        }
    }
}

/// A mask the op owns.
#[derive(Clone, Debug)]
pub(crate) enum OwnedMask {
    Full,
    Lengths(Vec<usize>),
    Flags(Vec<bool>),
}

impl OwnedMask {
    pub(crate) fn as_core(&self) -> Mask<'_> {
        match self {
            OwnedMask::Full => Mask::Full,
            OwnedMask::Lengths(l) => Mask::Lengths(l),
            OwnedMask::Flags(f) => Mask::Flags(f),
        }
    }
}

/// Converts a core error into candle's.
pub(crate) fn core_err(e: chaincrf_core::Error) -> candle_core::Error {
    candle_core::Error::Msg(format!("CRF: {e}"))
}

/// The values of a contiguous f32 or f64 storage as f64.
pub(crate) fn read_f64(storage: &CpuStorage, layout: &Layout, what: &str) -> candle_core::Result<Vec<f64>> {
    let Some((a, b)) = layout.contiguous_offsets() else {
        bail!("CRF: {what} must be contiguous")
    };
    Ok(match storage {
        CpuStorage::F32(v) => v[a..b].iter().map(|&x| f64::from(x)).collect(),
        CpuStorage::F64(v) => v[a..b].to_vec(),
        other => bail!("CRF: {what} must be f32 or f64, got {:?}", other.dtype()),
    })
}

/// A tensor of `dtype` (f32 or f64) from f64 values.
pub(crate) fn storage_of(values: Vec<f64>, dtype: DType) -> candle_core::Result<CpuStorage> {
    Ok(match dtype {
        DType::F64 => CpuStorage::F64(values),
        DType::F32 => CpuStorage::F32(values.into_iter().map(|x| x as f32).collect()),
        other => bail!("CRF: f32 or f64 expected, got {other:?}"),
    })
}

fn tensor_like(values: Vec<f64>, like: &Tensor) -> candle_core::Result<Tensor> {
    let t = Tensor::from_vec(values, like.shape(), like.device())?;
    if like.dtype() == DType::F64 {
        Ok(t)
    } else {
        t.to_dtype(like.dtype())
    }
}

pub(crate) struct NllOp {
    pub(crate) batch: usize,
    pub(crate) time: usize,
    pub(crate) k: usize,
    pub(crate) tags: Vec<usize>,
    pub(crate) mask: OwnedMask,
    pub(crate) reduction: Reduction,
    pub(crate) constraints: Arc<Constraints>,
    /// The forward's loss and gradients (of the reduced loss; of the sum for
    /// [`Reduction::None`]).
    cache: Mutex<Option<MaskedLoss>>,
}

impl NllOp {
    pub(crate) fn new(
        (batch, time, k): (usize, usize, usize),
        tags: Vec<usize>,
        mask: OwnedMask,
        reduction: Reduction,
        constraints: Arc<Constraints>,
    ) -> Self {
        NllOp {
            batch,
            time,
            k,
            tags,
            mask,
            reduction,
            constraints,
            cache: Mutex::new(None),
        }
    }

    fn compute(&self, emissions: &[f64], packed: &[f64], weights: Option<&[f64]>) -> candle_core::Result<MaskedLoss> {
        if packed.len() != self.k * self.k + 2 * self.k {
            bail!("CRF: {} packed scores for {} labels", packed.len(), self.k);
        }
        let scores = self.constraints.apply(packed, self.k);
        let batch =
            PaddedBatch::new(emissions, self.batch, self.time, self.k, self.mask.as_core()).map_err(core_err)?;
        match weights {
            None => loss::nll_masked(&scores.params(), &batch, &self.tags, self.reduction),
            Some(w) => loss::nll_masked_weighted(&scores.params(), &batch, &self.tags, w),
        }
        .map_err(core_err)
    }
}

impl CustomOp2 for NllOp {
    fn name(&self) -> &'static str {
        "chaincrf-nll"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let emissions = read_f64(s1, l1, "emissions")?;
        let packed = read_f64(s2, l2, "CRF scores")?;
        let out = self.compute(&emissions, &packed, None)?;
        let (values, shape) = match self.reduction {
            Reduction::None => (out.per_sequence.clone(), Shape::from(self.batch)),
            _ => (vec![out.loss], Shape::from(())),
        };
        let storage = storage_of(values, s1.dtype())?;
        *self.cache.lock().expect("the cache lock is never held across a panic") = Some(out);
        Ok((storage, shape))
    }

    fn bwd(
        &self,
        emissions: &Tensor,
        packed: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let upstream = grad_res.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        let guard = self.cache.lock().expect("the cache lock is never held across a panic");
        let Some(cached) = guard.as_ref() else {
            bail!("CRF: backward before forward")
        };
        let (out, s) = if upstream.windows(2).all(|w| w[0] == w[1]) {
            (
                std::borrow::Cow::Borrowed(cached),
                upstream.first().copied().unwrap_or(0.0),
            )
        } else {
            // An unreduced loss with a different upstream gradient per
            // sequence: a second pass with those gradients as weights.
            if upstream.len() != self.batch {
                bail!(
                    "CRF: {} upstream gradients for {} sequences",
                    upstream.len(),
                    self.batch
                );
            }
            let e = emissions.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
            let p = packed.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
            (std::borrow::Cow::Owned(self.compute(&e, &p, Some(&upstream))?), 1.0)
        };
        let emission_grad = out.emission_grad.iter().map(|g| g * s).collect();
        let mut param_grad = Vec::with_capacity(self.k * self.k + 2 * self.k);
        for g in out.transition_grad.iter().chain(&out.start_grad).chain(&out.end_grad) {
            param_grad.push(g * s);
        }
        Ok((
            Some(tensor_like(emission_grad, emissions)?),
            Some(tensor_like(param_grad, packed)?),
        ))
    }
}
