//! The user namespace the probe runs in: `/proc/self/uid_map` and `/proc/self/gid_map`
//! (`sources::idmap`) and `/proc/sys/kernel/overflowgid` (proc(5): the gid a file of an
//! unmapped group shows as, 65534 by default).
//!
//! Outside any container the map is the identity `0 0 4294967295`. Inside an unprivileged LXC
//! container (Proxmox, incus) it covers a range only, and a device node whose host gid is
//! outside it (the host's `render`) shows as the overflow gid (`nogroup`): no group inside can
//! be given access to it.

use std::path::Path;

use crate::host::Host;
pub use crate::model::userns::{IdRange, UserNamespace};
use crate::sources::idmap::parse_map;

/// Reads the namespace of the host's `/proc/self`; `None` where there is no `/proc` (a
/// sysroot of a disk) or it cannot be read.
pub fn read(host: &Host) -> Option<UserNamespace> {
    let map = |p: &str| parse_map(&host.read_to_string(p).ok()?, Path::new(p)).ok();
    Some(UserNamespace {
        uid_map: map("/proc/self/uid_map")?,
        gid_map: map("/proc/self/gid_map")?,
        overflow_gid: host
            .read_to_string("/proc/sys/kernel/overflowgid")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(65534),
    })
}
