//! The formats as their consumers read them: `promtool check metrics` (Prometheus' own linter
//! of the text format, Debian's `prometheus` package) and the parser of Prometheus' Python
//! client (`prometheus_client`, PyPI) for `--format prometheus`; `junitparser` (PyPI), a
//! maintained JUnit XML library, for `--format junit`. All three are installed by
//! `scripts/setup-debian --test`; a missing one fails the test. Not run in the Nix build
//! sandbox (nix/sandbox-tests.txt), which has none of them.
//!
//! Fixtures: every sysroot with its expectations, and a hostile one whose subjects hold `"`,
//! `\`, a line feed, `<&>` and a control character.

use std::path::{Path, PathBuf};
use std::process::Command;

use homelab_test_support::{fixture, sysroot, verify};
use serde_json::Value;

/// (sysroot, expectations) pairs covering pass, warn, skip and fail in every probe.
const CASES: &[(&str, &str)] = &[
    ("nixos-default", "expect/render-110.toml"),
    ("nixos-render-110", "expect/render-110.toml"),
    ("mounts-ok", "expect/plex-mounts.toml"),
    ("mounts-missing-disk", "expect/plex-mounts.toml"),
    ("mounts-shadowed", "expect/plex-mounts.toml"),
    ("gpu-intel-nixos", "expect/gpu-plex-intel.toml"),
    ("gpu-nvidia-popos", "expect/gpu-plex-nvidia.toml"),
    ("truncated-group", "expect/render-110.toml"),
    ("udev-stale-gid", "expect/debian-0660.toml"),
];

const HOSTILE: &str = "version = 1\n\
[[mounts]]\npath = \"/mnt/Plex \\\"Drive\\\" \\\\ <&> \\u0001\"\n\
[[drift]]\nroot = \"/srv/a\\nb\"\nuid = 1\ngid = 1\n";

/// Runs `check` with `--format FORMAT` and `--format json` on one case: (format output, JSON).
fn outputs(root: &Path, expect: &Path, format: &str) -> (String, Value) {
    let run = |f: &str| {
        let out =
            verify().args(["check", "--format", f, "--root"]).arg(root).arg("--expect").arg(expect).output().unwrap();
        assert!(matches!(out.status.code(), Some(0 | 1)), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    (run(format), serde_json::from_str(&run("json")).unwrap())
}

fn cases(hostile_dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let hostile = hostile_dir.join("hostile.toml");
    std::fs::write(&hostile, HOSTILE).unwrap();
    let mut all: Vec<(PathBuf, PathBuf)> = CASES.iter().map(|(r, e)| (sysroot(r), fixture(e))).collect();
    all.push((sysroot("nixos-default"), hostile));
    all
}

fn python(script: &str, arg: &Path) -> String {
    let out = Command::new("python3").args(["-c", script]).arg(arg).output().expect("python3 runs");
    assert!(
        out.status.success(),
        "python3 failed (scripts/setup-debian --test installs junitparser and prometheus_client):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn prometheus_output_passes_promtool_check_metrics() {
    let dir = tempfile::tempdir().unwrap();
    for (root, expect) in cases(dir.path()) {
        let (metrics, _) = outputs(&root, &expect, "prometheus");
        let file = dir.path().join("metrics.prom");
        std::fs::write(&file, &metrics).unwrap();
        let out = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::fs::File::open(&file).unwrap())
            .output()
            .expect("promtool (Debian package prometheus) must be installed: run scripts/setup-debian --test");
        assert!(
            out.status.success(),
            "{} {}: promtool check metrics:\n{}{}\n{metrics}",
            root.display(),
            expect.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every `homelab_probe_finding` sample as the Python client parses it: one JSON object per
/// line with its labels.
const PARSE_METRICS: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(open(sys.argv[1], encoding="utf-8").read()):
    for s in family.samples:
        if s.name == "homelab_probe_finding":
            print(json.dumps({"labels": s.labels, "value": s.value}))
"#;

#[test]
fn prometheus_labels_read_back_exactly_as_the_findings_say() {
    let dir = tempfile::tempdir().unwrap();
    for (root, expect) in cases(dir.path()) {
        let (metrics, report) = outputs(&root, &expect, "prometheus");
        let file = dir.path().join("metrics.prom");
        std::fs::write(&file, &metrics).unwrap();
        let mut parsed: Vec<(String, String, String, String)> = python(PARSE_METRICS, &file)
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                assert_eq!(v["value"], 1.0);
                let label = |k: &str| v["labels"][k].as_str().unwrap().to_owned();
                (label("probe"), label("check"), label("subject"), label("status"))
            })
            .collect();
        let mut want: Vec<(String, String, String, String)> = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let s = |k: &str| f[k].as_str().unwrap().to_owned();
                (s("probe"), s("check"), s("subject"), s("status"))
            })
            .collect();
        parsed.sort();
        want.sort();
        want.dedup();
        assert_eq!(parsed, want, "{}", root.display());
    }
    // The hostile subjects made it through.
    let (metrics, _) = outputs(&sysroot("nixos-default"), &dir.path().join("hostile.toml"), "prometheus");
    assert!(metrics.contains(r#"subject="/srv/a\nb""#), "{metrics}");
    assert!(metrics.contains("subject=\"/mnt/Plex \\\"Drive\\\" \\\\ <&> \u{1}\""), "{metrics}");
}

/// The JUnit file as junitparser reads it: per suite, name and counts; per case, classname,
/// name, result kind and message, system-out.
const PARSE_JUNIT: &str = r#"
import json, sys
from junitparser import JUnitXml, Failure, Skipped, Error
xml = JUnitXml.fromfile(sys.argv[1])
suites = []
for suite in xml:
    cases = []
    for case in suite:
        results = [{"kind": type(r).__name__, "message": r.message, "text": r.text, "type": r.type} for r in case.result]
        cases.append({"classname": case.classname, "name": case.name, "results": results, "out": case.system_out})
    suites.append({"name": suite.name, "tests": suite.tests, "failures": suite.failures, "errors": suite.errors,
                   "skipped": suite.skipped, "time": suite.time, "cases": cases})
print(json.dumps({"tests": xml.tests, "failures": xml.failures, "skipped": xml.skipped, "suites": suites}))
"#;

#[test]
fn junit_output_parses_with_junitparser_one_suite_per_probe_one_case_per_finding() {
    let dir = tempfile::tempdir().unwrap();
    for (root, expect) in cases(dir.path()) {
        let (xml, report) = outputs(&root, &expect, "junit");
        let file = dir.path().join("report.xml");
        std::fs::write(&file, &xml).unwrap();
        let parsed: Value = serde_json::from_str(&python(PARSE_JUNIT, &file)).unwrap();
        let findings = report["findings"].as_array().unwrap();
        let summary = &report["summary"];
        let ctx = format!("{} {}\n{xml}", root.display(), expect.display());
        assert_eq!(parsed["tests"], summary["total"], "{ctx}");
        assert_eq!(parsed["failures"], summary["fail"], "{ctx}");
        assert_eq!(parsed["skipped"], summary["skip"], "{ctx}");
        let suites = parsed["suites"].as_array().unwrap();
        let names: Vec<&str> = suites.iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["identity", "render_node", "gpu", "mounts", "drift"], "{ctx}");
        let cases: Vec<&Value> = suites.iter().flat_map(|s| s["cases"].as_array().unwrap()).collect();
        assert_eq!(cases.len(), findings.len(), "{ctx}");
        for (case, f) in cases.iter().zip(findings) {
            let clean = |s: &str| {
                s.chars().map(|c| if c < ' ' && c != '\n' && c != '\t' { '\u{fffd}' } else { c }).collect::<String>()
            };
            assert_eq!(case["classname"], format!("{}.{}", f["probe"].as_str().unwrap(), f["check"].as_str().unwrap()));
            assert_eq!(case["name"].as_str().unwrap(), clean(f["subject"].as_str().unwrap()), "{ctx}");
            let message = clean(f["message"].as_str().unwrap());
            let results = case["results"].as_array().unwrap();
            match f["status"].as_str().unwrap() {
                "fail" => {
                    assert_eq!(results.len(), 1, "{ctx}");
                    assert_eq!(results[0]["kind"], "Failure");
                    assert_eq!(results[0]["message"].as_str().unwrap(), message);
                    assert_eq!(results[0]["type"], f["check"]);
                    let text = results[0]["text"].as_str().unwrap();
                    let remedy = clean(f["remedy"]["text"].as_str().unwrap());
                    assert!(text.contains(&remedy), "the failure holds the remedy: {text}");
                }
                "skip" => {
                    assert_eq!(results.len(), 1, "{ctx}");
                    assert_eq!(results[0]["kind"], "Skipped");
                    assert_eq!(results[0]["message"].as_str().unwrap(), message);
                }
                status => {
                    assert!(results.is_empty(), "{status} is a passing case: {ctx}");
                    let out = case["out"].as_str().unwrap();
                    assert!(out.starts_with(&format!("{}: {message}", status.to_uppercase())), "{out}");
                }
            }
        }
    }
}
