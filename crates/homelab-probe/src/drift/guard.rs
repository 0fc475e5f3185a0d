//! The identity refusal of every writer (drift's fix, the baseline's restore): a directory
//! whose device and inode are those of `/`, of `/proc/1/root` (init's root, which differs from
//! ours in a container or chroot) or of a system directory is never changed, whatever path
//! leads there (a bind mount, a symbolic link given as a root, `..`). The restore asks
//! [`SystemDirs::check`] of every root and [`SystemDirs::identify`] of every directory it
//! enters.
//!
//! Issue 18 owns this rule and writes the shared `drift/guard.rs` on its branch; this file
//! has the same path and the same signatures (`SystemDirs::load`, `add`, `identify`, `check`,
//! `Refused`, `identity_of`), so that one replaces this one at merge time unchanged.

use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, StatxFlags};

use crate::scan::FileId;
use crate::scan::escape::escape_path;

/// System directories, below `/` and below init's root, that are never changed wholesale.
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
    /// What it is: `` `/` ``, `` `/etc` ``, `` `/proc/1/root` (init's root) ``.
    pub what: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is {}: refusing to change a system directory, whatever path leads to it (a bind mount, a symbolic link); name the data directory (e.g. /srv/appdata)",
            escape_path(&self.path),
            self.what
        )
    }
}

/// Device and inode of `path`, following symbolic links (what a walk from there would read).
pub fn identity_of(path: &Path) -> Option<FileId> {
    let stx = rustix::fs::statx(CWD, path, AtFlags::empty(), StatxFlags::INO | StatxFlags::TYPE).ok()?;
    Some(FileId { dev: rustix::fs::makedev(stx.stx_dev_major, stx.stx_dev_minor), ino: stx.stx_ino })
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
    /// links as a walk from there would).
    pub fn check(&self, path: &Path) -> Result<(), Refused> {
        match identity_of(path).and_then(|id| self.identify(id)) {
            Some(what) => Err(Refused { path: path.to_path_buf(), what: what.to_owned() }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_refused_under_any_name() {
        let s = SystemDirs::load();
        assert_eq!(s.identify(identity_of(Path::new("/")).unwrap()), Some("`/`"));
        for p in ["//", "/.", "/tmp/..", "/proc/self/root", "/etc/.."] {
            let err = s.check(Path::new(p)).unwrap_err();
            assert_eq!(err.what, "`/`", "{p}");
            assert!(err.to_string().starts_with(&format!("{p} is `/`: refusing")), "{err}");
        }
        assert_eq!(s.check(Path::new("/etc")).unwrap_err().what, "`/etc`");
        let t = tempfile::tempdir().unwrap();
        assert!(s.check(t.path()).is_ok());
    }
}
