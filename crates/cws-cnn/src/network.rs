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
            convolve(conv, s.kernel, &scratch.a, width, n, &mut scratch.b);
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

/// A "same" convolution of the `n` rows of `width` in `x` into `out`.
fn convolve(conv: &Affine, kernel: usize, x: &[f32], width: usize, n: usize, out: &mut Vec<f32>) {
    let f = conv.outputs;
    let p = kernel / 2;
    out.clear();
    out.resize(n * f, 0.0);
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
}
