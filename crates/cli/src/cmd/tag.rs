//! `chaincrf tag`: label data with a model trained on CRF++ or CRFsuite data.
//!
//! The input format is the model's (recorded in the model file), and the
//! output is what the original tools print, so existing scripts keep working:
//! for CRF++ models each input line with the predicted label appended as a
//! last TAB-separated column (`crf_test`), for CRFsuite models one label per
//! line (`crfsuite tag`); a blank line ends each sequence. Tagging streams —
//! one sequence is read, tagged and written before the next is read — so
//! arbitrarily large inputs run in constant memory and a program can talk to
//! `chaincrf tag` through a pipe (output is flushed after every sequence when
//! reading standard input).

use super::{load_model, open_input};
use anyhow::{bail, Context as _};
use chaincrf_core::AllowedLabels;
use chaincrf_features::{ColumnReader, CrfsuiteReader};
use chaincrf_model::{ClassicExtractor, ClassicInput, ClassicTagger, Model, Tagger};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

/// Options of `chaincrf tag`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  # Like crf_test: input columns plus the predicted label; then score it.
  chaincrf tag --model chunk.model test.data > tagged.txt && chaincrf eval tagged.txt
  # The 3 best paths with their probabilities (crf_test -n 3):
  chaincrf tag --model chunk.model --nbest 3 test.data
  # Marginals of every label (crf_test -v2); the last input column forces labels (_ = free):
  chaincrf tag --model chunk.model --all-marginals --force-column < partial.data
  # CRFsuite model, gold and predicted labels side by side (crfsuite tag -r):
  chaincrf tag --model pos.model --reference test.crfsuite | chaincrf eval")]
pub struct Args {
    /// The model (from `chaincrf train`).
    #[arg(short, long, value_name = "MODEL")]
    pub model: PathBuf,
    /// Data to tag, in the model's format [default: standard input; `-` also reads it].
    #[arg(value_name = "DATA")]
    pub data: Option<PathBuf>,
    /// The last column (CRF++) or last field (CRFsuite) of each token is a label to
    /// force, or `_` for free; it is not echoed in the output.
    #[arg(long)]
    pub force_column: bool,
    /// Print `# <probability of the output path>` before each sequence and `label/marginal` per token (crf_test -v1).
    #[arg(long)]
    pub marginals: bool,
    /// Like --marginals, and append every label's marginal as `label/p` columns (crf_test -v2).
    #[arg(long)]
    pub all_marginals: bool,
    /// Print the N best paths, each after a `# <rank> <probability>` line (crf_test -n).
    #[arg(short, long, value_name = "N")]
    pub nbest: Option<usize>,
    /// CRFsuite models: print the gold label (the input's first field) before the predicted one (crfsuite tag -r).
    #[arg(short, long)]
    pub reference: bool,
}

/// What to print besides the labels.
struct OutputStyle {
    marginals: bool,
    all_marginals: bool,
    nbest: Option<usize>,
}

/// Runs `chaincrf tag`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.nbest == Some(0) {
        bail!("--nbest must be at least 1");
    }
    let model = load_model(&args.model)?;
    let mut tagger = ClassicTagger::new(&model).with_context(|| format!("{}", args.model.display()))?;
    let input = open_input(args.data.as_deref())?;
    let style = OutputStyle {
        marginals: args.marginals || args.all_marginals,
        all_marginals: args.all_marginals,
        nbest: args.nbest,
    };
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let flush_each = input.is_stdin;
    let name = input.name.clone();
    let mut line = String::new();
    let mut scratch = Scratch::default();
    match tagger.extractor().clone() {
        ClassicExtractor::Templates(ex) => {
            if args.reference {
                bail!("--reference is for CRFsuite models; CRF++ output keeps every input column, the gold label included");
            }
            let features = ex.feature_columns;
            let extra_force = usize::from(args.force_column);
            for seq in ColumnReader::new(input.reader, &name) {
                let seq = seq?;
                let columns = seq.rows.first().map_or(0, Vec::len);
                if columns != features + extra_force && columns != features + extra_force + 1 {
                    bail!(
                        "{name}:{}: {columns} columns, but the model reads {features} feature column(s){}: expected {} (without gold label) or {} (with it)",
                        seq.first_line,
                        if args.force_column { " plus the forced-label column" } else { "" },
                        features + extra_force,
                        features + extra_force + 1
                    );
                }
                let allowed = if args.force_column {
                    let forced: Vec<&str> = seq.column(columns - 1).collect();
                    Some(forced_labels(&model, &forced, &name, seq.first_line)?)
                } else {
                    None
                };
                tagger.observe(ClassicInput::Columns(&seq.rows))?;
                let echo = columns - extra_force;
                let prefix = |t: usize, s: &mut String| {
                    for c in &seq.rows[t][..echo] {
                        s.push_str(c);
                        s.push('\t');
                    }
                };
                write_sequence(
                    tagger.tagger(),
                    allowed.as_ref(),
                    &style,
                    seq.len(),
                    &prefix,
                    &mut out,
                    &mut line,
                    &mut scratch,
                )
                .with_context(|| format!("{name}:{}", seq.first_line))?;
                if flush_each {
                    out.flush()?;
                }
            }
        }
        ClassicExtractor::Attributes(_) => {
            for seq in CrfsuiteReader::new(input.reader, &name) {
                let mut seq = seq?;
                let allowed = if args.force_column {
                    let mut forced = Vec::with_capacity(seq.len());
                    for (t, item) in seq.attrs.iter_mut().enumerate() {
                        match item.pop() {
                            Some((label, 1.0)) => forced.push(label),
                            Some((label, v)) => bail!(
                                "{name}:{}: the forced-label field {label:?} has a value ({v}); write the label alone",
                                seq.first_line + t
                            ),
                            None => bail!(
                                "{name}:{}: no forced-label field (--force-column: the last field is the label to force, or _)",
                                seq.first_line + t
                            ),
                        }
                    }
                    let forced: Vec<&str> = forced.iter().map(String::as_str).collect();
                    Some(forced_labels(&model, &forced, &name, seq.first_line)?)
                } else {
                    None
                };
                tagger.observe(ClassicInput::Attributes(&seq.attrs))?;
                let reference = args.reference;
                let prefix = |t: usize, s: &mut String| {
                    if reference {
                        s.push_str(&seq.labels[t]);
                        s.push('\t');
                    }
                };
                write_sequence(
                    tagger.tagger(),
                    allowed.as_ref(),
                    &style,
                    seq.len(),
                    &prefix,
                    &mut out,
                    &mut line,
                    &mut scratch,
                )
                .with_context(|| format!("{name}:{}", seq.first_line))?;
                if flush_each {
                    out.flush()?;
                }
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// The allowed labels given by a forced column: a label of the model, or `_` for any.
fn forced_labels(model: &Model, forced: &[&str], name: &str, first_line: usize) -> anyhow::Result<AllowedLabels> {
    let mut allowed = AllowedLabels::all(forced.len(), model.num_labels());
    for (t, &label) in forced.iter().enumerate() {
        if label == "_" {
            continue;
        }
        let Some(y) = model.labels().id(label) else {
            bail!(
                "{name}:{}: forced label {label:?} is not a label of the model (it has {}; use _ for a free position)",
                first_line + t,
                preview_labels(model)
            );
        };
        allowed.force(t, y as usize)?;
    }
    Ok(allowed)
}

/// The model's labels for an error message, shortened when there are many.
fn preview_labels(model: &Model) -> String {
    let labels = model.labels().labels();
    let shown: Vec<&str> = labels.iter().take(20).map(String::as_str).collect();
    if labels.len() > shown.len() {
        format!("{} labels: {} ...", labels.len(), shown.join(" "))
    } else {
        format!("labels {}", shown.join(" "))
    }
}

/// Buffers reused across sequences.
#[derive(Default)]
struct Scratch {
    marginals: Vec<f64>,
}

/// Decodes the observed sequence and writes it: for each output path an
/// optional header, then one line per token (`prefix`, label, marginals), then
/// a blank line.
#[allow(clippy::too_many_arguments)]
fn write_sequence(
    tagger: &mut Tagger<'_>,
    allowed: Option<&AllowedLabels>,
    style: &OutputStyle,
    n: usize,
    prefix: &dyn Fn(usize, &mut String),
    out: &mut impl Write,
    line: &mut String,
    scratch: &mut Scratch,
) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    let model = tagger.model();
    let k = model.num_labels();
    let paths = match style.nbest {
        Some(count) => tagger.nbest(count, allowed)?,
        None => vec![tagger.viterbi(allowed)?],
    };
    let log_z = if style.marginals {
        Some(tagger.marginals(allowed, &mut scratch.marginals)?)
    } else if style.nbest.is_some() {
        Some(tagger.log_partition(allowed)?)
    } else {
        None
    };
    for (rank, path) in paths.iter().enumerate() {
        line.clear();
        if let Some(log_z) = log_z {
            let p = (path.score - log_z).exp();
            if style.nbest.is_some() {
                let _ = writeln!(line, "# {rank} {p:.6}");
            } else {
                let _ = writeln!(line, "# {p:.6}");
            }
        }
        for t in 0..n {
            prefix(t, line);
            let y = path.labels[t];
            line.push_str(model.labels().label(y as u32));
            if style.marginals {
                let _ = write!(line, "/{:.6}", scratch.marginals[t * k + y]);
                if style.all_marginals {
                    for (j, label) in model.labels().labels().iter().enumerate() {
                        let _ = write!(line, "\t{label}/{:.6}", scratch.marginals[t * k + j]);
                    }
                }
            }
            line.push('\n');
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}
