//! POSIX access ACLs (acl(5)) as the `system.posix_acl_access` extended attribute stores them
//! (the host layer reads the attribute; this module decodes and encodes its bytes).
//!
//! Desktop distributions tag render nodes with `uaccess`, and logind then grants the seat's
//! user `rw` through an ACL entry. A user who could open `/dev/dri/renderD128` on the old
//! desktop host only through that entry loses access on a headless server, so the render-node
//! probe must see ACLs to decide access honestly.
//!
//! The attribute's binary form (linux/posix_acl_xattr.h): a little-endian `u32` version (2),
//! then entries of `u16 tag, u16 perm, u32 id`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The tag of an ACL entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AclTag {
    /// The owner (`user::`).
    UserObj,
    /// A named user (`user:<uid>:`).
    User,
    /// The owning group (`group::`).
    GroupObj,
    /// A named group (`group:<gid>:`).
    Group,
    /// The upper bound of the group class (`mask::`).
    Mask,
    /// Everybody else (`other::`).
    Other,
}

/// One ACL entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclEntry {
    /// What the entry applies to.
    pub tag: AclTag,
    /// The uid or gid for named entries.
    pub id: Option<u32>,
    /// Permission bits: 4 read, 2 write, 1 execute.
    pub perm: u32,
}

/// An access ACL with more than the three entries the mode bits already express.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    /// Entries in stored order.
    pub entries: Vec<AclEntry>,
}

impl Acl {
    /// Decodes the attribute's bytes; `None` if they are not a version-2 ACL.
    pub fn from_xattr(bytes: &[u8]) -> Option<Self> {
        let (head, body) = bytes.split_first_chunk::<4>()?;
        if u32::from_le_bytes(*head) != 2 || body.len() % 8 != 0 {
            return None;
        }
        let mut entries = Vec::new();
        for e in body.chunks_exact(8) {
            let tag = u16::from_le_bytes([e[0], e[1]]);
            let perm = u32::from(u16::from_le_bytes([e[2], e[3]]) & 7);
            let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
            let (tag, id) = match tag {
                0x01 => (AclTag::UserObj, None),
                0x02 => (AclTag::User, Some(id)),
                0x04 => (AclTag::GroupObj, None),
                0x08 => (AclTag::Group, Some(id)),
                0x10 => (AclTag::Mask, None),
                0x20 => (AclTag::Other, None),
                _ => return None,
            };
            entries.push(AclEntry { tag, id, perm });
        }
        Some(Acl { entries })
    }

    /// Encodes the ACL as the attribute's bytes.
    pub fn to_xattr(&self) -> Vec<u8> {
        let mut out = 2u32.to_le_bytes().to_vec();
        for e in &self.entries {
            let tag: u16 = match e.tag {
                AclTag::UserObj => 0x01,
                AclTag::User => 0x02,
                AclTag::GroupObj => 0x04,
                AclTag::Group => 0x08,
                AclTag::Mask => 0x10,
                AclTag::Other => 0x20,
            };
            out.extend(tag.to_le_bytes());
            out.extend((e.perm as u16).to_le_bytes());
            out.extend(e.id.unwrap_or(u32::MAX).to_le_bytes());
        }
        out
    }

    /// The entry with `tag` (for the unnamed tags).
    pub fn get(&self, tag: AclTag) -> Option<&AclEntry> {
        self.entries.iter().find(|e| e.tag == tag)
    }
}

fn perm_str(p: u32) -> String {
    [(4, 'r'), (2, 'w'), (1, 'x')].iter().map(|&(b, c)| if p & b != 0 { c } else { '-' }).collect()
}

impl fmt::Display for Acl {
    /// The short text form of getfacl: `u::rw-,u:1000:rw-,g::rw-,m::rw-,o::---`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .entries
            .iter()
            .map(|e| {
                let t = match e.tag {
                    AclTag::UserObj | AclTag::User => "u",
                    AclTag::GroupObj | AclTag::Group => "g",
                    AclTag::Mask => "m",
                    AclTag::Other => "o",
                };
                let id = e.id.map(|i| i.to_string()).unwrap_or_default();
                format!("{t}:{id}:{}", perm_str(e.perm))
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xattr_round_trip_and_text() {
        let acl = Acl {
            entries: vec![
                AclEntry { tag: AclTag::UserObj, id: None, perm: 6 },
                AclEntry { tag: AclTag::User, id: Some(1000), perm: 6 },
                AclEntry { tag: AclTag::GroupObj, id: None, perm: 6 },
                AclEntry { tag: AclTag::Mask, id: None, perm: 6 },
                AclEntry { tag: AclTag::Other, id: None, perm: 0 },
            ],
        };
        let bytes = acl.to_xattr();
        assert_eq!(Acl::from_xattr(&bytes), Some(acl.clone()));
        assert_eq!(acl.to_string(), "u::rw-,u:1000:rw-,g::rw-,m::rw-,o::---");
        assert_eq!(Acl::from_xattr(&bytes[..7]), None);
        assert_eq!(Acl::from_xattr(&[1, 0, 0, 0]), None);
    }
}
