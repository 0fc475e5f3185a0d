//! Evaluation with the real NixOS module system: nixpkgs' `lib` at the pinned commit
//! (nix/tests/nixpkgs-lib.rev) and the stand-in of nix/tests/nixos, through `nix-instantiate`
//! (Debian's nix-bin). The lib is found through `HOMELAB_NIXPKGS_LIB`, else
//! `../shared/vendor/nixpkgs-lib` beside the repository (docs/testing.md). Without it a test
//! fails, saying how to get it (`scripts/setup-debian --test` fetches it): a test that cannot
//! run never passes. Shared by the test binaries that evaluate
//! modules (crates/homelab-verify's through `#[path]`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The directory holding nixpkgs' `lib/`; the test fails when it is missing.
pub fn nixpkgs_lib() -> PathBuf {
    homelab_test_support::nix::nixpkgs_lib()
}

/// A string as a Nix expression: a JSON string read back with `builtins.fromJSON` (`$` escaped,
/// so no `${` starts an interpolation).
pub fn nix_string(s: &str) -> String {
    let json = serde_json::to_string(&serde_json::to_string(s).unwrap()).unwrap().replace('$', "\\$");
    format!("(builtins.fromJSON {json})")
}

/// A path as a Nix path expression.
pub fn nix_path(p: &Path) -> String {
    format!("(/. + {})", nix_string(p.to_str().unwrap()))
}

/// `import ./nix/tests/nixos { ... }` for `lib`, as a Nix expression (evaluated in the repo).
pub fn stand_in(lib: &Path) -> String {
    format!("(import ./nix/tests/nixos {{ nixpkgsLib = {}; }})", nix_path(lib))
}

/// `nix-instantiate --eval --strict --json --expr expr` in the repository root (`./` in `expr`
/// is the repository), or the evaluator's message.
pub fn try_eval(expr: &str) -> Result<Value, String> {
    let out = Command::new("nix-instantiate")
        .current_dir(repo())
        // No daemon or build users are needed to evaluate.
        .args(["--option", "build-users-group", "", "--eval", "--strict", "--json", "--expr", expr])
        .output()
        .expect("nix-instantiate (Debian package nix-bin) must be installed: run scripts/setup-debian --test");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// [`try_eval`], failing the test with the evaluator's message.
pub fn eval(expr: &str) -> Value {
    try_eval(expr).unwrap_or_else(|e| panic!("nix-instantiate failed:\n{e}\n--- expression ---\n{expr}"))
}
