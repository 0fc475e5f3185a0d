//! The user namespace a host runs in, as the kernel describes it (user_namespaces(7): the uid
//! and gid maps; proc(5): the overflow gid). Read by `host::userns`, recorded in snapshots.

use serde::{Deserialize, Serialize};

/// One line of a uid or gid map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    /// First id inside the namespace.
    pub inside: u32,
    /// The id it is outside (in the parent namespace).
    pub outside: u32,
    /// How many ids.
    pub count: u32,
}

/// The namespace's maps and overflow gid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserNamespace {
    /// `/proc/self/uid_map`.
    pub uid_map: Vec<IdRange>,
    /// `/proc/self/gid_map`.
    pub gid_map: Vec<IdRange>,
    /// `/proc/sys/kernel/overflowgid`.
    pub overflow_gid: u32,
}

/// The map of the initial user namespace (no container).
const IDENTITY: IdRange = IdRange { inside: 0, outside: 0, count: u32::MAX };

impl UserNamespace {
    /// Whether this is the initial namespace (both maps the identity).
    pub fn is_initial(&self) -> bool {
        self.uid_map == [IDENTITY] && self.gid_map == [IDENTITY]
    }

    /// The gid map as `/proc/self/gid_map` writes it, one range a clause: `0 100000 65536`.
    pub fn gid_map_text(&self) -> String {
        let parts: Vec<String> =
            self.gid_map.iter().map(|r| format!("{} {} {}", r.inside, r.outside, r.count)).collect();
        parts.join(", ")
    }
}
