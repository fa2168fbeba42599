//! Both kinds of emissions together, by late fusion: a segmenter whose
//! emission scores are `weight · CNN + feature CRF` and whose transition,
//! start and end scores are the same weighted sum of the two models', scored
//! on the held-out part for a few weights (0 = the feature CRF alone).
//!
//! Both models must have been trained with the same held-out part (`--dev-every
//! 20`), so the held-out sentences are new to both:
//!
//! ```sh
//! cargo run --release -p chaincrf-cws-cnn --example combine -- \
//!     pku-cnn.model pku.model ../shared/data/pku-199801/199801.txt 20
//! ```
//!
//! With two more arguments (the raw test text and its gold segmentation) each
//! weight is also scored on the test set. The weight is chosen on the same
//! held-out part it is scored on, so the best held-out figure is slightly
//! optimistic.

use chaincrf_cws::{read_corpus, Scorer, Segmenter};
use chaincrf_cws_cnn::fused_segmenter;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cnn_path, feature_path, corpus, every, test) = match &args[..] {
        [c, f, corpus, every] => (c, f, corpus, every, None),
        [c, f, corpus, every, raw, gold] => (c, f, corpus, every, Some((raw, gold))),
        _ => return Err("usage: combine CNN.model FEATURE.model CORPUS DEV_EVERY [TEST_RAW TEST_GOLD]".into()),
    };
    let every: usize = every.parse()?;
    let cnn = chaincrf_model::load(std::path::Path::new(cnn_path))?;
    let feature_seg = Segmenter::load(feature_path)?;
    let (_, sentences) = read_corpus(corpus)?;
    let dev: Vec<_> = sentences
        .iter()
        .enumerate()
        .filter(|(i, s)| i % every == every - 1 && !s.is_empty())
        .map(|(_, s)| s)
        .collect();
    for weight in [0.0, 0.25, 0.5, 0.75, 1.0, 1.5] {
        let seg = fused_segmenter(&feature_seg, &cnn, weight)?;
        let mut score = Scorer::new(None);
        for s in &dev {
            let text = s.concat();
            score.add_line(&s.join(" "), &seg.words(&text)?.join(" "))?;
        }
        print!("weight {weight:4}: held-out F1 {:.4}", score.score().f1);
        if let Some((raw, gold)) = test {
            let (raw, gold) = (chaincrf_cws::read_raw(raw)?, chaincrf_cws::read_raw(gold)?);
            let mut score = Scorer::new(None);
            for (line, g) in raw.iter().zip(&gold) {
                score.add_line(g, &seg.words(line)?.join(" "))?;
            }
            print!(", test F1 {:.4}", score.score().f1);
        }
        println!();
    }
    Ok(())
}
