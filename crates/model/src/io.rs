//! The model file format — all model I/O lives in this one module; the
//! format is described in the crate docs.

pub(crate) mod crfsuite;

use crate::model::{ExactWeights, Model};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Magic bytes at the start of every model file.
pub(crate) const MAGIC: &[u8; 8] = b"CHAINCRF";
/// The newest format version this build reads: 2, the version written for
/// models with exact weights (others are written as version 1).
pub(crate) const FORMAT_VERSION: u32 = 2;
/// Magic bytes at the start of every training checkpoint file.
pub(crate) const CHECKPOINT_MAGIC: &[u8; 8] = b"CHAINCKP";
/// The checkpoint format version this build writes and reads.
pub(crate) const CHECKPOINT_VERSION: u32 = 2;
/// The largest body this build decodes (2 GiB).
pub(crate) const MAX_BODY_BYTES: usize = 1 << 31;
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
    /// The file starts like a CRFsuite model (magic `lCRF`) but is not a usable one.
    #[error("{path}: not a valid CRFsuite model: {reason}")]
    BadCrfsuiteModel {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The file is not a usable training checkpoint.
    #[error("{path}: not a valid chaincrf checkpoint: {reason}")]
    BadCheckpoint {
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
    let cannot = |e: bincode::error::EncodeError| bad(Path::new("<memory>"), format!("cannot encode: {e}"));
    let mut body = bincode::serde::encode_to_vec(model, config()).map_err(cannot)?;
    let version: u32 = match model.weights.exact.as_deref() {
        Some(exact) => {
            body.extend(bincode::serde::encode_to_vec(exact, config()).map_err(cannot)?);
            2
        }
        None => 1,
    };
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&chaincrf_features::hash_bytes(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes the bytes of a model file, chaincrf's own or CRFsuite's (by the
/// magic); `path` only names the source in errors.
///
/// # Errors
/// [`ModelIoError::BadModelFile`] for a file that is empty, truncated, foreign,
/// corrupted or of a newer format version; [`ModelIoError::BadCrfsuiteModel`]
/// for a CRFsuite file that is truncated, corrupted or of another version.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Model, ModelIoError> {
    if crfsuite::is_crfsuite(bytes) {
        return crfsuite::from_bytes(bytes, path);
    }
    let (version, body, checksum) = open_header(bytes, MAGIC, FORMAT_VERSION).map_err(|r| bad(path, r))?;
    // The checksum is one serial pass over the body (FNV, a multiply per
    // byte: about a sixth of loading a segmentation model), so a large body
    // is checked on a second thread while this one decodes it. Decoding
    // bytes the checksum then rejects is safe (every length is checked
    // against the bytes left, and allocations grow with the elements
    // actually read), and its result is dropped: a corrupted file is
    // reported by its checksum, as when the two ran one after the other.
    let (verified, decoded) = if body.len() >= PARALLEL_CHECKSUM_BYTES {
        std::thread::scope(|scope| {
            match std::thread::Builder::new().spawn_scoped(scope, || verify_checksum(body, checksum)) {
                Ok(check) => {
                    let decoded = decode_model(body, version);
                    let verified = check.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
                    (verified, Some(decoded))
                }
                Err(_) => (verify_checksum(body, checksum), None),
            }
        })
    } else {
        (verify_checksum(body, checksum), None)
    };
    verified.map_err(|r| bad(path, r))?;
    decoded
        .unwrap_or_else(|| decode_model(body, version))
        .map_err(|r| bad(path, r))
}

/// Bodies from this size on are checksummed beside their decoding (below,
/// a thread costs more than it saves).
const PARALLEL_CHECKSUM_BYTES: usize = 1 << 20;

/// Decodes and checks a model body (the bytes after the header) of a file of
/// format `version`.
fn decode_model(body: &[u8], version: u32) -> Result<Model, String> {
    let (mut model, used): (Model, usize) =
        bincode::serde::decode_from_slice(body, config()).map_err(|e| format!("cannot decode: {e}"))?;
    let used = if version >= 2 {
        let (exact, more): (ExactWeights, usize) = bincode::serde::decode_from_slice(&body[used..], config())
            .map_err(|e| format!("cannot decode the exact weights: {e}"))?;
        model.weights.exact = Some(Box::new(exact));
        used + more
    } else {
        used
    };
    if used != body.len() {
        return Err("trailing bytes inside the body".into());
    }
    model.attributes.rebuild_index();
    model.labels.rebuild_index();
    validate(&model)?;
    Ok(model)
}

/// Checks the header of a model or checkpoint file and its checksum, and
/// returns its version and body.
fn open_container<'a>(bytes: &'a [u8], magic: &[u8; 8], newest: u32) -> Result<(u32, &'a [u8]), String> {
    let (version, body, checksum) = open_header(bytes, magic, newest)?;
    verify_checksum(body, checksum)?;
    Ok((version, body))
}

/// Whether `body` has the checksum its header claims.
fn verify_checksum(body: &[u8], checksum: u64) -> Result<(), String> {
    if chaincrf_features::hash_bytes(body) != checksum {
        return Err("checksum mismatch (the file is corrupted)".into());
    }
    Ok(())
}

/// Checks the header of a model or checkpoint file and returns its version,
/// its body and the body's claimed checksum (not verified here: see
/// [`verify_checksum`]).
///
/// Every check runs before anything is decoded or allocated: the magic, the
/// version, and that the claimed body length is exactly what the file holds
/// (so a forged length can neither make the reader wait for bytes that never
/// come nor reserve memory for them).
fn open_header<'a>(bytes: &'a [u8], magic: &[u8; 8], newest: u32) -> Result<(u32, &'a [u8], u64), String> {
    if bytes.is_empty() {
        return Err("the file is empty".into());
    }
    if bytes.len() < 8 || &bytes[..8] != magic {
        if magic.starts_with(&bytes[..bytes.len().min(8)]) {
            return Err("the file is truncated (incomplete header)".into());
        }
        return Err(match identify_foreign(bytes) {
            Some(what) => format!("wrong magic number: {what}"),
            None => "wrong magic number (not a file written by chaincrf)".into(),
        });
    }
    if bytes.len() < HEADER_LEN {
        return Err("the file is truncated (incomplete header)".into());
    }
    let word = |r: std::ops::Range<usize>| -> [u8; 8] {
        let mut a = [0u8; 8];
        a[..r.len()].copy_from_slice(&bytes[r]);
        a
    };
    let version = u64::from_le_bytes(word(8..12));
    if version > u64::from(newest) {
        return Err(format!(
            "format version {version} is newer than this build reads ({newest}); upgrade chaincrf"
        ));
    }
    if version == 0 {
        return Err("format version 0 is invalid".into());
    }
    let body_len = u64::from_le_bytes(word(12..20));
    let checksum = u64::from_le_bytes(word(20..28));
    let body = &bytes[HEADER_LEN..];
    if body_len > MAX_BODY_BYTES as u64 {
        return Err(format!(
            "the header claims a {body_len}-byte body, above the {MAX_BODY_BYTES}-byte limit (corrupted header?)"
        ));
    }
    if (body.len() as u64) < body_len {
        return Err(format!(
            "the file is truncated ({} of {body_len} body bytes)",
            body.len()
        ));
    }
    if (body.len() as u64) > body_len {
        return Err(format!(
            "{} unexpected bytes after the body (two files concatenated?)",
            body.len() as u64 - body_len
        ));
    }
    Ok((version as u32, body, checksum))
}

/// Names the kind of a file that is not a chaincrf file, when its first bytes
/// say what it is — the usual mistake is passing the wrong file, and "this is a
/// CRF++ model" helps more than "wrong magic number".
fn identify_foreign(bytes: &[u8]) -> Option<String> {
    let starts = |p: &[u8]| bytes.starts_with(p);
    let what = if starts(CHECKPOINT_MAGIC) {
        "this is a chaincrf training checkpoint, not a model (continue training from it with --resume)"
    } else if starts(MAGIC) {
        "this is a chaincrf model, not a training checkpoint"
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        "this is a PNG image"
    } else if starts(b"\x7fELF") {
        "this is an ELF executable or library"
    } else if starts(b"\x1f\x8b") {
        "this is gzip-compressed data (decompress it first)"
    } else if starts(b"PK\x03\x04") {
        "this is a ZIP archive"
    } else if starts(crfsuite::MAGIC) {
        "this is a CRFsuite model, not a training checkpoint"
    } else if starts(b"version: ") {
        "this looks like a CRF++ text model (crf_learn -t); chaincrf reads only its own models (retrain with `chaincrf train`)"
    } else if starts(&[0x64, 0, 0, 0]) {
        "this looks like a CRF++ binary model; chaincrf reads only its own models (retrain with `chaincrf train`)"
    } else if starts(b"\xff\xfe") || starts(b"\xfe\xff") {
        "this is UTF-16 text, not a model"
    } else if starts(b"{") || starts(b"[") {
        "this looks like JSON (`chaincrf dump --json` output cannot be loaded back as a model)"
    } else if looks_like_text(&bytes[..bytes.len().min(256)]) {
        "this is a text file, not a model"
    } else {
        return None;
    };
    Some(what.to_owned())
}

/// Whether `head` is UTF-8 without NUL (a character cut at the end is fine).
fn looks_like_text(head: &[u8]) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    };
    valid && !head.contains(&0)
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
    if w.blocks().iter().any(|b| b.iter().any(|x| !x.is_finite())) {
        return Err("a weight is not finite".into());
    }
    if let Some(e) = w.exact.as_deref() {
        let lengths = |b: [&[f64]; 5]| b.map(<[f64]>::len);
        if lengths(e.blocks()) != w.blocks().map(<[f32]>::len) {
            return Err("the exact weights do not have the blocks of the model".into());
        }
        if e.blocks().iter().any(|b| b.iter().any(|x| !x.is_finite())) {
            return Err("an exact weight is not finite".into());
        }
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
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable; a directory that cannot be synced
        // (some file systems refuse) still has the complete file.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
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

/// Reads and decodes the model at `path`: a chaincrf model, or a CRFsuite model
/// (recognized by its magic `lCRF`).
///
/// # Errors
/// [`ModelIoError::Io`] when unreadable; [`ModelIoError::BadModelFile`] or
/// [`ModelIoError::BadCrfsuiteModel`] when not a valid model.
pub fn load(path: &Path) -> Result<Model, ModelIoError> {
    let bytes = read_limited(path).map_err(|e| e.unwrap_or_else(|r| bad(path, r)))?;
    from_bytes(&bytes, path)
}

/// Reads a whole file of at most the largest size a model or checkpoint can
/// have; `Err(Err(reason))` when it is larger or not a regular file.
fn read_limited(path: &Path) -> Result<Vec<u8>, Result<ModelIoError, String>> {
    let mut f = File::open(path).map_err(|e| Ok(io_err(path, e)))?;
    let meta = f.metadata().map_err(|e| Ok(io_err(path, e)))?;
    if meta.is_dir() {
        return Err(Ok(io_err(path, std::io::Error::other("is a directory"))));
    }
    let len = meta.len();
    let limit = (MAX_BODY_BYTES + HEADER_LEN) as u64;
    if len > limit {
        return Err(Err(format!("the file is {len} bytes, above the {limit}-byte limit")));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // `take`: a file that grows while being read (or a device) cannot exceed the limit.
    (&mut f)
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Ok(io_err(path, e)))?;
    if bytes.len() as u64 > limit {
        return Err(Err(format!("the file is above the {limit}-byte limit")));
    }
    Ok(bytes)
}

/// A training checkpoint: the weights of one iteration, exactly, and the model
/// built from them, so an interrupted run can continue from there
/// (`chaincrf train --resume`) and the weights can be inspected.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// Iterations completed when the checkpoint was written.
    pub iteration: u64,
    /// A hash of what the run was trained on (data, options), chosen by the
    /// writer; a resumed run compares it with its own to refuse a checkpoint of
    /// another run.
    pub fingerprint: u64,
    /// The training weights in full `f64` precision, in the layout of `model`
    /// (the model itself stores `f32`).
    pub weights: Vec<f64>,
    /// The model built from those weights, with the training run's complete
    /// attribute dictionary (nothing pruned), so that its ids are the run's ids.
    pub model: Model,
    /// The optimizer's state after that iteration (L-BFGS memory and the
    /// stopping rules' history), encoded by the trainer, so that a resumed run
    /// continues exactly as the interrupted one would have. Opaque here.
    pub optimizer: Vec<u8>,
}

/// The checkpoint file of a model path: `MODEL.checkpoint` beside it.
pub fn checkpoint_path(model_path: &Path) -> PathBuf {
    let mut name = model_path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "model".into());
    name.push(".checkpoint");
    model_path.with_file_name(name)
}

/// Encodes a checkpoint into the bytes of a checkpoint file: the model file's
/// layout with its own magic ([`CHECKPOINT_MAGIC`]) and version
/// ([`CHECKPOINT_VERSION`]), so neither can be mistaken for the other.
///
/// # Errors
/// [`ModelIoError::BadCheckpoint`] if it cannot be encoded (too large).
pub(crate) fn checkpoint_to_bytes(checkpoint: &Checkpoint) -> Result<Vec<u8>, ModelIoError> {
    // Checkpoints carry the optimizer's memory (hundreds of MB on a large
    // corpus): the body is encoded in place behind a header filled in after.
    let mut out = vec![0u8; HEADER_LEN];
    bincode::serde::encode_into_std_write(checkpoint, &mut out, config()).map_err(|e| ModelIoError::BadCheckpoint {
        path: "<memory>".into(),
        reason: format!("cannot encode: {e}"),
    })?;
    let body_len = (out.len() - HEADER_LEN) as u64;
    let checksum = chaincrf_features::hash_bytes(&out[HEADER_LEN..]);
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(CHECKPOINT_MAGIC);
    header.extend_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
    header.extend_from_slice(&body_len.to_le_bytes());
    header.extend_from_slice(&checksum.to_le_bytes());
    out[..HEADER_LEN].copy_from_slice(&header);
    Ok(out)
}

/// Decodes the bytes of a checkpoint file; `path` only names the source in errors.
///
/// # Errors
/// [`ModelIoError::BadCheckpoint`] for anything but a complete, intact
/// checkpoint whose weights fit its model.
pub fn checkpoint_from_bytes(bytes: &[u8], path: &Path) -> Result<Checkpoint, ModelIoError> {
    let bad_ckpt = |reason: String| ModelIoError::BadCheckpoint {
        path: path.display().to_string(),
        reason,
    };
    if bytes.len() >= HEADER_LEN && &bytes[..8] == CHECKPOINT_MAGIC {
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if (1..CHECKPOINT_VERSION).contains(&version) {
            return Err(bad_ckpt(format!(
                "format version {version} is older than this build reads ({CHECKPOINT_VERSION}: checkpoints now \
                 carry the optimizer's state); start over without --resume"
            )));
        }
    }
    let (_, body) = open_container(bytes, CHECKPOINT_MAGIC, CHECKPOINT_VERSION).map_err(bad_ckpt)?;
    let (mut c, used): (Checkpoint, usize) =
        bincode::serde::decode_from_slice(body, config()).map_err(|e| bad_ckpt(format!("cannot decode: {e}")))?;
    if used != body.len() {
        return Err(bad_ckpt("trailing bytes inside the body".into()));
    }
    c.model.attributes.rebuild_index();
    c.model.labels.rebuild_index();
    validate(&c.model).map_err(bad_ckpt)?;
    let want = c.model.layout().len();
    if c.weights.len() != want {
        return Err(bad_ckpt(format!(
            "{} training weights for a model with {want}",
            c.weights.len()
        )));
    }
    if c.weights.iter().any(|x| !x.is_finite()) {
        return Err(bad_ckpt("a training weight is not finite".into()));
    }
    Ok(c)
}

/// Writes a checkpoint atomically (see [`write_atomically`]): an interruption,
/// even `SIGKILL` or a power cut, leaves the previous checkpoint or this one.
///
/// # Errors
/// [`ModelIoError::Io`] when the file cannot be written; the old one is untouched then.
pub fn save_checkpoint(checkpoint: &Checkpoint, path: &Path) -> Result<u64, ModelIoError> {
    let bytes = checkpoint_to_bytes(checkpoint)?;
    write_atomically(path, &bytes)?;
    Ok(bytes.len() as u64)
}

/// Reads and decodes the checkpoint at `path`.
///
/// # Errors
/// [`ModelIoError::Io`] when unreadable; [`ModelIoError::BadCheckpoint`] when
/// not a valid checkpoint.
pub fn load_checkpoint(path: &Path) -> Result<Checkpoint, ModelIoError> {
    let bytes = read_limited(path).map_err(|e| {
        e.unwrap_or_else(|reason| ModelIoError::BadCheckpoint {
            path: path.display().to_string(),
            reason,
        })
    })?;
    checkpoint_from_bytes(&bytes, path)
}

/// A payload ([`encode_payload`], [`decode_payload`]) that cannot be encoded
/// or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The value cannot be encoded (too large).
    #[error("cannot encode the payload: {detail}")]
    Encode {
        /// What the codec says.
        detail: String,
    },
    /// The bytes do not decode to the type asked for.
    #[error("cannot decode the payload: {detail}")]
    Decode {
        /// What the codec says.
        detail: String,
    },
    /// The bytes hold a value and then more bytes.
    #[error("the payload has {count} bytes after its value")]
    TrailingBytes {
        /// How many bytes are left over.
        count: usize,
    },
}

/// Encodes an extractor configuration (or anything serializable) for
/// [`crate::ExtractorSpec::Custom`], with the same bincode configuration.
///
/// # Errors
/// [`PayloadError::Encode`] when encoding fails.
pub fn encode_payload<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, PayloadError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| PayloadError::Encode { detail: e.to_string() })
}

/// Decodes a payload written by [`encode_payload`].
///
/// # Errors
/// [`PayloadError::Decode`] when the bytes do not decode to `T`,
/// [`PayloadError::TrailingBytes`] when bytes are left after it.
pub fn decode_payload<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, PayloadError> {
    let (v, used) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| PayloadError::Decode { detail: e.to_string() })?;
    if used != bytes.len() {
        return Err(PayloadError::TrailingBytes {
            count: bytes.len() - used,
        });
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ExtractorSpec, Structure};
    use chaincrf_features::{AttrKind, AttributeDictionary, LabelAlphabet};

    fn small_model() -> Model {
        let labels = LabelAlphabet::from_labels(["A", "B"]);
        let mut attributes = AttributeDictionary::default();
        attributes.insert(AttrKind::State, 7, Some("w=x"));
        let structure = Structure {
            transitions: true,
            ..Structure::default()
        };
        let flat: Vec<f64> = (0..2 + 4 + 2 + 2).map(|i| f64::from(i) * 0.25).collect();
        Model::from_flat(labels, attributes, ExtractorSpec::CrfsuiteAttributes, structure, &flat)
    }

    /// A file with a valid header and checksum around an arbitrary body.
    fn container(magic: &[u8; 8], body: &[u8]) -> Vec<u8> {
        let mut out = magic.to_vec();
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        out.extend_from_slice(&chaincrf_features::hash_bytes(body).to_le_bytes());
        out.extend_from_slice(body);
        out
    }

    fn reason(bytes: &[u8]) -> String {
        from_bytes(bytes, Path::new("m")).unwrap_err().to_string()
    }

    #[test]
    fn roundtrip() {
        let m = small_model();
        let back = from_bytes(&to_bytes(&m).unwrap(), Path::new("m")).unwrap();
        assert_eq!(back.weights, m.weights);
        assert_eq!(back.labels.id("B"), Some(1));
    }

    #[test]
    fn damaged_headers_are_named() {
        let good = to_bytes(&small_model()).unwrap();
        assert!(reason(&[]).contains("empty"));
        assert!(reason(&good[..5]).contains("truncated (incomplete header)"));
        assert!(reason(&good[..20]).contains("truncated (incomplete header)"));
        assert!(reason(&good[..good.len() - 1]).contains("truncated"));
        let mut longer = good.clone();
        longer.extend_from_slice(b"xx");
        assert!(reason(&longer).contains("2 unexpected bytes"));
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(reason(&flipped).contains("checksum mismatch"));
        let mut newer = good.clone();
        newer[8] = 3;
        assert!(reason(&newer).contains("format version 3 is newer"));
        let mut huge = good;
        huge[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(reason(&huge).contains("above the"), "{}", reason(&huge));
    }

    /// A model whose body is large enough to be checksummed on a second
    /// thread while it decodes.
    fn large_model() -> Model {
        let labels = LabelAlphabet::from_labels(["A", "B"]);
        let mut attributes = AttributeDictionary::default();
        let n = 200_000u32;
        for i in 0..n {
            attributes.insert(AttrKind::State, chaincrf_features::mix64(u64::from(i)), None);
        }
        let structure = Structure {
            transitions: true,
            ..Structure::default()
        };
        let flat: Vec<f64> = (0..n as usize * 2 + 4 + 2 + 2)
            .map(|i| (i % 97) as f64 * 0.125)
            .collect();
        Model::from_flat(labels, attributes, ExtractorSpec::CrfsuiteAttributes, structure, &flat)
    }

    #[test]
    fn large_bodies_are_checksummed_beside_decoding() {
        let m = large_model();
        let good = to_bytes(&m).unwrap();
        assert!(
            good.len() - HEADER_LEN >= PARALLEL_CHECKSUM_BYTES,
            "{} bytes",
            good.len()
        );
        let back = from_bytes(&good, Path::new("m")).unwrap();
        assert_eq!(back.weights, m.weights);
        assert_eq!(back.attributes().len(AttrKind::State), 200_000);
        // A flipped byte anywhere is the checksum's error, whether or not
        // the body still decodes (the last byte: a weight; one near the
        // start: a length or a key).
        for at in [good.len() - 1, HEADER_LEN + 3, HEADER_LEN + 5_000, good.len() / 2] {
            let mut flipped = good.clone();
            flipped[at] ^= 0x40;
            assert!(
                reason(&flipped).contains("checksum mismatch"),
                "byte {at}: {}",
                reason(&flipped)
            );
        }
    }

    #[test]
    fn foreign_files_are_named() {
        let cases: &[(&[u8], &str)] = &[
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "PNG image"),
            (b"\x7fELF\x02\x01\x01\0\0\0", "ELF"),
            (b"version: 100\ncost-factor: 1\n", "CRF++ text model"),
            (b"{\"labels\": []}", "JSON"),
            (b"hello world\n", "text file"),
            (b"\x1f\x8b\x08\0", "gzip"),
        ];
        for (bytes, needle) in cases {
            let r = reason(bytes);
            assert!(r.contains("wrong magic number") && r.contains(needle), "{r}");
        }
        assert!(
            reason(&[0xff, 0x00, 0x13, 0x37, 0x80, 0x81, 0x82, 0x83, 0x84]).contains("not a file written by chaincrf")
        );
        // CRFsuite models are read (tests/crfsuite_models.rs), so a damaged one
        // gets the CRFsuite reader's error; as a checkpoint it is named.
        assert!(reason(b"lCRF\0\0\0\0FOMC").contains("not a valid CRFsuite model: the file is truncated"));
        let e = checkpoint_from_bytes(b"lCRF\0\0\0\0FOMC", Path::new("c")).unwrap_err();
        assert!(
            e.to_string().contains("a CRFsuite model, not a training checkpoint"),
            "{e}"
        );
    }

    #[test]
    fn forged_lengths_inside_the_body_do_not_allocate() {
        // The body starts with the label vector's length (a bincode varint):
        // 0xFD announces a u64. Claim 2^40 and 2^26 labels in a 9-byte body
        // with a correct checksum; decoding must fail at once, reserving
        // nothing near what the lengths claim.
        for claimed in [1u64 << 40, 1 << 26, u64::MAX] {
            let mut body = vec![0xFD];
            body.extend_from_slice(&claimed.to_le_bytes());
            let r = reason(&container(MAGIC, &body));
            assert!(r.contains("cannot decode"), "{r}");
        }
    }

    #[test]
    fn decoded_models_are_validated() {
        let mut m = small_model();
        m.weights.state.pop();
        let body = bincode::serde::encode_to_vec(&m, config()).unwrap();
        assert!(reason(&container(MAGIC, &body)).contains("state weights: 1 values, expected 2"));
        let mut m = small_model();
        m.weights.start[0] = f32::NAN;
        let body = bincode::serde::encode_to_vec(&m, config()).unwrap();
        assert!(reason(&container(MAGIC, &body)).contains("not finite"));
    }

    #[test]
    fn checkpoints_roundtrip_and_are_not_models() {
        let model = small_model();
        let c = Checkpoint {
            iteration: 12,
            fingerprint: 99,
            weights: model.to_flat(),
            model,
            optimizer: vec![7, 0, 255],
        };
        let bytes = checkpoint_to_bytes(&c).unwrap();
        let back = checkpoint_from_bytes(&bytes, Path::new("c")).unwrap();
        assert_eq!((back.iteration, back.fingerprint), (12, 99));
        assert_eq!(back.weights, c.weights);
        assert_eq!(back.optimizer, c.optimizer);
        let mut old = bytes.clone();
        old[8..12].copy_from_slice(&1u32.to_le_bytes());
        let e = checkpoint_from_bytes(&old, Path::new("c")).unwrap_err().to_string();
        assert!(e.contains("format version 1 is older"), "{e}");
        assert!(reason(&bytes).contains("training checkpoint, not a model"));
        let model_bytes = to_bytes(&c.model).unwrap();
        let e = checkpoint_from_bytes(&model_bytes, Path::new("c"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not a valid chaincrf checkpoint") && e.contains("a chaincrf model, not"),
            "{e}"
        );
        let mut short = c.clone();
        short.weights.pop();
        let e = checkpoint_from_bytes(&checkpoint_to_bytes(&short).unwrap(), Path::new("c"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("training weights for a model with"), "{e}");
        assert_eq!(
            checkpoint_path(Path::new("dir/m.model")),
            PathBuf::from("dir/m.model.checkpoint")
        );
    }

    #[test]
    fn atomic_writes_leave_old_or_new() {
        let dir = std::env::temp_dir().join(format!("chaincrf-io-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.model");
        save(&small_model(), &path).unwrap();
        let before = std::fs::read(&path).unwrap();
        // A directory where the temporary file should go makes the write fail.
        std::fs::create_dir_all(temp_path(&path)).unwrap();
        assert!(save(&small_model(), &path).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert!(check_writable(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
