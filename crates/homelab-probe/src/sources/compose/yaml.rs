//! A YAML document as a tree of nodes that remember their line, read with `serde-saphyr`.
//!
//! Compose files are interpreted field by field (a malformed service must not hide the others),
//! so they are first read into this untyped tree. Every node keeps the line it was referenced
//! on, so a problem found later (`devices: 5`) is reported with file and line. Anchors,
//! aliases and `<<:` merge keys are resolved by the YAML reader, as Compose's own reader
//! (go-yaml v3) resolves them; duplicate keys are an error in both.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// One YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    /// `~`, `null` or an empty value.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float (kept as its value; Compose rarely uses them).
    Float(f64),
    /// A string scalar.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in document order. Keys are scalars written as text.
    Map(Vec<(String, Node)>),
}

/// A [`Yaml`] value and the 1-based line it appears on (0 when unknown).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Yaml,
    /// 1-based line of the value in its file; 0 when the reader could not tell.
    pub line: usize,
}

impl Node {
    /// A node without a known line (for values built in code).
    pub fn new(value: Yaml) -> Self {
        Node { value, line: 0 }
    }

    /// The value of key `key` when this is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Yaml::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The scalar as text, as Compose reads scalars into string fields: strings as they are,
    /// numbers and booleans in their plain spelling. `None` for null, sequences and mappings.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Yaml::Str(s) => Some(s.clone()),
            Yaml::Int(i) => Some(i.to_string()),
            Yaml::Float(f) => Some(f.to_string()),
            Yaml::Bool(b) => Some(b.to_string()),
            Yaml::Null | Yaml::Seq(_) | Yaml::Map(_) => None,
        }
    }

    /// A short name of the node's kind for messages (`a mapping`, `a string`...).
    pub fn kind(&self) -> &'static str {
        match self.value {
            Yaml::Null => "null",
            Yaml::Bool(_) => "a boolean",
            Yaml::Int(_) => "an integer",
            Yaml::Float(_) => "a number",
            Yaml::Str(_) => "a string",
            Yaml::Seq(_) => "a list",
            Yaml::Map(_) => "a mapping",
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s: Spanned<Yaml> = Spanned::deserialize(d)?;
        let line = usize::try_from(s.referenced.line()).unwrap_or(0);
        Ok(Node { value: s.value, line })
    }
}

impl<'de> Deserialize<'de> for Yaml {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(YamlVisitor)
    }
}

struct YamlVisitor;

impl<'de> Visitor<'de> for YamlVisitor {
    type Value = Yaml;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Yaml, D::Error> {
        Yaml::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Yaml, E> {
        Ok(Yaml::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Yaml, E> {
        Ok(Yaml::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Yaml, E> {
        Ok(i64::try_from(v).map_or_else(|_| Yaml::Str(v.to_string()), Yaml::Int))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Yaml, E> {
        Ok(i64::try_from(v).map_or_else(|_| Yaml::Str(v.to_string()), Yaml::Int))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Yaml, E> {
        Ok(i64::try_from(v).map_or_else(|_| Yaml::Str(v.to_string()), Yaml::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Yaml, E> {
        Ok(Yaml::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Yaml, E> {
        Ok(Yaml::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Yaml, E> {
        Ok(Yaml::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Yaml, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = seq.next_element::<Node>()? {
            items.push(n);
        }
        Ok(Yaml::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Yaml, A::Error> {
        let mut entries = Vec::new();
        while let Some(k) = map.next_key::<Spanned<Key>>()? {
            let mut v = map.next_value::<Node>()?;
            // A block mapping or sequence "is" where its key is: `plex:` rather than the line
            // of its first entry.
            if matches!(v.value, Yaml::Map(_) | Yaml::Seq(_)) && k.referenced.line() > 0 {
                v.line = usize::try_from(k.referenced.line()).unwrap_or(v.line);
            }
            entries.push((k.value.0, v));
        }
        Ok(Yaml::Map(entries))
    }
}

/// A mapping key: any scalar, kept as text (`1000: x` has the key `1000`).
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Yaml::deserialize(d)? {
            Yaml::Str(s) => Ok(Key(s)),
            Yaml::Int(i) => Ok(Key(i.to_string())),
            Yaml::Float(f) => Ok(Key(f.to_string())),
            Yaml::Bool(b) => Ok(Key(b.to_string())),
            Yaml::Null => Ok(Key("null".into())),
            Yaml::Seq(_) | Yaml::Map(_) => Err(de::Error::custom("a mapping key must be a scalar")),
        }
    }
}

/// A YAML syntax error: 1-based line and column (0 when unknown) and the reader's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub column: usize,
    /// What the reader said.
    pub message: String,
}

/// Reads one YAML document into a [`Node`] tree. An empty document is `Null`.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    if text.trim().is_empty() {
        return Ok(Node { value: Yaml::Null, line: 1 });
    }
    let options = serde_saphyr::options! {
        // Compose's reader (go-yaml v3) reads `0755` as an octal-looking *string* only when
        // quoted; a plain `PUID: 01000` is rare. Keep digits-with-leading-zero spellings as
        // text so nothing is silently renumbered.
        leading_zero_numbers_as_strings: true,
    };
    serde_saphyr::from_str_with_options::<Node>(text, options).map_err(|e| {
        let (line, column) = e
            .location()
            .map_or((0, 0), |l| (usize::try_from(l.line()).unwrap_or(0), usize::try_from(l.column()).unwrap_or(0)));
        // The reader's message may repeat the location and render a snippet: keep the first line.
        let message = e.to_string().lines().next().unwrap_or_default().to_owned();
        YamlError { line, column, message }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_anchors_and_merges() {
        let text = "x-common: &common\n  restart: always\n  user: \"1000\"\nservices:\n  a:\n    <<: *common\n    image: alpine\n    ports: [80, 443]\n";
        let n = parse(text).unwrap();
        let a = n.get("services").unwrap().get("a").unwrap();
        assert_eq!(a.get("image").unwrap().line, 7);
        assert_eq!(a.get("restart").unwrap().scalar_text().as_deref(), Some("always"));
        assert_eq!(a.get("user").unwrap().value, Yaml::Str("1000".into()));
        match &a.get("ports").unwrap().value {
            Yaml::Seq(items) => assert_eq!(items[1].value, Yaml::Int(443)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_have_a_line() {
        let e = parse("services:\n  a:\n    image: [unclosed\n  b: x\n").unwrap_err();
        assert!(e.line >= 3, "{e:?}");
        let e = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(e.line, 2, "{e:?}");
    }
}
