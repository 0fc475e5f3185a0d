//! Reads POSIX access ACLs (acl(5)) from the `system.posix_acl_access` extended attribute;
//! the bytes are decoded by the model's [`Acl`].

use std::path::Path;

use super::{Host, HostError};
use crate::model::acl::Acl;

const XATTR: &str = "system.posix_acl_access";

/// Reads the access ACL of `path` (not following a final symlink). `Ok(None)` when there
/// is none or the filesystem does not support ACLs.
pub fn read_acl(host: &Host, path: &Path) -> Result<Option<Acl>, HostError> {
    let real = host.resolve(path, false);
    let mut buf = vec![0u8; 1024];
    match rustix::fs::lgetxattr(&real, XATTR, &mut buf) {
        Ok(n) => Ok(Acl::from_xattr(&buf[..n])),
        Err(e)
            if e == rustix::io::Errno::NODATA
                || e == rustix::io::Errno::NOTSUP
                || e == rustix::io::Errno::OPNOTSUPP =>
        {
            Ok(None)
        }
        Err(e) => Err(HostError::Io { path: real, source: e.into() }),
    }
}
