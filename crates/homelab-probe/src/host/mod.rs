//! [`Host`]: the root directory every file read goes through, plus the live-only facilities
//! (NSS look-ups, DRM ioctls, NVML, libva) that are used only when the root is the running
//! system.
//!
//! A *sysroot* is any other directory laid out like `/` (a fixture, a mounted disk, a chroot).
//! Symbolic links inside it are resolved inside it, as `chroot` would: an absolute link target
//! such as NixOS's `/etc/static/...` stays under the sysroot.
//!
//! A plain directory tree cannot hold device nodes or files owned by other users without root.
//! A sysroot may therefore carry a manifest, `homelab-sysroot.toml` at its top, that records
//! the type, owner, group and mode of such paths; see [`SysrootManifest`].

pub mod acl;
pub mod blockdev;
pub mod drm;
pub mod engine;
pub mod identity;
mod load;
pub mod mounts;
pub mod nvml;
pub mod udevd;
pub mod userns;
pub mod vaapi;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::fs::{DevNumber, FileKind, FileMode, FileStat};
use crate::model::report::HostInfo;

/// Name of the manifest file at the top of a sysroot.
pub const SYSROOT_MANIFEST: &str = "homelab-sysroot.toml";

/// The host being probed: the live system or a sysroot.
#[derive(Debug, Clone)]
pub struct Host {
    root: PathBuf,
    live: bool,
    manifest: BTreeMap<PathBuf, FileStat>,
}

/// Why something could not be read from the host.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// An I/O error on a path (shown as the real path, including the sysroot prefix).
    #[error("{}: {source}", path.display())]
    Io {
        /// The real path that failed.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The sysroot manifest is malformed.
    #[error("{}:{line}: {message}", file.display())]
    Manifest {
        /// The manifest file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl HostError {
    /// The underlying I/O error kind, when it is one.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            HostError::Io { source, .. } => Some(source.kind()),
            HostError::Manifest { .. } => None,
        }
    }
}

/// The sysroot manifest, `homelab-sysroot.toml`: metadata a plain directory cannot hold.
///
/// ```toml
/// [[node]]
/// path = "/dev/dri/renderD128"   # must exist in the sysroot (an empty file will do)
/// kind = "char"                  # file, dir, char, block, ...
/// rdev = { major = 226, minor = 128 }
/// uid = 0
/// gid = 303
/// mode = "0666"
/// ```
///
/// Only sysroots read it; on the live host the kernel is the truth.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SysrootManifest {
    /// Entries, one per path.
    #[serde(default)]
    pub node: Vec<ManifestEntry>,
}

/// One path's metadata in a [`SysrootManifest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// Absolute path inside the sysroot.
    pub path: String,
    /// File type.
    pub kind: FileKind,
    /// Device number for `char` and `block`.
    #[serde(default)]
    pub rdev: Option<DevNumber>,
    /// Owner uid.
    pub uid: u32,
    /// Group gid.
    pub gid: u32,
    /// Permission bits.
    pub mode: FileMode,
}

impl SysrootManifest {
    /// Parses the text of a manifest; `file` names it in errors, which carry the line.
    pub fn parse(text: &str, file: &Path) -> Result<Self, HostError> {
        toml::from_str(text).map_err(|e| HostError::Manifest {
            file: file.to_path_buf(),
            line: crate::model::text::line_col(text, e.span().map_or(0, |s| s.start)).0,
            message: e.message().to_owned(),
        })
    }
}

impl Host {
    /// The running system, rooted at `/`.
    pub fn live() -> Self {
        Host { root: PathBuf::from("/"), live: true, manifest: BTreeMap::new() }
    }

    /// The host rooted at `root`: the live system when `root` is `/`, else a sysroot (whose
    /// manifest, if any, is loaded).
    pub fn at(root: impl AsRef<Path>) -> Result<Self, HostError> {
        let root = root.as_ref();
        let canon = root.canonicalize().map_err(|source| HostError::Io { path: root.to_path_buf(), source })?;
        if canon == Path::new("/") {
            return Ok(Host::live());
        }
        if !canon.is_dir() {
            return Err(HostError::Io {
                path: root.to_path_buf(),
                source: io::Error::new(io::ErrorKind::NotADirectory, "the root must be a directory"),
            });
        }
        let mut host = Host { root: canon, live: false, manifest: BTreeMap::new() };
        host.load_manifest()?;
        Ok(host)
    }

    fn load_manifest(&mut self) -> Result<(), HostError> {
        let file = self.root.join(SYSROOT_MANIFEST);
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(HostError::Io { path: file, source }),
        };
        let m = SysrootManifest::parse(&text, &file)?;
        for entry in m.node {
            let resolved = self.resolve(&entry.path, false);
            if std::fs::symlink_metadata(&resolved).is_err() {
                return Err(HostError::Manifest {
                    file: file.clone(),
                    line: 1,
                    message: format!("{} is listed but does not exist in the sysroot", entry.path),
                });
            }
            let stat =
                FileStat { kind: entry.kind, uid: entry.uid, gid: entry.gid, mode: entry.mode, rdev: entry.rdev };
            self.manifest.insert(resolved, stat);
        }
        Ok(())
    }

    /// Describes this host for a report or snapshot: its root, whether it is live, its host
    /// name (`/proc/sys/kernel/hostname` live, `/etc/hostname` in a sysroot) and the running
    /// kernel's release (live only).
    pub fn info(&self) -> HostInfo {
        let hostname = self
            .read_to_string(if self.live { "/proc/sys/kernel/hostname" } else { "/etc/hostname" })
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        let kernel = self.live.then(|| rustix::system::uname().release().to_string_lossy().into_owned());
        HostInfo { hostname, root: self.root.clone(), live: self.live, kernel }
    }

    /// Whether the host is NixOS: its os-release(5) says `ID=nixos`, or it has the `/etc/NIXOS`
    /// marker NixOS's activation writes. Remarks about NixOS's own choices (the gids it pins)
    /// are for these hosts only.
    pub fn is_nixos(&self) -> bool {
        let id = crate::sources::os_release::OS_RELEASE_FILES
            .iter()
            .find_map(|f| self.read_to_string(f).ok())
            .and_then(|text| crate::sources::os_release::parse(&text).remove("ID"));
        id.as_deref() == Some("nixos") || self.exists("/etc/NIXOS")
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether this is the running system (NSS look-ups and device ioctls are allowed).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// The real path of host path `path` (absolute, as the host sees it), with symbolic links
    /// resolved inside the root. The last component is followed only if `follow_last`.
    pub fn resolve(&self, path: impl AsRef<Path>, follow_last: bool) -> PathBuf {
        let path = path.as_ref();
        if self.live {
            return Path::new("/").join(path);
        }
        resolve_in_root(&self.root, path, follow_last)
    }

    fn io_err(&self, path: &Path, source: io::Error) -> HostError {
        HostError::Io { path: self.resolve(path, false), source }
    }

    /// Reads a whole text file.
    pub fn read_to_string(&self, path: impl AsRef<Path>) -> Result<String, HostError> {
        let path = path.as_ref();
        std::fs::read_to_string(self.resolve(path, true)).map_err(|e| self.io_err(path, e))
    }

    /// Names in a directory, sorted.
    pub fn read_dir(&self, path: impl AsRef<Path>) -> Result<Vec<OsString>, HostError> {
        let path = path.as_ref();
        let rd = std::fs::read_dir(self.resolve(path, true)).map_err(|e| self.io_err(path, e))?;
        let mut names = Vec::new();
        for entry in rd {
            names.push(entry.map_err(|e| self.io_err(path, e))?.file_name());
        }
        names.sort();
        Ok(names)
    }

    /// Type, owner, group and mode of `path`, without following a final symbolic link. In a
    /// sysroot, the manifest's entry wins over the directory tree.
    pub fn stat(&self, path: impl AsRef<Path>) -> Result<FileStat, HostError> {
        let path = path.as_ref();
        let real = self.resolve(path, false);
        if let Some(s) = self.manifest.get(&real) {
            return Ok(*s);
        }
        std::fs::symlink_metadata(&real).map(|m| file_stat(&m)).map_err(|e| self.io_err(path, e))
    }

    /// Whether `path` exists (without following a final symbolic link).
    pub fn exists(&self, path: impl AsRef<Path>) -> bool {
        std::fs::symlink_metadata(self.resolve(path, false)).is_ok()
    }

    /// The target of symbolic link `path`, as stored.
    pub fn read_link(&self, path: impl AsRef<Path>) -> Result<PathBuf, HostError> {
        let path = path.as_ref();
        std::fs::read_link(self.resolve(path, false)).map_err(|e| self.io_err(path, e))
    }

    /// `path` with every symbolic link resolved, as a host path (absolute, without the root
    /// prefix): `/sys/class/drm/renderD128/device` -> `/sys/devices/pci0000:00/0000:00:02.0`.
    pub fn canonical(&self, path: impl AsRef<Path>) -> Result<PathBuf, HostError> {
        let path = path.as_ref();
        let real = self.resolve(path, true);
        let real = if self.live { real.canonicalize().map_err(|e| self.io_err(path, e))? } else { real };
        if !self.live && std::fs::symlink_metadata(&real).is_err() {
            return Err(self.io_err(path, io::Error::from(io::ErrorKind::NotFound)));
        }
        Ok(Path::new("/").join(real.strip_prefix(&self.root).unwrap_or(&real)))
    }
}

/// The [`FileStat`] of what `symlink_metadata` returned.
pub(crate) fn file_stat(m: &std::fs::Metadata) -> FileStat {
    let ft = m.file_type();
    let kind = if ft.is_symlink() {
        FileKind::Symlink
    } else if ft.is_dir() {
        FileKind::Dir
    } else if ft.is_char_device() {
        FileKind::Char
    } else if ft.is_block_device() {
        FileKind::Block
    } else if ft.is_fifo() {
        FileKind::Fifo
    } else if ft.is_socket() {
        FileKind::Socket
    } else {
        FileKind::File
    };
    let rdev = matches!(kind, FileKind::Char | FileKind::Block).then(|| {
        let d = m.rdev();
        DevNumber { major: rustix::fs::major(d), minor: rustix::fs::minor(d) }
    });
    FileStat { kind, uid: m.uid(), gid: m.gid(), mode: FileMode(m.mode() & 0o7777), rdev }
}

/// Resolves `path` inside `root` like `chroot(2)` would: `..` never leaves the root and an
/// absolute link target restarts at the root. Missing components are kept as they are (the
/// caller's open reports them). Gives up following links after 40, as the kernel does.
fn resolve_in_root(root: &Path, path: &Path, follow_last: bool) -> PathBuf {
    let mut pending: Vec<OsString> = Vec::new();
    push_components(&mut pending, path);
    let mut resolved: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(comp) = pending.pop() {
        if comp == ".." {
            resolved.pop();
            continue;
        }
        let candidate: PathBuf = std::iter::once(root.as_os_str().to_owned())
            .chain(resolved.iter().cloned())
            .chain([comp.clone()])
            .collect();
        let is_last = pending.is_empty();
        let is_link = std::fs::symlink_metadata(&candidate).is_ok_and(|m| m.file_type().is_symlink());
        if is_link && (follow_last || !is_last) && links < 40 {
            links += 1;
            if let Ok(target) = std::fs::read_link(&candidate) {
                if target.is_absolute() {
                    resolved.clear();
                }
                push_components(&mut pending, &target);
                continue;
            }
        }
        resolved.push(comp);
    }
    std::iter::once(root.as_os_str().to_owned()).chain(resolved).collect()
}

/// Pushes the normal and `..` components of `path` onto `stack` so they pop in order.
fn push_components(stack: &mut Vec<OsString>, path: &Path) {
    let comps: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    stack.extend(comps.into_iter().rev());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_resolve_inside_the_sysroot() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("etc/static")).unwrap();
        std::fs::create_dir_all(r.join("sys/devices/pci0000:00/0000:00:02.0/drm/renderD128")).unwrap();
        std::fs::create_dir_all(r.join("sys/class/drm")).unwrap();
        std::fs::write(r.join("etc/static/fstab"), "x").unwrap();
        // NixOS style absolute link: must stay in the sysroot.
        symlink("/etc/static/fstab", r.join("etc/fstab")).unwrap();
        symlink("../../devices/pci0000:00/0000:00:02.0/drm/renderD128", r.join("sys/class/drm/renderD128")).unwrap();
        symlink("../../../0000:00:02.0", r.join("sys/devices/pci0000:00/0000:00:02.0/drm/renderD128/device")).unwrap();
        // A link trying to escape with .. stays at the root.
        symlink("../../../../../../etc/static/fstab", r.join("etc/escape")).unwrap();
        symlink("loop", r.join("etc/loop")).unwrap();

        let host = Host::at(r).unwrap();
        assert!(!host.is_live());
        assert_eq!(host.read_to_string("/etc/fstab").unwrap(), "x");
        assert_eq!(host.read_to_string("/etc/escape").unwrap(), "x");
        assert_eq!(
            host.canonical("/sys/class/drm/renderD128/device").unwrap(),
            Path::new("/sys/devices/pci0000:00/0000:00:02.0")
        );
        assert_eq!(host.stat("/etc/fstab").unwrap().kind, FileKind::Symlink);
        let err = host.read_to_string("/etc/loop").unwrap_err().to_string();
        assert!(err.contains("etc/loop"), "{err}");
    }

    #[test]
    fn manifest_overrides_stat_and_reports_bad_lines() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("dev/dri")).unwrap();
        std::fs::write(r.join("dev/dri/renderD128"), "").unwrap();
        std::fs::write(
            r.join(SYSROOT_MANIFEST),
            "[[node]]\npath = \"/dev/dri/renderD128\"\nkind = \"char\"\nrdev = { major = 226, minor = 128 }\nuid = 0\ngid = 303\nmode = \"0666\"\n",
        )
        .unwrap();
        let host = Host::at(r).unwrap();
        let s = host.stat("/dev/dri/renderD128").unwrap();
        assert_eq!((s.kind, s.gid, s.mode), (FileKind::Char, 303, FileMode(0o666)));

        std::fs::write(
            r.join(SYSROOT_MANIFEST),
            "[[node]]\npath = \"/dev/dri/renderD128\"\nkind = \"char\"\nuid = 0\ngid = 303\nmode = \"0966\"\n",
        )
        .unwrap();
        let err = Host::at(r).unwrap_err().to_string();
        assert!(err.contains("homelab-sysroot.toml:6:"), "{err}");
        std::fs::write(
            r.join(SYSROOT_MANIFEST),
            "[[node]]\npath = \"/dev/dri/card9\"\nkind = \"char\"\nuid = 0\ngid = 0\nmode = \"0666\"\n",
        )
        .unwrap();
        let err = Host::at(r).unwrap_err().to_string();
        assert!(err.contains("/dev/dri/card9 is listed but does not exist"), "{err}");
    }

    #[test]
    fn slash_is_live() {
        assert!(Host::at("/").unwrap().is_live());
        assert!(Host::at("/nonexistent-root-dir").is_err());
    }
}
