//! The octal escapes of the mount tables: fstab(5) and proc_pid_mountinfo(5) write a space as
//! `\040`, a tab as `\011`, a newline as `\012` and a backslash as `\134`, because their fields
//! are separated by blanks and lines by newlines.
//!
//! Unescaping follows util-linux's `unmangle()` (libmount), which `mount`, `findmnt` and systemd
//! use: a backslash followed by exactly three octal digits is one byte; any other backslash is
//! kept as it is (`\9` stays `\9`). The bytes need not be UTF-8 (`\377`); such a field is
//! converted lossily (U+FFFD), which is also what `findmnt -J` shows.

/// Replaces every `\NNN` octal escape (three octal digits) in `s` with the byte it stands for.
pub fn unmangle(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() && is_octal3(&b[i + 1..i + 4]) {
            let v = (u32::from(b[i + 1] - b'0') << 6) | (u32::from(b[i + 2] - b'0') << 3) | u32::from(b[i + 3] - b'0');
            // \400 and above do not fit a byte; libmount truncates, and so do we.
            out.push((v & 0xff) as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

fn is_octal3(b: &[u8]) -> bool {
    b.len() == 3 && b.iter().all(|c| (b'0'..=b'7').contains(c))
}

/// Escapes `s` for one field of fstab(5) or mountinfo: space, tab, newline, backslash (as the
/// kernel and libmount do), and also carriage return, vertical tab, form feed (cut at the end of
/// an fstab line) and `#` (a comment at the start of a line) become `\NNN`. The inverse of
/// [`unmangle`].
pub fn mangle(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c' | '\\' | '#' => out.push_str(&format!("\\{:03o}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    #[rstest]
    #[case("/mnt/Plex\\040Drive", "/mnt/Plex Drive")]
    #[case("a\\011b", "a\tb")]
    #[case("a\\012b", "a\nb")]
    #[case("a\\134b", "a\\b")]
    #[case("a\\134040", "a\\040")]
    #[case("bad\\9", "bad\\9")]
    #[case("short\\04", "short\\04")]
    #[case("end\\", "end\\")]
    #[case("\\303\\274", "ü")]
    #[case("\\377", "\u{fffd}")]
    #[case("plain", "plain")]
    fn unmangles_like_libmount(#[case] s: &str, #[case] want: &str) {
        assert_eq!(unmangle(s), want);
    }

    proptest! {
        #[test]
        fn round_trip(s in "\\PC{0,40}") {
            let m = mangle(&s);
            prop_assert!(!m.contains([' ', '\t', '\n', '\r']));
            prop_assert_eq!(unmangle(&m), s);
        }
    }
}
