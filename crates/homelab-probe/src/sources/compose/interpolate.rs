//! Variable interpolation in Compose files, as the Compose Specification defines it
//! (`interpolation.md`): `$VAR`, `${VAR}`, `${VAR:-default}` (unset or empty),
//! `${VAR-default}` (unset), `${VAR:?error}` / `${VAR?error}` (required), `${VAR:+replacement}` /
//! `${VAR+replacement}` (alternative), `$$` for a literal `$`. Defaults, messages and
//! replacements may themselves hold interpolations (`${A:-${B}}`).
//!
//! Edge cases, as Docker Compose v2 handles them (checked against it in the oracle test):
//! - a `$` that starts no name and no brace (`$1`, `a$`, `$-`) is kept literally;
//! - an unterminated or malformed brace (`${A`, `${ A}`, `${1A}`, `${A:=x}`) is an error;
//! - an unset variable without a default becomes the empty string, with a warning;
//! - names are `[A-Za-z_][A-Za-z0-9_]*`.

/// Why a string could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolationError {
    /// A malformed `${...}`.
    #[error("invalid interpolation format in {0:?} (a literal $ is written $$)")]
    Invalid(String),
    /// `${VAR:?message}` or `${VAR?message}` with the variable missing.
    #[error("required variable {name} is missing a value{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Required {
        /// The variable.
        name: String,
        /// The message written after `?`.
        message: String,
    },
}

/// The result of interpolating one string: the value and the names of variables that were
/// used while unset (Compose warns "The X variable is not set. Defaulting to a blank string.").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Interpolated {
    /// The interpolated text.
    pub value: String,
    /// Variables referenced without a default while unset.
    pub unset: Vec<String>,
}

/// Interpolates `template`, looking variables up with `lookup`.
pub fn interpolate(
    template: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Interpolated, InterpolationError> {
    let mut out = Interpolated::default();
    interpolate_into(template, lookup, &mut out)?;
    Ok(out)
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn interpolate_into(
    template: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut Interpolated,
) -> Result<(), InterpolationError> {
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.value.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let mut chars = after.chars();
        match chars.next() {
            Some('$') => {
                out.value.push('$');
                rest = &after[1..];
            }
            Some('{') => {
                let body_start = 1;
                let close = matching_brace(&after[body_start..])
                    .ok_or_else(|| InterpolationError::Invalid(template.to_owned()))?;
                let body = &after[body_start..body_start + close];
                braced(body, template, lookup, out)?;
                rest = &after[body_start + close + 1..];
            }
            Some(c) if is_name_start(c) => {
                let end = after.find(|c: char| !is_name_char(c)).unwrap_or(after.len());
                let name = &after[..end];
                match lookup(name) {
                    Some(v) => out.value.push_str(&v),
                    None => out.unset.push(name.to_owned()),
                }
                rest = &after[end..];
            }
            _ => {
                out.value.push('$');
                rest = after;
            }
        }
    }
    out.value.push_str(rest);
    Ok(())
}

/// Byte offset of the `}` closing a `${` whose body starts at `s`, counting nested `${`.
fn matching_brace(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 2;
                continue;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn braced(
    body: &str,
    template: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut Interpolated,
) -> Result<(), InterpolationError> {
    let invalid = || InterpolationError::Invalid(template.to_owned());
    if !body.starts_with(is_name_start) {
        return Err(invalid());
    }
    let end = body.find(|c: char| !is_name_char(c)).unwrap_or(body.len());
    let (name, op) = body.split_at(end);
    let value = lookup(name);
    let set_nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
    let (operator, arg) = [":-", ":?", ":+", "-", "?", "+"]
        .iter()
        .find_map(|op_str| op.strip_prefix(op_str).map(|a| (*op_str, a)))
        .unwrap_or((op, ""));
    match operator {
        "" => match value {
            Some(v) => out.value.push_str(&v),
            None => out.unset.push(name.to_owned()),
        },
        ":-" | "-" => {
            let use_default = if operator == ":-" { !set_nonempty } else { value.is_none() };
            if use_default {
                interpolate_into(arg, lookup, out)?;
            } else {
                out.value.push_str(value.as_deref().unwrap_or_default());
            }
        }
        ":?" | "?" => {
            let ok = if operator == ":?" { set_nonempty } else { value.is_some() };
            if !ok {
                let mut msg = Interpolated::default();
                interpolate_into(arg, lookup, &mut msg)?;
                return Err(InterpolationError::Required { name: name.to_owned(), message: msg.value });
            }
            out.value.push_str(value.as_deref().unwrap_or_default());
        }
        ":+" | "+" => {
            let use_replacement = if operator == ":+" { set_nonempty } else { value.is_some() };
            if use_replacement {
                interpolate_into(arg, lookup, out)?;
            }
        }
        _ => return Err(invalid()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("1".into()),
            "E" => Some(String::new()),
            "PGID" => Some("110".into()),
            _ => None,
        }
    }

    #[rstest]
    #[case("plain", "plain")]
    #[case("$A", "1")]
    #[case("${A}", "1")]
    #[case("$A_b ${A}_b", " 1_b")]
    #[case("${A:-${B:-z}}", "1")]
    #[case("${B:-${A}x}", "1x")]
    #[case("${E-d}|${E:-d}|${B-d}", "|d|d")]
    #[case("${A:+r}|${E:+r}|${E+r}|${B+r}", "r||r|")]
    #[case("$$A $${A}", "$A ${A}")]
    #[case("${A:-a}}", "1}")]
    #[case("${A-}", "1")]
    #[case("$1x", "$1x")]
    #[case("a$", "a$")]
    #[case("$-", "$-")]
    #[case("${PGID:-100}", "110")]
    #[case("ünï ${A} 😀", "ünï 1 😀")]
    fn values(#[case] t: &str, #[case] want: &str) {
        assert_eq!(interpolate(t, &env).unwrap().value, want);
    }

    #[rstest]
    #[case("${A")]
    #[case("${ A}")]
    #[case("${A:=x}")]
    #[case("${1A}")]
    #[case("${}")]
    fn invalid(#[case] t: &str) {
        assert!(matches!(interpolate(t, &env), Err(InterpolationError::Invalid(_))), "{t}");
    }

    #[test]
    fn required_and_unset() {
        let e = interpolate("${B:?oops ${A}}", &env).unwrap_err();
        assert_eq!(e.to_string(), "required variable B is missing a value: oops 1");
        assert!(interpolate("${E:?}", &env).is_err());
        assert_eq!(interpolate("${E?}", &env).unwrap().value, "");
        assert_eq!(interpolate("x${B}$C", &env).unwrap().unset, vec!["B", "C"]);
    }
}
