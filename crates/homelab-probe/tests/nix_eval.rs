//! Nix rendering against the real evaluator: random strings (quotes, `${`, `''`, backslashes,
//! newlines, non-ASCII, control characters), attribute names (keywords, digits, spaces) and
//! nested sets are rendered by `homelab_probe::nix_expr`, evaluated by `nix-instantiate --eval
//! --strict --json` (Debian package nix-bin, installed by `scripts/setup-debian --test`) and
//! must come back unchanged. Many values go into one evaluator call to keep it fast.

use homelab_probe::nix_expr::{self, Value};
use proptest::prelude::*;
use serde_json::Value as Json;

/// Evaluates `expr` (a Nix list) and returns its JSON.
fn nix_eval(expr: &str) -> Json {
    nix_eval_in(expr, &std::env::temp_dir())
}

/// Evaluates `expr` from a file in `dir` (relative paths in it are relative to `dir`).
fn nix_eval_in(expr: &str, dir: &std::path::Path) -> Json {
    homelab_test_support::nix::eval_file_in(dir, expr)
        .unwrap_or_else(|e| panic!("nix-instantiate failed: {e}\n--- expression ---\n{expr}"))
}

/// Text that is hard to escape.
fn nasty_string() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => any::<char>().prop_filter("NUL cannot be in a Nix string", |c| *c != '\0').prop_map(String::from),
        1 => Just("${".to_owned()),
        1 => Just("$${".to_owned()),
        1 => Just("''".to_owned()),
        1 => Just("''$".to_owned()),
        1 => Just("'''".to_owned()),
        1 => Just("''\\".to_owned()),
        1 => Just("\\".to_owned()),
        1 => Just("\"".to_owned()),
        1 => Just("$".to_owned()),
        1 => Just("\n".to_owned()),
        1 => Just("\r\n".to_owned()),
        1 => Just("\t".to_owned()),
        1 => Just("é😀".to_owned()),
        1 => Just("\u{1}\u{7f}".to_owned()),
        1 => Just("}".to_owned()),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

fn attr_key() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => nasty_string(),
        1 => prop::sample::select(vec!["in", "let", "rec", "or", "inherit", "if", "with", "assert", "then", "else",
            "true", "null", "render", "systemd-journal-gateway", "a'b", "_x", "1000", "-x", "", "a.b", "my group"])
            .prop_map(str::to_owned),
        1 => "[a-zA-Z_][a-zA-Z0-9_'-]{0,8}",
    ]
}

fn value() -> impl Strategy<Value = (Value, Json)> {
    let leaf = prop_oneof![
        4 => nasty_string().prop_map(|s| (Value::Str(s.clone()), Json::String(s))),
        1 => any::<i64>().prop_map(|i| (Value::Int(i), Json::from(i))),
        1 => any::<bool>().prop_map(|b| (Value::Bool(b), Json::Bool(b))),
        1 => Just((Value::Null, Json::Null)),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|items| {
                let (v, j): (Vec<Value>, Vec<Json>) = items.into_iter().unzip();
                (Value::List(v), Json::Array(j))
            }),
            prop::collection::vec((attr_key(), inner), 0..5).prop_map(|pairs| {
                // Nix refuses a set with the same attribute twice: keep the first.
                let mut seen = std::collections::BTreeSet::new();
                let pairs: Vec<(String, (Value, Json))> =
                    pairs.into_iter().filter(|(k, _)| seen.insert(k.clone())).collect();
                let json = Json::Object(pairs.iter().map(|(k, (_, j))| (k.clone(), j.clone())).collect());
                (Value::Attrs(pairs.into_iter().map(|(k, (v, _))| (k, v)).collect()), json)
            }),
        ]
    })
}

/// Clean absolute and relative paths with characters a path literal cannot hold.
fn clean_path() -> impl Strategy<Value = String> {
    let seg = prop_oneof![
        3 => "[A-Za-z0-9._+-]{1,8}".prop_filter("not . or ..", |s| s != "." && s != ".."),
        1 => "[ a-z'\"$\\{}é:@#]{1,6}".prop_filter("not . or ..", |s| s != "." && s != ".."),
    ];
    (any::<bool>(), prop::collection::vec(seg, 1..5)).prop_map(|(abs, segs)| {
        let joined = segs.join("/");
        if abs { format!("/{joined}") } else { joined }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Values (strings, numbers, lists, nested sets with any attribute names) evaluate to
    /// themselves.
    #[test]
    fn rendered_values_evaluate_unchanged(batch in prop::collection::vec(value(), 1..40)) {
        let (values, want): (Vec<Value>, Vec<Json>) = batch.into_iter().unzip();
        let expr = Value::List(values).render().unwrap();
        prop_assert_eq!(nix_eval(&expr), Json::Array(want));
    }

    /// Attribute paths (`users.groups."my group".gid = ...`), comments and paths.
    #[test]
    fn attr_paths_comments_and_paths_evaluate_unchanged(
        keys in prop::collection::vec(prop::collection::vec(attr_key(), 1..4), 1..20),
        notes in prop::collection::vec(nasty_string(), 1..10),
        paths in prop::collection::vec(clean_path(), 1..10),
    ) {
        let mut expr = String::from("[\n");
        let mut want = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let parts: Vec<&str> = k.iter().map(String::as_str).collect();
            // A set with one attribute path, selected back with the same rendered path.
            let p = nix_expr::attr_path(&parts).unwrap();
            expr.push_str(&format!("  (let s = {{ {p} = {i}; }}; in s.{p})\n"));
            want.push(Json::from(i));
        }
        for (i, n) in notes.iter().enumerate() {
            expr.push_str(&format!("  {}\n  \"note {i}\"\n", nix_expr::comment(n)));
            want.push(Json::String(format!("note {i}")));
        }
        let dir = tempfile::tempdir().unwrap();
        let dir_path = dir.path().canonicalize().unwrap();
        for p in &paths {
            expr.push_str(&format!("  (toString ({}))\n", nix_expr::path(p).unwrap()));
            // Relative paths are relative to the directory of the file that holds them.
            want.push(Json::String(if p.starts_with('/') { p.clone() } else { format!("{}/{p}", dir_path.display()) }));
        }
        expr.push(']');
        let got = nix_eval_in(&expr, &dir_path);
        prop_assert_eq!(got, Json::Array(want));
    }
}

#[test]
fn fixed_cases_evaluate_unchanged() {
    let cases = ["", "${x}", "''${x}", "a\\${x}", "\\", "\"", "$", "$$", "${", "'''", "\r\n\t", "é 😀 ∀"];
    let values: Vec<Value> = cases.iter().map(|s| Value::str(*s)).collect();
    let got = nix_eval(&Value::List(values).render().unwrap());
    let want: Vec<Json> = cases.iter().map(|s| Json::String((*s).to_owned())).collect();
    assert_eq!(got, Json::Array(want));
    let set =
        Value::attrs([("in", Value::Int(-3)), ("a b", Value::Apply("builtins.toString", Box::new(Value::Int(5))))]);
    assert_eq!(nix_eval(&format!("[ {} ]", set.render().unwrap())), serde_json::json!([{ "in": -3, "a b": "5" }]));
}
