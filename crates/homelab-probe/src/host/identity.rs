//! The identity database: users and groups, by name and by number.
//!
//! On the live host, look-ups go through NSS (`getgrnam`, `getgrgid`, `getpwnam`,
//! `getpwuid`, `getgrouplist` via the `nix` crate), so `systemd-userdb`, LDAP or `sss` users
//! are seen as the system sees them. Enumeration (for duplicate checks) reads `/etc/group` and
//! `/etc/passwd`, since NSS offers no portable way to list every group without side effects.
//! In a sysroot, everything comes from its `etc/group` and `etc/passwd`.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Group, Uid, User};
use serde::{Deserialize, Serialize};

use super::Host;
use crate::model::text::ParseError;
use crate::sources::group::{self, GroupEntry};
use crate::sources::passwd::{self, PasswdEntry};

/// A problem reading the identity files. The probe reports each as a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceProblem {
    /// The file could not be read at all.
    Unreadable {
        /// The host path.
        file: PathBuf,
        /// Why.
        message: String,
    },
    /// A line could not be parsed (and was skipped).
    Parse(ParseError),
}

/// Users and groups of a [`Host`].
#[derive(Debug, Clone)]
pub struct IdentityDb {
    live: bool,
    groups: Vec<(usize, GroupEntry)>,
    users: Vec<(usize, PasswdEntry)>,
    problems: Vec<SourceProblem>,
}

/// The group file of a host.
pub const GROUP_FILE: &str = "/etc/group";
/// The passwd file of a host.
pub const PASSWD_FILE: &str = "/etc/passwd";

impl IdentityDb {
    /// Loads the identity files of `host` (lenient: bad lines become [`SourceProblem`]s).
    pub fn load(host: &Host) -> Self {
        let mut problems = Vec::new();
        let mut read = |file: &str| match host.read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                problems.push(SourceProblem::Unreadable { file: PathBuf::from(file), message: e.to_string() });
                String::new()
            }
        };
        let group_text = read(GROUP_FILE);
        let passwd_text = read(PASSWD_FILE);
        let g = group::parse(&group_text, Path::new(GROUP_FILE));
        let p = passwd::parse(&passwd_text, Path::new(PASSWD_FILE));
        problems.extend(g.errors.into_iter().map(SourceProblem::Parse));
        problems.extend(p.errors.into_iter().map(SourceProblem::Parse));
        IdentityDb { live: host.is_live(), groups: g.entries, users: p.entries, problems }
    }

    /// Builds a database from entries (for embedders and tests); never live.
    pub fn from_entries(groups: Vec<GroupEntry>, users: Vec<PasswdEntry>) -> Self {
        IdentityDb {
            live: false,
            groups: groups.into_iter().enumerate().map(|(i, g)| (i + 1, g)).collect(),
            users: users.into_iter().enumerate().map(|(i, u)| (i + 1, u)).collect(),
            problems: Vec::new(),
        }
    }

    /// Whether look-ups go through NSS.
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Problems met while reading the files.
    pub fn problems(&self) -> &[SourceProblem] {
        &self.problems
    }

    /// Every group of the group file, with its line number, in file order.
    pub fn file_groups(&self) -> &[(usize, GroupEntry)] {
        &self.groups
    }

    /// Every user of the passwd file, with its line number, in file order.
    pub fn file_users(&self) -> &[(usize, PasswdEntry)] {
        &self.users
    }

    /// The group called `name` (the first one, as NSS answers).
    pub fn group_by_name(&self, name: &str) -> Option<GroupEntry> {
        if self.live {
            return Group::from_name(name).ok().flatten().map(group_entry);
        }
        self.groups.iter().find(|(_, g)| g.name == name).map(|(_, g)| g.clone())
    }

    /// The group with `gid` (the first one, as NSS answers).
    pub fn group_by_gid(&self, gid: u32) -> Option<GroupEntry> {
        if self.live {
            return Group::from_gid(Gid::from_raw(gid)).ok().flatten().map(group_entry);
        }
        self.groups.iter().find(|(_, g)| g.gid == gid).map(|(_, g)| g.clone())
    }

    /// The user called `name`.
    pub fn user_by_name(&self, name: &str) -> Option<PasswdEntry> {
        if self.live {
            return User::from_name(name).ok().flatten().map(passwd_entry);
        }
        self.users.iter().find(|(_, u)| u.name == name).map(|(_, u)| u.clone())
    }

    /// The user with `uid`.
    pub fn user_by_uid(&self, uid: u32) -> Option<PasswdEntry> {
        if self.live {
            return User::from_uid(Uid::from_raw(uid)).ok().flatten().map(passwd_entry);
        }
        self.users.iter().find(|(_, u)| u.uid == uid).map(|(_, u)| u.clone())
    }

    /// Every gid `user` has: the primary gid first, then supplementary groups, as
    /// `getgrouplist(3)` gives them to a login.
    pub fn gids_of(&self, user: &PasswdEntry) -> Vec<u32> {
        if self.live {
            if let Ok(name) = CString::new(user.name.as_str()) {
                if let Ok(list) = nix::unistd::getgrouplist(&name, Gid::from_raw(user.gid)) {
                    let mut gids: Vec<u32> = list.into_iter().map(Gid::as_raw).collect();
                    move_first(&mut gids, user.gid);
                    return gids;
                }
            }
        }
        let mut gids = vec![user.gid];
        for (_, g) in &self.groups {
            if g.members.contains(&user.name) && !gids.contains(&g.gid) {
                gids.push(g.gid);
            }
        }
        gids
    }
}

fn move_first(gids: &mut Vec<u32>, first: u32) {
    gids.retain(|&g| g != first);
    gids.insert(0, first);
    let mut seen = std::collections::BTreeSet::new();
    gids.retain(|g| seen.insert(*g));
}

fn group_entry(g: Group) -> GroupEntry {
    GroupEntry { name: g.name, gid: g.gid.as_raw(), members: g.mem }
}

fn passwd_entry(u: User) -> PasswdEntry {
    PasswdEntry {
        name: u.name,
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
        gecos: u.gecos.to_string_lossy().into_owned(),
        home: u.dir.to_string_lossy().into_owned(),
        shell: u.shell.to_string_lossy().into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// The live database answers as `getent` (glibc's own NSS client) does on this machine.
    #[test]
    fn live_lookups_agree_with_getent() {
        let db = IdentityDb::load(&Host::live());
        assert!(db.is_live());
        let getent = |db: &str, key: &str| -> Option<String> {
            let out = Command::new("getent").args([db, key]).output().expect("getent (libc-bin) must be installed");
            out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        };
        for key in ["root", "0", "video", "44", "nogroup", "nonexistent-group-xyz", "4242424"] {
            let ours = if key.bytes().all(|b| b.is_ascii_digit()) {
                db.group_by_gid(key.parse().unwrap())
            } else {
                db.group_by_name(key)
            };
            let theirs = getent("group", key);
            match (ours, theirs) {
                (None, None) => {}
                (Some(g), Some(line)) => {
                    let f: Vec<&str> = line.split(':').collect();
                    assert_eq!(g.name, f[0]);
                    assert_eq!(g.gid.to_string(), f[2]);
                }
                (o, t) => panic!("{key}: ours {o:?}, getent {t:?}"),
            }
        }
        let root = db.user_by_name("root").expect("root exists");
        assert_eq!(root.uid, 0);
        let line = getent("passwd", "root").unwrap();
        assert_eq!(line.split(':').nth(5).unwrap(), root.home);
        let ids = Command::new("id").args(["-G", "root"]).output().unwrap();
        let want: Vec<u32> =
            String::from_utf8_lossy(&ids.stdout).split_whitespace().map(|s| s.parse().unwrap()).collect();
        assert_eq!(db.gids_of(&root), want);
    }

    #[test]
    fn files_membership() {
        let db = IdentityDb::from_entries(
            vec![
                GroupEntry { name: "palav".into(), gid: 1000, members: vec![] },
                GroupEntry { name: "render".into(), gid: 110, members: vec!["palav".into()] },
                GroupEntry { name: "video".into(), gid: 44, members: vec!["jellyfin".into()] },
            ],
            vec![PasswdEntry {
                name: "palav".into(),
                uid: 1000,
                gid: 1000,
                gecos: String::new(),
                home: "/home/palav".into(),
                shell: "/bin/sh".into(),
            }],
        );
        let u = db.user_by_name("palav").unwrap();
        assert_eq!(db.gids_of(&u), vec![1000, 110]);
        assert_eq!(db.group_by_gid(44).unwrap().name, "video");
        assert!(db.group_by_name("render").is_some_and(|g| g.gid == 110));
    }
}
