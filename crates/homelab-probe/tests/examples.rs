//! The embedding examples in `examples/` compile as part of the tests and run here against
//! fixture sysroots, so the code an embedder copies is known to work.

use homelab_probe::{Expectations, Status};
use homelab_test_support::sysroot;

#[allow(dead_code)] // main: the examples run through run() here
#[path = "../examples/capture_plan.rs"]
mod capture_plan;
#[allow(dead_code)]
#[path = "../examples/check_inline.rs"]
mod check_inline;

#[test]
fn check_inline_finds_render_at_nixos_default_gid() {
    let report = check_inline::run(&sysroot("nixos-default")).unwrap();
    let f = report.findings.iter().find(|f| f.check == "group_gid").unwrap();
    assert_eq!(f.status, Status::Fail, "{f:?}");
    assert!(f.remedy.as_ref().unwrap().text.contains("users.groups.render.gid = lib.mkForce 110;"), "{f:?}");
    let ok = check_inline::run(&sysroot("nixos-render-110")).unwrap();
    assert!(ok.findings.iter().any(|f| f.check == "group_gid" && f.status == Status::Pass), "{:#?}", ok.findings);
}

#[test]
fn capture_plan_writes_the_three_files() {
    let out_parent = tempfile::tempdir().unwrap();
    let out = capture_plan::run(&sysroot("migration/oldhost"), out_parent.path()).unwrap();
    assert!(out.starts_with(out_parent.path()));
    let module = std::fs::read_to_string(out.join("hardware-parity.nix")).unwrap();
    assert!(module.contains("users.groups.render.gid = lib.mkForce 110;"), "{module}");
    let toml = std::fs::read_to_string(out.join("homelab-probe.toml")).unwrap();
    let e: Expectations = toml.parse().unwrap();
    assert_eq!(e.groups.get("render"), Some(&110));
    assert!(out.join("MIGRATION.md").is_file());
}
