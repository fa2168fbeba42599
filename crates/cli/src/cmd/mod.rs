//! The subcommands, one module each, and the few helpers they share.
//!
//! The helpers exist so that every subcommand opens files, reads standard
//! input and loads models the same way, with the same error wording: a user
//! who sees `chaincrf: error: FILE: ...` from one command sees it from all.

/// `eprintln!` for status lines, except that a closed or broken standard
/// error is ignored instead of panicking: `chaincrf train ... 2>&1 | head`
/// must not kill a run (and lose its model) when `head` exits.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod checkpoint;
pub mod cws;
pub mod cws_cnn;
pub mod dump;
pub mod eval;
pub mod infer;
pub mod prune;
pub mod tag;
pub mod train;
pub mod training;

use anyhow::Context as _;
use chaincrf_model::Model;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

/// An input stream and the name to use for it in messages.
pub struct Input {
    /// The stream, buffered.
    pub reader: Box<dyn BufRead>,
    /// The path as given, or `<stdin>`.
    pub name: String,
    /// Whether this is standard input (output is then flushed per sequence, so
    /// another program can talk to `chaincrf` through pipes).
    pub is_stdin: bool,
}

/// Opens `path`, or standard input when it is `None` or `-`.
pub fn open_input(path: Option<&Path>) -> anyhow::Result<Input> {
    match path {
        None => Ok(stdin_input()),
        Some(p) if p.as_os_str() == "-" => Ok(stdin_input()),
        Some(p) => {
            let f = File::open(p).with_context(|| format!("{}: cannot open", p.display()))?;
            Ok(Input {
                reader: Box::new(BufReader::with_capacity(1 << 16, f)),
                name: p.display().to_string(),
                is_stdin: false,
            })
        }
    }
}

fn stdin_input() -> Input {
    Input {
        reader: Box::new(BufReader::with_capacity(1 << 16, io::stdin())),
        name: "<stdin>".to_owned(),
        is_stdin: true,
    }
}

/// Opens a file that must exist (no standard input).
pub fn open_file(path: &Path) -> anyhow::Result<BufReader<File>> {
    let f = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    Ok(BufReader::with_capacity(1 << 16, f))
}

/// Loads a model; the error names the file.
pub fn load_model(path: &Path) -> anyhow::Result<Model> {
    Ok(chaincrf_model::load(path)?)
}

/// Whether the error is a write to a closed pipe.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let io_kind = c.downcast_ref::<io::Error>().map(io::Error::kind).or_else(|| {
            c.downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
        });
        io_kind == Some(io::ErrorKind::BrokenPipe)
    })
}
