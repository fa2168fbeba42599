//! The CRF loss layer over numpy arrays: negative log-likelihood with its
//! gradients, Viterbi paths and node marginals of a padded batch.
//!
//! Arrays may be `float32` or `float64`; the computation is `float64`
//! (core's masked batch layer, [`chaincrf_core::loss`]) and gradients come
//! back in the emissions' dtype. `-inf` scores forbid a transition, start or
//! end exactly; NaN and `+inf` are errors. Shapes and dtypes are checked
//! before any work, with messages that name the argument.
//!
//! The batch is spread over a thread pool owned by this module, never
//! rayon's global pool, and rebuilt after `fork` (a child process has none of
//! its parent's threads).

use chaincrf_core::chain::Path;
use chaincrf_core::loss::{self, CrfParams, Mask, PaddedBatch, Reduction};
use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::{Arc, Mutex};

/// A float array read as `f64`, with its shape and whether it was `float32`.
struct Floats {
    values: Vec<f64>,
    shape: Vec<usize>,
    single: bool,
}

fn floats(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<Floats> {
    if let Ok(a) = obj.cast::<PyArrayDyn<f64>>() {
        let ro = a.readonly();
        return Ok(Floats {
            values: ro.as_array().iter().copied().collect(),
            shape: a.shape().to_vec(),
            single: false,
        });
    }
    if let Ok(a) = obj.cast::<PyArrayDyn<f32>>() {
        let ro = a.readonly();
        return Ok(Floats {
            values: ro.as_array().iter().map(|&x| f64::from(x)).collect(),
            shape: a.shape().to_vec(),
            single: true,
        });
    }
    Err(PyTypeError::new_err(format!(
        "{name} must be a float32 or float64 numpy array, got {}",
        describe(obj)
    )))
}

/// An integer array read as `i64`, with its shape.
fn integers(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<(Vec<i64>, Vec<usize>)> {
    macro_rules! try_int {
        ($($t:ty),*) => {$(
            if let Ok(a) = obj.cast::<PyArrayDyn<$t>>() {
                let ro = a.readonly();
                let mut out = Vec::with_capacity(a.len());
                for &x in ro.as_array().iter() {
                    out.push(i64::try_from(x).map_err(|_| {
                        PyValueError::new_err(format!("{name}: value {x} is out of range"))
                    })?);
                }
                return Ok((out, a.shape().to_vec()));
            }
        )*};
    }
    try_int!(i64, i32, i16, i8, u64, u32, u16, u8);
    Err(PyTypeError::new_err(format!(
        "{name} must be an integer numpy array, got {}",
        describe(obj)
    )))
}

fn describe(obj: &Bound<'_, PyAny>) -> String {
    match obj.getattr("dtype") {
        Ok(dtype) => format!("an array of dtype {dtype}"),
        Err(_) => obj.get_type().name().map_or_else(|_| "?".into(), |n| format!("a {n}")),
    }
}

fn shape_text(shape: &[usize]) -> String {
    let parts: Vec<String> = shape.iter().map(ToString::to_string).collect();
    format!("({})", parts.join(", "))
}

/// Rejects NaN and `+inf` (`-inf` is a forbidden transition/start/end).
fn check_scores(name: &str, values: &[f64]) -> PyResult<()> {
    if let Some(i) = values.iter().position(|x| x.is_nan() || *x == f64::INFINITY) {
        return Err(PyValueError::new_err(format!(
            "{name} holds {} at flat index {i} (scores must be finite or -inf)",
            values[i]
        )));
    }
    Ok(())
}

/// Everything a layer call reads, checked.
struct Inputs {
    emissions: Floats,
    batch: usize,
    time: usize,
    k: usize,
    lengths: Vec<usize>,
    transitions: Vec<f64>,
    start: Vec<f64>,
    end: Vec<f64>,
}

fn read_inputs(
    emissions: &Bound<'_, PyAny>,
    lengths: Option<&Bound<'_, PyAny>>,
    transitions: &Bound<'_, PyAny>,
    start: Option<&Bound<'_, PyAny>>,
    end: Option<&Bound<'_, PyAny>>,
) -> PyResult<Inputs> {
    let e = floats("emissions", emissions)?;
    let [batch, time, k] = e.shape[..] else {
        return Err(PyValueError::new_err(format!(
            "emissions must have shape (batch, time, labels), got {}",
            shape_text(&e.shape)
        )));
    };
    if k == 0 {
        return Err(PyValueError::new_err("emissions has 0 labels (last axis)"));
    }
    check_scores("emissions", &e.values)?;
    let lengths = match lengths {
        None => vec![time; batch],
        Some(obj) => {
            let (values, shape) = integers("lengths", obj)?;
            if shape != [batch] {
                return Err(PyValueError::new_err(format!(
                    "lengths must have shape ({batch},) (one per sequence), got {}",
                    shape_text(&shape)
                )));
            }
            let mut out = Vec::with_capacity(batch);
            for (i, &l) in values.iter().enumerate() {
                if l < 0 || l as usize > time {
                    return Err(PyValueError::new_err(format!(
                        "lengths[{i}] = {l} is outside 0..={time} (the time axis)"
                    )));
                }
                out.push(l as usize);
            }
            out
        }
    };
    let t = floats("transitions", transitions)?;
    if t.shape != [k, k] {
        return Err(PyValueError::new_err(format!(
            "transitions must have shape ({k}, {k}), got {}",
            shape_text(&t.shape)
        )));
    }
    check_scores("transitions", &t.values)?;
    let vector = |name: &str, obj: Option<&Bound<'_, PyAny>>| -> PyResult<Vec<f64>> {
        let Some(obj) = obj else { return Ok(Vec::new()) };
        let v = floats(name, obj)?;
        if v.shape != [k] {
            return Err(PyValueError::new_err(format!(
                "{name} must have shape ({k},), got {}",
                shape_text(&v.shape)
            )));
        }
        check_scores(name, &v.values)?;
        Ok(v.values)
    };
    let start = vector("start", start)?;
    let end = vector("end", end)?;
    Ok(Inputs {
        emissions: e,
        batch,
        time,
        k,
        lengths,
        transitions: t.values,
        start,
        end,
    })
}

impl Inputs {
    fn params(&self) -> CrfParams<'_> {
        CrfParams {
            transitions: &self.transitions,
            start: &self.start,
            end: &self.end,
            k: self.k,
        }
    }

    fn padded(&self) -> PyResult<PaddedBatch<'_>> {
        PaddedBatch::new(
            &self.emissions.values,
            self.batch,
            self.time,
            self.k,
            Mask::Lengths(&self.lengths),
        )
        .map_err(core_error)
    }
}

fn core_error(e: chaincrf_core::Error) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// This process's pool for `threads` threads (rebuilt after a fork or for
/// another thread count).
pub(crate) fn pool(threads: usize) -> PyResult<Arc<rayon::ThreadPool>> {
    type Cached = Option<(u32, usize, Arc<rayon::ThreadPool>)>;
    static POOL: Mutex<Cached> = Mutex::new(None);
    let pid = std::process::id();
    let mut slot = POOL.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((p, t, pool)) = slot.as_ref() {
        if *p == pid && *t == threads {
            return Ok(pool.clone());
        }
    }
    if let Some((p, _, old)) = slot.take() {
        if p != pid {
            // The parent's threads do not exist here; never touch that pool again.
            std::mem::forget(old);
        }
    }
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build()
            .map_err(|e| PyValueError::new_err(format!("cannot start {threads} threads: {e}")))?,
    );
    *slot = Some((pid, threads, pool.clone()));
    Ok(pool)
}

/// An `f64` result shaped `shape`, as a numpy array of `float32` when `single`.
fn to_array<'py>(py: Python<'py>, values: Vec<f64>, shape: &[usize], single: bool) -> PyResult<Bound<'py, PyAny>> {
    let shape = IxDyn(shape);
    if single {
        let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
        let a = ArrayD::from_shape_vec(shape, v).map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(a.into_pyarray(py).into_any())
    } else {
        let a = ArrayD::from_shape_vec(shape, values).map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(a.into_pyarray(py).into_any())
    }
}

/// `(loss, grads)`: see `chaincrf.layer.nll`.
#[pyfunction]
#[pyo3(signature = (emissions, tags, lengths, transitions, start=None, end=None, reduction="mean", threads=1))]
#[allow(clippy::too_many_arguments)]
pub fn nll<'py>(
    py: Python<'py>,
    emissions: &Bound<'py, PyAny>,
    tags: &Bound<'py, PyAny>,
    lengths: Option<&Bound<'py, PyAny>>,
    transitions: &Bound<'py, PyAny>,
    start: Option<&Bound<'py, PyAny>>,
    end: Option<&Bound<'py, PyAny>>,
    reduction: &str,
    threads: usize,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyDict>)> {
    let reduction: Reduction = reduction.parse().map_err(|_| {
        PyValueError::new_err(format!(
            "reduction must be one of none, sum, mean, token_mean; got {reduction:?}"
        ))
    })?;
    let inputs = read_inputs(emissions, lengths, transitions, start, end)?;
    let (b, time, k) = (inputs.batch, inputs.time, inputs.k);
    let (raw_tags, tag_shape) = integers("tags", tags)?;
    if tag_shape != [b, time] {
        return Err(PyValueError::new_err(format!(
            "tags must have shape ({b}, {time}) like emissions' first two axes, got {}",
            shape_text(&tag_shape)
        )));
    }
    let mut gold = Vec::with_capacity(raw_tags.len());
    for (idx, &y) in raw_tags.iter().enumerate() {
        let (i, t) = (idx / time.max(1), idx % time.max(1));
        if t < inputs.lengths[i] && (y < 0 || y as usize >= k) {
            return Err(PyValueError::new_err(format!(
                "tags[{i}, {t}] = {y} is not a label id in 0..{k}"
            )));
        }
        // Padded positions are ignored, whatever they hold.
        gold.push(if y < 0 { 0 } else { y as usize });
    }
    let pool = pool(threads)?;
    let result = py.detach(|| {
        let batch = inputs.padded()?;
        pool.install(|| loss::nll_masked(&inputs.params(), &batch, &gold, reduction))
            .map_err(core_error)
    })?;
    let single = inputs.emissions.single;
    let loss_value: Bound<'py, PyAny> = if reduction == Reduction::None {
        to_array(py, result.per_sequence, &[b], single)?
    } else {
        result.loss.into_pyobject(py)?.into_any()
    };
    let grads = PyDict::new(py);
    grads.set_item("emissions", to_array(py, result.emission_grad, &[b, time, k], single)?)?;
    grads.set_item("transitions", to_array(py, result.transition_grad, &[k, k], single)?)?;
    if start.is_some() {
        grads.set_item("start", to_array(py, result.start_grad, &[k], single)?)?;
    }
    if end.is_some() {
        grads.set_item("end", to_array(py, result.end_grad, &[k], single)?)?;
    }
    Ok((loss_value, grads))
}

/// `(paths, scores)`: see `chaincrf.layer.viterbi`.
#[pyfunction]
#[pyo3(signature = (emissions, lengths, transitions, start=None, end=None, threads=1))]
pub fn viterbi<'py>(
    py: Python<'py>,
    emissions: &Bound<'py, PyAny>,
    lengths: Option<&Bound<'py, PyAny>>,
    transitions: &Bound<'py, PyAny>,
    start: Option<&Bound<'py, PyAny>>,
    end: Option<&Bound<'py, PyAny>>,
    threads: usize,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let inputs = read_inputs(emissions, lengths, transitions, start, end)?;
    let (b, time) = (inputs.batch, inputs.time);
    let pool = pool(threads)?;
    let paths: Vec<Path> = py.detach(|| {
        let batch = inputs.padded()?;
        pool.install(|| loss::viterbi_masked(&inputs.params(), &batch))
            .map_err(core_error)
    })?;
    let mut labels = vec![-1i64; b * time];
    let mut scores = Vec::with_capacity(b);
    for (i, p) in paths.iter().enumerate() {
        for (t, &y) in p.labels.iter().enumerate() {
            labels[i * time + t] = y as i64;
        }
        scores.push(p.score);
    }
    let labels = ArrayD::from_shape_vec(IxDyn(&[b, time]), labels).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok((labels.into_pyarray(py).into_any(), to_array(py, scores, &[b], false)?))
}

/// `(marginals, log_z)`: see `chaincrf.layer.marginals`.
#[pyfunction]
#[pyo3(signature = (emissions, lengths, transitions, start=None, end=None, threads=1))]
pub fn marginals<'py>(
    py: Python<'py>,
    emissions: &Bound<'py, PyAny>,
    lengths: Option<&Bound<'py, PyAny>>,
    transitions: &Bound<'py, PyAny>,
    start: Option<&Bound<'py, PyAny>>,
    end: Option<&Bound<'py, PyAny>>,
    threads: usize,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let inputs = read_inputs(emissions, lengths, transitions, start, end)?;
    let (b, time, k) = (inputs.batch, inputs.time, inputs.k);
    let pool = pool(threads)?;
    let out = py.detach(|| {
        let batch = inputs.padded()?;
        pool.install(|| loss::marginals_masked(&inputs.params(), &batch))
            .map_err(core_error)
    })?;
    let single = inputs.emissions.single;
    Ok((
        to_array(py, out.marginals, &[b, time, k], single)?,
        to_array(py, out.log_z, &[b], false)?,
    ))
}
