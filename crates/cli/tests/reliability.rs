//! Reliability of the `chaincrf` binary on bad input and under interruption.
//!
//! What a user can get wrong — the wrong file as a model, a damaged or
//! truncated model, text that is not UTF-8, data with ragged columns, a
//! template typo, an output path that cannot be written — must end in one
//! clear `chaincrf: error: ...` line and exit status 1, with no panic and no
//! existing file touched; and a training run that is killed or interrupted
//! must leave whole files behind. These tests pin that for every entry point
//! by running the real binary (the table in `docs/reliability.md` names them).
//! They create their files in fresh temporary directories and remove them.

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_chaincrf");

const TRAIN: &str = "\
the DT B-NP
cat NN I-NP
sat VBD B-VP
on IN B-PP
the DT B-NP
mat NN I-NP

a DT B-NP
dog NN I-NP
ran VBD B-VP
. . O
";

const TEMPLATE: &str = "U00:%x[0,0]\nU01:%x[0,1]\nU02:%x[-1,1]/%x[0,1]\nB\n";

const CRFSUITE: &str = "B-NP\tw=the\tpos=DT\nI-NP\tw=cat\tpos=NN\nB-VP\tw=sat\tpos=VBD\n\nB-NP\tw=a\nI-NP\tw=dog\n";

/// A small segmented corpus, simplified and traditional script.
const CORPUS: &str = "\
迈向  充满  希望  的  新  世纪
中国  人民  共同  创造  美好  的  未来
我們  在  臺灣  學習  中文
這個  問題  很  複雜  ，  需要  時間  解決  。
今天  天氣  很  好
";

/// A temporary directory removed on drop (also when a test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "chaincrf-rel-{}-{name}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temporary directory");
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).expect("write test file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Undo read-only permissions a test set, or removal fails.
        let _ = make_writable(&self.0.join("ro"));
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(unix)]
fn make_writable(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temporary path")
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run chaincrf")
}

fn run_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chaincrf");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    // Write from a thread: a command that fails early stops reading.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for chaincrf");
    let _ = writer.join();
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "failed: {}\n{}", text(&o.stderr), text(&o.stdout));
    o
}

/// Asserts a clean failure: exit status 1, no panic, and standard error ending
/// in exactly one `chaincrf: error:` line that contains every needle.
fn fails(o: Output, needles: &[&str]) -> String {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "stdout: {}\nstderr: {err}", text(&o.stdout));
    assert!(!err.contains("panicked"), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "expected one error line: {err}");
    let line = err.lines().last().unwrap_or_default().to_owned();
    assert!(line.starts_with("chaincrf: error: "), "{err}");
    for n in needles {
        assert!(line.contains(n), "{n:?} not in {line:?}");
    }
    line
}

/// Fixtures: a CRF++ model, a CRFsuite model and a segmentation model.
struct Models {
    dir: TempDir,
    crfpp: PathBuf,
    crfsuite: PathBuf,
    cws: PathBuf,
    data: PathBuf,
    template: PathBuf,
    corpus: PathBuf,
}

fn models(name: &str) -> Models {
    let dir = TempDir::new(name);
    let data = dir.write("train.data", TRAIN);
    let template = dir.write("template", TEMPLATE);
    let corpus = dir.write("corpus.txt", CORPUS);
    let cs = dir.write("train.crfsuite", CRFSUITE);
    let crfpp = dir.path("crfpp.model");
    let crfsuite = dir.path("crfsuite.model");
    let cws = dir.path("cws.model");
    ok(run(&[
        "train",
        "--template",
        s(&template),
        "--model",
        s(&crfpp),
        s(&data),
    ]));
    ok(run(&["train", "--format", "crfsuite", "--model", s(&crfsuite), s(&cs)]));
    ok(run(&["cws", "train", "--corpus", s(&corpus), "--model", s(&cws)]));
    Models {
        dir,
        crfpp,
        crfsuite,
        cws,
        data,
        template,
        corpus,
    }
}

/// Every damaged or foreign model file, with a phrase its message must contain.
fn bad_models(m: &Models) -> Vec<(PathBuf, &'static str)> {
    let good = std::fs::read(&m.crfpp).unwrap();
    let d = &m.dir;
    let mut newer = good.clone();
    newer[8..12].copy_from_slice(&7u32.to_le_bytes());
    let mut huge_header = good.clone();
    huge_header[12..20].copy_from_slice(&(1u64 << 62).to_le_bytes());
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40;
    // A body whose first length (the label vector's) claims 2^40 entries, with
    // a correct checksum: only the decoder can notice.
    let mut forged_body = vec![0xFD];
    forged_body.extend_from_slice(&(1u64 << 40).to_le_bytes());
    let mut forged = b"CHAINCRF".to_vec();
    forged.extend_from_slice(&1u32.to_le_bytes());
    forged.extend_from_slice(&(forged_body.len() as u64).to_le_bytes());
    forged.extend_from_slice(&fnv_mixed(&forged_body).to_le_bytes());
    forged.extend_from_slice(&forged_body);
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x80)
        .collect();
    vec![
        (d.write("empty.model", b""), "the file is empty"),
        (d.write("header.model", &good[..15]), "truncated (incomplete header)"),
        (d.write("half.model", &good[..good.len() / 2]), "the file is truncated"),
        (d.write("random.model", &random), "wrong magic number"),
        (d.write("png.model", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0"), "PNG image"),
        (
            d.write("elf.model", b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0"),
            "ELF executable",
        ),
        (
            d.write(
                "crfpp-text.model",
                "version: 100\ncost-factor: 1\nmaxid: 24\nxsize: 2\n\nB-NP\nI-NP\n",
            ),
            "CRF++ text model",
        ),
        (
            d.write("newer.model", &newer),
            "format version 7 is newer than this build reads",
        ),
        (d.write("huge.model", &huge_header), "above the"),
        (d.write("flipped.model", &flipped), "checksum mismatch"),
        (d.write("forged.model", &forged), "cannot decode"),
    ]
}

/// The model format's checksum: FNV-1a/64 with MurmurHash3's finalizer.
fn fnv_mixed(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[test]
fn bad_model_files_fail_cleanly_in_every_command() {
    let m = models("bad-models");
    let x = m.dir.path("x.model");
    for (model, reason) in bad_models(&m) {
        let name = s(&model);
        let commands: Vec<Vec<&str>> = vec![
            vec!["tag", "--model", name, s(&m.data)],
            vec!["dump", "--model", name],
            vec!["dump", "--model", name, "--json"],
            vec!["cws", "segment", "--model", name, s(&m.corpus)],
            vec!["train", "--init", name, "--model", s(&x), s(&m.data)],
        ];
        for args in commands {
            let line = fails(run(&args), &[name, reason]);
            assert!(line.contains("not a valid chaincrf model"), "{line}");
        }
    }
}

/// A forged length must not make the loader reserve memory for it: under a
/// 1 GiB address-space limit the command still fails with its message
/// (an allocation of the claimed size would abort instead).
#[cfg(target_os = "linux")]
#[test]
fn forged_lengths_do_not_allocate() {
    let m = models("forged");
    for (model, reason) in bad_models(&m) {
        let o = Command::new("sh")
            .args([
                "-c",
                "ulimit -v 1048576 && exec \"$0\" \"$@\"",
                BIN,
                "dump",
                "--model",
                s(&model),
            ])
            .output()
            .expect("run sh");
        fails(o, &[reason]);
    }
}

/// A model file written by CRFsuite itself (python-crfsuite trained it; see
/// crates/model/tests/data/crfsuite/generate.py), and what python-crfsuite
/// predicted with it.
fn crfsuite_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/data/crfsuite")
        .join(name)
}

/// Damaged and forged CRFsuite model files, with a phrase the message must contain.
fn bad_crfsuite_models(d: &TempDir) -> Vec<(PathBuf, &'static str)> {
    let good = std::fs::read(crfsuite_fixture("l1.crfsuite")).unwrap();
    let u32_at = |o: usize| u32::from_le_bytes(good[o..o + 4].try_into().unwrap()) as usize;
    let with = |offset: usize, value: u32| {
        let mut b = good.clone();
        b[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
        b
    };
    // A truncated file whose size field was fixed up to match.
    let mut cut = good[..good.len() / 2].to_vec();
    let len = cut.len() as u32;
    cut[4..8].copy_from_slice(&len.to_le_bytes());
    let first_attr_list = u32_at(u32_at(44) + 12);
    vec![
        (d.write("cs-header.model", &good[..30]), "the file is truncated"),
        (
            d.write("cs-half.model", &good[..good.len() / 2]),
            "the file is truncated",
        ),
        (d.write("cs-cut.model", &cut), "runs past the end"),
        (d.write("cs-version.model", with(12, 7)), "format version 7"),
        (d.write("cs-labels.model", with(20, u32::MAX)), "label dictionary"),
        (
            d.write("cs-features.model", with(u32_at(28) + 8, u32::MAX)),
            "does not hold",
        ),
        (
            d.write("cs-list.model", with(first_attr_list, 1 << 30)),
            "runs past the end",
        ),
    ]
}

#[test]
fn crfsuite_models_are_read_by_tag_and_dump() {
    let model = crfsuite_fixture("l1.crfsuite");
    let data = crfsuite_fixture("l1.test");
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(crfsuite_fixture("l1.expected.json")).unwrap()).unwrap();
    let labels: Vec<&str> = want["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    // `tag --marginals`: python-crfsuite's labels and its marginal of each, to
    // the 6 decimals printed.
    let out = text(&ok(run(&["tag", "--model", s(&model), "--marginals", s(&data)])).stdout);
    let mut printed = out.split("\n\n").filter(|b| !b.trim().is_empty());
    for p in want["predictions"].as_array().unwrap() {
        let block = printed.next().expect("a block per sequence");
        let tokens: Vec<&str> = block.lines().filter(|l| !l.starts_with('#')).collect();
        let expected: Vec<String> = p["labels"]
            .as_array()
            .unwrap()
            .iter()
            .zip(p["marginals"].as_array().unwrap())
            .map(|(label, row)| {
                let label = label.as_str().unwrap();
                let y = labels.iter().position(|l| *l == label).unwrap();
                format!("{label}/{:.6}", row[y].as_f64().unwrap())
            })
            .collect();
        assert_eq!(tokens, expected);
    }
    assert!(printed.next().is_none());
    let dump = text(&ok(run(&["dump", "--model", s(&model)])).stdout);
    assert!(dump.contains("extractor: CRFsuite attributes"), "{dump}");
    assert!(dump.contains("weights: f64"), "{dump}");
    assert!(dump.contains("labels (4): B-NP O V:x I-NP"), "{dump}");
    let json = text(&ok(run(&["dump", "--model", s(&model), "--json"])).stdout);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["extractor"]["kind"], "crfsuite_attributes");
    assert_eq!(json["transitions"].as_array().unwrap().len(), 4);
    // A segmentation command names what the model is not.
    fails(
        run(&["cws", "segment", "--model", s(&model), s(&data)]),
        &["l1.crfsuite", "not a word-segmentation model"],
    );
}

#[test]
fn damaged_crfsuite_models_fail_cleanly_in_every_command() {
    let m = models("bad-crfsuite");
    let x = m.dir.path("x.model");
    for (model, reason) in bad_crfsuite_models(&m.dir) {
        let name = s(&model);
        let commands: Vec<Vec<&str>> = vec![
            vec!["tag", "--model", name, s(&m.data)],
            vec!["dump", "--model", name],
            vec!["dump", "--model", name, "--json"],
            vec!["cws", "segment", "--model", name, s(&m.corpus)],
            vec!["train", "--init", name, "--model", s(&x), s(&m.data)],
        ];
        for args in commands {
            fails(run(&args), &[name, "not a valid CRFsuite model", reason]);
        }
        // Forged counts and lengths allocate nothing near what they claim.
        #[cfg(target_os = "linux")]
        {
            let o = Command::new("sh")
                .args([
                    "-c",
                    "ulimit -v 1048576 && exec \"$0\" \"$@\"",
                    BIN,
                    "dump",
                    "--model",
                    name,
                ])
                .output()
                .expect("run sh");
            fails(o, &[reason]);
        }
    }
}

#[test]
fn models_of_the_wrong_kind_are_named() {
    let m = models("kinds");
    fails(
        run(&["tag", "--model", s(&m.cws), s(&m.data)]),
        &[
            "cws.model",
            "chaincrf-cws/ngram-v2",
            "not CRF++ templates or CRFsuite attributes",
        ],
    );
    fails(
        run(&["cws", "segment", "--model", s(&m.crfpp), s(&m.corpus)]),
        &["crfpp.model: not a word-segmentation model"],
    );
    fails(
        run(&[
            "tag",
            "--model",
            s(&m.crfsuite),
            "--force-column",
            s(&m.dir.write("f.cs", "x\tw=a\tQ\n")),
        ]),
        &["f.cs:1", "forced label \"Q\" is not a label of the model"],
    );
    // A checkpoint is not a model, and a model is not a checkpoint.
    let ckpt = m.dir.path("cp.model.checkpoint");
    let cp_model = m.dir.path("cp.model");
    ok(run(&[
        "train",
        "--template",
        s(&m.template),
        "--model",
        s(&cp_model),
        "--max-iterations",
        "2",
        "--checkpoint-every",
        "1",
        s(&m.data),
    ]));
    assert!(ckpt.exists(), "a run cut off by --max-iterations keeps its checkpoint");
    std::fs::copy(&m.crfpp, &ckpt).unwrap();
    fails(
        run(&[
            "train",
            "--template",
            s(&m.template),
            "--model",
            s(&cp_model),
            "--resume",
            s(&m.data),
        ]),
        &[
            "not a valid chaincrf checkpoint",
            "a chaincrf model, not a training checkpoint",
        ],
    );
}

#[test]
fn invalid_utf8_and_nul_bytes_name_file_line_and_offset() {
    let m = models("utf8");
    let d = &m.dir;
    let bad_data = d.write("bad.data", b"the DT B-NP\nc\xffat NN I-NP\n");
    let nul_data = d.write("nul.data", b"the DT B-NP\nca\0t NN I-NP\n");
    let bad_text = d.write("bad.txt", "好的\n".bytes().chain(*b"ab\xfe\n").collect::<Vec<u8>>());
    let nul_text = d.write("nul.txt", b"ok\nab\0c\n");
    let bad_tpl = d.write("bad.tpl", b"U00:%x[0,0]\nU01:\xc3(\n");
    let (bd, nd, bt, nt) = (s(&bad_data), s(&nul_data), s(&bad_text), s(&nul_text));
    let x = s(&d.path("x.model")).to_owned();
    let utf8 = [
        (
            vec!["tag", "--model", s(&m.crfpp), bd],
            format!("{bd}:2: invalid UTF-8 at byte offset 1"),
        ),
        (vec!["eval", bd], format!("{bd}:2: invalid UTF-8 at byte offset 1")),
        (
            vec!["train", "--template", s(&m.template), "--model", &x, bd],
            format!("{bd}:2: invalid UTF-8 at byte offset 1"),
        ),
        (
            vec!["train", "--template", s(&bad_tpl), "--model", &x, s(&m.data)],
            format!("{}:2: invalid UTF-8 at byte offset 4", s(&bad_tpl)),
        ),
        (
            vec!["cws", "segment", "--model", s(&m.cws), bt],
            format!("{bt}:2: invalid UTF-8 at byte offset 2"),
        ),
        // The corpus readers count the offset from the start of the file.
        (
            vec!["cws", "train", "--corpus", bt, "--model", &x],
            format!("{bt}:2: invalid UTF-8 at byte offset 9"),
        ),
        (
            vec!["cws", "eval", "--gold", bt, "--pred", s(&m.corpus)],
            format!("{bt}:2: invalid UTF-8 at byte offset 9"),
        ),
        (
            vec![
                "cws",
                "eval",
                "--gold",
                s(&m.corpus),
                "--pred",
                s(&m.corpus),
                "--dict",
                bt,
            ],
            format!("{bt}:2: invalid UTF-8 at byte offset 9"),
        ),
        (
            vec!["cws", "segment", "--model", s(&m.cws), "--user-dict", bt, s(&m.corpus)],
            format!("{bt}:2: invalid UTF-8 at byte offset 9"),
        ),
    ];
    for (args, needle) in utf8 {
        fails(run(&args), &[&needle]);
    }
    let nul = [
        vec!["tag", "--model", s(&m.crfpp), nd],
        vec!["eval", nd],
        vec!["train", "--template", s(&m.template), "--model", &x, nd],
        vec!["cws", "segment", "--model", s(&m.cws), nt],
        vec!["cws", "train", "--corpus", nt, "--model", &x],
        vec!["cws", "eval", "--gold", nt, "--pred", nt],
    ];
    for args in nul {
        fails(run(&args), &[":2: NUL byte at byte offset", "binary or UTF-16"]);
    }
    // Standard input is named as such.
    fails(
        run_stdin(&["cws", "segment", "--model", s(&m.cws)], b"\xff\n"),
        &["<stdin>:1: invalid UTF-8 at byte offset 0"],
    );
    assert!(!d.path("x.model").exists());
}

#[test]
fn bom_crlf_blank_lines_and_empty_files() {
    let m = models("bom");
    let d = &m.dir;
    // Tagging: a BOM and CRLF line ends change nothing in the output.
    let plain = ok(run(&["tag", "--model", s(&m.crfpp), s(&m.data)])).stdout;
    let crlf = d.write("crlf.data", format!("\u{feff}{}", TRAIN.replace('\n', "\r\n")));
    assert_eq!(ok(run(&["tag", "--model", s(&m.crfpp), s(&crlf)])).stdout, plain);
    // Segmenting: one output line per input line, blank lines kept, BOM and CR dropped.
    let input = d.write(
        "in.txt",
        "\u{feff}我們在臺灣學習中文\r\n\r\n\r\n今天天氣很好\r\n   \r\n",
    );
    let out = text(&ok(run(&["cws", "segment", "--model", s(&m.cws), s(&input)])).stdout);
    let lines: Vec<&str> = out.split('\n').collect();
    assert_eq!(lines.len(), 6, "{out:?}");
    assert_eq!(lines[1..3], ["", ""]);
    assert_eq!(lines[0].replace(' ', ""), "我們在臺灣學習中文");
    assert_eq!(lines[3].replace(' ', ""), "今天天氣很好");
    assert_eq!((lines[4], lines[5]), ("", ""));
    // Empty inputs: nothing to tag or segment is not an error; nothing to train or score is.
    let empty = d.write("empty.txt", "");
    assert!(ok(run(&["tag", "--model", s(&m.crfpp), s(&empty)])).stdout.is_empty());
    assert!(ok(run(&["cws", "segment", "--model", s(&m.cws), s(&empty)]))
        .stdout
        .is_empty());
    let x = d.path("x.model");
    fails(run(&["eval", s(&empty)]), &["empty.txt: no tokens to evaluate"]);
    fails(
        run(&["train", "--template", s(&m.template), "--model", s(&x), s(&empty)]),
        &["empty.txt: no training sequence"],
    );
    let blank = d.write("blank.txt", "\n  \n\t\n");
    fails(
        run(&["cws", "train", "--corpus", s(&blank), "--model", s(&x)]),
        &["blank.txt: no sentences to train on"],
    );
    fails(
        run(&["cws", "eval", "--gold", s(&empty), "--pred", s(&m.corpus)]),
        &["empty.txt:1 and", "gold has 0 lines, prediction has 5"],
    );
    fails(
        run(&["train", "--template", s(&empty), "--model", s(&x), s(&m.data)]),
        &["no U or B line"],
    );
    assert!(!x.exists());
}

/// Non-whitespace characters of a line, in order.
fn visible(line: &str) -> String {
    line.chars().filter(|c| !c.is_whitespace()).collect()
}

#[test]
fn segment_handles_traditional_chinese_emoji_and_mixed_scripts() {
    let m = models("scripts");
    let mut lines: Vec<String> = [
        "這個問題很複雜，需要時間解決。",
        "今天天氣很好😀👍🏽大家一起去吃飯🍜",
        "iPhone 15 Pro售價NT$36,900元，2024年9月上市",
        "ＡＢＣ全形字母和半形abc混合 123 ４５６",
        "家族👨‍👩‍👧照片 e\u{301}té café",
        "日本語のテキストと한국어 텍스트",
        "\u{3000}全形空格\u{3000}分隔\u{3000}",
        "tab\tseparated\u{a0}nbsp\u{2028}line-separator",
        "🀄",
        "",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Real Traditional Chinese text when the shared data is there.
    if let Ok(root) = std::env::var("CHAINCRF_DATA") {
        let cityu = Path::new(&root).join("icwb2/cityu_test.utf8");
        if let Ok(file) = std::fs::File::open(cityu) {
            lines.extend(std::io::BufReader::new(file).lines().take(300).map_while(Result::ok));
        }
    }
    let input = m.dir.write("scripts.txt", lines.join("\n") + "\n");
    for extra in [&[][..], &["--keep-latin"], &["--confidence"]] {
        let mut args = vec!["cws", "segment", "--model", s(&m.cws), s(&input)];
        args.extend_from_slice(extra);
        let out = text(&ok(run(&args)).stdout);
        let got: Vec<&str> = out.strip_suffix('\n').unwrap_or(&out).split('\n').collect();
        assert_eq!(got.len(), lines.len(), "{extra:?}");
        for (g, l) in got.iter().zip(&lines) {
            let g = if extra == ["--confidence"] {
                g.split(' ')
                    .map(|w| w.rsplit_once('/').map_or(w, |(w, _)| w))
                    .collect::<String>()
            } else {
                g.to_string()
            };
            assert_eq!(visible(&g), visible(l), "{extra:?}");
        }
    }
}

/// One line of two million characters: segmentation is linear (a quadratic
/// step would take hours here), with and without confidences.
#[test]
fn segment_handles_a_line_of_millions_of_characters() {
    let m = models("long");
    let unit = "迈向充满希望的新世纪中国人民共同创造美好的未来abc123，";
    let n_chars = 2_000_000;
    let line: String = unit.chars().cycle().take(n_chars).collect();
    let input = m.dir.write("long.txt", format!("{line}\n短句\n"));
    for extra in [&[][..], &["--confidence"]] {
        let started = Instant::now();
        let out_path = m.dir.path("long.out");
        let mut args = vec!["cws", "segment", "--model", s(&m.cws), s(&input), "-o", s(&out_path)];
        args.extend_from_slice(extra);
        ok(run(&args));
        let secs = started.elapsed().as_secs_f64();
        assert!(secs < 120.0, "{extra:?} took {secs:.1}s");
        let out = std::fs::read_to_string(&out_path).unwrap();
        let got: Vec<&str> = out.lines().collect();
        assert_eq!(got.len(), 2);
        let words = got[0].split(' ');
        let joined: String = if extra.is_empty() {
            words.collect()
        } else {
            words.map(|w| w.rsplit_once('/').expect("word/probability").0).collect()
        };
        assert_eq!(joined.chars().count(), n_chars);
        assert!(joined == line, "{extra:?}: characters changed");
    }
}

#[test]
fn ragged_columns_and_bad_templates() {
    let m = models("columns");
    let d = &m.dir;
    let x = d.path("x.model");
    let ragged = d.write("ragged.data", "the DT B-NP\ncat NN\n");
    for args in [
        vec!["tag", "--model", s(&m.crfpp), s(&ragged)],
        vec!["eval", s(&ragged)],
        vec!["train", "--template", s(&m.template), "--model", s(&x), s(&ragged)],
    ] {
        fails(
            run(&args),
            &["ragged.data:2: expected 3 columns (as on line 1), found 2"],
        );
    }
    // Right count per file but not what the model reads.
    let two = d.write("two.data", "the DT\ncat NN\n");
    fails(
        run(&["tag", "--model", s(&m.crfpp), "--force-column", s(&two)]),
        &["two.data:1: 2 columns, but the model reads 2 feature column(s) plus the forced-label column"],
    );
    let forced = d.write("forced.data", "the DT B-NP ZZ\ncat NN I-NP _\n");
    fails(
        run(&["tag", "--model", s(&m.crfpp), "--force-column", s(&forced)]),
        &["forced.data:1: forced label \"ZZ\" is not a label of the model", "B-NP"],
    );
    let templates = [
        ("U00:%x[0,0\n", "tpl:1: column 11: malformed macro"),
        ("U00:%y[0,0]\n", "tpl:1: column 5: '%' must start a macro"),
        ("U00:%x[a,0]\n", "tpl:1: column 8:"),
        ("U00:%x[0,-1]\n", "tpl:1: column 10:"),
        ("# ok\nX01:%x[0,0]\n", "tpl:2: a template line must start with 'U'"),
        ("U00:%x[99999999999999999999,0]\n", "tpl:1: column 8:"),
        (
            "U00:%x[0,7]\n",
            "template line 1 (U00:%x[0,7]) uses column 7, but the data has only 2 feature column(s)",
        ),
    ];
    for (tpl, needle) in templates {
        let t = d.write("tpl", tpl);
        let line = fails(
            run(&["train", "--template", s(&t), "--model", s(&x), s(&m.data)]),
            &[needle],
        );
        assert!(!line.contains(":0:"), "whole-file errors have no line 0: {line}");
    }
    assert!(!x.exists());
}

/// An output that cannot be written is refused before any training, and the
/// file already at the model path is left byte for byte.
#[test]
fn unwritable_outputs_fail_before_training() {
    let m = models("outputs");
    let d = &m.dir;
    let dir_target = d.path("adir");
    std::fs::create_dir_all(&dir_target).unwrap();
    let missing = d.path("no/such/dir/m.model");
    let ro = d.path("ro");
    std::fs::create_dir_all(&ro).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    // Root writes into read-only directories; /proc refuses everyone.
    let ro_refuses = std::fs::File::create(ro.join("probe")).is_err();
    let mut targets = vec![
        dir_target.clone(),
        missing.clone(),
        PathBuf::from("/proc/chaincrf-test.model"),
    ];
    if ro_refuses {
        targets.push(ro.join("m.model"));
    }
    for target in &targets {
        let t = s(target);
        for args in [
            vec!["train", "--template", s(&m.template), "--model", t, s(&m.data)],
            vec!["cws", "train", "--corpus", s(&m.corpus), "--model", t],
        ] {
            let o = run(&args);
            assert!(
                !text(&o.stderr).contains("iter "),
                "trained before failing: {}",
                text(&o.stderr)
            );
            fails(o, &[t, "cannot be written (checked before training)"]);
        }
        fails(
            run(&["cws", "segment", "--model", s(&m.cws), s(&m.corpus), "-o", t]),
            &[t, "cannot write"],
        );
    }
    // A summary or checkpoint path that cannot be written is refused up front
    // too, and the existing model stays as it was.
    let before = std::fs::read(&m.crfpp).unwrap();
    let base = ["train", "--template", s(&m.template), "--model", s(&m.crfpp)];
    let summary = [&base[..], &["--summary-json", s(&dir_target), s(&m.data)]].concat();
    fails(run(&summary), &["summary cannot be written (checked before training)"]);
    std::fs::create_dir_all(d.path("crfpp.model.checkpoint")).unwrap();
    let with_ckpt = [&base[..], &["--checkpoint-every", "1", s(&m.data)]].concat();
    fails(
        run(&with_ckpt),
        &["checkpoint cannot be written (checked before training)"],
    );
    assert_eq!(std::fs::read(&m.crfpp).unwrap(), before);
    // A bad option is refused before reading anything.
    fails(
        run(&[
            "cws",
            "train",
            "--corpus",
            s(&m.corpus),
            "--model",
            s(&d.path("y")),
            "--checkpoint-every",
            "0",
        ]),
        &["--checkpoint-every must be at least 1"],
    );
}

#[test]
fn infer_rejects_malformed_potentials() {
    let cases: [(&[u8], &str); 10] = [
        (
            br#"{"emissions": [[1, 0], [0]], "transitions": [[0, 0], [0, 0]]}"#,
            "emissions row 1 has 1 scores, expected 2",
        ),
        (
            br#"{"emissions": [[1, 0]], "transitions": [[0, 0.5]]}"#,
            "transitions row 0 has 2 scores, expected 1",
        ),
        (br#"{"emissions": [[1]], "transitions": []}"#, "need at least one label"),
        (
            br#"{"emissions": [[1, 0]], "transitions": [[0, 0], [0, 0]], "start": [1]}"#,
            "start has 1 scores, expected 2",
        ),
        (
            br#"{"emissions": [[1e999, 0]], "transitions": [[0, 0], [0, 0]]}"#,
            "not a valid potentials object",
        ),
        (
            br#"{"emissions": [[null, null]], "transitions": [[0, 0], [0, 0]]}"#,
            "no allowed path",
        ),
        (
            br#"{"emissions": [[0]], "transitions": [[0]], "strat": [0]}"#,
            "unknown field `strat`",
        ),
        (br#"[[0]]"#, "not a valid potentials object"),
        (b"", "not a valid potentials object"),
        (b"{\"emissions\": [[0]], \"transitions\": [[0]]}\n\xff", "invalid UTF-8"),
    ];
    for (input, needle) in cases {
        fails(run_stdin(&["infer"], input), &["<stdin>", needle]);
    }
    ok(run_stdin(&["infer"], br#"{"emissions": [], "transitions": [[0]]}"#));
}

/// Arbitrary lines through `cws segment`: one output line per input line, and
/// each line's non-whitespace characters unchanged and in order.
#[test]
fn segment_keeps_every_character_of_random_lines() {
    let m = models("random");
    let pools: [&[char]; 6] = [
        &[
            '迈', '向', '希', '望', '臺', '灣', '學', '習', '的', '了', '，', '。', '「', '」',
        ],
        &['a', 'Z', '0', '9', '.', ',', '-', '/', '%', '$', '\'', '"'],
        &['😀', '👍', '\u{1f3fd}', '\u{200d}', '🍜', '🀄', '\u{fe0f}'],
        &[
            ' ', '\t', '\u{3000}', '\u{a0}', '\u{2028}', '\u{85}', '\r', '\u{b}', '\u{c}',
        ],
        &[
            '\u{301}',
            '\u{7f}',
            '\u{1}',
            '\u{fffd}',
            '\u{10ffff}',
            '\u{e000}',
            'ß',
            'Ω',
        ],
        &['ｱ', 'ｶ', 'Ａ', '１', '한', '글', 'の', 'ア'],
    ];
    // A fixed-seed generator, so a failure reproduces.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let lines: Vec<String> = (0..400)
        .map(|_| {
            let len = next(60);
            (0..len)
                .map(|_| {
                    let pool = pools[next(pools.len())];
                    pool[next(pool.len())]
                })
                .collect()
        })
        .collect();
    // Every line terminated, so an empty last line is still a line.
    let input = m.dir.write("random.txt", lines.join("\n") + "\n");
    let out = text(
        &ok(run(&[
            "cws",
            "segment",
            "--model",
            s(&m.cws),
            "--threads",
            "2",
            s(&input),
        ]))
        .stdout,
    );
    let got: Vec<&str> = out.strip_suffix('\n').unwrap_or(&out).split('\n').collect();
    assert_eq!(got.len(), lines.len());
    for (g, l) in got.iter().zip(&lines) {
        // A trailing CR is a line end, not content.
        assert_eq!(visible(g), visible(l.trim_end_matches('\r')), "line {l:?}");
    }
}

/// Synthetic CRF++ data that takes a few seconds to train with the stopping
/// rules off: enough iterations to interrupt one in the middle.
fn slow_training(dir: &TempDir) -> (PathBuf, PathBuf) {
    let mut data = String::new();
    let mut x: u64 = 12345;
    for _ in 0..4000 {
        for t in 0..12 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let w = (x >> 33) % 800;
            data.push_str(&format!("w{w} p{} L{}\n", w % 23, (w * 7 + t) % 6));
        }
        data.push('\n');
    }
    let template = "U00:%x[-1,0]\nU01:%x[0,0]\nU02:%x[1,0]\nU03:%x[0,1]\nU04:%x[-1,1]/%x[0,1]\nB\n";
    (dir.write("slow.data", data), dir.write("slow.tpl", template))
}

fn slow_train_command(data: &Path, template: &Path, model: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(["train", "--template", s(template), "--model", s(model), "--c2", "0.001"])
        .args(["--epsilon", "0", "--delta", "0", "--threads", "1"])
        .args(extra)
        .arg(s(data))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// Sends SIGINT to `child` (through `sh`, whose `kill` is a builtin everywhere).
fn interrupt(child: &Child) {
    let status = Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .expect("run sh");
    assert!(status.success());
}

/// The iteration number in a line `... iteration N: ...` or `... iteration N`.
fn iteration_in(line: &str) -> u64 {
    line.split("iteration ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no iteration number in {line:?}"))
}

/// Runs `command` until it writes `checkpoint`, then sends it SIGINT and
/// returns what it printed (stderr) and its exit status.
fn interrupt_at_first_checkpoint(command: &mut Command, checkpoint: &Path) -> Output {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run chaincrf");
    wait_for_file(&mut child, checkpoint);
    interrupt(&child);
    child.wait_with_output().unwrap()
}

/// Waits until `path` exists while `child` runs; panics if it ends first.
fn wait_for_file(child: &mut Child, path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("training ended ({status}) before writing {}", path.display());
        }
        assert!(Instant::now() < deadline, "no {} after 60 s", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigkill_leaves_the_previous_model_and_a_loadable_checkpoint() {
    let dir = TempDir::new("sigkill");
    let (data, template) = slow_training(&dir);
    let model = dir.path("m.model");
    let ckpt = dir.path("m.model.checkpoint");
    // A previous model at the path.
    ok(slow_train_command(&data, &template, &model, &["--max-iterations", "2"])
        .output()
        .unwrap());
    let before = std::fs::read(&model).unwrap();
    let mut child = slow_train_command(
        &data,
        &template,
        &model,
        &["--checkpoint-every", "1", "--max-iterations", "100000"],
    )
    .spawn()
    .unwrap();
    wait_for_file(&mut child, &ckpt);
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "training finished before the kill");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(std::fs::read(&model).unwrap(), before, "the previous model changed");
    // The checkpoint is whole: it loads (a run with no iteration left just
    // rebuilds the model from it) and training continues from its iteration.
    let saved = std::fs::read(&ckpt).unwrap();
    let out = ok(
        slow_train_command(&data, &template, &model, &["--resume", "--max-iterations", "1"])
            .output()
            .unwrap(),
    );
    let err = text(&out.stderr);
    let at = iteration_in(err.lines().find(|l| l.starts_with("resuming from")).unwrap_or(&err));
    assert!(at >= 1, "{err}");
    std::fs::write(&ckpt, &saved).unwrap();
    let limit = (at + 2).to_string();
    let out = ok(
        slow_train_command(&data, &template, &model, &["--resume", "--max-iterations", &limit])
            .output()
            .unwrap(),
    );
    let err = text(&out.stderr);
    for i in [at + 1, at + 2] {
        assert!(
            err.contains(&format!("iter {i:>4}")),
            "iterations continue from {at}: {err}"
        );
    }
    assert!(!err.contains(&format!("iter {:>4}", at + 3)), "{err}");
    assert!(err.contains("kept the checkpoint"), "{err}");
    ok(run(&["dump", "--model", s(&model)]));
}

/// Interrupted (here: cut off by an iteration limit) and resumed, training
/// writes the very model file an uninterrupted run writes: the checkpoint
/// carries L-BFGS's memory and the stopping rules' history. With an SGD warm
/// start, its epochs are not checkpointed and the resumed run does not redo them.
#[test]
fn resumed_training_writes_the_uninterrupted_model() {
    let dir = TempDir::new("exact-resume");
    let (data, template) = slow_training(&dir);
    for sgd in ["0", "2"] {
        let train = |model: &Path, extra: &[&str]| {
            let mut c = Command::new(BIN);
            c.args(["train", "--template", s(&template), "--model", s(model), "--c2", "0.01"])
                .args(["--period", "3", "--delta", "1e-3", "--sgd-epochs", sgd])
                .args(extra)
                .arg(s(&data));
            ok(c.output().unwrap())
        };
        let whole = dir.path(&format!("whole{sgd}.model"));
        let out = train(&whole, &["--max-iterations", "40", "--threads", "2"]);
        let err = text(&out.stderr);
        assert!(err.contains("converged"), "the delta test should end this run: {err}");
        let total: u64 = err
            .split("final objective")
            .nth(1)
            .and_then(|r| r.split(" after ").nth(1))
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(total > 6, "{err}");
        assert_eq!(
            err.lines().filter(|l| l.starts_with("sgd ")).count(),
            sgd.parse::<usize>().unwrap(),
            "{err}"
        );
        let parts = dir.path(&format!("parts{sgd}.model"));
        train(
            &parts,
            &["--max-iterations", "5", "--checkpoint-every", "5", "--threads", "1"],
        );
        assert!(dir.path(&format!("parts{sgd}.model.checkpoint")).exists());
        let out = train(&parts, &["--max-iterations", "40", "--resume", "--threads", "2"]);
        let err = text(&out.stderr);
        assert!(err.contains("resuming from") && err.contains("at iteration 5"), "{err}");
        assert!(!err.contains("sgd "), "the resumed run redid the SGD epochs: {err}");
        assert!(
            std::fs::read(&whole).unwrap() == std::fs::read(&parts).unwrap(),
            "sgd {sgd}: the resumed run wrote another model: {err}"
        );
    }
}

#[test]
fn resume_without_a_checkpoint_is_refused() {
    let dir = TempDir::new("no-checkpoint");
    let data = dir.write("d.data", TRAIN);
    let template = dir.write("t", TEMPLATE);
    let model = dir.path("m.model");
    fails(
        run(&[
            "train",
            "--template",
            s(&template),
            "--model",
            s(&model),
            "--resume",
            s(&data),
        ]),
        &["m.model.checkpoint: no checkpoint to resume from"],
    );
    let damaged = dir.write("m.model.checkpoint", b"CHAINCKP\x01\0\0\0");
    fails(
        run(&[
            "train",
            "--template",
            s(&template),
            "--model",
            s(&model),
            "--resume",
            s(&data),
        ]),
        &[s(&damaged), "not a valid chaincrf checkpoint", "truncated"],
    );
    assert!(!model.exists());
}

#[test]
fn sigint_saves_the_model_and_a_checkpoint() {
    let dir = TempDir::new("sigint");
    let (data, template) = slow_training(&dir);
    let model = dir.path("m.model");
    let ckpt = dir.path("m.model.checkpoint");
    let mut child = slow_train_command(
        &data,
        &template,
        &model,
        &["--checkpoint-every", "1000", "--max-iterations", "100000"],
    )
    .spawn()
    .unwrap();
    // Wait for training proper to run (the first progress line), then interrupt.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "training ended early: {seen}");
        seen.push_str(&line);
        if line.starts_with("iter    3") {
            break;
        }
    }
    interrupt(&child);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(!rest.contains("panicked"), "{rest}");
    let last = rest.lines().last().unwrap_or_default();
    assert!(last.starts_with("interrupted after iteration "), "{rest}");
    assert!(last.contains(s(&ckpt)) && last.contains("--resume"), "{last}");
    ok(run(&["dump", "--model", s(&model)]));
    assert!(ckpt.exists());
    // The checkpoint's iteration is the one the message names; resuming with
    // another regularization is refused, with the same one it continues.
    let iteration = iteration_in(last);
    let other = slow_train_command(&data, &template, &model, &["--resume", "--min-freq", "2"])
        .output()
        .unwrap();
    fails(other, &["written by a run on other data or with other options"]);
    let limit = (iteration + 2).to_string();
    let out = ok(
        slow_train_command(&data, &template, &model, &["--resume", "--max-iterations", &limit])
            .output()
            .unwrap(),
    );
    assert!(
        text(&out.stderr).contains(&format!("at iteration {iteration}")),
        "{}",
        text(&out.stderr)
    );
}

/// A segmented corpus of 3000 lines of 20 words drawn from a small set of
/// characters: slow enough per iteration to interrupt.
fn varied_corpus(dir: &TempDir) -> PathBuf {
    let chars: Vec<char> = "迈向充满希望的新世纪中国人民共同创造美好的未来我們在臺灣學習中文"
        .chars()
        .collect();
    let mut corpus = String::new();
    let mut x: u64 = 7;
    for _ in 0..3000 {
        for _ in 0..20 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let len = 1 + (x >> 60) as usize % 3;
            let start = (x >> 40) as usize % (chars.len() - 3);
            corpus.extend(&chars[start..start + len]);
            corpus.push_str("  ");
        }
        corpus.push('\n');
    }
    dir.write("corpus.txt", corpus)
}

/// An interrupt during the SGD warm start saves the model of the SGD weights,
/// writes no checkpoint (there is no optimizer state yet), says so, and exits
/// with 130.
#[test]
fn cws_train_sigint_during_sgd_saves_the_model_without_a_checkpoint() {
    let dir = TempDir::new("cws-sigint-sgd");
    let corpus = varied_corpus(&dir);
    let model = dir.path("s.model");
    let mut child = Command::new(BIN)
        .args(["cws", "train", "--corpus", s(&corpus), "--model", s(&model)])
        .args(["--sgd-epochs", "100000", "--threads", "1", "--checkpoint-every", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        if line.starts_with("sgd ") {
            break;
        }
        line.clear();
    }
    assert!(seen.contains("sgd "), "no SGD epoch reported: {seen}");
    interrupt(&child);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}{rest}");
    assert!(rest.contains("interrupted during the SGD warm start"), "{rest}");
    assert!(rest.contains("without --resume"), "{rest}");
    assert!(model.exists());
    assert!(!dir.path("s.model.checkpoint").exists());
    let seg = ok(run_stdin(
        &["cws", "segment", "--model", s(&model)],
        "我們在臺灣學習中文\n".as_bytes(),
    ));
    assert_eq!(visible(&text(&seg.stdout)), "我們在臺灣學習中文");
}

#[test]
fn cws_train_sigint_saves_and_resumes() {
    let dir = TempDir::new("cws-sigint");
    let corpus = varied_corpus(&dir);
    let model = dir.path("c.model");
    let ckpt = dir.path("c.model.checkpoint");
    let out = interrupt_at_first_checkpoint(
        Command::new(BIN)
            .args(["cws", "train", "--corpus", s(&corpus), "--model", s(&model)])
            .args([
                "--delta",
                "0",
                "--c2",
                "0.001",
                "--threads",
                "1",
                "--checkpoint-every",
                "1",
            ]),
        &ckpt,
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted after iteration"), "{err}");
    assert!(model.exists() && ckpt.exists());
    let seg = ok(run_stdin(
        &["cws", "segment", "--model", s(&model)],
        "我們在臺灣學習中文\n".as_bytes(),
    ));
    assert_eq!(visible(&text(&seg.stdout)), "我們在臺灣學習中文");
    let at = iteration_in(err.lines().last().unwrap_or_default());
    let limit = (at + 1).to_string();
    let resumed = ok(Command::new(BIN)
        .args([
            "cws",
            "train",
            "--corpus",
            s(&corpus),
            "--model",
            s(&model),
            "--delta",
            "0",
            "--c2",
            "0.001",
        ])
        .args(["--threads", "1", "--resume", "--max-iterations", &limit])
        .output()
        .unwrap());
    let rerr = text(&resumed.stderr);
    assert!(rerr.contains(&format!("at iteration {at}")), "{rerr}");
    assert!(rerr.contains(&format!("iter {:>4}", at + 1)), "{rerr}");
}

/// `cws train --semi-markov` on `corpus` into `model`, small and on one
/// thread, with words up to `max_word_len`.
fn semi_command(corpus: &Path, model: &Path, max_word_len: usize) -> Command {
    let mut command = Command::new(BIN);
    command
        .args([
            "cws",
            "train",
            "--semi-markov",
            "--max-word-len",
            &max_word_len.to_string(),
        ])
        .args([
            "--threads",
            "1",
            "--sgd-epochs",
            "0",
            "--max-iterations",
            "6",
            "--delta",
            "0",
        ])
        .args(["--corpus", s(corpus), "--model", s(model)]);
    command
}

/// [`semi_command`] with words up to 4 and `extra` options, run to its end.
fn semi_train(corpus: &Path, model: &Path, extra: &[&str]) -> Output {
    semi_command(corpus, model, 4)
        .args(extra)
        .output()
        .expect("run chaincrf")
}

#[test]
fn cws_train_semi_markov_resumes_in_its_second_stage_to_the_uninterrupted_model() {
    let dir = TempDir::new("cws-semi-resume");
    let corpus = dir.write("corpus.txt", CORPUS);
    let full = dir.path("full.model");
    let part = dir.path("part.model");
    let ckpt = dir.path("part.model.checkpoint");
    ok(semi_train(&corpus, &full, &["--semi-iterations", "6"]));
    // Cut off by the semi-Markov stage's limit with checkpoints on: the
    // checkpoint of its last iteration stays, and says how to go on.
    let cut = ok(semi_train(
        &corpus,
        &part,
        &["--semi-iterations", "3", "--checkpoint-every", "1"],
    ));
    let err = text(&cut.stderr);
    assert!(
        err.contains("kept the checkpoint") && err.contains("--semi-iterations"),
        "{err}"
    );
    assert!(ckpt.exists());
    let resumed = ok(semi_train(&corpus, &part, &["--semi-iterations", "6", "--resume"]));
    let err = text(&resumed.stderr);
    assert!(err.contains("at iteration 3"), "{err}");
    assert_eq!(
        std::fs::read(&full).unwrap(),
        std::fs::read(&part).unwrap(),
        "the resumed model differs from the uninterrupted one"
    );
    // The checkpoint belongs to a semi-Markov run with these options: a run
    // without --semi-markov, or with another word length, refuses it.
    let plain = run(&["cws", "train", "--corpus", s(&corpus), "--model", s(&part), "--resume"]);
    assert_eq!(plain.status.code(), Some(1), "{}", text(&plain.stderr));
    assert!(text(&plain.stderr).contains("other options"), "{}", text(&plain.stderr));
    let other = semi_command(&corpus, &part, 5).arg("--resume").output().unwrap();
    assert_eq!(other.status.code(), Some(1), "{}", text(&other.stderr));
}

#[test]
fn cws_train_semi_markov_sigint_saves_and_resumes_to_the_uninterrupted_model() {
    let dir = TempDir::new("cws-semi-sigint");
    let corpus = varied_corpus(&dir);
    let full = dir.path("full.model");
    let part = dir.path("part.model");
    let ckpt = dir.path("part.model.checkpoint");
    ok(semi_train(&corpus, &full, &["--semi-iterations", "4"]));
    // Interrupted at its first checkpoint: in the character stage or the
    // semi-Markov one, whichever the timing gives; either resumes exactly.
    let out = interrupt_at_first_checkpoint(
        semi_command(&corpus, &part, 4).args(["--semi-iterations", "4", "--checkpoint-every", "1"]),
        &ckpt,
    );
    let err = text(&out.stderr);
    if out.status.success() {
        // Finished before the signal arrived: nothing to resume.
        assert_eq!(std::fs::read(&full).unwrap(), std::fs::read(&part).unwrap());
        return;
    }
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains("interrupted after iteration") && err.contains("--resume"),
        "{err}"
    );
    let resumed = ok(semi_train(&corpus, &part, &["--semi-iterations", "4", "--resume"]));
    assert!(
        text(&resumed.stderr).contains("resuming from"),
        "{}",
        text(&resumed.stderr)
    );
    assert_eq!(
        std::fs::read(&full).unwrap(),
        std::fs::read(&part).unwrap(),
        "the resumed model differs from the uninterrupted one"
    );
}

#[test]
fn cws_train_semi_markov_writes_a_model_that_segments_like_the_fast_one_where_it_is_sure() {
    let dir = TempDir::new("cws-semi");
    let corpus = dir.write("corpus.txt", CORPUS);
    let fast = dir.path("fast.model");
    let semi = dir.path("semi.model");
    ok(run(&[
        "cws",
        "train",
        "--fast",
        "--corpus",
        s(&corpus),
        "--model",
        s(&fast),
    ]));
    let o = ok(run(&[
        "cws",
        "train",
        "--semi-markov",
        "--max-word-len",
        "6",
        "--semi-iterations",
        "10",
        "--corpus",
        s(&corpus),
        "--model",
        s(&semi),
    ]));
    assert!(text(&o.stderr).contains("character model:"), "{}", text(&o.stderr));
    let first_line = CORPUS.lines().next().unwrap().replace(' ', "");
    let out_fast = ok(run_stdin(
        &["cws", "segment", "--model", s(&fast)],
        first_line.as_bytes(),
    ));
    let out_semi = ok(run_stdin(
        &["cws", "segment", "--model", s(&semi), "--confidence"],
        first_line.as_bytes(),
    ));
    // The semi-Markov model segments its own training sentence as the gold does.
    let words: Vec<String> = text(&out_semi.stdout)
        .split_whitespace()
        .map(|w| w.rsplit_once('/').map_or(w, |(a, _)| a).to_owned())
        .collect();
    let gold: Vec<&str> = CORPUS.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(words, gold);
    assert_eq!(text(&out_fast.stdout).split_whitespace().collect::<Vec<_>>(), gold);
    // --fast and --semi-markov exclude each other.
    let o = run(&[
        "cws",
        "train",
        "--fast",
        "--semi-markov",
        "--corpus",
        s(&corpus),
        "--model",
        s(&semi),
    ]);
    assert_eq!(o.status.code(), Some(2), "a usage error");
    assert!(text(&o.stderr).contains("cannot be used with"), "{}", text(&o.stderr));
}
