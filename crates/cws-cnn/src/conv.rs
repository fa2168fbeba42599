//! The convolution layer as one candle custom op with its own backward.
//!
//! `y = mask ⊙ relu(U · W)`, where row `(b, t)` of `U` is the concatenation
//! of the input rows `t - p, …, t + p` of sequence `b` (zero rows outside
//! `0..time`) followed by a 1 (0 at padded positions), and `W` is `[kernel ·
//! channels + 1, filters]`: the weights with the bias as their last row.
//! Padded positions come out exactly 0 (they would otherwise see their real
//! neighbours and pass them on to the next layer), so each sentence of a
//! padded batch gets what it would get alone.
//!
//! Written with tensor operations (`pad`, `narrow`, `cat`, `matmul`, `relu`)
//! the same layer spent most of its time outside the matrix products: each
//! `narrow`'s backward pads its gradient to full size and adds it, the ReLU's
//! backward makes four passes, and every pass allocates. Here the forward is
//! one unfold (a copy) and one product, the backward one unfold, two products
//! (`Uᵀ·G` for the weights, `G·Wᵀ` for the input) and one fold (a scatter-add
//! of the windows back onto the rows). Products go through candle's `matmul`;
//! the unfold and fold are plain loops. The gradient is checked against
//! central differences in the tests.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, WithDType};
use std::sync::Arc;

/// The op: its shapes and the mask (`[batch · time]`, true = real position).
pub(crate) struct ConvRelu {
    pub(crate) batch: usize,
    pub(crate) time: usize,
    pub(crate) channels: usize,
    pub(crate) kernel: usize,
    pub(crate) filters: usize,
    pub(crate) mask: Arc<Vec<bool>>,
}

impl ConvRelu {
    fn rows(&self) -> usize {
        self.batch * self.time
    }

    fn width(&self) -> usize {
        self.kernel * self.channels + 1
    }

    /// `U` `[batch · time, kernel · channels + 1]` of the input rows `x`.
    fn unfold<T: WithDType>(&self, x: &[T]) -> Vec<T> {
        let (c, w, p) = (self.channels, self.width(), self.kernel / 2);
        let mut u = vec![T::zero(); self.rows() * w];
        for b in 0..self.batch {
            for t in 0..self.time {
                let r = b * self.time + t;
                let row = &mut u[r * w..(r + 1) * w];
                for j in 0..self.kernel {
                    if let Some(s) = (t + j).checked_sub(p).filter(|&s| s < self.time) {
                        let src = (b * self.time + s) * c;
                        row[j * c..(j + 1) * c].copy_from_slice(&x[src..src + c]);
                    }
                }
                if self.mask[r] {
                    row[w - 1] = T::one();
                }
            }
        }
        u
    }

    /// The input gradient from `dU`: each window's slice added back onto the
    /// row it was copied from (the bias column has no input).
    fn fold<T: WithDType>(&self, du: &[T]) -> Vec<T> {
        let (c, w, p) = (self.channels, self.width(), self.kernel / 2);
        let mut dx = vec![T::zero(); self.rows() * c];
        for b in 0..self.batch {
            for t in 0..self.time {
                let row = &du[(b * self.time + t) * w..];
                for j in 0..self.kernel {
                    if let Some(s) = (t + j).checked_sub(p).filter(|&s| s < self.time) {
                        let dst = &mut dx[(b * self.time + s) * c..(b * self.time + s + 1) * c];
                        for (d, &g) in dst.iter_mut().zip(&row[j * c..(j + 1) * c]) {
                            *d += g;
                        }
                    }
                }
            }
        }
        dx
    }

    fn forward<T: WithDType>(&self, x: &[T], w: &[T]) -> Result<Vec<T>> {
        let dev = &candle_core::Device::Cpu;
        let u = Tensor::from_vec(self.unfold(x), (self.rows(), self.width()), dev)?;
        let w = Tensor::from_slice(w, (self.width(), self.filters), dev)?;
        let mut y = u.matmul(&w)?.flatten_all()?.to_vec1::<T>()?;
        for (row, &on) in y.chunks_mut(self.filters).zip(self.mask.iter()) {
            for v in row {
                if !on || *v < T::zero() {
                    *v = T::zero();
                }
            }
        }
        Ok(y)
    }

    fn backward<T: WithDType>(&self, x: &Tensor, w: &Tensor, res: &Tensor, grad: &Tensor) -> Result<(Tensor, Tensor)> {
        let dev = &candle_core::Device::Cpu;
        let y = res.flatten_all()?.to_vec1::<T>()?;
        let mut g = grad.flatten_all()?.to_vec1::<T>()?;
        for (gi, &yi) in g.iter_mut().zip(&y) {
            if yi <= T::zero() {
                *gi = T::zero();
            }
        }
        let g = Tensor::from_vec(g, (self.rows(), self.filters), dev)?;
        let x = x.flatten_all()?.to_vec1::<T>()?;
        let u = Tensor::from_vec(self.unfold(&x), (self.rows(), self.width()), dev)?;
        let dw = u.t()?.matmul(&g)?;
        let du = g.matmul(&w.detach().t()?)?.flatten_all()?.to_vec1::<T>()?;
        let dx = Tensor::from_vec(self.fold(&du), (self.batch, self.time, self.channels), dev)?;
        Ok((dx, dw))
    }
}

fn slice<'a, T>(v: &'a [T], l: &Layout, what: &str) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => bail!("convolution: the {what} must be contiguous"),
    }
}

impl CustomOp2 for ConvRelu {
    fn name(&self) -> &'static str {
        "chaincrf-conv-relu"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        if l1.shape().dims() != [self.batch, self.time, self.channels]
            || l2.shape().dims() != [self.width(), self.filters]
        {
            bail!(
                "convolution: input {:?} and weights {:?} do not fit [{}, {}, {}] and [{}, {}]",
                l1.shape(),
                l2.shape(),
                self.batch,
                self.time,
                self.channels,
                self.width(),
                self.filters
            );
        }
        let shape = Shape::from((self.batch, self.time, self.filters));
        match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(w)) => Ok((
                CpuStorage::F32(self.forward(slice(x, l1, "input")?, slice(w, l2, "weights")?)?),
                shape,
            )),
            (CpuStorage::F64(x), CpuStorage::F64(w)) => Ok((
                CpuStorage::F64(self.forward(slice(x, l1, "input")?, slice(w, l2, "weights")?)?),
                shape,
            )),
            _ => bail!(
                "convolution: f32 or f64 input and weights of one dtype expected, got {:?}",
                s1.dtype()
            ),
        }
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = match x.dtype() {
            candle_core::DType::F32 => self.backward::<f32>(x, w, res, grad)?,
            candle_core::DType::F64 => self.backward::<f64>(x, w, res, grad)?,
            other => bail!("convolution: f32 or f64 expected, got {other:?}"),
        };
        Ok((Some(dx), Some(dw)))
    }
}
