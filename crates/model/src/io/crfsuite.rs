//! Reading the model files CRFsuite writes, so models trained with CRFsuite,
//! python-crfsuite or sklearn-crfsuite keep working: `chaincrf tag` and
//! `chaincrf dump` take them as they are, and they tag exactly as CRFsuite
//! does (same weights in `f64`, same attribute values, same sums).
//!
//! The format (CRFsuite 0.12's linear-chain model, little-endian, offsets
//! counted from the start of the file unless said otherwise):
//!
//! | bytes | content |
//! | --- | --- |
//! | 48 | header: magic `lCRF`, file size, model type `FOMC`, version 100, a feature count CRFsuite leaves 0, the numbers of labels and attributes, and the offsets of the features, the label and attribute dictionaries and the label and attribute reference lists |
//! | … | features chunk `FEAT` (id, size, count), then per feature its type (0: state, 1: transition), source (attribute or previous label), destination (label) as `u32` and its weight as `f64` |
//! | … | label and attribute dictionaries, each a CQDB chunk: a 24-byte header (`CQDB`, size, flags, byte-order mark, backward array size and offset), 256 hash-table references, the records (id, key size, key with its NUL) and an id → record array; offsets inside a CQDB count from its start |
//! | … | reference chunks `LFRF` and `AFRF` (id, size, count, one offset per label or attribute), each offset leading to a list: count, then feature ids |
//!
//! CRFsuite scores an attribute through its reference list (the features
//! listed there, added to their destination labels) and the transitions out of
//! a label through that label's list, so the weights are taken from the lists
//! exactly that way, and every list entry is checked to be a feature of that
//! kind and source. The hash tables of the dictionaries are not read: the
//! records reached by id hold every name, and chaincrf indexes names itself.
//!
//! Every size, count and offset is checked against the file before it is used,
//! so a truncated, corrupted or forged file is an error naming what is wrong;
//! nothing is allocated that the file's size does not bound, except the dense
//! weight blocks (attributes × labels), which are capped at
//! [`MAX_DENSE_WEIGHTS`] and filled only where the file has features.
//!
//! What a CRFsuite model becomes: its labels in id order, its attributes as
//! named state attributes ([`ExtractorSpec::CrfsuiteAttributes`]), state
//! weights per attribute × label, a transition matrix, no start or end weights
//! (CRFsuite has none) and the weights kept exactly
//! ([`crate::Model::has_exact_weights`]). Attribute names that are not UTF-8 are dropped:
//! no input chaincrf reads can name them, so tagging is unchanged. A label that
//! is not UTF-8 is an error (it could not be printed faithfully).

use super::ModelIoError;
use crate::model::{ExactWeights, ExtractorSpec, Model, Structure};
use chaincrf_features::{hash_name, AttrKind, AttributeDictionary, LabelAlphabet};
use std::path::Path;

/// The first four bytes of a CRFsuite model file.
pub const MAGIC: &[u8; 4] = b"lCRF";
/// The model type this reader knows: CRFsuite's linear-chain CRF (`crf1d`).
pub const MODEL_TYPE: &[u8; 4] = b"FOMC";
/// The model format version CRFsuite 0.12 writes.
pub const VERSION: u32 = 100;
/// The largest number of dense weights (attributes × labels) a CRFsuite model
/// may need here: 2^28, about 3 GiB with both precisions.
pub const MAX_DENSE_WEIGHTS: usize = 1 << 28;

const HEADER_SIZE: usize = 48;
const CHUNK_HEADER_SIZE: usize = 12;
const FEATURE_SIZE: usize = 20;
const CQDB_HEADER_SIZE: usize = 24;
const CQDB_TABLES: usize = 256;
/// Where a CQDB's records start: after its header and hash-table references.
const CQDB_DATA: usize = CQDB_HEADER_SIZE + CQDB_TABLES * 8;
const CQDB_BYTE_ORDER: u32 = 0x6244_5371;
const STATE_FEATURE: u32 = 0;
const TRANSITION_FEATURE: u32 = 1;

/// Whether `bytes` start like a CRFsuite model file.
pub fn is_crfsuite(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Decodes the bytes of a CRFsuite model file (python-crfsuite's
/// `Tagger.open_inmemory`); `path` only names the source in errors.
///
/// # Errors
/// [`ModelIoError::BadCrfsuiteModel`] for anything but a complete, consistent
/// CRFsuite 0.12 linear-chain model.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Model, ModelIoError> {
    parse(bytes).map_err(|r| bad(path, r))
}

fn bad(path: &Path, reason: impl Into<String>) -> ModelIoError {
    ModelIoError::BadCrfsuiteModel {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// A byte region of the file (the whole file, or one chunk), with reads that
/// check their bounds and name what they read when they fail.
#[derive(Clone, Copy)]
struct Region<'a> {
    bytes: &'a [u8],
    /// Where the region starts in the file, for messages.
    base: usize,
    /// What the region is, for messages.
    name: &'static str,
}

impl<'a> Region<'a> {
    fn slice(&self, offset: usize, len: usize, what: &str) -> Result<&'a [u8], String> {
        match offset.checked_add(len) {
            Some(end) if end <= self.bytes.len() => Ok(&self.bytes[offset..end]),
            _ => Err(format!(
                "{what} ({len} bytes at byte {}) runs past the end of the {} ({} bytes at byte {}); the file is truncated or corrupted",
                self.base.saturating_add(offset),
                self.name,
                self.bytes.len(),
                self.base
            )),
        }
    }

    fn u32(&self, offset: usize, what: &str) -> Result<u32, String> {
        let b = self.slice(offset, 4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn usize(&self, offset: usize, what: &str) -> Result<usize, String> {
        self.u32(offset, what).map(|v| v as usize)
    }

    /// The sub-region `[offset, offset + len)`.
    fn sub(&self, offset: usize, len: usize, name: &'static str) -> Result<Region<'a>, String> {
        Ok(Region {
            bytes: self.slice(offset, len, name)?,
            base: self.base + offset,
            name,
        })
    }
}

/// The fields of the file header that the reader uses.
struct Header {
    num_labels: usize,
    num_attrs: usize,
    off_features: usize,
    off_labels: usize,
    off_attrs: usize,
    off_labelrefs: usize,
    off_attrrefs: usize,
}

fn parse(bytes: &[u8]) -> Result<Model, String> {
    let file = Region {
        bytes,
        base: 0,
        name: "file",
    };
    let header = read_header(&file)?;
    let k = header.num_labels;
    if k == 0 {
        return Err("the model has no labels".into());
    }
    let labels = read_dictionary(&file, header.off_labels, k, "label")?;
    let attrs = read_dictionary(&file, header.off_attrs, header.num_attrs, "attribute")?;
    let features = read_features(&file, header.off_features)?;
    let label_refs = read_references(&file, header.off_labelrefs, b"LFRF", k, "label")?;
    let attr_refs = read_references(&file, header.off_attrrefs, b"AFRF", header.num_attrs, "attribute")?;

    let mut alphabet = LabelAlphabet::new();
    for (id, raw) in labels.iter().enumerate() {
        let label = std::str::from_utf8(raw).map_err(|_| format!("label {id} is not valid UTF-8: {raw:?}"))?;
        if alphabet.intern(label) as usize != id {
            return Err(format!("label {label:?} appears twice in the label dictionary"));
        }
    }
    // Attribute id in the file → id in the model (None: dropped, not UTF-8).
    let mut attributes = AttributeDictionary::default();
    let mut attr_ids = Vec::with_capacity(attrs.len());
    for (id, raw) in attrs.iter().enumerate() {
        let Ok(name) = std::str::from_utf8(raw) else {
            attr_ids.push(None);
            continue;
        };
        let next = attributes.len(AttrKind::State) as u32;
        let got = attributes.insert(AttrKind::State, hash_name(name), Some(name));
        if got != next {
            let other = attributes.name(AttrKind::State, got).unwrap_or_default();
            return Err(if other == name {
                format!(
                    "attribute {name:?} appears twice in the attribute dictionary (ids {} and {id})",
                    position(&attr_ids, got)
                )
            } else {
                format!("attributes {other:?} and {name:?} have the same 64-bit key; chaincrf cannot hold both")
            });
        }
        attr_ids.push(Some(got));
    }

    let num_state = attributes.len(AttrKind::State);
    let dense = num_state
        .checked_mul(k)
        .zip(k.checked_mul(k))
        .and_then(|(s, t)| s.checked_add(t))
        .filter(|&n| n <= MAX_DENSE_WEIGHTS)
        .ok_or_else(|| {
            format!("{num_state} attributes and {k} labels need more than {MAX_DENSE_WEIGHTS} dense weights, chaincrf's limit")
        })?;
    // Zeroed allocations: pages are written only where features are.
    let mut state = vec![0f64; num_state * k];
    let mut transitions = vec![0f64; k * k];
    let mut seen = vec![false; dense];
    let mut mark = |slot: usize, fid: usize, what: &dyn Fn() -> String| -> Result<(), String> {
        if std::mem::replace(&mut seen[slot], true) {
            return Err(format!("feature {fid} repeats the {} of an earlier feature", what()));
        }
        Ok(())
    };
    for (y, list) in label_refs.iter().enumerate() {
        for fid in list.ids() {
            let f = features.get(fid, "label", y)?;
            if f.kind != TRANSITION_FEATURE || f.src != y || f.dst >= k {
                return Err(format!(
                    "the reference list of label {y} names feature {fid} (type {}, {} → {}), not a transition from label {y}",
                    f.kind, f.src, f.dst
                ));
            }
            let what = || {
                format!(
                    "transition {:?} → {:?}",
                    alphabet.label(y as u32),
                    alphabet.label(f.dst as u32)
                )
            };
            mark(num_state * k + y * k + f.dst, fid, &what)?;
            transitions[y * k + f.dst] = f.weight;
        }
    }
    for (a, list) in attr_refs.iter().enumerate() {
        for fid in list.ids() {
            let f = features.get(fid, "attribute", a)?;
            if f.kind != STATE_FEATURE || f.src != a || f.dst >= k {
                return Err(format!(
                    "the reference list of attribute {a} names feature {fid} (type {}, {} → {}), not a state feature of attribute {a}",
                    f.kind, f.src, f.dst
                ));
            }
            if let Some(id) = attr_ids[a] {
                let slot = id as usize * k + f.dst;
                let what = || {
                    format!(
                        "state feature ({:?}, {:?})",
                        attributes.name(AttrKind::State, id).unwrap_or_default(),
                        alphabet.label(f.dst as u32)
                    )
                };
                mark(slot, fid, &what)?;
                state[slot] = f.weight;
            }
        }
    }
    let weights = ExactWeights {
        state,
        edge: Vec::new(),
        transitions,
        start: vec![0.0; k],
        end: vec![0.0; k],
    };
    let structure = Structure {
        transitions: true,
        ..Structure::default()
    };
    Ok(Model::from_exact(
        alphabet,
        attributes,
        ExtractorSpec::CrfsuiteAttributes,
        structure,
        weights,
    ))
}

/// The file id of the attribute that got model id `id` (for messages).
fn position(attr_ids: &[Option<u32>], id: u32) -> usize {
    attr_ids.iter().position(|&x| x == Some(id)).unwrap_or_default()
}

fn read_header(file: &Region<'_>) -> Result<Header, String> {
    if file.bytes.len() < HEADER_SIZE {
        return Err(format!(
            "the file is truncated: {} bytes, the header alone has {HEADER_SIZE}",
            file.bytes.len()
        ));
    }
    if !is_crfsuite(file.bytes) {
        return Err("wrong magic number (CRFsuite models start with \"lCRF\")".into());
    }
    let size = file.usize(4, "file size")?;
    let len = file.bytes.len();
    if size != len {
        return Err(if size > len {
            format!("the file is truncated: the header gives {size} bytes, the file has {len}")
        } else {
            format!(
                "the header gives {size} bytes, the file has {len}: {} unexpected bytes at the end (two files concatenated?)",
                len - size
            )
        });
    }
    let kind = &file.bytes[8..12];
    if kind != MODEL_TYPE {
        return Err(format!(
            "model type {:?} is not \"FOMC\" (CRFsuite's linear-chain CRF), the only type this reader knows",
            String::from_utf8_lossy(kind)
        ));
    }
    let version = file.u32(12, "version")?;
    if version != VERSION {
        return Err(format!(
            "format version {version}; this reader knows version {VERSION} (CRFsuite 0.12)"
        ));
    }
    Ok(Header {
        num_labels: file.usize(20, "label count")?,
        num_attrs: file.usize(24, "attribute count")?,
        off_features: file.usize(28, "features offset")?,
        off_labels: file.usize(32, "label dictionary offset")?,
        off_attrs: file.usize(36, "attribute dictionary offset")?,
        off_labelrefs: file.usize(40, "label references offset")?,
        off_attrrefs: file.usize(44, "attribute references offset")?,
    })
}

/// Reads the names of ids `0..count` from the CQDB chunk at `offset`.
fn read_dictionary<'a>(file: &Region<'a>, offset: usize, count: usize, what: &str) -> Result<Vec<&'a [u8]>, String> {
    let at = |m: String| format!("the {what} dictionary at byte {offset}: {m}");
    let head = file.sub(offset, CQDB_HEADER_SIZE, "dictionary header").map_err(at)?;
    if &head.bytes[..4] != b"CQDB" {
        return Err(at(format!(
            "chunk id {:?}, expected \"CQDB\"",
            String::from_utf8_lossy(&head.bytes[..4])
        )));
    }
    let size = head.usize(4, "size")?;
    let byte_order = head.u32(12, "byte-order mark")?;
    if byte_order != CQDB_BYTE_ORDER {
        return Err(at(if byte_order == CQDB_BYTE_ORDER.swap_bytes() {
            "written on a big-endian machine, which this reader does not support".into()
        } else {
            format!("byte-order mark {byte_order:#010x}, expected {CQDB_BYTE_ORDER:#010x}")
        }));
    }
    if size < CQDB_DATA {
        return Err(at(format!(
            "chunk size {size} is below the {CQDB_DATA} bytes of its header"
        )));
    }
    let db = file.sub(offset, size, "dictionary").map_err(at)?;
    let backward_size = db.usize(16, "backward array size")?;
    let backward = db.usize(20, "backward array offset")?;
    if count == 0 {
        return Ok(Vec::new());
    }
    if backward == 0 || backward_size < count {
        return Err(at(format!(
            "the header counts {count} {what}s, but the id array has room for {backward_size}"
        )));
    }
    // The id array must fit in the chunk, which bounds `count` by the file size.
    let ids = db.sub(backward, count.saturating_mul(4), "id array").map_err(at)?;
    let mut names = Vec::with_capacity(count);
    for id in 0..count {
        let record = ids.usize(id * 4, "record offset")?;
        if record < CQDB_DATA {
            return Err(at(format!(
                "the record of {what} {id} is at {record}, inside the chunk header"
            )));
        }
        let stored = db.u32(record, "record id").map_err(at)?;
        if stored as usize != id {
            return Err(at(format!("the record of {what} {id} holds id {stored}")));
        }
        let key_size = db.usize(record.saturating_add(4), "key size").map_err(at)?;
        let key = db.slice(record.saturating_add(8), key_size, "key").map_err(at)?;
        match key.split_last() {
            Some((0, name)) if !name.contains(&0) => names.push(name),
            _ => return Err(at(format!("the name of {what} {id} is not a NUL-terminated string"))),
        }
    }
    Ok(names)
}

/// The features chunk: `count` records of `FEATURE_SIZE` bytes.
struct Features<'a> {
    records: &'a [u8],
    count: usize,
}

/// One feature record.
struct Feature {
    kind: u32,
    src: usize,
    dst: usize,
    weight: f64,
}

impl Features<'_> {
    /// Feature `fid`, named in the reference list of `owner` `index`.
    fn get(&self, fid: usize, owner: &str, index: usize) -> Result<Feature, String> {
        if fid >= self.count {
            return Err(format!(
                "the reference list of {owner} {index} names feature {fid}, but there are {} features",
                self.count
            ));
        }
        let r = &self.records[fid * FEATURE_SIZE..(fid + 1) * FEATURE_SIZE];
        let word = |i: usize| u32::from_le_bytes([r[i], r[i + 1], r[i + 2], r[i + 3]]);
        let mut w = [0u8; 8];
        w.copy_from_slice(&r[12..20]);
        let weight = f64::from_le_bytes(w);
        if !weight.is_finite() {
            return Err(format!("feature {fid} has the weight {weight}, which is not finite"));
        }
        Ok(Feature {
            kind: word(0),
            src: word(4) as usize,
            dst: word(8) as usize,
            weight,
        })
    }
}

fn read_features<'a>(file: &Region<'a>, offset: usize) -> Result<Features<'a>, String> {
    let at = |m: String| format!("the features chunk at byte {offset}: {m}");
    let head = file.sub(offset, CHUNK_HEADER_SIZE, "features header").map_err(at)?;
    if &head.bytes[..4] != b"FEAT" {
        return Err(at(format!(
            "chunk id {:?}, expected \"FEAT\"",
            String::from_utf8_lossy(&head.bytes[..4])
        )));
    }
    let size = head.usize(4, "size")?;
    let count = head.usize(8, "feature count")?;
    if count
        .checked_mul(FEATURE_SIZE)
        .and_then(|b| b.checked_add(CHUNK_HEADER_SIZE))
        != Some(size)
    {
        return Err(at(format!(
            "chunk size {size} does not hold {count} features of {FEATURE_SIZE} bytes"
        )));
    }
    let chunk = file.sub(offset, size, "features chunk").map_err(at)?;
    Ok(Features {
        records: &chunk.bytes[CHUNK_HEADER_SIZE..],
        count,
    })
}

/// One reference list: little-endian feature ids.
struct References<'a>(&'a [u8]);

impl References<'_> {
    fn ids(&self) -> impl Iterator<Item = usize> + '_ {
        self.0
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
}

/// Reads the reference lists of ids `0..count` from the chunk `id` at `offset`.
fn read_references<'a>(
    file: &Region<'a>,
    offset: usize,
    id: &[u8; 4],
    count: usize,
    what: &str,
) -> Result<Vec<References<'a>>, String> {
    let name = String::from_utf8_lossy(id);
    let at = |m: String| format!("the {what} references chunk at byte {offset}: {m}");
    let head = file.sub(offset, CHUNK_HEADER_SIZE, "references header").map_err(at)?;
    if &head.bytes[..4] != id {
        return Err(at(format!(
            "chunk id {:?}, expected {name:?}",
            String::from_utf8_lossy(&head.bytes[..4])
        )));
    }
    let size = head.usize(4, "size")?;
    let slots = head.usize(8, "list count")?;
    if slots < count {
        return Err(at(format!("{slots} lists for {count} {what}s")));
    }
    let chunk = file.sub(offset, size, "references chunk").map_err(at)?;
    let table_end = slots
        .checked_mul(4)
        .and_then(|b| b.checked_add(CHUNK_HEADER_SIZE))
        .filter(|&end| end <= size)
        .ok_or_else(|| at(format!("{slots} list offsets do not fit in its {size} bytes")))?;
    let mut lists = Vec::with_capacity(count);
    for i in 0..count {
        let list = chunk.usize(CHUNK_HEADER_SIZE + i * 4, "list offset")?;
        let inside = list.checked_sub(offset).filter(|&rel| rel >= table_end);
        let Some(rel) = inside else {
            return Err(at(format!(
                "the list of {what} {i} is at byte {list}, outside the chunk's lists"
            )));
        };
        let n = chunk.usize(rel, "list length").map_err(at)?;
        let ids = n
            .checked_mul(4)
            .ok_or_else(|| at(format!("the list of {what} {i} claims {n} features")))
            .and_then(|len| chunk.slice(rel.saturating_add(4), len, "reference list").map_err(at))?;
        lists.push(References(ids));
    }
    Ok(lists)
}
