//! homelab-probe-check.service as nix/module.nix defines it (evaluated with the real NixOS module
//! system through nix/tests/unit.nix: the pinned nixpkgs lib and the stand-in of
//! nix/tests/nixos), and its script run with bash -e, as systemd runs a NixOS
//! `script`, against fixture hosts with the real homelab-verify and jq: the journal gets the
//! human report and ends with the failed checks' fixes; the exit code is the check's.
//!
//! Needs nix-instantiate and jq (`scripts/setup-debian --test`). Skipped in the Nix build
//! sandbox, which has neither (nix/sandbox-tests.txt excludes this binary).

use std::path::Path;
use std::process::Command;

use homelab_test_support::{fixture, sysroot};
use serde_json::Value;

#[path = "../../homelab-probe/tests/nixos_eval/mod.rs"]
mod nixos_eval;

/// The unit for the given `nix/tests/unit.nix` arguments (name, Nix expression), evaluated by
/// the real module system.
fn unit(args: &[(&str, &str)]) -> Value {
    let lib = nixos_eval::nixpkgs_lib();
    let call: String = args.iter().map(|(name, expr)| format!("{name} = {expr}; ")).collect();
    let u = nixos_eval::eval(&format!(
        "import ./nix/tests/unit.nix {{ nixpkgsLib = {}; {call}}}",
        nixos_eval::nix_path(&lib)
    ));
    assert_eq!(u["typeError"], false, "the module system refused {args:?}");
    u
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
    let bin = homelab_test_support::verify_path();
    let script = u["script"]
        .as_str()
        .unwrap()
        .replace(&format!("{}/bin/homelab-verify", u["paths"]["package"].as_str().unwrap()), bin.to_str().unwrap())
        .replace(&format!("{}/bin/jq", u["paths"]["jq"].as_str().unwrap()), "jq")
        .replace("/var/lib/homelab-probe/report.json", report.to_str().unwrap())
        .replace("/etc/homelab-probe.toml", expect.to_str().unwrap());
    assert!(!script.contains("/nix/store") && !script.contains("/var/lib"), "{script}");
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
    assert_eq!(
        sc["ExecStartPre"],
        format!("-{}/bin/udevadm settle --timeout=60", u["paths"]["systemd"].as_str().unwrap())
    );
    assert_eq!(u["wantedBy"], serde_json::json!(["multi-user.target"]));
    let after: Vec<&str> = u["after"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(after.contains(&"systemd-udev-settle.service") && after.contains(&"systemd-udev-trigger.service"));
    assert_eq!(u["environment"]["NO_COLOR"], "1");
    assert_eq!(u["unitConfig"], serde_json::json!({}), "no mount dependencies without mounts");
    assert!(u["etcSource"].as_str().unwrap().ends_with("-homelab-probe.toml"), "{u}");
    assert!(u["unitText"].as_str().unwrap().contains("\nType=oneshot\n"), "{u}");
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
fn nix_module_after_mounts_defaults_to_mount_paths_and_drift_roots() {
    let settings = r#"{
      mounts = [ { path = "/mnt/PlexStorage"; } { path = "/mnt/Plex Drive"; } ];
      drift = [ { root = "/mnt/PlexStorage/media"; uid = 1000; gid = 110; } { root = "/mnt/PlexStorage"; uid = 1000; gid = 110; } { root = "/srv/photos"; uid = 1000; gid = 100; } ];
    }"#;
    let u = unit(&[("settings", settings)]);
    assert_eq!(
        u["afterMountsDefault"],
        serde_json::json!(["/mnt/PlexStorage", "/mnt/Plex Drive", "/mnt/PlexStorage/media", "/srv/photos"]),
        "each [[mounts]] path and [[drift]] root once"
    );
    // An expectations file in the configuration (what `plan` wrote) is read for its paths.
    let plan = "./crates/homelab-probe/tests/fixtures/expect/plex-mounts.toml";
    let u = unit(&[("expectationsFile", plan)]);
    assert_eq!(u["afterMountsDefault"], serde_json::json!(["/mnt/PlexStorage", "/mnt/PlexDrive", "/mnt/backup"]));
    // A store path a derivation wrote is not read at evaluation (import-from-derivation).
    let u = unit(&[("expectationsFile", "\"/nix/store/00000000000000000000000000000000-plan/homelab-probe.toml\"")]);
    assert_eq!(u["afterMountsDefault"], serde_json::json!([]));
}

/// The mount unit systemd names for `path` (systemd-escape, from the systemd package).
fn mount_unit(path: &str) -> String {
    let out = Command::new("systemd-escape")
        .args(["-p", "--suffix=mount", path])
        .output()
        .expect("systemd-escape (Debian package systemd) must be installed: run scripts/setup-debian --test");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// What `systemd-analyze verify` logs (at debug level) when it loads a service with these
/// `RequiresMountsFor=` lines: systemd loads the mount unit of every prefix of every path it
/// parsed, and warns about words it ignores.
fn systemd_reads(words: &[String]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hp-mounts-test.service");
    let lines: String = words.iter().map(|w| format!("RequiresMountsFor={w}\n")).collect();
    std::fs::write(&file, format!("[Unit]\nDescription=t\n{lines}[Service]\nType=oneshot\nExecStart=/bin/true\n"))
        .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&file)
        .env("SYSTEMD_LOG_LEVEL", "debug")
        .output()
        .expect("systemd-analyze (Debian package systemd) must be installed: run scripts/setup-debian --test");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn nix_module_unit_mount_paths_reach_systemd_as_written() {
    // Blanks, `%` (a specifier), quotes and a backslash: each must reach systemd as one path.
    let paths =
        ["/mnt/Plex Drive", "/srv/50%near", "/srv/it's", "/srv/q\"uote", "/srv/back\\slash", "/mnt/PlexStorage"];
    let list: Vec<String> = paths.iter().map(|p| serde_json::to_string(p).unwrap().replace('$', "\\$")).collect();
    let u = unit(&[("afterMounts", &format!("[ {} ]", list.join(" "))), ("systemdVersion", "\"252\"")]);
    let words: Vec<String> = u["unitConfig"]["RequiresMountsFor"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(words[0], "\"/mnt/Plex Drive\"");
    assert_eq!(words[5], "/mnt/PlexStorage", "a plain path stays as it is");
    let log = systemd_reads(&words);
    // (systemd also says "ignoring" about its own units in a container: only ours count.)
    let ignored: Vec<&str> =
        log.lines().filter(|l| l.contains("hp-mounts-test.service:") && l.contains("ignoring")).collect();
    assert!(ignored.is_empty(), "systemd ignored a word: {ignored:?}");
    for p in paths {
        let unit = mount_unit(p);
        assert!(log.contains(&unit), "systemd did not order after {unit} ({p:?}):\n{log}");
    }
    // The oracle can tell: the paths written as they are lose the blank one and mangle `%`.
    let naive = systemd_reads(&paths.iter().map(|p| p.to_string()).collect::<Vec<_>>());
    assert!(naive.contains("path is not absolute, ignoring: Drive"), "{naive}");
    assert!(!naive.contains(&mount_unit("/srv/50%near")), "%n is a specifier: {naive}");
}

#[test]
fn nix_module_assertions_and_warnings_cover_the_new_sections() {
    let settings = r#"{
      mounts = [ { path = "/mnt/a"; uuid = "u"; label = "l"; } { path = "/mnt/a"; } { path = "/mnt/b"; uuid = "u1"; fstype = "ext4"; } ];
      drift = [ { root = "/d"; uid = 1; gid = 1; } { root = "/d/"; uid = 2; gid = 2; } ];
    }"#;
    let fs =
        r#"{ "/mnt/b" = { mountPoint = "/mnt/b"; device = "/dev/disk/by-uuid/u2"; fsType = "xfs"; label = null; }; }"#;
    let u = unit(&[("settings", settings), ("fileSystems", fs)]);
    let failed: Vec<&str> = u["failedAssertions"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    assert_eq!(
        failed,
        [
            "services.homelab-probe.settings.mounts: mount /mnt/a: give one of uuid, label or device, not uuid and label (homelab-verify refuses the file).",
            "services.homelab-probe.settings.mounts: /mnt/a is listed 2 times; give one entry per path (homelab-verify refuses the file).",
            "services.homelab-probe.settings.drift: /d is listed with the owners `1:1`, `2:2`; every entry under it (the directory itself too) can have only one owner.",
        ]
    );
    let warnings: Vec<&str> = u["warnings"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    assert_eq!(
        warnings,
        [
            "services.homelab-probe: settings.mounts expects /mnt/a to be mounted, but this configuration does not declare it in fileSystems, so nothing mounts it at boot: homelab-probe-check.service will warn (mount_declared) and fail (mounted). Fix: fileSystems.\"/mnt/a\" = { device = \"/dev/disk/by-uuid/u\"; };",
            "services.homelab-probe: settings.mounts expects /mnt/a to be mounted, but this configuration does not declare it in fileSystems, so nothing mounts it at boot: homelab-probe-check.service will warn (mount_declared) and fail (mounted). Fix: fileSystems.\"/mnt/a\" = { };",
            "services.homelab-probe: settings.mounts expects UUID=u1 at /mnt/b, but this configuration mounts UUID=u2 there (fileSystems.\"/mnt/b\"): homelab-probe-check.service will fail (mount_declared). Fix the expectation or: fileSystems.\"/mnt/b\" = { device = \"/dev/disk/by-uuid/u1\"; fsType = \"ext4\"; };",
            "services.homelab-probe: settings.mounts expects /mnt/b to be ext4, but this configuration declares fileSystems.\"/mnt/b\".fsType = \"xfs\": homelab-probe-check.service will fail (mount_fstype).",
        ]
    );
}

#[test]
fn nix_module_unit_script_fails_with_the_report_and_ends_with_the_fixes() {
    let r = run_script(true, &sysroot("nixos-default"), &fixture("expect/render-110.toml"), true);
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
    let r = run_script(true, &sysroot("nixos-default"), &fixture("expect/nixos-default.toml"), true);
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
    let r = run_script(true, &sysroot("headless"), &bad, true);
    assert_eq!(r.code, 2);
    assert!(r.report.is_none(), "the stale report is removed when a run starts");
}

#[test]
fn nix_module_unit_script_without_json_report_keeps_the_exit_code() {
    let r = run_script(false, &sysroot("nixos-default"), &fixture("expect/render-110.toml"), false);
    assert_eq!(r.code, 1);
    assert!(r.stdout.trim_end().ends_with("fail: FAILED"), "{}", r.stdout);
    assert!(r.report.is_none());
}
