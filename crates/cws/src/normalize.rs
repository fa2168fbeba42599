//! Character normalization and character classes for features.
//!
//! The PKU training text (1998) prints digits and Latin letters in full-width
//! forms (`１９９８年`), while the Bakeoff test text (2001) mostly uses ASCII
//! (`2001年`). A model that sees the two forms as unrelated characters gets most
//! test words with digits wrong. So the feature side maps every full-width ASCII
//! variant (U+FF01..=U+FF5E) to its ASCII character and the ideographic space
//! (U+3000) to a space *before* extracting features. Only features see the
//! normalized text: the segmenter still outputs the original characters.
//!
//! Character classes generalize further: all digits look alike to the model, and
//! so do Latin letters, punctuation, and the date/time unit characters that
//! follow numbers (`年月日时分秒点`). [`char_class`] keeps the distinctions of the
//! raw text (ASCII vs full-width); [`feature_class`] collapses the widths, which is
//! what the extractor uses.

use serde::{Deserialize, Serialize};

/// Maps full-width ASCII variants to ASCII and the ideographic space to a space;
/// every other character is returned unchanged.
#[inline]
pub fn normalize_char(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

/// Appends the normalized characters of `s` to `out`.
pub fn normalize_into(s: &str, out: &mut Vec<char>) {
    out.extend(s.chars().map(normalize_char));
}

/// The normalized characters of `s`.
pub fn normalize(s: &str) -> Vec<char> {
    s.chars().map(normalize_char).collect()
}

/// Normalizes a slice of characters in place.
pub fn normalize_in_place(chars: &mut [char]) {
    for c in chars {
        *c = normalize_char(*c);
    }
}

/// The class of a character.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CharClass {
    /// `0`–`9`.
    AsciiDigit,
    /// `０`–`９`.
    FullwidthDigit,
    /// Chinese numerals: `〇零一二三四五六七八九十百千万亿两` and `○`.
    ChineseNumeral,
    /// `A`–`Z`, `a`–`z`.
    AsciiLetter,
    /// `Ａ`–`Ｚ`, `ａ`–`ｚ`.
    FullwidthLetter,
    /// ASCII, CJK and full-width punctuation and common symbols.
    Punctuation,
    /// Date and time units: `年月日时分秒点`.
    DateTimeUnit,
    /// Anything else (Han characters, kana, other scripts, ...).
    Other,
}

impl CharClass {
    /// A short stable name (used in feature descriptions).
    pub fn name(self) -> &'static str {
        match self {
            CharClass::AsciiDigit => "digit",
            CharClass::FullwidthDigit => "fwdigit",
            CharClass::ChineseNumeral => "cnum",
            CharClass::AsciiLetter => "latin",
            CharClass::FullwidthLetter => "fwlatin",
            CharClass::Punctuation => "punct",
            CharClass::DateTimeUnit => "date",
            CharClass::Other => "other",
        }
    }

    /// A small stable code (part of hashed feature keys; never renumber).
    pub fn code(self) -> u8 {
        match self {
            CharClass::AsciiDigit => 1,
            CharClass::FullwidthDigit => 2,
            CharClass::ChineseNumeral => 3,
            CharClass::AsciiLetter => 4,
            CharClass::FullwidthLetter => 5,
            CharClass::Punctuation => 6,
            CharClass::DateTimeUnit => 7,
            CharClass::Other => 8,
        }
    }
}

/// Whether `c` is punctuation or a common symbol: ASCII punctuation, Latin-1
/// punctuation, general punctuation (dashes, quotes, `…`), CJK symbols and
/// punctuation (`、。《》「」【】` ...), CJK compatibility and small forms, and the
/// full-width punctuation block.
pub fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(c,
            '\u{00A1}'..='\u{00BF}'
            | '\u{00D7}' | '\u{00F7}'
            | '\u{2010}'..='\u{2027}'
            | '\u{2030}'..='\u{205E}'
            | '\u{2190}'..='\u{21FF}'
            | '\u{2460}'..='\u{24FF}'
            | '\u{2500}'..='\u{25CA}'
            | '\u{25CC}'..='\u{27BF}'
            | '\u{2103}'
            | '\u{3001}'..='\u{3004}'
            | '\u{3008}'..='\u{3020}'
            | '\u{30FB}'
            | '\u{FE30}'..='\u{FE6B}'
            | '\u{FF01}'..='\u{FF0F}'
            | '\u{FF1A}'..='\u{FF20}'
            | '\u{FF3B}'..='\u{FF40}'
            | '\u{FF5B}'..='\u{FF65}'
            | '\u{FFE0}'..='\u{FFE6}')
}

/// The class of `c` as written (ASCII and full-width forms distinguished).
pub fn char_class(c: char) -> CharClass {
    match c {
        '0'..='9' => CharClass::AsciiDigit,
        '\u{FF10}'..='\u{FF19}' => CharClass::FullwidthDigit,
        'A'..='Z' | 'a'..='z' => CharClass::AsciiLetter,
        '\u{FF21}'..='\u{FF3A}' | '\u{FF41}'..='\u{FF5A}' => CharClass::FullwidthLetter,
        '〇' | '○' | '零' | '一' | '二' | '三' | '四' | '五' | '六' | '七' | '八' | '九' | '十' | '百' | '千'
        | '万' | '亿' | '两' => CharClass::ChineseNumeral,
        '年' | '月' | '日' | '时' | '分' | '秒' | '点' => CharClass::DateTimeUnit,
        _ if is_punctuation(c) => CharClass::Punctuation,
        _ => CharClass::Other,
    }
}

/// `char_class(c).code()`, from a table for the Basic Multilingual Plane
/// (where every Chinese character is): the segmenter asks for the class of
/// every character it reads, and the chain of range tests in [`char_class`]
/// cost more than the table's one load. The table (64 KiB) is built on
/// first use, from [`char_class`] itself.
#[inline]
pub(crate) fn char_class_code(c: char) -> u8 {
    static TABLE: std::sync::OnceLock<Box<[u8]>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        (0..=0xFFFFu32)
            .map(|u| char::from_u32(u).map_or(0, |c| char_class(c).code()))
            .collect()
    });
    match table.get(c as usize) {
        Some(&code) => code,
        None => char_class(c).code(),
    }
}

/// The class of `c` after width normalization: full-width digits and letters
/// land in [`CharClass::AsciiDigit`] and [`CharClass::AsciiLetter`].
#[inline]
pub fn feature_class(c: char) -> CharClass {
    char_class(normalize_char(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_class_table_agrees_with_char_class_everywhere() {
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            assert_eq!(char_class_code(c), char_class(c).code(), "{c:?}");
        }
    }

    #[test]
    fn width_normalization() {
        let s: String = normalize("１９９８年ＡＢｃ，！％　x（）").into_iter().collect();
        assert_eq!(s, "1998年ABc,!% x()");
        // Outside the block: unchanged.
        for c in ['中', '。', '、', '“', '—', '…', 'a', '\u{FF5F}', '\u{FF00}'] {
            assert_eq!(normalize_char(c), c);
        }
        let mut v: Vec<char> = "ｘ".chars().collect();
        normalize_in_place(&mut v);
        assert_eq!(v, ['x']);
        let mut out = vec!['a'];
        normalize_into("１", &mut out);
        assert_eq!(out, ['a', '1']);
    }

    #[test]
    fn classes() {
        use CharClass::*;
        let cases = [
            ('7', AsciiDigit),
            ('７', FullwidthDigit),
            ('〇', ChineseNumeral),
            ('○', ChineseNumeral),
            ('两', ChineseNumeral),
            ('亿', ChineseNumeral),
            ('x', AsciiLetter),
            ('Ｘ', FullwidthLetter),
            ('ｘ', FullwidthLetter),
            ('年', DateTimeUnit),
            ('点', DateTimeUnit),
            ('中', Other),
            ('の', Other),
        ];
        for (c, class) in cases {
            assert_eq!(char_class(c), class, "{c}");
        }
        for c in "，。、；：？！“”‘’（）《》——…·,.;%-/@「」【】〈〉％－．℃".chars()
        {
            assert_eq!(char_class(c), Punctuation, "{c}");
        }
        assert_eq!(feature_class('７'), AsciiDigit);
        assert_eq!(feature_class('ｘ'), AsciiLetter);
        assert_eq!(feature_class('，'), Punctuation);
        let mut codes: Vec<u8> = [
            AsciiDigit,
            FullwidthDigit,
            ChineseNumeral,
            AsciiLetter,
            FullwidthLetter,
            Punctuation,
            DateTimeUnit,
            Other,
        ]
        .iter()
        .map(|c| c.code())
        .collect();
        codes.dedup();
        assert_eq!(codes.len(), 8);
    }
}
