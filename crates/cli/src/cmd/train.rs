//! `chaincrf train`: train a model from CRF++ column data with a template file,
//! or from CRFsuite attribute data.
//!
//! The options are those of CRFsuite's `crfsuite learn` with CRF++'s data and
//! template semantics (see `docs/training.md`). The command checks everything
//! that can fail cheaply — parameters, that the model path is writable, the
//! template, the data — before the first iteration, so a long run never dies at
//! the end for a reason known at the start. Progress goes to standard error,
//! one line per iteration (overwritten in place on a terminal).
//!
//! `--checkpoint-every N` and `--resume` save and continue a run; an interrupt
//! (Ctrl-C, SIGTERM) ends it cleanly after the current iteration with the model
//! and a checkpoint saved (see `checkpoint.rs` and `docs/reliability.md`).

use super::checkpoint::{install_stop_flag, load_for_resume, Checkpointer, Interrupted};
use super::{load_model, open_file};
use anyhow::{bail, Context as _};
use chaincrf_features::Templates;
use chaincrf_model::io::{check_writable, Checkpoint};
use chaincrf_model::Model;
use chaincrf_train::{
    dev_accuracy, resume, train, ClassicCorpus, ClassicFormat, ClassicOptions, ClassicSetup, FeaturePairs, Iteration,
    OptimizerState, Progress, Stage, TrainParams,
};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

/// Input data format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// CRF++ column data: whitespace-separated columns, label last; needs --template.
    Crfpp,
    /// CRFsuite attribute data: TAB-separated, label first, then NAME[:VALUE] attributes.
    Crfsuite,
}

/// Which attribute × label pairs get weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Pairs {
    /// Only pairs seen in the training data (CRFsuite's default).
    Observed,
    /// Every pair (CRF++'s model).
    All,
}

/// Options of `chaincrf train`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  # CRF++ data and template, the objective of `crf_learn -c 4.0`:
  chaincrf train --template template --c2 0.125 --feature-pairs all --model chunk.model train.data
  # CRFsuite attribute data with L1 + L2 and early stopping on held-out data:
  chaincrf train --format crfsuite --c1 0.1 --c2 0.01 --dev dev.crfsuite --patience 5 --model pos.model train.crfsuite")]
pub struct Args {
    /// Training data (CRF++ columns or CRFsuite attributes, see --format).
    #[arg(value_name = "DATA")]
    pub data: PathBuf,
    /// Where to write the model (written atomically at the end; checked for writability first).
    #[arg(short, long, value_name = "MODEL")]
    pub model: PathBuf,
    /// Data format [default: crfpp, or the --init model's format].
    #[arg(short, long, value_enum)]
    pub format: Option<Format>,
    /// CRF++ template file (required for crfpp data unless --init gives one).
    #[arg(short, long, value_name = "FILE")]
    pub template: Option<PathBuf>,
    /// L1 coefficient c1·‖w‖₁ (OWL-QN when > 0; zero weights are dropped from the model).
    #[arg(long, default_value_t = 0.0, value_name = "C1", allow_negative_numbers = true)]
    pub c1: f64,
    /// L2 coefficient c2·‖w‖² (CRFsuite's definition; CRF++'s `-c C` is c2 = 1/(2C)).
    #[arg(long, default_value_t = 1.0, value_name = "C2", allow_negative_numbers = true)]
    pub c2: f64,
    /// Stop after this many iterations [default: no limit].
    #[arg(long, value_name = "N")]
    pub max_iterations: Option<u64>,
    /// Run N epochs of SGD before L-BFGS: a warm start that reaches a good model in a
    /// few passes over the data (L-BFGS then needs far fewer iterations).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub sgd_epochs: usize,
    /// Worker threads [default: all cores]; the model does not depend on it.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Held-out data in the same format: token accuracy after every iteration.
    #[arg(long, value_name = "FILE")]
    pub dev: Option<PathBuf>,
    /// With --dev: stop when held-out accuracy has not improved for N iterations, keep the best weights.
    #[arg(long, value_name = "N", requires = "dev")]
    pub patience: Option<usize>,
    /// Keep attributes seen at least N times in the training data.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub min_freq: u32,
    /// Which attribute × label pairs get weights.
    #[arg(long, value_enum, default_value_t = Pairs::Observed)]
    pub feature_pairs: Pairs,
    /// Also learn start and end weights per label (an extension; CRF++ and CRFsuite have none).
    #[arg(long)]
    pub start_end: bool,
    /// Start from this model's weights; its labels and attributes keep their ids.
    #[arg(long, value_name = "MODEL")]
    pub init: Option<PathBuf>,
    /// Stop when ‖g‖ / max(1, ‖w‖) < EPSILON.
    #[arg(long, default_value_t = 1e-5, allow_negative_numbers = true)]
    pub epsilon: f64,
    /// Stop when the objective improved by less than DELTA (relative) over --period iterations.
    #[arg(long, default_value_t = 1e-5, allow_negative_numbers = true)]
    pub delta: f64,
    /// The number of iterations the --delta test looks back.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub period: usize,
    /// Write a JSON summary: features, sgd_epochs, iterations, evaluations, final_objective, seconds, termination.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,
    /// Save MODEL.checkpoint (exact weights and iteration count) every N iterations, atomically.
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<u64>,
    /// Continue from MODEL.checkpoint; data and options must be the ones it was written with.
    #[arg(long)]
    pub resume: bool,
}

/// What identifies a run for `--resume`: the files trained on and every option
/// that changes the features or the objective (not the stopping rules, threads
/// or held-out data, which a continued run may change).
fn run_inputs(args: &Args) -> (Vec<PathBuf>, String) {
    let mut files = vec![args.data.clone()];
    files.extend(args.template.clone());
    files.extend(args.init.clone());
    let options = format!(
        "train format={:?} template={} init={} c1={} c2={} min_freq={} pairs={:?} start_end={}",
        args.format,
        args.template.is_some(),
        args.init.is_some(),
        args.c1,
        args.c2,
        args.min_freq,
        args.feature_pairs,
        args.start_end
    );
    (files, options)
}

/// Whether `m` has exactly the labels and attribute ids of `setup`'s data.
fn same_features(m: &Model, setup: &ClassicSetup) -> bool {
    use chaincrf_features::AttrKind;
    let d = &setup.dataset;
    m.labels.labels() == d.labels.labels()
        && m.extractor == setup.spec
        && m.structure == setup.structure
        && [AttrKind::State, AttrKind::Edge].into_iter().all(|kind| {
            m.attributes.len(kind) == d.attributes.len(kind)
                && (0..d.attributes.len(kind) as u32).all(|id| m.attributes.key(kind, id) == d.attributes.key(kind, id))
        })
}

/// Runs `chaincrf train`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut params = TrainParams::new()
        .c1(args.c1)
        .c2(args.c2)
        .max_iterations(args.max_iterations)
        .sgd_epochs(args.sgd_epochs)
        .epsilon(args.epsilon)
        .delta(args.delta)
        .period(args.period)
        .patience(args.patience)
        .feature_pairs(match args.feature_pairs {
            Pairs::Observed => FeaturePairs::Observed,
            Pairs::All => FeaturePairs::All,
        });
    if let Some(t) = args.threads {
        params = params.threads(t);
    }
    params.check()?;
    if args.min_freq == 0 {
        bail!("--min-freq must be at least 1");
    }
    if let Some(t) = args.threads {
        // The held-out evaluation runs on rayon's global pool; keep it to --threads too.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(t).build_global();
    }
    check_writable(&args.model).context("the model cannot be written (checked before training)")?;
    if let Some(p) = &args.summary_json {
        check_writable(p).context("the summary cannot be written (checked before training)")?;
    }
    let inputs = run_inputs(&args);
    let mut checkpointer = Checkpointer::new(
        &args.model,
        args.checkpoint_every,
        args.resume,
        args.max_iterations,
        inputs.0,
        inputs.1,
    )?;
    let checkpoint = if args.resume {
        let c = load_for_resume(&args.model, checkpointer.fingerprint().map_err(anyhow::Error::msg)?)?;
        // The file on disk is this run's starting point until it writes a newer one.
        checkpointer.last_saved = Some(c.iteration);
        Some(c)
    } else {
        None
    };

    let init = match &args.init {
        Some(p) => Some(load_model(p)?),
        None => None,
    };
    let format = match (args.format, init.as_ref().map(ClassicFormat::of_model)) {
        (_, Some(None)) => bail!("the --init model was not trained on CRF++ or CRFsuite data"),
        (Some(Format::Crfpp), _) => ClassicFormat::Crfpp,
        (Some(Format::Crfsuite), _) => ClassicFormat::Crfsuite,
        (None, Some(Some(f))) => f,
        (None, None) => ClassicFormat::Crfpp,
    };
    let templates = match &args.template {
        Some(p) => {
            if format == ClassicFormat::Crfsuite {
                bail!("--template is for CRF++ data; CRFsuite data carries its attributes");
            }
            let name = p.display().to_string();
            Some(Templates::read(open_file(p)?, &name)?)
        }
        None => None,
    };
    if format == ClassicFormat::Crfpp && templates.is_none() && init.is_none() {
        bail!("CRF++ data needs a template file: add --template FILE (or use --format crfsuite)");
    }

    let started = Instant::now();
    let data_name = args.data.display().to_string();
    let options = ClassicOptions {
        start_end: args.start_end,
        min_freq: args.min_freq,
        keep_names: true,
    };
    // Compiled while it is read: the text of a large corpus is never held.
    let (setup, sequences, tokens) = ClassicSetup::read(
        format,
        open_file(&args.data)?,
        &data_name,
        templates,
        &options,
        init.as_ref(),
    )?;
    let dev = match &args.dev {
        Some(p) => {
            let name = p.display().to_string();
            let c = ClassicCorpus::read(format, open_file(p)?, &name)?;
            Some(setup.held_out(&c, &name)?)
        }
        None => None,
    };
    let layout = setup.layout();
    let saved = match checkpoint {
        Some(c) => {
            if !same_features(&c.model, &setup) {
                bail!(
                    "{}: the checkpoint's labels or features differ from this run's; start over without --resume",
                    checkpointer.path.display()
                );
            }
            let state = OptimizerState::from_bytes(&c.optimizer)
                .map_err(|e| anyhow::anyhow!("{}: {e}", checkpointer.path.display()))?;
            Some(state)
        }
        None => None,
    };
    note!(
        "{data_name}: {} sequences, {} tokens, {} labels, {} state + {} edge attributes (read in {:.2}s)",
        sequences,
        tokens,
        layout.k,
        layout.num_state,
        layout.num_edge,
        started.elapsed().as_secs_f64()
    );

    let mut reporter = Reporter::new();
    let structure = setup.structure.clone();
    let params = params.stop_flag(Some(install_stop_flag()?));
    let mut on_iteration = |it: &Iteration<'_>| {
        let p = it.progress;
        let acc = dev.as_ref().map(|d| dev_accuracy(d, layout, &structure, it.weights()));
        reporter.iteration(p, acc);
        if checkpointer.wants(p) {
            let w = it.weights();
            let model = Model::from_flat(
                setup.dataset.labels.clone(),
                setup.dataset.attributes.clone(),
                setup.spec.clone(),
                setup.structure.clone(),
                w,
            );
            let checkpoint = checkpointer.fingerprint().and_then(|fingerprint| {
                it.optimizer_state().map(|optimizer| Checkpoint {
                    iteration: p.iteration,
                    fingerprint,
                    weights: w.to_vec(),
                    model,
                    optimizer,
                })
            });
            checkpointer.save(checkpoint);
        }
        acc
    };
    let outcome = match saved {
        Some(state) => resume(&setup.dataset, &setup.structure, &params, state, &mut on_iteration)?,
        None => train(
            &setup.dataset,
            &setup.structure,
            &params,
            setup.init.clone(),
            &mut on_iteration,
        )?,
    };
    reporter.finish();
    let interrupted = outcome.termination.starts_with("interrupted");
    note!(
        "final objective {:.6} after {} iterations ({} evaluations, {:.2}s): {}",
        outcome.final_objective,
        outcome.iterations,
        outcome.evaluations,
        outcome.seconds,
        outcome.termination
    );
    if let Some(acc) = outcome.best_dev_accuracy {
        note!("best held-out token accuracy: {acc:.4}");
    }

    let save_started = Instant::now();
    let model = setup.into_model(&outcome.weights, args.c1);
    let bytes = chaincrf_model::save(&model, &args.model)?;
    note!(
        "model {}: {} bytes, {} features ({} active weights), saved in {:.3}s",
        args.model.display(),
        bytes,
        outcome.features,
        model.num_active_weights(),
        save_started.elapsed().as_secs_f64()
    );

    if let Some(path) = &args.summary_json {
        let summary = serde_json::json!({
            "features": outcome.features,
            "sgd_epochs": outcome.sgd_epochs,
            "iterations": outcome.iterations,
            "evaluations": outcome.evaluations,
            "final_objective": outcome.final_objective,
            "seconds": outcome.seconds,
            "termination": outcome.termination,
        });
        let mut text = serde_json::to_string_pretty(&summary)?;
        text.push('\n');
        std::fs::write(path, text).with_context(|| format!("{}: cannot write the summary", path.display()))?;
    }
    if interrupted {
        checkpointer.report_interrupt(
            &args.model,
            outcome.iterations,
            outcome.termination.starts_with("interrupted during the SGD"),
        );
        return Err(Interrupted.into());
    }
    checkpointer.finish(&outcome.termination, outcome.iterations);
    Ok(())
}

/// Prints per-iteration progress: overwriting one line on a terminal, plain lines otherwise.
struct Reporter {
    terminal: bool,
    last_width: usize,
}

impl Reporter {
    fn new() -> Self {
        Reporter {
            terminal: std::io::stderr().is_terminal(),
            last_width: 0,
        }
    }

    fn iteration(&mut self, p: &Progress, dev: Option<f64>) {
        let mut line = match p.stage {
            Stage::Sgd { learning_rate } => format!(
                "sgd  {:>4}  loss {:>14.6}  eta {:>12.6}  active {:>9}  {:>8.2}s",
                p.iteration, p.objective, learning_rate, p.active_features, p.seconds
            ),
            Stage::Lbfgs => format!(
                "iter {:>4}  loss {:>14.6}  |g| {:>12.6}  active {:>9}  {:>8.2}s",
                p.iteration, p.objective, p.gradient_norm, p.active_features, p.seconds
            ),
        };
        if let Some(acc) = dev {
            line.push_str(&format!("  dev {acc:.4}"));
        }
        let mut err = std::io::stderr().lock();
        // Progress is best effort: a closed stderr must not stop training.
        let _ = if self.terminal {
            let pad = self.last_width.saturating_sub(line.chars().count());
            self.last_width = line.chars().count();
            write!(err, "\r{line}{}", " ".repeat(pad))
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }

    fn finish(&mut self) {
        if self.terminal && self.last_width > 0 {
            note!();
        }
    }
}
