//! Item sequences: Python feature containers read exactly as python-crfsuite
//! reads them, and the `ItemSequence` class.
//!
//! An *item* (one position of a sequence) is
//! * a `dict`: a value that is a `float`, `int` or `bool` (anything `float()`
//!   accepts) is the weight of the attribute named by the key; a `str` or
//!   `bytes` value makes the attribute `"key:value"` with weight 1; a nested
//!   `dict`, `list` or `set` contributes its own attributes with `"key:"`
//!   prefixed to their names;
//! * any other iterable of `str`/`bytes` names, each with weight 1.
//!
//! Where python-crfsuite would silently do something surprising, this module
//! raises instead, naming the item and the key: a `str` item (pycrfsuite turns
//! it into one attribute per character), a weight that is NaN or infinite, a
//! `bytes` name that is not UTF-8.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PySet, PyString, PyTuple};

/// One item: `(attribute name, weight)` pairs in the order given.
pub type Item = Vec<(String, f64)>;

/// Attributes of every position of one sequence.
pub type Items = Vec<Item>;

/// Python's name of an object's type, for error messages.
fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

/// Appends the text of a `str` or `bytes` object to `out`; `None` when `obj`
/// is neither.
fn push_text(obj: &Bound<'_, PyAny>, out: &mut String) -> PyResult<Option<()>> {
    if let Ok(s) = obj.cast::<PyString>() {
        out.push_str(&s.to_cow()?);
        return Ok(Some(()));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        let Ok(text) = std::str::from_utf8(b.as_bytes()) else {
            return Err(PyValueError::new_err(format!("{} is not UTF-8", obj.repr()?)));
        };
        out.push_str(text);
        return Ok(Some(()));
    }
    Ok(None)
}

/// Receives the attributes of a sequence as they are read.
pub trait ItemSink {
    /// One attribute of the current item.
    fn attribute(&mut self, name: &str, weight: f64);
    /// The current item is complete.
    fn end_item(&mut self);
}

/// Collects [`Items`] into the last one, the item being read (see
/// [`read_items`]).
impl ItemSink for Items {
    fn attribute(&mut self, name: &str, weight: f64) {
        if let Some(item) = self.last_mut() {
            item.push((name.to_owned(), weight));
        }
    }
    fn end_item(&mut self) {
        self.push(Vec::new());
    }
}

/// Reads one item (or a nested container) into `sink`; `name` holds the
/// prefix of the names (`"key:"` of the enclosing containers) and is given
/// back as it came. One buffer serves every name of a sequence.
fn read_into(obj: &Bound<'_, PyAny>, name: &mut String, sink: &mut impl ItemSink) -> PyResult<()> {
    let prefix = name.len();
    if let Ok(dict) = obj.cast::<PyDict>() {
        for (key, value) in dict.iter() {
            name.truncate(prefix);
            if push_text(&key, name)?.is_none() {
                return Err(PyTypeError::new_err(format!(
                    "feature names must be str or bytes, got {} ({})",
                    type_name(&key),
                    key.repr()?
                )));
            }
            if value.is_instance_of::<PyDict>() || value.is_instance_of::<PyList>() || value.is_instance_of::<PySet>() {
                name.push(':');
                read_into(&value, name, sink)?;
                continue;
            }
            let len = name.len();
            name.push(':');
            if push_text(&value, name)?.is_some() {
                sink.attribute(name, 1.0);
                continue;
            }
            name.truncate(len);
            let weight: f64 = value.extract().map_err(|_| {
                PyTypeError::new_err(format!(
                    "feature {name:?}: value must be a number, bool, str, bytes, dict, list or set, got {}",
                    type_name(&value)
                ))
            })?;
            if !weight.is_finite() {
                return Err(PyValueError::new_err(format!(
                    "feature {name:?}: weight {weight} is not finite"
                )));
            }
            sink.attribute(name, weight);
        }
        name.truncate(prefix);
        return Ok(());
    }
    if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(format!(
            "an item must be a dict of features or a list of feature names, got the {} {}",
            type_name(obj),
            obj.repr()?
        )));
    }
    let iter = obj.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "an item must be a dict of features or a list of feature names, got {}",
            type_name(obj)
        ))
    })?;
    for key in iter {
        let key = key?;
        name.truncate(prefix);
        if push_text(&key, name)?.is_none() {
            return Err(PyTypeError::new_err(format!(
                "feature names must be str or bytes, got {} ({})",
                type_name(&key),
                key.repr()?
            )));
        }
        sink.attribute(name, 1.0);
    }
    name.truncate(prefix);
    Ok(())
}

/// Reads a sequence of items: an [`ItemSequence`] or any iterable of items
/// (not a `str`, `bytes` or `dict`).
pub fn read_items(obj: &Bound<'_, PyAny>) -> PyResult<Items> {
    // The last item is the one being read: each end opens the next, so the
    // last is left empty.
    let mut items: Items = vec![Vec::new()];
    read_items_into(obj, &mut items)?;
    items.pop();
    Ok(items)
}

/// [`read_items`] into any sink. On an error the sink may have received
/// part of the sequence.
pub fn read_items_into(obj: &Bound<'_, PyAny>, sink: &mut impl ItemSink) -> PyResult<()> {
    if let Ok(seq) = obj.cast::<ItemSequence>() {
        for item in &seq.get().items {
            for (name, weight) in item {
                sink.attribute(name, *weight);
            }
            sink.end_item();
        }
        return Ok(());
    }
    if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() || obj.is_instance_of::<PyDict>() {
        return Err(PyTypeError::new_err(format!(
            "a sequence must be a list of items (dicts of features or lists of feature names), got {}",
            type_name(obj)
        )));
    }
    let iter = obj.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "a sequence must be a list of items (dicts of features or lists of feature names), got {}",
            type_name(obj)
        ))
    })?;
    let mut name = String::with_capacity(64);
    for (t, item) in iter.enumerate() {
        let item = item?;
        read_into(&item, &mut name, sink).map_err(|e| with_context(obj.py(), e, &format!("item {t}")))?;
        sink.end_item();
    }
    Ok(())
}

/// Reads a label sequence (an iterable of `str`).
pub fn read_labels(obj: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(format!(
            "labels must be a list of str, got the {} {}",
            type_name(obj),
            obj.repr()?
        )));
    }
    let iter = obj
        .try_iter()
        .map_err(|_| PyTypeError::new_err(format!("labels must be a list of str, got {}", type_name(obj))))?;
    let mut labels = Vec::new();
    for (t, label) in iter.enumerate() {
        let label = label?;
        let mut text = String::new();
        if push_text(&label, &mut text)?.is_none() {
            return Err(PyTypeError::new_err(format!(
                "label {t} must be a str, got {} ({})",
                type_name(&label),
                label.repr()?
            )));
        }
        labels.push(text);
    }
    Ok(labels)
}

/// The same exception type with `context: ` in front of its message.
pub fn with_context(py: Python<'_>, err: PyErr, context: &str) -> PyErr {
    let message = err.value(py).str().map_or_else(|_| String::new(), |s| s.to_string());
    let ty = err.get_type(py);
    if ty.is(py.get_type::<PyTypeError>()) {
        PyTypeError::new_err(format!("{context}: {message}"))
    } else if ty.is(py.get_type::<PyValueError>()) {
        PyValueError::new_err(format!("{context}: {message}"))
    } else {
        err
    }
}

/// A sequence of items converted once, for reuse in several calls
/// (python-crfsuite's `ItemSequence`).
#[pyclass(module = "chaincrf._native", frozen)]
pub struct ItemSequence {
    pub(crate) items: Items,
}

#[pymethods]
impl ItemSequence {
    #[new]
    fn new(pyseq: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(ItemSequence {
            items: read_items(pyseq)?,
        })
    }

    /// The items as a list of `{name: weight}` dicts.
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for item in &self.items {
            let d = PyDict::new(py);
            for (name, weight) in item {
                // A repeated name adds up, as in the model's scores.
                let prev: f64 = match d.get_item(name)? {
                    Some(v) => v.extract()?,
                    None => 0.0,
                };
                d.set_item(name, prev + weight)?;
            }
            list.append(d)?;
        }
        Ok(list)
    }

    fn __len__(&self) -> usize {
        self.items.len()
    }

    fn __repr__(&self) -> String {
        format!("<ItemSequence of size {}>", self.items.len())
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let items = slf.get().items(py)?;
        Ok((py.get_type::<ItemSequence>().into_any(), PyTuple::new(py, [items])?))
    }
}
