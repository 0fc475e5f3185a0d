//! `capture` and `plan` from the command line: the files they write, refusing to overwrite,
//! bad input, and the whole round trip into `check`.

use std::path::PathBuf;

use homelab_test_support::verify;

fn fixture(name: &str) -> PathBuf {
    homelab_test_support::sysroot(&format!("migration/{name}"))
}

#[test]
fn capture_plan_check_round_trip() {
    let t = tempfile::tempdir().unwrap();
    let snap = t.path().join("snapshot.json");
    let out = verify()
        .args(["capture", "--data-root", "/mnt/PlexStorage", "--root"])
        .arg(fixture("oldhost"))
        .arg("-o")
        .arg(&snap)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stack plex in /home/palav/docker/plex: plex"), "{err}");
    assert!(err.contains(&format!("wrote {}", snap.display())), "{err}");

    // A second capture does not replace the first without --force.
    let again = verify().args(["capture", "--root"]).arg(fixture("oldhost")).arg("-o").arg(&snap).output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists: not replacing it without --force"));

    let dir = t.path().join("plan");
    let out = verify().arg("plan").arg(&snap).arg("--out").arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning: group render: gid 110 is reserved for systemd-journal-gateway"), "{err}");
    for f in ["hardware-parity.nix", "homelab-probe.toml", "MIGRATION.md"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let replan = verify().arg("plan").arg(&snap).arg("--out").arg(&dir).output().unwrap();
    assert_eq!(replan.status.code(), Some(2));
    let forced = verify().arg("plan").arg(&snap).arg("--out").arg(&dir).arg("--force").output().unwrap();
    assert_eq!(forced.status.code(), Some(0));

    let expect = dir.join("homelab-probe.toml");
    let ok =
        verify().args(["check", "--root"]).arg(fixture("newhost-ok")).arg("--expect").arg(&expect).output().unwrap();
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stdout));
    let bad = verify()
        .args(["check", "--root"])
        .arg(fixture("newhost-render303"))
        .arg("--expect")
        .arg(&expect)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let text = String::from_utf8_lossy(&bad.stdout);
    assert!(text.contains("FAIL  group render"), "{text}");
    assert!(text.contains("fix (nixos): users.groups.render.gid = lib.mkForce 110;"), "{text}");
}

#[test]
fn capture_to_stdout_is_the_snapshot_json() {
    let out = verify().args(["capture", "-o", "-", "--root"]).arg(fixture("oldhost")).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["identities"]["users"][0]["name"], "palav");
}

#[test]
fn a_bad_snapshot_is_exit_2_with_file_and_line() {
    let t = tempfile::tempdir().unwrap();
    let snap = t.path().join("snapshot.json");
    std::fs::write(&snap, "{\n  \"schema_version\": 1,\n  \"tool\": 5\n}\n").unwrap();
    let out = verify().arg("plan").arg(&snap).arg("--out").arg(t.path().join("o")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:3:", snap.display())), "{err}");
    std::fs::write(&snap, "{\"schema_version\": 7}").unwrap();
    let out = verify().arg("plan").arg(&snap).arg("--out").arg(t.path().join("o")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported snapshot schema_version 7"));
    assert!(!t.path().join("o").exists(), "nothing is written for bad input");
}
