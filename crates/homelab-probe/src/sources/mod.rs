//! Pure parsers of system files: `&str` in, typed entries plus [`ParseError`]s out.
//!
//! Parsers are lenient in the way the C library is: a malformed line is reported (file and
//! line) and skipped, and every good line is still returned, so one bad line never hides the
//! rest of the file from a probe.

pub mod cdi;
pub mod compose;
pub mod docker;
pub mod engine;
pub mod fstab;
pub mod group;
pub mod idmap;
pub mod mangle;
pub mod mountinfo;
pub mod os_release;
pub mod passwd;
pub mod quadlet;

use std::path::Path;

use crate::model::text::{ParseError, validate_name};

/// The result of a lenient parse: every good entry and every bad line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<T> {
    /// Entries in file order, each with its 1-based line number.
    pub entries: Vec<(usize, T)>,
    /// Lines that were not understood.
    pub errors: Vec<ParseError>,
}

impl<T> Default for Parsed<T> {
    fn default() -> Self {
        Parsed { entries: Vec::new(), errors: Vec::new() }
    }
}

/// Parses a numeric id field of passwd(5)/group(5): decimal, no sign, below 2^32-1 (which is
/// `(uid_t)-1`, "no id").
pub(crate) fn parse_id(field: &str, what: &str) -> Result<u32, String> {
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} {field:?} is not a decimal number"));
    }
    match field.parse::<u32>() {
        Ok(v) if v != u32::MAX => Ok(v),
        _ => Err(format!("{what} {field} is out of range (0..=4294967294)")),
    }
}

/// Splits `text` into 1-based numbered lines, skipping blank lines and `#` comments as glibc's
/// nss_files does, and yielding NIS compat lines (`+`/`-`) separately.
pub(crate) fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| {
        let t = l.trim_start();
        !t.is_empty() && !t.starts_with('#')
    })
}

/// Parses a passwd(5)-style file line by line with `parse_line` (blank lines, comments and NIS
/// compat lines `+`/`-` skipped): a bad line becomes a [`ParseError`] naming `file` and the
/// line, and the other lines are still parsed.
pub(crate) fn parse_colon_file<T>(text: &str, file: &Path, parse_line: fn(&str) -> Result<T, String>) -> Parsed<T> {
    let mut out = Parsed::default();
    for (line, l) in content_lines(text) {
        if l.starts_with('+') || l.starts_with('-') {
            continue;
        }
        match parse_line(l) {
            Ok(e) => out.entries.push((line, e)),
            Err(message) => out.errors.push(ParseError { file: file.to_path_buf(), line, message }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("0", Ok(0))]
    #[case("4294967294", Ok(4294967294))]
    #[case("4294967295", Err(()))]
    #[case("99999999999", Err(()))]
    #[case("-1", Err(()))]
    #[case("+1", Err(()))]
    #[case("", Err(()))]
    #[case(" 1", Err(()))]
    fn ids(#[case] s: &str, #[case] want: Result<u32, ()>) {
        assert_eq!(parse_id(s, "gid").map_err(|_| ()), want);
    }
}
