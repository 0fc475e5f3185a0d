//! Data filesystems: fstab entries to `fileSystems` and `[[mounts]]` (one definition per mount
//! point, NixOS's order), `[[drift]]` for data roots with one owner, and `[[baseline]]` for the
//! ownership baseline `capture --baseline` took.

use super::{BaselinePlan, Decisions, Duplicate, DuplicateKind, FsPlan};
use crate::model::expectations::DriftExpectation;
use crate::model::mounts::MountExpectation;
use crate::model::snapshot::{FstabEntry, Snapshot};

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

fn is_system_mount(p: &str) -> bool {
    SYSTEM_MOUNTS.contains(&p)
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

/// `[[drift]]` for every data root whose entries all had one owner on the old host; the others
/// are warnings (their owners were mixed already, or the walk was cut short).
pub(super) fn data_roots(snapshot: &Snapshot, d: &mut Decisions) {
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
            // Mixed owners are what a baseline is for: its [[baseline]] checks them.
            _ if snapshot.baseline.as_ref().is_some_and(|b| b.covers(&r.path)) => {}
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

/// Where the new host keeps the baseline `capture --baseline` took: the NixOS module's
/// `StateDirectory` (root's, kept across boots, outside the world-readable store), under the
/// file's own name when that is a plain one (`owners.baseline` otherwise).
pub const BASELINE_DIR: &str = "/var/lib/homelab-probe";

/// The baseline recorded in the snapshot, checked by a `[[baseline]]` section at
/// [`BASELINE_DIR`]: every entry under its roots must keep its owner, group, mode and type.
pub(super) fn baseline(snapshot: &Snapshot, d: &mut Decisions) {
    let Some(b) = &snapshot.baseline else { return };
    let name = b.file_name();
    let plain = !name.starts_with('.')
        && name.len() <= 255
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || b"._+-".contains(&c));
    let name = if plain { name } else { "owners.baseline" };
    if !b.complete {
        d.warn(
            b.file.clone(),
            format!(
                "capture could not read some directories under {}: the baseline records them as unreadable, and `check` cannot verify the entries under them",
                b.roots.join(", ")
            ),
        );
    }
    d.baseline = Some(BaselinePlan { recorded: b.clone(), file: format!("{BASELINE_DIR}/{name}") });
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

pub(super) fn filesystems(snapshot: &Snapshot, d: &mut Decisions) {
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
