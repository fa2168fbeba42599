//! Real-data tests: CRF++'s four shipped examples train unchanged and reach
//! CRF++'s own test accuracy, and a POS tagger trained from CRFsuite attribute
//! data on the PKU corpus reaches a sensible accuracy.
//!
//! The data lives outside the repository; the tests read the folder named by
//! `CHAINCRF_DATA` (`.ci/run` sets it to `../shared/data`) and skip, saying
//! why, when it is not set. These are the tests that show a CRF++ or CRFsuite
//! user can switch: same files in, same objective, same accuracy out.

mod common;
use chaincrf_features::write_crfsuite_item;
use common::scratch;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_chaincrf");

fn data_dir() -> Option<PathBuf> {
    match std::env::var_os("CHAINCRF_DATA") {
        Some(d) if Path::new(&d).is_dir() => Some(PathBuf::from(d)),
        Some(d) => {
            eprintln!("skipping: CHAINCRF_DATA={} is not a directory", Path::new(&d).display());
            None
        }
        None => {
            eprintln!("skipping: CHAINCRF_DATA is not set (.ci/run sets it to ../shared/data)");
            None
        }
    }
}

fn run(args: &[&str]) -> Output {
    let o = Command::new(BIN).args(args).output().expect("run chaincrf");
    assert!(
        o.status.success(),
        "chaincrf {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Token accuracy of tagged output: gold and predicted are the last two columns.
fn token_accuracy(tagged: &[u8]) -> f64 {
    let text = String::from_utf8_lossy(tagged);
    let (mut right, mut total) = (0usize, 0usize);
    for line in text.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() >= 2 {
            total += 1;
            right += usize::from(cols[cols.len() - 2] == cols[cols.len() - 1]);
        }
    }
    assert!(total > 0, "no tagged tokens");
    right as f64 / total as f64
}

fn summary(p: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(p).expect("summary JSON");
    serde_json::from_str(&text).expect("valid summary JSON")
}

#[test]
fn crfpp_examples_reach_crfpp_accuracy() {
    let Some(data) = data_dir() else { return };
    let dir = scratch("crfpp");
    // (example, CRF++ 0.59 test token accuracy, CRF++ final objective), from the README there.
    let examples = [
        ("chunking", 0.8952, 94.599),
        ("basenp", 0.9409, 38.212),
        ("JapaneseNE", 0.9595, 66.813),
        ("seg", 0.8226, 63.383),
    ];
    let mut failures = Vec::new();
    for (name, crfpp_accuracy, crfpp_objective) in examples {
        let ex = data.join("crfpp-examples").join(name);
        let model = dir.join(format!("{name}.model"));
        let json = dir.join(format!("{name}.json"));
        // `crf_learn -c 4.0` is c2 = 1/(2·4) with every attribute × label pair.
        run(&[
            "train",
            "--template",
            path(&ex.join("template")),
            "--c2",
            "0.125",
            "--feature-pairs",
            "all",
            "--summary-json",
            path(&json),
            "--model",
            path(&model),
            path(&ex.join("train.data")),
        ]);
        let tagged = run(&["tag", "--model", path(&model), path(&ex.join("test.data"))]);
        let accuracy = token_accuracy(&tagged.stdout);
        let s = summary(&json);
        let objective = s["final_objective"].as_f64().unwrap_or(f64::NAN);
        eprintln!(
            "{name:<11} accuracy {accuracy:.4} (CRF++ {crfpp_accuracy:.4})  objective {objective:.3} (CRF++ {crfpp_objective:.3})  features {}  iterations {}",
            s["features"], s["iterations"]
        );
        if accuracy < crfpp_accuracy - 0.005 {
            failures.push(format!(
                "{name}: accuracy {accuracy:.4} < CRF++'s {crfpp_accuracy:.4} - 0.005"
            ));
        }
        // Same objective: the optimum should match CRF++'s to well under 1%.
        if (objective - crfpp_objective).abs() > 0.01 * crfpp_objective {
            failures.push(format!(
                "{name}: objective {objective:.3} far from CRF++'s {crfpp_objective:.3}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Writes sentences of `word/POS` tokens as CRFsuite attribute data with simple word features.
fn write_pos_features(sentences: &[Vec<(String, String)>], out: &Path) {
    let mut w = BufWriter::new(std::fs::File::create(out).expect("create feature file"));
    let mut attrs: Vec<String> = Vec::new();
    for s in sentences {
        let word = |i: isize| -> &str {
            if i < 0 {
                "<s>"
            } else {
                s.get(i as usize).map_or("</s>", |(w, _)| w.as_str())
            }
        };
        for (t, (form, pos)) in s.iter().enumerate() {
            let t = t as isize;
            let chars: Vec<char> = form.chars().collect();
            let first: String = chars.iter().take(1).collect();
            let last: String = chars.iter().rev().take(1).collect();
            let last2: String = chars.iter().skip(chars.len().saturating_sub(2)).collect();
            attrs.clear();
            attrs.push(format!("w={form}"));
            attrs.push(format!("w-1={}", word(t - 1)));
            attrs.push(format!("w+1={}", word(t + 1)));
            attrs.push(format!("w-2={}", word(t - 2)));
            attrs.push(format!("w+2={}", word(t + 2)));
            attrs.push(format!("pre1={first}"));
            attrs.push(format!("suf1={last}"));
            attrs.push(format!("suf2={last2}"));
            attrs.push(format!("len={}", chars.len().min(5)));
            attrs.push(format!("w-1|w={}|{form}", word(t - 1)));
            attrs.push(format!("w|w+1={form}|{}", word(t + 1)));
            write_crfsuite_item(&mut w, pos, attrs.iter().map(|a| (a.as_str(), 1.0))).expect("write item");
        }
        w.write_all(b"\n").expect("write");
    }
    w.flush().expect("flush");
}

#[test]
fn pos_tagging_on_pku() {
    let Some(data) = data_dir() else { return };
    let file = data.join("pku-199801").join("199801.txt");
    let reader = BufReader::new(std::fs::File::open(&file).expect("open 199801.txt"));
    let mut sentences: Vec<Vec<(String, String)>> = Vec::new();
    for line in reader.lines() {
        let line = line.expect("read 199801.txt");
        let tokens: Vec<(String, String)> = line
            .split_whitespace()
            .filter_map(|tok| tok.rsplit_once('/'))
            .map(|(w, p)| (w.to_owned(), p.to_owned()))
            .collect();
        if !tokens.is_empty() {
            sentences.push(tokens);
        }
        if sentences.len() == 3500 {
            break;
        }
    }
    assert_eq!(sentences.len(), 3500);
    let dir = scratch("pos");
    let (train, test) = (dir.join("train.crfsuite"), dir.join("test.crfsuite"));
    write_pos_features(&sentences[..3000], &train);
    write_pos_features(&sentences[3000..], &test);
    let model = dir.join("pos.model");
    let json = dir.join("pos.json");
    let started = std::time::Instant::now();
    // 41 labels make each pass costly; 40 iterations keep the test near 30 s.
    run(&[
        "train",
        "--format",
        "crfsuite",
        "--c2",
        "1",
        "--min-freq",
        "2",
        "--max-iterations",
        "40",
        "--summary-json",
        path(&json),
        "--model",
        path(&model),
        path(&train),
    ]);
    let tagged = run(&["tag", "--model", path(&model), "--reference", path(&test)]);
    let accuracy = token_accuracy(&tagged.stdout);
    let s = summary(&json);
    eprintln!(
        "PKU POS: token accuracy {accuracy:.4} on 500 sentences, objective {:.1}, {} features, {} iterations, {:.1}s",
        s["final_objective"].as_f64().unwrap_or(f64::NAN),
        s["features"],
        s["iterations"],
        started.elapsed().as_secs_f64()
    );
    assert!(accuracy > 0.88, "POS accuracy {accuracy:.4}");
}
