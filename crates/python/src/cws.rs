//! Chinese word segmentation from Python: the loaded segmenter behind
//! `chaincrf.cws.Segmenter` and the training call behind `chaincrf.cws.train`.
//!
//! One [`CwsSegmenter`] is shared by every Python thread: the model sits
//! behind a read-write lock that segmentation takes for reading (with the
//! GIL released), and only `add_word` takes it for writing. Word spans come
//! from `chaincrf_cws` as byte ranges; here they become code-point offsets
//! of the Python string.
//!
//! Batches (`cut_many`, `tokenize_many`, `segment_text`) read every text
//! into one UTF-8 buffer and segment it in chunks of lines, as `chaincrf cws
//! segment` does, on this process's thread pool (`crate::layer::pool`,
//! rebuilt after `fork`). Building the Python result needs the GIL, so it is
//! the calling thread's job, and it overlaps the segmenting: the thread turns
//! each finished chunk into lists while the pool works on the next ones
//! ([`run_batch`]). It is kept cheap: the threads hand over each word with
//! its hash, so that a word repeated in the batch becomes one shared `str`
//! ([`WordCache`]), lists are filled in place, and they stay out of the
//! cyclic collector's way until returned ([`Untracked`]).
//!
//! The user dictionary is also kept as text (the file's lines, then every
//! added word on a line of its own), so that a pickled segmenter — shipped to
//! a Spark executor or a multiprocessing worker — comes back with the same
//! dictionary without the file.

use crate::layer::pool;
use crate::model::model_io_error;
use chaincrf_cws::{train_segmenter_with, CwsTrainOptions, FoldLayout};
use chaincrf_cws::{CorpusFormat, Segmenter, Session, TagScheme, UserDict, Word};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::ops::Range;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, TryLockError};
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

    /// The lock for reading, taken by a thread that holds the GIL. It must
    /// not block with the GIL held: std's lock makes new readers wait behind
    /// a waiting writer (`add_words`, which waits without the GIL), and that
    /// writer waits for a running batch, whose calling thread needs the GIL
    /// to finish. So while the lock is not free, wait for it without the GIL,
    /// then try again with it.
    fn read_with_gil(&self, py: Python<'_>) -> std::sync::RwLockReadGuard<'_, State> {
        loop {
            match self.state.try_read() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(TryLockError::WouldBlock) => py.detach(|| drop(self.read())),
            }
        }
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

    /// Segments one text (the GIL released): its words as code-point ranges,
    /// with confidences when asked for.
    fn bounds(&self, py: Python<'_>, text: &Bound<'_, PyString>, confidence: bool) -> PyResult<Bounds> {
        let mut utf8 = String::new();
        push_utf8(&mut utf8, text)?;
        py.detach(|| {
            let state = self.read();
            let words = state.seg.session().segment(&utf8, confidence).map_err(cws_error)?;
            let mut bounds = Bounds::default();
            bounds.push(&utf8, 0, &words, confidence, true, None);
            Ok(bounds)
        })
    }
}

/// Python objects for the words of one text: `str`, `(str, confidence)` or
/// `(str, start, end)`.
#[derive(Clone, Copy)]
enum Shape {
    Words,
    WithConfidence,
    Tokens,
}

impl Shape {
    /// The list of a text's `len` words: `word(i)` is the `i`-th word's
    /// `str`, `chars[i]` its code-point range in the text (only read for
    /// [`Shape::Tokens`]), `confidences[i]` its confidence (only read for
    /// [`Shape::WithConfidence`]).
    fn list<'py>(
        self,
        py: Python<'py>,
        len: usize,
        chars: &[(usize, usize)],
        confidences: &[f64],
        mut word: impl FnMut(usize) -> PyResult<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        list_of(py, len, |i| {
            let word = word(i)?;
            Ok(match self {
                Shape::Words => word,
                Shape::WithConfidence => (word, confidences[i]).into_pyobject(py)?.into_any(),
                Shape::Tokens => (word, chars[i].0, chars[i].1).into_pyobject(py)?.into_any(),
            })
        })
    }
}

/// The texts of a batch call in one UTF-8 buffer.
struct Texts {
    text: String,
    /// Byte range of each text in `text`.
    lines: Vec<Range<usize>>,
}

/// Reads a sequence of `str` for a batch call.
fn read_texts(lines: &Bound<'_, PyAny>) -> PyResult<Texts> {
    if lines.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "expected an iterable of strings (one per text), got a single str; use cut() for one text",
        ));
    }
    let size = lines.len().unwrap_or(0);
    let mut texts = Texts {
        text: String::new(),
        lines: Vec::with_capacity(size),
    };
    for (i, item) in lines.try_iter()?.enumerate() {
        let item = item?;
        let object = item.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!(
                "item {i}: expected str, got {}",
                item.get_type().name().map_or("?".into(), |n| n.to_string())
            ))
        })?;
        let start = texts.text.len();
        push_utf8(&mut texts.text, object).map_err(|e| PyValueError::new_err(format!("item {i}: {e}")))?;
        texts.lines.push(start..texts.text.len());
    }
    Ok(texts)
}

/// Appends the UTF-8 form of `s` to `buf` (one copy: CPython encodes into a
/// `bytes` object, which is copied here). Fails for a `str` holding a lone
/// surrogate, which has no UTF-8 form.
fn push_utf8(buf: &mut String, s: &Bound<'_, PyString>) -> PyResult<()> {
    let bytes = s.encode_utf8()?;
    buf.push_str(std::str::from_utf8(bytes.as_bytes()).map_err(|e| PyValueError::new_err(e.to_string()))?);
    Ok(())
}

/// `s[start:end]` (code points) as a new `str`. CPython copies the code
/// units of `s` (no UTF-8 decoding, unlike building a `str` from Rust text)
/// and returns its shared objects for one Latin-1 character or for the whole
/// of `s`.
fn substring<'py>(s: &Bound<'py, PyString>, start: usize, end: usize) -> PyResult<Bound<'py, PyAny>> {
    // Offsets count code points of `s` (from its UTF-8 form), so they fit
    // `Py_ssize_t` (a Python string is shorter than `isize::MAX` bytes).
    let (start, end) = (start as ffi::Py_ssize_t, end as ffi::Py_ssize_t);
    // SAFETY: `s` is a live `str` and the GIL is held (`Bound`);
    // `PyUnicode_Substring` returns a new reference, or NULL with an
    // exception set, which `from_owned_ptr_or_err` turns into an error.
    unsafe { Bound::from_owned_ptr_or_err(s.py(), ffi::PyUnicode_Substring(s.as_ptr(), start, end)) }
}

/// A list of `len` items made by `item(i)`, in one allocation.
fn list_of<'py>(
    py: Python<'py>,
    len: usize,
    mut item: impl FnMut(usize) -> PyResult<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyList>> {
    // SAFETY: `PyList_New` returns a new list of `len` NULL slots (or NULL
    // with an exception set); each slot is set exactly once below by
    // `PyList_SetItem`, which steals the item's reference and cannot fail
    // for an index in range of a list. A list dropped with slots still NULL
    // (an item failed) is freed correctly: CPython's list deallocation and
    // traversal skip NULL slots.
    unsafe {
        let list = Bound::from_owned_ptr_or_err(py, ffi::PyList_New(len as ffi::Py_ssize_t))?;
        for i in 0..len {
            let value = item(i)?;
            ffi::PyList_SetItem(list.as_ptr(), i as ffi::Py_ssize_t, value.into_ptr());
        }
        Ok(list.cast_into_unchecked())
    }
}

/// Words of texts: their code-point ranges in their text and their
/// references for a [`WordCache`], each when asked for, and their
/// confidences.
#[derive(Default)]
struct Bounds {
    chars: Vec<(usize, usize)>,
    refs: Vec<WordRef>,
    confidences: Vec<f64>,
}

/// How the calling thread finds a word's `str`: by its key in the batch's
/// [`WordCache`], or, for a word too long to cache, by its bytes in the
/// batch's buffer.
#[derive(Clone, Copy)]
enum WordRef {
    Cached(WordKey),
    Long(usize, usize),
}

impl Bounds {
    /// Appends `words` (sorted, non-overlapping byte spans of `text`, which
    /// starts at byte `base` of its buffer): their code-point ranges with
    /// `chars`, their [`WordRef`]s when given a `seed`.
    fn push(
        &mut self,
        text: &str,
        base: usize,
        words: &[Word],
        confidence: bool,
        chars: bool,
        seed: Option<&WordSeed>,
    ) {
        let bytes = text.as_bytes();
        let (mut byte, mut count) = (0usize, 0usize);
        let mut advance = |to: usize| {
            // Code points are the bytes that do not continue one (spans
            // are short: a plain loop beats `chars().count()` here).
            count += bytes[byte..to].iter().filter(|&&b| (b as i8) >= -0x40).count();
            byte = to;
            count
        };
        for w in words {
            if chars {
                let start = advance(w.span.start);
                let end = advance(w.span.end);
                self.chars.push((start, end));
            }
            if let Some(seed) = seed {
                self.refs.push(match WordKey::new(&bytes[w.span.clone()], seed) {
                    Some(key) => WordRef::Cached(key),
                    None => WordRef::Long(base + w.span.start, base + w.span.end),
                });
            }
            if confidence {
                self.confidences.push(w.confidence.unwrap_or(f64::NAN));
            }
        }
    }
}

/// The words of a chunk of texts: their bounds one text after another, and
/// how many words each text has.
#[derive(Default)]
struct ChunkWords {
    words: Bounds,
    counts: Vec<usize>,
}

/// Lines per task: few enough that both threads get work on a short batch
/// and results come back soon after the call starts, many enough that the
/// per-task costs vanish (the CLI's `cws segment` uses the same).
const CHUNK_LINES: usize = 64;

/// A chunk also ends once it holds this many bytes, so that a batch of long
/// texts (whole documents) still spreads over the threads.
const CHUNK_BYTES: usize = 16 << 10;

/// Consecutive line ranges of `lines` (indexes into it): [`CHUNK_LINES`]
/// lines or [`CHUNK_BYTES`] bytes each, whichever comes first.
fn chunks(lines: &[Range<usize>]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, line) in lines.iter().enumerate() {
        bytes += line.len();
        if i + 1 - start == CHUNK_LINES || bytes >= CHUNK_BYTES {
            out.push(start..i + 1);
            start = i + 1;
            bytes = 0;
        }
    }
    if start < lines.len() {
        out.push(start..lines.len());
    }
    out
}

/// The thread count of a batch call (`None`: every core).
fn thread_count(threads: Option<usize>) -> PyResult<usize> {
    match threads {
        Some(0) => Err(PyValueError::new_err("threads must be at least 1")),
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

/// Segments every text of `texts` on `threads` threads of this process's
/// pool and hands each chunk's result, `work`'s output, to `consume` on the
/// calling thread, in input order, as soon as it and every chunk before it
/// are done. So while the pool segments the next chunks, the calling thread
/// turns finished ones into Python objects (holding the GIL, which it gives
/// up only while it waits for a chunk). Chunks are handed out in order from
/// a shared counter, so they also finish roughly in order.
///
/// The first error in input order is returned: a segmentation error, or one
/// of `consume` (which stops the remaining work).
fn run_batch<T: Send>(
    seg: &CwsSegmenter,
    py: Python<'_>,
    texts: &Texts,
    threads: Option<usize>,
    work: impl Fn(&mut Session<'_>, &mut Vec<Word>, &str, &[Range<usize>]) -> chaincrf_cws::Result<T> + Sync,
    mut consume: impl FnMut(Range<usize>, T) -> PyResult<()>,
) -> PyResult<()> {
    let threads = thread_count(threads)?;
    let chunks = chunks(&texts.lines);
    if chunks.is_empty() {
        return Ok(());
    }
    let pool = pool(threads)?;
    let state = seg.read_with_gil(py);
    let segmenter = &state.seg;
    let (text, lines) = (texts.text.as_str(), texts.lines.as_slice());
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let done: Mutex<Vec<Option<std::thread::Result<chaincrf_cws::Result<T>>>>> =
        Mutex::new((0..chunks.len()).map(|_| None).collect());
    let ready = Condvar::new();
    let lock = || done.lock().unwrap_or_else(|p| p.into_inner());
    let mut outcome = Ok(());
    pool.in_place_scope(|scope| {
        for _ in 0..threads.min(chunks.len()) {
            scope.spawn(|_| {
                let mut session = segmenter.session();
                let mut words = Vec::new();
                loop {
                    let c = next.fetch_add(1, Ordering::Relaxed);
                    if c >= chunks.len() || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    // A panic must reach the caller as an error: left
                    // unreported, the calling thread would wait for this
                    // chunk forever.
                    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        work(&mut session, &mut words, text, &lines[chunks[c].clone()])
                    }));
                    lock()[c] = Some(result);
                    ready.notify_all();
                }
            });
        }
        for (c, chunk) in chunks.iter().enumerate() {
            let taken = lock()[c].take();
            let result = match taken {
                Some(r) => r,
                None => py.detach(|| {
                    let mut slots = ready
                        .wait_while(lock(), |slots| slots[c].is_none())
                        .unwrap_or_else(|p| p.into_inner());
                    slots[c].take().expect("waited until the chunk was done")
                }),
            };
            let consumed = match result {
                Ok(Ok(value)) => consume(chunk.clone(), value),
                Ok(Err(e)) => Err(cws_error(e)),
                Err(_) => Err(PyRuntimeError::new_err("segmentation failed: a worker thread panicked")),
            };
            if let Err(e) = consumed {
                stop.store(true, Ordering::Relaxed);
                outcome = Err(e);
                break;
            }
        }
    });
    outcome
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
        let state = self.read_with_gil(py);
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
    fn has_compiled_tables(&self, py: Python<'_>) -> bool {
        self.read_with_gil(py).seg.has_compiled_tables()
    }

    /// The words of `text`, whitespace dropped.
    fn cut<'py>(&self, py: Python<'py>, text: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyList>> {
        let b = self.bounds(py, text, false)?;
        Shape::Words.list(py, b.chars.len(), &[], &[], |i| {
            substring(text, b.chars[i].0, b.chars[i].1)
        })
    }

    /// `(word, confidence)` pairs: each word's marginal probability.
    fn cut_confidence<'py>(&self, py: Python<'py>, text: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyList>> {
        let b = self.bounds(py, text, true)?;
        Shape::WithConfidence.list(py, b.chars.len(), &[], &b.confidences, |i| {
            substring(text, b.chars[i].0, b.chars[i].1)
        })
    }

    /// `(word, start, end)` (with `confidence`, also the word's probability),
    /// offsets counting code points of `text`.
    #[pyo3(signature = (text, confidence = false))]
    fn tokenize<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyString>,
        confidence: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let b = self.bounds(py, text, confidence)?;
        if !confidence {
            return Shape::Tokens.list(py, b.chars.len(), &b.chars, &[], |i| {
                substring(text, b.chars[i].0, b.chars[i].1)
            });
        }
        list_of(py, b.chars.len(), |i| {
            let (start, end) = b.chars[i];
            let word = substring(text, start, end)?;
            Ok((word, start, end, b.confidences[i]).into_pyobject(py)?.into_any())
        })
    }

    /// `cut` over many texts on `threads` threads (default: all cores), the
    /// GIL released while they segment; results in input order.
    #[pyo3(signature = (lines, threads = None, confidence = false))]
    fn cut_many<'py>(
        &self,
        py: Python<'py>,
        lines: &Bound<'py, PyAny>,
        threads: Option<usize>,
        confidence: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let shape = if confidence {
            Shape::WithConfidence
        } else {
            Shape::Words
        };
        self.many(py, lines, threads, shape)
    }

    /// `tokenize` over many texts, as `cut_many`.
    #[pyo3(signature = (lines, threads = None))]
    fn tokenize_many<'py>(
        &self,
        py: Python<'py>,
        lines: &Bound<'py, PyAny>,
        threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyList>> {
        self.many(py, lines, threads, Shape::Tokens)
    }

    /// Segments every line of `lines` and returns them joined as `chaincrf
    /// cws segment` writes them: words separated by a space, one line per
    /// text, each ending in a newline.
    #[pyo3(signature = (lines, threads = None))]
    fn segment_text(&self, py: Python<'_>, lines: &Bound<'_, PyAny>, threads: Option<usize>) -> PyResult<String> {
        let texts = read_texts(lines)?;
        let mut out = String::with_capacity(texts.text.len() * 5 / 4 + texts.lines.len());
        let work = |session: &mut Session<'_>, words: &mut Vec<Word>, text: &str, lines: &[Range<usize>]| {
            let bytes = lines.last().map_or(0, |l| l.end) - lines.first().map_or(0, |l| l.start);
            let mut s = String::with_capacity(bytes + bytes / 2 + lines.len());
            for range in lines {
                session.write_line(&text[range.clone()], false, words, &mut s)?;
            }
            Ok(s)
        };
        run_batch(self, py, &texts, threads, work, |_, s: String| {
            out.push_str(&s);
            Ok(())
        })?;
        Ok(out)
    }
}

impl CwsSegmenter {
    /// `cut_many` and `tokenize_many`: the words of every text as lists of
    /// `shape`. The threads segment chunks of texts into code-point ranges
    /// (without the GIL); the calling thread meanwhile cuts the words of
    /// finished chunks out of the original `str` objects.
    fn many<'py>(
        &self,
        py: Python<'py>,
        lines: &Bound<'py, PyAny>,
        threads: Option<usize>,
        shape: Shape,
    ) -> PyResult<Bound<'py, PyList>> {
        let texts = read_texts(lines)?;
        let confidence = matches!(shape, Shape::WithConfidence);
        let tokens = matches!(shape, Shape::Tokens);
        let seed = WordSeed::new();
        let work = |session: &mut Session<'_>, words: &mut Vec<Word>, text: &str, lines: &[Range<usize>]| {
            let mut chunk = ChunkWords::default();
            chunk.counts.reserve(lines.len());
            for range in lines {
                let line = &text[range.clone()];
                session.segment_into(line, confidence, words)?;
                chunk
                    .words
                    .push(line, range.start, words, confidence, tokens, Some(&seed));
                chunk.counts.push(words.len());
            }
            Ok(chunk)
        };
        let mut out = Untracked(Vec::with_capacity(texts.lines.len()));
        let mut cache = WordCache::default();
        run_batch(self, py, &texts, threads, work, |_, chunk: ChunkWords| {
            let mut first = 0;
            let w = &chunk.words;
            for count in chunk.counts {
                let words = first..first + count;
                let chars = w.chars.get(words.clone()).unwrap_or(&[]);
                let confidences = w.confidences.get(words.clone()).unwrap_or(&[]);
                let list = shape.list(py, count, chars, confidences, |j| match &w.refs[first + j] {
                    WordRef::Cached(key) => cache.word(py, key),
                    WordRef::Long(start, end) => Ok(PyString::new(py, &texts.text[*start..*end]).into_any()),
                })?;
                out.push(list);
                first += count;
            }
            Ok(())
        })?;
        PyList::new(py, out.into_tracked())
    }
}

/// The words of one batch call by their text, so that a word that comes up
/// many times is one `str` object, not one per occurrence.
///
/// A batch of Chinese text repeats its words all the time (the PKU test
/// text ×18, 3.1M characters: 1.88M words, 13,289 distinct), and a `str` of
/// one or two CJK characters takes about 80 bytes; so the cache cuts the
/// memory of `cut_many`'s result by an order of magnitude (there: 17 MiB of
/// RSS instead of 223) and replaces most of the object allocations (and
/// their page faults) on the calling thread by a lookup in a table that
/// stays in cache. `str` objects are immutable, so sharing them
/// is invisible but for `is`. Long words (Latin runs, numbers, URLs kept
/// whole) rarely repeat and are not cached. The cache lives for one call.
#[derive(Default)]
struct WordCache<'py> {
    words: HashMap<WordKey, Bound<'py, PyAny>, BuildHasherDefault<WordHasher>>,
}

/// Words longer than this many UTF-8 bytes (four CJK characters) are made
/// afresh every time.
const MAX_CACHED_WORD_BYTES: usize = 12;

impl<'py> WordCache<'py> {
    /// The `str` of the word with key `key`, made the first time.
    fn word(&mut self, py: Python<'py>, key: &WordKey) -> PyResult<Bound<'py, PyAny>> {
        if let Some(word) = self.words.get(key) {
            return Ok(word.clone());
        }
        let word = PyString::new(py, key.text()?).into_any();
        self.words.insert(*key, word.clone());
        Ok(word)
    }
}

/// A key of [`WordCache`]: a word's bytes, held in the key itself (so that
/// comparing keys reads no other memory), and its hash, computed by the
/// thread that segmented it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct WordKey {
    hash: u64,
    len: u8,
    bytes: [u8; MAX_CACHED_WORD_BYTES],
}

/// The random keys of one call's word hashes, so that no text can be crafted
/// to make the cache's probes long.
struct WordSeed([u64; 2]);

impl WordSeed {
    fn new() -> Self {
        let random = RandomState::new();
        WordSeed([random.hash_one(0u64), random.hash_one(1u64)])
    }
}

/// The high and low halves of a full product, mixed: a keyed hash step.
fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

impl WordKey {
    /// The key of `word` (UTF-8), if it is short enough to cache.
    fn new(word: &[u8], seed: &WordSeed) -> Option<Self> {
        let len = word.len();
        if len > MAX_CACHED_WORD_BYTES {
            return None;
        }
        let mut bytes = [0; MAX_CACHED_WORD_BYTES];
        bytes[..len].copy_from_slice(word);
        let low = u64::from_le_bytes(bytes[..8].try_into().expect("eight bytes"));
        let high = u64::from(u32::from_le_bytes(bytes[8..].try_into().expect("four bytes"))) | (len as u64) << 32;
        let hash = folded_multiply(low ^ seed.0[0], high ^ seed.0[1]);
        Some(WordKey {
            hash: folded_multiply(hash, 0x9e37_79b9_7f4a_7c15),
            len: len as u8,
            bytes,
        })
    }

    /// The word.
    fn text(&self) -> PyResult<&str> {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).map_err(|e| PyValueError::new_err(e.to_string()))
    }
}

impl Hash for WordKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// Passes [`WordKey`]'s precomputed hash through.
#[derive(Default)]
struct WordHasher(u64);

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is ever called (by `WordKey::hash`); fold anything else in anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Lists held out of the cyclic garbage collector's sight while a batch is
/// built.
///
/// Every list counts as an allocation towards CPython's next collection, and
/// each collection walks every tracked list it reaches, word by word: built
/// one by one in a growing batch, tens of thousands of word lists were
/// walked again and again (a tenth of `cut_many`'s time in profiles). These
/// lists hold only `str` objects and tuples of atoms, so no cycle can run
/// through them, and no other code sees them before the batch is returned;
/// so they are untracked while held here and tracked again, each once, when
/// handed out. Dropped on an error, they are freed as untracked lists are.
struct Untracked<'py>(Vec<Bound<'py, PyList>>);

impl<'py> Untracked<'py> {
    fn push(&mut self, list: Bound<'py, PyList>) {
        // SAFETY: `list` is a live list created by this module and tracked
        // (`PyList_New` tracks); untracking a tracked object is allowed.
        unsafe {
            ffi::PyObject_GC_UnTrack(list.as_ptr().cast());
        }
        self.0.push(list);
    }

    fn into_tracked(self) -> Vec<Bound<'py, PyList>> {
        for list in &self.0 {
            // SAFETY: each list was untracked exactly once by `push`, and
            // nothing else can have tracked it again (no other code holds it).
            unsafe { ffi::PyObject_GC_Track(list.as_ptr().cast()) }
        }
        self.0
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
    lexicon = true, lexicon_min_count = 1, lexicon_folds = 10, fold_layout = "interleaved", clusters = 0,
    threads = None, patience = None, on_progress = None
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
    fold_layout: &str,
    clusters: i64,
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
    let fold_layout = match fold_layout {
        "interleaved" => FoldLayout::Interleaved,
        "contiguous" => FoldLayout::Contiguous,
        other => {
            return Err(PyValueError::new_err(format!(
                "fold_layout must be 'interleaved' or 'contiguous', not {other:?}"
            )))
        }
    };
    let clusters = match usize::try_from(clusters) {
        Ok(n) if n <= chaincrf_cws::MAX_CLUSTERS => n,
        _ => {
            return Err(PyValueError::new_err(format!(
                "clusters must be from 0 to {}, not {clusters}",
                chaincrf_cws::MAX_CLUSTERS
            )))
        }
    };
    let mut options = CwsTrainOptions {
        scheme,
        dev_every,
        min_freq,
        lexicon_min_count,
        lexicon_folds,
        fold_layout,
        char_clusters: clusters,
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
