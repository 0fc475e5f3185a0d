//! Whether given process credentials may open a file: the kernel's permission check, as
//! `acl_permission_check` (fs/namei.c) and `posix_acl_permission` (fs/posix_acl.c) do it.
//!
//! One kernel detail differs from the acl(5) prose: the ACL is consulted only when the
//! group-class bits of the mode (the ACL mask) are not all zero; with a zero mask no named
//! entry can grant anything, and the kernel falls back to the plain mode bits, so a named
//! entry cannot deny either. A test checks these decisions against real `open(2)` calls.
//!
//! A container's process has an effective uid (PUID), an effective gid (PGID) and supplementary
//! gids (`group_add`); its access to a bind-mounted device node is decided by exactly this.

use serde::{Deserialize, Serialize};

use crate::model::acl::{Acl, AclEntry, AclTag};
use crate::model::fs::FileStat;

/// Read permission.
pub const READ: u32 = 4;
/// Write permission.
pub const WRITE: u32 = 2;

/// The credentials of a process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// Effective uid.
    pub uid: u32,
    /// Effective gid.
    pub gid: u32,
    /// Supplementary gids.
    pub groups: Vec<u32>,
}

impl Credentials {
    fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

/// Which part of the permissions decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// uid 0 (CAP_DAC_OVERRIDE).
    Root,
    /// The owner bits (or the ACL's `user::` entry).
    Owner,
    /// A named `user:<uid>:` ACL entry.
    AclUser,
    /// The group bits (or the ACL's `group::` entry).
    Group,
    /// A named `group:<gid>:` ACL entry.
    AclGroup,
    /// The other bits.
    Other,
}

/// The outcome of a permission check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Whether the open would succeed.
    pub allowed: bool,
    /// Which class of the permissions applied.
    pub via: Via,
}

/// Decides whether `cred` may open a file with `stat` (and access ACL `acl`) for `want`
/// (a combination of [`READ`] and [`WRITE`]).
pub fn decide(stat: &FileStat, acl: Option<&Acl>, cred: &Credentials, want: u32) -> Decision {
    let grants = |perm: u32| perm & want == want;
    if cred.uid == 0 {
        return Decision { allowed: true, via: Via::Root };
    }
    let mode = stat.mode.0;
    if cred.uid == stat.uid {
        return Decision { allowed: grants((mode >> 6) & 7), via: Via::Owner };
    }
    let Some(acl) = acl.filter(|_| mode & 0o070 != 0) else {
        if cred.in_group(stat.gid) {
            return Decision { allowed: grants((mode >> 3) & 7), via: Via::Group };
        }
        return Decision { allowed: grants(mode & 7), via: Via::Other };
    };
    let mask = acl.get(AclTag::Mask).map_or(7, |m| m.perm);
    if let Some(e) = acl.entries.iter().find(|e| e.tag == AclTag::User && e.id == Some(cred.uid)) {
        return Decision { allowed: grants(e.perm & mask), via: Via::AclUser };
    }
    // Among the matching group entries, any one that grants the access wins; if some matched
    // but none grants, access is denied (the other entry is not consulted).
    let mut matched: Option<Via> = None;
    for e in &acl.entries {
        let (is_match, via) = match e.tag {
            AclTag::GroupObj => (cred.in_group(stat.gid), Via::Group),
            AclTag::Group => (e.id.is_some_and(|g| cred.in_group(g)), Via::AclGroup),
            _ => (false, Via::Group),
        };
        if is_match {
            if grants(e.perm & mask) {
                return Decision { allowed: true, via };
            }
            matched.get_or_insert(via);
        }
    }
    if let Some(via) = matched {
        return Decision { allowed: false, via };
    }
    let other = acl.get(AclTag::Other).map_or(mode & 7, |o| o.perm);
    Decision { allowed: grants(other), via: Via::Other }
}

/// What keeps credentials out: the part of the permissions that decided against them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Blocker {
    /// The process owns the file and the owner bits lack the access.
    OwnerBits,
    /// A named ACL entry (`user:<uid>:` or `group:<gid>:`) applies and lacks the access.
    AclEntry,
    /// An entry that applies grants the access, but the ACL mask (the mode's group bits)
    /// takes it away.
    Mask,
    /// The process is in the file's group and the group bits (or the ACL's `group::` entry)
    /// lack the access.
    GroupBits,
    /// Nothing but the other bits applies (not the owner, in no group the file names) and they
    /// lack the access: the process is missing a group.
    MissingGroup,
}

/// Why `cred` may not open the file for `want`, or `None` when it may (see [`decide`]).
pub fn blocker(stat: &FileStat, acl: Option<&Acl>, cred: &Credentials, want: u32) -> Option<Blocker> {
    let d = decide(stat, acl, cred, want);
    if d.allowed {
        return None;
    }
    let grants = |perm: u32| perm & want == want;
    let consulted = acl.filter(|_| stat.mode.0 & 0o070 != 0);
    Some(match (d.via, consulted) {
        (Via::Root, _) => return None,
        (Via::Owner, _) => Blocker::OwnerBits,
        (Via::Other, _) => Blocker::MissingGroup,
        (Via::Group, None) => Blocker::GroupBits,
        (Via::AclUser, Some(acl)) => {
            let own = acl.entries.iter().find(|e| e.tag == AclTag::User && e.id == Some(cred.uid));
            if own.is_some_and(|e| grants(e.perm)) { Blocker::Mask } else { Blocker::AclEntry }
        }
        (Via::Group | Via::AclGroup, Some(acl)) => {
            // Some matching group entry would grant it but for the mask; else the entries lack it.
            let matching = acl.entries.iter().filter(|e| match e.tag {
                AclTag::GroupObj => cred.in_group(stat.gid),
                AclTag::Group => e.id.is_some_and(|g| cred.in_group(g)),
                _ => false,
            });
            let mut any_grants = false;
            for e in matching {
                any_grants |= grants(e.perm);
            }
            match (any_grants, d.via) {
                (true, _) => Blocker::Mask,
                (false, Via::Group) => Blocker::GroupBits,
                (false, _) => Blocker::AclEntry,
            }
        }
        (Via::AclUser | Via::AclGroup, None) => Blocker::AclEntry,
    })
}

/// One change to a file or to the credentials that use it. A remedy is a list of these, so
/// it can be applied to the inputs of [`decide`] and decided again ([`apply`]); its text is
/// rendered from them, never written beside them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "change")]
pub enum Change {
    /// The process gets this gid as well (docker's `group_add`, or as its PGID).
    JoinGroup {
        /// The gid.
        gid: u32,
    },
    /// The process runs with this gid as its effective gid instead (a container's PGID).
    SetPrimaryGroup {
        /// The gid.
        gid: u32,
    },
    /// The file gets this group (a udev `GROUP=` rule, a group renumbered, `chgrp`).
    SetFileGroup {
        /// The gid.
        gid: u32,
    },
    /// The file gets this mode (`chmod`, a udev `MODE=` rule). On a file with an ACL the
    /// group bits set the mask, as chmod(2) does.
    SetMode {
        /// Permission bits (`0o7777` at most).
        mode: u32,
    },
    /// An ACL entry gets these permissions (`setfacl -m`; an ACL is made from the mode when
    /// the file has none), the mask recomputed as setfacl(1) does.
    SetAclEntry {
        /// `user`, `group` (named, with `id`), `user_obj`, `group_obj` or `other`.
        tag: AclTag,
        /// The uid or gid of a named entry.
        id: Option<u32>,
        /// Permission bits.
        perm: u32,
    },
}

/// The inputs of [`decide`] after `changes`: what the kernel would see once they are made.
pub fn apply(
    changes: &[Change],
    stat: &FileStat,
    acl: Option<&Acl>,
    cred: &Credentials,
) -> (FileStat, Option<Acl>, Credentials) {
    let (mut stat, mut acl, mut cred) = (*stat, acl.cloned(), cred.clone());
    for c in changes {
        match *c {
            Change::JoinGroup { gid } => {
                if !cred.in_group(gid) {
                    cred.groups.push(gid);
                }
            }
            Change::SetPrimaryGroup { gid } => cred.gid = gid,
            Change::SetFileGroup { gid } => stat.gid = gid,
            Change::SetMode { mode } => {
                stat.mode.0 = mode & 0o7777;
                // posix_acl_chmod: the owner, group-class (the mask, else group::) and other
                // entries follow the new mode.
                if let Some(a) = &mut acl {
                    let has_mask = a.get(AclTag::Mask).is_some();
                    for e in &mut a.entries {
                        match e.tag {
                            AclTag::UserObj => e.perm = (mode >> 6) & 7,
                            AclTag::Mask => e.perm = (mode >> 3) & 7,
                            AclTag::GroupObj if !has_mask => e.perm = (mode >> 3) & 7,
                            AclTag::Other => e.perm = mode & 7,
                            _ => {}
                        }
                    }
                }
            }
            Change::SetAclEntry { tag, id, perm } => {
                let mode = stat.mode.0;
                let a = acl.get_or_insert_with(|| Acl {
                    entries: vec![
                        AclEntry { tag: AclTag::UserObj, id: None, perm: (mode >> 6) & 7 },
                        AclEntry { tag: AclTag::GroupObj, id: None, perm: (mode >> 3) & 7 },
                        AclEntry { tag: AclTag::Other, id: None, perm: mode & 7 },
                    ],
                });
                let id = if matches!(tag, AclTag::User | AclTag::Group) { id } else { None };
                match a.entries.iter_mut().find(|e| e.tag == tag && e.id == id) {
                    Some(e) => e.perm = perm & 7,
                    None => a.entries.push(AclEntry { tag, id, perm: perm & 7 }),
                }
                // setfacl recomputes the mask (when there is one, or named entries need one) as
                // the union of the group class; the mode's bits follow the ACL.
                let named = a.entries.iter().any(|e| matches!(e.tag, AclTag::User | AclTag::Group));
                if named || a.get(AclTag::Mask).is_some() {
                    let union = a
                        .entries
                        .iter()
                        .filter(|e| matches!(e.tag, AclTag::User | AclTag::Group | AclTag::GroupObj))
                        .fold(0, |m, e| m | e.perm);
                    match a.entries.iter_mut().find(|e| e.tag == AclTag::Mask) {
                        Some(m) => m.perm = union,
                        None => a.entries.push(AclEntry { tag: AclTag::Mask, id: None, perm: union }),
                    }
                }
                let perm_of = |t: AclTag| a.get(t).map_or(0, |e| e.perm);
                let group = a.get(AclTag::Mask).map_or(perm_of(AclTag::GroupObj), |m| m.perm);
                stat.mode.0 = (mode & 0o7000) | (perm_of(AclTag::UserObj) << 6) | (group << 3) | perm_of(AclTag::Other);
                sort_entries(a);
                if !named && a.get(AclTag::Mask).is_none() {
                    // Three entries are the mode itself: the kernel keeps no ACL then.
                    acl = None;
                }
            }
        }
    }
    (stat, acl, cred)
}

/// Entries in the order the kernel keeps them (by tag, then id).
fn sort_entries(a: &mut Acl) {
    let rank = |t: AclTag| match t {
        AclTag::UserObj => 0,
        AclTag::User => 1,
        AclTag::GroupObj => 2,
        AclTag::Group => 3,
        AclTag::Mask => 4,
        AclTag::Other => 5,
    };
    a.entries.sort_by_key(|e| (rank(e.tag), e.id));
}

/// Whether `cred` may open the file for `want` once `changes` are made.
pub fn passes_after(changes: &[Change], stat: &FileStat, acl: Option<&Acl>, cred: &Credentials, want: u32) -> bool {
    let (s, a, c) = apply(changes, stat, acl, cred);
    decide(&s, a.as_ref(), &c, want).allowed
}

/// The first of `candidates` that lets `cred` open the file for `want`; `None` when it
/// already may (no change is ever proposed then) or when none does.
pub fn first_fix(
    stat: &FileStat,
    acl: Option<&Acl>,
    cred: &Credentials,
    want: u32,
    candidates: impl IntoIterator<Item = Vec<Change>>,
) -> Option<Vec<Change>> {
    if decide(stat, acl, cred, want).allowed {
        return None;
    }
    candidates.into_iter().find(|c| !c.is_empty() && passes_after(c, stat, acl, cred, want))
}

/// The smallest change, from the [`blocker`], that lets `cred` open the file for `want`
/// (`None` when it already may). Mode bits for the class that decided; the file's group for
/// a process in none of its groups; an ACL entry where one decides. The last resort, a named
/// ACL entry for the process's uid, always works for a process that is not the owner.
pub fn remedy(stat: &FileStat, acl: Option<&Acl>, cred: &Credentials, want: u32) -> Option<Vec<Change>> {
    remedy_inner(stat, acl, cred, want, true)
}

/// Like [`remedy`], with changes to the file only (for credentials that cannot take a group,
/// e.g. "the members of a group").
pub fn file_remedy(stat: &FileStat, acl: Option<&Acl>, cred: &Credentials, want: u32) -> Option<Vec<Change>> {
    remedy_inner(stat, acl, cred, want, false)
}

fn remedy_inner(stat: &FileStat, acl: Option<&Acl>, cred: &Credentials, want: u32, join: bool) -> Option<Vec<Change>> {
    let b = blocker(stat, acl, cred, want)?;
    let mode = stat.mode.0;
    let mut candidates = Vec::new();
    match b {
        Blocker::OwnerBits => candidates.push(vec![Change::SetMode { mode: mode | (want << 6) }]),
        Blocker::Mask | Blocker::GroupBits => {
            candidates.push(vec![Change::SetMode { mode: mode | (want << 3) }]);
            let obj = acl.and_then(|a| a.get(AclTag::GroupObj)).map_or(0, |e| e.perm);
            candidates.push(vec![Change::SetAclEntry { tag: AclTag::GroupObj, id: None, perm: obj | want }]);
        }
        Blocker::AclEntry => {}
        Blocker::MissingGroup if join => {
            candidates.push(vec![Change::JoinGroup { gid: stat.gid }]);
            candidates.push(vec![Change::JoinGroup { gid: stat.gid }, Change::SetMode { mode: mode | (want << 3) }]);
        }
        Blocker::MissingGroup => {
            // A named entry for the process's gid (`setfacl -m g:<gid>:rw`).
            let has = acl
                .and_then(|a| a.entries.iter().find(|e| e.tag == AclTag::Group && e.id == Some(cred.gid)))
                .map_or(0, |e| e.perm);
            candidates.push(vec![Change::SetAclEntry { tag: AclTag::Group, id: Some(cred.gid), perm: has | want }]);
        }
    }
    candidates.push(vec![named_user_entry(acl, cred.uid, want)]);
    first_fix(stat, acl, cred, want, candidates)
}

/// `setfacl -m u:<uid>:<perm>` adding `want` to what the uid's entry has.
fn named_user_entry(acl: Option<&Acl>, uid: u32, want: u32) -> Change {
    let has =
        acl.and_then(|a| a.entries.iter().find(|e| e.tag == AclTag::User && e.id == Some(uid))).map_or(0, |e| e.perm);
    Change::SetAclEntry { tag: AclTag::User, id: Some(uid), perm: has | want }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fs::FileKind;
    use crate::model::fs::FileMode;
    use rstest::rstest;

    fn node(uid: u32, gid: u32, mode: u32) -> FileStat {
        FileStat { kind: FileKind::Char, uid, gid, mode: FileMode(mode), rdev: None }
    }

    fn cred(uid: u32, gid: u32, groups: &[u32]) -> Credentials {
        Credentials { uid, gid, groups: groups.to_vec() }
    }

    #[rstest]
    #[case::debian_render_pgid_matches(node(0, 110, 0o660), cred(1000, 110, &[]), true, Via::Group)]
    #[case::nixos_render_303_pgid_110_world_rw(node(0, 303, 0o666), cred(1000, 110, &[]), true, Via::Other)]
    #[case::debian_render_pgid_wrong(node(0, 108, 0o660), cred(1000, 110, &[]), false, Via::Other)]
    #[case::group_add(node(0, 108, 0o660), cred(1000, 110, &[108]), true, Via::Group)]
    #[case::owner_bits_win_over_group(node(1000, 110, 0o060), cred(1000, 110, &[]), false, Via::Owner)]
    #[case::root(node(0, 0, 0o000), cred(0, 0, &[]), true, Via::Root)]
    #[case::read_only_group(node(0, 110, 0o640), cred(1000, 110, &[]), false, Via::Group)]
    fn posix(#[case] st: FileStat, #[case] c: Credentials, #[case] allowed: bool, #[case] via: Via) {
        assert_eq!(decide(&st, None, &c, READ | WRITE), Decision { allowed, via });
    }

    fn uaccess_acl(user: u32, mask: u32) -> Acl {
        Acl {
            entries: vec![
                AclEntry { tag: AclTag::UserObj, id: None, perm: 6 },
                AclEntry { tag: AclTag::User, id: Some(user), perm: 6 },
                AclEntry { tag: AclTag::GroupObj, id: None, perm: 6 },
                AclEntry { tag: AclTag::Mask, id: None, perm: mask },
                AclEntry { tag: AclTag::Other, id: None, perm: 0 },
            ],
        }
    }

    #[test]
    fn acl_user_entry_and_mask() {
        let st = node(0, 108, 0o660);
        assert_eq!(
            decide(&st, Some(&uaccess_acl(1000, 6)), &cred(1000, 1000, &[]), 6),
            Decision { allowed: true, via: Via::AclUser }
        );
        assert_eq!(
            decide(&st, Some(&uaccess_acl(1000, 4)), &cred(1000, 1000, &[]), 6),
            Decision { allowed: false, via: Via::AclUser }
        );
        assert_eq!(
            decide(&st, Some(&uaccess_acl(1000, 6)), &cred(1001, 1001, &[]), 6),
            Decision { allowed: false, via: Via::Other }
        );
        assert_eq!(
            decide(&st, Some(&uaccess_acl(1000, 6)), &cred(1001, 108, &[]), 6),
            Decision { allowed: true, via: Via::Group }
        );
    }

    #[rstest]
    // PGID already the node's group, node 0600: the group bits block, not a missing group.
    #[case::group_bits(node(0, 110, 0o600), None, cred(1000, 110, &[]), Some(Blocker::GroupBits), vec![Change::SetMode { mode: 0o660 }])]
    #[case::missing_group(node(0, 108, 0o660), None, cred(1000, 110, &[]), Some(Blocker::MissingGroup), vec![Change::JoinGroup { gid: 108 }])]
    #[case::owner_bits(node(1000, 110, 0o060), None, cred(1000, 110, &[]), Some(Blocker::OwnerBits), vec![Change::SetMode { mode: 0o660 }])]
    #[case::mask(node(0, 108, 0o640), Some(uaccess_acl(1000, 4)), cred(1000, 1000, &[]), Some(Blocker::Mask), vec![Change::SetMode { mode: 0o660 }])]
    #[case::allowed(node(0, 110, 0o660), None, cred(1000, 110, &[]), None, vec![])]
    fn blockers_and_remedies(
        #[case] st: FileStat,
        #[case] acl: Option<Acl>,
        #[case] c: Credentials,
        #[case] b: Option<Blocker>,
        #[case] fix: Vec<Change>,
    ) {
        assert_eq!(blocker(&st, acl.as_ref(), &c, READ | WRITE), b);
        let got = remedy(&st, acl.as_ref(), &c, READ | WRITE);
        assert_eq!(got.clone().unwrap_or_default(), fix);
        if let Some(changes) = got {
            assert!(passes_after(&changes, &st, acl.as_ref(), &c, READ | WRITE));
        }
    }

    #[test]
    fn chmod_and_setfacl_are_modelled_like_the_kernel_and_libacl() {
        // chmod on a file with an ACL sets the mask, not group::.
        let (st, acl, _) = apply(
            &[Change::SetMode { mode: 0o660 }],
            &node(0, 108, 0o640),
            Some(&uaccess_acl(1000, 4)),
            &cred(1, 1, &[]),
        );
        assert_eq!(st.mode.0, 0o660);
        assert_eq!(acl.unwrap().to_string(), "u::rw-,u:1000:rw-,g::rw-,m::rw-,o::---");
        // setfacl on a file without an ACL makes one, with a mask, and the mode follows.
        let (st, acl, _) = apply(
            &[Change::SetAclEntry { tag: AclTag::User, id: Some(1000), perm: 6 }],
            &node(0, 108, 0o600),
            None,
            &cred(1, 1, &[]),
        );
        assert_eq!(acl.unwrap().to_string(), "u::rw-,u:1000:rw-,g::---,m::rw-,o::---");
        assert_eq!(st.mode.0, 0o660);
    }

    #[test]
    fn zero_mask_means_the_acl_is_not_consulted() {
        // user:1000:--- with mask::--- and other::rw-: the kernel lets uid 1000 in through other.
        let st = node(1001, 1000, 0o006);
        let mut acl = uaccess_acl(1000, 0);
        acl.entries[1].perm = 0;
        assert_eq!(decide(&st, Some(&acl), &cred(1000, 1001, &[]), 6), Decision { allowed: true, via: Via::Other });
    }
}
