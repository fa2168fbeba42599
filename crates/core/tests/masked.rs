//! The masked, padded batch layer (`loss::nll_masked` and the masked decoders)
//! against brute-force enumeration written here from the definition (a masked
//! position is skipped and the chain joins across it), against the ragged
//! `nll_batch`, and against finite differences for every reduction.

use chaincrf_core::loss::{self, CrfParams, Mask, PaddedBatch, Reduction};
use chaincrf_core::Error;
use rand::{Rng, SeedableRng};

/// One random padded batch with a mask that has holes, a first step off, an
/// all-masked row and a full row.
struct Case {
    k: usize,
    batch: usize,
    time: usize,
    em: Vec<f64>,
    tags: Vec<usize>,
    flags: Vec<bool>,
    tr: Vec<f64>,
    st: Vec<f64>,
    en: Vec<f64>,
}

impl Case {
    fn new(seed: u64, k: usize, batch: usize, time: usize) -> Case {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut v = |n: usize, r: f64| (0..n).map(|_| rng.random_range(-r..r)).collect::<Vec<f64>>();
        let (em, tr, st, en) = (v(batch * time * k, 2.0), v(k * k, 1.0), v(k, 1.0), v(k, 1.0));
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed + 1000);
        let tags = (0..batch * time).map(|_| rng.random_range(0..k)).collect();
        let mut flags: Vec<bool> = (0..batch * time).map(|_| rng.random_bool(0.6)).collect();
        // Row 0 all masked, row 1 full, row 2 starts off and has a hole.
        flags[..time].iter_mut().for_each(|f| *f = false);
        if batch > 1 {
            flags[time..2 * time].iter_mut().for_each(|f| *f = true);
        }
        if batch > 2 && time > 2 {
            flags[2 * time] = false;
            flags[2 * time + 1] = true;
            flags[2 * time + 2] = false;
        }
        Case {
            k,
            batch,
            time,
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
            k: self.k,
        }
    }

    fn padded(&self) -> PaddedBatch<'_> {
        PaddedBatch::new(&self.em, self.batch, self.time, self.k, Mask::Flags(&self.flags)).unwrap()
    }

    fn kept(&self, i: usize) -> Vec<usize> {
        (0..self.time).filter(|&t| self.flags[i * self.time + t]).collect()
    }

    /// Score of `labels` on the kept positions of sequence `i`, from the definition.
    fn score(&self, i: usize, labels: &[usize]) -> f64 {
        let kept = self.kept(i);
        let k = self.k;
        let mut s = 0.0;
        for (j, (&t, &y)) in kept.iter().zip(labels).enumerate() {
            s += self.em[(i * self.time + t) * k + y];
            s += if j == 0 {
                self.st[y]
            } else {
                self.tr[labels[j - 1] * k + y]
            };
        }
        if let Some(&y) = labels.last() {
            s += self.en[y];
        }
        s
    }

    /// Every labelling of sequence `i`'s kept positions with its score.
    fn enumerate(&self, i: usize) -> Vec<(Vec<usize>, f64)> {
        let n = self.kept(i).len();
        let mut out = Vec::new();
        for code in 0..self.k.pow(n as u32) {
            let labels: Vec<usize> = (0..n).map(|j| code / self.k.pow(j as u32) % self.k).collect();
            let s = self.score(i, &labels);
            out.push((labels, s));
        }
        out
    }

    fn brute_nll(&self, i: usize) -> f64 {
        if self.kept(i).is_empty() {
            return 0.0;
        }
        let all = self.enumerate(i);
        let m = all.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        let log_z = m + all.iter().map(|p| (p.1 - m).exp()).sum::<f64>().ln();
        let gold: Vec<usize> = self.kept(i).iter().map(|&t| self.tags[i * self.time + t]).collect();
        log_z - self.score(i, &gold)
    }
}

#[test]
fn reduction_names_round_trip_and_bad_names_are_errors() {
    for r in Reduction::ALL {
        assert_eq!(r.name().parse::<Reduction>().unwrap(), r);
        assert_eq!(r.to_string(), r.name());
    }
    let err = "avg".parse::<Reduction>().unwrap_err();
    assert_eq!(err, Error::UnknownReduction("avg".into()));
    assert!(err.to_string().contains("token_mean"), "{err}");
}

#[test]
fn masked_loss_equals_enumeration_for_every_reduction() {
    for seed in 0..6 {
        let c = Case::new(seed, 3, 4, 5);
        let brute: Vec<f64> = (0..c.batch).map(|i| c.brute_nll(i)).collect();
        let tokens: usize = (0..c.batch).map(|i| c.kept(i).len()).sum();
        for r in Reduction::ALL {
            let out = loss::nll_masked(&c.params(), &c.padded(), &c.tags, r).unwrap();
            assert_eq!(out.tokens, tokens);
            for (a, b) in out.per_sequence.iter().zip(&brute) {
                assert!((a - b).abs() < 1e-9, "seed {seed} {r}: {a} vs {b}");
            }
            let sum: f64 = brute.iter().sum();
            let want = match r {
                Reduction::None | Reduction::Sum => sum,
                Reduction::Mean => sum / c.batch as f64,
                Reduction::TokenMean => sum / tokens as f64,
            };
            assert!(
                (out.loss - want).abs() < 1e-9,
                "seed {seed} {r}: {} vs {want}",
                out.loss
            );
            assert_eq!(out.per_sequence[0], 0.0, "the all-masked row has loss 0");
        }
    }
}

/// Central differences of the reduced loss with respect to every emission,
/// transition, start and end score.
#[test]
fn masked_gradients_equal_finite_differences() {
    let h = 1e-5;
    for (seed, r) in (10..).zip(Reduction::ALL) {
        let c = Case::new(seed, 3, 4, 4);
        let out = loss::nll_masked(&c.params(), &c.padded(), &c.tags, r).unwrap();
        let f = |c: &Case| loss::nll_masked(&c.params(), &c.padded(), &c.tags, r).unwrap().loss;
        let fd = |get: &dyn Fn(&mut Case) -> &mut f64| {
            let (mut a, mut b) = (Case::new(seed, 3, 4, 4), Case::new(seed, 3, 4, 4));
            *get(&mut a) += h;
            *get(&mut b) -= h;
            (f(&a) - f(&b)) / (2.0 * h)
        };
        for idx in 0..c.em.len() {
            let d = fd(&|c| &mut c.em[idx]);
            assert!(
                (d - out.emission_grad[idx]).abs() < 1e-7,
                "{r} emission {idx}: {d} vs {}",
                out.emission_grad[idx]
            );
            let (i, t) = (idx / c.k / c.time, idx / c.k % c.time);
            if !c.flags[i * c.time + t] {
                assert_eq!(out.emission_grad[idx], 0.0, "masked positions get no gradient");
            }
        }
        for idx in 0..c.k * c.k {
            let d = fd(&|c| &mut c.tr[idx]);
            assert!((d - out.transition_grad[idx]).abs() < 1e-7, "{r} transition {idx}");
        }
        for idx in 0..c.k {
            let d = fd(&|c| &mut c.st[idx]);
            assert!((d - out.start_grad[idx]).abs() < 1e-7, "{r} start {idx}");
            let d = fd(&|c| &mut c.en[idx]);
            assert!((d - out.end_grad[idx]).abs() < 1e-7, "{r} end {idx}");
        }
    }
}

#[test]
fn masked_loss_equals_nll_batch_on_the_gathered_sequences() {
    let c = Case::new(3, 4, 6, 9);
    let rows: Vec<Vec<f64>> = (0..c.batch)
        .map(|i| {
            c.kept(i)
                .iter()
                .flat_map(|&t| c.em[(i * c.time + t) * c.k..(i * c.time + t + 1) * c.k].to_vec())
                .collect()
        })
        .collect();
    let gold: Vec<Vec<usize>> = (0..c.batch)
        .map(|i| c.kept(i).iter().map(|&t| c.tags[i * c.time + t]).collect())
        .collect();
    // nll_batch's mean gradient over the non-empty sequences equals the
    // masked sum's gradient divided by their count.
    let nonempty: Vec<usize> = (0..c.batch).filter(|&i| !rows[i].is_empty()).collect();
    let batch: Vec<(&[f64], &[usize])> = nonempty.iter().map(|&i| (&rows[i][..], &gold[i][..])).collect();
    let reference = loss::nll_batch(&c.params(), &batch).unwrap();
    let out = loss::nll_masked(&c.params(), &c.padded(), &c.tags, Reduction::Sum).unwrap();
    let m = nonempty.len() as f64;
    for (j, &i) in nonempty.iter().enumerate() {
        assert!((out.per_sequence[i] - reference.per_sequence[j]).abs() < 1e-12);
        for (jj, &t) in c.kept(i).iter().enumerate() {
            for y in 0..c.k {
                let a = out.emission_grad[(i * c.time + t) * c.k + y];
                let b = reference.emission_grads[j][jj * c.k + y] * m;
                assert!((a - b).abs() < 1e-12);
            }
        }
    }
    for (a, b) in out.transition_grad.iter().zip(&reference.transition_grad) {
        assert!((a - b * m).abs() < 1e-12);
    }
    for (a, b) in out.start_grad.iter().zip(&reference.start_grad) {
        assert!((a - b * m).abs() < 1e-12);
    }
    for (a, b) in out.end_grad.iter().zip(&reference.end_grad) {
        assert!((a - b * m).abs() < 1e-12);
    }
}

#[test]
fn length_masks_equal_prefix_flag_masks_and_padding_is_ignored() {
    let c = Case::new(5, 3, 3, 6);
    let lengths = [0usize, 6, 2];
    let flags: Vec<bool> = (0..c.batch * c.time)
        .map(|x| x % c.time < lengths[x / c.time])
        .collect();
    let by_len = PaddedBatch::new(&c.em, c.batch, c.time, c.k, Mask::Lengths(&lengths)).unwrap();
    let by_flag = PaddedBatch::new(&c.em, c.batch, c.time, c.k, Mask::Flags(&flags)).unwrap();
    let a = loss::nll_masked(&c.params(), &by_len, &c.tags, Reduction::TokenMean).unwrap();
    let b = loss::nll_masked(&c.params(), &by_flag, &c.tags, Reduction::TokenMean).unwrap();
    assert_eq!(a, b);
    // Garbage in the padding (huge scores, out-of-range tags) changes nothing.
    let mut em = c.em.clone();
    let mut tags = c.tags.clone();
    for (x, &f) in flags.iter().enumerate() {
        if !f {
            em[x * c.k..(x + 1) * c.k].iter_mut().for_each(|e| *e = f64::NAN);
            tags[x] = 99;
        }
    }
    let garbage = PaddedBatch::new(&em, c.batch, c.time, c.k, Mask::Lengths(&lengths)).unwrap();
    assert_eq!(
        loss::nll_masked(&c.params(), &garbage, &tags, Reduction::TokenMean).unwrap(),
        a
    );
    // A full mask equals lengths all equal to time.
    let full = PaddedBatch::new(&c.em, c.batch, c.time, c.k, Mask::Full).unwrap();
    let all = [c.time; 3];
    let as_len = PaddedBatch::new(&c.em, c.batch, c.time, c.k, Mask::Lengths(&all)).unwrap();
    assert_eq!(
        loss::nll_masked(&c.params(), &full, &c.tags, Reduction::Mean).unwrap(),
        loss::nll_masked(&c.params(), &as_len, &c.tags, Reduction::Mean).unwrap()
    );
}

#[test]
fn an_all_masked_batch_has_zero_loss_and_gradient() {
    let c = Case::new(6, 3, 2, 3);
    let flags = vec![false; c.batch * c.time];
    let b = PaddedBatch::new(&c.em, c.batch, c.time, c.k, Mask::Flags(&flags)).unwrap();
    for r in Reduction::ALL {
        let out = loss::nll_masked(&c.params(), &b, &c.tags, r).unwrap();
        assert_eq!(out.loss, 0.0);
        assert_eq!(out.tokens, 0);
        assert!(out.emission_grad.iter().chain(&out.transition_grad).all(|&g| g == 0.0));
        assert!(out.start_grad.iter().chain(&out.end_grad).all(|&g| g == 0.0));
    }
    let paths = loss::viterbi_masked(&c.params(), &b).unwrap();
    assert!(paths.iter().all(|p| p.labels.is_empty() && p.score == 0.0));
}

#[test]
fn weighted_loss_is_the_weighted_sum_of_per_sequence_losses() {
    let c = Case::new(7, 3, 4, 5);
    let w = [0.5, -2.0, 3.0, 0.25];
    let out = loss::nll_masked_weighted(&c.params(), &c.padded(), &c.tags, &w).unwrap();
    let sum = loss::nll_masked(&c.params(), &c.padded(), &c.tags, Reduction::Sum).unwrap();
    let want: f64 = sum.per_sequence.iter().zip(&w).map(|(l, w)| l * w).sum();
    assert!((out.loss - want).abs() < 1e-12);
    // Emission gradients of a sequence scale with its weight alone.
    let block = c.time * c.k;
    for (i, wi) in w.iter().enumerate() {
        for x in i * block..(i + 1) * block {
            assert!((out.emission_grad[x] - wi * sum.emission_grad[x]).abs() < 1e-12);
        }
    }
}

#[test]
fn masked_decoders_equal_enumeration() {
    for seed in 20..26 {
        let c = Case::new(seed, 3, 4, 5);
        let paths = loss::viterbi_masked(&c.params(), &c.padded()).unwrap();
        let best3 = loss::kbest_masked(&c.params(), &c.padded(), 3).unwrap();
        let marg = loss::marginals_masked(&c.params(), &c.padded()).unwrap();
        for i in 0..c.batch {
            let mut all = c.enumerate(i);
            all.sort_by(|a, b| b.1.total_cmp(&a.1));
            assert!((paths[i].score - all[0].1).abs() < 1e-9);
            assert_eq!(paths[i].labels.len(), c.kept(i).len());
            assert!((c.score(i, &paths[i].labels) - all[0].1).abs() < 1e-9);
            for (p, q) in best3[i].iter().zip(&all) {
                assert!((p.score - q.1).abs() < 1e-9);
            }
            assert_eq!(best3[i].len(), all.len().min(3));
            // Marginals: probability mass of each label at each kept position.
            let m = all.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = all.iter().map(|p| (p.1 - m).exp()).sum();
            if c.kept(i).is_empty() {
                assert_eq!(marg.log_z[i], 0.0);
            } else {
                assert!((marg.log_z[i] - (m + z.ln())).abs() < 1e-9);
            }
            for t in 0..c.time {
                let j = c.kept(i).iter().position(|&u| u == t);
                for y in 0..c.k {
                    let got = marg.marginals[(i * c.time + t) * c.k + y];
                    let want = match j {
                        None => 0.0,
                        Some(j) => all.iter().filter(|p| p.0[j] == y).map(|p| (p.1 - m).exp()).sum::<f64>() / z,
                    };
                    assert!((got - want).abs() < 1e-9, "seed {seed} seq {i} t {t} y {y}");
                }
            }
        }
    }
}

#[test]
fn forbidden_scores_are_exact_and_a_forbidden_gold_path_names_its_sequence() {
    let mut c = Case::new(8, 3, 3, 4);
    c.tr[1] = f64::NEG_INFINITY; // 0 → 1 forbidden
    c.flags = vec![true; c.batch * c.time];
    c.tags = vec![2; c.batch * c.time];
    let marg = loss::marginals_masked(&c.params(), &c.padded()).unwrap();
    let paths = loss::kbest_masked(&c.params(), &c.padded(), 50).unwrap();
    for ps in &paths {
        for p in ps {
            assert!(p.labels.windows(2).all(|w| w != [0, 1]));
        }
    }
    let out = loss::nll_masked(&c.params(), &c.padded(), &c.tags, Reduction::Sum).unwrap();
    assert_eq!(out.transition_grad[1], 0.0, "a forbidden transition has no gradient");
    assert!(marg.marginals.iter().all(|m| m.is_finite()));
    // Gold path 0 → 1 in sequence 2 at padded positions 1, 2.
    c.tags[2 * c.time + 1] = 0;
    c.tags[2 * c.time + 2] = 1;
    let err = loss::nll_masked(&c.params(), &c.padded(), &c.tags, Reduction::Sum).unwrap_err();
    assert!(
        matches!(err, Error::InSequence { index: 2, ref source } if matches!(**source, Error::NoFeasiblePath { .. })),
        "{err}"
    );
}

#[test]
fn bad_input_is_a_clear_error_with_padded_positions() {
    let c = Case::new(9, 3, 3, 5);
    // Sequence 2 keeps positions 1, 3, 4 ...: a bad label at padded position 3.
    let mut flags = vec![true; 15];
    flags[10] = false;
    flags[12] = false;
    let mut tags = c.tags.clone();
    tags[2 * 5 + 3] = 7;
    let b = PaddedBatch::new(&c.em, 3, 5, 3, Mask::Flags(&flags)).unwrap();
    let err = loss::nll_masked(&c.params(), &b, &tags, Reduction::Mean).unwrap_err();
    assert_eq!(
        err,
        Error::InSequence {
            index: 2,
            source: Box::new(Error::LabelOutOfRange {
                position: 3,
                label: 7,
                num_labels: 3
            })
        }
    );
    assert!(
        err.to_string().starts_with("sequence 2: label 7 at position 3"),
        "{err}"
    );
    let mut em = c.em.clone();
    em[(2 * 5 + 4) * 3 + 1] = f64::NAN;
    let b = PaddedBatch::new(&em, 3, 5, 3, Mask::Flags(&flags)).unwrap();
    let err = loss::viterbi_masked(&c.params(), &b).unwrap_err();
    assert!(
        matches!(&err, Error::InSequence { index: 2, source } if matches!(**source, Error::InvalidScore { position: Some(4), index: 1, .. })),
        "{err}"
    );
    // Shapes.
    assert!(PaddedBatch::new(&c.em, 3, 4, 3, Mask::Full).is_err());
    assert!(PaddedBatch::new(&c.em, 3, 5, 3, Mask::Lengths(&[1, 2])).is_err());
    let err = PaddedBatch::new(&c.em, 3, 5, 3, Mask::Lengths(&[1, 6, 2])).unwrap_err();
    assert!(err.to_string().contains("sequence 1"), "{err}");
    assert!(PaddedBatch::new(&c.em, 3, 5, 3, Mask::Flags(&[true; 14])).is_err());
    let b = PaddedBatch::new(&c.em, 3, 5, 3, Mask::Full).unwrap();
    assert!(loss::nll_masked(&c.params(), &b, &c.tags[1..], Reduction::Mean).is_err());
    assert!(loss::nll_masked_weighted(&c.params(), &b, &c.tags, &[1.0]).is_err());
    let two = CrfParams {
        transitions: &[0.0; 4],
        start: &[],
        end: &[],
        k: 2,
    };
    assert!(loss::viterbi_masked(&two, &b).is_err());
}
