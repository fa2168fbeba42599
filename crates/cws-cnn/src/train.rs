//! Training the CNN+CRF segmenter with candle (feature `train`).
//!
//! The network is written with candle tensors over variables of our own
//! (candle's CPU generator cannot be seeded, so every weight starts from
//! [`SplitMix64`] with the run's seed); the loss is `chaincrf-candle`'s CRF
//! layer; the optimizer is Adam, written here so that its moments are ours to
//! save: a checkpoint holds the weights, both moments and the step count, and
//! a resumed run continues with the same numbers as an uninterrupted one (on
//! the same number of threads: candle's matrix products split their sums by
//! thread count, so results can differ in the last bits between thread
//! counts, and training amplifies that).
//!
//! ## The convolution
//! candle 0.11's `conv1d` has a wrong kernel gradient for batches of more than
//! one sequence, so each convolution here is a custom op of this crate
//! (`crate::conv`): the input is unfolded into `[batch · time, kernel ·
//! channels + 1]` (zero rows beyond the ends, the mask bit last) and
//! multiplied by the weights with the bias as their last row — one matrix
//! product per layer, the layout `crate::network` computes in plain Rust.
//! Positions past a sequence's end are zeroed after the embedding and by
//! every layer, so a padded batch computes for each sentence what the
//! segmenter computes for it alone.
//!
//! ## Batches
//! Sentences are sorted by length and cut into batches of at most
//! `batch_size` sentences and `max_batch_chars` padded characters (long
//! sentences make smaller batches, bounding memory); each epoch visits the
//! batches in an order drawn from the seed and the epoch number.

use crate::conv::ConvRelu;
use crate::error::{model_error, CheckpointProblem, Error, OptionError, Result};
use crate::model::{to_model, CrfWeights};
use crate::network::{Affine, CnnShape, CnnWeights};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use chaincrf_candle::{Crf, Reduction, SequenceMask};
use chaincrf_cws::{normalize, Scorer, Sentence, TagScheme};
use chaincrf_model::Checkpoint;
use chaincrf_model::Model;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The options of a training run.
#[derive(Clone, Debug)]
pub struct CnnTrainOptions {
    /// Tag scheme.
    pub scheme: TagScheme,
    /// Network sizes.
    pub shape: CnnShape,
    /// Epochs at most.
    pub epochs: usize,
    /// Sentences per batch at most.
    pub batch_size: usize,
    /// Padded characters per batch at most (a batch of long sentences holds
    /// fewer than `batch_size`).
    pub max_batch_chars: usize,
    /// Adam's step size.
    pub learning_rate: f64,
    /// Seed of the initial weights and of the batch order.
    pub seed: u64,
    /// Characters seen fewer times than this in the training part share the
    /// unknown-character embedding (so that it is trained on rare ones).
    pub min_char_count: usize,
    /// Hold out every N-th sentence (as `chaincrf cws train --dev-every`).
    pub dev_every: Option<usize>,
    /// Stop when the held-out word F1 has not improved for this many epochs
    /// and keep the best epoch's weights (as for the feature segmenter).
    pub patience: Option<usize>,
}

impl Default for CnnTrainOptions {
    fn default() -> Self {
        CnnTrainOptions {
            scheme: TagScheme::Bmes,
            shape: CnnShape::default(),
            epochs: 8,
            batch_size: 128,
            max_batch_chars: 16_384,
            learning_rate: 2e-3,
            seed: 1,
            min_char_count: 2,
            dev_every: None,
            patience: None,
        }
    }
}

impl CnnTrainOptions {
    /// Checks the options.
    ///
    /// # Errors
    /// [`Error::Options`] naming the bad option.
    pub fn check(&self) -> Result<()> {
        let bad = |e: OptionError| Err(Error::Options(e));
        if let Err(e) = self.shape.check() {
            return bad(OptionError::Shape(e));
        }
        if self.epochs == 0 {
            return bad(OptionError::NoEpochs);
        }
        if self.batch_size == 0 || self.max_batch_chars == 0 {
            return bad(OptionError::EmptyBatch);
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(OptionError::LearningRate);
        }
        if self.dev_every.is_some_and(|n| n < 2) {
            return bad(OptionError::DevEvery);
        }
        if self.patience == Some(0) {
            return bad(OptionError::ZeroPatience);
        }
        if self.patience.is_some() && self.dev_every.is_none() {
            return bad(OptionError::PatienceWithoutHeldOut);
        }
        Ok(())
    }

    /// What identifies a run for resuming: everything that changes its
    /// trajectory (the number of epochs and the patience do not).
    fn fingerprint(&self, sentences: &[Sentence]) -> u64 {
        let mut h = Fnv::default();
        h.bytes(
            format!(
                "cnn v1 {:?} {:?} {} {} {} {} {} {:?}",
                self.scheme,
                self.shape,
                self.batch_size,
                self.max_batch_chars,
                self.learning_rate,
                self.seed,
                self.min_char_count,
                self.dev_every
            )
            .as_bytes(),
        );
        for s in sentences {
            for w in s {
                h.bytes(w.as_bytes());
                h.bytes(b" ");
            }
            h.bytes(b"\n");
        }
        h.0
    }
}

/// Where checkpoints go and whether to resume from one.
#[derive(Clone, Debug, Default)]
pub struct Checkpoints {
    /// The checkpoint file (`MODEL.checkpoint` for the CLI); `None` writes none.
    pub path: Option<PathBuf>,
    /// Write it after every N-th epoch (and always on an interrupt).
    pub every: Option<usize>,
    /// Continue from the file at `path`.
    pub resume: bool,
}

/// One epoch's report.
#[derive(Clone, Debug)]
pub struct EpochProgress {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean negative log-likelihood per training sentence over the epoch.
    pub loss: f64,
    /// Word F1 of the held-out part with this epoch's weights.
    pub heldout_f1: Option<f64>,
    /// Seconds the epoch took (held-out scoring included).
    pub seconds: f64,
    /// Whether a checkpoint was written after it.
    pub checkpointed: bool,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CnnStop {
    /// All epochs ran.
    Epochs,
    /// The held-out F1 did not improve for `patience` epochs.
    EarlyStopped,
    /// The stop flag was raised; the checkpoint (if any) holds the state.
    Interrupted,
}

/// A trained CNN segmenter and how training went.
#[derive(Debug)]
pub struct CnnTrained {
    /// The model to save; `None` after an interrupt.
    pub model: Option<Model>,
    /// How the run ended.
    pub stop: CnnStop,
    /// Epochs completed.
    pub epochs: usize,
    /// The best held-out F1 and its epoch.
    pub best: Option<(f64, usize)>,
    /// Training sentences.
    pub train_sentences: usize,
    /// Held-out sentences.
    pub dev_sentences: usize,
    /// Characters known to the network.
    pub vocabulary: usize,
}

/// The values of the variables (or of one of Adam's moments), in the fixed order.
type Values = Vec<Vec<f32>>;

/// The optimizer and progress state a checkpoint stores.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct TrainState {
    fingerprint: u64,
    vocab: Vec<char>,
    /// Epochs completed.
    epoch: usize,
    /// Batches of the next epoch already done (after an interrupt).
    batch: usize,
    /// Loss sum and sentence count of those batches.
    loss_sum: f64,
    loss_sentences: usize,
    step: u64,
    params: Values,
    m: Values,
    v: Values,
    best: Option<(f64, usize, Values)>,
}

/// SplitMix64: the seeded generator of initial weights and batch orders.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[-bound, bound)`.
    pub fn uniform(&mut self, bound: f64) -> f64 {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        (2.0 * u - 1.0) * bound
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

#[derive(Default)]
struct Fnv(u64);

impl Fnv {
    fn bytes(&mut self, b: &[u8]) {
        if self.0 == 0 {
            self.0 = 0xcbf2_9ce4_8422_2325;
        }
        for &x in b {
            self.0 = (self.0 ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn cerr(e: candle_core::Error) -> Error {
    Error::Candle(e)
}

/// The network and CRF as candle variables, in a fixed order: embedding,
/// each convolution's weight and bias, the dense weight and bias, then the
/// CRF's transitions, start and end.
pub struct CnnNet {
    shape: CnnShape,
    num_tags: usize,
    vocab: Vec<char>,
    vars: Vec<Var>,
    crf: Crf,
}

impl CnnNet {
    /// A network over `vocab` (plus the unknown character) for `scheme`,
    /// initialised from `seed`: embeddings and weights uniform (He's bound for
    /// the ReLU layers, Glorot's for the dense one), biases and CRF scores 0.
    /// The CRF forbids the scheme's illegal tag pairs, starts and ends.
    ///
    /// # Errors
    /// Candle errors (none expected on the CPU).
    pub fn new(shape: CnnShape, scheme: TagScheme, vocab: Vec<char>, seed: u64, dtype: DType) -> Result<Self> {
        let dev = &Device::Cpu;
        let mut rng = SplitMix64::new(seed);
        let mut var = |dims: &[usize], bound: f64| -> Result<Var> {
            let n: usize = dims.iter().product();
            let values: Vec<f64> = (0..n).map(|_| rng.uniform(bound)).collect();
            let t = Tensor::from_vec(values, dims, dev)
                .and_then(|t| t.to_dtype(dtype))
                .map_err(cerr)?;
            Var::from_tensor(&t).map_err(cerr)
        };
        let k = scheme.num_tags();
        let mut vars = vec![var(
            &[vocab.len() + 1, shape.embedding],
            (3.0 / shape.embedding as f64).sqrt(),
        )?];
        for l in 0..shape.layers {
            let fan_in = shape.kernel * shape.conv_inputs(l);
            vars.push(var(&[fan_in, shape.filters], (6.0 / fan_in as f64).sqrt())?);
            vars.push(var(&[shape.filters], 0.0)?);
        }
        let top = shape.top_width();
        vars.push(var(&[top, k], (6.0 / (top + k) as f64).sqrt())?);
        vars.push(var(&[k], 0.0)?);
        // The CRF layer takes its variables from a VarMap by name: hand it ours.
        let crf_vars = [var(&[k, k], 0.0)?, var(&[k], 0.0)?, var(&[k], 0.0)?];
        let map = candle_nn::VarMap::new();
        {
            let mut data = map.data().lock().map_err(|_| Error::Poisoned)?;
            for (name, v) in ["transitions", "start", "end"].iter().zip(&crf_vars) {
                data.insert((*name).to_owned(), v.clone());
            }
        }
        let mut crf = Crf::new(k, candle_nn::VarBuilder::from_varmap(&map, dtype, dev)).map_err(cerr)?;
        vars.extend(crf_vars);
        for i in 0..k as u32 {
            for j in 0..k as u32 {
                if !scheme.allowed_transition(i, j) {
                    crf.forbid_transition(i as usize, j as usize).map_err(cerr)?;
                }
            }
            if !scheme.allowed_start(i) {
                crf.forbid_start(i as usize).map_err(cerr)?;
            }
            if !scheme.allowed_end(i) {
                crf.forbid_end(i as usize).map_err(cerr)?;
            }
        }
        Ok(CnnNet {
            shape,
            num_tags: k,
            vocab,
            vars,
            crf,
        })
    }

    /// The variables, in the fixed order.
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// The CRF layer.
    pub fn crf(&self) -> &Crf {
        &self.crf
    }

    /// Tag scores `[batch, time, tags]` of `tokens` `[batch, time]` (u32
    /// embedding rows) with `mask` `[batch, time, 1]` (1 on, 0 off, the
    /// network's dtype).
    ///
    /// # Errors
    /// Candle errors (wrong shapes).
    pub fn forward(&self, tokens: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        let s = self.shape;
        let mut x = self.vars[0]
            .as_tensor()
            .index_select(&tokens.flatten_all()?, 0)?
            .reshape((b, t, s.embedding))?
            .broadcast_mul(mask)?;
        let on: Vec<bool> = mask
            .flatten_all()?
            .to_dtype(DType::F64)?
            .to_vec1::<f64>()?
            .iter()
            .map(|&m| m != 0.0)
            .collect();
        let on = Arc::new(on);
        for l in 0..s.layers {
            let (w, bias) = (&self.vars[1 + 2 * l], &self.vars[2 + 2 * l]);
            let weights = Tensor::cat(&[w.as_tensor(), &bias.as_tensor().unsqueeze(0)?], 0)?;
            let op = ConvRelu {
                batch: b,
                time: t,
                channels: s.conv_inputs(l),
                kernel: s.kernel,
                filters: s.filters,
                mask: on.clone(),
            };
            x = x.contiguous()?.apply_op2(&weights, op)?;
        }
        let o = 1 + 2 * s.layers;
        x.reshape((b * t, s.top_width()))?
            .matmul(self.vars[o].as_tensor())?
            .broadcast_add(self.vars[o + 1].as_tensor())?
            .reshape((b, t, self.num_tags))
    }

    /// The variables' values as `f32` vectors.
    fn values(&self) -> Result<Values> {
        self.vars
            .iter()
            .map(|v| {
                v.as_tensor()
                    .flatten_all()
                    .and_then(|t| t.to_dtype(DType::F32))
                    .and_then(|t| t.to_vec1::<f32>())
                    .map_err(cerr)
            })
            .collect()
    }

    fn set_values(&self, values: &[Vec<f32>]) -> Result<()> {
        if values.len() != self.vars.len() {
            return Err(Error::Checkpoint(CheckpointProblem::VariableCount));
        }
        for (v, x) in self.vars.iter().zip(values) {
            if x.len() != v.elem_count() {
                return Err(Error::Checkpoint(CheckpointProblem::VariableSize));
            }
            let t = Tensor::from_slice(x, v.shape(), &Device::Cpu)
                .and_then(|t| t.to_dtype(v.dtype()))
                .map_err(cerr)?;
            v.set(&t).map_err(cerr)?;
        }
        Ok(())
    }

    /// The segmentation model of `values` (as [`CnnNet::values`] returns).
    fn model_of(&self, scheme: TagScheme, values: &[Vec<f32>]) -> Result<Model> {
        let s = self.shape;
        let affine = |w: &Vec<f32>, b: &Vec<f32>| Affine {
            inputs: w.len() / b.len(),
            outputs: b.len(),
            weight: w.clone(),
            bias: b.clone(),
        };
        let convs = (0..s.layers)
            .map(|l| affine(&values[1 + 2 * l], &values[2 + 2 * l]))
            .collect();
        let o = 1 + 2 * s.layers;
        let network = CnnWeights::new(
            s,
            self.num_tags,
            self.vocab.clone(),
            values[0].clone(),
            convs,
            affine(&values[o], &values[o + 1]),
        )
        .map_err(Error::Network)?;
        let crf = CrfWeights {
            transitions: values[o + 2].clone(),
            start: values[o + 3].clone(),
            end: values[o + 4].clone(),
        };
        to_model(scheme, &network, &crf)
    }

    /// The segmentation model of the current weights.
    ///
    /// # Errors
    /// As [`crate::to_model`].
    pub fn to_model(&self, scheme: TagScheme) -> Result<Model> {
        self.model_of(scheme, &self.values()?)
    }
}

/// Adam with the usual constants (β₁ 0.9, β₂ 0.999, ε 1e-8).
struct Adam {
    lr: f64,
    step: u64,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl Adam {
    fn new(vars: &[Var], lr: f64) -> Result<Self> {
        let zeros = |v: &Var| v.as_tensor().zeros_like().map_err(cerr);
        Ok(Adam {
            lr,
            step: 0,
            m: vars.iter().map(zeros).collect::<Result<_>>()?,
            v: vars.iter().map(zeros).collect::<Result<_>>()?,
        })
    }

    fn update(&mut self, vars: &[Var], grads: &GradStore) -> candle_core::Result<()> {
        const B1: f64 = 0.9;
        const B2: f64 = 0.999;
        self.step += 1;
        let c1 = 1.0 - B1.powi(self.step as i32);
        let c2 = 1.0 - B2.powi(self.step as i32);
        for (i, var) in vars.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else { continue };
            // Detached: the moments must not keep this step's graph alive.
            let g = g.detach();
            self.m[i] = ((&self.m[i] * B1)? + (&g * (1.0 - B1))?)?.detach();
            self.v[i] = ((&self.v[i] * B2)? + (g.sqr()? * (1.0 - B2))?)?.detach();
            let denom = (self.v[i].affine(1.0 / c2, 0.0)?.sqrt()? + 1e-8)?;
            let delta = (self.m[i].affine(self.lr / c1, 0.0)? / denom)?;
            var.set(&var.as_tensor().detach().sub(&delta)?)?;
        }
        Ok(())
    }

    fn moments(&self) -> Result<(Values, Values)> {
        let host = |ts: &[Tensor]| -> Result<Values> {
            ts.iter()
                .map(|t| {
                    t.flatten_all()
                        .and_then(|t| t.to_dtype(DType::F32))
                        .and_then(|t| t.to_vec1::<f32>())
                        .map_err(cerr)
                })
                .collect()
        };
        Ok((host(&self.m)?, host(&self.v)?))
    }

    fn restore(&mut self, vars: &[Var], m: &[Vec<f32>], v: &[Vec<f32>], step: u64) -> Result<()> {
        if m.len() != vars.len() || v.len() != vars.len() {
            return Err(Error::Checkpoint(CheckpointProblem::MomentCount));
        }
        for (i, var) in vars.iter().enumerate() {
            if m[i].len() != var.elem_count() || v[i].len() != var.elem_count() {
                return Err(Error::Checkpoint(CheckpointProblem::MomentSize));
            }
            let t = |x: &Vec<f32>| {
                Tensor::from_slice(x, var.shape(), &Device::Cpu)
                    .and_then(|t| t.to_dtype(var.dtype()))
                    .map_err(cerr)
            };
            self.m[i] = t(&m[i])?;
            self.v[i] = t(&v[i])?;
        }
        self.step = step;
        Ok(())
    }
}

/// One training sentence: embedding rows and gold tags.
struct Example {
    ids: Vec<u32>,
    tags: Vec<u32>,
}

/// The known characters of the training part: those seen at least
/// `min_count` times, most frequent first (ties by code point).
fn vocabulary(train: &[&Sentence], min_count: usize) -> Vec<char> {
    let mut counts: HashMap<char, usize> = HashMap::new();
    for s in train {
        for w in s.iter() {
            for c in w.chars() {
                *counts.entry(chaincrf_cws::normalize_char(c)).or_default() += 1;
            }
        }
    }
    let mut vocab: Vec<(char, usize)> = counts.into_iter().filter(|&(_, n)| n >= min_count.max(1)).collect();
    vocab.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    vocab.into_iter().map(|(c, _)| c).collect()
}

/// Batches of example indices: sorted by length, cut by count and padded size.
fn make_batches(examples: &[Example], batch_size: usize, max_chars: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|&i| examples[i].ids.len());
    let mut batches = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    for i in order {
        let len = examples[i].ids.len();
        if !cur.is_empty() && (cur.len() == batch_size || (cur.len() + 1) * len > max_chars) {
            batches.push(std::mem::take(&mut cur));
        }
        cur.push(i);
    }
    if !cur.is_empty() {
        batches.push(cur);
    }
    batches
}

/// The padded tensors of one batch: tokens, tags, mask `[b, t, 1]`, lengths.
fn batch_tensors(
    examples: &[Example],
    batch: &[usize],
    dtype: DType,
) -> candle_core::Result<(Tensor, Tensor, Tensor, Vec<usize>)> {
    let t = batch.iter().map(|&i| examples[i].ids.len()).max().unwrap_or(0);
    let b = batch.len();
    let (mut ids, mut tags, mut mask) = (vec![0u32; b * t], vec![0u32; b * t], vec![0f32; b * t]);
    let mut lengths = Vec::with_capacity(b);
    for (r, &i) in batch.iter().enumerate() {
        let e = &examples[i];
        ids[r * t..r * t + e.ids.len()].copy_from_slice(&e.ids);
        tags[r * t..r * t + e.tags.len()].copy_from_slice(&e.tags);
        mask[r * t..r * t + e.ids.len()].fill(1.0);
        lengths.push(e.ids.len());
    }
    let dev = &Device::Cpu;
    Ok((
        Tensor::from_vec(ids, (b, t), dev)?,
        Tensor::from_vec(tags, (b, t), dev)?,
        Tensor::from_vec(mask, (b, t, 1), dev)?.to_dtype(dtype)?,
        lengths,
    ))
}

/// The word F1 of `model` on `dev`, segmenting as `chaincrf cws segment` does.
fn heldout_f1(model: Model, dev: &[&Sentence]) -> Result<f64> {
    let seg = crate::segmenter_from_model(model)?;
    let pred: Vec<Result<String>> = dev
        .par_iter()
        .map_init(
            || seg.session(),
            |session, s| {
                let text = s.concat();
                let words = session.segment(&text, false)?;
                Ok(words
                    .iter()
                    .map(|w| &text[w.span.clone()])
                    .collect::<Vec<_>>()
                    .join(" "))
            },
        )
        .collect();
    let mut scorer = Scorer::new(None);
    for (s, p) in dev.iter().zip(pred) {
        scorer.add_line(&s.join(" "), &p?)?;
    }
    Ok(scorer.score().f1)
}

/// Shuffles `0..n` with the generator of `seed` and `epoch`.
fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut rng = SplitMix64::new(seed ^ (epoch as u64 + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93));
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    order
}

fn load_state(path: &Path, fingerprint: u64) -> Result<TrainState> {
    let c = chaincrf_model::load_checkpoint(path).map_err(|e| model_error(e.to_string()))?;
    let state: TrainState = chaincrf_model::decode_payload(&c.optimizer)
        .map_err(|e| model_error(format!("{}: not a CNN training checkpoint: {e}", path.display())))?;
    if state.fingerprint != fingerprint || c.fingerprint != fingerprint {
        return Err(model_error(format!(
            "{}: the checkpoint was written for another corpus or other options",
            path.display()
        )));
    }
    Ok(state)
}

/// Trains the CNN+CRF segmenter on `sentences` (each a list of words).
/// `on_epoch` hears about each epoch; `stop`, when raised, ends the run after
/// the current batch (writing a checkpoint when `checkpoints.path` is set).
///
/// # Errors
/// [`Error::Options`] for bad options, [`Error::NoTrainingSentences`],
/// [`Error::ResumeWithoutCheckpoint`], a checkpoint that does not belong to
/// this run, and I/O errors writing one.
pub fn train_cnn(
    sentences: &[Sentence],
    options: &CnnTrainOptions,
    checkpoints: &Checkpoints,
    stop: Option<Arc<AtomicBool>>,
    on_epoch: &mut dyn FnMut(&EpochProgress),
) -> Result<CnnTrained> {
    options.check()?;
    let scheme = options.scheme;
    let held = |i: usize| matches!(options.dev_every, Some(n) if i % n == n - 1);
    let (mut train, mut dev): (Vec<&Sentence>, Vec<&Sentence>) = (Vec::new(), Vec::new());
    for (i, s) in sentences.iter().enumerate() {
        if s.iter().all(|w| w.is_empty()) {
            continue;
        }
        if held(i) {
            dev.push(s);
        } else {
            train.push(s);
        }
    }
    if train.is_empty() {
        return Err(Error::NoTrainingSentences);
    }
    let fingerprint = options.fingerprint(sentences);
    let state = match (&checkpoints.path, checkpoints.resume) {
        (Some(p), true) => Some(load_state(p, fingerprint)?),
        (None, true) => return Err(Error::ResumeWithoutCheckpoint),
        _ => None,
    };
    let vocab = match &state {
        Some(s) => s.vocab.clone(),
        None => vocabulary(&train, options.min_char_count),
    };
    let dtype = DType::F32;
    let net = CnnNet::new(options.shape, scheme, vocab, options.seed, dtype)?;
    let examples: Vec<Example> = {
        let mut lookup = HashMap::new();
        for (i, &c) in net.vocab.iter().enumerate() {
            lookup.insert(c, i as u32 + 1);
        }
        train
            .iter()
            .map(|s| Example {
                ids: normalize(&s.concat())
                    .iter()
                    .map(|c| lookup.get(c).copied().unwrap_or(0))
                    .collect(),
                tags: scheme.tags_from_words(s),
            })
            .collect()
    };
    let batches = make_batches(&examples, options.batch_size, options.max_batch_chars);
    let mut adam = Adam::new(net.vars(), options.learning_rate)?;
    let (mut first_epoch, mut first_batch, mut loss_sum, mut loss_sentences) = (0, 0, 0.0, 0);
    let mut best: Option<(f64, usize, Values)> = None;
    if let Some(s) = state {
        net.set_values(&s.params)?;
        adam.restore(net.vars(), &s.m, &s.v, s.step)?;
        (first_epoch, first_batch, loss_sum, loss_sentences) = (s.epoch, s.batch, s.loss_sum, s.loss_sentences);
        best = s.best;
    }
    let save = |epoch: usize,
                batch: usize,
                loss_sum: f64,
                loss_sentences: usize,
                adam: &Adam,
                best: &Option<(f64, usize, Values)>|
     -> Result<()> {
        let Some(path) = &checkpoints.path else { return Ok(()) };
        let params = net.values()?;
        let (m, v) = adam.moments()?;
        let state = TrainState {
            fingerprint,
            vocab: net.vocab.clone(),
            epoch,
            batch,
            loss_sum,
            loss_sentences,
            step: adam.step,
            params,
            m,
            v,
            best: best.clone(),
        };
        let model = net.model_of(scheme, &state.params)?;
        let checkpoint = Checkpoint {
            iteration: epoch as u64,
            fingerprint,
            weights: model.to_flat(),
            model,
            optimizer: chaincrf_model::encode_payload(&state).map_err(Error::Payload)?,
        };
        chaincrf_model::save_checkpoint(&checkpoint, path).map_err(|e| model_error(e.to_string()))?;
        Ok(())
    };
    let mut outcome = CnnStop::Epochs;
    let mut epochs_done = first_epoch;
    'epochs: for epoch in first_epoch..options.epochs {
        let started = Instant::now();
        let order = epoch_order(batches.len(), options.seed, epoch);
        for (bi, &b) in order.iter().enumerate().skip(first_batch) {
            let (tokens, tags, mask, lengths) = batch_tensors(&examples, &batches[b], dtype).map_err(cerr)?;
            let mut step = || -> candle_core::Result<f64> {
                let scores = net.forward(&tokens, &mask)?;
                let loss = net
                    .crf()
                    .nll(&scores, &tags, SequenceMask::Lengths(&lengths), Reduction::Mean)?;
                let grads = loss.backward()?;
                adam.update(net.vars(), &grads)?;
                loss.to_dtype(DType::F64)?.to_scalar::<f64>()
            };
            let loss = step().map_err(cerr)?;
            loss_sum += loss * lengths.len() as f64;
            loss_sentences += lengths.len();
            if stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
                save(epoch, bi + 1, loss_sum, loss_sentences, &adam, &best)?;
                outcome = CnnStop::Interrupted;
                break 'epochs;
            }
        }
        first_batch = 0;
        let values = net.values()?;
        let heldout_f1 = if dev.is_empty() {
            None
        } else {
            Some(heldout_f1(net.model_of(scheme, &values)?, &dev)?)
        };
        epochs_done = epoch + 1;
        let mut patience_out = false;
        if let (Some(f1), Some(p)) = (heldout_f1, options.patience) {
            if best.as_ref().is_none_or(|(b, _, _)| f1 > *b) {
                best = Some((f1, epochs_done, values));
            }
            patience_out = best.as_ref().is_some_and(|(_, at, _)| epochs_done >= at + p);
        }
        let checkpointed =
            checkpoints.path.is_some() && checkpoints.every.is_some_and(|n| n > 0 && epochs_done % n == 0);
        let loss = loss_sum / loss_sentences.max(1) as f64;
        (loss_sum, loss_sentences) = (0.0, 0);
        if checkpointed {
            save(epochs_done, 0, 0.0, 0, &adam, &best)?;
        }
        on_epoch(&EpochProgress {
            epoch: epochs_done,
            loss,
            heldout_f1,
            seconds: started.elapsed().as_secs_f64(),
            checkpointed,
        });
        if patience_out {
            outcome = CnnStop::EarlyStopped;
            break;
        }
    }
    let model = match (outcome, &best) {
        (CnnStop::Interrupted, _) => None,
        (_, Some((_, _, values))) => Some(net.model_of(scheme, values)?),
        (_, None) => Some(net.to_model(scheme)?),
    };
    Ok(CnnTrained {
        model,
        stop: outcome,
        epochs: epochs_done,
        best: best.map(|(f, e, _)| (f, e)),
        train_sentences: train.len(),
        dev_sentences: dev.len(),
        vocabulary: net.vocab.len(),
    })
}
