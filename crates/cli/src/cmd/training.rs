//! What `chaincrf train` and `chaincrf cws train` share: the optimizer's
//! options (one set of flags, one convention), the progress printer and its
//! JSON-lines log, and the summary file.
//!
//! Both commands take `--algorithm` and `--set NAME=VALUE` with CRFsuite's
//! names, plus shorthands for the common ones. A flag left out takes the
//! command's default (CRFsuite's for `train`; the tuned segmenter's for
//! `cws train`); `--max-iterations 0` means no cap (L-BFGS only).

use anyhow::{bail, Context as _};
use chaincrf_train::{parameter_help, Algorithm, CheckedParams, Params, Progress, Report, Stage};
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

/// The optimizer's flags.
#[derive(Debug, Clone, clap::Args)]
pub struct OptimizerArgs {
    /// Training algorithm: lbfgs, l2sgd, ap (averaged perceptron), pa (passive-aggressive), arow.
    #[arg(short = 'a', long, default_value = "lbfgs", value_parser = parse_algorithm)]
    pub algorithm: Algorithm,
    /// Set a parameter by its CRFsuite name, e.g. --set c2=0.5 --set feature.possible_states=1
    /// (repeatable; see --help-params).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// List the chosen algorithm's parameters with their defaults, and exit.
    #[arg(long)]
    pub help_params: bool,
    /// L1 coefficient c1·‖w‖₁ (lbfgs; OWL-QN when > 0; zero weights are dropped from the model).
    #[arg(long, value_name = "C1", allow_negative_numbers = true)]
    pub c1: Option<f64>,
    /// L2 coefficient c2·‖w‖² (lbfgs, l2sgd; CRF++'s `-c C` is c2 = 1/(2C)).
    #[arg(long, value_name = "C2", allow_negative_numbers = true)]
    pub c2: Option<f64>,
    /// Iterations (lbfgs) or epochs (the others) at most; 0 = no cap (lbfgs only)
    /// [default: the command's].
    #[arg(long, value_name = "N")]
    pub max_iterations: Option<u64>,
    /// lbfgs: stop when ‖g‖/max(1,‖w‖) < EPSILON; ap/pa/arow: when an epoch's loss per item ≤ EPSILON.
    #[arg(long, allow_negative_numbers = true)]
    pub epsilon: Option<f64>,
    /// Stop when the objective improved by less than DELTA (relative) over --period iterations.
    #[arg(long, allow_negative_numbers = true)]
    pub delta: Option<f64>,
    /// The number of iterations the --delta test looks back.
    #[arg(long, value_name = "N")]
    pub period: Option<usize>,
    /// lbfgs: run N epochs of SGD first, a warm start (L-BFGS then needs far fewer iterations).
    #[arg(long, value_name = "N")]
    pub sgd_epochs: Option<usize>,
    /// Worker threads [default: all cores]; the model does not depend on it.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// With held-out data: stop when its accuracy has not improved for N iterations, keep the best weights.
    #[arg(long, value_name = "N")]
    pub patience: Option<usize>,
    /// Write one JSON object per iteration or epoch (algorithm, iteration, objective,
    /// gradient_norm, active_features, seconds, heldout) to FILE.
    #[arg(long, value_name = "FILE")]
    pub progress_jsonl: Option<PathBuf>,
    /// Write a JSON summary (termination name and detail, iterations, evaluations, ...) to FILE.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,
}

fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    s.parse().map_err(|e: chaincrf_train::TrainError| e.to_string())
}

impl OptimizerArgs {
    /// Prints the parameter listing when `--help-params` was given; returns whether it did.
    pub fn print_help_params(&self) -> bool {
        if self.help_params {
            print!("{}", parameter_help(self.algorithm));
        }
        self.help_params
    }

    /// The checked parameters: `defaults` (for the algorithm), then the
    /// shorthands, then every `--set` in order.
    ///
    /// # Errors
    /// A malformed `--set`, a parameter the algorithm does not have, a bad value.
    pub fn params(&self, defaults: impl FnOnce(Params) -> Params) -> anyhow::Result<CheckedParams> {
        let mut p = defaults(Params::new(self.algorithm));
        if let Some(v) = self.c1 {
            p = p.c1(v);
        }
        if let Some(v) = self.c2 {
            p = p.c2(v);
        }
        if let Some(n) = self.max_iterations {
            p = p.max_iterations((n > 0).then_some(n));
        }
        if let Some(v) = self.epsilon {
            p = p.epsilon(v);
        }
        if let Some(v) = self.delta {
            p = p.delta(v);
        }
        if let Some(v) = self.period {
            p = p.period(v);
        }
        if let Some(n) = self.sgd_epochs {
            p = p.sgd_epochs(n);
        }
        for item in &self.set {
            let Some((name, value)) = item.split_once('=') else {
                bail!("--set {item:?}: expected NAME=VALUE, e.g. --set c2=0.5");
            };
            p = p.set(name.trim(), value)?;
        }
        if self.patience == Some(0) {
            bail!("--patience must be at least 1");
        }
        if self.threads == Some(0) {
            bail!("--threads must be at least 1");
        }
        Ok(p.check()?)
    }

    /// Checks that the output files can be written, before training.
    pub fn check_outputs(&self) -> anyhow::Result<()> {
        for (what, p) in [("summary", &self.summary_json), ("progress log", &self.progress_jsonl)] {
            if let Some(p) = p {
                chaincrf_model::check_writable(p)
                    .with_context(|| format!("the {what} cannot be written (checked before training)"))?;
            }
        }
        Ok(())
    }
}

/// Every algorithm's parameters with their defaults (the long `--help`).
pub fn all_parameters_help() -> String {
    let mut out = String::from("Training algorithms and their parameters (--set NAME=VALUE):\n\n");
    for a in Algorithm::ALL {
        out.push_str(&parameter_help(a));
        out.push('\n');
    }
    out
}

/// Prints per-iteration progress to standard error (one line, overwritten
/// in place on a terminal) and logs it as JSON lines when asked.
pub struct ProgressPrinter {
    terminal: bool,
    last_width: usize,
    jsonl: Option<(PathBuf, BufWriter<File>)>,
    failed: bool,
}

impl ProgressPrinter {
    /// A printer, logging to `jsonl` when given.
    ///
    /// # Errors
    /// When the log cannot be created.
    pub fn new(jsonl: Option<&Path>) -> anyhow::Result<Self> {
        let jsonl = match jsonl {
            Some(p) => {
                let f = File::create(p).with_context(|| format!("{}: cannot create", p.display()))?;
                Some((p.to_path_buf(), BufWriter::new(f)))
            }
            None => None,
        };
        Ok(ProgressPrinter {
            terminal: std::io::stderr().is_terminal(),
            last_width: 0,
            jsonl,
            failed: false,
        })
    }

    /// Reports one event.
    pub fn event(&mut self, p: &Progress<'_>) {
        if p.replayed {
            return;
        }
        let mut line = match (p.stage, p.gradient_norm, p.learning_rate) {
            (Stage::WarmStart, _, lr) => format!(
                "sgd  {:>4}  loss {:>14.6}  eta {:>12.6}  active {:>9}  {:>8.2}s",
                p.iteration,
                p.objective,
                lr.unwrap_or(f64::NAN),
                p.active_features,
                p.seconds
            ),
            (_, Some(g), _) => format!(
                "iter {:>4}  loss {:>14.6}  |g| {:>12.6}  active {:>9}  {:>8.2}s",
                p.iteration, p.objective, g, p.active_features, p.seconds
            ),
            (_, None, _) => format!(
                "{} {:>4}  loss {:>14.6}  active {:>9}  {:>8.2}s",
                p.algorithm, p.iteration, p.objective, p.active_features, p.seconds
            ),
        };
        if let Some(acc) = p.heldout {
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
        if let Some((path, out)) = &mut self.jsonl {
            let record = serde_json::json!({
                "algorithm": p.algorithm.name(),
                "stage": match p.stage { Stage::WarmStart => "warm_start", Stage::Main => "main" },
                "iteration": p.iteration,
                "objective": finite(p.objective),
                "gradient_norm": p.gradient_norm.and_then(finite),
                "learning_rate": p.learning_rate.and_then(finite),
                "active_features": p.active_features,
                "evaluations": p.evaluations,
                "seconds": p.seconds,
                "heldout": p.heldout,
            });
            let written = writeln!(out, "{record}").and_then(|()| out.flush());
            if let Err(e) = written {
                if !self.failed {
                    note!(
                        "\nchaincrf: warning: cannot write {} (training continues): {e}",
                        path.display()
                    );
                }
                self.failed = true;
            }
        }
    }

    /// Ends the in-place line on a terminal.
    pub fn finish(&mut self) {
        if self.terminal && self.last_width > 0 {
            note!();
            self.last_width = 0;
        }
    }
}

/// JSON has no NaN or infinity: they are written as null.
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// Writes the summary of a run as JSON to `path`.
///
/// # Errors
/// When the file cannot be written.
pub fn write_summary(path: &Path, report: &Report, extra: serde_json::Value) -> anyhow::Result<()> {
    let mut summary = serde_json::json!({
        "algorithm": report.algorithm.name(),
        "termination": {
            "name": report.termination.name(),
            "detail": report.termination.to_string(),
        },
        "features": report.features,
        "sgd_epochs": report.warm_start_epochs,
        "iterations": report.iterations,
        "evaluations": report.evaluations,
        "final_objective": finite(report.final_objective),
        "seconds": report.seconds,
        "best_heldout": report.best_heldout,
    });
    if let (Some(map), serde_json::Value::Object(more)) = (summary.as_object_mut(), extra) {
        map.extend(more);
    }
    let mut text = serde_json::to_string_pretty(&summary)?;
    text.push('\n');
    chaincrf_model::write_atomically(path, text.as_bytes())
        .with_context(|| format!("{}: cannot write the summary", path.display()))?;
    Ok(())
}
