//! `chaincrf infer`: exact inference on potentials given as JSON.
//!
//! The core crate works on any scores, whatever produced them (a neural
//! network, another toolkit, a hand-made example). This command exposes that
//! directly, with no model file, for both structures the core crate has:
//!
//! * a linear chain: emissions (`n × k`), transitions (`k × k`) and optional
//!   start and end scores (`k` each);
//! * a semi-Markov model: `"max_len"`, `"segments"` (per start position, per
//!   segment length, the `k` scores of that segment), transitions between
//!   consecutive segments' labels, optional start and end scores;
//!
//! all in log space with `null` for a forbidden entry. It prints one JSON
//! object with log Z, the Viterbi answer, the marginals (node or segment),
//! the entropy and, on request, the K best answers. Input is checked up
//! front so every mistake comes back as one line naming what is wrong and
//! where; scores whose sums overflow `f64` are reported as such.

use super::open_input;
use anyhow::Context as _;
use chaincrf_cli::potentials::{parse_infer_input, InferInput, SemiMarkovInput};
use chaincrf_core::semimarkov::{self, Segment};
use chaincrf_core::{chain, DenseChain, Error};
use serde::Serialize;
use std::io::{Read as _, Write as _};
use std::path::PathBuf;

/// Options of `chaincrf infer`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = r#"Input: one JSON object, scores in log space, null = forbidden. A linear chain:
  {"emissions":   [[...k scores...], ...n rows],
   "transitions": [[...k scores...], ...k rows],   (from row label to column label)
   "start": [...k], "end": [...k]}                 (optional, default 0)
or a semi-Markov model (labelled segments of 1 to max_len positions):
  {"max_len": L,
   "segments": [[[...k scores...] or null, ...one per length 1..L], ...n start positions],
   "transitions": [[...k scores...], ...k rows],   (label of a segment -> label of the next)
   "start": [...k], "end": [...k]}                 (optional, default 0)
  segments[i][d-1][y] scores the segment of positions i..i+d with label y; lengths that
  would run past the end are omitted or null.

Output: one JSON object with log_partition, viterbi, entropy (nats) and, with --nbest,
nbest [...] best first. Chain: viterbi {path, score}, marginals (n×k). Semi-Markov:
viterbi {score, segments [[start, length, label], ...]} and segment_marginals nested as
the input's segments (null where the input has null). Labels and positions are 0-based.

Example:
  echo '{"emissions": [[1, 0], [0, 2]], "transitions": [[0, 0.5], [null, 0]]}' \
    | chaincrf infer --nbest 2
  echo '{"max_len": 2, "segments": [[[0, 1], [2, null]], [[1, 0]]], "transitions": [[0, 0], [0, 0]]}' \
    | chaincrf infer"#
)]
pub struct Args {
    /// JSON file with the potentials; `-` or nothing reads standard input.
    #[arg(long, short, value_name = "FILE.json")]
    pub input: Option<PathBuf>,
    /// Also list the K best answers (paths or segmentations), best first
    /// (fewer if fewer are allowed).
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    pub nbest: Option<u32>,
}

#[derive(Debug, Serialize)]
struct ScoredPath {
    path: Vec<usize>,
    score: f64,
}

#[derive(Debug, Serialize)]
struct Output {
    log_partition: f64,
    viterbi: ScoredPath,
    marginals: Vec<Vec<f64>>,
    entropy: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbest: Option<Vec<ScoredPath>>,
}

#[derive(Debug, Serialize)]
struct ScoredSegmentation {
    score: f64,
    /// `[start, length, label]` per segment.
    segments: Vec<[usize; 3]>,
}

#[derive(Debug, Serialize)]
struct SemiMarkovOutput {
    log_partition: f64,
    viterbi: ScoredSegmentation,
    segment_marginals: Vec<Vec<Option<Vec<f64>>>>,
    entropy: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbest: Option<Vec<ScoredSegmentation>>,
}

/// Runs `chaincrf infer`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut input = open_input(args.input.as_deref())?;
    let name = input.name.clone();
    let mut bytes = Vec::new();
    input
        .reader
        .read_to_end(&mut bytes)
        .with_context(|| format!("{name}: cannot read"))?;
    // The parser lives in the library, where the fuzz target calls it too.
    let parsed = parse_infer_input(&bytes).with_context(|| name.clone())?;
    let nbest = args.nbest.map(|k| k as usize);
    let mut out = std::io::stdout().lock();
    match parsed {
        InferInput::Chain(p) => {
            let output = infer(&p, nbest).with_context(|| name.clone())?;
            serde_json::to_writer(&mut out, &output)?;
        }
        InferInput::SemiMarkov(p) => {
            let output = infer_semi_markov(&p, nbest).with_context(|| name.clone())?;
            serde_json::to_writer(&mut out, &output)?;
        }
    }
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// Every quantity the command prints for a chain, from the core crate's chain algorithms.
fn infer(p: &DenseChain, nbest: Option<usize>) -> anyhow::Result<Output> {
    let log_partition = chain::log_partition(p)?;
    let best = chain::viterbi(p)?;
    let m = chain::marginals(p)?;
    let marginals = (0..m.nrows()).map(|t| m.row(t).iter().copied().collect()).collect();
    // Rounding can leave a tiny negative entropy for a near-deterministic chain.
    let entropy = chain::entropy(p)?.max(0.0);
    let nbest = match nbest {
        Some(count) => Some(
            chain::kbest(p, count)?
                .into_iter()
                .map(|path| ScoredPath {
                    path: path.labels,
                    score: path.score,
                })
                .collect(),
        ),
        None => None,
    };
    Ok(Output {
        log_partition,
        viterbi: ScoredPath {
            path: best.labels,
            score: best.score,
        },
        marginals,
        entropy,
        nbest,
    })
}

fn triples(segments: &[Segment]) -> Vec<[usize; 3]> {
    segments.iter().map(|s| [s.start, s.len, s.label]).collect()
}

/// The core error, with "no allowed segmentation" for a semi-Markov input
/// that forbids every segmentation (the core error speaks of paths).
fn semi_markov_error(e: Error) -> anyhow::Error {
    match e {
        Error::NoFeasiblePath { .. } => anyhow::anyhow!(
            "no allowed segmentation: every segmentation uses a forbidden (null) segment, transition, start or end score"
        ),
        e => e.into(),
    }
}

/// Every quantity the command prints for a semi-Markov input, from the core
/// crate's semi-Markov algorithms.
fn infer_semi_markov(input: &SemiMarkovInput, nbest: Option<usize>) -> anyhow::Result<SemiMarkovOutput> {
    let p = &input.potentials;
    let log_partition = semimarkov::log_partition(p).map_err(semi_markov_error)?;
    let best = semimarkov::viterbi(p).map_err(semi_markov_error)?;
    let m = semimarkov::segment_marginals(p).map_err(semi_markov_error)?;
    let k = semimarkov::SegmentPotentials::num_labels(p);
    let segment_marginals = input
        .given
        .iter()
        .enumerate()
        .map(|(i, lengths)| {
            lengths
                .iter()
                .enumerate()
                .map(|(j, &given)| {
                    given.then(|| {
                        let at = p.index(i, j + 1, 0);
                        m[at..at + k].to_vec()
                    })
                })
                .collect()
        })
        .collect();
    let entropy = semimarkov::entropy(p).map_err(semi_markov_error)?.max(0.0);
    let nbest = match nbest {
        Some(count) => Some(
            semimarkov::kbest(p, count)
                .map_err(semi_markov_error)?
                .into_iter()
                .map(|s| ScoredSegmentation {
                    score: s.score,
                    segments: triples(&s.segments),
                })
                .collect(),
        ),
        None => None,
    };
    Ok(SemiMarkovOutput {
        log_partition,
        viterbi: ScoredSegmentation {
            score: best.score,
            segments: triples(&best.segments),
        },
        segment_marginals,
        entropy,
        nbest,
    })
}
