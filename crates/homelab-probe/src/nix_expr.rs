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

/// Renders a filesystem path as a Nix *path* value: a path literal where the lexer allows one
/// (`/mnt/PlexStorage`, `./config`), else the root joined with a string
/// (`/. + "/mnt/Plex Storage"`, `./. + "/my config"`). Relative paths are relative to the file
/// that holds the expression, as in Nix. Nix canonicalises paths (`a/../b` is `b`, no trailing
/// slash), so only clean paths round-trip unchanged.
///
/// Generated NixOS configuration names host paths with *strings* (a path value would be copied
/// into the Nix store when interpolated); this is for the places Nix wants a path.
pub fn path(p: &str) -> Result<String, NixRenderError> {
    let (root, rest) = match p.strip_prefix('/') {
        Some(rest) => ("/", rest),
        None => ("./", p.strip_prefix("./").unwrap_or(p)),
    };
    let literal_ok = !rest.is_empty()
        && rest.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
        });
    if literal_ok {
        return Ok(format!("{root}{rest}"));
    }
    let base = if root == "/" { "/." } else { "./." };
    if rest.is_empty() {
        return Ok(base.to_owned());
    }
    Ok(format!("{base} + {}", string(&format!("/{rest}"))?))
}

/// Renders `text` as one `# ...` comment line. Line breaks and other control characters are
/// written as escapes (`\n`), so no text can end the comment and start code.
pub fn comment(text: &str) -> String {
    let mut out = String::from("# ");
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("    "),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// A Nix value to render. Everything a user controls goes in [`Value::Str`] or attribute
/// names; [`Value::Expr`] and [`Value::Apply`] take `&'static str`, so only the program's own
/// constants (`pkgs.intel-media-driver`, `lib.mkForce`) can be raw Nix.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
    /// A filesystem path value (see [`path`]).
    Path(String),
    /// A list.
    List(Vec<Value>),
    /// An attribute set, in this order. Each key is one attribute name.
    Attrs(Vec<(String, Value)>),
    /// A constant expression of the program (`pkgs.intel-media-driver`).
    Expr(&'static str),
    /// A function applied to one argument (`lib.mkForce 110`).
    Apply(&'static str, Box<Value>),
}

impl Value {
    /// A string value.
    pub fn str(s: impl Into<String>) -> Self {
        Value::Str(s.into())
    }

    /// A list of strings.
    pub fn strs<S: AsRef<str>>(items: &[S]) -> Self {
        Value::List(items.iter().map(|s| Value::Str(s.as_ref().to_owned())).collect())
    }

    /// An attribute set from `(name, value)` pairs.
    pub fn attrs<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Self {
        Value::Attrs(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// Renders the value at indentation level 0 (two spaces per level).
    pub fn render(&self) -> Result<String, NixRenderError> {
        self.render_at(0)
    }

    /// Renders the value as it appears after `=` on a line indented `level` times: sets span
    /// lines, lists span lines when they would not fit in 80 columns.
    pub fn render_at(&self, level: usize) -> Result<String, NixRenderError> {
        let pad = |l: usize| "  ".repeat(l);
        Ok(match self {
            Value::Null => "null".to_owned(),
            Value::Bool(b) => b.to_string(),
            // A negative literal is `-` applied to a number: parenthesised it is one value.
            Value::Int(i) if *i < 0 => format!("({i})"),
            Value::Int(i) => i.to_string(),
            Value::Str(s) => string(s)?,
            Value::Path(p) => path(p)?,
            Value::Expr(e) => (*e).to_owned(),
            Value::Apply(f, arg) => format!("{f} {}", arg.render_item(level)?),
            Value::List(items) if items.is_empty() => "[ ]".to_owned(),
            Value::List(items) => {
                let rendered: Vec<String> =
                    items.iter().map(|v| v.render_item(level + 1)).collect::<Result<_, NixRenderError>>()?;
                let one_line = format!("[ {} ]", rendered.join(" "));
                if one_line.len() <= 80 && !one_line.contains('\n') {
                    one_line
                } else {
                    let mut out = String::from("[\n");
                    for r in rendered {
                        let _ = writeln!(out, "{}{r}", pad(level + 1));
                    }
                    out.push_str(&pad(level));
                    out.push(']');
                    out
                }
            }
            Value::Attrs(pairs) if pairs.is_empty() => "{ }".to_owned(),
            Value::Attrs(pairs) => {
                let mut out = String::from("{\n");
                for (k, v) in pairs {
                    let _ = writeln!(out, "{}{} = {};", pad(level + 1), attr_name(k)?, v.render_at(level + 1)?);
                }
                out.push_str(&pad(level));
                out.push('}');
                out
            }
        })
    }

    /// Renders the value where one item of a list or one function argument stands: a function
    /// application or a path sum is parenthesised there.
    fn render_item(&self, level: usize) -> Result<String, NixRenderError> {
        let r = self.render_at(level)?;
        Ok(match self {
            Value::Apply(..) => format!("({r})"),
            Value::Path(_) if r.contains(' ') => format!("({r})"),
            _ => r,
        })
    }
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

    #[rstest]
    #[case("/mnt/PlexStorage", "/mnt/PlexStorage")]
    #[case("/mnt/Plex Storage", "/. + \"/mnt/Plex Storage\"")]
    #[case("/", "/.")]
    #[case("config", "./config")]
    #[case("./my config", "./. + \"/my config\"")]
    #[case("/a/${x}", "/. + \"/a/\\${x}\"")]
    fn paths_literal_or_joined(#[case] p: &str, #[case] want: &str) {
        assert_eq!(path(p).unwrap(), want);
    }

    #[test]
    fn comments_cannot_break_out() {
        assert_eq!(comment("stack\nrm -rf /; x = 1;"), "# stack\\nrm -rf /; x = 1;");
        assert_eq!(comment("a\u{1}b"), "# a\\u{1}b");
    }

    #[test]
    fn values_render_readably() {
        let v = Value::attrs([
            ("enable", Value::Bool(true)),
            ("extraPackages", Value::List(vec![Value::Expr("pkgs.intel-media-driver")])),
            ("gid", Value::Apply("lib.mkForce", Box::new(Value::Int(110)))),
            ("list", Value::List(vec![Value::Apply("lib.mkForce", Box::new(Value::Int(-1)))])),
            ("in", Value::attrs([("a b", Value::strs(&["x"]))])),
        ]);
        assert_eq!(
            v.render().unwrap(),
            "{\n  enable = true;\n  extraPackages = [ pkgs.intel-media-driver ];\n  gid = lib.mkForce 110;\n  \
             list = [ (lib.mkForce (-1)) ];\n  \"in\" = {\n    \"a b\" = [ \"x\" ];\n  };\n}"
        );
    }

    #[test]
    fn nul_is_an_error() {
        assert!(string("a\0b").is_err());
    }
}
