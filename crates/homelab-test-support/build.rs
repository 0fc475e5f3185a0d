//! Builds every fixture sysroot of `crates/homelab-probe/tests/fixtures` from its layers (see
//! `src/materialize.rs`) into `OUT_DIR/sysroots-<digest>`, once per content of the fixtures, and
//! tells the library where (`HOMELAB_FIXTURE_SYSROOTS`). Tests then read whole sysroots without
//! writing anything into the checkout, which may be read-only (the Nix build sandbox).

#[path = "src/materialize.rs"]
mod materialize;

use std::path::PathBuf;

fn main() {
    if let Err(e) = run() {
        eprintln!("fixture sysroots: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR is not set")?);
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    let fixtures = manifest.join("../homelab-probe/tests/fixtures");
    println!("cargo::rerun-if-changed={}", fixtures.display());
    println!("cargo::rerun-if-changed=src/materialize.rs");

    let dir = out.join(format!("sysroots-{:016x}", materialize::digest(&fixtures)?));
    if !dir.is_dir() {
        // Built in a fresh directory and renamed: a half-built tree never carries the final name.
        let fresh = tempfile::Builder::new().prefix(".sysroots-").tempdir_in(&out)?;
        materialize::build_all(&fixtures, fresh.path())?;
        std::fs::rename(fresh.keep(), &dir)?;
    }
    println!("cargo::rustc-env=HOMELAB_FIXTURE_SYSROOTS={}", dir.display());
    Ok(())
}
