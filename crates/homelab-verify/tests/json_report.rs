//! `--json-report FILE`: the human report on stdout (the journal, in the NixOS unit) and the
//! JSON report in a file, from one run.

use std::path::Path;

use homelab_test_support::{fixture, sysroot, verify};
use serde_json::Value;

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn failing_check_prints_human_and_writes_the_same_report_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.json");
    let out = verify()
        .args(["check", "--root"])
        .arg(sysroot("nixos-default"))
        .arg("--expect")
        .arg(fixture("expect/render-110.toml"))
        .arg("--json-report")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "the exit code is the check's, not the file's");
    let human = String::from_utf8(out.stdout).unwrap();
    assert!(human.contains("fix (nixos): users.groups.render.gid = lib.mkForce 110;"), "{human}");
    assert!(human.trim_end().ends_with("fail: FAILED"), "{human}");

    let r = read_json(&file);
    assert_eq!(r["schema_version"], 1);
    assert_eq!(r["summary"]["ok"], false);
    let f = r["findings"].as_array().unwrap().iter().find(|f| f["check"] == "group_gid").unwrap();
    assert_eq!(f["subject"], "group render");
    assert_eq!(f["status"], "fail");
    assert_eq!(f["remedy"]["text"], "users.groups.render.gid = lib.mkForce 110;");
    // The human summary line counts the same findings as the file.
    let s = &r["summary"];
    let line =
        format!("summary: {} pass, {} warn, {} skip, {} fail: FAILED", s["pass"], s["warn"], s["skip"], s["fail"]);
    assert!(human.contains(&line), "{line:?} not in\n{human}");
    // Nothing but the report is left in the directory.
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["report.json"]);
}

#[test]
fn an_existing_report_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.json");
    std::fs::write(&file, "stale").unwrap();
    let out = verify()
        .args(["check", "--format", "json", "--root"])
        .arg(sysroot("debian12-intel"))
        .arg("--json-report")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout: Value = serde_json::from_slice(&out.stdout).unwrap();
    let written = read_json(&file);
    assert_eq!(written["summary"], stdout["summary"]);
    assert_eq!(written["findings"], stdout["findings"]);
    assert_eq!(written["summary"]["ok"], true);
}

#[test]
fn an_unwritable_report_path_is_bad_input_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("missing-dir/report.json");
    let out = verify()
        .args(["check", "--root"])
        .arg(sysroot("debian12-intel"))
        .arg("--json-report")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("homelab-verify: error: cannot write the JSON report to "), "{err}");
    assert!(err.contains("missing-dir/report.json"), "{err}");
}

#[test]
fn bad_expectations_leave_no_report() {
    let dir = tempfile::tempdir().unwrap();
    let expect = dir.path().join("homelab-probe.toml");
    std::fs::write(&expect, "version = 1\n[grops]\n").unwrap();
    let file = dir.path().join("report.json");
    let out = verify()
        .args(["check", "--root"])
        .arg(sysroot("headless"))
        .arg("--expect")
        .arg(&expect)
        .arg("--json-report")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!file.exists(), "no report is written on bad input");
}
