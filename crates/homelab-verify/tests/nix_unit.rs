//! homelab-probe-check.service as nix/module.nix defines it (read with the real Nix evaluator
//! through nix/tests/unit.nix), and its script run with bash -e, as systemd runs a NixOS
//! `script`, against fixture hosts with the real homelab-verify and jq: the journal gets the
//! human report and ends with the failed checks' fixes; the exit code is the check's.
//!
//! Needs nix-instantiate and jq (`scripts/setup-debian --test`). Skipped in the Nix build
//! sandbox, which has neither (nix/package.nix skips `nix_module_*`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn fixtures() -> PathBuf {
    repo().join("crates/homelab-probe/tests/fixtures")
}

/// The unit for the given `nix/tests/unit.nix` arguments (name, Nix expression).
fn unit(args: &[(&str, &str)]) -> Value {
    let call: String = args.iter().map(|(name, expr)| format!("{name} = {expr}; ")).collect();
    let mut cmd = Command::new("nix-instantiate");
    cmd.current_dir(repo()).args(["--option", "build-users-group", "", "--eval", "--strict", "--json", "--expr"]);
    cmd.arg(format!("import ./nix/tests/unit.nix {{ {call}}}"));
    let out = cmd
        .output()
        .expect("nix-instantiate (Debian package nix-bin) must be installed: run scripts/setup-debian --test");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

struct Run {
    code: i32,
    stdout: String,
    report: Option<Value>,
}

/// Runs the unit's script against the sysroot `root` with the expectations `expect`, with the
/// store paths and the state directory replaced by the real binary, jq and a temporary dir.
fn run_script(json_report: bool, root: &Path, expect: &Path, stale_report: bool) -> Run {
    let extra = format!("[ \"--root\" \"{}\" ]", root.display());
    let u = unit(&[("jsonReport", if json_report { "true" } else { "false" }), ("extraArgs", &extra)]);
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    if stale_report {
        std::fs::write(&report, "{\"stale\": true}").unwrap();
    }
    let bin = assert_cmd::cargo::cargo_bin("homelab-verify");
    let script = u["script"]
        .as_str()
        .unwrap()
        .replace("/PKG/bin/homelab-verify", bin.to_str().unwrap())
        .replace("/JQ/bin/jq", "jq")
        .replace("/var/lib/homelab-probe/report.json", report.to_str().unwrap())
        .replace("/etc/homelab-probe.toml", expect.to_str().unwrap());
    assert!(!script.contains("/PKG") && !script.contains("/var/lib"), "{script}");
    let mut cmd = Command::new("bash");
    cmd.args(["-e", "-c", &script]).env_clear().env("PATH", std::env::var("PATH").unwrap());
    for (k, v) in u["environment"].as_object().unwrap() {
        cmd.env(k, v.as_str().unwrap());
    }
    let out = cmd.output().expect("bash");
    Run {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        report: report.exists().then(|| serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap()),
    }
}

#[test]
fn nix_module_unit_is_a_oneshot_without_remain_after_exit_wanted_by_multi_user() {
    let u = unit(&[]);
    let sc = &u["serviceConfig"];
    assert_eq!(sc["Type"], "oneshot");
    assert_eq!(sc.get("RemainAfterExit"), None, "without it the unit runs again on every switch");
    assert_eq!(sc["StateDirectory"], "homelab-probe");
    assert_eq!(sc["ExecStartPre"], "-/SYSTEMD/bin/udevadm settle --timeout=60");
    assert_eq!(u["wantedBy"], serde_json::json!(["multi-user.target"]));
    let after: Vec<&str> = u["after"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(after.contains(&"systemd-udev-settle.service") && after.contains(&"systemd-udev-trigger.service"));
    assert_eq!(u["environment"]["NO_COLOR"], "1");
    assert_eq!(u["unitConfig"], serde_json::json!({}), "no mount dependencies without mounts");
    assert!(u["etc"]["homelab-probe.toml"]["source"].is_string());
}

#[test]
fn nix_module_unit_orders_after_mounts_without_requiring_them_on_systemd_256() {
    let mounts = "[ \"/mnt/PlexStorage\" \"/srv\" ]";
    let u = unit(&[("afterMounts", mounts)]);
    assert_eq!(u["unitConfig"], serde_json::json!({ "WantsMountsFor": ["/mnt/PlexStorage", "/srv"] }));
    let old = unit(&[("afterMounts", mounts), ("systemdVersion", "\"255.9\"")]);
    assert_eq!(old["unitConfig"], serde_json::json!({ "RequiresMountsFor": ["/mnt/PlexStorage", "/srv"] }));
}

#[test]
fn nix_module_unit_script_fails_with_the_report_and_ends_with_the_fixes() {
    let r = run_script(true, &fixtures().join("nixos-default"), &fixtures().join("expect/render-110.toml"), true);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("  FAIL  group render "), "{}", r.stdout);
    assert!(!r.stdout.contains('\x1b'), "NO_COLOR: {}", r.stdout);
    let tail: Vec<&str> = r.stdout.lines().rev().take(2).collect();
    assert_eq!(tail[0], "  group render: users.groups.render.gid = lib.mkForce 110;", "{}", r.stdout);
    assert!(tail[1].starts_with("failed checks (full report above and in "), "{}", r.stdout);
    let report = r.report.expect("a report");
    assert_eq!(report["summary"]["ok"], false);
    assert_eq!(report["summary"]["fail"], 1);
}

#[test]
fn nix_module_unit_script_passes_quietly() {
    let r = run_script(true, &fixtures().join("nixos-default"), &fixtures().join("expect/nixos-default.toml"), true);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.trim_end().ends_with("fail: OK"), "{}", r.stdout);
    assert!(!r.stdout.contains("failed checks"), "{}", r.stdout);
    assert_eq!(r.report.expect("a report")["summary"]["ok"], true);
}

#[test]
fn nix_module_unit_script_on_bad_expectations_exits_2_and_leaves_no_stale_report() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("homelab-probe.toml");
    std::fs::write(&bad, "version = 1\n[grops]\n").unwrap();
    let r = run_script(true, &fixtures().join("headless"), &bad, true);
    assert_eq!(r.code, 2);
    assert!(r.report.is_none(), "the stale report is removed when a run starts");
}

#[test]
fn nix_module_unit_script_without_json_report_keeps_the_exit_code() {
    let r = run_script(false, &fixtures().join("nixos-default"), &fixtures().join("expect/render-110.toml"), false);
    assert_eq!(r.code, 1);
    assert!(r.stdout.trim_end().ends_with("fail: FAILED"), "{}", r.stdout);
    assert!(r.report.is_none());
}
