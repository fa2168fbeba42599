//! Character n-gram features for segmentation: the [`NgramExtractor`].
//!
//! The classic feature set of CRF segmenters (Xue 2003; Peng et al. 2004; Zhao
//! et al. 2006): the characters in a window around the current one, single and
//! in pairs, plus the classes of the neighbouring characters (digit, letter,
//! punctuation, date unit, ...) and optionally training-lexicon matches (see
//! [`crate::lexicon`]).
//!
//! The input is the *normalized* characters of one sentence
//! ([`crate::normalize`](mod@crate::normalize)). Positions beyond the sentence read as boundary
//! symbols, one per distance (`<BOS1>`, `<BOS2>`, `<EOS1>`, ...), so "second
//! character of the sentence" and "first character" are different contexts.
//!
//! Speed matters: tagging has to run at millions of characters per second, and
//! building a `String` per attribute would cost more than the decoder. Every
//! attribute key is therefore a [`AttrKey::Hashed`] value computed with
//! [`hash_combine`] from a per-template seed and the characters (a few
//! multiplications per attribute, no allocation). The seeds are hashes of the
//! template's text (`C-1C0`, `T0`, ...), so keys do not depend on the order of
//! templates in the configuration. [`NgramExtractor::describe`] renders the same
//! attributes as text for debugging.

use crate::clusters::CharClusters;
use crate::error::{ConfigError, Result, TemplateProblem};
use crate::lexicon::{LexMatch, Lexicon};
use crate::normalize::{char_class, char_class_code};
use chaincrf_features::{hash_combine, hash_name};
use chaincrf_features::{Attr, AttrKey, AttrKind, FeatureExtractor};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The largest window (furthest offset) a configuration may use.
pub const MAX_WINDOW: usize = 8;

/// Which features the [`NgramExtractor`] emits. Serializable, so that a model
/// file can record how it was trained.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NgramConfig {
    /// The furthest offset any template may use (at most 8).
    pub window: usize,
    /// Character n-gram templates, each a list of offsets relative to the current
    /// character: `[-1, 0]` is the bigram `C-1C0`.
    pub templates: Vec<Vec<i32>>,
    /// Emit the classes of `C-1`, `C0`, `C1` and their trigram.
    pub char_classes: bool,
    /// Emit training-lexicon match features (needs a [`Lexicon`]).
    pub lexicon_features: bool,
    /// Lexicon match lengths above this are reported as this.
    pub lexicon_cap: usize,
}

impl Default for NgramConfig {
    fn default() -> Self {
        NgramConfig {
            window: 2,
            templates: vec![
                vec![-2],
                vec![-1],
                vec![0],
                vec![1],
                vec![2],
                vec![-2, -1],
                vec![-1, 0],
                vec![0, 1],
                vec![1, 2],
                vec![-1, 1],
            ],
            char_classes: true,
            lexicon_features: false,
            lexicon_cap: 6,
        }
    }
}

impl NgramConfig {
    /// Checks that the configuration can be used.
    pub fn validate(&self) -> Result<()> {
        if self.window > MAX_WINDOW {
            return Err(ConfigError::WindowTooLarge {
                window: self.window,
                max: MAX_WINDOW,
            }
            .into());
        }
        for t in &self.templates {
            if t.is_empty() {
                return Err(ConfigError::InvalidTemplate {
                    template: String::new(),
                    problem: TemplateProblem::Empty,
                }
                .into());
            }
            if let Some(o) = t.iter().find(|o| o.unsigned_abs() as usize > self.window) {
                return Err(ConfigError::InvalidTemplate {
                    template: template_name(t),
                    problem: TemplateProblem::OffsetOutsideWindow {
                        offset: *o,
                        window: self.window,
                    },
                }
                .into());
            }
        }
        if self.lexicon_features && self.lexicon_cap == 0 {
            return Err(ConfigError::ZeroLexiconCap.into());
        }
        Ok(())
    }
}

/// The text of a template: `[-1, 0]` → `C-1C0`.
fn template_name(offsets: &[i32]) -> String {
    offsets.iter().map(|o| format!("C{o}")).collect()
}

// Symbols for positions outside the sentence: never equal to a `char` value.
const BOS: u64 = 1 << 32;
const EOS: u64 = 2 << 32;
// Class code of a position outside the sentence.
const CLASS_BOUNDARY: u64 = 0;

/// The offsets whose character classes are attributes (`T-1`, `T0`, `T1`).
pub(crate) const CLASS_OFFSETS: [i32; 3] = [-1, 0, 1];
/// Class codes run from [`CLASS_BOUNDARY`] (0) to this, inclusive.
pub(crate) const MAX_CLASS_CODE: u64 = 8;
const LEX_POSITIONS: [&str; 5] = ["B", "M", "E", "S", "none"];

/// The three lexicon attributes (`LS`, `LE`, `LI`), in the order of their seeds.
#[derive(Clone, Copy, Debug)]
pub(crate) enum LexiconAttr {
    /// Longest word starting here.
    Start = 0,
    /// Longest word ending here.
    End = 1,
    /// Longest word covering this character, with the character's place in it.
    Inside = 2,
}

/// The value of the `LI` attribute: capped length and position in the word.
#[inline]
pub(crate) fn lexicon_inside_value(capped_len: usize, position: u8) -> u64 {
    (capped_len as u64) << 8 | u64::from(position)
}

/// Packed symbols: a character is its code point (below 0x110000); the
/// boundary `d` places before the sentence is `0x110000 + d`, `d` places after
/// it `0x120000 + d`. 21 bits each, so three fit in a `u64` exactly.
pub(crate) const PACKED_SYMBOL_BITS: u32 = 21;
const PACKED_BOS: u32 = 0x11_0000;
const PACKED_EOS: u32 = 0x12_0000;

/// The packed symbol at position `p` (see [`PACKED_SYMBOL_BITS`]).
#[inline]
pub(crate) fn packed_symbol(input: &[char], p: isize) -> u32 {
    if p < 0 {
        PACKED_BOS + p.unsigned_abs() as u32
    } else if (p as usize) < input.len() {
        input[p as usize] as u32
    } else {
        PACKED_EOS + (p as usize - input.len() + 1) as u32
    }
}

/// The symbol a key is hashed from, for a packed symbol: the inverse of
/// [`packed_symbol`] composed with [`symbol`].
#[inline]
pub(crate) fn unpacked_symbol(packed: u32) -> u64 {
    if packed >= PACKED_EOS {
        EOS + u64::from(packed - PACKED_EOS)
    } else if packed >= PACKED_BOS {
        BOS + u64::from(packed - PACKED_BOS)
    } else {
        u64::from(packed)
    }
}

/// The symbol at position `p` of a sentence of `n` characters.
#[inline]
fn symbol(input: &[char], p: isize) -> u64 {
    if p < 0 {
        BOS + p.unsigned_abs() as u64
    } else if (p as usize) < input.len() {
        u64::from(input[p as usize] as u32)
    } else {
        EOS + (p as usize - input.len() + 1) as u64
    }
}

fn symbol_text(input: &[char], p: isize) -> String {
    if p < 0 {
        format!("<BOS{}>", p.unsigned_abs())
    } else if (p as usize) < input.len() {
        input[p as usize].to_string()
    } else {
        format!("<EOS{}>", p as usize - input.len() + 1)
    }
}

#[inline]
pub(crate) fn class_code(input: &[char], p: isize) -> u64 {
    if p < 0 || p as usize >= input.len() {
        CLASS_BOUNDARY
    } else {
        u64::from(char_class_code(input[p as usize]))
    }
}

fn class_text(input: &[char], p: isize) -> &'static str {
    if p < 0 || p as usize >= input.len() {
        "<boundary>"
    } else {
        char_class(input[p as usize]).name()
    }
}

/// Character n-gram, character-class and lexicon features over normalized chars.
#[derive(Clone, Debug)]
pub struct NgramExtractor {
    config: NgramConfig,
    /// Per template: seed, and its offsets as a range into `offsets`.
    templates: Vec<(u64, usize, usize)>,
    offsets: Vec<isize>,
    class_seeds: [u64; 3],
    class_tri_seed: u64,
    lex_seeds: [u64; 3],
    lexicon: Option<Arc<Lexicon>>,
    cluster_seeds: [u64; CLUSTER_TEMPLATES.len()],
    clusters: Option<Arc<CharClusters>>,
}

/// The cluster attributes, with [`CharClusters`]: each a list of (offset,
/// whether it reads the character's cluster rather than the character).
/// The clusters of the neighbours and the character beside a neighbour's
/// cluster: the mixed pairs are what carries over to unseen bigrams (tuned
/// on held-out data, docs/cws.md).
pub(crate) const CLUSTER_TEMPLATES: [&[(i32, bool)]; 8] = [
    &[(-1, true)],
    &[(0, true)],
    &[(1, true)],
    &[(-1, true), (0, true)],
    &[(0, true), (1, true)],
    &[(-1, true), (1, true)],
    &[(0, false), (1, true)],
    &[(-1, true), (0, false)],
];

/// The text of a cluster template: `[(0, false), (1, true)]` → `C0K1`.
pub(crate) fn cluster_template_name(t: &[(i32, bool)]) -> String {
    t.iter()
        .map(|&(o, k)| format!("{}{o}", if k { "K" } else { "C" }))
        .collect()
}

/// The symbol of a character in n-gram and cluster keys.
#[inline]
pub(crate) fn char_symbol(c: char) -> u64 {
    u64::from(c as u32)
}

/// The symbols a cluster template can read at distance 1, by value index:
/// the cluster ids `0..=len`, then the boundary before and the boundary
/// after the sentence (`len + 1`, `len + 2`).
#[inline]
pub(crate) fn cluster_value_symbol(clusters: &CharClusters, value: usize) -> u64 {
    let n = clusters.len();
    match value {
        v if v <= n => v as u64,
        v if v == n + 1 => BOS + 1,
        _ => EOS + 1,
    }
}

/// The cluster symbol at position `p`: boundary symbols as for characters.
#[inline]
fn cluster_symbol(clusters: &CharClusters, input: &[char], p: isize) -> u64 {
    if p < 0 {
        BOS + p.unsigned_abs() as u64
    } else if (p as usize) < input.len() {
        u64::from(clusters.id(input[p as usize]))
    } else {
        EOS + (p as usize - input.len() + 1) as u64
    }
}

impl NgramExtractor {
    /// An extractor for `config`; `lexicon` is required when
    /// `config.lexicon_features` is set (and ignored otherwise).
    pub fn new(config: NgramConfig, lexicon: Option<Arc<Lexicon>>) -> Result<Self> {
        config.validate()?;
        if config.lexicon_features && lexicon.is_none() {
            return Err(ConfigError::MissingLexicon.into());
        }
        let mut templates = Vec::with_capacity(config.templates.len());
        let mut offsets = Vec::new();
        for t in &config.templates {
            let start = offsets.len();
            offsets.extend(t.iter().map(|&o| o as isize));
            templates.push((hash_name(&template_name(t)), start, offsets.len()));
        }
        let class_seeds = CLASS_OFFSETS.map(|o| hash_name(&format!("T{o}")));
        Ok(NgramExtractor {
            templates,
            offsets,
            class_seeds,
            class_tri_seed: hash_name("T-1T0T1"),
            lex_seeds: [hash_name("LS"), hash_name("LE"), hash_name("LI")],
            lexicon: if config.lexicon_features { lexicon } else { None },
            cluster_seeds: CLUSTER_TEMPLATES.map(|t| hash_name(&cluster_template_name(t))),
            clusters: None,
            config,
        })
    }

    /// The extractor with character-cluster attributes from `clusters`
    /// (none when `None`).
    pub fn with_clusters(mut self, clusters: Option<Arc<CharClusters>>) -> Self {
        self.clusters = clusters;
        self
    }

    /// The character clusters, if any.
    pub fn clusters(&self) -> Option<&Arc<CharClusters>> {
        self.clusters.as_ref()
    }

    /// An extractor with the default configuration (no lexicon features).
    pub fn with_defaults() -> Self {
        NgramExtractor::new(NgramConfig::default(), None)
            .unwrap_or_else(|_| unreachable!("the default configuration is valid"))
    }

    /// The configuration.
    pub fn config(&self) -> &NgramConfig {
        &self.config
    }

    /// The lexicon used for lexicon features, if any.
    pub fn lexicon(&self) -> Option<&Arc<Lexicon>> {
        self.lexicon.as_ref()
    }

    /// Calls `emit(key)` for each attribute at `t`, in the order of `describe`;
    /// `lex` is the lexicon's match at `t` (when there is a lexicon).
    #[inline]
    fn for_each_key(&self, input: &[char], t: usize, lex: Option<LexMatch>, mut emit: impl FnMut(u64)) {
        let t = t as isize;
        for (i, &(_, a, b)) in self.templates.iter().enumerate() {
            emit(self.template_key(i, self.offsets[a..b].iter().map(|&o| symbol(input, t + o))));
        }
        if self.config.char_classes {
            let codes = CLASS_OFFSETS.map(|o| class_code(input, t + o as isize));
            for (i, code) in codes.into_iter().enumerate() {
                emit(self.class_key(i, code));
            }
            emit(self.class_trigram_key(codes));
        }
        if let Some(m) = lex {
            let cap = self.config.lexicon_cap;
            emit(self.lexicon_key(LexiconAttr::Start, m.start_len.min(cap) as u64));
            emit(self.lexicon_key(LexiconAttr::End, m.end_len.min(cap) as u64));
            emit(self.lexicon_key(
                LexiconAttr::Inside,
                lexicon_inside_value(m.in_len.min(cap), m.in_position()),
            ));
        }
        if let Some(cl) = &self.clusters {
            for (i, tpl) in CLUSTER_TEMPLATES.iter().enumerate() {
                let symbols = tpl.iter().map(|&(o, k)| {
                    let p = t + o as isize;
                    if k {
                        cluster_symbol(cl, input, p)
                    } else {
                        symbol(input, p)
                    }
                });
                emit(self.cluster_key(i, symbols));
            }
        }
    }

    /// The key of n-gram template `template` (an index into the configured
    /// templates) given the symbols at its offsets, in the template's order.
    #[inline]
    pub(crate) fn template_key(&self, template: usize, symbols: impl IntoIterator<Item = u64>) -> u64 {
        symbols.into_iter().fold(self.templates[template].0, hash_combine)
    }

    /// The key of class attribute `T{o}` for the `i`-th of [`CLASS_OFFSETS`].
    #[inline]
    pub(crate) fn class_key(&self, i: usize, code: u64) -> u64 {
        hash_combine(self.class_seeds[i], code)
    }

    /// The key of the class trigram attribute `T-1T0T1`.
    #[inline]
    pub(crate) fn class_trigram_key(&self, codes: [u64; 3]) -> u64 {
        hash_combine(self.class_tri_seed, codes[0] | codes[1] << 8 | codes[2] << 16)
    }

    /// The key of cluster template `template` (an index into
    /// [`CLUSTER_TEMPLATES`]) given its symbols, in the template's order.
    #[inline]
    pub(crate) fn cluster_key(&self, template: usize, symbols: impl IntoIterator<Item = u64>) -> u64 {
        symbols.into_iter().fold(self.cluster_seeds[template], hash_combine)
    }

    /// The key of a lexicon attribute with its (capped) value.
    #[inline]
    pub(crate) fn lexicon_key(&self, attr: LexiconAttr, value: u64) -> u64 {
        hash_combine(self.lex_seeds[attr as usize], value)
    }

    /// The attributes at position `t` as `(key, text)`, in the order `extract`
    /// emits them; e.g. `(…, "C-1C0=中国")`, `(…, "T0=digit")`, `(…, "LI=4/M")`.
    /// Empty when `t` is out of range.
    pub fn describe(&self, input: &[char], t: usize) -> Vec<(u64, String)> {
        if t >= input.len() {
            return Vec::new();
        }
        let mut keys = Vec::new();
        let lex = self.lexicon.as_ref().map(|l| l.matches_at(input, t));
        self.for_each_key(input, t, lex, |k| keys.push(k));
        let ti = t as isize;
        let mut texts = Vec::with_capacity(keys.len());
        for off in &self.config.templates {
            let value: String = off.iter().map(|&o| symbol_text(input, ti + o as isize)).collect();
            texts.push(format!("{}={value}", template_name(off)));
        }
        if self.config.char_classes {
            let names = CLASS_OFFSETS.map(|o| class_text(input, ti + o as isize));
            for (o, name) in CLASS_OFFSETS.iter().zip(names) {
                texts.push(format!("T{o}={name}"));
            }
            texts.push(format!("T-1T0T1={}/{}/{}", names[0], names[1], names[2]));
        }
        if let Some(lex) = &self.lexicon {
            let m = lex.matches_at(input, t);
            let cap = self.config.lexicon_cap;
            texts.push(format!("LS={}", m.start_len.min(cap)));
            texts.push(format!("LE={}", m.end_len.min(cap)));
            texts.push(format!(
                "LI={}/{}",
                m.in_len.min(cap),
                LEX_POSITIONS[usize::from(m.in_position())]
            ));
        }
        if let Some(cl) = &self.clusters {
            for tpl in CLUSTER_TEMPLATES {
                let value: Vec<String> = tpl
                    .iter()
                    .map(|&(o, k)| {
                        let p = ti + o as isize;
                        match (k, p >= 0 && (p as usize) < input.len()) {
                            (true, true) => cluster_symbol(cl, input, p).to_string(),
                            _ => symbol_text(input, p),
                        }
                    })
                    .collect();
                texts.push(format!("{}={}", cluster_template_name(tpl), value.join("/")));
            }
        }
        keys.into_iter().zip(texts).collect()
    }
}

impl FeatureExtractor for NgramExtractor {
    type Input = [char];

    fn len(&self, input: &[char]) -> usize {
        input.len()
    }

    fn extract(&self, input: &[char], t: usize, sink: &mut dyn FnMut(Attr<'_>)) {
        if t >= input.len() {
            return;
        }
        let lex = self.lexicon.as_ref().map(|l| l.matches_at(input, t));
        self.for_each_key(input, t, lex, |key| sink(state_attr(key)));
    }

    fn extract_all(&self, input: &[char], sink: &mut dyn FnMut(usize, Attr<'_>)) {
        let lex = self.lexicon.as_ref().map(|l| l.matches_all(input));
        for t in 0..input.len() {
            let m = lex.as_ref().map(|all| all[t]);
            self.for_each_key(input, t, m, |key| sink(t, state_attr(key)));
        }
    }
}

fn state_attr(key: u64) -> Attr<'static> {
    Attr {
        kind: AttrKind::State,
        key: AttrKey::Hashed(key),
        value: 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::normalize;
    use std::collections::HashSet;

    fn keys(ex: &NgramExtractor, input: &[char], t: usize) -> Vec<u64> {
        let mut out = Vec::new();
        ex.extract(input, t, &mut |a| {
            assert_eq!(a.kind, AttrKind::State);
            assert_eq!(a.value, 1.0);
            match a.key {
                AttrKey::Hashed(h) => out.push(h),
                AttrKey::Name(n) => panic!("unexpected name {n}"),
            }
        });
        out
    }

    /// `extract_all` (used by training and tagging) gives exactly what
    /// `extract` gives position by position, lexicon and cluster features
    /// included, and `describe` names every attribute.
    #[test]
    fn extract_all_agrees_with_extract() {
        let sents = vec![vec!["中国", "人民", "银行"], vec!["人民币", "１９９８年"]];
        let lex = Arc::new(Lexicon::from_sentences(&sents));
        let config = NgramConfig {
            lexicon_features: true,
            ..NgramConfig::default()
        };
        let texts: Vec<Vec<char>> = ["中国人民银行", "人民币１９９８年"]
            .iter()
            .map(|s| normalize(s))
            .collect();
        let clusters = Arc::new(CharClusters::learn(texts.iter().map(Vec::as_slice), 3, 1));
        let ex = NgramExtractor::new(config, Some(lex))
            .unwrap()
            .with_clusters(Some(clusters));
        let described = ex.describe(&normalize("中国人"), 1);
        assert_eq!(described.len(), 10 + 4 + 3 + CLUSTER_TEMPLATES.len());
        let cluster = ex.clusters().unwrap().id('人');
        assert!(
            described.iter().any(|(_, text)| text == &format!("C0K1=国/{cluster}")),
            "{described:?}"
        );
        let input = normalize("中国人民银行发行人民币１９９８年版，abc");
        let mut all: Vec<Vec<u64>> = vec![Vec::new(); input.len()];
        ex.extract_all(&input, &mut |t, a| all[t].push(a.key.key()));
        for (t, got) in all.iter().enumerate() {
            assert_eq!(got, &keys(&ex, &input, t), "position {t}");
        }
    }

    #[test]
    fn deterministic_and_counted() {
        let ex = NgramExtractor::with_defaults();
        let input = normalize("我爱北京天安门");
        let a = keys(&ex, &input, 3);
        let b = keys(&ex, &input, 3);
        assert_eq!(a, b);
        assert_eq!(a.len(), 10 + 4);
        let again = NgramExtractor::with_defaults();
        assert_eq!(keys(&again, &input, 3), a);
        assert!(keys(&ex, &input, 7).is_empty());
        assert_eq!(ex.len(&input), 7);
    }

    #[test]
    fn distinct_contexts_give_distinct_keys() {
        let ex = NgramExtractor::with_defaults();
        let s1 = normalize("我爱北京");
        let s2 = normalize("我恨北京");
        let k1 = keys(&ex, &s1, 1);
        let k2 = keys(&ex, &s2, 1);
        // All templates touching position 1 differ; C-1 (我) and C1, C2 do not.
        let differ: Vec<bool> = k1.iter().zip(&k2).map(|(a, b)| a != b).collect();
        let touched = [false, false, true, false, false, false, true, true, false, false];
        assert_eq!(&differ[..10], &touched);
        // Within one position, no two attributes share a key.
        let set: HashSet<u64> = k1.iter().copied().collect();
        assert_eq!(set.len(), k1.len());
        // Keys across all positions of a sentence are distinct where contexts are.
        let all: Vec<u64> = (0..s1.len()).flat_map(|t| keys(&ex, &s1, t)).collect();
        let set: HashSet<u64> = all.iter().copied().collect();
        assert!(set.len() > 4 * 10);
    }

    #[test]
    fn boundaries_differ_by_distance() {
        let ex = NgramExtractor::with_defaults();
        let s = normalize("甲乙丙");
        let d0 = ex.describe(&s, 0);
        assert_eq!(d0[0].1, "C-2=<BOS2>");
        assert_eq!(d0[1].1, "C-1=<BOS1>");
        assert_eq!(d0[5].1, "C-2C-1=<BOS2><BOS1>");
        let d2 = ex.describe(&s, 2);
        assert_eq!(d2[3].1, "C1=<EOS1>");
        assert_eq!(d2[4].1, "C2=<EOS2>");
        assert_ne!(d0[0].0, d0[1].0);
        assert_ne!(d2[3].0, d0[1].0);
        // C-1 at position 0 (BOS1) vs C-1 at position 1 in a one-char-longer text.
        let s2 = normalize("丁甲乙丙");
        assert_ne!(ex.describe(&s2, 1)[1].0, d0[1].0);
    }

    #[test]
    fn describe_matches_extract() {
        let lex = Arc::new(Lexicon::from_sentences(&[vec!["北京", "天安门", "2"]]));
        let config = NgramConfig {
            lexicon_features: true,
            ..NgramConfig::default()
        };
        let ex = NgramExtractor::new(config, Some(lex)).unwrap();
        let input = normalize("在北京天安门２号");
        for t in 0..input.len() {
            let d = ex.describe(&input, t);
            let k = keys(&ex, &input, t);
            assert_eq!(d.iter().map(|x| x.0).collect::<Vec<_>>(), k);
        }
        let d = ex.describe(&input, 4);
        let texts: Vec<&str> = d.iter().map(|x| x.1.as_str()).collect();
        assert!(texts.contains(&"C-1C0=天安"), "{texts:?}");
        assert!(texts.contains(&"T0=other"));
        assert!(texts.contains(&"LS=0"));
        assert!(texts.contains(&"LE=0"));
        assert!(texts.contains(&"LI=3/M"));
        let d = ex.describe(&input, 6);
        let texts: Vec<&str> = d.iter().map(|x| x.1.as_str()).collect();
        assert!(texts.contains(&"T0=digit"), "{texts:?}");
        assert!(texts.contains(&"LI=1/S"), "{texts:?}");
        assert!(texts.contains(&"T-1T0T1=other/digit/other"), "{texts:?}");
    }

    #[test]
    fn width_normalized_input_shares_keys() {
        let ex = NgramExtractor::with_defaults();
        let a = normalize("１９９８年");
        let b = normalize("1998年");
        for t in 0..a.len() {
            assert_eq!(keys(&ex, &a, t), keys(&ex, &b, t));
        }
    }

    #[test]
    fn config_validation_and_serde() {
        let c = NgramConfig::default();
        let json = serde_json::to_string(&c).unwrap();
        let back: NgramConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        let partial: NgramConfig = serde_json::from_str(r#"{"char_classes": false}"#).unwrap();
        assert!(!partial.char_classes);
        assert_eq!(partial.templates, c.templates);
        let bad = NgramConfig {
            templates: vec![vec![3]],
            ..NgramConfig::default()
        };
        assert!(matches!(
            NgramExtractor::new(bad, None),
            Err(crate::Error::Config(ConfigError::InvalidTemplate {
                problem: TemplateProblem::OffsetOutsideWindow { offset: 3, window: 2 },
                ..
            }))
        ));
        let bad = NgramConfig {
            templates: vec![vec![]],
            ..NgramConfig::default()
        };
        assert!(matches!(
            NgramExtractor::new(bad, None),
            Err(crate::Error::Config(ConfigError::InvalidTemplate {
                problem: TemplateProblem::Empty,
                ..
            }))
        ));
        let no_lex = NgramConfig {
            lexicon_features: true,
            ..NgramConfig::default()
        };
        assert!(matches!(
            NgramExtractor::new(no_lex.clone(), None),
            Err(crate::Error::Config(ConfigError::MissingLexicon))
        ));
        let zero_cap = NgramConfig {
            lexicon_cap: 0,
            ..no_lex
        };
        assert!(matches!(
            zero_cap.validate(),
            Err(crate::Error::Config(ConfigError::ZeroLexiconCap))
        ));
        let wide = NgramConfig {
            window: 9,
            ..NgramConfig::default()
        };
        let err = wide.validate().unwrap_err();
        assert!(matches!(
            err,
            crate::Error::Config(ConfigError::WindowTooLarge {
                window: 9,
                max: MAX_WINDOW
            })
        ));
        assert_eq!(
            err.to_string(),
            "invalid configuration: window 9 is larger than the maximum 8"
        );
    }

    #[test]
    fn template_order_does_not_change_keys() {
        let mut c = NgramConfig::default();
        c.templates.reverse();
        let rev = NgramExtractor::new(c, None).unwrap();
        let fwd = NgramExtractor::with_defaults();
        let s = normalize("中文分词");
        let mut a = keys(&fwd, &s, 2);
        let mut b = keys(&rev, &s, 2);
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b);
    }

    /// Throughput of feature extraction alone; run with `--ignored --nocapture`.
    #[test]
    #[ignore]
    fn throughput() {
        let ex = NgramExtractor::with_defaults();
        let text = normalize(&"迈向充满希望的新世纪——一九九八年新年讲话（附图片１张）".repeat(20));
        let start = std::time::Instant::now();
        let mut acc = 0u64;
        let mut chars = 0usize;
        while start.elapsed().as_secs_f64() < 1.0 {
            for t in 0..text.len() {
                ex.extract(&text, t, &mut |a| acc = acc.wrapping_add(a.key.key()));
            }
            chars += text.len();
        }
        let rate = chars as f64 / start.elapsed().as_secs_f64();
        println!("{rate:.0} chars/s ({acc})");
    }
}
