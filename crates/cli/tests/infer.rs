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

// ---------------------------------------------------------------------------
// Semi-Markov input.

/// n = 2, k = 2, max_len = 2; transitions T = [[0, 0.5], [-1, 0]], start
/// [0, 0.25], end [0.1, 0]; segments s(0,1) = [0, 1], s(0,2) = [2, null],
/// s(1,1) = [1, 0]. The five allowed segmentations and their scores:
///   [(0,2,0)]            = 0 + 2 + 0.1                  = 2.1
///   [(0,1,0), (1,1,0)]   = 0 + 0 + 0 + 1 + 0.1          = 1.1
///   [(0,1,0), (1,1,1)]   = 0 + 0 + 0.5 + 0 + 0          = 0.5
///   [(0,1,1), (1,1,0)]   = 0.25 + 1 − 1 + 1 + 0.1       = 1.35
///   [(0,1,1), (1,1,1)]   = 0.25 + 1 + 0 + 0 + 0         = 1.25
/// ((0,2,1) is forbidden.)
const KNOWN_SEMI: &str = r#"{"max_len": 2,
    "segments": [[[0, 1], [2, null]], [[1, 0]]],
    "transitions": [[0, 0.5], [-1, 0]], "start": [0, 0.25], "end": [0.1, 0]}"#;

fn segmentations(v: &Value) -> Vec<(Vec<[u64; 3]>, f64)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let segs = s["segments"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    let t: Vec<u64> = t.as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
                    [t[0], t[1], t[2]]
                })
                .collect();
            (segs, s["score"].as_f64().unwrap())
        })
        .collect()
}

#[test]
fn semi_markov_known_answer() {
    let scores = [2.1f64, 1.1, 0.5, 1.35, 1.25];
    let z: f64 = scores.iter().map(|s| s.exp()).sum();
    let p: Vec<f64> = scores.iter().map(|s| s.exp() / z).collect();
    let v = ok_json(&["--nbest", "9"], KNOWN_SEMI);

    assert!(close(v["log_partition"].as_f64().unwrap(), z.ln()));
    assert_eq!(v["viterbi"]["segments"], serde_json::json!([[0, 2, 0]]));
    assert!(close(v["viterbi"]["score"].as_f64().unwrap(), 2.1));
    assert!(v.get("marginals").is_none() && v.get("path").is_none());

    let m = v["segment_marginals"].as_array().unwrap();
    assert_eq!(m.len(), 2);
    let (m00, m01, m10) = (floats(&m[0][0]), floats(&m[0][1]), floats(&m[1][0]));
    assert_eq!(m[0].as_array().unwrap().len(), 2);
    assert_eq!(m[1].as_array().unwrap().len(), 1);
    assert!(close(m00[0], p[1] + p[2]) && close(m00[1], p[3] + p[4]), "{m00:?}");
    assert!(close(m01[0], p[0]) && m01[1] == 0.0, "{m01:?}");
    assert!(close(m10[0], p[1] + p[3]) && close(m10[1], p[2] + p[4]), "{m10:?}");

    let entropy: f64 = -p.iter().map(|q| q * q.ln()).sum::<f64>();
    assert!(close(v["entropy"].as_f64().unwrap(), entropy));

    let best = segmentations(&v["nbest"]);
    let want: [(&[[u64; 3]], f64); 5] = [
        (&[[0, 2, 0]], 2.1),
        (&[[0, 1, 1], [1, 1, 0]], 1.35),
        (&[[0, 1, 1], [1, 1, 1]], 1.25),
        (&[[0, 1, 0], [1, 1, 0]], 1.1),
        (&[[0, 1, 0], [1, 1, 1]], 0.5),
    ];
    assert_eq!(best.len(), 5, "{best:?}");
    for ((segs, score), (want_segs, want_score)) in best.iter().zip(&want) {
        assert_eq!(segs.as_slice(), *want_segs);
        assert!(close(*score, *want_score), "{score} vs {want_score}");
    }
}

/// A whole segment given as null is forbidden and comes back as null; a
/// length past the end may be given as null or left out; max_len above n is
/// fine (no segment can be longer than the input).
#[test]
fn semi_markov_null_segments_keep_the_input_nesting() {
    let v = ok_json(
        &[],
        r#"{"max_len": 5, "segments": [[[0], null, [1]], [[0], null], [[0]]], "transitions": [[0]]}"#,
    );
    let m = v["segment_marginals"].as_array().unwrap();
    assert_eq!(m[0][1], Value::Null);
    assert_eq!(m[1][1], Value::Null);
    assert_eq!(m[0].as_array().unwrap().len(), 3);
    assert_eq!(m[2].as_array().unwrap().len(), 1);
    // Allowed: [3], [1,1,1] (scores 1 and 0): P([0,3]) = e/(e+1).
    let e = std::f64::consts::E;
    assert!(close(floats(&m[0][2])[0], e / (e + 1.0)));
    assert!(close(v["log_partition"].as_f64().unwrap(), (e + 1.0).ln()));
    assert_eq!(v["viterbi"]["segments"], serde_json::json!([[0, 3, 0]]));
}

/// The same chain given as a chain and as a semi-Markov input with
/// max_len = 1 gives the same answers.
#[test]
fn semi_markov_with_max_len_one_is_the_chain() {
    let chain = ok_json(&["--nbest", "4"], KNOWN);
    let semi = ok_json(
        &["--nbest", "4"],
        r#"{"max_len": 1, "segments": [[[1, 0]], [[0, 2]]], "transitions": [[0, 0.5], [-1, 0]],
            "start": [0, 0.25], "end": [0.1, 0]}"#,
    );
    assert!(close(
        chain["log_partition"].as_f64().unwrap(),
        semi["log_partition"].as_f64().unwrap()
    ));
    assert!(close(
        chain["entropy"].as_f64().unwrap(),
        semi["entropy"].as_f64().unwrap()
    ));
    assert_eq!(semi["viterbi"]["segments"], serde_json::json!([[0, 1, 0], [1, 1, 1]]));
    let cm = chain["marginals"].as_array().unwrap();
    let sm = semi["segment_marginals"].as_array().unwrap();
    for t in 0..2 {
        for (a, b) in floats(&cm[t]).iter().zip(floats(&sm[t][0])) {
            assert!(close(*a, b));
        }
    }
    let chain_scores: Vec<f64> = paths(&chain["nbest"]).iter().map(|p| p.1).collect();
    let semi_scores: Vec<f64> = segmentations(&semi["nbest"]).iter().map(|p| p.1).collect();
    assert_eq!(chain_scores.len(), semi_scores.len());
    assert!(chain_scores.iter().zip(&semi_scores).all(|(a, b)| close(*a, *b)));
}

#[test]
fn semi_markov_input_errors_name_the_problem() {
    let cases = [
        (
            r#"{"max_len": 2, "segments": [[null, null], [null]], "transitions": [[0]]}"#,
            "no allowed segmentation",
        ),
        (
            r#"{"max_len": 2, "segments": [[[0], [0]], [[0], [1]]], "transitions": [[0]]}"#,
            "segments[1][1]: the segment of length 2 starting at 1 runs past the end (n = 2)",
        ),
        (
            r#"{"max_len": 2, "segments": [[[0], [0], [0]], [[0]]], "transitions": [[0]]}"#,
            "segments[0] has 3 lengths, expected 2",
        ),
        (
            r#"{"max_len": 3, "segments": [[[0]], [[0]]], "transitions": [[0]]}"#,
            "segments[0] has 1 lengths, expected 2 to 3",
        ),
        (
            r#"{"max_len": 1, "segments": [[[0, 1]]], "transitions": [[0]]}"#,
            "segments[0][0] has 2 scores, expected 1",
        ),
        (
            r#"{"max_len": 0, "segments": [[]], "transitions": [[0]]}"#,
            "max_len is 0",
        ),
        (r#"{"max_len": 1, "segments": [], "transitions": []}"#, "k = 0"),
        (r#"{"max_len": 1, "transitions": [[0]]}"#, "missing field `segments`"),
        (
            r#"{"segments": [[[0]]], "transitions": [[0]]}"#,
            "missing field `max_len`",
        ),
        (
            r#"{"max_len": 1, "segments": [[[0]]], "transitions": [[0]], "strat": [0]}"#,
            "unknown field `strat`",
        ),
        (
            r#"{"max_len": 1, "segments": [[["NaN"]]], "transitions": [[0]]}"#,
            "not a valid semi-Markov potentials object",
        ),
        (
            r#"{"max_len": 1, "segments": [[[0]]], "transitions": [[0]], "end": [0, 0]}"#,
            "end has 2 scores, expected 1",
        ),
        (
            r#"{"max_len": 2, "segments": [[[1e308], [1e308]], [[1e308]]], "transitions": [[1e308]]}"#,
            "overflow",
        ),
        (
            r#"{"max_len": 100000, "segments": [[[0]], [[0]]], "transitions": [[0]]}"#,
            "segments[0] has 1 lengths, expected 2 to 100000",
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

/// Finite scores whose sums overflow f64: the chain used to answer "no
/// allowed path", which is the wrong reason.
#[test]
fn chain_scores_whose_sums_overflow_are_reported_as_overflow() {
    let out = run(
        &[],
        r#"{"emissions": [[1e308, 1e308], [1e308, 1e308]], "transitions": [[1e308, 1e308], [1e308, 1e308]]}"#,
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("overflow f64") && !stderr.contains("no allowed path"),
        "{stderr}"
    );
    // A single huge score is not an overflow.
    let v = ok_json(&[], r#"{"emissions": [[1e308, 0]], "transitions": [[0, 0], [0, 0]]}"#);
    assert_eq!(v["log_partition"].as_f64().unwrap(), 1e308);
}
