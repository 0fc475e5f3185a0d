//! The NixOS module (nix/module.nix, nix/lib.nix) against this library, with the real Nix
//! evaluator (`nix-instantiate`, Debian's nix-bin: `scripts/setup-debian --test`):
//! - the module's name rule is `validate_name`'s (random names, both sides asked);
//! - what the module's typed `settings` render to is an expectations file this library
//!   accepts, and the module's defaults mean exactly the built-in defaults;
//! - the Nix-only tests (nix/tests/lib.nix, nix/tests/flake-outputs.nix) pass;
//! - the option table in docs/nixos.md is the one generated from the declarations.
//!
//! Evaluation and `nix flake check` against nixpkgs are not possible here (no nixpkgs, no
//! binary cache): see docs/nixos.md. These tests are skipped in the Nix build sandbox, which
//! has no nix-instantiate (nix/package.nix).

use std::path::{Path, PathBuf};
use std::process::Command;

use homelab_probe::Expectations;
use homelab_probe::sources::validate_name;
use proptest::prelude::*;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// `nix-instantiate --eval --strict --json` of `expr`, evaluated in the repository root.
fn nix_eval(expr: &str) -> Value {
    let out = Command::new("nix-instantiate")
        .current_dir(repo())
        // No nix daemon or build users are needed to evaluate.
        .args(["--option", "build-users-group", "", "--eval", "--strict", "--json", "--expr", expr])
        .output()
        .expect("nix-instantiate (Debian package nix-bin) must be installed: run scripts/setup-debian --test");
    assert!(out.status.success(), "nix-instantiate failed on {expr}:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A string as a Nix expression (a JSON string, read back with `builtins.fromJSON`).
fn nix_string(s: &str) -> String {
    // `$` escaped, so that no `${` in a name starts an interpolation.
    let json = serde_json::to_string(&serde_json::to_string(s).unwrap()).unwrap().replace('$', "\\$");
    format!("(builtins.fromJSON {json})")
}

#[test]
fn nix_module_name_rule_agrees_with_validate_name_on_edge_cases() {
    let names = [
        "render",
        "palav",
        "a$",
        "a$b",
        "$",
        "ren der",
        "a:b",
        "123",
        "1a",
        "-x",
        "x-",
        "",
        "a\\b",
        "a`b",
        "a'b",
        "a\"b",
        "a,b",
        "a/b",
        "_docker",
        "a\tb",
        "a\nb",
        "a\u{7f}b",
        "ü",
        "a\u{a0}b",
        "a\u{85}b",
        "a\u{9f}b",
        "a\u{2028}b",
        "a\u{3000}b",
        "a\u{200b}b",
        "a\u{feff}b",
        "a\u{2003}b",
    ];
    let long = "x".repeat(256);
    let too_long = "x".repeat(257);
    let mut all: Vec<&str> = names.to_vec();
    all.push(&long);
    all.push(&too_long);
    assert_name_rules_agree(&all);
}

fn assert_name_rules_agree(names: &[&str]) {
    let list = names.iter().map(|n| nix_string(n)).collect::<Vec<_>>().join(" ");
    let got = nix_eval(&format!("map (import ./nix/lib.nix).isValidName [ {list} ]"));
    let got = got.as_array().unwrap();
    for (name, nix) in names.iter().zip(got) {
        assert_eq!(
            nix.as_bool(),
            Some(validate_name(name).is_ok()),
            "{name:?}: nix says {nix}, validate_name says {:?}",
            validate_name(name)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]
    /// Random names, mostly close to valid ones: one nix-instantiate per batch.
    #[test]
    fn nix_module_name_rule_agrees_with_validate_name(
        batch in proptest::collection::vec("[a-z0-9_$:,/ \t\"'`\\\\.-]{0,6}|\\PC{0,4}", 64)
    ) {
        let names: Vec<&str> = batch.iter().map(String::as_str).collect();
        assert_name_rules_agree(&names);
    }
}

/// The settings the module gets for `definition` (a Nix expression), rendered as the module
/// renders them, converted to TOML and read by this library.
fn module_expectations(definition: &str) -> (Value, Result<Expectations, String>) {
    let json = nix_eval(&format!("(import ./nix/tests/options.nix).expectationsWith ({definition})"));
    let toml_value: toml::Value = serde_json::from_value(json.clone()).unwrap();
    let text = toml::to_string(&toml_value).unwrap();
    let parsed =
        Expectations::from_toml_str(&text, Path::new("homelab-probe.toml")).map_err(|e| format!("{e}\n{text}"));
    (json, parsed)
}

#[test]
fn nix_module_defaults_are_the_builtin_defaults() {
    let (json, parsed) = module_expectations("{ }");
    assert_eq!(parsed.unwrap(), Expectations::builtin(), "{json}");
}

#[test]
fn nix_module_typed_settings_render_to_accepted_expectations() {
    let (json, parsed) = module_expectations(
        r#"{
          groups = { render = 110; video = 44; };
          users.palav = { uid = 1000; groups = [ "render" "video" "docker" ]; };
          users.jellyfin = { };
          render = {
            group = "render";
            mode = "0660";
            required = true;
            nodes = [ "/dev/dri/renderD128" ];
            access = [ { name = "plex"; uid = 1000; gid = 110; } { uid = 1001; gid = 1001; groups = [ 44 ]; } ];
          };
        }"#,
    );
    let e = parsed.unwrap();
    assert_eq!(e.groups["render"], 110);
    assert_eq!(e.users["palav"].uid, Some(1000));
    assert_eq!(e.users["palav"].groups, ["render", "video", "docker"]);
    assert_eq!(e.users["jellyfin"].uid, None, "a null uid is dropped, not rendered: {json}");
    let r = e.render.unwrap();
    assert_eq!(r.mode.unwrap().0, 0o660);
    assert!(r.required);
    assert_eq!(r.access[0].describe(), "plex (uid 1000, gid 110)");
    assert_eq!(r.access[1].describe(), "uid 1001, gid 1001, groups 44");
}

#[test]
fn nix_module_render_null_skips_the_render_section() {
    let (json, parsed) = module_expectations("{ render = null; }");
    assert_eq!(json.get("render"), None);
    assert_eq!(parsed.unwrap().render, None);
}

#[test]
fn nix_module_freeform_sections_pass_through_and_unknown_ones_are_refused_by_check() {
    // Sections without typed options yet (mounts, gpu, drift) pass through the module as
    // written; homelab-verify, not the module, decides whether it knows them.
    let (json, parsed) = module_expectations(r#"{ frobnicate = { x = 1; }; }"#);
    assert_eq!(json["frobnicate"]["x"], 1);
    let err = parsed.unwrap_err();
    assert!(err.contains("unknown field `frobnicate`"), "{err}");
}

#[test]
fn nix_module_lib_tests_pass() {
    let failures = nix_eval("import ./nix/tests/lib.nix");
    assert_eq!(failures, Value::Array(vec![]), "nix/tests/lib.nix failures");
}

#[test]
fn nix_module_flake_outputs_have_the_documented_shape() {
    let failures = nix_eval("import ./nix/tests/flake-outputs.nix");
    assert_eq!(failures, Value::Array(vec![]), "nix/tests/flake-outputs.nix failures");
}

#[test]
fn nix_module_option_table_in_docs_is_generated_from_the_declarations() {
    let table = nix_eval("(import ./nix/tests/options.nix).docTable");
    let table = table.as_str().unwrap();
    let docs = std::fs::read_to_string(repo().join("docs/nixos.md")).unwrap();
    let begin = "<!-- options: generated by scripts/gen-nixos-options, do not edit -->\n";
    let end = "\n<!-- end of options -->";
    let start = docs.find(begin).expect("docs/nixos.md has the generated options table") + begin.len();
    let stop = start + docs[start..].find(end).expect("end marker");
    assert_eq!(&docs[start..stop], table, "docs/nixos.md is stale: run scripts/gen-nixos-options");
}
