//! The network's weights and its forward pass in plain Rust.
//!
//! Segmenting needs only this: an embedding lookup, the convolutions with ReLU
//! and the dense layer to tag scores, written as loops over contiguous rows
//! (the compiler vectorizes the inner `axpy`), so a program that segments
//! does not link candle. Training computes the same function with candle
//! tensors (`crate::train`); a test holds the two to each other.
//!
//! Layout of a convolution: its input at position `t` is the concatenation of
//! the rows at `t - p, …, t + p` (`p = (kernel - 1) / 2`, zero rows beyond the
//! ends: "same" padding), and its weight matrix is `[kernel · inputs,
//! outputs]`, row `j · inputs + c` for offset `j` and channel `c`.

use crate::error::{Layer, NetworkError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The network's sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CnnShape {
    /// Width of the character embeddings.
    pub embedding: usize,
    /// Filters (output channels) of every convolution.
    pub filters: usize,
    /// Number of convolutions.
    pub layers: usize,
    /// Kernel width of the convolutions (odd, for "same" padding).
    pub kernel: usize,
}

impl Default for CnnShape {
    /// The seed's network: embeddings of 128, three convolutions of 128
    /// filters with kernel 3.
    fn default() -> Self {
        CnnShape {
            embedding: 128,
            filters: 128,
            layers: 3,
            kernel: 3,
        }
    }
}

impl CnnShape {
    /// Checks the sizes.
    ///
    /// # Errors
    /// The [`NetworkError`] naming the bad size.
    pub fn check(&self) -> Result<(), NetworkError> {
        if self.embedding == 0 || self.filters == 0 {
            return Err(NetworkError::ZeroWidth);
        }
        if self.kernel & 1 == 0 {
            return Err(NetworkError::EvenKernel(self.kernel));
        }
        if self.embedding > 4096 || self.filters > 4096 || self.layers > 64 || self.kernel > 63 {
            return Err(NetworkError::SizeOutOfRange);
        }
        Ok(())
    }

    /// Input width of convolution `layer`.
    pub fn conv_inputs(&self, layer: usize) -> usize {
        if layer == 0 {
            self.embedding
        } else {
            self.filters
        }
    }

    /// Width of the rows the dense layer reads.
    pub fn top_width(&self) -> usize {
        if self.layers == 0 {
            self.embedding
        } else {
            self.filters
        }
    }
}

/// An affine map `x ↦ x·W + b` with `W` `[inputs, outputs]` row-major.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Affine {
    /// Input width.
    pub inputs: usize,
    /// Output width.
    pub outputs: usize,
    /// `[inputs, outputs]`, row-major.
    pub weight: Vec<f32>,
    /// `[outputs]`.
    pub bias: Vec<f32>,
}

impl Affine {
    fn check(&self, layer: Layer, inputs: usize, outputs: usize) -> Result<(), NetworkError> {
        if self.inputs != inputs
            || self.outputs != outputs
            || self.weight.len() != inputs * outputs
            || self.bias.len() != outputs
        {
            return Err(NetworkError::LayerShape { layer, inputs, outputs });
        }
        if self.weight.iter().chain(&self.bias).any(|w| !w.is_finite()) {
            return Err(NetworkError::NonFiniteWeight(layer));
        }
        Ok(())
    }
}

/// A trained network: vocabulary, embeddings, convolutions, dense layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CnnWeights {
    /// Sizes.
    pub shape: CnnShape,
    /// Number of tags (outputs of the dense layer).
    pub num_tags: usize,
    /// The known (width-normalized) characters; character `vocab[i]` has
    /// embedding row `i + 1`, row 0 is every other character.
    pub vocab: Vec<char>,
    /// `[vocab.len() + 1, embedding]`, row-major.
    pub embedding: Vec<f32>,
    /// The convolutions, `[kernel · inputs, filters]` each.
    pub convs: Vec<Affine>,
    /// The dense layer, `[top width, tags]`.
    pub output: Affine,
    #[serde(skip)]
    index: HashMap<char, u32>,
}

impl CnnWeights {
    /// Assembles a network and checks that the pieces fit together.
    ///
    /// # Errors
    /// The [`NetworkError`] naming the first piece that does not fit.
    pub fn new(
        shape: CnnShape,
        num_tags: usize,
        vocab: Vec<char>,
        embedding: Vec<f32>,
        convs: Vec<Affine>,
        output: Affine,
    ) -> Result<Self, NetworkError> {
        let mut w = CnnWeights {
            shape,
            num_tags,
            vocab,
            embedding,
            convs,
            output,
            index: HashMap::new(),
        };
        w.finish()?;
        Ok(w)
    }

    /// Checks a network read from a file and builds its character index.
    ///
    /// # Errors
    /// As [`CnnWeights::new`].
    pub fn finish(&mut self) -> Result<(), NetworkError> {
        let s = self.shape;
        s.check()?;
        if self.num_tags == 0 {
            return Err(NetworkError::NoTags);
        }
        if self.embedding.len() != (self.vocab.len() + 1) * s.embedding {
            return Err(NetworkError::EmbeddingShape {
                rows: self.vocab.len() + 1,
                width: s.embedding,
            });
        }
        if self.embedding.iter().any(|w| !w.is_finite()) {
            return Err(NetworkError::NonFiniteEmbedding);
        }
        if self.convs.len() != s.layers {
            return Err(NetworkError::LayerCount {
                convs: self.convs.len(),
                layers: s.layers,
            });
        }
        for (l, c) in self.convs.iter().enumerate() {
            c.check(Layer::Convolution(l + 1), s.kernel * s.conv_inputs(l), s.filters)?;
        }
        self.output.check(Layer::Dense, s.top_width(), self.num_tags)?;
        self.index = HashMap::with_capacity(self.vocab.len());
        for (i, &c) in self.vocab.iter().enumerate() {
            if self.index.insert(c, i as u32 + 1).is_some() {
                return Err(NetworkError::DuplicateCharacter(c));
            }
        }
        Ok(())
    }

    /// The embedding row of a (normalized) character: 0 for unknown ones.
    pub fn char_id(&self, c: char) -> u32 {
        self.index.get(&c).copied().unwrap_or(0)
    }

    /// The tag scores of the normalized characters `chars`, added to `out`
    /// (`chars.len() × num_tags`, row-major), computed in `f32` and widened.
    pub fn add_scores(&self, chars: &[char], out: &mut [f64], scratch: &mut Scratch) {
        let n = chars.len();
        let s = self.shape;
        let e = s.embedding;
        let x = &mut scratch.a;
        x.clear();
        x.reserve(n * e);
        for &c in chars {
            let row = self.char_id(c) as usize * e;
            x.extend_from_slice(&self.embedding[row..row + e]);
        }
        let mut width = e;
        for conv in &self.convs {
            convolve(
                conv,
                s.kernel,
                &scratch.a,
                width,
                n,
                &mut scratch.b,
                &mut scratch.padded,
            );
            for v in &mut scratch.b {
                *v = v.max(0.0);
            }
            std::mem::swap(&mut scratch.a, &mut scratch.b);
            width = conv.outputs;
        }
        let k = self.num_tags;
        let mut row = vec![0f32; k];
        for t in 0..n {
            row.copy_from_slice(&self.output.bias);
            affine_row(&self.output, &scratch.a[t * width..(t + 1) * width], &mut row);
            for (o, &v) in out[t * k..(t + 1) * k].iter_mut().zip(&row) {
                *o += f64::from(v);
            }
        }
    }
}

/// Reusable buffers of [`CnnWeights::add_scores`].
#[derive(Debug, Default)]
pub struct Scratch {
    a: Vec<f32>,
    b: Vec<f32>,
    padded: Vec<f32>,
}

/// `out += x · W` for one row `x`; zero inputs (most, after a ReLU) are skipped.
#[inline]
fn affine_row(a: &Affine, x: &[f32], out: &mut [f32]) {
    for (i, &v) in x.iter().enumerate() {
        if v != 0.0 {
            let w = &a.weight[i * a.outputs..(i + 1) * a.outputs];
            for (o, &wi) in out.iter_mut().zip(w) {
                *o += v * wi;
            }
        }
    }
}

/// Output rows computed together by [`convolve`].
const TILE_ROWS: usize = 4;
/// Output columns computed together by [`convolve`] (two AVX registers).
const TILE_COLS: usize = 16;

/// A "same" convolution of the `n` rows of `width` in `x` into `out`
/// (`padded` is scratch space).
///
/// Computed in tiles of 4 rows × 16 outputs kept in registers across the
/// whole sum (each weight row loaded once per 4 positions, where a row at a
/// time loaded and stored its outputs for every input), with AVX2 when the
/// CPU has it. Every output is still `bias + Σⱼ Σ_c x·w` added in the same
/// order (offset, then channel) with a separate multiply and add (no fused
/// multiply-add), so the result is the row-at-a-time loop's bit for bit.
/// That loop skipped zero inputs (most, after a ReLU) and the padding;
/// here they are added as products of zero, `±0`, which leave every sum
/// but an exact zero as it was (a test holds the two to each other).
fn convolve(
    conv: &Affine,
    kernel: usize,
    x: &[f32],
    width: usize,
    n: usize,
    out: &mut Vec<f32>,
    padded: &mut Vec<f32>,
) {
    let p = kernel / 2;
    // The input with `p` zero rows before, `p` after, and enough more after
    // for the last tile's rows past the end.
    padded.clear();
    padded.resize(p * width, 0.0);
    padded.extend_from_slice(&x[..n * width]);
    padded.resize((n + 2 * p + TILE_ROWS) * width, 0.0);
    out.clear();
    out.resize(n * conv.outputs, 0.0);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            unsafe { convolve_avx2(conv, kernel, padded, width, n, out) };
            return;
        }
    }
    convolve_tiles(conv, kernel, padded, width, n, out);
}

/// [`convolve_tiles`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn convolve_avx2(conv: &Affine, kernel: usize, padded: &[f32], width: usize, n: usize, out: &mut [f32]) {
    convolve_tiles(conv, kernel, padded, width, n, out);
}

/// The convolution of [`convolve`] over its padded input: output row `t`
/// reads padded rows `t..t + kernel`.
#[inline(always)]
fn convolve_tiles(conv: &Affine, kernel: usize, padded: &[f32], width: usize, n: usize, out: &mut [f32]) {
    let f = conv.outputs;
    let full_cols = f - f % TILE_COLS;
    for t0 in (0..n).step_by(TILE_ROWS) {
        let rows = TILE_ROWS.min(n - t0);
        for col in (0..full_cols).step_by(TILE_COLS) {
            let bias: &[f32; TILE_COLS] = conv.bias[col..col + TILE_COLS].try_into().expect("a tile of biases");
            let mut acc = [*bias; TILE_ROWS];
            for j in 0..kernel {
                let weights = &conv.weight[j * width * f..(j + 1) * width * f];
                let inputs = &padded[(t0 + j) * width..(t0 + j + TILE_ROWS) * width];
                for c in 0..width {
                    let w: &[f32; TILE_COLS] = weights[c * f + col..c * f + col + TILE_COLS]
                        .try_into()
                        .expect("a tile of weights");
                    for (r, a) in acc.iter_mut().enumerate() {
                        let v = inputs[r * width + c];
                        for (ai, &wi) in a.iter_mut().zip(w) {
                            *ai += v * wi;
                        }
                    }
                }
            }
            for (r, a) in acc.iter().enumerate().take(rows) {
                out[(t0 + r) * f + col..(t0 + r) * f + col + TILE_COLS].copy_from_slice(a);
            }
        }
        // Outputs past the last full tile of columns, one at a time.
        for col in full_cols..f {
            for r in 0..rows {
                let mut a = conv.bias[col];
                for j in 0..kernel {
                    let row = &padded[(t0 + r + j) * width..(t0 + r + j + 1) * width];
                    for (c, &v) in row.iter().enumerate() {
                        a += v * conv.weight[(j * width + c) * f + col];
                    }
                }
                out[(t0 + r) * f + col] = a;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The convolution as it was written first: a row at a time, zero
    /// inputs and the padding skipped.
    fn convolve_reference(conv: &Affine, kernel: usize, x: &[f32], width: usize, n: usize) -> Vec<f32> {
        let f = conv.outputs;
        let p = kernel / 2;
        let mut out = vec![0.0; n * f];
        for t in 0..n {
            let o = &mut out[t * f..(t + 1) * f];
            o.copy_from_slice(&conv.bias);
            for j in 0..kernel {
                let Some(s) = (t + j).checked_sub(p).filter(|&s| s < n) else {
                    continue;
                };
                let rows = &conv.weight[j * width * f..(j + 1) * width * f];
                let xs = &x[s * width..(s + 1) * width];
                for (c, &v) in xs.iter().enumerate() {
                    if v != 0.0 {
                        for (oi, &wi) in o.iter_mut().zip(&rows[c * f..(c + 1) * f]) {
                            *oi += v * wi;
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_tiled_convolution_is_the_row_at_a_time_one_bit_for_bit() {
        let mut seed = 17u64;
        let mut next = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 4.0
        };
        let (mut padded, mut out) = (Vec::new(), Vec::new());
        for case in 0..60 {
            let kernel = [1, 3, 5][case % 3];
            let width = [1, 7, 16, 33][case % 4];
            let f = [1, 5, 16, 40][(case / 4) % 4];
            let n = case % 11;
            // Inputs as after a ReLU: about half exact zeros.
            let x: Vec<f32> = (0..n * width).map(|_| next().max(0.0)).collect();
            let conv = Affine {
                inputs: kernel * width,
                outputs: f,
                weight: (0..kernel * width * f).map(|_| next()).collect(),
                bias: (0..f).map(|_| next()).collect(),
            };
            convolve(&conv, kernel, &x, width, n, &mut out, &mut padded);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&out),
                bits(&convolve_reference(&conv, kernel, &x, width, n)),
                "case {case}: kernel {kernel}, width {width}, {f} outputs, n = {n}"
            );
        }
    }
}
