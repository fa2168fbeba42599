//! `chaincrf prune`: make a trained model smaller and faster to use.
//!
//! L2-trained models keep a weight for every attribute seen in training, and
//! most of them end up tiny: in the default PKU segmenter about half of the
//! attributes have no weight above 0.01. They cost memory, load time and a
//! lookup (usually a cache miss) for every occurrence while tagging, and move
//! a label's score by almost nothing. Dropping every attribute whose weights
//! are all at most a threshold in absolute value shrinks the attribute index
//! and the weight table together; the label scores of any input change by at
//! most the threshold times the sum of |value| over the dropped attributes
//! that fire (their number, for the usual value 1).

use super::load_model;
use anyhow::{bail, Context as _};
use chaincrf_features::AttrKind;
use std::path::PathBuf;

/// Options of `chaincrf prune`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  chaincrf prune --model pku.model --threshold 0.01 --output pku-small.model")]
pub struct Args {
    /// The model to prune (left unchanged unless it is also --output).
    #[arg(short, long, value_name = "MODEL")]
    pub model: PathBuf,
    /// Drop attributes whose weights are all at most this in absolute value.
    #[arg(long, value_name = "T", allow_negative_numbers = true)]
    pub threshold: f32,
    /// Where to write the pruned model (atomically).
    #[arg(short, long, value_name = "MODEL")]
    pub output: PathBuf,
}

/// Runs `chaincrf prune`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if !(args.threshold.is_finite() && args.threshold >= 0.0) {
        bail!("--threshold must be a finite number ≥ 0, not {}", args.threshold);
    }
    chaincrf_model::check_writable(&args.output).with_context(|| format!("{}: cannot write", args.output.display()))?;
    let mut model = load_model(&args.model)?;
    let before = model.attributes().len(AttrKind::State) + model.attributes().len(AttrKind::Edge);
    let dropped = model.prune_attributes(args.threshold);
    let bytes = chaincrf_model::save(&model, &args.output)?;
    note!(
        "kept {} of {before} attributes (dropped {dropped} with every |weight| ≤ {}); wrote {} ({bytes} bytes)",
        before - dropped,
        args.threshold,
        args.output.display()
    );
    Ok(())
}
