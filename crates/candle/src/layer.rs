//! The [`Crf`] layer: its variables, its checks on the tensors it is given,
//! and the decoders.

use std::sync::Arc;

use candle_core::{bail, DType, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use chaincrf_core::chain::Path;
use chaincrf_core::loss::{self, PaddedBatch, Reduction};

use crate::op::{core_err, Constraints, CrfScores, NllOp, OwnedMask};

/// Which positions of a padded `[batch, time]` batch belong to the sequences.
///
/// A masked position is skipped and the chain joins across it (the label
/// before it is followed directly by the label after it). Holes are allowed,
/// the first step need not be on, and an all-masked sequence is empty (loss
/// 0, empty path).
#[derive(Clone, Copy, Debug)]
pub enum SequenceMask<'a> {
    /// Every position is on.
    Full,
    /// One length per sequence: positions `0..length` are on (right padding).
    Lengths(&'a [usize]),
    /// A `[batch, time]` tensor of any dtype: nonzero is on.
    Tensor(&'a Tensor),
}

/// A linear-chain CRF layer: transition scores `[labels, labels]` (from row
/// label to column label), start and end scores `[labels]`, all candle
/// variables named `transitions`, `start` and `end` under the `VarBuilder`'s
/// prefix, initialised to 0 (deterministic: candle's CPU generator cannot be
/// seeded, and a CRF's scores need no symmetry breaking).
#[derive(Clone, Debug)]
pub struct Crf {
    transitions: Tensor,
    start: Tensor,
    end: Tensor,
    num_labels: usize,
    constraints: Arc<Constraints>,
}

/// The checked shapes and host copies a call works on.
struct Batch {
    batch: usize,
    time: usize,
    mask: OwnedMask,
}

impl Crf {
    /// A CRF over `num_labels` labels whose scores are variables of `vb` (its
    /// dtype and device; loading a trained model reads them by name).
    ///
    /// # Errors
    /// `num_labels` is 0, or `vb` has no or wrongly shaped variables.
    pub fn new(num_labels: usize, vb: VarBuilder) -> Result<Self> {
        if num_labels == 0 {
            bail!("CRF: at least one label is needed");
        }
        let zero = Init::Const(0.0);
        let k = num_labels;
        Ok(Crf {
            transitions: vb.get_with_hints((k, k), "transitions", zero)?,
            start: vb.get_with_hints(k, "start", zero)?,
            end: vb.get_with_hints(k, "end", zero)?,
            num_labels,
            constraints: Arc::new(Constraints::none(k)),
        })
    }

    /// Number of labels.
    pub fn num_labels(&self) -> usize {
        self.num_labels
    }

    /// Transition scores `[labels, labels]`, `[i, j]` from label `i` to label `j`
    /// (forbidden entries keep their stored value but count as `-inf`).
    pub fn transitions(&self) -> &Tensor {
        &self.transitions
    }

    /// Start scores `[labels]`.
    pub fn start(&self) -> &Tensor {
        &self.start
    }

    /// End scores `[labels]`.
    pub fn end(&self) -> &Tensor {
        &self.end
    }

    fn check_label(&self, what: &str, y: usize) -> Result<()> {
        if y >= self.num_labels {
            bail!("CRF: {what} label {y} out of range ({} labels)", self.num_labels);
        }
        Ok(())
    }

    /// Forbids label `to` right after label `from` (a `-inf` transition score,
    /// gradient 0). Masked positions are skipped, so the pair is forbidden
    /// across a hole too.
    ///
    /// # Errors
    /// A label out of range.
    pub fn forbid_transition(&mut self, from: usize, to: usize) -> Result<()> {
        self.check_label("from", from)?;
        self.check_label("to", to)?;
        Arc::make_mut(&mut self.constraints).transitions[from * self.num_labels + to] = false;
        Ok(())
    }

    /// Forbids sequences to start with `label`.
    ///
    /// # Errors
    /// A label out of range.
    pub fn forbid_start(&mut self, label: usize) -> Result<()> {
        self.check_label("start", label)?;
        Arc::make_mut(&mut self.constraints).start[label] = false;
        Ok(())
    }

    /// Forbids sequences to end with `label`.
    ///
    /// # Errors
    /// A label out of range.
    pub fn forbid_end(&mut self, label: usize) -> Result<()> {
        self.check_label("end", label)?;
        Arc::make_mut(&mut self.constraints).end[label] = false;
        Ok(())
    }

    /// Transition, start and end scores packed into one vector
    /// `[labels² + 2·labels]` (the op's second argument).
    fn packed(&self) -> Result<Tensor> {
        Tensor::cat(&[&self.transitions.flatten_all()?, &self.start, &self.end], 0)
    }

    /// The scores in f64 with the constraints applied.
    fn scores(&self) -> Result<CrfScores> {
        let packed = self.packed()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        Ok(self.constraints.apply(&packed, self.num_labels))
    }

    /// Checks emissions `[batch, time, labels]` (f32 or f64, on the CPU) and
    /// the mask, and returns the shapes and the host mask.
    fn check(&self, emissions: &Tensor, mask: SequenceMask<'_>) -> Result<Batch> {
        let Ok((batch, time, k)) = emissions.dims3() else {
            bail!(
                "CRF: emissions must be [batch, time, labels], got shape {:?}",
                emissions.dims()
            )
        };
        if k != self.num_labels {
            bail!("CRF: emissions have {k} labels, the CRF has {}", self.num_labels);
        }
        if !matches!(emissions.dtype(), DType::F32 | DType::F64) {
            bail!("CRF: emissions must be f32 or f64, got {:?}", emissions.dtype());
        }
        if !emissions.device().is_cpu() {
            bail!("CRF: the layer runs on the CPU; move the emissions there first");
        }
        let mask = match mask {
            SequenceMask::Full => OwnedMask::Full,
            SequenceMask::Lengths(l) => {
                if l.len() != batch {
                    bail!("CRF: {} lengths for a batch of {batch}", l.len());
                }
                if let Some((i, &n)) = l.iter().enumerate().find(|(_, &n)| n > time) {
                    bail!("CRF: length {n} of sequence {i} exceeds the padded length {time}");
                }
                OwnedMask::Lengths(l.to_vec())
            }
            SequenceMask::Tensor(m) => {
                if m.dims() != [batch, time] {
                    bail!(
                        "CRF: the mask must be [batch, time] = [{batch}, {time}], got {:?}",
                        m.dims()
                    );
                }
                let flags = m.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
                OwnedMask::Flags(flags.into_iter().map(|f| f != 0.0).collect())
            }
        };
        Ok(Batch { batch, time, mask })
    }

    /// Negative log-likelihood of the gold `tags` `[batch, time]` (any integer
    /// dtype; values at masked positions are ignored, negative ones included)
    /// under `emissions` `[batch, time, labels]`, reduced by `reduction`: a
    /// scalar, or `[batch]` for [`Reduction::None`], of the emissions' dtype.
    /// Its gradients with respect to the emissions and the CRF's variables are
    /// exact (computed in f64 by core's chain code).
    ///
    /// # Errors
    /// Wrong shapes, dtypes or devices; a tag out of range at an unmasked
    /// position; NaN or `+inf` scores; a gold path forbidden by a constraint
    /// or by `-inf` emissions (naming the sequence and position).
    pub fn nll(
        &self,
        emissions: &Tensor,
        tags: &Tensor,
        mask: SequenceMask<'_>,
        reduction: Reduction,
    ) -> Result<Tensor> {
        let b = self.check(emissions, mask)?;
        if tags.dims() != [b.batch, b.time] {
            bail!(
                "CRF: tags must be [batch, time] = [{}, {}], got {:?}",
                b.batch,
                b.time,
                tags.dims()
            );
        }
        let tags = host_labels(tags)?;
        let op = NllOp::new(
            (b.batch, b.time, self.num_labels),
            tags,
            b.mask,
            reduction,
            self.constraints.clone(),
        );
        emissions.contiguous()?.apply_op2(&self.packed()?, op)
    }

    fn padded<'a>(&self, values: &'a [f64], b: &'a Batch) -> Result<PaddedBatch<'a>> {
        PaddedBatch::new(values, b.batch, b.time, self.num_labels, b.mask.as_core()).map_err(core_err)
    }

    /// The best label path of each sequence (Viterbi), with one label per
    /// unmasked position in order (for right padding, the first `length`
    /// positions); an all-masked sequence gets the empty path.
    ///
    /// # Errors
    /// As [`nll`](Self::nll), and a sequence that no path is allowed through.
    pub fn decode(&self, emissions: &Tensor, mask: SequenceMask<'_>) -> Result<Vec<Path>> {
        let b = self.check(emissions, mask)?;
        let values = host_f64(emissions)?;
        let scores = self.scores()?;
        loss::viterbi_masked(&scores.params(), &self.padded(&values, &b)?).map_err(core_err)
    }

    /// The `n` best paths of each sequence, best first (fewer when fewer are
    /// allowed), labels as in [`decode`](Self::decode).
    ///
    /// # Errors
    /// As [`decode`](Self::decode), and `n` so large that the lists would not
    /// fit in memory.
    pub fn decode_nbest(&self, emissions: &Tensor, mask: SequenceMask<'_>, n: usize) -> Result<Vec<Vec<Path>>> {
        let b = self.check(emissions, mask)?;
        let values = host_f64(emissions)?;
        let scores = self.scores()?;
        loss::kbest_masked(&scores.params(), &self.padded(&values, &b)?, n).map_err(core_err)
    }

    /// Posterior label probabilities `P(yₜ = y)`, `[batch, time, labels]` of the
    /// emissions' dtype, 0 at masked positions; no gradient flows through them.
    ///
    /// # Errors
    /// As [`decode`](Self::decode).
    pub fn marginals(&self, emissions: &Tensor, mask: SequenceMask<'_>) -> Result<Tensor> {
        let b = self.check(emissions, mask)?;
        let values = host_f64(emissions)?;
        let scores = self.scores()?;
        let m = loss::marginals_masked(&scores.params(), &self.padded(&values, &b)?).map_err(core_err)?;
        Tensor::from_vec(m.marginals, emissions.shape(), emissions.device())?.to_dtype(emissions.dtype())
    }
}

/// `emissions` with `-inf` wherever `allowed` `[batch, time, labels]` (any
/// dtype) is 0: forced labels (one allowed label at a position) and partial
/// constraints for [`Crf::nll`], [`Crf::decode`] and the rest. Differentiable:
/// the allowed entries pass their gradient through, the forbidden ones get 0.
///
/// # Errors
/// `allowed` does not have the emissions' shape.
pub fn force_labels(emissions: &Tensor, allowed: &Tensor) -> Result<Tensor> {
    if allowed.dims() != emissions.dims() {
        bail!(
            "CRF: allowed labels must have the emissions' shape {:?}, got {:?}",
            emissions.dims(),
            allowed.dims()
        );
    }
    let on = allowed.ne(&allowed.zeros_like()?)?;
    let forbidden =
        Tensor::full(f64::NEG_INFINITY, emissions.shape(), emissions.device())?.to_dtype(emissions.dtype())?;
    on.where_cond(emissions, &forbidden)
}

fn host_f64(t: &Tensor) -> Result<Vec<f64>> {
    t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()
}

/// Integer labels as `usize`; negative ones (padding markers) become
/// `usize::MAX`, which core reports as out of range if it is not masked.
fn host_labels(tags: &Tensor) -> Result<Vec<usize>> {
    let flat = tags.flatten_all()?;
    let wide: Vec<i64> = match tags.dtype() {
        DType::U8 => flat.to_vec1::<u8>()?.into_iter().map(i64::from).collect(),
        DType::U32 => flat.to_vec1::<u32>()?.into_iter().map(i64::from).collect(),
        DType::I16 | DType::I32 | DType::I64 => flat.to_dtype(DType::I64)?.to_vec1::<i64>()?,
        other => bail!("CRF: tags must be an integer tensor, got {other:?}"),
    };
    Ok(wide
        .into_iter()
        .map(|y| usize::try_from(y).unwrap_or(usize::MAX))
        .collect())
}
