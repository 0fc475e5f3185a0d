//! Rendering of Nix values: strings, attribute names and paths, for remedies and generated
//! modules. Everything a user controls (names, paths, labels) goes through here, so a hostile
//! string can never change the meaning of the Nix code around it.
//!
//! Double-quoted Nix strings (Nix manual, "String literals") escape `\`, `"` and `${`, and spell
//! newline, carriage return and tab as `\n`, `\r`, `\t`. A NUL byte cannot be held by a Nix
//! string at all, so rendering one is an error.

use std::fmt::Write as _;

/// A value that cannot be written as Nix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot render {0:?} as a Nix string: Nix strings cannot hold NUL bytes")]
pub struct NixRenderError(pub String);

/// Renders `s` as a double-quoted Nix string literal.
pub fn string(s: &str) -> Result<String, NixRenderError> {
    if s.contains('\0') {
        return Err(NixRenderError(s.to_owned()));
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' if chars.peek() == Some(&'{') => out.push_str("\\$"),
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

const KEYWORDS: &[&str] = &["assert", "else", "if", "in", "inherit", "let", "or", "rec", "then", "with"];

/// Whether `s` can be written as a bare attribute name: an identifier (`[A-Za-z_][A-Za-z0-9_'-]*`)
/// that is not a keyword.
pub fn is_plain_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'\'' | b'-'))
        && !KEYWORDS.contains(&s)
}

/// Renders one attribute name: bare when it is a plain identifier, else quoted.
pub fn attr_name(s: &str) -> Result<String, NixRenderError> {
    if is_plain_identifier(s) { Ok(s.to_owned()) } else { string(s) }
}

/// Renders an attribute path such as `users.groups.render.gid`, quoting parts as needed.
pub fn attr_path(parts: &[&str]) -> Result<String, NixRenderError> {
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(&attr_name(p)?);
    }
    Ok(out)
}

/// Renders a list of strings: `[ "render" "video" ]`.
pub fn string_list<S: AsRef<str>>(items: &[S]) -> Result<String, NixRenderError> {
    let mut out = String::from("[");
    for i in items {
        let _ = write!(out, " {}", string(i.as_ref())?);
    }
    out.push_str(" ]");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("render", "\"render\"")]
    #[case("a\"b", "\"a\\\"b\"")]
    #[case("${x}", "\"\\${x}\"")]
    #[case("$x", "\"$x\"")]
    #[case("a\\b\nc", "\"a\\\\b\\nc\"")]
    #[case("''", "\"''\"")]
    fn strings(#[case] s: &str, #[case] want: &str) {
        assert_eq!(string(s).unwrap(), want);
    }

    #[rstest]
    #[case(&["users", "groups", "render", "gid"], "users.groups.render.gid")]
    #[case(&["users", "groups", "my group", "gid"], "users.groups.\"my group\".gid")]
    #[case(&["users", "users", "in"], "users.users.\"in\"")]
    #[case(&["fileSystems", "/mnt/PlexStorage"], "fileSystems.\"/mnt/PlexStorage\"")]
    #[case(&["x", "systemd-journal-gateway"], "x.systemd-journal-gateway")]
    fn paths(#[case] parts: &[&str], #[case] want: &str) {
        assert_eq!(attr_path(parts).unwrap(), want);
    }

    #[test]
    fn nul_is_an_error() {
        assert!(string("a\0b").is_err());
    }
}
