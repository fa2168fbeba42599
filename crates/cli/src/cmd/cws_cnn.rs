//! `chaincrf cws train --encoder cnn`: the CNN+CRF segmenter's options and
//! training run (feature `cnn-train`, on by default; without it the command
//! says how to get it, and `cws segment` still reads CNN models, which need
//! no candle to run).

use std::path::PathBuf;

/// The CNN's options (used with `--encoder cnn`).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "CNN encoder (--encoder cnn)")]
pub struct CnnArgs {
    /// Epochs at most.
    #[arg(long, default_value_t = 8)]
    pub epochs: usize,
    /// Sentences per batch at most.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Padded characters per batch at most (batches of long sentences hold fewer sentences).
    #[arg(long, default_value_t = 16384)]
    pub max_batch_chars: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 2e-3)]
    pub learning_rate: f64,
    /// Character embedding width.
    #[arg(long, default_value_t = 128)]
    pub embedding_dim: usize,
    /// Filters of each convolution.
    #[arg(long, default_value_t = 128)]
    pub filters: usize,
    /// Number of convolutions.
    #[arg(long, default_value_t = 3)]
    pub conv_layers: usize,
    /// Kernel width of the convolutions (odd).
    #[arg(long, default_value_t = 3)]
    pub kernel: usize,
    /// Characters seen fewer times share the unknown-character embedding.
    #[arg(long, default_value_t = 2)]
    pub min_char_count: usize,
    /// Seed of the initial weights and the batch order.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// What the CNN run takes from the shared `cws train` flags.
#[cfg_attr(not(feature = "cnn-train"), allow(dead_code))]
pub struct CnnRun {
    pub corpus: PathBuf,
    pub model: PathBuf,
    pub sentences: Vec<chaincrf_cws::Sentence>,
    pub scheme: chaincrf_cws::TagScheme,
    pub dev_every: Option<usize>,
    pub patience: Option<usize>,
    pub checkpoint_every: Option<u64>,
    pub resume: bool,
}

#[cfg(not(feature = "cnn-train"))]
pub fn train(_: &CnnArgs, _: CnnRun) -> anyhow::Result<()> {
    anyhow::bail!("this chaincrf was built without CNN training (cargo feature `cnn-train` of chaincrf-cli)")
}

#[cfg(feature = "cnn-train")]
pub fn train(a: &CnnArgs, run: CnnRun) -> anyhow::Result<()> {
    use super::checkpoint::{install_stop_flag, Interrupted};
    use chaincrf_cws_cnn::{train_cnn, Checkpoints, CnnShape, CnnStop, CnnTrainOptions};
    use std::time::Instant;

    let options = CnnTrainOptions {
        scheme: run.scheme,
        shape: CnnShape {
            embedding: a.embedding_dim,
            filters: a.filters,
            layers: a.conv_layers,
            kernel: a.kernel,
        },
        epochs: a.epochs,
        batch_size: a.batch_size,
        max_batch_chars: a.max_batch_chars,
        learning_rate: a.learning_rate,
        seed: a.seed,
        min_char_count: a.min_char_count,
        dev_every: run.dev_every,
        patience: run.patience,
    };
    options.check()?;
    let checkpoint_path = chaincrf_model::checkpoint_path(&run.model);
    let checkpoints = Checkpoints {
        path: (run.checkpoint_every.is_some() || run.resume).then(|| checkpoint_path.clone()),
        every: run.checkpoint_every.map(|n| n as usize),
        resume: run.resume,
    };
    let started = Instant::now();
    let stop = install_stop_flag()?;
    let trained = train_cnn(&run.sentences, &options, &checkpoints, Some(stop), &mut |p| {
        let f1 = p.heldout_f1.map_or(String::new(), |f| format!(", held-out F1 {f:.4}"));
        let ck = if p.checkpointed { ", checkpoint written" } else { "" };
        note!(
            "epoch {}/{}: loss {:.4}{f1}, {:.1}s{ck}",
            p.epoch,
            options.epochs,
            p.loss,
            p.seconds
        );
    })?;
    match trained.stop {
        CnnStop::Interrupted => {
            if checkpoints.path.is_some() {
                note!(
                    "interrupted: state saved to {}; continue with the same command and --resume",
                    checkpoint_path.display()
                );
            } else {
                note!("interrupted: no model written (use --checkpoint-every N to keep the state)");
            }
            return Err(Interrupted.into());
        }
        CnnStop::EarlyStopped => note!("held-out F1 stopped improving: early stop"),
        CnnStop::Epochs => {}
    }
    let model = trained.model.expect("a finished run has a model");
    let bytes = chaincrf_model::save(&model, &run.model)?;
    if let Some((f1, epoch)) = trained.best {
        note!(
            "best held-out F1 {f1:.4} after epoch {epoch} (kept); held out {} sentences",
            trained.dev_sentences
        );
    }
    note!(
        "trained the CNN on {} sentences ({} known characters) from {} in {:.1}s; peak memory {}; model {} ({} bytes)",
        trained.train_sentences,
        trained.vocabulary,
        run.corpus.display(),
        started.elapsed().as_secs_f64(),
        super::cws::peak_rss_bytes().map_or("unknown".into(), |b| format!("{:.0} MiB", b as f64 / 1048576.0)),
        run.model.display(),
        bytes
    );
    let last_saved = checkpoints.every.is_some_and(|n| n > 0 && trained.epochs % n == 0);
    if trained.stop == CnnStop::Epochs && last_saved {
        note!(
            "kept the checkpoint {} (epoch limit reached; continue with --resume and a higher --epochs)",
            checkpoint_path.display()
        );
    } else if checkpoints.path.is_some() {
        match std::fs::remove_file(&checkpoint_path) {
            Ok(()) => note!(
                "removed the checkpoint {} (superseded by the model)",
                checkpoint_path.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => note!(
                "chaincrf: warning: cannot remove the checkpoint {}: {e}",
                checkpoint_path.display()
            ),
        }
    }
    Ok(())
}
