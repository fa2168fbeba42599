//! Accuracy against python-crfsuite: each of CRFsuite's five algorithms,
//! trained here on CRF++'s chunking sample with the sample's own template,
//! tags the test file within half a point of token accuracy of
//! python-crfsuite's same algorithm on the same attributes (recorded by
//! `scripts/crfsuite_reference.py` in `tests/crfsuite_reference.json`). For
//! `ap`, `pa` and `arow`, whose result depends on the visiting order, the
//! means over as many shuffled orders as the record has are compared.
//!
//! Needs the shared data (`CHAINCRF_DATA`); skips with a message otherwise.
//! Run it in release mode (a few seconds; minutes in debug).

use crate::classic::{ClassicCorpus, ClassicFormat, ClassicOptions, ClassicSetup};
use crate::epochs::EpochControl;
use crate::fit::token_accuracy;
use crate::mask::trainable_mask;
use crate::online::{run_online, OnlineAlgorithm, OnlineConfig, OnlineStart};
use crate::params::{Algorithm, Params};
use crate::sgd::{run_l2sgd, SgdConfig, SgdStart};
use crate::Trainer;
use chaincrf_features::{AttrKind, Templates};
use std::path::Path;

const TOLERANCE: f64 = 0.005;

/// CPU seconds this thread has run (Linux's schedstat; `None` elsewhere).
/// The per-epoch figures printed are CPU time, as the reference script's
/// are: on a shared machine wall time says little.
fn thread_cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns * 1e-9)
}

fn read(path: &Path) -> ClassicCorpus {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ClassicCorpus::read(
        ClassicFormat::Crfpp,
        std::io::BufReader::new(file),
        &path.display().to_string(),
    )
    .unwrap()
}

#[test]
fn token_accuracy_is_python_crfsuites_for_every_algorithm() {
    let Some(root) = std::env::var_os("CHAINCRF_DATA") else {
        eprintln!("skipped: set CHAINCRF_DATA to the shared data folder to compare with python-crfsuite");
        return;
    };
    let folder = Path::new(&root).join("crfpp-examples").join("chunking");
    let record: serde_json::Value = serde_json::from_str(include_str!("../tests/crfsuite_reference.json")).unwrap();
    let template_path = folder.join("template");
    let templates = Templates::parse(
        &std::fs::read_to_string(&template_path).unwrap(),
        &template_path.display().to_string(),
    )
    .unwrap();
    let train_corpus = read(&folder.join("train.data"));
    let test_corpus = read(&folder.join("test.data"));
    let setup = ClassicSetup::new(
        &train_corpus,
        "train.data",
        Some(templates),
        &ClassicOptions::default(),
        None,
    )
    .unwrap();
    let test = setup.held_out(&test_corpus, "test.data").unwrap();
    let data = &setup.dataset;
    let (structure, layout) = (&data.structure, data.layout());
    // The same attributes as python-crfsuite's run.
    assert_eq!(
        data.attributes.len(AttrKind::State) as u64,
        record["attributes"].as_u64().unwrap()
    );
    assert_eq!(data.labels.len() as u64, record["labels"].as_u64().unwrap());
    assert_eq!(data.len() as u64, record["train_sequences"].as_u64().unwrap());
    assert_eq!(
        test.arena.num_positions() as u64,
        record["test_tokens"].as_u64().unwrap()
    );
    let mask = trainable_mask(data, &Params::new(Algorithm::AveragedPerceptron));
    let expected = |name: &str| record["algorithms"][name]["mean_token_accuracy"].as_f64().unwrap();
    let runs = |name: &str| record["algorithms"][name]["runs"].as_u64().unwrap();
    let accuracy = |w: &[f64]| token_accuracy(&test, layout, structure, w);
    let mut report = Vec::new();

    let lbfgs = Trainer::new(Params::new(Algorithm::Lbfgs).check().unwrap())
        .threads(1)
        .fit(data)
        .unwrap();
    report.push(("lbfgs", accuracy(lbfgs.weights()), expected("lbfgs"), f64::NAN));

    let mut cpu = Vec::new();
    let l2sgd = run_l2sgd(
        data,
        structure,
        layout,
        &mask,
        SgdStart::Weights(None),
        &SgdConfig::l2sgd(),
        &|| false,
        &mut |_| {
            cpu.push(thread_cpu_seconds().unwrap_or(f64::NAN));
            EpochControl::Continue
        },
    )
    .unwrap();
    // Per-epoch time between the first and the last epoch's ends (the
    // calibration precedes the first).
    let per_epoch = if cpu.len() > 1 {
        (cpu[cpu.len() - 1] - cpu[0]) / (cpu.len() - 1) as f64
    } else {
        f64::NAN
    };
    report.push(("l2sgd", accuracy(&l2sgd.weights), expected("l2sgd"), per_epoch));

    for algorithm in [
        OnlineAlgorithm::averaged_perceptron(),
        OnlineAlgorithm::passive_aggressive(),
        OnlineAlgorithm::arow(),
    ] {
        let name = algorithm.name();
        let orders = runs(name);
        let (mut sum, mut cpu, mut epochs) = (0.0, 0.0, 0usize);
        for seed in 0..orders {
            let config = OnlineConfig {
                seed: 0x0c4a_11e0 + seed,
                ..OnlineConfig::new(algorithm)
            };
            let before = thread_cpu_seconds().unwrap_or(f64::NAN);
            let out = run_online(
                data,
                structure,
                layout,
                &mask,
                OnlineStart::Weights(None),
                &config,
                &|| false,
                &mut |e| {
                    if seed == 0 && std::env::var_os("SHOW_LOSSES").is_some() {
                        eprintln!("{name} epoch {} loss {}", e.epoch, e.loss);
                    }
                    EpochControl::Continue
                },
            )
            .unwrap();
            cpu += thread_cpu_seconds().unwrap_or(f64::NAN) - before;
            epochs += out.epochs;
            sum += accuracy(&out.weights);
        }
        report.push((name, sum / orders as f64, expected(name), cpu / epochs as f64));
    }
    for &(name, ours, theirs, per_epoch) in &report {
        eprintln!(
            "{name:>6}: token accuracy {ours:.4} (python-crfsuite {theirs:.4}, {:+.2} points); {:.3} ms CPU per epoch",
            100.0 * (ours - theirs),
            1e3 * per_epoch
        );
    }
    for &(name, ours, theirs, _) in &report {
        assert!(
            (ours - theirs).abs() <= TOLERANCE,
            "{name}: token accuracy {ours:.4}, python-crfsuite's {theirs:.4}"
        );
    }
}
