//! `/etc/os-release` (falling back to `/usr/lib/os-release`), as os-release(5) defines it:
//! newline-separated `KEY=value` assignments in a subset of shell syntax. Blank lines and lines
//! starting with `#` are ignored; a value may be unquoted or in double or single quotes, and
//! inside double quotes `\"`, `\\`, `` \` `` and `\$` are escapes. Lines that are not an
//! assignment are skipped, as systemd's own parser skips them.

use std::collections::BTreeMap;

/// The first file os-release(5) says to read, and the one to use when it is missing.
pub const OS_RELEASE_FILES: [&str; 2] = ["/etc/os-release", "/usr/lib/os-release"];

/// The assignments of an os-release file, by key (a later assignment of a key wins).
pub fn parse(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else { continue };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        out.insert(key.to_owned(), unquote(raw));
    }
    out
}

fn unquote(raw: &str) -> String {
    if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        return inner.to_owned();
    }
    let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return raw.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('"' | '\\' | '`' | '$')) => out.push(e),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nixos_debian_and_quoting() {
        let nixos = "ANSI_COLOR=\"1;34\"\nID=nixos\nNAME=NixOS\nPRETTY_NAME=\"NixOS 25.11 (Xantusia)\"\n";
        let p = parse(nixos);
        assert_eq!(p["ID"], "nixos");
        assert_eq!(p["PRETTY_NAME"], "NixOS 25.11 (Xantusia)");
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n# comment\n\nnot an assignment\n";
        assert_eq!(parse(debian)["ID"], "debian");
        let q = parse("A='x \"y\"'\nB=\"a\\\"b\\\\c\\$d\"\nC=plain\n");
        assert_eq!((q["A"].as_str(), q["B"].as_str(), q["C"].as_str()), ("x \"y\"", "a\"b\\c$d", "plain"));
    }
}
