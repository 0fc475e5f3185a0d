//! The [`Snapshot`]: what `homelab-verify capture` records about the old host before it is
//! wiped, and what `plan` turns into a NixOS module and an expectations file.
//!
//! It is a versioned JSON contract ([`SNAPSHOT_SCHEMA_VERSION`]): fields are only added within
//! a version; a removal or change of meaning bumps it. A section that could not be captured is
//! `null` (absent in the file) and [`Snapshot::gaps`] says why; an empty list means "captured,
//! nothing there".
//!
//! ```json
//! {
//!   "schema_version": 1,
//!   "tool": { "name": "homelab-probe", "version": "0.1.0" },
//!   "host": { "hostname": "pop-os", "root": "/", "live": true, "kernel": "6.9.3" },
//!   "captured_at": "2026-11-25T01:00:00Z",
//!   "identities": { "users": [ ... ], "groups": [ ... ] },
//!   "block_devices": [ ... ], "fstab": [ ... ], "mounts": [ ... ],
//!   "drm_nodes": [ ... ], "gpus": [ ... ],
//!   "compose": { "search_dirs": [ ... ], "stacks": [ ... ] },
//!   "data_roots": [ ... ],
//!   "baseline": { "file": "/root/owners.baseline", "roots": [ ... ], "entries": 68, ... },
//!   "gaps": [ { "section": "fstab", "reason": "..." } ]
//! }
//! ```

use serde::{Deserialize, Serialize};

use crate::model::compose::{ComposeStack, EngineReport};
use crate::model::fs::FileStat;
use crate::model::inventory::{DrmNode, GpuDevice};
use crate::model::report::{HostInfo, ToolInfo};
use crate::model::userns::UserNamespace;

/// Version of the snapshot's JSON shape.
pub const SNAPSHOT_SCHEMA_VERSION: u32 = 1;

/// Users with a uid at or above this are people (Debian, Ubuntu, Fedora, NixOS all start
/// normal users at 1000).
pub const HUMAN_UID_MIN: u32 = 1000;
/// ... and below this (`nobody` is 65534; 60000-65533 are reserved on Debian and systemd).
pub const HUMAN_UID_MAX: u32 = 59999;

/// Everything capture records about one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Snapshot {
    /// [`SNAPSHOT_SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// The program and version that wrote it.
    pub tool: ToolInfo,
    /// The host it describes.
    pub host: HostInfo,
    /// When it was taken, RFC 3339 in UTC.
    pub captured_at: String,
    /// Human users and the groups that matter.
    pub identities: Identities,
    /// Block devices, as `lsblk -f` shows them. `None`: not captured (see [`Snapshot::gaps`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_devices: Option<Vec<BlockDevice>>,
    /// `/etc/fstab` entries. `None`: not captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fstab: Option<Vec<FstabEntry>>,
    /// What was mounted (`/proc/self/mountinfo`). `None`: not captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Vec<Mount>>,
    /// Render and card nodes under `/dev/dri` with owner, group and mode.
    pub drm_nodes: Vec<DrmNode>,
    /// GPUs: PCI display controllers merged with the devices behind the DRM nodes (the GPU
    /// probe's inventory, so a GPU without DRM nodes counts too).
    pub gpus: Vec<GpuDevice>,
    /// Compose stacks.
    pub compose: ComposeCapture,
    /// Data roots named with `--data-root`: owner of the root and, when the drift scanner could
    /// run, counts per owner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_roots: Vec<DataRoot>,
    /// Sections or parts that could not be captured, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<Gap>,
    /// The user namespace capture ran in, when it is not the initial one (an unprivileged LXC
    /// container): its gids are not the gids of the machine underneath.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_namespace: Option<UserNamespace>,
    /// The ownership baseline `capture --baseline FILE` took in the same step, so that `plan`
    /// can have `check` verify it on the new host. `None`: none was taken (and in snapshots
    /// written before the field existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<RecordedBaseline>,
}

/// Users and groups.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Identities {
    /// Users with uid in [`HUMAN_UID_MIN`]..=[`HUMAN_UID_MAX`].
    pub users: Vec<HumanUser>,
    /// The groups that matter, each with the reasons it matters.
    pub groups: Vec<CapturedGroup>,
}

/// A person's account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HumanUser {
    /// Login name.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Name of the primary group, when a group has that gid.
    pub primary_group: Option<String>,
    /// Home directory.
    pub home: String,
    /// Login shell.
    pub shell: String,
    /// Supplementary groups, by name.
    pub groups: Vec<String>,
}

/// A group and why capture kept it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedGroup {
    /// Name.
    pub name: String,
    /// gid.
    pub gid: u32,
    /// Supplementary members.
    pub members: Vec<String>,
    /// Why it matters (never empty).
    pub uses: Vec<GroupUse>,
}

/// Why a group matters for the move.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GroupUse {
    /// `render`, `video` or `docker`: device access and the Docker socket.
    WellKnown,
    /// The primary group of a human user.
    PrimaryGroupOf {
        /// The user.
        user: String,
    },
    /// A human user is a member.
    MemberIs {
        /// The user.
        user: String,
    },
    /// Owns a device node (`/dev/dri/renderD128`).
    DeviceOwner {
        /// The node.
        path: String,
    },
    /// Owns a data root (`/mnt/PlexStorage`).
    DataRootOwner {
        /// The root.
        path: String,
    },
    /// A compose service names its gid or name (`PGID`, `user:`, `group_add:`).
    Compose {
        /// Stack name.
        stack: String,
        /// Service name.
        service: String,
        /// `PGID`, `user`, `group_add`.
        field: String,
    },
}

/// A block device, as `lsblk -f` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDevice {
    /// Kernel name, `sdb1`.
    pub name: String,
    /// Device path, `/dev/sdb1`.
    pub path: String,
    /// Filesystem type (`ext4`, `xfs`, `btrfs`, `ntfs`...).
    pub fstype: Option<String>,
    /// Filesystem UUID.
    pub uuid: Option<String>,
    /// Filesystem label.
    pub label: Option<String>,
    /// GPT partition UUID.
    pub partuuid: Option<String>,
    /// Where it is mounted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mountpoints: Vec<String>,
}

/// One line of `/etc/fstab` (fstab(5)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FstabEntry {
    /// Line in the file.
    pub line: usize,
    /// First field as written (`UUID=...`, `LABEL=...`, `/dev/sdb1`).
    pub spec: String,
    /// Mount point, unescaped (`\040` -> space).
    pub file: String,
    /// Filesystem type (`ext4`, `auto`, `swap`...).
    pub vfstype: String,
    /// Mount options.
    pub options: Vec<String>,
    /// dump frequency.
    pub freq: u32,
    /// fsck pass.
    pub passno: u32,
}

/// One mounted filesystem (proc_pid_mountinfo(5)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Mount point, unescaped.
    pub target: String,
    /// Mount source (`/dev/sdb1`).
    pub source: String,
    /// Filesystem type.
    pub fstype: String,
    /// Mount and superblock options.
    pub options: Vec<String>,
}

/// Compose stacks and where capture looked for them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ComposeCapture {
    /// Directories searched (one level deep), whether they existed, and whose they are.
    pub search_dirs: Vec<SearchDir>,
    /// Every stack found.
    pub stacks: Vec<ComposeStack>,
    /// What the container engines said about their Compose projects (the labels of their
    /// containers), which found the stacks started from files under other names or elsewhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub engines: Vec<EngineReport>,
}

/// A directory searched for stacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchDir {
    /// The directory.
    pub path: String,
    /// The user it belongs to.
    pub owner: Option<String>,
    /// Whether it existed.
    pub exists: bool,
}

/// A data root named with `--data-root`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataRoot {
    /// The directory.
    pub path: String,
    /// Its own owner, group and mode (`None`: it does not exist).
    pub stat: Option<FileStat>,
    /// Name of the owning user.
    pub owner_name: Option<String>,
    /// Name of the owning group.
    pub group_name: Option<String>,
    /// Who owns what below it (the drift scanner's walk), when the scan ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ownership: Option<Ownership>,
    /// Exclude patterns the walk used (the syntax of [`Exclude`](crate::model::exclude::Exclude)):
    /// `/lost+found` when the root holds the `lost+found` directory that mkfs.ext4 makes,
    /// owned by root, which is not data and which no container owns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// The owners of every entry below a data root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ownership {
    /// Entries examined (the root included), like the lines `find ROOT -xdev` prints.
    pub entries: u64,
    /// Whether the walk saw everything (false: it stopped at the time limit, or some
    /// directories could not be read).
    pub complete: bool,
    /// Entries per (uid, gid), most first.
    pub by_owner: Vec<OwnerCount>,
}

/// How many entries one (uid, gid) pair owns below a data root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerCount {
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Entries (files, directories, links) with this owner.
    pub entries: u64,
}

/// The ownership baseline file `capture --baseline` wrote: where, of what, and its checksum, so
/// that the new host can tell it has that very file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedBaseline {
    /// The file as capture wrote it, an absolute path on the old host (escaped as `scan::escape`
    /// writes paths; the model names no higher layer).
    pub file: String,
    /// The roots it records (escaped), as in the file's header: what `check` walks.
    pub roots: Vec<String>,
    /// Entries recorded (the roots included).
    pub entries: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// SHA-256 of the file, 64 lower-case hex digits (what `sha256sum` prints).
    #[serde(deserialize_with = "sha256_hex")]
    pub sha256: String,
    /// Whether every directory could be read (false: some are recorded as unreadable, and
    /// the entries under them cannot be checked).
    pub complete: bool,
}

impl RecordedBaseline {
    /// The file's own name (the last part of [`RecordedBaseline::file`]).
    pub fn file_name(&self) -> &str {
        self.file.rsplit('/').next().unwrap_or(&self.file)
    }

    /// Whether `path` (absolute) is one of the recorded roots or lies below one.
    pub fn covers(&self, path: &str) -> bool {
        self.roots.iter().any(|r| std::path::Path::new(path).starts_with(r))
    }
}

fn sha256_hex<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(serde::de::Error::custom(format!("sha256 {s:?}: expected 64 lower-case hex digits")));
    }
    Ok(s)
}

/// A part of the snapshot that is missing, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// The section (`fstab`, `mounts`, `block_devices`, `data_roots`, `identities`...).
    pub section: String,
    /// Why.
    pub reason: String,
}

/// Why a snapshot file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The file could not be read.
    #[error("{}: cannot read snapshot: {source}", file.display())]
    Read {
        /// The file.
        file: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Not a snapshot (bad JSON, wrong shape) or an unsupported version.
    #[error("{}:{line}:{column}: {message}", file.display())]
    Invalid {
        /// The file.
        file: std::path::PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

impl Snapshot {
    /// A snapshot of `host` taken now by this library, every section captured and empty: the
    /// start for a snapshot an embedder fills in itself.
    pub fn new(host: HostInfo) -> Self {
        Snapshot {
            schema_version: SNAPSHOT_SCHEMA_VERSION,
            tool: ToolInfo::this(),
            host,
            captured_at: crate::model::report::now_rfc3339(),
            identities: Identities::default(),
            block_devices: Some(Vec::new()),
            fstab: Some(Vec::new()),
            mounts: Some(Vec::new()),
            drm_nodes: Vec::new(),
            gpus: Vec::new(),
            compose: ComposeCapture::default(),
            data_roots: Vec::new(),
            gaps: Vec::new(),
            user_namespace: None,
            baseline: None,
        }
    }

    /// Parses `text`; `file` names it in errors. A snapshot of another schema version is refused.
    pub fn from_json_str(text: &str, file: &std::path::Path) -> Result<Self, SnapshotError> {
        let invalid = |e: serde_json::Error| {
            let (line, column) = crate::model::text::json_error_position(text, &e);
            SnapshotError::Invalid {
                file: file.to_path_buf(),
                line,
                column,
                message: e.to_string().split(" at line ").next().unwrap_or_default().to_owned(),
            }
        };
        #[derive(Deserialize)]
        struct VersionOnly {
            schema_version: Option<u32>,
        }
        let v: VersionOnly = serde_json::from_str(text).map_err(invalid)?;
        match v.schema_version {
            Some(SNAPSHOT_SCHEMA_VERSION) => {}
            other => {
                return Err(SnapshotError::Invalid {
                    file: file.to_path_buf(),
                    line: 1,
                    column: 1,
                    message: match other {
                        None => "not a homelab-probe snapshot: no schema_version".to_owned(),
                        Some(n) => format!(
                            "unsupported snapshot schema_version {n} (this homelab-probe reads {SNAPSHOT_SCHEMA_VERSION})"
                        ),
                    },
                });
            }
        }
        serde_json::from_str(text).map_err(invalid)
    }

    /// What was captured, one plain-text line per item (users, groups that matter, fstab,
    /// block devices, GPUs, DRM nodes, compose directories and stacks with their problems,
    /// data roots, gaps): what `capture` prints and `MIGRATION.md` lists.
    pub fn summary(&self) -> Vec<String> {
        fn or_none(items: Vec<String>) -> String {
            if items.is_empty() { "none".to_owned() } else { items.join(", ") }
        }
        let mut out = Vec::new();
        let users = self.identities.users.iter().map(|u| format!("{} ({})", u.name, u.uid)).collect();
        out.push(format!("users: {}", or_none(users)));
        let groups = self.identities.groups.iter().map(|g| format!("{} ({})", g.name, g.gid)).collect();
        out.push(format!("groups that matter: {}", or_none(groups)));
        out.push(match &self.fstab {
            Some(f) => format!("fstab: {} entries", f.len()),
            None => "fstab: not captured".to_owned(),
        });
        out.push(match &self.block_devices {
            Some(b) => format!("block devices: {}", b.len()),
            None => "block devices: not captured".to_owned(),
        });
        let gpus = self
            .gpus
            .iter()
            .map(|g| {
                format!("{} {} ({})", g.describe(), g.subject(), g.kernel_driver.as_deref().unwrap_or("no driver"))
            })
            .collect();
        out.push(format!("GPUs: {}", or_none(gpus)));
        let nodes = self
            .drm_nodes
            .iter()
            .map(|n| {
                let owner = n.owner_name.clone().unwrap_or_else(|| n.stat.uid.to_string());
                let group = n.group_name.clone().unwrap_or_else(|| n.stat.gid.to_string());
                format!("{} {owner}:{group} {}", n.path, n.stat.mode)
            })
            .collect();
        out.push(format!("DRM nodes: {}", or_none(nodes)));
        if let Some(ns) = &self.user_namespace {
            out.push(format!(
                "runs in a user namespace (gid map {}): render nodes of unmapped host groups show as gid {}",
                ns.gid_map_text(),
                ns.overflow_gid
            ));
        }
        for d in &self.compose.search_dirs {
            out.push(format!("compose dir {}{}", d.path, if d.exists { "" } else { " (absent)" }));
        }
        for e in &self.compose.engines {
            let who = e.rootless_user.as_ref().map(|u| format!(" (rootless, {u})")).unwrap_or_default();
            let names = or_none(e.projects.iter().map(|p| p.name.clone()).collect());
            out.push(format!("{}{who} ({}): Compose projects {names}", e.engine.name(), e.source));
        }
        for st in &self.compose.stacks {
            let services: Vec<&str> = st.services.iter().map(|x| x.name.as_str()).collect();
            out.push(format!("stack {} in {}{}: {}", st.name, st.dir, st.how_found(), services.join(", ")));
            for p in &st.problems {
                out.push(format!("stack {}: problem: {p}", st.name));
            }
        }
        for r in &self.data_roots {
            let owner = match r.stat {
                Some(st) => format!("{}:{} {}", st.uid, st.gid, st.mode),
                None => "missing".to_owned(),
            };
            let walk = match &r.ownership {
                Some(o) => {
                    let owners: Vec<String> =
                        o.by_owner.iter().map(|c| format!("{}:{} ({})", c.uid, c.gid, c.entries)).collect();
                    let cut = if o.complete { "" } else { " (walk cut short)" };
                    format!("{} entries{cut}: {}", o.entries, owners.join(", "))
                }
                None => "not walked".to_owned(),
            };
            out.push(format!("data root {}: owner {owner}, {walk}", r.path));
        }
        if let Some(b) = &self.baseline {
            let cut = if b.complete { "" } else { " (some directories unreadable)" };
            out.push(format!(
                "ownership baseline {}: {} entries under {}{cut}, {} bytes, sha256 {}",
                b.file,
                b.entries,
                b.roots.join(", "),
                b.bytes,
                b.sha256
            ));
        }
        for g in &self.gaps {
            out.push(format!("not captured: {}: {}", g.section, g.reason));
        }
        out
    }

    /// The human user called `name`.
    pub fn user(&self, name: &str) -> Option<&HumanUser> {
        self.identities.users.iter().find(|u| u.name == name)
    }

    /// The captured group called `name`.
    pub fn group(&self, name: &str) -> Option<&CapturedGroup> {
        self.identities.groups.iter().find(|g| g.name == name)
    }

    /// The captured group with `gid`.
    pub fn group_by_gid(&self, gid: u32) -> Option<&CapturedGroup> {
        self.identities.groups.iter().find(|g| g.gid == gid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn recorded() -> RecordedBaseline {
        RecordedBaseline {
            file: "/root/owners.baseline".into(),
            roots: vec!["/srv/appdata".into()],
            entries: 68,
            bytes: 603,
            sha256: "bf4adcb002cd769e4986497aee4865a88ee2476276ff87270b384c367b2824d1".into(),
            complete: true,
        }
    }

    #[test]
    fn an_older_snapshot_has_no_baseline_and_one_with_it_reads_back() {
        // The committed snapshot was written before the field existed.
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/snapshots/testvm.json");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains("\"baseline\""));
        let old = Snapshot::from_json_str(&text, &file).unwrap();
        assert_eq!(old.baseline, None);
        assert!(!serde_json::to_string(&old).unwrap().contains("\"baseline\""), "None is not written");

        let mut with = old.clone();
        with.baseline = Some(recorded());
        let json = serde_json::to_string_pretty(&with).unwrap();
        assert_eq!(Snapshot::from_json_str(&json, &file).unwrap(), with);
        assert!(with.summary().iter().any(|l| l
            == "ownership baseline /root/owners.baseline: 68 entries under /srv/appdata, 603 bytes, sha256 bf4adcb002cd769e4986497aee4865a88ee2476276ff87270b384c367b2824d1"));
    }

    #[test]
    fn a_checksum_that_is_not_sha256_hex_is_refused_with_its_place() {
        let file = Path::new("snapshot.json");
        let mut v = serde_json::to_value(Snapshot::new(HostInfo {
            hostname: None,
            root: "/".into(),
            live: true,
            kernel: None,
        }))
        .unwrap();
        for bad in ["ABC", "", &"A".repeat(64), &"g".repeat(64)] {
            let mut b = serde_json::to_value(recorded()).unwrap();
            b["sha256"] = bad.into();
            v["baseline"] = b;
            let text = serde_json::to_string_pretty(&v).unwrap();
            let err = Snapshot::from_json_str(&text, file).unwrap_err().to_string();
            // serde_json names the end of the object that holds the bad value.
            let line = text.lines().position(|l| l.contains("\"sha256\"")).unwrap() + 2;
            assert!(err.starts_with(&format!("snapshot.json:{line}:")), "{err}");
            assert!(err.contains("64 lower-case hex digits"), "{err}");
        }
    }

    #[test]
    fn a_baseline_covers_its_roots_and_what_lies_below_them() {
        let b = recorded();
        assert_eq!(b.file_name(), "owners.baseline");
        assert!(b.covers("/srv/appdata") && b.covers("/srv/appdata/") && b.covers("/srv/appdata/postgres"));
        assert!(!b.covers("/srv/appdata2") && !b.covers("/srv") && !b.covers("/var/lib"));
    }
}
