//! [`FormatError`]: the one error type of every reader in this crate.
//!
//! Training data is written by hand or by scripts, and the most useful thing a
//! reader can do with a broken file is say *where* it broke. Every reader here
//! therefore reports the file name and 1-based line number, plus a message that
//! names the column or byte offset when that helps. Line 0 means the error is
//! about the file as a whole (for instance an I/O failure before any line was
//! read, or a template file that declares no template at all).

use std::fmt;

/// A malformed input file: where it is malformed and how.
///
/// Displays as `{path}:{line}: {message}`, the format editors and `grep -n`
/// users recognise, or `{path}: {message}` for an error about the whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    /// The file name as the caller gave it (`-` or `<stdin>` for standard input).
    pub path: String,
    /// 1-based line number; 0 when the error concerns the whole file.
    pub line: usize,
    /// What is wrong, in words.
    pub message: String,
}

impl FormatError {
    /// An error at `line` (1-based) of `path`.
    pub fn new(path: impl Into<String>, line: usize, message: impl Into<String>) -> Self {
        FormatError {
            path: path.into(),
            line,
            message: message.into(),
        }
    }

    /// An error about the whole file (line 0).
    pub(crate) fn whole_file(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(path, 0, message)
    }

    /// An I/O failure while reading `line` of `path`.
    pub(crate) fn io(path: impl Into<String>, line: usize, err: &std::io::Error) -> Self {
        Self::new(path, line, format!("read error: {err}"))
    }

    /// Bytes that are not UTF-8, starting at `byte_offset` (0-based) within the line.
    pub(crate) fn invalid_utf8(path: impl Into<String>, line: usize, byte_offset: usize) -> Self {
        Self::new(
            path,
            line,
            format!("invalid UTF-8 at byte offset {byte_offset} of the line (0-based)"),
        )
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path, self.message)
        } else {
            write!(f, "{}:{}: {}", self.path, self.line, self.message)
        }
    }
}

impl std::error::Error for FormatError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_path_and_line() {
        let e = FormatError::new("train.data", 12, "expected 3 columns, found 2");
        assert_eq!(e.to_string(), "train.data:12: expected 3 columns, found 2");
        let e = FormatError::whole_file("template", "no template");
        assert_eq!(e.line, 0);
        assert_eq!(e.to_string(), "template: no template");
        let e = FormatError::invalid_utf8("x", 3, 7);
        assert!(e.to_string().starts_with("x:3: invalid UTF-8 at byte offset 7"));
    }

    #[test]
    fn is_std_error() {
        fn takes(_: &dyn std::error::Error) {}
        takes(&FormatError::new("p", 1, "m"));
    }
}
