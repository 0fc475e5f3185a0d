//! The directories an ownership fix must never change wholesale, recognised by what they are
//! (device and inode number), not by the path that reached them: `mount --bind / /run/x`
//! makes `/run/x` the same directory as `/`, and a container that mounts the host's `/` at
//! `/host` gives it yet another name.
//!
//! [`SystemDirs::load`] takes the identity of `/`, `/proc/1/root` (init's root: the host's
//! when a container shares the host's process namespace) and the system directories under
//! both. [`SystemDirs::check`] is what a root, and every directory a walk reaches, must pass
//! (drift's roots and walk; the ownership baseline's restore can call it for each root and
//! each directory it reaches). [`looks_like_os_root`] recognises another system's `/` (a
//! container's view of its host, a chroot) at a mount boundary, where no identity is known.

use std::ffi::CStr;
use std::path::{Path, PathBuf};

use rustix::fd::BorrowedFd;
use rustix::fs::{AtFlags, CWD, StatxFlags};

use crate::scan::FileId;
use crate::scan::escape::escape_path;

/// System directories, below `/` and below init's root, that are never chowned wholesale.
pub const SYSTEM_DIRS: [&str; 12] =
    ["/etc", "/usr", "/var", "/boot", "/home", "/root", "/bin", "/sbin", "/lib", "/lib64", "/nix", "/nix/store"];

/// Directories refused by identity, each with what it is (`/`, `/etc`, ...).
#[derive(Debug, Clone, Default)]
pub struct SystemDirs {
    known: Vec<(FileId, String)>,
}

/// A directory refused: the path that reached it and what it really is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The path given or walked.
    pub path: PathBuf,
    /// What it is: `` `/` ``, `` `/etc` ``, `` `/proc/1/root` (init's root) ``, or why it
    /// looks like an operating system's root.
    pub what: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = escape_path(&self.path);
        if self.what == format!("`{path}`") {
            write!(
                f,
                "refusing to scan or fix {}: a system directory, whose files belong to root; name the data directory (e.g. /mnt/media)",
                self.what
            )
        } else {
            write!(
                f,
                "{path} is {}: refusing to scan or fix a system directory, whatever path leads to it (a bind mount, a container's view of its host); name the data directory (e.g. /mnt/media)",
                self.what
            )
        }
    }
}

fn identity(dirfd: BorrowedFd<'_>, path: &CStr, flags: AtFlags) -> Option<FileId> {
    let stx = rustix::fs::statx(dirfd, path, flags, StatxFlags::INO | StatxFlags::TYPE).ok()?;
    Some(FileId { dev: rustix::fs::makedev(stx.stx_dev_major, stx.stx_dev_minor), ino: stx.stx_ino })
}

/// Device and inode of `path`, following symbolic links (what a walk from there would read).
pub fn identity_of(path: &Path) -> Option<FileId> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    identity(CWD, &c, AtFlags::empty())
}

impl SystemDirs {
    /// `/`, `/proc/1/root` (readable by root only; skipped otherwise) and [`SYSTEM_DIRS`] under
    /// both, as they are now. Directories that do not exist are left out.
    pub fn load() -> SystemDirs {
        let mut s = SystemDirs::default();
        s.add(Path::new("/"), "`/`");
        s.add(Path::new("/proc/1/root"), "`/proc/1/root` (the root of PID 1, init)");
        for d in SYSTEM_DIRS {
            s.add(Path::new(d), &format!("`{d}`"));
            let under_init = format!("/proc/1/root{d}");
            s.add(Path::new(&under_init), &format!("`{d}` of PID 1 (init)"));
        }
        s
    }

    /// Also refuses `path` (by its identity now), saying it is `what`; a path that cannot be
    /// examined is left out.
    pub fn add(&mut self, path: &Path, what: &str) {
        if let Some(id) = identity_of(path)
            && !self.known.iter().any(|(k, _)| *k == id)
        {
            self.known.push((id, what.to_owned()));
        }
    }

    /// What directory `id` is, when it is one of these.
    pub fn identify(&self, id: FileId) -> Option<&str> {
        self.known.iter().find(|(k, _)| *k == id).map(|(_, w)| w.as_str())
    }

    /// Refuses `path` when it is one of these directories (by identity, following symbolic
    /// links as a walk from there would) or looks like an operating system's root.
    pub fn check(&self, path: &Path) -> Result<(), Refused> {
        let refused = |what: String| Refused { path: path.to_path_buf(), what };
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| refused("a path with a NUL byte".into()))?;
        if let Some(id) = identity(CWD, &c, AtFlags::empty())
            && let Some(what) = self.identify(id)
        {
            return Err(refused(what.to_owned()));
        }
        if let Some(what) = looks_like_os_root(CWD, &c) {
            return Err(refused(what));
        }
        Ok(())
    }

    /// Refuses directory `name` of the open directory `dir`, already known as `id`: by
    /// identity always, and at a mount boundary (`mount`) also when it looks like an
    /// operating system's root. For walks, where `path` is built only when refused.
    pub fn check_entry(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        id: FileId,
        mount: bool,
        path: impl FnOnce() -> PathBuf,
    ) -> Result<(), Refused> {
        let what =
            self.identify(id).map(str::to_owned).or_else(|| if mount { looks_like_os_root(dir, name) } else { None });
        match what {
            Some(what) => Err(Refused { path: path(), what }),
            None => Ok(()),
        }
    }
}

/// Whether directory `name` of `dir` holds an operating system: `etc/os-release` (every
/// systemd-era distribution has it, os-release(5)) or `usr/lib/os-release`, beside `usr/bin`.
/// A host's `/` mounted into a container (`/host`, `/rootfs`) has no other mark, because its
/// identity is not the container's `/`.
pub fn looks_like_os_root(dir: BorrowedFd<'_>, name: &CStr) -> Option<String> {
    let under = |rel: &str| {
        let mut p = name.to_bytes().to_vec();
        p.push(b'/');
        p.extend_from_slice(rel.as_bytes());
        let c = std::ffi::CString::new(p).ok()?;
        rustix::fs::statx(dir, &c, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::TYPE).ok()
    };
    let release = ["etc/os-release", "usr/lib/os-release"].into_iter().find(|r| under(r).is_some())?;
    under("usr/bin")?;
    Some(format!("an operating system's root directory (it has {release} and usr/bin)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_known_under_other_names() {
        let s = SystemDirs::load();
        assert_eq!(s.identify(identity_of(Path::new("/")).unwrap()), Some("`/`"));
        for p in ["//", "/.", "/tmp/..", "/proc/self/root", "/etc/.."] {
            let err = s.check(Path::new(p)).unwrap_err();
            assert_eq!(err.what, "`/`", "{p}");
            assert!(err.to_string().starts_with(&format!("{p} is `/`: refusing")), "{err}");
        }
        assert_eq!(s.check(Path::new("/etc")).unwrap_err().what, "`/etc`");
        assert!(s.check(Path::new("/etc/ssl")).is_ok() || !Path::new("/etc/ssl").exists());
    }

    #[test]
    fn an_os_root_is_recognised_by_its_contents() {
        let t = tempfile::tempdir().unwrap();
        let fake = t.path().join("host");
        std::fs::create_dir_all(fake.join("etc")).unwrap();
        std::fs::create_dir_all(fake.join("usr/bin")).unwrap();
        let s = SystemDirs::default();
        assert!(s.check(&fake).is_ok(), "usr/bin alone is not an OS");
        std::fs::write(fake.join("etc/os-release"), "ID=debian\n").unwrap();
        let err = s.check(&fake).unwrap_err();
        assert!(err.what.starts_with("an operating system's root directory (it has etc/os-release"), "{err}");
    }
}
