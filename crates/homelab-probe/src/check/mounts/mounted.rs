//! What is mounted at an expected path, when something is: `mounted`, `mount_source`,
//! `mount_fstype`, `mount_options` and `mount_covered` (mounts stacked on top, and binds of a
//! mount onto itself like NixOS's read-only `/nix/store`). Apart from the case where nothing is
//! mounted there, which asks other questions (shadowed.rs).

use super::device::{Device, describe_mount};
use super::{Ctx, normalise};
use crate::host::blockdev::BlockDevice;
use crate::model::finding::{Finding, Remedy, Status};
use crate::model::source::Source;
use crate::sources::mountinfo::{MountInfo, Visibility, visibility};
use crate::{nix_expr, shell};

/// Options that only userspace (mount(8), systemd) reads: they never show in the mount table.
const USERSPACE_OPTIONS: &[&str] =
    &["defaults", "auto", "noauto", "nofail", "user", "users", "nouser", "owner", "group", "_netdev", "bind", "rbind"];

fn is_userspace_option(o: &str) -> bool {
    USERSPACE_OPTIONS.contains(&o) || o.starts_with("x-") || o.starts_with("comment=")
}

impl Ctx<'_> {
    /// Findings when something is mounted at the path itself.
    pub(super) fn mounted(&self, vis: &Visibility<'_>, device: &Device<'_>, out: &mut Vec<Finding>) {
        let top = vis.holder;
        let path = &self.m.path;
        let actual = self.facts.devices.of_mount(self.host, top.major, top.minor, top.source.as_deref());
        let shown = describe_mount(top, actual);
        if top.fstype == "autofs" {
            // x-systemd.automount: systemd's autofs trigger sits there until the first access
            // mounts the filesystem on top of it. The probe never triggers it (reading must
            // not mount disks), so the filesystem itself cannot be checked yet.
            out.push(
                self.pass(
                    "mounted",
                    format!(
                        "{path} is an automount point ({}): the filesystem is mounted on first access",
                        top.source.as_deref().unwrap_or("autofs")
                    ),
                )
                .evidence("mount", top),
            );
            let why = format!("not mounted until first access (automount); `ls {}` mounts it", shell::quote(path));
            for check in ["mount_source", "mount_fstype", "mount_options"] {
                out.push(self.skip(check, why.clone()));
            }
            out.push(self.covered_when_mounted(vis, device));
            return;
        }
        out.push(
            self.pass("mounted", format!("{path} is mounted: {shown}"))
                .evidence("mount", top)
                .evidence("device", actual),
        );
        // mount_source: when the expected filesystem is underneath, taking the top one off
        // is the whole fix.
        let below = vis.hidden.iter().any(|h| h.fstype != "autofs" && self.is_expected(h, device));
        let wrong_source = match self.source_finding(top, actual, device) {
            Some(f) if f.status == Status::Fail && below => {
                out.push(f.remedy(self.unstack_remedy(top)));
                true
            }
            Some(f) => {
                let wrong = f.status == Status::Fail;
                out.push(f);
                wrong
            }
            None => false,
        };
        // mount_fstype
        if !self.m.fstypes.is_empty() {
            let want = self.m.fstypes.join(" or ");
            out.push(if self.m.fstypes.contains(&top.fstype) {
                self.pass("mount_fstype", format!("{path} is {}", top.fstype))
            } else {
                self.fail("mount_fstype", format!("{path} is {}, expected {want}", top.fstype), if wrong_source && below { self.unstack_remedy(top) } else if wrong_source { self.remount_remedy() } else { Remedy::manual(format!(
                        "check with `lsblk -f` that the right disk is mounted at {path}; if the disk was reformatted as {}, set fileSystems.{}.fsType = {};",
                        top.fstype,
                        nix_expr::string(path).unwrap_or_default(),
                        nix_expr::string(&top.fstype).unwrap_or_default()
                    )) })
                    .evidence("fstype", &top.fstype)
                    .evidence("expected_fstype", &self.m.fstypes)
            });
        }
        out.push(self.options_finding(top, self_bind_under(vis)));
        out.push(self.covered_when_mounted(vis, device));
    }

    fn source_finding(&self, top: &MountInfo, actual: Option<&BlockDevice>, device: &Device<'_>) -> Option<Finding> {
        let src = self.m.source.as_ref()?;
        let raw_spec = self.m.spec.as_deref().unwrap_or_default();
        let spec = self.m.shown();
        let spec = spec.as_str();
        let path = &self.m.path;
        let shown = describe_mount(top, actual);
        if self.m.is_bind() {
            let Source::Path(p) = src else { return None };
            let table = self.table?;
            let ok = bind_matches(table, top, p);
            return Some(if ok {
                self.pass("mount_source", format!("{path} shows {p} (bind mount)"))
            } else {
                self.fail("mount_source", format!("{path} is {shown}, not a bind mount of {p}"), self.remount_remedy())
            });
        }
        if !src.is_block_device() {
            let have = top.source.as_deref().unwrap_or("");
            return Some(if have == raw_spec {
                self.pass("mount_source", format!("{path} is mounted from {raw_spec}"))
            } else {
                self.warn("mount_source", format!("{path} is mounted from {have:?}, {raw_spec:?} expected"))
                    .remedy(self.remount_remedy())
            });
        }
        let matches = match (actual, device) {
            (Some(a), Device::Found(want)) => a.name == want.name,
            (Some(a), _) => match src.tag() {
                Some((k, v)) => a.tag(k) == Some(v.as_str()),
                None => false,
            },
            (None, Device::Found(want)) => top.source.as_deref() == Some(want.devnode.as_str()),
            (None, _) => {
                return Some(
                    self.skip("mount_source",
                        format!("{path} is {shown}, and this host gives no identity for it, so whether it is {spec} cannot be told"),
                    )
                    .evidence("mount", top),
                );
            }
        };
        Some(if matches {
            self.pass("mount_source", format!("{path} is {spec}"))
        } else {
            let expected_there = match device {
                Device::Found(d) => format!(" ({}{})", d.devnode, self.mounted_elsewhere(d)),
                Device::Missing => " (not present)".to_owned(),
                _ => String::new(),
            };
            self.fail(
                "mount_source",
                format!("{path} is {shown}, expected {spec}{expected_there}"),
                self.remount_remedy(),
            )
            .evidence("device", actual)
            .evidence("expected", spec)
        })
    }

    /// ` and mounted at /mnt/x` when device `d` is mounted somewhere visible.
    fn mounted_elsewhere(&self, d: &BlockDevice) -> String {
        let Some(table) = self.table else { return String::new() };
        let at: Vec<&str> = table
            .iter()
            .filter(|t| {
                d.devnum.is_some_and(|n| n.major == t.major && n.minor == t.minor)
                    || t.source.as_deref() == Some(d.devnode.as_str())
            })
            .map(|t| t.mount_point.as_str())
            .collect();
        if at.is_empty() { ", not mounted".into() } else { format!(", mounted at {}", at.join(", ")) }
    }

    /// `mount_options`. With a bind of the mount onto itself stacked on top (`self_bind`, the
    /// mount underneath), the declared mount's own options are compared, and a read-only bind
    /// on a read-write mount is reported as such: intended for `/nix/store` (NixOS makes the
    /// store read-only that way), a warning anywhere else (nothing can write there).
    fn options_finding(&self, top: &MountInfo, self_bind: Option<&MountInfo>) -> Finding {
        let path = &self.m.path;
        if let Some(under) = self_bind.filter(|u| top.read_only() && !u.read_only() && !self.m.read_only) {
            let f = self.options_finding(under, None);
            if f.status != Status::Pass {
                return f;
            }
            let f = if path == NIX_STORE {
                self.pass("mount_options",
                    format!("{path} is rw, and read-only through a bind of itself on top, as NixOS makes the store read-only"),
                )
            } else {
                self.warn("mount_options",
                    format!("{path} is mounted rw, but a read-only bind of itself is mounted on top: nothing can write there"),
                )
                .remedy(Remedy::command(format!("umount {}  # takes the read-only bind off; find what made it first", shell::quote(path))))
            };
            return f.evidence("mount_options", &under.mount_options).evidence("bind_options", &top.mount_options);
        }
        let state = if top.read_only() { "ro" } else { "rw" };
        let want = if self.m.read_only { "ro" } else { "rw" };
        let (checkable, skipped): (Vec<&String>, Vec<&String>) =
            self.m.options.iter().partition(|o| !is_userspace_option(o));
        let missing: Vec<&str> = checkable.iter().filter(|o| !option_present(top, o)).map(|o| o.as_str()).collect();
        let f = if state != want {
            let why = if top.super_options.iter().any(|o| o == "ro") && !self.m.read_only {
                " (the filesystem itself is read-only: remounted so, or switched by the kernel after a filesystem error when errors=remount-ro is set)"
            } else {
                ""
            };
            let fstab_says_ro = self.m.fstab.as_ref().is_some_and(|(_, e)| e.read_only());
            let remedy = if fstab_says_ro && !self.m.read_only {
                self.nixos_remedy(Some(false))
            } else {
                Remedy::command(format!(
                    "mount -o remount,{want} {}{}",
                    shell::quote(path),
                    if want == "rw" && !why.is_empty() {
                        "  # first check `dmesg` for filesystem errors and fsck the unmounted device"
                    } else {
                        ""
                    }
                ))
            };
            self.fail("mount_options", format!("{path} is mounted {state}, expected {want}{why}"), remedy)
        } else if !missing.is_empty() {
            self.fail(
                "mount_options",
                format!("{path} is {state} but lacks {}", missing.join(", ")),
                self.nixos_remedy(None),
            )
            .evidence("missing", &missing)
        } else {
            let extra = if checkable.is_empty() {
                String::new()
            } else {
                format!(", with {}", checkable.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "))
            };
            self.pass("mount_options", format!("{path} is {state}{extra}"))
        };
        let f = f.evidence("mount_options", &top.mount_options).evidence("super_options", &top.super_options);
        if skipped.is_empty() { f } else { f.evidence("not_checkable", skipped) }
    }

    /// `mount_covered` when the path is a mount point: something stacked on top?
    fn covered_when_mounted(&self, vis: &Visibility<'_>, device: &Device<'_>) -> Finding {
        let path = &self.m.path;
        // An automount trigger under the filesystem it mounted is how automounts look.
        let hidden: Vec<&MountInfo> = vis.hidden.iter().copied().filter(|h| h.fstype != "autofs").collect();
        let vis = &Visibility { holder: vis.holder, at_path: vis.at_path, hidden };
        if vis.hidden.is_empty() {
            return self.pass("mount_covered", format!("nothing is mounted over {path}"));
        }
        if vis.hidden.len() == 1 && self_bind_under(vis).is_some() {
            return self.pass(
                "mount_covered",
                format!(
                    "only a bind of {path} onto itself is mounted over it (same filesystem and root: nothing is hidden)"
                ),
            );
        }
        let top = vis.holder;
        let top_dev = self.facts.devices.of_mount(self.host, top.major, top.minor, top.source.as_deref());
        let expected_below = vis.hidden.iter().find(|h| self.is_expected(h, device));
        let under: Vec<String> = vis
            .hidden
            .iter()
            .map(|h| describe_mount(h, self.facts.devices.of_mount(self.host, h.major, h.minor, h.source.as_deref())))
            .collect();
        match expected_below {
            Some(h) if !self.is_expected(top, device) => self.fail("mount_covered",
                    format!(
                        "{} is mounted at {path} but hidden: {} was mounted on top of it later",
                        describe_mount(h, self.facts.devices.of_mount(self.host, h.major, h.minor, h.source.as_deref())),
                        describe_mount(top, top_dev)
                    ), self.unstack_remedy(top))
                .evidence("hidden", &vis.hidden)
                .evidence("on_top", top),
            _ => self
                .warn("mount_covered", format!("{path} has more mounts underneath the visible one: {}", under.join("; ")))
                .evidence("hidden", &vis.hidden)
                .remedy(Remedy::manual(format!(
                    "look at `findmnt {}`: the same mount point was mounted {} times; unmount the extra ones if they are not intended",
                    shell::quote(path),
                    vis.hidden.len() + 1
                ))),
        }
    }

    /// Whether mount `t` is the expected device.
    fn is_expected(&self, t: &MountInfo, device: &Device<'_>) -> bool {
        let actual = self.facts.devices.of_mount(self.host, t.major, t.minor, t.source.as_deref());
        match (actual, device, self.m.source.as_ref()) {
            (Some(a), Device::Found(d), _) => a.name == d.name,
            (Some(a), _, Some(src)) => src.tag().is_some_and(|(k, v)| a.tag(k) == Some(v.as_str())),
            (_, _, Some(src)) => t.source.as_deref() == self.m.spec.as_deref() && !src.is_block_device(),
            (_, _, None) => true,
        }
    }
}

/// The Nix store, which NixOS bind-mounts read-only onto itself at boot.
const NIX_STORE: &str = "/nix/store";

/// The mount directly under the visible one at the same path, when the visible one is a bind
/// of it onto itself (same filesystem, same root, same type): a bind like that hides nothing.
/// NixOS's stage 2 does this to `/nix/store` to make it read-only (`boot.readOnlyNixStore`),
/// which test VMs show as a read-write store in fstab with a read-only bind on top.
fn self_bind_under<'v>(vis: &Visibility<'v>) -> Option<&'v MountInfo> {
    let top = vis.holder;
    let under = vis.hidden.iter().rev().find(|h| h.mount_point == top.mount_point)?;
    (under.major == top.major && under.minor == top.minor && under.root == top.root && under.fstype == top.fstype)
        .then_some(*under)
}

/// Whether bind mount `m` shows directory `source`: same filesystem, and its root is the
/// source's path inside that filesystem.
fn bind_matches(table: &[MountInfo], m: &MountInfo, source: &str) -> bool {
    let Some(v) = visibility(table, &normalise(source)) else { return false };
    let h = v.holder;
    let rel = normalise(source);
    let rel = rel.strip_prefix(h.mount_point.trim_end_matches('/')).unwrap_or(&rel);
    let want_root = normalise(&format!("{}/{}", h.root, rel));
    (h.major, h.minor) == (m.major, m.minor) && normalise(&m.root) == want_root
}

/// Whether kernel option `want` is on mount `m`: `key=value` exactly, a bare `key` alone or
/// with any value.
fn option_present(m: &MountInfo, want: &str) -> bool {
    if want.contains('=') {
        m.mount_options.iter().chain(&m.super_options).any(|o| o == want)
    } else {
        m.has_option(want)
    }
}
