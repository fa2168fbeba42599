//! The potentials document of `chaincrf infer`: parsing and checking.
//!
//! Two structures are accepted. A linear chain: one JSON object with
//! emissions (`n × k`), transitions (`k × k`) and optional start and end
//! scores (`k` each). A semi-Markov model: `"max_len": L`, `"segments"` (per
//! start position `i`, per length `d = 1..L`, the `k` scores of that
//! segment, or `null` when it is forbidden; segments that would run past the
//! end are omitted or `null`), transitions between consecutive segments'
//! labels and optional start and end scores. All scores are in log space
//! with `null` for a forbidden entry; a document with `"segments"` or
//! `"max_len"` is a semi-Markov one. Everything is checked before any
//! inference runs, so a mistake comes back as one message naming what is
//! wrong and where (the row, the column, the line and byte of bad UTF-8).
//! It lives in the library so that the fuzz target `potentials_json` runs
//! exactly this code.

use anyhow::{bail, Context as _};
use chaincrf_core::semimarkov::DenseSemiMarkov;
use chaincrf_core::DenseChain;
use serde::Deserialize;

/// The input document. Unknown fields are an error, so a misspelt `"strat"`
/// is reported instead of silently meaning "start scores 0".
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PotentialsDoc {
    /// `n` rows of `k` emission scores.
    pub emissions: Vec<Vec<Option<f64>>>,
    /// `k` rows of `k` transition scores, from the row label to the column label.
    pub transitions: Vec<Vec<Option<f64>>>,
    /// `k` start scores (default 0).
    #[serde(default)]
    pub start: Option<Vec<Option<f64>>>,
    /// `k` end scores (default 0).
    #[serde(default)]
    pub end: Option<Vec<Option<f64>>>,
}

/// A semi-Markov input document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SemiMarkovDoc {
    /// The maximum segment length `L ≥ 1`.
    pub max_len: usize,
    /// Per start position, per length `1..=L`, the `k` scores of the segment
    /// (`null`: forbidden, or past the end; past the end may be omitted).
    pub segments: Vec<Vec<Option<Vec<Option<f64>>>>>,
    /// `k` rows of `k` transition scores, from the row label to the column label.
    pub transitions: Vec<Vec<Option<f64>>>,
    /// `k` start scores (default 0).
    #[serde(default)]
    pub start: Option<Vec<Option<f64>>>,
    /// `k` end scores (default 0).
    #[serde(default)]
    pub end: Option<Vec<Option<f64>>>,
}

/// The most segment scores (`n·L·k`, with `L` cut to `n`) a semi-Markov
/// document may need: 2²⁶, half a gigabyte of scores.
pub const MAX_SEGMENT_SCORES: usize = 1 << 26;

/// A parsed semi-Markov document.
#[derive(Clone, Debug)]
pub struct SemiMarkovInput {
    /// The potentials, with the maximum length cut to the input's length
    /// (no segment can be longer).
    pub potentials: DenseSemiMarkov,
    /// Per start position, per length given in the input, whether the input
    /// gave scores (`true`) or `null` (`false`): the shape of the input's
    /// `"segments"`, which the output's `"segment_marginals"` repeats.
    pub given: Vec<Vec<bool>>,
}

/// What `chaincrf infer` was given.
#[derive(Clone, Debug)]
pub enum InferInput {
    /// A linear chain.
    Chain(DenseChain),
    /// A semi-Markov model.
    SemiMarkov(SemiMarkovInput),
}

/// Parses either kind of potentials document: a JSON object with a
/// `"segments"` or `"max_len"` field is semi-Markov, any other a chain.
///
/// # Errors
/// As [`parse_potentials`], and for semi-Markov documents as
/// [`build_semi_markov`].
pub fn parse_infer_input(bytes: &[u8]) -> anyhow::Result<InferInput> {
    let text = utf8(bytes)?;
    let semi_markov = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
        .is_ok_and(|m| m.contains_key("segments") || m.contains_key("max_len"));
    if !semi_markov {
        return Ok(InferInput::Chain(parse_potentials(bytes)?));
    }
    let doc: SemiMarkovDoc = serde_json::from_str(text).context("not a valid semi-Markov potentials object")?;
    Ok(InferInput::SemiMarkov(build_semi_markov(&doc)?))
}

/// Checks a semi-Markov document and builds its potentials; `null` becomes −∞.
///
/// # Errors
/// No labels, `max_len` 0, rows of the wrong length, a segment past the end
/// with scores, scores that are not finite, more than
/// [`MAX_SEGMENT_SCORES`] segment scores.
pub fn build_semi_markov(doc: &SemiMarkovDoc) -> anyhow::Result<SemiMarkovInput> {
    let k = doc.transitions.len();
    if k == 0 {
        bail!("transitions is empty: need at least one label (k = 0)");
    }
    if doc.max_len == 0 {
        bail!("max_len is 0: segments need at least one position");
    }
    let n = doc.segments.len();
    let l = doc.max_len.min(n).max(1);
    let needed = n.saturating_mul(l).saturating_mul(k);
    if needed > MAX_SEGMENT_SCORES {
        bail!("segments: n·L·k = {n}·{l}·{k} scores, above the limit of {MAX_SEGMENT_SCORES}");
    }
    let transitions: Vec<f64> = matrix("transitions", &doc.transitions, k)?.concat();
    let start = vector("start", doc.start.as_deref(), k)?;
    let end = vector("end", doc.end.as_deref(), k)?;
    let mut p = DenseSemiMarkov::new(n, k, l)?
        .with_transitions(&transitions)?
        .with_start(&start)?
        .with_end(&end)?;
    let mut given = Vec::with_capacity(n);
    for (i, lengths) in doc.segments.iter().enumerate() {
        let fit = doc.max_len.min(n - i);
        if lengths.len() < fit || lengths.len() > doc.max_len {
            let expected = if fit == doc.max_len {
                format!("{fit}")
            } else {
                format!("{fit} to {} (lengths past the end may be omitted)", doc.max_len)
            };
            bail!(
                "segments[{i}] has {} lengths, expected {expected} (max_len = {}, n = {n})",
                lengths.len(),
                doc.max_len
            );
        }
        let mut row_given = Vec::with_capacity(lengths.len());
        for (j, scores) in lengths.iter().enumerate() {
            let d = j + 1;
            row_given.push(scores.is_some());
            let Some(scores) = scores else {
                if d <= fit {
                    for y in 0..k {
                        p.set_segment(i, d, y, f64::NEG_INFINITY);
                    }
                }
                continue;
            };
            if d > fit {
                bail!(
                    "segments[{i}][{j}]: the segment of length {d} starting at {i} runs past the end (n = {n}); give null or omit it"
                );
            }
            if scores.len() != k {
                bail!("segments[{i}][{j}] has {} scores, expected {k}", scores.len());
            }
            for (y, &x) in scores.iter().enumerate() {
                let v = score(x).with_context(|| format!("segments[{i}][{j}][{y}]"))?;
                p.set_segment(i, d, y, v);
            }
        }
        given.push(row_given);
    }
    Ok(SemiMarkovInput { potentials: p, given })
}

/// Parses a potentials document from raw bytes and builds the chain.
///
/// # Errors
/// Text that is not UTF-8 (with line and byte offset), JSON that is not a
/// potentials object, rows of the wrong length, scores that are not finite.
pub fn parse_potentials(bytes: &[u8]) -> anyhow::Result<DenseChain> {
    let text = utf8(bytes)?;
    let doc: PotentialsDoc = serde_json::from_str(text).context("not a valid potentials object")?;
    build_chain(&doc)
}

/// The text of a document, or where its UTF-8 breaks.
fn utf8(bytes: &[u8]) -> anyhow::Result<&str> {
    match std::str::from_utf8(bytes) {
        Ok(t) => Ok(t),
        Err(e) => {
            let at = e.valid_up_to();
            let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            let line_start = bytes[..at].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            bail!(
                "line {line}: invalid UTF-8 at byte offset {} of the line (0-based)",
                at - line_start
            );
        }
    }
}

/// Checks shapes and values and builds the dense potentials; `null` becomes −∞.
///
/// # Errors
/// No labels, rows of the wrong length, scores that are not finite.
pub fn build_chain(doc: &PotentialsDoc) -> anyhow::Result<DenseChain> {
    let k = doc.transitions.len();
    if k == 0 {
        bail!("transitions is empty: need at least one label (k = 0)");
    }
    let transitions = matrix("transitions", &doc.transitions, k)?;
    let emissions = matrix("emissions", &doc.emissions, k)?;
    let start = vector("start", doc.start.as_deref(), k)?;
    let end = vector("end", doc.end.as_deref(), k)?;
    Ok(DenseChain::from_rows(&emissions, &transitions)?
        .with_start(&start)?
        .with_end(&end)?)
}

fn matrix(what: &str, rows: &[Vec<Option<f64>>], k: usize) -> anyhow::Result<Vec<Vec<f64>>> {
    rows.iter()
        .enumerate()
        .map(|(r, row)| {
            if row.len() != k {
                bail!("{what} row {r} has {} scores, expected {k}", row.len());
            }
            row.iter()
                .enumerate()
                .map(|(c, &x)| score(x).with_context(|| format!("{what} row {r}, column {c}")))
                .collect()
        })
        .collect()
}

fn vector(what: &str, values: Option<&[Option<f64>]>, k: usize) -> anyhow::Result<Vec<f64>> {
    let Some(values) = values else {
        return Ok(vec![0.0; k]);
    };
    if values.len() != k {
        bail!("{what} has {} scores, expected {k}", values.len());
    }
    values
        .iter()
        .enumerate()
        .map(|(i, &x)| score(x).with_context(|| format!("{what}[{i}]")))
        .collect()
}

fn score(x: Option<f64>) -> anyhow::Result<f64> {
    match x {
        None => Ok(f64::NEG_INFINITY),
        Some(v) if v.is_finite() => Ok(v),
        Some(v) => bail!("score {v} is not finite (use null to forbid)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaincrf_core::Potentials as _;

    fn message(bytes: &[u8]) -> String {
        format!("{:#}", parse_potentials(bytes).unwrap_err())
    }

    #[test]
    fn shapes_and_values_are_checked() {
        let p = parse_potentials(br#"{"emissions": [[1, null]], "transitions": [[0, 0], [0, 0]]}"#).unwrap();
        assert_eq!((p.len(), p.num_labels()), (1, 2));
        assert_eq!(p.emission(0, 1), f64::NEG_INFINITY);
        assert!(message(br#"{"emissions": [[1]], "transitions": [[0, 0], [0, 0]]}"#).contains("emissions row 0 has 1"));
        assert!(message(br#"{"emissions": [], "transitions": []}"#).contains("k = 0"));
        assert!(message(br#"{"emissions": [], "transitions": [[0]], "end": [0, 1]}"#).contains("end has 2"));
        assert!(message(b"[]").contains("not a valid potentials object"));
    }

    #[test]
    fn invalid_utf8_names_line_and_offset() {
        let m = message(b"{\"emissions\": [],\n  \"tr\xffansitions\": [[0]]}");
        assert!(m.contains("line 2: invalid UTF-8 at byte offset 5"), "{m}");
    }
}
