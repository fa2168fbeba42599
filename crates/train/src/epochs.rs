//! What the online algorithms (SGD, the perceptron family) share: the
//! callback's verdict after an epoch, and the order in which they visit the
//! training sequences: reshuffled at the start of every epoch by a
//! small seeded generator, so runs are reproducible, and saved with a run's
//! state so that a resumed run visits exactly the sequences the
//! uninterrupted one would, in the same order — mid-epoch included.
//!
//! Like CRFsuite's `dataset_shuffle`, each epoch shuffles the previous
//! epoch's permutation rather than the identity (the generator differs:
//! SplitMix64 with Fisher–Yates here, C's `rand()` there).

use serde::{Deserialize, Serialize};

/// What an epoch callback decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EpochControl {
    /// Go on.
    Continue,
    /// End the run here (e.g. early stopping); the outcome says so.
    Stop,
}

/// A small deterministic generator (SplitMix64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SplitMix(pub(crate) u64);

impl SplitMix {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fisher–Yates shuffle.
    pub(crate) fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            xs.swap(i, j);
        }
    }
}

/// A permutation of the sequences and the position reached in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct VisitOrder {
    rng: SplitMix,
    order: Vec<u32>,
    /// Index in `order` of the next sequence to visit; `order.len()` between epochs.
    next: usize,
}

impl VisitOrder {
    /// The identity order of `n` sequences, between epochs.
    pub(crate) fn new(n: usize, seed: u64) -> Self {
        VisitOrder {
            rng: SplitMix(seed),
            order: (0..n as u32).collect(),
            next: n,
        }
    }

    /// Whether an epoch is under way (started and not finished).
    pub(crate) fn in_epoch(&self) -> bool {
        self.next < self.order.len()
    }

    /// Starts an epoch: reshuffles the current permutation.
    pub(crate) fn start_epoch(&mut self) {
        self.rng.shuffle(&mut self.order);
        self.next = 0;
    }

    /// Shuffles the permutation once without starting an epoch (CRFsuite
    /// shuffles once for the calibration sample of `l2sgd`).
    pub(crate) fn reshuffle(&mut self) {
        self.rng.shuffle(&mut self.order);
    }

    /// The first `count` sequences of the current permutation.
    pub(crate) fn prefix(&self, count: usize) -> impl Iterator<Item = usize> + '_ {
        self.order[..count.min(self.order.len())].iter().map(|&i| i as usize)
    }

    /// The next sequence of the epoch, without moving past it.
    pub(crate) fn peek(&self) -> Option<usize> {
        self.order.get(self.next).map(|&i| i as usize)
    }

    /// Moves past the sequence [`VisitOrder::peek`] returned.
    pub(crate) fn advance(&mut self) {
        self.next += 1;
    }

    /// Whether this is a valid order over `n` sequences (for saved states,
    /// which may be damaged or forged).
    pub(crate) fn fits(&self, n: usize) -> bool {
        if self.order.len() != n || self.next > n {
            return false;
        }
        let mut seen = vec![false; n];
        self.order
            .iter()
            .all(|&i| (i as usize) < n && !std::mem::replace(&mut seen[i as usize], true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffles_are_permutations_and_reproducible() {
        let mut a = VisitOrder::new(50, 7);
        let mut b = VisitOrder::new(50, 7);
        for _ in 0..3 {
            a.start_epoch();
            b.start_epoch();
            assert_eq!(a, b);
            assert!(a.fits(50));
        }
        let mut c = VisitOrder::new(50, 8);
        c.start_epoch();
        c.start_epoch();
        c.start_epoch();
        assert_ne!(a.order, c.order);
    }

    #[test]
    fn fits_rejects_repeats_and_out_of_range() {
        let mut o = VisitOrder::new(3, 1);
        assert!(o.fits(3));
        assert!(!o.fits(4));
        o.order = vec![0, 0, 2];
        assert!(!o.fits(3));
        o.order = vec![0, 1, 3];
        assert!(!o.fits(3));
    }
}
