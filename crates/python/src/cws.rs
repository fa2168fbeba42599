//! Chinese word segmentation from Python: the loaded segmenter behind
//! `chaincrf.cws.Segmenter` and the training call behind `chaincrf.cws.train`.
//!
//! One [`CwsSegmenter`] is shared by every Python thread: the model sits
//! behind a read-write lock that segmentation takes for reading (with the
//! GIL released), and only `add_word` takes it for writing. Word spans come
//! from `chaincrf_cws` as byte ranges; here they become code-point offsets
//! of the Python string. Batches run on this process's thread pool
//! (`crate::layer::pool`, rebuilt after `fork`), results in input order.
//!
//! The user dictionary is also kept as text (the file's lines, then every
//! added word on a line of its own), so that a pickled segmenter — shipped to
//! a Spark executor or a multiprocessing worker — comes back with the same
//! dictionary without the file.

use crate::layer::pool;
use crate::model::model_io_error;
use chaincrf_cws::{train_segmenter_with, CwsTrainOptions};
use chaincrf_cws::{CorpusFormat, Segmenter, TagScheme, UserDict, Word};
use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// The message of an error with its causes (`chaincrf_cws::Error::Train`
/// says only "training failed"; the reason is its source).
fn full_message(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// `OSError` for files that cannot be read, `ValueError` for everything else.
fn cws_error(e: chaincrf_cws::Error) -> PyErr {
    match &e {
        chaincrf_cws::Error::Io { path, source } => match source.raw_os_error() {
            Some(errno) => PyOSError::new_err((errno, source.to_string(), path.clone())),
            None => PyOSError::new_err(full_message(&e)),
        },
        _ => PyValueError::new_err(full_message(&e)),
    }
}

/// A user-dictionary word must be one whitespace-free run: segmentation
/// splits the text on whitespace first, so a word with a space could never
/// match and would be silently ignored.
fn check_word(word: &str) -> PyResult<()> {
    if word.is_empty() {
        return Err(PyValueError::new_err("a user-dictionary word cannot be empty"));
    }
    if word.chars().any(char::is_whitespace) {
        return Err(PyValueError::new_err(format!(
            "user-dictionary word {word:?} contains whitespace; text is split on whitespace before segmenting, \
             so it could never match"
        )));
    }
    Ok(())
}

/// The loaded model and its user dictionary's source text.
struct State {
    seg: Segmenter,
    dict_text: String,
}

/// A loaded segmentation model (the native part of `chaincrf.cws.Segmenter`).
#[pyclass(module = "chaincrf._native", frozen)]
pub struct CwsSegmenter {
    state: RwLock<State>,
    keep_latin: bool,
}

impl CwsSegmenter {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // Segmentation never panics while holding the lock; a poisoned lock
        // still holds a consistent state.
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn build(model: chaincrf_model::Model, name: &str, keep_latin: bool, dict_text: &str) -> PyResult<Self> {
        let mut seg = Segmenter::from_model(model)
            .map_err(|e| PyValueError::new_err(format!("{name}: {}", full_message(&e))))?
            .keep_latin_runs(keep_latin);
        if !dict_text.is_empty() {
            seg = seg.with_user_dict(UserDict::parse(dict_text).map_err(cws_error)?);
        }
        Ok(CwsSegmenter {
            state: RwLock::new(State {
                seg,
                dict_text: dict_text.to_owned(),
            }),
            keep_latin,
        })
    }

    /// Segments one text: word spans (bytes) with optional confidences.
    fn words(&self, text: &str, confidence: bool) -> PyResult<Vec<Word>> {
        let state = self.read();
        let mut session = state.seg.session();
        session.segment(text, confidence).map_err(cws_error)
    }
}

/// Reads a sequence of `str` for a batch call.
fn read_lines(lines: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if lines.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "expected an iterable of strings (one per text), got a single str; use cut() for one text",
        ));
    }
    let mut out = Vec::new();
    for (i, item) in lines.try_iter()?.enumerate() {
        let item = item?;
        let text: String = item.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "item {i}: expected str, got {}",
                item.get_type().name().map_or("?".into(), |n| n.to_string())
            ))
        })?;
        out.push(text);
    }
    Ok(out)
}

/// Segments `lines` on `threads` threads, results in input order.
fn segment_batch(
    seg: &CwsSegmenter,
    py: Python<'_>,
    lines: &[String],
    threads: Option<usize>,
    confidence: bool,
) -> PyResult<Vec<Vec<Word>>> {
    use rayon::prelude::*;
    let threads = match threads {
        Some(0) => return Err(PyValueError::new_err("threads must be at least 1")),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let pool = pool(threads)?;
    let results: Vec<chaincrf_cws::Result<Vec<Word>>> = py.detach(|| {
        let state = seg.read();
        let state = &*state;
        pool.install(|| {
            lines
                .par_iter()
                .map_init(
                    || state.seg.session(),
                    |session, line| session.segment(line, confidence),
                )
                .collect()
        })
    });
    results.into_iter().map(|r| r.map_err(cws_error)).collect()
}

/// The words of `text` as Python strings.
fn word_list<'py>(py: Python<'py>, text: &str, words: &[Word]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, words.iter().map(|w| PyString::new(py, &text[w.span.clone()])))
}

/// Code-point offsets of byte spans (sorted, non-overlapping) in `text`.
fn char_offsets(text: &str, spans: impl Iterator<Item = Range<usize>>) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut byte, mut chars) = (0usize, 0usize);
    let mut advance = |to: usize| {
        chars += text[byte..to].chars().count();
        byte = to;
        chars
    };
    for span in spans {
        let start = advance(span.start);
        let end = advance(span.end);
        out.push((start, end));
    }
    out
}

/// `(word, start, end[, confidence])` tuples with code-point offsets.
fn token_list<'py>(py: Python<'py>, text: &str, words: &[Word], confidence: bool) -> PyResult<Bound<'py, PyList>> {
    let offsets = char_offsets(text, words.iter().map(|w| w.span.clone()));
    let list = PyList::empty(py);
    for (w, (start, end)) in words.iter().zip(offsets) {
        let word = PyString::new(py, &text[w.span.clone()]);
        if confidence {
            list.append((word, start, end, w.confidence.unwrap_or(f64::NAN)))?;
        } else {
            list.append((word, start, end))?;
        }
    }
    Ok(list)
}

#[pymethods]
impl CwsSegmenter {
    /// Loads a model file trained by `chaincrf cws train` or `chaincrf.cws.train`.
    #[staticmethod]
    #[pyo3(signature = (path, keep_latin = false))]
    fn load(py: Python<'_>, path: PathBuf, keep_latin: bool) -> PyResult<Self> {
        let model = py.detach(|| chaincrf_model::load(&path)).map_err(model_io_error)?;
        Self::build(model, &path.display().to_string(), keep_latin, "")
    }

    /// Rebuilds a segmenter from `state()` (for pickling).
    #[staticmethod]
    fn from_state(py: Python<'_>, model: &[u8], dict_text: &str, keep_latin: bool) -> PyResult<Self> {
        let bytes = model.to_vec();
        let model = py
            .detach(move || chaincrf_model::from_bytes(&bytes, Path::new("<pickled segmenter>")))
            .map_err(model_io_error)?;
        Self::build(model, "<pickled segmenter>", keep_latin, dict_text)
    }

    /// `(model bytes, user dictionary text, keep_latin)`.
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let state = self.read();
        let bytes = chaincrf_model::to_bytes(state.seg.model()).map_err(model_io_error)?;
        (PyBytes::new(py, &bytes), state.dict_text.clone(), self.keep_latin).into_pyobject(py)
    }

    /// Adds the words of a dictionary file (one word per line as its first
    /// whitespace-separated field; blank lines skipped).
    fn load_user_dict(&self, py: Python<'_>, path: PathBuf) -> PyResult<usize> {
        let (text, dict) = py
            .detach(|| -> chaincrf_cws::Result<(String, UserDict)> {
                // Parsed from the file first, so that errors name the file and line.
                let dict = UserDict::load(&path)?;
                let text = std::fs::read_to_string(&path).map_err(|source| chaincrf_cws::Error::Io {
                    path: path.display().to_string(),
                    source,
                })?;
                Ok((text, dict))
            })
            .map_err(cws_error)?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        // Waits for running segmentations without holding the GIL.
        py.detach(|| {
            let mut state = self.write();
            for line in text.lines() {
                if let Some(word) = line.split_whitespace().next() {
                    state.seg.add_user_word(word);
                }
            }
            state.dict_text.push_str(text);
            if !state.dict_text.ends_with('\n') {
                state.dict_text.push('\n');
            }
        });
        Ok(dict.len())
    }

    /// Adds words that must always come out whole.
    fn add_words(&self, py: Python<'_>, words: Vec<String>) -> PyResult<()> {
        for w in &words {
            check_word(w)?;
        }
        // Waits for running segmentations without holding the GIL.
        py.detach(|| {
            let mut state = self.write();
            for w in &words {
                state.seg.add_user_word(w);
                state.dict_text.push_str(w);
                state.dict_text.push('\n');
            }
        });
        Ok(())
    }

    /// Whether runs of Latin letters and digits are kept whole.
    #[getter]
    fn keep_latin(&self) -> bool {
        self.keep_latin
    }

    /// Whether the model has compiled n-gram tables (the fast path).
    fn has_compiled_tables(&self) -> bool {
        self.read().seg.has_compiled_tables()
    }

    /// The words of `text`, whitespace dropped.
    fn cut<'py>(&self, py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyList>> {
        let words = py.detach(|| self.words(text, false))?;
        word_list(py, text, &words)
    }

    /// `(word, confidence)` pairs: each word's marginal probability.
    fn cut_confidence<'py>(&self, py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyList>> {
        let words = py.detach(|| self.words(text, true))?;
        let list = PyList::empty(py);
        for w in &words {
            list.append((&text[w.span.clone()], w.confidence.unwrap_or(f64::NAN)))?;
        }
        Ok(list)
    }

    /// `(word, start, end)` (with `confidence`, also the word's probability),
    /// offsets counting code points of `text`.
    #[pyo3(signature = (text, confidence = false))]
    fn tokenize<'py>(&self, py: Python<'py>, text: &str, confidence: bool) -> PyResult<Bound<'py, PyList>> {
        let words = py.detach(|| self.words(text, confidence))?;
        token_list(py, text, &words, confidence)
    }

    /// `cut` over many texts on `threads` threads (default: all cores), the
    /// GIL released; results in input order.
    #[pyo3(signature = (lines, threads = None, confidence = false))]
    fn cut_many<'py>(
        &self,
        py: Python<'py>,
        lines: &Bound<'py, PyAny>,
        threads: Option<usize>,
        confidence: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let lines = read_lines(lines)?;
        let results = segment_batch(self, py, &lines, threads, confidence)?;
        let out = PyList::empty(py);
        for (text, words) in lines.iter().zip(&results) {
            if confidence {
                let list = PyList::empty(py);
                for w in words {
                    list.append((&text[w.span.clone()], w.confidence.unwrap_or(f64::NAN)))?;
                }
                out.append(list)?;
            } else {
                out.append(word_list(py, text, words)?)?;
            }
        }
        Ok(out)
    }

    /// `tokenize` over many texts, as `cut_many`.
    #[pyo3(signature = (lines, threads = None))]
    fn tokenize_many<'py>(
        &self,
        py: Python<'py>,
        lines: &Bound<'py, PyAny>,
        threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let lines = read_lines(lines)?;
        let results = segment_batch(self, py, &lines, threads, false)?;
        let out = PyList::empty(py);
        for (text, words) in lines.iter().zip(&results) {
            out.append(token_list(py, text, words, false)?)?;
        }
        Ok(out)
    }

    /// Segments every line of `lines` and returns them joined as `chaincrf
    /// cws segment` writes them: words separated by a space, one line per
    /// text, each ending in a newline.
    #[pyo3(signature = (lines, threads = None))]
    fn segment_text(&self, py: Python<'_>, lines: &Bound<'_, PyAny>, threads: Option<usize>) -> PyResult<String> {
        let lines = read_lines(lines)?;
        let results = segment_batch(self, py, &lines, threads, false)?;
        let mut out = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum::<usize>() * 5 / 4);
        for (text, words) in lines.iter().zip(&results) {
            for (i, w) in words.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(&text[w.span.clone()]);
            }
            out.push('\n');
        }
        Ok(out)
    }
}

/// The corpus and model a training run reads and writes, and its options.
struct TrainJob {
    corpus: PathBuf,
    model: PathBuf,
    format: Option<CorpusFormat>,
    options: CwsTrainOptions,
}

/// Trains a segmenter on a segmented corpus and writes the model; mirrors
/// `chaincrf cws train`. `params` holds CRFsuite parameter names and values
/// as text, set on top of the segmenter's defaults.
#[pyfunction]
#[pyo3(signature = (
    corpus, model, *, format = None, scheme = "bmes", algorithm = "lbfgs", params = None,
    dev_every = None, prune = chaincrf_cws::DEFAULT_PRUNE_THRESHOLD, min_freq = 2,
    lexicon = true, lexicon_min_count = 1, lexicon_folds = 10, threads = None, patience = None,
    on_progress = None
))]
#[allow(clippy::too_many_arguments)]
pub fn cws_train<'py>(
    py: Python<'py>,
    corpus: PathBuf,
    model: PathBuf,
    format: Option<&str>,
    scheme: &str,
    algorithm: &str,
    params: Option<&Bound<'py, PyDict>>,
    dev_every: Option<usize>,
    prune: f32,
    min_freq: u32,
    lexicon: bool,
    lexicon_min_count: u32,
    lexicon_folds: usize,
    threads: Option<usize>,
    patience: Option<usize>,
    on_progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let value_error = |e: chaincrf_train::TrainError| PyValueError::new_err(full_message(&e));
    let algorithm = algorithm.parse().map_err(value_error)?;
    let mut p = chaincrf_cws::default_params(algorithm);
    if let Some(params) = params {
        for (name, value) in params.iter() {
            let name: String = name
                .extract()
                .map_err(|_| PyTypeError::new_err(format!("parameter names must be strings, got {name}")))?;
            let value: String = value
                .extract()
                .map_err(|_| PyTypeError::new_err(format!("parameter {name}: expected its value as text")))?;
            p = p.set(&name, &value).map_err(value_error)?;
        }
    }
    let params = p.check().map_err(value_error)?;
    if patience == Some(0) {
        return Err(PyValueError::new_err("patience must be at least 1"));
    }
    if patience.is_some() && dev_every.is_none() {
        return Err(PyValueError::new_err("patience needs a held-out part (dev_every=N)"));
    }
    if threads == Some(0) {
        return Err(PyValueError::new_err("threads must be at least 1"));
    }
    if dev_every == Some(0) {
        return Err(PyValueError::new_err("dev_every must be at least 1"));
    }
    let format = match format {
        None => None,
        Some("pku") => Some(CorpusFormat::Pku),
        Some("sighan") => Some(CorpusFormat::Sighan),
        Some(other) => {
            return Err(PyValueError::new_err(format!(
                "format must be 'pku', 'sighan' or None (detected), not {other:?}"
            )))
        }
    };
    let scheme = match scheme {
        "bmes" => TagScheme::Bmes,
        "6tag" => TagScheme::SixTag,
        other => {
            return Err(PyValueError::new_err(format!(
                "scheme must be 'bmes' or '6tag', not {other:?}"
            )))
        }
    };
    let mut options = CwsTrainOptions {
        scheme,
        dev_every,
        min_freq,
        lexicon_min_count,
        lexicon_folds,
        prune_threshold: prune,
        params,
        threads: threads.unwrap_or(0),
        patience,
        ..CwsTrainOptions::default()
    };
    options.ngram.lexicon_features = lexicon;
    chaincrf_model::check_writable(&model).map_err(model_io_error)?;
    let job = TrainJob {
        corpus,
        model,
        format,
        options,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let callback_error: Arc<Mutex<Option<PyErr>>> = Arc::new(Mutex::new(None));
    let mut interrupt: Option<PyErr> = None;
    let result = py.detach(|| {
        std::thread::scope(|scope| {
            let worker = scope.spawn(|| run_training(&job, &stop, on_progress.as_ref(), &callback_error));
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
    let summary = result?;
    summary.into_dict(py)
}

/// What a finished run reports.
struct TrainSummary {
    termination: String,
    detail: String,
    iterations: u64,
    seconds: f64,
    features: usize,
    best_heldout: Option<f64>,
    train_sentences: usize,
    dev_sentences: usize,
    model_bytes: u64,
}

impl TrainSummary {
    fn into_dict(self, py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("termination", self.termination)?;
        d.set_item("termination_detail", self.detail)?;
        d.set_item("iterations", self.iterations)?;
        d.set_item("seconds", self.seconds)?;
        d.set_item("num_features", self.features)?;
        d.set_item("best_heldout", self.best_heldout)?;
        d.set_item("train_sentences", self.train_sentences)?;
        d.set_item("dev_sentences", self.dev_sentences)?;
        d.set_item("model_bytes", self.model_bytes)?;
        Ok(d)
    }
}

/// Calls `on_progress(dict)` (on the worker thread, taking the GIL).
fn report_progress(on_progress: &Py<PyAny>, fill: impl FnOnce(&Bound<'_, PyDict>) -> PyResult<()>) -> PyResult<()> {
    Python::attach(|py| {
        let d = PyDict::new(py);
        fill(&d)?;
        on_progress.call1(py, (d,)).map(|_| ())
    })
}

/// Reads the corpus, trains and saves (on the worker thread).
fn run_training(
    job: &TrainJob,
    stop: &Arc<AtomicBool>,
    on_progress: Option<&Py<PyAny>>,
    callback_error: &Mutex<Option<PyErr>>,
) -> PyResult<TrainSummary> {
    let started = std::time::Instant::now();
    let sentences = match job.format {
        Some(f) => chaincrf_cws::read_corpus_as(&job.corpus, f),
        None => chaincrf_cws::read_corpus(&job.corpus).map(|(_, s)| s),
    }
    .map_err(cws_error)?;
    if sentences.iter().all(|s| s.is_empty()) {
        return Err(PyValueError::new_err(format!(
            "{}: no sentences to train on",
            job.corpus.display()
        )));
    }
    if let Some(cb) = on_progress {
        report_progress(cb, |d| {
            d.set_item("event", "read")?;
            d.set_item("sentences", sentences.len())?;
            d.set_item("seconds", started.elapsed().as_secs_f64())
        })?;
    }
    let mut on_event = |p: &chaincrf_train::Progress<'_>| {
        let Some(cb) = on_progress else { return };
        if p.replayed {
            return;
        }
        let called = report_progress(cb, |d| {
            d.set_item("event", "iteration")?;
            d.set_item("algorithm", p.algorithm.name())?;
            d.set_item(
                "stage",
                match p.stage {
                    chaincrf_train::Stage::WarmStart => "warm_start",
                    chaincrf_train::Stage::Main => "main",
                },
            )?;
            d.set_item("iteration", p.iteration)?;
            d.set_item("loss", p.objective)?;
            d.set_item("gradient_norm", p.gradient_norm)?;
            d.set_item("learning_rate", p.learning_rate)?;
            d.set_item("active_features", p.active_features)?;
            d.set_item("heldout", p.heldout)?;
            d.set_item("seconds", p.seconds)
        });
        if let Err(e) = called {
            if let Ok(mut slot) = callback_error.lock() {
                slot.get_or_insert(e);
            }
            stop.store(true, Ordering::SeqCst);
        }
    };
    let trained =
        train_segmenter_with(&sentences, &job.options, None, Some(stop.clone()), &mut on_event).map_err(cws_error)?;
    drop(sentences);
    let report = &trained.report;
    if let chaincrf_train::Termination::Interrupted { .. } = report.termination {
        // The caller raises the KeyboardInterrupt or the callback's error; no file is written.
        return Err(PyValueError::new_err("training was interrupted; no model was written"));
    }
    let model_bytes = chaincrf_model::save(&trained.model, &job.model).map_err(model_io_error)?;
    Ok(TrainSummary {
        termination: report.termination.name().to_owned(),
        detail: report.termination.to_string(),
        iterations: report.iterations,
        seconds: started.elapsed().as_secs_f64(),
        features: report.features,
        best_heldout: report.best_heldout,
        train_sentences: trained.train_sentences,
        dev_sentences: trained.dev_sentences,
        model_bytes,
    })
}
