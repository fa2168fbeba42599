//! `chaincrf cws train --encoder cnn` and `cws segment` with the model it
//! writes, through the real binary.

#![cfg(feature = "cnn-train")]

use std::path::PathBuf;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_chaincrf");

const CORPUS: &str = "我们 是 学生\n学生 们 在 学习\n我们 在 北京 学习\n北京 是 首都\n他们 也 是 学生\n\
                      我们 喜欢 北京\n学生 们 喜欢 学习\n他们 在 首都 学习\n";

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("the binary runs")
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("chaincrf-cli-cnn-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn trains_a_cnn_model_that_segment_loads_with_constraints() {
    let d = dir();
    let corpus = d.join("corpus.txt");
    std::fs::write(&corpus, CORPUS.repeat(2)).unwrap();
    let model = d.join("cnn.model");
    let (c, m) = (corpus.to_str().unwrap(), model.to_str().unwrap());
    let small = [
        "--embedding-dim",
        "16",
        "--filters",
        "16",
        "--conv-layers",
        "2",
        "--batch-size",
        "4",
        "--learning-rate",
        "0.01",
        "--min-char-count",
        "1",
    ];
    let mut args = vec![
        "cws",
        "train",
        "--encoder",
        "cnn",
        "--corpus",
        c,
        "--model",
        m,
        "--epochs",
        "40",
    ];
    args.extend(small);
    args.extend(["--dev-every", "4", "--patience", "50", "--checkpoint-every", "10"]);
    let out = run(&args);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("epoch 40/40: loss") && log.contains("held-out F1"),
        "{log}"
    );
    let input = d.join("input.txt");
    std::fs::write(&input, "我们在北京学习\n他们ab12是学生\n").unwrap();
    let i = input.to_str().unwrap();
    let out = run(&["cws", "segment", "--model", m, i]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().next(), Some("我们 在 北京 学习"), "{text}");
    let out = run(&["cws", "segment", "--model", m, "--keep-latin", i]);
    assert!(String::from_utf8(out.stdout).unwrap().contains(" ab12 "));
    let dict = d.join("dict.txt");
    std::fs::write(&dict, "在北京\n").unwrap();
    let out = run(&["cws", "segment", "--model", m, "--user-dict", dict.to_str().unwrap(), i]);
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("我们 在北京 学习\n"));

    // Late fusion with a feature model trained on the same corpus.
    let feature = d.join("feature.model");
    let f = feature.to_str().unwrap();
    let out = run(&["cws", "train", "--corpus", c, "--model", f, "--min-freq", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&[
        "cws",
        "segment",
        "--model",
        f,
        "--add-cnn",
        m,
        "--user-dict",
        dict.to_str().unwrap(),
        i,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("我们 在北京 学习\n"));
    let out = run(&["cws", "segment", "--model", f, "--add-cnn", m, "--cnn-weight", "0", i]);
    let alone = run(&["cws", "segment", "--model", f, i]);
    assert_eq!(out.stdout, alone.stdout, "weight 0 is the feature model");
    // Two feature models, or a negative weight: clear errors.
    for bad in [vec!["--add-cnn", f], vec!["--add-cnn", m, "--cnn-weight=-1"]] {
        let mut args = vec!["cws", "segment", "--model", f];
        args.extend(bad);
        args.push(i);
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("--add-cnn") && !err.contains("panicked"), "{err}");
    }

    // A truncated model: one clear error naming the file, status 1.
    let bytes = std::fs::read(&model).unwrap();
    let cut = d.join("cut.model");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let out = run(&["cws", "segment", "--model", cut.to_str().unwrap(), i]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cut.model") && !err.contains("panicked"), "{err}");

    // The feature CRF's optimizer flags are refused.
    let out = run(&[
        "cws",
        "train",
        "--encoder",
        "cnn",
        "--corpus",
        c,
        "--model",
        m,
        "--c2",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("optimizer flags do not apply"));
    std::fs::remove_dir_all(&d).ok();
}
