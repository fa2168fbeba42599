//! The model file format — all model I/O lives in this one module.
//!
//! Layout (little-endian):
//!
//! | bytes | content |
//! | --- | --- |
//! | 8 | magic `CHAINCRF` |
//! | 4 | format version ([`FORMAT_VERSION`]) |
//! | 8 | body length in bytes |
//! | 8 | body checksum (FNV-1a/64 with a final mix, see `chaincrf_features::hash`) |
//! | … | body: the [`Model`] encoded with `bincode` 2 (`serde`, standard config) |
//!
//! Why a length and a checksum before bincode: a truncated or corrupted file is
//! then reported as such before any decoding, and a forged length inside the
//! body cannot pass the checksum by accident. Decoding also runs with a size
//! limit ([`MAX_BODY_BYTES`]), so no claimed length can make the loader reserve
//! more than that. Files are written to a temporary file in the same directory,
//! synced, then renamed over the target: a crash leaves the old model or the new
//! one, never half of one.

use crate::model::Model;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Magic bytes at the start of every model file.
pub const MAGIC: &[u8; 8] = b"CHAINCRF";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The largest body this build decodes (2 GiB).
pub const MAX_BODY_BYTES: usize = 1 << 31;
const HEADER_LEN: usize = 8 + 4 + 8 + 8;

/// Errors reading or writing model files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelIoError {
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a usable model.
    #[error("{path}: not a valid chaincrf model: {reason}")]
    BadModelFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

fn bad(path: &Path, reason: impl Into<String>) -> ModelIoError {
    ModelIoError::BadModelFile {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn io_err(path: &Path, source: std::io::Error) -> ModelIoError {
    ModelIoError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_BODY_BYTES>,
> {
    bincode::config::standard().with_limit::<MAX_BODY_BYTES>()
}

/// Encodes a model into the bytes of a model file.
///
/// # Errors
/// [`ModelIoError::BadModelFile`] if the model cannot be encoded (too large).
pub fn to_bytes(model: &Model) -> Result<Vec<u8>, ModelIoError> {
    let body = bincode::serde::encode_to_vec(model, config())
        .map_err(|e| bad(Path::new("<memory>"), format!("cannot encode: {e}")))?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&chaincrf_features::hash::hash_bytes(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes the bytes of a model file; `path` only names the source in errors.
///
/// # Errors
/// [`ModelIoError::BadModelFile`] for a file that is empty, truncated, foreign,
/// corrupted or of a newer format version.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Model, ModelIoError> {
    if bytes.is_empty() {
        return Err(bad(path, "the file is empty"));
    }
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        return Err(bad(path, "wrong magic number (not a chaincrf model file)"));
    }
    if bytes.len() < HEADER_LEN {
        return Err(bad(path, "the file is truncated (incomplete header)"));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
    if version > FORMAT_VERSION {
        return Err(bad(
            path,
            format!("format version {version} is newer than this build reads ({FORMAT_VERSION}); upgrade chaincrf"),
        ));
    }
    if version == 0 {
        return Err(bad(path, "format version 0 is invalid"));
    }
    let body_len = u64::from_le_bytes(bytes[12..20].try_into().unwrap_or_default());
    let checksum = u64::from_le_bytes(bytes[20..28].try_into().unwrap_or_default());
    let body = &bytes[HEADER_LEN..];
    if (body.len() as u64) < body_len {
        return Err(bad(
            path,
            format!("the file is truncated ({} of {body_len} body bytes)", body.len()),
        ));
    }
    if (body.len() as u64) > body_len {
        return Err(bad(
            path,
            format!("{} unexpected bytes after the model", body.len() as u64 - body_len),
        ));
    }
    if body_len as usize > MAX_BODY_BYTES {
        return Err(bad(
            path,
            format!("the body claims {body_len} bytes, above the {MAX_BODY_BYTES}-byte limit"),
        ));
    }
    if chaincrf_features::hash::hash_bytes(body) != checksum {
        return Err(bad(path, "checksum mismatch (the file is corrupted)"));
    }
    let (mut model, used): (Model, usize) =
        bincode::serde::decode_from_slice(body, config()).map_err(|e| bad(path, format!("cannot decode: {e}")))?;
    if used != body.len() {
        return Err(bad(path, "trailing bytes inside the body"));
    }
    model.attributes.rebuild_index();
    model.labels.rebuild_index();
    validate(&model).map_err(|r| bad(path, r))?;
    Ok(model)
}

/// Checks that the blocks of a decoded model fit together.
fn validate(m: &Model) -> Result<(), String> {
    let l = m.layout();
    let w = &m.weights;
    if l.k == 0 {
        return Err("the model has no labels".into());
    }
    let checks = [
        ("state weights", w.state.len(), l.num_state * l.k),
        ("edge weights", w.edge.len(), l.num_edge * l.k * l.k),
        ("transition weights", w.transitions.len(), l.k * l.k),
        ("start weights", w.start.len(), l.k),
        ("end weights", w.end.len(), l.k),
    ];
    for (what, got, want) in checks {
        if got != want {
            return Err(format!("{what}: {got} values, expected {want}"));
        }
    }
    let s = &m.structure;
    let k = l.k as u32;
    if s.forbidden_transitions.iter().any(|&(i, j)| i >= k || j >= k)
        || s.forbidden_start.iter().chain(&s.forbidden_end).any(|&y| y >= k)
    {
        return Err("a structural constraint names a label out of range".into());
    }
    if [&w.state[..], &w.edge, &w.transitions, &w.start, &w.end]
        .iter()
        .any(|b| b.iter().any(|x| !x.is_finite()))
    {
        return Err("a weight is not finite".into());
    }
    Ok(())
}

/// Writes `model` to `path` atomically (temporary file, sync, rename).
///
/// # Errors
/// [`ModelIoError::Io`] when the file cannot be written; the target is untouched then.
pub fn save(model: &Model, path: &Path) -> Result<u64, ModelIoError> {
    let bytes = to_bytes(model)?;
    write_atomically(path, &bytes)?;
    Ok(bytes.len() as u64)
}

/// Writes `bytes` to `path` via a temporary file in the same directory and a rename.
///
/// # Errors
/// [`ModelIoError::Io`] when any step fails (the temporary file is removed).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ModelIoError> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(path, e));
    }
    Ok(())
}

/// The temporary file a write to `path` goes through: same directory, hidden,
/// named after the target and this process.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Checks that `path` can be written (creating and removing a temporary file
/// beside it), so a long training run fails before it starts, not after.
///
/// # Errors
/// [`ModelIoError::Io`] when the directory is not writable or `path` is a directory.
pub fn check_writable(path: &Path) -> Result<(), ModelIoError> {
    if path.is_dir() {
        return Err(io_err(path, std::io::Error::other("is a directory")));
    }
    let tmp = temp_path(path);
    File::create(&tmp).map_err(|e| io_err(path, e))?;
    let _ = std::fs::remove_file(&tmp);
    Ok(())
}

/// Reads and decodes the model at `path`.
///
/// # Errors
/// [`ModelIoError::Io`] when unreadable; [`ModelIoError::BadModelFile`] when not a valid model.
pub fn load(path: &Path) -> Result<Model, ModelIoError> {
    let mut f = File::open(path).map_err(|e| io_err(path, e))?;
    let len = f.metadata().map_err(|e| io_err(path, e))?.len();
    if len > (MAX_BODY_BYTES + HEADER_LEN) as u64 {
        return Err(bad(path, format!("the file is {len} bytes, above the limit")));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    f.read_to_end(&mut bytes).map_err(|e| io_err(path, e))?;
    from_bytes(&bytes, path)
}

/// Encodes an extractor configuration (or anything serializable) for
/// [`crate::ExtractorSpec::Custom`], with the same bincode configuration.
///
/// # Errors
/// A message when encoding fails.
pub fn encode_payload<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| e.to_string())
}

/// Decodes a payload written by [`encode_payload`].
///
/// # Errors
/// A message when the bytes do not decode to `T`.
pub fn decode_payload<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (v, used) = bincode::serde::decode_from_slice(bytes, config()).map_err(|e| e.to_string())?;
    if used != bytes.len() {
        return Err("trailing bytes in payload".into());
    }
    Ok(v)
}
