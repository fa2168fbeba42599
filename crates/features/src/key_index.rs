//! [`KeyIndex`]: the attribute dictionary's map from 64-bit attribute keys to
//! dense ids, built for the lookup-heavy side of its life.
//!
//! Tagging and segmenting look up every attribute of every position (a dozen
//! per character for the segmenter) in a table of millions of keys, so nearly
//! every lookup of a rare attribute is a cache miss. A general hash map pays
//! two of them per hit (a control-byte array, then the bucket). This table
//! keeps key and id side by side in one array of 16-byte slots (linear
//! probing in Robin Hood order, at most 7/8 full: the memory of a general
//! map), so a hit usually costs one miss, a miss stops after a few probes
//! even in a full table, and it can
//! [`prefetch`](KeyIndex::prefetch) a key's slot so that a caller looking up
//! many keys has several misses in flight at once. Keys are only ever added
//! (a dictionary that drops attributes builds a new index), which keeps
//! probing simple: no tombstones.

use crate::hash::{huge_page_vec, prefetch};

/// 2⁶⁴ divided by the golden ratio: multiplying by it scrambles a key's bits
/// into the high ones (Fibonacci hashing).
const FIBONACCI: u64 = 0x9e37_79b9_7f4a_7c15;

/// Marks an empty slot (ids are dense from 0 and never reach it).
const EMPTY: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
#[repr(C, align(16))]
struct Slot {
    key: u64,
    id: u32,
}

const EMPTY_SLOT: Slot = Slot { key: 0, id: EMPTY };

/// An insert-only open-addressing map from `u64` keys to `u32` ids.
#[derive(Clone, Debug, Default)]
pub struct KeyIndex {
    slots: Vec<Slot>,
    len: usize,
    /// `64 - log2(slots.len())`: the slot of a key is the top bits of its
    /// Fibonacci-scrambled value, so keys with poor low bits still spread.
    shift: u32,
}

impl KeyIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// An index holding `keys[i] → i` (the first occurrence wins for repeated keys).
    pub fn from_keys(keys: &[u64]) -> Self {
        const AHEAD: usize = 16;
        let mut index = KeyIndex::new();
        index.reserve(keys.len());
        for (i, &key) in keys.iter().enumerate() {
            // Random slots of a large table: request a few in advance.
            if let Some(&ahead) = keys.get(i + AHEAD) {
                index.prefetch(ahead);
            }
            index.insert(key, i as u32);
        }
        index
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn home(&self, key: u64) -> usize {
        (key.wrapping_mul(FIBONACCI) >> self.shift) as usize
    }

    /// The id of `key`, if present.
    #[inline]
    pub fn get(&self, key: u64) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        let mut distance = 0;
        loop {
            let slot = self.slots[i];
            if slot.id == EMPTY {
                return None;
            }
            if slot.key == key {
                return Some(slot.id);
            }
            // Robin Hood order: had `key` been here, it would sit before any
            // entry that is closer to its own home than `key` would be.
            if (i.wrapping_sub(self.home(slot.key)) & mask) < distance {
                return None;
            }
            i = (i + 1) & mask;
            distance += 1;
        }
    }

    /// Asks the CPU to load the slot where a lookup of `key` starts (a hint
    /// that changes nothing else).
    #[inline]
    pub fn prefetch(&self, key: u64) {
        if !self.slots.is_empty() {
            prefetch(&self.slots[self.home(key)]);
        }
    }

    /// Adds `key → id` unless `key` is present; returns the id it maps to.
    ///
    /// # Panics
    /// If `id` is `u32::MAX` (reserved for empty slots).
    pub fn insert(&mut self, key: u64, id: u32) -> u32 {
        assert!(id != EMPTY, "KeyIndex: id u32::MAX is reserved");
        self.reserve(1);
        let mask = self.slots.len() - 1;
        let shift = self.shift;
        let home = |key: u64| (key.wrapping_mul(FIBONACCI) >> shift) as usize;
        let mut carried = Slot { key, id };
        let mut i = home(key);
        let mut distance = 0;
        // One probe both finds `key` and places it: in Robin Hood order a
        // present key comes before the first slot where `key` would displace
        // an entry (the test `get` stops at), so it is only looked for there.
        let mut placing = false;
        loop {
            let slot = &mut self.slots[i];
            if slot.id == EMPTY {
                *slot = carried;
                self.len += 1;
                return id;
            }
            if !placing && slot.key == key {
                return slot.id;
            }
            // Robin Hood: the entry farther from its home keeps the slot, so
            // every probe sequence stays short and a missing key is known
            // missing early (see `get`).
            let theirs = i.wrapping_sub(home(slot.key)) & mask;
            if theirs < distance {
                std::mem::swap(slot, &mut carried);
                distance = theirs;
                placing = true;
            }
            i = (i + 1) & mask;
            distance += 1;
        }
    }

    /// Makes room for `additional` more keys without exceeding 7/8 occupancy.
    pub fn reserve(&mut self, additional: usize) {
        let needed = self.len + additional;
        if needed * 8 <= self.slots.len() * 7 {
            return;
        }
        let capacity = (needed * 8 / 7 + 1).next_power_of_two().max(16);
        let old = std::mem::replace(&mut self.slots, huge_page_vec(capacity, EMPTY_SLOT));
        self.shift = 64 - capacity.trailing_zeros();
        self.len = 0;
        for slot in old.into_iter().filter(|s| s.id != EMPTY) {
            self.insert(slot.key, slot.id);
        }
    }

    /// Approximate heap bytes used.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// Agrees with a std `HashMap` on any keys, including ones whose low
        /// bits are all equal (which a mask-of-low-bits table would pile up).
        #[test]
        fn agrees_with_a_hash_map(keys in proptest::collection::vec(any::<u64>(), 0..400), shift in 0u32..40, probes in proptest::collection::vec(any::<u64>(), 0..50)) {
            let keys: Vec<u64> = keys.into_iter().map(|k| k << shift).collect();
            let index = KeyIndex::from_keys(&keys);
            let mut reference = HashMap::new();
            for (i, &k) in keys.iter().enumerate() {
                reference.entry(k).or_insert(i as u32);
            }
            prop_assert_eq!(index.len(), reference.len());
            for k in keys.iter().chain(&probes) {
                prop_assert_eq!(index.get(*k), reference.get(k).copied());
                index.prefetch(*k);
            }
        }
    }

    proptest! {
        /// Repeated keys keep their first id, whatever was placed around them.
        #[test]
        fn repeated_keys_keep_their_first_id(keys in proptest::collection::vec(0u64..300, 0..600), shift in 0u32..50) {
            let mut index = KeyIndex::new();
            let mut reference = HashMap::new();
            for (i, &k) in keys.iter().enumerate() {
                let key = k << shift;
                let first = *reference.entry(key).or_insert(i as u32);
                prop_assert_eq!(index.insert(key, i as u32), first);
            }
            prop_assert_eq!(index.len(), reference.len());
            for (key, id) in &reference {
                prop_assert_eq!(index.get(*key), Some(*id));
            }
        }
    }

    #[test]
    fn empty_and_growing() {
        let mut index = KeyIndex::new();
        assert_eq!(index.get(7), None);
        index.prefetch(7);
        for i in 0..10_000u32 {
            assert_eq!(index.insert(u64::from(i) * 1_000_003, i), i);
        }
        assert_eq!(index.insert(1_000_003, 99), 1, "an existing key keeps its id");
        assert_eq!(index.len(), 10_000);
        assert!(index.heap_bytes() >= 10_000 * 16);
        for i in 0..10_000u32 {
            assert_eq!(index.get(u64::from(i) * 1_000_003), Some(i));
        }
        assert_eq!(index.get(5), None);
    }
}
