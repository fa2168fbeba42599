//! The potentials document of `chaincrf infer`: parsing and checking.
//!
//! The input is one JSON object with emissions (`n × k`), transitions
//! (`k × k`) and optional start and end scores (`k` each), all in log space
//! with `null` for a forbidden entry. Everything is checked before any
//! inference runs, so a mistake comes back as one message naming what is
//! wrong and where (the row, the column, the line and byte of bad UTF-8).
//! It lives in the library so that the fuzz target `potentials_json` runs
//! exactly this code.

use anyhow::{bail, Context as _};
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

/// Parses a potentials document from raw bytes and builds the chain.
///
/// # Errors
/// Text that is not UTF-8 (with line and byte offset), JSON that is not a
/// potentials object, rows of the wrong length, scores that are not finite.
pub fn parse_potentials(bytes: &[u8]) -> anyhow::Result<DenseChain> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.valid_up_to();
            let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            let line_start = bytes[..at].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            bail!(
                "line {line}: invalid UTF-8 at byte offset {} of the line (0-based)",
                at - line_start
            );
        }
    };
    let doc: PotentialsDoc = serde_json::from_str(text).context("not a valid potentials object")?;
    build_chain(&doc)
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
