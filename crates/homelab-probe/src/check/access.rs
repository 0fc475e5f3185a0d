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

use crate::model::acl::{Acl, AclTag};
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::acl::AclEntry;
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

    #[test]
    fn zero_mask_means_the_acl_is_not_consulted() {
        // user:1000:--- with mask::--- and other::rw-: the kernel lets uid 1000 in through other.
        let st = node(1001, 1000, 0o006);
        let mut acl = uaccess_acl(1000, 0);
        acl.entries[1].perm = 0;
        assert_eq!(decide(&st, Some(&acl), &cred(1000, 1001, &[]), 6), Decision { allowed: true, via: Via::Other });
    }
}
