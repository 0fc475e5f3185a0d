//! `check --format prometheus|junit` and `--report FORMAT:FILE`: every report file from one
//! run, replaced atomically, whatever stdout gets; the exit code stays the check's. What
//! Prometheus and JUnit consumers make of the files is tests/format_oracles.rs.

mod support;

use std::path::Path;

use homelab_test_support::{Command, fixture, sysroot, verify};
use serde_json::Value;
use support::sample;

fn check(root: &str, expect: &str) -> Command {
    let mut c = verify();
    c.arg("check").arg("--root").arg(sysroot(root)).arg("--expect").arg(fixture(expect));
    c
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn every_report_file_comes_from_the_same_run_as_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = check("nixos-default", "expect/render-110.toml")
        .env("CLICOLOR_FORCE", "1")
        .args(["--format", "json"])
        .arg("--report")
        .arg(format!("prometheus:{}", d.join("homelab_probe.prom").display()))
        .arg("--report")
        .arg(format!("junit:{}", d.join("report.xml").display()))
        .arg("--report")
        .arg(format!("human:{}", d.join("report.txt").display()))
        .arg("--json-report")
        .arg(d.join("report.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "the exit code is the check's");
    let stdout: Value = serde_json::from_slice(&out.stdout).unwrap();
    let file: Value = serde_json::from_str(&read(&d.join("report.json"))).unwrap();
    assert_eq!(stdout, file);

    let human = read(&d.join("report.txt"));
    assert!(!human.contains('\x1b'), "no colour codes in a file, even with CLICOLOR_FORCE: {human:?}");
    assert!(human.contains("fix (nixos): users.groups.render.gid = lib.mkForce 110;"), "{human}");

    let metrics = read(&d.join("homelab_probe.prom"));
    assert_eq!(sample(&metrics, "homelab_probe_check_ok"), Some(0.0), "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            r#"homelab_probe_finding{check="group_gid",probe="identity",status="fail",subject="group render"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    let fails = stdout["summary"]["fail"].as_f64();
    assert_eq!(sample(&metrics, r#"homelab_probe_findings{status="fail"}"#), fails);
    let findings = stdout["findings"].as_array().unwrap().len();
    assert_eq!(metrics.lines().filter(|l| l.starts_with("homelab_probe_finding{")).count(), findings);

    let junit = read(&d.join("report.xml"));
    assert!(junit.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites "), "{junit}");
    assert_eq!(junit.matches("<testcase ").count(), findings);

    // Nothing else is left in the directory: no temporary files.
    let mut names: Vec<String> =
        std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["homelab_probe.prom", "report.json", "report.txt", "report.xml"]);
}

#[test]
fn format_prometheus_and_junit_print_to_stdout() {
    let out = check("mounts-ok", "expect/plex-mounts.toml").args(["--format", "prometheus"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let metrics = String::from_utf8(out.stdout).unwrap();
    assert_eq!(sample(&metrics, "homelab_probe_check_ok"), Some(1.0), "{metrics}");
    assert!(metrics.contains("# TYPE homelab_probe_finding gauge\n"), "{metrics}");
    assert_eq!(sample(&metrics, r#"homelab_probe_probe_runs_total{probe="mounts"}"#), Some(1.0));

    let out = check("mounts-ok", "expect/plex-mounts.toml").args(["--format", "junit"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let xml = String::from_utf8(out.stdout).unwrap();
    for probe in ["identity", "render_node", "gpu", "mounts", "drift"] {
        assert!(xml.contains(&format!("<testsuite name=\"{probe}\" ")), "{probe}: {xml}");
    }
}

#[test]
fn an_existing_report_file_is_replaced_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("homelab_probe.prom");
    std::fs::write(&file, "stale\n").unwrap();
    let out = check("mounts-ok", "expect/plex-mounts.toml")
        .arg("--report")
        .arg(format!("prometheus:{}", file.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(read(&file).starts_with("# HELP "), "{}", read(&file));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn bad_report_targets_exit_2() {
    for (target, want) in [
        ("xml:r.xml", "unknown format `xml`: expected one of human, json, prometheus, junit"),
        ("report.json", "expected FORMAT:FILE"),
        ("junit:", "the FILE after FORMAT: is empty"),
    ] {
        let out = check("mounts-ok", "expect/plex-mounts.toml").args(["--report", target]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{target}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(want), "{target}: {err}");
    }
    let out = check("mounts-ok", "expect/plex-mounts.toml")
        .args(["--report", "prometheus:/nonexistent-dir/homelab_probe.prom"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with(
            "homelab-verify: error: cannot write the Prometheus report to /nonexistent-dir/homelab_probe.prom"
        ),
        "{err}"
    );
}
