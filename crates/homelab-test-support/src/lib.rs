//! What the tests of `homelab-probe` and `homelab-verify` share, written once:
//!
//! - the fixtures: [`sysroot`] (a fixture sysroot, built from its layers by this crate's build
//!   script, see [`materialize`]), [`fixture`] (the other fixture files: expectations, Compose
//!   projects, tables), [`sysroot_names`] and [`expectations_files`] (every one of them);
//! - [`verify`]: the `homelab-verify` command of the test build, without colour settings from
//!   the environment;
//! - [`nix`]: the real Nix parser and evaluator (`nix-instantiate`) as an oracle;
//! - [`oracle`]: GNU `find` and a full listing of owners, the drift scanner's oracles;
//! - [`require_root`]: the loud failure of a test that needs root.
//!
//! It depends on neither crate under test, so that it sits below both.

pub mod materialize;
pub mod nix;
pub mod oracle;

/// The command [`verify`] returns, for a test that passes one around: the tests depend on this
/// crate, not on `assert_cmd` itself.
pub use assert_cmd::Command;

use std::path::{Path, PathBuf};

/// The repository's root directory.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `crates/homelab-probe/tests/fixtures`: the sources of the sysroots (layers and overlays) and
/// the fixture files that are not sysroots (`expect/`, `compose/`, `tables/`, `snapshots/`).
pub fn fixtures_dir() -> PathBuf {
    repo().join("crates/homelab-probe/tests/fixtures")
}

/// A fixture file that is not a sysroot, by its path under [`fixtures_dir`]:
/// `fixture("expect/render-110.toml")`, `fixture("compose/linuxserver")`.
pub fn fixture(path: &str) -> PathBuf {
    fixtures_dir().join(path)
}

/// Where the build script built every sysroot (`<name>` below it, `migration/oldhost` included).
pub fn sysroots_dir() -> PathBuf {
    PathBuf::from(env!("HOMELAB_FIXTURE_SYSROOTS"))
}

/// The whole fixture sysroot `name` (`nixos-default`, `migration/oldhost`), built from its
/// layers. Tests only read it: one that changes a sysroot copies it first.
pub fn sysroot(name: &str) -> PathBuf {
    let names = sysroot_names();
    assert!(names.iter().any(|n| n == name), "no fixture sysroot {name:?}; there are: {}", names.join(", "));
    sysroots_dir().join(name)
}

/// The names of every fixture sysroot, sorted (directories of the fixtures with a
/// `fixture.toml`, outside `layers/`).
pub fn sysroot_names() -> Vec<String> {
    materialize::sysroot_names(&fixtures_dir()).unwrap_or_else(|e| panic!("{e}"))
}

/// Every expectations file of the fixtures (`expect/*.toml`), sorted.
pub fn expectations_files() -> Vec<PathBuf> {
    let dir = fixture("expect");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// `homelab-verify` as built for the tests, with the colour settings of the environment
/// removed (`NO_COLOR`, `CLICOLOR`, `CLICOLOR_FORCE`): its output is plain unless a test sets
/// one. Only the tests of the `homelab-verify` package have the binary built for them.
pub fn verify() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::new(verify_path());
    c.env_remove("NO_COLOR").env_remove("CLICOLOR_FORCE").env_remove("CLICOLOR");
    c
}

/// The path of the `homelab-verify` binary [`verify`] runs (for a test that spawns it
/// otherwise, or writes it into a script).
pub fn verify_path() -> PathBuf {
    assert_cmd::cargo::cargo_bin("homelab-verify")
}

/// A fresh, empty directory under `/var/tmp` (a real disk filesystem, not a tmpfs), checked
/// before it is handed out: tests that chown, chmod or delete as root work only below it.
/// Removed when dropped.
pub fn scratch(prefix: &str) -> tempfile::TempDir {
    assert!(!prefix.is_empty() && !prefix.contains('/'), "scratch prefix {prefix:?}");
    let dir =
        tempfile::Builder::new().prefix(prefix).tempdir_in("/var/tmp").expect("a temporary directory in /var/tmp");
    let p = dir.path();
    let md = std::fs::symlink_metadata(p).expect("the new temporary directory");
    assert!(md.is_dir() && !md.file_type().is_symlink(), "{} is not a plain directory", p.display());
    assert!(p.starts_with("/var/tmp/") && p.components().count() == 4, "{} is not directly in /var/tmp", p.display());
    assert!(std::fs::read_dir(p).expect("readable").next().is_none(), "{} is not empty", p.display());
    dir
}

/// Fails the test at once unless it runs as root, saying `why` it needs root.
pub fn require_root(why: &str) {
    assert!(
        rustix::process::geteuid().is_root(),
        "{why}: run the tests as root (CI does), or with `sudo -E cargo test`"
    );
}
