//! `chaincrf infer`: exact inference on potentials given as JSON.
//!
//! The core crate works on any chain scores, whatever produced them (a neural
//! network, another toolkit, a hand-made example). This command exposes that
//! directly, with no model file: it reads emissions (`n × k`), transitions
//! (`k × k`) and optional start and end scores (`k` each), all in log space
//! with `null` for a forbidden entry, and prints one JSON object with log Z, the
//! Viterbi path, the node marginals, the entropy of the path distribution and,
//! on request, the K best paths. Input is checked up front so every mistake
//! comes back as one line naming what is wrong and where.

use super::open_input;
use anyhow::Context as _;
use chaincrf_cli::potentials::parse_potentials;
use chaincrf_core::{chain, DenseChain};
use serde::Serialize;
use std::io::{Read as _, Write as _};
use std::path::PathBuf;

/// Options of `chaincrf infer`.
#[derive(Debug, clap::Args)]
#[command(after_help = r#"Input: one JSON object, scores in log space, null = forbidden:
  {"emissions":   [[...k scores...], ...n rows],
   "transitions": [[...k scores...], ...k rows],   (from row label to column label)
   "start": [...k], "end": [...k]}                 (optional, default 0)

Output: one JSON object with log_partition, viterbi {path, score}, marginals (n×k),
entropy (nats) and, with --nbest, nbest [{path, score}, ...] best first. Labels are 0-based.

Example:
  echo '{"emissions": [[1, 0], [0, 2]], "transitions": [[0, 0.5], [null, 0]]}' \
    | chaincrf infer --nbest 2"#)]
pub struct Args {
    /// JSON file with the potentials; `-` or nothing reads standard input.
    #[arg(long, short, value_name = "FILE.json")]
    pub input: Option<PathBuf>,
    /// Also list the K best paths, best first (fewer if fewer paths are allowed).
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
    let chain = parse_potentials(&bytes).with_context(|| name.clone())?;
    let output = infer(&chain, args.nbest.map(|k| k as usize)).with_context(|| name.clone())?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &output)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// Every quantity the command prints, from the core crate's chain algorithms.
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
