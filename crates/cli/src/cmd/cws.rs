//! `chaincrf cws`: Chinese word segmentation — train a segmenter on a segmented
//! corpus, segment text with it (streaming, in parallel, output in input
//! order), and score a segmentation the way the SIGHAN Bakeoff does.

use super::checkpoint::{install_stop_flag, load_for_resume_any, Checkpointer, Interrupted};
use super::training::{write_summary, OptimizerArgs, ProgressPrinter};
use anyhow::{bail, Context as _};
use chaincrf_cws::{
    read_corpus, read_corpus_as, train_segmenter_with, train_semi_segmenter_with, CorpusFormat, CwsTrainOptions,
    CwsTrained, FoldLayout, SemiOptions, SemiResume, SemiStage, Sentence, TagScheme, UserDict,
};
use chaincrf_train::Termination;
use clap::{Args as ClapArgs, Subcommand, ValueEnum};
use rayon::prelude::*;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `chaincrf cws`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: CwsCommand,
}

const TRAIN_EXAMPLE: &str =
    "Examples:\n  chaincrf cws train --corpus data/199801.txt --model pku.model --dev-every 20\n  \
     chaincrf cws train --encoder cnn --corpus data/199801.txt --model pku-cnn.model --dev-every 20 --patience 2";

#[derive(Debug, Subcommand)]
enum CwsCommand {
    /// Train a segmenter on a segmented corpus (People's Daily or SIGHAN format).
    #[command(
        after_help = TRAIN_EXAMPLE,
        after_long_help = format!("{TRAIN_EXAMPLE}\n\n{}", super::training::all_parameters_help())
    )]
    Train(Box<TrainArgs>),
    /// Segment text: one output line per input line, words separated by a space.
    #[command(after_help = "Example:\n  echo 共同创造美好的新世纪 | chaincrf cws segment --model pku.model")]
    Segment(SegmentArgs),
    /// Score a segmentation against gold: P, R, F1 (and OOV figures with --dict).
    #[command(
        after_help = "Example:\n  chaincrf cws eval --gold pku_test_gold.utf8 --pred out.txt --dict pku_training_words.utf8"
    )]
    Eval(EvalArgs),
    /// Write a corpus's character-tagging attributes in CRFsuite's data format
    /// (the same features `cws train` uses), e.g. to train CRFsuite on identical input.
    #[command(after_help = "Example:\n  chaincrf cws export --corpus 199801.txt --no-lexicon -o pku.crfsuite.txt")]
    Export(ExportArgs),
}

#[derive(Debug, ClapArgs)]
struct ExportArgs {
    /// Segmented corpus.
    #[arg(long)]
    corpus: PathBuf,
    /// Output file (default: standard output).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Leave out the training-lexicon features.
    #[arg(long)]
    no_lexicon: bool,
    /// Tag scheme.
    #[arg(long, value_enum, default_value = "bmes")]
    scheme: SchemeArg,
    /// Export only every N-th sentence starting with the N-th (a held-out part)...
    #[arg(long)]
    only_every: Option<usize>,
    /// ...or every sentence except those (the training part).
    #[arg(long)]
    skip_every: Option<usize>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Pku,
    Sighan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EncoderArg {
    /// The feature CRF (character n-grams, lexicon).
    Crf,
    /// The CNN+CRF network (trained with candle; see docs/neural.md).
    Cnn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FoldLayoutArg {
    /// Sentence i is in fold i mod N.
    Interleaved,
    /// Fold f is the f-th run of consecutive sentences.
    Contiguous,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum SchemeArg {
    Bmes,
    #[value(name = "6tag")]
    SixTag,
}

#[derive(Debug, ClapArgs)]
struct TrainArgs {
    /// Segmented training corpus.
    #[arg(long, required_unless_present = "help_params")]
    corpus: Option<PathBuf>,
    /// Where to write the model (checked for writability before training).
    #[arg(long, required_unless_present = "help_params")]
    model: Option<PathBuf>,
    /// Corpus format; detected from the first lines when omitted.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Tag scheme.
    #[arg(long, value_enum, default_value = "bmes")]
    scheme: SchemeArg,
    /// What computes the emission scores: the feature CRF or the CNN (the optimizer flags
    /// below are the feature CRF's; the CNN trains with Adam and has its own flags).
    #[arg(long, value_enum, default_value = "crf")]
    encoder: EncoderArg,
    #[command(flatten)]
    cnn: super::cws_cnn::CnnArgs,
    /// The optimizer. Defaults: lbfgs with c2 = 1, 10 SGD epochs then at most 20 iterations;
    /// the other algorithms keep CRFsuite's defaults.
    #[command(flatten)]
    optimizer: OptimizerArgs,
    /// Hold out every N-th sentence for per-iteration accuracy (and early stopping with --patience).
    #[arg(long)]
    dev_every: Option<usize>,
    /// The model drops attributes whose weights are all at most this in absolute value
    /// (0 keeps every attribute with a non-zero weight).
    #[arg(long, value_name = "T", default_value_t = chaincrf_cws::DEFAULT_PRUNE_THRESHOLD)]
    prune: f32,
    /// Keep attributes seen at least this many times.
    #[arg(long, default_value_t = 2)]
    min_freq: u32,
    /// Turn off the training-lexicon features.
    #[arg(long)]
    no_lexicon: bool,
    /// Lexicon words must occur at least this often in the corpus.
    #[arg(long, default_value_t = 1)]
    lexicon_min_count: u32,
    /// Lexicon features of training sentences come from a lexicon without their own
    /// fold (this many folds; 0 = no jackknifing), so the model learns how far to trust
    /// the lexicon on words it has not seen.
    #[arg(long, default_value_t = 10)]
    lexicon_folds: usize,
    /// Save MODEL.checkpoint (exact weights and iteration count) every N iterations
    /// (epochs, for the CNN), atomically.
    #[arg(long, value_name = "N")]
    checkpoint_every: Option<u64>,
    /// Continue from MODEL.checkpoint; corpus and options must be the ones it was written with.
    #[arg(long)]
    resume: bool,
    /// Jackknife folds of every N-th sentence, or of consecutive sentences (an article's
    /// new words are then unseen by the other folds, as a new text's are).
    #[arg(long, value_enum, default_value = "interleaved")]
    fold_layout: FoldLayoutArg,
    /// Character clusters learned from the training text, for attributes that carry over
    /// to unseen bigrams (0 = none; 64 was best on held-out data, see docs/cws.md).
    #[arg(long, value_name = "N", default_value_t = 0)]
    clusters: usize,
    /// The character model alone (the default today): fastest to train (about 30 s on
    /// 199801.txt) and to segment. Says so explicitly; conflicts with --semi-markov,
    /// --clusters and --fold-layout.
    #[arg(long, conflicts_with_all = ["semi_markov", "clusters", "fold_layout"])]
    fast: bool,
    /// Then train a semi-Markov model on top: whole-word features (training-word counts,
    /// how often a string stands as a word, crossing words, first and last characters) and
    /// every character weight, jointly by L-BFGS (see docs/cws.md for what it buys).
    #[arg(long)]
    semi_markov: bool,
    /// With --semi-markov: the longest word considered (longer forced words still come out whole).
    #[arg(long, value_name = "L", default_value_t = 10, requires = "semi_markov")]
    max_word_len: usize,
    /// With --semi-markov: L-BFGS iterations of the joint training.
    #[arg(long, value_name = "N", default_value_t = 30, requires = "semi_markov")]
    semi_iterations: u64,
}

#[derive(Debug, ClapArgs)]
struct SegmentArgs {
    /// Model trained by `chaincrf cws train`.
    #[arg(long)]
    model: PathBuf,
    /// Input text, one sentence per line (default: standard input).
    input: Option<PathBuf>,
    /// Output file (default: standard output); written atomically.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Words that must always come out whole (one per line; further fields ignored).
    #[arg(long)]
    user_dict: Option<PathBuf>,
    /// Keep runs of Latin letters, digits and number punctuation unsplit.
    #[arg(long)]
    keep_latin: bool,
    /// Print each word as `word/probability` (its marginal probability).
    #[arg(long)]
    confidence: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Add a CNN model's scores to the feature model's (late fusion: WEIGHT · CNN + feature
    /// CRF, both trained with `cws train`, one with `--encoder cnn`). Best held-out F1 so far
    /// (docs/neural.md), at the CNN's speed (about 40x slower).
    #[arg(long, value_name = "CNN_MODEL")]
    add_cnn: Option<PathBuf>,
    /// The CNN's weight with --add-cnn (0.25 was best on the held-out part).
    #[arg(long, value_name = "WEIGHT", default_value_t = 0.25, requires = "add_cnn")]
    cnn_weight: f64,
}

#[derive(Debug, ClapArgs)]
struct EvalArgs {
    /// Gold segmentation (words separated by whitespace).
    #[arg(long)]
    gold: PathBuf,
    /// Predicted segmentation, same lines.
    #[arg(long)]
    pred: PathBuf,
    /// Training word list, for OOV rate, OOV recall and IV recall.
    #[arg(long)]
    dict: Option<PathBuf>,
}

/// Runs `chaincrf cws`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        CwsCommand::Train(a) => train(*a),
        CwsCommand::Segment(a) => segment(a),
        CwsCommand::Eval(a) => eval(a),
        CwsCommand::Export(a) => export(a),
    }
}

/// Peak resident memory of this process in bytes (Linux), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn train(a: TrainArgs) -> anyhow::Result<()> {
    if a.optimizer.print_help_params() {
        return Ok(());
    }
    let (Some(corpus), Some(model_path)) = (a.corpus.clone(), a.model.clone()) else {
        bail!("--corpus and --model are required");
    };
    if a.encoder == EncoderArg::Cnn {
        return train_cnn(a, corpus, model_path);
    }
    let opt = &a.optimizer;
    let params = opt.params(|p| chaincrf_cws::default_params(p.algorithm()))?;
    if opt.patience.is_some() && a.dev_every.is_none() {
        bail!("--patience needs a held-out part (--dev-every N)");
    }
    chaincrf_model::check_writable(&model_path).context("the model cannot be written (checked before training)")?;
    opt.check_outputs()?;
    let (fold_layout, clusters) = match a.fold_layout {
        _ if a.fast => (FoldLayout::Interleaved, 0),
        FoldLayoutArg::Contiguous => (FoldLayout::Contiguous, a.clusters),
        FoldLayoutArg::Interleaved => (FoldLayout::Interleaved, a.clusters),
    };
    // What identifies the run for --resume: the corpus and every option that
    // changes the features or the objective.
    let p = params.params();
    let options_text = format!(
        "cws format={:?} scheme={:?} algorithm={} c1={} c2={} dev_every={:?} min_freq={} no_lexicon={} \
         lexicon_min_count={} lexicon_folds={} minfreq={:?}{}",
        a.format,
        a.scheme,
        p.algorithm(),
        p.l1(),
        p.l2(),
        a.dev_every,
        a.min_freq,
        a.no_lexicon,
        a.lexicon_min_count,
        a.lexicon_folds,
        p.get("feature.minfreq"),
        // Said only when not the default, so that checkpoints written
        // before these options existed still resume.
        if (fold_layout, clusters) == (FoldLayout::Interleaved, 0) {
            String::new()
        } else {
            format!(" fold_layout={fold_layout:?} clusters={clusters}")
        },
    );
    // A --semi-markov run has two stages, checkpointed to the same file; a
    // checkpoint of the second stage carries its own fingerprint (the first
    // stage's options plus the word length), which is how --resume tells the
    // stages apart.
    let semi_options_text = format!("{options_text} semi-markov max_word_len={}", a.max_word_len);
    let mut checkpointer = Checkpointer::new(
        &model_path,
        a.checkpoint_every,
        a.resume,
        p.max_iterations_or_default(),
        vec![corpus.clone()],
        options_text,
    )?;
    let mut semi_checkpointer = if a.semi_markov {
        Some(
            Checkpointer::new(
                &model_path,
                a.checkpoint_every,
                a.resume,
                Some(a.semi_iterations),
                vec![corpus.clone()],
                semi_options_text,
            )?
            .with_limit_flag("--semi-iterations"),
        )
    } else {
        None
    };
    // The checkpoint to resume from, and whether the semi-Markov stage wrote it.
    let resume = if a.resume {
        let mut fingerprints = vec![checkpointer.fingerprint()?];
        if let Some(semi) = &semi_checkpointer {
            fingerprints.push(semi.fingerprint()?);
        }
        let (c, stage) = load_for_resume_any(&model_path, &fingerprints)?;
        // The file on disk is this run's starting point until it writes a newer one.
        let in_semi_stage = stage == 1;
        match &mut semi_checkpointer {
            Some(semi) if in_semi_stage => semi.last_saved = Some(c.iteration),
            _ => checkpointer.last_saved = Some(c.iteration),
        }
        Some((c, in_semi_stage))
    } else {
        None
    };
    let started = Instant::now();
    let sentences = read_training_corpus(&corpus, a.format)?;
    let mut options = CwsTrainOptions {
        scheme: scheme_of(a.scheme),
        dev_every: a.dev_every,
        min_freq: a.min_freq,
        lexicon_min_count: a.lexicon_min_count,
        lexicon_folds: a.lexicon_folds,
        fold_layout,
        char_clusters: clusters,
        prune_threshold: a.prune,
        params: params.clone(),
        threads: opt.threads.unwrap_or(0),
        patience: opt.patience,
        ..CwsTrainOptions::default()
    };
    options.ngram.lexicon_features = !a.no_lexicon;
    note!(
        "read {} sentences from {} in {:.1}s",
        sentences.len(),
        corpus.display(),
        started.elapsed().as_secs_f64()
    );
    let mut printer = ProgressPrinter::new(opt.progress_jsonl.as_deref())?;
    let stop = install_stop_flag()?;
    // Whether the run got to the semi-Markov stage (so which checkpointer
    // speaks for an interrupt).
    let mut reached_semi_stage = matches!(resume, Some((_, true)));
    let trained = if let Some(semi_checkpointer) = &mut semi_checkpointer {
        let semi = SemiOptions {
            max_len: a.max_word_len,
            max_iterations: a.semi_iterations,
            patience: opt.patience,
            ..SemiOptions::default()
        };
        note!("training the character model, then the semi-Markov model (held-out figures: word F1)");
        let from = resume.as_ref().map(|(c, in_semi)| match in_semi {
            true => SemiResume::Semi(c),
            false => SemiResume::Character(c),
        });
        let (trained, semi_report) =
            train_semi_segmenter_with(&sentences, &options, &semi, from, Some(stop), &mut |stage, p| {
                printer.event(p);
                match stage {
                    SemiStage::Character => {
                        if checkpointer.wants(p) {
                            checkpointer.save(p);
                        }
                    }
                    SemiStage::Semi { character } => {
                        reached_semi_stage = true;
                        if semi_checkpointer.wants(p) {
                            let chain_weights = p.weights()[..character.layout().len()].to_vec();
                            semi_checkpointer.save_with(p, || Ok((chain_weights, character.clone())));
                        }
                    }
                }
            })?;
        if trained.report != semi_report {
            note!("character model: {}", trained.report);
        }
        CwsTrained {
            report: semi_report,
            ..trained
        }
    } else {
        let from = resume.as_ref().map(|(c, _)| c);
        train_segmenter_with(&sentences, &options, from, Some(stop), &mut |p| {
            printer.event(p);
            if checkpointer.wants(p) {
                checkpointer.save(p);
            }
        })?
    };
    printer.finish();
    drop(resume);
    let bytes = chaincrf_model::save(&trained.model, &model_path)?;
    let report = &trained.report;
    note!("{report}");
    if report.best_heldout.is_some() {
        note!("held out {} sentences", trained.dev_sentences);
    }
    note!(
        "trained on {} sentences in {:.1}s; peak memory {}; model {} ({} bytes)",
        trained.train_sentences,
        started.elapsed().as_secs_f64(),
        peak_rss_bytes().map_or("unknown".into(), |b| format!("{:.0} MiB", b as f64 / 1048576.0)),
        model_path.display(),
        bytes
    );
    if let Some(path) = &opt.summary_json {
        write_summary(
            path,
            report,
            serde_json::json!({
                "train_sentences": trained.train_sentences,
                "dev_sentences": trained.dev_sentences,
            }),
        )?;
    }
    if let Termination::Interrupted {
        after,
        during_warm_start,
    } = report.termination
    {
        match &semi_checkpointer {
            Some(semi) if reached_semi_stage => semi.report_interrupt(&model_path, after, false),
            _ => checkpointer.report_interrupt(&model_path, after, during_warm_start),
        }
        return Err(Interrupted.into());
    }
    match &semi_checkpointer {
        Some(semi) => semi.finish(&report.termination, report.iterations),
        None => checkpointer.finish(&report.termination, report.iterations),
    }
    Ok(())
}

fn scheme_of(s: SchemeArg) -> TagScheme {
    match s {
        SchemeArg::Bmes => TagScheme::Bmes,
        SchemeArg::SixTag => TagScheme::SixTag,
    }
}

fn read_training_corpus(corpus: &std::path::Path, format: Option<FormatArg>) -> anyhow::Result<Vec<Sentence>> {
    let sentences = match format {
        Some(FormatArg::Pku) => read_corpus_as(corpus, CorpusFormat::Pku)?,
        Some(FormatArg::Sighan) => read_corpus_as(corpus, CorpusFormat::Sighan)?,
        None => read_corpus(corpus)?.1,
    };
    if sentences.iter().all(|s| s.is_empty()) {
        bail!("{}: no sentences to train on", corpus.display());
    }
    Ok(sentences)
}

/// `cws train --encoder cnn`: the shared flags that apply, then the CNN run.
fn train_cnn(a: TrainArgs, corpus: PathBuf, model_path: PathBuf) -> anyhow::Result<()> {
    let o = &a.optimizer;
    if !o.set.is_empty()
        || o.c1.is_some()
        || o.c2.is_some()
        || o.max_iterations.is_some()
        || o.epsilon.is_some()
        || o.delta.is_some()
        || o.period.is_some()
        || o.sgd_epochs.is_some()
        || o.progress_jsonl.is_some()
        || o.summary_json.is_some()
    {
        bail!("--encoder cnn trains with Adam: the feature CRF's optimizer flags do not apply (see the CNN flags in --help)");
    }
    if a.clusters != 0 || a.fold_layout != FoldLayoutArg::Interleaved {
        bail!("--clusters and --fold-layout are the feature CRF's; --encoder cnn has no lexicon folds or cluster attributes");
    }
    if o.patience.is_some() && a.dev_every.is_none() {
        bail!("--patience needs a held-out part (--dev-every N)");
    }
    if o.patience == Some(0) {
        bail!("--patience must be at least 1");
    }
    if let Some(n) = o.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        // candle sizes its matrix products by the variable rayon reads; set it
        // before any pool starts.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    chaincrf_model::check_writable(&model_path).context("the model cannot be written (checked before training)")?;
    let started = Instant::now();
    let sentences = read_training_corpus(&corpus, a.format)?;
    note!(
        "read {} sentences from {} in {:.1}s",
        sentences.len(),
        corpus.display(),
        started.elapsed().as_secs_f64()
    );
    super::cws_cnn::train(
        &a.cnn,
        super::cws_cnn::CnnRun {
            corpus,
            model: model_path,
            sentences,
            scheme: scheme_of(a.scheme),
            dev_every: a.dev_every,
            patience: o.patience,
            checkpoint_every: a.checkpoint_every,
            resume: a.resume,
        },
    )
}

/// Reads lines of raw text as bytes, so that invalid UTF-8 is reported with
/// its line and byte offset rather than by a generic I/O error.
fn read_line(reader: &mut dyn BufRead, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    buf.clear();
    Ok(reader.read_until(b'\n', buf)? > 0)
}

fn segment(a: SegmentArgs) -> anyhow::Result<()> {
    if let Some(p) = &a.output {
        // Before loading the model and segmenting everything, not at the final rename.
        chaincrf_model::check_writable(p).with_context(|| format!("{}: cannot write", p.display()))?;
    }
    let load_start = Instant::now();
    let mut seg = chaincrf_cws_cnn::load_segmenter(&a.model)?;
    if let Some(cnn_path) = &a.add_cnn {
        let cnn = chaincrf_model::load(cnn_path)?;
        seg = chaincrf_cws_cnn::fused_segmenter(&seg, &cnn, a.cnn_weight)
            .with_context(|| format!("--add-cnn {} with --model {}", cnn_path.display(), a.model.display()))?;
    }
    let mut seg = seg.keep_latin_runs(a.keep_latin);
    if let Some(d) = &a.user_dict {
        seg = seg.with_user_dict(UserDict::load(d)?);
    }
    let load_secs = load_start.elapsed().as_secs_f64();
    if a.add_cnn.is_none() && !seg.has_compiled_tables() && !seg.model().attributes().is_empty() {
        note!(
            "{}: no usable n-gram inventory in this model (written by an older chaincrf, templates longer \
             than three characters, or an inventory that does not cover the model): segmenting on the \
             generic path, with the same weights, about 3x slower",
            a.model.display()
        );
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads.unwrap_or(0))
        .build()?;
    let mut input = super::open_input(a.input.as_deref())?;
    let name = input.name.clone();
    // Output goes to a temporary file renamed at the end, so a failure leaves no half-written file.
    let (mut out, tmp_path): (Box<dyn Write>, Option<PathBuf>) = match &a.output {
        Some(p) => {
            let tmp = chaincrf_model::temp_path(p);
            let f = std::fs::File::create(&tmp).with_context(|| format!("{}: cannot write", p.display()))?;
            (Box::new(std::io::BufWriter::with_capacity(1 << 16, f)), Some(tmp))
        }
        None => (
            Box::new(std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock())),
            None,
        ),
    };
    let segmenting = std::time::Instant::now();
    let result = (|| -> anyhow::Result<(usize, usize)> {
        // Lines are read into one buffer per batch, segmented in chunks of
        // CHUNK lines (one task, one output string and reused word buffers
        // each: nothing is allocated per line), and written in input order.
        const BATCH: usize = 2048;
        const CHUNK: usize = 64;
        let mut line_no = 0usize;
        let mut chars = 0usize;
        let mut buf = Vec::new();
        let mut text = String::new();
        let mut lines: Vec<std::ops::Range<usize>> = Vec::with_capacity(BATCH);
        loop {
            text.clear();
            lines.clear();
            while lines.len() < BATCH
                && read_line(&mut *input.reader, &mut buf).with_context(|| format!("{name}: read error"))?
            {
                line_no += 1;
                while buf.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
                    buf.pop();
                }
                // Offsets in messages count the line's raw bytes (a BOM included), 0-based.
                let skip = if line_no == 1 && buf.starts_with(&[0xEF, 0xBB, 0xBF]) {
                    3
                } else {
                    0
                };
                let bytes = &buf[skip..];
                if let Some(pos) = bytes.iter().position(|&b| b == 0) {
                    bail!(
                        "{name}:{line_no}: NUL byte at byte offset {} of the line (0-based); is this a binary or UTF-16 file?",
                        pos + skip
                    );
                }
                let line = std::str::from_utf8(bytes).map_err(|e| {
                    anyhow::anyhow!(
                        "{name}:{line_no}: invalid UTF-8 at byte offset {} of the line (0-based)",
                        e.valid_up_to() + skip
                    )
                })?;
                chars += line.chars().count();
                let start = text.len();
                text.push_str(line);
                lines.push(start..text.len());
            }
            if lines.is_empty() {
                break;
            }
            let confidence = a.confidence;
            let text = &text;
            let outputs: Vec<String> = pool.install(|| {
                lines
                    .par_chunks(CHUNK)
                    .map_init(
                        || (seg.session(), Vec::new()),
                        |(session, words), chunk| -> anyhow::Result<String> {
                            let bytes = chunk.last().map_or(0, |l| l.end) - chunk.first().map_or(0, |l| l.start);
                            let mut s = String::with_capacity(bytes + bytes / 2 + chunk.len());
                            for range in chunk {
                                session.write_line(&text[range.clone()], confidence, words, &mut s)?;
                            }
                            Ok(s)
                        },
                    )
                    .collect::<anyhow::Result<Vec<String>>>()
            })?;
            for o in &outputs {
                out.write_all(o.as_bytes())?;
            }
            if input.is_stdin {
                out.flush()?;
            }
        }
        out.flush()?;
        Ok((line_no, chars))
    })();
    drop(out);
    match (result, &tmp_path, &a.output) {
        (Ok((lines, chars)), Some(tmp), Some(dest)) => {
            std::fs::rename(tmp, dest).with_context(|| format!("{}: cannot write", dest.display()))?;
            let secs = segmenting.elapsed().as_secs_f64();
            note!(
                "segmented {lines} lines ({chars} characters) into {} in {secs:.3}s ({:.0} characters/s); \
                 model loaded in {load_secs:.3}s",
                dest.display(),
                chars as f64 / secs.max(1e-9)
            );
            Ok(())
        }
        (Ok(_), _, _) => Ok(()),
        (Err(e), tmp, _) => {
            if let Some(tmp) = tmp {
                let _ = std::fs::remove_file(tmp);
            }
            Err(e)
        }
    }
}

fn eval(a: EvalArgs) -> anyhow::Result<()> {
    let words = match &a.dict {
        Some(d) => Some(chaincrf_cws::read_word_list(d)?),
        None => None,
    };
    let score = chaincrf_cws::score_files(
        &a.gold,
        &a.pred,
        words.as_ref().map(|w| w as &dyn chaincrf_cws::WordSet),
    )?;
    println!("{}", score.report());
    Ok(())
}

fn export(a: ExportArgs) -> anyhow::Result<()> {
    use chaincrf_features::FeatureExtractor as _;
    let sentences = read_corpus(&a.corpus)?.1;
    let scheme = match a.scheme {
        SchemeArg::Bmes => TagScheme::Bmes,
        SchemeArg::SixTag => TagScheme::SixTag,
    };
    let held = |i: usize, n: Option<usize>| chaincrf_cws::is_held_out(i, n);
    // The lexicon is built from the training part only, as `cws train` does.
    let train_part: Vec<_> = sentences
        .iter()
        .enumerate()
        .filter(|(i, _)| !held(*i, a.skip_every.or(a.only_every)))
        .map(|(_, s)| s.clone())
        .collect();
    let ngram = chaincrf_cws::NgramConfig {
        lexicon_features: !a.no_lexicon,
        ..chaincrf_cws::NgramConfig::default()
    };
    let lexicon = ngram
        .lexicon_features
        .then(|| std::sync::Arc::new(chaincrf_cws::Lexicon::from_sentences(&train_part)));
    let config = chaincrf_cws::CwsModelConfig {
        scheme,
        ngram,
        lexicon,
        clusters: None,
    };
    let extractor = config.extractor()?;
    let mut out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("{}: cannot write", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let labels = scheme.labels();
    for (i, s) in sentences.iter().enumerate() {
        if s.is_empty() || a.only_every.is_some_and(|_| !held(i, a.only_every)) || held(i, a.skip_every) {
            continue;
        }
        let chars = chaincrf_cws::normalize(&s.concat());
        let tags = scheme.tags_from_words(s);
        for (t, &tag) in tags.iter().enumerate() {
            let mut names = Vec::new();
            extractor.extract(&chars[..], t, &mut |attr| {
                names.push(format!("{:016x}", attr.key.key()))
            });
            chaincrf_features::write_crfsuite_item(
                &mut out,
                labels[tag as usize],
                names.iter().map(|n| (n.as_str(), 1.0)),
            )?;
        }
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
