//! `.env` files as Docker Compose reads them (Compose documentation, "Set environment variables
//! with an .env file" / "env file syntax"): one `NAME=value` statement per line.
//!
//! Forms handled, as Compose v2 (compose-go's `dotenv`) handles them (checked against it in the
//! oracle test):
//! - blank lines and lines starting with `#` are skipped; `export NAME=value` is accepted;
//! - `NAME: value` (YAML style) is accepted like `NAME=value`;
//! - a bare `NAME` takes its value from the outer environment, and is left unset without one;
//! - unquoted values run to the end of the line, lose an inline comment that follows a space
//!   (`a #c` -> `a`, but `a#b` stays) and trailing blanks, and are interpolated;
//! - `'single'` quotes are literal (only `\'` is unescaped);
//! - `"double"` quotes may span lines, unescape `\n \r \t \a \b \f \v \\ \" \$` and `\0ooo`
//!   (octal), keep any other `\x` as written, and are interpolated (`\$` stays a literal `$`);
//! - interpolation sees the variables defined earlier in the file, then the outer lookup.
//!
//! Compose rejects the whole file on the first bad statement; this parser reports the line
//! and goes on with the next one.

use std::path::Path;

use super::interpolate::interpolate;
use crate::model::text::ParseError;
use crate::sources::Parsed;

/// One variable of an env file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    /// The name.
    pub name: String,
    /// The value after unquoting and interpolation.
    pub value: String,
}

/// Parses an env file. `outer` answers bare `NAME` statements and names the file does not
/// define (Compose passes the shell environment here; capture passes nothing, see
/// [`super`]). Later definitions of a name override earlier ones, as in Compose.
pub fn parse(text: &str, file: &Path, outer: &dyn Fn(&str) -> Option<String>) -> Parsed<EnvVar> {
    let mut out: Parsed<EnvVar> = Parsed::default();
    let chars: Vec<char> = text.chars().collect();
    let mut p = Scanner { chars: &chars, i: 0, line: 1 };
    loop {
        p.skip_whitespace();
        let Some(c) = p.peek() else { break };
        if c == '#' {
            p.skip_line();
            continue;
        }
        let line = p.line;
        let err = |out: &mut Parsed<EnvVar>, message: String| {
            out.errors.push(ParseError { file: file.to_path_buf(), line, message });
        };
        match statement(&mut p, &out.entries, outer) {
            Ok(Some(var)) => out.entries.push((line, var)),
            Ok(None) => {}
            Err(message) => {
                err(&mut out, message);
                // Resynchronise on the next line.
                if p.line == line {
                    p.skip_line();
                }
            }
        }
    }
    out
}

struct Scanner<'a> {
    chars: &'a [char],
    i: usize,
    line: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }
    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }
    fn skip_blanks(&mut self) {
        while self.peek().is_some_and(is_blank) {
            self.bump();
        }
    }
    fn skip_line(&mut self) {
        while let Some(c) = self.bump() {
            if c == '\n' {
                break;
            }
        }
    }
    fn rest_of_line(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek() {
            if c == '\n' {
                break;
            }
            s.push(c);
            self.bump();
        }
        s
    }
}

/// Blank within a line: what compose-go's `isSpace` accepts (no line breaks).
fn is_blank(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}')
}

fn is_key_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '[' | ']')
}

fn statement(
    p: &mut Scanner,
    defined: &[(usize, EnvVar)],
    outer: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<EnvVar>, String> {
    // `export NAME=...`
    let rest: String = p.chars[p.i..].iter().take(7).collect();
    if rest.starts_with("export") && rest.chars().nth(6).is_some_and(char::is_whitespace) {
        p.i += 6;
        p.skip_blanks();
    }
    let mut key = String::new();
    let inherited = loop {
        match p.peek() {
            None | Some('\n') => break true,
            Some('=') | Some(':') => {
                p.bump();
                break false;
            }
            Some(c) if is_blank(c) || is_key_char(c) => {
                key.push(c);
                p.bump();
            }
            Some(c) => return Err(format!("unexpected character {c:?} in variable name {:?}", key.trim())),
        }
    };
    let key = key.trim_end_matches(is_blank).to_owned();
    if key.contains(is_blank) {
        return Err(format!("variable name {key:?} cannot contain a space"));
    }
    if key.is_empty() {
        return Err("a statement needs a variable name before '='".into());
    }
    let lookup = |name: &str| -> Option<String> {
        defined.iter().rev().find(|(_, v)| v.name == name).map(|(_, v)| v.value.clone()).or_else(|| outer(name))
    };
    if inherited {
        return Ok(lookup(&key).map(|value| EnvVar { name: key, value }));
    }
    p.skip_blanks();
    let value = match p.peek() {
        Some(q @ ('"' | '\'')) => {
            let start_line = p.line;
            p.bump();
            let mut raw = String::new();
            let mut escaped = false;
            let mut closed = false;
            while let Some(c) = p.bump() {
                if escaped {
                    escaped = false;
                    if c != q {
                        raw.push('\\');
                    }
                    raw.push(c);
                    continue;
                }
                if c == '\\' {
                    escaped = true;
                } else if c == q {
                    closed = true;
                    break;
                } else {
                    raw.push(c);
                }
            }
            if !closed {
                let first = raw.lines().next().unwrap_or_default();
                // Resume after the line that opened the quote: the quote was probably a typo.
                p.i = p.chars.len();
                return Err(format!("line {start_line}: unterminated quoted value {q}{first}"));
            }
            if q == '"' { interpolate(&unescape(&raw), &lookup).map_err(|e| e.to_string())?.value } else { raw }
        }
        _ => {
            let line = p.rest_of_line();
            let value = line.split(" #").next().unwrap_or_default().trim_end();
            interpolate(value, &lookup).map_err(|e| e.to_string())?.value
        }
    };
    Ok(Some(EnvVar { name: key, value }))
}

/// The escapes of double-quoted values. `\$` becomes `$$` so interpolation keeps a literal `$`.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let chars: Vec<char> = raw.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '\\' || i + 1 >= chars.len() {
            out.push(c);
            i += 1;
            continue;
        }
        let n = chars[i + 1];
        let simple = match n {
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            '\\' => Some('\\'),
            '"' => Some('"'),
            _ => None,
        };
        if let Some(s) = simple {
            out.push(s);
            i += 2;
        } else if n == '$' {
            out.push_str("$$");
            i += 2;
        } else if n == '0' && i + 5 <= chars.len() && chars[i + 2..i + 5].iter().all(|d| ('0'..='7').contains(d)) {
            let digits: String = chars[i + 2..i + 5].iter().collect();
            match u32::from_str_radix(&digits, 8).ok().filter(|v| *v <= 0o377).and_then(char::from_u32) {
                Some(ch) => out.push(ch),
                None => out.extend(&chars[i..i + 5]),
            }
            i += 5;
        } else {
            out.push('\\');
            out.push(n);
            i += 2;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    fn vars(text: &str) -> Vec<(String, String)> {
        let p = parse(text, Path::new(".env"), &none);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        p.entries.into_iter().map(|(_, v)| (v.name, v.value)).collect()
    }

    #[test]
    fn compose_forms() {
        let text = "# comment\nexport A=1\nB = spaced  \nC=\"dq ${A} \\n\\t \\\"q\\\" \\\\ \\$x\"\nD='sq ${A} \\n'\n\
                    E=unq # comment\nF=unq#nocomment\nG=\"multi\nline\"\nH=${A}-${MISSING:-def}\nI\nJ=\nK=$A$$B\n\
                    L=\"a\" # c\nM=  'x'  \nN=a=b\nO=`bt`\nP: yaml\n";
        let got = vars(text);
        let want: Vec<(String, String)> = [
            ("A", "1"),
            ("B", "spaced"),
            ("C", "dq 1 \n\t \"q\" \\ $x"),
            ("D", "sq ${A} \\n"),
            ("E", "unq"),
            ("F", "unq#nocomment"),
            ("G", "multi\nline"),
            ("H", "1-def"),
            ("J", ""),
            ("K", "1$B"),
            ("L", "a"),
            ("M", "x"),
            ("N", "a=b"),
            ("O", "`bt`"),
            ("P", "yaml"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn bad_lines_are_reported_and_the_rest_is_read() {
        let text = "A=1\nB C=2\nD=\"${X:?need X}\"\nbad!=3\nE=5\n";
        let p = parse(text, Path::new("/home/palav/docker/plex/.env"), &none);
        let lines: Vec<usize> = p.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 4], "{:?}", p.errors);
        assert!(p.errors[1].to_string().contains("required variable X is missing a value: need X"));
        let names: Vec<&str> = p.entries.iter().map(|(_, v)| v.name.as_str()).collect();
        assert_eq!(names, vec!["A", "E"]);
        assert_eq!(p.entries[1].0, 5);
    }

    #[test]
    fn inherited_uses_the_outer_lookup() {
        let outer = |n: &str| (n == "HOME").then(|| "/home/palav".to_owned());
        let p = parse("HOME\nX=${HOME}/media\n", Path::new(".env"), &outer);
        let v: Vec<_> = p.entries.iter().map(|(_, v)| v.value.as_str()).collect();
        assert_eq!(v, vec!["/home/palav", "/home/palav/media"]);
    }

    #[test]
    fn octal_escapes() {
        assert_eq!(unescape("\\0123x"), "Sx");
        assert_eq!(unescape("\\q"), "\\q");
        assert_eq!(unescape("end\\"), "end\\");
    }
}
