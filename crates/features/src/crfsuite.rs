//! CRFsuite's attribute data format: reading, writing, and an extractor for it.
//!
//! CRFsuite users extract attributes with their own scripts and hand the
//! trainer a file where each line is one item:
//!
//! ```text
//! B-NP<TAB>w[0]=He<TAB>pos[0]=PRP<TAB>len:0.5
//! ```
//!
//! * the first field is the label, the others are attributes, fields are
//!   separated by TAB (spaces are part of names); empty fields are ignored;
//! * an attribute is `NAME` or `NAME:VALUE`; the value is the text after the
//!   **last** unescaped `:` and must be a finite number (default 1);
//! * in names (and labels) `\:` is a literal colon and `\\` a literal
//!   backslash; a backslash before anything else is kept as is;
//! * a blank line (empty, or only spaces and tabs) ends a sequence; a line may
//!   hold just a label, an item without attributes.
//!
//! Supporting this format lets existing CRFsuite feature pipelines feed
//! chaincrf unchanged, and [`write_crfsuite_item`] lets chaincrf produce files
//! CRFsuite reads. Differences from CRFsuite, all of them turning a silent
//! surprise into an error: a value that is not a number (CRFsuite's `atof`
//! reads it as 0), an unescaped `:` in a label (CRFsuite drops what follows),
//! and CRFsuite's `@weight` declaration lines, which are not supported.

use crate::error::FormatError;
use crate::extractor::{Attr, AttrKey, AttrKind, FeatureExtractor};
use crate::lines::{is_blank, LineReader};
use std::borrow::Cow;
use std::io::{self, BufRead, Write};

/// One sequence of CRFsuite items.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AttributeSequence {
    /// The label of each item.
    pub labels: Vec<String>,
    /// The attributes `(name, value)` of each item, in file order.
    pub attrs: Vec<Vec<(String, f64)>>,
    /// 1-based line number of the first item.
    pub first_line: usize,
}

impl AttributeSequence {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Byte index of the last `:` not preceded by an escaping backslash.
fn last_unescaped_colon(field: &str) -> Option<usize> {
    let bytes = field.as_bytes();
    let mut last = None;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if matches!(bytes.get(i + 1), Some(b':' | b'\\')) => i += 2,
            b':' => {
                last = Some(i);
                i += 1;
            }
            _ => i += 1,
        }
    }
    last
}

/// Resolves `\:` and `\\`; any other character (including a lone `:`) is kept.
pub(crate) fn unescape_name(raw: &str) -> Cow<'_, str> {
    if !raw.contains('\\') {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&next @ (':' | '\\')) = chars.peek() {
                out.push(next);
                chars.next();
                continue;
            }
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// Escapes `\` as `\\` and `:` as `\:`, so that CRFsuite reads `name` back.
pub(crate) fn escape_name(name: &str) -> Cow<'_, str> {
    if !name.contains([':', '\\']) {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c == ':' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// Parses one attribute field `NAME[:VALUE]`; the error is a message without position.
pub(crate) fn parse_attribute(field: &str) -> Result<(String, f64), String> {
    match last_unescaped_colon(field) {
        None => Ok((unescape_name(field).into_owned(), 1.0)),
        Some(i) => {
            let name = unescape_name(&field[..i]).into_owned();
            let raw = &field[i + 1..];
            let value: f64 = raw.parse().map_err(|_| {
                format!(
                    "attribute {name:?}: value {raw:?} after the last ':' is not a number (write a literal colon as \\:)"
                )
            })?;
            if !value.is_finite() {
                return Err(format!("attribute {name:?}: value {raw:?} is not finite"));
            }
            if name.is_empty() {
                return Err(format!("empty attribute name before ':{raw}'"));
            }
            Ok((name, value))
        }
    }
}

fn parse_label(field: &str) -> Result<String, String> {
    if field.starts_with('@') {
        return Err(format!(
            "CRFsuite declarations such as {field:?} are not supported (a label cannot start with '@')"
        ));
    }
    if last_unescaped_colon(field).is_some() {
        return Err(format!(
            "label {field:?} contains an unescaped ':' (write a literal colon as \\:)"
        ));
    }
    Ok(unescape_name(field).into_owned())
}

/// Streams [`AttributeSequence`]s from CRFsuite attribute data.
///
/// Yields `Err` at most once, then stops.
#[derive(Debug)]
pub struct CrfsuiteReader<R> {
    lines: LineReader<R>,
    done: bool,
}

impl<R: BufRead> CrfsuiteReader<R> {
    /// A reader over `reader`; `path` is only used in error messages.
    pub fn new(reader: R, path: &str) -> Self {
        CrfsuiteReader {
            lines: LineReader::new(reader, path),
            done: false,
        }
    }

    fn read_sequence(&mut self) -> Result<Option<AttributeSequence>, FormatError> {
        let mut seq = AttributeSequence::default();
        while let Some(line) = self.lines.next_line()? {
            if is_blank(line) {
                if seq.labels.is_empty() {
                    continue;
                }
                break;
            }
            let mut fields = line.split('\t').filter(|f| !f.is_empty());
            // Not blank, so at least one non-empty field exists.
            let label = parse_label(fields.next().unwrap_or_default());
            let item: Result<Vec<(String, f64)>, String> = fields.map(parse_attribute).collect();
            let (label, item) = match (label, item) {
                (Ok(l), Ok(i)) => (l, i),
                (Err(m), _) | (_, Err(m)) => return Err(self.lines.error(m)),
            };
            if seq.labels.is_empty() {
                seq.first_line = self.lines.line_number();
            }
            seq.labels.push(label);
            seq.attrs.push(item);
        }
        Ok(if seq.labels.is_empty() { None } else { Some(seq) })
    }
}

impl<R: BufRead> Iterator for CrfsuiteReader<R> {
    type Item = Result<AttributeSequence, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.read_sequence() {
            Ok(Some(seq)) => Some(Ok(seq)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Reads a whole CRFsuite attribute data file.
pub fn read_crfsuite_data<R: BufRead>(reader: R, path: &str) -> Result<Vec<AttributeSequence>, FormatError> {
    CrfsuiteReader::new(reader, path).collect()
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn check_text(what: &str, s: &str) -> io::Result<()> {
    if s.is_empty() {
        return Err(invalid(format!("empty {what}")));
    }
    if s.contains(['\t', '\n', '\r', '\0']) {
        return Err(invalid(format!(
            "{what} {s:?} contains a tab, line break or NUL, which the format cannot represent"
        )));
    }
    Ok(())
}

/// Writes one item line `LABEL<TAB>ATTR[:VALUE]...` (no value written when it is 1).
///
/// Names and label are escaped. Returns [`io::ErrorKind::InvalidInput`] for
/// what the format cannot represent: empty names, tabs, line breaks or NUL in
/// names or label, a label of only spaces or starting with `@`, and non-finite
/// values. End each sequence with an empty line (`writeln!(out)`).
pub fn write_crfsuite_item<'a>(
    out: &mut impl Write,
    label: &str,
    attrs: impl IntoIterator<Item = (&'a str, f64)>,
) -> io::Result<()> {
    check_text("label", label)?;
    if is_blank(label) || label.starts_with('@') {
        return Err(invalid(format!(
            "label {label:?} cannot be written (only spaces, or starts with '@')"
        )));
    }
    let mut line = String::with_capacity(64);
    line.push_str(&escape_name(label));
    for (name, value) in attrs {
        check_text("attribute name", name)?;
        if !value.is_finite() {
            return Err(invalid(format!("attribute {name:?} has a non-finite value {value}")));
        }
        line.push('\t');
        line.push_str(&escape_name(name));
        if value != 1.0 {
            line.push(':');
            push_value(&mut line, value);
        }
    }
    line.push('\n');
    out.write_all(line.as_bytes())
}

/// Writes a whole sequence followed by its terminating empty line.
pub fn write_crfsuite_sequence(out: &mut impl Write, seq: &AttributeSequence) -> io::Result<()> {
    for (label, attrs) in seq.labels.iter().zip(&seq.attrs) {
        write_crfsuite_item(out, label, attrs.iter().map(|(n, v)| (n.as_str(), *v)))?;
    }
    out.write_all(b"\n")
}

/// Shortest decimal that reads back as exactly `value`; exponent form for very
/// large or small magnitudes (both forms are understood by C's `atof`).
fn push_value(out: &mut String, value: f64) {
    use std::fmt::Write as _;
    let a = value.abs();
    let _ = if a != 0.0 && !(1e-5..1e16).contains(&a) {
        write!(out, "{value:e}")
    } else {
        write!(out, "{value}")
    };
}

/// Emits the attributes of CRFsuite items as state attributes with their values.
#[derive(Clone, Copy, Debug, Default)]
pub struct CrfsuiteExtractor;

impl FeatureExtractor for CrfsuiteExtractor {
    type Input = [Vec<(String, f64)>];

    fn len(&self, input: &Self::Input) -> usize {
        input.len()
    }

    fn extract(&self, input: &Self::Input, t: usize, sink: &mut dyn FnMut(Attr<'_>)) {
        let Some(item) = input.get(t) else {
            return;
        };
        for (name, value) in item {
            sink(Attr {
                kind: AttrKind::State,
                key: AttrKey::Name(name),
                value: *value,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read(text: &str) -> Result<Vec<AttributeSequence>, FormatError> {
        read_crfsuite_data(text.as_bytes(), "data")
    }

    #[test]
    fn reads_labels_attributes_values_and_sequences() {
        let seqs = read(
            "B-NP\tw[0]=He\tpos[0]=PRP\tlen:0.5\n\
             B-VP\t\tw[0]=is\t\n\
             O\n\
             \n\n\
             X\ta:-2e-3\n",
        )
        .unwrap();
        assert_eq!(seqs.len(), 2);
        let s = &seqs[0];
        assert_eq!((s.first_line, s.len()), (1, 3));
        assert_eq!(s.labels, ["B-NP", "B-VP", "O"]);
        assert_eq!(
            s.attrs[0],
            [
                ("w[0]=He".to_owned(), 1.0),
                ("pos[0]=PRP".to_owned(), 1.0),
                ("len".to_owned(), 0.5)
            ]
        );
        assert_eq!(s.attrs[1], [("w[0]=is".to_owned(), 1.0)]);
        assert!(s.attrs[2].is_empty());
        assert_eq!(seqs[1].first_line, 6);
        assert_eq!(seqs[1].attrs[0], [("a".to_owned(), -0.002)]);
    }

    #[test]
    fn escapes_and_last_colon() {
        let p = |f: &str| parse_attribute(f).unwrap();
        assert_eq!(p(r"url=http\://x"), ("url=http://x".into(), 1.0));
        assert_eq!(p(r"a\\:2"), (r"a\".into(), 2.0));
        assert_eq!(p(r"a\\\:b"), (r"a\:b".into(), 1.0));
        assert_eq!(p("a:b:3"), ("a:b".into(), 3.0));
        assert_eq!(p(r"w\n=x\"), (r"w\n=x\".into(), 1.0));
        assert_eq!(p("has space:1.5"), ("has space".into(), 1.5));
        assert!(parse_attribute("a:b").unwrap_err().contains("not a number"));
        assert!(parse_attribute("a:").is_err());
        assert!(parse_attribute("a:inf").is_err());
        assert!(parse_attribute("a:NaN").is_err());
        assert!(parse_attribute(":2").is_err());
        assert_eq!(parse_label(r"L\:1").unwrap(), "L:1");
        assert!(parse_label("L:1").is_err());
        assert!(parse_label("@weight:2").is_err());
    }

    #[test]
    fn errors_name_the_line() {
        let e = read("A\tx\nB\tx:abc\n").unwrap_err();
        assert_eq!((e.path.as_str(), e.line), ("data", 2));
        assert!(e.message.contains("\"abc\""), "{e}");
        let e = read("\r\n@weight:2\r\nA\tx\r\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = read_crfsuite_data(&b"A\tx\n\nB\t\xC3\xA9\xFF\n"[..], "d").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("byte offset 4"), "{e}");
    }

    #[test]
    fn crlf_and_bom() {
        let seqs = read("\u{feff}A\tx:2\r\nB\r\n\r\n").unwrap();
        assert_eq!(seqs[0].labels, ["A", "B"]);
        assert_eq!(seqs[0].attrs[0], [("x".to_owned(), 2.0)]);
    }

    #[test]
    fn writer_escapes_and_omits_unit_values() {
        let mut out = Vec::new();
        write_crfsuite_item(&mut out, "B:NP", [("a:b", 1.0), (r"c\", 0.25), ("d", 1e-7)]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "B\\:NP\ta\\:b\tc\\\\:0.25\td:1e-7\n");
        let mut sink = Vec::new();
        assert!(write_crfsuite_item(&mut sink, "", [("a", 1.0)]).is_err());
        assert!(write_crfsuite_item(&mut sink, "@w", [("a", 1.0)]).is_err());
        assert!(write_crfsuite_item(&mut sink, "A", [("a\tb", 1.0)]).is_err());
        assert!(write_crfsuite_item(&mut sink, "A", [("", 1.0)]).is_err());
        assert!(write_crfsuite_item(&mut sink, "A", [("a", f64::NAN)]).is_err());
    }

    #[test]
    fn extractor_emits_values() {
        let input = vec![vec![("a".to_owned(), 2.0), ("b".to_owned(), 1.0)], vec![]];
        let ex = CrfsuiteExtractor;
        assert_eq!(ex.len(&input), 2);
        let mut got = Vec::new();
        ex.extract(&input, 0, &mut |a| {
            assert_eq!(a.kind, AttrKind::State);
            let AttrKey::Name(n) = a.key else {
                panic!("named attributes expected")
            };
            got.push((n.to_owned(), a.value));
        });
        assert_eq!(got, [("a".to_owned(), 2.0), ("b".to_owned(), 1.0)]);
        ex.extract(&input, 5, &mut |_| panic!("out of range"));
    }

    fn label() -> impl Strategy<Value = String> {
        "([:\\\\]|\\PC){1,8}".prop_filter("writable label", |l| !l.starts_with('@') && !is_blank(l))
    }

    fn name() -> impl Strategy<Value = String> {
        "([:\\\\]|\\PC){1,10}"
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(1.0),
            Just(0.0),
            -1e3..1e3f64,
            any::<f64>().prop_filter("finite", |v| v.is_finite()),
        ]
    }

    proptest! {
        #[test]
        fn reader_inverts_writer(
            seqs in prop::collection::vec(
                prop::collection::vec(
                    (label(), prop::collection::vec((name(), value()), 0..5)),
                    1..5,
                ),
                0..4,
            )
        ) {
            let mut out = Vec::new();
            let mut expected = Vec::new();
            for seq in &seqs {
                let mut s = AttributeSequence::default();
                for (label, attrs) in seq {
                    s.labels.push(label.clone());
                    s.attrs.push(attrs.clone());
                }
                write_crfsuite_sequence(&mut out, &s).unwrap();
                expected.push(s);
            }
            let back = read_crfsuite_data(&out[..], "rt").unwrap();
            prop_assert_eq!(back.len(), expected.len());
            for (b, e) in back.iter().zip(&expected) {
                prop_assert_eq!(&b.labels, &e.labels);
                prop_assert_eq!(&b.attrs, &e.attrs);
            }
        }
    }
}
