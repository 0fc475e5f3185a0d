//! The render-node probe: for every `/dev/dri/renderD*` (and, for inventory, `card*`) node,
//! who owns it, with what mode, which device and driver is behind it, and whether the
//! credentials that must use it (a container's PUID/PGID) can open it for reading and writing.
//!
//! It names a real trap: udevd resolves `GROUP="render"` to a gid when it starts. After
//! `groupmod -g 110 render`, the running udevd keeps giving the node the old gid, which now
//! belongs to no group. Seen under QEMU with Debian 12's systemd 252: neither
//! `udevadm control --reload` nor `udevadm trigger` (change or add) fixes it; restarting udevd
//! and then triggering an `add` event does (a `change` event does not re-apply ownership).

use crate::check::access::{self, Credentials, Via};
use crate::host::Host;
use crate::host::drm::{self, DRI_DIR};
use crate::host::identity::IdentityDb;
use crate::host::userns::{self, UserNamespace};
use crate::model::expectations::{Expectations, RenderExpectation};
use crate::model::finding::{Finding, Probe, Remedy};
use crate::model::fs::{FileKind, FileMode};
use crate::model::inventory::{DrmNode, DrmNodeKind};
use crate::nixos;

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
    decide(host.is_live(), &nodes, ids, exp, userns.as_ref())
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
pub fn decide(
    live: bool,
    nodes: &[DrmNode],
    ids: &IdentityDb,
    exp: &Expectations,
    userns: Option<&UserNamespace>,
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
            out.push(stale_gid_finding(n, ids, render));
        }
        if let (DrmNodeKind::Render, Some(r)) = (n.kind, render) {
            node_findings(n, ids, r, &mut out);
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

fn stale_gid_finding(n: &DrmNode, ids: &IdentityDb, render: Option<&RenderExpectation>) -> Finding {
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
    Finding::fail_or_warn(n.kind == DrmNodeKind::Render, P, "stale_gid", &n.path, msg, restart_udev())
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

/// The fix for the stale-gid trap, as seen to work under QEMU with systemd 252.
fn restart_udev() -> Remedy {
    Remedy::command(
        "systemctl restart systemd-udevd && udevadm trigger --action=add --subsystem-match=drm && udevadm settle  # or reboot",
    )
}

/// The fix for a node whose group or mode is wrong: the stale-gid restart when its gid has no
/// group, else a udev rule.
fn node_fix(n: &DrmNode, r: &RenderExpectation) -> Remedy {
    if n.group_name.is_none() { restart_udev() } else { udev_rule(&r.group, Some(r.mode.unwrap_or(FileMode(0o660)))) }
}

fn udev_rule(group: &str, mode: Option<FileMode>) -> Remedy {
    let mode = mode.map(|m| format!(", MODE=\"{m}\"")).unwrap_or_default();
    Remedy::nixos(format!(
        "services.udev.extraRules = ''\n  SUBSYSTEM==\"drm\", KERNEL==\"renderD*\", GROUP=\"{group}\"{mode}\n'';"
    ))
}

fn node_findings(n: &DrmNode, ids: &IdentityDb, r: &RenderExpectation, out: &mut Vec<Finding>) {
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
                udev_rule(&r.group, r.mode),
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
                udev_rule(&r.group, Some(m)),
            )
        } else if extra != 0 {
            let who = if extra & 0o006 != 0 { " (every user on the host can use the GPU)" } else { "" };
            Finding::warn(
                P,
                "render_mode",
                &n.path,
                format!("{} has mode {}, more permissive than the expected {m}{who}", n.path, n.stat.mode),
            )
            .remedy(udev_rule(&r.group, Some(m)))
        } else {
            Finding::pass(P, "render_mode", &n.path, format!("{} has mode {m}", n.path))
        };
        out.push(f.evidence("mode", n.stat.mode).evidence("expected_mode", m));
    }
    if let Some(g) = &want {
        // "Usable by the render group": a process whose only group is the render group.
        let cred = Credentials { uid: u32::MAX - 1, gid: g.gid, groups: Vec::new() };
        let d = access::decide(&n.stat, n.acl.as_ref(), &cred, access::READ | access::WRITE);
        let subject = &n.path;
        out.push(if d.allowed {
            Finding::pass(
                P,
                "render_group_access",
                subject,
                format!("members of {} ({}) can open {} read/write", g.name, g.gid, n.path),
            )
        } else {
            Finding::fail(
                P,
                "render_group_access",
                subject,
                format!("members of {} ({}) cannot open {} read/write ({})", g.name, g.gid, n.path, owner_text(n)),
                node_fix(n, r),
            )
        });
    }
    for a in &r.access {
        let cred = Credentials { uid: a.uid, gid: a.gid, groups: a.groups.clone() };
        let d = access::decide(&n.stat, n.acl.as_ref(), &cred, access::READ | access::WRITE);
        let who = a.describe();
        let f = match (d.allowed, d.via) {
            (true, Via::AclUser) => Finding::warn(
                P,
                "render_access",
                &n.path,
                format!(
                    "{who} can open {} only through an ACL entry for uid {} (logind's uaccess grants it while that user has a local session; a headless host has none)",
                    n.path, a.uid
                ),
            )
            .remedy(Remedy::nixos(nixos::group_gid_line(&r.group, a.gid))),
            (true, via) => Finding::pass(P, "render_access", &n.path, format!("{who} can open {} read/write (via {})", n.path, via_text(via))),
            (false, _) => {
                // Pinning the render group to the PGID is the fix only when no other group
                // holds that gid (PGID=1000 is usually the user's own group): else group_add.
                let pgid_taken = ids.group_by_gid(a.gid).is_some_and(|g| g.name != r.group);
                let remedy = if n.group_name.is_none() {
                    restart_udev()
                } else if pgid_taken {
                    Remedy::manual(format!(
                        "add group_add: [ \"{}\" ] to the container (gid {} is group {}, so the render group cannot take it), or run it with PGID={}",
                        n.stat.gid,
                        a.gid,
                        ids.group_by_gid(a.gid).map(|g| g.name).unwrap_or_default(),
                        n.stat.gid
                    ))
                } else if want.as_ref().is_some_and(|g| g.gid == n.stat.gid) && a.gid != n.stat.gid {
                    Remedy::nixos(format!(
                        "{}  # so PGID {} is the render group; or add group_add: [ \"{}\" ] to the container",
                        nixos::group_gid_line(&r.group, a.gid),
                        a.gid,
                        n.stat.gid
                    ))
                } else {
                    Remedy::manual(format!("run the container with PGID={} or group_add: [ \"{}\" ], or change the node's group/mode", n.stat.gid, n.stat.gid))
                };
                Finding::fail(P, "render_access", &n.path, format!("{who} cannot open {} read/write ({})", n.path, owner_text(n)), remedy)
            }
        };
        out.push(f.evidence("credentials", &cred).evidence("via", d.via));
    }
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
