//! Tuning harness for the segmenter: trains on `199801.txt` with every N-th
//! sentence held out, then scores held-out F1 (and, with `TEST=1`, the Bakeoff
//! PKU test set). Settings come from environment variables so that each row of
//! `docs/cws.md` is one command line.
//!
//! `CHAINCRF_DATA=../shared/data C2=1 LEXICON=1 cargo run --release -p chaincrf-cws --example cws_experiment`

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
    let sentences: Vec<_> = sentences.into_iter().take(limit).collect();
    // The library default is LEXICON=1 FOLDS=10 MINFREQ=2 SGD=10 MAXIT=20 PRUNE=0.01; this harness
    // starts from the plain settings so each row of docs/cws.md adds one step.
    let ngram = NgramConfig {
        lexicon_features: env("LEXICON", 0) == 1,
        char_classes: env("CLASSES", 1) == 1,
        ..NgramConfig::default()
    };
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
        ..CwsTrainOptions::default()
    };
    // DEFAULTS=1: the library's default configuration instead.
    let opts = if env("DEFAULTS", 0) == 1 {
        CwsTrainOptions {
            dev_every: opts.dev_every,
            threads: opts.threads,
            ..CwsTrainOptions::default()
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
    // Held-out F1.
    let dev: Vec<&Sentence> = sentences
        .iter()
        .enumerate()
        .filter(|(i, _)| dev_every > 0 && i % dev_every == dev_every - 1)
        .map(|(_, s)| s)
        .collect();
    if !dev.is_empty() {
        let gold: Vec<String> = dev.iter().map(|s| s.join(" ")).collect();
        let pred: Vec<String> = dev
            .iter()
            .map(|s| seg.words(&s.concat()).map(|w| w.join(" ")))
            .collect::<Result<_>>()?;
        let score = score_lines(&gold, &pred, None)?;
        println!(
            "held-out ({} sentences): P {:.4} R {:.4} F1 {:.4}",
            dev.len(),
            score.precision,
            score.recall,
            score.f1
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
