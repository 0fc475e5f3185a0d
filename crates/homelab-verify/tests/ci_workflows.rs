//! The GitHub workflows (.github/workflows/) against what they run:
//! - every `.#checks.<system>.<name>` that nix.yml names is a check flake.nix defines (its
//!   `checks` output evaluated with the real Nix evaluator and the recorders of
//!   nix/tests/flake-recorded.nix in place of nixpkgs and crane, as nix/tests/flake-outputs.nix
//!   does), and the VM test logs it collects on failure are those of every VM test;
//! - nix.yml runs `nix flake check -L` on push and pull request, and `nix flake update` weekly;
//! - debian.yml runs .ci/run as root with nixpkgs lib fetched at the commit
//!   nix/tests/nixpkgs-lib.rev pins, which no workflow repeats, and scripts/fetch-nixpkgs-lib
//!   --check tells that commit from another.
//!
//! actionlint and the workflow schema check the files themselves (scripts/check-workflows).
//! Needs nix-instantiate (`scripts/setup-debian --test`). Not run in the Nix build sandbox,
//! which has neither it nor .github/ (nix/sandbox-tests.txt excludes it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// `.github/workflows/<name>`, parsed (YAML 1.2: `on` is a key, not a boolean).
fn workflow(name: &str) -> Value {
    let path = repo().join(".github/workflows").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every step of every job.
fn steps(wf: &Value) -> Vec<&Value> {
    let jobs = wf["jobs"].as_object().expect("the workflow has jobs");
    jobs.values().flat_map(|job| job["steps"].as_array().expect("each job has steps")).collect()
}

/// The `run:` scripts of every step.
fn scripts(wf: &Value) -> Vec<&str> {
    steps(wf).into_iter().filter_map(|s| s["run"].as_str()).collect()
}

/// The steps whose `run:` script contains `needle`.
fn steps_running<'a>(wf: &'a Value, needle: &str) -> Vec<&'a Value> {
    steps(wf).into_iter().filter(|s| s["run"].as_str().is_some_and(|r| r.contains(needle))).collect()
}

/// (system, name) of each `.#checks.<system>.<name>` in `text` (flake attribute names are
/// letters, digits, `_` and `-`).
fn check_refs(text: &str) -> Vec<(String, String)> {
    let word = |s: &str| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect();
    text.match_indices(".#checks.")
        .map(|(at, m)| {
            let rest = &text[at + m.len()..];
            let system: String = word(rest);
            let name: String = rest[system.len()..].strip_prefix('.').map(word).unwrap_or_default();
            (system, name)
        })
        .collect()
}

/// The names of the flake's `checks`, per system: {system: [name]}.
fn flake_checks() -> Value {
    let out = Command::new("nix-instantiate")
        .current_dir(repo())
        // No nix daemon or build users are needed to evaluate.
        .args(["--option", "build-users-group", "", "--eval", "--strict", "--json", "--expr"])
        .arg("builtins.mapAttrs (system: builtins.attrNames) (import ./nix/tests/flake-recorded.nix).out.checks")
        .output()
        .expect("nix-instantiate (Debian package nix-bin) must be installed: run scripts/setup-debian --test");
    assert!(out.status.success(), "nix-instantiate: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn defines(checks: &Value, system: &str, name: &str) -> bool {
    checks[system].as_array().is_some_and(|names| names.iter().any(|n| n == name))
}

#[test]
fn nix_workflow_names_only_checks_the_flake_defines() {
    let checks = flake_checks();
    let nix = workflow("nix.yml");
    let refs: Vec<_> = scripts(&nix).into_iter().flat_map(check_refs).collect();
    assert!(!refs.is_empty(), "nix.yml names no .#checks.<system>.<name>");
    let unknown: Vec<_> = refs.iter().filter(|(system, name)| !defines(&checks, system, name)).collect();
    assert!(
        unknown.is_empty(),
        "nix.yml names checks the flake does not define: {unknown:?}; the flake's checks: {checks}"
    );
}

#[test]
fn nix_workflow_collects_the_log_of_every_vm_test() {
    // The VM tests are the flake's `nixos-*` checks (nixos-tests/<name>.nix as nixos-<name>,
    // on x86_64-linux only: nix/tests/flake-outputs.nix).
    let checks = flake_checks();
    let vm_tests: BTreeSet<&str> = checks["x86_64-linux"]
        .as_array()
        .expect("the flake has x86_64-linux checks")
        .iter()
        .filter_map(Value::as_str)
        .filter(|n| n.starts_with("nixos-"))
        .collect();
    assert!(!vm_tests.is_empty(), "{checks}");
    let nix = workflow("nix.yml");
    let log_steps = steps_running(&nix, "nix log");
    assert_eq!(log_steps.len(), 1, "one step collects the VM test logs");
    assert_eq!(log_steps[0]["if"], "failure()");
    let refs = check_refs(log_steps[0]["run"].as_str().unwrap());
    let collected: BTreeSet<&str> =
        refs.iter().filter(|(system, _)| system == "x86_64-linux").map(|(_, name)| name.as_str()).collect();
    assert_eq!(collected, vm_tests, "the VM tests whose logs nix.yml collects, and the flake's VM tests");
}

#[test]
fn nix_workflow_checks_the_flake_on_push_and_pull_request_and_updates_it_weekly() {
    let nix = workflow("nix.yml");
    for event in ["push", "pull_request", "schedule"] {
        assert!(nix["on"].get(event).is_some(), "nix.yml does not run on {event}: {}", nix["on"]);
    }
    let check = steps_running(&nix, "nix flake check -L");
    assert!(check.len() == 1 && check[0].get("if").is_none(), "one unconditional `nix flake check -L`: {check:?}");
    let update = steps_running(&nix, "nix flake update");
    assert!(
        update.len() == 1 && update[0]["if"] == "github.event_name == 'schedule'",
        "`nix flake update` runs in the scheduled run only: {update:?}"
    );
    let uploads_lock = steps(&nix).into_iter().any(|s| {
        s["uses"].as_str().is_some_and(|u| u.starts_with("actions/upload-artifact@"))
            && s["with"]["path"] == "flake.lock"
    });
    assert!(uploads_lock, "nix.yml uploads the flake.lock it used");
    assert_eq!(nix["jobs"]["flake-check"]["runs-on"], "ubuntu-latest", "hosted runners expose /dev/kvm");
}

#[test]
fn debian_workflow_runs_ci_run_as_root_with_the_pinned_nixpkgs_lib() {
    let debian = workflow("debian.yml");
    let fetch = steps_running(&debian, "scripts/fetch-nixpkgs-lib");
    let ci = steps_running(&debian, ".ci/run");
    assert_eq!((fetch.len(), ci.len()), (1, 1), "debian.yml fetches nixpkgs lib once and runs .ci/run once");
    assert!(ci[0]["run"].as_str().unwrap().starts_with("sudo "), "tests need root: {}", ci[0]["run"]);
    let order = |step: &Value| steps(&debian).iter().position(|s| std::ptr::eq(*s, step)).unwrap();
    assert!(order(fetch[0]) < order(ci[0]), "nixpkgs lib is fetched before .ci/run");

    // The commit is written in one place only.
    let pin = std::fs::read_to_string(repo().join("nix/tests/nixpkgs-lib.rev")).unwrap();
    let pin = pin.trim();
    assert!(pin.len() == 40 && pin.bytes().all(|b| b.is_ascii_hexdigit()), "nix/tests/nixpkgs-lib.rev: {pin:?}");
    for entry in std::fs::read_dir(repo().join(".github/workflows")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(pin), "{} repeats the pinned commit: read nix/tests/nixpkgs-lib.rev", path.display());
    }
}

/// `scripts/fetch-nixpkgs-lib --check DIR`: (exit code, stderr).
fn check_nixpkgs_lib(dir: &Path) -> (i32, String) {
    let out = Command::new("bash")
        .current_dir(repo())
        .arg("scripts/fetch-nixpkgs-lib")
        .arg("--check")
        .arg(dir)
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn fetch_nixpkgs_lib_check_tells_the_pinned_commit_from_another() {
    let pin = std::fs::read_to_string(repo().join("nix/tests/nixpkgs-lib.rev")).unwrap();
    let pin = pin.trim();
    let t = tempfile::tempdir().unwrap();
    // Laid out as this CI's copy: a README naming the commit (here across a line break), lib/.
    let tree = |name: &str, commit: &str, lib: bool| {
        let dir = t.path().join(name);
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        std::fs::write(
            dir.join("README.md"),
            format!("# nixpkgs `lib`\n\nthe mirror, commit\n{commit} (2026-06-14)\n"),
        )
        .unwrap();
        if lib {
            std::fs::write(dir.join("lib/default.nix"), "{ }\n").unwrap();
        }
        dir
    };
    let (code, stderr) = check_nixpkgs_lib(&tree("pinned", pin, true));
    assert_eq!(code, 0, "{stderr}");

    let other = "0123456789abcdef0123456789abcdef01234567";
    for (dir, says) in [
        (tree("other", other, true), format!("is commit {other}, nix/tests/nixpkgs-lib.rev pins {pin}")),
        (tree("empty", pin, false), "lib/default.nix is missing".to_owned()),
        (t.path().join("absent"), "does not exist".to_owned()),
    ] {
        let (code, stderr) = check_nixpkgs_lib(&dir);
        assert_eq!(code, 1, "{}: {stderr}", dir.display());
        assert!(stderr.contains(&says), "{}: {stderr}", dir.display());
    }
}
