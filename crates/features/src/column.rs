//! CRF++ column data: one token per line, columns separated by whitespace,
//! sequences separated by blank lines.
//!
//! This is the training and test format of CRF++ (and of the CoNLL shared
//! tasks), so it is what `chaincrf train`/`tag` read when given CRF++-style
//! templates. The rules, in CRF++'s words and ours:
//!
//! * each non-blank line is one token; its columns are separated by runs of
//!   spaces and/or tabs (CRF++ splits on both, and so do we; other Unicode
//!   spaces such as U+3000 are *not* separators, because Japanese and Chinese
//!   data legitimately contain them inside tokens);
//! * a blank line (empty, or only spaces and tabs) ends a sequence; several
//!   blank lines in a row are the same as one, and the last sequence needs no
//!   blank line after it;
//! * every token of a **file** has the same number of columns; a line with a
//!   different count is an error naming both counts and the line where the
//!   expected count was set. Checking per file rather than per sequence is what
//!   CRF++ requires and catches a misaligned file at its first bad line.
//!
//! One deliberate difference: CRF++ treats a line that *starts* with a space or
//! tab as a sequence boundary even when it has text after it. That silently
//! drops tokens, so here leading whitespace is simply ignored.
//!
//! Line decoding (UTF-8 checks, BOM, CRLF) is [`crate::lines::LineReader`]'s.

use crate::error::FormatError;
use crate::lines::{is_blank, LineReader};
use std::io::BufRead;

/// One sequence of column data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ColumnSequence {
    /// The tokens, each a row of columns (all rows of a file have equal length).
    pub rows: Vec<Vec<String>>,
    /// 1-based line number of the first row, for error messages downstream.
    pub first_line: usize,
}

impl ColumnSequence {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no tokens (never the case for sequences read from a file).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Column `col` of every token (the last column is the label in training data).
    pub fn column(&self, col: usize) -> impl Iterator<Item = &str> + '_ {
        self.rows
            .iter()
            .map(move |r| r.get(col).map(String::as_str).unwrap_or(""))
    }
}

/// Splits a line into columns the way CRF++ does: on runs of spaces and tabs.
pub(crate) fn split_columns(line: &str) -> impl Iterator<Item = &str> {
    line.split([' ', '\t']).filter(|s| !s.is_empty())
}

/// Streams [`ColumnSequence`]s from CRF++ column data (e.g. standard input for `tag`).
///
/// Yields `Err` at most once, then stops.
#[derive(Debug)]
pub struct ColumnReader<R> {
    lines: LineReader<R>,
    /// Number of columns of the file and the line that set it.
    columns: Option<(usize, usize)>,
    done: bool,
}

impl<R: BufRead> ColumnReader<R> {
    /// A reader over `reader`; `path` is only used in error messages.
    pub fn new(reader: R, path: &str) -> Self {
        ColumnReader {
            lines: LineReader::new(reader, path),
            columns: None,
            done: false,
        }
    }

    /// The number of columns of the file, once the first token has been read.
    pub fn columns(&self) -> Option<usize> {
        self.columns.map(|(n, _)| n)
    }

    fn read_sequence(&mut self) -> Result<Option<ColumnSequence>, FormatError> {
        let mut seq = ColumnSequence::default();
        while let Some(line) = self.lines.next_line()? {
            if is_blank(line) {
                if seq.rows.is_empty() {
                    continue;
                }
                break;
            }
            let row: Vec<String> = split_columns(line).map(str::to_owned).collect();
            let line_no = self.lines.line_number();
            match self.columns {
                None => self.columns = Some((row.len(), line_no)),
                Some((n, first)) if n != row.len() => {
                    return Err(self.lines.error(format!(
                        "expected {n} columns (as on line {first}), found {}",
                        row.len()
                    )));
                }
                Some(_) => {}
            }
            if seq.rows.is_empty() {
                seq.first_line = line_no;
            }
            seq.rows.push(row);
        }
        Ok(if seq.rows.is_empty() { None } else { Some(seq) })
    }
}

impl<R: BufRead> Iterator for ColumnReader<R> {
    type Item = Result<ColumnSequence, FormatError>;

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

/// Reads a whole CRF++ column data file.
pub fn read_column_data<R: BufRead>(reader: R, path: &str) -> Result<Vec<ColumnSequence>, FormatError> {
    ColumnReader::new(reader, path).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &[u8]) -> Result<Vec<ColumnSequence>, FormatError> {
        read_column_data(text, "data")
    }

    #[test]
    fn sequences_split_on_blank_lines() {
        let seqs = read(b"\n\nHe PRP B-NP\nis\tVBZ  B-VP\n \t\n\n\nok JJ O\n").unwrap();
        assert_eq!(seqs.len(), 2);
        assert_eq!(seqs[0].first_line, 3);
        assert_eq!(seqs[0].rows[1], ["is", "VBZ", "B-VP"]);
        assert_eq!(seqs[1].first_line, 8);
        assert_eq!(seqs[1].column(2).collect::<Vec<_>>(), ["O"]);
    }

    #[test]
    fn no_trailing_blank_needed_and_crlf_bom() {
        let seqs = read(b"\xEF\xBB\xBFa X\r\nb Y\r\n\r\nc Z").unwrap();
        assert_eq!(seqs.len(), 2);
        assert_eq!(seqs[0].rows, [["a", "X"], ["b", "Y"]]);
        assert_eq!(seqs[1].rows, [["c", "Z"]]);
    }

    #[test]
    fn inconsistent_columns_across_the_file() {
        let e = read(b"a b c\nd e f\n\ng h\n").unwrap_err();
        assert_eq!(e.line, 4);
        assert!(e.message.contains("expected 3 columns"), "{e}");
        assert!(e.message.contains("line 1"), "{e}");
        assert!(e.message.contains("found 2"), "{e}");
    }

    #[test]
    fn ideographic_space_is_not_a_separator() {
        let seqs = read("東\u{3000}京 N\n".as_bytes()).unwrap();
        assert_eq!(seqs[0].rows[0], ["東\u{3000}京", "N"]);
    }

    #[test]
    fn streaming_stops_after_error() {
        let mut r = ColumnReader::new(&b"a b\n\nc\xFF d\n\ne f\n"[..], "s");
        assert!(r.next().unwrap().is_ok());
        let e = r.next().unwrap().unwrap_err();
        assert_eq!((e.line, e.path.as_str()), (3, "s"));
        assert!(e.message.contains("byte offset 1"), "{e}");
        assert!(r.next().is_none());
        assert_eq!(r.columns(), Some(2));
    }

    #[test]
    fn empty_input() {
        assert!(read(b"").unwrap().is_empty());
        assert!(read(b"\n \n\t\n").unwrap().is_empty());
    }
}
