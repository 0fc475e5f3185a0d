//! The identity refusal of every writer (drift's fix, the baseline's restore): a directory
//! whose device and inode are those of `/`, of `/proc/1/root` (init's root, which differs from
//! ours in a container or chroot) or of a system directory is never changed, whatever path
//! leads there (a bind mount, a symbolic link given as a root, `..`). Writers call
//! [`SystemDirs::refuse`] once per root and once per directory they enter.
//!
//! Issue 18 owns this rule for drift's fix; this is the one call the restore makes, so that
//! both writers share whichever implementation is kept (docs/architecture.md).

use std::path::Path;

use crate::scan::FileId;
use crate::scan::escape::escape_path;

/// Directories no writer may change, by path as this host has them.
pub const SYSTEM_DIRS: &[&str] = &["/", "/proc/1/root", "/etc", "/usr", "/var", "/boot", "/nix/store", "/home"];

/// The identities (device, inode) of [`SYSTEM_DIRS`] that exist on this host.
#[derive(Debug, Clone, Default)]
pub struct SystemDirs {
    ids: Vec<(FileId, &'static str)>,
}

impl SystemDirs {
    /// Looks the system directories up (following symbolic links: `/proc/1/root` is one, and
    /// what matters is where each leads). Those that do not exist, or cannot be examined, are
    /// left out.
    pub fn load() -> Self {
        let mut ids = Vec::new();
        for &p in SYSTEM_DIRS {
            if let Ok(stx) =
                rustix::fs::statx(rustix::fs::CWD, p, rustix::fs::AtFlags::empty(), rustix::fs::StatxFlags::INO)
            {
                let id = FileId { dev: rustix::fs::makedev(stx.stx_dev_major, stx.stx_dev_minor), ino: stx.stx_ino };
                ids.push((id, p));
            }
        }
        SystemDirs { ids }
    }

    /// `Err` with the reason when the directory `path` (device and inode `id`) is a system
    /// directory.
    pub fn refuse(&self, path: &Path, id: FileId) -> Result<(), String> {
        match self.ids.iter().find(|(i, _)| *i == id) {
            Some((_, sys)) => Err(format!(
                "{} is the system directory {sys} (same device and inode): refusing to change anything in it",
                escape_path(path)
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_refused_under_any_name() {
        let sys = SystemDirs::load();
        let stx =
            rustix::fs::statx(rustix::fs::CWD, "/", rustix::fs::AtFlags::empty(), rustix::fs::StatxFlags::INO).unwrap();
        let id = FileId { dev: rustix::fs::makedev(stx.stx_dev_major, stx.stx_dev_minor), ino: stx.stx_ino };
        let err = sys.refuse(Path::new("/srv/looks/harmless"), id).unwrap_err();
        assert!(err.contains("system directory /"), "{err}");
        let t = tempfile::tempdir().unwrap();
        let stx =
            rustix::fs::statx(rustix::fs::CWD, t.path(), rustix::fs::AtFlags::empty(), rustix::fs::StatxFlags::INO)
                .unwrap();
        let id = FileId { dev: rustix::fs::makedev(stx.stx_dev_major, stx.stx_dev_minor), ino: stx.stx_ino };
        assert!(sys.refuse(t.path(), id).is_ok());
    }
}
