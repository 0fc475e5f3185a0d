//! Device identity: which block device a mount's source names and whether it is there
//! (`mount_declared`, `mount_device`, `bind_source`, and the devices of swap and `noauto`
//! entries). Apart because the other checks and the remedies compare against what is found here.

use super::remedy::missing_device_remedy;
use super::{Ctx, MountFacts, P, normalise, shown_source};
use crate::host::Host;
use crate::host::blockdev::{BlockDevice, BlockDevices};
use crate::model::finding::{Finding, Remedy};
use crate::model::source::Source;
use crate::nix_expr;
use crate::sources::fstab::{FSTAB, FstabEntry};
use crate::sources::mountinfo::MountInfo;

/// The device check of a swap or `noauto` entry: absent is a warning, as in `findmnt --verify`.
pub(super) fn device_only(host: &Host, facts: &MountFacts, line: usize, e: &FstabEntry) -> Option<Finding> {
    let spec = shown_source(&e.source, &e.spec);
    let (check, subject) =
        if e.is_swap() { ("swap_device", format!("swap {spec}")) } else { ("mount_device", normalise(&e.target)) };
    let what = if e.is_swap() { "swap" } else { "noauto entry" };
    let f = if e.source.is_block_device() {
        match facts.devices.find(host, &e.source) {
            Some(d) => Finding::pass(P, check, subject, format!("{spec} is {}", d.describe())),
            None if !has_identity(&facts.devices) && e.source.tag().is_some() => Finding::skip(
                P,
                check,
                subject,
                format!(
                    "no /dev/disk/by-* links and no udev database on this host, so whether {spec} exists cannot be told"
                ),
            ),
            None => Finding::warn(P, check, subject, format!("{spec} ({what}, {FSTAB}:{line}) does not exist"))
                .remedy(missing_device_remedy(e.spec.as_str(), &normalise(&e.target), e.is_swap())),
        }
    } else if e.is_swap() && e.spec.starts_with('/') {
        if host.exists(&e.spec) {
            Finding::pass(P, check, subject, format!("swap file {} exists", e.spec))
        } else {
            Finding::warn(P, check, subject, format!("swap file {} ({FSTAB}:{line}) does not exist", e.spec)).remedy(
                Remedy::nixos(format!(
                    "swapDevices = [ {{ device = {}; size = 8192; }} ];  # NixOS creates the file (size in MiB)",
                    nix_expr::string(&e.spec).unwrap_or_default()
                )),
            )
        }
    } else {
        return None;
    };
    Some(f.evidence("fstab_line", line))
}

fn has_identity(devs: &BlockDevices) -> bool {
    devs.devices.iter().any(|d| d.uuid.is_some() || d.label.is_some() || d.partuuid.is_some() || d.partlabel.is_some())
}

/// The result of the device check.
pub(super) enum Device<'a> {
    /// Not a block device (tmpfs, NFS, bind) or no source named.
    NotApplicable,
    /// Found.
    Found(&'a BlockDevice),
    /// Not found.
    Missing,
    /// Cannot be told (no identity on this host).
    Unknown,
}

impl<'a> Ctx<'a> {
    /// `mount_declared`: an expected mount has an fstab entry naming the same device.
    pub(super) fn declared(&self) -> Finding {
        let m = self.m;
        match &m.fstab {
            None => self
                .warn(
                    "mount_declared",
                    format!(
                        "{} is not in {FSTAB}, so nothing mounts it at boot (unless a systemd mount unit or ZFS does)",
                        m.path
                    ),
                )
                .remedy(self.nixos_remedy(None)),
            Some((line, e)) => {
                let same = match (&m.source, &e.source) {
                    (Some(want), have) => same_source(self.host, &self.facts.devices, want, have),
                    (None, _) => Some(true),
                };
                if same.is_none() {
                    self.skip("mount_declared",
                        format!(
                            "declared in {FSTAB}:{line} as {}; whether that is {} cannot be told while neither is present",
                            shown_source(&e.source, &e.spec),
                            m.shown()
                        ),
                    )
                } else if same == Some(true) {
                    self.pass(
                        "mount_declared",
                        format!("declared in {FSTAB}:{line}: {} {} {}", e.spec, e.fstype, join_options(&e.options)),
                    )
                } else {
                    self.fail(
                        "mount_declared",
                        format!(
                            "{FSTAB}:{line} mounts {} at {}, but {} is expected there",
                            e.spec,
                            m.path,
                            m.spec.as_deref().unwrap_or("another device")
                        ),
                        self.nixos_remedy(None),
                    )
                    .evidence("fstab_spec", &e.spec)
                }
            }
        }
    }

    /// `mount_device` (block devices) or `bind_source` (bind mounts).
    pub(super) fn device(&self, out: &mut Vec<Finding>) -> Device<'a> {
        let Some(src) = &self.m.source else { return Device::NotApplicable };
        let spec = self.m.shown();
        let spec = spec.as_str();
        if self.m.is_bind() {
            if let Source::Path(p) = src {
                out.push(if self.host.exists(p) {
                    self.pass("bind_source", format!("bind source {p} exists"))
                } else {
                    self.fail("bind_source", format!("bind source {p} does not exist, so the bind mount has nothing to show"), Remedy::manual(format!("restore {p} (from the old host or a backup), or point the bind mount at where the data lives now")))
                });
            }
            return Device::NotApplicable;
        }
        if !src.is_block_device() {
            return Device::NotApplicable;
        }
        match self.facts.devices.find(self.host, src) {
            Some(d) => {
                out.push(self.pass("mount_device", format!("{spec} is {}", d.describe())).evidence("device", d));
                Device::Found(d)
            }
            None if !has_identity(&self.facts.devices) && src.tag().is_some() => {
                out.push(self.skip("mount_device",
                    format!("no /dev/disk/by-* links and no udev database on this host, so whether {spec} exists cannot be told"),
                ));
                Device::Unknown
            }
            None => {
                // UUID=ABCD-1234 for a disk that has abcd-1234 (or the other way round): mount(8),
                // udev's /dev/disk/by-* links and this probe compare the value exactly.
                let twin = src.tag().and_then(|(kind, want)| {
                    self.facts.devices.devices.iter().find_map(|d| {
                        let have = d.tag(kind)?;
                        (have != want && have.eq_ignore_ascii_case(&want)).then(|| (d, kind, have.to_owned()))
                    })
                });
                if let Some((d, kind, have)) = twin {
                    let exact = format!("{}={have}", kind.name());
                    out.push(
                        self.fail_unless_optional("mount_device",
                            format!(
                                "no block device has {spec}, but {} has {exact}: the value differs only in letter case, and mount(8), udev's /dev/disk/by-* links and this check compare it exactly",
                                d.devnode
                            ), Remedy::manual(format!("write {exact} exactly as `lsblk -f` shows it, in the expectations and in fileSystems/fstab")))
                        .evidence("device", d),
                    );
                    return Device::Missing;
                }
                let known: Vec<String> = self
                    .facts
                    .devices
                    .devices
                    .iter()
                    .filter(|d| d.uuid.is_some() || d.label.is_some())
                    .map(BlockDevice::describe)
                    .collect();
                out.push(
                    self.fail_unless_optional("mount_device",
                        format!("no block device has {spec}: the disk is missing, not detected yet, or was reformatted (a new filesystem has a new UUID)"), missing_device_remedy(spec, &self.m.path, false))
                    .evidence("known_devices", known),
                );
                Device::Missing
            }
        }
    }
}

/// Whether two sources name the same device: equal tags, or both resolving to one device.
/// `None` when it cannot be told (neither is present).
pub(super) fn same_source(host: &Host, devs: &BlockDevices, a: &Source, b: &Source) -> Option<bool> {
    if a == b || a.tag().is_some_and(|t| b.tag() == Some(t)) {
        return Some(true);
    }
    match (devs.find(host, a), devs.find(host, b)) {
        (Some(x), Some(y)) => Some(x.name == y.name),
        (None, None) => None,
        _ => Some(false),
    }
}

fn join_options(o: &[String]) -> String {
    if o.is_empty() { "defaults".into() } else { o.join(",") }
}

/// `/dev/sdb1 (UUID=..., ext4, rw)`.
pub(super) fn describe_mount(m: &MountInfo, dev: Option<&BlockDevice>) -> String {
    let state = if m.read_only() { "ro" } else { "rw" };
    match dev {
        Some(d) => {
            let tag = d
                .uuid
                .as_ref()
                .map(|u| format!("UUID={u}, "))
                .or_else(|| d.label.as_ref().map(|l| format!("LABEL={l}, ")))
                .unwrap_or_default();
            format!("{} ({tag}{}, {state})", d.devnode, m.fstype)
        }
        None => format!("{} ({}, {state})", m.source.as_deref().unwrap_or("no source"), m.fstype),
    }
}
