//! Readers for segmented corpora and raw text.
//!
//! Three formats occur in practice:
//!
//! * **PKU People's Daily** ([`CorpusFormat::Pku`]): one sentence per line, tokens
//!   `word/POS` separated by whitespace (two spaces in the 1998 release). The POS
//!   is everything after the *last* `/`, so words that contain a slash (`１/３`)
//!   survive. Bracketed compounds such as `[中央/n  人民/n  广播/vn  电台/n]nt`
//!   are read as their member words: the brackets are dropped.
//! * **SIGHAN Bakeoff** ([`CorpusFormat::Sighan`]): one sentence per line, words
//!   separated by whitespace, no tags (gold files and training files of the Bakeoff).
//! * **Raw text**: one sentence per line, unsegmented; the input of the segmenter.
//!
//! All readers accept UTF-8 with or without a byte-order mark and LF or CRLF line
//! ends. Invalid UTF-8 is an error naming the file, the line and the byte offset;
//! so is a NUL byte, which in practice means a binary or UTF-16 file was given.
//! Empty lines carry no training data, so the corpus readers skip them; the raw
//! reader keeps them, because the segmenter must write exactly one output line
//! per input line.
//!
//! Each format has three entry points: a path-based `read_*`, a `read_*_from` on
//! any [`BufRead`] (with a name used in error messages) and a `parse_*` on a
//! `&str`.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

/// One segmented sentence: its words in order.
pub type Sentence = Vec<String>;

/// The name used in error messages for in-memory text.
pub const STRING_SOURCE: &str = "<string>";

/// The two segmented-corpus formats this crate reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CorpusFormat {
    /// PKU People's Daily: whitespace-separated `word/POS` tokens.
    Pku,
    /// SIGHAN Bakeoff: whitespace-separated words.
    Sighan,
}

/// Reads a file line by line as UTF-8, tracking line numbers and byte offsets,
/// stripping a leading BOM and the line end (`\n` or `\r\n`).
pub(crate) struct LineReader<R> {
    reader: R,
    name: String,
    line: usize,
    offset: u64,
    buf: Vec<u8>,
}

impl LineReader<BufReader<File>> {
    /// Opens `path` for reading.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|source| Error::Io {
            path: name.clone(),
            source,
        })?;
        Ok(LineReader::new(BufReader::with_capacity(1 << 16, file), &name))
    }
}

impl<R: BufRead> LineReader<R> {
    /// Reads from `reader`; `name` is used in error messages.
    pub(crate) fn new(reader: R, name: &str) -> Self {
        LineReader {
            reader,
            name: name.to_owned(),
            line: 0,
            offset: 0,
            buf: Vec::new(),
        }
    }

    /// The next line as `(1-based line number, text)`, or `None` at the end.
    pub(crate) fn next_line(&mut self) -> Option<Result<(usize, &str)>> {
        self.buf.clear();
        let start = self.offset;
        match self.reader.read_until(b'\n', &mut self.buf) {
            Ok(0) => return None,
            Ok(n) => self.offset += n as u64,
            Err(source) => {
                return Some(Err(Error::Io {
                    path: format!("{}:{}", self.name, self.line + 1),
                    source,
                }))
            }
        }
        self.line += 1;
        let mut bytes: &[u8] = &self.buf;
        let mut skipped = 0u64;
        if self.line == 1 && bytes.starts_with(b"\xEF\xBB\xBF") {
            bytes = &bytes[3..];
            skipped = 3;
        }
        if let Some(rest) = bytes.strip_suffix(b"\n") {
            bytes = rest;
        }
        if let Some(rest) = bytes.strip_suffix(b"\r") {
            bytes = rest;
        }
        if let Some(pos) = bytes.iter().position(|&b| b == 0) {
            return Some(Err(Error::format(
                &self.name,
                self.line,
                format!(
                    "NUL byte at byte offset {} of the file; is this a binary or UTF-16 file?",
                    start + skipped + pos as u64
                ),
            )));
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => Some(Ok((self.line, text))),
            Err(e) => Some(Err(Error::InvalidUtf8 {
                path: self.name.clone(),
                line: self.line,
                offset: start + skipped + e.valid_up_to() as u64,
            })),
        }
    }
}

/// Splits one PKU line into its words (without POS tags). `Err` holds a message.
pub fn pku_line_words(line: &str) -> std::result::Result<Sentence, String> {
    let mut words = Vec::new();
    for token in line.split_whitespace() {
        let Some(slash) = token.rfind('/') else {
            return Err(format!("token `{token}` has no `/POS` part"));
        };
        let mut word = &token[..slash];
        let pos = &token[slash + 1..];
        // The opening bracket of a compound `[w1/p1  w2/p2]nt`; a lone `[` is a word.
        if word.len() > 1 {
            if let Some(rest) = word.strip_prefix('[') {
                word = rest;
            }
        }
        if word.is_empty() {
            return Err(format!("token `{token}` has an empty word"));
        }
        // The closing bracket sits in the POS part: `电台/n]nt`.
        let tag = pos.split(']').next().unwrap_or("");
        if tag.is_empty() {
            return Err(format!("token `{token}` has an empty POS tag"));
        }
        words.push(word.to_owned());
    }
    Ok(words)
}

fn read_lines_with<R: BufRead, T>(
    reader: R,
    name: &str,
    mut each: impl FnMut(&str, usize, &str) -> Result<Option<T>>,
) -> Result<Vec<T>> {
    let mut lines = LineReader::new(reader, name);
    let mut out = Vec::new();
    while let Some(next) = lines.next_line() {
        let (n, text) = next?;
        if let Some(item) = each(name, n, text)? {
            out.push(item);
        }
    }
    Ok(out)
}

/// Reads a PKU corpus from `reader` (`name` is used in error messages).
pub fn read_pku_from<R: BufRead>(reader: R, name: &str) -> Result<Vec<Sentence>> {
    read_lines_with(reader, name, |name, n, text| {
        if text.trim().is_empty() {
            return Ok(None);
        }
        pku_line_words(text).map(Some).map_err(|m| Error::format(name, n, m))
    })
}

/// Reads a PKU corpus from a file.
pub fn read_pku(path: impl AsRef<Path>) -> Result<Vec<Sentence>> {
    let (reader, name) = open(path.as_ref())?;
    read_pku_from(reader, &name)
}

/// Parses a PKU corpus held in a string.
pub fn parse_pku(text: &str) -> Result<Vec<Sentence>> {
    read_pku_from(text.as_bytes(), STRING_SOURCE)
}

/// Reads a SIGHAN-style segmented corpus from `reader`.
pub fn read_sighan_from<R: BufRead>(reader: R, name: &str) -> Result<Vec<Sentence>> {
    read_lines_with(reader, name, |_, _, text| {
        let words: Sentence = text.split_whitespace().map(str::to_owned).collect();
        Ok((!words.is_empty()).then_some(words))
    })
}

/// Reads a SIGHAN-style segmented corpus from a file.
pub fn read_sighan(path: impl AsRef<Path>) -> Result<Vec<Sentence>> {
    let (reader, name) = open(path.as_ref())?;
    read_sighan_from(reader, &name)
}

/// Parses a SIGHAN-style segmented corpus held in a string.
pub fn parse_sighan(text: &str) -> Result<Vec<Sentence>> {
    read_sighan_from(text.as_bytes(), STRING_SOURCE)
}

/// Reads raw text from `reader`: one entry per line, empty lines kept.
pub fn read_raw_from<R: BufRead>(reader: R, name: &str) -> Result<Vec<String>> {
    read_lines_with(reader, name, |_, _, text| Ok(Some(text.to_owned())))
}

/// Reads raw text from a file: one entry per line, empty lines kept.
pub fn read_raw(path: impl AsRef<Path>) -> Result<Vec<String>> {
    let (reader, name) = open(path.as_ref())?;
    read_raw_from(reader, &name)
}

/// Splits raw text held in a string into lines (BOM and CR removed, empty lines kept).
pub fn parse_raw(text: &str) -> Result<Vec<String>> {
    read_raw_from(text.as_bytes(), STRING_SOURCE)
}

/// Whether `token` looks like `word/POS`: a non-empty word, a `/`, and an ASCII
/// letter tag (what the regex `.+/[A-Za-z]+` matches).
fn looks_like_pku_token(token: &str) -> bool {
    match token.rfind('/') {
        Some(slash) if slash > 0 => {
            let tag = &token[slash + 1..];
            !tag.is_empty() && tag.bytes().all(|b| b.is_ascii_alphabetic())
        }
        _ => false,
    }
}

/// How many leading non-empty lines [`detect_format`] looks at.
pub const DETECT_LINES: usize = 50;

/// Guesses the format of a segmented corpus from its first 50
/// non-empty lines: PKU when more than half of their tokens look like
/// `word/POS` (`.+/[A-Za-z]+`), SIGHAN otherwise (also for empty text).
pub fn detect_format(text: &str) -> CorpusFormat {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (mut tagged, mut total) = (0usize, 0usize);
    for line in text.lines().filter(|l| !l.trim().is_empty()).take(DETECT_LINES) {
        for token in line.split_whitespace() {
            total += 1;
            tagged += usize::from(looks_like_pku_token(token));
        }
    }
    if total > 0 && tagged * 2 > total {
        CorpusFormat::Pku
    } else {
        CorpusFormat::Sighan
    }
}

/// Guesses the format of a corpus file from its first lines (see [`detect_format`]).
pub fn detect_format_file(path: impl AsRef<Path>) -> Result<CorpusFormat> {
    let path = path.as_ref();
    let mut lines = LineReader::open(path)?;
    let mut head = String::new();
    let mut kept = 0;
    while let Some(next) = lines.next_line() {
        let (_, text) = next?;
        if text.trim().is_empty() {
            continue;
        }
        head.push_str(text);
        head.push('\n');
        kept += 1;
        if kept == DETECT_LINES {
            break;
        }
    }
    Ok(detect_format(&head))
}

/// Reads a segmented corpus file in the given format.
pub fn read_corpus_as(path: impl AsRef<Path>, format: CorpusFormat) -> Result<Vec<Sentence>> {
    match format {
        CorpusFormat::Pku => read_pku(path),
        CorpusFormat::Sighan => read_sighan(path),
    }
}

/// Reads a segmented corpus file, detecting its format first.
pub fn read_corpus(path: impl AsRef<Path>) -> Result<(CorpusFormat, Vec<Sentence>)> {
    let path = path.as_ref();
    let format = detect_format_file(path)?;
    Ok((format, read_corpus_as(path, format)?))
}

fn open(path: &Path) -> Result<(BufReader<File>, String)> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|source| Error::Io {
        path: name.clone(),
        source,
    })?;
    Ok((BufReader::with_capacity(1 << 16, file), name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &[&str]) -> Sentence {
        s.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn pku_basic_bom_crlf_and_blank_lines() {
        let text = "\u{feff}迈向/v  充满/v  希望/n\r\n\r\n１/m  张/q\r\n１/３/m  ，/w\n";
        let s = parse_pku(text).unwrap();
        assert_eq!(
            s,
            vec![
                words(&["迈向", "充满", "希望"]),
                words(&["１", "张"]),
                words(&["１/３", "，"]),
            ]
        );
    }

    #[test]
    fn pku_bracket_compounds_are_flattened() {
        let text = "[中央/n  人民/n  广播/vn  电台/n]nt  [/w  ]/w";
        let s = parse_pku(text).unwrap();
        assert_eq!(s, vec![words(&["中央", "人民", "广播", "电台", "[", "]"])]);
    }

    #[test]
    fn pku_bad_tokens_name_file_and_line() {
        let err = parse_pku("好/a\n坏了  x/n\n").unwrap_err();
        match &err {
            Error::Format { path, line, message } => {
                assert_eq!(path, STRING_SOURCE);
                assert_eq!(*line, 2);
                assert!(message.contains("坏了"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().starts_with("<string>:2:"));
        let err = parse_pku("a/n\r\n\r\n/w\r\n").unwrap_err();
        assert!(matches!(err, Error::Format { line: 3, .. }), "{err}");
        let err = parse_pku("词/").unwrap_err();
        assert!(matches!(err, Error::Format { line: 1, .. }), "{err}");
    }

    #[test]
    fn invalid_utf8_reports_line_and_offset() {
        let mut bytes = "\u{feff}好/a\n".as_bytes().to_vec();
        let line2_start = bytes.len() as u64;
        bytes.extend_from_slice(b"ab\xff/n\n");
        let err = read_pku_from(&bytes[..], "x.txt").unwrap_err();
        match err {
            Error::InvalidUtf8 { path, line, offset } => {
                assert_eq!(path, "x.txt");
                assert_eq!(line, 2);
                assert_eq!(offset, line2_start + 2);
            }
            other => panic!("unexpected {other:?}"),
        }
        // BOM bytes are counted in the offset of line 1.
        let err = read_raw_from(&b"\xEF\xBB\xBFa\xC3"[..], "y").unwrap_err();
        assert!(matches!(err, Error::InvalidUtf8 { line: 1, offset: 4, .. }));
    }

    #[test]
    fn nul_bytes_are_errors() {
        let err = read_raw_from(&b"ok\nab\0c\n"[..], "z").unwrap_err();
        assert!(matches!(err, Error::Format { line: 2, .. }), "{err}");
        assert!(err.to_string().contains("NUL byte at byte offset 5"), "{err}");
        assert!(parse_sighan("a\0").is_err());
    }

    #[test]
    fn sighan_and_raw() {
        let text = "\u{feff}共同  创造\r\n\r\n  美好的 新  世纪 \r\n";
        assert_eq!(
            parse_sighan(text).unwrap(),
            vec![words(&["共同", "创造"]), words(&["美好的", "新", "世纪"])]
        );
        assert_eq!(parse_raw(text).unwrap(), vec!["共同  创造", "", "  美好的 新  世纪 "]);
        assert_eq!(parse_raw("a\n\nb").unwrap(), vec!["a", "", "b"]);
        assert_eq!(parse_raw("").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn detects_formats() {
        assert_eq!(detect_format("迈向/v  充满/v\n希望/n  的/u"), CorpusFormat::Pku);
        assert_eq!(detect_format("\u{feff}迈向  充满\n希望  的"), CorpusFormat::Sighan);
        assert_eq!(detect_format("１/３  是  分数"), CorpusFormat::Sighan);
        assert_eq!(detect_format(""), CorpusFormat::Sighan);
    }

    #[test]
    fn path_readers_report_missing_files() {
        let err = read_pku("/nonexistent/chaincrf/x.txt").unwrap_err();
        assert!(matches!(err, Error::Io { .. }));
        assert!(err.to_string().contains("/nonexistent/chaincrf/x.txt"));
    }
}
