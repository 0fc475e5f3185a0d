//! `capture`: the old host in, a [`Snapshot`] out. Every read goes through [`Host`], so the
//! same code captures the running system or a sysroot (a mounted disk, a fixture).
//!
//! Where the stacks are (`containers.rs`): `--compose-file` files; `--compose-dir` directories
//! when given, else `~/docker` and `~/Projects` of every human user (uid 1000..=59999, from
//! `/etc/passwd`) and of root (stacks run as root are common), each searched one level deep
//! (`~/docker/<stack>/compose.yaml`) unless it is a stack itself; and the projects the container
//! engines know from their containers' labels. A YAML file with `services:` that no stack reads
//! is a gap. A stack belongs to the user whose home holds it, else to the owner of its
//! directory; `~` in its volumes is that user's home.
//!
//! Block devices, fstab and mounts are read with the mount probe's readers ([`BlockDevices`],
//! [`crate::sources::fstab`], [`mount_table`]); who owns what below each data root, with the
//! drift scanner ([`crate::drift`]), bounded by [`CaptureOptions::scan_limit`]. In a sysroot the
//! walk sees the real owners of the files (a checkout cannot hold other owners; the manifest
//! covers only the paths it lists).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::drift::{self, DriftOptions};
use crate::host::blockdev::BlockDevices;
use crate::host::identity::{IdentityDb, SourceProblem};
use crate::host::mounts::mount_table;
use crate::host::{Host, drm};
use crate::model::fs::FileKind;
use crate::model::report::{ToolInfo, now_rfc3339};
use crate::model::snapshot::{
    BlockDevice, CapturedGroup, ComposeCapture, DataRoot, FstabEntry, Gap, GroupUse, HUMAN_UID_MAX, HUMAN_UID_MIN,
    HumanUser, Identities, Mount, OwnerCount, Ownership, SNAPSHOT_SCHEMA_VERSION, Snapshot,
};
use crate::scan::Owner;
use crate::sources::fstab;
use crate::sources::mountinfo::MountInfo;

mod containers;

pub use containers::ComposeFiles;

/// Where to look, besides the defaults. `CaptureOptions::default()` looks in the default
/// places and records no data root.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CaptureOptions {
    /// Directories holding stacks (one level deep). Empty: `~/docker` and `~/Projects` of every
    /// human user.
    pub compose_dirs: Vec<PathBuf>,
    /// Compose projects named by their files (`--compose-file`, `--env-file`), found whatever
    /// the files are called.
    pub compose_files: Vec<ComposeFiles>,
    /// Data roots to record: their owner, and who owns what below them.
    pub data_roots: Vec<PathBuf>,
    /// Time limit of the ownership walk of each data root (`None`: no limit).
    pub scan_limit: Option<Duration>,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        CaptureOptions {
            compose_dirs: Vec::new(),
            compose_files: Vec::new(),
            data_roots: Vec::new(),
            scan_limit: Some(CaptureOptions::DEFAULT_SCAN_LIMIT),
        }
    }
}

impl CaptureOptions {
    /// The default time limit of the ownership walk of a data root: a one-off capture can
    /// afford minutes, and the drift scanner walks millions of entries in seconds.
    pub const DEFAULT_SCAN_LIMIT: Duration = Duration::from_secs(600);
}

/// Default stack directories, relative to a home.
pub const DEFAULT_COMPOSE_DIRS: &[&str] = &["docker", "Projects"];

/// Captures `host`.
pub fn capture(host: &Host, opts: &CaptureOptions) -> Snapshot {
    let mut gaps = Vec::new();
    let ids = IdentityDb::load(host);
    for p in ids.problems() {
        let reason = match p {
            SourceProblem::Unreadable { file, message } => format!("{}: {message}", file.display()),
            SourceProblem::Parse(e) => format!("{e} (line skipped)"),
        };
        gaps.push(Gap { section: "identities".into(), reason });
    }
    let users = human_users(&ids);

    let drm_nodes = match drm::inventory(host, &ids) {
        Ok(n) => n,
        Err(e) => {
            gaps.push(Gap { section: "drm_nodes".into(), reason: e.to_string() });
            Vec::new()
        }
    };
    let gpus = drm::gpus(host, &drm_nodes);
    let compose = compose_stacks(host, &ids, &users, opts, &mut gaps);
    let data_roots = data_roots(host, &ids, opts, &mut gaps);

    let fstab = fstab_entries(host, &mut gaps);
    let (mounts, mount_table) = mount_entries(host, &mut gaps);
    let block_devices = block_devices(host, &mount_table);

    let mut snapshot = Snapshot {
        schema_version: SNAPSHOT_SCHEMA_VERSION,
        tool: ToolInfo::this(),
        host: host.info(),
        captured_at: now_rfc3339(),
        identities: Identities { users, groups: Vec::new() },
        block_devices: Some(block_devices),
        fstab,
        mounts,
        drm_nodes,
        gpus,
        compose,
        data_roots,
        gaps,
        // Inside an unprivileged LXC container the gids seen here are not the machine's.
        user_namespace: crate::host::userns::read(host).filter(|ns| !ns.is_initial()),
        // `capture --baseline` takes it after the capture, and records it here.
        baseline: None,
    };
    snapshot.identities.groups = groups_that_matter(&ids, &snapshot);
    snapshot
}

/// The host's `/etc/fstab`; a host without one has no entries. Bad lines are gaps (the rest is
/// kept, as the mount probe keeps it).
fn fstab_entries(host: &Host, gaps: &mut Vec<Gap>) -> Option<Vec<FstabEntry>> {
    let file = Path::new(fstab::FSTAB);
    let text = match host.read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.io_kind() == Some(io::ErrorKind::NotFound) => return Some(Vec::new()),
        Err(e) => {
            gaps.push(Gap { section: "fstab".into(), reason: e.to_string() });
            return None;
        }
    };
    let parsed = fstab::parse(&text, file);
    for e in parsed.errors {
        gaps.push(Gap { section: "fstab".into(), reason: format!("{e} (line skipped)") });
    }
    Some(
        parsed
            .entries
            .into_iter()
            .map(|(line, e)| FstabEntry {
                line,
                spec: e.spec,
                file: e.target,
                vfstype: e.fstype,
                options: e.options,
                freq: e.freq.unwrap_or(0),
                passno: e.passno.unwrap_or(0),
            })
            .collect(),
    )
}

/// What was mounted (`/proc/self/mountinfo`), for the snapshot and for the block devices'
/// mount points. A sysroot of a disk has no `/proc`: then the section is a gap.
fn mount_entries(host: &Host, gaps: &mut Vec<Gap>) -> (Option<Vec<Mount>>, Vec<MountInfo>) {
    let parsed = match mount_table(host) {
        Ok(p) => p,
        Err(e) => {
            gaps.push(Gap { section: "mounts".into(), reason: e.to_string() });
            return (None, Vec::new());
        }
    };
    for e in parsed.errors {
        gaps.push(Gap { section: "mounts".into(), reason: format!("{e} (line skipped)") });
    }
    let table: Vec<MountInfo> = parsed.entries.into_iter().map(|(_, m)| m).collect();
    let mounts = table
        .iter()
        .map(|m| Mount {
            target: m.mount_point.clone(),
            source: m.source.clone().unwrap_or_default(),
            fstype: m.fstype.clone(),
            options: m.mount_options.iter().chain(&m.super_options).cloned().collect(),
        })
        .collect();
    (Some(mounts), table)
}

/// Block devices as `lsblk -f` shows them: identity from sysfs, the `/dev/disk/by-*` links and
/// (live host) udev; mount points from the mount table.
fn block_devices(host: &Host, table: &[MountInfo]) -> Vec<BlockDevice> {
    let devs = BlockDevices::load(host);
    devs.devices
        .iter()
        .map(|d| {
            let mountpoints = table
                .iter()
                .filter(|m| {
                    devs.of_mount(host, m.major, m.minor, m.source.as_deref()).is_some_and(|x| x.name == d.name)
                })
                .map(|m| m.mount_point.clone())
                .collect();
            BlockDevice {
                name: d.name.clone(),
                path: d.devnode.clone(),
                fstype: d.fstype.clone(),
                uuid: d.uuid.clone(),
                label: d.label.clone(),
                partuuid: d.partuuid.clone(),
                mountpoints,
            }
        })
        .collect()
}

fn human_users(ids: &IdentityDb) -> Vec<HumanUser> {
    let mut out: Vec<HumanUser> = Vec::new();
    for (_, u) in ids.file_users() {
        if !(HUMAN_UID_MIN..=HUMAN_UID_MAX).contains(&u.uid) || out.iter().any(|o| o.name == u.name) {
            continue;
        }
        let primary_group = ids.group_by_gid(u.gid).map(|g| g.name);
        let groups = ids
            .gids_of(u)
            .into_iter()
            .filter(|g| *g != u.gid)
            .filter_map(|g| ids.group_by_gid(g).map(|e| e.name))
            .collect();
        out.push(HumanUser {
            name: u.name.clone(),
            uid: u.uid,
            gid: u.gid,
            primary_group,
            home: u.home.clone(),
            shell: u.shell.clone(),
            groups,
        });
    }
    out
}

pub(super) fn io_error(e: crate::host::HostError) -> io::Error {
    io::Error::new(e.io_kind().unwrap_or(io::ErrorKind::Other), e.to_string())
}

/// A user whose home may hold stacks: the human users, and root (stacks run as root are common).
pub(super) struct HomeOwner {
    name: String,
    uid: u32,
    home: String,
}

/// The user whose home holds `dir`, else the owner of `dir`.
pub(super) fn owner_of(host: &Host, owners: &[HomeOwner], dir: &Path) -> Option<String> {
    let by_home = owners
        .iter()
        .filter(|u| u.home.len() > 1 && dir.starts_with(&u.home))
        .max_by_key(|u| u.home.len())
        .map(|u| u.name.clone());
    by_home.or_else(|| {
        let uid = host.stat(dir).ok()?.uid;
        owners.iter().find(|u| u.uid == uid).map(|u| u.name.clone())
    })
}

fn compose_stacks(
    host: &Host,
    ids: &IdentityDb,
    users: &[HumanUser],
    opts: &CaptureOptions,
    gaps: &mut Vec<Gap>,
) -> ComposeCapture {
    let mut owners: Vec<HomeOwner> =
        users.iter().map(|u| HomeOwner { name: u.name.clone(), uid: u.uid, home: u.home.clone() }).collect();
    if let Some(root) = ids.file_users().iter().map(|(_, u)| u).find(|u| u.uid == 0) {
        owners.push(HomeOwner { name: root.name.clone(), uid: 0, home: root.home.clone() });
    }
    let mut search: Vec<PathBuf> = opts.compose_dirs.clone();
    if search.is_empty() {
        for u in &owners {
            for d in DEFAULT_COMPOSE_DIRS {
                search.push(Path::new(&u.home).join(d));
            }
        }
    }
    let answers = containers::ask_engines(host, &owners);
    let mut finder = containers::Finder { host, owners: &owners, out: ComposeCapture::default(), gaps: Vec::new() };
    finder.named_files(&opts.compose_files);
    finder.search(&search);
    finder.engines(answers.reports);
    finder.quadlet_dirs();
    finder.unused_compose_files(&search);
    gaps.extend(answers.gaps.into_iter().map(|reason| Gap { section: "compose".into(), reason }));
    gaps.extend(finder.gaps);
    finder.out
}

fn data_roots(host: &Host, ids: &IdentityDb, opts: &CaptureOptions, gaps: &mut Vec<Gap>) -> Vec<DataRoot> {
    let mut out = Vec::new();
    for r in &opts.data_roots {
        let stat = match host.stat(r) {
            Ok(s) if s.kind == FileKind::Dir || s.kind == FileKind::Symlink => Some(s),
            Ok(_) => {
                gaps.push(Gap { section: "data_roots".into(), reason: format!("{} is not a directory", r.display()) });
                None
            }
            Err(e) => {
                gaps.push(Gap { section: "data_roots".into(), reason: e.to_string() });
                None
            }
        };
        let exclude = if stat.is_some() { fsck_directory(host, r) } else { vec![] };
        let ownership = stat.and_then(|st| {
            match ownership(host, r, Owner { uid: st.uid, gid: st.gid }, &exclude, opts.scan_limit) {
                Ok(o) => Some(o),
                Err(e) => {
                    gaps.push(Gap { section: "data_roots".into(), reason: format!("{}: {e}", r.display()) });
                    None
                }
            }
        });
        out.push(DataRoot {
            path: r.display().to_string(),
            owner_name: stat.and_then(|s| ids.user_by_uid(s.uid)).map(|u| u.name),
            group_name: stat.and_then(|s| ids.group_by_gid(s.gid)).map(|g| g.name),
            stat,
            ownership,
            exclude,
        });
    }
    out
}

/// `["/lost+found"]` when `root` holds a `lost+found` directory owned by root: the one
/// mkfs.ext4 (and e2fsck) make at the top of every ext2/3/4 filesystem. It is not data, no
/// container owns it, and with it a data root on its own disk could never have one owner.
fn fsck_directory(host: &Host, root: &Path) -> Vec<String> {
    match host.stat(root.join("lost+found")) {
        Ok(st) if st.kind == FileKind::Dir && st.uid == 0 => vec!["/lost+found".to_owned()],
        _ => vec![],
    }
}

/// Who owns what below `root` (a host path; in a sysroot it is resolved inside), with the
/// drift scanner: it reports every entry not owned by `expected` (the root's own owner) per
/// owner, and the others are `expected`'s. The walk stays on the root's filesystem.
fn ownership(
    host: &Host,
    root: &Path,
    expected: Owner,
    exclude: &[String],
    limit: Option<Duration>,
) -> Result<Ownership, String> {
    let real = host.resolve(root, true);
    let mut opts = DriftOptions::new(vec![real], expected);
    opts.exclude = exclude.to_vec();
    opts.samples = 0;
    opts.max_duration = limit;
    let report = drift::scan(&opts, None).map_err(|e| e.to_string())?;
    let mut by_owner: Vec<OwnerCount> =
        report.by_owner.iter().map(|c| OwnerCount { uid: c.uid, gid: c.gid, entries: c.count }).collect();
    let theirs = report.stats.entries.saturating_sub(report.offending).saturating_sub(report.errors);
    if theirs > 0 {
        by_owner.push(OwnerCount { uid: expected.uid, gid: expected.gid, entries: theirs });
    }
    by_owner.sort_by(|a, b| b.entries.cmp(&a.entries).then((a.uid, a.gid).cmp(&(b.uid, b.gid))));
    Ok(Ownership {
        entries: report.stats.entries,
        complete: report.stats.stopped.is_none() && report.errors == 0,
        by_owner,
    })
}

/// The groups that matter and why: render, video, docker; human users' groups; owners of DRM
/// nodes and data roots; every gid or group name a compose service uses.
fn groups_that_matter(ids: &IdentityDb, s: &Snapshot) -> Vec<CapturedGroup> {
    let mut uses: BTreeMap<u32, Vec<GroupUse>> = BTreeMap::new();
    let mut add = |gid: Option<u32>, u: GroupUse| {
        if let Some(gid) = gid {
            let v = uses.entry(gid).or_default();
            if !v.contains(&u) {
                v.push(u);
            }
        }
    };
    let gid_of = |name: &str| ids.group_by_name(name).map(|g| g.gid);
    for name in ["render", "video", "docker"] {
        add(gid_of(name), GroupUse::WellKnown);
    }
    for u in &s.identities.users {
        add(Some(u.gid), GroupUse::PrimaryGroupOf { user: u.name.clone() });
        for g in &u.groups {
            add(gid_of(g), GroupUse::MemberIs { user: u.name.clone() });
        }
    }
    for n in &s.drm_nodes {
        add(Some(n.stat.gid), GroupUse::DeviceOwner { path: n.path.clone() });
    }
    for r in &s.data_roots {
        add(r.stat.map(|st| st.gid), GroupUse::DataRootOwner { path: r.path.clone() });
        for c in r.ownership.iter().flat_map(|o| &o.by_owner) {
            add(Some(c.gid), GroupUse::DataRootOwner { path: r.path.clone() });
        }
    }
    // A rootless stack's ids are its owner's namespace's (mapped through /etc/subgid), no use
    // of the host gid with that number.
    for stack in s.compose.stacks.iter().filter(|st| !st.rootless) {
        for svc in &stack.services {
            let c = |field: &str| GroupUse::Compose {
                stack: stack.name.clone(),
                service: svc.name.clone(),
                field: field.to_owned(),
            };
            let users = &s.identities.users;
            if let Ok(cr) = svc.credentials(&|uid| users.iter().find(|u| u.uid == uid).map(|u| u.gid)) {
                add(Some(cr.gid), c(cr.source.gid_field()));
            }
            for g in &svc.group_add {
                match g.parse::<u32>() {
                    Ok(gid) => add(Some(gid), c("group_add")),
                    Err(_) => add(gid_of(g), c("group_add name")),
                }
            }
        }
    }
    let mut out = Vec::new();
    for (gid, mut u) in uses {
        let Some(g) = ids.group_by_gid(gid) else { continue };
        u.sort();
        out.push(CapturedGroup { name: g.name, gid, members: g.members, uses: u });
    }
    out
}
