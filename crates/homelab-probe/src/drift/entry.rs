//! Changing one entry that a writer has just examined, on exactly that inode: the entry is
//! opened with `O_PATH | O_NOFOLLOW` (never follows a symbolic link, never opens a device or a
//! FIFO for I/O), its device and inode are checked, and the changes go through that
//! descriptor: `fchownat(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)`, and `chmod`, the
//! capability attribute through `/proc/self/fd/N`, which names the inode the descriptor holds
//! (Linux has no `fchmod` on an `O_PATH` descriptor before `fchmodat2`). A rename or a
//! symbolic link put in the entry's place after the check cannot redirect the change.

use std::ffi::{CStr, CString};

use rustix::fd::{AsRawFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, Gid, Mode, OFlags, StatxFlags, Uid};
use rustix::io::Errno;

use crate::scan::FileId;

/// The file capabilities attribute (`security.capability`), which `chown` removes.
pub(crate) const CAPS_XATTR: &CStr = c"security.capability";

/// Opens entry `name` of `dir` as an `O_PATH` descriptor and checks it is inode `id`
/// (`ESTALE` when another file took the name).
pub(crate) fn open(dir: BorrowedFd<'_>, name: &CStr, id: FileId) -> rustix::io::Result<OwnedFd> {
    open_stat(dir, name, id, StatxFlags::INO).map(|(fd, _)| fd)
}

/// [`open`], returning what one `statx` of the descriptor says (`mask` and the inode): the
/// caller checks the rest of what it expects (owner, mode, birth time) on that same inode.
pub(crate) fn open_stat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    id: FileId,
    mask: StatxFlags,
) -> rustix::io::Result<(OwnedFd, rustix::fs::Statx)> {
    let fd = rustix::fs::openat(dir, name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
    let stx = rustix::fs::statx(&fd, c"", AtFlags::EMPTY_PATH, mask | StatxFlags::INO)?;
    if stx.stx_ino != id.ino || rustix::fs::makedev(stx.stx_dev_major, stx.stx_dev_minor) != id.dev {
        return Err(Errno::STALE);
    }
    Ok((fd, stx))
}

/// The file capabilities of the inode `fd` holds (`None`: it has none, or its filesystem keeps
/// no extended attributes). Read through `/proc/self/fd/N`, so it is the inode that was
/// checked, not whatever has the name now; any other error is an error (a change that would
/// clear capabilities nobody read must not be made).
pub(crate) fn caps(fd: &OwnedFd) -> rustix::io::Result<Option<Vec<u8>>> {
    let mut buf = [0u8; 256];
    match rustix::fs::getxattr(proc_path(fd).as_c_str(), CAPS_XATTR, &mut buf[..]) {
        Ok(n) => Ok(Some(buf[..n].to_vec())),
        Err(Errno::NODATA | Errno::OPNOTSUPP) => Ok(None),
        Err(e) => Err(e),
    }
}

fn proc_path(fd: &OwnedFd) -> CString {
    // Digits only: cannot hold a NUL.
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default()
}

/// Sets the owner of the inode `fd` holds (a symbolic link itself, never its target).
pub(crate) fn chown(fd: &OwnedFd, uid: u32, gid: u32) -> rustix::io::Result<()> {
    rustix::fs::chownat(
        fd,
        c"",
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
    )
}

/// Sets the permission bits of the inode `fd` holds (not for symbolic links: Linux has no
/// mode to change on them).
pub(crate) fn chmod(fd: &OwnedFd, perm: u32) -> rustix::io::Result<()> {
    rustix::fs::chmod(proc_path(fd).as_c_str(), Mode::from_raw_mode(perm & 0o7777))
}

/// Sets the capability attribute of the inode `fd` holds.
pub(crate) fn set_caps(fd: &OwnedFd, value: &[u8]) -> rustix::io::Result<()> {
    rustix::fs::setxattr(proc_path(fd).as_c_str(), CAPS_XATTR, value, rustix::fs::XattrFlags::empty())
}
