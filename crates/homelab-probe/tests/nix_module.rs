//! The NixOS module (nix/module.nix, nix/lib.nix) against this library, with the real Nix
//! evaluator (`nix-instantiate`, Debian's nix-bin: `scripts/setup-debian --test`):
//! - the module's name rule is `validate_name`'s (random names, both sides asked);
//! - what the module's typed `settings` render to is an expectations file this library
//!   accepts, with every option of every section set, and the module's defaults mean exactly
//!   the built-in defaults;
//! - the option types and eval-time assertions refuse what this library refuses, case by case
//!   and with random mount points and drift roots, with the deviations listed;
//! - the Nix-only tests (nix/tests/lib.nix, nix/tests/flake-outputs.nix) pass;
//! - the option table in docs/nixos.md is the one generated from the declarations;
//! - every VM test's Python script (nixos-tests/) passes pyflakes as nixpkgs' test driver runs
//!   it (the scripts themselves only run under `nix flake check`).
//!
//! Evaluation and `nix flake check` against nixpkgs are not possible here (no nixpkgs, no
//! binary cache): see docs/nixos.md. These tests do not run in the Nix build sandbox, which
//! has no nix-instantiate (nix/sandbox-tests.txt excludes this binary).

use std::path::{Path, PathBuf};
use std::process::Command;

use std::collections::BTreeSet;

use homelab_probe::Expectations;
use homelab_probe::model::expectations::{DriftExpectation, GpuExpectation, VaapiExpectation, VideoCodec};
use homelab_probe::model::mounts::{MountExpectation, check_mount_point};
use homelab_probe::model::text::validate_name;
use proptest::prelude::*;
use serde_json::Value;

mod nixos_eval;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// `nix-instantiate --eval --strict --json` of `expr`, evaluated in the repository root.
fn nix_eval(expr: &str) -> Value {
    homelab_test_support::nix::eval_in(&repo(), expr)
        .unwrap_or_else(|e| panic!("nix-instantiate failed on {expr}:\n{e}"))
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

/// What the module renders to /etc/homelab-probe.toml for the `settings` definition `definition`
/// (a Nix expression), evaluated with the real module system (nix/tests/unit.nix), converted to
/// TOML and read by this library.
fn module_expectations(definition: &str) -> (Value, Result<Expectations, String>) {
    let lib = nixos_eval::nixpkgs_lib();
    let json = nix_eval(&format!(
        "(import ./nix/tests/unit.nix {{ nixpkgsLib = {}; settings = {definition}; }}).expectations",
        nixos_eval::nix_path(&lib)
    ));
    let toml_value: toml::Value = serde_json::from_value(json.clone()).unwrap();
    let text = toml::to_string(&toml_value).unwrap();
    let parsed =
        Expectations::from_toml_str(&text, Some(Path::new("homelab-probe.toml"))).map_err(|e| format!("{e}\n{text}"));
    (json, parsed)
}

#[test]
fn nix_module_defaults_are_the_builtin_defaults() {
    let (json, parsed) = module_expectations("{ }");
    assert_eq!(parsed.unwrap(), Expectations::builtin(), "{json}");
}

/// Every typed option of the module, with a value other than its default where it has one.
const EVERY_OPTION: &str = r#"{
  groups = { render = 110; video = 44; };
  users.palav = { uid = 1000; groups = [ "render" "video" "docker" ]; };
  users.jellyfin = { };
  render = {
    group = "render";
    mode = "0660";
    required = true;
    nodes = [ "/dev/dri/renderD128" ];
    access = [
      { name = "plex"; uid = 1000; gid = 110; groups = [ 44 ]; }
      { uid = 1001; gid = 1001; }
      { name = "jellyfin"; uid = 1000; gid = 108; rootless = "palav"; keep_groups = true; }
    ];
  };
  mounts = [
    { path = "/mnt/PlexStorage"; uuid = "7c1f0b7e-2d4a-4f61-9a53-3c5f2d1e9b10"; fstype = "ext4"; options = [ "rw" "noatime" ]; }
    { path = "/mnt/Plex Drive"; label = "Plex Drive"; required = false; }
    { path = "/srv/data"; device = "/dev/mapper/data-data"; fstype = "xfs"; options = [ "ro" ]; }
  ];
  gpu = {
    nvenc = [ "h264" "hevc" ];
    vaapi = { encode = [ "hevc" "av1" ]; node = "/dev/dri/renderD128"; };
    nvidia_containers = true;
  };
  drift = [
    { root = "/mnt/PlexStorage/media"; uid = 1000; gid = 110; exclude = [ ".Trash-*" "Downloads/incomplete" ]; cross_mounts = true; max_entries = 5000000; max_seconds = 120; }
    { root = "/srv/data"; uid = 0; gid = 0; }
  ];
  baseline = [
    { file = "/var/lib/homelab-probe/appdata.baseline"; map = [ "/srv/appdata=/mnt/data/appdata" ]; by_name = true; max_entries = 5000000; max_seconds = 120; }
  ];
}"#;

/// The option names (`settings.mounts.*.uuid`) a Nix definition sets, list items as `*`.
fn set_options(prefix: &str, v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let name = format!("{prefix}.{k}");
                out.insert(name.clone());
                set_options(&name, v, out);
            }
        }
        Value::Array(items) if items.iter().any(Value::is_object) => {
            for item in items {
                set_options(&format!("{prefix}.*"), item, out);
            }
        }
        _ => {}
    }
}

#[test]
fn nix_module_every_option_is_set_by_the_render_test() {
    let declared = nix_eval("(import ./nix/tests/options.nix).optionNames");
    let declared: BTreeSet<String> = declared
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .filter(|n| n.starts_with("services.homelab-probe.settings."))
        // `version` has one allowed value, its default.
        .filter(|n| n != "services.homelab-probe.settings.version")
        // `users.<name>`: set through the names palav and jellyfin.
        .map(|n| n.replace(".<name>.", ".palav."))
        .collect();
    let mut set = BTreeSet::new();
    set_options("services.homelab-probe.settings", &nix_eval(EVERY_OPTION), &mut set);
    let missing: Vec<&String> = declared.difference(&set).collect();
    assert!(missing.is_empty(), "options the render test leaves at their default: {missing:?}");
}

#[test]
fn nix_module_typed_settings_render_to_accepted_expectations() {
    let (json, parsed) = module_expectations(EVERY_OPTION);
    let e = parsed.unwrap();
    assert_eq!(e.groups["render"], 110);
    assert_eq!(e.users["palav"].uid, Some(1000));
    assert_eq!(e.users["palav"].groups, ["render", "video", "docker"]);
    assert_eq!(e.users["jellyfin"].uid, None, "a null uid is dropped, not rendered: {json}");
    let r = e.render.unwrap();
    assert_eq!(r.mode.unwrap().0, 0o660);
    assert!(r.required);
    assert_eq!(r.access[0].describe(), "plex (uid 1000, gid 110, groups 44)");
    assert_eq!(r.access[1].describe(), "uid 1001, gid 1001");
    assert_eq!(
        r.access[2].describe(),
        "jellyfin (uid 1000, gid 108, rootless in palav's user namespace with keep-groups)"
    );
    let mount = |path: &str| MountExpectation {
        path: path.into(),
        uuid: None,
        label: None,
        device: None,
        fstype: None,
        options: vec![],
        required: true,
    };
    assert_eq!(
        e.mounts,
        [
            MountExpectation {
                uuid: Some("7c1f0b7e-2d4a-4f61-9a53-3c5f2d1e9b10".into()),
                fstype: Some("ext4".into()),
                options: vec!["rw".into(), "noatime".into()],
                ..mount("/mnt/PlexStorage")
            },
            MountExpectation { label: Some("Plex Drive".into()), required: false, ..mount("/mnt/Plex Drive") },
            MountExpectation {
                device: Some("/dev/mapper/data-data".into()),
                fstype: Some("xfs".into()),
                options: vec!["ro".into()],
                ..mount("/srv/data")
            },
        ],
        "{json}"
    );
    assert_eq!(
        e.gpu,
        GpuExpectation {
            nvenc: vec![VideoCodec::H264, VideoCodec::Hevc],
            vaapi: Some(VaapiExpectation {
                encode: vec![VideoCodec::Hevc, VideoCodec::Av1],
                node: Some("/dev/dri/renderD128".into())
            }),
            nvidia_containers: true,
        }
    );
    assert_eq!(
        e.drift,
        [
            DriftExpectation {
                root: "/mnt/PlexStorage/media".into(),
                uid: 1000,
                gid: 110,
                exclude: vec![".Trash-*".into(), "Downloads/incomplete".into()],
                cross_mounts: true,
                max_entries: Some(5_000_000),
                max_seconds: Some(120),
            },
            DriftExpectation {
                root: "/srv/data".into(),
                uid: 0,
                gid: 0,
                exclude: vec![],
                cross_mounts: false,
                max_entries: None,
                max_seconds: None,
            },
        ]
    );
}

#[test]
fn nix_module_new_sections_at_their_defaults_are_the_library_defaults() {
    // One entry of each list with only its required options: the rest must be filled in as
    // the library fills it in.
    let (json, parsed) = module_expectations(
        r#"{ mounts = [ { path = "/mnt/x"; } ]; gpu.vaapi.encode = [ "h264" ]; drift = [ { root = "/mnt/x"; uid = 1; gid = 2; } ]; }"#,
    );
    let e = parsed.unwrap();
    let text = "version = 1\n[[mounts]]\npath = \"/mnt/x\"\n[gpu.vaapi]\nencode = [\"h264\"]\n[[drift]]\nroot = \"/mnt/x\"\nuid = 1\ngid = 2\n";
    let plain = Expectations::from_toml_str(text, Some(Path::new("plain.toml"))).unwrap();
    assert_eq!((&e.mounts, &e.gpu, &e.drift), (&plain.mounts, &plain.gpu, &plain.drift), "{json}");
}

#[test]
fn nix_module_baseline_sections_render_what_the_library_reads() {
    // Every option set, and one entry with only its required option: the library must read
    // the same as from the hand-written file.
    let (json, parsed) = module_expectations(
        r#"{ baseline = [ { file = "/var/lib/homelab-probe/appdata.baseline"; map = [ "/srv/appdata=/mnt/data/appdata" ]; by_name = true; max_entries = 5000000; max_seconds = 120; } { file = "/b"; } ]; }"#,
    );
    let e = parsed.unwrap();
    let text = "version = 1\n[[baseline]]\nfile = \"/var/lib/homelab-probe/appdata.baseline\"\nmap = [\"/srv/appdata=/mnt/data/appdata\"]\nby_name = true\nmax_entries = 5000000\nmax_seconds = 120\n[[baseline]]\nfile = \"/b\"\n";
    let plain = Expectations::from_toml_str(text, Some(Path::new("plain.toml"))).unwrap();
    assert_eq!(e.baseline, plain.baseline, "{json}");
    assert_eq!(e.baseline.len(), 2);
}

/// What the module makes of a `settings` definition, evaluated with the real module system
/// (nix/tests/unit.nix): refused by an option type, or the assertions that fail and the
/// warnings, and what it renders.
struct Verdict {
    type_errors: bool,
    problems: Vec<String>,
    warnings: Vec<String>,
    expectations: Value,
}

fn verdicts(definitions: &[&str]) -> Vec<Verdict> {
    let lib = nixos_eval::nixpkgs_lib();
    let list = definitions.iter().map(|d| format!("({d})")).collect::<Vec<_>>().join(" ");
    let got = nix_eval(&format!(
        "map (d: import ./nix/tests/unit.nix {{ nixpkgsLib = {}; settings = d; }}) [ {list} ]",
        nixos_eval::nix_path(&lib)
    ));
    let strings = |v: &Value| {
        v.as_array().map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect()).unwrap_or_default()
    };
    got.as_array()
        .unwrap()
        .iter()
        .map(|v| Verdict {
            type_errors: v["typeError"] == Value::Bool(true),
            problems: strings(&v["failedAssertions"]),
            warnings: strings(&v["warnings"]),
            expectations: v["expectations"].clone(),
        })
        .collect()
}

/// The library's answer for the same values written straight into a file (no module between).
fn library_accepts(definitions: &[&str]) -> Vec<Result<(), String>> {
    let list = definitions.iter().map(|d| format!("({d})")).collect::<Vec<_>>().join(" ");
    let raw = nix_eval(&format!("[ {list} ]"));
    raw.as_array()
        .unwrap()
        .iter()
        .map(|def| {
            let mut table: toml::Value = serde_json::from_value(def.clone()).unwrap();
            table.as_table_mut().unwrap().insert("version".into(), toml::Value::Integer(1));
            let text = toml::to_string(&table).unwrap();
            Expectations::from_toml_str(&text, Some(Path::new("raw.toml")))
                .map(|_| ())
                .map_err(|e| format!("{e}\n{text}"))
        })
        .collect()
}

/// Where the module and the library disagree on purpose.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Agreement {
    /// Both accept or both refuse.
    Same,
    /// The module refuses what the library accepts: a drift root with a line break (it is also
    /// a word of the unit's WantsMountsFor=), a render node path with a trailing `/`, or a
    /// drift root listed with two owners (no host can meet it).
    ModuleStricter,
    /// The module cannot tell: glob syntax (globset) is checked by homelab-verify at run time.
    LibraryStricter,
    /// The library refuses the raw values, but the module system fills the gap with the
    /// option's empty value (an undefined `listOf` option is `[ ]`, lib/types.nix
    /// `emptyValue`), and the library accepts what the module renders.
    ModuleFills,
}

#[test]
fn nix_module_types_and_assertions_refuse_what_the_library_refuses() {
    use Agreement::*;
    let cases: &[(&str, bool, Agreement)] = &[
        // (settings definition, the module accepts it, agreement with the library)
        (
            r#"{ mounts = [ { path = "/mnt/Plex Drive"; uuid = "x"; fstype = "ext4"; options = [ "rw" ]; } ]; }"#,
            true,
            Same,
        ),
        (r#"{ mounts = [ { path = "/"; } ]; }"#, true, Same),
        (r#"{ mounts = [ { path = "/mnt/x/"; } ]; }"#, false, Same),
        (r#"{ mounts = [ { path = "mnt/x"; } ]; }"#, false, Same),
        (r#"{ mounts = [ { path = "/mnt//x"; } ]; }"#, false, Same),
        (r#"{ mounts = [ { path = "/mnt/../x"; } ]; }"#, false, Same),
        (r#"{ mounts = [ { path = "/mnt/x\ny"; } ]; }"#, false, Same),
        (r#"{ mounts = [ { path = "/x"; uuid = "a"; label = "b"; } ]; }"#, false, Same),
        (r#"{ mounts = [ { path = "/x"; label = "b"; device = "/dev/sdb1"; } ]; }"#, false, Same),
        (r#"{ mounts = [ { path = "/x"; device = "sdb1"; } ]; }"#, false, Same),
        (r#"{ mounts = [ { path = "/x"; uuid = ""; } ]; }"#, false, Same),
        (r#"{ mounts = [ { path = "/x"; label = "a\nb"; } ]; }"#, false, Same),
        (r#"{ mounts = [ { path = "/x"; fstype = "ext4,xfs"; } ]; }"#, false, Same),
        (r#"{ mounts = [ { path = "/x"; fstype = "fuse.sshfs"; } ]; }"#, true, Same),
        (r#"{ mounts = [ { path = "/x"; options = [ "rw,noatime" ]; } ]; }"#, false, Same),
        (r#"{ mounts = [ { path = "/x"; options = [ "" ]; } ]; }"#, false, Same),
        (r#"{ mounts = [ { path = "/x"; options = [ "rw" "ro" ]; } ]; }"#, false, Same),
        (r#"{ mounts = [ { path = "/x"; options = [ "x-systemd.automount" ]; required = false; } ]; }"#, true, Same),
        (r#"{ mounts = [ { path = "/x"; } { path = "/x"; uuid = "a"; } ]; }"#, false, Same),
        (r#"{ mounts = [ { path = "/x"; uid = 1; } ]; }"#, false, Same),
        (r#"{ mounts = [ { uuid = "a"; } ]; }"#, false, Same),
        (r#"{ gpu.nvenc = [ "h264" "hevc" ]; }"#, true, Same),
        (r#"{ gpu.nvenc = [ "av1" ]; }"#, false, Same),
        (r#"{ gpu.nvenc = [ "h265" ]; }"#, false, Same),
        (r#"{ gpu.vaapi.encode = [ "av1" ]; }"#, true, Same),
        // `encode` left out: the module system makes it `[ ]` (require no encoder).
        (r#"{ gpu.vaapi.node = "/dev/dri/renderD128"; }"#, true, ModuleFills),
        (r#"{ gpu.vaapi = { encode = [ "h264" ]; node = "/dev/dri/card0"; }; }"#, false, Same),
        (r#"{ gpu.vaapi = { encode = [ "h264" ]; node = "/dev/dri/renderD128/"; }; }"#, false, Same),
        (r#"{ gpu.nvidia_containers = true; }"#, true, Same),
        (r#"{ gpu.nvec = [ "h264" ]; }"#, false, Same),
        (r#"{ drift = [ { root = "/mnt/x"; uid = 1000; gid = 110; } ]; }"#, true, Same),
        (r#"{ drift = [ { root = "/"; uid = 1; gid = 1; } ]; }"#, false, Same),
        (r#"{ drift = [ { root = "//"; uid = 1; gid = 1; } ]; }"#, false, Same),
        (r#"{ drift = [ { root = "/./"; uid = 1; gid = 1; } ]; }"#, false, Same),
        (r#"{ drift = [ { root = "/.."; uid = 1; gid = 1; } ]; }"#, true, Same),
        (r#"{ drift = [ { root = "mnt"; uid = 1; gid = 1; } ]; }"#, false, Same),
        (r#"{ drift = [ { root = "/mnt/x"; gid = 1; } ]; }"#, false, Same),
        (r#"{ drift = [ { root = "/mnt/x"; uid = -1; gid = 1; } ]; }"#, false, Same),
        (r#"{ drift = [ { root = "/mnt/x"; uid = 4294967296; gid = 1; } ]; }"#, false, Same),
        (r#"{ drift = [ { root = "/mnt/x"; uid = 1; gid = 1; max_entries = -1; } ]; }"#, false, Same),
        (r#"{ drift = [ { root = "/mnt/x"; uid = 1; gid = 1; max_seconds = 0; } ]; }"#, true, Same),
        (r#"{ drift = [ { root = "/mnt/x"; uid = 1; gid = 1; owner = 1; } ]; }"#, false, Same),
        (r#"{ drift = [ { root = "/mnt/x\ny"; uid = 1; gid = 1; } ]; }"#, false, ModuleStricter),
        (
            r#"{ drift = [ { root = "/d"; uid = 1; gid = 1; } { root = "/d/"; uid = 2; gid = 1; } ]; }"#,
            false,
            ModuleStricter,
        ),
        (r#"{ drift = [ { root = "/mnt/x"; uid = 1; gid = 1; exclude = [ "[abc" ]; } ]; }"#, true, LibraryStricter),
    ];
    let defs: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let module = verdicts(&defs);
    let library = library_accepts(&defs);
    for (((def, module_accepts, agreement), v), lib) in cases.iter().zip(&module).zip(&library) {
        let accepted = !v.type_errors && v.problems.is_empty();
        assert_eq!(accepted, *module_accepts, "{def}: type errors {:?}, assertions {:?}", v.type_errors, v.problems);
        let library_ok = lib.is_ok();
        let want = match agreement {
            Agreement::Same => accepted,
            Agreement::ModuleStricter => true,
            Agreement::LibraryStricter | Agreement::ModuleFills => false,
        };
        assert_eq!(library_ok, want, "{def}: the library says {lib:?}; listed as {agreement:?}");
        if accepted {
            // What the module renders is accepted too (not only the raw values).
            let toml_value: toml::Value = serde_json::from_value(v.expectations.clone()).unwrap();
            let rendered =
                Expectations::from_toml_str(&toml::to_string(&toml_value).unwrap(), Some(Path::new("x.toml")));
            let want = library_ok || *agreement == Agreement::ModuleFills;
            assert_eq!(rendered.is_ok(), want, "{def}: rendered {rendered:?}");
        }
    }
}

/// Mount points and drift roots, mostly near the edge cases: the module's rules
/// (nix/lib.nix isMountPoint, isDriftRoot) against the library's.
fn assert_path_rules_agree(paths: &[&str]) {
    let list = paths.iter().map(|p| nix_string(p)).collect::<Vec<_>>().join(" ");
    let got = nix_eval(&format!(
        "let l = import ./nix/lib.nix; in map (p: [ (l.isMountPoint p) (l.isDriftRoot p) ]) [ {list} ]"
    ));
    for (p, nix) in paths.iter().zip(got.as_array().unwrap()) {
        let mount = check_mount_point(p).is_ok();
        assert_eq!(nix[0].as_bool(), Some(mount), "mount point {p:?}: nix {nix}, library {:?}", check_mount_point(p));
        let text = format!("version = 1\n[[drift]]\nroot = {}\nuid = 1\ngid = 1\n", toml::Value::String(p.to_string()));
        let drift = Expectations::from_toml_str(&text, Some(Path::new("x.toml")));
        // The module also refuses a line break in a drift root (ModuleStricter above).
        let want = drift.is_ok() && !p.contains('\n');
        assert_eq!(nix[1].as_bool(), Some(want), "drift root {p:?}: nix {nix}, library {drift:?}");
    }
}

#[test]
fn nix_module_path_rules_agree_with_the_library_on_edge_cases() {
    assert_path_rules_agree(&[
        "/",
        "//",
        "///",
        "/.",
        "/./",
        "/./.",
        "/..",
        "/../",
        "/mnt",
        "/mnt/",
        "/mnt//x",
        "/mnt/./x",
        "/mnt/../x",
        "/mnt/x/.",
        "/mnt/x/..",
        "/mnt/.x",
        "/mnt/..x",
        "/mnt/x y",
        "mnt",
        "",
        ".",
        "./mnt",
        "/mnt/x\n",
        "/\n",
        "/mnt/é",
        "/mnt/x\ty",
    ]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]
    #[test]
    fn nix_module_path_rules_agree_with_the_library(batch in proptest::collection::vec("[/.a \n]{0,7}", 64)) {
        let paths: Vec<&str> = batch.iter().map(String::as_str).collect();
        assert_path_rules_agree(&paths);
    }
}

#[test]
fn nix_module_settings_warnings_name_a_drift_root_listed_twice() {
    let v = verdicts(&[r#"{ drift = [ { root = "/d"; uid = 1; gid = 1; } { root = "/d"; uid = 1; gid = 1; } ]; }"#]);
    assert_eq!(
        v[0].warnings,
        [
            "services.homelab-probe.settings.drift: /d is listed 2 times with the same owner, so the check scans it 2 times; one entry is enough."
        ]
    );
}

#[test]
fn nix_module_render_null_skips_the_render_section() {
    let (json, parsed) = module_expectations("{ render = null; }");
    assert_eq!(json.get("render"), None);
    assert_eq!(parsed.unwrap().render, None);
}

#[test]
fn nix_module_freeform_sections_pass_through_and_unknown_ones_are_refused_by_check() {
    // Every section of version 1 has typed options; any other passes through the module as
    // written (a newer homelab-verify may know it), and homelab-verify, not the module, decides
    // whether it knows it.
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

/// The globals nixpkgs' test driver gives a test script besides the node names
/// (nixos/lib/test-driver: `Driver.test_symbols`); its lint passes them to pyflakes as
/// PYFLAKES_BUILTINS, as this test does.
const DRIVER_SYMBOLS: &[&str] = &[
    "start_all",
    "test_script",
    "machines",
    "vlans",
    "driver",
    "log",
    "os",
    "create_machine",
    "subtest",
    "run_tests",
    "join_all",
    "retry",
    "serial_stdout_off",
    "serial_stdout_on",
    "polling_condition",
    "Machine",
    "t",
    "debug",
];

#[test]
fn nix_module_vm_test_scripts_pass_pyflakes() {
    let tests = nix_eval(
        r#"let
          l = import ./nix/lib.nix;
          stub = import ./nix/tests/stub-lib.nix;
          lib = stub // { mkForce = v: v; };
          homelab = { helpers = builtins.readFile ./nixos-tests/lib/helpers.py; package = "/PKG"; fixtures = toString ./crates/homelab-probe/tests/fixtures; };
          hostPkgs = import ./nix/tests/stub-host-pkgs.nix "/PLANNED";
          script = name:
            let t = import (./nixos-tests + "/${name}.nix") { inherit lib homelab hostPkgs; };
            in {
              inherit name;
              nodes = builtins.attrNames t.nodes;
              script = if builtins.isFunction t.testScript
                then t.testScript { nodes = builtins.mapAttrs (_: _: { system.build.toplevel = "/TOPLEVEL"; }) t.nodes; }
                else t.testScript;
            };
        in map script (l.testNames (builtins.readDir ./nixos-tests))"#,
    );
    let tests = tests.as_array().unwrap();
    assert!(tests.len() >= 3, "{tests:?}");
    for t in tests {
        let name = t["name"].as_str().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(format!("{name}.py"));
        std::fs::write(&file, t["script"].as_str().unwrap()).unwrap();
        let mut builtins: Vec<&str> = t["nodes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
        builtins.extend(DRIVER_SYMBOLS);
        let out = Command::new("pyflakes3")
            .arg(&file)
            .env("PYFLAKES_BUILTINS", builtins.join(","))
            .output()
            .expect("pyflakes3 (Debian package pyflakes3) must be installed: run scripts/setup-debian --test");
        assert!(
            out.status.success() && out.stdout.is_empty(),
            "nixos-tests/{name}.nix: pyflakes:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The node configurations of every VM test (nixos-tests/*.nix), with their specialisations,
/// evaluated with the real module system (nix/tests/vm-nodes.nix), nixos-tests/generated.nix
/// importing the plan of its committed snapshot written to `planned`.
fn vm_nodes(lib: &Path, planned: &Path) -> Value {
    nix_eval(&format!(
        "import ./nix/tests/vm-nodes.nix {{ nixpkgsLib = {}; planned = {}; }}",
        nixos_eval::nix_path(lib),
        nixos_eval::nix_string(planned.to_str().unwrap())
    ))
}

/// The plan of nixos-tests/generated.nix's snapshot, written into a new directory `planned`.
fn generated_vm_plan(dir: &Path) -> (homelab_probe::model::snapshot::Snapshot, homelab_probe::Plan, PathBuf) {
    let fixtures = repo().join("crates/homelab-probe/tests/fixtures");
    let snapshot = homelab_probe::model::snapshot::Snapshot::load(&fixtures.join("snapshots/testvm.json")).unwrap();
    let plan = homelab_probe::plan::plan(&snapshot).unwrap();
    let planned = dir.join("planned");
    std::fs::create_dir(&planned).unwrap();
    for (name, text) in plan.files() {
        std::fs::write(planned.join(name), text).unwrap();
    }
    (snapshot, plan, planned)
}

#[test]
fn nix_module_vm_test_nodes_evaluate_with_the_module_system() {
    let lib = nixos_eval::nixpkgs_lib();
    let dir = tempfile::tempdir().unwrap();
    let (_, plan, planned) = generated_vm_plan(dir.path());
    let tests = vm_nodes(&lib, &planned);
    let mut evaluated = Vec::new();
    for (test, nodes) in tests.as_object().unwrap() {
        for (node, v) in nodes.as_object().unwrap() {
            let mut configs = vec![(format!("{test}/{node}"), &v["node"])];
            for (s, c) in v["specialisations"].as_object().unwrap() {
                configs.push((format!("{test}/{node}/specialisation/{s}"), c));
            }
            for (name, c) in configs {
                assert_eq!(c["failedAssertions"], serde_json::json!([]), "{name}: {c}");
                evaluated.push(name);
            }
        }
    }
    assert!(evaluated.len() >= 9, "{evaluated:?}");
    // What each test's script relies on, as the module system decides it.
    let node = |t: &str, n: &str| &tests[t][n]["node"];
    assert_eq!(node("render-node", "nixosdefaults")["groups"]["render"], 303);
    assert_eq!(node("render-node", "render110")["groups"]["render"], 110, "lib.mkForce 110 wins");
    assert_eq!(node("render-node", "mismatch")["groups"]["render"], 303);
    let mismatch = node("render-node", "mismatch")["warnings"].as_array().unwrap();
    assert!(
        mismatch.iter().any(|w| w.as_str().unwrap().contains("users.groups.render.gid = lib.mkForce 110;")),
        "{mismatch:?}"
    );
    assert_eq!(node("post-switch", "machine")["users"]["palav"]["extraGroups"], serde_json::json!(["render", "video"]));
    assert_eq!(
        tests["post-switch"]["machine"]["specialisations"]["lost-render"]["users"]["palav"]["extraGroups"],
        serde_json::json!(["video"]),
        "the specialisation drops render (lib.mkForce)"
    );
    // The generated module, as the VM boots it: the plan's ids, its data disk moved to
    // virtualisation.fileSystems, the check reading the plan's file.
    let generated = node("generated", "machine");
    assert_eq!(generated["groups"]["render"], 110);
    assert_eq!(generated["users"]["palav"]["uid"], 1000);
    let fs = &plan.expectations.mounts[0];
    assert_eq!(
        generated["virtualisationFileSystems"][&fs.path]["device"],
        format!("/dev/disk/by-uuid/{}", fs.uuid.as_deref().unwrap())
    );
    assert_eq!(
        generated["fileSystems"][&fs.path]["device"],
        generated["virtualisationFileSystems"][&fs.path]["device"]
    );
    // The mounts test's settings render to the file its rehearsal on a real kernel uses
    // (vm-fixtures/scenarios/nixos_mounts.py); without the disk in the specialisation, the
    // module warns that nothing mounts it.
    let mounts = node("mounts", "machine");
    let toml_value: toml::Value = serde_json::from_value(mounts["expectations"].clone()).unwrap();
    let rendered =
        Expectations::from_toml_str(&toml::to_string(&toml_value).unwrap(), Some(Path::new("rendered.toml"))).unwrap();
    let rehearsal = Expectations::load(&repo().join("nixos-tests/lib/mounts.toml")).unwrap();
    assert_eq!(rendered, rehearsal);
    assert_eq!((rendered.mounts.len(), rendered.drift.len()), (1, 1));
    assert_eq!(mounts["warnings"], serde_json::json!([]), "the disk is declared");
    let without = &tests["mounts"]["machine"]["specialisations"]["without-disk"];
    assert!(without["warnings"][0].as_str().unwrap().contains("does not declare it in fileSystems"), "{without}");
}

#[test]
fn nix_module_evaluates_with_each_typed_section() {
    let lib = nixos_eval::nixpkgs_lib();
    const CHECK: &str = "homelab-probe-check.service";
    // (section, its `settings` definition, the rest of a configuration that agrees with it (the
    // continuous-verification options are set there), a unit and a line it must have)
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        ("defaults", "{ }", "{ }", CHECK, "ExecStartPre=-"),
        (
            "groups",
            "{ groups = { render = 110; video = 44; }; }",
            "{ lib, ... }: { users.groups.render.gid = lib.mkForce 110; users.groups.video.gid = lib.mkForce 44; }",
            CHECK,
            "Type=oneshot",
        ),
        (
            "users",
            r#"{ users.palav = { uid = 1000; groups = [ "render" "video" ]; }; }"#,
            r#"{ users.users.palav = { isNormalUser = true; uid = 1000; extraGroups = [ "render" "video" ]; }; }"#,
            CHECK,
            "Type=oneshot",
        ),
        (
            "render",
            r#"{ render = { mode = "0666"; required = true; access = [ { uid = 1000; gid = 110; } ]; }; }"#,
            "{ }",
            CHECK,
            "Type=oneshot",
        ),
        (
            "mounts",
            r#"{ mounts = [ { path = "/mnt/PlexStorage"; uuid = "7c1f"; fstype = "ext4"; } ]; }"#,
            r#"{ fileSystems."/mnt/PlexStorage" = { device = "/dev/disk/by-uuid/7c1f"; fsType = "ext4"; }; }"#,
            CHECK,
            "WantsMountsFor=/mnt/PlexStorage",
        ),
        (
            "gpu",
            r#"{ gpu = { nvenc = [ "h264" ]; vaapi.encode = [ "h264" ]; nvidia_containers = true; }; }"#,
            "{ }",
            CHECK,
            "Type=oneshot",
        ),
        (
            "drift",
            r#"{ drift = [ { root = "/mnt/PlexStorage/media"; uid = 1000; gid = 110; } ]; }"#,
            "{ }",
            CHECK,
            "WantsMountsFor=/mnt/PlexStorage/media",
        ),
        (
            "serve",
            r#"{ drift = [ { root = "/mnt/PlexStorage/media"; uid = 1000; gid = 110; } ]; }"#,
            r#"{ services.homelab-probe.serve = { enable = true; listenAddress = "0.0.0.0"; openFirewall = true; extraArgs = [ "--cache" "1m" ]; }; }"#,
            "homelab-probe-serve.service",
            "WantsMountsFor=/mnt/PlexStorage/media",
        ),
        (
            "interval",
            "{ }",
            r#"{ services.homelab-probe.interval = "1h"; }"#,
            "homelab-probe-check.timer",
            "OnUnitActiveSec=1h",
        ),
        (
            "textfile",
            "{ }",
            "{ services.homelab-probe.prometheus.textfile.enable = true; services.prometheus.exporters.node.enable = true; }",
            "prometheus-node-exporter.service",
            "  --web.listen-address 0.0.0.0:9100 --collector.textfile.directory=/var/lib/prometheus-node-exporter-text-files",
        ),
    ];
    let list: Vec<String> =
        cases.iter().map(|(_, def, rest, _, _)| format!("{{ settings = {def}; modules = [ ({rest}) ]; }}")).collect();
    let got = nix_eval(&format!(
        "map (c: import ./nix/tests/unit.nix {{ nixpkgsLib = {}; inherit (c) settings modules; }}) [ {} ]",
        nixos_eval::nix_path(&lib),
        list.join(" ")
    ));
    for ((section, def, _, unit, line), v) in cases.iter().zip(got.as_array().unwrap()) {
        assert_eq!(v["typeError"], false, "{section}: {def}");
        assert_eq!(
            (&v["failedAssertions"], &v["warnings"]),
            (&serde_json::json!([]), &serde_json::json!([])),
            "{section}: {v}"
        );
        // /etc/homelab-probe.toml: what the library reads back, the same as the file written by hand.
        let toml_value: toml::Value = serde_json::from_value(v["expectations"].clone()).unwrap();
        let rendered = Expectations::from_toml_str(&toml::to_string(&toml_value).unwrap(), Some(Path::new("x.toml")));
        assert!(rendered.is_ok(), "{section}: {rendered:?}");
        assert!(v["etcSource"].as_str().unwrap().ends_with("-homelab-probe.toml"), "{v}");
        let check = v["unitText"].as_str().unwrap();
        assert_eq!(v["unitTexts"][CHECK], check);
        assert!(check.contains(&format!("ExecStart={}", "/nix/store/")), "{check}");
        assert!(v["script"].as_str().unwrap().contains("/bin/homelab-verify check --expect /etc/homelab-probe.toml"));
        let text = v["unitTexts"][unit].as_str().unwrap_or_else(|| panic!("{section}: no {unit} in {v}"));
        assert!(text.lines().any(|l| l.starts_with(line)), "{section}: no {line} in {unit}:\n{text}");
    }
    let defaults = &got[0];
    let toml_value: toml::Value = serde_json::from_value(defaults["expectations"].clone()).unwrap();
    let e = Expectations::from_toml_str(&toml::to_string(&toml_value).unwrap(), Some(Path::new("x.toml"))).unwrap();
    assert_eq!(e, Expectations::builtin(), "the defaults are the built-in expectations");
    // Only the sections that add units add them.
    let units = |v: &Value| v["unitTexts"].as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(units(defaults), [CHECK]);
    let serve = &got[7];
    assert_eq!(serve["firewallPorts"], serde_json::json!([9723]));
    assert!(serve["serve"]["serviceConfig"]["ExecStart"].as_str().unwrap().ends_with(" --allow-remote --cache 1m"));
    assert_eq!(units(&got[8]), [CHECK, "homelab-probe-check.timer"]);
    assert_eq!(
        got[9]["tmpfiles"],
        serde_json::json!(["d /var/lib/prometheus-node-exporter-text-files 0755 root root - -"])
    );
}

#[test]
fn nixos_stand_in_ids_and_groups_are_the_crates() {
    // The stand-in's ids.nix and always-present groups are the tables the planner decides
    // with (crates/homelab-probe/src/nixos): one set of facts about NixOS.
    let lib = nixos_eval::nixpkgs_lib();
    let v = nix_eval(&format!(
        "let s = {}; c = (s.eval [ ]).config; in {{ inherit (c.ids) gids uids; groups = builtins.mapAttrs (_: g: g.gid) c.users.groups; users = builtins.mapAttrs (_: u: u.uid) c.users.users; }}",
        nixos_eval::stand_in(&lib)
    ));
    let table = |rows: &[(&str, u32)]| -> Value {
        Value::Object(rows.iter().map(|(n, id)| ((*n).to_owned(), Value::from(*id))).collect())
    };
    assert_eq!(v["gids"], table(homelab_probe::nixos::STATIC_GIDS));
    assert_eq!(v["uids"], table(homelab_probe::nixos::STATIC_UIDS));
    let present: Vec<(&str, u32)> = homelab_probe::nixos::ALWAYS_PRESENT_GROUPS
        .iter()
        .map(|n| (*n, homelab_probe::nixos::static_gid(n).unwrap()))
        .collect();
    assert_eq!(v["groups"], table(&present), "every NixOS system's groups");
    let users: Vec<(&str, u32)> = homelab_probe::nixos::ALWAYS_PRESENT_USERS
        .iter()
        .map(|n| (*n, homelab_probe::nixos::static_uid(n).unwrap()))
        .collect();
    assert_eq!(v["users"], table(&users));
}

#[test]
fn nix_module_generated_vm_test_boots_what_plan_generated() {
    // nixos-tests/generated.nix imports the module `plan` writes for the committed snapshot,
    // with its fileSystems moved to virtualisation.fileSystems (qemu-vm.nix overrides
    // `fileSystems` with those in test VMs). Here the real plan of that snapshot is written to
    // a directory that stands for the build's output, and the test's wrapper is applied to the
    // generated module: the moved entries must be exactly the generated ones and nothing else
    // may change; the check must wait for the plan's mount paths and read the plan's file; and
    // the script must format the disk with the plan's UUID.
    let fixtures = repo().join("crates/homelab-probe/tests/fixtures");
    let snapshot = homelab_probe::model::snapshot::Snapshot::load(&fixtures.join("snapshots/testvm.json")).unwrap();
    let plan = homelab_probe::plan::plan(&snapshot).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let planned = dir.path().join("planned");
    std::fs::create_dir(&planned).unwrap();
    for (name, text) in plan.files() {
        std::fs::write(planned.join(name), text).unwrap();
    }
    let planned_str = planned.to_str().unwrap();
    let v = nix_eval(&format!(
        r#"let
          stub = import ./nix/tests/stub-lib.nix;
          planned = {planned};
          homelab = {{ helpers = ""; package = "/PKG"; fixtures = toString ./crates/homelab-probe/tests/fixtures; }};
          hostPkgs = import ./nix/tests/stub-host-pkgs.nix planned;
          t = import ./nixos-tests/generated.nix {{ lib = stub; inherit homelab hostPkgs; }};
          node = t.nodes.machine;
          args = {{
            config = {{ users.groups = {{ }}; virtualisation.docker.package = "/DOCKER"; }};
            lib = stub // {{ mkForce = v: {{ _force = v; }}; optional = c: x: if c then [ x ] else [ ]; }};
            pkgs = {{ }};
          }};
          moved = (builtins.head node.imports) args;
          generated = import (planned + "/hardware-parity.nix") args;
        in {{
          imports = builtins.length node.imports;
          movedFileSystems = moved.virtualisation.fileSystems;
          stillHasFileSystems = moved ? fileSystems;
          restUnchanged = builtins.removeAttrs moved [ "virtualisation" ] == builtins.removeAttrs generated [ "fileSystems" "virtualisation" ];
          virtualisationUnchanged = builtins.removeAttrs moved.virtualisation [ "fileSystems" ] == generated.virtualisation;
          generatedHasDocker = generated.virtualisation ? docker;
          inherit (node.services.homelab-probe) expectationsFile afterMounts;
          script = t.testScript;
        }}"#,
        planned = nix_string(planned_str),
    ));
    assert_eq!(v["imports"], 1);
    assert_eq!(v["stillHasFileSystems"], false, "{v}");
    assert_eq!(v["restUnchanged"], true, "{v}");
    assert_eq!(v["virtualisationUnchanged"], true, "{v}");
    assert_eq!(v["generatedHasDocker"], true, "{v}");

    let decisions = homelab_probe::plan::decide::decide(&snapshot);
    let want: serde_json::Map<String, Value> = decisions
        .filesystems
        .iter()
        .map(|f| {
            (
                f.mount_point.clone(),
                serde_json::json!({ "device": f.device, "fsType": f.fs_type, "options": f.options }),
            )
        })
        .collect();
    assert_eq!(v["movedFileSystems"], Value::Object(want), "{v}");
    assert_eq!(decisions.filesystems.len(), 1, "the VM has one data disk: {:?}", decisions.filesystems);

    assert_eq!(v["expectationsFile"], format!("{planned_str}/homelab-probe.toml"));
    let mut wait_for: Vec<String> = plan.expectations.mounts.iter().map(|m| m.path.clone()).collect();
    wait_for.extend(plan.expectations.drift.iter().map(|d| d.root.clone()));
    assert_eq!(v["afterMounts"], serde_json::json!(wait_for));

    let script = v["script"].as_str().unwrap();
    let mount = &plan.expectations.mounts[0];
    let uuid = mount.uuid.as_deref().unwrap();
    assert!(script.contains(&format!("mkfs.ext4 -q -F -U {uuid} /dev/vdb")), "{script}");
    assert!(script.contains("systemctl start mnt-PlexStorage.mount"), "{script}");
    let escaped = Command::new("systemd-escape").args(["-p", "--suffix=mount", &mount.path]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&escaped.stdout).trim(), "mnt-PlexStorage.mount");
    // What the script asserts is what the plan expects: render 110, the stack's credentials.
    assert_eq!(plan.expectations.groups.get("render"), Some(&110));
    let render = plan.expectations.render.as_ref().unwrap();
    assert_eq!((render.access[0].uid, render.access[0].gid), (1000, 110));
    assert!(plan.expectations.gpu.vaapi.is_none(), "a virtio GPU: nothing to require");
}
