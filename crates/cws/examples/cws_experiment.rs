//! Tuning harness for the segmenter: trains on `199801.txt` with every N-th
//! sentence held out, then scores held-out F1 (and, with `TEST=1`, the Bakeoff
//! PKU test set). Settings come from environment variables so that each row of
//! `docs/cws.md` is one command line.
//!
//! `CHAINCRF_DATA=../shared/data C2=1 LEXICON=1 cargo run --release -p chaincrf-cws --example cws_experiment`
//!
//! `DEFAULTS=1` starts from the library's defaults instead (then `C2`, `MAXIT`,
//! `SGD`, `FOLDS`, `MINFREQ`, `LEXMIN`, `CLUSTERS`, `CONTIGUOUS` and `EXTRA`
//! still apply); `BLOCK=10` also holds out the corpus's last 10% as one block
//! (scored with OOV recall; `BLOCK_OUT=prefix` writes its gold, output and
//! training word list).

use chaincrf_cws::*;
use std::time::Instant;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(std::env::var("CHAINCRF_DATA").unwrap_or_else(|_| "../shared/data".into()));
    let (_, sentences) = read_corpus(dir.join("pku-199801/199801.txt"))?;
    let dev_every: usize = env("DEV_EVERY", 20);
    let limit: usize = env("LIMIT", usize::MAX);
    let mut sentences: Vec<_> = sentences.into_iter().take(limit).collect();
    // BLOCK=P: also hold out the last P% of the corpus as one contiguous block
    // (later days of the month, so more unseen names and words, as in the
    // Bakeoff test set); it is scored after the interleaved held-out part.
    let block_percent: usize = env("BLOCK", 0);
    let block: Vec<Sentence> = if block_percent > 0 {
        let keep = sentences.len() * (100 - block_percent.min(99)) / 100;
        sentences.split_off(keep)
    } else {
        Vec::new()
    };
    // The library default is LEXICON=1 FOLDS=10 MINFREQ=2 SGD=10 MAXIT=20 PRUNE=0.01; this harness
    // starts from the plain settings so each row of docs/cws.md adds one step.
    let mut ngram = NgramConfig {
        lexicon_features: env("LEXICON", 0) == 1,
        char_classes: env("CLASSES", 1) == 1,
        ..NgramConfig::default()
    };
    // EXTRA="-1,0,1;0,1,2": more n-gram templates (offsets separated by
    // commas, templates by semicolons); the window grows to cover them.
    let extra: String = env("EXTRA", String::new());
    for template in extra.split(';').filter(|t| !t.trim().is_empty()) {
        let offsets: Vec<i32> = template
            .split(',')
            .map(|o| o.trim().parse())
            .collect::<std::result::Result<_, _>>()?;
        ngram.window = ngram
            .window
            .max(offsets.iter().map(|o| o.unsigned_abs() as usize).max().unwrap_or(0));
        ngram.templates.push(offsets);
    }
    // CONTIGUOUS=1: jackknife folds of consecutive sentences.
    let fold_layout = if env("CONTIGUOUS", 0) == 1 {
        FoldLayout::Contiguous
    } else {
        FoldLayout::Interleaved
    };
    // CLUSTERS=N: character-cluster attributes (N clusters).
    let opts = CwsTrainOptions {
        scheme: if env("SIXTAG", 0) == 1 {
            TagScheme::SixTag
        } else {
            TagScheme::Bmes
        },
        ngram,
        lexicon_min_count: env("LEXMIN", 1),
        min_freq: env("MINFREQ", 1),
        lexicon_folds: env("FOLDS", 0),
        dev_every: if dev_every > 0 { Some(dev_every) } else { None },
        prune_threshold: env("PRUNE", 0.0),
        params: chaincrf_train::Params::new(chaincrf_train::Algorithm::Lbfgs)
            .sgd_epochs(env("SGD", 0))
            .c2(env("C2", 1.0))
            .c1(env("C1", 0.0))
            .max_iterations(std::env::var("MAXIT").ok().and_then(|v| v.parse().ok()))
            .check()?,
        threads: env("THREADS", 2),
        char_clusters: env("CLUSTERS", 0),
        fold_layout,
        ..CwsTrainOptions::default()
    };
    // DEFAULTS=1: the library's default configuration instead.
    let opts = if env("DEFAULTS", 0) == 1 {
        let defaults = CwsTrainOptions::default();
        CwsTrainOptions {
            dev_every: opts.dev_every,
            threads: opts.threads,
            ngram: NgramConfig {
                lexicon_features: true,
                ..opts.ngram.clone()
            },
            params: defaults
                .params
                .params()
                .clone()
                .c2(env("C2", 1.0))
                .max_iterations(Some(env("MAXIT", chaincrf_cws::DEFAULT_MAX_ITERATIONS)))
                .sgd_epochs(env("SGD", chaincrf_cws::DEFAULT_SGD_EPOCHS))
                .check()?,
            lexicon_folds: env("FOLDS", defaults.lexicon_folds),
            char_clusters: env("CLUSTERS", defaults.char_clusters),
            fold_layout,
            min_freq: env("MINFREQ", defaults.min_freq),
            lexicon_min_count: env("LEXMIN", defaults.lexicon_min_count),
            ..defaults
        }
    } else {
        opts
    };
    let t0 = Instant::now();
    let mut progress = |p: &chaincrf_train::Progress<'_>| {
        eprintln!(
            "iter {:3} loss {:.2} |g| {:.3e} active {} evals {} {:.1}s dev-acc {:.4}",
            p.iteration,
            p.objective,
            p.gradient_norm.unwrap_or(f64::NAN),
            p.active_features,
            p.evaluations,
            p.seconds,
            p.heldout.unwrap_or(f64::NAN)
        );
    };
    // SEMI=1: the semi-Markov segmenter on top (SEMI_L, SEMI_MAXIT).
    let trained = if env("SEMI", 0) == 1 {
        let semi = SemiOptions {
            max_len: env("SEMI_L", 10),
            max_iterations: env("SEMI_MAXIT", 30),
            patience: None,
            freeze_characters: env("SEMI_FREEZE", 0) == 1,
            folds: 10,
        };
        let (trained, report) = train_semi_segmenter(&sentences, &opts, &semi, None, &mut progress)?;
        eprintln!("semi-Markov stage: {report}");
        trained
    } else {
        train_segmenter(&sentences, &opts, &mut progress)?
    };
    eprintln!("trained in {:.1}s: {}", t0.elapsed().as_secs_f64(), trained.report);
    let seg = Segmenter::from_model(trained.model)?;
    // Gold and segmented lines of some sentences.
    let gold_and_pred = |part: &[&Sentence]| -> Result<(Vec<String>, Vec<String>)> {
        let gold = part.iter().map(|s| s.join(" ")).collect();
        let pred = part
            .iter()
            .map(|s| seg.words(&s.concat()).map(|w| w.join(" ")))
            .collect::<Result<_>>()?;
        Ok((gold, pred))
    };
    // Held-out F1.
    let dev: Vec<&Sentence> = sentences
        .iter()
        .enumerate()
        .filter(|(i, _)| dev_every > 0 && i % dev_every == dev_every - 1)
        .map(|(_, s)| s)
        .collect();
    if !dev.is_empty() {
        let (gold, pred) = gold_and_pred(&dev)?;
        let score = score_lines(&gold, &pred, None)?;
        println!(
            "held-out ({} sentences): P {:.4} R {:.4} F1 {:.4}",
            dev.len(),
            score.precision,
            score.recall,
            score.f1
        );
    }
    if !block.is_empty() {
        let (gold, pred) = gold_and_pred(&block.iter().collect::<Vec<_>>())?;
        let mut words = std::collections::HashSet::new();
        for (i, s) in sentences.iter().enumerate() {
            if !(dev_every > 0 && i % dev_every == dev_every - 1) {
                words.extend(s.iter().cloned());
            }
        }
        if let Ok(path) = std::env::var("BLOCK_OUT") {
            std::fs::write(format!("{path}.gold"), gold.join("\n") + "\n")?;
            std::fs::write(format!("{path}.pred"), pred.join("\n") + "\n")?;
            let mut list: Vec<&String> = words.iter().collect();
            list.sort();
            std::fs::write(
                format!("{path}.words"),
                list.iter().map(|w| w.as_str()).collect::<Vec<_>>().join("\n") + "\n",
            )?;
        }
        let score = score_lines(&gold, &pred, Some(&words))?;
        println!(
            "held-out block ({} sentences): P {:.4} R {:.4} F1 {:.4} OOV rate {:.4} OOV recall {:.4}",
            block.len(),
            score.precision,
            score.recall,
            score.f1,
            score.oov_rate.unwrap_or(f64::NAN),
            score.oov_recall.unwrap_or(f64::NAN)
        );
    }
    if env("TEST", 0) == 1 {
        let raw = read_raw(dir.join("icwb2/pku_test.utf8"))?;
        let t = Instant::now();
        let mut session = seg.session();
        let mut pred = Vec::new();
        let mut chars = 0usize;
        for line in &raw {
            chars += line.chars().count();
            let words = session.segment(line, false)?;
            pred.push(
                words
                    .iter()
                    .map(|w| &line[w.span.clone()])
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
        let secs = t.elapsed().as_secs_f64();
        let gold = read_raw(dir.join("icwb2/pku_test_gold.utf8"))?;
        let words = read_word_list(dir.join("icwb2/pku_training_words.utf8"))?;
        let score = score_lines(&gold, &pred, Some(&words))?;
        println!("PKU test: {}", score.report().replace('\n', " | "));
        println!("segmentation: {:.0} chars/s", chars as f64 / secs);
    }
    if let Ok(path) = std::env::var("SAVE") {
        let bytes = chaincrf_model::save(seg.model(), std::path::Path::new(&path))?;
        println!("saved {path}: {bytes} bytes");
    }
    Ok(())
}
