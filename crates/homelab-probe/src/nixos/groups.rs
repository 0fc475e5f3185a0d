//! Groups every NixOS system has, whatever else is configured.
//!
//! Sources in nixpkgs: `nixos/modules/config/users-groups.nix` (NixOS/nixpkgs @ 005ab72f) sets
//! `root wheel kmem tty disk floppy uucp lp cdrom tape audio video dialout nogroup users nixbld
//! utmp adm input kvm render sgx shadow clock` unconditionally (`clock` since systemd 258);
//! `nixos/modules/system/boot/systemd/journald.nix` (NixOS/nixpkgs @ 0145c6da) sets
//! `systemd-journal`;
//! `nixos/modules/system/boot/systemd.nix` sets `keys`. Every one of them has a static gid, so a
//! wanted gid for one of these names needs `lib.mkForce`, and a wanted gid that one of these
//! holds is a collision no configuration can avoid without moving that group.

/// The groups every NixOS system has.
pub const ALWAYS_PRESENT_GROUPS: &[&str] = &[
    "root",
    "wheel",
    "kmem",
    "tty",
    "disk",
    "floppy",
    "uucp",
    "lp",
    "cdrom",
    "tape",
    "audio",
    "video",
    "dialout",
    "nogroup",
    "users",
    "nixbld",
    "utmp",
    "adm",
    "input",
    "kvm",
    "render",
    "sgx",
    "shadow",
    "clock",
    "systemd-journal",
    "keys",
];

/// Whether every NixOS system has group `name`.
pub fn always_present_group(name: &str) -> bool {
    ALWAYS_PRESENT_GROUPS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_always_present_group_has_a_static_gid() {
        for g in ALWAYS_PRESENT_GROUPS {
            assert!(crate::nixos::static_gid(g).is_some(), "{g}");
        }
        assert!(always_present_group("render"));
        assert!(!always_present_group("docker"));
    }
}
