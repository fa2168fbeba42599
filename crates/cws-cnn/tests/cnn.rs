//! The CNN+CRF segmenter: the convolution's gradient against finite
//! differences, the candle network against the plain-Rust forward pass, a
//! few-second training run, model files (round trip, corruption), exact
//! resume, and a real-data run when `CHAINCRF_DATA` is set.

use candle_core::{DType, Device, Tensor};
use chaincrf_cws::{parse_sighan, Segmenter, TagScheme, UserDict};
use chaincrf_cws_cnn::{
    load_segmenter, train_cnn, Checkpoints, CnnNet, CnnShape, CnnStop, CnnTrainOptions, SplitMix64,
};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

const SHAPE: CnnShape = CnnShape {
    embedding: 4,
    filters: 5,
    layers: 2,
    kernel: 3,
};

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("chaincrf-cnn-{}-{name}", std::process::id()))
}

/// Tokens `[2, 6]`, the second sequence 4 long (right padding), and its mask.
fn small_batch(dtype: DType) -> (Tensor, Tensor, Vec<usize>) {
    let dev = &Device::Cpu;
    let tokens = Tensor::from_vec(vec![1u32, 2, 3, 0, 2, 1, 3, 3, 1, 2, 0, 0], (2, 6), dev).unwrap();
    let lengths = vec![6, 4];
    let mask: Vec<f64> = (0..12)
        .map(|i| if i % 6 < lengths[i / 6] { 1.0 } else { 0.0 })
        .collect();
    let mask = Tensor::from_vec(mask, (2, 6, 1), dev).unwrap().to_dtype(dtype).unwrap();
    (tokens, mask, lengths)
}

/// A scalar of the network's output: its scores weighted by fixed numbers,
/// summed over the unmasked positions, plus the CRF's loss.
fn objective(net: &CnnNet, tokens: &Tensor, mask: &Tensor, lengths: &[usize]) -> Tensor {
    let scores = net.forward(tokens, mask).unwrap();
    let mut rng = SplitMix64::new(7);
    let weights: Vec<f64> = (0..scores.elem_count()).map(|_| rng.uniform(1.0)).collect();
    let weights = Tensor::from_vec(weights, scores.shape(), &Device::Cpu).unwrap();
    let weighted = scores
        .broadcast_mul(mask)
        .unwrap()
        .mul(&weights)
        .unwrap()
        .sum_all()
        .unwrap();
    let tags = Tensor::from_vec(vec![0u32, 1, 2, 3, 3, 3, 3, 0, 1, 2, 0, 0], (2, 6), &Device::Cpu).unwrap();
    let nll = net
        .crf()
        .nll(
            &scores,
            &tags,
            chaincrf_candle::SequenceMask::Lengths(lengths),
            chaincrf_candle::Reduction::Sum,
        )
        .unwrap();
    (weighted + nll).unwrap()
}

#[test]
fn the_convolution_gradient_matches_finite_differences() {
    let net = CnnNet::new(SHAPE, TagScheme::Bmes, vec!['a', 'b', 'c'], 3, DType::F64).unwrap();
    let (tokens, mask, lengths) = small_batch(DType::F64);
    let grads = objective(&net, &tokens, &mask, &lengths).backward().unwrap();
    let eps = 1e-6;
    let mut checked = 0;
    // Embedding, both convolutions (weights and biases), the dense layer.
    for var in &net.vars()[..1 + 2 * SHAPE.layers + 2] {
        let analytic = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let base = var.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        for i in (0..base.len()).step_by(3) {
            let at = |d: f64| {
                let mut v = base.clone();
                v[i] += d;
                var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                objective(&net, &tokens, &mask, &lengths).to_scalar::<f64>().unwrap()
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
            var.set(&Tensor::from_vec(base.clone(), var.shape(), &Device::Cpu).unwrap())
                .unwrap();
            assert!(
                (numeric - analytic[i]).abs() <= 1e-6 * (1.0 + numeric.abs()),
                "variable {:?} entry {i}: finite difference {numeric}, gradient {}",
                var.shape(),
                analytic[i]
            );
            checked += 1;
        }
    }
    assert!(checked > 50);
}

#[test]
fn padded_batches_compute_each_sentence_alone_and_match_the_plain_forward() {
    let net = CnnNet::new(SHAPE, TagScheme::Bmes, vec!['a', 'b', 'c'], 5, DType::F32).unwrap();
    let (tokens, mask, _) = small_batch(DType::F32);
    let batched = net.forward(&tokens, &mask).unwrap().to_vec3::<f32>().unwrap();
    // The second sentence alone, unpadded.
    let alone_tokens = Tensor::from_vec(vec![3u32, 3, 1, 2], (1, 4), &Device::Cpu).unwrap();
    let alone_mask = Tensor::ones((1, 4, 1), DType::F32, &Device::Cpu).unwrap();
    let alone = net
        .forward(&alone_tokens, &alone_mask)
        .unwrap()
        .to_vec3::<f32>()
        .unwrap();
    for t in 0..4 {
        for y in 0..4 {
            let (a, b) = (batched[1][t][y], alone[0][t][y]);
            assert!(
                (a - b).abs() < 1e-5 * (1.0 + b.abs()),
                "t {t} y {y}: batched {a}, alone {b}"
            );
        }
    }
    // The model file's network (plain Rust) gives the candle scores.
    let model = net.to_model(TagScheme::Bmes).unwrap();
    let payload = chaincrf_cws_cnn::cnn_payload(&model).unwrap().unwrap();
    let mut out = vec![0.0; 6 * 4];
    payload
        .network
        .add_scores(&['a', 'b', 'c', 'x', 'b', 'a'], &mut out, &mut Default::default());
    for t in 0..6 {
        for y in 0..4 {
            assert!((out[t * 4 + y] as f32 - batched[0][t][y]).abs() < 1e-5, "t {t} y {y}");
        }
    }
}

const TOY: &str = "我们 是 学生\n学生 们 在 学习\n我们 在 北京 学习\n北京 是 首都\n他们 也 是 学生\n\
                   我们 喜欢 北京\n学生 们 喜欢 学习\n他们 在 首都 学习\n";

fn toy_options() -> CnnTrainOptions {
    CnnTrainOptions {
        shape: CnnShape {
            embedding: 16,
            filters: 16,
            layers: 2,
            kernel: 3,
        },
        epochs: 60,
        batch_size: 4,
        learning_rate: 1e-2,
        min_char_count: 1,
        seed: 11,
        ..CnnTrainOptions::default()
    }
}

#[test]
fn a_few_seconds_of_training_segment_the_training_text() {
    let corpus = parse_sighan(TOY).unwrap();
    let mut losses = Vec::new();
    let trained = train_cnn(&corpus, &toy_options(), &Checkpoints::default(), None, &mut |p| {
        losses.push(p.loss)
    })
    .unwrap();
    assert_eq!(trained.stop, CnnStop::Epochs);
    assert_eq!(losses.len(), 60);
    assert!(losses[59] < 0.1 * losses[0], "losses {losses:?}");
    let seg = chaincrf_cws_cnn::segmenter_from_model(trained.model.unwrap()).unwrap();
    for line in TOY.lines() {
        let text: String = line.split(' ').collect();
        assert_eq!(seg.words(&text).unwrap().join(" "), line);
    }
}

#[test]
fn models_round_trip_through_files_and_take_user_words_and_latin_runs() {
    let corpus = parse_sighan(TOY).unwrap();
    let options = CnnTrainOptions {
        epochs: 20,
        ..toy_options()
    };
    let model = train_cnn(&corpus, &options, &Checkpoints::default(), None, &mut |_| {})
        .unwrap()
        .model
        .unwrap();
    let before = chaincrf_cws_cnn::segmenter_from_model(model.clone()).unwrap();
    let path = temp("roundtrip.model");
    chaincrf_model::save(&model, &path).unwrap();
    let after = load_segmenter(&path).unwrap();
    for text in ["我们在北京学习", "他们是首都的学生", "ABC１２３学生们"] {
        let (mut a, mut b) = (before.session(), after.session());
        assert_eq!(a.segment(text, true).unwrap(), b.segment(text, true).unwrap());
    }
    // Hard constraints: a user word comes out whole, so do Latin runs.
    let mut dict = UserDict::new();
    dict.insert("在北京学");
    let constrained = load_segmenter(&path).unwrap().with_user_dict(dict);
    assert!(constrained.words("我们在北京学习").unwrap().contains(&"在北京学"));
    let latin = load_segmenter(&path).unwrap().keep_latin_runs(true);
    assert!(latin.words("我们ab12cd学习").unwrap().contains(&"ab12cd"));
    // The feature segmenter's loader refuses it with a clear message.
    let err = Segmenter::load(&path).unwrap_err().to_string();
    assert!(err.contains("not a word-segmentation model"), "{err}");
    std::fs::remove_file(&path).ok();
}

#[test]
fn corrupt_and_truncated_model_files_are_clear_errors() {
    let corpus = parse_sighan(TOY).unwrap();
    let options = CnnTrainOptions {
        epochs: 1,
        ..toy_options()
    };
    let model = train_cnn(&corpus, &options, &Checkpoints::default(), None, &mut |_| {})
        .unwrap()
        .model
        .unwrap();
    let path = temp("corrupt.model");
    chaincrf_model::save(&model, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_segmenter(&path).unwrap_err().to_string();
    assert!(
        err.contains(&path.display().to_string()) && err.contains("truncated"),
        "{err}"
    );
    let mut flipped = bytes.clone();
    let n = flipped.len();
    flipped[n - 100] ^= 0x40;
    std::fs::write(&path, &flipped).unwrap();
    let err = load_segmenter(&path).unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    // A well-formed file whose network does not fit together.
    let mut bad = model.clone();
    let mut payload = chaincrf_cws_cnn::cnn_payload(&model).unwrap().unwrap();
    payload.network.convs[0].bias.pop();
    bad.set_extractor(chaincrf_model::ExtractorSpec::Custom {
        kind: chaincrf_cws_cnn::CNN_KIND.into(),
        payload: chaincrf_model::encode_payload(&payload).unwrap(),
    });
    chaincrf_model::save(&bad, &path).unwrap();
    let err = load_segmenter(&path).unwrap_err().to_string();
    assert!(err.contains("convolution 1"), "{err}");
    std::fs::remove_file(&path).ok();
}

#[test]
fn an_interrupted_run_resumes_to_the_same_model() {
    let corpus = parse_sighan(TOY).unwrap();
    let options = CnnTrainOptions {
        epochs: 3,
        dev_every: Some(4),
        ..toy_options()
    };
    let whole = train_cnn(&corpus, &options, &Checkpoints::default(), None, &mut |_| {})
        .unwrap()
        .model
        .unwrap();
    let path = temp("resume.checkpoint");
    let checkpoints = Checkpoints {
        path: Some(path.clone()),
        every: Some(1),
        resume: false,
    };
    // Raised from the start: the run stops after its first batch.
    let stop = Arc::new(AtomicBool::new(true));
    let first = train_cnn(&corpus, &options, &checkpoints, Some(stop), &mut |_| {}).unwrap();
    assert_eq!(first.stop, CnnStop::Interrupted);
    assert!(first.model.is_none());
    let resumed = train_cnn(
        &corpus,
        &options,
        &Checkpoints {
            resume: true,
            ..checkpoints.clone()
        },
        None,
        &mut |_| {},
    )
    .unwrap();
    let bytes = |m| chaincrf_model::to_bytes(m).unwrap();
    assert!(bytes(&whole) == bytes(resumed.model.as_ref().unwrap()));
    // Another run's options are refused.
    let other = CnnTrainOptions { seed: 12, ..options };
    let err = train_cnn(
        &corpus,
        &other,
        &Checkpoints {
            resume: true,
            ..checkpoints
        },
        None,
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("another corpus or other options"), "{err}");
    std::fs::remove_file(&path).ok();
}

#[test]
fn real_data_a_small_slice_of_pku_trains() {
    let Some(dir) = std::env::var_os("CHAINCRF_DATA").map(PathBuf::from) else {
        eprintln!("skipped: set CHAINCRF_DATA to the shared data folder to run");
        return;
    };
    let (_, sentences) = chaincrf_cws::read_corpus(dir.join("pku-199801/199801.txt")).unwrap();
    // The seed's network on the first 2,000 sentences, 3 epochs: about 30 s of CPU.
    let slice = &sentences[..2000];
    let options = CnnTrainOptions {
        epochs: 3,
        dev_every: Some(20),
        patience: Some(1),
        ..CnnTrainOptions::default()
    };
    let started = std::time::Instant::now();
    let mut f1 = Vec::new();
    let trained = train_cnn(slice, &options, &Checkpoints::default(), None, &mut |p| {
        eprintln!(
            "epoch {}: loss {:.3}, held-out F1 {:?}, {:.1}s",
            p.epoch, p.loss, p.heldout_f1, p.seconds
        );
        f1.push(p.heldout_f1.unwrap());
    })
    .unwrap();
    eprintln!("{} sentences in {:?}", trained.train_sentences, started.elapsed());
    assert!(f1.iter().any(|&f| f > 0.8), "held-out F1 {f1:?}");
    // The Bakeoff test text (ASCII digits, unlike the training text's full-width
    // ones) through the segmenter: width normalization and the plain-Rust network.
    let seg = chaincrf_cws_cnn::segmenter_from_model(trained.model.unwrap()).unwrap();
    let raw = chaincrf_cws::read_raw(dir.join("icwb2/pku_test.utf8")).unwrap();
    let gold = chaincrf_cws::read_raw(dir.join("icwb2/pku_test_gold.utf8")).unwrap();
    let mut scorer = chaincrf_cws::Scorer::new(None);
    for (line, g) in raw.iter().zip(&gold).take(300) {
        scorer.add_line(g, &seg.words(line).unwrap().join(" ")).unwrap();
    }
    let score = scorer.score();
    eprintln!("first 300 test lines: F1 {:.4}", score.f1);
    assert!(score.f1 > 0.75, "test F1 {}", score.f1);
}
