//! Snapshots built from the fuzzer's bytes through `arbitrary`, so that the plan target
//! reaches the decisions rather than failing JSON syntax. Names, ids, paths and file system
//! types are drawn mostly from pools of values that matter to the decisions (NixOS's static
//! gids and the names that hold them, the well-known groups, system mount points, names
//! NixOS refuses), and sometimes as arbitrary text. Built here from primitives, so that the
//! model's types stay free of fuzzing derives.

use std::collections::BTreeMap;

use arbitrary::{Result, Unstructured};
use homelab_probe::Snapshot;
use homelab_probe::model::compose::{
    AllMarker, ComposeService, ComposeStack, DeviceCount, DeviceMapping, DeviceReservation, VolumeKind, VolumeMount,
};
use homelab_probe::model::fs::{FileKind, FileMode, FileStat};
use homelab_probe::model::inventory::{DrmNode, DrmNodeKind, GpuDevice, GpuVendor, PciDevice};
use homelab_probe::model::report::{HostInfo, ToolInfo};
use homelab_probe::model::snapshot::{
    BlockDevice, CapturedGroup, DataRoot, FstabEntry, Gap, GroupUse, HumanUser, Mount, OwnerCount, Ownership,
    RecordedBaseline, SearchDir,
};
use homelab_probe::nixos::{ALWAYS_PRESENT_GROUPS, STATIC_GIDS, STATIC_UIDS};

/// Arbitrary text, short.
pub fn text(u: &mut Unstructured) -> Result<String> {
    let n = u.int_in_range(0..=24)?;
    (0..n).map(|_| u.arbitrary::<char>()).collect()
}

/// One of `pool`, or (one time in `1 + pool.len()`) arbitrary text.
fn pick(u: &mut Unstructured, pool: &[&str]) -> Result<String> {
    let i = u.int_in_range(0..=pool.len())?;
    match pool.get(i) {
        Some(s) => Ok((*s).to_owned()),
        None => text(u),
    }
}

const NAMES: &[&str] = &[
    "render",
    "video",
    "docker",
    "users",
    "media",
    "plex",
    "alice",
    "bob",
    "root",
    "wheel",
    "disk",
    "nogroup",
    "nobody",
    "tape",
    "sudo",
    "adm",
    "input",
    "kvm",
    "audio",
    "systemd-journal-gateway",
    "jellyfin",
    "nixbld",
    "100",
    "-x",
    "a b",
    "Media",
    "x$",
    "messagebus",
    "sgx",
    "",
];

/// A user or group name: mostly from the pools (ours, NixOS's always-present groups and its
/// static gid names).
pub fn name(u: &mut Unstructured) -> Result<String> {
    match u.int_in_range(0..=3)? {
        0 => Ok((*u.choose(ALWAYS_PRESENT_GROUPS)?).to_owned()),
        1 => Ok(u.choose(STATIC_GIDS)?.0.to_owned()),
        _ => pick(u, NAMES),
    }
}

/// A uid or gid: mostly NixOS's static ids and the ids homelabs use.
pub fn id(u: &mut Unstructured) -> Result<u32> {
    const IDS: &[u32] = &[0, 1, 6, 26, 100, 110, 131, 303, 999, 1000, 1001, 65534, 65535, 4_294_967_294];
    match u.int_in_range(0..=3)? {
        0 => Ok(u.choose(STATIC_GIDS)?.1),
        1 => Ok(u.choose(STATIC_UIDS)?.1),
        2 => Ok(*u.choose(IDS)?),
        _ => u.arbitrary(),
    }
}

const PATHS: &[&str] = &[
    "/",
    "/mnt/media",
    "/mnt/media/",
    "/mnt/PlexStorage",
    "/mnt/Plex Drive",
    "/boot/efi",
    "/home",
    "/srv/data",
    "/nix",
    "/var",
    "/data\"${x}",
    "/mnt/a\\b",
    "none",
    "swap",
    "/dev/dri/renderD128",
    "/dev/dri/card0",
    "/dev/nvidia0",
    "relative/path",
    "/mnt/media/sub",
];

/// A path (mount point, data root, device).
pub fn path(u: &mut Unstructured) -> Result<String> {
    pick(u, PATHS)
}

/// A path as the journal writes it (escaped: no control characters, backslashes doubled).
pub fn escaped_path(u: &mut Unstructured) -> Result<String> {
    let p = path(u)?;
    Ok(homelab_probe::scan::escape::escape(p.as_bytes()))
}

fn opt<T>(u: &mut Unstructured, f: impl FnOnce(&mut Unstructured) -> Result<T>) -> Result<Option<T>> {
    if u.arbitrary()? { Ok(Some(f(u)?)) } else { Ok(None) }
}

fn list<T>(u: &mut Unstructured, max: usize, mut f: impl FnMut(&mut Unstructured) -> Result<T>) -> Result<Vec<T>> {
    let n = u.int_in_range(0..=max)?;
    (0..n).map(|_| f(u)).collect()
}

fn group_use(u: &mut Unstructured) -> Result<GroupUse> {
    Ok(match u.int_in_range(0..=5)? {
        0 => GroupUse::WellKnown,
        1 => GroupUse::PrimaryGroupOf { user: name(u)? },
        2 => GroupUse::MemberIs { user: name(u)? },
        3 => GroupUse::DeviceOwner { path: path(u)? },
        4 => GroupUse::DataRootOwner { path: path(u)? },
        _ => GroupUse::Compose { stack: name(u)?, service: name(u)?, field: pick(u, &["PGID", "user", "group_add"])? },
    })
}

fn mode(u: &mut Unstructured) -> Result<FileMode> {
    Ok(FileMode(u.int_in_range(0..=0o7777)?))
}

fn stat(u: &mut Unstructured) -> Result<FileStat> {
    let kind = *u.choose(&[FileKind::Char, FileKind::Dir, FileKind::File, FileKind::Block, FileKind::Symlink])?;
    Ok(FileStat { kind, uid: id(u)?, gid: id(u)?, mode: mode(u)?, rdev: None })
}

fn pci(u: &mut Unstructured) -> Result<PciDevice> {
    Ok(PciDevice {
        address: pick(u, &["0000:00:02.0", "0000:01:00.0"])?,
        vendor: opt(u, |u| pick(u, &["0x8086", "0x1002", "0x10de", "0x1af4"]))?,
        device: opt(u, |u| pick(u, &["0x46a6", "0x2504", "0x1e84", "0x0412", "0x3e92", "0x0f31"]))?,
    })
}

fn vendor(u: &mut Unstructured) -> Result<GpuVendor> {
    Ok(*u.choose(&[GpuVendor::Intel, GpuVendor::Amd, GpuVendor::Nvidia, GpuVendor::Virtio, GpuVendor::Other])?)
}

const DRIVERS: &[&str] = &["i915", "xe", "amdgpu", "nvidia", "nouveau", "virtio_gpu", "vfio-pci"];

fn gpu(u: &mut Unstructured) -> Result<GpuDevice> {
    Ok(GpuDevice {
        pci: opt(u, pci)?,
        pci_class: opt(u, |u| pick(u, &["0x030000", "0x030200", "0x038000"]))?,
        vendor: vendor(u)?,
        kernel_driver: opt(u, |u| pick(u, DRIVERS))?,
        drm_driver: opt(u, |u| pick(u, DRIVERS))?,
        // A node name no capture writes, as a snapshot edited by hand may hold: plan must still
        // write expectations that read back.
        render_node: opt(u, |u| pick(u, &["/dev/dri/renderD128", "/dev/dri/renderD129", "/dev/dri/renderDx"]))?,
        card_node: opt(u, |u| pick(u, &["/dev/dri/card0", "/dev/dri/card1"]))?,
    })
}

fn drm_node(u: &mut Unstructured) -> Result<DrmNode> {
    Ok(DrmNode {
        path: pick(u, &["/dev/dri/renderD128", "/dev/dri/card0", "/dev/dri/renderD129"])?,
        kind: *u.choose(&[DrmNodeKind::Render, DrmNodeKind::Card])?,
        stat: stat(u)?,
        owner_name: opt(u, name)?,
        group_name: opt(u, name)?,
        acl: None,
        kernel_driver: opt(u, |u| pick(u, DRIVERS))?,
        pci: opt(u, pci)?,
        drm_driver: opt(u, |u| pick(u, DRIVERS))?,
        drm_driver_note: opt(u, text)?,
    })
}

fn reservation(u: &mut Unstructured) -> Result<DeviceReservation> {
    Ok(DeviceReservation {
        driver: opt(u, |u| pick(u, &["nvidia", "cdi"]))?,
        count: opt(u, |u| {
            Ok(if u.arbitrary()? {
                DeviceCount::All(AllMarker::All)
            } else {
                DeviceCount::Count(u.int_in_range(0..=4)?)
            })
        })?,
        device_ids: list(u, 2, |u| pick(u, &["0", "GPU-5b2c", "nvidia.com/gpu=all"]))?,
        capabilities: list(u, 3, |u| pick(u, &["gpu", "video", "compute", "utility"]))?,
    })
}

fn service(u: &mut Unstructured) -> Result<ComposeService> {
    let mut environment = BTreeMap::new();
    for _ in 0..u.int_in_range(0..=4)? {
        let key = pick(u, &["PUID", "PGID", "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES", "UMASK"])?;
        let value = opt(u, |u| match u.int_in_range(0..=2)? {
            0 => Ok(id(u)?.to_string()),
            1 => pick(u, &["all", "video,compute,utility", "0", "none", "void"]),
            _ => text(u),
        })?;
        environment.insert(key, value);
    }
    Ok(ComposeService {
        name: name(u)?,
        file: "/srv/stack/compose.yaml".into(),
        line: u.int_in_range(0..=40)?,
        image: opt(u, |u| pick(u, &["lscr.io/linuxserver/plex", "jellyfin/jellyfin", "nvidia/cuda"]))?,
        profiles: list(u, 2, text)?,
        environment,
        user: opt(u, |u| match u.int_in_range(0..=2)? {
            0 => Ok(format!("{}:{}", id(u)?, id(u)?)),
            1 => Ok(format!("{}:{}", name(u)?, name(u)?)),
            _ => Ok(id(u)?.to_string()),
        })?,
        group_add: list(u, 3, |u| if u.arbitrary()? { Ok(id(u)?.to_string()) } else { name(u) })?,
        devices: list(u, 3, |u| {
            let source = pick(u, &["/dev/dri", "/dev/dri/renderD128", "/dev/nvidia0", "nvidia.com/gpu=all"])?;
            Ok(DeviceMapping { target: source.clone(), source, permissions: pick(u, &["rwm", "r"])? })
        })?,
        runtime: opt(u, |u| pick(u, &["nvidia", "runc"]))?,
        device_reservations: list(u, 2, reservation)?,
        gpus: list(u, 1, reservation)?,
        volumes: list(u, 3, |u| {
            let kind = *u.choose(&[VolumeKind::Bind, VolumeKind::Volume, VolumeKind::Tmpfs, VolumeKind::Other])?;
            Ok(VolumeMount {
                kind,
                source: opt(u, path)?,
                target: path(u)?,
                read_only: u.arbitrary()?,
                host_path: opt(u, path)?,
            })
        })?,
        userns: opt(u, |u| pick(u, &["keep-id", "auto", "host"]))?,
        keep_groups: u.arbitrary()?,
    })
}

fn stack(u: &mut Unstructured) -> Result<ComposeStack> {
    let mut s = ComposeStack::new(name(u)?, "/srv/stack");
    s.owner = opt(u, name)?;
    s.files = vec!["/srv/stack/compose.yaml".into()];
    s.active_profiles = list(u, 2, text)?;
    s.services = list(u, 3, service)?;
    s.unset_variables = list(u, 2, text)?;
    s.rootless = u.arbitrary()?;
    Ok(s)
}

const FS_TYPES: &[&str] = &[
    "ext4",
    "xfs",
    "btrfs",
    "vfat",
    "ntfs",
    "ntfs3",
    "nfs",
    "cifs",
    "tmpfs",
    "swap",
    "auto",
    "none",
    "fuse.sshfs",
    "zfs",
];

fn spec(u: &mut Unstructured) -> Result<String> {
    Ok(match u.int_in_range(0..=5)? {
        0 => format!("UUID={}", pick(u, &["7c1f0b7e-2d4a-4f61-9a53-3c5f2d1e9b10", "1111-2222", "\"quoted\""])?),
        1 => format!("LABEL={}", pick(u, &["Plex Drive", "data", "a\"b"])?),
        2 => format!("PARTUUID={}", pick(u, &["9f3c1b2a-7d4e-4b8f-a1c2-3d4e5f6a7b8c"])?),
        3 => pick(u, &["/dev/sdb1", "/dev/disk/by-id/ata-x", "tmpfs", "nas:/export", "//nas/share"])?,
        _ => text(u)?,
    })
}

fn fstab(u: &mut Unstructured) -> Result<FstabEntry> {
    Ok(FstabEntry {
        line: u.int_in_range(1..=40)?,
        spec: spec(u)?,
        file: path(u)?,
        vfstype: pick(u, FS_TYPES)?,
        options: list(u, 4, |u| {
            pick(u, &["defaults", "nofail", "noauto", "ro", "rw", "bind", "x-systemd.automount", "uid=1000", "noatime"])
        })?,
        freq: u.int_in_range(0..=2)?,
        passno: u.int_in_range(0..=2)?,
    })
}

fn block_device(u: &mut Unstructured) -> Result<BlockDevice> {
    let name = pick(u, &["sdb1", "sdc", "nvme0n1p2"])?;
    Ok(BlockDevice {
        path: format!("/dev/{name}"),
        name,
        fstype: opt(u, |u| pick(u, FS_TYPES))?,
        uuid: opt(u, |u| pick(u, &["7c1f0b7e-2d4a-4f61-9a53-3c5f2d1e9b10", "1111-2222"]))?,
        label: opt(u, |u| pick(u, &["Plex Drive", "data"]))?,
        partuuid: opt(u, |u| pick(u, &["9f3c1b2a-7d4e-4b8f-a1c2-3d4e5f6a7b8c"]))?,
        mountpoints: list(u, 2, path)?,
    })
}

fn data_root(u: &mut Unstructured) -> Result<DataRoot> {
    Ok(DataRoot {
        path: path(u)?,
        stat: opt(u, stat)?,
        owner_name: opt(u, name)?,
        group_name: opt(u, name)?,
        ownership: opt(u, |u| {
            Ok(Ownership {
                entries: u.arbitrary()?,
                complete: u.arbitrary()?,
                by_owner: list(u, 3, |u| Ok(OwnerCount { uid: id(u)?, gid: id(u)?, entries: u.arbitrary()? }))?,
            })
        })?,
        exclude: list(u, 2, |u| pick(u, &["/lost+found", ".Trash-*", "[", "a/**"]))?,
    })
}

/// A snapshot built from `u`.
pub fn snapshot(u: &mut Unstructured) -> Result<Snapshot> {
    let mut s =
        Snapshot::new(HostInfo { hostname: opt(u, text)?, root: "/".into(), live: u.arbitrary()?, kernel: None });
    s.tool = ToolInfo { name: "homelab-probe".into(), version: "fuzz".into() };
    s.captured_at = if u.arbitrary()? { text(u)? } else { "2026-01-01T00:00:00Z".into() };
    s.identities.users = list(u, 4, |u| {
        Ok(HumanUser {
            name: name(u)?,
            uid: id(u)?,
            gid: id(u)?,
            primary_group: opt(u, name)?,
            home: pick(u, &["/home/alice", "/var/empty", "/home/a b"])?,
            shell: pick(u, &["/bin/bash", "/usr/sbin/nologin", "/bin/zsh"])?,
            groups: list(u, 4, name)?,
        })
    })?;
    s.identities.groups = list(u, 6, |u| {
        Ok(CapturedGroup { name: name(u)?, gid: id(u)?, members: list(u, 3, name)?, uses: list(u, 3, group_use)? })
    })?;
    s.block_devices = opt(u, |u| list(u, 3, block_device))?;
    s.fstab = opt(u, |u| list(u, 4, fstab))?;
    s.mounts = opt(u, |u| {
        list(u, 3, |u| {
            Ok(Mount {
                target: path(u)?,
                source: pick(u, &["/dev/sdb1", "/dev/sdc", "tmpfs"])?,
                fstype: pick(u, FS_TYPES)?,
                options: list(u, 3, |u| pick(u, &["rw", "ro", "relatime"]))?,
            })
        })
    })?;
    s.drm_nodes = list(u, 3, drm_node)?;
    s.gpus = list(u, 2, gpu)?;
    s.compose.search_dirs =
        list(u, 2, |u| Ok(SearchDir { path: path(u)?, owner: opt(u, name)?, exists: u.arbitrary()? }))?;
    s.compose.stacks = list(u, 3, stack)?;
    s.data_roots = list(u, 3, data_root)?;
    s.gaps = list(u, 2, |u| {
        Ok(Gap { section: pick(u, &["fstab", "mounts", "block_devices", "identities"])?, reason: text(u)? })
    })?;
    // Drawn last, so that earlier inputs decode to the snapshots they gave before the field.
    s.baseline = opt(u, |u| {
        Ok(RecordedBaseline {
            file: pick(u, &["/root/owners.baseline", "/root/it's my\\x0aowners", "/", "", "/root/.hidden"])?,
            roots: list(u, 2, path)?,
            entries: u.arbitrary()?,
            bytes: u.arbitrary()?,
            sha256: format!("{:064x}", u.arbitrary::<u128>()?),
            complete: u.arbitrary()?,
        })
    })?;
    Ok(s)
}
