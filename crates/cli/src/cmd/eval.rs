//! `chaincrf eval`: score tagged output against its gold labels.
//!
//! It reads exactly what `chaincrf tag` prints on labeled input — and what
//! `crf_test` prints, and what `conlleval` reads: whitespace-separated columns
//! with the gold label second to last and the predicted label last, a blank
//! line between sequences — and prints token and sequence accuracy, per-label
//! precision/recall/F1 and `conlleval`'s chunk scores. Keeping evaluation a
//! separate step over plain text means any tagger's output can be scored the
//! same way.

use super::open_input;
use anyhow::bail;
use chaincrf_features::{ColumnReader, Evaluation};
use std::io::Write;
use std::path::PathBuf;

/// Options of `chaincrf eval`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  chaincrf tag --model chunk.model test.data | chaincrf eval
  chaincrf eval tagged.txt")]
pub struct Args {
    /// Tagged data: gold and predicted labels in the last two columns [default: standard input].
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// Runs `chaincrf eval`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let input = open_input(args.file.as_deref())?;
    let name = input.name.clone();
    let mut evaluation = Evaluation::new();
    for seq in ColumnReader::new(input.reader, &name) {
        let seq = seq?;
        let columns = seq.rows.first().map_or(0, Vec::len);
        if columns < 2 {
            bail!(
                "{name}:{}: {columns} column(s); expected the gold and the predicted label as the last two columns",
                seq.first_line
            );
        }
        let gold: Vec<&str> = seq.column(columns - 2).collect();
        let predicted: Vec<&str> = seq.column(columns - 1).collect();
        // Equal lengths by construction: both columns come from the same rows.
        if let Err(e) = evaluation.add_sequence(&gold, &predicted) {
            bail!("{name}:{}: {e}", seq.first_line);
        }
    }
    let summary = evaluation.summary();
    if summary.tokens == 0 {
        bail!("{name}: no tokens to evaluate");
    }
    let mut out = std::io::stdout().lock();
    out.write_all(summary.report().as_bytes())?;
    out.flush()?;
    Ok(())
}
