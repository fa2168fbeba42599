//! Experiment: a latent-variable CRF segmenter (each B/M/E/S tag split into
//! `H` hidden sub-tags, trained on partial labels: the gold tag says which
//! `H` labels are allowed, the sum over them is the likelihood). Scores the
//! interleaved held-out part and the last-10% block as `cws_experiment`
//! does with `BLOCK=10`.
//!
//! `CHAINCRF_DATA=../shared/data H=2 cargo run --release -p chaincrf-cws --example cws_latent`

use chaincrf_cws::*;
use chaincrf_features::LabelAlphabet;
use chaincrf_model::Structure;
use chaincrf_train::{DatasetBuilder, LabelTarget, Trainer};
use std::collections::HashSet;
use std::sync::Arc;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(std::env::var("CHAINCRF_DATA").unwrap_or_else(|_| "../shared/data".into()));
    let (_, mut sentences) = read_corpus(dir.join("pku-199801/199801.txt"))?;
    let block = sentences.split_off(sentences.len() * 90 / 100);
    let h: usize = env("H", 2);
    let folds = 10;
    let dev_every = 20;
    let (mut train, mut dev) = (Vec::new(), Vec::new());
    for (i, s) in sentences.iter().enumerate() {
        if s.is_empty() {
            continue;
        }
        if i % dev_every == dev_every - 1 {
            dev.push(s);
        } else {
            train.push(s);
        }
    }
    let lexicon_of = |keep: &dyn Fn(usize) -> bool| {
        let mut lex = Lexicon::default();
        for (_, s) in train.iter().enumerate().filter(|(i, _)| keep(*i)) {
            for w in s.iter() {
                lex.add(w, 1);
            }
        }
        Arc::new(lex)
    };
    let ngram = NgramConfig {
        lexicon_features: true,
        ..NgramConfig::default()
    };
    let config_of = |lexicon| CwsModelConfig {
        scheme: TagScheme::Bmes,
        ngram: ngram.clone(),
        lexicon: Some(lexicon),
        clusters: None,
    };
    let config = config_of(lexicon_of(&|_| true));
    let extractor = config.extractor()?;
    let fold_extractors: Vec<NgramExtractor> = (0..folds)
        .map(|f| config_of(lexicon_of(&|i| i % folds != f)).extractor())
        .collect::<Result<_>>()?;
    let scheme = TagScheme::Bmes;
    let names: Vec<String> = scheme
        .labels()
        .iter()
        .flat_map(|t| (0..h).map(move |j| format!("{t}{j}")))
        .collect();
    let k = names.len();
    let mut structure = Structure {
        transitions: true,
        start_end: true,
        ..Structure::default()
    };
    for i in 0..k {
        for j in 0..k {
            if !scheme.allowed_transition((i / h) as u32, (j / h) as u32) {
                structure.forbidden_transitions.push((i as u32, j as u32));
            }
        }
        if !scheme.allowed_start((i / h) as u32) {
            structure.forbidden_start.push(i as u32);
        }
        if !scheme.allowed_end((i / h) as u32) {
            structure.forbidden_end.push(i as u32);
        }
    }
    let mut builder = DatasetBuilder::new()
        .without_attribute_names()
        .labels(LabelAlphabet::from_labels(names.iter()))
        .min_count(2)
        .extractor(config.spec()?)
        .structure(structure);
    for (i, s) in train.iter().enumerate() {
        let chars = normalize(&s.concat());
        let allowed: Vec<Option<Vec<u32>>> = scheme
            .tags_from_words(s)
            .iter()
            .map(|&t| Some((0..h as u32).map(|j| t * h as u32 + j).collect()))
            .collect();
        builder.add_target(&fold_extractors[i % folds], &chars[..], LabelTarget::Partial(allowed))?;
    }
    drop(fold_extractors);
    let data = builder.build();
    let layout = data.layout();
    // Break the symmetry between sub-tags: small deterministic noise on
    // the state weights.
    let noise: f64 = env("NOISE", 0.01);
    let mut start = vec![0.0; layout.len()];
    for (i, w) in start[..layout.edge_offset()].iter_mut().enumerate() {
        let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
        *w = noise * ((x % 2001) as f64 / 1000.0 - 1.0);
    }
    let params = default_params(chaincrf_train::Algorithm::Lbfgs)
        .sgd_epochs(env("SGD", 10))
        .max_iterations(Some(env("MAXIT", 20)))
        .check()?;
    let t0 = std::time::Instant::now();
    let fitted = Trainer::new(params)
        .threads(2)
        .initial_weights(start)
        .observer(|p: &chaincrf_train::Progress<'_>| {
            eprintln!("iter {:3} loss {:.2} {:.1}s", p.iteration, p.objective, p.seconds)
        })
        .fit(&data)?;
    let (model, report) = fitted.into_parts();
    eprintln!("trained in {:.1}s: {report}", t0.elapsed().as_secs_f64());
    let mut tagger = model.tagger();
    let mut segment = |s: &Sentence| -> Result<String> {
        let text = s.concat();
        let chars: Vec<char> = text.chars().collect();
        let norm = normalize(&text);
        tagger.observe(&extractor, &norm[..]);
        let path = tagger.viterbi(None).map_err(|e| Error::Model(e.to_string()))?;
        let tags: Vec<u32> = path.labels.iter().map(|&l| (l / h) as u32).collect();
        Ok(scheme.words_from_tags(&chars, &tags).join(" "))
    };
    let gold: Vec<String> = dev.iter().map(|s| s.join(" ")).collect();
    let pred: Vec<String> = dev.iter().map(|s| segment(s)).collect::<Result<_>>()?;
    let score = score_lines(&gold, &pred, None)?;
    println!("held-out ({} sentences): F1 {:.4}", dev.len(), score.f1);
    let words: HashSet<String> = train.iter().flat_map(|s| s.iter().cloned()).collect();
    let gold: Vec<String> = block.iter().map(|s| s.join(" ")).collect();
    let pred: Vec<String> = block.iter().map(&mut segment).collect::<Result<_>>()?;
    let score = score_lines(&gold, &pred, Some(&words))?;
    println!(
        "held-out block ({} sentences): P {:.4} R {:.4} F1 {:.4} OOV recall {:.4}",
        block.len(),
        score.precision,
        score.recall,
        score.f1,
        score.oov_recall.unwrap_or(f64::NAN)
    );
    Ok(())
}
