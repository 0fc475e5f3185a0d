//! Every fixture sysroot against every expectations file, both found in their directories (a
//! new fixture or expectations file is in without editing this test): the built-in defaults,
//! each `fixtures/expect/*.toml`, and the expectations `plan` writes for the committed snapshot
//! `fixtures/snapshots/testvm.json`. For each pair, `check::run` must not panic, and the
//! report keeps its promises: every failure carries a remedy, every skip says why, and no
//! remedy names an option NixOS has removed.

use std::panic::{AssertUnwindSafe, catch_unwind};

use homelab_probe::model::snapshot::Snapshot;
use homelab_probe::{Expectations, Finding, Host, Status, check};
use homelab_test_support::{expectations_files, fixture, sysroot, sysroot_names};

/// A skip's message says why in more words than this.
const MIN_REASON: usize = 20;

/// Options NixOS has removed (`vaapiIntel`, `hardware.opengl` before 24.11): a remedy must not
/// tell anyone to set them.
const REMOVED_OPTIONS: [&str; 2] = ["vaapiIntel", "hardware.opengl"];

/// The expectations every sysroot is checked against, with a name for messages.
fn expectations() -> Vec<(String, Expectations)> {
    let mut all = vec![("built-in defaults".to_owned(), Expectations::builtin())];
    for file in expectations_files() {
        let e = Expectations::load(&file).unwrap_or_else(|e| panic!("{e}"));
        all.push((file.file_name().unwrap().to_string_lossy().into_owned(), e));
    }
    let snapshot = Snapshot::load(&fixture("snapshots/testvm.json")).unwrap_or_else(|e| panic!("{e}"));
    let plan = homelab_probe::plan::plan(&snapshot).unwrap_or_else(|e| panic!("{e}"));
    all.push(("the plan of snapshots/testvm.json".to_owned(), plan.expectations));
    all
}

/// What is wrong with `f` by the report's promises, if anything.
fn broken_promise(f: &Finding) -> Option<&'static str> {
    // `Finding::fail` takes its remedy, so this holds by construction; the walk still checks
    // what the report says, in case a finding's status is changed after it was built.
    if f.status == Status::Fail && f.remedy.is_none() {
        return Some("a failure without a remedy");
    }
    if f.status == Status::Skip && f.message.len() <= MIN_REASON {
        return Some("a skip that does not say why");
    }
    match &f.remedy {
        Some(r) if r.text.trim().is_empty() => Some("an empty remedy"),
        Some(r) if REMOVED_OPTIONS.iter().any(|o| r.text.contains(o)) => Some("a remedy with an option NixOS removed"),
        _ => None,
    }
}

#[test]
fn every_sysroot_against_every_expectations_file_keeps_the_reports_promises() {
    let roots = sysroot_names();
    let sets = expectations();
    // The directories are really walked: the fixtures the old hand-kept lists left out are here.
    for must in ["migration/oldhost", "migration/testvm", "identity-duplicates", "mounts-shadowed", "headless"] {
        assert!(roots.iter().any(|r| r == must), "{must} is not among the sysroots: {roots:?}");
    }
    assert!(sets.iter().any(|(n, _)| n == "plex-drift.toml"), "no drift expectations among {}", sets.len());

    let mut broken = Vec::new();
    let mut gaps_seen = Vec::new();
    let mut probes_seen = std::collections::BTreeSet::new();
    for root in &roots {
        let host = Host::at(sysroot(root)).unwrap_or_else(|e| panic!("{root}: {e}"));
        for (name, exp) in &sets {
            let findings = catch_unwind(AssertUnwindSafe(|| check::run(&host, exp)))
                .unwrap_or_else(|_| panic!("check::run panicked on {root} with {name}"));
            assert!(!findings.is_empty(), "{root} with {name}: no findings");
            for f in &findings {
                probes_seen.insert(f.probe.name());
                if f.status == Status::Fail && f.remedy.is_none() {
                    gaps_seen.push((f.probe, f.check.clone()));
                }
                if let Some(what) = broken_promise(f) {
                    broken.push(format!("{root} with {name}: {what}: {f:#?}"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "{} broken promises:\n{}", broken.len(), broken.join("\n"));
    // Every probe ran somewhere (drift only where an expectations file asks for it).
    for probe in ["identity", "render_node", "gpu", "mounts", "drift"] {
        assert!(probes_seen.contains(probe), "no {probe} finding on any sysroot: {probes_seen:?}");
    }
}
