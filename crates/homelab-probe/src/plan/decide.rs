//! The decisions of a plan, made once from the snapshot and rendered three ways.

use std::collections::{BTreeMap, BTreeSet};

use super::hardware::nvidia_turing_or_newer;
use super::{Conflict, PlanWarning};
use crate::model::compose::{ComposeService, ComposeStack, Credentials, Engine, KEEP_GROUPS, StackKind};
use crate::model::expectations::{
    AccessExpectation, DriftExpectation, EXPECTATIONS_VERSION, Expectations, GpuExpectation, RenderExpectation,
    UserExpectation, VaapiExpectation, VideoCodec,
};
use crate::model::inventory::IntelGeneration;
use crate::model::inventory::{DrmNodeKind, GpuVendor};
use crate::model::mounts::MountExpectation;
use crate::model::snapshot::{CapturedGroup, FstabEntry, GroupUse, Snapshot};
use crate::model::text::validate_name;
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

/// A group the old host had whose gid NixOS already gives another group: the number stays,
/// under NixOS's name, and no second group is declared (two groups with one gid fail
/// users-groups.nix's uniqueness assertion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMapping {
    /// The old host's name.
    pub name: String,
    /// The gid, kept.
    pub gid: u32,
    /// The group that holds it on the new host.
    pub to: String,
    /// Why the number matters.
    pub reasons: Vec<String>,
    /// `to` is NixOS's own group at its static gid (every system has it, or a module the plan
    /// enables creates it); otherwise it is another kept group of the old host with that gid.
    pub nixos_own: bool,
}

/// A group that a module the plan enables creates at a static gid a kept group needs: the
/// module gives it a free gid instead (`lib.mkForce null`: NixOS picks one at activation; the
/// group is used by name, so nothing depends on its number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedGroup {
    /// The group (`docker`).
    pub name: String,
    /// Its static gid in ids.nix, now held by `for_group`.
    pub gid: u32,
    /// The kept group that needs the gid.
    pub for_group: String,
}

/// An id the old host's files or containers use that no group or user of the new host will
/// have (the old host had no name for it that NixOS accepts): files keep the number, shown bare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BareId {
    /// The uid or gid.
    pub id: u32,
    /// Why no name holds it.
    pub why: String,
}

/// What a duplicate is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuplicateKind {
    /// Two `/etc/group` lines with one name.
    Group,
    /// Two `/etc/passwd` lines with one name.
    User,
    /// Two fstab entries for one mount point.
    MountPoint,
}

impl DuplicateKind {
    /// The words for it in messages.
    pub fn describe(self) -> &'static str {
        match self {
            DuplicateKind::Group => "group",
            DuplicateKind::User => "user",
            DuplicateKind::MountPoint => "mount point",
        }
    }
}

/// Something the old host's files held twice, resolved as the old system resolved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    /// What it is.
    pub kind: DuplicateKind,
    /// The name or mount point.
    pub name: String,
    /// The entry the module keeps, and why it wins.
    pub kept: String,
    /// The entries left out.
    pub dropped: Vec<String>,
}

/// Groups whose membership gives root's powers on NixOS (sudo through wheel, raw disks and
/// memory, the password hashes): a kept gid is never carried over by making people members.
const PRIVILEGED_GROUPS: &[&str] = &["root", "wheel", "kmem", "disk", "shadow"];

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
    /// Groups of the old host whose gid NixOS gives another group: kept under that name.
    pub mapped: Vec<GroupMapping>,
    /// Groups NixOS would create at a gid a kept group needs, moved to a free gid.
    pub moved: Vec<MovedGroup>,
    /// Who holds each gid on the new host: the groups the module declares and NixOS's own.
    pub held_gids: BTreeMap<u32, String>,
    /// Gids the old host uses that no group of the new host will name.
    pub bare_gids: Vec<BareId>,
    /// Uids the old host uses that no user of the new host will name.
    pub bare_uids: Vec<BareId>,
    /// Users of the old host the module does not declare, with why.
    pub skipped_users: Vec<(String, String)>,
    /// Duplicates in the old host's files and how each was resolved.
    pub duplicates: Vec<Duplicate>,
    /// Why no sound module exists; `plan` refuses when this is not empty.
    pub conflicts: Vec<Conflict>,
    /// Group names NixOS refuses (not declared; memberships dropped unless aliased).
    pub invalid_groups: BTreeSet<String>,
    /// Refused group names whose gid keeps another name the old host had for it: old -> kept.
    pub aliases: BTreeMap<String, String>,
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

    /// Records a duplicate line of the old host's files (one entry per name, the dropped lines
    /// added as they come).
    fn duplicate(&mut self, kind: DuplicateKind, name: &str, kept: String, dropped: String) {
        match self.duplicates.iter_mut().find(|x| x.kind == kind && x.name == name) {
            Some(x) => x.dropped.push(dropped),
            None => self.duplicates.push(Duplicate { kind, name: name.to_owned(), kept, dropped: vec![dropped] }),
        }
    }

    /// The expectations `check` verifies on the new host.
    pub fn expectations(&self) -> Expectations {
        // A mapped group is expected under the NixOS name that holds its gid. Names the
        // expectations file cannot hold are left out (decide warned about each).
        let checkable = |n: &String| validate_name(n).is_ok();
        let groups = self
            .groups
            .iter()
            .map(|g| (g.name.clone(), g.gid))
            .chain(self.mapped.iter().map(|m| (m.to.clone(), m.gid)))
            .filter(|(n, _)| checkable(n))
            .collect();
        let users = self
            .users
            .iter()
            .filter(|u| checkable(&u.name))
            .map(|u| {
                let mut groups: Vec<String> = u.extra_groups.iter().filter(|g| checkable(g)).cloned().collect();
                if let Some(g) = u.group.as_ref().filter(|g| checkable(g)) {
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
            baseline: Vec::new(),
        }
    }
}

/// Whether the plan enables Docker: a Compose stack was found (quadlet units run under Podman).
fn runs_docker(snapshot: &Snapshot) -> bool {
    snapshot.compose.stacks.iter().any(|s| s.kind == StackKind::Compose)
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
    // Every gid the data and the containers use that no group of the new host holds, listed.
    for (gid, why) in needed_gids(snapshot, &d) {
        if !d.held_gids.contains_key(&gid) && !d.bare_gids.iter().any(|b| b.id == gid) {
            d.bare_gids.push(BareId { id: gid, why: format!("{why}; no group of the new host has it") });
        }
    }
    // NixOS accepts these names, homelab-probe.toml does not hold them (model::text).
    let unchecked: BTreeSet<String> = d
        .groups
        .iter()
        .map(|g| g.name.clone())
        .chain(d.users.iter().map(|u| u.name.clone()))
        .filter(|n| validate_name(n).is_err())
        .collect();
    for n in unchecked {
        let why = validate_name(&n).err().unwrap_or_default();
        d.warn(
            n.clone(),
            format!(
                "declared in the module, but homelab-probe.toml cannot name it ({why}): `check` does not verify it"
            ),
        );
    }
    for x in d.duplicates.clone() {
        d.warn(
            format!("duplicate {} {}", x.kind.describe(), x.name),
            format!("the old host lists it more than once: kept {}; left out {}", x.kept, x.dropped.join("; ")),
        );
    }
    d
}

/// The gids the old host's data and containers use, with what uses each: the PGID and groups of
/// every active service, the groups owning data roots, the primary gids of declared users.
pub fn needed_gids(snapshot: &Snapshot, d: &Decisions) -> BTreeMap<u32, String> {
    let mut gids = BTreeMap::new();
    for st in &snapshot.compose.stacks {
        for svc in st.services.iter().filter(|s| s.is_active(&st.active_profiles)) {
            if let Ok(c) = credentials(svc, snapshot) {
                for g in std::iter::once(c.gid).chain(c.groups.iter().copied()) {
                    gids.entry(g).or_insert_with(|| format!("used by {}/{}", st.name, svc.name));
                }
            }
        }
    }
    for r in &snapshot.data_roots {
        for o in r.ownership.iter().flat_map(|o| &o.by_owner) {
            gids.entry(o.gid).or_insert_with(|| format!("owns entries of {}", r.path));
        }
    }
    for u in &d.users {
        if let Some(h) = snapshot.user(&u.name) {
            gids.entry(h.gid).or_insert_with(|| format!("primary gid of {}", u.name));
        }
    }
    gids
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

/// Why the gid of `g` must survive the move (empty: it need not).
fn group_reasons(g: &CapturedGroup, snapshot: &Snapshot) -> Vec<String> {
    let mut reasons = Vec::new();
    for u in &g.uses {
        match u {
            // A rootless stack's gids are its owner's namespace's (snapshots from before capture
            // left them out still list them).
            GroupUse::Compose { stack, service, field }
                if field != "group_add name"
                    && !snapshot.compose.stacks.iter().any(|s| &s.name == stack && s.rootless) =>
            {
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
    reasons
}

/// A group whose gid must survive, before it is decided how.
struct Wanted {
    name: String,
    gid: u32,
    reasons: Vec<String>,
}

/// Whether the new host has group `name` whatever the module says: every NixOS system's groups,
/// and `docker` when the module enables Docker (docker.nix creates it at ids.nix's 131). The
/// other modules the plan enables (hardware.graphics, the NVIDIA driver and container toolkit)
/// create no groups (nixpkgs' graphics.nix, nvidia.nix, nvidia-container-toolkit/default.nix).
fn nixos_creates(name: &str, docker: bool) -> bool {
    nixos::always_present_group(name) || (docker && name == "docker")
}

/// The groups: one entry per name (the first `/etc/group` line of a name wins, as glibc's
/// getgrnam), NixOS's name rules, then who holds each kept gid on the new host. A gid NixOS
/// already gives one of its own groups stays with that group (the old name maps to it); a group
/// a module the plan enables would create at a kept gid (docker at 131) is moved instead; two
/// kept groups with one gid (a duplicate gid on the old host) become one, the first.
fn groups(snapshot: &Snapshot, d: &mut Decisions) {
    let docker = runs_docker(snapshot);
    let mut first: BTreeMap<&str, u32> = BTreeMap::new();
    let mut unique = Vec::new();
    let mut dropped_lines = Vec::new();
    for g in &snapshot.identities.groups {
        match first.get(g.name.as_str()) {
            Some(kept) => {
                d.duplicate(
                    DuplicateKind::Group,
                    &g.name,
                    format!("gid {kept} (the first /etc/group line: getgrnam returns it)"),
                    format!("gid {}", g.gid),
                );
                dropped_lines.push(g);
            }
            None => {
                first.insert(&g.name, g.gid);
                unique.push(g);
            }
        }
    }

    let mut wanted: Vec<Wanted> = Vec::new();
    for g in &unique {
        let reasons = group_reasons(g, snapshot);
        if !reasons.is_empty() {
            wanted.push(Wanted { name: g.name.clone(), gid: g.gid, reasons });
        }
    }
    // A second /etc/group line of a name whose gid matters: the name belongs to the first line,
    // so the number keeps another name the old host had for it, if any (a line of that gid
    // that is the first of its name).
    for g in &dropped_lines {
        let reasons = group_reasons(g, snapshot);
        if reasons.is_empty() || wanted.iter().any(|w| w.gid == g.gid) {
            continue;
        }
        if let Some(o) = unique.iter().find(|o| o.gid == g.gid && nixos::group_name_problem(&o.name).is_none()) {
            let reasons = reasons.into_iter().map(|r| format!("{r} (as the second {:?} line)", g.name));
            match wanted.iter_mut().find(|w| w.name == o.name) {
                Some(w) => w.reasons.extend(reasons),
                None => wanted.push(Wanted { name: o.name.clone(), gid: o.gid, reasons: reasons.collect() }),
            }
        }
    }
    // Primary groups capture did not record (the old host's group of that gid had another name
    // or none): the module declares them under the name the user's passwd entry resolved to.
    let mut seen_users = BTreeSet::new();
    for u in &snapshot.identities.users {
        if !seen_users.insert(u.name.as_str()) {
            continue;
        }
        let Some(p) = &u.primary_group else { continue };
        if p == "users" || nixos_creates(p, docker) || first.contains_key(p.as_str()) {
            continue;
        }
        if let Some(w) = wanted.iter_mut().find(|w| &w.name == p) {
            w.reasons.push(format!("primary group of {}", u.name));
            continue;
        }
        d.warn(
            format!("user {}", u.name),
            format!("primary group {p} was not captured: the module declares it with gid {}", u.gid),
        );
        wanted.push(Wanted { name: p.clone(), gid: u.gid, reasons: vec![format!("primary group of {}", u.name)] });
    }

    // Names NixOS refuses: the number keeps another name the old host had for it (a later
    // /etc/group line with that gid), else it stays on the files without a name.
    let mut valid: Vec<Wanted> = Vec::new();
    let mut refused = Vec::new();
    for w in wanted {
        match nixos::group_name_problem(&w.name) {
            Some(why) => refused.push((w, why)),
            None => valid.push(w),
        }
    }
    for (w, why) in refused {
        d.invalid_groups.insert(w.name.clone());
        let other = unique.iter().find(|g| g.gid == w.gid && nixos::group_name_problem(&g.name).is_none());
        if let Some(o) = other {
            d.warn(
                format!("group {}", w.name),
                format!("not declared: {why}. gid {} keeps the old host's other name for it, {}", w.gid, o.name),
            );
            d.aliases.insert(w.name.clone(), o.name.clone());
            let reasons = w.reasons.iter().map(|r| format!("{r} (as {:?})", w.name));
            match valid.iter_mut().find(|v| v.name == o.name) {
                Some(v) => v.reasons.extend(reasons),
                None => valid.push(Wanted { name: o.name.clone(), gid: o.gid, reasons: reasons.collect() }),
            }
            continue;
        }
        d.warn(
            format!("group {}", w.name),
            format!(
                "not declared: {why}. Files and containers keep gid {} as a bare number; to give it a name, \
                 declare users.groups.<a valid name>.gid = {};",
                w.gid, w.gid
            ),
        );
        d.bare_gids.push(BareId { id: w.gid, why: format!("its group name {:?} is refused: {why}", w.name) });
    }

    // Who holds each gid on the new host. NixOS's own groups hold their static gids unless the
    // module pins them elsewhere; each kept group claims its gid unless someone holds it. A
    // mapped group falls back to its own static gid, so the loop runs again until nothing moves
    // (each round maps one more group or moves docker once: it ends).
    let kept_names: BTreeSet<&str> = valid.iter().map(|w| w.name.as_str()).collect();
    let mut mapped: BTreeMap<usize, String> = BTreeMap::new();
    let mut docker_moved = false;
    loop {
        let pinned_elsewhere = |n: &str| {
            valid
                .iter()
                .enumerate()
                .any(|(i, w)| w.name == n && !mapped.contains_key(&i) && nixos::static_gid(n) != Some(w.gid))
        };
        let mut claims: BTreeMap<u32, String> = BTreeMap::new();
        let own = nixos::ALWAYS_PRESENT_GROUPS.iter().copied().chain(docker.then_some("docker"));
        for n in own {
            if (n == "docker" && docker_moved) || pinned_elsewhere(n) {
                continue;
            }
            if let Some(s) = nixos::static_gid(n) {
                claims.insert(s, n.to_owned());
            }
        }
        let mut changed = false;
        for (i, w) in valid.iter().enumerate() {
            if mapped.contains_key(&i) {
                continue;
            }
            match claims.get(&w.gid) {
                Some(h) if *h == w.name => {}
                Some(h) if h == "docker" && !kept_names.contains("docker") && !docker_moved => {
                    docker_moved = true;
                    changed = true;
                    break;
                }
                Some(h) => {
                    mapped.insert(i, h.clone());
                    changed = true;
                    break;
                }
                None => {
                    claims.insert(w.gid, w.name.clone());
                }
            }
        }
        if !changed {
            break;
        }
    }

    let members_of = |name: &str| -> Vec<String> {
        let mut m: Vec<String> = snapshot
            .identities
            .users
            .iter()
            .filter(|u| u.primary_group.as_deref() == Some(name) || u.groups.iter().any(|g| g == name))
            .map(|u| u.name.clone())
            .collect();
        if let Some(g) = snapshot.group(name) {
            m.extend(g.members.iter().cloned());
        }
        m.sort();
        m.dedup();
        m
    };
    for (i, w) in valid.into_iter().enumerate() {
        if let Some(to) = mapped.get(&i) {
            let members = members_of(&w.name);
            if PRIVILEGED_GROUPS.contains(&to.as_str()) && !members.is_empty() {
                d.conflicts.push(Conflict {
                    subject: format!("group {}", w.name),
                    message: format!(
                        "{} keeps gid {} ({}), but on NixOS gid {} is {to}, and membership of {to} gives root's powers: \
                         its members ({}) would get them",
                        w.name,
                        w.gid,
                        w.reasons.join("; "),
                        w.gid,
                        members.join(", ")
                    ),
                    choices: vec![
                        format!(
                            "on the old host, give {} another gid (groupmod -g <free gid> {}; chgrp the files that have gid {}) and capture again",
                            w.name, w.name, w.gid
                        ),
                        format!(
                            "or drop the members from {} on the old host if they need no access to its files, and capture again",
                            w.name
                        ),
                    ],
                });
                continue;
            }
            let own_name = if nixos_creates(&w.name, docker) {
                format!("; {} itself keeps NixOS's gid {}", w.name, nixos::static_gid(&w.name).unwrap_or_default())
            } else {
                String::new()
            };
            // NixOS's own group at its own static gid, or a group of the old host that holds it.
            let nixos_own = nixos_creates(to, docker) && nixos::static_gid(to) == Some(w.gid);
            let holder = if nixos_own {
                format!("{to}'s on NixOS (every NixOS system has {to} with this gid)")
            } else {
                format!(
                    "also {to}'s on the old host, whose earlier /etc/group line getgrgid returns, and {to} keeps it"
                )
            };
            d.warn(
                format!("group {}", w.name),
                format!(
                    "gid {} is {holder}: the number is kept and files with gid {} show as {to}; {} is not declared \
                     again, its members join {to}{own_name}",
                    w.gid, w.gid, w.name
                ),
            );
            d.mapped.push(GroupMapping { name: w.name, gid: w.gid, to: to.clone(), reasons: w.reasons, nixos_own });
            continue;
        }
        if nixos::always_present_group(&w.name) && nixos::static_gid(&w.name) == Some(w.gid) {
            // Every NixOS system has this group with this very gid: nothing to write.
            continue;
        }
        let nixos_gid = nixos::static_gid(&w.name).filter(|s| *s != w.gid);
        // ids.nix reserves the gid for a group no module of this configuration creates: free
        // unless another module the user enables creates it (the module warns then).
        let collision = nixos::gid_reserved_by(w.gid).filter(|h| *h != w.name && !nixos_creates(h, docker));
        if let Some(pinned) = nixos_gid {
            d.warn(
                format!("group {}", w.name),
                format!("NixOS gives {} gid {pinned} (ids.nix); the module forces {} with lib.mkForce", w.name, w.gid),
            );
        }
        if let Some(holder) = collision {
            d.warn(
                format!("group {}", w.name),
                format!(
                    "gid {} is reserved for {holder} in NixOS's ids.nix: no module this plan enables creates {holder}; \
                     if one you enable does, NixOS's evaluation prints the warning the module carries",
                    w.gid
                ),
            );
        }
        d.groups.push(GroupPin { name: w.name, gid: w.gid, reasons: w.reasons, nixos_gid, collision });
    }
    if docker_moved {
        let gid = nixos::static_gid("docker").unwrap_or_default();
        let for_group = d.groups.iter().find(|g| g.gid == gid).map(|g| g.name.clone()).unwrap_or_default();
        d.warn(
            "group docker",
            format!(
                "docker.nix creates docker at gid {gid}, which {for_group} keeps: the module gives docker a free gid \
                 (lib.mkForce null; the socket and the docker command use the name)"
            ),
        );
        d.moved.push(MovedGroup { name: "docker".into(), gid, for_group });
    }

    // Who holds each gid on the new host: the module's groups, NixOS's own at their static
    // gids unless pinned elsewhere or moved.
    for n in nixos::ALWAYS_PRESENT_GROUPS.iter().copied().chain(docker.then_some("docker")) {
        if d.groups.iter().any(|g| g.name == n) || d.moved.iter().any(|m| m.name == n) {
            continue;
        }
        if let Some(s) = nixos::static_gid(n) {
            d.held_gids.insert(s, n.to_owned());
        }
    }
    for g in &d.groups {
        d.held_gids.insert(g.gid, g.name.clone());
    }

    // A second /etc/group line of a name whose own gid mattered and that no other name keeps.
    for g in dropped_lines {
        if !group_reasons(g, snapshot).is_empty() && !d.held_gids.contains_key(&g.gid) {
            d.bare_gids.push(BareId {
                id: g.gid,
                why: format!(
                    "its name {:?} belongs to the first /etc/group line of that name (gid {})",
                    g.name,
                    first[g.name.as_str()]
                ),
            });
        }
    }

    // Numeric gids the stacks use that no group of the old host holds.
    for stack in &snapshot.compose.stacks {
        for svc in stack.services.iter().filter(|s| s.is_active(&stack.active_profiles)) {
            if let Ok(c) = credentials(svc, snapshot) {
                for gid in std::iter::once(c.gid).chain(c.groups.iter().copied()) {
                    if gid != 0 && snapshot.group_by_gid(gid).is_none() && !d.held_gids.contains_key(&gid) {
                        d.warn(
                            format!("{}/{}", stack.name, svc.name),
                            format!("uses gid {gid}, which no group of the old host has: nothing to pin, files show the bare number"),
                        );
                        if !d.bare_gids.iter().any(|b| b.id == gid) {
                            d.bare_gids.push(BareId { id: gid, why: "no group of the old host has it".into() });
                        }
                    }
                }
            }
        }
    }
}

/// The NixOS name a membership of the old host's group `g` becomes, or `None` when NixOS has
/// no such group and the module declares none.
fn membership(g: &str, d: &Decisions, docker: bool) -> Option<String> {
    let g = d.aliases.get(g).map_or(g, String::as_str);
    if let Some(m) = d.mapped.iter().find(|m| m.name == g) {
        return Some(m.to.clone());
    }
    if d.invalid_groups.contains(g) {
        return None;
    }
    if d.groups.iter().any(|p| p.name == g) || nixos_creates(g, docker) {
        return Some(g.to_owned());
    }
    match g {
        "sudo" | "admin" => Some("wheel".into()),
        _ => None,
    }
}

fn users(snapshot: &Snapshot, d: &mut Decisions) {
    let docker = runs_docker(snapshot);
    let mut plans: Vec<UserPlan> = Vec::new();
    let mut first: BTreeMap<&str, u32> = BTreeMap::new();
    for u in &snapshot.identities.users {
        if let Some(kept) = first.get(u.name.as_str()) {
            d.duplicate(
                DuplicateKind::User,
                &u.name,
                format!("uid {kept} (the first /etc/passwd line: getpwnam returns it)"),
                format!("uid {}", u.uid),
            );
            continue;
        }
        first.insert(&u.name, u.uid);
        let subject = format!("user {}", u.name);
        let skip = if let Some(why) = nixos::user_name_problem(&u.name) {
            Some(format!(
                "not declared: {why}. Files keep uid {} as a bare number; declare the account under a valid name: \
                 users.users.<name> = {{ isNormalUser = true; uid = {}; }};",
                u.uid, u.uid
            ))
        } else if nixos::ALWAYS_PRESENT_USERS.contains(&u.name.as_str()) {
            Some(format!(
                "not declared: every NixOS system has its own {} (uid {}); files keep uid {} as a bare number",
                u.name,
                nixos::static_uid(&u.name).unwrap_or_default(),
                u.uid
            ))
        } else if u.uid < 1000 || u.uid == u32::MAX {
            Some(format!(
                "not declared: uid {} is not a human account's (1000 or more): NixOS declares its own system accounts",
                u.uid
            ))
        } else if let Some(holder) = nixos::ALWAYS_PRESENT_USERS.iter().find(|n| nixos::static_uid(n) == Some(u.uid)) {
            Some(format!("not declared: uid {} is {holder}'s on every NixOS system", u.uid))
        } else {
            plans.iter().find(|p| p.uid == u.uid).map(|p| {
                format!(
                    "not declared: uid {} is also {}'s, the earlier /etc/passwd line (getpwuid returns it); NixOS \
                     refuses two users with one uid",
                    u.uid, p.name
                )
            })
        };
        if let Some(why) = skip {
            d.warn(subject, why.clone());
            if !plans.iter().any(|p| p.uid == u.uid) && !d.bare_uids.iter().any(|b| b.id == u.uid) {
                d.bare_uids.push(BareId { id: u.uid, why: format!("user {:?} is not declared", u.name) });
            }
            d.skipped_users.push((u.name.clone(), why));
            continue;
        }
        let mut extra = Vec::new();
        let mut dropped = Vec::new();
        let group = match u.primary_group.as_deref() {
            None => {
                d.warn(subject.clone(), format!("primary gid {} has no group on the old host", u.gid));
                None
            }
            Some(p) => match membership(p, d, docker) {
                Some(n) if n == "users" => None,
                Some(n) => Some(n),
                None => {
                    d.warn(
                        subject.clone(),
                        format!("primary group {p} cannot be declared: NixOS gives {} its default primary group, users (100)", u.name),
                    );
                    None
                }
            },
        };
        for g in &u.groups {
            if Some(g.as_str()) == u.primary_group.as_deref() {
                continue;
            }
            match membership(g, d, docker) {
                Some(n) => {
                    if Some(&n) != group.as_ref() && !extra.contains(&n) {
                        extra.push(n);
                    }
                }
                None => dropped.push(g.clone()),
            }
        }
        // Docker's socket is what a compose owner needs; Podman (quadlet, podman-compose) and
        // rootless engines run without it.
        let owns_docker_stacks = snapshot.compose.stacks.iter().any(|s| {
            s.owner.as_deref() == Some(&u.name)
                && s.kind == StackKind::Compose
                && !s.rootless
                && s.engine != Some(Engine::Podman)
        });
        if owns_docker_stacks && !extra.iter().any(|e| e == "docker") {
            extra.push("docker".into());
        }
        let home = if u.home.starts_with('/') && !u.home.contains(':') && !u.home.contains('\n') {
            Some(u.home.clone()).filter(|h| *h != format!("/home/{}", u.name))
        } else {
            d.warn(
                subject.clone(),
                format!("home {:?} is not an absolute path NixOS accepts: the module leaves /home/{}", u.home, u.name),
            );
            None
        };
        if let Some(holder) = nixos::uid_reserved_by(u.uid) {
            d.warn(subject.clone(), format!("uid {} is reserved for {holder} in NixOS's ids.nix", u.uid));
        }
        if !dropped.is_empty() {
            d.warn(
                subject,
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
    // A second /etc/passwd line of a name: its uid, if no declared user has it, stays bare.
    let mut names = BTreeSet::new();
    for u in &snapshot.identities.users {
        if !names.insert(u.name.as_str())
            && !plans.iter().any(|p| p.uid == u.uid)
            && !d.bare_uids.iter().any(|b| b.id == u.uid)
        {
            d.bare_uids.push(BareId {
                id: u.uid,
                why: format!(
                    "its name {:?} belongs to the first /etc/passwd line of that name (uid {})",
                    u.name,
                    first[u.name.as_str()]
                ),
            });
        }
    }
    d.users = plans;
}

/// `p` as the kernel resolves it without reading the disk: absolute, without empty or `.`
/// parts and without a trailing `/`. `None` for a relative path or one with `..` (which only
/// the file system can resolve).
pub fn normalize_mount_point(p: &str) -> Option<String> {
    if !p.starts_with('/') {
        return None;
    }
    let mut parts = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            other => parts.push(other),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// NixOS's `nonEmptyStr` (filesystems.nix): something other than blanks, tabs and newlines.
fn nix_non_empty(s: &str) -> bool {
    s.chars().any(|c| !matches!(c, ' ' | '\t' | '\n'))
}

/// Whether file system `a` must be mounted before `b`: nixpkgs' `fsBefore`
/// (nixos/lib/utils.nix): `a`'s mount point is a parent of (or is) `b`'s device or mount point.
fn fs_before(a: &FsPlan, b: &FsPlan) -> bool {
    let slash = |p: &str| if p.ends_with('/') { p.to_owned() } else { format!("{p}/") };
    let am = slash(&a.mount_point);
    slash(&b.device).starts_with(&am) || slash(&b.mount_point).starts_with(&am)
}

/// Whether the file systems cannot be ordered (NixOS's toposort finds a cycle and asserts).
fn has_cycle(fs: &[FsPlan]) -> bool {
    // Depth-first search for a back edge; a file system before itself is no cycle (toposort
    // ignores it).
    fn visit(i: usize, fs: &[FsPlan], state: &mut [u8]) -> bool {
        state[i] = 1;
        for j in 0..fs.len() {
            if j != i && fs_before(&fs[i], &fs[j]) && (state[j] == 1 || (state[j] == 0 && visit(j, fs, state))) {
                return true;
            }
        }
        state[i] = 2;
        false
    }
    let mut state = vec![0u8; fs.len()];
    (0..fs.len()).any(|i| state[i] == 0 && visit(i, fs, &mut state))
}

/// The fstab entry of `entries` (all for one mount point) that the mount table shows mounted
/// there, if the snapshot has a mount table and one matches.
fn mounted_entry<'a>(entries: &[&'a FstabEntry], mount_point: &str, snapshot: &Snapshot) -> Option<&'a FstabEntry> {
    let mounted = snapshot
        .mounts
        .as_deref()?
        .iter()
        .rfind(|m| normalize_mount_point(&m.target).as_deref() == Some(mount_point))?;
    let devices = snapshot.block_devices.as_deref().unwrap_or_default();
    let block = devices.iter().find(|b| b.path == mounted.source);
    entries.iter().rev().copied().find(|e| {
        let spec = e.spec.trim_matches('"');
        if spec == mounted.source {
            return true;
        }
        let Some(b) = block else { return false };
        let tag = |prefix: &str, v: &Option<String>| {
            spec.strip_prefix(prefix).is_some_and(|x| Some(x.trim_matches('"')) == v.as_deref())
        };
        tag("UUID=", &b.uuid)
            || tag("LABEL=", &b.label)
            || tag("PARTUUID=", &b.partuuid)
            || spec.strip_prefix("/dev/disk/by-uuid/").is_some_and(|u| Some(u) == b.uuid.as_deref())
    })
}

fn filesystems(snapshot: &Snapshot, d: &mut Decisions) {
    let Some(fstab) = &snapshot.fstab else {
        d.warn("fileSystems", "the snapshot has no fstab: data disks are not in the module; add them by hand");
        return;
    };
    // Data mounts, by normalized mount point, in fstab order.
    let mut by_point: Vec<(String, Vec<&FstabEntry>)> = Vec::new();
    for e in fstab {
        let target = e.file.as_str();
        let point = normalize_mount_point(target);
        let why_not = if e.vfstype == "swap" || target == "none" || target == "swap" {
            Some("swap: NixOS declares it with swapDevices (nixos-generate-config does)".to_owned())
        } else if VIRTUAL_FS.contains(&e.vfstype.as_str()) {
            Some(format!("{} is not a disk", e.vfstype))
        } else if point.is_none() {
            Some("not an absolute path without `..`, so not a mount point NixOS can declare".to_owned())
        } else if point.as_deref().is_some_and(is_system_mount) {
            Some("a system mount: the new install makes its own (hardware-configuration.nix)".to_owned())
        } else if !nix_non_empty(&e.spec) {
            Some("no device".to_owned())
        } else {
            None
        };
        if let Some(why) = why_not {
            d.skipped_mounts.push((format!("{target} ({})", e.spec), why));
            continue;
        }
        let Some(p) = point else { continue };
        match by_point.iter_mut().find(|(q, _)| *q == p) {
            Some((_, entries)) => entries.push(e),
            None => by_point.push((p, vec![e])),
        }
    }
    // One definition per mount point: what the mount table shows mounted there, else the last
    // fstab line (mount -a mounts them in order, the later on top).
    let mut chosen: Vec<(String, &FstabEntry)> = Vec::new();
    for (point, entries) in &by_point {
        let line = |e: &FstabEntry| format!("/etc/fstab:{}: {} {}", e.line, e.spec, e.vfstype);
        let Some(&last) = entries.last() else { continue };
        let (winner, why) = match mounted_entry(entries, point, snapshot) {
            Some(m) => (m, "mounted there when captured"),
            None => (last, "the last fstab line: mounted on top of the others"),
        };
        if entries.len() > 1 {
            let dropped = entries.iter().filter(|e| !std::ptr::eq(**e, winner)).map(|e| line(e)).collect();
            d.duplicates.push(Duplicate {
                kind: DuplicateKind::MountPoint,
                name: point.clone(),
                kept: format!("{} ({why})", line(winner)),
                dropped,
            });
        }
        chosen.push((point.clone(), winner));
    }
    chosen.sort_by_key(|(_, e)| e.line);

    for (point, e) in chosen {
        let target = point.as_str();
        let bind = e.options.iter().any(|o| o == "bind" || o == "rbind");
        let network = NETWORK_FS.contains(&e.vfstype.as_str());
        let (device, note) = if bind || network { (e.spec.clone(), None) } else { device_for(e, snapshot) };
        let fs_type = if e.vfstype == "auto" || !nix_non_empty(&e.vfstype) {
            let found = snapshot
                .block_devices
                .as_deref()
                .unwrap_or_default()
                .iter()
                .find(|b| device.ends_with(&format!("/{}", b.uuid.as_deref().unwrap_or("\0"))))
                .and_then(|b| b.fstype.clone())
                .filter(|t| nix_non_empty(t));
            found.unwrap_or_else(|| "auto".into())
        } else if bind {
            "none".into()
        } else {
            e.vfstype.clone()
        };
        // NixOS's options are a non-empty list of non-empty strings.
        let mut options: Vec<String> = e.options.iter().filter(|o| nix_non_empty(o)).cloned().collect();
        if options.is_empty() {
            options.push("defaults".into());
        }
        if !options.iter().any(|o| o == "nofail") {
            options.push("nofail".into());
        }
        let plan = FsPlan {
            mount_point: target.to_owned(),
            device,
            fs_type,
            options,
            origin: format!("/etc/fstab:{}: {} {} {}", e.line, e.spec, e.vfstype, e.options.join(",")),
        };
        // NixOS orders file systems by their mount points and devices and refuses a cycle
        // (a bind mount of each other's directories): the earlier fstab line stays.
        let mut with = d.filesystems.clone();
        with.push(plan.clone());
        if has_cycle(&with) {
            let why = "its device or mount point lies under another data mount that lies under this one: NixOS \
                       cannot order the two (fileSystems toposort), the earlier fstab line is kept";
            d.skipped_mounts.push((format!("{target} ({})", e.spec), why.to_owned()));
            d.warn(target.to_owned(), format!("not in the module: {why}"));
            continue;
        }
        if let Some(n) = note {
            d.warn(target.to_owned(), n);
        }
        match mount_expectation(target, &plan.device, &plan.fs_type, bind || network) {
            Ok(m) => d.mounts.push(m),
            Err(e) => d.warn(target.to_owned(), format!("not checked by `check` ({e})")),
        }
        d.filesystems.push(plan);
    }
    if let Some(mounts) = &snapshot.mounts {
        for m in mounts {
            let block = m.source.starts_with("/dev/") && !m.source.starts_with("/dev/loop");
            let point = normalize_mount_point(&m.target).unwrap_or_else(|| m.target.clone());
            if block
                && !is_system_mount(&point)
                && !VIRTUAL_FS.contains(&m.fstype.as_str())
                && !point.starts_with("/boot")
                && !by_point.iter().any(|(p, _)| *p == point)
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

/// The unit name of a stack: `homelab-compose-<name>`, the name kept to the characters a unit
/// name and a store path name both allow (NixOS builds each unit into a derivation named after
/// it), others as `-`, at most 64 of them; `-2`, `-3`... when taken.
fn unit_name(stack: &ComposeStack, taken: &BTreeSet<String>) -> String {
    let part: String = stack
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') { c } else { '-' })
        .take(64)
        .collect();
    let part = part.trim_start_matches('.');
    let base = format!("homelab-compose-{}", if part.is_empty() { "stack" } else { part });
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

fn stacks(snapshot: &Snapshot, d: &mut Decisions) {
    d.docker = runs_docker(snapshot);
    let data_mounts: Vec<String> = d.filesystems.iter().map(|f| f.mount_point.clone()).collect();
    let mut taken = BTreeSet::new();
    for stack in &snapshot.compose.stacks {
        if stack.kind == StackKind::Quadlet {
            // Podman's quadlet generator makes the units; the files move as they are.
            d.warn(
                format!("stack {}", stack.name),
                format!(
                    "quadlet units in {}: plan writes no unit for them; copy the .container files (and their drop-ins) to the same directory on NixOS, with virtualisation.podman.enable, or declare them with quadlet-nix",
                    stack.dir
                ),
            );
            continue;
        }
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
            Some(o) if o == "root" || d.users.iter().any(|u| &u.name == o) => o.clone(),
            Some(o) => match snapshot.user(o) {
                // systemd takes a numeric uid in User=: the account the module leaves out.
                Some(u) => {
                    d.warn(
                        format!("stack {}", stack.name),
                        format!(
                            "its owner {o} is not declared by the module: its unit runs docker compose as uid {}",
                            u.uid
                        ),
                    );
                    u.uid.to_string()
                }
                None => {
                    d.warn(
                        format!("stack {}", stack.name),
                        format!("its owner {o} is not a captured user: declare {o} on NixOS or its unit cannot start"),
                    );
                    o.clone()
                }
            },
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
            if stack.rootless {
                rootless_access(snapshot, stack, svc, label, d);
                continue;
            }
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
                    d.access.push(AccessExpectation {
                        name: Some(label),
                        uid: c.uid,
                        gid: c.gid,
                        groups: c.groups,
                        rootless: None,
                        keep_groups: false,
                    });
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

/// A rootless service (`ComposeStack::rootless`): its PUID/PGID are ids inside the owner's user
/// namespace, which `/etc/subuid` and `/etc/subgid` map to ids no host group has. Only with
/// keep-groups (`GroupAdd=keep-groups`, `--group-add keep-groups`, or the runtime annotation
/// `run.oci.keep_original_groups=1`) does the process keep the owner's host groups, `render`
/// included. The entry says so (`rootless`, `keep_groups`) and check decides it: without
/// keep-groups a `root:render 0660` node is a Fail whose remedy says what to add.
fn rootless_access(snapshot: &Snapshot, stack: &ComposeStack, svc: &ComposeService, label: String, d: &mut Decisions) {
    let keeps = svc.keep_groups || svc.group_add.iter().any(|g| g == KEEP_GROUPS);
    let Some(owner) = stack.owner.as_deref().filter(|o| snapshot.user(o).is_some()) else {
        d.unchecked.push((
            label,
            "rootless, but its owner is not a captured user: whose user namespace and groups it has is unknown".into(),
        ));
        return;
    };
    match credentials(svc, snapshot) {
        Ok(c) => {
            if !keeps {
                d.warn(
                    label.clone(),
                    format!(
                        "runs rootless without keep-groups: inside {owner}'s user namespace its PUID/PGID map through /etc/subgid to ids of no host group, so it cannot open a render node of group render (0660) whatever PGID says; check fails it until GroupAdd=keep-groups (quadlet), --group-add keep-groups (podman run) or group_add: [ keep-groups ] (compose, crun) is added, or the node has a mode that others may open"
                    ),
                );
            }
            // Numeric group_add entries are gids of the namespace too: no host group.
            d.access.push(AccessExpectation {
                name: Some(label),
                uid: c.uid,
                gid: c.gid,
                groups: Vec::new(),
                rootless: Some(owner.to_owned()),
                keep_groups: keeps,
            });
        }
        Err(why) => d.unchecked.push((label, why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("/mnt/media", Some("/mnt/media"))]
    #[case("/mnt/media/", Some("/mnt/media"))]
    #[case("/mnt//media/./", Some("/mnt/media"))]
    #[case("/", Some("/"))]
    #[case("//", Some("/"))]
    #[case("mnt/media", None)]
    #[case("/mnt/../media", None)]
    fn mount_points_normalize_as_the_kernel_resolves_them(#[case] p: &str, #[case] want: Option<&str>) {
        assert_eq!(normalize_mount_point(p).as_deref(), want);
    }
}
