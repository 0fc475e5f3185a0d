//! The user namespace the probe runs in: `/proc/self/uid_map` and `/proc/self/gid_map`
//! (user_namespaces(7), "User and group ID mappings": lines of three numbers, `ID-inside-ns
//! ID-outside-ns length`) and `/proc/sys/kernel/overflowgid` (proc(5): the gid a file of an
//! unmapped group shows as, 65534 by default).
//!
//! Outside any container the map is the identity `0 0 4294967295`. Inside an unprivileged LXC
//! container (Proxmox, incus) it covers a range only, and a device node whose host gid is
//! outside it (the host's `render`) shows as the overflow gid (`nogroup`): no group inside can
//! be given access to it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::host::Host;
use crate::model::text::ParseError;

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

/// Parses a uid or gid map.
pub fn parse_map(text: &str, file: &Path) -> Result<Vec<IdRange>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let nums: Vec<Option<u32>> = line.split_whitespace().map(|w| w.parse().ok()).collect();
        match nums.as_slice() {
            [Some(inside), Some(outside), Some(count)] => {
                out.push(IdRange { inside: *inside, outside: *outside, count: *count })
            }
            _ => {
                return Err(ParseError {
                    file: file.to_path_buf(),
                    line: i + 1,
                    message: format!("{line:?} is not three numbers (inside, outside, count)"),
                });
            }
        }
    }
    Ok(out)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_parse_and_the_identity_is_the_initial_namespace() {
        let f = Path::new("/proc/self/gid_map");
        let id = parse_map("         0          0 4294967295\n", f).unwrap();
        let ns = UserNamespace { uid_map: id.clone(), gid_map: id, overflow_gid: 65534 };
        assert!(ns.is_initial());
        let lxc = parse_map("0 100000 65536\n", f).unwrap();
        let ns = UserNamespace { gid_map: lxc, ..ns };
        assert!(!ns.is_initial());
        assert_eq!(ns.gid_map_text(), "0 100000 65536");
        assert_eq!(
            parse_map("0 x 1\n", f).unwrap_err().to_string(),
            "/proc/self/gid_map:1: \"0 x 1\" is not three numbers (inside, outside, count)"
        );
    }
}
