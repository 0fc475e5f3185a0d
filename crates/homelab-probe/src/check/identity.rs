//! The identity probe: UID/GID parity.
//!
//! For each expected group and user it compares name and number, in both directions: the
//! name must have the number (else *missing* or *wrong id*), and the number must not belong to
//! another name (*collision*). Users must be in their required groups. Host-wide, it reports
//! duplicate names and ids in `/etc/group` and `/etc/passwd`, and lines it could not parse.

use std::collections::{BTreeMap, BTreeSet};

use crate::host::identity::{GROUP_FILE, IdentityDb, PASSWD_FILE, SourceProblem};
use crate::model::expectations::Expectations;
use crate::model::finding::{Finding, Probe, Remedy};
use crate::nixos;

const P: Probe = Probe::Identity;

/// Runs the identity probe. `nixos`: the host is NixOS, so a wanted gid that NixOS reserves
/// for another group is worth a remark.
pub fn check(ids: &IdentityDb, exp: &Expectations, nixos: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    source_problems(ids, &mut out);
    for (name, &gid) in &exp.groups {
        expected_group(ids, name, gid, nixos, &mut out);
    }
    for (name, u) in &exp.users {
        expected_user(ids, exp, name, u.uid, &u.groups, &mut out);
    }
    consistency(ids, exp, &mut out);
    out
}

fn source_problems(ids: &IdentityDb, out: &mut Vec<Finding>) {
    for p in ids.problems() {
        out.push(match p {
            SourceProblem::Unreadable { file, message } => Finding::fail(
                P,
                "identity_source",
                file.display().to_string(),
                format!("cannot read: {message}"),
                Remedy::manual(format!("restore {} (every user and group lookup depends on it)", file.display())),
            ),
            SourceProblem::Parse(e) => Finding::fail(
                P,
                "identity_source",
                format!("{}:{}", e.file.display(), e.line),
                format!("{e} (the line is ignored, as the C library ignores it)"),
                Remedy::manual(format!(
                    "repair or remove line {} of {} (on NixOS with users.mutableUsers = false, activation rewrites it)",
                    e.line,
                    e.file.display()
                )),
            ),
        });
    }
}

/// The sentence NixOS users need when a wanted gid is one NixOS reserves for another group.
fn nixos_reservation_note(name: &str, gid: u32) -> Option<String> {
    nixos::gid_reserved_by(gid).filter(|holder| *holder != name).map(|holder| {
        format!("NixOS reserves gid {gid} for {holder} in ids.nix: enabling the module that creates it would collide")
    })
}

fn expected_group(ids: &IdentityDb, name: &str, gid: u32, nixos: bool, out: &mut Vec<Finding>) {
    let subject = format!("group {name}");
    let by_name = ids.group_by_name(name);
    let holder = ids.group_by_gid(gid).filter(|h| h.name != name);
    let remedy = Remedy::nixos(nixos::group_gid_line(name, gid));
    let note =
        nixos.then(|| nixos_reservation_note(name, gid)).flatten().map(|n| format!(" ({n})")).unwrap_or_default();
    let f = match &by_name {
        Some(g) if g.gid == gid => Finding::pass(P, "group_gid", &subject, format!("group {name} has gid {gid}")),
        Some(g) => Finding::fail(
            P,
            "group_gid",
            &subject,
            format!("group {name} has gid {}, expected {gid}{note}", g.gid),
            remedy,
        )
        .evidence("gid", g.gid),
        None => Finding::fail(
            P,
            "group_missing",
            &subject,
            format!("group {name} does not exist (expected gid {gid}){note}"),
            remedy,
        ),
    };
    out.push(f.evidence("expected_gid", gid));
    if let Some(h) = holder {
        let fix = match nixos::static_gid(&h.name) {
            Some(_) => format!(
                "{}  # and move {} elsewhere: users.groups.{}.gid = lib.mkForce <free gid>; (or disable the service that creates it)",
                nixos::group_gid_line(name, gid),
                h.name,
                h.name
            ),
            None => format!("{}  # and give {} another gid", nixos::group_gid_line(name, gid), h.name),
        };
        out.push(
            Finding::fail(
                P,
                "gid_collision",
                format!("gid {gid}"),
                format!("gid {gid} belongs to group {}, but {name} must have it", h.name),
                Remedy::nixos(fix),
            )
            .evidence("holder", &h.name)
            .evidence("wanted_by", name),
        );
    }
}

fn expected_user(
    ids: &IdentityDb,
    exp: &Expectations,
    name: &str,
    uid: Option<u32>,
    groups: &[String],
    out: &mut Vec<Finding>,
) {
    let subject = format!("user {name}");
    let user = ids.user_by_name(name);
    if let Some(uid) = uid {
        if let Some(h) = ids.user_by_uid(uid).filter(|h| h.name != name) {
            out.push(
                Finding::fail(
                    P,
                    "uid_collision",
                    format!("uid {uid}"),
                    format!("uid {uid} belongs to user {}, but {name} must have it", h.name),
                    Remedy::nixos(format!("{}  # and give {} another uid", nixos::user_uid_line(name, uid), h.name)),
                )
                .evidence("holder", &h.name)
                .evidence("wanted_by", name),
            );
        }
    }
    let Some(user) = user else {
        let mut text =
            format!("users.users.{} = {{ isNormalUser = true;", crate::nix_expr::attr_name(name).unwrap_or_default());
        if let Some(uid) = uid {
            text.push_str(&format!(" uid = {uid};"));
        }
        if !groups.is_empty() {
            text.push_str(&format!(" extraGroups = {};", crate::nix_expr::string_list(groups).unwrap_or_default()));
        }
        text.push_str(" };");
        out.push(
            Finding::fail(P, "user_missing", &subject, format!("user {name} does not exist"), Remedy::nixos(text))
                .evidence("expected_uid", uid),
        );
        return;
    };
    match uid {
        Some(uid) if uid != user.uid => out.push(
            Finding::fail(
                P,
                "user_uid",
                &subject,
                format!("user {name} has uid {}, expected {uid}", user.uid),
                Remedy::nixos(nixos::user_uid_line(name, uid)),
            )
            .evidence("uid", user.uid)
            .evidence("expected_uid", uid),
        ),
        Some(uid) => out.push(Finding::pass(P, "user_uid", &subject, format!("user {name} has uid {uid}"))),
        None => out.push(Finding::pass(P, "user_uid", &subject, format!("user {name} exists (uid {})", user.uid))),
    }
    if groups.is_empty() {
        return;
    }
    let have = ids.gids_of(&user);
    let mut missing = Vec::new();
    let mut absent = Vec::new();
    for g in groups {
        match ids.group_by_name(g) {
            Some(e) if have.contains(&e.gid) => {}
            Some(_) => missing.push(g.clone()),
            None => absent.push(g.clone()),
        }
    }
    let have_names: Vec<String> =
        have.iter().map(|&g| ids.group_by_gid(g).map_or_else(|| g.to_string(), |e| e.name)).collect();
    let f = if missing.is_empty() && absent.is_empty() {
        Finding::pass(P, "user_groups", &subject, format!("user {name} is in {}", groups.join(", ")))
    } else {
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("not in {}", missing.join(", ")));
        }
        if !absent.is_empty() {
            parts.push(format!("{} {} not exist", absent.join(", "), if absent.len() == 1 { "does" } else { "do" }));
        }
        let mut text = nixos::user_extra_groups_line(name, &[missing.clone(), absent.clone()].concat());
        for g in &absent {
            if let Some(&gid) = exp.groups.get(g) {
                text.push('\n');
                text.push_str(&nixos::group_gid_line(g, gid));
            } else {
                text.push_str(&format!(
                    "\nusers.groups.{} = {{ }};",
                    crate::nix_expr::attr_name(g).unwrap_or_default()
                ));
            }
        }
        Finding::fail(P, "user_groups", &subject, format!("user {name} is {}", parts.join("; ")), Remedy::nixos(text))
    };
    out.push(f.evidence("groups", have_names).evidence("required_groups", groups));
}

fn consistency(ids: &IdentityDb, exp: &Expectations, out: &mut Vec<Finding>) {
    let before = out.len();
    let mut group_names: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut by_gid: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    for (line, g) in ids.file_groups() {
        group_names.entry(&g.name).or_default().push(*line);
        let names = by_gid.entry(g.gid).or_default();
        if !names.contains(&g.name.as_str()) {
            names.push(&g.name);
        }
    }
    for (name, lines) in group_names.iter().filter(|(_, l)| l.len() > 1) {
        out.push(Finding::fail(
            P,
            "duplicate_name",
            format!("group {name}"),
            format!("group {name} is defined on lines {} of {GROUP_FILE}; only the first counts", join(lines)),
            Remedy::manual(format!(
                "remove all but one {name} line from {GROUP_FILE} (on NixOS: users.mutableUsers = false rewrites it)"
            )),
        ));
    }
    for (gid, names) in by_gid.iter().filter(|(_, n)| n.len() > 1) {
        let expected = names.iter().any(|n| exp.groups.get(*n) == Some(gid));
        let msg = format!("gid {gid} is held by groups {}: files they own show the first name only", names.join(", "));
        let used: BTreeSet<u32> = ids.file_groups().iter().map(|(_, g)| g.gid).collect();
        let fix = renumber_others(
            names,
            |n| exp.groups.get(n) == Some(gid),
            &used,
            nixos::gid_reserved_by,
            nixos::group_gid_line,
        );
        let f = Finding::fail_or_warn(expected, P, "duplicate_gid", format!("gid {gid}"), msg, fix);
        out.push(f.evidence("groups", names));
    }
    let mut user_names: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut by_uid: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    for (line, u) in ids.file_users() {
        user_names.entry(&u.name).or_default().push(*line);
        let names = by_uid.entry(u.uid).or_default();
        if !names.contains(&u.name.as_str()) {
            names.push(&u.name);
        }
    }
    for (name, lines) in user_names.iter().filter(|(_, l)| l.len() > 1) {
        out.push(Finding::fail(
            P,
            "duplicate_name",
            format!("user {name}"),
            format!("user {name} is defined on lines {} of {PASSWD_FILE}; only the first counts", join(lines)),
            Remedy::manual(format!("remove all but one {name} line from {PASSWD_FILE} (and its shadow entry)")),
        ));
    }
    for (uid, names) in by_uid.iter().filter(|(_, n)| n.len() > 1) {
        let expected = names.iter().any(|n| exp.users.get(*n).and_then(|u| u.uid) == Some(*uid));
        let msg = format!("uid {uid} is held by users {}", names.join(", "));
        let used: BTreeSet<u32> = ids.file_users().iter().map(|(_, u)| u.uid).collect();
        let wanted = |n: &str| exp.users.get(n).and_then(|u| u.uid) == Some(*uid);
        let fix = renumber_others(names, wanted, &used, nixos::uid_reserved_by, nixos::user_uid_line);
        let f = Finding::fail_or_warn(expected, P, "duplicate_uid", format!("uid {uid}"), msg, fix);
        out.push(f.evidence("users", names));
    }
    let known_gids: std::collections::BTreeSet<u32> = ids.file_groups().iter().map(|(_, g)| g.gid).collect();
    for (_, u) in ids.file_users() {
        if !known_gids.contains(&u.gid) && (ids.file_groups().is_empty() || ids.group_by_gid(u.gid).is_none()) {
            out.push(Finding::warn(
                P,
                "primary_group",
                format!("user {}", u.name),
                format!("user {}'s primary gid {} has no group", u.name, u.gid),
            ));
        }
    }
    if out.len() == before && ids.problems().is_empty() {
        out.push(Finding::pass(
            P,
            "consistency",
            format!("{GROUP_FILE}, {PASSWD_FILE}"),
            format!(
                "{} groups and {} users: no duplicate names or ids",
                ids.file_groups().len(),
                ids.file_users().len()
            ),
        ));
    }
}

fn join(lines: &[usize]) -> String {
    lines.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
}

/// The fix for one id held by several names: every name but the one that must keep it (an
/// expected one, else the first, which is the one the C library reports) moves to a free id,
/// one not in `used` and not reserved by NixOS, from 1000 up.
fn renumber_others(
    names: &[&str],
    keeps: impl Fn(&str) -> bool,
    used: &BTreeSet<u32>,
    reserved: fn(u32) -> Option<&'static str>,
    line: impl Fn(&str, u32) -> String,
) -> Remedy {
    let keeper = names.iter().position(|n| keeps(n)).unwrap_or(0);
    let mut taken = used.clone();
    let mut lines = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if i == keeper {
            continue;
        }
        let free = (1000..u32::MAX).find(|id| !taken.contains(id) && reserved(*id).is_none()).unwrap_or(u32::MAX - 1);
        taken.insert(free);
        lines.push(line(name, free));
    }
    let keeper = names.get(keeper).copied().unwrap_or_default();
    Remedy::nixos(format!("{}  # a free id for each, so {keeper} keeps its own", lines.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_id_moves_every_name_but_the_keeper_to_a_free_id() {
        // gid 110: render must keep it (expected); the journal gateway and a stray group move.
        let used: BTreeSet<u32> = [0, 110, 1000, 1001].into();
        let r = renumber_others(
            &["systemd-journal-gateway", "render", "media"],
            |n| n == "render",
            &used,
            nixos::gid_reserved_by,
            nixos::group_gid_line,
        );
        assert_eq!(r.kind, crate::model::finding::RemedyKind::Nixos);
        assert!(r.text.contains("users.groups.systemd-journal-gateway.gid = lib.mkForce 1002;"), "{}", r.text);
        assert!(r.text.contains("users.groups.media.gid = 1003;"), "{}", r.text);
        assert!(!r.text.contains("users.groups.render"), "{}", r.text);
        // Nobody expected: the first name (the one getgrgid reports) keeps it.
        let r = renumber_others(&["a", "b"], |_| false, &used, nixos::gid_reserved_by, nixos::group_gid_line);
        assert!(r.text.starts_with("users.groups.b.gid = 1002;"), "{}", r.text);
    }
}
