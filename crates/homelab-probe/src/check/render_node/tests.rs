use super::*;
use crate::model::acl::AclEntry;
use crate::model::expectations::AccessExpectation;
use crate::model::finding::Status;
use crate::model::fs::FileStat;
use crate::sources::group::GroupEntry;
use crate::sources::passwd::PasswdEntry;
use proptest::prelude::*;

const IDS: [u32; 5] = [0, 1000, 1001, 110, 303];

fn group(name: &str, gid: u32) -> GroupEntry {
    GroupEntry { name: name.into(), gid, members: Vec::new() }
}

fn render_exp(mode: Option<u32>, access: Vec<AccessExpectation>) -> RenderExpectation {
    RenderExpectation { group: "render".into(), mode: mode.map(FileMode), required: false, nodes: Vec::new(), access }
}

fn node(uid: u32, gid: u32, mode: u32, group_name: Option<&str>, acl: Option<Acl>) -> DrmNode {
    DrmNode {
        path: "/dev/dri/renderD128".into(),
        kind: DrmNodeKind::Render,
        stat: FileStat { kind: FileKind::Char, uid, gid, mode: FileMode(mode), rdev: None },
        owner_name: None,
        group_name: group_name.map(str::to_owned),
        acl,
        kernel_driver: None,
        pci: None,
        drm_driver: None,
        drm_driver_note: None,
    }
}

fn remedy_of<'a>(findings: &'a [Finding], check: &str) -> &'a Finding {
    findings.iter().find(|f| f.check == check).unwrap_or_else(|| panic!("no {check} in {findings:#?}"))
}

fn plex(gid: u32) -> AccessExpectation {
    AccessExpectation {
        name: Some("plex".into()),
        uid: 1000,
        gid,
        groups: Vec::new(),
        rootless: None,
        keep_groups: false,
    }
}

/// A rootless container of palav's with `--user 1000:108` (as in the VM scenario
/// rootless_podman), with or without keep-groups.
fn rootless(keep_groups: bool) -> AccessExpectation {
    AccessExpectation {
        name: Some("plex".into()),
        uid: 1000,
        gid: 108,
        groups: Vec::new(),
        rootless: Some("palav".into()),
        keep_groups,
    }
}

/// render 108, palav (1000) in render or not.
fn rootless_ids(palav_in_render: bool) -> IdentityDb {
    let mut render = group("render", 108);
    if palav_in_render {
        render.members.push("palav".into());
    }
    let palav = PasswdEntry {
        name: "palav".into(),
        uid: 1000,
        gid: 1000,
        gecos: String::new(),
        home: "/home/palav".into(),
        shell: "/bin/sh".into(),
    };
    IdentityDb::from_entries(vec![render, group("palav", 1000)], vec![palav])
}

fn rootless_verdict(ids: &IdentityDb, mode: u32, keep_groups: bool) -> Finding {
    let r = render_exp(None, vec![rootless(keep_groups)]);
    let mut out = Vec::new();
    node_findings(&node(0, 108, mode, Some("render"), None), ids, &r, &Udevd::SystemdUnit, &mut out);
    remedy_of(&out, "render_access").clone()
}

#[test]
fn a_rootless_container_without_keep_groups_fails_on_a_0660_node_even_with_pgid_render() {
    // PGID 108 is render's number, but a gid of palav's namespace: no host group.
    let ids = rootless_ids(true);
    let f = rootless_verdict(&ids, 0o660, false);
    assert_eq!(f.status, Status::Fail, "{f:?}");
    let text = &f.remedy.as_ref().unwrap().text;
    assert!(text.starts_with("add keep-groups: GroupAdd=keep-groups in its quadlet unit"), "{text}");
    assert!(text.contains("(palav's host groups then open it)") && text.contains("MODE=\"0666\""), "{text}");
    assert!(!text.contains("group_add: [ \"108\" ]") && !text.contains("PGID="), "{text}");
    // With keep-groups palav's host render opens it; a 0666 node opens either way.
    assert_eq!(rootless_verdict(&ids, 0o660, true).status, Status::Pass);
    assert_eq!(rootless_verdict(&ids, 0o666, false).status, Status::Pass);
}

#[test]
fn a_rootless_container_with_keep_groups_whose_owner_lacks_the_group_is_told_about_the_owner() {
    let ids = rootless_ids(false);
    let f = rootless_verdict(&ids, 0o660, true);
    assert_eq!(f.status, Status::Fail, "{f:?}");
    let text = &f.remedy.as_ref().unwrap().text;
    // keep-groups is already on: the remedy is palav's host groups (or the mode), never
    // keep-groups again.
    assert!(text.starts_with("put palav in group render"), "{text}");
    assert!(text.contains("users.users.palav.extraGroups = [ \"render\" ];"), "{text}");
    assert!(!text.contains("add keep-groups"), "{text}");
    // Without keep-groups both are needed.
    let text = rootless_verdict(&ids, 0o660, false).remedy.unwrap().text;
    assert!(text.contains("add keep-groups") && text.contains("and put palav in group render"), "{text}");
}

#[test]
fn a_0600_node_whose_group_is_the_pgid_gets_a_mode_rule_not_the_pgid() {
    // The PGID is already the node's group: "PGID=110 or group_add [110]" would change nothing.
    let ids = IdentityDb::from_entries(vec![group("render", 110)], Vec::new());
    let r = render_exp(None, vec![plex(110)]);
    let mut out = Vec::new();
    node_findings(&node(0, 110, 0o600, Some("render"), None), &ids, &r, &Udevd::SystemdUnit, &mut out);
    let f = remedy_of(&out, "render_access");
    assert_eq!(f.status, Status::Fail);
    let text = &f.remedy.as_ref().unwrap().text;
    assert!(!text.contains("PGID=110") && !text.contains("group_add"), "{text}");
    assert!(text.contains("MODE=\"0660\""), "{text}");
}

#[test]
fn a_user_acl_on_a_node_the_pgid_already_opens_is_not_a_warning() {
    // render is already 110, the node is render 0660 with a uaccess entry for uid 1000:
    // without the entry the group bits let plex in, so there is nothing to pin.
    let ids = IdentityDb::from_entries(vec![group("render", 110)], Vec::new());
    let acl = Acl {
        entries: vec![
            AclEntry { tag: AclTag::UserObj, id: None, perm: 6 },
            AclEntry { tag: AclTag::User, id: Some(1000), perm: 6 },
            AclEntry { tag: AclTag::GroupObj, id: None, perm: 6 },
            AclEntry { tag: AclTag::Mask, id: None, perm: 6 },
            AclEntry { tag: AclTag::Other, id: None, perm: 0 },
        ],
    };
    let r = render_exp(Some(0o660), vec![plex(110)]);
    let mut out = Vec::new();
    node_findings(&node(0, 110, 0o660, Some("render"), Some(acl.clone())), &ids, &r, &Udevd::SystemdUnit, &mut out);
    let f = remedy_of(&out, "render_access");
    assert_eq!(f.status, Status::Pass, "{f:?}");
    assert!(f.message.contains("via group bits; an ACL entry for uid 1000 grants it too"), "{}", f.message);
    // With the node on another group, the entry is all plex has: a warning whose remedy
    // (group_add of the node's gid, or pinning render to 110) is a real change.
    let ids = IdentityDb::from_entries(vec![group("render", 108)], Vec::new());
    let mut out = Vec::new();
    node_findings(&node(0, 108, 0o660, Some("render"), Some(acl)), &ids, &r, &Udevd::SystemdUnit, &mut out);
    let f = remedy_of(&out, "render_access");
    assert_eq!(f.status, Status::Warn);
    let text = &f.remedy.as_ref().unwrap().text;
    assert!(text.starts_with("users.groups.render.gid = lib.mkForce 110;"), "{text}");
    assert!(text.contains("group_add: [ \"108\" ]"), "{text}");
}

/// An ACL as the kernel keeps it: base entries that follow the mode, the mask equal to the
/// mode's group bits when there are named entries.
fn acl_for(mode: u32, users: &[(u32, u32)], groups: &[(u32, u32)], group_obj: u32) -> (u32, Option<Acl>) {
    if users.is_empty() && groups.is_empty() {
        return (mode, None);
    }
    let mask = (mode >> 3) & 7;
    let mut entries = vec![AclEntry { tag: AclTag::UserObj, id: None, perm: (mode >> 6) & 7 }];
    entries.extend(users.iter().map(|&(u, p)| AclEntry { tag: AclTag::User, id: Some(u), perm: p }));
    entries.push(AclEntry { tag: AclTag::GroupObj, id: None, perm: group_obj });
    entries.extend(groups.iter().map(|&(g, p)| AclEntry { tag: AclTag::Group, id: Some(g), perm: p }));
    entries.push(AclEntry { tag: AclTag::Mask, id: None, perm: mask });
    entries.push(AclEntry { tag: AclTag::Other, id: None, perm: mode & 7 });
    (mode, Some(Acl { entries }))
}

fn dedup(v: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for (id, p) in v {
        if !out.iter().any(|(i, _)| *i == id) {
            out.push((id, p));
        }
    }
    out
}

/// Every alternative of `fix`, applied to the inputs, lets `cred` in.
fn assert_fix_works(fix: &AccessFix, n: &DrmNode, acl: Option<&Acl>, cred: &Credentials) -> Result<(), TestCaseError> {
    prop_assert!(!fix.alternatives.is_empty());
    for i in 0..fix.alternatives.len() {
        let changes = fix.changes(i);
        prop_assert!(!changes.is_empty(), "an empty alternative changes nothing");
        prop_assert!(
            access::passes_after(&changes, &n.stat, acl, cred, RW),
            "alternative {i} {changes:?} does not let {cred:?} open {:?} acl {acl:?} ({})",
            n.stat,
            fix.remedy().text
        );
    }
    prop_assert!(!fix.remedy().text.is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]
    /// Whenever a remedy is printed, applying it to the inputs and deciding again passes.
    #[test]
    fn every_printed_access_remedy_makes_the_check_pass(
        owner in proptest::sample::select(&IDS[..]),
        node_gid in proptest::sample::select(&IDS[..]),
        mode in 0u32..0o1000,
        users in proptest::collection::vec((proptest::sample::select(&IDS[1..]), 0u32..8), 0..2),
        groups in proptest::collection::vec((proptest::sample::select(&IDS[..]), 0u32..8), 0..2),
        group_obj in 0u32..8,
        render_gid in proptest::sample::select(&[110u32, 303, 1001][..]),
        // 0: the node's gid is render's, 1: another named group's, 2: no group's (stale).
        naming in 0u8..3,
        palav_holds_1000 in any::<bool>(),
        expected_mode in proptest::option::of(proptest::sample::select(&[0o660u32, 0o666, 0o600][..])),
        uid in proptest::sample::select(&IDS[1..]),
        gid in proptest::sample::select(&IDS[..]),
        extra in proptest::collection::vec(proptest::sample::select(&IDS[..]), 0..2),
    ) {
        let (mode, acl) = acl_for(mode, &dedup(users), &dedup(groups), group_obj);
        let mut db = vec![group("render", render_gid)];
        let (gid_of_node, name) = match naming {
            0 => (render_gid, Some("render")),
            1 if node_gid != render_gid => (node_gid, Some("video")),
            _ if node_gid != render_gid => (node_gid, None),
            _ => (render_gid, Some("render")),
        };
        if name == Some("video") {
            db.push(group("video", gid_of_node));
        }
        if palav_holds_1000 && render_gid != 1000 && gid_of_node != 1000 {
            db.push(group("palav", 1000));
        }
        let ids = IdentityDb::from_entries(db, Vec::new());
        let n = node(owner, gid_of_node, mode, name, acl.clone());
        let a = AccessExpectation { name: None, uid, gid, groups: extra, rootless: None, keep_groups: false };
        let r = render_exp(expected_mode, vec![a.clone()]);
        let ctx = AccessContext { n: &n, r: &r, render_gid: Some(render_gid), ids: &ids, udevd: &Udevd::SystemdUnit };
        let cred = Credentials { uid, gid, groups: a.groups.clone() };
        let mut findings = Vec::new();
        node_findings(&n, &ids, &r, &Udevd::SystemdUnit, &mut findings);
        let printed = remedy_of(&findings, "render_access");

        let d = access::decide(&n.stat, acl.as_ref(), &cred, RW);
        match (d.allowed, d.via) {
            (false, _) => {
                let fix = access_fix(&ctx, acl.as_ref(), &cred, true);
                prop_assert!(fix.is_some(), "no remedy for a denied {cred:?} on {:?} {acl:?}", n.stat);
                let fix = fix.unwrap();
                assert_fix_works(&fix, &n, acl.as_ref(), &cred)?;
                prop_assert_eq!(printed.remedy.as_ref().map(|r| &r.text), Some(&fix.remedy().text));
            }
            (true, Via::AclUser) => {
                let headless = without_user_entry(acl.as_ref(), uid);
                if let Some(fix) = access_fix(&ctx, headless.as_ref(), &cred, true) {
                    assert_fix_works(&fix, &n, headless.as_ref(), &cred)?;
                    prop_assert_eq!(printed.remedy.as_ref().map(|r| &r.text), Some(&fix.remedy().text));
                } else {
                    prop_assert_eq!(printed.status, Status::Pass);
                }
            }
            (true, _) => prop_assert!(printed.remedy.is_none(), "a remedy for a credential that passes: {printed:?}"),
        }
        // The render group's own access, which can only be fixed on the node.
        let group_cred = Credentials { uid: u32::MAX - 1, gid: render_gid, groups: Vec::new() };
        if let Some(fix) = access_fix(&ctx, acl.as_ref(), &group_cred, false) {
            assert_fix_works(&fix, &n, acl.as_ref(), &group_cred)?;
            let joins = fix.alternatives.iter().flatten().any(|s| matches!(s.change, Change::JoinGroup { .. } | Change::SetPrimaryGroup { .. }));
            prop_assert!(!joins, "the render group cannot join a group: {}", fix.remedy().text);
        }
    }
}
