//! Probe decisions over fixture sysroots of realistic hosts (see fixtures/README.md).

use homelab_probe::Status;
use rstest::rstest;

mod common;
use common::{find, run};

/// (check, subject, status) triples each scenario must produce.
#[rstest]
#[case::popos_matches("popos-render-110", Some("render-110.toml"), &[
    ("group_gid", "group render", Status::Pass),
    ("user_groups", "user palav", Status::Pass),
    ("render_group", "/dev/dri/renderD128", Status::Pass),
    ("render_access", "/dev/dri/renderD128", Status::Pass),
])]
#[case::nixos_default_wants_110("nixos-default", Some("render-110.toml"), &[
    ("group_gid", "group render", Status::Fail),
    // 0666 lets PGID 110 in through the other bits, so Plex still works.
    ("render_access", "/dev/dri/renderD128", Status::Pass),
])]
#[case::nixos_forced_110("nixos-render-110", Some("render-110.toml"), &[
    ("group_gid", "group render", Status::Pass),
    ("render_group", "/dev/dri/renderD128", Status::Pass),
])]
#[case::nixos_defaults_match("nixos-default", Some("nixos-default.toml"), &[
    ("group_gid", "group render", Status::Pass),
    ("group_gid", "group video", Status::Pass),
    ("render_mode", "/dev/dri/renderD128", Status::Pass),
])]
#[case::collision("nixos-collision-110", Some("render-110.toml"), &[
    ("group_gid", "group render", Status::Fail),
    ("gid_collision", "gid 110", Status::Fail),
])]
#[case::debian_dynamic_gid("debian12-intel", Some("debian-0660.toml"), &[
    ("render_group", "/dev/dri/renderD128", Status::Pass),
    ("render_mode", "/dev/dri/renderD128", Status::Pass),
    // PUID 1000 / PGID 1000 is not in render (108) and 0660 keeps others out.
    ("render_access", "/dev/dri/renderD128", Status::Fail),
])]
#[case::debian_vs_nixos_mode("nixos-default", Some("debian-0660.toml"), &[
    ("render_mode", "/dev/dri/renderD128", Status::Warn),
])]
#[case::stale_udev_gid("udev-stale-gid", Some("render-110.toml"), &[
    ("group_gid", "group render", Status::Pass),
    ("stale_gid", "/dev/dri/renderD128", Status::Fail),
    ("render_access", "/dev/dri/renderD128", Status::Fail),
])]
#[case::headless_required("headless", Some("render-110.toml"), &[
    ("render_present", "/dev/dri", Status::Fail),
])]
#[case::headless_builtin("headless", None, &[
    ("render_present", "/dev/dri", Status::Skip),
    ("consistency", "/etc/group, /etc/passwd", Status::Pass),
])]
#[case::truncated_group("truncated-group", Some("render-110.toml"), &[
    ("identity_source", "/etc/group:19", Status::Fail),
    // The rest of the file still counts.
    ("group_gid", "group render", Status::Pass),
])]
#[case::duplicates_builtin("identity-duplicates", None, &[
    ("duplicate_name", "group render", Status::Fail),
    // A shared id is a warning until an expectation pins it.
    ("duplicate_gid", "gid 110", Status::Warn),
    ("duplicate_name", "user palav", Status::Fail),
    ("duplicate_uid", "uid 1000", Status::Warn),
])]
#[case::duplicates_pinned("identity-duplicates", Some("render-110.toml"), &[
    ("duplicate_gid", "gid 110", Status::Fail),
    ("duplicate_uid", "uid 1000", Status::Fail),
    // The first line counts: render is still 110, palav still 1000.
    ("group_gid", "group render", Status::Pass),
    ("user_uid", "user palav", Status::Pass),
])]
#[case::debian_builtin("debian12-intel", None, &[
    ("node", "/dev/dri/renderD128", Status::Pass),
    ("render_group", "/dev/dri/renderD128", Status::Pass),
    ("render_group_access", "/dev/dri/renderD128", Status::Pass),
])]
fn scenario(#[case] root: &str, #[case] expect: Option<&str>, #[case] want: &[(&str, &str, Status)]) {
    let findings = run(root, expect);
    for (check, subject, status) in want {
        let f = find(&findings, check, subject);
        assert_eq!(f.status, *status, "{check} {subject}: {f:#?}");
        if f.status == Status::Skip {
            assert!(!f.message.is_empty(), "a skip says why");
        }
    }
}

#[test]
fn render_303_where_110_is_expected_remedy_is_mkforce() {
    let findings = run("nixos-default", Some("render-110.toml"));
    let f = find(&findings, "group_gid", "group render");
    assert_eq!(
        f.message,
        "group render has gid 303, expected 110 (NixOS reserves gid 110 for systemd-journal-gateway in ids.nix: enabling the module that creates it would collide)"
    );
    assert_eq!(f.remedy.as_ref().unwrap().text, "users.groups.render.gid = lib.mkForce 110;");
}

#[test]
fn the_nixos_reservation_is_remarked_on_nixos_hosts_only() {
    // debian12-intel is nixos-default's machine before the move: same gid question, no NixOS.
    let findings = run("debian12-intel", Some("render-110.toml"));
    let f = find(&findings, "group_gid", "group render");
    assert_eq!(f.message, "group render has gid 108, expected 110");
    // The remedy is still the NixOS line: that is where the host is going.
    assert_eq!(f.remedy.as_ref().unwrap().text, "users.groups.render.gid = lib.mkForce 110;");
}

#[test]
fn stale_gid_names_the_udev_trap() {
    let findings = run("udev-stale-gid", Some("render-110.toml"));
    let f = find(&findings, "stale_gid", "/dev/dri/renderD128");
    assert!(f.message.contains("gid 108, which no group holds (render is gid 110 now)"), "{}", f.message);
    assert!(f.message.contains("udevd"), "{}", f.message);
    assert!(
        f.remedy.as_ref().unwrap().text.starts_with("systemctl restart systemd-udevd && udevadm trigger --action=add")
    );
}

#[test]
fn access_failure_remedy_pins_the_render_gid_to_the_pgid() {
    let findings = run("debian12-intel", Some("render-110.toml"));
    let f = findings.iter().find(|f| f.check == "render_access").unwrap();
    assert_eq!(f.status, Status::Fail);
    assert!(
        f.remedy.as_ref().unwrap().text.starts_with("users.groups.render.gid = lib.mkForce 110;"),
        "{:?}",
        f.remedy
    );
}

#[test]
fn inventory_reads_sysfs() {
    let findings = run("debian12-intel", None);
    let f = find(&findings, "node", "/dev/dri/renderD128");
    let node = &f.evidence["node"];
    assert_eq!(node["kernel_driver"], "i915");
    assert_eq!(node["pci"]["address"], "0000:00:02.0");
    assert_eq!(node["pci"]["vendor"], "0x8086");
    assert_eq!(node["stat"]["mode"], "0660");
    assert_eq!(node["group_name"], "render");
    assert_eq!(f.message, "root:render 0660, driver i915, PCI 0000:00:02.0 [8086:46a6]");
}

#[test]
fn access_failure_for_a_pgid_another_group_holds_suggests_group_add() {
    // jellyfin runs with PUID/PGID 1000/1000: gid 1000 is palav's own group, so pinning render
    // to 1000 would collide; the fix is group_add with the render gid.
    let findings = run("debian12-intel", Some("debian-0660.toml"));
    let f = findings.iter().find(|f| f.check == "render_access").unwrap();
    assert_eq!(f.status, Status::Fail);
    let r = f.remedy.as_ref().unwrap();
    assert_eq!(r.kind, homelab_probe::RemedyKind::Manual);
    assert!(r.text.starts_with("add group_add: [ \"108\" ] to the container (gid 1000 is group palav"), "{}", r.text);
}

#[test]
fn duplicate_names_and_ids_name_their_lines_and_holders() {
    let findings = run("identity-duplicates", Some("render-110.toml"));
    let group = find(&findings, "duplicate_name", "group render");
    assert_eq!(group.message, "group render is defined on lines 16, 19 of /etc/group; only the first counts");
    let r = group.remedy.as_ref().unwrap();
    assert_eq!(r.kind, homelab_probe::RemedyKind::Manual);
    assert!(r.text.starts_with("remove all but one render line from /etc/group"), "{}", r.text);
    let gid = find(&findings, "duplicate_gid", "gid 110");
    assert_eq!(gid.message, "gid 110 is held by groups render, jellyfin: files they own show the first name only");
    assert_eq!(gid.evidence["groups"], serde_json::json!(["render", "jellyfin"]));
    let user = find(&findings, "duplicate_name", "user palav");
    assert_eq!(user.message, "user palav is defined on lines 8, 10 of /etc/passwd; only the first counts");
    assert!(user.remedy.as_ref().unwrap().text.starts_with("remove all but one palav line from /etc/passwd"));
    let uid = find(&findings, "duplicate_uid", "uid 1000");
    assert_eq!(uid.message, "uid 1000 is held by users palav, plex");
    assert_eq!(uid.evidence["users"], serde_json::json!(["palav", "plex"]));
    // Nothing claims the files are clean, and the same files without the extra lines are.
    assert!(findings.iter().all(|f| f.check != "consistency"), "{findings:#?}");
    let clean = run("popos-render-110", Some("render-110.toml"));
    assert!(clean.iter().all(|f| !f.check.starts_with("duplicate_")), "{clean:#?}");
    find(&clean, "consistency", "/etc/group, /etc/passwd");
}
