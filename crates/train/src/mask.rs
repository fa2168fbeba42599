//! Which weights are trained: CRFsuite's feature generation.
//!
//! CRFsuite creates a state feature for each attribute × label pair seen in
//! training and a transition feature for each label pair seen
//! (`feature.possible_states` / `feature.possible_transitions` create all of
//! them instead), then drops features whose frequency — the summed attribute
//! value over their occurrences — is below `feature.minfreq`. Here every
//! weight of the layout exists, and this mask says which are trained; the
//! others stay exactly zero. Edge attributes (CRF++'s bigram templates)
//! follow the transition switch. The structure's disabled blocks and
//! forbidden pairs are never trained.

use crate::data::Dataset;
use crate::params::{CheckedParams, Params};

impl Dataset {
    /// How many features (trained weights) `params` create on this data:
    /// what CRFsuite reports before its first iteration.
    pub fn num_features(&self, params: &CheckedParams) -> usize {
        trainable_mask(self, params.params()).iter().filter(|&&t| t).count()
    }
}

/// Marks the trainable weights of `data`'s layout under `params`.
pub(crate) fn trainable_mask(data: &Dataset, params: &Params) -> Vec<bool> {
    let layout = data.layout();
    let structure = &data.structure;
    let k = layout.k;
    let kk = k * k;
    let t0 = layout.transition_offset();
    let e0 = layout.edge_offset();
    let mut mask = vec![false; layout.len()];
    mask[..e0].fill(params.possible_states);
    mask[e0..t0 + kk].fill(params.possible_transitions);
    // Summed values per feature, only when a frequency cutoff needs them.
    let mut freq = if params.min_freq > 0.0 {
        vec![0.0f64; t0 + kk]
    } else {
        Vec::new()
    };
    // The labels each position may take (one for gold data), reused buffers.
    let (mut prev, mut ys): (Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new());
    for i in 0..data.len() {
        let obs = data.arena.sequence(i);
        prev.clear();
        for t in 0..obs.len() {
            ys.clear();
            match &data.partial[i] {
                None => ys.push(data.gold_of(i).map_or(0, |g| g[t])),
                Some(a) => ys.extend((0..k).filter(|&y| a.is_allowed(t, y))),
            }
            let (ids, values) = obs.state(t);
            for (j, &id) in ids.iter().enumerate() {
                let value = values.map_or(1.0, |v| f64::from(v[j]));
                for &y in &ys {
                    let at = id as usize * k + y;
                    mask[at] = true;
                    if let Some(f) = freq.get_mut(at) {
                        *f += value;
                    }
                }
            }
            if t > 0 {
                let (edge_ids, edge_values) = obs.edge(t);
                for &a in &prev {
                    for &b in &ys {
                        mask[t0 + a * k + b] = true;
                        if let Some(f) = freq.get_mut(t0 + a * k + b) {
                            *f += 1.0;
                        }
                        for (j, &id) in edge_ids.iter().enumerate() {
                            let at = e0 + id as usize * kk + a * k + b;
                            mask[at] = true;
                            if let Some(f) = freq.get_mut(at) {
                                *f += edge_values.map_or(1.0, |v| f64::from(v[j]));
                            }
                        }
                    }
                }
            }
            std::mem::swap(&mut prev, &mut ys);
        }
    }
    for (m, f) in mask.iter_mut().zip(&freq) {
        if *f < params.min_freq {
            *m = false;
        }
    }
    if !structure.transitions {
        mask[t0..t0 + kk].fill(false);
    }
    for &(i, j) in &structure.forbidden_transitions {
        mask[t0 + i as usize * k + j as usize] = false;
    }
    let s0 = layout.start_offset();
    mask[s0..s0 + 2 * k].fill(structure.start_end);
    for &y in &structure.forbidden_start {
        mask[s0 + y as usize] = false;
    }
    for &y in &structure.forbidden_end {
        mask[s0 + k + y as usize] = false;
    }
    mask
}
