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

/// The committed snapshot of the VM-shaped old host, changed by `edit`, written to `dir`.
fn edited_snapshot(dir: &std::path::Path, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let committed = homelab_test_support::fixture("snapshots/testvm.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(committed).unwrap()).unwrap();
    edit(&mut v);
    let path = dir.join("snapshot.json");
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    path
}

#[test]
fn plan_refuses_a_snapshot_no_module_keeps_with_exit_2_and_writes_nothing() {
    let t = tempfile::tempdir().unwrap();
    // The media group at gid 1, with palav in it: on NixOS gid 1 is wheel.
    let snap = edited_snapshot(t.path(), |v| {
        let groups = v["identities"]["groups"].as_array_mut().unwrap();
        groups.push(serde_json::json!({
            "name": "media", "gid": 1, "members": ["palav"],
            "uses": [{ "kind": "data_root_owner", "path": "/mnt/PlexStorage" }]
        }));
        v["identities"]["users"][0]["groups"].as_array_mut().unwrap().push("media".into());
    });
    let out = verify().arg("plan").arg(&snap).arg("--out").arg(t.path().join("plan")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("plan refused for"), "{err}");
    assert!(
        err.contains("group media: media keeps gid 1 (owns /mnt/PlexStorage), but on NixOS gid 1 is wheel"),
        "{err}"
    );
    assert!(err.contains("groupmod -g <free gid> media"), "{err}");
    assert!(err.ends_with('\n'), "{err:?}");
    assert!(!t.path().join("plan").exists(), "a refusal writes nothing");
}

#[test]
fn plan_warnings_end_their_lines_whatever_the_snapshot_holds() {
    let t = tempfile::tempdir().unwrap();
    // A kernel-name fstab spec and mount point with escape sequences and a carriage return, as
    // a hand-edited fstab can have: each warning is still one line, ended.
    let snap = edited_snapshot(t.path(), |v| {
        v["fstab"].as_array_mut().unwrap().push(serde_json::json!({
            "line": 9, "spec": "/dev/sdc\u{1b}]1", "file": "/mnt/e\u{1b}[x\r", "vfstype": "ext4",
            "options": ["defaults"], "freq": 0, "passno": 2
        }));
    });
    let out = verify().arg("plan").arg(&snap).arg("--out").arg(t.path().join("plan")).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.ends_with('\n') && !err.contains('\u{1b}') && !err.contains('\r'), "{err:?}");
    for line in err.lines() {
        assert!(line.starts_with("wrote ") || line.starts_with("warning: "), "a message ran into another: {line:?}");
    }
    assert!(err.contains("no UUID is known for it\n"), "{err}");
}
