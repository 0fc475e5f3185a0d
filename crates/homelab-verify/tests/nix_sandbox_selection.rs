//! The Nix build's test selection has ONE source, nix/sandbox-tests.txt: nix/package.nix
//! (through nix/sandbox-tests.nix, evaluated here with the real Nix evaluator and recorders in
//! place of nixpkgs and crane) and scripts/nix-sandbox-tests (the rehearsal CI runs) must
//! derive the same cargo arguments from it, and both must follow an edit of it.
//!
//! Needs nix-instantiate and git (`scripts/setup-debian --test`). Not run in the Nix build
//! sandbox, which has neither, nor nix/ and scripts/ (nix/sandbox-tests.txt excludes it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?} ({e}): run scripts/setup-debian --test"))
}

/// `nix-instantiate --eval --strict --json` of `expr` in `dir`.
fn nix_eval(dir: &Path, expr: &str) -> Result<serde_json::Value, String> {
    homelab_test_support::nix::eval_in(dir, expr)
}

/// What nix/package.nix gives crane, called as flake.nix calls it, with recorders for crane
/// and the packages: `cargoTestExtraArgs` of the package and of `checks.tests`, and the
/// package's `nativeCheckInputs` (each recorded package is its attribute name).
const PACKAGE_ARGS: &str = r#"
  let
    lib = {
      fileset = { toSource = { root, fileset }: "src"; unions = l: l; };
      importTOML = p: builtins.fromTOML (builtins.readFile p);
      makeLibraryPath = l: "/LIBS";
      licenses.mit = "mit";
      platforms.linux = [ ];
    };
    craneLib = {
      buildDepsOnly = args: "deps";
      buildPackage = args: args;
      cargoClippy = args: args;
      cargoFmt = args: args;
      cargoTest = args: args;
    };
    pkg = import ./nix/package.nix {
      inherit lib craneLib;
      pkg-config = "pkg-config"; getent = "getent"; util-linux = "util-linux"; libva = "libva"; udev = "udev";
    };
  in {
    package = pkg.cargoTestExtraArgs;
    checks = pkg.passthru.checks.tests.cargoTestExtraArgs;
    checkInputs = pkg.nativeCheckInputs;
  }
"#;

/// `scripts/nix-sandbox-tests ARG` in `dir`: (exit code, stdout, stderr).
fn script(dir: &Path, arg: &str) -> (i32, String, String) {
    let out = run(Command::new("bash").current_dir(dir).arg("scripts/nix-sandbox-tests").arg(arg));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn package_nix_and_the_rehearsal_run_the_same_selection() {
    let nix = nix_eval(&repo(), PACKAGE_ARGS).unwrap_or_else(|e| panic!("{e}"));
    let (code, printed, stderr) = script(&repo(), "--print-cargo-args");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(nix["package"], printed, "nix/package.nix and scripts/nix-sandbox-tests disagree");
    assert_eq!(nix["checks"], nix["package"], "checks.tests runs another selection than the package");
    assert!(printed.starts_with("--workspace --lib --bins --test "), "{printed}");
    // The check inputs are the check-input lines, and their commands are what the rehearsal
    // puts on PATH (one line each here: `check-input ATTR CMDS REASON`).
    let list = std::fs::read_to_string(repo().join("nix/sandbox-tests.txt")).unwrap();
    let attrs: Vec<&str> =
        list.lines().filter_map(|l| l.trim().strip_prefix("check-input")?.split_whitespace().next()).collect();
    assert_eq!(nix["checkInputs"], serde_json::json!(attrs));
    assert!(attrs.contains(&"getent"), "{attrs:?}");
}

/// A copy of the parts of the repository both readers need, with its own test files and list.
fn scratch_tree(list: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let r = repo();
    for d in ["nix", "scripts", "crates/a/tests", "crates/b/tests", "benches/treegen/tests", "crates/b/src"] {
        std::fs::create_dir_all(t.path().join(d)).unwrap();
    }
    for f in ["nix/package.nix", "nix/sandbox-tests.nix", "scripts/nix-sandbox-tests", "Cargo.toml"] {
        std::fs::copy(r.join(f), t.path().join(f)).unwrap();
    }
    for f in
        ["crates/a/tests/one.rs", "crates/a/tests/two.rs", "crates/b/tests/three.rs", "benches/treegen/tests/four.rs"]
    {
        std::fs::write(t.path().join(f), "").unwrap();
    }
    // Not integration test targets: a module directory's file and a non-Rust file.
    std::fs::create_dir_all(t.path().join("crates/a/tests/common")).unwrap();
    std::fs::write(t.path().join("crates/a/tests/common/mod.rs"), "").unwrap();
    std::fs::write(t.path().join("crates/a/tests/notes.txt"), "").unwrap();
    std::fs::write(t.path().join("nix/sandbox-tests.txt"), list).unwrap();
    // A flake sees (and the rehearsal stages) only the files git tracks.
    let git = |args: &[&str]| {
        let out = run(Command::new("git").current_dir(t.path()).args(args));
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    t
}

#[test]
fn both_follow_an_edit_of_the_list() {
    let t = scratch_tree(
        "# comment\n\n  exclude-test two   needs root\nskip some_test needs a tool\n\
         skip other_ also\ncheck-input getent getent NSS\n",
    );
    let want = "--workspace --lib --bins --test four --test one --test three -- --skip some_test --skip other_";
    let nix = nix_eval(t.path(), PACKAGE_ARGS).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(nix["package"], want);
    assert_eq!(nix["checkInputs"], serde_json::json!(["getent"]));
    let (code, printed, stderr) = script(t.path(), "--print-cargo-args");
    assert_eq!((code, printed.as_str()), (0, want), "{stderr}");
}

#[test]
fn both_reject_a_bad_list() {
    for (list, nix_says, script_says) in [
        (
            "exclude-test two\n",
            "cannot read `exclude-test two`",
            "nix/sandbox-tests.txt:1: cannot read `exclude-test two`",
        ),
        (
            "# x\nexclude-test nosuch gone\n",
            "excludes tests that do not exist: nosuch",
            "excludes tests that do not exist: nosuch",
        ),
        ("check-input nosuchpkg nosuch needs it\n", "check-input nosuchpkg is not an argument", ""),
    ] {
        let t = scratch_tree(list);
        let err = nix_eval(t.path(), PACKAGE_ARGS).expect_err(list);
        assert!(err.contains(nix_says), "{list}: {err}");
        if !script_says.is_empty() {
            let (code, _, stderr) = script(t.path(), "--print-cargo-args");
            assert_eq!(code, 2, "{list}");
            assert!(stderr.contains(script_says), "{list}: {stderr}");
        }
    }
}
