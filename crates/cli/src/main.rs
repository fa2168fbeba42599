//! The `chaincrf` command-line tool.
fn main() {}
