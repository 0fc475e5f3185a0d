//! Text-file facts shared by every layer: where in a file something is ([`ParseError`],
//! [`line_col`]) and which user and group names are safe to carry ([`validate_name`]).

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A line of a system file that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct ParseError {
    /// The file, as the host names it (`/etc/group`).
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with the line.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// Checks a user or group name for the characters that would break the files, the NSS
/// interfaces or generated configuration: it must be 1 to 256 bytes, not all digits (a number
/// would be read as an id), not start with `-`, and hold no whitespace, control characters,
/// `:`, `,`, `/`, quotes, backslashes or `$` (a trailing `$`, as in Samba machine accounts `host$`,
/// is allowed).
pub fn validate_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("a name cannot be empty");
    }
    if name.len() > 256 {
        return Err("a name is at most 256 bytes");
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return Err("a name cannot be all digits (it would read as a number)");
    }
    if name.starts_with('-') {
        return Err("a name cannot start with '-'");
    }
    let body = name.strip_suffix('$').unwrap_or(name);
    if body
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ':' | ',' | '/' | '"' | '\'' | '\\' | '`' | '$'))
    {
        return Err("a name cannot hold whitespace, control characters or any of : , / \" ' \\ ` $");
    }
    Ok(())
}

/// 1-based line and column of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
    (line, column)
}

/// 1-based line and column (in characters) of a serde_json error in `text`. serde_json counts
/// columns in bytes and reports a character that ends a line (a newline inside a string) as
/// column 0 of the next line; this names that character where it is.
pub fn json_error_position(text: &str, e: &serde_json::Error) -> (usize, usize) {
    let line_start: usize = text.split_inclusive('\n').take(e.line().saturating_sub(1)).map(str::len).sum();
    line_col(text, (line_start + e.column()).saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("render", true)]
    #[case("systemd-journal-gateway", true)]
    #[case("_apt", true)]
    #[case("nixbld1", true)]
    #[case("machine$", true)]
    #[case("", false)]
    #[case("110", false)]
    #[case("-x", false)]
    #[case("a b", false)]
    #[case("a:b", false)]
    #[case("a,b", false)]
    #[case("a/b", false)]
    #[case("a\"b", false)]
    #[case("a$b", false)]
    #[case("a\nb", false)]
    fn names(#[case] name: &str, #[case] ok: bool) {
        assert_eq!(validate_name(name).is_ok(), ok, "{name:?}");
    }

    #[test]
    fn line_col_counts_chars() {
        assert_eq!(line_col("ab\ncdé f", 8), (2, 5));
        assert_eq!(line_col("", 10), (1, 1));
    }

    /// serde_json's position of an error in `text`, through [`json_error_position`].
    fn json_pos(text: &str) -> (usize, usize) {
        let e = serde_json::from_str::<serde_json::Value>(text).expect_err("invalid JSON");
        json_error_position(text, &e)
    }

    // Found by the snapshot fuzz target (tests/fuzz-regressions/snapshot/): a newline inside a
    // string was "line 6 column 0", a column that does not exist; it is the end of line 5.
    #[rstest]
    #[case::newline_in_string("{\n\"a\": \"b\nc\"}", (2, 8))]
    #[case::empty("", (1, 1))]
    #[case::eof_after_newline("{\n", (1, 2))]
    #[case::chars_not_bytes("{\"é\": x}", (1, 7))]
    fn json_errors_name_a_real_column(#[case] text: &str, #[case] want: (usize, usize)) {
        assert_eq!(json_pos(text), want, "{text:?}");
    }
}
