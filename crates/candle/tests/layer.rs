//! The candle layer against core's masked loss (to 1e-9 in f64), against
//! finite differences of its own loss, and its decoders, constraints and
//! error messages.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use chaincrf_candle::{force_labels, Crf, Reduction, SequenceMask};
use chaincrf_core::loss::{self, CrfParams, Mask, PaddedBatch};
use rand::{Rng, SeedableRng};

const B: usize = 4;
const T: usize = 6;
const K: usize = 3;

/// Random scores, tags and a mask with an all-masked row, a full row, a row
/// whose first step is off and a row with holes.
struct Case {
    em: Vec<f64>,
    tags: Vec<u32>,
    flags: Vec<bool>,
    tr: Vec<f64>,
    st: Vec<f64>,
    en: Vec<f64>,
}

impl Case {
    fn new(seed: u64) -> Case {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut v = |n: usize| (0..n).map(|_| rng.random_range(-2.0..2.0)).collect::<Vec<f64>>();
        let (em, tr, st, en) = (v(B * T * K), v(K * K), v(K), v(K));
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed + 99);
        let tags = (0..B * T).map(|_| rng.random_range(0..K as u32)).collect();
        #[rustfmt::skip]
        let flags = [
            0, 0, 0, 0, 0, 0,
            1, 1, 1, 1, 1, 1,
            0, 1, 1, 0, 1, 0,
            1, 0, 0, 1, 1, 1,
        ].iter().map(|&f| f == 1).collect();
        Case {
            em,
            tags,
            flags,
            tr,
            st,
            en,
        }
    }

    fn params(&self) -> CrfParams<'_> {
        CrfParams {
            transitions: &self.tr,
            start: &self.st,
            end: &self.en,
            k: K,
        }
    }

    fn core_tags(&self) -> Vec<usize> {
        self.tags.iter().map(|&y| y as usize).collect()
    }

    fn mask_tensor(&self) -> Tensor {
        let m: Vec<u8> = self.flags.iter().map(|&f| u8::from(f)).collect();
        Tensor::from_vec(m, (B, T), &Device::Cpu).unwrap()
    }

    /// A layer whose variables hold this case's scores, in `dtype`.
    fn layer(&self, dtype: DType) -> (Crf, VarMap) {
        let vm = VarMap::new();
        let crf = Crf::new(K, VarBuilder::from_varmap(&vm, dtype, &Device::Cpu).pp("crf")).unwrap();
        {
            let data = vm.data().lock().unwrap();
            let set = |name: &str, v: &[f64], shape: &[usize]| {
                let t = Tensor::from_slice(v, shape, &Device::Cpu)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap();
                data[name].set(&t).unwrap();
            };
            set("crf.transitions", &self.tr, &[K, K]);
            set("crf.start", &self.st, &[K]);
            set("crf.end", &self.en, &[K]);
        }
        (crf, vm)
    }

    fn emissions(&self, dtype: DType) -> Var {
        let t = Tensor::from_slice(&self.em, (B, T, K), &Device::Cpu).unwrap();
        Var::from_tensor(&t.to_dtype(dtype).unwrap()).unwrap()
    }
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn assert_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "{what}[{i}]: {x} vs {y}");
    }
}

#[test]
fn loss_and_gradients_equal_core_in_f64_for_every_reduction() {
    let c = Case::new(1);
    let padded = PaddedBatch::new(&c.em, B, T, K, Mask::Flags(&c.flags)).unwrap();
    for reduction in Reduction::ALL {
        let (crf, _vm) = c.layer(DType::F64);
        let em = c.emissions(DType::F64);
        let tags = Tensor::from_slice(&c.tags, (B, T), &Device::Cpu).unwrap();
        let mask = c.mask_tensor();
        let loss = crf
            .nll(em.as_tensor(), &tags, SequenceMask::Tensor(&mask), reduction)
            .unwrap();
        let want = loss::nll_masked(&c.params(), &padded, &c.core_tags(), reduction).unwrap();
        if reduction == Reduction::None {
            assert_eq!(loss.dims(), [B]);
            assert_close(&flat(&loss), &want.per_sequence, 1e-12, "per-sequence loss");
        } else {
            assert_eq!(loss.dims(), [0usize; 0]);
            assert!((loss.to_scalar::<f64>().unwrap() - want.loss).abs() < 1e-12);
        }
        let grads = loss.sum_all().unwrap().backward().unwrap();
        let g = |t: &Tensor| flat(grads.get(t).expect("a gradient"));
        assert_close(&g(em.as_tensor()), &want.emission_grad, 1e-9, "emissions");
        assert_close(&g(crf.transitions()), &want.transition_grad, 1e-9, "transitions");
        assert_close(&g(crf.start()), &want.start_grad, 1e-9, "start");
        assert_close(&g(crf.end()), &want.end_grad, 1e-9, "end");
        // Masked positions (row 0 entirely) get no gradient.
        assert!(g(em.as_tensor())[..T * K].iter().all(|&x| x == 0.0));
    }
}

#[test]
fn an_unreduced_loss_takes_a_different_upstream_gradient_per_sequence() {
    let c = Case::new(2);
    let (crf, _vm) = c.layer(DType::F64);
    let em = c.emissions(DType::F64);
    let tags = Tensor::from_slice(&c.tags, (B, T), &Device::Cpu).unwrap();
    let mask = c.mask_tensor();
    let loss = crf
        .nll(em.as_tensor(), &tags, SequenceMask::Tensor(&mask), Reduction::None)
        .unwrap();
    let w = [0.5, -1.0, 2.0, 3.0];
    let weighted = (loss * Tensor::new(&w, &Device::Cpu).unwrap())
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = weighted.backward().unwrap();
    let padded = PaddedBatch::new(&c.em, B, T, K, Mask::Flags(&c.flags)).unwrap();
    let want = loss::nll_masked_weighted(&c.params(), &padded, &c.core_tags(), &w).unwrap();
    assert!((weighted.to_scalar::<f64>().unwrap() - want.loss).abs() < 1e-12);
    assert_close(
        &flat(grads.get(em.as_tensor()).unwrap()),
        &want.emission_grad,
        1e-9,
        "emissions",
    );
    assert_close(
        &flat(grads.get(crf.transitions()).unwrap()),
        &want.transition_grad,
        1e-9,
        "transitions",
    );
}

#[test]
fn gradients_equal_finite_differences_of_the_layer_loss() {
    let c = Case::new(3);
    let tags = Tensor::from_slice(&c.tags, (B, T), &Device::Cpu).unwrap();
    let mask = c.mask_tensor();
    let value = |c: &Case| {
        let (crf, _vm) = c.layer(DType::F64);
        let em = c.emissions(DType::F64);
        crf.nll(em.as_tensor(), &tags, SequenceMask::Tensor(&mask), Reduction::TokenMean)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let (crf, _vm) = c.layer(DType::F64);
    let em = c.emissions(DType::F64);
    let loss = crf
        .nll(em.as_tensor(), &tags, SequenceMask::Tensor(&mask), Reduction::TokenMean)
        .unwrap();
    let grads = loss.backward().unwrap();
    let h = 1e-5;
    let fd = |edit: &dyn Fn(&mut Case, f64)| {
        let (mut a, mut b) = (Case::new(3), Case::new(3));
        edit(&mut a, h);
        edit(&mut b, -h);
        (value(&a) - value(&b)) / (2.0 * h)
    };
    let ge = flat(grads.get(em.as_tensor()).unwrap());
    for idx in (0..B * T * K).step_by(5) {
        let d = fd(&|c, h| c.em[idx] += h);
        assert!((d - ge[idx]).abs() < 1e-7, "emission {idx}: {d} vs {}", ge[idx]);
    }
    let gt = flat(grads.get(crf.transitions()).unwrap());
    let gs = flat(grads.get(crf.start()).unwrap());
    let gn = flat(grads.get(crf.end()).unwrap());
    for (idx, g) in gt.iter().enumerate() {
        let d = fd(&|c, h| c.tr[idx] += h);
        assert!((d - g).abs() < 1e-7, "transition {idx}: {d} vs {g}");
    }
    for idx in 0..K {
        let d = fd(&|c, h| c.st[idx] += h);
        assert!((d - gs[idx]).abs() < 1e-7, "start {idx}");
        let d = fd(&|c, h| c.en[idx] += h);
        assert!((d - gn[idx]).abs() < 1e-7, "end {idx}");
    }
}

#[test]
fn f32_tensors_are_computed_in_f64_and_lengths_equal_a_prefix_mask() {
    let c = Case::new(4);
    let lengths = [0usize, 6, 3, 1];
    let flags: Vec<u8> = (0..B * T).map(|x| u8::from(x % T < lengths[x / T])).collect();
    let mask = Tensor::from_vec(flags, (B, T), &Device::Cpu).unwrap();
    let tags = Tensor::from_slice(&c.tags, (B, T), &Device::Cpu)
        .unwrap()
        .to_dtype(DType::I64)
        .unwrap();
    let (crf64, _a) = c.layer(DType::F64);
    let (crf32, _b) = c.layer(DType::F32);
    let em64 = c.emissions(DType::F64);
    let em32 = c.emissions(DType::F32);
    let l64 = crf64
        .nll(
            em64.as_tensor(),
            &tags,
            SequenceMask::Lengths(&lengths),
            Reduction::Mean,
        )
        .unwrap();
    let by_mask = crf64
        .nll(em64.as_tensor(), &tags, SequenceMask::Tensor(&mask), Reduction::Mean)
        .unwrap();
    assert_eq!(l64.to_scalar::<f64>().unwrap(), by_mask.to_scalar::<f64>().unwrap());
    let l32 = crf32
        .nll(
            em32.as_tensor(),
            &tags,
            SequenceMask::Lengths(&lengths),
            Reduction::Mean,
        )
        .unwrap();
    assert_eq!(l32.dtype(), DType::F32);
    let (a, b) = (
        l64.to_scalar::<f64>().unwrap(),
        f64::from(l32.to_scalar::<f32>().unwrap()),
    );
    assert!((a - b).abs() < 1e-5 * a.abs().max(1.0), "{a} vs {b}");
    let g32 = l32.backward().unwrap();
    let g64 = l64.backward().unwrap();
    assert_eq!(g32.get(em32.as_tensor()).unwrap().dtype(), DType::F32);
    assert_close(
        &flat(g32.get(crf32.transitions()).unwrap()),
        &flat(g64.get(crf64.transitions()).unwrap()),
        1e-5,
        "f32 transitions",
    );
}

#[test]
fn decoders_equal_core_and_respect_constraints() {
    let c = Case::new(5);
    let (mut crf, _vm) = c.layer(DType::F64);
    let em = c.emissions(DType::F64);
    let mask = c.mask_tensor();
    let padded = PaddedBatch::new(&c.em, B, T, K, Mask::Flags(&c.flags)).unwrap();
    assert_eq!(
        crf.decode(em.as_tensor(), SequenceMask::Tensor(&mask)).unwrap(),
        loss::viterbi_masked(&c.params(), &padded).unwrap()
    );
    assert_eq!(
        crf.decode_nbest(em.as_tensor(), SequenceMask::Tensor(&mask), 4)
            .unwrap(),
        loss::kbest_masked(&c.params(), &padded, 4).unwrap()
    );
    let m = crf.marginals(em.as_tensor(), SequenceMask::Tensor(&mask)).unwrap();
    assert_close(
        &flat(&m),
        &loss::marginals_masked(&c.params(), &padded).unwrap().marginals,
        1e-12,
        "marginals",
    );
    // Forbid 0 → 1, starting in 2 and ending in 0.
    crf.forbid_transition(0, 1).unwrap();
    crf.forbid_start(2).unwrap();
    crf.forbid_end(0).unwrap();
    for paths in crf
        .decode_nbest(em.as_tensor(), SequenceMask::Tensor(&mask), 20)
        .unwrap()
    {
        for p in paths.iter().filter(|p| !p.labels.is_empty()) {
            assert!(p.labels.windows(2).all(|w| w != [0, 1]), "{:?}", p.labels);
            assert_ne!(p.labels[0], 2);
            assert_ne!(*p.labels.last().unwrap(), 0);
        }
    }
    let m = flat(&crf.marginals(em.as_tensor(), SequenceMask::Full).unwrap());
    for i in 0..B {
        assert_eq!(m[(i * T) * K + 2], 0.0, "start label 2 has no mass");
        assert_eq!(m[(i * T + T - 1) * K], 0.0, "end label 0 has no mass");
    }
    // Loss with tags that respect the constraints: label 1 everywhere.
    let ones = Tensor::ones((B, T), DType::U32, &Device::Cpu).unwrap();
    let loss = crf
        .nll(em.as_tensor(), &ones, SequenceMask::Full, Reduction::Sum)
        .unwrap();
    let grads = loss.backward().unwrap();
    assert_eq!(
        flat(grads.get(crf.transitions()).unwrap())[1],
        0.0,
        "forbidden pair: no gradient"
    );
    assert_eq!(flat(grads.get(crf.start()).unwrap())[2], 0.0);
    // A gold path through a forbidden pair is an error naming the sequence.
    let mut bad = vec![1u32; B * T];
    bad[T + 2] = 0;
    let bad = Tensor::from_vec(bad, (B, T), &Device::Cpu).unwrap();
    let err = crf
        .nll(em.as_tensor(), &bad, SequenceMask::Full, Reduction::Sum)
        .unwrap_err();
    assert!(err.to_string().contains("sequence 1: no allowed path"), "{err}");
}

#[test]
fn forced_labels_are_minus_infinity_emissions_with_gradient_through_the_rest() {
    let c = Case::new(6);
    let (crf, _vm) = c.layer(DType::F64);
    let em = c.emissions(DType::F64);
    // Force label 2 at position 1 of every sequence.
    let mut allowed = vec![1u8; B * T * K];
    for i in 0..B {
        allowed[(i * T + 1) * K] = 0;
        allowed[(i * T + 1) * K + 1] = 0;
    }
    let allowed = Tensor::from_vec(allowed, (B, T, K), &Device::Cpu).unwrap();
    let forced = force_labels(em.as_tensor(), &allowed).unwrap();
    for p in crf.decode(&forced, SequenceMask::Full).unwrap() {
        assert_eq!(p.labels[1], 2);
    }
    let mut tags = c.tags.clone();
    for i in 0..B {
        tags[i * T + 1] = 2;
    }
    let tags = Tensor::from_vec(tags, (B, T), &Device::Cpu).unwrap();
    let loss = crf.nll(&forced, &tags, SequenceMask::Full, Reduction::Mean).unwrap();
    let g = flat(loss.backward().unwrap().get(em.as_tensor()).unwrap());
    assert!(g.iter().all(|x| x.is_finite()));
    for i in 0..B {
        assert_eq!(g[(i * T + 1) * K], 0.0);
        assert_eq!(
            g[(i * T + 1) * K + 2],
            0.0,
            "a forced gold label has marginal 1: gradient 0"
        );
    }
    assert!(force_labels(em.as_tensor(), &allowed.narrow(0, 0, 2).unwrap()).is_err());
}

#[test]
fn shape_dtype_and_label_mistakes_are_clear_errors() {
    let c = Case::new(7);
    let (crf, _vm) = c.layer(DType::F64);
    let em = c.emissions(DType::F64);
    let em = em.as_tensor();
    let tags = Tensor::from_slice(&c.tags, (B, T), &Device::Cpu).unwrap();
    let full = SequenceMask::Full;
    let err = |r: candle_core::Result<Tensor>| r.unwrap_err().to_string();
    let flat_em = em.reshape((B * T, K)).unwrap();
    assert!(err(crf.nll(&flat_em, &tags, full, Reduction::Mean)).contains("[batch, time, labels]"));
    let wide = Tensor::zeros((B, T, K + 1), DType::F64, &Device::Cpu).unwrap();
    assert!(err(crf.nll(&wide, &tags, full, Reduction::Mean)).contains("4 labels, the CRF has 3"));
    let half = em.to_dtype(DType::BF16).unwrap();
    assert!(err(crf.nll(&half, &tags, full, Reduction::Mean)).contains("f32 or f64"));
    let short = tags.narrow(1, 0, T - 1).unwrap();
    assert!(err(crf.nll(em, &short, full, Reduction::Mean)).contains("tags must be [batch, time]"));
    let float_tags = tags.to_dtype(DType::F32).unwrap();
    assert!(err(crf.nll(em, &float_tags, full, Reduction::Mean)).contains("integer"));
    assert!(err(crf.nll(em, &tags, SequenceMask::Lengths(&[1, 2]), Reduction::Mean)).contains("2 lengths"));
    assert!(err(crf.nll(em, &tags, SequenceMask::Lengths(&[1, 2, 7, 0]), Reduction::Mean)).contains("sequence 2"));
    let bad_mask = Tensor::ones((B, T + 1), DType::U8, &Device::Cpu).unwrap();
    assert!(err(crf.nll(em, &tags, SequenceMask::Tensor(&bad_mask), Reduction::Mean)).contains("mask must be"));
    // A tag out of range at an unmasked position names sequence and position;
    // a negative tag at a masked position is ignored.
    let mut t = vec![0i64; B * T];
    t[2 * T + 4] = 5;
    t[3 * T + 5] = -100;
    let t = Tensor::from_vec(t, (B, T), &Device::Cpu).unwrap();
    let lengths = [T, T, T, 5];
    let e = err(crf.nll(em, &t, SequenceMask::Lengths(&lengths), Reduction::Mean));
    assert!(e.contains("sequence 2: label 5 at position 4"), "{e}");
    let lengths = [T, T, 4, 5];
    assert!(crf
        .nll(em, &t, SequenceMask::Lengths(&lengths), Reduction::Mean)
        .is_ok());
    let mut nan = c.em.clone();
    nan[(T + 2) * K + 1] = f64::NAN;
    let nan = Tensor::from_vec(nan, (B, T, K), &Device::Cpu).unwrap();
    let e = err(crf.nll(&nan, &tags, full, Reduction::Mean));
    assert!(e.contains("sequence 1") && e.contains("NaN"), "{e}");
    let vm = VarMap::new();
    assert!(Crf::new(0, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).is_err());
    let mut crf = crf;
    assert!(crf.forbid_transition(0, 3).is_err());
}
