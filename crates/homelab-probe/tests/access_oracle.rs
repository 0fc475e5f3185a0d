//! The kernel is the oracle for the access decision: for random owners, modes, ACLs and
//! credentials, a child process takes those credentials and really opens a file; our
//! `access::decide` must agree with what `open(2)` did.
//!
//! Needs root (to chown files and switch credentials). It fails, loudly, when not root: run
//! the test suite as root (CI does) or with `sudo -E cargo test`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use homelab_probe::check::access::{self, Credentials};
use homelab_probe::model::acl::{Acl, AclEntry, AclTag};
use homelab_probe::model::fs::{FileKind, FileMode, FileStat};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Gid, Uid, fork};
use proptest::prelude::*;

fn require_root() {
    homelab_test_support::require_root("access_oracle chowns files and switches credentials");
}

/// Opens `path` read/write in a child with `cred`; true when the kernel allowed it.
fn kernel_allows(path: &Path, cred: &Credentials) -> bool {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let groups: Vec<Gid> = cred.groups.iter().map(|&g| Gid::from_raw(g)).collect();
    // SAFETY: the child only makes async-signal-safe system calls and then _exits.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = (|| {
                nix::unistd::setgroups(&groups).ok()?;
                nix::unistd::setresgid(Gid::from_raw(cred.gid), Gid::from_raw(cred.gid), Gid::from_raw(cred.gid))
                    .ok()?;
                nix::unistd::setresuid(Uid::from_raw(cred.uid), Uid::from_raw(cred.uid), Uid::from_raw(cred.uid))
                    .ok()?;
                // SAFETY: a valid NUL-terminated path.
                let fd = unsafe { nix::libc::open(c_path.as_ptr(), nix::libc::O_RDWR) };
                Some(if fd >= 0 { 0 } else { 1 })
            })()
            .unwrap_or(2);
            // SAFETY: exiting the forked child without running the parent's destructors.
            unsafe { nix::libc::_exit(code) }
        }
        ForkResult::Parent { child } => match waitpid(child, None).expect("waitpid") {
            WaitStatus::Exited(_, 0) => true,
            WaitStatus::Exited(_, 1) => false,
            other => panic!("child could not take the credentials: {other:?}"),
        },
    }
}

const IDS: [u32; 4] = [1000, 1001, 110, 303];

fn acl_strategy() -> impl Strategy<Value = Option<Vec<(AclTag, Option<u32>, u32)>>> {
    proptest::option::of(
        (
            proptest::collection::vec((proptest::sample::select(&IDS[..]), 0u32..8), 0..2),
            proptest::collection::vec((proptest::sample::select(&IDS[..]), 0u32..8), 0..2),
            0u32..8,
        )
            .prop_map(|(users, groups, mask)| {
                let mut e: Vec<(AclTag, Option<u32>, u32)> = Vec::new();
                let mut seen_u = Vec::new();
                for (u, p) in users {
                    if !seen_u.contains(&u) {
                        seen_u.push(u);
                        e.push((AclTag::User, Some(u), p));
                    }
                }
                let mut seen_g = Vec::new();
                for (g, p) in groups {
                    if !seen_g.contains(&g) {
                        seen_g.push(g);
                        e.push((AclTag::Group, Some(g), p));
                    }
                }
                e.push((AclTag::Mask, None, mask));
                e
            }),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
    #[test]
    fn decide_agrees_with_the_kernel(
        owner in proptest::sample::select(&IDS[..]),
        group in proptest::sample::select(&IDS[..]),
        mode in 0u32..0o1000,
        named in acl_strategy(),
        uid in proptest::sample::select(&IDS[..]),
        gid in proptest::sample::select(&IDS[..]),
        extra in proptest::collection::vec(proptest::sample::select(&IDS[..]), 0..2),
    ) {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        // Let every test uid traverse to the file.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("renderD128");
        std::fs::write(&path, "").unwrap();
        std::os::unix::fs::chown(&path, Some(owner), Some(group)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let acl = named.map(|named| {
            // A full ACL: the owner, group and other entries follow the mode, as setfacl keeps them.
            let mut entries = vec![AclEntry { tag: AclTag::UserObj, id: None, perm: (mode >> 6) & 7 }];
            entries.extend(named.iter().filter(|e| e.0 == AclTag::User).map(|&(tag, id, perm)| AclEntry { tag, id, perm }));
            entries.push(AclEntry { tag: AclTag::GroupObj, id: None, perm: (mode >> 3) & 7 });
            entries.extend(named.iter().filter(|e| e.0 == AclTag::Group).map(|&(tag, id, perm)| AclEntry { tag, id, perm }));
            entries.extend(named.iter().filter(|e| e.0 == AclTag::Mask).map(|&(tag, id, perm)| AclEntry { tag, id, perm }));
            entries.push(AclEntry { tag: AclTag::Other, id: None, perm: mode & 7 });
            Acl { entries }
        });
        if let Some(acl) = &acl {
            rustix::fs::setxattr(&path, "system.posix_acl_access", &acl.to_xattr(), rustix::fs::XattrFlags::empty())
                .expect("the temporary directory's filesystem must support POSIX ACLs");
        }
        // Read back what the kernel stored (setting an ACL rewrites the group bits to the mask).
        let meta = std::fs::metadata(&path).unwrap();
        let stored = homelab_probe::host::acl::read_acl(&homelab_probe::Host::live(), &path).unwrap();
        let stat = FileStat { kind: FileKind::File, uid: owner, gid: group, mode: FileMode(std::os::unix::fs::MetadataExt::mode(&meta) & 0o7777), rdev: None };
        let cred = Credentials { uid, gid, groups: extra };
        let ours = access::decide(&stat, stored.as_ref(), &cred, access::READ | access::WRITE).allowed;
        let kernel = kernel_allows(&path, &cred);
        prop_assert_eq!(ours, kernel, "stat {:?} acl {:?} cred {:?}", stat, stored, cred);

        // The remedy, made for real (chgrp, chmod, setfacl, the group joined): the kernel must
        // now let the credentials in, and must hold the mode and ACL our model of those
        // commands predicts.
        let Some(changes) = access::remedy(&stat, stored.as_ref(), &cred, access::READ | access::WRITE) else {
            prop_assert!(kernel, "no remedy, yet the kernel refused");
            return Ok(());
        };
        prop_assert!(!kernel, "a remedy for credentials the kernel lets in: {:?}", changes);
        let (want_stat, want_acl, fixed) = access::apply(&changes, &stat, stored.as_ref(), &cred);
        for c in &changes {
            make(&path, c);
        }
        let meta = std::fs::metadata(&path).unwrap();
        let now = FileStat { kind: FileKind::File, uid: owner, gid: std::os::unix::fs::MetadataExt::gid(&meta), mode: FileMode(std::os::unix::fs::MetadataExt::mode(&meta) & 0o7777), rdev: None };
        let now_acl = homelab_probe::host::acl::read_acl(&homelab_probe::Host::live(), &path).unwrap();
        prop_assert_eq!(&now, &want_stat, "after {:?}", changes);
        prop_assert_eq!(now_acl.map(|a| a.to_string()), want_acl.map(|a| a.to_string()), "after {:?}", changes);
        prop_assert!(kernel_allows(&path, &fixed), "the kernel still refuses {:?} after {:?}", fixed, changes);
    }
}

/// Makes one change on `path` with the tool a person would use.
fn make(path: &Path, c: &access::Change) {
    match c {
        // Credential changes: `apply` made them.
        access::Change::JoinGroup { .. } | access::Change::SetPrimaryGroup { .. } => {}
        access::Change::SetFileGroup { gid } => std::os::unix::fs::chown(path, None, Some(*gid)).unwrap(),
        access::Change::SetMode { mode } => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode)).unwrap()
        }
        access::Change::SetAclEntry { tag, id, perm } => {
            let who = match tag {
                AclTag::User => format!("u:{}", id.unwrap()),
                AclTag::Group => format!("g:{}", id.unwrap()),
                AclTag::UserObj => "u:".into(),
                AclTag::GroupObj => "g:".into(),
                AclTag::Mask => "m:".into(),
                AclTag::Other => "o:".into(),
            };
            let out = std::process::Command::new("setfacl")
                .arg("-m")
                .arg(format!("{who}:{perm}"))
                .arg(path)
                .output()
                .expect("setfacl (package acl) must be installed: scripts/setup-debian --test");
            assert!(out.status.success(), "setfacl: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}
