//! Lossless text for file names that are arbitrary bytes.
//!
//! Linux file names are bytes: anything but `/` and NUL, not necessarily UTF-8 (a Latin-1
//! `caf\xe9.mkv` copied from an old NAS is common). Reports, JSON and the undo journal need
//! text that a person can read and that maps back to the exact bytes:
//!
//! - valid UTF-8 is kept as it is, except the backslash, written `\\`;
//! - every byte that is not part of valid UTF-8, and every control character (bytes
//!   `0x00`-`0x1f` and `0x7f`, e.g. a newline inside a name), is written `\xNN` (two lower-case
//!   hex digits).
//!
//! So a name with a newline cannot forge a line in the journal or the terminal, and
//! [`unescape`] of [`escape`] gives back the same bytes (a property test checks this).

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// The escaped text of `bytes`.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    escape_into(bytes, &mut out);
    out
}

/// The escaped text of `path`.
pub fn escape_path(path: &Path) -> String {
    escape(path.as_os_str().as_bytes())
}

/// Appends the escaped text of `bytes` to `out`.
pub fn escape_into(mut bytes: &[u8], out: &mut String) {
    while !bytes.is_empty() {
        let (valid, rest) = match std::str::from_utf8(bytes) {
            Ok(s) => (s, &[][..]),
            Err(e) => {
                let (good, bad) = bytes.split_at(e.valid_up_to());
                // Safe by construction: `valid_up_to` bytes are valid UTF-8.
                (std::str::from_utf8(good).unwrap_or_default(), bad)
            }
        };
        for c in valid.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => hex(c as u8, out),
                c => out.push(c),
            }
        }
        // One invalid byte at a time: the next may start valid UTF-8 again.
        if let Some((&b, tail)) = rest.split_first() {
            hex(b, out);
            bytes = tail;
        } else {
            bytes = rest;
        }
    }
}

fn hex(b: u8, out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\x");
    out.push(DIGITS[usize::from(b >> 4)] as char);
    out.push(DIGITS[usize::from(b & 15)] as char);
}

/// Why [`unescape`] refused a text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad escape at byte {offset}: expected \\\\ or \\xNN")]
pub struct EscapeError {
    /// Byte offset of the backslash that starts the bad escape.
    pub offset: usize,
}

/// The bytes that [`escape`] turned into `text`.
pub fn unescape(text: &str) -> Result<Vec<u8>, EscapeError> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some(b'x') => {
                let digits = b.get(i + 2..i + 4).ok_or(EscapeError { offset: i })?;
                let s = std::str::from_utf8(digits).map_err(|_| EscapeError { offset: i })?;
                out.push(u8::from_str_radix(s, 16).map_err(|_| EscapeError { offset: i })?);
                i += 4;
            }
            _ => return Err(EscapeError { offset: i }),
        }
    }
    Ok(out)
}

/// The path that [`escape_path`] turned into `text`.
pub fn unescape_path(text: &str) -> Result<std::path::PathBuf, EscapeError> {
    Ok(OsString::from_vec(unescape(text)?).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    #[rstest]
    #[case(b"plain/Movie (2001).mkv", "plain/Movie (2001).mkv")]
    #[case(b"caf\xe9.mkv", "caf\\xe9.mkv")]
    #[case("café.mkv".as_bytes(), "café.mkv")]
    #[case(b"new\nline", "new\\x0aline")]
    #[case(b"back\\slash", "back\\\\slash")]
    #[case(b"\xff\xfe", "\\xff\\xfe")]
    #[case(b"del\x7f", "del\\x7f")]
    fn escapes_real_world_names(#[case] raw: &[u8], #[case] text: &str) {
        assert_eq!(escape(raw), text);
        assert_eq!(unescape(text).unwrap(), raw);
    }

    #[test]
    fn bad_escapes_are_errors() {
        assert_eq!(unescape("a\\q"), Err(EscapeError { offset: 1 }));
        assert_eq!(unescape("a\\x4"), Err(EscapeError { offset: 1 }));
        assert_eq!(unescape("\\xzz"), Err(EscapeError { offset: 0 }));
    }

    proptest! {
        #[test]
        fn round_trip(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let text = escape(&raw);
            prop_assert!(!text.contains('\n'));
            prop_assert_eq!(unescape(&text).unwrap(), raw);
        }
    }
}
