//! Character clusters learned from raw text: [`CharClusters`].
//!
//! Character n-gram features know only the n-grams they were trained on. An
//! out-of-vocabulary word is mostly made of characters seen elsewhere, but
//! often in bigrams never seen, and then the bigram templates say nothing
//! about it. Clusters of characters that occur in similar contexts give
//! features that carry over to unseen combinations: the cluster bigram of
//! `庄园` is the one of many seen two-character nouns, even when the bigram
//! itself is new (the same motive as Brown-cluster features in taggers).
//!
//! A character is described by the distribution of its left and right
//! neighbours among the most frequent characters; the clusters are spherical
//! k-means over these distributions (square roots of the probabilities, so
//! that dot products are Bhattacharyya similarities). The text used is the
//! training text itself, without its segmentation, so this stays within the
//! closed track. Learning is sequential and seeded by the most frequent
//! characters: the same text gives the same clusters.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// The most clusters a model may have: the compiled tables hold three
/// `(clusters + 3)²`-row tables (6.4 MB at this limit for four tags), and
/// held-out F1 was flat from 16 to 200 clusters (docs/cws.md).
pub const MAX_CLUSTERS: usize = 256;

/// How many of the most frequent characters are context dimensions.
const CONTEXT_CHARS: usize = 400;
/// Rounds of k-means.
const ROUNDS: usize = 25;

/// A map from characters to cluster ids `1..=k`; characters not in the map
/// (rare or unseen in the text the clusters were learned from) have id 0.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StoredClusters", into = "StoredClusters")]
pub struct CharClusters {
    clusters: usize,
    /// `(character, cluster id)`, sorted by character.
    ids: Vec<(char, u16)>,
    index: FxHashMap<char, u16>,
}

/// What a model file stores: the index is rebuilt on loading.
#[derive(Clone, Serialize, Deserialize)]
struct StoredClusters {
    clusters: usize,
    ids: Vec<(char, u16)>,
}

impl TryFrom<StoredClusters> for CharClusters {
    type Error = String;

    /// Refuses what [`CharClusters::learn`] never writes (from a corrupted
    /// or forged file): more clusters than [`MAX_CLUSTERS`] or than
    /// characters, ids beyond the number of clusters, characters out of
    /// order or repeated. A forged count must not size the segmenter's
    /// tables.
    fn try_from(s: StoredClusters) -> Result<Self, String> {
        if s.clusters > MAX_CLUSTERS || s.clusters > s.ids.len() {
            return Err(format!(
                "{} character clusters for {} characters (at most {MAX_CLUSTERS}, and no more than characters)",
                s.clusters,
                s.ids.len()
            ));
        }
        if let Some(&(c, id)) = s.ids.iter().find(|&&(_, id)| usize::from(id) > s.clusters || id == 0) {
            return Err(format!("character {c:?} has cluster {id}, not 1 to {}", s.clusters));
        }
        if s.ids.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err("character clusters out of order".into());
        }
        Ok(CharClusters::from_ids(s.clusters, s.ids))
    }
}

impl From<CharClusters> for StoredClusters {
    fn from(c: CharClusters) -> Self {
        StoredClusters {
            clusters: c.clusters,
            ids: c.ids,
        }
    }
}

impl CharClusters {
    /// Learns `clusters` clusters (at least 1, at most [`MAX_CLUSTERS`], and
    /// no more than there are characters) of the characters seen at least
    /// `min_count` times in `texts`.
    pub fn learn<'a>(texts: impl IntoIterator<Item = &'a [char]> + Clone, clusters: usize, min_count: u32) -> Self {
        let clusters = clusters.clamp(1, MAX_CLUSTERS);
        let mut counts: FxHashMap<char, u32> = FxHashMap::default();
        for text in texts.clone() {
            for &c in text {
                *counts.entry(c).or_default() += 1;
            }
        }
        let mut vocab: Vec<(char, u32)> = counts.into_iter().filter(|&(_, n)| n >= min_count.max(1)).collect();
        vocab.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let slot: FxHashMap<char, usize> = vocab.iter().enumerate().map(|(i, &(c, _))| (c, i)).collect();
        // Context dimensions: left neighbour 0..=C (C = sentence start or a
        // character outside the most frequent), right neighbour C+1..=2C+1.
        let context = CONTEXT_CHARS.min(vocab.len());
        let side = context + 1;
        let context_of = |c: Option<char>| match c.and_then(|c| slot.get(&c)) {
            Some(&i) if i < context => i,
            _ => context,
        };
        // Neighbours two places away were tried as well, with no held-out
        // gain (docs/cws.md).
        let mut rows: Vec<FxHashMap<u32, f32>> = vec![FxHashMap::default(); vocab.len()];
        for text in texts {
            for (t, c) in text.iter().enumerate() {
                let Some(&i) = slot.get(c) else { continue };
                let left = context_of(t.checked_sub(1).map(|p| text[p]));
                let right = context_of(text.get(t + 1).copied());
                *rows[i].entry(left as u32).or_default() += 1.0;
                *rows[i].entry((side + right) as u32).or_default() += 1.0;
            }
        }
        // Square roots of the two neighbour distributions, unit length.
        let vectors: Vec<Vec<(u32, f32)>> = rows
            .into_iter()
            .map(|row| {
                let mut v: Vec<(u32, f32)> = row.into_iter().map(|(d, n)| (d, n.sqrt())).collect();
                v.sort_unstable_by_key(|&(d, _)| d);
                let norm = v.iter().map(|&(_, x)| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|(_, x)| *x /= norm);
                v
            })
            .collect();
        let dims = 2 * side;
        if vectors.is_empty() {
            return CharClusters::from_ids(0, Vec::new());
        }
        let k = clusters.min(vectors.len());
        let mut centroids = vec![0f32; k * dims];
        for (j, v) in vectors.iter().take(k).enumerate() {
            for &(d, x) in v {
                centroids[j * dims + d as usize] = x;
            }
        }
        let mut assign = vec![0usize; vectors.len()];
        for _ in 0..ROUNDS {
            let mut changed = false;
            for (i, v) in vectors.iter().enumerate() {
                let mut best = (f32::NEG_INFINITY, 0);
                for j in 0..k {
                    let c = &centroids[j * dims..(j + 1) * dims];
                    let s: f32 = v.iter().map(|&(d, x)| c[d as usize] * x).sum();
                    if s > best.0 {
                        best = (s, j);
                    }
                }
                changed |= assign[i] != best.1;
                assign[i] = best.1;
            }
            centroids.iter_mut().for_each(|x| *x = 0.0);
            for (v, &j) in vectors.iter().zip(&assign) {
                for &(d, x) in v {
                    centroids[j * dims + d as usize] += x;
                }
            }
            for c in centroids.chunks_mut(dims) {
                let norm = c.iter().map(|x| x * x).sum::<f32>().sqrt();
                if norm > 0.0 {
                    c.iter_mut().for_each(|x| *x /= norm);
                }
            }
            if !changed {
                break;
            }
        }
        let mut ids: Vec<(char, u16)> = vocab
            .iter()
            .zip(&assign)
            .map(|(&(c, _), &j)| (c, j as u16 + 1))
            .collect();
        ids.sort_unstable();
        CharClusters::from_ids(k, ids)
    }

    fn from_ids(clusters: usize, ids: Vec<(char, u16)>) -> Self {
        let index = ids.iter().copied().collect();
        CharClusters { clusters, ids, index }
    }

    /// The number of clusters (ids run from 1 to this; 0 is "no cluster").
    pub fn len(&self) -> usize {
        self.clusters
    }

    /// Whether there are no clusters (learned from no text).
    pub fn is_empty(&self) -> bool {
        self.clusters == 0
    }

    /// The characters that have a cluster, in increasing order.
    pub fn chars(&self) -> impl Iterator<Item = char> + '_ {
        self.ids.iter().map(|&(c, _)| c)
    }

    /// The cluster of `c`: `1..=len()`, or 0 for a character the clusters
    /// were not learned on.
    #[inline]
    pub fn id(&self, c: char) -> u16 {
        self.index.get(&c).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_clusters_are_refused() {
        let ok: CharClusters = serde_json::from_str(r#"{"clusters": 2, "ids": [["a", 1], ["b", 2]]}"#).unwrap();
        assert_eq!(ok.id('b'), 2);
        for bad in [
            r#"{"clusters": 2, "ids": [["a", 3]]}"#,
            r#"{"clusters": 2, "ids": [["a", 0]]}"#,
            r#"{"clusters": 2, "ids": [["b", 1], ["a", 1]]}"#,
            r#"{"clusters": 70000, "ids": []}"#,
            r#"{"clusters": 3, "ids": [["a", 1], ["b", 2]]}"#,
        ] {
            assert!(serde_json::from_str::<CharClusters>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn no_text_gives_no_clusters() {
        let cl = CharClusters::learn(std::iter::empty::<&[char]>(), 8, 1);
        assert!(cl.is_empty());
        assert_eq!(cl.len(), 0);
        assert_eq!(cl.id('中'), 0);
        // Never more clusters than characters.
        let text: Vec<char> = "甲乙".chars().collect();
        assert_eq!(CharClusters::learn([&text[..]], 8, 1).len(), 2);
    }

    #[test]
    fn characters_in_like_contexts_share_a_cluster() {
        // 猫/狗 follow 小 and precede 叫; 跑/跳 follow 在 and precede 了.
        let lines = ["小猫叫了", "小狗叫了", "他在跑了", "他在跳了", "小猫叫了", "他在跑了"];
        let texts: Vec<Vec<char>> = lines.iter().map(|l| l.chars().collect()).collect();
        let cl = CharClusters::learn(texts.iter().map(Vec::as_slice), 4, 1);
        assert_eq!(cl.id('猫'), cl.id('狗'));
        assert_eq!(cl.id('跑'), cl.id('跳'));
        assert_ne!(cl.id('猫'), cl.id('跑'));
        assert_eq!(cl.id('龍'), 0);
        assert!(cl.id('猫') >= 1 && usize::from(cl.id('猫')) <= cl.len());
        // Deterministic.
        assert_eq!(cl, CharClusters::learn(texts.iter().map(Vec::as_slice), 4, 1));
    }
}
