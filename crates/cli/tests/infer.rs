//! End-to-end tests of `chaincrf infer`, run as a user runs it: the built binary,
//! JSON on standard input or in a file, JSON or a one-line error out.
//!
//! The known-answer case is small enough to enumerate by hand (2 positions, 2
//! labels, 4 paths), so log Z, the marginals, the entropy and the n-best list
//! are checked against numbers written out here rather than against the core
//! crate the command itself calls.

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chaincrf"))
        .arg("infer")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the chaincrf binary runs");
    // A command that fails on its arguments exits before reading: ignore the broken pipe.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn ok_json(args: &[&str], stdin: &str) -> Value {
    let out = run(args, stdin);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "failed: {stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.trim_end().lines().count(),
        1,
        "one JSON object on one line: {stdout}"
    );
    serde_json::from_str(&stdout).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12 * (1.0 + b.abs())
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn paths(v: &Value) -> Vec<(Vec<u64>, f64)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let path = p["path"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect();
            (path, p["score"].as_f64().unwrap())
        })
        .collect()
}

/// emissions e = [[1, 0], [0, 2]], transitions T = [[0, 0.5], [-1, 0]], start
/// [0, 0.25], end [0.1, 0]. The four paths and their scores
/// start(y0) + e0(y0) + T(y0, y1) + e1(y1) + end(y1):
///   (0,0) = 0 + 1 + 0 + 0 + 0.1       = 1.1
///   (0,1) = 0 + 1 + 0.5 + 2 + 0       = 3.5
///   (1,0) = 0.25 + 0 − 1 + 0 + 0.1    = −0.65
///   (1,1) = 0.25 + 0 + 0 + 2 + 0      = 2.25
const KNOWN: &str = r#"{"emissions": [[1, 0], [0, 2]], "transitions": [[0, 0.5], [-1, 0]],
                       "start": [0, 0.25], "end": [0.1, 0]}"#;

#[test]
fn known_answer_two_positions_two_labels() {
    let scores = [1.1f64, 3.5, -0.65, 2.25];
    let z: f64 = scores.iter().map(|s| s.exp()).sum();
    let p: Vec<f64> = scores.iter().map(|s| s.exp() / z).collect();
    let v = ok_json(&["--nbest", "4"], KNOWN);

    assert!(close(v["log_partition"].as_f64().unwrap(), z.ln()));
    assert_eq!(v["viterbi"]["path"], serde_json::json!([0, 1]));
    assert!(close(v["viterbi"]["score"].as_f64().unwrap(), 3.5));

    let m = v["marginals"].as_array().unwrap();
    assert_eq!(m.len(), 2);
    let row0 = floats(&m[0]);
    let row1 = floats(&m[1]);
    assert!(close(row0[0], p[0] + p[1]) && close(row0[1], p[2] + p[3]), "{row0:?}");
    assert!(close(row1[0], p[0] + p[2]) && close(row1[1], p[1] + p[3]), "{row1:?}");

    let entropy: f64 = -p.iter().map(|q| q * q.ln()).sum::<f64>();
    assert!(close(v["entropy"].as_f64().unwrap(), entropy));

    let best = paths(&v["nbest"]);
    let want = [
        (vec![0, 1], 3.5),
        (vec![1, 1], 2.25),
        (vec![0, 0], 1.1),
        (vec![1, 0], -0.65),
    ];
    assert_eq!(best.len(), 4);
    for ((path, score), (want_path, want_score)) in best.iter().zip(&want) {
        assert_eq!(path, want_path);
        assert!(close(*score, *want_score), "{score} vs {want_score}");
    }
}

#[test]
fn nbest_is_absent_unless_asked_and_input_can_be_a_file() {
    let dir = std::env::temp_dir().join(format!("chaincrf-infer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("known.json");
    std::fs::write(&file, KNOWN).unwrap();
    let from_file = ok_json(&["--input", file.to_str().unwrap()], "");
    assert!(from_file.get("nbest").is_none());
    let from_dash = ok_json(&["--input", "-"], KNOWN);
    assert_eq!(from_file, from_dash);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn null_forbids_a_transition() {
    // As KNOWN without start/end, and 0 → 1 forbidden: the former best (0,1) is gone.
    let input = r#"{"emissions": [[1, 0], [0, 2]], "transitions": [[0, null], [-1, 0]]}"#;
    let v = ok_json(&["--nbest", "10"], input);
    // allowed: (0,0) = 1, (1,0) = −1, (1,1) = 2
    let z = 1f64.exp() + (-1f64).exp() + 2f64.exp();
    assert!(close(v["log_partition"].as_f64().unwrap(), z.ln()));
    assert_eq!(v["viterbi"]["path"], serde_json::json!([1, 1]));
    let best = paths(&v["nbest"]);
    assert_eq!(best.len(), 3, "only three paths are allowed: {best:?}");
    assert!(best.iter().all(|(p, _)| p != &vec![0, 1]));
    let row1 = floats(&v["marginals"][1]);
    assert!(close(row1[1], 2f64.exp() / z));
}

#[test]
fn nbest_is_ordered_and_distinct() {
    let input = r#"{"emissions": [[0.3, -1.2, 0.8], [1.1, 0.0, -0.4], [0.2, 0.9, 0.1], [-0.5, 0.4, 0.6]],
                    "transitions": [[0.2, -0.3, 0.1], [0.0, 0.4, -0.6], [-0.2, 0.3, 0.5]]}"#;
    let v = ok_json(&["--nbest", "20"], input);
    let best = paths(&v["nbest"]);
    assert_eq!(best.len(), 20);
    assert_eq!(best[0].0, paths(&serde_json::json!([v["viterbi"].clone()]))[0].0);
    for w in best.windows(2) {
        assert!(w[0].1 >= w[1].1, "not best first: {w:?}");
    }
    let mut seen: Vec<&Vec<u64>> = best.iter().map(|(p, _)| p).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 20, "paths repeat");
}

/// Each malformed input: exit status 1, nothing on stdout, and exactly one
/// line on stderr that starts `chaincrf: error:` and names the problem.
#[test]
fn malformed_inputs_give_one_line_errors() {
    let cases: &[(&str, &str)] = &[
        ("not json at all", "not a valid potentials object"),
        (r#"{"emissions": [[0, 0]]}"#, "missing field `transitions`"),
        (
            r#"{"emissions": [[0, 0], [0, 0], [0, 0], [1, 2, 3]], "transitions": [[0, 0], [0, 0]]}"#,
            "emissions row 3 has 3 scores, expected 2",
        ),
        (
            r#"{"emissions": [[0, 0]], "transitions": [[0, 0], [0]]}"#,
            "transitions row 1 has 1 scores, expected 2",
        ),
        (
            r#"{"emissions": [[0, 0]], "transitions": [[0, 0], [0, 0], [0, 0]]}"#,
            "transitions row 0 has 2 scores, expected 3",
        ),
        (r#"{"emissions": [], "transitions": []}"#, "k = 0"),
        (
            r#"{"emissions": [[0]], "transitions": [[0]], "start": [0, 1]}"#,
            "start has 2 scores, expected 1",
        ),
        (
            r#"{"emissions": [[1e999]], "transitions": [[0]]}"#,
            "not a valid potentials object",
        ),
        (r#"{"emissions": [["NaN"]], "transitions": [[0]]}"#, "invalid type"),
        (
            r#"{"emissions": [[0]], "transitions": [[0]], "strat": [0]}"#,
            "unknown field `strat`",
        ),
        (
            r#"{"emissions": [[0, 0], [0, 0]], "transitions": [[null, null], [null, null]]}"#,
            "no allowed path",
        ),
        (
            r#"{"emissions": [[null, null]], "transitions": [[0, 0], [0, 0]]}"#,
            "no allowed path",
        ),
    ];
    for (input, needle) in cases {
        let out = run(&[], input);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{input}: {stderr}");
        assert!(out.stdout.is_empty(), "{input}: printed output");
        assert_eq!(stderr.lines().count(), 1, "{input}: {stderr}");
        assert!(stderr.starts_with("chaincrf: error: "), "{input}: {stderr}");
        assert!(stderr.contains(needle), "{input}: expected {needle:?} in {stderr}");
    }
}

#[test]
fn usage_errors_exit_2_and_help_has_an_example() {
    let out = run(&["--nbest", "0"], KNOWN);
    assert_eq!(out.status.code(), Some(2));
    let help = Command::new(env!("CARGO_BIN_EXE_chaincrf"))
        .args(["infer", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    let text = String::from_utf8(help.stdout).unwrap();
    assert!(text.contains("Example:") && text.contains("chaincrf infer"), "{text}");
}

/// Fuzzer find (potentials_json, out of memory): scores of 10⁸⁰ left the
/// best-first k-best search's priorities equal to the last bit and it expanded
/// prefixes without bound. The list-Viterbi k-best answers in bounded memory.
#[test]
fn nbest_with_huge_scores_stays_bounded() {
    let input = include_str!("data/fuzz-kbest-huge-scores.json");
    let v = ok_json(&["--nbest", "3"], input);
    let best = paths(&v["nbest"]);
    assert_eq!(best.len(), 3);
    assert!(best.windows(2).all(|w| w[0].1 >= w[1].1), "{best:?}");
    assert!(close(best[0].1, v["viterbi"]["score"].as_f64().unwrap()));
}
