//! The fuzz properties on the stable toolchain: every seed (fixtures and docs examples) and
//! every kept crash (`tests/fuzz-regressions/<target>/`) through its target's property, so that
//! `cargo test` checks the properties and keeps each fixed crash fixed without nightly or
//! cargo-fuzz. A failure names the target and the file.

use std::collections::BTreeSet;
use std::path::Path;

use homelab_fuzz_props::seeds::{repo, seeds};
use homelab_fuzz_props::{TARGETS, target};

/// Runs `data` through the property of `target`; a panic becomes the error naming `what`.
fn replay(target_name: &str, what: &str, data: &[u8]) -> Result<(), String> {
    let t = target(target_name).ok_or_else(|| format!("{what}: no target {target_name}"))?;
    std::panic::catch_unwind(|| (t.run)(data)).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        format!("{target_name} {what}: {msg}")
    })
}

#[test]
fn every_seed_holds_its_property() {
    let all = seeds();
    let failures: Vec<String> = all.iter().filter_map(|s| replay(s.target, &s.name, &s.data).err()).collect();
    assert!(failures.is_empty(), "{} of {} seeds fail:\n{}", failures.len(), all.len(), failures.join("\n"));
}

#[test]
fn every_target_has_seeds() {
    let all = seeds();
    for t in TARGETS {
        assert!(all.iter().any(|s| s.target == t.name), "target {} has no seed", t.name);
    }
}

#[test]
fn every_kept_crash_stays_fixed() {
    let dir = repo().join("tests/fuzz-regressions");
    let mut failures = Vec::new();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let entry = entry.expect("a directory entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.path().is_dir() {
            continue;
        }
        assert!(target(&name).is_some(), "{}: no fuzz target of that name", entry.path().display());
        for f in std::fs::read_dir(entry.path()).expect("read the target's directory") {
            let f = f.expect("a directory entry").path();
            let data = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            n += 1;
            failures.extend(replay(&name, &f.display().to_string(), &data).err());
        }
    }
    assert!(failures.is_empty(), "{} of {n} kept crashes fail again:\n{}", failures.len(), failures.join("\n"));
}

/// The targets of fuzz/Cargo.toml (its `[[bin]]` names) are the targets here.
#[test]
fn the_fuzz_crate_builds_every_target() {
    let manifest = std::fs::read_to_string(repo().join("fuzz/Cargo.toml")).expect("read fuzz/Cargo.toml");
    let parsed: toml::Table = manifest.parse().expect("fuzz/Cargo.toml is TOML");
    let bins: BTreeSet<&str> =
        parsed["bin"].as_array().expect("[[bin]]").iter().map(|b| b["name"].as_str().expect("a bin's name")).collect();
    let ours: BTreeSet<&str> = TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(bins, ours, "fuzz/Cargo.toml's [[bin]]s and homelab_fuzz_props::TARGETS differ");
    for t in TARGETS {
        for d in t.dicts {
            let p = repo().join("fuzz/dicts").join(format!("{d}.dict"));
            assert!(Path::new(&p).is_file(), "target {}: no dictionary {}", t.name, p.display());
        }
    }
}
