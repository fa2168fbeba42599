//! `chaincrf._native`: the compiled part of the `chaincrf` Python package.
//!
//! The Python modules (`chaincrf.sklearn_crfsuite`, `chaincrf.pycrfsuite`,
//! `chaincrf.layer`) hold the public API; this module gives them reading of
//! python-crfsuite's feature containers ([`items`]), trained models and
//! tagging ([`model`]), training ([`train`]) and the numpy CRF layer
//! ([`layer`]), and Chinese word segmentation ([`cws`]). Every long call releases the GIL; bad input raises
//! `TypeError` or `ValueError` naming the problem.

use pyo3::prelude::*;

mod cws;
mod items;
mod layer;
mod model;
mod train;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<items::ItemSequence>()?;
    m.add_class::<model::Model>()?;
    m.add_class::<train::Trainer>()?;
    m.add_class::<cws::CwsSegmenter>()?;
    m.add_function(wrap_pyfunction!(cws::cws_train, m)?)?;
    m.add_function(wrap_pyfunction!(layer::nll, m)?)?;
    m.add_function(wrap_pyfunction!(layer::viterbi, m)?)?;
    m.add_function(wrap_pyfunction!(layer::marginals, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
