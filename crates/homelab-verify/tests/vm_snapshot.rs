//! The snapshot the `generated` NixOS VM test plans from
//! (`crates/homelab-probe/tests/fixtures/snapshots/testvm.json`, read by
//! nixos-tests/generated.nix) is what `homelab-verify capture` writes for the fixture sysroot
//! `migration/testvm`, an old host shaped like that VM (one virtio GPU, the data disk by UUID,
//! palav 1000 in render 110, a Plex stack with PUID 1000 / PGID 110 and `/dev/dri`). Only the
//! two fields that differ between runs are fixed: `host.root` (where the checkout is) and
//! `captured_at` (the clock). A change to `capture` or to the sysroot that changes the snapshot
//! fails this test, so the committed file cannot rot; to write it again:
//! `HOMELAB_PROBE_REWRITE_SNAPSHOT=1 cargo test -p homelab-verify --test vm_snapshot`.

use homelab_test_support::{fixture, sysroot, verify};

/// `host.root` in the committed snapshot: the sysroot, relative to the repository.
const ROOT: &str = "crates/homelab-probe/tests/fixtures/migration/testvm";
/// `captured_at` in the committed snapshot.
const CAPTURED_AT: &str = "2026-01-01T00:00:00Z";

/// `old` replaced by `new` in `text`, where `old` must occur exactly once.
fn replace_once(text: &str, old: &str, new: &str) -> String {
    assert_eq!(text.matches(old).count(), 1, "{old} must occur once in the snapshot:\n{text}");
    text.replacen(old, new, 1)
}

/// What `capture` writes for the sysroot now, with the two run-dependent fields fixed.
fn captured() -> String {
    let sysroot = sysroot("migration/testvm").canonicalize().unwrap();
    let out = verify().args(["capture", "-o", "-", "--root"]).arg(&sysroot).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let json = |v: &serde_json::Value| serde_json::to_string(v).unwrap();
    let text = replace_once(
        &text,
        &format!("\"root\": {}", json(&v["host"]["root"])),
        &format!("\"root\": {}", json(&ROOT.into())),
    );
    replace_once(
        &text,
        &format!("\"captured_at\": {}", json(&v["captured_at"])),
        &format!("\"captured_at\": {}", json(&CAPTURED_AT.into())),
    )
}

#[test]
fn committed_vm_test_snapshot_is_what_capture_writes() {
    let file = fixture("snapshots/testvm.json");
    let now = captured();
    if std::env::var_os("HOMELAB_PROBE_REWRITE_SNAPSHOT").is_some() {
        std::fs::write(&file, &now).unwrap();
    }
    let committed = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        committed == now,
        "{} differs from what capture writes now for {ROOT} (rewrite it with \
         HOMELAB_PROBE_REWRITE_SNAPSHOT=1 cargo test -p homelab-verify --test vm_snapshot, and review the diff):\n{now}",
        file.display()
    );
}

#[test]
fn vm_test_snapshot_is_the_vm_shaped_host() {
    // What nixos-tests/generated.nix relies on, asked of the committed file itself.
    let text = std::fs::read_to_string(fixture("snapshots/testvm.json")).unwrap();
    let s: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(s["gpus"].as_array().unwrap().len(), 1);
    let gpu = &s["gpus"][0];
    assert_eq!(
        (gpu["vendor"].as_str(), gpu["pci"]["vendor"].as_str(), gpu["kernel_driver"].as_str()),
        (Some("virtio"), Some("0x1af4"), Some("virtio_gpu"))
    );
    assert_eq!(gpu["render_node"], "/dev/dri/renderD128");
    let data: Vec<&serde_json::Value> =
        s["fstab"].as_array().unwrap().iter().filter(|e| e["file"] == "/mnt/PlexStorage").collect();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["spec"], "UUID=5d3b7c1e-2f4a-4b8e-9c6d-0a1b2c3d4e5f");
    assert!(data[0]["options"].as_array().unwrap().iter().any(|o| o == "nofail"));
    let render = s["identities"]["groups"].as_array().unwrap().iter().find(|g| g["name"] == "render").unwrap();
    assert_eq!(render["gid"], 110);
    let plex = &s["compose"]["stacks"][0]["services"][0];
    assert_eq!(
        (plex["environment"]["PUID"].as_str(), plex["environment"]["PGID"].as_str()),
        (Some("1000"), Some("110"))
    );
    assert_eq!(plex["devices"][0]["source"], "/dev/dri");
}

#[test]
fn the_stack_directory_the_vm_test_restores_is_whole_in_the_checkout() {
    // nixos-tests/generated.nix restores migration/testvm's Plex stack from the fixture sources,
    // not from a built sysroot: no layer may hold part of it.
    let rel = "home/palav/docker/plex";
    let files = |dir: std::path::PathBuf| {
        let mut v: Vec<(std::ffi::OsString, Vec<u8>)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap())
            .map(|e| (e.file_name(), std::fs::read(e.path()).unwrap()))
            .collect();
        v.sort();
        v
    };
    let built = files(sysroot("migration/testvm").join(rel));
    assert!(built.len() >= 2, "{built:?}");
    assert_eq!(files(fixture("migration/testvm").join(rel)), built);
}
