//! [`LineReader`]: strict, line-numbered decoding of text input.
//!
//! All text formats in this crate are line-based, and all share the same rules
//! about what a line is, so those rules live here once:
//!
//! * input is read as bytes (`BufRead::read_until`) and decoded **per line**, so
//!   invalid UTF-8 is reported with its line number and the byte offset within
//!   that line instead of a bare "stream did not contain valid UTF-8";
//! * a UTF-8 byte-order mark at the very start of the input is skipped (Windows
//!   editors like to write one);
//! * lines end with LF or CRLF; the terminator is not part of the line;
//! * a NUL byte is an error naming the line: it almost always means a binary or
//!   UTF-16 file was passed by mistake, and silently turning it into attribute
//!   names would hide that.
//!
//! The reader reuses one byte buffer for all lines, so reading a large file does
//! not allocate per line.

use crate::error::FormatError;
use std::io::BufRead;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads a text stream line by line with the rules of the module documentation.
#[derive(Debug)]
pub struct LineReader<R> {
    reader: R,
    path: String,
    buf: Vec<u8>,
    line: usize,
    failed: bool,
}

impl<R: BufRead> LineReader<R> {
    /// A reader over `reader`; `path` is only used in error messages.
    pub fn new(reader: R, path: &str) -> Self {
        LineReader {
            reader,
            path: path.to_owned(),
            buf: Vec::new(),
            line: 0,
            failed: false,
        }
    }

    /// The path given at construction.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The 1-based number of the line last returned (0 before the first).
    pub fn line_number(&self) -> usize {
        self.line
    }

    /// An error at the line last returned.
    pub fn error(&self, message: impl Into<String>) -> FormatError {
        FormatError::new(self.path.clone(), self.line, message)
    }

    /// The next line without its terminator, `Ok(None)` at end of input.
    ///
    /// After an error every further call returns `Ok(None)`: a reader does not
    /// try to resynchronise inside a file it has already found broken.
    pub fn next_line(&mut self) -> Result<Option<&str>, FormatError> {
        if self.failed {
            return Ok(None);
        }
        self.buf.clear();
        let line = self.line + 1;
        match self.reader.read_until(b'\n', &mut self.buf) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) => {
                self.failed = true;
                return Err(FormatError::io(self.path.clone(), line, &e));
            }
        }
        self.line = line;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
        }
        let skip = if line == 1 && self.buf.starts_with(BOM) {
            BOM.len()
        } else {
            0
        };
        let bytes = &self.buf[skip..];
        if let Some(pos) = bytes.iter().position(|&b| b == 0) {
            self.failed = true;
            return Err(FormatError::new(
                self.path.clone(),
                line,
                format!(
                    "NUL byte at byte offset {} of the line (0-based); is this a binary or UTF-16 file?",
                    pos + skip
                ),
            ));
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(Some(text)),
            Err(e) => {
                self.failed = true;
                Err(FormatError::invalid_utf8(
                    self.path.clone(),
                    line,
                    e.valid_up_to() + skip,
                ))
            }
        }
    }
}

/// Whether a line separates sequences: empty, or only spaces and tabs.
pub(crate) fn is_blank(line: &str) -> bool {
    line.bytes().all(|b| b == b' ' || b == b'\t')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_lines(input: &[u8]) -> Result<Vec<String>, FormatError> {
        let mut r = LineReader::new(input, "in");
        let mut out = Vec::new();
        while let Some(l) = r.next_line()? {
            out.push(l.to_owned());
        }
        Ok(out)
    }

    #[test]
    fn lf_crlf_bom_and_missing_final_newline() {
        let lines = all_lines(b"\xEF\xBB\xBFa b\r\nc\n\r\nd").unwrap();
        assert_eq!(lines, ["a b", "c", "", "d"]);
    }

    #[test]
    fn bom_only_skipped_on_first_line() {
        let lines = all_lines(b"a\n\xEF\xBB\xBFb\n").unwrap();
        assert_eq!(lines, ["a", "\u{feff}b"]);
    }

    #[test]
    fn invalid_utf8_names_line_and_offset() {
        let e = all_lines(b"ok\nab\xFFcd\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("byte offset 2"), "{e}");
        // The offset counts the raw bytes of the line, BOM included.
        let e = all_lines(b"\xEF\xBB\xBFx\xC3(\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("byte offset 4"), "{e}");
    }

    #[test]
    fn nul_byte_is_an_error() {
        let e = all_lines(b"a\nb\0c\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("NUL"), "{e}");
    }

    #[test]
    fn stops_after_error() {
        let mut r = LineReader::new(&b"\xFF\nfine\n"[..], "in");
        assert!(r.next_line().is_err());
        assert_eq!(r.next_line().unwrap(), None);
    }

    #[test]
    fn blank_lines() {
        assert!(is_blank(""));
        assert!(is_blank(" \t "));
        assert!(!is_blank(" x"));
        assert!(!is_blank("\u{3000}"));
    }
}
