//! The `chaincrf` command-line tool.
//!
//! One binary with a subcommand per task, so a CRF++ or CRFsuite user finds
//! `train`, `tag`, `eval` and `dump` in one place. Each subcommand lives in its
//! own file under `cmd/` with a clap `Args` struct and a
//! `run(args) -> anyhow::Result<()>`; this file only dispatches and turns an
//! error into the one line `chaincrf: error: ...` and exit status 1, so scripts
//! can rely on both the status and a single grep-able message.

mod cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Linear-chain CRFs: train, tag, evaluate and inspect models.
#[derive(Debug, Parser)]
#[command(name = "chaincrf", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a model from CRF++ column data (with a template) or CRFsuite attribute data.
    Train(Box<cmd::train::Args>),
    /// Tag data with a trained model (streaming: one sequence in, one sequence out).
    Tag(cmd::tag::Args),
    /// Score tagged output: gold and predicted labels in the last two columns.
    Eval(cmd::eval::Args),
    /// Show a model: labels, transitions, strongest features; or all of it as JSON.
    Dump(cmd::dump::Args),
    /// Drop attributes whose weights are all near zero: a smaller model that loads and tags faster.
    Prune(cmd::prune::Args),
    /// Chinese word segmentation: train a segmenter, segment text, score a segmentation.
    Cws(cmd::cws::Args),
    /// Exact inference on chain or semi-Markov potentials given as JSON: log Z, Viterbi, marginals, entropy, n-best.
    Infer(cmd::infer::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => cmd::train::run(*args),
        Command::Tag(args) => cmd::tag::run(args),
        Command::Eval(args) => cmd::eval::run(args),
        Command::Dump(args) => cmd::dump::run(args),
        Command::Prune(args) => cmd::prune::run(args),
        Command::Cws(args) => cmd::cws::run(args),
        Command::Infer(args) => cmd::infer::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`chaincrf tag ... | head`) is the reader's choice, not an error.
        Err(e) if cmd::is_broken_pipe(&e) => ExitCode::SUCCESS,
        // Training stopped by a signal has already saved its files and said so.
        Err(e) if e.is::<cmd::checkpoint::Interrupted>() => ExitCode::from(130),
        Err(e) => {
            // Not `eprintln!`: a closed standard error must not turn into a panic.
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "chaincrf: error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, `: `-separated. A cause whose text the
/// message already contains is skipped: library errors often display their
/// source inline *and* return it as `source()`, which would print it twice.
fn one_line(e: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message.replace('\n', " ")
}
