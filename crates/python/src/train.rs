//! Training from Python: the appended data, the parameters, and the one call
//! into `chaincrf-train`.
//!
//! All glue to the training library lives in this file. The appended
//! sequences are kept compactly (attribute names interned once, each
//! occurrence an id and a weight), so the training data costs little more
//! than the compiled dataset; `train` may be called again with other
//! parameters or another held-out group, as python-crfsuite allows.
//!
//! Training runs on a worker thread while the calling thread waits with the
//! GIL released and checks for signals every few milliseconds: Ctrl-C sets
//! the trainer's stop flag, the run ends after the current iteration and the
//! call raises `KeyboardInterrupt` (no model is returned, so no file is
//! written). Progress reports reach Python through a callback that takes the
//! GIL on the worker thread.

use crate::model::Model;
use chaincrf_core::chain::ChainWorkspace;
use chaincrf_core::MaxPlus;
use chaincrf_features::{Attr, FeatureExtractor, LabelAlphabet};
use chaincrf_model::{ExtractorSpec, ScoredChain, Structure, WeightLayout};
use chaincrf_train::{CheckedParams, Dataset, DatasetBuilder, HeldOutBuilder, LabelTarget, Params, Trainer as Fit};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One appended sequence: positions `start..start + len` of the store.
#[derive(Clone, Copy)]
struct StoredSequence {
    start: usize,
    len: usize,
    group: i64,
}

/// Reads stored sequences' attributes by name (names resolved through the store).
struct StoreExtractor<'a> {
    store: &'a Store,
}

impl FeatureExtractor for StoreExtractor<'_> {
    type Input = StoredSequence;

    fn len(&self, input: &StoredSequence) -> usize {
        input.len
    }

    fn extract(&self, input: &StoredSequence, t: usize, sink: &mut dyn FnMut(Attr<'_>)) {
        let store = self.store;
        let p = input.start + t;
        let (a, b) = (store.item_ends[p] as usize, store.item_ends[p + 1] as usize);
        for (&id, &value) in store.ids[a..b].iter().zip(&store.values[a..b]) {
            sink(Attr::state(&store.names[id as usize]).with_value(f64::from(value)));
        }
    }
}

/// Appended training data, every sequence's in the same few arrays: a few
/// large allocations, which go back to the system when a one-shot fit drops
/// them, where one set of small vectors per sequence would stay in the
/// allocator's heap (and in the process's memory) for the rest of the fit.
struct Store {
    names: Vec<String>,
    name_ids: FxHashMap<String, u32>,
    labels: Vec<String>,
    label_ids: FxHashMap<String, u32>,
    sequences: Vec<StoredSequence>,
    /// `positions + 1` offsets into `ids` and `values`.
    item_ends: Vec<u32>,
    /// Attribute name ids.
    ids: Vec<u32>,
    /// Their weights, as `f32`: the training data keeps them so (see
    /// `chaincrf_model::ObservationArena`), and apart they take 8 bytes an
    /// attribute instead of a padded pair's 16.
    values: Vec<f32>,
    /// Each position's label id.
    gold: Vec<u32>,
    /// An append went past `u32` ids (reported and taken back by `append`).
    overflowed: bool,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            names: Vec::new(),
            name_ids: FxHashMap::default(),
            labels: Vec::new(),
            label_ids: FxHashMap::default(),
            sequences: Vec::new(),
            item_ends: vec![0],
            ids: Vec::new(),
            values: Vec::new(),
            gold: Vec::new(),
            overflowed: false,
        }
    }
}

impl Store {
    /// The label ids of `s`.
    fn gold(&self, s: &StoredSequence) -> &[u32] {
        &self.gold[s.start..s.start + s.len]
    }

    /// Where the attribute arrays end now, for [`Store::rollback`].
    fn mark(&self) -> StoreMark {
        StoreMark {
            names: self.names.len(),
            item_ends: self.item_ends.len(),
            ids: self.ids.len(),
        }
    }

    /// Takes back the attributes, items and names added since `mark`.
    fn rollback(&mut self, mark: StoreMark) {
        for name in self.names.drain(mark.names..) {
            self.name_ids.remove(&name);
        }
        self.item_ends.truncate(mark.item_ends);
        self.ids.truncate(mark.ids);
        self.values.truncate(mark.ids);
        self.overflowed = false;
    }
}

/// The lengths of a [`Store`]'s attribute arrays at one time.
#[derive(Clone, Copy)]
struct StoreMark {
    names: usize,
    item_ends: usize,
    ids: usize,
}

/// Appending reads the attributes straight into the store.
impl crate::items::ItemSink for Store {
    fn attribute(&mut self, name: &str, weight: f64) {
        if self.ids.len() >= u32::MAX as usize {
            self.overflowed = true;
            return;
        }
        let id = intern(&mut self.names, &mut self.name_ids, name);
        self.ids.push(id);
        self.values.push(weight as f32);
    }
    fn end_item(&mut self) {
        self.item_ends.push(self.ids.len() as u32);
    }
}

fn intern(names: &mut Vec<String>, ids: &mut FxHashMap<String, u32>, name: &str) -> u32 {
    if let Some(&id) = ids.get(name) {
        return id;
    }
    let id = names.len() as u32;
    names.push(name.to_owned());
    ids.insert(name.to_owned(), id);
    id
}

/// The training parameters a run uses, read from CRFsuite's names.
struct Settings {
    params: CheckedParams,
    threads: usize,
}

/// Reads `params` (CRFsuite's names → numbers or strings) for `algorithm`
/// through the training library's own parameter table, so that names,
/// defaults and checks are the command line's.
fn read_settings(algorithm: &str, params: &Bound<'_, PyDict>, threads: usize) -> PyResult<Settings> {
    let value_error = |e: chaincrf_train::TrainError| PyValueError::new_err(e.to_string());
    let mut p = Params::new(algorithm.parse().map_err(value_error)?);
    for (name, value) in params.iter() {
        let name: String = name
            .extract()
            .map_err(|_| PyTypeError::new_err(format!("parameter names must be strings, got {name}")))?;
        let text = if let Ok(b) = value.extract::<bool>() {
            if b { "1" } else { "0" }.to_owned()
        } else if let Ok(i) = value.extract::<i64>() {
            i.to_string()
        } else if let Ok(x) = value.extract::<f64>() {
            if !x.is_finite() {
                return Err(PyValueError::new_err(format!("parameter {name}: {x} is not finite")));
            }
            x.to_string()
        } else if let Ok(t) = value.extract::<String>() {
            t
        } else {
            return Err(PyTypeError::new_err(format!(
                "parameter {name}: expected a number or a string, got {value}"
            )));
        };
        p = p.set(&name, &text).map_err(value_error)?;
    }
    Ok(Settings {
        params: p.check().map_err(value_error)?,
        threads: threads.max(1),
    })
}

/// Per-label counts and accuracies of the weights on held-out data (what
/// CRFsuite prints after each iteration when a holdout group is given).
struct HoldoutScores {
    items_correct: usize,
    items: usize,
    sequences_correct: usize,
    sequences: usize,
    /// Per label: (correct, predicted, reference).
    per_label: Vec<(usize, usize, usize)>,
}

fn score_holdout(dev: &Dataset, layout: WeightLayout, structure: &Structure, weights: &[f64]) -> HoldoutScores {
    let view = layout.view(weights);
    let k = layout.k;
    let mut s = HoldoutScores {
        items_correct: 0,
        items: 0,
        sequences_correct: 0,
        sequences: 0,
        per_label: vec![(0, 0, 0); k],
    };
    let mut scored = ScoredChain::default();
    let mut ws = ChainWorkspace::<MaxPlus>::new();
    for i in 0..dev.len() {
        let Some(gold) = dev.gold_of(i) else { continue };
        if gold.is_empty() {
            continue;
        }
        view.score_into(structure, &dev.arena().sequence(i), &mut scored);
        let predicted = ws.viterbi(&scored).map(|p| p.labels).unwrap_or_default();
        let mut all = predicted.len() == gold.len();
        for (t, &g) in gold.iter().enumerate() {
            let p = predicted.get(t).copied();
            if let Some(p) = p {
                s.per_label[p].1 += 1;
            }
            if g < k {
                s.per_label[g].2 += 1;
            }
            if p == Some(g) {
                s.items_correct += 1;
                s.per_label[g].0 += 1;
            } else {
                all = false;
            }
        }
        s.items += gold.len();
        s.sequences += 1;
        s.sequences_correct += usize::from(all);
    }
    s
}

/// The dict one iteration reports to Python.
fn report<'py>(
    py: Python<'py>,
    progress: &chaincrf_train::Progress<'_>,
    feature_norm: f64,
    previous: &mut (f64, usize),
    holdout: Option<(&HoldoutScores, &LabelAlphabet)>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("event", "iteration")?;
    d.set_item("num", progress.iteration)?;
    d.set_item("loss", progress.objective)?;
    d.set_item("feature_norm", feature_norm)?;
    d.set_item("error_norm", progress.gradient_norm)?;
    d.set_item("algorithm", progress.algorithm.name())?;
    d.set_item("active_features", progress.active_features)?;
    d.set_item("linesearch_trials", progress.evaluations.saturating_sub(previous.1))?;
    d.set_item("time", progress.seconds - previous.0)?;
    d.set_item("seconds", progress.seconds)?;
    *previous = (progress.seconds, progress.evaluations);
    if let Some((s, labels)) = holdout {
        let per = PyList::empty(py);
        for (y, &(m, p, r)) in s.per_label.iter().enumerate() {
            per.append((labels.label(y as u32), m, p, r))?;
        }
        d.set_item("label_counts", per)?;
        d.set_item("item_accuracy", (s.items_correct, s.items))?;
        d.set_item("instance_accuracy", (s.sequences_correct, s.sequences))?;
    }
    Ok(d)
}

/// What a finished run tells Python besides the model.
#[derive(Default)]
struct Summary {
    termination: String,
    detail: String,
    iterations: u64,
    seconds: f64,
    features: usize,
}

/// Appended sequences and the training call (python-crfsuite's data set).
#[pyclass(module = "chaincrf._native")]
pub struct Trainer {
    store: Arc<Mutex<Store>>,
}

#[pymethods]
impl Trainer {
    #[new]
    fn new() -> Self {
        Trainer {
            store: Arc::new(Mutex::new(Store::default())),
        }
    }

    /// Appends a sequence with its labels to `group`.
    fn append(&self, xseq: &Bound<'_, PyAny>, yseq: &Bound<'_, PyAny>, group: i64) -> PyResult<()> {
        let labels = crate::items::read_labels(yseq)?;
        let mut guard = self
            .store
            .lock()
            .map_err(|_| PyValueError::new_err("trainer poisoned"))?;
        let store = &mut *guard;
        // The attributes go straight into the store; an error (or too many
        // items) takes back everything this call added.
        let mark = store.mark();
        let read = crate::items::read_items_into(xseq, &mut *store);
        let items = store.item_ends.len() - mark.item_ends;
        let problem = match read {
            Err(e) => Some(e),
            Ok(()) if store.overflowed => Some(PyValueError::new_err(
                "too many attributes appended (more than 2^32 in all)",
            )),
            Ok(()) if items != labels.len() => Some(PyValueError::new_err(format!(
                "The numbers of items and labels differ: |x| = {items}, |y| = {}",
                labels.len()
            ))),
            Ok(()) => None,
        };
        if let Some(e) = problem {
            store.rollback(mark);
            return Err(e);
        }
        let start = store.gold.len();
        for l in &labels {
            let id = intern(&mut store.labels, &mut store.label_ids, l);
            store.gold.push(id);
        }
        store.sequences.push(StoredSequence {
            start,
            len: labels.len(),
            group,
        });
        Ok(())
    }

    /// Removes every appended sequence.
    fn clear(&self) -> PyResult<()> {
        let mut store = self
            .store
            .lock()
            .map_err(|_| PyValueError::new_err("trainer poisoned"))?;
        *store = Store::default();
        Ok(())
    }

    fn __len__(&self) -> PyResult<usize> {
        Ok(self
            .store
            .lock()
            .map_err(|_| PyValueError::new_err("trainer poisoned"))?
            .sequences
            .len())
    }

    /// Trains on every group but `holdout` (all when negative) and returns
    /// `(model, summary)`; `on_iteration(dict)` is called after each iteration.
    ///
    /// With `keep_data` false the appended sequences are released as soon as
    /// the training data is compiled (the trainer is empty afterwards), which
    /// lowers the peak memory of a one-shot fit.
    #[pyo3(signature = (algorithm, params, threads, holdout, on_iteration, keep_data=true))]
    #[allow(clippy::too_many_arguments)]
    fn train<'py>(
        &self,
        py: Python<'py>,
        algorithm: &str,
        params: &Bound<'py, PyDict>,
        threads: usize,
        holdout: i64,
        on_iteration: Py<PyAny>,
        keep_data: bool,
    ) -> PyResult<(Model, Bound<'py, PyDict>)> {
        let settings = read_settings(algorithm, params, threads)?;
        let store = self.store.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let callback_error: Arc<Mutex<Option<PyErr>>> = Arc::new(Mutex::new(None));
        let mut interrupt: Option<PyErr> = None;
        let result = py.detach(|| {
            std::thread::scope(|scope| {
                let worker = scope.spawn(|| {
                    run(
                        &store,
                        keep_data,
                        settings,
                        holdout,
                        &stop,
                        &on_iteration,
                        &callback_error,
                    )
                });
                while !worker.is_finished() {
                    std::thread::sleep(Duration::from_millis(20));
                    if interrupt.is_none() {
                        if let Err(e) = Python::attach(|py| py.check_signals()) {
                            interrupt = Some(e);
                            stop.store(true, Ordering::SeqCst);
                        }
                    }
                }
                worker
                    .join()
                    .unwrap_or_else(|_| Err(PyValueError::new_err("training thread panicked")))
            })
        });
        if let Some(e) = interrupt {
            return Err(e);
        }
        if let Some(e) = callback_error.lock().ok().and_then(|mut e| e.take()) {
            return Err(e);
        }
        let (model, summary) = result?;
        let d = PyDict::new(py);
        d.set_item("termination", summary.termination)?;
        d.set_item("termination_detail", summary.detail)?;
        d.set_item("iterations", summary.iterations)?;
        d.set_item("seconds", summary.seconds)?;
        d.set_item("num_features", summary.features)?;
        Ok((model, d))
    }
}

/// Compiles the data and trains (on the worker thread).
fn run(
    store: &Mutex<Store>,
    keep_data: bool,
    settings: Settings,
    holdout: i64,
    stop: &Arc<AtomicBool>,
    on_iteration: &Py<PyAny>,
    callback_error: &Mutex<Option<PyErr>>,
) -> PyResult<(Model, Summary)> {
    let started = std::time::Instant::now();
    let mut guard = store.lock().map_err(|_| PyValueError::new_err("trainer poisoned"))?;
    // Taken out of the trainer (and dropped once compiled) unless it is kept.
    let taken = if keep_data {
        None
    } else {
        Some(std::mem::take(&mut *guard))
    };
    let store: &Store = taken.as_ref().unwrap_or(&*guard);
    let extractor = StoreExtractor { store };
    let in_training = |s: &StoredSequence| holdout < 0 || s.group != holdout;
    if !store.sequences.iter().any(in_training) {
        return Err(PyValueError::new_err(
            "no training data: append sequences before training",
        ));
    }
    let mut builder = DatasetBuilder::new().extractor(ExtractorSpec::CrfsuiteAttributes);
    for l in &store.labels {
        builder.labels_mut().intern(l);
    }
    for s in store.sequences.iter().filter(|s| in_training(s)) {
        if stop.load(Ordering::SeqCst) {
            return Err(PyValueError::new_err("interrupted"));
        }
        builder
            .add_target(&extractor, s, LabelTarget::Gold(store.gold(s).to_vec()))
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
    }
    let data = builder.build();
    let dev = if holdout >= 0 {
        let mut b = HeldOutBuilder::new(data.attributes(), data.labels());
        for s in store.sequences.iter().filter(|s| s.group == holdout) {
            b.add(&extractor, s, store.gold(s))
                .map_err(|e| PyValueError::new_err(e.to_string()))?;
        }
        Some(b.finish())
    } else {
        None
    };
    drop(taken);
    drop(guard);
    let structure: Structure = data.structure().clone();
    let layout: WeightLayout = data.layout();
    let num_features = data.num_features(&settings.params);
    Python::attach(|py| {
        let d = PyDict::new(py);
        d.set_item("event", "prepared")?;
        d.set_item("num_features", num_features)?;
        d.set_item("seconds", started.elapsed().as_secs_f64())?;
        on_iteration.call1(py, (d,)).map(|_| ())
    })?;
    let mut previous = (0.0, 0usize);
    let fitted = Fit::new(settings.params)
        .threads(settings.threads)
        .stop_flag(stop.clone())
        .observer(|p: &chaincrf_train::Progress<'_>| {
            // The full-layout weights (8 million values on a POS task) are
            // formed only when needed: to score held-out data, or for a norm
            // the algorithm does not keep.
            let scores = dev.as_ref().map(|d| score_holdout(d, layout, &structure, p.weights()));
            let feature_norm = p
                .weight_norm
                .unwrap_or_else(|| p.weights().iter().map(|w| w * w).sum::<f64>().sqrt());
            let called = Python::attach(|py| {
                let d = report(
                    py,
                    p,
                    feature_norm,
                    &mut previous,
                    scores.as_ref().map(|s| (s, data.labels())),
                )?;
                on_iteration.call1(py, (d,)).map(|_| ())
            });
            if let Err(e) = called {
                if let Ok(mut slot) = callback_error.lock() {
                    slot.get_or_insert(e);
                }
                stop.store(true, Ordering::SeqCst);
            }
        })
        .fit(&data)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let report = fitted.report();
    let summary = Summary {
        termination: report.termination.name().to_owned(),
        detail: report.termination.to_string(),
        iterations: report.iterations,
        seconds: report.seconds,
        features: report.features,
    };
    let model = fitted.into_model();
    Ok((Model::new(model), summary))
}
