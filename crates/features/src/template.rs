//! CRF++ feature templates, with CRF++'s exact semantics.
//!
//! A template file lists one template per line. This is the feature language of
//! CRF++, and reproducing it exactly (down to the attribute names) means a CRF++
//! user's templates and data give the same features here. The rules:
//!
//! * a line starting with `U` is a **unigram** template: it yields an attribute
//!   paired with the current label (a state feature);
//! * a line starting with `B` is a **bigram** template: it yields an attribute
//!   paired with the (previous, current) label pair (an edge feature); edges join
//!   positions `t-1` and `t`, so bigram attributes exist only for `t >= 1`;
//! * a line starting with `#` is a comment; empty (or whitespace-only) lines are
//!   skipped; any other line is an error.
//!
//! The whole line (prefix included, e.g. `U01:`) is literal text, except for the
//! macros `%x[row,col]`, which are replaced by column `col` of the token `row`
//! positions away from the current one (`row` may be negative). The expanded
//! line is the attribute name: `U01:%x[0,0]/%x[1,0]` at "He" in "He is" gives
//! `U01:He/is`. Outside the sequence CRF++ substitutes padding symbols:
//! `_B-1`, `_B-2`, ... before the first token (`_B-d` where `d` tokens are
//! missing) and `_B+1`, `_B+2`, ... after the last. CRF++ caps `|row|` at 8;
//! we accept any offset and extend the padding names in the same pattern, so
//! every template CRF++ accepts expands identically.
//!
//! A template without any macro is constant: `U` alone (or `U99:bias`) fires at
//! every position and acts as a per-label bias; `B` alone is the plain label
//! bigram, i.e. the transition matrix. The model owns transitions, so plain `B`
//! lines emit no attribute; [`Templates::has_plain_bigram`] tells the caller
//! whether to enable them (as CRF++ does, a template file without a `B` line
//! gives a model without transitions).
//!
//! Macros are strict: only `%x[` followed by an optional `-`, digits, `,`,
//! digits and `]`. CRF++ silently reads `%x[,0]` as row 0; we reject it, as we
//! reject a `%` not followed by `x` (CRF++ refuses those lines too).

use crate::error::FormatError;
use crate::extractor::{Attr, AttrKey, AttrKind, FeatureExtractor};
use crate::lines::{is_blank, LineReader};
use std::cell::Cell;
use std::fmt::Write as _;
use std::io::BufRead;

/// Unigram (state) or bigram (edge) template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TemplateKind {
    /// A `U` line: attribute × current label.
    Unigram,
    /// A `B` line: attribute × (previous label, current label).
    Bigram,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Macro { row: i64, col: usize },
}

/// One parsed template line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    kind: TemplateKind,
    text: String,
    line: usize,
    segments: Vec<Segment>,
}

impl Template {
    /// Unigram or bigram.
    pub fn kind(&self) -> TemplateKind {
        self.kind
    }

    /// The template line as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// 1-based line of the template file it came from.
    pub fn line(&self) -> usize {
        self.line
    }

    /// Whether the template has at least one `%x[row,col]` macro.
    pub fn has_macro(&self) -> bool {
        self.segments.iter().any(|s| matches!(s, Segment::Macro { .. }))
    }

    /// The largest column index used by this template's macros.
    pub fn max_column(&self) -> Option<usize> {
        self.segments
            .iter()
            .filter_map(|s| match s {
                Segment::Macro { col, .. } => Some(*col),
                Segment::Literal(_) => None,
            })
            .max()
    }

    /// Appends the expansion at position `t` of `rows` to `out`.
    ///
    /// Returns `false` (leaving `out` partly written) if a referenced token has
    /// fewer columns than the macro asks for; never panics.
    pub fn expand_into(&self, rows: &[Vec<String>], t: usize, out: &mut String) -> bool {
        let n = rows.len() as i64;
        let t = t as i64;
        for seg in &self.segments {
            match seg {
                Segment::Literal(s) => out.push_str(s),
                Segment::Macro { row, col } => {
                    let idx = t + row;
                    if idx < 0 {
                        let _ = write!(out, "_B-{}", -idx);
                    } else if idx >= n {
                        let _ = write!(out, "_B+{}", idx - n + 1);
                    } else {
                        match rows[idx as usize].get(*col) {
                            Some(v) => out.push_str(v),
                            None => return false,
                        }
                    }
                }
            }
        }
        true
    }

    /// The expansion at position `t` of `rows` as a new string (see [`Template::expand_into`]).
    pub fn expand(&self, rows: &[Vec<String>], t: usize) -> Option<String> {
        let mut s = String::new();
        self.expand_into(rows, t, &mut s).then_some(s)
    }
}

/// A parsed CRF++ template file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Templates {
    source: String,
    unigrams: Vec<Template>,
    bigrams: Vec<Template>,
}

/// Largest accepted `|row|`: far beyond any useful context, small enough that
/// position arithmetic cannot overflow.
const MAX_ROW: i64 = 1 << 31;

fn parse_line(text: &str, line: usize, path: &str) -> Result<Vec<Segment>, FormatError> {
    let err = |byte: usize, msg: String| {
        let column = text[..byte].chars().count() + 1;
        FormatError::new(path, line, format!("column {column}: {msg}"))
    };
    let bytes = text.as_bytes();
    let mut segments = Vec::new();
    let mut literal_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        let start = i;
        if literal_start < start {
            segments.push(Segment::Literal(text[literal_start..start].to_owned()));
        }
        if bytes.get(i + 1) != Some(&b'x') {
            return Err(err(
                start,
                "'%' must start a macro %x[row,col] (CRF++ has no other escape)".into(),
            ));
        }
        if bytes.get(i + 2) != Some(&b'[') {
            return Err(err(start, "malformed macro: expected '[' after '%x'".into()));
        }
        i += 3;
        let negative = bytes.get(i) == Some(&b'-');
        if negative {
            i += 1;
        }
        let (row, next) = read_number(bytes, i);
        let Some(row) = row else {
            return Err(err(
                i,
                "malformed macro %x[row,col]: expected the row (an integer)".into(),
            ));
        };
        i = next;
        if bytes.get(i) != Some(&b',') {
            return Err(err(i, "malformed macro %x[row,col]: expected ',' after the row".into()));
        }
        i += 1;
        let (col, next) = read_number(bytes, i);
        let Some(col) = col else {
            return Err(err(
                i,
                "malformed macro %x[row,col]: expected the column (a non-negative integer)".into(),
            ));
        };
        i = next;
        if bytes.get(i) != Some(&b']') {
            return Err(err(
                i,
                "malformed macro %x[row,col]: expected ']' after the column".into(),
            ));
        }
        i += 1;
        if row > MAX_ROW as u64 {
            return Err(err(start, format!("row offset {row} is too large")));
        }
        let Ok(col) = usize::try_from(col) else {
            return Err(err(start, format!("column {col} is too large")));
        };
        let row = if negative { -(row as i64) } else { row as i64 };
        segments.push(Segment::Macro { row, col });
        literal_start = i;
    }
    if literal_start < bytes.len() {
        segments.push(Segment::Literal(text[literal_start..].to_owned()));
    }
    Ok(segments)
}

/// Reads ASCII digits at `i`: `(Some(value), end)`, or `(None, i)` when there are
/// none or the value overflows.
fn read_number(bytes: &[u8], i: usize) -> (Option<u64>, usize) {
    let mut j = i;
    let mut value: u64 = 0;
    while let Some(&b) = bytes.get(j) {
        if !b.is_ascii_digit() {
            break;
        }
        match value.checked_mul(10).and_then(|v| v.checked_add(u64::from(b - b'0'))) {
            Some(v) => value = v,
            None => return (None, i),
        }
        j += 1;
    }
    if j == i {
        (None, i)
    } else {
        (Some(value), j)
    }
}

impl Templates {
    /// Parses template text; `path` is only used in error messages.
    ///
    /// Lines end with LF or CRLF; a leading byte-order mark is ignored.
    pub fn parse(text: &str, path: &str) -> Result<Templates, FormatError> {
        let mut unigrams = Vec::new();
        let mut bigrams = Vec::new();
        let body = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (i, raw) in body.split('\n').enumerate() {
            let line_no = i + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if is_blank(line) || line.starts_with('#') {
                continue;
            }
            let kind = match line.chars().next() {
                Some('U') => TemplateKind::Unigram,
                Some('B') => TemplateKind::Bigram,
                first => {
                    let first = first.unwrap_or(' ');
                    return Err(FormatError::new(
                        path,
                        line_no,
                        format!(
                            "a template line must start with 'U' (unigram), 'B' (bigram) or '#' (comment), found {first:?}"
                        ),
                    ));
                }
            };
            let segments = parse_line(line, line_no, path)?;
            let t = Template {
                kind,
                text: line.to_owned(),
                line: line_no,
                segments,
            };
            match kind {
                TemplateKind::Unigram => unigrams.push(t),
                TemplateKind::Bigram => bigrams.push(t),
            }
        }
        Ok(Templates {
            source: text.to_owned(),
            unigrams,
            bigrams,
        })
    }

    /// Reads and parses a template file, with line-numbered decoding errors.
    pub fn read<R: BufRead>(reader: R, path: &str) -> Result<Templates, FormatError> {
        let mut lines = LineReader::new(reader, path);
        let mut text = String::new();
        while let Some(line) = lines.next_line()? {
            text.push_str(line);
            text.push('\n');
        }
        Templates::parse(&text, path)
    }

    /// The template text as given to [`Templates::parse`] (store it in a model
    /// and parse it again to get the same templates).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The `U` templates in file order.
    pub fn unigrams(&self) -> &[Template] {
        &self.unigrams
    }

    /// The `B` templates in file order (including plain `B` lines).
    pub fn bigrams(&self) -> &[Template] {
        &self.bigrams
    }

    /// Whether there is no template at all.
    pub fn is_empty(&self) -> bool {
        self.unigrams.is_empty() && self.bigrams.is_empty()
    }

    /// The largest column index any macro uses, `None` without macros.
    ///
    /// Data needs more than this many feature columns (see [`Templates::check_columns`]).
    pub fn max_column(&self) -> Option<usize> {
        self.unigrams
            .iter()
            .chain(&self.bigrams)
            .filter_map(Template::max_column)
            .max()
    }

    /// Whether a `B` line without macro exists, i.e. label transitions are enabled.
    pub fn has_plain_bigram(&self) -> bool {
        self.bigrams.iter().any(|t| !t.has_macro())
    }

    /// Checks that every macro's column is below `feature_columns`.
    ///
    /// `data_path` names the data file in the error, which points at the first
    /// template line using a missing column.
    pub fn check_columns(&self, feature_columns: usize, data_path: &str) -> Result<(), FormatError> {
        let mut offenders: Vec<&Template> = self
            .unigrams
            .iter()
            .chain(&self.bigrams)
            .filter(|t| t.max_column().is_some_and(|c| c >= feature_columns))
            .collect();
        offenders.sort_by_key(|t| t.line);
        match offenders.first() {
            None => Ok(()),
            Some(t) => Err(FormatError::whole_file(
                data_path,
                format!(
                    "template line {} ({}) uses column {}, but the data has only {} feature column(s) (columns are numbered from 0)",
                    t.line,
                    t.text,
                    t.max_column().unwrap_or(0),
                    feature_columns
                ),
            )),
        }
    }
}

thread_local! {
    /// Scratch string reused by every `TemplateExtractor::extract` on this thread.
    static SCRATCH: Cell<String> = const { Cell::new(String::new()) };
}

/// Extracts CRF++ template attributes from rows of column data.
///
/// Unigram templates give [`AttrKind::State`] attributes at every position;
/// bigram templates with a macro give [`AttrKind::Edge`] attributes at `t >= 1`;
/// plain `B` lines give nothing (the model's transitions cover them). All values
/// are 1. Rows may carry extra columns (such as the gold label) beyond
/// `feature_columns`; templates never read them once checked by
/// [`TemplateExtractor::new`].
#[derive(Clone, Debug)]
pub struct TemplateExtractor {
    /// The templates.
    pub templates: Templates,
    /// Number of feature columns of the data (label column excluded).
    pub feature_columns: usize,
}

impl TemplateExtractor {
    /// An extractor, after checking that the templates only use columns
    /// `< feature_columns`.
    pub fn new(templates: Templates, feature_columns: usize) -> Result<Self, FormatError> {
        templates.check_columns(feature_columns, "<data>")?;
        Ok(TemplateExtractor {
            templates,
            feature_columns,
        })
    }
}

impl FeatureExtractor for TemplateExtractor {
    type Input = [Vec<String>];

    fn len(&self, input: &Self::Input) -> usize {
        input.len()
    }

    fn extract(&self, input: &Self::Input, t: usize, sink: &mut dyn FnMut(Attr<'_>)) {
        if t >= input.len() {
            return;
        }
        // Take the scratch string out of the cell (so a re-entrant call from the
        // sink simply gets a fresh one) and put it back at the end.
        let mut buf = SCRATCH.with(Cell::take);
        for tpl in &self.templates.unigrams {
            buf.clear();
            if tpl.expand_into(input, t, &mut buf) {
                sink(Attr {
                    kind: AttrKind::State,
                    key: AttrKey::Name(&buf),
                    value: 1.0,
                });
            }
        }
        if t >= 1 {
            for tpl in self.templates.bigrams.iter().filter(|b| b.has_macro()) {
                buf.clear();
                if tpl.expand_into(input, t, &mut buf) {
                    sink(Attr {
                        kind: AttrKind::Edge,
                        key: AttrKey::Name(&buf),
                        value: 1.0,
                    });
                }
            }
        }
        SCRATCH.with(|c| c.set(buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(tokens: &[&str]) -> Vec<Vec<String>> {
        tokens
            .iter()
            .map(|t| t.split(' ').map(str::to_owned).collect())
            .collect()
    }

    fn collect(ex: &TemplateExtractor, input: &[Vec<String>], t: usize) -> Vec<(AttrKind, String)> {
        let mut out = Vec::new();
        ex.extract(input, t, &mut |a| {
            let AttrKey::Name(n) = a.key else {
                panic!("template attributes are named")
            };
            assert_eq!(a.value, 1.0);
            out.push((a.kind, n.to_owned()));
        });
        out
    }

    #[test]
    fn parses_kinds_comments_and_blank_lines() {
        let t = Templates::parse(
            "# Unigram\r\nU00:%x[-2,0]\n\n   \nU01:%x[0,0]/%x[1,1]\n#B01:%x[0,0]\nB\nB10:%x[-1,1]",
            "tpl",
        )
        .unwrap();
        assert_eq!(t.unigrams().len(), 2);
        assert_eq!(t.bigrams().len(), 2);
        assert_eq!(t.unigrams()[1].line(), 5);
        assert_eq!(t.unigrams()[1].text(), "U01:%x[0,0]/%x[1,1]");
        assert_eq!(t.max_column(), Some(1));
        assert!(t.has_plain_bigram());
        assert!(t.source().starts_with("# Unigram"));
        assert_eq!(Templates::parse(t.source(), "again").unwrap(), t);
    }

    #[test]
    fn no_plain_bigram_and_no_macros() {
        let t = Templates::parse("U\nU99:bias\nB01:%x[0,0]\n", "tpl").unwrap();
        assert!(!t.has_plain_bigram());
        assert_eq!(t.max_column(), Some(0));
        let t = Templates::parse("U\n", "tpl").unwrap();
        assert_eq!(t.max_column(), None);
    }

    #[test]
    fn bad_lines_and_macros_name_line_and_column() {
        let cases: &[(&str, usize, &str)] = &[
            ("U00:%x[0,0]\nX01:%x[0,0]\n", 2, "must start with"),
            (" U00:%x[0,0]\n", 1, "must start with"),
            ("U00:%x[a,0]\n", 1, "column 8:"),
            ("U00:%x[0]\n", 1, "column 9:"),
            ("U00:%x[0,0\n", 1, "column 11:"),
            ("U00:%x[0,0]/%x[1,\n", 1, "column 18:"),
            ("U00:%x[,0]\n", 1, "column 8:"),
            ("U00:%x[-,0]\n", 1, "column 9:"),
            ("U00:%x[0,-1]\n", 1, "column 10:"),
            ("U00:%y[0,0]\n", 1, "column 5:"),
            ("U00:%x(0,0)\n", 1, "column 5:"),
            ("\n\nU00:%x[ 0,0]\n", 3, "column 8:"),
            ("U00:100%\n", 1, "column 8:"),
            ("U00:%x[99999999999999999999,0]\n", 1, "column 8:"),
            ("U東京:%x[0,0\n", 1, "column 11:"),
        ];
        for (text, line, needle) in cases {
            let e = Templates::parse(text, "tpl").unwrap_err();
            assert_eq!(e.line, *line, "{text:?}: {e}");
            assert!(e.message.contains(needle), "{text:?}: {e}");
            assert_eq!(e.path, "tpl");
        }
    }

    #[test]
    fn padding_at_both_ends() {
        let t = Templates::parse(
            "U00:%x[-2,0]\nU01:%x[-1,0]\nU02:%x[0,0]\nU03:%x[1,0]\nU04:%x[2,0]\n",
            "tpl",
        )
        .unwrap();
        let ex = TemplateExtractor::new(t, 1).unwrap();
        let input = rows(&["a", "b", "c"]);
        let names = |t| collect(&ex, &input, t).into_iter().map(|(_, n)| n).collect::<Vec<_>>();
        assert_eq!(names(0), ["U00:_B-2", "U01:_B-1", "U02:a", "U03:b", "U04:c"]);
        assert_eq!(names(1), ["U00:_B-1", "U01:a", "U02:b", "U03:c", "U04:_B+1"]);
        assert_eq!(names(2), ["U00:a", "U01:b", "U02:c", "U03:_B+1", "U04:_B+2"]);
        assert!(names(3).is_empty());
        // One token: both sides padded.
        let one = rows(&["x"]);
        let got: Vec<String> = collect(&ex, &one, 0).into_iter().map(|(_, n)| n).collect();
        assert_eq!(got, ["U00:_B-2", "U01:_B-1", "U02:x", "U03:_B+1", "U04:_B+2"]);
    }

    #[test]
    fn several_macros_and_columns() {
        let t = Templates::parse(
            "U01:%x[0,0]/%x[1,0]\nU02:%x[-1,1]|%x[0,1]|%x[1,1]\nU\nB\nB03:%x[0,1]%x[-1,1]",
            "tpl",
        )
        .unwrap();
        let ex = TemplateExtractor::new(t, 2).unwrap();
        let input = rows(&["He PRP B-NP", "is VBZ B-VP"]);
        assert_eq!(
            collect(&ex, &input, 0),
            [
                (AttrKind::State, "U01:He/is".to_owned()),
                (AttrKind::State, "U02:_B-1|PRP|VBZ".to_owned()),
                (AttrKind::State, "U".to_owned()),
            ]
        );
        assert_eq!(
            collect(&ex, &input, 1),
            [
                (AttrKind::State, "U01:is/_B+1".to_owned()),
                (AttrKind::State, "U02:PRP|VBZ|_B+1".to_owned()),
                (AttrKind::State, "U".to_owned()),
                (AttrKind::Edge, "B03:VBZPRP".to_owned()),
            ]
        );
    }

    #[test]
    fn far_offsets_extend_the_padding_pattern() {
        let t = Templates::parse("U:%x[-10,0]%x[12,0]", "tpl").unwrap();
        assert_eq!(
            t.unigrams()[0].expand(&rows(&["a", "b"]), 1).as_deref(),
            Some("U:_B-9_B+12")
        );
    }

    #[test]
    fn column_check() {
        let t = Templates::parse("U00:%x[0,0]\nU05:%x[0,2]\nU06:%x[0,1]", "tpl").unwrap();
        assert!(t.check_columns(3, "d").is_ok());
        let e = t.check_columns(2, "train.data").unwrap_err();
        assert_eq!(e.path, "train.data");
        assert!(e.message.contains("template line 2"), "{e}");
        assert!(e.message.contains("column 2"), "{e}");
        assert!(TemplateExtractor::new(t, 2).is_err());
    }

    #[test]
    fn short_rows_do_not_panic() {
        let t = Templates::parse("U00:%x[0,3]\nU01:%x[0,0]", "tpl").unwrap();
        let ex = TemplateExtractor {
            templates: t,
            feature_columns: 4,
        };
        let got = collect(&ex, &rows(&["a b"]), 0);
        assert_eq!(got, [(AttrKind::State, "U01:a".to_owned())]);
    }

    #[test]
    fn read_reports_bad_utf8() {
        let e = Templates::read(&b"U00:%x[0,0]\nU01:\xFF\n"[..], "tpl").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("byte offset 4"), "{e}");
        let t = Templates::read(&b"\xEF\xBB\xBFU00:%x[0,0]\r\nB\r\n"[..], "tpl").unwrap();
        assert_eq!(t.unigrams()[0].text(), "U00:%x[0,0]");
        assert!(t.has_plain_bigram());
    }
}
