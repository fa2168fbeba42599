//! The trained model as a Python object: loading and saving, tagging one
//! sequence or many (in parallel, without the GIL), marginals, sequence
//! probabilities, and the model's contents for `Tagger.info()`.

use crate::items::{read_items, read_labels, with_context, Items};
use chaincrf_features::{AttrKind, CrfsuiteExtractor};
use chaincrf_model::{ModelIoError, Tagger};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use std::path::PathBuf;
use std::sync::Arc;

/// A model error as the Python exception a user expects: `OSError` (with
/// errno, so a missing file is `FileNotFoundError`) or `ValueError`.
pub fn model_io_error(e: ModelIoError) -> PyErr {
    match &e {
        ModelIoError::Io { path, source } => match source.raw_os_error() {
            Some(errno) => PyOSError::new_err((errno, source.to_string(), path.clone())),
            None => PyOSError::new_err(e.to_string()),
        },
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// A trained model (immutable; shared between threads and taggers).
#[pyclass(module = "chaincrf._native", frozen)]
pub struct Model {
    pub(crate) inner: Arc<chaincrf_model::Model>,
}

impl Model {
    pub(crate) fn new(model: chaincrf_model::Model) -> Self {
        Model { inner: Arc::new(model) }
    }
}

/// Best label ids of one sequence (empty for an empty sequence).
fn viterbi(tagger: &mut Tagger<'_>, items: &Items) -> Result<Vec<usize>, String> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    tagger.observe(&CrfsuiteExtractor, &items[..]);
    tagger.viterbi(None).map(|p| p.labels).map_err(|e| e.to_string())
}

/// Node marginals (`n × k`, row-major) of one sequence.
fn marginals(tagger: &mut Tagger<'_>, items: &Items) -> Result<Vec<f64>, String> {
    let mut out = Vec::new();
    if items.is_empty() {
        return Ok(out);
    }
    tagger.observe(&CrfsuiteExtractor, &items[..]);
    tagger.marginals(None, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Runs `f` over `inputs` on `threads` threads (contiguous chunks, results in
/// input order, so the output does not depend on the thread count), each
/// thread with its own tagger.
fn map_parallel<R: Send>(
    model: &chaincrf_model::Model,
    inputs: &[Items],
    threads: usize,
    f: impl Fn(&mut Tagger<'_>, &Items) -> Result<R, String> + Sync,
) -> Result<Vec<R>, String> {
    let threads = threads.clamp(1, inputs.len().max(1));
    if threads == 1 {
        let mut tagger = model.tagger();
        return inputs.iter().map(|x| f(&mut tagger, x)).collect();
    }
    let chunk = inputs.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = inputs
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut tagger = model.tagger();
                    part.iter()
                        .map(|x| f(&mut tagger, x))
                        .collect::<Result<Vec<R>, String>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(inputs.len());
        for h in handles {
            out.extend(h.join().map_err(|_| "a tagging thread panicked".to_owned())??);
        }
        Ok(out)
    })
}

/// Reads a list of sequences, naming the sequence in errors.
fn read_many(xs: &Bound<'_, PyAny>) -> PyResult<Vec<Items>> {
    let py = xs.py();
    let mut out = Vec::new();
    for (i, x) in xs.try_iter()?.enumerate() {
        out.push(read_items(&x?).map_err(|e| with_context(py, e, &format!("sequence {i}")))?);
        if i % 1024 == 1023 {
            py.check_signals()?;
        }
    }
    Ok(out)
}

#[pymethods]
impl Model {
    /// Reads a model from the bytes of a model file.
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Self> {
        chaincrf_model::from_bytes(data, std::path::Path::new("<bytes>"))
            .map(Model::new)
            .map_err(model_io_error)
    }

    /// Reads a model file.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        py.detach(|| chaincrf_model::load(&path))
            .map(Model::new)
            .map_err(model_io_error)
    }

    /// The bytes of the model file.
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = chaincrf_model::to_bytes(&self.inner).map_err(model_io_error)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Writes the model file (through a temporary file and a rename, so the
    /// target is never half-written). Returns the number of bytes.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<u64> {
        let model = self.inner.clone();
        py.detach(move || chaincrf_model::save(&model, &path))
            .map_err(model_io_error)
    }

    /// The label names, by id.
    fn labels(&self) -> Vec<String> {
        self.inner.labels().labels().to_vec()
    }

    /// Number of (state) attributes.
    fn num_attributes(&self) -> usize {
        self.inner.attributes().len(AttrKind::State)
    }

    /// Attribute names, by id.
    fn attributes(&self) -> Vec<String> {
        let a = self.inner.attributes();
        (0..a.len(AttrKind::State) as u32)
            .map(|id| a.name(AttrKind::State, id).unwrap_or_default().to_owned())
            .collect()
    }

    /// Non-zero state weights as `(attribute, label, weight)`.
    fn state_features(&self) -> Vec<(String, String, f64)> {
        let m = &*self.inner;
        let k = m.num_labels();
        let mut out = Vec::new();
        for (id, row) in m.state_weights().chunks(k.max(1)).enumerate() {
            for (y, &w) in row.iter().enumerate() {
                if w != 0.0 {
                    let name = m.attributes().name(AttrKind::State, id as u32).unwrap_or_default();
                    out.push((name.to_owned(), m.labels().label(y as u32).to_owned(), f64::from(w)));
                }
            }
        }
        out
    }

    /// Non-zero transition weights as `(from label, to label, weight)`.
    fn transition_features(&self) -> Vec<(String, String, f64)> {
        let m = &*self.inner;
        let k = m.num_labels();
        let mut out = Vec::new();
        for (i, &w) in m.view().transitions.iter().enumerate() {
            if w != 0.0 {
                let (a, b) = (i / k, i % k);
                out.push((
                    m.labels().label(a as u32).to_owned(),
                    m.labels().label(b as u32).to_owned(),
                    f64::from(w),
                ));
            }
        }
        out
    }

    /// Size of the model file in bytes.
    fn size(&self) -> PyResult<usize> {
        Ok(chaincrf_model::to_bytes(&self.inner).map_err(model_io_error)?.len())
    }

    /// The best label sequence of `xseq`.
    fn tag(&self, py: Python<'_>, xseq: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
        let items = read_items(xseq)?;
        let model = &*self.inner;
        let ids = py
            .detach(|| viterbi(&mut model.tagger(), &items))
            .map_err(PyValueError::new_err)?;
        Ok(ids.iter().map(|&y| model.labels().label(y as u32).to_owned()).collect())
    }

    /// The best label sequence of each sequence of `xs`, on `threads` threads.
    fn tag_many(&self, py: Python<'_>, xs: &Bound<'_, PyAny>, threads: usize) -> PyResult<Vec<Vec<String>>> {
        let inputs = read_many(xs)?;
        let model = &*self.inner;
        let paths = py
            .detach(|| map_parallel(model, &inputs, threads, viterbi))
            .map_err(PyValueError::new_err)?;
        let labels = model.labels().labels();
        Ok(paths
            .into_iter()
            .map(|p| p.into_iter().map(|y| labels[y].clone()).collect())
            .collect())
    }

    /// Node marginals of `xseq` as a list of rows (one probability per label id).
    fn marginals(&self, py: Python<'_>, xseq: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<f64>>> {
        let items = read_items(xseq)?;
        let model = &*self.inner;
        let k = model.num_labels();
        let flat = py
            .detach(|| marginals(&mut model.tagger(), &items))
            .map_err(PyValueError::new_err)?;
        Ok(flat.chunks(k.max(1)).map(<[f64]>::to_vec).collect())
    }

    /// For each sequence of `xs`, its marginals as a list of `{label: probability}`
    /// dicts (sklearn-crfsuite's `predict_marginals`), on `threads` threads.
    fn marginal_dicts<'py>(
        &self,
        py: Python<'py>,
        xs: &Bound<'py, PyAny>,
        threads: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let inputs = read_many(xs)?;
        let model = &*self.inner;
        let all = py
            .detach(|| map_parallel(model, &inputs, threads, marginals))
            .map_err(PyValueError::new_err)?;
        let k = model.num_labels();
        let labels = model.labels().labels();
        let out = PyList::empty(py);
        for flat in all {
            let seq = PyList::empty(py);
            for row in flat.chunks(k.max(1)) {
                let d = PyDict::new(py);
                for (label, p) in labels.iter().zip(row) {
                    d.set_item(label, *p)?;
                }
                seq.append(d)?;
            }
            out.append(seq)?;
        }
        Ok(out)
    }

    /// `P(yseq | xseq)`.
    fn probability(&self, py: Python<'_>, xseq: &Bound<'_, PyAny>, yseq: &Bound<'_, PyAny>) -> PyResult<f64> {
        let items = read_items(xseq)?;
        let names = read_labels(yseq)?;
        let model = &*self.inner;
        if names.len() != items.len() {
            return Err(PyValueError::new_err(format!(
                "the numbers of items and labels differ: |x| = {}, |y| = {}",
                items.len(),
                names.len()
            )));
        }
        let mut ys = Vec::with_capacity(names.len());
        for name in &names {
            match model.labels().id(name) {
                Some(y) => ys.push(y as usize),
                None => return Err(PyValueError::new_err(format!("unknown label {name:?}"))),
            }
        }
        if items.is_empty() {
            return Ok(1.0);
        }
        py.detach(|| {
            let mut tagger = model.tagger();
            let chain = tagger.observe(&CrfsuiteExtractor, &items[..]);
            let score = chaincrf_core::chain::path_score(chain, &ys).map_err(|e| e.to_string())?;
            let log_z = tagger.log_partition(None).map_err(|e| e.to_string())?;
            Ok::<f64, String>((score - log_z).exp())
        })
        .map_err(PyValueError::new_err)
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let bytes = slf.get().to_bytes(py)?;
        let ctor = py.get_type::<Model>().getattr("from_bytes")?;
        Ok((ctor, PyTuple::new(py, [bytes])?))
    }

    fn __repr__(&self) -> String {
        format!(
            "<chaincrf Model: {} labels, {} attributes>",
            self.inner.num_labels(),
            self.inner.attributes().len(AttrKind::State)
        )
    }
}
