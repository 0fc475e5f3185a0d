//! The decisions of a plan, made once from the snapshot and rendered three ways.

use std::collections::{BTreeMap, BTreeSet};

use super::PlanWarning;
use super::hardware::nvidia_turing_or_newer;
use crate::model::compose::{ComposeService, ComposeStack, Credentials};
use crate::model::expectations::{
    AccessExpectation, DriftExpectation, EXPECTATIONS_VERSION, Expectations, GpuExpectation, RenderExpectation,
    UserExpectation, VaapiExpectation, VideoCodec,
};
use crate::model::inventory::IntelGeneration;
use crate::model::inventory::{DrmNodeKind, GpuVendor};
use crate::model::mounts::MountExpectation;
use crate::model::snapshot::{FstabEntry, GroupUse, Snapshot};
use crate::nixos;

/// Mount points that belong to the operating system, not to the data: the new install makes
/// its own (`nixos-generate-config` writes them into hardware-configuration.nix).
pub const SYSTEM_MOUNTS: &[&str] =
    &["/", "/boot", "/boot/efi", "/efi", "/usr", "/var", "/tmp", "/nix", "/home", "/recovery", "/opt", "/srv/tftp"];

/// Filesystem types that are not disks.
pub const VIRTUAL_FS: &[&str] = &[
    "proc",
    "sysfs",
    "tmpfs",
    "devtmpfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "debugfs",
    "securityfs",
    "pstore",
    "efivarfs",
    "bpf",
    "tracefs",
    "hugetlbfs",
    "mqueue",
    "configfs",
    "fusectl",
    "autofs",
    "binfmt_misc",
    "ramfs",
    "overlay",
    "squashfs",
    "nsfs",
    "fuse.portal",
    "fuse.gvfsd-fuse",
];

/// Network filesystems (no block device behind them).
const NETWORK_FS: &[&str] = &["nfs", "nfs4", "cifs", "smb3", "sshfs", "fuse.sshfs", "9p", "glusterfs", "ceph"];

/// A group whose gid the module pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPin {
    /// Name.
    pub name: String,
    /// The gid it keeps.
    pub gid: u32,
    /// Why (for the comment).
    pub reasons: Vec<String>,
    /// NixOS assigns this group a different static gid: the module needs `lib.mkForce`.
    pub nixos_gid: Option<u32>,
    /// Another NixOS group holds this gid in ids.nix.
    pub collision: Option<&'static str>,
}

/// A user the module declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPlan {
    /// Login name.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// The primary group, when it is not NixOS's default `users`.
    pub group: Option<String>,
    /// Home directory, when not `/home/<name>`.
    pub home: Option<String>,
    /// Supplementary groups kept.
    pub extra_groups: Vec<String>,
    /// Supplementary groups of the old host that NixOS does not have.
    pub dropped_groups: Vec<String>,
}

/// A data filesystem the module mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsPlan {
    /// Mount point.
    pub mount_point: String,
    /// Device (`/dev/disk/by-uuid/...`), network source or bind source.
    pub device: String,
    /// `fsType`.
    pub fs_type: String,
    /// `options` (with `nofail`).
    pub options: Vec<String>,
    /// Where it came from (`/etc/fstab:12: UUID=... ext4`).
    pub origin: String,
}

/// One VA-API package and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphicsPackage {
    /// The package's attribute name under `pkgs`.
    pub attr: &'static str,
    /// The Nix expression (`pkgs.intel-media-driver`): only the program's own constants.
    pub expr: &'static str,
    /// Why (`Intel 0000:00:02.0 [8086:46a6], Gen8 or newer`).
    pub reason: String,
}

/// NVIDIA driver settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvidiaPlan {
    /// `hardware.nvidia.open`.
    pub open: bool,
    /// Why that value.
    pub open_reason: String,
    /// `hardware.nvidia-container-toolkit.enable`, with the services that need it.
    pub toolkit_for: Vec<String>,
}

/// A systemd unit that starts one compose stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackUnit {
    /// Unit name without `.service`.
    pub unit: String,
    /// The stack's project name.
    pub stack: String,
    /// Its directory.
    pub dir: String,
    /// The user that runs `docker compose`.
    pub user: String,
    /// `docker compose --file` arguments, when the stack's files are not the directory's own
    /// compose file ([`ComposeStack::command_files`]).
    pub files: Vec<String>,
    /// Paths whose mounts it requires (`RequiresMountsFor`).
    pub mounts: Vec<String>,
}

/// Every decision of a plan.
#[derive(Debug, Clone, Default)]
pub struct Decisions {
    /// Groups whose gid is pinned.
    pub groups: Vec<GroupPin>,
    /// Users declared.
    pub users: Vec<UserPlan>,
    /// Data filesystems.
    pub filesystems: Vec<FsPlan>,
    /// Mounts not carried over, with why.
    pub skipped_mounts: Vec<(String, String)>,
    /// `hardware.graphics.enable`.
    pub graphics: bool,
    /// `hardware.graphics.extraPackages`.
    pub graphics_packages: Vec<GraphicsPackage>,
    /// Notes on GPUs that need no package (AMD: mesa).
    pub graphics_notes: Vec<String>,
    /// NVIDIA driver, when an NVIDIA GPU was found.
    pub nvidia: Option<NvidiaPlan>,
    /// Docker (with log rotation), when there are stacks.
    pub docker: bool,
    /// One unit per stack.
    pub units: Vec<StackUnit>,
    /// Credentials that must open the render nodes (services that map `/dev/dri`).
    pub access: Vec<AccessExpectation>,
    /// Services that map `/dev/dri` whose credentials cannot be known here, with why.
    pub unchecked: Vec<(String, String)>,
    /// Render-node expectations.
    pub render: Option<RenderExpectation>,
    /// The data filesystems `check` must find mounted (`[[mounts]]`).
    pub mounts: Vec<MountExpectation>,
    /// Data roots whose entries all had one owner on the old host (`[[drift]]`).
    pub drift: Vec<DriftExpectation>,
    /// GPU expectations: VA-API encode where a stack maps `/dev/dri` on an Intel or AMD GPU,
    /// NVENC where a stack asks the NVIDIA GPU for video, NVIDIA for containers.
    pub gpu: GpuExpectation,
    /// Things to look at.
    pub warnings: Vec<PlanWarning>,
}

impl Decisions {
    fn warn(&mut self, subject: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(PlanWarning { subject: subject.into(), message: message.into() });
    }

    /// The expectations `check` verifies on the new host.
    pub fn expectations(&self) -> Expectations {
        let groups = self.groups.iter().map(|g| (g.name.clone(), g.gid)).collect();
        let users = self
            .users
            .iter()
            .map(|u| {
                let mut groups = u.extra_groups.clone();
                if let Some(g) = &u.group {
                    if !groups.contains(g) {
                        groups.insert(0, g.clone());
                    }
                }
                (u.name.clone(), UserExpectation { uid: Some(u.uid), groups })
            })
            .collect();
        Expectations {
            version: EXPECTATIONS_VERSION,
            groups,
            users,
            render: self.render.clone(),
            gpu: self.gpu.clone(),
            mounts: self.mounts.clone(),
            drift: self.drift.clone(),
        }
    }
}

/// The credentials of `svc`, with a `user: "1000"` without a group resolved to the old host's
/// user with that uid (see [`ComposeService::credentials`]).
pub fn credentials(svc: &ComposeService, snapshot: &Snapshot) -> Result<Credentials, String> {
    let users = &snapshot.identities.users;
    svc.credentials(&|uid| users.iter().find(|u| u.uid == uid).map(|u| u.gid))
}

fn is_system_mount(p: &str) -> bool {
    SYSTEM_MOUNTS.contains(&p)
}

/// Whether the path is fine in a systemd unit file setting that splits on whitespace and
/// expands `%` specifiers (`%` is doubled where written; whitespace, quotes, backslashes and
/// control characters are not written at all).
pub fn systemd_path_ok(p: &str) -> bool {
    p.starts_with('/') && !p.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\'))
}

/// `p` with `%` doubled for systemd.
pub fn systemd_escape_percent(p: &str) -> String {
    p.replace('%', "%%")
}

/// The stable device name of an fstab spec: by-uuid when the snapshot knows the filesystem's
/// UUID, else the by-label / by-partuuid link, else the spec itself.
fn device_for(entry: &FstabEntry, snapshot: &Snapshot) -> (String, Option<String>) {
    let devices = snapshot.block_devices.as_deref().unwrap_or_default();
    let by_uuid = |u: &str| format!("/dev/disk/by-uuid/{u}");
    let spec = entry.spec.as_str();
    let found = if let Some(u) = spec.strip_prefix("UUID=") {
        return (by_uuid(u.trim_matches('"')), None);
    } else if let Some(l) = spec.strip_prefix("LABEL=") {
        devices.iter().find(|d| d.label.as_deref() == Some(l.trim_matches('"')))
    } else if let Some(p) = spec.strip_prefix("PARTUUID=") {
        devices.iter().find(|d| d.partuuid.as_deref() == Some(p.trim_matches('"')))
    } else if spec.starts_with("/dev/disk/by-uuid/") {
        return (spec.to_owned(), None);
    } else if spec.starts_with("/dev/") {
        devices.iter().find(|d| d.path == spec)
    } else {
        None
    };
    match found.and_then(|d| d.uuid.clone()) {
        Some(u) => (by_uuid(&u), None),
        None if spec.starts_with("LABEL=") => (
            format!("/dev/disk/by-label/{}", spec.trim_start_matches("LABEL=").trim_matches('"')),
            Some("no UUID known for this label: the label is kept".into()),
        ),
        None if spec.starts_with("PARTUUID=") => {
            (format!("/dev/disk/by-partuuid/{}", spec.trim_start_matches("PARTUUID=").trim_matches('"')), None)
        }
        None if spec.starts_with("/dev/") && !spec.starts_with("/dev/disk/") && !spec.starts_with("/dev/mapper/") => (
            spec.to_owned(),
            Some(format!("{spec} is a kernel name that can change between boots and no UUID is known for it")),
        ),
        None => (spec.to_owned(), None),
    }
}

/// Makes every decision.
pub fn decide(snapshot: &Snapshot) -> Decisions {
    let mut d = Decisions::default();
    for gap in &snapshot.gaps {
        d.warn(format!("snapshot: {}", gap.section), format!("not captured: {}", gap.reason));
    }
    groups(snapshot, &mut d);
    users(snapshot, &mut d);
    filesystems(snapshot, &mut d);
    graphics(snapshot, &mut d);
    stacks(snapshot, &mut d);
    render(snapshot, &mut d);
    data_roots(snapshot, &mut d);
    d
}

/// `[[drift]]` for every data root whose entries all had one owner on the old host; the others
/// are warnings (their owners were mixed already, or the walk was cut short).
fn data_roots(snapshot: &Snapshot, d: &mut Decisions) {
    for r in &snapshot.data_roots {
        let Some(o) = &r.ownership else { continue };
        let owners: Vec<String> =
            o.by_owner.iter().map(|c| format!("{}:{} ({} entries)", c.uid, c.gid, c.entries)).collect();
        if !o.complete {
            d.warn(
                r.path.clone(),
                format!(
                    "the ownership walk did not see everything: no [[drift]] written (seen: {})",
                    owners.join(", ")
                ),
            );
            continue;
        }
        for c in &o.by_owner {
            if c.uid != 0 && !snapshot.identities.users.iter().any(|u| u.uid == c.uid) {
                d.warn(
                    r.path.clone(),
                    format!(
                        "uid {} owns {} entries, but no user of the old host with uid 1000 or more has it",
                        c.uid, c.entries
                    ),
                );
            }
        }
        match o.by_owner.as_slice() {
            [one] => {
                let mut t = toml::Table::new();
                t.insert("root".into(), r.path.clone().into());
                t.insert("uid".into(), i64::from(one.uid).into());
                t.insert("gid".into(), i64::from(one.gid).into());
                if !r.exclude.is_empty() {
                    t.insert("exclude".into(), r.exclude.clone().into());
                }
                match toml::Value::Table(t).try_into::<DriftExpectation>() {
                    Ok(e) => d.drift.push(e),
                    Err(e) => d.warn(r.path.clone(), format!("no [[drift]] written ({})", e.message())),
                }
            }
            [] => {}
            _ => d.warn(
                r.path.clone(),
                format!(
                    "owners were already mixed on the old host ({}): no [[drift]] written; `homelab-verify drift` shows which entries differ",
                    owners.join(", ")
                ),
            ),
        }
    }
}

fn groups(snapshot: &Snapshot, d: &mut Decisions) {
    for g in &snapshot.identities.groups {
        let mut reasons = Vec::new();
        for u in &g.uses {
            match u {
                GroupUse::Compose { stack, service, field } if field != "group_add name" => {
                    let what = match field.as_str() {
                        "user" => "gid in user:",
                        other => other,
                    };
                    reasons.push(format!("{what} of {stack}/{service}"));
                }
                GroupUse::DataRootOwner { path } => reasons.push(format!("owns {path}")),
                GroupUse::PrimaryGroupOf { user } if !(g.name == "users" && g.gid == 100) => {
                    reasons.push(format!("primary group of {user}"));
                }
                _ => {}
            }
        }
        // A human user's primary group, even when capture did not say so.
        for u in snapshot.identities.users.iter().filter(|u| u.gid == g.gid) {
            let r = format!("primary group of {}", u.name);
            let nixos_default = g.name == "users" && g.gid == 100;
            if !nixos_default && !reasons.contains(&r) {
                reasons.push(r);
            }
        }
        reasons.dedup();
        if reasons.is_empty() {
            continue;
        }
        // A group every NixOS system has with this very gid needs nothing.
        if nixos::always_present_group(&g.name) && nixos::static_gid(&g.name) == Some(g.gid) {
            continue;
        }
        let nixos_gid = nixos::static_gid(&g.name).filter(|s| *s != g.gid);
        let collision = nixos::gid_reserved_by(g.gid).filter(|h| *h != g.name);
        if let Some(pinned) = nixos_gid {
            d.warn(
                format!("group {}", g.name),
                format!("NixOS gives {} gid {pinned} (ids.nix); the module forces {} with lib.mkForce", g.name, g.gid),
            );
        }
        if let Some(holder) = collision {
            let always = nixos::always_present_group(holder);
            d.warn(
                format!("group {}", g.name),
                if always {
                    format!(
                        "gid {} is {holder}'s static gid in NixOS (ids.nix), and every NixOS system has {holder}: \
                         evaluation fails (users.enforceIdUniqueness) until one of them moves",
                        g.gid
                    )
                } else {
                    format!(
                        "gid {} is reserved for {holder} in NixOS's ids.nix: it is free unless a module that \
                         creates {holder} is enabled (the module warns at evaluation if it is)",
                        g.gid
                    )
                },
            );
        }
        d.groups.push(GroupPin { name: g.name.clone(), gid: g.gid, reasons, nixos_gid, collision });
    }
    // Numeric gids the stacks use that no group of the old host holds.
    for stack in &snapshot.compose.stacks {
        for svc in stack.services.iter().filter(|s| s.is_active(&stack.active_profiles)) {
            if let Ok(c) = credentials(svc, snapshot) {
                for gid in std::iter::once(c.gid).chain(c.groups.iter().copied()) {
                    if gid != 0 && snapshot.group_by_gid(gid).is_none() && !d.groups.iter().any(|g| g.gid == gid) {
                        d.warn(
                            format!("{}/{}", stack.name, svc.name),
                            format!("uses gid {gid}, which no group of the old host has: nothing to pin, files show the bare number"),
                        );
                    }
                }
            }
        }
    }
}

fn users(snapshot: &Snapshot, d: &mut Decisions) {
    let pinned: BTreeSet<String> = d.groups.iter().map(|g| g.name.clone()).collect();
    let has_stacks = !snapshot.compose.stacks.is_empty();
    let mut plans = Vec::new();
    for u in &snapshot.identities.users {
        let mut extra = Vec::new();
        let mut dropped = Vec::new();
        for g in &u.groups {
            let mapped = match g.as_str() {
                "sudo" | "admin" => "wheel",
                other => other,
            };
            let known =
                nixos::always_present_group(mapped) || pinned.contains(mapped) || (mapped == "docker" && has_stacks);
            if Some(mapped) == u.primary_group.as_deref() {
                continue;
            }
            if known {
                if !extra.iter().any(|e| e == mapped) {
                    extra.push(mapped.to_owned());
                }
            } else {
                dropped.push(g.clone());
            }
        }
        let owns_stacks = snapshot.compose.stacks.iter().any(|s| s.owner.as_deref() == Some(&u.name));
        if owns_stacks && !extra.iter().any(|e| e == "docker") {
            extra.push("docker".into());
        }
        let group = u.primary_group.clone().filter(|g| g != "users");
        if let Some(g) = &group {
            if !pinned.contains(g) && !nixos::always_present_group(g) {
                d.warn(
                    format!("user {}", u.name),
                    format!("primary group {g} was not captured: the module declares it with gid {}", u.gid),
                );
                d.groups.push(GroupPin {
                    name: g.clone(),
                    gid: u.gid,
                    reasons: vec![format!("primary group of {}", u.name)],
                    nixos_gid: nixos::static_gid(g).filter(|s| *s != u.gid),
                    collision: nixos::gid_reserved_by(u.gid).filter(|h| h != g),
                });
            }
        }
        if u.primary_group.is_none() {
            d.warn(format!("user {}", u.name), format!("primary gid {} has no group on the old host", u.gid));
        }
        let home = Some(u.home.clone()).filter(|h| *h != format!("/home/{}", u.name));
        if u.name.len() >= 32 {
            d.warn(
                format!("user {}", u.name),
                "NixOS aborts on user names of 32 characters or more (users-groups.nix)",
            );
        }
        if let Some(holder) = nixos::uid_reserved_by(u.uid) {
            d.warn(format!("user {}", u.name), format!("uid {} is reserved for {holder} in NixOS's ids.nix", u.uid));
        }
        if !dropped.is_empty() {
            d.warn(
                format!("user {}", u.name),
                format!(
                    "not in these groups on NixOS (no NixOS module creates them): {}; declare users.groups.<name> = {{ }}; to keep one",
                    dropped.join(", ")
                ),
            );
        }
        plans.push(UserPlan {
            name: u.name.clone(),
            uid: u.uid,
            group,
            home,
            extra_groups: extra,
            dropped_groups: dropped,
        });
    }
    d.users = plans;
}

fn filesystems(snapshot: &Snapshot, d: &mut Decisions) {
    let Some(fstab) = &snapshot.fstab else {
        d.warn("fileSystems", "the snapshot has no fstab: data disks are not in the module; add them by hand");
        return;
    };
    for e in fstab {
        let target = e.file.as_str();
        let why_not = if e.vfstype == "swap" || target == "none" || target == "swap" {
            Some("swap: NixOS declares it with swapDevices (nixos-generate-config does)".to_owned())
        } else if VIRTUAL_FS.contains(&e.vfstype.as_str()) {
            Some(format!("{} is not a disk", e.vfstype))
        } else if is_system_mount(target) {
            Some("a system mount: the new install makes its own (hardware-configuration.nix)".to_owned())
        } else {
            None
        };
        if let Some(why) = why_not {
            d.skipped_mounts.push((format!("{target} ({})", e.spec), why));
            continue;
        }
        let bind = e.options.iter().any(|o| o == "bind" || o == "rbind");
        let network = NETWORK_FS.contains(&e.vfstype.as_str());
        let (device, note) = if bind || network { (e.spec.clone(), None) } else { device_for(e, snapshot) };
        if let Some(n) = note {
            d.warn(target.to_owned(), n);
        }
        let fs_type = if e.vfstype == "auto" {
            let found = snapshot
                .block_devices
                .as_deref()
                .unwrap_or_default()
                .iter()
                .find(|b| device.ends_with(&format!("/{}", b.uuid.as_deref().unwrap_or("\0"))))
                .and_then(|b| b.fstype.clone());
            found.unwrap_or_else(|| "auto".into())
        } else if bind {
            "none".into()
        } else {
            e.vfstype.clone()
        };
        let mut options: Vec<String> = e.options.clone();
        if options.is_empty() {
            options.push("defaults".into());
        }
        if !options.iter().any(|o| o == "nofail") {
            options.push("nofail".into());
        }
        match mount_expectation(target, &device, &fs_type, bind || network) {
            Ok(m) => d.mounts.push(m),
            Err(e) => d.warn(target.to_owned(), format!("not checked by `check` ({e})")),
        }
        d.filesystems.push(FsPlan {
            mount_point: target.to_owned(),
            device,
            fs_type,
            options,
            origin: format!("/etc/fstab:{}: {} {} {}", e.line, e.spec, e.vfstype, e.options.join(",")),
        });
    }
    if let Some(mounts) = &snapshot.mounts {
        for m in mounts {
            let block = m.source.starts_with("/dev/") && !m.source.starts_with("/dev/loop");
            if block
                && !is_system_mount(&m.target)
                && !VIRTUAL_FS.contains(&m.fstype.as_str())
                && !m.target.starts_with("/boot")
                && !fstab.iter().any(|e| e.file == m.target)
            {
                d.skipped_mounts.push((
                    format!("{} ({} {})", m.target, m.source, m.fstype),
                    "mounted when captured but not in /etc/fstab: add a fileSystems entry if it must be mounted".into(),
                ));
                d.warn(m.target.clone(), "mounted when captured but not in /etc/fstab, so not in the module");
            }
        }
    }
}

/// The `[[mounts]]` entry for a data filesystem: the path, the device by UUID or label (or its
/// path), and the type; validated by the expectations file's own reader, so what the plan
/// writes is what `check` reads back.
fn mount_expectation(
    path: &str,
    device: &str,
    fs_type: &str,
    bind_or_network: bool,
) -> Result<MountExpectation, String> {
    let mut t = toml::Table::new();
    t.insert("path".into(), path.into());
    if !bind_or_network {
        if let Some(u) = device.strip_prefix("/dev/disk/by-uuid/") {
            t.insert("uuid".into(), u.into());
        } else if let Some(l) = device.strip_prefix("/dev/disk/by-label/") {
            t.insert("label".into(), crate::model::source::decode_udev_name(l).into());
        } else if device.starts_with('/') {
            t.insert("device".into(), device.into());
        }
    }
    if !matches!(fs_type, "auto" | "none") {
        t.insert("fstype".into(), fs_type.into());
    }
    toml::Value::Table(t).try_into::<MountExpectation>().map_err(|e| e.message().to_owned())
}

fn graphics(snapshot: &Snapshot, d: &mut Decisions) {
    let mut nvidia_gpus = Vec::new();
    for g in &snapshot.gpus {
        let ids = format!("{} {}", g.subject(), g.describe());
        match g.vendor {
            GpuVendor::Intel => {
                d.graphics = true;
                // Package names as of nixpkgs 25.11+: the old aliases vaapiIntel/vaapiVdpau throw.
                let (attr, expr, why) = match g.intel_generation() {
                    IntelGeneration::PreBroadwell(platform) => (
                        "intel-vaapi-driver",
                        "pkgs.intel-vaapi-driver",
                        format!("{platform}, older than Broadwell: i965 driver"),
                    ),
                    IntelGeneration::Gen8OrNewer => (
                        "intel-media-driver",
                        "pkgs.intel-media-driver",
                        "Gen8 (Broadwell) or newer: iHD driver".into(),
                    ),
                };
                if !d.graphics_packages.iter().any(|p| p.attr == attr) {
                    d.graphics_packages.push(GraphicsPackage { attr, expr, reason: format!("{ids}, {why}") });
                }
            }
            GpuVendor::Amd => {
                d.graphics = true;
                d.graphics_notes.push(format!("{ids}: VA-API comes with mesa (radeonsi), no extra package"));
            }
            GpuVendor::Nvidia => {
                d.graphics = true;
                let device = g.pci.as_ref().and_then(|p| p.device.clone());
                nvidia_gpus.push((ids, nvidia_turing_or_newer(device.as_deref())));
            }
            GpuVendor::Virtio => d.graphics_notes.push(format!("{ids}: a virtual GPU, nothing to install")),
            GpuVendor::Other => d.graphics_notes.push(format!("{ids}: unknown vendor, no driver chosen")),
        }
    }
    let mut toolkit_for = Vec::new();
    let mut legacy_runtime = Vec::new();
    let mut nvenc_for = Vec::new();
    for stack in &snapshot.compose.stacks {
        for svc in stack.services.iter().filter(|s| s.is_active(&stack.active_profiles)) {
            let why = svc.nvidia_reasons();
            if !why.is_empty() {
                toolkit_for.push(format!("{}/{} ({})", stack.name, svc.name, why.join(", ")));
                if svc.wants_nvidia_video() {
                    nvenc_for.push(format!("{}/{}", stack.name, svc.name));
                }
            }
            if svc.runtime.as_deref() == Some("nvidia") {
                legacy_runtime.push(format!("{}/{}", stack.name, svc.name));
            }
        }
    }
    if nvidia_gpus.is_empty() {
        if !toolkit_for.is_empty() {
            d.warn(
                "NVIDIA",
                format!(
                    "stacks ask for an NVIDIA GPU but none was found on the old host, so no driver is configured: {}",
                    toolkit_for.join("; ")
                ),
            );
        }
        return;
    }
    let all_new = nvidia_gpus.iter().all(|(_, t)| *t == Some(true));
    let any_unknown = nvidia_gpus.iter().any(|(_, t)| t.is_none());
    let names: Vec<&str> = nvidia_gpus.iter().map(|(n, _)| n.as_str()).collect();
    let open_reason = if all_new {
        format!("{}: Turing or newer, NVIDIA's open kernel modules support it", names.join(", "))
    } else if any_unknown {
        format!("{}: generation unknown, the proprietary modules work on every generation", names.join(", "))
    } else {
        format!("{}: older than Turing, only the proprietary kernel modules support it", names.join(", "))
    };
    for svc in &legacy_runtime {
        d.warn(
            svc.clone(),
            "uses `runtime: nvidia`; NixOS's nvidia-container-toolkit gives Docker CDI devices and registers no \
             `nvidia` runtime: replace it with `devices: [nvidia.com/gpu=all]`, or set the deprecated \
             virtualisation.docker.enableNvidia = true (it needs hardware.graphics.enable32Bit = true)",
        );
    }
    d.gpu.nvidia_containers = !toolkit_for.is_empty();
    if !nvenc_for.is_empty() {
        d.gpu.nvenc = vec![VideoCodec::H264];
    }
    d.nvidia = Some(NvidiaPlan { open: all_new, open_reason, toolkit_for });
}

/// A unit name part from a stack name (already `[a-z0-9_-]`).
fn unit_name(stack: &ComposeStack, taken: &BTreeSet<String>) -> String {
    let base = format!("homelab-compose-{}", if stack.name.is_empty() { "stack" } else { &stack.name });
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

fn stacks(snapshot: &Snapshot, d: &mut Decisions) {
    d.docker = !snapshot.compose.stacks.is_empty();
    let data_mounts: Vec<String> = d.filesystems.iter().map(|f| f.mount_point.clone()).collect();
    let mut taken = BTreeSet::new();
    for stack in &snapshot.compose.stacks {
        for p in &stack.problems {
            d.warn(format!("stack {}", stack.name), format!("{p} (the rest of the stack is planned)"));
        }
        if !stack.unset_variables.is_empty() {
            d.warn(
                format!("stack {}", stack.name),
                format!(
                    "variables used but not set in .env (Compose uses an empty string): {}",
                    stack.unset_variables.join(", ")
                ),
            );
        }
        let unit = unit_name(stack, &taken);
        taken.insert(unit.clone());
        let mut mounts = vec![stack.dir.clone()];
        for svc in stack.services.iter().filter(|s| s.is_active(&stack.active_profiles)) {
            for v in &svc.volumes {
                let Some(hp) = &v.host_path else { continue };
                // The data mount that holds this path (the longest mount point prefix).
                let holder = data_mounts
                    .iter()
                    .filter(|m| hp == *m || hp.starts_with(&format!("{}/", m.trim_end_matches('/'))))
                    .max_by_key(|m| m.len());
                if let Some(m) = holder {
                    if !mounts.iter().any(|x| x == m) {
                        mounts.push((*m).to_owned());
                    }
                }
            }
        }
        let (ok, bad): (Vec<String>, Vec<String>) = mounts.into_iter().partition(|m| systemd_path_ok(m));
        for b in bad {
            d.warn(
                format!("stack {}", stack.name),
                format!("{b:?} cannot be written in RequiresMountsFor (whitespace, quotes or control characters): the unit does not wait for it"),
            );
        }
        let user = match &stack.owner {
            Some(o) => o.clone(),
            None => {
                d.warn(format!("stack {}", stack.name), "no owner found: its unit runs docker compose as root");
                "root".into()
            }
        };
        d.units.push(StackUnit {
            unit,
            stack: stack.name.clone(),
            dir: stack.dir.clone(),
            user,
            files: stack.command_files.clone(),
            mounts: ok,
        });
    }
}

fn render(snapshot: &Snapshot, d: &mut Decisions) {
    let mut nodes = BTreeSet::new();
    for stack in &snapshot.compose.stacks {
        for svc in stack.services.iter().filter(|s| s.is_active(&stack.active_profiles)) {
            let dri = svc.dri_devices();
            if dri.is_empty() {
                continue;
            }
            for n in dri.iter().filter(|n| n.starts_with("/dev/dri/renderD")) {
                nodes.insert((*n).to_owned());
            }
            let label = format!("{}/{}", stack.name, svc.name);
            match credentials(svc, snapshot) {
                Ok(c) => {
                    if !c.named_groups.is_empty() {
                        d.warn(
                            label.clone(),
                            format!(
                                "group_add names {} resolve inside the container image, not on the host: not checked",
                                c.named_groups.join(", ")
                            ),
                        );
                    }
                    d.access.push(AccessExpectation { name: Some(label), uid: c.uid, gid: c.gid, groups: c.groups });
                }
                Err(why) => d.unchecked.push((label, why)),
            }
        }
    }
    // A stack that maps /dev/dri on an Intel or AMD GPU transcodes through VA-API: H.264 encode
    // must work on the new host (every VA-API generation has it; HEVC does not).
    let va_gpus: Vec<_> =
        snapshot.gpus.iter().filter(|g| matches!(g.vendor, GpuVendor::Intel | GpuVendor::Amd)).collect();
    let maps_dri = !d.access.is_empty() || !d.unchecked.is_empty();
    if maps_dri && !va_gpus.is_empty() {
        let node = match va_gpus.as_slice() {
            [one] => one.render_node.clone(),
            _ => None,
        };
        d.gpu.vaapi = Some(VaapiExpectation { encode: vec![VideoCodec::H264], node });
    }
    let had_render = snapshot.drm_nodes.iter().any(|n| n.kind == DrmNodeKind::Render);
    if !had_render && d.access.is_empty() {
        return;
    }
    let existed: BTreeMap<&str, ()> = snapshot.drm_nodes.iter().map(|n| (n.path.as_str(), ())).collect();
    for n in &nodes {
        if !existed.contains_key(n.as_str()) {
            d.warn(n.clone(), "a stack maps this node but the old host did not have it");
        }
    }
    d.render = Some(RenderExpectation {
        group: "render".into(),
        mode: None,
        required: had_render,
        nodes: nodes.into_iter().filter(|n| existed.contains_key(n.as_str())).collect(),
        access: d.access.clone(),
    });
}
