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
use super::training::{write_summary, OptimizerArgs, ProgressPrinter};
use super::{load_model, open_file};
use anyhow::{bail, Context as _};
use chaincrf_features::Templates;
use chaincrf_model::check_writable;
use chaincrf_train::{
    CheckedParams, ClassicCorpus, ClassicFormat, ClassicOptions, ClassicSetup, Progress, SavedState, Termination,
    Trainer,
};
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

const EXAMPLES: &str = "\
Examples:
  # CRF++ data and template, the objective of `crf_learn -c 4.0`:
  chaincrf train --template template --c2 0.125 --feature-pairs all --model chunk.model train.data
  # CRFsuite attribute data with L1 + L2 and early stopping on held-out data:
  chaincrf train --format crfsuite --c1 0.1 --c2 0.01 --dev dev.crfsuite --patience 5 --model pos.model train.crfsuite
  # CRFsuite's passive-aggressive algorithm, PA-II, 20 epochs:
  chaincrf train --format crfsuite -a pa --set type=2 --max-iterations 20 --model pos.model train.crfsuite
  # The parameters of an algorithm, with their defaults (all of them: --help):
  chaincrf train -a arow --help-params";

/// Options of `chaincrf train`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES, after_long_help = format!("{EXAMPLES}\n\n{}", super::training::all_parameters_help()))]
pub struct Args {
    /// Training data (CRF++ columns or CRFsuite attributes, see --format).
    #[arg(value_name = "DATA", required_unless_present = "help_params")]
    pub data: Option<PathBuf>,
    /// Where to write the model (written atomically at the end; checked for writability first).
    #[arg(short, long, value_name = "MODEL", required_unless_present = "help_params")]
    pub model: Option<PathBuf>,
    /// Data format [default: crfpp, or the --init model's format].
    #[arg(short, long, value_enum)]
    pub format: Option<Format>,
    /// CRF++ template file (required for crfpp data unless --init gives one).
    #[arg(short, long, value_name = "FILE")]
    pub template: Option<PathBuf>,
    /// The optimizer.
    #[command(flatten)]
    pub optimizer: OptimizerArgs,
    /// Held-out data in the same format: token accuracy after every iteration.
    #[arg(long, value_name = "FILE")]
    pub dev: Option<PathBuf>,
    /// Keep attributes seen at least N times in the training data (CRF++'s -f; CRFsuite's
    /// feature.minfreq, a threshold on each attribute-label feature's summed value, is --set feature.minfreq=X).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub min_freq: u32,
    /// Which attribute × label pairs and label pairs get weights: a shorthand for
    /// --set feature.possible_states=B --set feature.possible_transitions=B.
    #[arg(long, value_enum)]
    pub feature_pairs: Option<Pairs>,
    /// Also learn start and end weights per label (an extension; CRF++ and CRFsuite have none).
    #[arg(long)]
    pub start_end: bool,
    /// Start from this model's weights; its labels and attributes keep their ids.
    #[arg(long, value_name = "MODEL")]
    pub init: Option<PathBuf>,
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
fn run_inputs(args: &Args, params: &CheckedParams) -> (Vec<PathBuf>, String) {
    let mut files: Vec<PathBuf> = args.data.iter().cloned().collect();
    files.extend(args.template.clone());
    files.extend(args.init.clone());
    let p = params.params();
    let options = format!(
        "train format={:?} template={} init={} algorithm={} c1={} c2={} min_freq={} minfreq={:?} states={:?} \
         transitions={:?} start_end={}",
        args.format,
        args.template.is_some(),
        args.init.is_some(),
        p.algorithm(),
        p.l1(),
        p.l2(),
        args.min_freq,
        p.get("feature.minfreq"),
        p.get("feature.possible_states"),
        p.get("feature.possible_transitions"),
        args.start_end
    );
    (files, options)
}

/// Runs `chaincrf train`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.optimizer.print_help_params() {
        return Ok(());
    }
    let (Some(data_path), Some(model_path)) = (args.data.clone(), args.model.clone()) else {
        bail!("DATA and --model are required");
    };
    let params = args.optimizer.params(|p| match args.feature_pairs {
        Some(pairs) => {
            let all = pairs == Pairs::All;
            p.possible_states(all).possible_transitions(all)
        }
        None => p,
    })?;
    if args.min_freq == 0 {
        bail!("--min-freq must be at least 1");
    }
    let opt = &args.optimizer;
    if let Some(t) = opt.threads {
        // Anything else on rayon's global pool keeps to --threads too.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(t).build_global();
    }
    if opt.patience.is_some() && args.dev.is_none() {
        bail!("--patience needs held-out data (--dev FILE)");
    }
    check_writable(&model_path).context("the model cannot be written (checked before training)")?;
    opt.check_outputs()?;
    let inputs = run_inputs(&args, &params);
    let mut checkpointer = Checkpointer::new(
        &model_path,
        args.checkpoint_every,
        args.resume,
        params.params().max_iterations_or_default(),
        inputs.0,
        inputs.1,
    )?;
    let checkpoint = if args.resume {
        let c = load_for_resume(&model_path, checkpointer.fingerprint()?)?;
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
    let data_name = data_path.display().to_string();
    let options = ClassicOptions {
        start_end: args.start_end,
        min_freq: args.min_freq,
        keep_names: true,
    };
    // Compiled while it is read: the text of a large corpus is never held.
    let (setup, sequences, tokens) = ClassicSetup::read(
        format,
        open_file(&data_path)?,
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
    let data = &setup.dataset;
    let layout = data.layout();
    let saved = match checkpoint {
        Some(c) => {
            if !data.has_features_of(&c.model) {
                bail!(
                    "{}: the checkpoint's labels or features differ from this run's; start over without --resume",
                    checkpointer.path.display()
                );
            }
            Some(SavedState::from_bytes(&c.optimizer).with_context(|| checkpointer.path.display().to_string())?)
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

    let mut printer = ProgressPrinter::new(opt.progress_jsonl.as_deref())?;
    let mut trainer = Trainer::new(params.clone()).stop_flag(install_stop_flag()?);
    if let Some(t) = opt.threads {
        trainer = trainer.threads(t);
    }
    if let Some(d) = &dev {
        trainer = trainer.held_out(d);
    }
    if let Some(p) = opt.patience {
        trainer = trainer.early_stopping(p);
    }
    if let Some(state) = saved {
        trainer = trainer.resume_from(state);
    } else if let Some(w) = setup.init.clone() {
        trainer = trainer.initial_weights(w);
    }
    let fitted = trainer
        .observer(|p: &Progress<'_>| {
            printer.event(p);
            if checkpointer.wants(p) {
                checkpointer.save(p);
            }
        })
        .fit(data)?;
    printer.finish();
    let report = fitted.report().clone();
    note!("{report}");

    let save_started = Instant::now();
    let model = fitted.into_model();
    let bytes = chaincrf_model::save(&model, &model_path)?;
    note!(
        "model {}: {} bytes, {} features ({} active weights), saved in {:.3}s",
        model_path.display(),
        bytes,
        report.features,
        model.num_active_weights(),
        save_started.elapsed().as_secs_f64()
    );
    if let Some(path) = &opt.summary_json {
        write_summary(path, &report, serde_json::json!({}))?;
    }
    if let Termination::Interrupted {
        after,
        during_warm_start,
    } = report.termination
    {
        checkpointer.report_interrupt(&model_path, after, during_warm_start);
        return Err(Interrupted.into());
    }
    checkpointer.finish(&report.termination, report.iterations);
    Ok(())
}
