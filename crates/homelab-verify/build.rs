//! Puts the git commit and its date into the binary, for `homelab-verify --version`
//! (`homelab-verify 0.1.0 (20bfb7599a45 2026-11-25)`): a bug report then names the exact source.
//!
//! From `git` when the source is a checkout; else from HOMELAB_VERIFY_GIT_COMMIT and
//! HOMELAB_VERIFY_GIT_DATE (the Nix build has no .git: the flake passes its own revision);
//! else "unknown". A build must never fail for want of git.

use std::path::{Path, PathBuf};
use std::process::Command;

const COMMIT_ENV: &str = "HOMELAB_VERIFY_GIT_COMMIT";
const DATE_ENV: &str = "HOMELAB_VERIFY_GIT_DATE";
/// Hex digits of the commit shown (the Nix build truncates its revision the same way).
const COMMIT_LEN: usize = 12;

fn main() {
    println!("cargo:rerun-if-env-changed={COMMIT_ENV}");
    println!("cargo:rerun-if-env-changed={DATE_ENV}");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());

    let from_env = |k: &str| std::env::var(k).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let (commit, date) = match (from_env(COMMIT_ENV), from_env(DATE_ENV)) {
        (Some(c), d) => (Some(c), d),
        _ => match from_git(&dir) {
            Some((c, d)) => (Some(c), Some(d)),
            None => (None, None),
        },
    };
    let commit = commit.map(|c| c.chars().take(COMMIT_LEN).collect::<String>());
    let described = match (&commit, &date) {
        (Some(c), Some(d)) => format!("{c} {d}"),
        (Some(c), None) => c.clone(),
        _ => "commit unknown".to_owned(),
    };
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    println!("cargo:rustc-env=HOMELAB_VERIFY_VERSION={version} ({described})");
    println!("cargo:rustc-env=HOMELAB_VERIFY_COMMIT_DATE={}", date.unwrap_or_default());
    println!("cargo:rustc-env=HOMELAB_VERIFY_TARGET={}", std::env::var("TARGET").unwrap_or_default());
    // The cargo features this binary was built with (the portable release build has no udev).
    let mut features: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| k.strip_prefix("CARGO_FEATURE_").map(|f| f.to_lowercase().replace('_', "-")))
        .filter(|f| f != "default")
        .collect();
    features.sort();
    println!("cargo:rustc-env=HOMELAB_VERIFY_FEATURES={}", features.join(" "));
}

/// (full commit hash, commit date YYYY-MM-DD in UTC) of HEAD, and tells cargo to run this again when
/// HEAD moves (a new commit, another branch checked out).
fn from_git(dir: &Path) -> Option<(String, String)> {
    let git = |args: &[&str]| -> Option<String> {
        // The date in UTC, as the flake's lastModifiedDate is: the same commit, the same date.
        let out = Command::new("git").current_dir(dir).env("TZ", "UTC").args(args).output().ok()?;
        let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
        (out.status.success() && !s.is_empty()).then_some(s)
    };
    let line = git(&["log", "-1", "--date=format-local:%Y-%m-%d", "--format=%H %cd"])?;
    let (hash, date) = line.split_once(' ')?;
    // HEAD itself, the branch it points to (a new commit changes only that) and packed-refs
    // (where the branch is when it is not a file of its own).
    let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"])?];
    if let Some(branch) = git(&["rev-parse", "--symbolic-full-name", "HEAD"]).filter(|b| b.starts_with("refs/")) {
        watched.extend(git(&["rev-parse", "--git-path", &branch]));
    }
    watched.extend(git(&["rev-parse", "--git-path", "packed-refs"]));
    // Only files that exist: cargo runs this again on every build for a missing one.
    for p in watched.iter().map(|p| dir.join(p)).filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    Some((hash.to_owned(), date.to_owned()))
}
