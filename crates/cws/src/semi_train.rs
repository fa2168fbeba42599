//! Training the semi-Markov (hybrid) segmenter: character features and
//! whole-word features in one model, by L-BFGS through `chaincrf-train`.
//!
//! The run starts with the character model ([`crate::train`]): its weights
//! are the hybrid's starting point, with every segment weight at 0, where the
//! hybrid scores exactly what the chain scores (see [`crate::semi`]). L-BFGS
//! then trains all weights together on the semi-Markov likelihood
//! (`HybridObjective`, a `chaincrf_train::Differentiable`), so the
//! character weights adjust to what the word features now explain. Held-out
//! word F1 is reported per iteration and drives early stopping.
//!
//! The objective is computed in two passes, deterministic on any number of
//! threads: sentences in fixed chunks (in parallel) give their loss, the
//! gradient of every character's four tag scores, and the small gradients
//! (transitions, segment features); then one ordered pass adds the tag
//! gradients into the attribute weights.

use crate::corpus::Sentence;
use crate::error::{ConfigError, Error, Result};
use crate::normalize::normalize;
use crate::semi::SemiModel;
use crate::semi::{ChainScores, HybridPotentials, SegmentFeatures, MULTI, SINGLE};
use crate::train::{prepare, train_segmenter_with, CwsTrainOptions, CwsTrained, Prepared};
use crate::words::{WordFeatures, WordStats};
use chaincrf_core::semimarkov::{Segment, SemiMarkovNll, SemiMarkovWorkspace};
use chaincrf_core::MaxPlus;
use chaincrf_features::AttrKind;
use chaincrf_model::{Checkpoint, Model, ObservationArena, WeightLayout};
use chaincrf_train::{
    Algorithm, Differentiable, EvalError, Params, Progress, Report, SavedState, Termination, Trainer,
};
use rayon::prelude::*;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Options of the semi-Markov stage (on top of [`CwsTrainOptions`], which
/// train the character model it starts from).
#[derive(Clone, Debug)]
pub struct SemiOptions {
    /// The longest word (`L`) the model considers. Default 10.
    pub max_len: usize,
    /// L-BFGS iterations of the joint training. Default 30.
    pub max_iterations: u64,
    /// Stop when held-out word F1 has not improved for this many iterations.
    pub patience: Option<usize>,
    /// Keep the character model's attribute weights as trained and train
    /// only the word-feature weights and the transitions.
    pub freeze_characters: bool,
    /// The word counts a training sentence sees leave its own fold out
    /// (folds laid out as [`CwsTrainOptions::fold_layout`] says), as the
    /// lexicon features do;
    /// with jackknifed lexicon features their fold count is used instead, so
    /// both leave out the same sentences. Default 10; 0 or 1 turns it off
    /// (then every gold word is known to its own sentence, and the model
    /// learns to distrust unknown words).
    pub folds: usize,
}

impl Default for SemiOptions {
    fn default() -> Self {
        SemiOptions {
            max_len: 10,
            max_iterations: 30,
            patience: None,
            freeze_characters: false,
            folds: 10,
        }
    }
}

/// One corpus compiled for the semi-Markov objective.
struct Compiled {
    arena: ObservationArena,
    /// Per sentence: length, first candidate index.
    sentences: Vec<(usize, usize)>,
    /// Per candidate (`n·L` per sentence), where its features start in
    /// `features` (one more entry than candidates).
    offsets: Vec<u32>,
    features: Vec<u32>,
    gold: Vec<Vec<Segment>>,
}

impl Compiled {
    /// The semi-Markov potentials of sentence `i` under weights `w`
    /// (`[chain layout…, segment features…]`), with `e` and `seg` as scratch.
    #[allow(clippy::too_many_arguments)]
    fn potentials_into(
        &self,
        i: usize,
        w: &[f64],
        layout: WeightLayout,
        max_len: usize,
        pot: &mut HybridPotentials,
        e: &mut Vec<f64>,
        seg: &mut Vec<f64>,
    ) {
        let (n, first) = self.sentences[i];
        let (to, so, eo) = (layout.transition_offset(), layout.start_offset(), layout.end_offset());
        emissions_into(&self.arena, i, n, &w[..layout.edge_offset()], e);
        self.segment_scores_into(first, n * max_len, &w[layout.len()..], seg);
        pot.fill(
            ChainScores {
                emissions: e,
                transitions: &w[to..so],
                start: &w[so..eo],
                end: &w[eo..layout.len()],
            },
            max_len,
            seg,
        );
    }

    /// The scores of candidates `first..first + count` under segment weights `w`.
    fn segment_scores_into(&self, first: usize, count: usize, w: &[f64], out: &mut Vec<f64>) {
        out.clear();
        out.extend((first..first + count).map(|c| {
            let (a, b) = (self.offsets[c] as usize, self.offsets[c + 1] as usize);
            self.features[a..b].iter().map(|&f| w[f as usize]).sum::<f64>()
        }));
    }

    /// Adds `g` to the gradient of every feature of candidate `c`.
    #[inline]
    fn add_to_features(&self, c: usize, g: f64, out: &mut [f64]) {
        let (a, b) = (self.offsets[c] as usize, self.offsets[c + 1] as usize);
        for &f in &self.features[a..b] {
            out[f as usize] += g;
        }
    }
}

/// The gold words of a sentence as segments of at most `max_len` characters.
fn gold_segments(words: &[String], max_len: usize) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut at = 0;
    for w in words {
        let len = w.chars().count();
        // A word longer than the limit becomes the fewest pieces that fit,
        // as even as possible, so no piece is a lone character.
        let pieces = len.div_ceil(max_len).max(1);
        for p in 0..pieces {
            let d = len / pieces + usize::from(p < len % pieces);
            if d == 0 {
                continue;
            }
            out.push(Segment {
                start: at,
                len: d,
                label: if d == 1 { SINGLE } else { MULTI },
            });
            at += d;
        }
    }
    out
}

fn compile(
    sentences: &[&Sentence],
    extractor_of: &dyn Fn(usize) -> usize,
    extractors: &[&crate::ngram::NgramExtractor],
    features_of: &dyn Fn(usize) -> usize,
    features: &[WordFeatures<'_>],
    model: &Model,
    max_len: usize,
) -> Result<Compiled> {
    let mut arena = ObservationArena::new();
    let mut out = Compiled {
        arena: ObservationArena::new(),
        sentences: Vec::with_capacity(sentences.len()),
        offsets: vec![0],
        features: Vec::new(),
        gold: Vec::with_capacity(sentences.len()),
    };
    let mut sets: Vec<Vec<u32>> = Vec::new();
    for (i, s) in sentences.iter().enumerate() {
        let chars = normalize(&s.concat());
        let n = chars.len();
        arena.push(extractors[extractor_of(i)], &chars[..], model.attributes());
        sets.iter_mut().for_each(Vec::clear);
        sets.resize(n * max_len, Vec::new());
        features[features_of(i)].extract(&chars, &mut |start, d, f| {
            if d <= max_len && start + d <= n {
                sets[start * max_len + d - 1].push(f);
            }
        });
        let first = out.offsets.len() - 1;
        for set in sets.iter().take(n * max_len) {
            out.features.extend_from_slice(set);
            let end = u32::try_from(out.features.len()).map_err(|_| Error::from(ConfigError::TooManyWordFeatures))?;
            out.offsets.push(end);
        }
        out.sentences.push((n, first));
        out.gold.push(gold_segments(s, max_len));
    }
    out.arena = arena;
    Ok(out)
}

/// The emissions of sequence `i` of `arena` under state weights `w` (`k = 4`).
fn emissions_into(arena: &ObservationArena, i: usize, n: usize, w: &[f64], out: &mut Vec<f64>) {
    out.clear();
    out.resize(n * 4, 0.0);
    let base = arena.sequence_start(i);
    for (t, row) in out.chunks_exact_mut(4).enumerate() {
        let (ids, values) = arena.state_at(base + t);
        for (j, &id) in ids.iter().enumerate() {
            let v = values.map_or(1.0, |v| f64::from(v[j]));
            let wr = &w[id as usize * 4..id as usize * 4 + 4];
            for y in 0..4 {
                row[y] += v * wr[y];
            }
        }
    }
}

/// The last evaluation: weights, value, gradient.
type Evaluated = (Vec<f64>, f64, Vec<f64>);

/// What one chunk of sentences contributes to the objective.
struct ChunkOut {
    loss: f64,
    transitions: [f64; 16],
    start: [f64; 4],
    end: [f64; 4],
    segment: Vec<f64>,
}

/// The semi-Markov likelihood of a compiled corpus with L2 regularization,
/// over the weights `[chain layout…, segment features…]`.
pub(crate) struct HybridObjective<'c> {
    data: &'c Compiled,
    layout: WeightLayout,
    num_segment: usize,
    max_len: usize,
    c2: f64,
    /// The attribute weights do not move (gradient and L2 left out).
    freeze_characters: bool,
    chunks: Vec<Range<usize>>,
    pool: rayon::ThreadPool,
    cache: Mutex<Option<Evaluated>>,
    evaluations: AtomicUsize,
}

// B/M/E/S ids.
const B: usize = 0;
const M: usize = 1;
const E: usize = 2;
const S: usize = 3;

impl<'c> HybridObjective<'c> {
    /// The objective over `data`, on `threads` threads (0 = all cores).
    fn new(
        data: &'c Compiled,
        layout: WeightLayout,
        num_segment: usize,
        max_len: usize,
        c2: f64,
        threads: usize,
    ) -> Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|source| Error::Threads { threads, source })?;
        // Fixed chunks of 200 sentences: the sums do not depend on the threads.
        let chunks: Vec<Range<usize>> = (0..data.sentences.len())
            .step_by(200)
            .map(|s| s..(s + 200).min(data.sentences.len()))
            .collect();
        Ok(HybridObjective {
            data,
            layout,
            num_segment,
            max_len,
            c2,
            freeze_characters: false,
            chunks,
            pool,
            cache: Mutex::new(None),
            evaluations: AtomicUsize::new(0),
        })
    }

    fn evaluate(&self, w: &[f64]) -> std::result::Result<(f64, Vec<f64>), EvalError> {
        let layout = self.layout;
        let (to, so, eo) = (layout.transition_offset(), layout.start_offset(), layout.end_offset());
        let data = self.data;
        let total_positions = data.arena.num_positions();
        let mut tag_grad = vec![0.0; total_positions * 4];
        // Split the tag gradient by chunk, in order.
        let mut slices = Vec::with_capacity(self.chunks.len());
        let mut rest = tag_grad.as_mut_slice();
        for r in &self.chunks {
            let len: usize = data.sentences[r.clone()].iter().map(|&(n, _)| n * 4).sum();
            let (head, tail) = rest.split_at_mut(len);
            slices.push(head);
            rest = tail;
        }
        let l = self.max_len;
        let outs: Vec<std::result::Result<ChunkOut, EvalError>> = self.pool.install(|| {
            self.chunks
                .par_iter()
                .zip(slices.into_par_iter())
                .map(|(range, grad)| {
                    let mut out = ChunkOut {
                        loss: 0.0,
                        transitions: [0.0; 16],
                        start: [0.0; 4],
                        end: [0.0; 4],
                        segment: vec![0.0; self.num_segment],
                    };
                    let mut nll = SemiMarkovNll::<chaincrf_core::Log>::new();
                    let mut pot = HybridPotentials::new();
                    let mut e = Vec::new();
                    let mut seg = Vec::new();
                    let mut at = 0;
                    for i in range.clone() {
                        let (n, first) = data.sentences[i];
                        data.potentials_into(i, w, layout, l, &mut pot, &mut e, &mut seg);
                        let loss = nll.compute(&pot, &data.gold[i]).map_err(|err| EvalError {
                            sequence: i,
                            message: err.to_string(),
                        })?;
                        out.loss += loss;
                        let g = nll.gradient();
                        let de = &mut grad[at..at + n * 4];
                        // Middle characters: a difference array over positions.
                        let mut middle = vec![0.0; n + 1];
                        for i0 in 0..n {
                            for d in 1..=l.min(n - i0) {
                                let row = (i0 * l + d - 1) * 2;
                                let c = first + i0 * l + d - 1;
                                if d == 1 {
                                    let gs = g.segments[row + SINGLE];
                                    de[i0 * 4 + S] += gs;
                                    data.add_to_features(c, gs, &mut out.segment);
                                    continue;
                                }
                                let gm = g.segments[row + MULTI];
                                if gm == 0.0 {
                                    continue;
                                }
                                data.add_to_features(c, gm, &mut out.segment);
                                let last = i0 + d - 1;
                                de[i0 * 4 + B] += gm;
                                de[last * 4 + E] += gm;
                                if d == 2 {
                                    out.transitions[B * 4 + E] += gm;
                                } else {
                                    middle[i0 + 1] += gm;
                                    middle[last] -= gm;
                                    out.transitions[B * 4 + M] += gm;
                                    out.transitions[M * 4 + M] += (d - 3) as f64 * gm;
                                    out.transitions[M * 4 + E] += gm;
                                }
                            }
                        }
                        let mut run = 0.0;
                        for t in 0..n {
                            run += middle[t];
                            de[t * 4 + M] += run;
                        }
                        let gt = &g.transitions;
                        out.transitions[S * 4 + S] += gt[SINGLE * 2 + SINGLE];
                        out.transitions[S * 4 + B] += gt[SINGLE * 2 + MULTI];
                        out.transitions[E * 4 + S] += gt[MULTI * 2 + SINGLE];
                        out.transitions[E * 4 + B] += gt[MULTI * 2 + MULTI];
                        out.start[S] += g.start[SINGLE];
                        out.start[B] += g.start[MULTI];
                        out.end[S] += g.end[SINGLE];
                        out.end[E] += g.end[MULTI];
                        at += n * 4;
                    }
                    Ok(out)
                })
                .collect()
        });
        let mut grad = vec![0.0; w.len()];
        let mut loss = 0.0;
        for out in outs {
            let out = out?;
            loss += out.loss;
            for (o, x) in grad[to..so].iter_mut().zip(&out.transitions) {
                *o += x;
            }
            for (o, x) in grad[so..eo].iter_mut().zip(&out.start) {
                *o += x;
            }
            for (o, x) in grad[eo..layout.len()].iter_mut().zip(&out.end) {
                *o += x;
            }
            for (o, x) in grad[layout.len()..].iter_mut().zip(&out.segment) {
                *o += x;
            }
        }
        // The tag gradients into the attribute weights, in position order.
        let scatter_to = if self.freeze_characters { 0 } else { total_positions };
        for p in 0..scatter_to {
            let (ids, values) = data.arena.state_at(p);
            let row = &tag_grad[p * 4..p * 4 + 4];
            for (j, &id) in ids.iter().enumerate() {
                let v = values.map_or(1.0, |v| f64::from(v[j]));
                let o = &mut grad[id as usize * 4..id as usize * 4 + 4];
                for y in 0..4 {
                    o[y] += v * row[y];
                }
            }
        }
        // L2 on every weight (forbidden transitions have no gradient and stay 0).
        let from = if self.freeze_characters {
            layout.edge_offset()
        } else {
            0
        };
        for (g, &x) in grad.iter_mut().zip(w).skip(from) {
            loss += self.c2 * x * x;
            *g += 2.0 * self.c2 * x;
        }
        Ok((loss, grad))
    }
}

impl Differentiable for HybridObjective<'_> {
    fn dim(&self) -> usize {
        self.layout.len() + self.num_segment
    }
    fn cost_and_gradient(&self, w: &[f64]) -> std::result::Result<(f64, Vec<f64>), EvalError> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((cw, f, g)) = cache.as_ref() {
            if cw.as_slice() == w {
                return Ok((*f, g.clone()));
            }
        }
        let (f, g) = self.evaluate(w)?;
        self.evaluations.fetch_add(1, Ordering::Relaxed);
        *cache = Some((w.to_vec(), f, g.clone()));
        Ok((f, g))
    }
    fn evaluations(&self) -> usize {
        self.evaluations.load(Ordering::Relaxed)
    }
    fn expand(&self, w: &[f64]) -> Vec<f64> {
        w.to_vec()
    }
}

/// Word-level F1 of Viterbi segmentations of `data` under weights `w`.
fn word_f1(data: &Compiled, layout: WeightLayout, max_len: usize, w: &[f64]) -> f64 {
    let counts: Vec<(usize, usize, usize)> = (0..data.sentences.len())
        .into_par_iter()
        .map_init(
            || {
                (
                    HybridPotentials::new(),
                    SemiMarkovWorkspace::<MaxPlus>::new(),
                    Vec::new(),
                    Vec::new(),
                )
            },
            |(pot, ws, e, seg), i| {
                data.potentials_into(i, w, layout, max_len, pot, e, seg);
                let gold = &data.gold[i];
                match ws.viterbi(&*pot) {
                    Ok(best) => {
                        let span = |s: &Segment| (s.start, s.len);
                        let gold_spans: std::collections::HashSet<_> = gold.iter().map(span).collect();
                        let correct = best.segments.iter().filter(|s| gold_spans.contains(&span(s))).count();
                        (correct, best.segments.len(), gold.len())
                    }
                    Err(_) => (0, 0, gold.len()),
                }
            },
        )
        .collect();
    let (c, p, g) = counts
        .iter()
        .fold((0, 0, 0), |acc, x| (acc.0 + x.0, acc.1 + x.1, acc.2 + x.2));
    if p == 0 || g == 0 || c == 0 {
        return 0.0;
    }
    let (pr, re) = (c as f64 / p as f64, c as f64 / g as f64);
    2.0 * pr * re / (pr + re)
}

/// Trains the semi-Markov segmenter: the character model of `options` first
/// (its progress events come first), then the joint training of every
/// weight with the word features of [`crate::words`].
///
/// # Errors
/// As [`train_semi_segmenter_with`].
pub fn train_semi_segmenter(
    sentences: &[Sentence],
    options: &CwsTrainOptions,
    semi: &SemiOptions,
    stop: Option<Arc<AtomicBool>>,
    on_progress: &mut dyn FnMut(&Progress<'_>),
) -> Result<(CwsTrained, Report)> {
    train_semi_segmenter_with(sentences, options, semi, None, stop, &mut |_, p| on_progress(p))
}

/// Where [`train_semi_segmenter_with`] resumes a run.
#[derive(Clone, Copy, Debug)]
pub enum SemiResume<'a> {
    /// A checkpoint of the character stage, as [`train_segmenter_with`]
    /// writes them: that stage continues, then the semi-Markov stage runs.
    Character(&'a Checkpoint),
    /// A checkpoint of the semi-Markov stage: its `model` is the character
    /// model the stage started from, its `weights` the character part of the
    /// stage's current weights (the layout of that model) and its optimizer
    /// state the stage's own, which holds every weight (see [`SemiStage::Semi`]).
    Semi(&'a Checkpoint),
}

/// Which stage of a semi-Markov run a progress event comes from.
#[derive(Clone, Copy, Debug)]
pub enum SemiStage<'a> {
    /// The character model's training (its [`Progress::model`] is that model).
    Character,
    /// The joint training, whose [`Progress::weights`] are the character
    /// model's layout followed by the word features' weights. A checkpoint of
    /// it stores `character` as its model, the character part of the weights
    /// as its weights and [`Progress::saved_state`] as its optimizer state;
    /// [`SemiResume::Semi`] continues from it exactly.
    Semi {
        /// The character model the stage started from.
        character: &'a Model,
    },
}

/// [`train_semi_segmenter`], resumable: progress events say which stage they
/// come from (so that a caller can checkpoint either stage), and `resume`
/// continues a run from a checkpoint of either stage, exactly (the model is
/// the one an uninterrupted run writes, bit for bit).
///
/// # Errors
/// As [`train_segmenter_with`]; [`Error::Config`] for options the
/// semi-Markov model does not support (another scheme than B/M/E/S, a
/// maximum length of 0) and for a semi-Markov checkpoint that does not fit
/// this run (its weights' length, or a character model that is not a B/M/E/S
/// state-feature model); [`Error::Train`] for an optimizer state that does not
/// decode.
pub fn train_semi_segmenter_with(
    sentences: &[Sentence],
    options: &CwsTrainOptions,
    semi: &SemiOptions,
    resume: Option<SemiResume<'_>>,
    stop: Option<Arc<AtomicBool>>,
    on_progress: &mut dyn FnMut(SemiStage<'_>, &Progress<'_>),
) -> Result<(CwsTrained, Report)> {
    if options.scheme != crate::TagScheme::Bmes {
        return Err(ConfigError::SemiMarkovScheme.into());
    }
    if semi.max_len == 0 || semi.max_len > WordStats::MAX_MAX_LEN {
        return Err(ConfigError::MaxWordLength {
            got: semi.max_len,
            max: WordStats::MAX_MAX_LEN,
        }
        .into());
    }
    if semi.max_iterations == 0 {
        return Err(ConfigError::NoSemiMarkovIterations.into());
    }
    // The character stage: trained (or continued from its checkpoint), or,
    // when the run resumes in the semi-Markov stage, taken from that checkpoint.
    let (model, chain_report, semi_resume) = match resume {
        Some(SemiResume::Semi(c)) => (c.model.clone(), None, Some(c)),
        character => {
            let from = match character {
                Some(SemiResume::Character(c)) => Some(c),
                _ => None,
            };
            let chain = train_segmenter_with(sentences, options, from, stop.clone(), &mut |p| {
                on_progress(SemiStage::Character, p)
            })?;
            if matches!(chain.report.termination, Termination::Interrupted { .. }) {
                // Stopped during the character stage: that model is the result.
                let report = chain.report.clone();
                return Ok((chain, report));
            }
            (chain.model, Some(chain.report), None)
        }
    };
    let Prepared {
        train_set,
        dev_set,
        config,
        extractor,
        fold_extractors,
    } = prepare(sentences, options)?;
    if model.attributes().len(AttrKind::Edge) != 0 || model.num_labels() != 4 {
        return Err(ConfigError::CharacterModel.into());
    }
    let l = semi.max_len;
    let folds = match fold_extractors.len() {
        0 | 1 => semi.folds,
        n => n,
    };
    let folds = if folds > 1 { folds } else { 0 };
    let words: Vec<Vec<String>> = train_set.iter().map(|s| s.to_vec()).collect();
    let n = train_set.len();
    let layout = options.fold_layout;
    let stats = WordStats::from_sentences_in_folds(&words, l, folds, |i| layout.fold_of(i, n, folds.max(1)));
    let fold_views: Vec<WordFeatures<'_>> = if folds > 1 {
        (0..folds).map(|f| WordFeatures::new(stats.view(Some(f)), l)).collect()
    } else {
        vec![WordFeatures::new(stats.view(None), l)]
    };
    let total_view = [WordFeatures::new(stats.view(None), l)];
    let mut extractors: Vec<&crate::ngram::NgramExtractor> = fold_extractors.iter().collect();
    if extractors.is_empty() {
        extractors.push(&extractor);
    }
    let fold_of = |i: usize| if folds > 1 { layout.fold_of(i, n, folds) } else { 0 };
    // Lexicon folds and word-count folds leave out the same sentences when
    // both exist (same count, same layout); without lexicon folds there is
    // one extractor.
    let extractor_of = |i: usize| {
        if extractors.len() > 1 {
            layout.fold_of(i, n, extractors.len())
        } else {
            0
        }
    };
    let train = compile(&train_set, &extractor_of, &extractors, &fold_of, &fold_views, &model, l)?;
    let dev = if dev_set.is_empty() {
        None
    } else {
        Some(compile(
            &dev_set,
            &|_| 0,
            &[&extractor],
            &|_| 0,
            &total_view,
            &model,
            l,
        )?)
    };
    let layout = model.layout();
    let num_segment = total_view[0].num_features();
    let c2 = options.params.params().l2();
    let threads = options.threads;
    let mut objective = HybridObjective::new(&train, layout, num_segment, l, c2, threads)?;
    objective.freeze_characters = semi.freeze_characters;
    let mut start = model.to_flat();
    for x in start.iter_mut() {
        if !x.is_finite() {
            *x = 0.0;
        }
    }
    start.resize(layout.len() + num_segment, 0.0);
    // L2 is in the objective itself (c2 of the character model's options);
    // the semi-Markov stage has no L1.
    let params = Params::new(Algorithm::Lbfgs)
        .max_iterations(Some(semi.max_iterations))
        .check()?;
    let stage = SemiStage::Semi { character: &model };
    let mut trainer = Trainer::new(params).observer(|p: &Progress<'_>| on_progress(stage, p));
    if let Some(c) = semi_resume {
        if c.weights.len() != layout.len() {
            return Err(ConfigError::SemiMarkovCheckpoint {
                expected: layout.len(),
                got: c.weights.len(),
            }
            .into());
        }
        trainer = trainer.resume_from(SavedState::from_bytes(&c.optimizer)?);
    }
    if let Some(p) = semi.patience {
        trainer = trainer.early_stopping(p);
    }
    if let Some(flag) = stop {
        trainer = trainer.stop_flag(flag);
    }
    let heldout = |w: &[f64]| {
        objective
            .pool
            .install(|| word_f1(dev.as_ref().expect("held-out data"), layout, l, w))
    };
    let minimized = trainer.minimize(
        &objective,
        start,
        dev.as_ref().map(|_| &heldout as &dyn Fn(&[f64]) -> f64),
    )?;
    let w = &minimized.weights;
    let semi_model = SemiModel {
        max_len: l,
        stats,
        weights: w[layout.len()..].iter().map(|&x| x as f32).collect(),
    };
    let inventory = crate::segmenter::stored_inventory(&model)?;
    let spec = config.semi_spec(inventory.as_ref(), &semi_model)?;
    let mut chain_w = w[..layout.len()].to_vec();
    // Forbidden transitions, starts and ends stay as the structure says.
    let original = model.to_flat();
    for (x, o) in chain_w.iter_mut().zip(&original) {
        if !o.is_finite() {
            *x = *o;
        }
    }
    let trained = Model::from_flat(
        model.labels().clone(),
        model.attributes().clone(),
        spec,
        model.structure().clone(),
        &chain_w,
    );
    let report = minimized.report;
    Ok((
        CwsTrained {
            model: trained,
            // A run resumed in the semi-Markov stage has no report of the
            // character stage: the stage's own stands for both.
            report: chain_report.unwrap_or_else(|| report.clone()),
            train_sentences: train_set.len(),
            dev_sentences: dev_set.len(),
        },
        report,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::parse_sighan;
    use crate::segmenter::EXTRACTOR_KIND_SEMI;
    use crate::train::train_segmenter;
    use crate::Segmenter;
    use chaincrf_model::ExtractorSpec;

    const CORPUS: &str = "我们 是 学生\n学生 们 在 学习\n我们 在 北京 学习\n北京 是 首都\n\
        中华人民共和国 成立 了\n我们 学习 中文\n他 在 北京大学 学习\n首都 北京\n";

    fn small_options() -> CwsTrainOptions {
        CwsTrainOptions {
            min_freq: 1,
            lexicon_folds: 2,
            prune_threshold: 0.0,
            threads: 1,
            params: Params::new(Algorithm::Lbfgs)
                .c2(0.1)
                .max_iterations(Some(15))
                .check()
                .unwrap(),
            ..CwsTrainOptions::default()
        }
    }

    #[test]
    fn the_gradient_matches_finite_differences() {
        let sentences = parse_sighan(CORPUS).unwrap();
        let options = small_options();
        let chain = train_segmenter(&sentences, &options, &mut |_| {}).unwrap();
        let prepared = prepare(&sentences, &options).unwrap();
        let l = 4;
        let stats = WordStats::from_sentences(&prepared.train_set.iter().map(|s| s.to_vec()).collect::<Vec<_>>(), l, 2);
        let views: Vec<WordFeatures<'_>> = (0..2).map(|f| WordFeatures::new(stats.view(Some(f)), l)).collect();
        let extractors: Vec<&crate::ngram::NgramExtractor> = prepared.fold_extractors.iter().collect();
        let data = compile(
            &prepared.train_set,
            &|i| i % 2,
            &extractors,
            &|i| i % 2,
            &views,
            &chain.model,
            l,
        )
        .unwrap();
        let layout = chain.model.layout();
        let num_segment = views[0].num_features();
        let objective = HybridObjective::new(&data, layout, num_segment, l, 0.1, 2).unwrap();
        let mut w: Vec<f64> = chain
            .model
            .to_flat()
            .into_iter()
            .map(|x| if x.is_finite() { x } else { 0.0 })
            .collect();
        w.resize(layout.len() + num_segment, 0.0);
        // Some segment weights away from 0, so their gradient is exercised.
        for (i, x) in w[layout.len()..].iter_mut().enumerate() {
            *x = ((i * 7919) % 13) as f64 / 13.0 - 0.5;
        }
        let (f, g) = objective.cost_and_gradient(&w).unwrap();
        assert!(f.is_finite() && f > 0.0);
        let (to, so) = (layout.transition_offset(), layout.start_offset());
        let mut coords: Vec<usize> = (to..so).collect();
        coords.extend(layout.start_offset()..layout.len());
        coords.extend((0..layout.edge_offset()).step_by(layout.edge_offset() / 40 + 1));
        coords.extend((layout.len()..w.len()).filter(|&i| g[i] != 0.0).take(60));
        let h = 1e-5;
        for &i in &coords {
            let mut wp = w.clone();
            wp[i] += h;
            let mut wm = w.clone();
            wm[i] -= h;
            let fd =
                (objective.cost_and_gradient(&wp).unwrap().0 - objective.cost_and_gradient(&wm).unwrap().0) / (2.0 * h);
            assert!(
                (fd - g[i]).abs() <= 1e-5 * (1.0 + fd.abs()),
                "weight {i}: finite difference {fd}, gradient {}",
                g[i]
            );
        }
        // The same on one thread, bit for bit.
        let one = HybridObjective::new(&data, layout, num_segment, l, 0.1, 1).unwrap();
        let (f1, g1) = one.cost_and_gradient(&w).unwrap();
        assert_eq!(f.to_bits(), f1.to_bits());
        assert!(g.iter().zip(&g1).all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn a_trained_semi_markov_model_segments_and_round_trips() {
        let sentences = parse_sighan(CORPUS).unwrap();
        let options = small_options();
        let semi = SemiOptions {
            max_len: 4,
            max_iterations: 20,
            patience: None,
            freeze_characters: false,
            folds: 10,
        };
        let (trained, report) = train_semi_segmenter(&sentences, &options, &semi, None, &mut |_| {}).unwrap();
        assert!(report.iterations > 0);
        let bytes = chaincrf_model::to_bytes(&trained.model).unwrap();
        let model = chaincrf_model::from_bytes(&bytes, std::path::Path::new("semi.model")).unwrap();
        let seg = Segmenter::from_model(model).unwrap();
        assert!(seg.is_semi_markov());
        assert_eq!(seg.words("我们在北京学习").unwrap(), ["我们", "在", "北京", "学习"]);
        // Confidences are probabilities, and the words are the same.
        let words = seg.session().segment("我们在北京学习", true).unwrap();
        assert_eq!(words.len(), 4);
        assert!(words
            .iter()
            .all(|w| w.confidence.is_some_and(|c| (0.0..=1.0).contains(&c))));
        // A forced word longer than the model's limit of 4 comes out whole.
        let seg = seg.with_user_dict(crate::UserDict::from_words(["中华人民共和国成立"]));
        assert_eq!(seg.words("中华人民共和国成立了").unwrap(), ["中华人民共和国成立", "了"]);
        // So does a Latin run.
        let seg = seg.keep_latin_runs(true);
        assert_eq!(seg.words("我们学习abcdefgh").unwrap(), ["我们", "学习", "abcdefgh"]);
        // A forced run too long for the semi-Markov decoder: the character
        // model decodes that input alone, and the run still comes out whole.
        let long = "x".repeat(5000);
        let text = format!("我们{long}学习");
        assert_eq!(seg.words(&text).unwrap(), ["我们", long.as_str(), "学习"]);
    }

    #[test]
    fn frozen_character_weights_stay_as_the_character_model_has_them() {
        let sentences = parse_sighan(CORPUS).unwrap();
        let options = small_options();
        let chain = train_segmenter(&sentences, &options, &mut |_| {}).unwrap();
        let semi = SemiOptions {
            max_len: 4,
            max_iterations: 10,
            patience: None,
            freeze_characters: true,
            folds: 10,
        };
        let (trained, _) = train_semi_segmenter(&sentences, &options, &semi, None, &mut |_| {}).unwrap();
        let state = chain.model.layout().edge_offset();
        assert_eq!(trained.model.to_flat()[..state], chain.model.to_flat()[..state]);
        assert_ne!(trained.model.to_flat()[state..], chain.model.to_flat()[state..]);
    }

    /// With character clusters and contiguous folds, the semi-Markov model
    /// is written under the kind that carries the clusters, and reloads to
    /// segment as the trained model does.
    #[test]
    fn a_semi_markov_model_with_clusters_round_trips() {
        let sentences = parse_sighan(CORPUS).unwrap();
        let options = CwsTrainOptions {
            char_clusters: 4,
            fold_layout: crate::FoldLayout::Contiguous,
            lexicon_folds: 2,
            ..small_options()
        };
        let semi = SemiOptions {
            max_len: 4,
            max_iterations: 5,
            ..SemiOptions::default()
        };
        let (trained, _) = train_semi_segmenter(&sentences, &options, &semi, None, &mut |_| {}).unwrap();
        let ExtractorSpec::Custom { kind, .. } = trained.model.extractor() else {
            panic!("a custom extractor");
        };
        assert_eq!(kind, crate::segmenter::EXTRACTOR_KIND_SEMI_CLUSTERS);
        let fresh = Segmenter::from_model(trained.model.clone()).unwrap();
        let bytes = chaincrf_model::to_bytes(&trained.model).unwrap();
        let loaded =
            Segmenter::from_model(chaincrf_model::from_bytes(&bytes, std::path::Path::new("semi.model")).unwrap())
                .unwrap();
        assert!(loaded.config().clusters.is_some());
        for text in ["我们在北京学习", "学生们在学习"] {
            assert_eq!(loaded.words(text).unwrap(), fresh.words(text).unwrap());
        }
    }

    #[test]
    fn word_counts_are_jackknifed_without_lexicon_folds_and_forged_models_are_refused() {
        let sentences = parse_sighan(CORPUS).unwrap();
        let options = CwsTrainOptions {
            lexicon_folds: 0,
            ..small_options()
        };
        let semi = SemiOptions {
            max_len: 4,
            max_iterations: 10,
            folds: 2,
            ..SemiOptions::default()
        };
        let (trained, _) = train_semi_segmenter(&sentences, &options, &semi, None, &mut |_| {}).unwrap();
        let mut model = trained.model;
        let seg = Segmenter::from_model(model.clone()).unwrap();
        assert_eq!(seg.words("我们在北京学习").unwrap(), ["我们", "在", "北京", "学习"]);
        // A model whose word-feature weights do not fit its statistics.
        let ExtractorSpec::Custom { payload, .. } = model.extractor() else {
            panic!("a custom extractor");
        };
        let (config, inventory, mut semi_model): (crate::CwsModelConfig, Option<crate::NgramInventory>, SemiModel) =
            chaincrf_model::decode_payload(payload).unwrap();
        semi_model.weights.pop();
        model.set_extractor(ExtractorSpec::Custom {
            kind: EXTRACTOR_KIND_SEMI.into(),
            payload: chaincrf_model::encode_payload(&(&config, &inventory, &semi_model)).unwrap(),
        });
        let err = Segmenter::from_model(model.clone()).unwrap_err().to_string();
        assert!(err.contains("word-feature weights"), "{err}");
        semi_model.weights.push(f32::NAN);
        semi_model.max_len = 99;
        model.set_extractor(ExtractorSpec::Custom {
            kind: EXTRACTOR_KIND_SEMI.into(),
            payload: chaincrf_model::encode_payload(&(&config, &inventory, &semi_model)).unwrap(),
        });
        assert!(Segmenter::from_model(model).is_err());
    }

    #[test]
    fn long_gold_words_are_cut_to_the_limit() {
        let words: Vec<String> = ["中华人民共和国", "了"].iter().map(|s| s.to_string()).collect();
        let segs = gold_segments(&words, 3);
        let lens: Vec<usize> = segs.iter().map(|s| s.len).collect();
        assert_eq!(lens, [3, 2, 2, 1]);
        assert!(segs[..3].iter().all(|s| s.label == MULTI));
        assert_eq!(segs[3].label, SINGLE);
        assert_eq!(segs[3].start, 7);
        let eleven = ["一二三四五六七八九十壹".to_string()];
        let lens: Vec<usize> = gold_segments(&eleven, 10).iter().map(|s| s.len).collect();
        assert_eq!(lens, [6, 5]);
    }

    #[test]
    fn bad_options_are_errors() {
        let sentences = parse_sighan(CORPUS).unwrap();
        let semi = SemiOptions {
            max_len: 0,
            ..SemiOptions::default()
        };
        assert!(train_semi_segmenter(&sentences, &small_options(), &semi, None, &mut |_| {}).is_err());
        let six = CwsTrainOptions {
            scheme: crate::TagScheme::SixTag,
            ..small_options()
        };
        assert!(train_semi_segmenter(&sentences, &six, &SemiOptions::default(), None, &mut |_| {}).is_err());
        let no_iterations = SemiOptions {
            max_iterations: 0,
            ..SemiOptions::default()
        };
        assert!(train_semi_segmenter(&sentences, &small_options(), &no_iterations, None, &mut |_| {}).is_err());
    }
}
