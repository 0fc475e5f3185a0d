//! The real Nix parser and evaluator, `nix-instantiate` (Debian's nix-bin, installed by
//! `scripts/setup-debian --test`), as the oracle for the Nix this project writes: remedies,
//! generated modules, rendered values, and its own `nix/` files. Not in the Nix build sandbox:
//! the tests that use it are listed in `nix/sandbox-tests.txt`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// `nix-instantiate` set to need no daemon and no build users (evaluating needs neither).
pub fn instantiate() -> Command {
    let mut c = Command::new("nix-instantiate");
    c.args(["--option", "build-users-group", ""]);
    c
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| {
        panic!("cannot run nix-instantiate ({e}): install it (Debian package nix-bin) with scripts/setup-debian --test")
    })
}

fn json(out: Output) -> Result<Value, String> {
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("nix-instantiate printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))))
}

/// `nix-instantiate --eval --strict --json --expr EXPR`, run in `dir` (relative paths in `expr`
/// are relative to it): the value, or the evaluator's message.
pub fn eval_in(dir: &Path, expr: &str) -> Result<Value, String> {
    json(run(instantiate().current_dir(dir).args(["--eval", "--strict", "--json", "--expr", expr])))
}

/// [`eval_in`] with `expr` written to a file in `dir` first, for expressions longer than one
/// command-line argument may be.
pub fn eval_file_in(dir: &Path, expr: &str) -> Result<Value, String> {
    let mut f = tempfile::Builder::new().suffix(".nix").tempfile_in(dir).unwrap_or_else(|e| panic!("{e}"));
    f.write_all(expr.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    json(run(instantiate().args(["--eval", "--strict", "--json"]).arg(f.path())))
}

/// `nix-instantiate --parse` on `text`: the parser's message when it is not valid Nix.
pub fn parse(text: &str) -> Result<(), String> {
    let mut f = tempfile::Builder::new().suffix(".nix").tempfile().unwrap_or_else(|e| panic!("{e}"));
    f.write_all(text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let out = run(instantiate().arg("--parse").arg(f.path()));
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
}

/// The environment variable naming the directory that holds nixpkgs' `lib/` (docs/testing.md).
pub const NIXPKGS_LIB_VAR: &str = "HOMELAB_NIXPKGS_LIB";

/// The pinned nixpkgs lib the module-system tests evaluate with: `$HOMELAB_NIXPKGS_LIB`, else
/// `../shared/vendor/nixpkgs-lib` beside the repository. A test that needs it fails when it is
/// missing, saying how to get it: a test that cannot run never passes.
pub fn nixpkgs_lib() -> PathBuf {
    let dir = match std::env::var_os(NIXPKGS_LIB_VAR) {
        Some(d) => PathBuf::from(d),
        None => crate::repo().join("../shared/vendor/nixpkgs-lib"),
    };
    if dir.join("lib/default.nix").is_file() {
        return dir.canonicalize().unwrap_or(dir);
    }
    panic!(
        "{} has no lib/default.nix: set {NIXPKGS_LIB_VAR} to a nixpkgs lib checkout, or run scripts/fetch-nixpkgs-lib \
         (scripts/setup-debian --test does)",
        dir.display()
    );
}
