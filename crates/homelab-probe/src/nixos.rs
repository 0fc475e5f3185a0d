//! What NixOS itself decides about ids, which remedies and generated modules must respect.
//!
//! NixOS reserves static ids in nixpkgs' `nixos/modules/misc/ids.nix` and its modules assign
//! them with ordinary priority (`users.groups.render.gid = config.ids.gids.render;` is always
//! set by `nixos/modules/config/users-groups.nix`). A user's own `users.groups.render.gid = 110;`
//! then conflicts ("The option `users.groups.render.gid' has conflicting definition values")
//! and the configuration does not evaluate: it needs `lib.mkForce`.

use crate::nix_expr;

mod groups;
mod ids_table;

pub use groups::{ALWAYS_PRESENT_GROUPS, always_present_group};
pub use ids_table::{STATIC_GIDS, STATIC_UIDS};

/// The gid NixOS reserves for group `name`, if any.
pub fn static_gid(name: &str) -> Option<u32> {
    STATIC_GIDS.iter().find(|(n, _)| *n == name).map(|&(_, g)| g)
}

/// The uid NixOS reserves for user `name`, if any.
pub fn static_uid(name: &str) -> Option<u32> {
    STATIC_UIDS.iter().find(|(n, _)| *n == name).map(|&(_, u)| u)
}

/// The group name NixOS reserves `gid` for, if any (e.g. 110 -> `systemd-journal-gateway`).
pub fn gid_reserved_by(gid: u32) -> Option<&'static str> {
    STATIC_GIDS.iter().find(|&&(_, g)| g == gid).map(|&(n, _)| n)
}

/// The uid name NixOS reserves `uid` for, if any.
pub fn uid_reserved_by(uid: u32) -> Option<&'static str> {
    STATIC_UIDS.iter().find(|&&(_, u)| u == uid).map(|&(n, _)| n)
}

/// The users every NixOS system has, with their static uids (users-groups.nix declares `root`
/// and `nobody` unconditionally).
pub const ALWAYS_PRESENT_USERS: &[&str] = &["root", "nobody"];

/// Why NixOS refuses `name` as a user name, if it does. nixpkgs'
/// `nixos/modules/config/users-groups.nix` (@ 005ab72f) aborts evaluation on names of 32
/// characters or more (`Username '...' is longer than 31 characters`) and asserts that the name
/// matches `[a-zA-Z0-9_.][a-zA-Z0-9_.-]*` (shadow's is_valid_name without the trailing `$`).
pub fn user_name_problem(name: &str) -> Option<String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'));
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !first_ok || !rest_ok {
        Some("NixOS only accepts user names matching [a-zA-Z0-9_.][a-zA-Z0-9_.-]*".into())
    } else if name.len() >= 32 {
        Some(format!("NixOS aborts on user names longer than 31 characters (this one has {})", name.len()))
    } else {
        None
    }
}

/// Why NixOS refuses `name` as a group name, if it does. users-groups.nix types group names as
/// `passwdEntry str` (no `:`, no line break) and aborts when a user's primary group name is
/// longer than 31 characters (`Group name '...' is longer than 31 characters`); a longer name is
/// refused here for every group, since any declared group may be someone's primary group and
/// shadow's groupadd refuses it too. An empty name would write a broken /etc/group line.
pub fn group_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("an empty group name cannot be declared".into())
    } else if name.contains(':') || name.contains('\n') {
        Some("NixOS refuses group names with `:` or a line break (passwdEntry)".into())
    } else if name.chars().count() >= 32 || name.len() >= 32 {
        Some(format!("NixOS aborts on group names longer than 31 characters (this one has {})", name.len()))
    } else {
        None
    }
}

/// `users.groups.<name>.gid = <gid>;`, with `lib.mkForce` when NixOS pins that group's gid.
pub fn group_gid_line(name: &str, gid: u32) -> String {
    let path =
        nix_expr::attr_path(&["users", "groups", name, "gid"]).unwrap_or_else(|_| format!("users.groups.<{name}>.gid"));
    match static_gid(name) {
        Some(pinned) if pinned != gid => format!("{path} = lib.mkForce {gid};"),
        _ => format!("{path} = {gid};"),
    }
}

/// `users.users.<name>.uid = <uid>;`, with `lib.mkForce` when NixOS pins that user's uid.
pub fn user_uid_line(name: &str, uid: u32) -> String {
    let path =
        nix_expr::attr_path(&["users", "users", name, "uid"]).unwrap_or_else(|_| format!("users.users.<{name}>.uid"));
    match static_uid(name) {
        Some(pinned) if pinned != uid => format!("{path} = lib.mkForce {uid};"),
        _ => format!("{path} = {uid};"),
    }
}

/// `users.users.<name>.extraGroups = [ ... ];`
pub fn user_extra_groups_line(name: &str, groups: &[String]) -> String {
    let path = nix_expr::attr_path(&["users", "users", name, "extraGroups"])
        .unwrap_or_else(|_| format!("users.users.<{name}>.extraGroups"));
    let list = nix_expr::string_list(groups).unwrap_or_else(|_| "[ ]".into());
    format!("{path} = {list};")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("palav", true)]
    #[case("_svc.1-a", true)]
    #[case(".hidden", true)]
    #[case("-dash", false)]
    #[case("a b", false)]
    #[case("名前", false)]
    #[case("host$", false)]
    #[case("", false)]
    #[case("u234567890123456789012345678901", true)]
    #[case("u2345678901234567890123456789012", false)]
    fn user_names_as_users_groups_nix_decides(#[case] name: &str, #[case] ok: bool) {
        assert_eq!(user_name_problem(name).is_none(), ok, "{name:?}: {:?}", user_name_problem(name));
    }

    #[rstest]
    #[case("render", true)]
    #[case("a b", true)]
    #[case("with:colon", false)]
    #[case("x\ny", false)]
    #[case("", false)]
    #[case("g234567890123456789012345678901", true)]
    #[case("g2345678901234567890123456789012", false)]
    fn group_names_as_users_groups_nix_decides(#[case] name: &str, #[case] ok: bool) {
        assert_eq!(group_name_problem(name).is_none(), ok, "{name:?}: {:?}", group_name_problem(name));
    }

    #[test]
    fn render_and_video_are_pinned() {
        assert_eq!(static_gid("render"), Some(303));
        assert_eq!(static_gid("video"), Some(26));
        assert_eq!(gid_reserved_by(110), Some("systemd-journal-gateway"));
        assert_eq!(group_gid_line("render", 110), "users.groups.render.gid = lib.mkForce 110;");
        assert_eq!(group_gid_line("render", 303), "users.groups.render.gid = 303;");
        assert_eq!(group_gid_line("media", 2000), "users.groups.media.gid = 2000;");
        assert_eq!(group_gid_line("my group", 2000), "users.groups.\"my group\".gid = 2000;");
    }
}
