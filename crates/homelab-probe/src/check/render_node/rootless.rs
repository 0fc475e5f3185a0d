//! The `render_access` finding of a rootless container: its process's host credentials (the
//! owner's user namespace) and the remedies that fit a user namespace.

use super::{AccessContext, P, RW, node_fix, owner_text, udev_rule, via_text};
use crate::check::access::{self, Change, Credentials};
use crate::host::identity::IdentityDb;
use crate::model::expectations::AccessExpectation;
use crate::model::finding::{Finding, Remedy};
use crate::model::fs::FileMode;
use crate::nixos;
use crate::sources::passwd::PasswdEntry;

/// The host id of an id that no host user or group has: what a rootless container's ids other
/// than 0 become through `/etc/subuid` and `/etc/subgid` (they match no file's owner or group).
const NO_HOST_ID: u32 = u32::MAX - 1;

/// The host credentials of a rootless container's process ([`AccessExpectation::rootless`]):
/// the namespace's 0 is the owner, every other id maps through `/etc/subuid`/`/etc/subgid` to
/// an id of no host user or group (rootless Podman's default mapping), and the supplementary
/// groups are the owner's host groups, looked up by name here, only with keep-groups.
fn rootless_credentials(a: &AccessExpectation, owner: Option<&PasswdEntry>, ids: &IdentityDb) -> Credentials {
    let map = |inside: u32, owners: Option<u32>| if inside == 0 { owners.unwrap_or(NO_HOST_ID) } else { NO_HOST_ID };
    let groups = match (a.keep_groups, owner) {
        (true, Some(u)) => ids.gids_of(u),
        _ => Vec::new(),
    };
    Credentials { uid: map(a.uid, owner.map(|u| u.uid)), gid: map(a.gid, owner.map(|u| u.gid)), groups }
}

/// The `render_access` finding of a rootless container: decided with its host credentials
/// ([`rootless_credentials`]), and when it cannot open the node the remedy is what fits a user
/// namespace: keep-groups (with the owner in the node's group), or a mode others may open.
/// A `group_add` or PGID would be a gid of the namespace, so it is never the remedy.
pub(super) fn rootless_finding(ctx: &AccessContext<'_>, a: &AccessExpectation, owner: &str) -> Finding {
    let n = ctx.n;
    let host_owner = ctx.ids.user_by_name(owner);
    let cred = rootless_credentials(a, host_owner.as_ref(), ctx.ids);
    let who = a.describe();
    let d = access::decide(&n.stat, n.acl.as_ref(), &cred, RW);
    if a.keep_groups && host_owner.is_none() {
        return Finding::fail(
            P,
            "render_access",
            &n.path,
            format!("{who}: user {owner} does not exist here, so whose host groups keep-groups keeps is unknown"),
            Remedy::nixos(format!("{}  # and the groups it needs", nixos::user_extra_groups_line(owner, &[]))),
        )
        .evidence("credentials", &cred);
    }
    let f = if d.allowed {
        Finding::pass(
            P,
            "render_access",
            &n.path,
            format!("{who} can open {} read/write (via {})", n.path, via_text(d.via)),
        )
    } else {
        Finding::fail(
            P,
            "render_access",
            &n.path,
            format!("{who} cannot open {} read/write ({})", n.path, owner_text(n)),
            rootless_fix(ctx, a, owner, host_owner.as_ref(), &cred),
        )
    };
    f.evidence("credentials", &cred).evidence("via", d.via)
}

/// What lets a rootless container in, each alternative checked by deciding again: keep-groups
/// (when it is off) and the owner in the node's group (when the owner's host groups lack it),
/// or a mode whose other bits grant read/write (what a process of no host group gets).
fn rootless_fix(
    ctx: &AccessContext<'_>,
    a: &AccessExpectation,
    owner: &str,
    host_owner: Option<&PasswdEntry>,
    cred: &Credentials,
) -> Remedy {
    let n = ctx.n;
    let (stat, acl) = (&n.stat, n.acl.as_ref());
    let mut alternatives: Vec<String> = Vec::new();
    let keep = "add keep-groups: GroupAdd=keep-groups in its quadlet unit, --group-add keep-groups to podman run, or group_add: [ keep-groups ] in its compose file (with crun)";
    let kept = host_owner.map(|u| {
        let mut k = cred.clone();
        k.groups = ctx.ids.gids_of(u);
        k
    });
    let group = n.group_name.clone().unwrap_or_else(|| ctx.r.group.clone());
    let join = nixos::user_extra_groups_line(owner, std::slice::from_ref(&group));
    if let Some(k) = &kept {
        let joins = [Change::JoinGroup { gid: stat.gid }];
        match (a.keep_groups, access::decide(stat, acl, k, RW).allowed) {
            (false, true) => alternatives.push(format!("{keep} ({owner}'s host groups then open it)")),
            (false, false) if access::passes_after(&joins, stat, acl, k, RW) => {
                alternatives.push(format!("{keep}, and put {owner} in group {group}: {join}"));
            }
            (true, false) if access::passes_after(&joins, stat, acl, k, RW) => {
                alternatives
                    .push(format!("put {owner} in group {group} (keep-groups keeps {owner}'s host groups): {join}"));
            }
            _ => {}
        }
    }
    let mode = stat.mode.0 | 0o006;
    if access::passes_after(&[Change::SetMode { mode }], stat, acl, cred, RW) {
        alternatives.push(format!(
            "give the node a mode others may open (every user on the host can then use the GPU): {}",
            udev_rule(Some(&ctx.r.group), Some(FileMode(mode))).text
        ));
    }
    if alternatives.is_empty() {
        return node_fix(n, ctx.r, ctx.udevd);
    }
    Remedy::manual(alternatives.join("; or "))
}
