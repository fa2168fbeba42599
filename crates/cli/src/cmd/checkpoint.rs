//! Checkpoints and clean interruption, shared by `chaincrf train` and
//! `chaincrf cws train`.
//!
//! Training a segmenter on a full corpus takes long enough that losing it to a
//! closed laptop lid, a job scheduler's `SIGTERM` or a stray Ctrl-C hurts. This
//! module gives both training commands the same three behaviours:
//!
//! * `--checkpoint-every N` writes `MODEL.checkpoint` (the exact weights of
//!   every N-th iteration, the model built from them, the iteration number and
//!   a fingerprint of the run) atomically, so a crash — even `SIGKILL` — leaves
//!   the previous checkpoint or the new one, never half of one;
//! * SIGINT/SIGTERM/SIGHUP set a flag; the trainer finishes the current
//!   iteration and stops, and the command saves the model *and* a checkpoint
//!   and says where they are (a second signal quits at once; the files on disk
//!   are whole either way because every write is atomic);
//! * `--resume` continues from the checkpoint — weights, iteration count and
//!   the optimizer's own state, so the final model is bit for bit the one an
//!   uninterrupted run produces — after checking that its fingerprint (the
//!   training files' contents and the options that shape the features and the
//!   objective) matches this run's.
//!
//! The file format itself lives in `chaincrf_model::io`, with all other model I/O.

use anyhow::{bail, Context as _};
use chaincrf_model::{checkpoint_path, load_checkpoint, save_checkpoint, Checkpoint, Model};
use chaincrf_train::{Progress, Termination};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The error a command returns after an interrupt it handled (model and
/// checkpoint saved, message printed): `main` exits with status 130, the
/// shell's convention for SIGINT, without printing an error line.
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// Installs the interrupt handler (once per process) and returns its flag.
///
/// The first SIGINT, SIGTERM or SIGHUP sets the flag and says what will
/// happen; a second one exits at once with status 130.
///
/// # Errors
/// When the handler cannot be installed.
pub fn install_stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let seen = flag.clone();
    ctrlc::set_handler(move || {
        if seen.swap(true, Ordering::SeqCst) {
            note!("\nchaincrf: interrupted again: quitting without saving");
            std::process::exit(130);
        }
        note!(
            "\nchaincrf: interrupt: stopping after the current iteration, then saving the model and a checkpoint \
             (interrupt again to quit at once without saving)"
        );
    })
    .context("cannot install the interrupt handler")?;
    Ok(flag)
}

/// A stable hash of the files a run trains on and of `options` (a description
/// of the settings that shape the features and the objective). Files are read
/// in 64 KiB blocks, so hashing a large corpus needs no extra memory.
///
/// # Errors
/// When a file cannot be read.
pub fn fingerprint(files: &[&Path], options: &str) -> anyhow::Result<u64> {
    // FNV-1a, the hash the model format uses, streamed; files and the options
    // string are separated by their lengths so that no two inputs collide trivially.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    let mut buf = vec![0u8; 1 << 16];
    for path in files {
        let mut f = std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
        let mut total: u64 = 0;
        loop {
            let n = f
                .read(&mut buf)
                .with_context(|| format!("{}: read error", path.display()))?;
            if n == 0 {
                break;
            }
            feed(&buf[..n]);
            total += n as u64;
        }
        feed(&total.to_le_bytes());
    }
    feed(options.as_bytes());
    feed(&(options.len() as u64).to_le_bytes());
    Ok(chaincrf_features::mix64(h))
}

/// Writes checkpoints during a run and reports on them at the end.
pub struct Checkpointer {
    /// `MODEL.checkpoint`.
    pub path: PathBuf,
    every: Option<u64>,
    /// With checkpoints on: the iteration limit, whose iteration is saved too.
    last_iteration: Option<u64>,
    /// The training files and the options text the fingerprint covers.
    inputs: (Vec<PathBuf>, String),
    fingerprint: std::cell::OnceCell<u64>,
    /// The iteration of the last checkpoint written by this run.
    pub last_saved: Option<u64>,
    failed: bool,
    /// The flag that raises the iteration limit, named when a run stopped by
    /// it keeps its checkpoint.
    limit_flag: &'static str,
}

impl Checkpointer {
    /// Checkpoints of the model at `model`, every `every` iterations (and on an
    /// interrupt), stamped with the [`fingerprint`] of `files` and `options`.
    /// When checkpoints are on (`every` given, or the run resumes from one),
    /// the iteration `max_iterations` is saved too, so a run cut off by the
    /// limit can be continued exactly. Checks that the checkpoint path is
    /// writable, so a run does not find out at its first checkpoint. The
    /// fingerprint (a pass over the training files) is computed now when
    /// checkpoints are on, otherwise only if an interrupt asks for one.
    ///
    /// # Errors
    /// `every == 0`, a checkpoint path that cannot be written, or a training
    /// file that cannot be read.
    pub fn new(
        model: &Path,
        every: Option<u64>,
        resume: bool,
        max_iterations: Option<u64>,
        files: Vec<PathBuf>,
        options: String,
    ) -> anyhow::Result<Self> {
        if every == Some(0) {
            bail!("--checkpoint-every must be at least 1");
        }
        let path = checkpoint_path(model);
        chaincrf_model::check_writable(&path).context("the checkpoint cannot be written (checked before training)")?;
        let on = every.is_some() || resume;
        let checkpointer = Checkpointer {
            path,
            every,
            last_iteration: max_iterations.filter(|_| on),
            inputs: (files, options),
            fingerprint: std::cell::OnceCell::new(),
            last_saved: None,
            failed: false,
            limit_flag: "--max-iterations",
        };
        if on {
            checkpointer.fingerprint()?;
        }
        Ok(checkpointer)
    }

    /// Names `flag` as the one that raises this run's iteration limit (for a
    /// stage whose limit is not `--max-iterations`).
    pub fn with_limit_flag(mut self, flag: &'static str) -> Self {
        self.limit_flag = flag;
        self
    }

    /// Whether the iteration `p` gets a checkpoint: every N-th, the last one
    /// of an interrupted run, and the iteration limit's (see [`Checkpointer::new`]);
    /// not the iteration a resumed run starts from, whose checkpoint exists.
    pub fn wants(&self, p: &Progress<'_>) -> bool {
        !p.replayed
            && p.can_save_state()
            && (p.interrupted
                || self.every.is_some_and(|n| p.iteration.checked_rem(n) == Some(0))
                || self.last_iteration == Some(p.iteration))
    }

    /// The fingerprint stamped on checkpoints (computed on first use).
    ///
    /// # Errors
    /// When a training file cannot be read.
    pub fn fingerprint(&self) -> anyhow::Result<u64> {
        if let Some(&f) = self.fingerprint.get() {
            return Ok(f);
        }
        let files: Vec<&Path> = self.inputs.0.iter().map(PathBuf::as_path).collect();
        let f = fingerprint(&files, &self.inputs.1)?;
        Ok(*self.fingerprint.get_or_init(|| f))
    }

    /// Saves a checkpoint of the iteration `p` reports. A failure is
    /// reported once as a warning and training goes on: a run that cannot
    /// checkpoint still produces its model.
    pub fn save(&mut self, p: &Progress<'_>) {
        self.save_with(p, || {
            let model = p
                .model()
                .ok_or_else(|| anyhow::anyhow!("this run's weights are not a chain model"))?;
            Ok((p.weights().to_vec(), model))
        });
    }

    /// [`Checkpointer::save`] for a run whose weights are not a chain model's
    /// (the semi-Markov stage): `contents` gives the weights and the model the
    /// checkpoint stores beside the optimizer's state.
    pub fn save_with(&mut self, p: &Progress<'_>, contents: impl FnOnce() -> anyhow::Result<(Vec<f64>, Model)>) {
        let saved = self.fingerprint().and_then(|fingerprint| {
            let (weights, model) = contents()?;
            let checkpoint = Checkpoint {
                iteration: p.iteration,
                fingerprint,
                weights,
                model,
                optimizer: p.saved_state()?,
            };
            save_checkpoint(&checkpoint, &self.path)?;
            Ok(checkpoint.iteration)
        });
        match saved {
            Ok(iteration) => self.last_saved = Some(iteration),
            Err(e) => {
                if !self.failed {
                    note!("\nchaincrf: warning: cannot write a checkpoint (training continues): {e:#}");
                }
                self.failed = true;
            }
        }
    }

    /// After a run that finished and saved its model at iteration `iterations`.
    /// A run cut off by `--max-iterations` whose last iteration this run saved
    /// keeps the checkpoint, so `--resume` with a higher limit continues
    /// exactly there. Otherwise the checkpoint (this run's, or an older run's
    /// that the new model replaces) is superseded by the model and removed.
    pub fn finish(&self, termination: &Termination, iterations: u64) {
        if termination.is_iteration_limit() && self.last_saved == Some(iterations) {
            note!(
                "kept the checkpoint {} (iteration limit reached; continue with --resume and a higher {})",
                self.path.display(),
                self.limit_flag
            );
            return;
        }
        match std::fs::remove_file(&self.path) {
            Ok(()) => note!(
                "removed the checkpoint {} (superseded by the model)",
                self.path.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => note!(
                "chaincrf: warning: cannot remove the checkpoint {}: {e}",
                self.path.display()
            ),
        }
    }

    /// The message after an interrupt, naming the model and the checkpoint.
    pub fn report_interrupt(&self, model: &Path, iterations: u64, during_sgd: bool) {
        if during_sgd {
            note!(
                "interrupted during the SGD warm start: model saved to {} (not converged); \
                 no checkpoint is written before L-BFGS starts, so rerun without --resume to continue",
                model.display()
            );
            return;
        }
        match self.last_saved {
            Some(at) => note!(
                "interrupted after iteration {iterations}: model saved to {} (not converged); \
                 checkpoint of iteration {at} in {}; continue with the same command plus --resume",
                model.display(),
                self.path.display()
            ),
            None => note!(
                "interrupted after iteration {iterations}: model saved to {} (not converged); \
                 no checkpoint could be written",
                model.display()
            ),
        }
    }
}

/// Loads the checkpoint to resume from and checks that it belongs to this run.
///
/// # Errors
/// A missing or damaged checkpoint, or one whose fingerprint differs.
pub fn load_for_resume(model: &Path, fingerprint: u64) -> anyhow::Result<Checkpoint> {
    load_for_resume_any(model, &[fingerprint]).map(|(c, _)| c)
}

/// [`load_for_resume`] for a run of several stages, each with its own
/// fingerprint: also returns the index in `fingerprints` of the one the
/// checkpoint carries (so, which stage wrote it).
///
/// # Errors
/// A missing or damaged checkpoint, or one whose fingerprint is none of these.
pub fn load_for_resume_any(model: &Path, fingerprints: &[u64]) -> anyhow::Result<(Checkpoint, usize)> {
    let path = checkpoint_path(model);
    if !path.exists() {
        bail!(
            "{}: no checkpoint to resume from (checkpoints are written with --checkpoint-every N or on an interrupt)",
            path.display()
        );
    }
    let c = load_checkpoint(&path)?;
    let Some(stage) = fingerprints.iter().position(|&f| f == c.fingerprint) else {
        bail!(
            "{}: the checkpoint was written by a run on other data or with other options (template, format, \
             c1/c2, feature settings); resume with the same ones, or start over without --resume",
            path.display()
        );
    };
    note!("resuming from {} at iteration {}", path.display(), c.iteration);
    Ok((c, stage))
}
