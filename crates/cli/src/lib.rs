//! The library half of the `chaincrf` command-line package: input formats the
//! binary reads that are not owned by another crate, kept here so that tests
//! and the fuzz targets (`fuzz/`) can call the exact parser the binary uses.

#![deny(missing_docs)]

pub mod potentials;
