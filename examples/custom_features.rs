//! A feature extractor written from scratch, trained and used for tagging.
//!
//! The input is a sentence of words; the task is to tag each word as a number
//! (`NUM`), a capitalized word (`CAP`) or anything else (`O`). The extractor
//! emits string attributes (the word, its suffix, its shape, the previous word)
//! and one real-valued attribute (the word length / 10), which is all a user has
//! to write: the dictionary, training (L-BFGS, parallel) and tagging come from
//! chaincrf.
//!
//! `cargo run --release --example custom_features`

use chaincrf::features::{Attr, FeatureExtractor};
use chaincrf::model::{ExtractorSpec, Model, Structure};
use chaincrf::train::{train, DatasetBuilder, LabelTarget, TrainParams};

/// Attributes of a word sentence; `Input = [&str]`.
struct WordFeatures;

impl FeatureExtractor for WordFeatures {
    type Input = [&'static str];

    fn len(&self, input: &Self::Input) -> usize {
        input.len()
    }

    fn extract(&self, input: &Self::Input, t: usize, sink: &mut dyn FnMut(Attr<'_>)) {
        let w = input[t];
        sink(Attr::state(&format!("w={}", w.to_lowercase())));
        let suffix: String = w.chars().rev().take(2).collect::<Vec<_>>().into_iter().rev().collect();
        sink(Attr::state(&format!("suf={suffix}")));
        // Word shape with repeats collapsed: "Paris" → "Aa", "1998" → "9".
        let mut shape = String::new();
        for c in w.chars() {
            let s = if c.is_ascii_digit() {
                '9'
            } else if c.is_uppercase() {
                'A'
            } else {
                'a'
            };
            if !shape.ends_with(s) {
                shape.push(s);
            }
        }
        sink(Attr::state(&format!("shape={shape}")));
        if t > 0 {
            sink(Attr::state(&format!("prev={}", input[t - 1].to_lowercase())));
        }
        sink(Attr::state("len").with_value(w.chars().count() as f64 / 10.0));
    }
}

fn label(w: &str) -> &'static str {
    if w.chars().all(|c| c.is_ascii_digit()) {
        "NUM"
    } else if w.chars().next().is_some_and(char::is_uppercase) {
        "CAP"
    } else {
        "O"
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let train_sents: Vec<Vec<&'static str>> = vec![
        vec!["Alice", "bought", "3", "apples", "in", "Paris"],
        vec!["the", "train", "left", "at", "7"],
        vec!["Bob", "and", "Carol", "met", "42", "friends"],
        vec!["in", "1998", "London", "had", "fog"],
        vec!["we", "saw", "12", "Dutch", "ships"],
    ];
    let mut builder = DatasetBuilder::new(true);
    for l in ["O", "CAP", "NUM"] {
        builder.labels_mut().intern(l);
    }
    for s in &train_sents {
        let gold = s.iter().map(|w| builder.labels_mut().intern(label(w))).collect();
        builder.add(&WordFeatures, &s[..], LabelTarget::Gold(gold))?;
    }
    let data = builder.finish(1);
    let structure = Structure {
        transitions: true,
        start_end: true,
        ..Structure::default()
    };
    let params = TrainParams::new().c2(0.1).threads(1);
    let outcome = train(&data, &structure, &params, None, &mut |it| {
        let p = it.progress;
        if p.iteration % 10 == 0 {
            println!("iteration {:3}: objective {:.4}", p.iteration, p.objective);
        }
        None
    })?;
    println!(
        "{} weights, {} iterations: {}",
        outcome.features, outcome.iterations, outcome.termination
    );
    let spec = ExtractorSpec::Custom {
        kind: "example/word-features".into(),
        payload: Vec::new(),
    };
    let model = Model::from_flat(
        data.labels.clone(),
        data.attributes.clone(),
        spec,
        structure,
        &outcome.weights,
    );

    let mut tagger = model.tagger();
    let test: Vec<&'static str> = vec!["Dave", "counted", "17", "boats", "near", "Oslo"];
    tagger.observe(&WordFeatures, &test[..]);
    let best = tagger.viterbi(None)?;
    let tags: Vec<&str> = best.labels.iter().map(|&y| model.labels.label(y as u32)).collect();
    for (w, t) in test.iter().zip(&tags) {
        println!("{w:>8}  {t}");
    }
    // Every core algorithm works on the trained model's potentials too.
    let three = tagger.nbest(3, None)?;
    println!(
        "3 best paths, scores: {:?}",
        three.iter().map(|p| p.score).collect::<Vec<_>>()
    );
    Ok(())
}
