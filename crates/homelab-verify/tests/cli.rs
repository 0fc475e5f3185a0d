//! The command line: exit codes, the JSON contract, human output and bad input.

use std::path::Path;

use homelab_test_support::{fixture, sysroot, verify};
use serde_json::Value;

fn json(out: &[u8]) -> Value {
    serde_json::from_slice(out).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(out)))
}

#[test]
fn no_arguments_checks_this_machine_with_builtin_defaults() {
    let out = verify().arg("--format").arg("json").output().unwrap();
    let r = json(&out.stdout);
    assert_eq!(r["schema_version"], 1);
    assert_eq!(r["host"]["live"], true);
    assert_eq!(r["host"]["root"], "/");
    assert_eq!(r["expectations"], "built-in defaults");
    let findings = r["findings"].as_array().unwrap();
    assert!(findings.iter().any(|f| f["probe"] == "identity"));
    if Path::new("/dev/dri").exists() {
        assert!(findings.iter().any(|f| f["probe"] == "render_node" && f["check"] == "node"));
    } else {
        let skip = findings.iter().find(|f| f["check"] == "render_present").expect("a render_present finding");
        assert_eq!(skip["status"], "skip");
        assert_eq!(
            skip["message"],
            "no GPU: /dev/dri has no DRM nodes (no GPU driver is loaded), so there is no render node to check"
        );
    }
    // Exit code agrees with the summary.
    let ok = r["summary"]["ok"].as_bool().unwrap();
    assert_eq!(out.status.code(), Some(if ok { 0 } else { 1 }));
    // The bare command and `check` are the same thing.
    let out2 = verify().args(["check", "--format", "json"]).output().unwrap();
    assert_eq!(json(&out2.stdout)["summary"], r["summary"]);
}

#[test]
fn report_json_shape_is_the_documented_contract() {
    let out = verify().args(["check", "--format", "json", "--root"]).arg(sysroot("debian12-intel")).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let r = json(&out.stdout);
    let mut keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["expectations", "findings", "generated_at", "host", "schema_version", "summary", "tool"]);
    for f in r["findings"].as_array().unwrap() {
        let mut k: Vec<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
        k.sort_unstable();
        assert_eq!(k, ["check", "evidence", "message", "probe", "remedy", "status", "subject"]);
        assert!(["pass", "warn", "skip", "fail"].contains(&f["status"].as_str().unwrap()));
    }
    let s = &r["summary"];
    assert_eq!(s["total"], r["findings"].as_array().unwrap().len());
    assert_eq!(r["host"]["hostname"], "deb12");
    assert_eq!(r["host"]["live"], false);
    assert!(r["generated_at"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn render_303_when_110_expected_fails_with_mkforce_remedy() {
    let out = verify()
        .args(["check", "--format", "json", "--root"])
        .arg(sysroot("nixos-default"))
        .arg("--expect")
        .arg(fixture("expect/render-110.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let r = json(&out.stdout);
    let f = r["findings"].as_array().unwrap().iter().find(|f| f["check"] == "group_gid").unwrap();
    assert_eq!(f["status"], "fail");
    assert_eq!(f["subject"], "group render");
    assert_eq!(f["remedy"]["kind"], "nixos");
    assert_eq!(f["remedy"]["text"], "users.groups.render.gid = lib.mkForce 110;");
    assert_eq!(r["summary"]["ok"], false);
}

#[test]
fn human_output_groups_by_probe_and_has_no_colour_off_a_terminal() {
    let out = verify()
        .args(["check", "--root"])
        .arg(sysroot("udev-stale-gid"))
        .arg("--expect")
        .arg(fixture("expect/render-110.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\x1b'), "no colour when stdout is not a terminal:\n{text}");
    let identity = text.find("\nidentity\n").expect("identity heading");
    let render = text.find("\nrender_node\n").expect("render_node heading");
    assert!(identity < render);
    assert!(text.contains("  FAIL  /dev/dri/renderD128"), "{text}");
    assert!(text.contains("fix (command): systemctl restart systemd-udevd"), "{text}");
    assert!(text.trim_end().ends_with("fail: FAILED"), "{text}");
}

#[test]
fn colour_is_forced_by_clicolor_force_but_never_with_no_color() {
    let args = ["check", "--root"];
    let root = sysroot("debian12-intel");
    let forced = verify().args(args).arg(&root).env("CLICOLOR_FORCE", "1").output().unwrap();
    assert!(String::from_utf8_lossy(&forced.stdout).contains("\x1b["), "CLICOLOR_FORCE=1 colours");
    let no = verify().args(args).arg(&root).env("CLICOLOR_FORCE", "1").env("NO_COLOR", "1").output().unwrap();
    assert!(!String::from_utf8_lossy(&no.stdout).contains('\x1b'), "NO_COLOR wins");
}

fn bad_expectations(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("homelab-probe.toml");
    std::fs::write(&file, text).unwrap();
    let out = verify().args(["check", "--root"]).arg(sysroot("headless")).arg("--expect").arg(&file).output().unwrap();
    assert!(out.stdout.is_empty(), "no report on bad input");
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stderr).unwrap().replace(&dir.path().display().to_string(), "DIR"),
    )
}

#[test]
fn malformed_toml_exits_2_naming_file_and_line() {
    let (code, err) = bad_expectations("version = 1\n[groups]\nrender = = 110\n");
    assert_eq!(code, 2);
    assert!(err.starts_with("homelab-verify: error: DIR/homelab-probe.toml:3:"), "{err}");
}

#[test]
fn unknown_key_exits_2_naming_file_and_line() {
    let (code, err) = bad_expectations("version = 1\n\n[render]\ngroup = \"render\"\nmodes = \"0660\"\n");
    assert_eq!(code, 2);
    assert!(err.starts_with("homelab-verify: error: DIR/homelab-probe.toml:5:"), "{err}");
    assert!(err.contains("unknown field `modes`"), "{err}");
}

#[test]
fn truncated_group_file_is_a_finding_naming_file_and_line() {
    let out = verify().args(["check", "--format", "json", "--root"]).arg(sysroot("truncated-group")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let r = json(&out.stdout);
    let f = r["findings"].as_array().unwrap().iter().find(|f| f["check"] == "identity_source").unwrap();
    assert_eq!(f["subject"], "/etc/group:19");
    assert!(f["message"].as_str().unwrap().starts_with("/etc/group:19: expected 4 fields"), "{f}");
}

#[test]
fn missing_files_and_bad_usage_exit_2() {
    let out = verify().args(["check", "--expect", "/nonexistent/homelab-probe.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/homelab-probe.toml: cannot read expectations"));
    let out = verify().args(["check", "--root", "/nonexistent-root"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent-root"));
    let out = verify().args(["check", "--frobnicate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = verify().args(["check", "--format", "yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn broken_sysroot_manifest_exits_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("homelab-sysroot.toml"),
        "[[node]]\npath = \"/dev/dri/renderD128\"\nkind = \"tty\"\n",
    )
    .unwrap();
    let out = verify().args(["check", "--root"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("homelab-sysroot.toml:3:"), "{err}");
}

#[test]
fn shadowed_mount_point_fails_with_a_safe_remedy() {
    let out = verify().args(["check", "--format", "json", "--root"]).arg(sysroot("mounts-shadowed")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let r = json(&out.stdout);
    let f = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["probe"] == "mounts" && f["check"] == "shadowed_data")
        .expect("a shadowed_data finding");
    assert_eq!(f["subject"], "/mnt/PlexStorage");
    assert_eq!(f["status"], "fail");
    assert_eq!(f["evidence"]["entries"], 7);
    assert_eq!(f["remedy"]["kind"], "manual");
}

#[test]
fn wait_rechecks_until_the_deadline_then_fails() {
    let start = std::time::Instant::now();
    let out = verify()
        .args(["check", "--format", "json", "--wait", "1500ms", "--root"])
        .arg(sysroot("mounts-missing-disk"))
        .output()
        .unwrap();
    assert!(start.elapsed() >= std::time::Duration::from_millis(1500), "it waited");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("waiting for /mnt/PlexDrive"), "{err}");
    let r = json(&out.stdout);
    let w = r["findings"].as_array().unwrap().iter().find(|f| f["check"] == "mount_wait").expect("mount_wait");
    assert_eq!(w["status"], "fail");
    assert_eq!(w["evidence"]["failing"], serde_json::json!(["/mnt/PlexDrive"]));
    assert!(w["evidence"]["rechecks"].as_u64().unwrap() >= 3);

    let out = verify().args(["check", "--wait", "90"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a duration needs a unit");
    let out = verify().args(["check", "--wait", "2m", "--root"]).arg(sysroot("mounts-ok")).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "nothing to wait for: no pause");
    assert!(String::from_utf8_lossy(&out.stdout).contains("every mount check passed at the first try"));
}

#[test]
fn a_reader_that_stops_early_does_not_change_the_exit_code() {
    use std::io::Read;
    use std::process::{Command as Std, Stdio};
    let bin = homelab_test_support::verify_path();
    let mut child = Std::new(bin)
        .args(["check", "--root"])
        .arg(sysroot("nixos-default"))
        .arg("--expect")
        .arg(fixture("expect/render-110.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end at once, as `| head -c0` would: the report's first write gets EPIPE.
    drop(child.stdout.take());
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "the check failed, so exit 1 whatever the reader did; stderr: {err}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn help_states_the_exit_codes_each_command_has() {
    let help = |args: &[&str]| String::from_utf8(verify().args(args).arg("--help").output().unwrap().stdout).unwrap();
    for cmd in ["capture", "plan"] {
        let h = help(&[cmd]);
        assert!(h.contains("Exit codes: 0 the files were written, 2 bad usage or bad input"), "{cmd}: {h}");
        assert!(!h.contains("a check failed"), "{cmd} never exits 1: {h}");
    }
    assert!(help(&["plan"]).contains("or a refusal"));
    assert!(help(&["check"]).contains("1 a check failed"));
}
