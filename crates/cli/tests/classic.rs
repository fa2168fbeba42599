//! End-to-end tests of `chaincrf train`, `tag`, `eval` and `dump` on small
//! inline CRF++ and CRFsuite data.
//!
//! They run the real binary, because what users depend on is the command line:
//! exit codes, the one-line error format, output layouts that match
//! `crf_test`/`crfsuite tag`, and the guarantees the commands make (the model
//! path is checked before training; the model file does not depend on the
//! number of threads).

mod common;
use common::{scratch, Scratch};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_chaincrf");

/// A tiny chunking task: word, POS, chunk label. The label follows from the POS
/// and the previous POS, which the template below can see.
const TRAIN: &str = "\
the DT B-NP
cat NN I-NP
sat VBD B-VP
on IN B-PP
the DT B-NP
mat NN I-NP
. . O

a DT B-NP
dog NN I-NP
ran VBD B-VP
. . O

dogs NNS B-NP
bark VBP B-VP
at IN B-PP
a DT B-NP
big JJ I-NP
cat NN I-NP
. . O

she PRP B-NP
saw VBD B-VP
the DT B-NP
red JJ I-NP
dog NN I-NP

cats NNS B-NP
sleep VBP B-VP
on IN B-PP
mats NNS B-NP
. . O
";

const TEMPLATE: &str = "\
# Unigram
U00:%x[-1,0]
U01:%x[0,0]
U02:%x[1,0]
U10:%x[-1,1]
U11:%x[0,1]
U12:%x[-1,1]/%x[0,1]

# Bigram
B
";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write test file");
    p
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run chaincrf")
}

fn run_stdin(args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chaincrf");
    // A command that fails on its arguments exits before reading its input:
    // a broken pipe is then expected, and the exit status tells the rest.
    if let Err(e) = child.stdin.take().expect("stdin").write_all(input.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    child.wait_with_output().expect("wait for chaincrf")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "failed: {}\n{}", stderr(&o), stdout(&o));
    o
}

/// Asserts exit status 1 and a single `chaincrf: error:` line; returns it.
fn fails(o: Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    let err = stderr(&o);
    let last = err.lines().last().unwrap_or_default().to_owned();
    assert!(last.starts_with("chaincrf: error: "), "{err}");
    last
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// Trains the inline CRF++ data; returns (dir, data, template, model).
fn trained(name: &str, extra: &[&str]) -> (Scratch, PathBuf, PathBuf, PathBuf) {
    let dir = scratch(name);
    let data = write(&dir, "train.data", TRAIN);
    let tpl = write(&dir, "template", TEMPLATE);
    let model = dir.join("model");
    let mut args = vec![
        "train",
        "--template",
        path(&tpl),
        "--c2",
        "0.01",
        "--model",
        path(&model),
        path(&data),
    ];
    args.extend_from_slice(extra);
    ok(run(&args));
    (dir, data, tpl, model)
}

#[test]
fn train_tag_eval_round_trip() {
    let (dir, data, _, model) = trained("roundtrip", &[]);
    // Labeled input: every column kept, prediction appended after a TAB.
    let tagged = stdout(&ok(run(&["tag", "--model", path(&model), path(&data)])));
    let first = tagged.lines().next().expect("output");
    assert_eq!(first, "the\tDT\tB-NP\tB-NP");
    assert_eq!(tagged.split("\n\n").filter(|s| !s.trim().is_empty()).count(), 5);
    let out = write(&dir, "tagged", &tagged);
    let report = stdout(&ok(run(&["eval", path(&out)])));
    assert!(report.starts_with("token accuracy:    100.00% (28/28)"), "{report}");
    assert!(report.contains("sequence accuracy: 100.00% (5/5)"), "{report}");
    assert!(report.contains("processed 28 tokens with 17 phrases"), "{report}");
    // The same through pipes, from standard input.
    let piped = stdout(&ok(run_stdin(&["tag", "--model", path(&model)], TRAIN)));
    assert_eq!(piped, tagged);
    let report2 = stdout(&ok(run_stdin(&["eval"], &piped)));
    assert_eq!(report, report2);
    // Unlabeled input (feature columns only): same predictions.
    let unlabeled: String = TRAIN
        .lines()
        .map(|l| {
            let cols: Vec<&str> = l.split(' ').collect();
            if cols.len() == 3 {
                format!("{} {}\n", cols[0], cols[1])
            } else {
                "\n".to_owned()
            }
        })
        .collect();
    let plain = stdout(&ok(run_stdin(&["tag", "-m", path(&model), "-"], &unlabeled)));
    assert_eq!(plain.lines().next(), Some("the\tDT\tB-NP"));
    // Wrong column count names file and line.
    let bad = write(&dir, "bad.data", "the\n");
    let e = fails(run(&["tag", "--model", path(&model), path(&bad)]));
    assert!(e.contains("bad.data:1:"), "{e}");
}

#[test]
fn marginals_and_nbest_layouts() {
    let (_dir, _, _, model) = trained("marginals", &[]);
    let input = "the DT\ncat NN\n";
    let m = stdout(&ok(run_stdin(&["tag", "-m", path(&model), "--marginals"], input)));
    let lines: Vec<&str> = m.lines().collect();
    let seq_p: f64 = lines[0]
        .strip_prefix("# ")
        .unwrap_or_default()
        .parse()
        .expect("sequence probability");
    assert!(seq_p > 0.0 && seq_p <= 1.0, "{m}");
    assert!(lines[1].starts_with("the\tDT\tB-NP/"), "{m}");
    let p: f64 = lines[1]
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .parse()
        .expect("probability");
    assert!(p > 0.5 && p <= 1.0, "{m}");
    let all = stdout(&ok(run_stdin(&["tag", "-m", path(&model), "--all-marginals"], input)));
    let row: Vec<&str> = all.lines().nth(1).unwrap_or_default().split('\t').collect();
    // word, POS, best/p, then one label/p per label (5 labels).
    assert_eq!(row.len(), 3 + 5, "{all}");
    let sum: f64 = row[3..]
        .iter()
        .map(|c| {
            c.rsplit('/')
                .next()
                .unwrap_or_default()
                .parse::<f64>()
                .expect("marginal")
        })
        .sum();
    assert!((sum - 1.0).abs() < 1e-4, "{all}");
    let nb = stdout(&ok(run_stdin(&["tag", "-m", path(&model), "--nbest", "3"], input)));
    let headers: Vec<&str> = nb.lines().filter(|l| l.starts_with("# ")).collect();
    assert_eq!(headers.len(), 3, "{nb}");
    assert!(headers[0].starts_with("# 0 ") && headers[2].starts_with("# 2 "), "{nb}");
    let probs: Vec<f64> = headers
        .iter()
        .map(|h| h.rsplit(' ').next().unwrap_or_default().parse().expect("probability"))
        .collect();
    assert!(probs[0] >= probs[1] && probs[1] >= probs[2], "{nb}");
    fails(run_stdin(&["tag", "-m", path(&model), "--nbest", "0"], input));
}

#[test]
fn forced_labels() {
    let (dir, _, _, model) = trained("force", &[]);
    // Force "cat" to O (it would be I-NP); "_" leaves "the" free.
    let input = "the DT _\ncat NN O\n";
    let out = stdout(&ok(run_stdin(&["tag", "-m", path(&model), "--force-column"], input)));
    assert_eq!(out, "the\tDT\tB-NP\ncat\tNN\tO\n\n");
    // With the gold column too: gold is echoed, the forced column is not.
    let input = "the DT B-NP I-NP\ncat NN I-NP _\n";
    let out = stdout(&ok(run_stdin(&["tag", "-m", path(&model), "--force-column"], input)));
    assert_eq!(out.lines().next(), Some("the\tDT\tB-NP\tI-NP"));
    // An unknown forced label names the file and line.
    let f = write(&dir, "forced.data", "the DT _\ncat NN _\n\nthe DT _\ncat NN NOPE\n");
    let e = fails(run(&["tag", "-m", path(&model), "--force-column", path(&f)]));
    assert!(e.contains("forced.data:5:") && e.contains("NOPE"), "{e}");
}

#[test]
fn bad_template_names_file_and_line() {
    let dir = scratch("badtpl");
    let data = write(&dir, "train.data", TRAIN);
    let tpl = write(&dir, "template", "U00:%x[0,0]\nU01:%x[0,\n");
    let model = dir.join("model");
    let e = fails(run(&["train", "-t", path(&tpl), "-m", path(&model), path(&data)]));
    assert!(e.contains("template:2:"), "{e}");
    assert!(!model.exists());
    // A template reading a column the data lacks names the data file.
    let tpl = write(&dir, "template2", "U00:%x[0,5]\n");
    let e = fails(run(&["train", "-t", path(&tpl), "-m", path(&model), path(&data)]));
    assert!(e.contains("train.data") && e.contains("template line 1"), "{e}");
    // CRF++ data without a template.
    let e = fails(run(&["train", "-m", path(&model), path(&data)]));
    assert!(e.contains("--template"), "{e}");
    // Inconsistent columns in the data name the line.
    let bad = write(&dir, "bad.data", "a DT B\nb NN\n");
    let tpl = write(&dir, "template3", TEMPLATE);
    let e = fails(run(&["train", "-t", path(&tpl), "-m", path(&model), path(&bad)]));
    assert!(e.contains("bad.data:2:"), "{e}");
}

#[test]
fn unwritable_model_fails_before_training() {
    let dir = scratch("unwritable");
    let tpl = write(&dir, "template", TEMPLATE);
    let model = dir.join("no-such-dir").join("model");
    // The data file does not exist either: the model path is checked first.
    let missing = dir.join("missing.data");
    let o = run(&["train", "-t", path(&tpl), "-m", path(&model), path(&missing)]);
    let e = fails(o);
    assert!(e.contains("no-such-dir"), "{e}");
    assert!(e.contains("before training"), "{e}");
    assert!(!e.contains("missing.data"), "{e}");
    // A directory as the model path.
    let data = write(&dir, "train.data", TRAIN);
    let e = fails(run(&["train", "-t", path(&tpl), "-m", path(&dir), path(&data)]));
    assert!(e.contains("directory"), "{e}");
}

#[test]
fn summary_json_has_exactly_the_documented_keys() {
    let dir = scratch("summary");
    let summary = dir.join("summary.json");
    let (_d, _, _, _) = trained("summary-model", &["--summary-json", path(&summary)]);
    let text = std::fs::read_to_string(&summary).expect("summary written");
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let obj = v.as_object().expect("an object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "algorithm",
            "best_heldout",
            "evaluations",
            "features",
            "final_objective",
            "iterations",
            "seconds",
            "sgd_epochs",
            "termination"
        ]
    );
    assert_eq!(obj["algorithm"], "lbfgs");
    assert!(["converged", "stalled", "max_iterations"].contains(&obj["termination"]["name"].as_str().unwrap_or("")));
    assert_eq!(obj["sgd_epochs"].as_u64(), Some(0));
    assert!(obj["features"].as_u64().is_some_and(|f| f > 0));
    assert!(obj["iterations"].as_u64().is_some_and(|f| f > 0));
    assert!(obj["final_objective"].as_f64().is_some_and(f64::is_finite));
    assert!(obj["termination"]["detail"].as_str().is_some_and(|s| !s.is_empty()));
}

#[test]
fn one_and_two_threads_give_identical_model_files() {
    let (_a, _, _, one) = trained("threads1", &["--threads", "1", "--feature-pairs", "all"]);
    let (_b, _, _, two) = trained("threads2", &["--threads", "2", "--feature-pairs", "all"]);
    let (x, y) = (
        std::fs::read(&one).expect("model 1"),
        std::fs::read(&two).expect("model 2"),
    );
    assert!(!x.is_empty());
    assert!(x == y, "models differ between 1 and 2 threads");
}

#[test]
fn progress_and_final_report_on_stderr() {
    let dir = scratch("progress");
    let data = write(&dir, "train.data", TRAIN);
    let tpl = write(&dir, "template", TEMPLATE);
    let model = dir.join("model");
    let o = ok(run(&[
        "train",
        "-t",
        path(&tpl),
        "--dev",
        path(&data),
        "--max-iterations",
        "5",
        "-m",
        path(&model),
        path(&data),
    ]));
    let err = stderr(&o);
    // Not a terminal here: one plain line per iteration.
    let iters: Vec<&str> = err.lines().filter(|l| l.starts_with("iter ")).collect();
    assert_eq!(iters.len(), 5, "{err}");
    assert!(
        iters
            .iter()
            .all(|l| l.contains("loss") && l.contains("active") && l.contains("dev ")),
        "{err}"
    );
    assert!(err.contains("reached the maximum number of iterations"), "{err}");
    assert!(err.contains("bytes"), "{err}");
    assert!(stdout(&o).is_empty());
    // Patience without a held-out set is refused before training.
    let e = fails(run(&[
        "train",
        "-t",
        path(&tpl),
        "--patience",
        "2",
        "-m",
        path(&model),
        path(&data),
    ]));
    assert!(e.contains("--patience needs held-out data"), "{e}");
    // Bad parameter values exit 1 with one line.
    let e = fails(run(&[
        "train",
        "-t",
        path(&tpl),
        "--c2",
        "-1",
        "-m",
        path(&model),
        path(&data),
    ]));
    assert!(e.contains("c2"), "{e}");
}

#[test]
fn crfsuite_format_train_tag_reference_eval() {
    let dir = scratch("crfsuite");
    // The same task as CRFsuite attributes.
    let mut text = String::new();
    for block in TRAIN.split("\n\n") {
        let rows: Vec<Vec<&str>> = block.lines().map(|l| l.split(' ').collect()).collect();
        for (t, r) in rows.iter().enumerate() {
            let prev = if t > 0 { rows[t - 1][1] } else { "BOS" };
            text.push_str(&format!("{}\tw={}\tpos={}\tprev\\:pos={}\n", r[2], r[0], r[1], prev));
        }
        text.push('\n');
    }
    let data = write(&dir, "train.crfsuite", &text);
    let model = dir.join("model");
    ok(run(&[
        "train",
        "--format",
        "crfsuite",
        "--c1",
        "0.01",
        "--c2",
        "0.01",
        "-m",
        path(&model),
        path(&data),
    ]));
    let plain = stdout(&ok(run(&["tag", "-m", path(&model), path(&data)])));
    assert_eq!(plain.lines().take(3).collect::<Vec<_>>(), ["B-NP", "I-NP", "B-VP"]);
    let with_ref = stdout(&ok(run(&["tag", "-m", path(&model), "--reference", path(&data)])));
    assert_eq!(with_ref.lines().next(), Some("B-NP\tB-NP"));
    let report = stdout(&ok(run_stdin(&["eval"], &with_ref)));
    assert!(report.starts_with("token accuracy:    100.00%"), "{report}");
    // Forcing through the last field.
    let forced = "x\tw=the\tpos=DT\tI-NP\nx\tw=cat\tpos=NN\t_\n";
    let out = stdout(&ok(run_stdin(&["tag", "-m", path(&model), "--force-column"], forced)));
    assert_eq!(out.lines().next(), Some("I-NP"));
    // --template makes no sense for CRFsuite data.
    let tpl = write(&dir, "template", TEMPLATE);
    fails(run(&[
        "train",
        "--format",
        "crfsuite",
        "-t",
        path(&tpl),
        "-m",
        path(&model),
        path(&data),
    ]));
    // A CRF++ model does not read this data (4 columns for 2 feature columns).
    let crfpp_model = dir.join("crfpp.model");
    let crfpp = write(&dir, "train.data", TRAIN);
    ok(run(&[
        "train",
        "-t",
        path(&tpl),
        "-m",
        path(&crfpp_model),
        path(&crfpp),
    ]));
    let e = fails(run(&["tag", "-m", path(&crfpp_model), path(&data)]));
    assert!(e.contains("train.crfsuite:1:"), "{e}");
    fails(run(&["tag", "-m", path(&crfpp_model), "--reference", path(&crfpp)]));
}

#[test]
fn init_continues_training_with_new_labels() {
    let (dir, _, _, model) = trained("init", &[]);
    let more = write(
        &dir,
        "more.data",
        "quickly RB B-ADVP\nran VBD B-VP\n\nthe DT B-NP\ncat NN I-NP\n",
    );
    let model2 = dir.join("model2");
    // The template comes from the initial model.
    ok(run(&[
        "train",
        "--init",
        path(&model),
        "--c2",
        "0.01",
        "-m",
        path(&model2),
        path(&more),
    ]));
    let dump = stdout(&ok(run(&["dump", "-m", path(&model2), "--top", "0"])));
    assert!(dump.contains("labels (6): B-NP I-NP B-VP B-PP O B-ADVP"), "{dump}");
    let tagged = stdout(&ok(run(&["tag", "-m", path(&model2), path(&more)])));
    assert_eq!(tagged.lines().next(), Some("quickly\tRB\tB-ADVP\tB-ADVP"));
    // An initial model of another format is refused.
    let e = fails(run(&[
        "train",
        "--init",
        path(&model),
        "--format",
        "crfsuite",
        "-m",
        path(&model2),
        path(&more),
    ]));
    assert!(e.contains("CRF++"), "{e}");
}

#[test]
fn dump_text_and_json() {
    let (_dir, _, _, model) = trained("dump", &[]);
    let text = stdout(&ok(run(&["dump", "--model", path(&model), "--top", "2"])));
    assert!(text.contains("labels (5): B-NP I-NP B-VP B-PP O"), "{text}");
    assert!(text.contains("transitions (row: previous label"), "{text}");
    assert!(text.contains("U01:"), "{text}");
    assert!(text.contains("top 2 state features per label"), "{text}");
    let json = stdout(&ok(run(&["dump", "--model", path(&model), "--json"])));
    let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(v["labels"].as_array().map(Vec::len), Some(5));
    assert_eq!(v["extractor"]["kind"], "crfpp_templates");
    assert_eq!(v["transitions"].as_array().map(Vec::len), Some(5));
    let states = v["state_attributes"].as_array().expect("state attributes");
    assert!(states.iter().any(|a| a["name"] == "U01:cat"));
    assert!(states.iter().all(|a| a["weights"].as_array().map(Vec::len) == Some(5)));
    let e = fails(run(&["dump", "--model", "/nonexistent/model"]));
    assert!(e.contains("/nonexistent/model"), "{e}");
}

#[test]
fn help_has_examples_and_eval_rejects_bad_input() {
    for cmd in ["train", "tag", "eval", "dump"] {
        let help = stdout(&ok(run(&[cmd, "--help"])));
        assert!(help.contains("Examples:"), "{cmd}: {help}");
    }
    let e = fails(run_stdin(&["eval"], "onlyone\n"));
    assert!(e.contains("<stdin>:1:"), "{e}");
    let e = fails(run_stdin(&["eval"], ""));
    assert!(e.contains("no tokens"), "{e}");
}

/// `prune` drops the attributes whose weights are all small: the pruned model
/// is smaller, still loads and tags; a threshold of 0 keeps every attribute
/// with a non-zero weight; bad thresholds are errors naming the option.
#[test]
fn prune_drops_small_attributes_and_keeps_a_working_model() {
    let (dir, data, _, model) = trained("prune", &[]);
    let kept = |out: &Output| -> (usize, usize) {
        let e = stderr(out);
        let words: Vec<&str> = e.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "kept").expect("a 'kept' line");
        (words[at + 1].parse().unwrap(), words[at + 3].parse().unwrap())
    };
    let all = dir.join("all.model");
    let (k0, n0) = kept(&ok(run(&[
        "prune",
        "-m",
        path(&model),
        "--threshold",
        "0",
        "-o",
        path(&all),
    ])));
    assert_eq!(k0, n0, "threshold 0 keeps every attribute of an L2 model");
    let small = dir.join("small.model");
    let (k, n) = kept(&ok(run(&[
        "prune",
        "-m",
        path(&model),
        "--threshold",
        "0.2",
        "-o",
        path(&small),
    ])));
    assert_eq!(n, n0);
    assert!(0 < k && k < n, "kept {k} of {n}");
    assert!(std::fs::metadata(&small).unwrap().len() < std::fs::metadata(&model).unwrap().len());
    let tagged = ok(run(&["tag", "-m", path(&small), path(&data)]));
    assert_eq!(
        stdout(&tagged).lines().filter(|l| !l.is_empty()).count(),
        TRAIN.lines().filter(|l| !l.is_empty()).count()
    );
    for bad in ["-1", "NaN"] {
        let e = fails(run(&[
            "prune",
            "-m",
            path(&model),
            "--threshold",
            bad,
            "-o",
            path(&small),
        ]));
        assert!(e.contains("--threshold") || e.contains("threshold"), "{e}");
    }
}

/// The optimizer's flags: parameters by CRFsuite's names, the listing of an
/// algorithm's parameters, and clear errors for names the algorithm lacks.
#[test]
fn algorithm_and_named_parameters() {
    let listing = stdout(&ok(run(&["train", "-a", "pa", "--help-params"])));
    for name in [
        "type",
        "c",
        "error_sensitive",
        "averaging",
        "max_iterations",
        "feature.minfreq",
    ] {
        assert!(listing.contains(name), "{name}: {listing}");
    }
    assert!(!listing.contains("c2 "), "{listing}");
    let long = stdout(&ok(run(&["train", "--help"])));
    assert!(
        long.contains("calibration.max_trials") && long.contains("variance"),
        "{long}"
    );
    let dir = scratch("named-params");
    let data = write(&dir, "train.data", TRAIN);
    let tpl = write(&dir, "template", TEMPLATE);
    let model = dir.join("model");
    let base = ["train", "-t", path(&tpl), "-m", path(&model), path(&data)];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        run(&args)
    };
    // An unknown algorithm is a usage error (status 2), as clap reports them.
    let o = with(&["-a", "sgd"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("lbfgs, l2sgd, ap, pa, arow"), "{}", stderr(&o));
    let e = fails(with(&["--set", "c3=1"]));
    assert!(e.contains("c3") && e.contains("num_memories"), "{e}");
    let e = fails(with(&["-a", "arow", "--set", "c2=1"]));
    assert!(e.contains("not one of arow's") && e.contains("variance"), "{e}");
    let e = fails(with(&["--set", "c2"]));
    assert!(e.contains("NAME=VALUE"), "{e}");
    let e = fails(with(&["--set", "feature.possible_states=yes"]));
    assert!(e.contains("expected 0 or 1"), "{e}");
    assert!(!model.exists(), "no model after a refused run");
    // Named and shorthand parameters set the same objective: the same model bytes.
    let jsonl = dir.join("progress.jsonl");
    ok(with(&[
        "--set",
        "c2=0.01",
        "--set",
        "max_iterations=5",
        "--threads",
        "1",
        "--progress-jsonl",
        path(&jsonl),
    ]));
    let named = std::fs::read(&model).unwrap();
    ok(with(&["--c2", "0.01", "--max-iterations", "5", "--threads", "1"]));
    assert_eq!(named, std::fs::read(&model).unwrap());
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    for (i, v) in lines.iter().enumerate() {
        assert_eq!(v["algorithm"], "lbfgs");
        assert_eq!(v["iteration"].as_u64(), Some(i as u64 + 1));
        assert!(v["objective"].as_f64().is_some_and(f64::is_finite));
        assert!(v["gradient_norm"].as_f64().is_some());
        assert!(v["active_features"].as_u64().is_some());
        assert!(v["seconds"].as_f64().is_some());
        assert!(v.get("heldout").is_some_and(serde_json::Value::is_null));
    }
    // feature.minfreq (CRFsuite's feature threshold) drops features.
    let summary = dir.join("s.json");
    let features = |extra: &[&str]| {
        let mut args = vec!["--summary-json", path(&summary), "--max-iterations", "2"];
        args.extend_from_slice(extra);
        ok(with(&args));
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
        v["features"].as_u64().unwrap()
    };
    let all = features(&[]);
    let frequent = features(&["--set", "feature.minfreq=2"]);
    assert!(frequent < all, "{frequent} vs {all}");
    // CRFsuite's three line searches by name, listed and trained with.
    let lbfgs_listing = stdout(&ok(run(&["train", "-a", "lbfgs", "--help-params"])));
    assert!(
        lbfgs_listing.contains("Backtracking") && lbfgs_listing.contains("StrongBacktracking"),
        "{lbfgs_listing}"
    );
    for search in ["MoreThuente", "Backtracking", "StrongBacktracking"] {
        std::fs::remove_file(&model).unwrap();
        let set = format!("linesearch={search}");
        ok(with(&["--set", &set, "--c2", "0.01", "--max-iterations", "5"]));
        assert!(model.exists(), "{search}: no model");
    }
    let e = fails(with(&["--set", "linesearch=Armijo"]));
    assert!(e.contains("linesearch") && e.contains("StrongBacktracking"), "{e}");
}
