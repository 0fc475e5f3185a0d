//! The decisions of a plan, made once from the snapshot and rendered three ways.

use std::collections::{BTreeMap, BTreeSet};

use super::{Conflict, PlanWarning};
use crate::model::compose::{ComposeService, Credentials, StackKind};
use crate::model::expectations::{
    AccessExpectation, BaselineExpectation, DriftExpectation, EXPECTATIONS_VERSION, Expectations, GpuExpectation,
    RenderExpectation, UserExpectation,
};
use crate::model::mounts::MountExpectation;
use crate::model::snapshot::{RecordedBaseline, Snapshot};
use crate::model::text::validate_name;

mod filesystems;
mod identity;
mod services;

pub use filesystems::{BASELINE_DIR, SYSTEM_MOUNTS, VIRTUAL_FS, normalize_mount_point};
use filesystems::{baseline, data_roots, filesystems};
use identity::{groups, users};
use services::{graphics, render, stacks};

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

/// The ownership baseline `capture --baseline` took, and where the new host keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselinePlan {
    /// What the snapshot recorded about it (the old host's path, roots, SHA-256).
    pub recorded: RecordedBaseline,
    /// Where `check` reads it on the new host (`[[baseline]] file`), in [`BASELINE_DIR`].
    pub file: String,
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
    /// compose file ([`ComposeStack::command_files`](crate::model::compose::ComposeStack::command_files)).
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
    /// The baseline capture took, checked by `[[baseline]]`.
    pub baseline: Option<BaselinePlan>,
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
            // Bounded like [[drift]]: the default max_seconds, nothing written.
            baseline: self
                .baseline
                .iter()
                .map(|b| BaselineExpectation {
                    file: b.file.clone(),
                    map: Vec::new(),
                    by_name: false,
                    max_entries: None,
                    max_seconds: None,
                })
                .collect(),
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
    baseline(snapshot, &mut d);
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
