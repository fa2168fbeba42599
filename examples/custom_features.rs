//! A feature extractor written from scratch, trained and used for tagging.
//!
//! Tag each word as a number (`NUM`), a capitalized word (`CAP`) or anything
//! else (`O`). The extractor emits string attributes (the word, its suffix,
//! its shape, the previous word) and one real-valued attribute (length / 10);
//! the dictionary, training (L-BFGS, parallel) and tagging come from chaincrf.
//!
//! `cargo run --release --example custom_features`

use chaincrf::features::{Attr, FeatureExtractor};
use chaincrf::train::{Algorithm, DatasetBuilder, Params, Trainer};

struct WordFeatures;

impl FeatureExtractor for WordFeatures {
    type Input = [&'static str];
    fn len(&self, input: &Self::Input) -> usize {
        input.len()
    }
    fn extract(&self, input: &Self::Input, t: usize, sink: &mut dyn FnMut(Attr<'_>)) {
        let w = input[t];
        sink(Attr::state(&format!("w={}", w.to_lowercase())));
        let suffix: String = w.chars().skip(w.chars().count().saturating_sub(2)).collect();
        sink(Attr::state(&format!("suf={suffix}")));
        // Word shape with repeats collapsed: "Paris" → "Aa", "1998" → "9".
        let mut shape = String::new();
        for c in w.chars().map(|c| {
            if c.is_ascii_digit() {
                '9'
            } else if c.is_uppercase() {
                'A'
            } else {
                'a'
            }
        }) {
            if !shape.ends_with(c) {
                shape.push(c);
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
    match w.chars().next() {
        _ if w.chars().all(|c| c.is_ascii_digit()) => "NUM",
        Some(c) if c.is_uppercase() => "CAP",
        _ => "O",
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sentences: [&[&'static str]; 5] = [
        &["Alice", "bought", "3", "apples", "in", "Paris"],
        &["the", "train", "left", "at", "7"],
        &["Bob", "and", "Carol", "met", "42", "friends"],
        &["in", "1998", "London", "had", "fog"],
        &["we", "saw", "12", "Dutch", "ships"],
    ];
    let mut data = DatasetBuilder::new();
    for s in sentences {
        data.add(&WordFeatures, s, &s.iter().map(|w| label(w)).collect::<Vec<_>>())?;
    }
    let params = Params::new(Algorithm::Lbfgs).c2(0.1).check()?;
    let fitted = Trainer::new(params)
        .observer(|p| println!("iteration {:3}: objective {:.4}", p.iteration, p.objective))
        .fit(&data.build())?;
    println!("{}", fitted.report());

    let test = ["Dave", "counted", "17", "boats", "near", "Oslo"];
    let mut tagger = fitted.model().tagger();
    for (w, t) in test.iter().zip(tagger.tag(&WordFeatures, &test[..])?) {
        println!("{w:>8}  {t}");
    }
    Ok(())
}
