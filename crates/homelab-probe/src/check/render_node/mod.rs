//! The render-node probe: for every `/dev/dri/renderD*` (and, for inventory, `card*`) node,
//! who owns it, with what mode, which device and driver is behind it, and whether the
//! credentials that must use it (a container's PUID/PGID) can open it for reading and writing.
//!
//! It names a real trap: udevd resolves `GROUP="render"` to a gid when it starts. After
//! `groupmod -g 110 render`, the running udevd keeps giving the node the old gid, which now
//! belongs to no group. Seen under QEMU with Debian 12's systemd 252: neither
//! `udevadm control --reload` nor `udevadm trigger` (change or add) fixes it; restarting udevd
//! and then triggering an `add` event does (a `change` event does not re-apply ownership).

use crate::check::access::{self, Blocker, Change, Credentials, Via};
use crate::host::Host;
use crate::host::drm::{self, DRI_DIR};
use crate::host::identity::IdentityDb;
use crate::host::udevd::Udevd;
use crate::host::userns::{self, UserNamespace};
use crate::model::acl::{Acl, AclTag};
use crate::model::expectations::{Expectations, RenderExpectation};
use crate::model::finding::{Finding, Probe, Remedy, RemedyKind};
use crate::model::fs::{FileKind, FileMode};
use crate::model::inventory::{DrmNode, DrmNodeKind};
use crate::nixos;

mod rootless;

use rootless::rootless_finding;

const P: Probe = Probe::RenderNode;

/// Runs the render-node probe.
pub fn check(host: &Host, ids: &IdentityDb, exp: &Expectations) -> Vec<Finding> {
    let nodes = match drm::inventory(host, ids) {
        Ok(n) => n,
        Err(e) => {
            return vec![Finding::fail(
                P,
                "inventory",
                DRI_DIR,
                format!("cannot list DRM nodes: {e}"),
                Remedy::manual(format!(
                    "{DRI_DIR} must be a directory this user can read (udev creates it root:root 0755 when a GPU driver loads): check `ls -ld {DRI_DIR}`, or run the check as root"
                )),
            )];
        }
    };
    let userns = userns::read(host).filter(|ns| !ns.is_initial());
    decide(host.is_live(), &nodes, ids, exp, userns.as_ref(), &Udevd::detect(host))
}

/// A host without render nodes: the GPU's driver and the graphics stack.
fn graphics_remedy() -> Remedy {
    Remedy::nixos(
        "hardware.graphics.enable = true;  # and the GPU's driver: i915/xe and amdgpu load by themselves; NVIDIA needs services.xserver.videoDrivers = [ \"nvidia\" ];",
    )
}

/// The decisions over an inventory (separate from gathering, so they can be tested on any
/// inventory, e.g. one taken from a snapshot).
/// `userns`: the user namespace when it is not the initial one (an unprivileged LXC container,
/// `unshare --user`), where a node of an unmapped host group shows as the overflow gid.
/// `udevd`: how udevd runs here, which decides the stale-gid remedy.
pub fn decide(
    live: bool,
    nodes: &[DrmNode],
    ids: &IdentityDb,
    exp: &Expectations,
    userns: Option<&UserNamespace>,
    udevd: &Udevd,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let render = exp.render.as_ref();
    let has_render = nodes.iter().any(|n| n.kind == DrmNodeKind::Render);
    if !has_render {
        let why = if nodes.is_empty() {
            "no GPU: /dev/dri has no DRM nodes (no GPU driver is loaded), so there is no render node to check"
        } else {
            "/dev/dri has card nodes but no render node (a display-only driver), so there is no render node to check"
        };
        match render {
            Some(r) if r.required => out.push(Finding::fail(
                P,
                "render_present",
                DRI_DIR,
                format!("a render node is required, but {why}"),
                graphics_remedy(),
            )),
            _ => out.push(Finding::skip(P, "render_present", DRI_DIR, why)),
        }
    }
    if let Some(r) = render {
        let present: Vec<&str> =
            nodes.iter().filter(|n| n.kind == DrmNodeKind::Render).map(|n| n.path.as_str()).collect();
        for want in &r.nodes {
            if !nodes.iter().any(|n| &n.path == want) {
                let fix = if present.is_empty() {
                    graphics_remedy()
                } else {
                    Remedy::manual(format!(
                        "the GPU's render node has another number here ({}): name the node that exists in [render] nodes and in the containers' devices, or load the driver of the GPU that should be {want}",
                        present.join(", ")
                    ))
                };
                out.push(
                    Finding::fail(P, "render_present", want, format!("{want} does not exist"), fix)
                        .evidence("present", nodes.iter().map(|n| &n.path).collect::<Vec<_>>()),
                );
            }
        }
    }
    for n in nodes {
        out.push(inventory_finding(live, n));
        if let Some(ns) = userns.filter(|ns| n.kind == DrmNodeKind::Render && n.stat.gid == ns.overflow_gid) {
            out.push(unmapped_gid_finding(n, ids, render, ns));
            continue;
        }
        if n.group_name.is_none() {
            out.push(stale_gid_finding(n, ids, render, udevd));
        }
        if let (DrmNodeKind::Render, Some(r)) = (n.kind, render) {
            node_findings(n, ids, r, udevd, &mut out);
        }
    }
    out
}

fn owner_text(n: &DrmNode) -> String {
    let user = n.owner_name.clone().unwrap_or_else(|| n.stat.uid.to_string());
    let group = n.group_name.clone().unwrap_or_else(|| n.stat.gid.to_string());
    format!("{user}:{group} {}", n.stat.mode)
}

fn inventory_finding(live: bool, n: &DrmNode) -> Finding {
    let mut device = Vec::new();
    if let Some(d) = &n.kernel_driver {
        device.push(format!("driver {d}"));
    }
    if let Some(d) = n.drm_driver.as_ref().filter(|d| Some(*d) != n.kernel_driver.as_ref()) {
        device.push(format!("drm {d}"));
    }
    if let Some(p) = &n.pci {
        let ids = match (&p.vendor, &p.device) {
            (Some(v), Some(d)) => format!(" [{}:{}]", v.trim_start_matches("0x"), d.trim_start_matches("0x")),
            _ => String::new(),
        };
        device.push(format!("PCI {}{ids}", p.address));
    }
    if device.is_empty() {
        device.push("no device information in sysfs".into());
    }
    let msg = format!("{}, {}", owner_text(n), device.join(", "));
    let f = if live && n.stat.kind != FileKind::Char {
        Finding::fail(
            P,
            "node",
            &n.path,
            format!("{msg}: not a character device, so nothing can use it as a GPU"),
            Remedy::command(format!(
                "rm {} && udevadm trigger --action=add /sys/class/drm/{}  # something replaced the device node; udev recreates it",
                n.path,
                n.path.rsplit('/').next().unwrap_or_default()
            )),
        )
    } else {
        Finding::pass(P, "node", &n.path, msg)
    };
    f.evidence("node", n)
}

fn stale_gid_finding(n: &DrmNode, ids: &IdentityDb, render: Option<&RenderExpectation>, udevd: &Udevd) -> Finding {
    let gid = n.stat.gid;
    let expected_group = match n.kind {
        DrmNodeKind::Render => render.map_or("render", |r| r.group.as_str()),
        DrmNodeKind::Card => "video",
    };
    let now = ids
        .group_by_name(expected_group)
        .map(|g| format!(" ({expected_group} is gid {} now)", g.gid))
        .unwrap_or_default();
    let msg = format!(
        "{} has gid {gid}, which no group holds{now}: udevd resolved GROUP=\"{expected_group}\" to a gid when it started and keeps applying the old one (`udevadm control --reload` and `udevadm trigger` do not change that)",
        n.path
    );
    Finding::fail_or_warn(n.kind == DrmNodeKind::Render, P, "stale_gid", &n.path, msg, restart_udev(udevd))
        .evidence("gid", gid)
}

/// A render node of a host group the namespace's gid map leaves out: it shows as the overflow
/// gid, and no group inside can be given access; the fix is on the container's host.
fn unmapped_gid_finding(
    n: &DrmNode,
    ids: &IdentityDb,
    render: Option<&RenderExpectation>,
    ns: &UserNamespace,
) -> Finding {
    let group = render.map_or("render", |r| r.group.as_str());
    let gid = ids.group_by_name(group).map(|g| g.gid.to_string()).unwrap_or_else(|| "<gid of render here>".into());
    let msg = format!(
        "{} shows as {} (gid {}, the kernel's overflow gid): this host runs in a user namespace (an unprivileged LXC container; gid map {}) that maps no gid here to the node's group on the container's host, so no group here can open it, whatever PGID says",
        n.path,
        owner_text(n),
        ns.overflow_gid,
        ns.gid_map_text()
    );
    let node = n.path.as_str();
    Finding::fail(
        P,
        "render_idmap",
        node,
        msg,
        Remedy::manual(format!(
            "on the container's host, give the node a gid this container maps: Proxmox VE (8.2 and later) `devN: {node},gid={gid}` in /etc/pve/lxc/<id>.conf; or map the host's render gid into the container with `lxc.idmap` lines (`lxc.idmap: g 0 100000 {gid}`, `lxc.idmap: g {gid} <host render gid> 1`, `lxc.idmap: g <{gid}+1> <100000+{gid}+1> <65536-{gid}-1>`, and `root:<host render gid>:1` in the host's /etc/subgid)"
        )),
    )
    .evidence("gid", n.stat.gid)
    .evidence("gid_map", &ns.gid_map)
}

/// The fix for the stale-gid trap, as seen to work under QEMU with systemd 252: restart udevd
/// the way it runs here, then an `add` event.
fn restart_udev(udevd: &Udevd) -> Remedy {
    match udevd {
        Udevd::NotRunning { .. } => Remedy::manual(udevd.restart_command()),
        _ => Remedy::command(udevd.restart_command()),
    }
}

/// The fix for a node whose group or mode is wrong: the stale-gid restart when its gid has no
/// group, else a udev rule.
fn node_fix(n: &DrmNode, r: &RenderExpectation, udevd: &Udevd) -> Remedy {
    if n.group_name.is_none() {
        restart_udev(udevd)
    } else {
        udev_rule(Some(&r.group), Some(r.mode.unwrap_or(FileMode(0o660))))
    }
}

fn udev_rule(group: Option<&str>, mode: Option<FileMode>) -> Remedy {
    let group = group.map(|g| format!(", GROUP=\"{g}\"")).unwrap_or_default();
    let mode = mode.map(|m| format!(", MODE=\"{m}\"")).unwrap_or_default();
    Remedy::nixos(format!(
        "services.udev.extraRules = ''\n  SUBSYSTEM==\"drm\", KERNEL==\"renderD*\"{group}{mode}\n'';"
    ))
}

fn node_findings(n: &DrmNode, ids: &IdentityDb, r: &RenderExpectation, udevd: &Udevd, out: &mut Vec<Finding>) {
    let want = ids.group_by_name(&r.group);
    let node_group = format!("{} ({})", n.group_name.as_deref().unwrap_or("no group"), n.stat.gid);
    match &want {
        None => out.push(Finding::fail(
            P,
            "render_group",
            &n.path,
            format!("group {} does not exist, and {} is group {node_group}", r.group, n.path),
            Remedy::nixos(format!(
                "users.groups.{} = {{ }};",
                crate::nix_expr::attr_name(&r.group).unwrap_or_default()
            )),
        )),
        Some(g) if g.gid == n.stat.gid => {
            out.push(Finding::pass(P, "render_group", &n.path, format!("{} is group {} ({})", n.path, g.name, g.gid)));
        }
        // A gid that no group holds is the udev trap, already reported.
        Some(_) if n.group_name.is_none() => {}
        Some(g) => out.push(
            Finding::fail(
                P,
                "render_group",
                &n.path,
                format!("{} is group {node_group}, expected {} ({})", n.path, g.name, g.gid),
                udev_rule(Some(&r.group), r.mode),
            )
            .evidence("gid", n.stat.gid)
            .evidence("expected_gid", g.gid),
        ),
    }
    if let Some(m) = r.mode {
        let actual = n.stat.mode.0;
        let missing = m.0 & !actual;
        let extra = actual & !m.0;
        let f = if missing != 0 {
            Finding::fail(
                P,
                "render_mode",
                &n.path,
                format!("{} has mode {}, expected {m}: it lacks {:04o}", n.path, n.stat.mode, missing),
                udev_rule(Some(&r.group), Some(m)),
            )
        } else if extra != 0 {
            let who = if extra & 0o006 != 0 { " (every user on the host can use the GPU)" } else { "" };
            Finding::warn(
                P,
                "render_mode",
                &n.path,
                format!("{} has mode {}, more permissive than the expected {m}{who}", n.path, n.stat.mode),
            )
            .remedy(udev_rule(Some(&r.group), Some(m)))
        } else {
            Finding::pass(P, "render_mode", &n.path, format!("{} has mode {m}", n.path))
        };
        out.push(f.evidence("mode", n.stat.mode).evidence("expected_mode", m));
    }
    let ctx = AccessContext { n, r, render_gid: want.as_ref().map(|g| g.gid), ids, udevd };
    if let Some(g) = &want {
        // "Usable by the render group": a process whose only group is the render group.
        let cred = Credentials { uid: u32::MAX - 1, gid: g.gid, groups: Vec::new() };
        let d = access::decide(&n.stat, n.acl.as_ref(), &cred, RW);
        let subject = &n.path;
        out.push(if d.allowed {
            Finding::pass(
                P,
                "render_group_access",
                subject,
                format!("members of {} ({}) can open {} read/write", g.name, g.gid, n.path),
            )
        } else {
            let fix = access_fix(&ctx, n.acl.as_ref(), &cred, false);
            Finding::fail(
                P,
                "render_group_access",
                subject,
                format!("members of {} ({}) cannot open {} read/write ({})", g.name, g.gid, n.path, owner_text(n)),
                fix.map_or_else(|| node_fix(n, r, udevd), |f| f.remedy()),
            )
        });
    }
    for a in &r.access {
        if let Some(owner) = &a.rootless {
            out.push(rootless_finding(&ctx, a, owner));
            continue;
        }
        let cred = Credentials { uid: a.uid, gid: a.gid, groups: a.groups.clone() };
        let d = access::decide(&n.stat, n.acl.as_ref(), &cred, RW);
        let who = a.describe();
        let f = match (d.allowed, d.via) {
            (true, Via::AclUser) => {
                // logind's uaccess entry exists only while the user has a local session: decide
                // again without it, as a headless host would.
                let headless = without_user_entry(n.acl.as_ref(), a.uid);
                let h = access::decide(&n.stat, headless.as_ref(), &cred, RW);
                if h.allowed {
                    Finding::pass(
                        P,
                        "render_access",
                        &n.path,
                        format!(
                            "{who} can open {} read/write (via {}; an ACL entry for uid {} grants it too)",
                            n.path,
                            via_text(h.via),
                            a.uid
                        ),
                    )
                } else {
                    let f = Finding::warn(
                        P,
                        "render_access",
                        &n.path,
                        format!(
                            "{who} can open {} only through an ACL entry for uid {} (logind's uaccess grants it while that user has a local session; a headless host has none)",
                            n.path, a.uid
                        ),
                    );
                    match access_fix(&ctx, headless.as_ref(), &cred, true) {
                        Some(fix) => f.remedy(fix.remedy()),
                        None => f,
                    }
                }
            }
            (true, via) => Finding::pass(
                P,
                "render_access",
                &n.path,
                format!("{who} can open {} read/write (via {})", n.path, via_text(via)),
            ),
            (false, _) => {
                let remedy =
                    access_fix(&ctx, n.acl.as_ref(), &cred, true).map_or_else(|| node_fix(n, r, udevd), |f| f.remedy());
                Finding::fail(
                    P,
                    "render_access",
                    &n.path,
                    format!("{who} cannot open {} read/write ({})", n.path, owner_text(n)),
                    remedy,
                )
            }
        };
        out.push(f.evidence("credentials", &cred).evidence("via", d.via));
    }
}

const RW: u32 = access::READ | access::WRITE;

/// The ACL without the named entry of `uid` (what a host without that user's seat session has).
fn without_user_entry(acl: Option<&Acl>, uid: u32) -> Option<Acl> {
    acl.map(|a| Acl {
        entries: a.entries.iter().filter(|e| !(e.tag == AclTag::User && e.id == Some(uid))).copied().collect(),
    })
}

/// What a remedy for one node needs to know beyond the node: the expectation, the render
/// group's gid now, who holds which gid.
struct AccessContext<'a> {
    n: &'a DrmNode,
    r: &'a RenderExpectation,
    render_gid: Option<u32>,
    ids: &'a IdentityDb,
    udevd: &'a Udevd,
}

/// One step of an access remedy: the change it makes (what the property test applies) and
/// how to make it (what the user reads).
#[derive(Debug, Clone)]
struct Step {
    change: Change,
    how: Remedy,
}

/// Ways to let one credential open a node; each alternative (a list of steps, in order) is
/// enough on its own.
#[derive(Debug, Clone)]
struct AccessFix {
    alternatives: Vec<Vec<Step>>,
}

impl AccessFix {
    /// The first alternative as the remedy (its kind), the others after an "or".
    fn remedy(&self) -> Remedy {
        // Steps every alternative shares at its start or end are said once ("A; then B, or C;
        // then D"), the differing middles joined by "or".
        let alts = &self.alternatives;
        let text_of = |s: &Step| s.how.text.clone();
        let shortest = alts.iter().map(Vec::len).min().unwrap_or(0);
        let same_at = |f: &dyn Fn(&Vec<Step>) -> Option<String>| {
            alts.iter().map(f).collect::<Vec<_>>().windows(2).all(|w| w[0] == w[1])
        };
        let mut head = 0;
        while head < shortest && alts.len() > 1 && same_at(&|a| a.get(head).map(text_of)) {
            head += 1;
        }
        let mut tail = 0;
        while head + tail < shortest && alts.len() > 1 && same_at(&|a| a.get(a.len() - 1 - tail).map(text_of)) {
            tail += 1;
        }
        let first = alts.first().map(Vec::as_slice).unwrap_or_default();
        let join = |steps: &[Step]| steps.iter().map(text_of).collect::<Vec<_>>().join("; then ");
        let middles: Vec<&[Step]> = alts.iter().map(|a| &a[head..a.len() - tail]).collect();
        let kind = match (head + tail, middles.first()) {
            (0, Some([one])) => one.how.kind,
            _ => RemedyKind::Manual,
        };
        let mut middle = String::new();
        for (i, m) in middles.iter().enumerate() {
            if i > 0 {
                middle.push_str(match kind {
                    RemedyKind::Manual => ", or ",
                    _ if i == 1 && !middle.contains('#') => "  # or ",
                    _ => "; or ",
                });
            }
            middle.push_str(&join(m));
        }
        let parts: Vec<String> = [join(&first[..head]), middle, join(&first[first.len() - tail..])]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect();
        Remedy { kind, text: parts.join("; then ") }
    }

    #[cfg(test)]
    fn changes(&self, alternative: usize) -> Vec<Change> {
        self.alternatives.get(alternative).map(|a| a.iter().map(|s| s.change.clone()).collect()).unwrap_or_default()
    }
}

/// The remedy for a credential that cannot open the node (`None` when it can), computed from
/// what blocks it ([`access::blocker`]) and checked: every alternative, applied to the node
/// and the credential, lets it in. A node whose gid is stale gets udevd's restart first (the
/// node then has the render group's gid). `container` says the credential is a container's,
/// which can take a group (`group_add`, PGID); the render group itself cannot.
fn access_fix(ctx: &AccessContext<'_>, acl: Option<&Acl>, cred: &Credentials, container: bool) -> Option<AccessFix> {
    let n = ctx.n;
    let stat = &n.stat;
    if access::decide(stat, acl, cred, RW).allowed {
        return None;
    }
    let mut prefix: Vec<Step> = Vec::new();
    if let (None, Some(g)) = (&n.group_name, ctx.render_gid) {
        prefix.push(Step { change: Change::SetFileGroup { gid: g }, how: restart_udev(ctx.udevd) });
    }
    let pre: Vec<Change> = prefix.iter().map(|s| s.change.clone()).collect();
    let (s1, a1, _) = access::apply(&pre, stat, acl, cred);
    // The node's group after the prefix is the render group (by gid) or the one it names.
    let node_is_render = ctx.render_gid == Some(s1.gid) || n.group_name.as_deref() == Some(ctx.r.group.as_str());
    let mut alternatives: Vec<Vec<Step>> = Vec::new();
    let passes = |steps: &[Step]| {
        let changes: Vec<Change> = steps.iter().map(|s| s.change.clone()).collect();
        access::passes_after(&changes, stat, acl, cred, RW)
    };
    let with = |steps: Vec<Step>| -> Vec<Step> { prefix.iter().cloned().chain(steps).collect() };
    let mode_step = |extra: u32| {
        let base = ctx.r.mode.map_or(s1.mode.0, |m| m.0 | (s1.mode.0 & 0o7000));
        let mode = base | extra;
        Step { change: Change::SetMode { mode }, how: udev_rule(None, Some(FileMode(mode))) }
    };
    match access::blocker(&s1, a1.as_ref(), cred, RW) {
        None => return Some(AccessFix { alternatives: vec![prefix] }),
        Some(Blocker::MissingGroup) => {
            let mut groups: Vec<Vec<Step>> = Vec::new();
            let holder = ctx.ids.group_by_gid(cred.gid).map(|g| g.name).filter(|name| *name != ctx.r.group);
            if node_is_render && holder.is_none() && cred.gid != s1.gid && container {
                // Renumber the render group to the PGID (NixOS: the node follows the group).
                let how = Remedy::nixos(format!(
                    "{}  # so PGID {} is the {} group",
                    nixos::group_gid_line(&ctx.r.group, cred.gid),
                    cred.gid,
                    ctx.r.group
                ));
                groups.push(vec![Step { change: Change::SetFileGroup { gid: cred.gid }, how }]);
            }
            if container {
                let how = match &holder {
                    Some(name) if node_is_render => Remedy::manual(format!(
                        "add group_add: [ \"{g}\" ] to the container (gid {} is group {name}, so the render group cannot take it)",
                        cred.gid,
                        g = s1.gid
                    )),
                    _ => Remedy::manual(format!("add group_add: [ \"{}\" ] to the container", s1.gid)),
                };
                groups.push(vec![Step { change: Change::JoinGroup { gid: s1.gid }, how }]);
                let how = Remedy::manual(format!("run it with PGID={}", s1.gid));
                groups.push(vec![Step { change: Change::SetPrimaryGroup { gid: s1.gid }, how }]);
            } else if let Some(g) = ctx.render_gid.filter(|g| *g != s1.gid) {
                let how = udev_rule(Some(&ctx.r.group), None);
                groups.push(vec![Step { change: Change::SetFileGroup { gid: g }, how }]);
            }
            for g in groups {
                let alone = with(g.clone());
                if passes(&alone) {
                    alternatives.push(alone);
                } else {
                    let mut both = alone;
                    both.push(mode_step(RW << 3));
                    if passes(&both) {
                        alternatives.push(both);
                    }
                }
            }
        }
        Some(Blocker::GroupBits | Blocker::Mask) => alternatives.push(with(vec![mode_step(RW << 3)])),
        Some(Blocker::OwnerBits) => alternatives.push(with(vec![mode_step(RW << 6)])),
        Some(Blocker::AclEntry) => {}
    }
    alternatives.retain(|a| passes(a));
    if alternatives.is_empty() {
        // What is left is an ACL entry that decides: give the uid its own entry, which always
        // works for a process that is not the owner (access::remedy's last resort).
        let last = if container {
            access::remedy(&s1, a1.as_ref(), cred, RW)
        } else {
            access::file_remedy(&s1, a1.as_ref(), cred, RW)
        };
        if let Some(changes) = last {
            let steps: Vec<Step> = changes.into_iter().map(|c| Step { how: setfacl(&n.path, &c), change: c }).collect();
            let all = with(steps);
            if passes(&all) {
                alternatives.push(all);
            }
        }
    }
    (!alternatives.is_empty()).then_some(AccessFix { alternatives })
}

/// How to make an ACL or mode change on a device node by hand: `setfacl`/`chmod` (they last
/// until udev sets the node up again: a udev rule keeps them).
fn setfacl(path: &str, c: &Change) -> Remedy {
    let perm = |p: u32| {
        [(4, 'r'), (2, 'w'), (1, 'x')].iter().map(|&(b, ch)| if p & b != 0 { ch } else { '-' }).collect::<String>()
    };
    let text = match c {
        Change::SetAclEntry { tag, id, perm: p } => {
            let who = match (tag, id) {
                (AclTag::User, Some(u)) => format!("u:{u}"),
                (AclTag::Group, Some(g)) => format!("g:{g}"),
                (AclTag::UserObj, _) => "u:".into(),
                (AclTag::GroupObj, _) => "g:".into(),
                (AclTag::Mask, _) => "m:".into(),
                _ => "o:".into(),
            };
            format!("setfacl -m {who}:{} {}", perm(*p), crate::shell::quote(path))
        }
        Change::SetMode { mode } => format!("chmod {mode:04o} {}", crate::shell::quote(path)),
        Change::SetFileGroup { gid } => format!("chgrp {gid} {}", crate::shell::quote(path)),
        Change::JoinGroup { gid } => format!("add group_add: [ \"{gid}\" ] to the container"),
        Change::SetPrimaryGroup { gid } => format!("run the container with PGID={gid}"),
    };
    Remedy::command(format!("{text}  # until udev sets the node up again; a udev rule (RUN+=) keeps it"))
}

fn via_text(v: Via) -> &'static str {
    match v {
        Via::Root => "root",
        Via::Owner => "owner bits",
        Via::AclUser => "ACL user entry",
        Via::Group => "group bits",
        Via::AclGroup => "ACL group entry",
        Via::Other => "other bits",
    }
}

#[cfg(test)]
mod tests;
