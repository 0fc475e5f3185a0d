//! Groups and users: which gids survive and under which name, NixOS's name rules, duplicates in
//! the old host's files, and the users the module declares with their memberships.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    BareId, Conflict, Decisions, DuplicateKind, GroupMapping, GroupPin, MovedGroup, UserPlan, credentials, runs_docker,
};
use crate::model::compose::{Engine, StackKind};
use crate::model::snapshot::{CapturedGroup, GroupUse, Snapshot};
use crate::nixos;

/// Groups whose membership gives root's powers on NixOS (sudo through wheel, raw disks and
/// memory, the password hashes): a kept gid is never carried over by making people members.
const PRIVILEGED_GROUPS: &[&str] = &["root", "wheel", "kmem", "disk", "shadow"];

/// Why the gid of `g` must survive the move (empty: it need not).
fn group_reasons(g: &CapturedGroup, snapshot: &Snapshot) -> Vec<String> {
    let mut reasons = Vec::new();
    for u in &g.uses {
        match u {
            // A rootless stack's gids are its owner's namespace's (snapshots from before capture
            // left them out still list them).
            GroupUse::Compose { stack, service, field }
                if field != "group_add name"
                    && !snapshot.compose.stacks.iter().any(|s| &s.name == stack && s.rootless) =>
            {
                let what = match field.as_str() {
                    "user" => "gid in user:",
                    other => other,
                };
                reasons.push(format!("{what} of {stack}/{service}"));
            }
            GroupUse::DataRootOwner { path } => reasons.push(format!("owns {path}")),
            GroupUse::PrimaryGroupOf { user } if !(g.name == "users" && g.gid == 100) => {
                reasons.push(format!("primary group of {user}"));
            }
            _ => {}
        }
    }
    // A human user's primary group, even when capture did not say so.
    for u in snapshot.identities.users.iter().filter(|u| u.gid == g.gid) {
        let r = format!("primary group of {}", u.name);
        let nixos_default = g.name == "users" && g.gid == 100;
        if !nixos_default && !reasons.contains(&r) {
            reasons.push(r);
        }
    }
    reasons.dedup();
    reasons
}

/// A group whose gid must survive, before it is decided how.
struct Wanted {
    name: String,
    gid: u32,
    reasons: Vec<String>,
}

/// Whether the new host has group `name` whatever the module says: every NixOS system's groups,
/// and `docker` when the module enables Docker (docker.nix creates it at ids.nix's 131). The
/// other modules the plan enables (hardware.graphics, the NVIDIA driver and container toolkit)
/// create no groups (nixpkgs' graphics.nix, nvidia.nix, nvidia-container-toolkit/default.nix).
fn nixos_creates(name: &str, docker: bool) -> bool {
    nixos::always_present_group(name) || (docker && name == "docker")
}

/// The groups: one entry per name (the first `/etc/group` line of a name wins, as glibc's
/// getgrnam), NixOS's name rules, then who holds each kept gid on the new host. A gid NixOS
/// already gives one of its own groups stays with that group (the old name maps to it); a group
/// a module the plan enables would create at a kept gid (docker at 131) is moved instead; two
/// kept groups with one gid (a duplicate gid on the old host) become one, the first.
pub(super) fn groups(snapshot: &Snapshot, d: &mut Decisions) {
    let docker = runs_docker(snapshot);
    let mut first: BTreeMap<&str, u32> = BTreeMap::new();
    let mut unique = Vec::new();
    let mut dropped_lines = Vec::new();
    for g in &snapshot.identities.groups {
        match first.get(g.name.as_str()) {
            Some(kept) => {
                d.duplicate(
                    DuplicateKind::Group,
                    &g.name,
                    format!("gid {kept} (the first /etc/group line: getgrnam returns it)"),
                    format!("gid {}", g.gid),
                );
                dropped_lines.push(g);
            }
            None => {
                first.insert(&g.name, g.gid);
                unique.push(g);
            }
        }
    }

    let mut wanted: Vec<Wanted> = Vec::new();
    for g in &unique {
        let reasons = group_reasons(g, snapshot);
        if !reasons.is_empty() {
            wanted.push(Wanted { name: g.name.clone(), gid: g.gid, reasons });
        }
    }
    // A second /etc/group line of a name whose gid matters: the name belongs to the first line,
    // so the number keeps another name the old host had for it, if any (a line of that gid
    // that is the first of its name).
    for g in &dropped_lines {
        let reasons = group_reasons(g, snapshot);
        if reasons.is_empty() || wanted.iter().any(|w| w.gid == g.gid) {
            continue;
        }
        if let Some(o) = unique.iter().find(|o| o.gid == g.gid && nixos::group_name_problem(&o.name).is_none()) {
            let reasons = reasons.into_iter().map(|r| format!("{r} (as the second {:?} line)", g.name));
            match wanted.iter_mut().find(|w| w.name == o.name) {
                Some(w) => w.reasons.extend(reasons),
                None => wanted.push(Wanted { name: o.name.clone(), gid: o.gid, reasons: reasons.collect() }),
            }
        }
    }
    // Primary groups capture did not record (the old host's group of that gid had another name
    // or none): the module declares them under the name the user's passwd entry resolved to.
    let mut seen_users = BTreeSet::new();
    for u in &snapshot.identities.users {
        if !seen_users.insert(u.name.as_str()) {
            continue;
        }
        let Some(p) = &u.primary_group else { continue };
        if p == "users" || nixos_creates(p, docker) || first.contains_key(p.as_str()) {
            continue;
        }
        if let Some(w) = wanted.iter_mut().find(|w| &w.name == p) {
            w.reasons.push(format!("primary group of {}", u.name));
            continue;
        }
        d.warn(
            format!("user {}", u.name),
            format!("primary group {p} was not captured: the module declares it with gid {}", u.gid),
        );
        wanted.push(Wanted { name: p.clone(), gid: u.gid, reasons: vec![format!("primary group of {}", u.name)] });
    }

    // Names NixOS refuses: the number keeps another name the old host had for it (a later
    // /etc/group line with that gid), else it stays on the files without a name.
    let mut valid: Vec<Wanted> = Vec::new();
    let mut refused = Vec::new();
    for w in wanted {
        match nixos::group_name_problem(&w.name) {
            Some(why) => refused.push((w, why)),
            None => valid.push(w),
        }
    }
    for (w, why) in refused {
        d.invalid_groups.insert(w.name.clone());
        let other = unique.iter().find(|g| g.gid == w.gid && nixos::group_name_problem(&g.name).is_none());
        if let Some(o) = other {
            d.warn(
                format!("group {}", w.name),
                format!("not declared: {why}. gid {} keeps the old host's other name for it, {}", w.gid, o.name),
            );
            d.aliases.insert(w.name.clone(), o.name.clone());
            let reasons = w.reasons.iter().map(|r| format!("{r} (as {:?})", w.name));
            match valid.iter_mut().find(|v| v.name == o.name) {
                Some(v) => v.reasons.extend(reasons),
                None => valid.push(Wanted { name: o.name.clone(), gid: o.gid, reasons: reasons.collect() }),
            }
            continue;
        }
        d.warn(
            format!("group {}", w.name),
            format!(
                "not declared: {why}. Files and containers keep gid {} as a bare number; to give it a name, \
                 declare users.groups.<a valid name>.gid = {};",
                w.gid, w.gid
            ),
        );
        d.bare_gids.push(BareId { id: w.gid, why: format!("its group name {:?} is refused: {why}", w.name) });
    }

    // Who holds each gid on the new host. NixOS's own groups hold their static gids unless the
    // module pins them elsewhere; each kept group claims its gid unless someone holds it. A
    // mapped group falls back to its own static gid, so the loop runs again until nothing moves
    // (each round maps one more group or moves docker once: it ends).
    let kept_names: BTreeSet<&str> = valid.iter().map(|w| w.name.as_str()).collect();
    let mut mapped: BTreeMap<usize, String> = BTreeMap::new();
    let mut docker_moved = false;
    loop {
        let pinned_elsewhere = |n: &str| {
            valid
                .iter()
                .enumerate()
                .any(|(i, w)| w.name == n && !mapped.contains_key(&i) && nixos::static_gid(n) != Some(w.gid))
        };
        let mut claims: BTreeMap<u32, String> = BTreeMap::new();
        let own = nixos::ALWAYS_PRESENT_GROUPS.iter().copied().chain(docker.then_some("docker"));
        for n in own {
            if (n == "docker" && docker_moved) || pinned_elsewhere(n) {
                continue;
            }
            if let Some(s) = nixos::static_gid(n) {
                claims.insert(s, n.to_owned());
            }
        }
        let mut changed = false;
        for (i, w) in valid.iter().enumerate() {
            if mapped.contains_key(&i) {
                continue;
            }
            match claims.get(&w.gid) {
                Some(h) if *h == w.name => {}
                Some(h) if h == "docker" && !kept_names.contains("docker") && !docker_moved => {
                    docker_moved = true;
                    changed = true;
                    break;
                }
                Some(h) => {
                    mapped.insert(i, h.clone());
                    changed = true;
                    break;
                }
                None => {
                    claims.insert(w.gid, w.name.clone());
                }
            }
        }
        if !changed {
            break;
        }
    }

    let members_of = |name: &str| -> Vec<String> {
        let mut m: Vec<String> = snapshot
            .identities
            .users
            .iter()
            .filter(|u| u.primary_group.as_deref() == Some(name) || u.groups.iter().any(|g| g == name))
            .map(|u| u.name.clone())
            .collect();
        if let Some(g) = snapshot.group(name) {
            m.extend(g.members.iter().cloned());
        }
        m.sort();
        m.dedup();
        m
    };
    for (i, w) in valid.into_iter().enumerate() {
        if let Some(to) = mapped.get(&i) {
            let members = members_of(&w.name);
            if PRIVILEGED_GROUPS.contains(&to.as_str()) && !members.is_empty() {
                d.conflicts.push(Conflict {
                    subject: format!("group {}", w.name),
                    message: format!(
                        "{} keeps gid {} ({}), but on NixOS gid {} is {to}, and membership of {to} gives root's powers: \
                         its members ({}) would get them",
                        w.name,
                        w.gid,
                        w.reasons.join("; "),
                        w.gid,
                        members.join(", ")
                    ),
                    choices: vec![
                        format!(
                            "on the old host, give {} another gid (groupmod -g <free gid> {}; chgrp the files that have gid {}) and capture again",
                            w.name, w.name, w.gid
                        ),
                        format!(
                            "or drop the members from {} on the old host if they need no access to its files, and capture again",
                            w.name
                        ),
                    ],
                });
                continue;
            }
            let own_name = if nixos_creates(&w.name, docker) {
                format!("; {} itself keeps NixOS's gid {}", w.name, nixos::static_gid(&w.name).unwrap_or_default())
            } else {
                String::new()
            };
            // NixOS's own group at its own static gid, or a group of the old host that holds it.
            let nixos_own = nixos_creates(to, docker) && nixos::static_gid(to) == Some(w.gid);
            let holder = if nixos_own {
                format!("{to}'s on NixOS (every NixOS system has {to} with this gid)")
            } else {
                format!(
                    "also {to}'s on the old host, whose earlier /etc/group line getgrgid returns, and {to} keeps it"
                )
            };
            d.warn(
                format!("group {}", w.name),
                format!(
                    "gid {} is {holder}: the number is kept and files with gid {} show as {to}; {} is not declared \
                     again, its members join {to}{own_name}",
                    w.gid, w.gid, w.name
                ),
            );
            d.mapped.push(GroupMapping { name: w.name, gid: w.gid, to: to.clone(), reasons: w.reasons, nixos_own });
            continue;
        }
        if nixos::always_present_group(&w.name) && nixos::static_gid(&w.name) == Some(w.gid) {
            // Every NixOS system has this group with this very gid: nothing to write.
            continue;
        }
        let nixos_gid = nixos::static_gid(&w.name).filter(|s| *s != w.gid);
        // ids.nix reserves the gid for a group no module of this configuration creates: free
        // unless another module the user enables creates it (the module warns then).
        let collision = nixos::gid_reserved_by(w.gid).filter(|h| *h != w.name && !nixos_creates(h, docker));
        if let Some(pinned) = nixos_gid {
            d.warn(
                format!("group {}", w.name),
                format!("NixOS gives {} gid {pinned} (ids.nix); the module forces {} with lib.mkForce", w.name, w.gid),
            );
        }
        if let Some(holder) = collision {
            d.warn(
                format!("group {}", w.name),
                format!(
                    "gid {} is reserved for {holder} in NixOS's ids.nix: no module this plan enables creates {holder}; \
                     if one you enable does, NixOS's evaluation prints the warning the module carries",
                    w.gid
                ),
            );
        }
        d.groups.push(GroupPin { name: w.name, gid: w.gid, reasons: w.reasons, nixos_gid, collision });
    }
    if docker_moved {
        let gid = nixos::static_gid("docker").unwrap_or_default();
        let for_group = d.groups.iter().find(|g| g.gid == gid).map(|g| g.name.clone()).unwrap_or_default();
        d.warn(
            "group docker",
            format!(
                "docker.nix creates docker at gid {gid}, which {for_group} keeps: the module gives docker a free gid \
                 (lib.mkForce null; the socket and the docker command use the name)"
            ),
        );
        d.moved.push(MovedGroup { name: "docker".into(), gid, for_group });
    }

    // Who holds each gid on the new host: the module's groups, NixOS's own at their static
    // gids unless pinned elsewhere or moved.
    for n in nixos::ALWAYS_PRESENT_GROUPS.iter().copied().chain(docker.then_some("docker")) {
        if d.groups.iter().any(|g| g.name == n) || d.moved.iter().any(|m| m.name == n) {
            continue;
        }
        if let Some(s) = nixos::static_gid(n) {
            d.held_gids.insert(s, n.to_owned());
        }
    }
    for g in &d.groups {
        d.held_gids.insert(g.gid, g.name.clone());
    }

    // A second /etc/group line of a name whose own gid mattered and that no other name keeps.
    for g in dropped_lines {
        if !group_reasons(g, snapshot).is_empty() && !d.held_gids.contains_key(&g.gid) {
            d.bare_gids.push(BareId {
                id: g.gid,
                why: format!(
                    "its name {:?} belongs to the first /etc/group line of that name (gid {})",
                    g.name,
                    first[g.name.as_str()]
                ),
            });
        }
    }

    // Numeric gids the stacks use that no group of the old host holds.
    for stack in &snapshot.compose.stacks {
        for svc in stack.services.iter().filter(|s| s.is_active(&stack.active_profiles)) {
            if let Ok(c) = credentials(svc, snapshot) {
                for gid in std::iter::once(c.gid).chain(c.groups.iter().copied()) {
                    if gid != 0 && snapshot.group_by_gid(gid).is_none() && !d.held_gids.contains_key(&gid) {
                        d.warn(
                            format!("{}/{}", stack.name, svc.name),
                            format!("uses gid {gid}, which no group of the old host has: nothing to pin, files show the bare number"),
                        );
                        if !d.bare_gids.iter().any(|b| b.id == gid) {
                            d.bare_gids.push(BareId { id: gid, why: "no group of the old host has it".into() });
                        }
                    }
                }
            }
        }
    }
}

/// The NixOS name a membership of the old host's group `g` becomes, or `None` when NixOS has
/// no such group and the module declares none.
fn membership(g: &str, d: &Decisions, docker: bool) -> Option<String> {
    let g = d.aliases.get(g).map_or(g, String::as_str);
    if let Some(m) = d.mapped.iter().find(|m| m.name == g) {
        return Some(m.to.clone());
    }
    if d.invalid_groups.contains(g) {
        return None;
    }
    if d.groups.iter().any(|p| p.name == g) || nixos_creates(g, docker) {
        return Some(g.to_owned());
    }
    match g {
        "sudo" | "admin" => Some("wheel".into()),
        _ => None,
    }
}

pub(super) fn users(snapshot: &Snapshot, d: &mut Decisions) {
    let docker = runs_docker(snapshot);
    let mut plans: Vec<UserPlan> = Vec::new();
    let mut first: BTreeMap<&str, u32> = BTreeMap::new();
    for u in &snapshot.identities.users {
        if let Some(kept) = first.get(u.name.as_str()) {
            d.duplicate(
                DuplicateKind::User,
                &u.name,
                format!("uid {kept} (the first /etc/passwd line: getpwnam returns it)"),
                format!("uid {}", u.uid),
            );
            continue;
        }
        first.insert(&u.name, u.uid);
        let subject = format!("user {}", u.name);
        let skip = if let Some(why) = nixos::user_name_problem(&u.name) {
            Some(format!(
                "not declared: {why}. Files keep uid {} as a bare number; declare the account under a valid name: \
                 users.users.<name> = {{ isNormalUser = true; uid = {}; }};",
                u.uid, u.uid
            ))
        } else if nixos::ALWAYS_PRESENT_USERS.contains(&u.name.as_str()) {
            Some(format!(
                "not declared: every NixOS system has its own {} (uid {}); files keep uid {} as a bare number",
                u.name,
                nixos::static_uid(&u.name).unwrap_or_default(),
                u.uid
            ))
        } else if u.uid < 1000 || u.uid == u32::MAX {
            Some(format!(
                "not declared: uid {} is not a human account's (1000 or more): NixOS declares its own system accounts",
                u.uid
            ))
        } else if let Some(holder) = nixos::ALWAYS_PRESENT_USERS.iter().find(|n| nixos::static_uid(n) == Some(u.uid)) {
            Some(format!("not declared: uid {} is {holder}'s on every NixOS system", u.uid))
        } else {
            plans.iter().find(|p| p.uid == u.uid).map(|p| {
                format!(
                    "not declared: uid {} is also {}'s, the earlier /etc/passwd line (getpwuid returns it); NixOS \
                     refuses two users with one uid",
                    u.uid, p.name
                )
            })
        };
        if let Some(why) = skip {
            d.warn(subject, why.clone());
            if !plans.iter().any(|p| p.uid == u.uid) && !d.bare_uids.iter().any(|b| b.id == u.uid) {
                d.bare_uids.push(BareId { id: u.uid, why: format!("user {:?} is not declared", u.name) });
            }
            d.skipped_users.push((u.name.clone(), why));
            continue;
        }
        let mut extra = Vec::new();
        let mut dropped = Vec::new();
        let group = match u.primary_group.as_deref() {
            None => {
                d.warn(subject.clone(), format!("primary gid {} has no group on the old host", u.gid));
                None
            }
            Some(p) => match membership(p, d, docker) {
                Some(n) if n == "users" => None,
                Some(n) => Some(n),
                None => {
                    d.warn(
                        subject.clone(),
                        format!("primary group {p} cannot be declared: NixOS gives {} its default primary group, users (100)", u.name),
                    );
                    None
                }
            },
        };
        for g in &u.groups {
            if Some(g.as_str()) == u.primary_group.as_deref() {
                continue;
            }
            match membership(g, d, docker) {
                Some(n) => {
                    if Some(&n) != group.as_ref() && !extra.contains(&n) {
                        extra.push(n);
                    }
                }
                None => dropped.push(g.clone()),
            }
        }
        // Docker's socket is what a compose owner needs; Podman (quadlet, podman-compose) and
        // rootless engines run without it.
        let owns_docker_stacks = snapshot.compose.stacks.iter().any(|s| {
            s.owner.as_deref() == Some(&u.name)
                && s.kind == StackKind::Compose
                && !s.rootless
                && s.engine != Some(Engine::Podman)
        });
        if owns_docker_stacks && !extra.iter().any(|e| e == "docker") {
            extra.push("docker".into());
        }
        let home = if u.home.starts_with('/') && !u.home.contains(':') && !u.home.contains('\n') {
            Some(u.home.clone()).filter(|h| *h != format!("/home/{}", u.name))
        } else {
            d.warn(
                subject.clone(),
                format!("home {:?} is not an absolute path NixOS accepts: the module leaves /home/{}", u.home, u.name),
            );
            None
        };
        if let Some(holder) = nixos::uid_reserved_by(u.uid) {
            d.warn(subject.clone(), format!("uid {} is reserved for {holder} in NixOS's ids.nix", u.uid));
        }
        if !dropped.is_empty() {
            d.warn(
                subject,
                format!(
                    "not in these groups on NixOS (no NixOS module creates them): {}; declare users.groups.<name> = {{ }}; to keep one",
                    dropped.join(", ")
                ),
            );
        }
        plans.push(UserPlan {
            name: u.name.clone(),
            uid: u.uid,
            group,
            home,
            extra_groups: extra,
            dropped_groups: dropped,
        });
    }
    // A second /etc/passwd line of a name: its uid, if no declared user has it, stays bare.
    let mut names = BTreeSet::new();
    for u in &snapshot.identities.users {
        if !names.insert(u.name.as_str())
            && !plans.iter().any(|p| p.uid == u.uid)
            && !d.bare_uids.iter().any(|b| b.id == u.uid)
        {
            d.bare_uids.push(BareId {
                id: u.uid,
                why: format!(
                    "its name {:?} belongs to the first /etc/passwd line of that name (uid {})",
                    u.name,
                    first[u.name.as_str()]
                ),
            });
        }
    }
    d.users = plans;
}
